"""Unit tests of the IP fragmentation core (services/ip/ip_fragment.py):
fragments cut as Linux cuts them, checked by scapy, and any arrival order of
any fragmentation reassembling to the datagram (Hypothesis)."""
import random

from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP

from pktflow.services.common import topology
from pktflow.services.ip import ip_fragment
from pktflow.services.ip.netns import IpNetns
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import Skb

TOPO = topology.load()


def netns():
    return IpNetns(TOPO.hosts["h2"], random.Random(1))


def packet(n: int, options: bytes = b"", ident: int = 4242) -> bytes:
    """An IP packet with an n-byte payload."""
    payload = (bytes(range(256)) * (n // 256 + 1))[:n]
    return bytes(IP(src="10.0.1.10", dst="10.0.2.10", id=ident, proto=17, options=options) / payload)


def test_fragments_carry_multiples_of_8_and_only_copied_options_after_the_first():
    # a Record Route option (copy bit clear) and a Loose Source Route (copy bit set)
    opts = bytes([7, 7, 4, 0, 0, 0, 0]) + bytes([131, 7, 4, 10, 0, 2, 1]) + b"\0\0"
    ns = netns()
    frags = ip_fragment.ip_fragment(ns, Skb(data=packet(3000, opts)), 1500, "ip_output")
    parsed = [IP(f.data) for f in frags]
    hlen = 20 + len(opts)
    room = (1500 - hlen) & ~7
    assert [p.frag * 8 for p in parsed] == [0, room, 2 * room]
    assert [p.flags.MF for p in parsed] == [1, 1, 0]
    assert all(p.ihl * 4 == hlen and p.id == 4242 for p in parsed)
    assert bytes(parsed[0])[20:hlen] == opts
    assert bytes(parsed[1])[20:hlen] == b"\1" * 7 + opts[7:]          # RR became NOPs, LSRR stays
    for p in parsed:
        check, p.chksum = p.chksum, None
        assert IP(bytes(p)).chksum == check
    assert (ns.mib["IpFragOKs"], ns.mib["IpFragCreates"]) == (1, 3)


def test_an_mtu_without_room_for_8_bytes_fails():
    ns = netns()
    [drop] = ip_fragment.ip_fragment(ns, Skb(data=packet(100)), 27, "ip_output")
    assert drop.reason == "PKT_TOO_BIG" and ns.mib["IpFragFails"] == 1


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 9000), mtu=st.integers(68, 1500), seed=st.integers(0, 2**32 - 1),
       dup=st.booleans())
def test_any_fragmentation_in_any_order_reassembles(size, mtu, seed, dup):
    ns = netns()
    original = packet(size)
    frags = [f.data for f in ip_fragment.ip_do_fragment(Skb(data=original), mtu)] or [original]
    if len(frags) == 1:
        return
    rng = random.Random(seed)
    order = list(frags)
    rng.shuffle(order)
    if dup:                  # a duplicate before the datagram completes (one after it would start a new queue)
        p = rng.randrange(len(order) - 1)
        order.insert(rng.randrange(p + 1, len(order)), order[p])
    whole = None
    for data in order:
        got, _ = ip_fragment.ip_defrag(ns, Skb(netns="h2", data=data), ipv4.parse(data), 0, "ip_local_deliver")
        if got is not None:
            assert whole is None
            whole = got
    assert whole is not None and whole.data == original[:2] + whole.data[2:4] + original[4:10] + \
        whole.data[10:12] + original[12:]
    assert IP(whole.data).len == len(original) and IP(whole.data).flags == 0
    assert ns.frags.mem == 0 and not ns.frags.queues
