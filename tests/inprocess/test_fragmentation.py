"""IP fragmentation and reassembly (services/ip/ip_fragment.py) through the
whole in-process stack: what Linux put on the wire for the same datagram
(tests/data/linux/udp-fragments.*), and the hostile cases Linux defends
against, each dropped with its reason and counted."""
from scapy.layers.inet import IP, UDP, ICMP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pktflow.services.common import topology, uapi
from pktflow.services.netstack import Netstack
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall
from conftest import LINUX_CAPTURES

H2_MAC, R1_MAC = "02:00:00:00:02:0a", "02:00:00:00:02:01"
PAYLOAD = bytes(range(256)) * 16                  # what record.sh sent: 4096 bytes


def linux_fragments(side: str) -> list:
    return [p[IP] for p in rdpcap(str(LINUX_CAPTURES / f"udp-fragments.{side}.pcap")) if IP in p]


def send_4096(k: Netstack, sport: int = 54749):
    sk = k.socket("h1", uapi.SOCK_DGRAM).sk
    assert k.call("h1", sk, ProtoCall.BIND, addr=0, port=sport).err == 0
    ev = k.call("h1", sk, ProtoCall.SENDMSG, addr=ipv4.aton("10.0.2.10"), port=7000, data=PAYLOAD, last=True)
    assert ev.err == 0
    k.pump()


def test_a_4096_byte_datagram_leaves_as_linux_cuts_it_and_arrives_whole():
    k = Netstack()
    rx = k.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    send_4096(k)
    for side, netns in (("h1", "h1"), ("h2", "r1")):    # as h1 sent them, and as r1 forwarded them
        ours = [Ether(f)[IP] for ns, _, f in k.frames if ns == netns and Ether(f).type == 0x0800]
        linux = linux_fragments(side)
        assert len(ours) == len(linux) == 3
        for o, lx in zip(ours, linux):
            assert (o.len, o.flags, o.frag, o.ttl, o.proto, o.src, o.dst, o.tos, o.ihl) == \
                (lx.len, lx.flags, lx.frag, lx.ttl, lx.proto, lx.src, lx.dst, lx.tos, lx.ihl)
            assert bytes(o.payload) == bytes(lx.payload)           # UDP header and checksum included
            assert IP(bytes(o)).chksum == IP(bytes(IP(bytes(o)))).chksum
        assert len({o.id for o in ours}) == 1
    assert rx.recv() == PAYLOAD
    h1, r1, h2 = k.counters("h1"), k.counters("r1"), k.counters("h2")
    assert (h1["IpFragOKs"], h1["IpFragCreates"], h1["IpOutRequests"], h1["IpOutTransmits"]) == (1, 3, 1, 3)
    assert (r1["IpForwDatagrams"], r1["IpReasmReqds"]) == (3, 0)          # a router does not reassemble
    assert (h2["IpReasmReqds"], h2["IpReasmOKs"], h2["IpReasmFails"], h2["IpInDelivers"]) == (3, 1, 0, 1)


def frags_to_h2(payload: bytes, pieces: list[tuple[int, int, bool]], ident: int = 77, proto: int = 17) -> list:
    """Frames of one datagram's fragments: (offset, length, more fragments) each."""
    out = []
    for off, n, mf in pieces:
        ip = IP(src="10.0.1.10", dst="10.0.2.10", id=ident, proto=proto, ttl=63, flags="MF" if mf else 0,
                frag=off // 8)
        out.append(bytes(Ether(dst=H2_MAC, src=R1_MAC) / ip / payload[off:off + n]))
    return out


def udp_datagram(n: int) -> bytes:
    return bytes(UDP(sport=5555, dport=7000) / (b"z" * (n - 8)))


def h2_listening():
    k = Netstack()
    rx = k.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    k.learn("h2", "eth0", "10.0.2.1", R1_MAC)
    return k, rx


def reasons(k):
    return [r for _, _, r, _ in k.drops]


def test_fragments_in_any_order_and_duplicates_still_make_the_datagram():
    k, rx = h2_listening()
    dgram = udp_datagram(3000)
    a, b, c = frags_to_h2(dgram, [(0, 1480, True), (1480, 1480, True), (2960, 40, False)])
    for f in (c, b, b, a):
        k.receive("h2", "eth0", f)
    assert rx.recv() == dgram[8:]
    assert reasons(k) == ["DUP_FRAG"]
    c2 = k.counters("h2")
    assert (c2["IpReasmReqds"], c2["IpReasmOKs"], c2["IpReasmFails"]) == (4, 1, 0)
    assert k.ip.netns["h2"].frags.mem == 0 and not k.ip.netns["h2"].frags.queues


def test_overlapping_fragments_kill_the_queue():
    """The teardrop: a fragment that overlaps another without lying inside it."""
    k, rx = h2_listening()
    dgram = udp_datagram(3000)
    for f in frags_to_h2(dgram, [(0, 1480, True), (1000, 1480, True), (2960, 40, False)]):
        k.receive("h2", "eth0", f)
    assert rx.recv() == b""
    assert reasons(k) == ["NOT_SPECIFIED", "NOT_SPECIFIED"]        # the queued one and the overlapping one
    c2 = k.counters("h2")
    assert (c2["IpExtReasmOverlaps"], c2["IpReasmFails"], c2["IpReasmOKs"]) == (1, 1, 0)


def test_an_incomplete_datagram_expires_with_time_exceeded_when_its_first_fragment_came():
    k, rx = h2_listening()
    dgram = udp_datagram(3000)
    first, _, last = frags_to_h2(dgram, [(0, 1480, True), (1480, 1480, True), (2960, 40, False)])
    k.receive("h2", "eth0", first)
    k.receive("h2", "eth0", last)
    k.advance(29.9)
    assert not k.frames
    k.advance(0.2)
    [(_, _, frame)] = [f for f in k.frames if f[0] == "h2"]
    err = Ether(frame)[IP]
    assert (err.dst, err[ICMP].type, err[ICMP].code) == ("10.0.1.10", 11, 1)
    assert err[ICMP].payload.id == 77 and err[ICMP].payload.frag == 0       # it quotes the first fragment
    assert reasons(k) == ["FRAG_REASM_TIMEOUT"] * 2
    c2 = k.counters("h2")
    assert (c2["IpReasmTimeout"], c2["IpReasmFails"], c2["IcmpOutTimeExcds"]) == (1, 1, 1)


def test_without_its_first_fragment_an_expired_datagram_is_dropped_silently():
    k, _ = h2_listening()
    [tail] = frags_to_h2(udp_datagram(3000), [(1480, 1480, True)])
    k.receive("h2", "eth0", tail)
    k.advance(31)
    assert not k.frames and reasons(k) == ["FRAG_REASM_TIMEOUT"]


def test_a_datagram_reassembling_beyond_65535_bytes_is_refused():
    """The ping of death: a last fragment at offset 65528 with 100 bytes."""
    k, _ = h2_listening()
    payload = b"p" * 65628
    pieces = [(off, min(1480, 65528 - off), True) for off in range(0, 65528, 1480)] + [(65528, 100, False)]
    for f in frags_to_h2(payload, pieces, proto=1):
        k.receive("h2", "eth0", f)
    assert k.counters("h2")["IpReasmFails"] == 1 and k.counters("h2")["IpReasmOKs"] == 0
    assert not k.ip.netns["h2"].frags.queues


def test_a_last_fragment_disagreeing_with_the_known_length_kills_the_queue():
    k, _ = h2_listening()
    for f in frags_to_h2(udp_datagram(3000), [(1480, 80, False), (1480, 160, False)]):
        k.receive("h2", "eth0", f)
    assert k.counters("h2")["IpReasmFails"] == 1 and not k.ip.netns["h2"].frags.queues


def test_memory_above_ipfrag_high_thresh_refuses_fragments():
    """A flood of first fragments that never complete: once the queues hold
    more than ipfrag_high_thresh bytes no fragment is taken (Linux >= 4.17
    evicts nothing), until the queues expire and give their memory back."""
    k, _ = h2_listening()
    frags = k.ip.netns["h2"].frags
    frags.high_thresh = 20000
    for ident in range(40):
        [f] = frags_to_h2(udp_datagram(3000), [(0, 1480, True)], ident=ident)
        k.receive("h2", "eth0", f)
    queued = len(frags.queues)
    assert 0 < queued < 40 and frags.mem <= frags.high_thresh + 1514 + 576
    assert k.counters("h2")["IpReasmFails"] == 40 - queued
    k.advance(31)
    assert frags.mem == 0 and not frags.queues
    assert k.counters("h2")["IpReasmTimeout"] == queued


def test_a_queue_too_far_behind_its_source_starts_again():
    k, rx = h2_listening()
    k.ip.netns["h2"].frags.max_dist = 4
    dgram = udp_datagram(2960)
    first, second = frags_to_h2(dgram, [(0, 1480, True), (1480, 1480, False)], ident=1)
    k.receive("h2", "eth0", first)
    for ident in range(2, 8):                 # six fragments of other datagrams from the same source
        [f] = frags_to_h2(udp_datagram(3000), [(0, 1480, True)], ident=ident)
        k.receive("h2", "eth0", f)
    k.receive("h2", "eth0", second)
    assert "FRAG_TOO_FAR" in reasons(k) and rx.recv() == b""


def test_a_router_fragments_what_does_not_fit_its_next_hop_and_refuses_df():
    topo = topology.load()
    topo.hosts["r1"].interfaces["eth1"].mtu = 1000
    k = Netstack(topo)
    k.learn("r1", "eth1", "10.0.2.10", H2_MAC)
    ip = IP(src="10.0.1.10", dst="10.0.2.10", ttl=64, id=9) / UDP(sport=1, dport=7000) / (b"q" * 1400)
    k.receive("r1", "eth0", bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a") / ip))
    out = [Ether(f)[IP] for _, _, f in k.wire]
    assert [(p.len, p.frag, p.flags.MF, p.id) for p in out] == [(996, 0, 1, 9), (452, 122, 0, 9)]
    c = k.counters("r1")
    assert (c["IpFragOKs"], c["IpFragCreates"], c["IpForwDatagrams"]) == (1, 2, 1)
    k.wire.clear()
    df = IP(src="10.0.1.10", dst="10.0.2.10", ttl=64, flags="DF") / UDP(sport=1, dport=7000) / (b"q" * 1400)
    k.learn("r1", "eth0", "10.0.1.10", "02:00:00:00:01:0a")
    k.receive("r1", "eth0", bytes(Ether(dst="02:00:00:00:01:01", src="02:00:00:00:01:0a") / df))
    [(_, _, frame)] = k.wire
    icmp = Ether(frame)[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, 1000)


def test_the_largest_udp_datagram_goes_and_arrives_whole():
    """65,507 bytes: 45 fragments each way of the router, one datagram at h2."""
    k = Netstack()
    rx = k.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    sk = k.socket("h1", uapi.SOCK_DGRAM).sk
    big = bytes(range(251)) * 260 + b"!" * 247
    assert len(big) == 65507
    assert k.call("h1", sk, ProtoCall.SENDMSG, addr=ipv4.aton("10.0.2.10"), port=7000, data=big,
                  last=True).err == 0
    k.pump()
    assert rx.recv() == big
    assert k.counters("h1")["IpFragCreates"] == 45 and k.counters("h2")["IpReasmOKs"] == 1


def test_a_tiny_first_fragment_is_reassembled_as_linux_does():
    """IPv4 reassembly has no minimum first-fragment size in Linux (RFC 1858's
    filtering is netfilter's business): 8 bytes, then the rest."""
    k, rx = h2_listening()
    dgram = udp_datagram(1000)
    for f in frags_to_h2(dgram, [(0, 8, True), (8, 992, False)]):
        k.receive("h2", "eth0", f)
    assert rx.recv() == dgram[8:]
