"""Any frame into any host's NIC, through every core (services/netstack):
random bytes and mutated real frames (Hypothesis) never raise; each one ends
delivered, forwarded, answered or dropped with a reason the protos know."""
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from pktflow.services.common import uapi
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import DropReason

H2_MAC, R1_MAC = "02:00:00:00:02:0a", "02:00:00:00:02:01"
L2 = Ether(dst=H2_MAC, src=R1_MAC)
SEEDS = [bytes(f) for f in (
    L2 / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=5, dport=7000) / (b"u" * 30),
    L2 / IP(src="10.0.1.10", dst="10.0.2.10", flags="MF", id=9) / UDP(sport=5, dport=7000) / (b"f" * 40),
    L2 / IP(src="10.0.1.10", dst="10.0.2.10") / TCP(sport=5, dport=80, flags="S", options=[("MSS", 1460)]),
    L2 / IP(src="10.0.1.10", dst="10.0.2.10") / ICMP(type=8, id=1, seq=1) / (b"p" * 16),
    L2 / IP(src="10.0.1.1", dst="10.0.2.10") / ICMP(type=3, code=4, nexthopmtu=1400) /
    IP(src="10.0.2.10", dst="10.0.1.10") / TCP(sport=80, dport=5),
    Ether(dst="ff:ff:ff:ff:ff:ff", src=R1_MAC) / ARP(op=1, psrc="10.0.2.1", pdst="10.0.2.10"),
)]
REASONS = set(DropReason.keys())


@st.composite
def frames(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=120))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 5))):
        i = draw(st.integers(14, len(data) - 1))         # mostly past the MAC header, so it gets in
        data[i] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))]) + draw(st.binary(max_size=8))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(frames(), min_size=1, max_size=8))
def test_no_frame_crashes_a_core_and_every_drop_says_why(batch):
    k = Netstack()
    rx = k.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    for frame in batch:
        k.receive("h2", "eth0", frame)
        k.receive("r1", "eth1", frame)
    k.pump()
    k.advance(31)                                  # timers too: reassembly, neighbours
    assert {reason for _, _, reason, _ in k.drops} <= REASONS
