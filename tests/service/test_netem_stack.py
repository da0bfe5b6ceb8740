"""netem on the running stack: `pktflow tc` as tc, impairments that traffic feels,
and TCP getting a megabyte through all of them at once. Every test removes its
qdiscs (in a finally) so the shared stack's other tests see clean links."""
import hashlib
import io
import json
import random
import re
import threading
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import pktflow
import pytest
from conftest import counters, eventually, own_frames
from pktflow import _client, cli
from pktflow.services.common.actions import Drop
from pktflow.services.iproute2.q_netem import parse
from pktflow.services.link.sch_netem import Netem
from pktflow.v1.skb_pb2 import Skb
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

pytestmark = [pytest.mark.integration, pytest.mark.impaired]


def tc(*args) -> tuple[int, str, str]:
    """`pktflow tc ARGS` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = cli.main(["tc", *args])
    return rc, out.getvalue(), err.getvalue()


@contextmanager
def netem(netns: str, dev: str, spec: str):
    rc, _, err = tc("-n", netns, "qdisc", "add", "dev", dev, "root", "netem", *spec.split())
    assert rc == 0, err
    try:
        yield
    finally:
        tc("-n", netns, "qdisc", "del", "dev", dev, "root")


def qdisc_stats(netns: str, dev: str) -> dict:
    """`tc -s qdisc show dev DEV` read back: bytes, pkt, drops, then netem's own counters."""
    rc, out, err = tc("-s", "-n", netns, "qdisc", "show", "dev", dev)
    assert rc == 0, err
    _, sent, _, xstats = out.splitlines()
    m = re.fullmatch(r" Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits 0 requeues (\d+)\) ", sent)
    stats = dict(zip(("bytes", "pkt", "drops", "requeues"), map(int, m.groups())))
    return stats | {k: int(v) for k, v in re.findall(r"([a-z_]+) (\d+)", xstats)}


def test_tc_cli_adds_shows_changes_and_deletes(stack):
    assert tc("-n", "r1", "qdisc", "show", "dev", "eth1") == \
        (0, "qdisc pfifo_fast 0: root refcnt 2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n", "")
    try:
        assert tc("-n", "r1", "qdisc", "add", "dev", "eth1", "root", "netem", "delay", "20ms", "5ms") == (0, "", "")
        _, out, _ = tc("-n", "r1", "qdisc", "show", "dev", "eth1")
        assert re.fullmatch(r"qdisc netem [0-9a-f]+: root refcnt 2 limit 1000 delay 20ms  5ms\n", out)
        assert tc("-n", "r1", "qdisc", "add", "dev", "eth1", "root", "netem", "loss", "1%") == \
            (2, "", "Error: Exclusivity flag on, cannot modify.\n")
        assert tc("-n", "r1", "qdisc", "change", "dev", "eth1", "root", "netem", "loss", "1%")[0] == 0
        _, out, _ = tc("-n", "r1", "-s", "qdisc", "show")      # all devices: each line names its dev
        lines = out.splitlines()
        assert lines[0] == "qdisc noqueue 0: dev lo root refcnt 2 "
        netem_line = next(i for i, line in enumerate(lines) if "netem" in line)
        assert re.fullmatch(r"qdisc netem [0-9a-f]+: dev eth1 root refcnt 2 limit 1000 loss 1%", lines[netem_line])
        assert re.fullmatch(r" Sent \d+ bytes \d+ pkt \(dropped \d+, overlimits 0 requeues \d+\) ",
                            lines[netem_line + 1])
        assert re.fullmatch(r" backlog \d+b \d+p requeues \d+", lines[netem_line + 2])
        assert "qdisc netem state UP" in cli_out("ip", "link", "-n", "r1")
    finally:
        assert tc("-n", "r1", "qdisc", "del", "dev", "eth1", "root") == (0, "", "")
    assert tc("-n", "r1", "qdisc", "del", "dev", "eth1", "root") == \
        (2, "", "Error: Cannot delete qdisc with handle of zero.\n")
    assert tc("-n", "r1", "qdisc", "add", "dev", "eth7", "root", "netem", "delay", "1ms") == \
        (1, "", 'Cannot find device "eth7"\n')
    assert tc("-n", "r1", "qdisc", "add", "dev", "eth1", "root", "netem", "delay", "1xs") == \
        (1, "", 'Illegal "latency": "1xs"\n')
    assert "qdisc pfifo_fast state UP" in cli_out("ip", "link", "-n", "r1")


def cli_out(*args) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(list(args)) == 0
    return out.getvalue()


def quiet_neighbours():
    """Nothing about to cross h1's eth0 on its own: no neighbour of h1 about to
    probe, and none of r1's on the h1 side (h1 would answer its probe)."""
    def quiet(netns, dev=None):
        return not any(n["state"] in ("INCOMPLETE", "DELAY", "PROBE") and dev in (None, n["dev"])
                       for n in json.loads(_client.admin("link", netns, "neigh").json))
    eventually(lambda: quiet("h1") and quiet("r1", "eth0"), timeout=15, interval=0.1)


def test_udp_loss_is_counted_traced_and_repeatable(stack):
    """Frames sent raw from h1 (no ARP of h1's own to cross the qdisc) through
    `loss 30% seed 42`: h2 gets exactly the ones the same seed lets through offline.
    h1's own stack may still send among them (a router solicitation, backing off
    to once an hour, comes when it comes) and shift the qdisc's draws: such a run
    is seen in h1's counters and made again, with a fresh qdisc."""
    spec, n = "loss 30% seed 42", 200
    offline = Netem(parse(spec), 1)
    expected = {i for i in range(n) if type(offline.enqueue(Skb(data=bytes(60)), 0)[0]) is not Drop}
    pktflow.ping("10.0.2.10", netns="r1")                     # r1 knows h2 (and h1 is not involved)
    for port in range(39000, 39003):
        quiet_neighbours()
        before, own = counters("h1"), own_frames("h1")
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as rx, \
                pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns="h1") as raw:
            rx.bind(("10.0.2.10", port))
            rx.settimeout(5)
            raw.bind(("eth0", 0))
            with netem("h1", "eth0", spec):
                for i in range(n):
                    raw.send(bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a") /
                                   IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=port, dport=port) /
                                   i.to_bytes(4, "big")))
                eventually(lambda: sum(map(qdisc_stats("h1", "eth0").get, ("pkt", "drops"))) >= n, timeout=15)
                if own_frames("h1") != own:
                    continue                                    # not the same input as offline: again
                got = {int.from_bytes(rx.recv(100), "big") for _ in expected}
                stats = qdisc_stats("h1", "eth0")
        break
    else:
        pytest.fail("h1's own stack sent frames among the raw ones in each of 3 runs")
    assert got == expected
    lost = n - len(expected)
    assert stats["pkt"] == len(expected) and stats["drops"] == stats["dropped"] == lost
    assert counters("h1")["DropNETEM_LOSS"] - before["DropNETEM_LOSS"] == lost

    from pktflow import tracequery as tq

    def drop_span():
        for tr in tq.find(service="link", operation="netem_enqueue", tags={"pktflow.netns": "h1", "error": "true"}):
            for s in tr["spans"]:
                if s["operationName"] == "netem_enqueue" and tq.tag(s, "pktflow.drop_reason") == "NETEM_LOSS":
                    return s
    eventually(drop_span, timeout=15, interval=0.2)


def test_delay_adds_to_the_round_trip(stack):
    with netem("h2", "eth0", "delay 30ms"):
        res = pktflow.ping("10.0.2.10", netns="h1", count=3, interval=0.01, timeout=2)
    assert res.received == 3
    assert all(0.030 <= r.rtt < 0.5 for r in res.replies)


def read_all(conn) -> bytes:
    parts = []
    while d := conn.recv(1 << 20):
        parts.append(d)
    return b"".join(parts)


@pytest.mark.malformed          # corrupt: frames with a flipped bit (bad checksums) on the wire, on purpose
def test_tcp_megabyte_through_every_impairment(stack):
    spec = "delay 5ms 2ms loss 3% duplicate 1% reorder 10% corrupt 1% seed 20260628"
    payload = random.Random(7).randbytes(1_000_000)
    before = counters("h1")
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
    srv.settimeout(30)
    srv.bind(("10.0.2.10", 39100))
    srv.listen(1)
    done = {}

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(30)
        conn.sendall(hashlib.sha256(read_all(conn)).digest())
        done["eof"] = conn.recv(1) == b""                    # the client's FIN, after the qdiscs are gone
        conn.close()
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    c = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
    c.settimeout(30)
    try:
        with netem("r1", "eth1", spec), netem("h2", "eth0", spec):   # both ends of the r1 -- h2 link
            c.connect(("10.0.2.10", 39100))
            c.sendall(payload)
            c.shutdown(pktflow.SHUT_WR)
            digest = b""
            while len(digest) < 32 and (part := c.recv(32 - len(digest))):
                digest += part
            data_way, ack_way = qdisc_stats("r1", "eth1"), qdisc_stats("h2", "eth0")
        # the rest of the conversation (FINs) crosses a clean link
        assert digest == hashlib.sha256(payload).digest()
    finally:
        c.close()
        server.join(30)
        srv.close()
    assert done.get("eof")
    assert data_way["dropped"] > 0 and data_way["duplicated"] > 0 and data_way["reordered"] > 0
    assert data_way["corrupted"] + ack_way["corrupted"] > 0 and ack_way["pkt"] > 0
    assert counters("h1")["TcpRetransSegs"] > before["TcpRetransSegs"]


@pytest.mark.malformed
def test_echo_both_ways_through_loss_and_reordering(stack):
    """The regression for a stall: h2 echoes every byte while h1 is still sending,
    2 MB each way through `delay 10ms loss 5% reorder 25% duplicate 1% corrupt 1%`
    on both ends of the r1 -- h2 link. Segments carrying SACK blocks used to be a
    full MSS plus the blocks, larger than the MTU, dropped by ip_output at every
    retransmission (DropPKT_TOO_BIG, IpFragFails) until both ends sat in RTO backoff."""
    spec = "delay 10ms loss 5% reorder 25% duplicate 1% corrupt 1% seed 20261203"
    payload = random.Random(9).randbytes(2_000_000)
    before = {h: counters(h) for h in ("h1", "h2")}
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
    srv.settimeout(60)
    srv.bind(("10.0.2.10", 39200))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(60)
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    back = bytearray()
    c = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
    c.settimeout(60)
    try:
        with netem("r1", "eth1", spec), netem("h2", "eth0", spec):
            c.connect(("10.0.2.10", 39200))
            reader = threading.Thread(target=lambda: back.extend(read_all(c)), daemon=True)
            reader.start()
            c.sendall(payload)
            c.shutdown(pktflow.SHUT_WR)
            reader.join(120)
            stats = qdisc_stats("r1", "eth1")
    finally:
        c.close()
        server.join(30)
        srv.close()
    assert bytes(back) == payload
    assert stats["dropped"] > 0 and stats["reordered"] > 0
    for h in ("h1", "h2"):
        after = counters(h)
        assert after["DropPKT_TOO_BIG"] == before[h]["DropPKT_TOO_BIG"], h
        assert after["IpFragFails"] == before[h]["IpFragFails"], h
        assert after["TcpRetransSegs"] > before[h]["TcpRetransSegs"], h
