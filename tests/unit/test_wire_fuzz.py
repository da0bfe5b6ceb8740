"""Property-based fuzzing of every parser in services/wire (Hypothesis): any
bytes, at any offset and length, either parse or raise Malformed with a drop
reason the protos know. Never another exception: a frame off the wire must
not be able to crash a layer. Inputs are random bytes and real packets
(scapy-built) with bytes flipped, truncated or extended."""
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from pktflow.services.wire import Malformed, arp, ethernet, icmp, ipv4, tcp, udp
from pktflow.v1.skb_pb2 import DropReason

SRC, DST = ipv4.aton("10.0.1.10"), ipv4.aton("10.0.2.10")
REASONS = set(DropReason.keys())

SEEDS = [
    bytes(Ether() / ARP(op=1, psrc="10.0.1.10", pdst="10.0.1.1")),
    bytes(IP(src="10.0.1.10", dst="10.0.2.10", options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2) / (b"x" * 20)),
    bytes(IP(src="10.0.1.10", dst="10.0.2.10") / TCP(sport=1, dport=2, flags="S",
          options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])),
    bytes(IP(src="10.0.1.10", dst="10.0.2.10") / ICMP(type=3, code=4, nexthopmtu=1400) /
          IP(src="10.0.2.10", dst="10.0.1.10") / UDP(sport=3, dport=4)),
]


@st.composite
def packets(draw):
    """Random bytes, or a real packet mutated: bytes flipped, cut short, padded."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


def parsers(buf: bytes, off: int, end: int):
    yield lambda: ethernet.parse(buf, off)
    yield lambda: arp.parse(buf, off)
    yield lambda: ipv4.parse(buf, off)
    yield lambda: icmp.parse(buf, off, end)
    yield lambda: icmp.quoted(buf, off)
    yield lambda: udp.parse(buf, off, end, SRC, DST)
    yield lambda: tcp.parse(buf, off, end, SRC, DST)
    yield lambda: tcp.parse(buf, off, end, SRC, DST, check=False)
    yield lambda: tcp.parse_options(buf, off, end)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buf=packets(), off=st.integers(0, 64), extra=st.integers(-8, 64))
def test_every_parser_parses_or_says_why(buf, off, extra):
    end = min(len(buf), max(off, len(buf) + extra)) if extra < 0 else len(buf)
    for parse in parsers(buf, off, end):
        try:
            parse()
        except Malformed as e:
            assert e.reason in REASONS, e.reason
