"""Unit tests of the IPv6 wire code (services/wire/ipv6.py, ipv6_exthdrs.py,
icmpv6.py, and the IPv6 pseudo-header in checksum.py, udp.py and tcp.py):
cross-checked against scapy in both directions, against the kernel's rules
read from net/ipv6, against every frame Linux 6.18 sent in the captures of
tests/data/linux/ipv6 (record6.sh in shared/captures/linux made them), and
fuzzed with Hypothesis."""
import ipaddress
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pktflow.services.wire import Malformed, checksum, ethernet, icmpv6, ipv6, tcp, udp
from pktflow.services.wire import ipv6_exthdrs as ext
from pktflow.services.wire.checksum import pseudo_header_sum6
from pktflow.v1.skb_pb2 import DropReason
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (HBHOptUnknown, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect, ICMPv6ND_RS,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRedirectedHdr,
                                ICMPv6NDOptSrcLLAddr, ICMPv6NDOptUnknown, ICMPv6PacketTooBig, ICMPv6ParamProblem,
                                ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, RouterAlert, defragment6, fragment6, in6_chksum, in6_getnsma,
                                in6_getnsmac)
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader
from scapy.utils6 import in6_mactoifaceid
from conftest import LINUX_CAPTURES

# Not under tests/data/linux itself: test_wire.py and test_pcap.py take every pcap there for IPv4.
IPV6_CAPTURES = LINUX_CAPTURES / "ipv6"
IPV6_PCAPS = sorted(str(p) for p in IPV6_CAPTURES.glob("ipv6-*.pcap"))

SRC, DST = "2001:db8:1::10", "2001:db8:2::10"
S, D = ipv6.aton(SRC), ipv6.aton(DST)
LL_R1 = "fe80::ff:fe00:101"
MAC_H1, MAC_R1 = bytes.fromhex("02000000010a"), bytes.fromhex("020000000101")
MAC_STR_R1 = "02:00:00:00:01:01"

# The kernel's drop reasons (include/net/dropreason-core.h) this code raises that skb.proto
# does not have yet; IPV6_TOO_MANY_EXTHDRS is upstream's from 2026 (3744b0964d52).
KERNEL_IPV6_REASONS = {"IPV6_BAD_EXTHDR", "IPV6_TOO_MANY_EXTHDRS", "IPV6_NDISC_FRAG", "IPV6_NDISC_HOP_LIMIT",
                       "IPV6_NDISC_BAD_CODE", "IPV6_NDISC_BAD_OPTIONS", "IPV6_NDISC_NS_OTHERHOST"}
REASONS = set(DropReason.keys()) | KERNEL_IPV6_REASONS


def reason(exc_info) -> str:
    return exc_info.value.reason


def a(text: str) -> int:
    return ipv6.aton(text)


def ip6(**kw):
    kw.setdefault("src", SRC)
    kw.setdefault("dst", DST)
    return IPv6(**kw)


def repr_of(pkt: bytes) -> ipv6.Ipv6Repr:
    return ipv6.parse(pkt)


def ref_pseudo(src: int, dst: int, proto: int, length: int) -> bytes:
    """RFC 8200 8.1, literally: source, destination, 32-bit length, three zero bytes, next header."""
    return src.to_bytes(16, "big") + dst.to_bytes(16, "big") + length.to_bytes(4, "big") + b"\0\0\0" + bytes((proto,))


# ---------------------------------------------------------------- checksum

def test_pseudo_header_sum6_is_the_rfc8200_layout():
    rng = random.Random(6)
    for _ in range(200):
        s, d = rng.getrandbits(128), rng.getrandbits(128)
        proto, length = rng.choice((6, 17, 58)), rng.randrange(0, 1 << 20)
        assert pseudo_header_sum6(s, d, proto, length) == checksum.csum_partial(ref_pseudo(s, d, proto, length))


@pytest.mark.parametrize("proto,layer", [(58, ICMPv6EchoRequest(id=7, seq=9) / Raw(b"x" * 33)),
                                         (17, UDP(sport=1, dport=2) / Raw(b"abc")),
                                         (6, TCP(sport=1, dport=2, flags="S"))])
def test_pseudo_header_sum6_checksums_as_scapy_in6_chksum(proto, layer):
    pkt = ip6() / layer
    data = bytearray(bytes(pkt)[40:])
    field = 2 if proto == 58 else 6 if proto == 17 else 16
    data[field:field + 2] = b"\0\0"
    assert checksum.inet_checksum(data, pseudo_header_sum6(S, D, proto, len(data))) == \
        in6_chksum(proto, pkt[IPv6], bytes(data))


# ---------------------------------------------------------------- the fixed header

def test_ipv6_parses_scapy_packet_fields():
    pkt = bytes(ip6(tc=0xB8, fl=0xABCDE, hlim=7, nh=59) / Raw(b"z" * 10))
    assert repr_of(pkt) == ipv6.Ipv6Repr(0xB8, 0xABCDE, 10, 59, 7, S, D)


def test_ipv6_parse_at_offset_in_a_padded_ethernet_frame():
    frame = bytes(Ether(dst="33:33:00:00:00:01") / ip6(nh=59))
    frame += b"\xaa" * (60 - len(frame))
    r = ipv6.parse(frame, 14)
    assert r.payload_len == 0 and ipv6.payload_end(frame, 14, r) == 54


@pytest.mark.parametrize("kw", [dict(), dict(tclass=0xFF, flow_label=0xFFFFF, hop_limit=255),
                                dict(tclass=3, flow_label=1, hop_limit=1)])
def test_ipv6_header_is_parsed_by_scapy(kw):
    hdr = ipv6.header(S, D, 17, 20, **kw)
    p = IPv6(hdr + bytes(20))
    assert (p.version, p.tc, p.fl, p.plen, p.nh, p.hlim, p.src, p.dst) == \
        (6, kw.get("tclass", 0), kw.get("flow_label", 0), 20, 17, kw.get("hop_limit", 64), SRC, DST)


def test_ipv6_emit_matches_scapy_bytes_and_computes_the_payload_length():
    r = ipv6.Ipv6Repr(0x10, 0x12345, 999, 58, 64, S, D)
    assert ipv6.emit(r, b"payload") == bytes(ip6(tc=0x10, fl=0x12345, nh=58, hlim=64) / Raw(b"payload"))


def test_ipv6_header_refuses_a_jumbo_payload():
    with pytest.raises(ValueError):
        ipv6.header(S, D, 17, 65536)


@pytest.mark.parametrize("length", range(40))
def test_ipv6_shorter_than_40_bytes_is_ip_inhdr(length):
    with pytest.raises(Malformed) as e:
        ipv6.parse(bytes(ip6(nh=59))[:length])
    assert reason(e) == "IP_INHDR"


@pytest.mark.parametrize("version", [0, 4, 5, 7, 15])
def test_ipv6_wrong_version_is_unhandled_proto_as_ip6_rcv_core(version):
    pkt = bytearray(bytes(ip6(nh=59)))
    pkt[0] = (version << 4) | (pkt[0] & 0x0F)
    with pytest.raises(Malformed) as e:
        ipv6.parse(pkt)
    assert reason(e) == "UNHANDLED_PROTO"


@pytest.mark.parametrize("src,dst", [("::1", DST), (SRC, "::1"), (SRC, "ff01::1"), (SRC, "ff00::1"),
                                     (SRC, "ff10::1"), ("ff02::1", DST)])
def test_ipv6_addresses_rfc4291_refuses_are_ip_inhdr(src, dst):
    with pytest.raises(Malformed) as e:
        ipv6.parse(bytes(IPv6(src=src, dst=dst, nh=59)))
    assert reason(e) == "IP_INHDR"


@pytest.mark.parametrize("src,dst", [("::1", "::1"), ("::1", "ff01::1")])
def test_ipv6_loopback_and_interface_local_multicast_pass_on_lo(src, dst):
    assert ipv6.parse(bytes(IPv6(src=src, dst=dst, nh=59)), loopback=True).dst == a(dst)


def test_ipv6_multicast_scope_0_is_refused_even_on_lo():
    with pytest.raises(Malformed) as e:
        ipv6.parse(bytes(IPv6(src="::1", dst="ff00::1", nh=59)), loopback=True)
    assert reason(e) == "IP_INHDR"


def test_ipv6_unspecified_source_is_accepted():
    assert ipv6.parse(bytes(IPv6(src="::", dst="ff02::1:ff00:99", nh=59))).src == 0


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_ipv6_payload_length_beyond_the_data_is_pkt_too_small(cut):
    pkt = bytes(ip6() / UDP() / Raw(b"x" * 100))
    with pytest.raises(Malformed) as e:
        ipv6.parse(pkt[:-cut])
    assert reason(e) == "PKT_TOO_SMALL"


def test_ipv6_checks_run_in_ip6_rcv_core_order():
    short = bytes(IPv6(src="ff02::1", dst=DST, plen=500, nh=59))
    with pytest.raises(Malformed) as e:                      # addresses before the length
        ipv6.parse(short)
    assert reason(e) == "IP_INHDR"
    bad = bytearray(short)
    bad[0] = 0x45
    with pytest.raises(Malformed) as e:                      # the version before the addresses
        ipv6.parse(bad)
    assert reason(e) == "UNHANDLED_PROTO"


def test_ipv6_zero_payload_length_before_hop_by_hop_is_a_jumbogram_left_to_the_option():
    pkt = bytes(ip6(nh=0, plen=0)) + bytes(8)
    assert ipv6.parse(pkt).payload_len == 0


def test_ipv6_trailing_bytes_are_not_payload():
    frame = bytes(ip6() / UDP() / Raw(b"abc")) + b"\xee" * 9
    r = ipv6.parse(frame)
    assert ipv6.payload_end(frame, 0, r) == len(frame) - 9


def test_decrease_hop_limit_and_with_payload_len_touch_one_field():
    hdr = ipv6.header(S, D, 17, 100, hop_limit=64, tclass=0x22, flow_label=0x54321)
    r = ipv6.parse(ipv6.decrease_hop_limit(hdr) + bytes(100))
    assert r == ipv6.Ipv6Repr(0x22, 0x54321, 100, 17, 63, S, D)
    assert ipv6.parse(ipv6.with_payload_len(hdr, 8) + bytes(8)).payload_len == 8
    assert ipv6.dsfield(hdr) == 0x22


# ---------------------------------------------------------------- addresses

@pytest.mark.parametrize("text", ["::", "::1", "fe80::ff:fe00:10a", "2001:db8:1::10", "ff02::1:ff00:99",
                                  "::ffff:10.0.1.10", "2001:db8:0:1:1:1:1:1", "ffff:" * 7 + "ffff"])
def test_aton_ntoa_agree_with_ipaddress(text):
    n = ipv6.aton(text)
    assert n == int(ipaddress.IPv6Address(text))
    assert ipv6.ntoa(n) == str(ipaddress.IPv6Address(text)) or text.startswith("::ffff:")
    assert ipv6.aton(ipv6.ntoa(n)) == n


@pytest.mark.parametrize("bad", ["", "10.0.0.1", "2001:db8::1::2", "fe80::1%eth0", "12345::", ":::", None, 5])
def test_aton_refuses_what_inet_pton_refuses(bad):
    with pytest.raises(ValueError):
        ipv6.aton(bad)


def test_parse_prefix_and_prefix_mask():
    assert ipv6.parse_prefix("2001:db8:1::10/64") == (a("2001:db8:1::10"), 64)
    assert ipv6.parse_prefix("fe80::1") == (a("fe80::1"), 128)
    for bad in ("2001:db8::/129", "2001:db8::/-1", "2001:db8::/x", "2001:db8::/"):
        with pytest.raises(ValueError):
            ipv6.parse_prefix(bad)
    for plen in (0, 1, 10, 64, 127, 128):
        assert ipv6.prefix_mask(plen) == int(ipaddress.IPv6Network(f"::/{plen}").netmask)


@pytest.mark.parametrize("mac", ["02:00:00:00:01:0a", "00:11:22:33:44:55", "fe:ff:ff:ff:ff:ff"])
def test_link_local_by_eui64_and_the_solicited_node_group_agree_with_scapy(mac):
    raw = ethernet.mac_from_str(mac)
    ll = ipv6.link_local(raw)
    assert ll == int(ipaddress.IPv6Address("fe80::" + in6_mactoifaceid(mac)))
    assert ipv6.solicited_node(ll) == int(ipaddress.IPv6Address(in6_getnsma(ll.to_bytes(16, "big"))))
    assert ipv6.multicast_mac(ipv6.solicited_node(ll)) == \
        ethernet.mac_from_str(in6_getnsmac(ipv6.solicited_node(ll).to_bytes(16, "big")))


def test_h1s_link_local_is_the_one_linux_gave_it():
    assert ipv6.ntoa(ipv6.link_local(MAC_H1)) == "fe80::ff:fe00:10a"
    assert ipv6.ntoa(ipv6.solicited_node(a("2001:db8:1::99"))) == "ff02::1:ff00:99"
    assert ipv6.multicast_mac(a("ff02::16")) == bytes.fromhex("333300000016")


T = ipv6
ADDR_TYPES = [  # __ipv6_addr_type() of net/ipv6/addrconf_core.c, by hand: (address, flags, src scope)
    ("::", T.IPV6_ADDR_ANY, -1),
    ("::1", T.IPV6_ADDR_LOOPBACK | T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_LINKLOCAL),
    ("::10.0.0.1", T.IPV6_ADDR_COMPATV4 | T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_GLOBAL),
    ("::ffff:10.0.0.1", T.IPV6_ADDR_MAPPED, T.IPV6_ADDR_SCOPE_GLOBAL),
    ("2001:db8::1", T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_GLOBAL),
    ("fd00::1", T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_GLOBAL),
    ("fe80::1", T.IPV6_ADDR_LINKLOCAL | T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_LINKLOCAL),
    ("febf::1", T.IPV6_ADDR_LINKLOCAL | T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_LINKLOCAL),
    ("fec0::1", T.IPV6_ADDR_SITELOCAL | T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_SITELOCAL),
    ("ff01::1", T.IPV6_ADDR_MULTICAST | T.IPV6_ADDR_LOOPBACK, T.IPV6_ADDR_SCOPE_NODELOCAL),
    ("ff02::1", T.IPV6_ADDR_MULTICAST | T.IPV6_ADDR_LINKLOCAL, T.IPV6_ADDR_SCOPE_LINKLOCAL),
    ("ff05::2", T.IPV6_ADDR_MULTICAST | T.IPV6_ADDR_SITELOCAL, T.IPV6_ADDR_SCOPE_SITELOCAL),
    ("ff08::2", T.IPV6_ADDR_MULTICAST, T.IPV6_ADDR_SCOPE_ORGLOCAL),
    ("ff0e::2", T.IPV6_ADDR_MULTICAST, T.IPV6_ADDR_SCOPE_GLOBAL),
    ("100::1", T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_GLOBAL),          # first bits 000, not :: nor mapped
    ("e000::1", T.IPV6_ADDR_UNICAST, T.IPV6_ADDR_SCOPE_GLOBAL),         # first bits 111, none of the above
]


@pytest.mark.parametrize("text,flags,scope", ADDR_TYPES)
def test_addr_type_and_scope_as_ipv6_addr_type(text, flags, scope):
    assert ipv6.addr_type(a(text)) == flags
    assert ipv6.addr_src_scope(a(text)) == scope


def test_address_predicates_agree_with_ipaddress():
    rng = random.Random(66)
    samples = [a(t) for t, _f, _s in ADDR_TYPES] + [rng.getrandbits(128) for _ in range(500)]
    for n in samples:
        addr = ipaddress.IPv6Address(n)
        assert ipv6.is_multicast(n) == addr.is_multicast
        assert ipv6.is_linklocal(n) == (addr in ipaddress.IPv6Network("fe80::/10"))
        assert ipv6.is_v4mapped(n) == (addr.ipv4_mapped is not None)
        assert ipv6.is_solicited_multicast(n) == (addr in ipaddress.IPv6Network("ff02::1:ff00:0/104"))
    assert ipv6.v4mapped(0x0A00010A) == a("::ffff:10.0.1.10")
    assert ipv6.mc_scope(a("ff05::1")) == 5


# ---------------------------------------------------------------- extension headers

def chain(*layers, dst=DST, payload=UDP(sport=1, dport=2) / Raw(b"data")) -> bytes:
    pkt = IPv6(src=SRC, dst=dst)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt / payload)


def rcv(pkt: bytes, **kw) -> ext.ExtChain:
    return ext.rcv_exthdrs(pkt, 0, ipv6.parse(pkt), **kw)


def raises(pkt: bytes, **kw) -> Malformed:
    with pytest.raises(Malformed) as e:
        rcv(pkt, **kw)
    return e.value


def test_rcv_exthdrs_walks_scapys_chain_in_order_to_the_transport_header():
    pkt = chain(IPv6ExtHdrHopByHop(options=[RouterAlert()]), IPv6ExtHdrDestOpt(),
                IPv6ExtHdrRouting(addresses=[DST], segleft=0), IPv6ExtHdrFragment(offset=0, m=0, id=5),
                IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"abc")]))
    c = rcv(pkt)
    assert [type(h).__name__ for h in c.headers] == ["OptHdr", "OptHdr", "RoutingHdr", "FragHdr", "OptHdr"]
    assert c.proto == 17 and c.offset == len(pkt) - 12 and c.frag is None
    assert c.nhoff == c.offset - c.headers[-1].hdrlen
    assert c.headers[0].router_alert == 0 and c.headers[4].option(0x1E) == b"abc"
    assert b"".join(ext.emit_exthdr(h) for h in c.headers) == pkt[40:c.offset]     # re-emitted byte for byte


def test_rcv_exthdrs_without_extension_headers():
    pkt = chain()
    assert rcv(pkt) == ext.ExtChain(17, 40, 6, ())


@pytest.mark.parametrize("options", [[], [(5, b"\0\0")], [(0x1E, b"abc")], [(0x1E, b"abcdef")], [(0, b""), (0, b"")],
                                     [(0x1E, b"")], [(1, b"\0\0\0"), (0x1E, b"12345678901")]])
def test_opt_hdr_emit_is_parsed_by_scapy_and_matches_its_padding(options):
    hdr = ext.opt_hdr(17, options)
    assert len(hdr) % 8 == 0
    s = IPv6ExtHdrDestOpt(hdr)
    assert s.nh == 17 and (s.len + 1) * 8 == len(hdr)
    ours = ext.parse_destopts(bytes(ip6(nh=60) / Raw(hdr)), 0, 40, repr_of(bytes(ip6(nh=60) / Raw(hdr))))
    assert [o for o in ours.options if o[0] not in (0, 1)] == [o for o in options if o[0] not in (0, 1)]
    if not any(t in (0, 1) for t, _d in options):
        assert hdr == bytes(IPv6ExtHdrDestOpt(nh=17, options=[HBHOptUnknown(otype=t, optdata=d) if t != 5
                                                               else RouterAlert() for t, d in options]))


def test_hop_by_hop_not_first_is_an_unknown_next_header():
    e = raises(chain(IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop()))
    assert (e.reason, e.code, e.pointer) == ("IP_NOPROTO", ext.ICMPV6_UNK_NEXTHDR, 40)


def test_no_next_header_ends_the_packet():
    assert raises(chain(IPv6ExtHdrDestOpt(nh=59), payload=Raw(b""))).reason == "NOT_SPECIFIED"


@pytest.mark.parametrize("n,ok", [(11, True), (12, True), (13, False), (40, False)])
def test_more_than_12_extension_headers_is_too_many(n, ok):
    pkt = chain(*[IPv6ExtHdrDestOpt() for _ in range(n)])
    if ok:
        assert len(rcv(pkt).headers) == n
    else:
        assert raises(pkt).reason == "IPV6_TOO_MANY_EXTHDRS"


def test_hop_by_hop_counts_towards_the_12():
    assert len(rcv(chain(IPv6ExtHdrHopByHop(), *[IPv6ExtHdrDestOpt() for _ in range(11)])).headers) == 12
    assert raises(chain(IPv6ExtHdrHopByHop(), *[IPv6ExtHdrDestOpt() for _ in range(12)])).reason == \
        "IPV6_TOO_MANY_EXTHDRS"


@pytest.mark.parametrize("nh,layer", [(0, IPv6ExtHdrHopByHop(options=[RouterAlert()])), (60, IPv6ExtHdrDestOpt()),
                                      (43, IPv6ExtHdrRouting(addresses=[DST], segleft=0))])
@pytest.mark.parametrize("cut", [1, 7, 8])
def test_a_header_cut_short_is_freed_without_a_reason(nh, layer, cut):
    pkt = bytes(ip6() / layer)
    pkt = pkt[:-cut] if cut < 8 or len(pkt) > 48 else pkt[:41]
    pkt = bytes(ipv6.with_payload_len(pkt[:40], len(pkt) - 40)) + pkt[40:]
    assert raises(pkt).reason == "NOT_SPECIFIED"


# TLV options (ip6_parse_tlv()): padding, lengths, counts, the actions of unknown types
def tlv(options, hop=False, dst=DST):
    layer = IPv6ExtHdrHopByHop if hop else IPv6ExtHdrDestOpt
    return chain(layer(nh=17) / Raw(b""), dst=dst) if options is None else \
        bytes(IPv6(src=SRC, dst=dst, nh=0 if hop else 60) / Raw(ext.opt_hdr(59, options)))


@pytest.mark.parametrize("options", [[(1, b"\0" * 4)], [(0, b"")] * 6, [(1, b"\0" * 2), (0, b""), (0, b"")]])
def test_up_to_7_bytes_of_padding_pass(options):
    assert len(ext.opt_hdr(59, options)) == 8
    assert raises(tlv(options)).reason == "NOT_SPECIFIED"      # NEXTHDR_NONE after it: the options passed


@pytest.mark.parametrize("body", [bytes((1, 6)) + bytes(6) + bytes((0,)) * 6,        # 8 + 6 bytes of padding
                                  bytes((0,)) * 8 + bytes(6),                          # eight Pad1
                                  bytes((1, 4, 0, 0, 1, 0)),                           # PadN with a non-zero byte
                                  bytes((0x1E, 9)) + bytes(4),                         # option beyond the header
                                  bytes((0, 0, 0, 0, 0, 0x1E))])                      # type without its length
def test_malformed_tlvs_are_ip_inhdr(body):
    hdr = bytes((59, (2 + len(body)) // 8 - 1)) + body
    assert len(hdr) % 8 == 0
    assert raises(bytes(IPv6(src=SRC, dst=DST, nh=60) / Raw(hdr))).reason == "IP_INHDR"


def test_more_than_8_options_is_ip_inhdr():
    assert raises(tlv([(0x1E, b"")] * 8)).reason == "NOT_SPECIFIED"
    assert raises(tlv([(0x1E, b"")] * 9)).reason == "IP_INHDR"


@pytest.mark.parametrize("hop", [False, True])
@pytest.mark.parametrize("otype,dst,want", [
    (0x1E, DST, None),                                              # 00: skip over it
    (0x5E, DST, ("UNHANDLED_PROTO", None)),                         # 01: drop
    (0x9E, DST, ("UNHANDLED_PROTO", ext.ICMPV6_UNK_OPTION)),        # 10: parameter problem
    (0x9E, "ff02::1", ("UNHANDLED_PROTO", ext.ICMPV6_UNK_OPTION)),  # 10: even to a multicast address
    (0xDE, DST, ("UNHANDLED_PROTO", ext.ICMPV6_UNK_OPTION)),        # 11: parameter problem ...
    (0xDE, "ff02::1", ("UNHANDLED_PROTO", None)),                   # ... unless to a multicast address
])
def test_unknown_option_does_what_its_high_bits_say(hop, otype, dst, want):
    pkt = tlv([(1, b""), (otype, b"xy")], hop=hop, dst=dst)
    e = raises(pkt)
    if want is None:
        assert e.reason == "NOT_SPECIFIED"                          # passed, then NEXTHDR_NONE
        return
    assert e.reason == want[0] and getattr(e, "code", None) == want[1]
    if want[1] is not None:
        assert e.pointer == 44                                      # the option's type, from the IPv6 header


def test_an_unknown_option_is_acted_on_before_a_later_option_is_judged():
    pkt = bytes(IPv6(src=SRC, dst=DST, nh=60) / Raw(bytes((59, 0, 0x9E, 0, 0x1E, 5, 0, 0))))
    e = raises(pkt)
    assert (e.reason, e.code, e.pointer) == ("UNHANDLED_PROTO", ext.ICMPV6_UNK_OPTION, 42)


def test_router_alert_of_a_wrong_length_is_ip_inhdr():
    assert raises(tlv([(5, b"\0")], hop=True)).reason == "IP_INHDR"
    assert raises(tlv([(5, b"\0\0")], hop=True)).reason == "NOT_SPECIFIED"      # the right length passes
    assert raises(tlv([(5, b"\0")], hop=False)).reason == "NOT_SPECIFIED"       # unknown (00) in a dest header


def test_ioam_must_be_4n_aligned_and_calipso_is_refused():
    assert raises(tlv([(0, b""), (0, b""), (49, b"\0\0")], hop=True)).reason == "NOT_SPECIFIED"   # at 44: ignored
    assert raises(tlv([(49, b"\0\0")], hop=True)).reason == "IP_INHDR"                             # at 42
    assert raises(tlv([(7, bytes(8))], hop=True)).reason == "IP_INHDR"


def jumbo(plen: int, length: int, align: bool = True) -> bytes:
    opts = ([] if align else [(0, b"")]) + [(194, length.to_bytes(4, "big"))]
    hdr = ext.opt_hdr(59, opts)
    return ipv6.header(S, D, 0, plen) + hdr + bytes(max(0, length - len(hdr)))


def test_jumbo_payload_checks_as_ipv6_hop_jumbo():
    assert raises(jumbo(0, 70000)).reason == "NOT_SPECIFIED"             # accepted, then NEXTHDR_NONE
    e = raises(jumbo(0, 65535))
    assert (e.reason, e.code, e.pointer) == ("IP_INHDR", 0, 44)
    e = raises(jumbo(8, 70000)[:48] + bytes(8))
    assert (e.reason, e.code, e.pointer) == ("IP_INHDR", 0, 42)
    assert raises(jumbo(0, 70000)[:1000]).reason == "PKT_TOO_SMALL"
    assert raises(jumbo(0, 70000, align=False)).reason == "IP_INHDR"


# routing headers (ipv6_rthdr_rcv())
@pytest.mark.parametrize("segleft", [1, 2])
def test_type_0_routing_header_with_segments_left_is_refused_pointing_at_its_type(segleft):
    pkt = chain(IPv6ExtHdrRouting(addresses=["2001:db8::1", "2001:db8::2"], segleft=segleft))
    e = raises(pkt)
    assert isinstance(e, ext.ParamProblem)
    assert (e.reason, e.code, e.pointer) == ("NOT_SPECIFIED", ext.ICMPV6_HDR_FIELD, 42)


def test_type_0_routing_header_with_no_segments_left_is_passed_over():
    c = rcv(chain(IPv6ExtHdrRouting(addresses=["2001:db8::1", "2001:db8::2"], segleft=0)))
    assert c.proto == 17 and c.headers[0].addresses == (a("2001:db8::1"), a("2001:db8::2"))


def test_rt0_hdr_is_scapys():
    hdr = ext.rt0_hdr(17, [a("2001:db8::1"), a("2001:db8::2")], 2)
    assert hdr == bytes(IPv6ExtHdrRouting(nh=17, addresses=["2001:db8::1", "2001:db8::2"], segleft=2))


@pytest.mark.parametrize("type_,segleft", [(2, 1), (5, 1), (253, 3)])
def test_other_routing_types_with_segments_left_are_refused_the_same_way(type_, segleft):
    pkt = chain(Raw(ext.routing_hdr(17, type_, segleft, bytes(4))))
    pkt = ipv6.header(S, D, 43, len(pkt) - 40) + pkt[40:]
    e = raises(pkt)
    assert (e.code, e.pointer) == (ext.ICMPV6_HDR_FIELD, 42)


@pytest.mark.parametrize("type_", [3, 4])
@pytest.mark.parametrize("segleft", [0, 1])
def test_segment_routing_headers_are_dropped_while_seg6_is_off(type_, segleft):
    pkt = ipv6.header(S, D, 43, 16) + ext.routing_hdr(59, type_, segleft, bytes(12))
    e = raises(pkt)
    assert e.reason == "NOT_SPECIFIED" and not isinstance(e, ext.ParamProblem)


def test_routing_header_to_a_multicast_address_or_another_host_is_dropped():
    assert not isinstance(raises(chain(IPv6ExtHdrRouting(segleft=0), dst="ff02::1")), ext.ParamProblem)
    assert not isinstance(raises(chain(IPv6ExtHdrRouting(segleft=0)), pkt_host=False), ext.ParamProblem)


# fragment headers (ipv6_frag_rcv(), ip6_frag_queue())
def fragments(size=3000, fragsize=1280, **kw):
    pkt = ip6() / IPv6ExtHdrFragment(id=0x1234, **kw) / UDP(sport=1, dport=2) / Raw(bytes(range(256)) * (size // 256))
    return [bytes(f) for f in fragment6(pkt, fragsize)]


def test_fragments_stop_the_walk_for_reassembly():
    frags = fragments()
    assert len(frags) == 3
    seen = []
    for f in frags:
        c = rcv(f)
        assert c.proto == ext.NEXTHDR_FRAGMENT and c.offset == 40 and c.nhoff == 6
        s = IPv6(f)[IPv6ExtHdrFragment]
        assert (c.frag.nexthdr, c.frag.offset, c.frag.more, c.frag.ident) == (17, s.offset * 8, bool(s.m), 0x1234)
        assert ext.emit_exthdr(c.frag) == f[40:48]
        seen.append(c)
    assert [c.frag.more for c in seen] == [True, True, False]


def test_resume_after_reassembly_goes_on_after_the_fragment_header():
    frags = fragments(size=2048)
    first = rcv(frags[0])
    payload = b"".join(f[48:] for f in frags)
    whole = ipv6.header(S, D, 17, len(payload))                         # the fragment header removed in place
    c = ext.rcv_exthdrs(whole + payload, 0, ipv6.parse(whole + payload), resume=first)
    assert c.proto == 17 and c.offset == 40 and c.headers == (first.frag,)
    assert udp.parse(whole + payload, 40, len(whole) + len(payload), S, D, pseudo_sum=pseudo_header_sum6).dport == 2


def test_an_atomic_fragment_is_processed_as_a_whole_packet():
    c = rcv(chain(IPv6ExtHdrFragment(offset=0, m=0, id=9)))
    assert c.proto == 17 and c.frag is None and not c.headers[0].is_fragment


def test_first_fragment_without_the_upper_layer_header_is_parameter_problem_code_3():
    dest = IPv6ExtHdrDestOpt(nh=17, options=[HBHOptUnknown(optdata=bytes(8))])
    pkt = chain(IPv6ExtHdrFragment(offset=0, m=1, id=9), dest, payload=Raw(b"\x00\x01"))
    e = raises(pkt)
    assert (e.code, e.pointer) == (ext.ICMPV6_HDR_INCOMP, 0)


def test_a_fragment_not_the_last_must_be_a_multiple_of_8_bytes():
    f = fragments()[0]
    bad = ipv6.with_payload_len(f[:40], len(f) - 41) + f[40:-1]
    e = raises(bad)
    assert (e.code, e.pointer) == (ext.ICMPV6_HDR_FIELD, 4)


def test_a_fragment_ending_past_65535_is_refused_at_its_offset_field():
    pkt = chain(IPv6ExtHdrFragment(offset=8190, m=0, id=1), payload=Raw(bytes(64)))
    e = raises(pkt)
    assert (e.code, e.pointer) == (ext.ICMPV6_HDR_FIELD, 42)


def test_fragment_header_of_a_jumbogram_or_cut_short():
    cut = ipv6.header(S, D, 44, 4) + bytes(4)
    e = raises(cut)
    assert (e.code, e.pointer) == (ext.ICMPV6_HDR_FIELD, 40)


# walking a chain (ipv6_skip_exthdr(), ipv6_find_hdr())
def test_skip_exthdr_finds_the_transport_header_past_every_kind():
    pkt = chain(IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(segleft=1, addresses=[DST]), IPv6ExtHdrDestOpt(),
                IPv6ExtHdrFragment(m=1))
    w = ext.skip_exthdr(pkt, 40, pkt[6])
    assert (w.proto, w.offset, w.frag_off) == (17, len(pkt) - 12, 1)
    assert ext.find_hdr(pkt) == (17, len(pkt) - 12, 0)
    assert ext.find_hdr(pkt, target=43).offset == 48
    assert ext.find_hdr(pkt, target=6) is None


def test_skip_exthdr_steps_over_an_authentication_header_in_4_byte_words():
    ah = bytes((17, 4)) + bytes(22)                         # 24 bytes: (4 + 2) * 4
    pkt = ipv6.header(S, D, 51, 32) + ah + bytes(8)
    assert ext.skip_exthdr(pkt, 40, 51) == (17, 64, 0)


def test_a_later_fragment_ends_the_walk_at_its_header():
    f = fragments()[1]
    assert ext.skip_exthdr(f, 40, 44) == (44, 40, int.from_bytes(f[42:44], "big"))
    w = ext.find_hdr(f)
    assert (w.proto, w.offset, w.frag_off) == (17, 40, IPv6(f)[IPv6ExtHdrFragment].offset * 8)
    assert ext.find_hdr(f, target=44) is None


@pytest.mark.parametrize("pkt,want", [
    (ipv6.header(S, D, 60, 8) + ext.opt_hdr(59), "IPV6_BAD_EXTHDR"),          # no next header
    (ipv6.header(S, D, 60, 1) + b"\x11", "IPV6_BAD_EXTHDR"),                  # cut short
    (ipv6.header(S, D, 44, 3) + b"\x11\0\0", "IPV6_BAD_EXTHDR"),
    (ipv6.header(S, D, 60, 104) + ext.opt_hdr(60) * 12 + ext.opt_hdr(17) + bytes(0), "IPV6_TOO_MANY_EXTHDRS"),
])
def test_skip_exthdr_reasons(pkt, want):
    with pytest.raises(Malformed) as e:
        ext.skip_exthdr(pkt, 40, pkt[6])
    assert reason(e) == want


def test_skip_exthdr_may_end_past_the_data_as_the_kernels():
    pkt = ipv6.header(S, D, 60, 2) + bytes((17, 3))
    assert ext.skip_exthdr(pkt, 40, 60) == (17, 72, 0)


def test_find_hdr_refuses_a_cut_or_long_chain():
    for pkt in (ipv6.header(S, D, 60, 1) + b"\x11", ipv6.header(S, D, 60, 104) + ext.opt_hdr(60) * 13):
        with pytest.raises(Malformed) as e:
            ext.find_hdr(pkt)
        assert reason(e) == "IPV6_BAD_EXTHDR"
    with pytest.raises(Malformed):
        ext.find_hdr(bytes(20))
    assert ext.find_hdr(ipv6.header(S, D, 60, 104) + ext.opt_hdr(60) * 11 + ext.opt_hdr(59) * 2) == (59, 136, 0)


# ---------------------------------------------------------------- ICMPv6

def icmp6_of(pkt: bytes):
    r = ipv6.parse(pkt)
    return icmpv6.parse(pkt, 40, ipv6.payload_end(pkt, 0, r), r.src, r.dst)


@pytest.mark.parametrize("layer,type_", [(ICMPv6EchoRequest, 128), (ICMPv6EchoReply, 129)])
@pytest.mark.parametrize("size", [0, 1, 56, 1232])
def test_echo_parses_scapys_and_scapy_parses_ours(layer, type_, size):
    data = bytes(random.Random(size).randbytes(size))
    pkt = bytes(ip6() / layer(id=0x0FDA, seq=2, data=data))
    r = icmp6_of(pkt)
    assert (r.type, r.code, r.echo_id, r.echo_seq) == (type_, 0, 0x0FDA, 2)
    ours = icmpv6.echo(type_, 0x0FDA, 2, data, S, D)
    assert ours == pkt[40:]
    assert IPv6(ipv6.header(S, D, 58, len(ours)) + ours)[layer].cksum == \
        IPv6(bytes(ip6() / layer(id=0x0FDA, seq=2, data=data)))[layer].cksum


@pytest.mark.parametrize("layer,type_,code,rest", [
    (ICMPv6DestUnreach(code=icmpv6.ICMPV6_NOROUTE), 1, 0, 0),
    (ICMPv6DestUnreach(code=icmpv6.ICMPV6_ADDR_UNREACH), 1, 3, 0),
    (ICMPv6DestUnreach(code=icmpv6.ICMPV6_PORT_UNREACH), 1, 4, 0),
    (ICMPv6PacketTooBig(mtu=1280), 2, 0, 1280),
    (ICMPv6TimeExceeded(code=icmpv6.ICMPV6_EXC_HOPLIMIT), 3, 0, 0),
    (ICMPv6TimeExceeded(code=icmpv6.ICMPV6_EXC_FRAGTIME), 3, 1, 0),
    (ICMPv6ParamProblem(code=icmpv6.ICMPV6_UNK_NEXTHDR, ptr=6), 4, 1, 6),
])
def test_errors_parse_scapys_and_scapy_parses_ours(layer, type_, code, rest):
    invoking = bytes(IPv6(src=DST, dst=SRC) / UDP(sport=40000, dport=9) / Raw(b"hello"))
    pkt = bytes(ip6() / layer / Raw(invoking))
    r = icmp6_of(pkt)
    assert (r.type, r.code, r.rest) == (type_, code, rest) and icmpv6.is_error(type_)
    assert (r.mtu if type_ == 2 else r.pointer if type_ == 4 else 0) == rest
    assert icmpv6.error(type_, code, rest, invoking, S, D) == pkt[40:]


def test_error_quotes_no_more_than_fits_in_1280_bytes():
    invoking = bytes(IPv6(src=DST, dst=SRC) / ICMPv6EchoRequest(data=bytes(1400)))
    msg = icmpv6.error(icmpv6.ICMPV6_PKT_TOOBIG, 0, 1280, invoking, S, D)
    assert ipv6.IPV6_HLEN + len(msg) == ipv6.IPV6_MIN_MTU
    assert msg[8:] == invoking[:1232]
    assert IPv6(ipv6.header(S, D, 58, len(msg)) + msg)[ICMPv6PacketTooBig].mtu == 1280


def test_icmpv6_bad_checksum_is_icmp_csum_and_covers_the_pseudo_header():
    pkt = bytes(ip6() / ICMPv6EchoRequest(data=b"abc"))
    for i in (40, 42, 47, len(pkt) - 1):
        bad = bytearray(pkt)
        bad[i] ^= 0x40
        with pytest.raises(Malformed) as e:
            icmp6_of(bytes(bad))
        assert reason(e) == "ICMP_CSUM"
    with pytest.raises(Malformed) as e:                     # same bytes, another destination
        icmpv6.parse(pkt, 40, len(pkt), S, S)
    assert reason(e) == "ICMP_CSUM"


@pytest.mark.parametrize("length", range(8))
def test_icmpv6_shorter_than_8_with_a_valid_checksum_is_not_specified(length):
    data = bytearray(length)
    if length >= 4:
        data[2:4] = checksum.inet_checksum(data, pseudo_header_sum6(S, D, 58, length)).to_bytes(2, "big")
        with pytest.raises(Malformed) as e:
            icmpv6.parse(bytes(data), 0, length, S, D)
        assert reason(e) == "NOT_SPECIFIED"
    else:
        with pytest.raises(Malformed):
            icmpv6.parse(bytes(data) or b"", 0, length, S, D)


def test_is_error_is_icmpv6_is_err():
    assert [t for t in range(256) if icmpv6.is_error(t)] == [1, 2, 3, 4]


def test_quoted_finds_the_flow_past_extension_headers():
    inner = bytes(IPv6(src=SRC, dst=DST) / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(segleft=0) /
                  UDP(sport=40000, dport=9) / Raw(b"hello"))
    err = icmpv6.error(1, 4, 0, inner, D, S)
    q = icmpv6.quoted(err, 8)
    assert (q.src, q.dst, q.proto, q.l4, q.ports, q.frag_off) == (S, D, 17, 8 + 40 + 8 + 8, (40000, 9), 0)
    echo = bytes(IPv6(src=SRC, dst=DST) / ICMPv6EchoRequest(id=0x1011, seq=1))
    assert icmpv6.quoted(echo, 0).echo == (128, 0x1011)


def test_quoted_later_fragment_names_the_fragment_header():
    f = fragments()[1]
    q = icmpv6.quoted(f, 0)
    assert (q.proto, q.l4, q.frag_off & ext.IP6_OFFSET) == (44, 40, IPv6(f)[IPv6ExtHdrFragment].offset * 8)


@pytest.mark.parametrize("inner,want", [
    (bytes(IPv6(src=SRC, dst=DST) / UDP())[:39], "PKT_TOO_SMALL"),
    (bytes(IPv6(src=SRC, dst=DST) / UDP())[:47], "PKT_TOO_SMALL"),
    (bytes(IPv6(src=SRC, dst=DST, nh=60)) + bytes((59, 0)) + bytes(6), "IPV6_BAD_EXTHDR"),
    (bytes(IPv6(src=SRC, dst=DST, nh=60)) + ext.opt_hdr(60) * 13 + bytes(8), "IPV6_BAD_EXTHDR"),
    (bytes(IPv6(src=SRC, dst=DST) / IPv6ExtHdrDestOpt() / UDP())[:52], "PKT_TOO_SMALL"),
])
def test_quoted_reasons_as_icmpv6_notify(inner, want):
    with pytest.raises(Malformed) as e:
        icmpv6.quoted(inner, 0)
    assert reason(e) == want


# ---------------------------------------------------------------- neighbour discovery

def nd(layer, src=LL_R1, dst="ff02::1", hlim=255) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=hlim) / layer)


def nd_of(pkt: bytes):
    r = ipv6.parse(pkt)
    return icmpv6.parse_ndisc(pkt, 40, ipv6.payload_end(pkt, 0, r), r)


def emitted(msg, pkt: bytes) -> bytes:
    r = ipv6.parse(pkt)
    return icmpv6.emit_ndisc(msg, r.src, r.dst)


def test_neighbour_solicitation_both_ways():
    pkt = nd(ICMPv6ND_NS(tgt=DST) / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:01:01"), src=SRC,
             dst="ff02::1:ff00:10")
    m = nd_of(pkt)
    assert m == icmpv6.NeighSolicit(D, icmpv6.nd_options(source_ll=MAC_R1))
    assert emitted(m, pkt) == pkt[40:]


@pytest.mark.parametrize("r,s,o", [(1, 1, 1), (0, 1, 1), (0, 0, 1), (1, 0, 0), (0, 0, 0)])
def test_neighbour_advertisement_flags_both_ways(r, s, o):
    pkt = nd(ICMPv6ND_NA(R=r, S=s, O=o, tgt=SRC) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:01:0a"), dst=SRC)
    m = nd_of(pkt)
    assert (m.router, m.solicited, m.override, m.target, m.opts.target_ll) == (r, s, o, S, MAC_H1)
    assert emitted(m, pkt) == pkt[40:]
    assert icmpv6.emit_ndisc(icmpv6.NeighAdvert(r << 31 | s << 30 | o << 29, S, icmpv6.nd_options(target_ll=MAC_H1)),
                             a(LL_R1), S) == pkt[40:]


def test_router_solicitation_and_advertisement_both_ways():
    rs = nd(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:01:0a"), src="fe80::ff:fe00:10a", dst="ff02::2")
    assert nd_of(rs) == icmpv6.RouterSolicit(icmpv6.nd_options(source_ll=MAC_H1))
    assert emitted(nd_of(rs), rs) == rs[40:]
    ra = nd(ICMPv6ND_RA(chlim=64, M=1, O=1, routerlifetime=1800, reachabletime=30000, retranstimer=1000) /
            ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:01:01") /
            ICMPv6NDOptPrefixInfo(prefix="2001:db8:1::", prefixlen=64, validlifetime=86400, preferredlifetime=14400) /
            ICMPv6NDOptMTU(mtu=1500))
    m = nd_of(ra)
    assert (m.cur_hop_limit, m.flags & 0xC0, m.router_lifetime, m.reachable_time, m.retrans_timer) == \
        (64, 0xC0, 1800, 30000, 1000)
    p = m.opts.prefixes[0]
    assert (p.prefix, p.prefix_len, p.onlink, p.autoconf, p.valid_lft, p.preferred_lft, m.opts.mtu) == \
        (a("2001:db8:1::"), 64, True, True, 86400, 14400, 1500)
    built = icmpv6.RouterAdvert(64, m.flags, 1800, 30000, 1000,
                                icmpv6.nd_options(source_ll=MAC_R1, prefixes=[p], mtu=1500))
    assert emitted(m, ra) == ra[40:] and emitted(built, ra) == ra[40:]


def test_redirect_both_ways():
    inner = bytes(IPv6(src=SRC, dst="2001:db8:5::5") / UDP(sport=5, dport=6) / Raw(b"x" * 21))
    pkt = nd(ICMPv6ND_Redirect(tgt="fe80::2", dst="2001:db8:5::5") / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:01:02") /
             ICMPv6NDOptRedirectedHdr(pkt=inner[:64]), dst=SRC)
    m = nd_of(pkt)
    assert (m.target, m.dest, m.opts.redirected) == (a("fe80::2"), a("2001:db8:5::5"), inner[:64])
    assert emitted(m, pkt) == pkt[40:]
    built = icmpv6.Redirect(a("fe80::2"), a("2001:db8:5::5"),
                            icmpv6.nd_options(target_ll=bytes.fromhex("020000000102"), redirected=inner[:69]))
    assert emitted(built, pkt) == pkt[40:]                  # cut to a multiple of 8 as Linux cuts it


def test_nd_options_scapy_parses_ours():
    opts = icmpv6.nd_options(source_ll=MAC_H1, target_ll=MAC_R1, mtu=1280, nonce=b"\x01\x02\x03\x04\x05\x06",
                             prefixes=[icmpv6.PrefixInfo(48, 0x80, 100, 50, a("2001:db8::"))])
    p = ICMPv6ND_RS(icmpv6.emit_ndisc(icmpv6.RouterSolicit(opts), S, D))
    assert p[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:01:0a" and p[ICMPv6NDOptDstLLAddr].lladdr == MAC_STR_R1
    assert p[ICMPv6NDOptMTU].mtu == 1280
    pi = p[ICMPv6NDOptPrefixInfo]
    assert (pi.prefixlen, pi.L, pi.A, pi.validlifetime, pi.preferredlifetime, pi.prefix) == (48, 1, 0, 100, 50,
                                                                                             "2001:db8::")
    assert p[ICMPv6NDOptUnknown].type == icmpv6.ND_OPT_NONCE and opts.nonce == b"\x01\x02\x03\x04\x05\x06"


def test_first_of_an_option_is_kept_prefixes_all_and_unknown_ones_passed_over():
    raw = (icmpv6.nd_options(source_ll=MAC_H1).raw + icmpv6.nd_options(source_ll=MAC_R1).raw +
           bytes((200, 1)) + bytes(6) + bytes((3, 3)) + bytes(22) +                    # unknown; prefix too short
           icmpv6.nd_options(prefixes=[icmpv6.PrefixInfo(64, 0xC0, 1, 1, a("2001:db8:1::"))] * 2).raw)
    o = icmpv6.parse_options(raw, 0, len(raw))
    assert o.source_ll == MAC_H1 and len(o.prefixes) == 2 and o.raw == raw


@pytest.mark.parametrize("raw", [bytes((1, 0)) + bytes(6), bytes((1, 2)) + bytes(6), b"\x01",
                                 icmpv6.nd_options(source_ll=MAC_H1).raw + b"\x05\x00"])
def test_an_option_of_length_0_or_past_the_end_is_bad_options(raw):
    with pytest.raises(Malformed) as e:
        icmpv6.parse_options(raw, 0, len(raw))
    assert reason(e) == "IPV6_NDISC_BAD_OPTIONS"


NS_OK = ICMPv6ND_NS(tgt=SRC) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_STR_R1)


@pytest.mark.parametrize("pkt,want", [
    (nd(NS_OK, hlim=254), "IPV6_NDISC_HOP_LIMIT"),
    (nd(ICMPv6ND_NS(tgt=SRC, code=1) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_STR_R1), hlim=64), "IPV6_NDISC_HOP_LIMIT"),
    (nd(ICMPv6ND_NS(tgt=SRC, code=1)), "IPV6_NDISC_BAD_CODE"),
    (nd(ICMPv6ND_NS(tgt=SRC) / ICMPv6NDOptUnknown(type=9, len=0, data=b"")), "IPV6_NDISC_BAD_OPTIONS"),
    (nd(ICMPv6ND_NS(tgt="ff02::1")), "NOT_SPECIFIED"),                                         # multicast target
    (nd(ICMPv6ND_NS(tgt=SRC), src="::", dst=DST), "NOT_SPECIFIED"),                            # DAD, not to the group
    (nd(NS_OK, src="::", dst="ff02::1:ff00:10"), "NOT_SPECIFIED"),                             # DAD with an address
    (nd(ICMPv6ND_NS(tgt=SRC) / ICMPv6NDOptUnknown(type=1, len=2, data=bytes(14))), "NOT_SPECIFIED"),  # lladdr length
    (nd(ICMPv6ND_NA(tgt="ff02::1")), "NOT_SPECIFIED"),
    (nd(ICMPv6ND_NA(tgt=SRC, S=1), dst="ff02::1"), "NOT_SPECIFIED"),                           # solicited, multicast
    (nd(ICMPv6ND_RA(), src=SRC), "NOT_SPECIFIED"),                                             # not from link-local
    (nd(ICMPv6ND_Redirect(tgt="fe80::2", dst=DST), src=SRC), "NOT_SPECIFIED"),
    (nd(ICMPv6ND_Redirect(tgt="fe80::2", dst="ff02::1")), "NOT_SPECIFIED"),                     # multicast dest
    (nd(ICMPv6ND_Redirect(tgt="2001:db8::2", dst=DST)), "NOT_SPECIFIED"),                       # target not LL
])
def test_ndisc_checks_with_the_kernels_reasons(pkt, want):
    with pytest.raises(Malformed) as e:
        nd_of(pkt)
    assert reason(e) == want


def test_a_redirect_to_the_destination_itself_needs_no_link_local_target():
    assert nd_of(nd(ICMPv6ND_Redirect(tgt=DST, dst=DST))).target == D


def test_a_dad_solicitation_to_the_solicited_node_group_passes():
    m = nd_of(nd(ICMPv6ND_NS(tgt="2001:db8:1::99"), src="::", dst="ff02::1:ff00:99"))
    assert m.target == a("2001:db8:1::99") and m.opts == icmpv6.NO_OPTIONS


@pytest.mark.parametrize("type_,need", [(134, 16), (135, 24), (136, 24), (137, 40)])   # an RS is its 8-byte header
def test_ndisc_messages_cut_short(type_, need):
    body = bytearray(need - 4)
    body[0] = type_
    msg = bytes(body[:2]) + checksum.inet_checksum(bytes(body), pseudo_header_sum6(a(LL_R1), S, 58, len(body))
                                                   ).to_bytes(2, "big") + bytes(body[4:])
    pkt = ipv6.header(a(LL_R1), S, 58, len(msg), hop_limit=255) + msg
    assert icmp6_of(pkt).type == type_
    with pytest.raises(Malformed) as e:
        nd_of(pkt)
    # a redirect's option length comes out negative: ndisc_parse_options() refuses it
    assert reason(e) == ("IPV6_NDISC_BAD_OPTIONS" if type_ == 137 else "PKT_TOO_SMALL")


# ---------------------------------------------------------------- UDP and TCP over IPv6

def test_udp_over_ipv6_checksums_as_scapy_both_ways():
    rng = random.Random(17)
    for _ in range(50):
        s, d = rng.getrandbits(128), rng.getrandbits(128)
        sport, dport, payload = rng.randrange(65536), rng.randrange(65536), rng.randbytes(rng.randrange(0, 300))
        pkt = bytes(IPv6(src=ipv6.ntoa(s), dst=ipv6.ntoa(d)) / UDP(sport=sport, dport=dport) / Raw(payload))
        assert udp.emit(sport, dport, payload, s, d, pseudo_sum=pseudo_header_sum6) == pkt[40:]
        assert udp.parse(pkt, 40, len(pkt), s, d, pseudo_sum=pseudo_header_sum6) == \
            (sport, dport, 8 + len(payload), IPv6(pkt)[UDP].chksum)


def test_udp_over_ipv6_bad_checksum_and_the_ipv4_default_unchanged():
    pkt = bytearray(bytes(ip6() / UDP(sport=1, dport=2) / Raw(b"abcd")))
    pkt[-1] ^= 1
    with pytest.raises(Malformed) as e:
        udp.parse(pkt, 40, len(pkt), S, D, pseudo_sum=pseudo_header_sum6)
    assert reason(e) == "UDP_CSUM"
    assert udp.emit(1, 2, b"x", 0x0A00010A, 0x0A00020A) == udp.emit(1, 2, b"x", 0x0A00010A, 0x0A00020A,
                                                                   pseudo_sum=checksum.pseudo_header_sum)


def test_tcp_over_ipv6_checksums_as_scapy_both_ways():
    opts = tcp.options(mss=1440, sack_perm=True, ts=(1, 0), wscale=7)
    for flags, payload in ((tcp.SYN, b""), (tcp.ACK | tcp.PSH, b"GET / HTTP/1.1\r\n\r\n"), (tcp.ACK, b"x" * 1407)):
        seg = tcp.emit(33540, 8080, 0x11223344, 0x55667788, flags, 64800, opts, payload, S, D,
                       pseudo_sum=pseudo_header_sum6)
        p = IPv6(ipv6.header(S, D, 6, len(seg)) + seg)
        want = p[TCP].chksum
        del p[TCP].chksum
        assert IPv6(bytes(p))[TCP].chksum == want
        r = tcp.parse(seg, 0, len(seg), S, D, pseudo_sum=pseudo_header_sum6)
        assert (r.sport, r.dport, r.flags, r.options.mss, r.options.wscale) == (33540, 8080, flags, 1440, 7)
    with pytest.raises(Malformed) as e:
        tcp.parse(seg, 0, len(seg), S, S, pseudo_sum=pseudo_header_sum6)
    assert reason(e) == "TCP_CSUM"


# ---------------------------------------------------------------- real Linux captures

def _frames(path):
    return [bytes(data) for data, _meta in RawPcapReader(path)]


def capture(name: str):
    return _frames(str(IPV6_CAPTURES / f"{name}.pcap"))


class Seen(dict):
    def add(self, kind):
        self[kind] = self.get(kind, 0) + 1


def check_frame(frame: bytes, seen: Seen, fragments: dict):
    """Every header of one captured frame parsed as the kernel would, compared
    with scapy's reading, and written back byte for byte."""
    p = Ether(frame)
    eth = ethernet.parse(frame)
    assert eth.ethertype == ethernet.ETH_P_IPV6
    r = ipv6.parse(frame, 14)
    s = p[IPv6]
    assert r == (s.tc, s.fl, s.plen, s.nh, s.hlim, a(s.src), a(s.dst))
    assert is_multicast_frame(eth) == ipv6.is_multicast(r.dst)
    if ipv6.is_multicast(r.dst):
        assert eth.dst == ipv6.multicast_mac(r.dst)           # 33:33 and the group's last 32 bits
    end = ipv6.payload_end(frame, 14, r)
    assert ipv6.emit(r, frame[54:end]) == frame[14:end]
    c = ext.rcv_exthdrs(frame, 14, r)
    assert b"".join(ext.emit_exthdr(h) for h in c.headers) == frame[54:c.offset]
    assert ext.find_hdr(frame, 14).proto == (c.frag.nexthdr if c.frag else c.proto)
    if c.frag is not None:
        seen.add("fragment")
        assert ext.emit_exthdr(c.frag) == frame[c.offset:c.offset + 8]
        fragments.setdefault((r.src, r.dst, c.frag.ident), []).append((r, c, frame))
        return
    check_upper(frame, r, c, end, seen)


def is_multicast_frame(eth) -> bool:
    return ethernet.is_multicast(eth.dst)


def check_upper(frame: bytes, r, c, end: int, seen: Seen):
    if c.proto == ipv6.NEXTHDR_ICMP:
        m = icmpv6.parse(frame, c.offset, end, r.src, r.dst)
        assert icmpv6.emit(m, frame[c.offset + 8:end], r.src, r.dst) == frame[c.offset:end]
        check_icmpv6(frame, r, c, m, end, seen)
    elif c.proto == ipv6.NEXTHDR_UDP:
        u = udp.parse(frame, c.offset, end, r.src, r.dst, pseudo_sum=pseudo_header_sum6)
        assert udp.emit(u.sport, u.dport, frame[c.offset + 8:end], r.src, r.dst, pseudo_sum=pseudo_header_sum6) == \
            frame[c.offset:end]
        seen.add("udp")
    elif c.proto == ipv6.NEXTHDR_TCP:
        t = tcp.parse(frame, c.offset, end, r.src, r.dst, pseudo_sum=pseudo_header_sum6)
        opts = frame[c.offset + 20:c.offset + t.doff]
        assert tcp.emit(t.sport, t.dport, t.seq, t.ack, t.flags, t.window, opts, frame[c.offset + t.doff:end],
                        r.src, r.dst, pseudo_sum=pseudo_header_sum6) == frame[c.offset:end]
        seen.add("tcp")
        if t.flags & tcp.SYN:
            assert t.options.mss == 1440                      # 1500 - 40 - 20
    else:
        raise AssertionError(f"unexpected protocol {c.proto}")


def check_icmpv6(frame, r, c, m, end, seen: Seen):
    if m.type in icmpv6.NDISC_TYPES:
        msg = icmpv6.parse_ndisc(frame, c.offset, end, r)
        assert icmpv6.emit_ndisc(msg, r.src, r.dst) == frame[c.offset:end]
        seen.add(type(msg).__name__ + ("-dad" if r.src == 0 else ""))
    elif icmpv6.is_error(m.type):
        q = icmpv6.quoted(frame, c.offset + 8, end)
        inner = IPv6(frame[c.offset + 8:end])
        assert (q.src, q.dst) == (a(inner.src), a(inner.dst))
        assert len(frame) - c.offset - 8 <= icmpv6.MAX_QUOTED
        seen.add(f"error-{m.type}-{m.code}")
    elif m.type in (icmpv6.ICMPV6_ECHO_REQUEST, icmpv6.ICMPV6_ECHO_REPLY):
        s = (ICMPv6EchoRequest if m.type == 128 else ICMPv6EchoReply)(frame[c.offset:end])
        assert (m.echo_id, m.echo_seq) == (s.id, s.seq)
        seen.add("echo")
    else:
        assert m.type == icmpv6.ICMPV6_MLD2_REPORT and c.headers[0].router_alert == 0   # MLD: router alert 0
        seen.add("mld2")


def reassemble(frags) -> bytes:
    """The payload after the fragment header, in order, with the unfragmentable part's header."""
    frags.sort(key=lambda f: f[1].frag.offset)
    payload = b""
    for r, c, frame in frags:
        assert c.frag.offset == len(payload)
        payload += frame[c.offset + 8:14 + 40 + r.payload_len]
    assert not frags[-1][1].frag.more
    return payload


@pytest.mark.parametrize("path", IPV6_PCAPS, ids=os.path.basename)
def test_linux_capture_every_frame_parses_like_scapy_and_re_emits(path):
    seen, fragments = Seen(), {}
    frames = _frames(path)
    for n, frame in enumerate(frames):
        try:
            check_frame(frame, seen, fragments)
        except AssertionError as e:
            raise AssertionError(f"frame {n}: {e}") from e
    for (src, dst, _ident), frags in fragments.items():
        payload = reassemble(frags)
        first = frags[0]
        whole = ipv6.header(src, dst, first[1].frag.nexthdr, len(payload)) + payload
        c = ext.rcv_exthdrs(whole, 0, ipv6.parse(whole), resume=first[1]._replace(nhoff=6, offset=40))
        check_upper(whole, ipv6.parse(whole), c, len(whole), seen)
        scapy_whole = defragment6([Ether(f)[IPv6] for _r, _c, f in frags])
        assert bytes(scapy_whole)[40:] == payload


def test_linux_captures_cover_every_parser():
    seen, fragments = Seen(), {}
    for path in IPV6_PCAPS:
        for frame in _frames(path):
            check_frame(frame, seen, fragments)
    assert len(IPV6_PCAPS) == 16
    assert set(seen) >= {"NeighSolicit", "NeighSolicit-dad", "NeighAdvert", "RouterSolicit", "mld2", "echo", "udp",
                         "tcp", "fragment", "error-1-0", "error-1-4", "error-2-0", "error-3-0"}, seen


def test_linux_golden_fields():
    dad = capture("ipv6-dad.h1")
    r = ipv6.parse(dad[1], 14)                                  # DAD: from ::, to the solicited-node group
    ns = icmpv6.parse_ndisc(dad[1], 54, 54 + r.payload_len, r)
    assert (r.src, r.dst, r.hop_limit, ns.target) == (0, ipv6.solicited_node(a("2001:db8:1::99")), 255,
                                                      a("2001:db8:1::99"))
    assert ns.opts.source_ll is None and len(ns.opts.nonce) == 6     # enhanced DAD's nonce (RFC 7527)
    assert ipv6.parse(dad[0], 14).src == ipv6.link_local(MAC_H1)
    echo_h1, echo_h2 = capture("ipv6-echo.h1"), capture("ipv6-echo.h2")
    req_h1 = next(f for f in echo_h1 if f[54] == 128)
    req_h2 = next(f for f in echo_h2 if f[54] == 128)
    assert (ipv6.parse(req_h1, 14).hop_limit, ipv6.parse(req_h2, 14).hop_limit) == (64, 63)   # one router
    assert ipv6.decrease_hop_limit(req_h1[14:54]) == req_h2[14:54]
    na = [icmpv6.parse_ndisc(f, 54, len(f), ipv6.parse(f, 14)) for f in echo_h1 + echo_h2 if f[54] == 136]
    assert sorted(m.flags for m in na) == [0x60000000, 0xE0000000, 0xE0000000]   # a router sets R; all S and O
    ptb = capture("ipv6-packet-too-big.h1")[1]
    assert (ptb[54], int.from_bytes(ptb[58:62], "big"), len(ptb) - 14) == (2, 1280, ipv6.IPV6_MIN_MTU)


# ---------------------------------------------------------------- Hypothesis: never crash, round trips

SEEDS = [
    bytes(ip6() / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrDestOpt() /
          IPv6ExtHdrRouting(addresses=[DST], segleft=0) / IPv6ExtHdrFragment(m=1) / UDP() / Raw(b"x" * 20)),
    bytes(ip6() / ICMPv6EchoRequest(data=b"abc")),
    bytes(ip6(src=LL_R1, hlim=255) / ICMPv6ND_NA(R=1, S=1, O=1, tgt=SRC) / ICMPv6NDOptDstLLAddr(lladdr=MAC_STR_R1)),
    bytes(ip6(src=LL_R1, hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo() / ICMPv6NDOptMTU()),
    bytes(ip6(src=LL_R1, hlim=255) / ICMPv6ND_Redirect(tgt="fe80::2", dst=DST) /
          ICMPv6NDOptRedirectedHdr(pkt=IPv6() / UDP())),
    bytes(ip6() / ICMPv6DestUnreach(code=4) / IPv6(src=DST, dst=SRC) / IPv6ExtHdrDestOpt() / UDP()),
    bytes(ip6() / TCP(flags="S", options=[("MSS", 1440), ("SAckOK", b""), ("Timestamp", (1, 0)), ("WScale", 7)])),
]


@st.composite
def mutated(draw, seeds):
    """A real packet with up to six bytes overwritten, cut anywhere, a few bytes added."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for i, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)):
        data[i] = value
    return bytes(data[:draw(st.integers(0, len(data)))]) + draw(st.binary(max_size=8))


packets = st.binary(max_size=200) | mutated(SEEDS)


def parsers(buf: bytes, off: int, end: int):
    r = ipv6.Ipv6Repr(0, 0, max(0, end - off - 40), buf[off + 6] if len(buf) > off + 6 else 59, 255, S, D)
    yield lambda: ipv6.parse(buf, off)
    yield lambda: ext.rcv_exthdrs(buf, off, ipv6.parse(buf, off))
    yield lambda: ext.rcv_exthdrs(buf, off, r) if len(buf) > off + 6 else None
    yield lambda: ext.skip_exthdr(buf, off, buf[off] if len(buf) > off else 59, end)
    yield lambda: ext.find_hdr(buf, off, -1, end)
    yield lambda: ext.find_hdr(buf, off, 43, end)
    yield lambda: icmpv6.parse(buf, off, end, S, D)
    yield lambda: icmpv6.quoted(buf, off, end)
    yield lambda: icmpv6.parse_options(buf, off, end)
    if end - off >= 2 and buf[off] in icmpv6.NDISC_TYPES:
        yield lambda: icmpv6.parse_ndisc(buf, off, end, r)


def says_why(parse):
    """The parser returns, or raises Malformed with a reason the protos (or the kernel) know."""
    try:
        parse()
    except Malformed as e:
        assert e.reason in REASONS, e.reason


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buf=packets, off=st.integers(0, 64), cut=st.integers(0, 64))
def test_every_ipv6_parser_parses_or_says_why(buf, off, cut):
    end = max(off, len(buf) - cut) if cut < 8 else len(buf)
    for parse in parsers(buf, off, end):
        says_why(parse)


addrs = st.integers(0, (1 << 128) - 1)


@given(tclass=st.integers(0, 255), flow=st.integers(0, 0xFFFFF), nh=st.integers(0, 255), hlim=st.integers(0, 255),
       src=addrs, dst=addrs, payload=st.binary(max_size=64))
def test_ipv6_header_round_trips(tclass, flow, nh, hlim, src, dst, payload):
    r = ipv6.Ipv6Repr(tclass, flow, len(payload), nh, hlim, src, dst)
    pkt = ipv6.emit(r, payload)
    try:
        assert ipv6.parse(pkt, loopback=True) == r
    except Malformed as e:      # only what RFC 4291 refuses, or a jumbogram's zero length
        assert e.reason == "IP_INHDR" and (ipv6.is_multicast(src) or ipv6.is_multicast(dst))


tlv_options = st.lists(st.tuples(st.integers(2, 255).filter(lambda t: t >> 6 == 0 and t not in (5, 7, 49)),
                                 st.binary(max_size=12)), max_size=8)


@given(options=tlv_options, nh=st.sampled_from([6, 17, 58, 59]))
def test_options_header_round_trips(options, nh):
    hdr = ext.opt_hdr(nh, options)
    pkt = ipv6.header(S, D, 60, len(hdr)) + hdr
    h = ext.parse_destopts(pkt, 0, 40, ipv6.parse(pkt))
    assert [o for o in h.options if o[0] not in (0, 1)] == options
    assert ext.emit_exthdr(h) == hdr and IPv6ExtHdrDestOpt(hdr).nh == nh


lladdr = st.binary(min_size=6, max_size=6)
prefix = st.builds(icmpv6.PrefixInfo, st.integers(0, 128), st.integers(0, 255), st.integers(0, 2**32 - 1),
                   st.integers(0, 2**32 - 1), addrs)
nd_opts = st.builds(lambda **kw: icmpv6.nd_options(**kw), source_ll=st.none() | lladdr, target_ll=st.none() | lladdr,
                    prefixes=st.lists(prefix, max_size=3), mtu=st.none() | st.integers(0, 2**32 - 1),
                    nonce=st.none() | lladdr)
unicast = addrs.filter(lambda n: not ipv6.is_multicast(n))
messages = st.one_of(
    st.builds(icmpv6.RouterSolicit, nd_opts),
    st.builds(icmpv6.RouterAdvert, st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535),
              st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), nd_opts),
    st.builds(icmpv6.NeighSolicit, unicast, nd_opts),
    st.builds(icmpv6.NeighAdvert, st.sampled_from([0, 0x20000000, 0x40000000, 0xE0000000]), unicast, nd_opts),
    st.builds(icmpv6.Redirect, st.integers(0, 2**64 - 1).map(lambda i: ipv6.LINKLOCAL_PREFIX | i), unicast, nd_opts),
)


@given(msg=messages)
def test_ndisc_messages_round_trip(msg):
    src, dst = a(LL_R1), S
    body = icmpv6.emit_ndisc(msg, src, dst)
    pkt = ipv6.header(src, dst, 58, len(body), hop_limit=255) + body
    assert icmpv6.parse(pkt, 40, len(pkt), src, dst).type == msg.wire()[0]
    got = icmpv6.parse_ndisc(pkt, 40, len(pkt), ipv6.parse(pkt))
    assert got == msg
