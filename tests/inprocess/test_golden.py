"""Golden tests against the real Linux kernel: a frame Linux received in the
default topology goes into the cores, and what comes out must be the frame
Linux sent back (tests/data/linux, recorded by shared/captures/linux/record.sh).
Only the IP identification (and so the header checksum) may differ: Linux
draws it from a hashed per-destination counter."""

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from pktflow.services.netstack import Netstack
from conftest import LINUX_CAPTURES

DATA = LINUX_CAPTURES


def frames(name: str) -> list[bytes]:
    return [bytes(p) for p in rdpcap(str(DATA / f"{name}.pcap"))]


def without_ip_id(frame: bytes) -> bytes:
    """The frame with the outer IP ID and header checksum zeroed."""
    p = Ether(frame)
    p[IP].id = 0
    p[IP].chksum = 0
    return bytes(p)


def assert_same_frame(ours: bytes, linux: bytes):
    assert len(ours) == len(linux)
    if without_ip_id(ours) != without_ip_id(linux):
        pytest.fail("frames differ:\nours:  " + Ether(ours).show(dump=True)
                    + "\nlinux: " + Ether(linux).show(dump=True))
    p = Ether(ours)[IP]
    check = p.chksum
    del p.chksum
    assert IP(bytes(p)).chksum == check


def test_arp_reply_is_byte_for_byte_linux():
    k = Netstack()
    request, reply = frames("icmp-echo.h2")[:2]
    k.receive("h2", "eth0", request)
    assert [f for _, _, f in k.wire] == [reply]
    assert k.counters("h2")["ArpInRequests"] == 1 and k.counters("h2")["ArpOutReplies"] == 1


def test_echo_reply_matches_linux():
    k = Netstack()
    k.learn("h2", "eth0", "10.0.2.1", "02:00:00:00:02:01")
    request, reply = frames("icmp-echo.h2")[2:4]
    k.receive("h2", "eth0", request)
    [(netns, ifindex, ours)] = k.wire
    assert (netns, ifindex) == ("h2", 2)
    assert_same_frame(ours, reply)
    c = k.counters("h2")
    assert (c["IpInReceives"], c["IpInDelivers"], c["IcmpInEchos"], c["IcmpOutEchoReps"], c["IpOutRequests"]) == \
        (1, 1, 1, 1, 1)


def test_ttl_exceeded_matches_linux():
    k = Netstack()
    k.learn("r1", "eth0", "10.0.1.10", "02:00:00:00:01:0a")
    request, error = frames("ttl-exceeded.h1")[:2]
    k.receive("r1", "eth0", request)
    [(_, _, ours)] = k.wire
    assert_same_frame(ours, error)
    assert [(fn, reason) for _, fn, reason, _ in k.drops] == [(("ip_rcv", "ip_forward"), "IP_INHDR")]
    c = k.counters("r1")
    assert (c["IpInHdrErrors"], c["IcmpOutTimeExcds"], c["IcmpMsgOutType11"], c["IpForwDatagrams"]) == (1, 1, 1, 0)


def test_net_unreachable_matches_linux():
    k = Netstack()
    k.learn("r1", "eth0", "10.0.1.10", "02:00:00:00:01:0a")
    request, error = frames("net-unreachable.h1")[:2]
    k.receive("r1", "eth0", request)
    [(_, _, ours)] = k.wire
    assert_same_frame(ours, error)
    assert [reason for _, _, reason, _ in k.drops] == ["IP_INNOROUTES"]
    assert k.counters("r1")["IpExtInNoRoutes"] == 1


def test_port_unreachable_matches_linux():
    k = Netstack()
    k.learn("h2", "eth0", "10.0.2.1", "02:00:00:00:02:01")
    datagram, error = frames("udp-port-unreachable.h2")[:2]
    k.receive("h2", "eth0", datagram)
    [(_, _, ours)] = k.wire
    assert_same_frame(ours, error)
    assert [(layer, reason) for layer, _, reason, _ in k.drops] == [("transport", "NO_SOCKET")]
    c = k.counters("h2")
    assert (c["UdpNoPorts"], c["IcmpOutDestUnreachs"], c["IcmpMsgOutType3"]) == (1, 1, 1)


def test_forwarded_echo_matches_what_linux_forwarded():
    """r1 turns the request h1 sent into the one h2 received: TTL 63, new MACs."""
    k = Netstack()
    k.learn("r1", "eth1", "10.0.2.10", "02:00:00:00:02:0a")
    sent = frames("icmp-echo.h1")[2]
    received = frames("icmp-echo.h2")[2]
    k.receive("r1", "eth0", sent)
    [(netns, ifindex, ours)] = k.wire
    assert (netns, ifindex) == ("r1", 3)
    assert ours == received                              # forwarding keeps the ID: byte for byte
    assert k.counters("r1")["IpForwDatagrams"] == 1


def test_icmp_errors_are_rate_limited_per_destination():
    k = Netstack()
    k.learn("h2", "eth0", "10.0.2.1", "02:00:00:00:02:01")
    datagram = frames("udp-port-unreachable.h2")[0]
    for _ in range(10):
        k.receive("h2", "eth0", datagram)
    assert len(k.wire) == 6                             # a burst of six, then one per icmp_ratelimit (1 s)
    assert k.counters("h2")["IcmpOutRateLimitHost"] == 4
    k.now += 1_000_000_000
    k.receive("h2", "eth0", datagram)
    assert len(k.wire) == 7


def test_unresolved_next_hop_waits_for_arp_then_goes():
    k = Netstack()
    request, reply = frames("icmp-echo.h2")[2:4]          # h2 must answer, but does not know r1's MAC yet
    k.receive("h2", "eth0", request)
    [(_, _, probe)] = k.wire
    p = Ether(probe)
    assert (p.dst, p[ARP].op, p[ARP].psrc, p[ARP].pdst, p[ARP].hwdst) == \
        ("ff:ff:ff:ff:ff:ff", 1, "10.0.2.10", "10.0.2.1", "00:00:00:00:00:00")
    assert len(probe) == 42                                   # as Linux sends it: no padding on this link
    arp_reply = Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:02:01") / ARP(
        op=2, hwsrc="02:00:00:00:02:01", psrc="10.0.2.1", hwdst="02:00:00:00:02:0a", pdst="10.0.2.10")
    k.receive("h2", "eth0", bytes(arp_reply))
    assert len(k.wire) == 2
    assert_same_frame(k.wire[1][2], reply)
    assert k.counters("h2")["ArpInReplies"] == 1
