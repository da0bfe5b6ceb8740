"""IPv6 golden tests through the whole in-process path (services/netstack): a
packet h1's ip layer sends (as a ping socket hands it down) crosses the cables,
neighbour discovery included, and every frame on each link must be the one
Linux 6.18 put there in the dual-stacked default topology
(tests/data/linux/ipv6, record6.sh): byte for byte, but for the flow label
(Linux's keyed hash of the flow) and a fragment's identification (random)."""
from scapy.utils import RawPcapReader

from conftest import LINUX_CAPTURES
from pktflow.services.common import topology
from pktflow.services.netstack import Netstack
from pktflow.services.wire import icmpv6 as wire6, ipv6
from pktflow.v1.skb_pb2 import Skb

A = ipv6.aton
H1, R1_ETH0 = A("2001:db8:1::10"), A("2001:db8:1::1")


def capture(name: str) -> list[bytes]:
    return [bytes(data) for data, _ in RawPcapReader(str(LINUX_CAPTURES / "ipv6" / f"{name}.pcap"))]


def masked(frame: bytes) -> bytes:
    """Without the flow label, and a fragment header's identification; an ICMPv6
    error without the flow label of the packet it quotes (and so its checksum)."""
    f = bytearray(frame)
    f[15] &= 0xF0
    f[16:18] = b"\0\0"
    if f[20] == ipv6.NEXTHDR_FRAGMENT:
        f[58:62] = bytes(4)
    if f[20] == ipv6.IPPROTO_ICMPV6 and f[54] < 128 and len(f) >= 66:
        f[56:58] = b"\0\0"
        f[63] &= 0xF0
        f[64:66] = b"\0\0"
    return bytes(f)


def on_link(net: Netstack, *ends: tuple[str, int]) -> list[bytes]:
    """The frames that crossed the cable with these ends, in order."""
    return [masked(f) for ns, i, f in net.frames if (ns, i) in ends]


LINK1, LINK2 = (("h1", 2), ("r1", 2)), (("r1", 3), ("h2", 2))


def echo_from_h1(net: Netstack, frame: bytes, **fields):
    """The echo request of a Linux capture, as h1's ping socket hands it to ip."""
    pkt = frame[14:]
    dst = int.from_bytes(pkt[24:40], "big")
    skb = Skb(netns="h1", data=pkt[40:], daddr6=dst.to_bytes(16, "big"), ip_proto=58, **fields)
    net._run("ip", net.ip.from_transport(skb, net.now))
    net.pump()


def narrow(text: str) -> Netstack:
    """record6.sh's ip link set mtu 1280 on r1's eth1 and h2's eth0."""
    text = text.replace('2001:db8:2::1/64], mtu: 1500', '2001:db8:2::1/64], mtu: 1280')
    text = text.replace('2001:db8:2::10/64], mtu: 1500', '2001:db8:2::10/64], mtu: 1280')
    return Netstack(topology.loads(text))


def test_ping_h1_to_h2_crosses_both_links_as_on_linux():
    h1, h2 = capture("ipv6-echo.h1"), capture("ipv6-echo.h2")
    net = Netstack()
    echo_from_h1(net, h1[3])
    assert on_link(net, *LINK1) == [masked(f) for f in h1[1:5]]       # NS, NA, request, reply
    assert on_link(net, *LINK2) == [masked(f) for f in h2[0:6]]       # NS, NA, request (hop limit 63), NS, NA, reply
    c = net.counters("r1")
    assert (c["Ip6InReceives"], c["Ip6OutForwDatagrams"], c["Ip6InDelivers"]) == (2, 2, 0)
    assert net.counters("h2")["Icmp6OutType129"] == 1 and net.counters("h1")["Icmp6InType129"] == 1


def test_hop_limit_1_time_exceeded_as_on_linux():
    h1 = capture("ipv6-hoplimit-exceeded.h1")
    net = Netstack()
    net.link.netns["r1"].nd_tbl.update(2, H1, bytes.fromhex("02000000010a"), 0x02, net.now, True)  # r1 knows h1
    net.link.netns["h1"].nd_tbl.update(2, R1_ETH0, bytes.fromhex("020000000101"), 0x02, net.now, True)
    echo_from_h1(net, h1[0], ttl=1)
    assert on_link(net, *LINK1) == [masked(f) for f in h1[0:2]]
    [(layer, fn, reason)] = [(la, fn, r) for la, fn, r, _ in net.drops if la == "ip"]
    assert (layer, fn, reason) == ("ip", ("ipv6_rcv", "ip6_forward"), "IP_INHDR")


def test_no_route_at_r1_as_on_linux():
    h1 = capture("ipv6-no-route.h1")
    net = Netstack()
    net.link.netns["r1"].nd_tbl.update(2, H1, bytes.fromhex("02000000010a"), 0x02, net.now, True)
    net.link.netns["h1"].nd_tbl.update(2, R1_ETH0, bytes.fromhex("020000000101"), 0x02, net.now, True)
    echo_from_h1(net, h1[0])
    assert on_link(net, *LINK1) == [masked(f) for f in h1]
    assert net.counters("r1")["Ip6InNoRoutes"] == 1


def test_packet_too_big_then_fragments_both_ways_as_on_linux():
    """A 1400-byte echo into r1's 1280-byte link: Packet Too Big from r1 (MTU 1280);
    h1 learns the path MTU; the next echo leaves in two fragments, h2 reassembles
    it and answers in two fragments of its own (its eth0 has 1280 bytes too)."""
    h1, h2 = capture("ipv6-packet-too-big.h1"), capture("ipv6-packet-too-big.h2")
    net = narrow((topology.default_path()).read_text())
    for host, dev, peer, mac in (("r1", 2, H1, "02000000010a"), ("h1", 2, R1_ETH0, "020000000101"),
                                 ("r1", 3, A("2001:db8:2::10"), "02000000020a"),
                                 ("h2", 2, A("2001:db8:2::1"), "020000000201")):
        net.link.netns[host].nd_tbl.update(dev, peer, bytes.fromhex(mac), 0x02, net.now, True)
    echo_from_h1(net, h1[0])
    [ptb] = [f for ns, i, f in net.frames if ns == "r1"]
    assert masked(ptb) == masked(h1[1])
    # what h1's transport does with it: ip6_sk_update_pmtu()
    update = Skb(netns="h1")
    update.pmtu_update.daddr6, update.pmtu_update.mtu = A("2001:db8:2::10").to_bytes(16, "big"), 1280
    net._run("ip", net.ip.from_transport(update, net.now))
    net.frames.clear()
    second = bytearray(h1[2][14:54]) + h1[2][62:] + h1[3][62:]     # the second echo, whole (seq 2)
    frame = bytes(14) + bytes(second[:4]) + (1408).to_bytes(2, "big") + b"\x3a" + bytes(second[7:])
    echo_from_h1(net, frame)
    assert on_link(net, *LINK1) == [masked(f) for f in h1[2:6]]
    assert on_link(net, *LINK2) == [masked(f) for f in h2[0:4]]
    c = net.counters("h2")
    assert (c["Ip6ReasmReqds"], c["Ip6ReasmOKs"], c["Ip6FragCreates"]) == (2, 1, 2)


def test_udp_fragments_reassemble_at_h2():
    """ipv6-udp-fragments: a 4096-byte datagram from h1 in three fragments; h2's ip
    hands transport the datagram whole."""
    h1 = capture("ipv6-udp-fragments.h1")
    net = Netstack()
    for host, dev, peer, mac in (("h1", 2, R1_ETH0, "020000000101"), ("r1", 3, A("2001:db8:2::10"), "02000000020a")):
        net.link.netns[host].nd_tbl.update(dev, peer, bytes.fromhex(mac), 0x02, net.now, True)
    datagram = b"".join(f[14 + 48:] for f in h1)
    skb = Skb(netns="h1", data=datagram, daddr6=A("2001:db8:2::10").to_bytes(16, "big"), ip_proto=17)
    got = []
    real = net.tr.rcv
    net.tr.rcv = lambda s, now: got.append((s.netns, s.ip_proto, bytes(s.data[s.transport_header:]))) or \
        real(s, now)
    net._run("ip", net.ip.from_transport(skb, net.now))
    net.pump()
    assert [f for f in on_link(net, ("h1", 2)) if f[20] == ipv6.NEXTHDR_FRAGMENT] == [masked(f) for f in h1]
    assert got[0] == ("h2", 17, datagram)
    # nobody listens on h2's port 7000: port unreachable, forwarded back to h1 by r1
    [err] = [f for ns, i, f in net.frames if ns == "r1" and i == 2 and f[20] == 58 and f[54] < 128]
    assert err[54:56] == bytes((wire6.ICMPV6_DEST_UNREACH, wire6.ICMPV6_PORT_UNREACH))


def test_a_neighbour_that_never_answers_is_address_unreachable_to_the_sender():
    """ndisc's three probes go unanswered: link reports the failure (LinkFailure.nexthop6),
    ip6_link_failure() answers the packet's source, here h1 itself, through lo: the
    error reaches h1's transport with the flow it quotes."""
    net = Netstack()
    got = []
    real = net.tr.rcv
    net.tr.rcv = lambda s, now: got.append(s) or real(s, now)
    skb = Skb(netns="h1", data=wire6.echo(128, 5, 1, b"hello", 0, 0), ip_proto=58,
              daddr6=A("2001:db8:1::77").to_bytes(16, "big"))
    net._run("ip", net.ip.from_transport(skb, net.now))
    net.pump()
    net.advance(4)
    [err] = got
    e = err.icmp_error
    assert (err.netns, err.ifindex, e.type, e.code) == ("h1", 1, wire6.ICMPV6_DEST_UNREACH, wire6.ICMPV6_ADDR_UNREACH)
    assert (e.offender6, e.quoted.daddr6, e.quoted.sport) == (H1.to_bytes(16, "big"), A("2001:db8:1::77").to_bytes(
        16, "big"), 5)
