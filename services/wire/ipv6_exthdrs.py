"""IPv6 extension headers (RFC 8200 4), as net/ipv6/exthdrs.c, exthdrs_core.c and
reassembly.c read them.

On the receive path the headers are read one at a time in the order
ip6_protocol_deliver_rcu() meets them (`rcv_exthdrs`): hop-by-hop only right
after the fixed header, then destination options, routing (type 0 refused),
fragment, each with its kernel handler's checks and drop reason; a check the
kernel answers with an ICMPv6 parameter problem raises ParamProblem, which
says the code and pointer. `skip_exthdr` and `find_hdr` only walk a chain, as
ipv6_skip_exthdr() (ICMPv6 errors' quoted packets) and ipv6_find_hdr()
(netfilter) do.
"""
import struct
from typing import NamedTuple

from . import Malformed
from .ipv6 import (IPV6_HLEN, IPV6_MAXPLEN, NEXTHDR_AUTH, NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ICMP,
                   NEXTHDR_NONE, NEXTHDR_ROUTING, NEXTHDR_TCP, NEXTHDR_UDP, Ipv6Repr, is_multicast, payload_end)

# Upstream 3744b0964d52 (2026) bounds every walk of a chain at 12 headers; older kernels, the
# 6.18 of the captures among them, were bounded only by the packet's length.
IP6_MAX_EXT_HDRS_CNT = 12
IP6_DEFAULT_MAX_OPTS_CNT = 8               # net.ipv6.max_hbh_opts_number, max_dst_opts_number

# TLV options of hop-by-hop and destination options headers (include/uapi/linux/in6.h)
IPV6_TLV_PAD1 = 0
IPV6_TLV_PADN = 1
IPV6_TLV_ROUTERALERT = 5
IPV6_TLV_CALIPSO = 7
IPV6_TLV_IOAM = 49
IPV6_TLV_JUMBO = 194

# Routing header types
IPV6_SRCRT_TYPE_0 = 0                      # source routing, deprecated by RFC 5095
IPV6_SRCRT_TYPE_2 = 2                      # mobile IPv6
IPV6_SRCRT_TYPE_3 = 3                      # RPL segment routing
IPV6_SRCRT_TYPE_4 = 4                      # SRv6

# Fragment header's frag_off field
IP6_MF = 0x0001
IP6_OFFSET = 0xFFF8

# ICMPv6 parameter problem codes: the answers of the extension header checks (icmpv6.py re-exports them)
ICMPV6_HDR_FIELD = 0
ICMPV6_UNK_NEXTHDR = 1
ICMPV6_UNK_OPTION = 2
ICMPV6_HDR_INCOMP = 3

_FRAG = struct.Struct("!BBHI")
# ipv6_ext_hdr(): what the walkers step over (ESP and everything else ends the chain)
_EXTHDRS = frozenset((NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_AUTH, NEXTHDR_NONE, NEXTHDR_DEST))


class ParamProblem(Malformed):
    """A drop the kernel answers with an ICMPv6 parameter problem (icmpv6_param_prob()):
    `code`, and `pointer`, the offset from the start of the IPv6 header of the
    octet at fault. `reason` is the drop reason the skb is freed with."""

    def __init__(self, reason: str, what: str, code: int, pointer: int):
        super().__init__(reason, what)
        self.code = code
        self.pointer = pointer


# ---------------------------------------------------------------- records and emitters

class OptHdr(NamedTuple):
    """A hop-by-hop or destination options header. `options` holds every TLV in
    order, padding included, as (type, data); Pad1's data is b""."""
    nexthdr: int
    hdrlen: int                     # bytes: (hdr[1] + 1) * 8
    options: tuple

    def option(self, type_: int) -> bytes | None:
        return next((data for t, data in self.options if t == type_), None)

    @property
    def router_alert(self) -> int | None:
        data = self.option(IPV6_TLV_ROUTERALERT)
        return None if data is None else int.from_bytes(data, "big")


class RoutingHdr(NamedTuple):
    nexthdr: int
    hdrlen: int
    type: int
    segments_left: int
    data: bytes                     # what follows the first four bytes

    @property
    def addresses(self) -> tuple:
        """A type 0 header's addresses (after its 4 reserved bytes)."""
        return tuple(int.from_bytes(self.data[i:i + 16], "big") for i in range(4, len(self.data) - 15, 16))


class FragHdr(NamedTuple):
    nexthdr: int
    frag_off: int                   # offset in bytes and the M flag, as on the wire
    ident: int
    hdrlen: int = 8

    @property
    def offset(self) -> int:
        return self.frag_off & IP6_OFFSET

    @property
    def more(self) -> bool:
        return bool(self.frag_off & IP6_MF)

    @property
    def is_fragment(self) -> bool:
        """False for an atomic fragment (offset 0, no M: RFC 6946), processed as a whole packet."""
        return bool(self.frag_off & (IP6_OFFSET | IP6_MF))


def opt_hdr(nexthdr: int, options=()) -> bytes:
    """A hop-by-hop or destination options header holding `options` ((type, data)
    in order, as OptHdr keeps them), padded to 8 bytes with Pad1 or PadN."""
    body = b"".join(b"\0" if t == IPV6_TLV_PAD1 else bytes((t, len(data))) + data for t, data in options)
    pad = -(2 + len(body)) % 8
    if pad == 1:
        body += b"\0"
    elif pad:
        body += bytes((IPV6_TLV_PADN, pad - 2)) + bytes(pad - 2)
    return bytes((nexthdr, (2 + len(body)) // 8 - 1)) + body


def routing_hdr(nexthdr: int, type_: int, segments_left: int, data: bytes) -> bytes:
    if (4 + len(data)) % 8:
        raise ValueError("a routing header is a multiple of 8 bytes")
    return bytes((nexthdr, (4 + len(data)) // 8 - 1, type_, segments_left)) + data


def rt0_hdr(nexthdr: int, addresses, segments_left: int) -> bytes:
    """A type 0 routing header (RFC 2460), what Linux refuses with segments left."""
    return routing_hdr(nexthdr, IPV6_SRCRT_TYPE_0, segments_left,
                       bytes(4) + b"".join(a.to_bytes(16, "big") for a in addresses))


def frag_hdr(nexthdr: int, frag_off: int, ident: int) -> bytes:
    return _FRAG.pack(nexthdr, 0, frag_off, ident)


def emit_exthdr(h) -> bytes:
    """Writes back a record parse_*() returned."""
    if isinstance(h, FragHdr):
        return frag_hdr(h.nexthdr, h.frag_off, h.ident)
    if isinstance(h, RoutingHdr):
        return routing_hdr(h.nexthdr, h.type, h.segments_left, h.data)
    return opt_hdr(h.nexthdr, h.options)


# ---------------------------------------------------------------- the receive path's checks

def _hdrlen(buf, off: int, end: int, what: str) -> int:
    """The length of the header at `off`, checked to be there whole (the two pskb_may_pull()s
    each handler starts with; the kernel frees the skb without a reason)."""
    if end - off < 8 or end - off < (buf[off + 1] + 1) * 8:
        raise Malformed("NOT_SPECIFIED", f"{what} header cut short")
    return (buf[off + 1] + 1) * 8


def _tlvs(buf, off: int, end: int):
    """Yields an options header's TLVs (offset, type, data) as ip6_parse_tlv() walks
    them, so an option is acted on before a later one is judged: an option
    running past the header, more than 7 bytes of padding in a row, or PadN
    carrying anything but zeros (RFC 4942 2.1.9.5) is IP_INHDR."""
    i, padlen = off + 2, 0
    while i < end:
        if buf[i] == IPV6_TLV_PAD1:
            type_, data = IPV6_TLV_PAD1, b""
            padlen += 1
        elif end - i < 2 or buf[i + 1] + 2 > end - i:
            raise Malformed("IP_INHDR", f"option {buf[i]} runs past its header")
        else:
            type_, data = buf[i], bytes(buf[i + 2:i + 2 + buf[i + 1]])
            padlen = padlen + 2 + len(data) if type_ == IPV6_TLV_PADN else 0
            if type_ == IPV6_TLV_PADN and any(data):
                raise Malformed("IP_INHDR", "PadN carrying non-zero bytes")
        if padlen > 7:
            raise Malformed("IP_INHDR", "more than 7 bytes of padding")
        yield i, type_, data
        i += 1 if type_ == IPV6_TLV_PAD1 else 2 + len(data)


def _hop_option(optoff: int, type_: int, data: bytes, r: Ipv6Repr, avail: int) -> bool:
    """The hop-by-hop options Linux knows (ipv6_hop_ra/ioam/jumbo/calipso()); False for
    one it does not. `optoff` is from the start of the IPv6 header."""
    if type_ == IPV6_TLV_ROUTERALERT:
        if len(data) != 2:
            raise Malformed("IP_INHDR", f"router alert of {len(data)} bytes")
    elif type_ == IPV6_TLV_IOAM:
        if optoff & 3:                           # then ignored: net.ipv6.conf.*.ioam6_enabled is 0
            raise Malformed("IP_INHDR", "IOAM option not 4n-aligned")
    elif type_ == IPV6_TLV_JUMBO:
        _jumbo(optoff, data, r, avail)
    elif type_ == IPV6_TLV_CALIPSO:
        # Whatever its lengths say, no CALIPSO DOI is configured: calipso_validate() refuses it.
        raise Malformed("IP_INHDR", "CALIPSO option without a configured DOI")
    else:
        return False
    return True


def _jumbo(optoff: int, data: bytes, r: Ipv6Repr, avail: int):
    if len(data) != 4 or optoff & 3 != 2:
        raise Malformed("IP_INHDR", "jumbo payload option of a wrong length or alignment")
    n = int.from_bytes(data, "big")
    if n <= IPV6_MAXPLEN:
        raise ParamProblem("IP_INHDR", f"jumbo payload length {n}", ICMPV6_HDR_FIELD, optoff + 2)
    if r.payload_len:
        raise ParamProblem("IP_INHDR", "jumbo payload with a payload length", ICMPV6_HDR_FIELD, optoff)
    if n > avail:
        raise Malformed("PKT_TOO_SMALL", f"jumbo payload length {n} but only {avail} bytes")


def _unknown_option(optoff: int, type_: int, r: Ipv6Repr):
    """ip6_tlvopt_unknown(): the option type's two high bits say what to do (RFC 8200 4.2)."""
    action = type_ >> 6
    if action == 0:
        return
    what = f"unrecognised option {type_}"
    if action == 1 or (action == 3 and is_multicast(r.dst)):
        raise Malformed("UNHANDLED_PROTO", what)
    raise ParamProblem("UNHANDLED_PROTO", what, ICMPV6_UNK_OPTION, optoff)


def _parse_opthdr(buf, net_off: int, off: int, r: Ipv6Repr, hopbyhop: bool, max_opts: int) -> OptHdr:
    end = payload_end(buf, net_off, r)
    hdrlen = _hdrlen(buf, off, end, "hop-by-hop" if hopbyhop else "destination options")
    options, count = [], 0
    for i, type_, data in _tlvs(buf, off, off + hdrlen):
        options.append((type_, data))
        if type_ in (IPV6_TLV_PAD1, IPV6_TLV_PADN):
            continue
        count += 1
        if count > max_opts:
            raise Malformed("IP_INHDR", f"more than {max_opts} options")
        known = hopbyhop and _hop_option(i - net_off, type_, data, r, len(buf) - net_off - IPV6_HLEN)
        if not known:
            _unknown_option(i - net_off, type_, r)
    return OptHdr(buf[off], hdrlen, tuple(options))


def parse_hopopts(buf, net_off: int, r: Ipv6Repr, max_opts: int = IP6_DEFAULT_MAX_OPTS_CNT) -> OptHdr:
    """ipv6_parse_hopopts(): the hop-by-hop header right after the fixed header."""
    return _parse_opthdr(buf, net_off, net_off + IPV6_HLEN, r, True, max_opts)


def parse_destopts(buf, net_off: int, off: int, r: Ipv6Repr, max_opts: int = IP6_DEFAULT_MAX_OPTS_CNT) -> OptHdr:
    """ipv6_destopt_rcv(): Linux knows no destination option but mobile IPv6's home
    address (left to the option type's action here, as in a kernel without MIP6)."""
    return _parse_opthdr(buf, net_off, off, r, False, max_opts)


def parse_rthdr(buf, net_off: int, off: int, r: Ipv6Repr, *, pkt_host: bool = True) -> RoutingHdr:
    """ipv6_rthdr_rcv(). A routing header with no segments left is passed over,
    whatever its type (RFC 5095 3). With segments left, Linux routes none of the
    types (mobile IPv6's type 2 only with MIP6, not here): it counts InHdrErrors
    and answers a parameter problem, code 0, pointing at the type field; so type 0
    is refused (RFC 5095). SRv6 (4) and RPL (3) are dropped while
    net.ipv6.conf.*.seg6_enabled / rpl_seg_enabled are 0, their default."""
    end = payload_end(buf, net_off, r)
    hdrlen = _hdrlen(buf, off, end, "routing")
    if is_multicast(r.dst) or not pkt_host:
        raise Malformed("NOT_SPECIFIED", "routing header to a multicast address or another host (InAddrErrors)")
    h = RoutingHdr(buf[off], hdrlen, buf[off + 2], buf[off + 3], bytes(buf[off + 4:off + hdrlen]))
    if h.type in (IPV6_SRCRT_TYPE_3, IPV6_SRCRT_TYPE_4):
        raise Malformed("NOT_SPECIFIED", f"routing header type {h.type}: segment routing is off")
    if h.segments_left:
        raise ParamProblem("NOT_SPECIFIED", f"routing header type {h.type} with {h.segments_left} segments left",
                           ICMPV6_HDR_FIELD, off + 2 - net_off)
    return h


def parse_fraghdr(buf, net_off: int, off: int, r: Ipv6Repr) -> FragHdr:
    """ipv6_frag_rcv() and the checks of ip6_frag_queue() that need no queue. Each
    failure is a parameter problem (the kernel frees the skb without a reason):
    a jumbogram's or a cut fragment header (code 0, at the header), a first
    fragment without the upper-layer header (code 3, pointer 0, RFC 8200 4.5), a
    fragment ending beyond 65535 (code 0, at frag_off) or, not the last, on no
    8-byte boundary (code 0, at the payload length)."""
    end = payload_end(buf, net_off, r)
    if not r.payload_len or end - off < 8:
        raise ParamProblem("NOT_SPECIFIED", "fragment header of a jumbogram or cut short", ICMPV6_HDR_FIELD,
                           off - net_off)
    nexthdr, _res, frag_off, ident = _FRAG.unpack_from(buf, off)
    h = FragHdr(nexthdr, frag_off, ident)
    if not h.is_fragment:
        return h
    if _thdr_truncated(buf, net_off, r, end):
        raise ParamProblem("NOT_SPECIFIED", "first fragment without the upper-layer header", ICMPV6_HDR_INCOMP, 0)
    frag_end = h.offset + end - off - 8
    if frag_end > IPV6_MAXPLEN:
        raise ParamProblem("NOT_SPECIFIED", f"fragment ends at {frag_end}", ICMPV6_HDR_FIELD, off + 2 - net_off)
    if h.more and frag_end & 7:
        raise ParamProblem("NOT_SPECIFIED", "a fragment not the last of a multiple of 8 bytes", ICMPV6_HDR_FIELD, 4)
    return h


_L4_MIN = {NEXTHDR_TCP: 20, NEXTHDR_UDP: 8, NEXTHDR_ICMP: 8}


def _thdr_truncated(buf, net_off: int, r: Ipv6Repr, end: int) -> bool:
    """ipv6frag_thdr_truncated(): a first fragment must hold the upper-layer header."""
    try:
        walk = skip_exthdr(buf, net_off + IPV6_HLEN, r.nexthdr, end)
    except Malformed:
        return False
    if walk.frag_off & IP6_OFFSET:
        return False
    return walk.offset + _L4_MIN.get(walk.proto, 1) > end


class ExtChain(NamedTuple):
    """What rcv_exthdrs() found: the upper-layer protocol and where its header
    starts, or NEXTHDR_FRAGMENT and the fragment header (`frag`) of a packet to
    reassemble first. `nhoff` is the offset of the next-header field that named
    `proto` (an unknown protocol's parameter problem points there)."""
    proto: int
    offset: int
    nhoff: int
    headers: tuple                  # the records of the headers passed, in order
    frag: FragHdr | None = None


def _rcv_one(nexthdr: int, buf, net_off: int, off: int, r: Ipv6Repr, pkt_host: bool):
    if nexthdr == NEXTHDR_ROUTING:
        return parse_rthdr(buf, net_off, off, r, pkt_host=pkt_host)
    if nexthdr == NEXTHDR_FRAGMENT:
        return parse_fraghdr(buf, net_off, off, r)
    return parse_destopts(buf, net_off, off, r)


_RCV = (NEXTHDR_HOP, NEXTHDR_NONE, NEXTHDR_DEST, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT)


def rcv_exthdrs(buf, net_off: int, r: Ipv6Repr, *, pkt_host: bool = True, resume: ExtChain | None = None) -> ExtChain:
    """ip6_protocol_deliver_rcu()'s loop over the extension headers, up to the
    upper-layer protocol (never judged here). A hop-by-hop header anywhere but
    first is an unknown next header (parameter problem code 1, IP_NOPROTO), a
    13th header is IPV6_TOO_MANY_EXTHDRS, NEXTHDR_NONE ends the packet
    (dst_discard). `pkt_host`: the frame was addressed to this host (a routing
    header in one that was not is dropped). `resume`: the chain of the packet
    before reassembly; Linux removes the fragment header in place, so the walk
    goes on where it stood, still counting."""
    if resume is None:
        off, nhoff, seen = net_off + IPV6_HLEN, net_off + 6, []
        if r.nexthdr == NEXTHDR_HOP:
            seen.append(parse_hopopts(buf, net_off, r))
            nhoff, off = off, off + seen[0].hdrlen
    else:
        off, nhoff, seen = resume.offset, resume.nhoff, [*resume.headers, resume.frag]
    while (nh := buf[nhoff]) in _RCV:
        if nh == NEXTHDR_HOP:
            raise ParamProblem("IP_NOPROTO", "hop-by-hop header not first", ICMPV6_UNK_NEXTHDR, nhoff - net_off)
        if nh == NEXTHDR_NONE:
            raise Malformed("NOT_SPECIFIED", "no next header")
        h = _rcv_one(nh, buf, net_off, off, r, pkt_host)
        if isinstance(h, FragHdr) and h.is_fragment:
            return ExtChain(NEXTHDR_FRAGMENT, off, nhoff, tuple(seen), h)
        seen.append(h)
        if len(seen) > IP6_MAX_EXT_HDRS_CNT:
            raise Malformed("IPV6_TOO_MANY_EXTHDRS", f"more than {IP6_MAX_EXT_HDRS_CNT} extension headers")
        nhoff, off = off, off + h.hdrlen
    return ExtChain(nh, off, nhoff, tuple(seen))


# ---------------------------------------------------------------- walking a chain without judging it

class Walk(NamedTuple):
    proto: int
    offset: int
    frag_off: int                   # the last fragment header's frag_off, 0 for none


def skip_exthdr(buf, start: int, nexthdr: int, end: int | None = None) -> Walk:
    """ipv6_skip_exthdr(): steps over the extension headers from `start` (the byte
    after the header whose next-header field is `nexthdr`). A later fragment's
    header ends the walk there (what follows is data, proto NEXTHDR_FRAGMENT).
    The offset returned may lie past `end` when the last header was cut, as in
    the kernel. No next header or a header cut short: IPV6_BAD_EXTHDR; more
    than 12: IPV6_TOO_MANY_EXTHDRS."""
    end = len(buf) if end is None else end
    frag_off = count = 0
    while nexthdr in _EXTHDRS:
        if nexthdr == NEXTHDR_NONE:
            raise Malformed("IPV6_BAD_EXTHDR", "no next header")
        count += 1
        if count > IP6_MAX_EXT_HDRS_CNT:
            raise Malformed("IPV6_TOO_MANY_EXTHDRS", f"more than {IP6_MAX_EXT_HDRS_CNT} extension headers")
        if end - start < (4 if nexthdr == NEXTHDR_FRAGMENT else 2):
            raise Malformed("IPV6_BAD_EXTHDR", f"extension header {nexthdr} cut short")
        if nexthdr == NEXTHDR_FRAGMENT:
            frag_off = int.from_bytes(buf[start + 2:start + 4], "big")
            if frag_off & ~7:
                break
        nexthdr, start = buf[start], start + _skip_len(buf, start, nexthdr)
    return Walk(nexthdr, start, frag_off)


def _skip_len(buf, start: int, nexthdr: int) -> int:
    if nexthdr == NEXTHDR_FRAGMENT:
        return 8
    if nexthdr == NEXTHDR_AUTH:
        return (buf[start + 1] + 2) << 2           # AH counts 4-byte words (RFC 4302)
    return (buf[start + 1] + 1) << 3


def find_hdr(buf, net_off: int = 0, target: int = -1, end: int | None = None) -> Walk | None:
    """ipv6_find_hdr(): with `target` -1, the last header (the transport's, ESP's or
    NEXTHDR_NONE); for a later fragment, the protocol its fragment header names
    and its fragment offset (frag_off holds the offset alone here, the kernel's
    fragoff). With a target, that header, or None (-ENOENT). A chain cut short
    or of more than 12 headers: IPV6_BAD_EXTHDR (-EBADMSG)."""
    end = len(buf) if end is None else end
    if end - net_off < IPV6_HLEN or buf[net_off] >> 4 != 6:
        raise Malformed("IPV6_BAD_EXTHDR", "no IPv6 header")
    start, nexthdr = net_off + IPV6_HLEN, buf[net_off + 6]
    for count in range(IP6_MAX_EXT_HDRS_CNT + 1):
        found = nexthdr == target
        if nexthdr not in _EXTHDRS or nexthdr == NEXTHDR_NONE:
            return Walk(nexthdr, start, 0) if target < 0 or found else None
        if count == IP6_MAX_EXT_HDRS_CNT or end - start < (4 if nexthdr == NEXTHDR_FRAGMENT else 2):
            break
        frag = int.from_bytes(buf[start + 2:start + 4], "big") & ~7 if nexthdr == NEXTHDR_FRAGMENT else 0
        if frag:
            inner = buf[start]
            return Walk(inner, start, frag) if target < 0 and (inner not in _EXTHDRS or inner == NEXTHDR_NONE) \
                else None
        if found:
            return Walk(nexthdr, start, 0)
        nexthdr, start = buf[start], start + _skip_len(buf, start, nexthdr)
    raise Malformed("IPV6_BAD_EXTHDR", "extension header chain cut short or too long")
