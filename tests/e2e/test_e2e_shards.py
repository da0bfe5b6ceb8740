"""pktflow in two shards on a real Docker engine: `docker compose up --build` of
compose.shards.yaml (socket-0 ... nic-0 serve h1; socket-1 ... nic-1 serve r1 and h2;
the cable h1 -- r1 runs between nic-0 and nic-1), Jaeger replaced by the embedded
trace store (compose.offline.yaml), driven from the host with the pktflow SDK
pointed at shard 0's socket service only: it learns where h2 is served from it.

One compose project per module, with a unique name and free host ports, taken down
(`down -v --remove-orphans`) at the end whatever happens; every wait is bounded.
Skipped, saying why, where no Docker engine, Compose v2 or Python base image is at
hand (test_e2e_compose's checks); run ../shared/tools/docker-engine-up and export
the PYTHON_IMAGE it prints."""
import hashlib
import json
import os
import time
import uuid

import pktflow
import pytest
from conftest import Bulk, environ, eventually, link_stats
from pktflow import _client, cli
from pktflow import tracequery as tq
from test_e2e_compose import (H2, ROOT, Stack, _complete_trace, _engine, _free_port, _ping_answers, _udp_arrives,
                              _udp_once)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

COMPOSE_FILES = [ROOT / "compose.shards.yaml", ROOT / "tests" / "e2e" / "compose.offline.yaml"]
LAYERS = ["ip", "link", "nic", "socket", "transport"]
SHARDS = (0, 1)
SHARD_LAYERS = [f"{layer}-{k}" for k in SHARDS for layer in LAYERS]
LONG_RUNNING = SHARD_LAYERS + ["jaeger", "traffic"]
H1 = "10.0.1.10"


@pytest.fixture(scope="module")
def shards_stack(request):
    client = _engine()
    env = {k: v for k, v in os.environ.items() if k not in ("PKTFLOW_TOPOLOGY_FILE", "PKTFLOW_SHARD_SOCKETS")}
    env |= {"PKTFLOW_SOCKET_PORT": str(_free_port()), "PKTFLOW_SOCKET_1_PORT": str(_free_port()),
            "PKTFLOW_JAEGER_UI_PORT": str(_free_port()), "PKTFLOW_OTLP_PORT": str(_free_port()),
            "PKTFLOW_SECRET": uuid.uuid4().hex}          # the layers' streams and the cable between shards
    s = Stack(client, f"pktflow-shards-e2e-{uuid.uuid4().hex[:8]}", env, files=COMPOSE_FILES)
    request.addfinalizer(lambda: s.compose("down", "-v", "--remove-orphans", "--timeout", "5", timeout=120,
                                           check=False))
    s.compose("up", "--build", "--detach", "--wait", "--wait-timeout", "240", timeout=900)
    # the SDK on the host, told of shard 0's socket service only
    with environ(PKTFLOW_ENDPOINT=s.endpoint, PKTFLOW_QUERY_ENDPOINT=s.query, PKTFLOW_NIC_ENDPOINT=None):
        yield s


def _eth0(netns: str) -> dict:
    """The nic's view of a host's eth0 (`link` admin: carrier, stats)."""
    return next(d for d in json.loads(_client.admin("nic", netns, "link").json) if d["ifname"] == "eth0")


def _carrier(netns: str) -> bool | None:
    try:
        return _eth0(netns)["carrier"]
    except OSError:                   # the shard's nic is between streams: ask again
        return None


def _ip_link(capsys, netns: str) -> str:
    """`pktflow ip -n NETNS link show eth0`, as a user types it."""
    capsys.readouterr()
    assert cli.main(["ip", "-n", netns, "link", "show", "eth0"]) == 0
    return capsys.readouterr().out


def _udp_exchange(port: int, timeout: float = 5.0) -> bytes:
    """A datagram h1 -> h2 and h2's answer back to h1: each way across the shards' cable."""
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli_:
        srv.settimeout(timeout)
        cli_.settimeout(timeout)
        srv.bind((H2, port))
        cli_.sendto(b"across the shards", (H2, port))
        data, peer = srv.recvfrom(2048)
        assert peer[0] == H1
        srv.sendto(data.upper(), peer)
        return cli_.recv(2048)


def test_two_shards_come_up_healthy_from_one_image_with_loopback_ports(shards_stack):
    for service in LONG_RUNNING:
        assert shards_stack.state(service)["Running"], service
    assert all(shards_stack.healthy(s) for s in SHARD_LAYERS + ["jaeger"])
    assert len({shards_stack.container(s).image.id for s in LONG_RUNNING}) == 1
    for service in SHARD_LAYERS:
        c = shards_stack.container(service)
        assert c.attrs["Config"]["User"] == "10001:10001"
        assert f"PKTFLOW_SHARD={service.rsplit('-', 1)[1]}" in c.attrs["Config"]["Env"], service
        published = [b for bindings in c.attrs["NetworkSettings"]["Ports"].values() if bindings for b in bindings]
        assert all(b["HostIp"] == "127.0.0.1" for b in published), published
    assert {s for s in SHARD_LAYERS if shards_stack.container(s).attrs["NetworkSettings"]["Ports"].get(
        "50051/tcp")} == {"socket-0", "socket-1"}, "only the socket services are published"


def test_ping_udp_and_tcp_from_h1_on_shard_0_to_h2_on_shard_1(shards_stack):
    """The SDK is pointed at shard 0's socket service; h2's sockets are on shard 1's."""
    assert eventually(_ping_answers, timeout=60, interval=0.5)
    assert pktflow.ping(H2, netns="h1", count=3, timeout=2).received == 3
    assert _udp_exchange(41800) == b"ACROSS THE SHARDS"
    bulk = Bulk(42810, size=1 << 20, pause=0.0)
    assert bulk.finish(timeout=120), f"the transfer did not finish: {len(bulk.got)} of {len(bulk.data)} bytes"
    assert not bulk.errors, bulk.errors
    assert hashlib.sha256(bulk.got).digest() == hashlib.sha256(bulk.data).digest()
    # the traffic generator in the stack (ping, UDP, TCP from h1 to h2) gets through too
    eventually(lambda: "tcp ok" in shards_stack.container("traffic").logs(tail=20).decode(), timeout=60, interval=0.5)


def test_a_journey_across_the_shards_is_one_trace(shards_stack):
    pktflow.ping(H2, netns="h1", count=1, timeout=2)          # ARP resolved: the datagram takes the plain path
    assert _udp_once(41801, b"one trace", timeout=5)
    tr = eventually(lambda: _complete_trace(41801, 19), timeout=30, interval=0.3)
    spans = tq.journey(tr)
    assert {s["service"] for s in spans} == set(LAYERS)
    fwd = [s for s in spans if s["operationName"] == "ip_forward"]
    assert len(fwd) == 1 and tq.tag(fwd[0], "pktflow.netns") == "r1"              # on shard 1
    assert [tq.tag(s, "pktflow.netns") for s in (spans[0], spans[-1])] == ["h1", "h2"]


def test_shard_1_nic_restart_drops_carrier_on_h1_recovers_and_tcp_completes(shards_stack, capsys):
    """nic-1 stopped: h1's eth0 (served by nic-0) has no peer on the cable between the shards,
    so it loses carrier as a pulled cable would (`ip link` says NO-CARRIER, frames sent are
    carrier errors); nic-1 back: carrier again, and a TCP transfer started before completes."""
    eventually(lambda: _carrier("h1"), timeout=30, interval=0.2)
    assert "NO-CARRIER" not in _ip_link(capsys, "h1")
    others = {s: shards_stack.state(s)["StartedAt"] for s in LONG_RUNNING if s != "nic-1"}
    bulk = Bulk(42820)
    time.sleep(1.0)
    nic1 = shards_stack.container("nic-1")
    nic1.stop(timeout=15)                                       # SIGTERM: drain, flush, exit
    assert 0 < len(bulk.got) < len(bulk.data), "the transfer spans the restart"

    eventually(lambda: _carrier("h1") is False, timeout=30, interval=0.2)
    shown = _ip_link(capsys, "h1")
    assert "NO-CARRIER" in shown and "state DOWN" in shown, shown
    before = link_stats("h1")["eth0"].get("tx_carrier_errors", 0)
    assert not _udp_once(41802, b"while nic-1 is down")
    eventually(lambda: link_stats("h1")["eth0"].get("tx_carrier_errors", 0) > before, timeout=15, interval=0.2)

    nic1.start()
    shards_stack.wait_healthy(SHARD_LAYERS, timeout=90)
    eventually(lambda: _carrier("h1"), timeout=60, interval=0.2)
    assert "NO-CARRIER" not in _ip_link(capsys, "h1")
    eventually(lambda: _udp_arrives(41803), timeout=60, interval=0.2)
    assert bulk.finish(timeout=180), f"the transfer did not finish: {len(bulk.got)} of {len(bulk.data)} bytes"
    assert not bulk.errors, bulk.errors
    assert hashlib.sha256(bulk.got).digest() == hashlib.sha256(bulk.data).digest()
    for service, started in others.items():            # no other container restarted because nic-1 did
        st = shards_stack.state(service)
        assert st["Running"] and st["StartedAt"] == started and st["RestartCount"] == 0, (service, st)


def test_compose_down_leaves_nothing_behind(shards_stack):
    shards_stack.compose("down", "-v", "--remove-orphans", "--timeout", "5")
    label = {"label": f"com.docker.compose.project={shards_stack.project}"}
    assert shards_stack.client.containers.list(all=True, filters=label) == []
    assert shards_stack.client.networks.list(filters=label) == []
    assert shards_stack.client.volumes.list(filters=label) == []
