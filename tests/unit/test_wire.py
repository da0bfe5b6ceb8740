"""Unit tests of the wire formats (services/wire), cross-checked against an
independent RFC 1071 reference and against scapy in both directions, plus
every frame of the real Linux captures in tests/data/linux."""
import ipaddress
import os
import random
import struct

import pytest
from pktflow.services.wire import Malformed, arp, checksum, ethernet, icmp, ipv4, udp
from scapy.layers.inet import ICMP, IP, UDP, IPerror, IPOption_NOP, UDPerror, defragment
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader
from scapy.utils import checksum as scapy_checksum
from conftest import LINUX_CAPTURES

LINUX_PCAPS = sorted(str(p) for p in LINUX_CAPTURES.glob("*.pcap"))

SRC, DST = "10.0.1.10", "10.0.2.10"
SRC_I, DST_I = int(ipaddress.IPv4Address(SRC)), int(ipaddress.IPv4Address(DST))


# ---------------------------------------------------------------- helpers

def ref_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071, literally: add 16-bit big-endian words (odd length padded
    with a zero byte), folding carries back in (end-around carry)."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\0"
    s = initial
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ref_checksum(data: bytes, initial: int = 0) -> int:
    return ~ref_sum(data, initial) & 0xFFFF


def reason(exc_info) -> str:
    return exc_info.value.reason


def ip_bytes(**kw) -> bytes:
    """An IPv4 packet built by scapy (checksums computed by scapy)."""
    payload = kw.pop("payload", b"")
    return bytes(IP(**kw) / Raw(payload)) if payload else bytes(IP(**kw))


def with_ip_checksum(hdr: bytes) -> bytes:
    """`hdr` (any IHL) with its header checksum recomputed by the reference."""
    ihl = (hdr[0] & 0x0F) * 4
    h = bytearray(hdr)
    h[10:12] = b"\0\0"
    h[10:12] = ref_checksum(bytes(h[:ihl])).to_bytes(2, "big")
    return bytes(h)


def scapy_recomputed(pkt_bytes: bytes, layer):
    """scapy's own checksum for `layer` in an IPv4 packet (field deleted, rebuilt)."""
    p = IP(pkt_bytes)
    del p[layer].chksum
    return IP(bytes(p))[layer].chksum


# ---------------------------------------------------------------- checksum

def test_csum_rfc1071_numerical_example():
    # RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert checksum.csum_partial(data) == 0xDDF2
    assert checksum.inet_checksum(data) == 0x220D


@pytest.mark.parametrize("length", list(range(70)) + [127, 128, 255, 256, 1499, 1500, 1501, 9001, 65535])
def test_csum_partial_matches_rfc1071_reference_on_random_buffers(length):
    rng = random.Random(length)
    for _ in range(20):
        data = rng.randbytes(length)
        assert checksum.csum_partial(data) == ref_sum(data)
        assert checksum.inet_checksum(data) == ref_checksum(data)


def test_inet_checksum_matches_scapy_checksum():
    rng = random.Random(7)
    for length in range(0, 300, 7):
        data = rng.randbytes(length)
        assert checksum.inet_checksum(data) == scapy_checksum(data)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 20, 21, 1500, 1501])
def test_csum_all_zero_buffer(length):
    assert checksum.csum_partial(bytes(length)) == 0
    assert checksum.inet_checksum(bytes(length)) == 0xFFFF
    assert not checksum.verify(bytes(length))


@pytest.mark.parametrize("length", [2, 4, 20, 1500])
def test_csum_all_ones_even_buffer_is_negative_zero(length):
    data = b"\xff" * length
    assert checksum.csum_partial(data) == 0xFFFF == ref_sum(data)
    assert checksum.inet_checksum(data) == 0
    assert checksum.verify(data)


@pytest.mark.parametrize("length", [1, 3, 21, 1501])
def test_csum_all_ones_odd_buffer_pads_last_byte_with_zero(length):
    data = b"\xff" * length
    assert checksum.csum_partial(data) == ref_sum(data) == 0xFF00
    assert checksum.inet_checksum(data) == 0x00FF


def test_csum_odd_length_pads_on_the_right():
    assert checksum.csum_partial(b"\x12") == 0x1200
    assert checksum.csum_partial(b"\x12\x34\x56") == 0x1234 + 0x5600


def test_csum_partial_chaining_equals_whole_buffer():
    rng = random.Random(11)
    for _ in range(300):
        a = rng.randbytes(2 * rng.randrange(0, 40))      # an even first part
        b = rng.randbytes(rng.randrange(0, 81))          # any second part
        assert checksum.csum_partial(b, checksum.csum_partial(a)) == checksum.csum_partial(a + b)
        assert checksum.inet_checksum(b, checksum.csum_partial(a)) == ref_checksum(a + b)


def test_csum_partial_chains_three_parts():
    rng = random.Random(12)
    a, b, c = rng.randbytes(20), rng.randbytes(8), rng.randbytes(33)
    s = checksum.csum_partial(c, checksum.csum_partial(b, checksum.csum_partial(a)))
    assert s == ref_sum(a + b + c)


@pytest.mark.parametrize("initial", [0, 1, 0x7FFF, 0xFFFE, 0xFFFF])
def test_csum_partial_with_initial_matches_reference(initial):
    rng = random.Random(initial)
    for length in (0, 1, 2, 5, 20, 64):
        data = rng.randbytes(length)
        assert checksum.csum_partial(data, initial) == ref_sum(data, initial)
    assert checksum.csum_partial(b"", initial) == initial
    assert checksum.csum_partial(b"\0\0", initial) == initial


def test_csum_partial_result_is_folded_to_16_bits():
    rng = random.Random(13)
    for _ in range(200):
        s = checksum.csum_partial(rng.randbytes(rng.randrange(1, 200)), rng.randrange(0, 0x10000))
        assert 0 <= s <= 0xFFFF


def test_csum_partial_never_returns_positive_zero_for_nonzero_data():
    # One's complement addition of non-zero inputs gives -0 (0xFFFF), never +0.
    assert checksum.csum_partial(b"\x00\x01\xff\xfe") == 0xFFFF
    assert checksum.csum_partial(b"\x80\x00\x7f\xff\xff\xff") == 0xFFFF == ref_sum(b"\x80\x00\x7f\xff\xff\xff")


def test_csum_fold_complements():
    assert checksum.csum_fold(0) == 0xFFFF
    assert checksum.csum_fold(0xFFFF) == 0
    assert checksum.csum_fold(0x1234) == 0xEDCB


def test_csum_accepts_bytearray_and_memoryview():
    rng = random.Random(14)
    for length in (0, 1, 19, 20, 21):
        data = rng.randbytes(length)
        expected = ref_sum(data)
        assert checksum.csum_partial(bytearray(data)) == expected
        assert checksum.csum_partial(memoryview(data)) == expected
        assert checksum.csum_partial(memoryview(b"xx" + data)[2:]) == expected


def test_verify_accepts_buffer_with_its_checksum_and_rejects_a_flipped_bit():
    rng = random.Random(15)
    for length in (2, 8, 20, 21, 100, 101):
        data = bytearray(rng.randbytes(length))
        data[0:2] = b"\0\0"
        data[0:2] = checksum.inet_checksum(data).to_bytes(2, "big")
        assert checksum.verify(data)
        bit = rng.randrange(length * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        assert not checksum.verify(data)


def test_pseudo_header_sum_layout():
    # saddr, daddr, zero, protocol, length: RFC 768.
    s = checksum.pseudo_header_sum(SRC_I, DST_I, 17, 1234)
    ref = ref_sum(bytes(IP(src=SRC, dst=DST))[12:20] + b"\x00\x11" + (1234).to_bytes(2, "big"))
    assert s == ref
    assert checksum.pseudo_header_sum(0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFFFF) == \
        ref_sum(b"\xff" * 10 + b"\x00\xff" + b"\xff\xff")


# ---------------------------------------------------------------- Ethernet

def test_ethernet_parses_scapy_frame():
    frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:01:0a", type=0x0806) / Raw(b"x" * 28))
    r = ethernet.parse(frame)
    assert r == (ethernet.BROADCAST, bytes.fromhex("02000000010a"), ethernet.ETH_P_ARP)
    assert r.dst == ethernet.BROADCAST and r.src == bytes.fromhex("02000000010a") and r.ethertype == 0x0806


def test_ethernet_parse_at_offset():
    frame = b"\xaa" * 5 + bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02", type=0x86DD))
    r = ethernet.parse(frame, 5)
    assert r.ethertype == ethernet.ETH_P_IPV6 and r.dst == bytes.fromhex("020000000001")


def test_ethernet_emit_is_parsed_by_scapy():
    frame = ethernet.emit(ethernet.EthernetRepr(bytes.fromhex("020000000201"), bytes.fromhex("02000000010a"),
                                                ethernet.ETH_P_IP), bytes(IP(src=SRC, dst=DST) / UDP()))
    p = Ether(frame)
    assert p.dst == "02:00:00:00:02:01" and p.src == "02:00:00:00:01:0a" and p.type == 0x0800
    assert IP in p and p[IP].src == SRC


def test_ethernet_header_matches_scapy_bytes():
    assert ethernet.header(ethernet.BROADCAST, bytes.fromhex("020000000101"), ethernet.ETH_P_ARP) == \
        bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:01:01", type=0x0806))


@pytest.mark.parametrize("length", range(14))
def test_ethernet_short_frame_is_pkt_too_small(length):
    with pytest.raises(Malformed) as e:
        ethernet.parse(b"\x01" * length)
    assert reason(e) == "PKT_TOO_SMALL"


def test_ethernet_short_after_offset_is_pkt_too_small():
    with pytest.raises(Malformed) as e:
        ethernet.parse(b"\0" * 20, 7)
    assert reason(e) == "PKT_TOO_SMALL"
    assert ethernet.parse(b"\0" * 20, 6).ethertype == 0


def test_malformed_is_a_value_error_with_reason():
    with pytest.raises(ValueError):
        ethernet.parse(b"")
    m = Malformed("IP_CSUM", "bad")
    assert m.reason == "IP_CSUM" and m.what == "bad" and "IP_CSUM" in str(m)


def test_mac_to_str_and_from_str_round_trip():
    rng = random.Random(16)
    for _ in range(50):
        mac = rng.randbytes(6)
        text = ethernet.mac_to_str(mac)
        assert text == ":".join(f"{b:02x}" for b in mac)
        assert ethernet.mac_from_str(text) == mac
        assert ethernet.mac_from_str(text.upper()) == mac


def test_mac_from_str_accepts_single_digit_octets():
    assert ethernet.mac_from_str("2:0:0:0:1:a") == bytes.fromhex("02000000010a")


@pytest.mark.parametrize("text", [
    "", "02:00:00:00:01", "02:00:00:00:01:0a:0b", "02-00-00-00-01-0a", "0200.0000.010a", "02000000010a",
    "0g:00:00:00:00:00", "002:00:00:00:00:00", "02:00:00:00:01:", ":02:00:00:00:01", "02::00:00:01:0a",
    "-1:00:00:00:00:00", "zz:zz:zz:zz:zz:zz", "02:00:00:00:01:0a ",
])
def test_mac_from_str_refuses_malformed(text):
    with pytest.raises(ValueError):
        ethernet.mac_from_str(text)


@pytest.mark.parametrize("text", ["+f:00:00:00:00:00", " f:00:00:00:00:00", "f :00:00:00:00:00",
                                  "\u0663:00:00:00:00:00", "\uff11:00:00:00:00:00"])
def test_mac_from_str_refuses_non_hex_characters_int_would_accept(text):
    # Sign, blanks and non-ASCII digits are not hex digits; int(x, 16) accepts them.
    with pytest.raises(ValueError):
        ethernet.mac_from_str(text)


def test_ethernet_is_multicast():
    assert ethernet.is_multicast(ethernet.BROADCAST)
    assert ethernet.is_multicast(bytes.fromhex("01005e000001"))
    assert not ethernet.is_multicast(bytes.fromhex("02000000010a"))


# ---------------------------------------------------------------- ARP

def _scapy_arp(op):
    return ARP(op=op, hwsrc="02:00:00:00:01:0a", psrc="10.0.1.10",
               hwdst="00:00:00:00:00:00" if op == 1 else "02:00:00:00:01:01", pdst="10.0.1.1")


@pytest.mark.parametrize("op", [arp.ARPOP_REQUEST, arp.ARPOP_REPLY])
def test_arp_parses_scapy_packet(op):
    r = arp.parse(bytes(_scapy_arp(op)))
    assert r.op == op
    assert r.sha == bytes.fromhex("02000000010a")
    assert r.spa == int(ipaddress.IPv4Address("10.0.1.10"))
    assert r.tha == (bytes(6) if op == 1 else bytes.fromhex("020000000101"))
    assert r.tpa == int(ipaddress.IPv4Address("10.0.1.1"))


def test_arp_parses_padded_frame_at_offset():
    frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:01:0a") / _scapy_arp(1))
    frame += bytes(60 - len(frame))
    assert len(frame) == ethernet.ETH_ZLEN
    assert ethernet.parse(frame).ethertype == ethernet.ETH_P_ARP
    assert arp.parse(frame, ethernet.ETH_HLEN).op == arp.ARPOP_REQUEST


@pytest.mark.parametrize("op", [arp.ARPOP_REQUEST, arp.ARPOP_REPLY])
def test_arp_emit_is_parsed_by_scapy(op):
    r = arp.ArpRepr(op, bytes.fromhex("020000000101"), int(ipaddress.IPv4Address("10.0.1.1")),
                    bytes.fromhex("02000000010a"), int(ipaddress.IPv4Address("10.0.1.10")))
    data = arp.emit(r)
    assert len(data) == arp.ARP_LEN
    p = ARP(data)
    assert (p.hwtype, p.ptype, p.hwlen, p.plen, p.op) == (1, 0x0800, 6, 4, op)
    assert (p.hwsrc, p.psrc, p.hwdst, p.pdst) == ("02:00:00:00:01:01", "10.0.1.1", "02:00:00:00:01:0a", "10.0.1.10")
    assert data == bytes(ARP(op=op, hwsrc="02:00:00:00:01:01", psrc="10.0.1.1",
                             hwdst="02:00:00:00:01:0a", pdst="10.0.1.10"))
    assert arp.parse(data) == r


@pytest.mark.parametrize("field,value", [("hwtype", 6), ("ptype", 0x86DD), ("hwlen", 8), ("plen", 16)])
def test_arp_wrong_hardware_or_protocol_is_invalid_proto(field, value):
    raw = bytearray(bytes(_scapy_arp(1)))
    off, size = {"hwtype": (0, 2), "ptype": (2, 2), "hwlen": (4, 1), "plen": (5, 1)}[field]
    raw[off:off + size] = value.to_bytes(size, "big")
    with pytest.raises(Malformed) as e:
        arp.parse(bytes(raw))
    assert reason(e) == "INVALID_PROTO"


@pytest.mark.parametrize("length", [0, 8, 27])
def test_arp_short_is_pkt_too_small(length):
    with pytest.raises(Malformed) as e:
        arp.parse(bytes(_scapy_arp(1))[:length])
    assert reason(e) == "PKT_TOO_SMALL"


def test_arp_short_is_checked_before_the_type():
    with pytest.raises(Malformed) as e:
        arp.parse(b"\x00\x06\x86\xdd" + bytes(20))
    assert reason(e) == "PKT_TOO_SMALL"


# ---------------------------------------------------------------- IPv4

def test_ipv4_parses_scapy_packet_fields():
    pkt = ip_bytes(src=SRC, dst=DST, ttl=37, tos=0xB8, id=0xBEEF, flags="DF", proto=17, payload=b"p" * 13)
    r = ipv4.parse(pkt)
    assert r == ipv4.Ipv4Repr(20, 0xB8, 33, 0xBEEF, ipv4.IP_DF, 37, 17, SRC_I, DST_I)
    assert r.df and not r.is_fragment


def test_ipv4_parses_fragment_fields():
    pkt = ip_bytes(src=SRC, dst=DST, flags="MF", frag=185, id=7, proto=17, payload=b"f" * 16)
    r = ipv4.parse(pkt)
    assert r.frag_off == ipv4.IP_MF | 185
    assert r.is_fragment and not r.df
    last = ipv4.parse(ip_bytes(src=SRC, dst=DST, frag=370, proto=17, payload=b"f" * 8))
    assert last.is_fragment and last.frag_off == 370
    first = ipv4.parse(ip_bytes(src=SRC, dst=DST, flags="MF", proto=17, payload=b"f" * 8))
    assert first.is_fragment


def test_ipv4_parses_header_with_options():
    pkt = bytes(IP(src=SRC, dst=DST, options=[IPOption_NOP()] * 8) / Raw(b"data"))
    r = ipv4.parse(pkt)
    assert r.ihl == 28 and r.total_len == 32 and r.src == SRC_I


def test_ipv4_parse_at_offset_in_ethernet_frame_with_padding():
    frame = bytes(Ether() / IP(src=SRC, dst=DST, proto=1) / Raw(b"12345678"))
    frame += b"\xee" * (60 - len(frame))                       # NIC padding past total length
    r = ipv4.parse(frame, 14)
    assert r.total_len == 28 and r.proto == 1


def test_ipv4_parse_accepts_memoryview_and_bytearray():
    pkt = b"\0" * 14 + ip_bytes(src=SRC, dst=DST, payload=b"abc")
    assert ipv4.parse(memoryview(pkt), 14) == ipv4.parse(bytearray(pkt), 14) == ipv4.parse(pkt, 14)


@pytest.mark.parametrize("kw", [
    {"ttl": 64, "tos": 0, "ident": 0, "df": False},
    {"ttl": 1, "tos": 0x10, "ident": 0xFFFF, "df": True},
    {"ttl": 255, "tos": 0xFF, "ident": 12345, "df": True},
])
def test_ipv4_header_is_parsed_by_scapy_with_its_checksum(kw):
    payload = bytes(UDP(sport=1, dport=2) / Raw(b"hello"))
    pkt = ipv4.header(SRC_I, DST_I, ipv4.IPPROTO_UDP, len(payload), **kw) + payload
    p = IP(pkt)
    assert (p.version, p.ihl, p.len, p.ttl, p.tos, p.id, p.proto) == (4, 5, 20 + len(payload), kw["ttl"], kw["tos"],
                                                                      kw["ident"], 17)
    assert p.flags == ("DF" if kw["df"] else 0) and p.frag == 0
    assert (p.src, p.dst) == (SRC, DST)
    assert p.chksum == scapy_recomputed(pkt, IP)
    assert pkt[:20] == ip_bytes(src=SRC, dst=DST, proto=17, ttl=kw["ttl"], tos=kw["tos"], id=kw["ident"],
                                flags="DF" if kw["df"] else 0, payload=payload)[:20]


def test_ipv4_emit_is_parsed_by_scapy_with_its_checksum():
    rng = random.Random(20)
    for _ in range(100):
        r = ipv4.Ipv4Repr(20, rng.randrange(256), 0, rng.randrange(65536), rng.randrange(65536),
                          rng.randrange(256), rng.choice((1, 6, 17, 200)), rng.getrandbits(32), rng.getrandbits(32))
        payload = rng.randbytes(rng.randrange(0, 100))
        pkt = ipv4.emit(r, payload)
        p = IP(pkt)
        assert p.len == 20 + len(payload) == len(pkt)
        assert (p.tos, p.id, (int(p.flags) << 13) | p.frag, p.ttl, p.proto) == (r.tos, r.ident, r.frag_off, r.ttl,
                                                                                  r.proto)
        assert int(ipaddress.IPv4Address(p.src)) == r.src and int(ipaddress.IPv4Address(p.dst)) == r.dst
        assert p.chksum == scapy_recomputed(pkt, IP)
        assert ipv4.parse(pkt) == r._replace(total_len=len(pkt))


def test_ipv4_emit_ignores_repr_total_len_and_ihl():
    r = ipv4.Ipv4Repr(60, 0, 9999, 1, 0, 64, 17, SRC_I, DST_I)
    pkt = ipv4.emit(r, b"abcd")
    assert IP(pkt).ihl == 5 and IP(pkt).len == 24


# decrease_ttl: RFC 1624 incremental update, as ip_decrease_ttl() does

def test_decrease_ttl_matches_scapy_recomputation():
    rng = random.Random(21)
    for _ in range(300):
        pkt = ip_bytes(src=str(ipaddress.IPv4Address(rng.getrandbits(32))), dst=DST, ttl=rng.randrange(2, 256),
                       tos=rng.randrange(256), id=rng.randrange(65536), flags=rng.choice((0, 2)), proto=17,
                       payload=rng.randbytes(rng.randrange(0, 30)))
        out = ipv4.decrease_ttl(pkt)
        assert len(out) == len(pkt) and out[20:] == pkt[20:]
        p = IP(out)
        assert p.ttl == pkt[8] - 1
        assert p.chksum == scapy_recomputed(out, IP), (pkt.hex(), out.hex())
        assert ipv4.parse(out).ttl == pkt[8] - 1


def test_decrease_ttl_only_touches_ttl_and_checksum():
    pkt = ip_bytes(src=SRC, dst=DST, ttl=64, id=99, payload=b"x" * 9)
    out = ipv4.decrease_ttl(pkt)
    diff = [i for i in range(len(pkt)) if pkt[i] != out[i]]
    assert set(diff) <= {8, 10, 11} and 8 in diff


def _header_with_checksum(target: int, ttl: int = 64) -> bytes:
    """A scapy-built header whose checksum field is `target` (search over the ID)."""
    base = ip_bytes(src=SRC, dst=DST, ttl=ttl, proto=1)
    for ident in range(65536):
        pkt = with_ip_checksum(base[:4] + ident.to_bytes(2, "big") + base[6:])
        if int.from_bytes(pkt[10:12], "big") == target:
            assert pkt == ip_bytes(src=SRC, dst=DST, ttl=ttl, proto=1, id=ident)   # scapy agrees
            return pkt
    raise AssertionError(f"no header with checksum {target:#06x}")


def test_decrease_ttl_checksum_carry_wraps_around():
    # 0xFFxx + 0x0100 overflows 16 bits: the carry is added back in.
    pkt = _header_with_checksum(0xFF10)
    out = ipv4.decrease_ttl(pkt)
    assert int.from_bytes(out[10:12], "big") == 0x0011 == scapy_recomputed(out, IP)
    assert checksum.verify(out[:20])


def test_decrease_ttl_gives_0x0000_not_0xffff_when_checksum_reaches_zero():
    # Checksum 0xFEFF before: + 0x0100 gives 0xFFFF, which is -0. A checksum
    # computed from scratch is never 0xFFFF (RFC 1624 section 3: the header is
    # never all zero, so its sum is never +0); ip_decrease_ttl() writes
    # check + (check >= 0xFFFF), i.e. 0x0000, and so does scapy.
    pkt = _header_with_checksum(0xFEFF)
    out = ipv4.decrease_ttl(pkt)
    assert checksum.verify(out[:20])
    assert scapy_recomputed(out, IP) == 0x0000
    assert int.from_bytes(out[10:12], "big") == 0x0000


def test_decrease_ttl_every_checksum_value_matches_full_recomputation():
    base = bytearray(ip_bytes(src=SRC, dst=DST, ttl=17, proto=17))
    wrong = []
    for ident in range(65536):
        base[4:6] = ident.to_bytes(2, "big")
        base[10:12] = b"\0\0"
        base[10:12] = checksum.inet_checksum(base).to_bytes(2, "big")
        out = ipv4.decrease_ttl(bytes(base))
        recomputed = bytearray(out)
        recomputed[10:12] = b"\0\0"
        if int.from_bytes(out[10:12], "big") != checksum.inet_checksum(recomputed):
            wrong.append(int.from_bytes(base[10:12], "big"))
    assert wrong == []


def test_decrease_ttl_with_options():
    pkt = bytes(IP(src=SRC, dst=DST, ttl=9, options=[IPOption_NOP()] * 4) / Raw(b"zz"))
    out = ipv4.decrease_ttl(pkt)
    assert IP(out).ttl == 8 and IP(out).chksum == scapy_recomputed(out, IP)
    assert ipv4.parse(out).ihl == 24


# parse failures, in ip_rcv_core()'s order

@pytest.mark.parametrize("length", range(20))
def test_ipv4_shorter_than_20_bytes_is_ip_inhdr(length):
    pkt = ip_bytes(src=SRC, dst=DST, payload=b"x" * 20)
    with pytest.raises(Malformed) as e:
        ipv4.parse(pkt[:length])
    assert reason(e) == "IP_INHDR"


def test_ipv4_short_after_offset_is_ip_inhdr():
    pkt = ip_bytes(src=SRC, dst=DST)
    with pytest.raises(Malformed) as e:
        ipv4.parse(b"\0" * 14 + pkt[:19], 14)
    assert reason(e) == "IP_INHDR"


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_ipv4_wrong_version_is_ip_inhdr(version):
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"x" * 8))
    pkt[0] = (version << 4) | 5
    with pytest.raises(Malformed) as e:
        ipv4.parse(with_ip_checksum(bytes(pkt)))
    assert reason(e) == "IP_INHDR"


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_ipv4_ihl_below_5_is_ip_inhdr(ihl):
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"x" * 8))
    pkt[0] = 0x40 | ihl
    pkt[10:12] = b"\0\0"
    pkt[10:12] = ref_checksum(bytes(pkt[:20])).to_bytes(2, "big")
    with pytest.raises(Malformed) as e:
        ipv4.parse(bytes(pkt))
    assert reason(e) == "IP_INHDR"


def test_ipv4_bad_version_is_reported_before_bad_checksum():
    pkt = bytearray(ip_bytes(src=SRC, dst=DST))
    pkt[0] = 0x65                                           # checksum now also wrong
    with pytest.raises(Malformed) as e:
        ipv4.parse(bytes(pkt))
    assert reason(e) == "IP_INHDR"


@pytest.mark.parametrize("ihl,avail", [(6, 20), (15, 20), (15, 59), (8, 31)])
def test_ipv4_ihl_beyond_buffer_is_ip_inhdr(ihl, avail):
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"\x01" * 60))
    pkt[0] = 0x40 | ihl
    pkt[2:4] = (ihl * 4).to_bytes(2, "big")
    pkt = with_ip_checksum(bytes(pkt))[:avail]
    with pytest.raises(Malformed) as e:
        ipv4.parse(pkt)
    assert reason(e) == "IP_INHDR"


def test_ipv4_bad_checksum_is_ip_csum():
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"x" * 8))
    pkt[10] ^= 0x01
    with pytest.raises(Malformed) as e:
        ipv4.parse(bytes(pkt))
    assert reason(e) == "IP_CSUM"


def test_ipv4_any_corrupted_header_byte_is_ip_csum():
    good = ip_bytes(src=SRC, dst=DST, ttl=64, id=5, payload=b"x" * 100)
    for i in range(1, 20):           # every byte after version/IHL; the checksum is checked first
        pkt = bytearray(good)
        pkt[i] ^= 0x40
        with pytest.raises(Malformed) as e:
            ipv4.parse(bytes(pkt))
        assert reason(e) == "IP_CSUM", i


def test_ipv4_bad_checksum_checked_before_total_length():
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"x" * 8))
    pkt[2:4] = (5000).to_bytes(2, "big")                   # too long, and checksum not updated
    with pytest.raises(Malformed) as e:
        ipv4.parse(bytes(pkt))
    assert reason(e) == "IP_CSUM"


def test_ipv4_bad_checksum_in_options_is_ip_csum():
    pkt = bytearray(bytes(IP(src=SRC, dst=DST, options=[IPOption_NOP()] * 4)))
    pkt[21] ^= 0xFF
    with pytest.raises(Malformed) as e:
        ipv4.parse(bytes(pkt))
    assert reason(e) == "IP_CSUM"


@pytest.mark.parametrize("total_len", [29, 100, 65535])
def test_ipv4_total_length_beyond_buffer_is_pkt_too_small(total_len):
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"x" * 8))
    pkt[2:4] = total_len.to_bytes(2, "big")
    with pytest.raises(Malformed) as e:
        ipv4.parse(with_ip_checksum(bytes(pkt)))
    assert reason(e) == "PKT_TOO_SMALL"


@pytest.mark.parametrize("ihl,total_len", [(5, 0), (5, 19), (6, 20), (6, 23), (15, 59)])
def test_ipv4_total_length_below_header_is_ip_inhdr(ihl, total_len):
    pkt = bytearray(ip_bytes(src=SRC, dst=DST, payload=b"\x01" * 60))
    pkt[0] = 0x40 | ihl
    pkt[2:4] = total_len.to_bytes(2, "big")
    with pytest.raises(Malformed) as e:
        ipv4.parse(with_ip_checksum(bytes(pkt)))
    assert reason(e) == "IP_INHDR"


def test_ipv4_total_length_equal_to_header_is_accepted():
    pkt = ip_bytes(src=SRC, dst=DST)
    assert ipv4.parse(pkt).total_len == 20
    assert ipv4.parse(pkt + b"trailing").total_len == 20


# addresses

@pytest.mark.parametrize("text", ["0.0.0.0", "10.0.1.10", "255.255.255.255", "192.168.100.1"])
def test_aton_ntoa_round_trip(text):
    assert ipv4.aton(text) == int(ipaddress.IPv4Address(text))
    assert ipv4.ntoa(ipv4.aton(text)) == text


@pytest.mark.parametrize("text", ["10.1", "10.1.2", "10", "167772161", "0x0a.0.0.1", "010.0.0.1", "1.2.3.256",
                                  "1.2.3.4.5", "", " 1.2.3.4", "1.2.3.4 ", "1.2.3.-4", "a.b.c.d", "::1", "1..2.3"])
def test_aton_refuses_shorthand_and_garbage(text):
    with pytest.raises(ValueError):
        ipv4.aton(text)


@pytest.mark.parametrize("bad", [None, 167772161, b"10.0.0.1"])
def test_aton_refuses_non_strings(bad):
    with pytest.raises(ValueError):
        ipv4.aton(bad)


def test_prefix_mask():
    assert ipv4.prefix_mask(0) == 0
    assert ipv4.prefix_mask(8) == 0xFF000000
    assert ipv4.prefix_mask(24) == 0xFFFFFF00
    assert ipv4.prefix_mask(31) == 0xFFFFFFFE
    assert ipv4.prefix_mask(32) == 0xFFFFFFFF
    for plen in range(33):
        assert ipv4.prefix_mask(plen) == int(ipaddress.IPv4Network(f"0.0.0.0/{plen}").netmask)


def test_address_classes():
    assert ipv4.is_multicast(ipv4.aton("224.0.0.1")) and ipv4.is_multicast(ipv4.aton("239.255.255.255"))
    assert not ipv4.is_multicast(ipv4.aton("240.0.0.1")) and not ipv4.is_multicast(ipv4.aton("223.255.255.255"))
    assert ipv4.is_loopback(ipv4.aton("127.0.0.1")) and ipv4.is_loopback(ipv4.aton("127.255.0.9"))
    assert not ipv4.is_loopback(ipv4.aton("128.0.0.1"))
    assert ipv4.is_zeronet(ipv4.aton("0.1.2.3")) and not ipv4.is_zeronet(ipv4.aton("1.0.0.0"))


# ---------------------------------------------------------------- ICMP

def test_icmp_parses_scapy_echo_request():
    pkt = bytes(IP(src=SRC, dst=DST) / ICMP(type=8, id=0x1234, seq=0x5678) / Raw(b"ping" * 14))
    r = icmp.parse(pkt, 20)
    assert (r.type, r.code, r.echo_id, r.echo_seq) == (icmp.ICMP_ECHO, 0, 0x1234, 0x5678)
    assert r.rest == 0x12345678


def test_icmp_parses_scapy_echo_reply_with_odd_payload():
    data = bytes(ICMP(type=0, id=1, seq=65535) / Raw(b"odd"))
    r = icmp.parse(data)
    assert (r.type, r.echo_id, r.echo_seq) == (icmp.ICMP_ECHOREPLY, 1, 65535)


@pytest.mark.parametrize("type_,code", [(3, 0), (3, 1), (3, 3), (3, 13), (11, 0), (11, 1), (12, 0)])
def test_icmp_parses_scapy_error(type_, code):
    quoted = bytes(IPerror(src=SRC, dst=DST, proto=17) / UDPerror(sport=1000, dport=9) / Raw(b"abc"))
    data = bytes(ICMP(type=type_, code=code) / Raw(quoted))
    r = icmp.parse(data)
    assert (r.type, r.code, r.rest) == (type_, code, 0)
    assert icmp.is_error(r.type)


def test_icmp_parses_scapy_frag_needed_mtu():
    data = bytes(ICMP(type=3, code=4, nexthopmtu=1400) / Raw(bytes(IPerror(src=SRC, dst=DST))))
    r = icmp.parse(data)
    assert (r.type, r.code, r.rest & 0xFFFF) == (3, icmp.ICMP_FRAG_NEEDED, 1400)


@pytest.mark.parametrize("type_", [icmp.ICMP_ECHO, icmp.ICMP_ECHOREPLY])
@pytest.mark.parametrize("payload_len", [0, 1, 55, 56, 1472])
def test_icmp_echo_is_parsed_by_scapy_with_its_checksum(type_, payload_len):
    payload = random.Random(payload_len).randbytes(payload_len)
    data = icmp.echo(type_, 0xABCD, 42, payload)
    pkt = bytes(IP(src=SRC, dst=DST, proto=1)) + data
    pkt = with_ip_checksum(pkt[:2] + len(pkt).to_bytes(2, "big") + pkt[4:])
    p = IP(pkt)
    assert (p[ICMP].type, p[ICMP].code, p[ICMP].id, p[ICMP].seq) == (type_, 0, 0xABCD, 42)
    assert p[ICMP].chksum == scapy_recomputed(pkt, ICMP)
    assert bytes(p[ICMP].payload) == payload
    assert data == bytes(ICMP(type=type_, id=0xABCD, seq=42) / Raw(payload))
    assert icmp.parse(data) == (type_, 0, (0xABCD << 16) | 42)


@pytest.mark.parametrize("type_,code,rest", [(3, 3, 0), (3, 4, 1500), (11, 0, 0), (12, 0, 20 << 24)])
def test_icmp_error_emit_is_parsed_by_scapy_with_its_checksum(type_, code, rest):
    quoted = bytes(IP(src=SRC, dst=DST, ttl=1) / UDP(sport=43902, dport=9) / Raw(b"hello"))[:28]
    data = icmp.emit(icmp.IcmpRepr(type_, code, rest), quoted)
    p = ICMP(data)
    assert (p.type, p.code) == (type_, code)
    q = ICMP(data)
    del q.chksum
    assert p.chksum == ICMP(bytes(q)).chksum == scapy_checksum(bytes(data[:2]) + b"\0\0" + data[4:])
    assert data[8:] == quoted
    assert data[:2] == bytes((type_, code)) and data[4:8] == rest.to_bytes(4, "big")
    if type_ == 3 and code == 4:
        assert p.nexthopmtu == 1500
    assert icmp.parse(data) == (type_, code, rest)


# icmp_rcv() validates the checksum first, then pulls the header: a short
# message is ICMP_CSUM unless its bytes happen to sum right, then a drop
# without a reason (NOT_SPECIFIED).
@pytest.mark.parametrize("length", range(8))
def test_icmp_shorter_than_8_is_checked_like_icmp_rcv(length):
    data = icmp.echo(8, 1, 1, b"")[:length]
    with pytest.raises(Malformed) as e:
        icmp.parse(data)
    assert reason(e) == ("NOT_SPECIFIED" if checksum.verify(data) else "ICMP_CSUM")


@pytest.mark.parametrize("data", [b"\xff\xff", b"\x00\xff\xff\x00", b"\xf0\x0f\x0f\xf0\x00\x00"])
def test_icmp_short_with_a_valid_checksum_is_not_specified(data):
    assert checksum.verify(data)
    with pytest.raises(Malformed) as e:
        icmp.parse(data)
    assert reason(e) == "NOT_SPECIFIED"


def test_icmp_short_uses_end_not_buffer_length():
    pkt = b"\x00\xff\xff\x00"
    with pytest.raises(Malformed) as e:
        icmp.parse(pkt + b"\0" * 50, 0, 4)
    assert reason(e) == "NOT_SPECIFIED"


def test_icmp_bad_checksum_is_icmp_csum():
    data = bytearray(icmp.echo(8, 1, 2, b"payload!"))
    data[-1] ^= 0x20
    with pytest.raises(Malformed) as e:
        icmp.parse(bytes(data))
    assert reason(e) == "ICMP_CSUM"


def test_icmp_checksum_covers_the_whole_message_up_to_end():
    data = icmp.echo(8, 1, 2, b"payload!")
    frame = bytes(Ether()) + ipv4.header(SRC_I, DST_I, 1, len(data)) + data + b"\x55" * 10   # padding
    ip = ipv4.parse(frame, 14)
    r = icmp.parse(frame, 14 + ip.ihl, 14 + ip.total_len)
    assert r.echo_seq == 2
    with pytest.raises(Malformed) as e:
        icmp.parse(frame, 14 + ip.ihl)          # padding counted: the checksum no longer matches
    assert reason(e) == "ICMP_CSUM"


def test_icmp_is_error():
    assert [t for t in range(256) if icmp.is_error(t)] == [3, 11, 12]


# ---------------------------------------------------------------- UDP

def _udp_packet(payload=b"hello", sport=43902, dport=9, src=SRC, dst=DST, **udp_kw):
    return bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport, **udp_kw) / Raw(payload))


@pytest.mark.parametrize("payload_len", [0, 1, 5, 8, 1472])
def test_udp_parses_scapy_datagram(payload_len):
    payload = random.Random(payload_len).randbytes(payload_len)
    pkt = bytes(IP(src=SRC, dst=DST) / UDP(sport=43902, dport=9) / payload) if payload else \
        bytes(IP(src=SRC, dst=DST) / UDP(sport=43902, dport=9))
    ip = ipv4.parse(pkt)
    r = udp.parse(pkt, ip.ihl, ip.total_len, ip.src, ip.dst)
    p = IP(pkt)
    assert r == (43902, 9, 8 + payload_len, p[UDP].chksum)
    assert r.checksum != 0


@pytest.mark.parametrize("payload_len", [0, 1, 2, 3, 17, 1472])
def test_udp_emit_is_parsed_by_scapy_with_its_checksum(payload_len):
    payload = random.Random(100 + payload_len).randbytes(payload_len)
    data = udp.emit(5353, 53, payload, SRC_I, DST_I)
    pkt = ipv4.header(SRC_I, DST_I, ipv4.IPPROTO_UDP, len(data)) + data
    p = IP(pkt)
    assert (p[UDP].sport, p[UDP].dport, p[UDP].len) == (5353, 53, 8 + payload_len)
    assert p[UDP].chksum == scapy_recomputed(pkt, UDP)
    expected = bytes(IP(src=SRC, dst=DST) / UDP(sport=5353, dport=53) / Raw(payload))[20:] if payload else \
        bytes(IP(src=SRC, dst=DST) / UDP(sport=5353, dport=53))[20:]
    assert data == expected
    assert udp.parse(pkt, 20, len(pkt), SRC_I, DST_I) == (5353, 53, 8 + payload_len, p[UDP].chksum)


def test_udp_checksum_covers_the_pseudo_header():
    data = udp.emit(1, 2, b"abc", SRC_I, DST_I)
    other = ipv4.aton("10.0.3.10")
    with pytest.raises(Malformed) as e:
        udp.parse(data, 0, len(data), other, DST_I)
    assert reason(e) == "UDP_CSUM"
    with pytest.raises(Malformed) as e:
        udp.parse(data, 0, len(data), SRC_I, other)
    assert reason(e) == "UDP_CSUM"
    ok = udp.parse(data, 0, len(data), SRC_I, DST_I)
    assert ok.length == 11


def _payload_whose_udp_checksum_is_zero(saddr, daddr, sport, dport, size=10):
    """A payload whose last 16-bit word makes the one's-complement sum 0xFFFF."""
    payload = bytearray(b"\x42" * (size - 2) + b"\0\0")
    length = 8 + size
    s = checksum.csum_partial(payload, checksum.csum_partial(struct.pack("!HHHH", sport, dport, length, 0),
                                                              checksum.pseudo_header_sum(saddr, daddr, 17, length)))
    payload[-2:] = (~s & 0xFFFF).to_bytes(2, "big")
    return bytes(payload)


def test_udp_computed_zero_checksum_is_sent_as_ffff():
    payload = _payload_whose_udp_checksum_is_zero(SRC_I, DST_I, 1000, 2000)
    assert checksum.inet_checksum(struct.pack("!HHHH", 1000, 2000, 18, 0) + payload,
                                  checksum.pseudo_header_sum(SRC_I, DST_I, 17, 18)) == 0
    data = udp.emit(1000, 2000, payload, SRC_I, DST_I)
    assert data[6:8] == b"\xff\xff"
    # scapy applies the same RFC 768 rule
    assert bytes(IP(src=SRC, dst=DST) / UDP(sport=1000, dport=2000) / Raw(payload))[20:] == data
    assert udp.parse(data, 0, len(data), SRC_I, DST_I).checksum == 0xFFFF


def test_udp_received_zero_checksum_means_none():
    pkt = _udp_packet(b"anything at all", chksum=0)
    assert pkt[26:28] == b"\0\0"
    r = udp.parse(pkt, 20, len(pkt), SRC_I, DST_I)
    assert r.checksum == 0 and r.length == 8 + 15
    # even with addresses that would not match any checksum
    assert udp.parse(pkt, 20, len(pkt), 1, 2).checksum == 0


def test_udp_bad_checksum_is_udp_csum():
    pkt = bytearray(_udp_packet(b"hello"))
    pkt[-1] ^= 0x01
    with pytest.raises(Malformed) as e:
        udp.parse(bytes(pkt), 20, len(pkt), SRC_I, DST_I)
    assert reason(e) == "UDP_CSUM"


def test_udp_checksum_ffff_that_should_be_another_value_is_udp_csum():
    pkt = bytearray(_udp_packet(b"hello"))
    assert pkt[26:28] != b"\xff\xff"
    pkt[26:28] = b"\xff\xff"
    with pytest.raises(Malformed) as e:
        udp.parse(bytes(pkt), 20, len(pkt), SRC_I, DST_I)
    assert reason(e) == "UDP_CSUM"


@pytest.mark.parametrize("avail", range(8))
def test_udp_short_header_is_a_drop_without_reason(avail):
    # __udp4_lib_rcv(): no room for the header -> drop with NOT_SPECIFIED
    pkt = _udp_packet(b"")
    with pytest.raises(Malformed) as e:
        udp.parse(pkt, 20, 20 + avail, SRC_I, DST_I)
    assert reason(e) == "NOT_SPECIFIED"


@pytest.mark.parametrize("ulen", [0, 1, 7])
def test_udp_length_below_8_is_pkt_too_small(ulen):
    pkt = bytearray(_udp_packet(b"hello", chksum=0))
    pkt[24:26] = ulen.to_bytes(2, "big")
    with pytest.raises(Malformed) as e:
        udp.parse(bytes(pkt), 20, len(pkt), SRC_I, DST_I)
    assert reason(e) == "PKT_TOO_SMALL"


@pytest.mark.parametrize("extra", [1, 2, 1000])
def test_udp_length_beyond_ip_payload_is_pkt_too_small(extra):
    pkt = bytearray(_udp_packet(b"hello"))
    pkt[24:26] = (13 + extra).to_bytes(2, "big")
    with pytest.raises(Malformed) as e:
        udp.parse(bytes(pkt) + b"\0" * extra, 20, len(pkt), SRC_I, DST_I)   # bytes after `end` don't count
    assert reason(e) == "PKT_TOO_SMALL"


def test_udp_length_checked_before_checksum():
    pkt = bytearray(_udp_packet(b"hello"))
    pkt[24:26] = (500).to_bytes(2, "big")         # checksum now wrong too
    with pytest.raises(Malformed) as e:
        udp.parse(bytes(pkt), 20, len(pkt), SRC_I, DST_I)
    assert reason(e) == "PKT_TOO_SMALL"


def test_udp_length_shorter_than_ip_payload_is_trimmed_before_checksum():
    # pskb_trim_rcsum(skb, ulen): bytes past the UDP length are not checksummed.
    data = udp.emit(7, 8, b"four", SRC_I, DST_I)
    buf = data + b"\xde\xad\xbe\xef\x01"
    r = udp.parse(buf, 0, len(buf), SRC_I, DST_I)
    assert r.length == 12


def test_udp_parse_in_ethernet_frame_with_padding():
    frame = bytes(Ether() / IP(src=SRC, dst=DST) / UDP(sport=1, dport=2) / Raw(b"x"))
    frame += b"\xaa" * (60 - len(frame))
    ip = ipv4.parse(frame, 14)
    r = udp.parse(frame, 14 + ip.ihl, 14 + ip.total_len, ip.src, ip.dst)
    assert (r.sport, r.dport, r.length) == (1, 2, 9)


def test_udp_random_datagrams_round_trip_both_ways():
    rng = random.Random(30)
    for _ in range(100):
        s, d = rng.getrandbits(32), rng.getrandbits(32)
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        payload = rng.randbytes(rng.randrange(0, 200))
        data = udp.emit(sport, dport, payload, s, d)
        pkt = bytes(IP(src=str(ipaddress.IPv4Address(s)), dst=str(ipaddress.IPv4Address(d))) /
                    UDP(sport=sport, dport=dport) / Raw(payload)) if payload else \
            bytes(IP(src=str(ipaddress.IPv4Address(s)), dst=str(ipaddress.IPv4Address(d))) /
                  UDP(sport=sport, dport=dport))
        assert pkt[20:] == data
        assert udp.parse(pkt, 20, len(pkt), s, d) == (sport, dport, 8 + len(payload), IP(pkt)[UDP].chksum)


# ---------------------------------------------------------------- real Linux captures

def _frames(path):
    return [bytes(data) for data, _meta in RawPcapReader(path)]


def _ip_int(text):
    return int(ipaddress.IPv4Address(text))


def _check_ip(frame, p):
    ip = ipv4.parse(frame, 14)
    s = p[IP]
    assert ip == ipv4.Ipv4Repr(s.ihl * 4, s.tos, s.len, s.id, (int(s.flags) << 13) | s.frag, s.ttl, s.proto,
                               _ip_int(s.src), _ip_int(s.dst))
    return ip


@pytest.mark.parametrize("path", LINUX_PCAPS, ids=os.path.basename)
def test_linux_capture_every_frame_parses_like_scapy(path):
    frames = _frames(path)
    fragments = {}
    for n, frame in enumerate(frames):
        p = Ether(frame)
        eth = ethernet.parse(frame)
        assert eth == (bytes.fromhex(p.dst.replace(":", "")), bytes.fromhex(p.src.replace(":", "")), p.type), n
        if eth.ethertype == ethernet.ETH_P_ARP:
            a = arp.parse(frame, 14)
            assert a == (p[ARP].op, bytes.fromhex(p[ARP].hwsrc.replace(":", "")), _ip_int(p[ARP].psrc),
                         bytes.fromhex(p[ARP].hwdst.replace(":", "")), _ip_int(p[ARP].pdst)), n
            continue
        assert eth.ethertype == ethernet.ETH_P_IP, n
        ip = _check_ip(frame, p)
        start, end = 14 + ip.ihl, 14 + ip.total_len
        if ip.is_fragment:
            fragments.setdefault((ip.src, ip.dst, ip.ident, ip.proto), []).append((ip, frame))
            continue
        if ip.proto == ipv4.IPPROTO_ICMP:
            r = icmp.parse(frame, start, end)
            s = p[ICMP]
            assert (r.type, r.code) == (s.type, s.code), n
            if r.type in (icmp.ICMP_ECHO, icmp.ICMP_ECHOREPLY):
                assert (r.echo_id, r.echo_seq) == (s.id, s.seq), n
            else:
                assert r.rest == int.from_bytes(frame[start + 4:start + 8], "big"), n
                assert icmp.is_error(r.type)
        elif ip.proto == ipv4.IPPROTO_UDP:
            r = udp.parse(frame, start, end, ip.src, ip.dst)
            s = p[UDP]
            assert r == (s.sport, s.dport, s.len, s.chksum), n
            assert s.chksum == scapy_recomputed(frame[14:end], UDP), n
    # fragmented datagrams: reassembled, the UDP datagram parses and matches scapy's defragment()
    for key, frags in fragments.items():
        frags.sort(key=lambda f: f[0].frag_off & ipv4.IP_OFFSET)
        payload = b""
        for ip, frame in frags:
            assert (ip.frag_off & ipv4.IP_OFFSET) * 8 == len(payload)
            payload += frame[14 + ip.ihl:14 + ip.total_len]
        assert not frags[-1][0].frag_off & ipv4.IP_MF
        src, dst, _ident, proto = key
        if proto == ipv4.IPPROTO_UDP:
            r = udp.parse(payload, 0, len(payload), src, dst)
            whole = defragment([Ether(f)[IP] for _ip, f in frags])
            assert len(whole) == 1
            s = whole[0][UDP]
            assert r == (s.sport, s.dport, s.len, s.chksum)
            assert r.length == len(payload)


@pytest.mark.parametrize("path", LINUX_PCAPS, ids=os.path.basename)
def test_linux_capture_icmp_error_quotes_an_ipv4_header(path):
    for frame in _frames(path):
        p = Ether(frame)
        if ICMP not in p or not icmp.is_error(p[ICMP].type):
            continue
        ip = ipv4.parse(frame, 14)
        quoted = frame[14 + ip.ihl + 8:14 + ip.total_len]
        q = IPerror(quoted)
        # the quoted header's own checksum is valid: it parses up to the length check
        try:
            inner = ipv4.parse(quoted)
        except Malformed as e:
            assert e.reason == "PKT_TOO_SMALL" and q.len > len(quoted)
        else:
            assert (inner.src, inner.dst, inner.proto, inner.ident) == (_ip_int(q.src), _ip_int(q.dst), q.proto, q.id)


def test_linux_first_fragment_alone_has_udp_length_beyond_its_payload():
    path = next(p for p in LINUX_PCAPS if os.path.basename(p) == "udp-fragments.h1.pcap")
    frame = _frames(path)[0]
    ip = ipv4.parse(frame, 14)
    assert ip.frag_off & ipv4.IP_MF and not ip.frag_off & ipv4.IP_OFFSET
    with pytest.raises(Malformed) as e:
        udp.parse(frame, 14 + ip.ihl, 14 + ip.total_len, ip.src, ip.dst)
    assert reason(e) == "PKT_TOO_SMALL"


def test_linux_captures_cover_every_parser():
    seen = {"arp": 0, "icmp_echo": 0, "icmp_error": 0, "udp": 0, "tcp": 0, "fragment": 0}
    for path in LINUX_PCAPS:
        for frame in _frames(path):
            eth = ethernet.parse(frame)
            if eth.ethertype == ethernet.ETH_P_ARP:
                seen["arp"] += 1
                continue
            ip = ipv4.parse(frame, 14)
            if ip.is_fragment:
                seen["fragment"] += 1
            elif ip.proto == 1:
                seen["icmp_error" if icmp.is_error(frame[14 + ip.ihl]) else "icmp_echo"] += 1
            elif ip.proto == 17:
                seen["udp"] += 1
            elif ip.proto == 6:
                seen["tcp"] += 1
    assert len(LINUX_PCAPS) == 16
    assert all(seen.values()), seen


def test_icmp_quoted_flow_matches_scapy():
    """icmp.quoted(): the one decode of an ICMP error's quoted datagram, checked
    against what scapy puts inside an ICMP error (UDP ports, an echo's identifier)."""
    from scapy.layers.inet import ICMP as SICMP, IP as SIP, UDP as SUDP
    inner = bytes(SIP(src="10.0.1.10", dst="10.0.2.10") / SUDP(sport=40000, dport=9) / b"hello")
    err = bytes(SIP(src="10.0.2.10", dst="10.0.1.10") / SICMP(type=3, code=3) / inner)
    q = icmp.quoted(err, 20 + 8)
    assert (ipv4.ntoa(q.src), ipv4.ntoa(q.dst), q.proto, q.l4, q.ports) == \
        ("10.0.1.10", "10.0.2.10", 17, 48, (40000, 9))
    echo = bytes(SIP(src="10.0.1.10", dst="10.0.2.10", ihl=6, options=b"\x01\x01\x01\x00") /
                 SICMP(type=8, id=0x4242, seq=1))
    q = icmp.quoted(echo, 0)
    assert q.l4 == 24 and q.echo == (8, 0x4242) and q.proto == 1
