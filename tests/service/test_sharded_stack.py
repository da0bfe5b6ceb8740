"""A stack in two shards (Stack(shards=2), what `pktflow up --shards 2` runs): h1 on
shard 0, r1 and h2 on shard 1, so the cable h1:eth0 -- r1:eth0 runs between the
shards' nic services. The SDK names hosts only; the integration tests of the default
topology run unchanged across the boundary; a shard whose nic is gone is a pulled cable."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

import pktflow
from conftest import PORT_BASE, environ, eventually, sharded_default
from pktflow import _client, dropwatch
from pktflow import tracequery as tq

pytestmark = pytest.mark.integration
HERE = os.path.dirname(os.path.abspath(__file__))
BASE = PORT_BASE + 3200


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    from pktflow.up import Stack
    d = tmp_path_factory.mktemp("sharded")
    (d / "topology.yaml").write_text(sharded_default(2, h1=0, r1=1, h2=1))
    s = Stack(str(d / "topology.yaml"), port_base=BASE, otlp_port=BASE + 17, query_port=BASE + 18,
              trace_store=True, log_dir=str(d))
    s.start(restart=False)              # the test stops and starts shard 1's nic itself
    with environ(PKTFLOW_ENDPOINT=s.endpoint, PKTFLOW_QUERY_ENDPOINT=s.query_url):
        yield s
    s.stop()
    assert not s.procs


def carrier(netns: str, ifname: str = "eth0") -> bool:
    return next(d for d in json.loads(_client.admin("nic", netns, "link").json) if d["ifname"] == ifname)["carrier"]


def test_the_sdk_finds_each_hosts_shard(sharded):
    m = _client.shard_map()
    assert m["placement"] == {"h1": 0, "r1": 1, "h2": 1} and m["shard"] == 0
    assert m["sockets"] == [f"127.0.0.1:{BASE + 1}", f"127.0.0.1:{BASE + 101}"]
    assert _client.endpoint_of("h2") == f"127.0.0.1:{BASE + 101}" and _client.endpoint_of("h1") == sharded.endpoint
    # each shard serves its own hosts: an admin query for h2 reaches shard 1's layers
    assert [r["ifname"] for r in json.loads(_client.admin("nic", "h2", "link").json)] == ["lo", "eth0"]
    with pytest.raises(FileNotFoundError):
        pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h9")


def test_a_datagram_crosses_the_boundary_in_one_trace_that_names_both_shards(sharded):
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli:
        srv.bind(("10.0.2.10", 7100))
        srv.settimeout(10)
        cli.sendto(b"across", ("h2", 7100))
        data, (src, sport) = srv.recvfrom(100)
    assert (data, src) == (b"across", "10.0.1.10")

    def journey():
        for tr in tq.find(service="socket", operation="skb_recv_datagram", tags={"pktflow.netns": "h2"}, limit=20):
            spans = tq.journey(tr)
            # every layer of both shards has exported its spans (they reach the store at their own pace)
            if any(tq.tag(s, "source.port") == sport for s in spans) and \
                    {"h1", "r1", "h2"} <= {tq.tag(s, "pktflow.netns") for s in spans}:
                return tr, spans
        return None
    tr, spans = eventually(journey, timeout=15)
    hosts = [tq.tag(s, "pktflow.netns") for s in spans]
    assert hosts[0] == "h1" and hosts[-1] == "h2" and "r1" in hosts
    shard_of = {pid: next(t["value"] for t in p["tags"] if t["key"] == "pktflow.shard")
                for pid, p in tr["processes"].items()}
    by_host = {(tq.tag(s, "pktflow.netns"), shard_of[s["processID"]]) for s in spans}
    assert by_host == {("h1", 0), ("r1", 1), ("h2", 1)}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True,
                          timeout=60, env=os.environ)


def test_ping_and_a_tcp_transfer_across_the_boundary_and_the_cli_finds_each_end(sharded):
    ping = cli("ping", "-n", "h1", "10.0.2.10", "-c", "2", "-i", "0.2")
    assert ping.returncode == 0 and "2 received" in ping.stdout, ping.stdout + ping.stderr
    data = bytes(range(256)) * 800                  # 200 KB: many windows over the shards' cable
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as cli_sock:
        srv.bind(("10.0.2.10", 7200))
        srv.listen()
        srv.settimeout(10)
        cli_sock.settimeout(10)
        cli_sock.connect(("h2", 7200))
        conn, (peer, peer_port) = srv.accept()
        with conn:
            assert (peer, peer_port) == ("10.0.1.10", cli_sock.getsockname()[1])
            cli_sock.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = conn.recv(65536)
                assert chunk, "EOF before the whole transfer"
                got += chunk
            assert got == data
            # the CLI names hosts, not shards: ss on h2 asks shard 1's transport, on h1 shard 0's
            ss2, ss1 = cli("ss", "-n", "h2"), cli("ss", "-n", "h1")
            assert ss2.returncode == ss1.returncode == 0, ss2.stderr + ss1.stderr
            assert "10.0.2.10:7200" in ss2.stdout and f"10.0.1.10:{peer_port}" in ss2.stdout, ss2.stdout
            assert f"10.0.1.10:{peer_port}" in ss1.stdout and "10.0.2.10:7200" in ss1.stdout, ss1.stdout
            assert "ESTAB" in ss2.stdout and "ESTAB" in ss1.stdout
    nstat = cli("nstat", "-n", "h2")
    assert nstat.returncode == 0 and re.search(r"^TcpPassiveOpens\s+[1-9]", nstat.stdout, re.M), nstat.stdout
    assert re.search(r"^IcmpInEchos\s+[1-9]", nstat.stdout, re.M), nstat.stdout
    assert not re.search(r"^TcpPassiveOpens\s", cli("nstat", "-n", "h1").stdout, re.M)   # h1 only connected
    bad = cli("nstat", "-n", "h9")
    assert bad.returncode == 1 and "no network namespace 'h9'" in bad.stderr


def test_drops_of_every_host_come_from_every_shard(sharded):
    """dropwatch (and perf stat) without a host ask each shard's five layers."""
    before = dropwatch.snapshot("")
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as a, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as b:
        a.sendto(b"nobody", ("10.0.2.10", 7301))           # dropped on h2 (shard 1)
        b.sendto(b"nobody", ("10.0.1.10", 7302))           # dropped on h1 (shard 0)

    def grown():
        now = dropwatch.snapshot("")
        return {k[0] for k, n in now.items() if k[1:] == ("transport", "udp_rcv", "NO_SOCKET")
                and n > before.get(k, 0)}
    eventually(lambda: grown() == {"h1", "h2"}, timeout=10)


def test_a_shard_whose_nic_is_gone_is_a_pulled_cable(sharded):
    assert carrier("h1")
    before = next(d for d in json.loads(_client.admin("nic", "h1", "link").json)
                  if d["ifname"] == "eth0")["stats"].get("tx_carrier_errors", 0)
    nic1 = sharded.procs["nic-1"]
    nic1.terminate()
    nic1.wait(10)
    try:
        eventually(lambda: not carrier("h1"), timeout=15)
        r = pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=0.5)
        assert not any(r.replies)                  # the probe was lost (None)
        after = next(d for d in json.loads(_client.admin("nic", "h1", "link").json)
                     if d["ifname"] == "eth0")["stats"].get("tx_carrier_errors", 0)
        assert after > before                       # what h1 sent met no carrier, counted
    finally:
        sharded.start_service("nic-1")
    eventually(lambda: carrier("h1"), timeout=15)
    deadline = time.monotonic() + 30        # r1's link layer dials its new nic again, then ARP and routes
    while not any(pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=1.0).replies):
        assert time.monotonic() < deadline, "no echo across the shards after shard 1's nic came back"


def test_the_integration_tests_run_unchanged_across_two_shards(tmp_path):
    """The default topology's UDP, TCP (a netem bulk among them) and tracing tests, on
    a stack whose shared fixture runs in two shards (tests/conftest.py: PKTFLOW_TEST_SHARDS)."""
    env = os.environ | {"PKTFLOW_TEST_SHARDS": "2", "PKTFLOW_TEST_PORT_BASE": str(PORT_BASE + 3000)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                        os.path.join(HERE, "test_udp_stack.py"), os.path.join(HERE, "test_tcp_stack.py"),
                        os.path.join(HERE, "test_tracing_stack.py")],
                       cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout.splitlines()[-1] and "failed" not in r.stdout.splitlines()[-1]
