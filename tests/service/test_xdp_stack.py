"""XDP and AF_XDP sockets on a stack of their own: `pktflow ip link set dev IF
xdp ...` with iproute2's words, output and errors; an AF_XDP socket on h2 that
answers h1's UDP datagrams with frames of its own, neither crossing h2's link,
ip, transport or socket services; XDP_DROP and XDP_TX on the way; the verdicts
in the traces; and a socket that goes away with its process."""
import os
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pktflow
from conftest import PORT_BASE, assert_no_tracebacks, counters, eventually, needs_libpcap
from pktflow import _client
from pktflow import tracequery as tq

pytestmark = pytest.mark.integration
BASE = PORT_BASE + 2550
H2 = "10.0.2.10"


@pytest.fixture(scope="module")
def xstack(tmp_path_factory):
    from pktflow.up import Stack
    logs = tmp_path_factory.mktemp("xdp-logs")
    s = Stack(port_base=BASE, otlp_port=BASE + 17, query_port=BASE + 18, trace_store=True, log_dir=str(logs))
    saved = {k: os.environ.get(k) for k in ("PKTFLOW_ENDPOINT", "PKTFLOW_QUERY_ENDPOINT")}
    s.start()
    os.environ["PKTFLOW_ENDPOINT"], os.environ["PKTFLOW_QUERY_ENDPOINT"] = s.endpoint, s.query_url
    try:
        yield s
    finally:
        s.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert_no_tracebacks(logs)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True, timeout=60)


def ethtool_stats(netns: str, ifname: str) -> dict:
    r = cli("ethtool", "-n", netns, "-S", ifname)
    assert r.returncode == 0 and r.stdout.startswith("NIC statistics:\n"), r
    return {k.strip(): int(v) for k, v in (line.split(":") for line in r.stdout.splitlines()[1:])}


def reply_frame(frame: bytes, payload: bytes) -> bytes:
    """The answer to a UDP datagram, built by hand as an AF_XDP program must."""
    p = Ether(frame)
    return bytes(Ether(src=p.dst, dst=p.src) / IP(src=p[IP].dst, dst=p[IP].src, ttl=64) /
                 UDP(sport=p[UDP].dport, dport=p[UDP].sport) / payload)


@needs_libpcap
def test_ip_link_set_xdp_attaches_shows_replaces_and_detaches(xstack):
    try:
        r = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "drop", "filter", "udp port 9999",
                "pass", "filter", "udp")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r
        show = cli("ip", "-n", "h2", "link", "show", "dev", "eth0").stdout.splitlines()
        assert " mtu 1500 xdp qdisc pfifo_fast state UP " in show[0], show
        assert show[2].startswith("    prog/xdp id ") and show[2].endswith(" name pktflow_rules tag "
                                                                             + show[2].split()[-2] + " jited")
        busy = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "drop")
        assert (busy.returncode, busy.stderr) == (2, "Error: XDP program already attached.\n")
        both = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdpgeneric", "drop")
        assert (both.returncode, both.stderr) == (2, "Error: Native and generic XDP can't be active at the same "
                                                     "time.\n")
        bad = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "drop", "filter", "udp prot 9")
        assert bad.returncode == 255 and "syntax error" in bad.stderr and "udp prot 9" in bad.stderr
        nodev = cli("ip", "-n", "h2", "link", "set", "dev", "eth7", "xdp", "drop")
        assert (nodev.returncode, nodev.stderr) == (1, 'Cannot find device "eth7"\n')
        ebpf = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "object", "prog.o")
        assert ebpf.returncode == 255 and "not eBPF objects" in ebpf.stderr

        # the rules at work: h1's datagrams to 9999 end at h2's driver, the rest goes up
        before = counters("h2")["UdpNoPorts"]
        s = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
        s.sendmmsg([(b"x", (H2, 9999))] * 5 + [(b"y", (H2, 9998))] * 3)
        eventually(lambda: ethtool_stats("h2", "eth0")["rx_queue_0_xdp_drops"] == 5)
        eventually(lambda: counters("h2")["UdpNoPorts"] == before + 3)
        stats = ethtool_stats("h2", "eth0")
        assert stats["rx_queue_0_xdp_packets"] >= 8 and stats["rx_queue_0_xdp_redirects"] == 0
        detail = cli("ip", "-d", "-n", "h2", "link", "show", "dev", "eth0").stdout
        assert "        rule 1: drop filter 'udp port 9999' matched 5\n" in detail, detail
        assert "        rule 2: pass filter 'udp' matched 3\n" in detail, detail

        # -force replaces; `xdp off` detaches
        r = cli("ip", "-force", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "pass")
        assert r.returncode == 0, r
        assert " rule 1: pass matched 0" in cli("ip", "-d", "-n", "h2", "link", "show", "eth0").stdout
        assert '"xdp": {"mode": 1' in cli("ip", "-j", "-n", "h2", "link", "show", "eth0").stdout
    finally:
        off = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")
    assert off.returncode == 0, off
    assert " xdp " not in cli("ip", "-n", "h2", "link", "show", "dev", "eth0").stdout


@needs_libpcap
def test_an_af_xdp_socket_answers_h1_past_h2s_stack(xstack):
    with pytest.raises(OSError) as e:
        pktflow.xsk(netns="h2", ifname="eth7")
    assert e.value.errno == 19                                              # ENODEV
    r = cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "redirect", "xsk", "filter", "udp port 9000")
    assert r.returncode == 0, r
    x = pktflow.socket(pktflow.AF_XDP, pktflow.SOCK_RAW, netns="h2")
    try:
        x.setsockopt(pktflow.SOL_XDP, pktflow.XDP_RX_RING, 64)
        x.bind(("eth0", 0))
        with pytest.raises(OSError) as e:
            pktflow.xsk(netns="h2", ifname="eth0")
        assert e.value.errno == 16                                          # EBUSY: one socket per queue
        before = counters("h2")
        c = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
        c.settimeout(5)
        x.settimeout(5)
        for i in range(20):
            c.sendto(b"ping %d" % i, (H2, 9000))
            frame = x.recv()
            assert Ether(frame)[UDP].payload.load == b"ping %d" % i
            assert x.send(reply_frame(frame, b"pong %d" % i)) > 0
            assert c.recvfrom(100) == (b"pong %d" % i, (H2, 9000))
        c.sendmmsg([(b"b%d" % i, (H2, 9000)) for i in range(10)])
        got = []
        while len(got) < 10:
            got += x.recvmmsg(64)
        assert [Ether(f)[UDP].payload.load for f in got] == [b"b%d" % i for i in range(10)]
        after = counters("h2")
        # h2's ip and transport never saw a datagram: no UdpInDatagrams, no UdpNoPorts (an ICMP error)
        assert after["UdpInDatagrams"] == before["UdpInDatagrams"] and after["UdpNoPorts"] == before["UdpNoPorts"]
        assert after["IpInReceives"] == before["IpInReceives"] and after["IpOutRequests"] == before["IpOutRequests"]
        stats = x.statistics()
        assert stats["rx_ring_full"] == 0 and stats["tx_invalid_descs"] == 0
        assert x.getsockopt(pktflow.SOL_XDP, pktflow.XDP_STATISTICS) == bytes(48)
        assert x.send(b"short") == 0 and x.statistics()["tx_invalid_descs"] == 1
        assert ethtool_stats("h2", "eth0")["rx_queue_0_xdp_redirects"] >= 30

        # the journeys: h2's nic hands the datagram to the socket and the reply leaves from it
        def xsk_trace():
            for tr in tq.find(service="nic", operation="xsk_rcv", limit=50):
                ops = [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in tq.journey(tr)]
                if ops and ops[-1] == ("nic", "h2", "xsk_rcv"):
                    return tr, ops
        tr, ops = eventually(xsk_trace)
        assert ops[-3:] == [("nic", "h2", "bpf_prog_run_xdp"), ("nic", "h2", "xdp_do_redirect"),
                            ("nic", "h2", "xsk_rcv")]
        assert not any(netns == "h2" and service != "nic" for service, netns, _ in ops)
        run = next(s for s in tq.journey(tr) if s["operationName"] == "bpf_prog_run_xdp")
        assert (tq.tag(run, "pktflow.xdp.action"), tq.tag(run, "pktflow.xdp.rule"),
                tq.tag(run, "pktflow.xdp.filter")) == ("XDP_REDIRECT", 1, "udp port 9000")
        def reply_trace():             # whole: each layer exports on its own clock
            for t in tq.find(service="nic", operation="xsk_sendmsg", limit=20):
                ops = [s["operationName"] for s in tq.journey(t)]
                if {"ip_forward", "udp_rcv", "sock_queue_rcv_skb"} <= set(ops):
                    return ops
        ops = eventually(reply_trace)
        assert ops[:3] == ["xsk_sendmsg", "ndo_start_xmit", "netif_receive_skb"], ops
    finally:
        x.close()
        cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")


@needs_libpcap
def test_drop_and_tx_end_the_journey_in_the_driver(xstack):
    try:
        assert cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "drop", "filter", "udp port 9997",
                   "tx", "filter", "udp port 9996").returncode == 0
        s = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
        s.sendto(b"dropped", (H2, 9997))
        tr = eventually(lambda: tq.find(service="nic", operation="bpf_prog_run_xdp",
                                        tags={"pktflow.drop_reason": "XDP"}, limit=1))
        last = tq.journey(tr[0])[-1]
        assert (last["operationName"], tq.tag(last, "pktflow.xdp.action")) == ("bpf_prog_run_xdp", "XDP_DROP")
        assert "XDP_DROP" in tq.format_trace(tr[0])
        # XDP_TX sends the frame back to r1 with the MACs swapped and its IP header untouched: r1
        # forwards it to h2 again, which bounces it again, until its TTL runs out at r1 (64 - 1 bounces)
        tx0, excd0 = ethtool_stats("h2", "eth0")["tx_queue_0_xdp_tx"], counters("h1")["IcmpInTimeExcds"]
        s.sendto(b"bounced", (H2, 9996))
        eventually(lambda: counters("h1")["IcmpInTimeExcds"] == excd0 + 1)
        assert ethtool_stats("h2", "eth0")["tx_queue_0_xdp_tx"] == tx0 + 63
        tr = eventually(lambda: [t for t in tq.find(service="nic", operation="ndo_xdp_xmit", limit=5)
                                 if sum(s["operationName"] == "ndo_xdp_xmit" for s in t["spans"]) >= 63])
        assert tr
    finally:
        cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")


@needs_libpcap
def test_a_socket_that_does_not_read_fills_its_ring_and_counts_what_it_drops(xstack):
    """Backpressure: the stream's flow control stops the nic's writes while the
    application does not read, the socket's RX ring (8 frames) fills, and the rest
    is dropped and counted (rx_ring_full), as by a full AF_XDP RX ring."""
    assert cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "redirect", "xsk",
               "filter", "udp port 9000").returncode == 0
    x = pktflow.xsk(netns="h2", ifname="eth0", rx_ring_size=8)
    try:
        c = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
        for _ in range(20):
            c.sendmmsg([(b"x" * 1400, (H2, 9000))] * 64)
        full = eventually(lambda: x.statistics()["rx_ring_full"])
        x.settimeout(0.5)
        got = 0
        with pytest.raises(TimeoutError):
            while True:
                got += len(x.recvmmsg(1000))
        full = x.statistics()["rx_ring_full"]
        assert full > 0 and 8 <= got and got + full <= 1280, (got, full)
    finally:
        x.close()
        cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")


def test_an_af_xdp_socket_closes_with_its_process(xstack):
    script = ("import pktflow, sys, time\n"
              "x = pktflow.xsk(netns='h2', ifname='eth0')\n"
              "print('bound', flush=True)\n"
              "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert p.stdout.readline().strip() == "bound"
        with pytest.raises(OSError) as e:
            pktflow.xsk(netns="h2", ifname="eth0")
        assert e.value.errno == 16
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p.stdout.close()

    def rebind():
        try:
            return pktflow.xsk(netns="h2", ifname="eth0")
        except OSError as e:
            assert e.errno == 16
            time.sleep(0.1)
    eventually(rebind, timeout=15).close()
    assert _client.admin("nic", "h2", "link").json
