"""GSO cuts a TCP superpacket into the frames Linux's tcp4_gso_segment() would
put on the wire, GRO merges them back (checked with scapy as the oracle)."""
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pktflow.v1.skb_pb2 import CHECKSUM_UNNECESSARY, Skb
from pktflow.services.common import tcp_offload
from pktflow.services.wire.checksum import pseudo_header_sum

MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))]


def frame(payload: bytes, seq=1000, flags="A", ident=100, sport=40000, ts=TS, df=True, window=502, **kw) -> bytes:
    return bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.1.10", dst="10.0.2.10", id=ident, ttl=64,
                                                flags="DF" if df else 0, **kw) /
                 TCP(sport=sport, dport=8080, seq=seq, ack=77, flags=flags, window=window, options=ts) / payload)


def skb(data: bytes, gso_size=0, gso_segs=0) -> Skb:
    return Skb(data=data, netns="h1", ifindex=2, trace_id=b"t" * 16, gso_size=gso_size, gso_segs=gso_segs)


def valid(data: bytes) -> bool:
    """scapy's own checksums of the frame equal the ones it carries."""
    p = Ether(data)
    q = Ether(data)
    del q[IP].chksum, q[TCP].chksum
    q = Ether(bytes(q))
    return p[IP].chksum == q[IP].chksum and p[TCP].chksum == q[TCP].chksum


def completed(data: bytes) -> bytes:
    """The packet with its TCP checksum completed (what the hardware would write)."""
    p = Ether(data)
    del p[TCP].chksum
    return bytes(p)


def partial_csum(data: bytes) -> bool:
    """Its TCP checksum field holds the pseudo-header's sum, as Linux's GSO and GRO packets do."""
    p = Ether(data)
    pseudo = pseudo_header_sum(int.from_bytes(data[26:30], "big"), int.from_bytes(data[30:34], "big"), 6,
                               len(p[IP]) - 20)
    return p[TCP].chksum == pseudo


def test_gso_cuts_a_superpacket_into_mss_frames_as_tcp4_gso_segment():
    payload = bytes(range(256)) * 20                       # 5120 bytes: 3 x 1448 and 776
    segs = tcp_offload.gso_segment(skb(frame(payload, flags="PAC"), gso_size=1448))
    assert [len(s.data) - 14 - 20 - 32 for s in segs] == [1448, 1448, 1448, 776]
    pkts = [Ether(s.data) for s in segs]
    assert all(valid(s.data) for s in segs)
    assert [p[TCP].seq for p in pkts] == [1000, 2448, 3896, 5344]
    assert [p[IP].id for p in pkts] == [100, 101, 102, 103]
    assert [str(p[TCP].flags) for p in pkts] == ["AC", "A", "A", "PA"]    # CWR on the first, PSH on the last
    assert b"".join(bytes(p[TCP].payload) for p in pkts) == payload
    assert all(p[TCP].options == pkts[0][TCP].options and p[IP].len == len(p[IP]) for p in pkts)
    assert all(s.trace_id == b"t" * 16 and s.gso_size == 0 for s in segs)


def test_gso_refuses_what_is_not_tcp():
    udp = bytes(Ether() / IP(proto=17) / (b"x" * 100))
    assert tcp_offload.gso_segment(skb(udp, gso_size=10)) is None


def test_gro_merges_back_what_gso_cut():
    payload = bytes(range(200)) * 30
    big = frame(payload, flags="PA")
    segs = tcp_offload.gso_segment(skb(big, gso_size=1000))
    merged = tcp_offload.napi_gro(segs)
    assert len(merged) == 1
    assert completed(merged[0].data) == big and partial_csum(merged[0].data)
    assert (merged[0].gso_size, merged[0].gso_segs) == (1000, 6)
    assert merged[0].ip_summed == CHECKSUM_UNNECESSARY          # its segments were checked on the way in


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20000), mss=st.integers(200, 1460), seq=st.integers(0, 2**32 - 1),
       ident=st.integers(0, 65535))
def test_gso_then_gro_is_the_identity(n, mss, seq, ident):
    big = frame(bytes(n % 251 for n in range(n)), seq=seq, ident=ident, flags="PA")
    segs = tcp_offload.gso_segment(skb(big, gso_size=mss))
    assert len(segs) == -(-n // mss)
    assert all(valid(s.data) for s in segs)
    merged = tcp_offload.napi_gro(segs)
    assert [completed(m.data) for m in merged] == [big]


def test_gro_keeps_flows_apart_and_in_order():
    a = [skb(frame(b"a" * 100, seq=1000 + 100 * i, ident=10 + i)) for i in range(3)]
    b = [skb(frame(b"b" * 100, seq=5000 + 100 * i, ident=50 + i, sport=40001)) for i in range(3)]
    merged = tcp_offload.napi_gro([a[0], b[0], a[1], b[1], a[2], b[2]])
    assert [Ether(m.data)[TCP].sport for m in merged] == [40000, 40001]
    assert [bytes(Ether(m.data)[TCP].payload) for m in merged] == [b"a" * 300, b"b" * 300]


def test_gro_does_not_merge_what_linux_does_not():
    ack = skb(frame(b""))                                          # a pure ACK
    first = skb(frame(b"x" * 100, seq=1000))
    gap = skb(frame(b"x" * 100, seq=1200, ident=101))              # a hole before it
    assert len(tcp_offload.napi_gro([ack, skb(frame(b"", ident=101))])) == 2
    assert len(tcp_offload.napi_gro([first, gap])) == 2
    other_ts = skb(frame(b"x" * 100, seq=1100, ident=101, ts=[("NOP", None), ("NOP", None),
                                                             ("Timestamp", (1001, 2000))]))
    assert len(tcp_offload.napi_gro([first, other_ts])) == 2       # options differ
    other_win = skb(frame(b"x" * 100, seq=1100, ident=101, window=600))
    assert len(tcp_offload.napi_gro([first, other_win])) == 2
    bigger = skb(frame(b"x" * 200, seq=1100, ident=101))           # longer than the first: a new packet
    assert len(tcp_offload.napi_gro([first, bigger])) == 2
    bad = bytearray(frame(b"x" * 100, seq=1100, ident=101))
    bad[-1] ^= 1                                                   # a bad TCP checksum goes up alone
    assert len(tcp_offload.napi_gro([first, skb(bytes(bad))])) == 2
    cwr = skb(frame(b"x" * 100, seq=1100, ident=101, flags="AC"))
    assert len(tcp_offload.napi_gro([first, cwr])) == 2


def test_gro_ends_a_packet_at_psh_and_at_a_short_segment():
    segs = [skb(frame(b"x" * 100, seq=1000 + 100 * i, ident=i, flags="PA" if i == 1 else "A")) for i in range(4)]
    merged = tcp_offload.napi_gro(segs)
    assert [m.gso_segs for m in merged] == [2, 2]
    assert str(Ether(merged[0].data)[TCP].flags) == "PA"
    short = [skb(frame(b"x" * 100, seq=1000, ident=0)), skb(frame(b"x" * 50, seq=1100, ident=1)),
             skb(frame(b"x" * 100, seq=1150, ident=2))]
    assert [len(bytes(Ether(m.data)[TCP].payload)) for m in tcp_offload.napi_gro(short)] == [150, 100]


def test_gro_stops_at_64k():
    segs = [skb(frame(b"x" * 1448, seq=1448 * i, ident=i)) for i in range(50)]
    merged = tcp_offload.napi_gro(segs)
    assert all(len(m.data) - 14 <= 65535 for m in merged) and sum(m.gso_segs or 1 for m in merged) == 50
    assert merged[0].gso_segs == 65536 // 1448


def test_gro_keeps_the_ip_length_below_64k_whatever_the_segment_size():
    """skb_gro_receive() stops when the packet would reach gro_max_size: 128 segments of
    512 bytes (64 KiB of payload exactly) never make an IP length beyond 16 bits."""
    for f, extra in ((frame, lambda i: {"ident": i}), (frame6, lambda i: {})):
        segs = [skb(f(b"x" * 512, seq=512 * i, **extra(i))) for i in range(200)]
        merged = tcp_offload.napi_gro(segs)
        assert max(len(m.data) - 14 for m in merged) < 65536 and sum(m.gso_segs or 1 for m in merged) == 200


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=80), gso=st.integers(1, 2000))
def test_a_gso_size_on_garbage_never_raises(data, gso):
    """A layer that trusted gso_size on bytes that are not TCP/IPv4 would crash:
    the sizes stay numbers (too big for any MTU when the headers do not fit), the cut is refused."""
    s = skb(data, gso_size=gso)
    assert tcp_offload.gso_network_len(s, 14) >= 0 and tcp_offload.gso_wire_len(s, 24) > 0
    assert tcp_offload.gso_segment(s) is None or all(len(x.data) <= len(data) + 60 for x in tcp_offload.gso_segment(s))
    tcp_offload.napi_gro([s, skb(data)])


# -- TCP over IPv6: tcp6_gso_segment(), tcp6_gro_receive()
def frame6(payload: bytes, seq=1000, flags="A", sport=40000, tc=0, fl=0x12345, hlim=64) -> bytes:
    from scapy.layers.inet6 import IPv6
    return bytes(Ether(src=MAC1, dst=MAC2) / IPv6(src="2001:db8:1::10", dst="2001:db8:2::10", tc=tc, fl=fl, hlim=hlim) /
                 TCP(sport=sport, dport=8080, seq=seq, ack=77, flags=flags, window=502, options=TS) / payload)


def completed6(data: bytes) -> bytes:
    from scapy.layers.inet6 import IPv6
    p = Ether(data)
    del p[TCP].chksum, p[IPv6].plen
    return bytes(p)


def test_gso_cuts_an_ipv6_superpacket_as_tcp6_gso_segment():
    from scapy.layers.inet6 import IPv6
    payload = bytes(range(256)) * 20                       # 5120 bytes: 3 x 1428 and 836
    segs = tcp_offload.gso_segment(skb(frame6(payload, flags="PAC"), gso_size=1428))
    pkts = [Ether(s.data) for s in segs]
    assert [p[IPv6].plen for p in pkts] == [32 + 1428] * 3 + [32 + 836]
    assert all(s.data == completed6(s.data) for s in segs)           # scapy computes the same checksums
    assert [p[TCP].seq for p in pkts] == [1000, 2428, 3856, 5284]
    assert [str(p[TCP].flags) for p in pkts] == ["AC", "A", "A", "PA"]
    assert b"".join(bytes(p[TCP].payload) for p in pkts) == payload
    assert {(p[IPv6].fl, p[IPv6].hlim) for p in pkts} == {(0x12345, 64)}
    assert tcp_offload.gso_network_len(skb(frame6(payload), gso_size=1428), 14) == len(segs[0].data) - 14


def test_gso_refuses_ipv6_with_an_extension_header():
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt
    data = bytes(Ether() / IPv6() / IPv6ExtHdrDestOpt() / TCP() / (b"x" * 3000))
    assert tcp_offload.gso_segment(skb(data, gso_size=1000)) is None


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20000), mss=st.integers(200, 1440), seq=st.integers(0, 2**32 - 1))
def test_ipv6_gso_then_gro_is_the_identity(n, mss, seq):
    big = frame6(bytes(n % 251 for n in range(n)), seq=seq, flags="PA")
    segs = tcp_offload.gso_segment(skb(big, gso_size=mss))
    assert len(segs) == -(-n // mss) and all(s.data == completed6(s.data) for s in segs)
    merged = tcp_offload.napi_gro(segs)
    assert [completed6(m.data) for m in merged] == [big]
    if len(segs) > 1:                   # the merged packet carries the IPv6 pseudo-header's sum, as Linux's
        from scapy.layers.inet6 import IPv6
        from pktflow.services.wire.checksum import pseudo_header_sum6
        p = Ether(merged[0].data)
        assert p[TCP].chksum == pseudo_header_sum6(int.from_bytes(merged[0].data[22:38], "big"),
                                                   int.from_bytes(merged[0].data[38:54], "big"), 6, p[IPv6].plen)
        assert (merged[0].gso_size, merged[0].gso_segs) == (mss, len(segs))


def test_ipv6_gro_keeps_apart_what_differs_in_its_header():
    """A different hop limit or traffic class, a bad checksum: not merged (tcp6_gro_receive())."""
    def two():                          # GRO makes the first of a run the merged packet: new ones each time
        return [skb(frame6(b"a" * 100, seq=1000 + 100 * i)) for i in range(2)]
    assert len(tcp_offload.napi_gro([*two(), skb(frame6(b"a" * 100, seq=1200, hlim=63))])) == 2
    assert len(tcp_offload.napi_gro([*two(), skb(frame6(b"a" * 100, seq=1200, tc=4))])) == 2
    bad = bytearray(frame6(b"a" * 100, seq=1100))
    bad[-1] ^= 1
    assert len(tcp_offload.napi_gro([two()[0], skb(bytes(bad))])) == 2
    assert len(tcp_offload.napi_gro(two())) == 1
