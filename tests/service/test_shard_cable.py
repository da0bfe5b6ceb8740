"""A cable between shards, with real processes: the default topology in two shards (h1 on
shard 0; r1 and h2 on shard 1), so h1:eth0 -- r1:eth0 is carried between the two shards'
nic services. Each host is reached through its own shard's socket service (PKTFLOW_ENDPOINT
set per call), so what is checked is the cable, not the SDK's routing: datagrams in order
and a ping across it, a GSO packet crossing whole, one trace across the boundary, each end's
recording, the stream refusing strangers, and a shard whose nic is gone seeing a pulled
cable until it is back."""
import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

import pktflow
import wirecheck
from conftest import PORT_BASE, assert_no_tracebacks, eventually, sdk_endpoint, sharded_default
from pktflow import _client
from pktflow import tracequery as tq

pytestmark = pytest.mark.integration
BASE = PORT_BASE + 400            # shard 0: BASE+1..5, shard 1: BASE+101..105, the trace store BASE+17/18
CABLE = "h1-eth0--r1-eth0"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """`pktflow up` of a file that says `shards: 2` (Stack starts every shard: shard k's
    services with PKTFLOW_SHARD=k, every shard's nic in PKTFLOW_SHARD_NICS, one secret)."""
    from pktflow.up import Stack
    d = tmp_path_factory.mktemp("shard_cable")
    (d / "topology.yaml").write_text(sharded_default(2, h1=0, r1=1, h2=1))
    s = Stack(str(d / "topology.yaml"), port_base=BASE, otlp_port=BASE + 17, query_port=BASE + 18,
              trace_store=True, log_dir=str(d), extra_env={"PKTFLOW_WIRE_PCAP": str(d / "wire")})
    assert s.shards == 2 and s.env["PKTFLOW_SHARD_NICS"] == f"127.0.0.1:{BASE + 5},127.0.0.1:{BASE + 105}"
    s.start(restart=False)              # a test stops and starts shard 1's nic itself
    s.wire = d / "wire"
    yield s
    s.stop()
    assert not s.procs
    assert_no_tracebacks(d)


@contextlib.contextmanager
def on_shard(shards, k: int):
    """The SDK talks to shard k's socket service."""
    with sdk_endpoint(f"127.0.0.1:{shards.shard_ports[k]['socket']}"):
        yield


def sock(shards, k: int, netns: str, kind=pktflow.SOCK_DGRAM):
    with on_shard(shards, k):
        s = pktflow.socket(pktflow.AF_INET, kind, netns=netns)
    s.settimeout(10)
    return s


def nic_link(shards, k: int, netns: str, ifname: str = "eth0") -> dict:
    with on_shard(shards, k):
        return next(d for d in json.loads(_client.admin("nic", netns, "link").json) if d["ifname"] == ifname)


def cli(shards, k: int, *args):
    env = os.environ | {"PKTFLOW_ENDPOINT": f"127.0.0.1:{shards.shard_ports[k]['socket']}"}
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_datagrams_cross_in_order_both_ways(shards):
    srv, cli_sock = sock(shards, 1, "h2"), sock(shards, 0, "h1")
    with srv, cli_sock:
        srv.bind(("10.0.2.10", 7400))
        for i in range(100):
            cli_sock.sendto(i.to_bytes(2, "big") + b"-across", ("10.0.2.10", 7400))
        got = []
        for _ in range(100):
            data, (src, sport) = srv.recvfrom(100)
            got.append(int.from_bytes(data[:2], "big"))
            assert (data[2:], src) == (b"-across", "10.0.1.10")
        assert got == list(range(100))                       # none lost, none reordered
        srv.sendto(b"back", ("10.0.1.10", sport))
        assert cli_sock.recvfrom(100) == (b"back", ("10.0.2.10", 7400))
    h1, r1 = nic_link(shards, 0, "h1"), nic_link(shards, 1, "r1")
    assert h1["carrier"] and r1["carrier"]
    assert h1["stats"]["tx_packets"] >= 100 and r1["stats"]["rx_packets"] >= 100


def test_a_ping_crosses(shards):
    with on_shard(shards, 0):
        r = pktflow.ping("10.0.2.10", netns="h1", count=3, timeout=2, interval=0.05)
    assert all(r.replies), r.replies
    ping = cli(shards, 0, "ping", "-n", "h1", "10.0.2.10", "-c", "2", "-i", "0.2")
    assert ping.returncode == 0 and "2 received" in ping.stdout, ping.stdout + ping.stderr


def test_a_journey_across_the_boundary_is_one_trace(shards):
    """The hop on r1 (shard 1) that took the frame off the cable is the child of h1's
    (shard 0) that put it on: one trace id, the parent link kept across the stream."""
    srv, cli_sock = sock(shards, 1, "h2"), sock(shards, 0, "h1")
    with srv, cli_sock:
        srv.bind(("10.0.2.10", 7401))
        cli_sock.sendto(b"traced", ("10.0.2.10", 7401))
        _, (_, sport) = srv.recvfrom(100)

    def crossings():
        """The hops whose parent ran on another shard, once every shard's spans are in."""
        for tr in tq.find(service="socket", operation="skb_recv_datagram", tags={"pktflow.netns": "h2"},
                          limit=50, base=shards.query_url):
            spans = tq.journey(tr)
            if not any(tq.tag(s, "source.port") == sport for s in spans):
                continue
            assert len({s["traceID"] for s in spans}) == 1
            shard_of = {pid: next(t["value"] for t in p["tags"] if t["key"] == "pktflow.shard")
                        for pid, p in tr["processes"].items()}
            by_id = {s["spanID"]: s for s in spans}
            out = []
            for s in spans:
                parent = next((by_id.get(r["spanID"]) for r in s.get("references", ())
                               if r["refType"] == "CHILD_OF"), None)
                if parent and shard_of[parent["processID"]] != shard_of[s["processID"]]:
                    out.append((tq.tag(parent, "pktflow.netns"), parent["operationName"],
                                shard_of[parent["processID"]], tq.tag(s, "pktflow.netns"), s["operationName"],
                                shard_of[s["processID"]]))
            if out and tq.tag(spans[0], "pktflow.netns") == "h1":     # h1's spans reached the store too
                return out
        return None
    assert eventually(crossings, timeout=20) == [("h1", "ndo_start_xmit", 0, "r1", "netif_receive_skb", 1)]


def test_a_gso_packet_crosses_whole_and_each_end_records_what_it_sent(shards):
    before = nic_link(shards, 1, "r1")["stats"]
    data = os.urandom(300_000)
    lst = sock(shards, 1, "h2", pktflow.SOCK_STREAM)
    lst.bind(("10.0.2.10", 7402))
    lst.listen(1)
    c = sock(shards, 0, "h1", pktflow.SOCK_STREAM)
    with lst, c:
        c.connect(("10.0.2.10", 7402))
        with on_shard(shards, 1):        # the accepted socket dials the endpoint of the moment
            conn, _ = lst.accept()
        with conn, ThreadPoolExecutor(1) as pool:
            conn.settimeout(30)
            c.settimeout(30)
            sent = pool.submit(lambda: (c.sendall(data), c.shutdown(pktflow.SHUT_WR)))   # as the reader reads
            got = bytearray()
            while chunk := conn.recv(65536):
                got += chunk
            sent.result(timeout=30)
    assert got == data
    after = nic_link(shards, 1, "r1")["stats"]
    packets, octets = (after[k] - before.get(k, 0) for k in ("rx_packets", "rx_bytes"))
    assert octets > packets * 1518, (packets, octets)      # larger than any one frame: TSO packets, whole
    short, rx = sock(shards, 0, "h1"), sock(shards, 1, "h2")
    with short, rx:                                              # and a frame below the minimum size
        rx.bind(("10.0.2.10", 7403))
        short.sendto(b"\x00\x00-across", ("10.0.2.10", 7403))
        assert rx.recv(100) == b"\x00\x00-across"
    # each end records what it sent, as a tap on the wire sees it: the frames (TSO cut), no FCS
    zero, one = shards.wire / f"{CABLE}.shard0.pcap", shards.wire / f"{CABLE}.shard1.pcap"
    eventually(lambda: zero.exists() and one.exists() and b"\x00\x00-across" in zero.read_bytes(), timeout=5)
    sent = rdpcap(str(zero))
    assert max(len(p) for p in sent) == 1514 and all(p.src == "02:00:00:00:01:0a" for p in sent)
    assert any(UDP in p and p[UDP].load == b"\x00\x00-across" for p in sent)       # padded to 60 bytes
    assert all(Ether(bytes(p)).src == "02:00:00:00:01:01" for p in rdpcap(str(one)))
    assert not (shards.wire / f"{CABLE}.pcap").exists()
    if wirecheck.available():
        bad = [r for f in (zero, one) for r in wirecheck.problems(f) if r["bad"]]
        assert not bad, bad[:5]


def test_only_nics_of_the_same_stack_join_the_cable_stream(shards):
    from pktflow.v1 import layers_pb2, layers_pb2_grpc
    secret = shards.env["PKTFLOW_SECRET"]
    with grpc.insecure_channel(f"127.0.0.1:{BASE + 105}") as ch:
        stub = layers_pb2_grpc.LayerStub(ch)
        for md, code in (((("pktflow-layer", "nic0"), ("pktflow-secret", "0" * 64)), grpc.StatusCode.UNAUTHENTICATED),
                         ((("pktflow-layer", "nic0"),), grpc.StatusCode.UNAUTHENTICATED),
                         ((("pktflow-layer", "nic5"), ("pktflow-secret", secret)), grpc.StatusCode.PERMISSION_DENIED)):
            with pytest.raises(grpc.RpcError) as e:
                next(iter(stub.Exchange(iter([layers_pb2.SkbBatch()]), metadata=md, timeout=5)))
            assert e.value.code() == code, (md, e.value)
    assert nic_link(shards, 0, "h1")["carrier"]                 # the real stream was not disturbed


def test_a_nic_without_every_shards_address_refuses_to_start(shards):
    env = shards.env | {"PKTFLOW_SHARD": "0", "PKTFLOW_SHARD_NICS": f"127.0.0.1:{BASE + 5}",
                       "PKTFLOW_PORT": str(BASE + 90), "OTEL_TRACES_EXPORTER": "none"}
    r = subprocess.run([sys.executable, "-m", "pktflow.services.nic"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "cables go to shard 1" in r.stderr and "PKTFLOW_SHARD_NICS" in r.stderr, r.stderr


def test_a_shard_whose_nic_is_gone_is_a_pulled_cable_until_it_is_back(shards):
    assert nic_link(shards, 0, "h1")["carrier"]
    errors = nic_link(shards, 0, "h1")["stats"].get("tx_carrier_errors", 0)
    nic1 = shards.procs["nic-1"]
    nic1.terminate()
    nic1.wait(10)
    try:
        eventually(lambda: not nic_link(shards, 0, "h1")["carrier"], timeout=15)
        shown = cli(shards, 0, "ip", "-n", "h1", "-s", "link", "show", "eth0")
        assert shown.returncode == 0 and "NO-CARRIER" in shown.stdout and "state DOWN" in shown.stdout, shown
        with on_shard(shards, 0):
            r = pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=0.5)
        assert not any(r.replies)
        assert nic_link(shards, 0, "h1")["stats"]["tx_carrier_errors"] > errors
        # shard 0 itself is fine: its own hosts are served, its nic is healthy
        assert cli(shards, 0, "ip", "-n", "h1", "addr").returncode == 0
    finally:
        shards.start_service("nic-1")
    eventually(lambda: nic_link(shards, 0, "h1")["carrier"], timeout=15)
    shown = cli(shards, 0, "ip", "-n", "h1", "link")
    assert "NO-CARRIER" not in shown.stdout and "state UP" in shown.stdout, shown.stdout
    deadline = time.monotonic() + 30         # r1's link layer dials its new nic again, then ARP
    while True:
        with on_shard(shards, 0):
            if any(pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=1.0).replies):
                break
        assert time.monotonic() < deadline, "no echo across the shards after shard 1's nic came back"
