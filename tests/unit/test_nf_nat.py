"""NAT's core against scapy (every rewritten checksum must equal what scapy
computes from scratch) and the kernel's binding rules: a source NAT keeps the
port when it is free and moves it within its class when it is not, a port
range is honoured, a destination port never moves unasked, UDP's "no
checksum" stays zero, and an ICMP error's quoted packet is translated back."""
import random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror

from pktflow.services.ip.netfilter import nf_nat
from pktflow.services.ip.netfilter.nf_conntrack import Conntrack
from pktflow.services.wire import ipv4

A, B, R = ipv4.aton("10.0.1.10"), ipv4.aton("10.0.2.10"), ipv4.aton("10.0.2.1")
PRE, IN, FWD, OUT, POST = range(5)


def first_packet(ct, saddr, sport, proto=17, dport=53):
    bits, conn, _ = ct.track(saddr, B, proto, sport, dport, 0x02 if proto == 6 else 0, now=0)
    return conn


def snat(ct, conn, rng=(R, R, 0, 0, nf_nat.RANGE_MAP_IPS)):
    nf_nat.setup_info(ct, conn, rng, nf_nat.MANIP_SRC, random.Random(1))
    assert ct.confirm(conn)
    return conn


def fresh(pkt) -> bytes:
    """The packet with every checksum recomputed by scapy."""
    p = IP(bytes(pkt))
    for layer in (IP, TCP, UDP, ICMP):
        if p.haslayer(layer):
            del p[layer].chksum
    return bytes(IP(bytes(p)))


def test_source_nat_keeps_a_free_port_and_moves_a_taken_one_within_its_class():
    ct = Conntrack()
    one = snat(ct, first_packet(ct, A, 40000))
    assert (one.reply.daddr, one.reply.dport) == (R, 40000)
    other = ipv4.aton("10.0.1.11")                     # a second LAN host, same source port
    two = snat(ct, first_packet(ct, other, 40000))
    assert two.reply.daddr == R and 1024 <= two.reply.dport <= 65535 and two.reply.dport != 40000
    low = snat(ct, first_packet(ct, other, 123, dport=123))
    low2 = snat(ct, first_packet(ct, A, 123, dport=123))
    assert low.reply.dport == 123 and 1 <= low2.reply.dport <= 511       # privileged ports stay privileged


def test_a_port_range_is_honoured_and_dnat_keeps_the_port_unless_asked():
    ct = Conntrack()
    c = snat(ct, first_packet(ct, A, 40000), (R, R, 5000, 5009, nf_nat.RANGE_MAP_IPS | nf_nat.RANGE_PROTO_SPECIFIED))
    assert 5000 <= c.reply.dport <= 5009
    d = first_packet(ct, A, 40001, proto=6, dport=8080)
    nf_nat.setup_info(ct, d, (A, A, 0, 0, nf_nat.RANGE_MAP_IPS), nf_nat.MANIP_DST, random.Random(1))
    assert (d.reply.saddr, d.reply.sport) == (A, 8080)


def test_rewritten_checksums_equal_scapys():
    ct = Conntrack()
    for l4, proto in ((TCP(sport=40000, dport=53, flags="S", seq=7), 6), (UDP(sport=40000, dport=53), 17)):
        conn = snat(ct, first_packet(ct, A, 40000, proto=proto), (R, R, 6000, 6000, 3))
        pkt = IP(src="10.0.1.10", dst="10.0.2.10", ttl=63) / l4 / (b"payload" * 3)
        out = nf_nat.nat_packet(conn, 0, POST, bytes(pkt), 0)
        assert IP(out).src == "10.0.2.1" and IP(out).sport == 6000 and out == fresh(out)
        reply = IP(src="10.0.2.10", dst="10.0.2.1") / l4.__class__(sport=53, dport=6000) / b"answer"
        back = nf_nat.nat_packet(conn, 1, PRE, bytes(reply), 0)
        assert (IP(back).dst, IP(back).dport) == ("10.0.1.10", 40000) and back == fresh(back)
    _, echo, _ = ct.track(A, B, 1, icmp_type=8, icmp_id=77, now=0)
    echo = snat(ct, echo, (R, R, 900, 900, 3))
    ping = IP(src="10.0.1.10", dst="10.0.2.10") / ICMP(type=8, id=77, seq=1) / b"abc"
    out = nf_nat.nat_packet(echo, 0, POST, bytes(ping), 0)
    assert (IP(out).src, IP(out)[ICMP].id) == ("10.0.2.1", 900) and out == fresh(out)


def test_udp_without_a_checksum_stays_without_one():
    ct = Conntrack()
    conn = snat(ct, first_packet(ct, A, 40000))
    pkt = bytearray(bytes(IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=40000, dport=53) / b"x"))
    pkt[26:28] = b"\0\0"
    assert nf_nat.nat_packet(conn, 0, POST, bytes(pkt), 0)[26:28] == b"\0\0"


def test_an_icmp_error_about_a_natted_packet_is_translated_back():
    ct = Conntrack()
    conn = snat(ct, first_packet(ct, A, 40000), (R, R, 6000, 6000, 3))
    quoted = IP(src="10.0.2.1", dst="10.0.2.10", ttl=62) / UDP(sport=6000, dport=53) / b"q"
    err = IP(src="10.0.2.10", dst="10.0.2.1") / ICMP(type=3, code=3) / bytes(quoted)
    out = IP(nf_nat.icmp_reply_translation(conn, 1, PRE, bytes(err), 0))
    assert (out.src, out.dst) == ("10.0.2.10", "10.0.1.10")
    inner = out[IPerror]
    assert (inner.src, inner.dst, inner[UDPerror].sport) == ("10.0.1.10", "10.0.2.10", 40000)
    assert bytes(out) == fresh(out)
