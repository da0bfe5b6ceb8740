"""ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861), as net/ipv6/icmp.c and
ndisc.c read them. The checksum covers the IPv6 pseudo-header, so `parse` and
the emitters take the addresses (ints, as in ipv6.py).

The neighbour discovery messages are records (RouterSolicit, RouterAdvert,
NeighSolicit, NeighAdvert, Redirect) holding their options as NdOptions, whose
`raw` bytes emit_ndisc() writes back: a parsed message re-emits byte for byte,
and nd_options() builds the options of a new one in the order Linux writes them.
"""
import struct
from typing import NamedTuple

from . import Malformed, icmp
from .checksum import csum_partial, inet_checksum, pseudo_header_sum6
from .ipv6 import (IPPROTO_ICMPV6, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_UNICAST, IPV6_HLEN, IPV6_MIN_MTU, Ipv6Repr,
                   addr_type, is_multicast, is_solicited_multicast)
from .ipv6_exthdrs import (ICMPV6_HDR_FIELD, ICMPV6_HDR_INCOMP, ICMPV6_UNK_NEXTHDR, ICMPV6_UNK_OPTION,  # noqa: F401
                           skip_exthdr)

# Types (include/uapi/linux/icmpv6.h); below 128 an error, from 128 informational (ICMPV6_INFOMSG_MASK)
ICMPV6_DEST_UNREACH = 1
ICMPV6_PKT_TOOBIG = 2
ICMPV6_TIME_EXCEED = 3
ICMPV6_PARAMPROB = 4
ICMPV6_INFOMSG_MASK = 0x80
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ICMPV6_MGM_QUERY = 130
ICMPV6_MGM_REPORT = 131
ICMPV6_MGM_REDUCTION = 132
NDISC_ROUTER_SOLICITATION = 133
NDISC_ROUTER_ADVERTISEMENT = 134
NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
NDISC_REDIRECT = 137
ICMPV6_MLD2_REPORT = 143

# ICMPV6_DEST_UNREACH codes, and where Linux sends each
ICMPV6_NOROUTE = 0              # no route, or an `unreachable` route (ip6_pkt_discard())
ICMPV6_ADM_PROHIBITED = 1       # a `prohibit` route (ip6_pkt_prohibit()), REJECT icmp6-adm-prohibited
ICMPV6_NOT_NEIGHBOUR = 2        # beyond the source's scope: forwarding from a link-local source (ip6_forward())
ICMPV6_ADDR_UNREACH = 3         # neighbour discovery failed (ndisc_error_report(), ip6_link_failure())
ICMPV6_PORT_UNREACH = 4         # no socket on the port (udpv6, raw)
ICMPV6_POLICY_FAIL = 5          # REJECT icmp6-policy-fail
ICMPV6_REJECT_ROUTE = 6         # REJECT icmp6-reject-route
# ICMPV6_TIME_EXCEED codes
ICMPV6_EXC_HOPLIMIT = 0         # ip6_forward(): hop limit 1 or less
ICMPV6_EXC_FRAGTIME = 1         # reassembly timed out (ip6_expire_frag_queue())
# ICMPV6_PARAMPROB codes ICMPV6_HDR_FIELD .. ICMPV6_HDR_INCOMP come from ipv6_exthdrs, whose checks send them

ICMPV6_HLEN = 8
ERROR_TYPES = (ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMPV6_PARAMPROB)
# icmp6_send(): an error quotes as much of the packet as fits in the minimum MTU (RFC 4443 2.4 c)
MAX_QUOTED = IPV6_MIN_MTU - IPV6_HLEN - ICMPV6_HLEN

_HDR = struct.Struct("!BBHI")


class Icmpv6Repr(NamedTuple):
    type: int
    code: int
    rest: int           # the 32 bits after the checksum: id<<16|seq, an MTU, a pointer, NA flags ...

    echo_id = icmp.IcmpRepr.echo_id     # an echo's identifier and sequence number, where IPv4's are
    echo_seq = icmp.IcmpRepr.echo_seq

    @property
    def mtu(self) -> int:
        """A packet too big's MTU."""
        return self.rest

    @property
    def pointer(self) -> int:
        """A parameter problem's pointer, from the start of the quoted IPv6 header."""
        return self.rest


def _pseudo(src: int, dst: int, length: int) -> int:
    return pseudo_header_sum6(src, dst, IPPROTO_ICMPV6, length)


def parse(buf, offset: int, end: int, src: int, dst: int) -> Icmpv6Repr:
    """Checks in icmpv6_rcv()'s order: the checksum over the pseudo-header
    (ICMP_CSUM), then room for the header (NOT_SPECIFIED). `end` is where the
    IPv6 payload ends."""
    if csum_partial(buf[offset:end], _pseudo(src, dst, max(end - offset, 0))) != 0xFFFF:
        raise Malformed("ICMP_CSUM", "bad ICMPv6 checksum")
    if end - offset < ICMPV6_HLEN:
        raise Malformed("NOT_SPECIFIED", f"ICMPv6 message of {end - offset} bytes, shorter than its header")
    type_, code, _check, rest = _HDR.unpack_from(buf, offset)
    return Icmpv6Repr(type_, code, rest)


def emit(r: Icmpv6Repr, payload: bytes, src: int, dst: int) -> bytes:
    hdr = _HDR.pack(r.type, r.code, 0, r.rest)
    check = inet_checksum(payload, csum_partial(hdr, _pseudo(src, dst, ICMPV6_HLEN + len(payload))))
    return hdr[:2] + check.to_bytes(2, "big") + hdr[4:] + payload


def echo(type_: int, ident: int, seq: int, payload: bytes, src: int, dst: int) -> bytes:
    return emit(Icmpv6Repr(type_, 0, (ident << 16) | seq), payload, src, dst)


def error(type_: int, code: int, rest: int, invoking: bytes, src: int, dst: int) -> bytes:
    """An error about `invoking` (the offending packet from its IPv6 header on),
    quoting no more of it than fits in 1280 bytes, as icmp6_send() cuts it."""
    return emit(Icmpv6Repr(type_, code, rest), invoking[:MAX_QUOTED], src, dst)


def is_error(type_: int) -> bool:
    """icmpv6_is_err(): the errors Linux knows (and never answers with another)."""
    return type_ in ERROR_TYPES


class Quoted(NamedTuple):
    """What an ICMPv6 error is about: the quoted packet's addresses, its
    upper-layer protocol past any extension headers, and that header's first 8
    bytes. A quoted later fragment has proto NEXTHDR_FRAGMENT and frag_off set."""
    src: int
    dst: int
    proto: int
    l4: int             # offset of the quoted upper-layer header in the buffer
    head: bytes
    frag_off: int

    ports = icmp.Quoted.ports           # UDP's and TCP's (source, destination), read as for IPv4
    echo = icmp.Quoted.echo             # a quoted ICMPv6 message's (type, identifier)


def quoted(buf, offset: int, end: int | None = None) -> Quoted:
    """icmpv6_notify()'s decode of an error's quoted packet at `offset`: its IPv6
    header must be there (PKT_TOO_SMALL), its extension headers walk cleanly
    (IPV6_BAD_EXTHDR, whatever ipv6_skip_exthdr() stumbled on), and 8 bytes of
    the upper-layer header follow (PKT_TOO_SMALL)."""
    end = len(buf) if end is None else end
    if end - offset < IPV6_HLEN:
        raise Malformed("PKT_TOO_SMALL", "the quoted IPv6 header is cut short")
    try:
        walk = skip_exthdr(buf, offset + IPV6_HLEN, buf[offset + 6], end)
    except Malformed as e:
        raise Malformed("IPV6_BAD_EXTHDR", f"quoted packet: {e.what}") from None
    if end - walk.offset < 8:
        raise Malformed("PKT_TOO_SMALL", "the quoted upper-layer header is cut short")
    return Quoted(_addr(buf, offset + 8), _addr(buf, offset + 24), walk.proto, walk.offset,
                  bytes(buf[walk.offset:walk.offset + 8]), walk.frag_off)


# ---------------------------------------------------------------- neighbour discovery options

ND_OPT_SOURCE_LL_ADDR = 1
ND_OPT_TARGET_LL_ADDR = 2
ND_OPT_PREFIX_INFO = 3
ND_OPT_REDIRECT_HDR = 4
ND_OPT_MTU = 5
ND_OPT_NONCE = 14
ND_OPT_ROUTE_INFO = 24
ND_OPT_RDNSS = 25
ND_OPT_DNSSL = 31
# ndisc_parse_options() keeps the first of these and passes over repeats
_FIRST_KEPT = (ND_OPT_SOURCE_LL_ADDR, ND_OPT_TARGET_LL_ADDR, ND_OPT_REDIRECT_HDR, ND_OPT_MTU, ND_OPT_NONCE)

# Prefix information flags (RFC 4861 4.6.2)
ND_PREFIX_ONLINK = 0x80
ND_PREFIX_AUTOCONF = 0x40
ND_PREFIX_ROUTER_ADDR = 0x20

_PREFIX = struct.Struct("!BBBBIII16s")


def _flag(bit: int) -> property:
    return property(lambda self: bool(self.flags & bit))


class PrefixInfo(NamedTuple):
    prefix_len: int
    flags: int
    valid_lft: int                  # seconds; 0xFFFFFFFF is infinity
    preferred_lft: int
    prefix: int

    onlink = _flag(ND_PREFIX_ONLINK)
    autoconf = _flag(ND_PREFIX_AUTOCONF)


class NdOptions(NamedTuple):
    """The options of a neighbour discovery message as ndisc_parse_options() files
    them: the data (after type and length) of the first source/target link-layer
    address, MTU, nonce and redirected header options, every prefix information
    option long enough to be one; `raw` is all the options as on the wire,
    unknown ones included (RFC 4861 says to pass over them)."""
    source_ll: bytes | None = None
    target_ll: bytes | None = None
    prefixes: tuple = ()
    mtu: int | None = None
    nonce: bytes | None = None      # 6 bytes (RFC 7527 enhanced DAD)
    redirected: bytes | None = None  # the start of the redirected packet, from its IPv6 header
    raw: bytes = b""


NO_OPTIONS = NdOptions()


def parse_options(buf, start: int, end: int) -> NdOptions:
    """ndisc_parse_options(): an option of length 0 or running past the message
    makes the whole message IPV6_NDISC_BAD_OPTIONS."""
    first, prefixes, i = {}, [], start
    while i < end:
        n = buf[i + 1] * 8 if end - i >= 2 else 0
        if n == 0 or n > end - i:
            raise Malformed("IPV6_NDISC_BAD_OPTIONS", f"option {buf[i]} of length {n} with {end - i} bytes left")
        type_, body = buf[i], bytes(buf[i + 2:i + n])
        if type_ in _FIRST_KEPT:
            first.setdefault(type_, body)
        elif type_ == ND_OPT_PREFIX_INFO and n >= _PREFIX.size:      # shorter ones: addrconf_prefix_rcv() ignores
            prefixes.append(_prefix_info(buf, i))
        i += n
    mtu, nonce = first.get(ND_OPT_MTU), first.get(ND_OPT_NONCE)
    return NdOptions(first.get(ND_OPT_SOURCE_LL_ADDR), first.get(ND_OPT_TARGET_LL_ADDR), tuple(prefixes),
                     None if mtu is None else int.from_bytes(mtu[2:6], "big"),
                     nonce if nonce is not None and len(nonce) == 6 else None,
                     None if ND_OPT_REDIRECT_HDR not in first else first[ND_OPT_REDIRECT_HDR][6:],
                     bytes(buf[start:end]))


def _prefix_info(buf, i: int) -> PrefixInfo:
    _t, _n, plen, flags, valid, preferred, _res, prefix = _PREFIX.unpack_from(buf, i)
    return PrefixInfo(plen, flags, valid, preferred, int.from_bytes(prefix, "big"))


def _addr_option(type_: int, data: bytes) -> bytes:
    """__ndisc_fill_addr_option(): type, length in 8 bytes, the data, zeros to fill."""
    n = (len(data) + 2 + 7) // 8 * 8
    return bytes((type_, n // 8)) + data + bytes(n - 2 - len(data))


def nd_options(*, source_ll: bytes | None = None, target_ll: bytes | None = None, prefixes=(), mtu: int | None = None,
               nonce: bytes | None = None, redirected: bytes | None = None) -> NdOptions:
    """Options for a new message, in the order Linux writes them. `redirected` is
    cut to a multiple of 8 bytes (ndisc_send_redirect() also keeps the whole
    redirect within 1280 bytes: the caller cuts it to that first)."""
    out = b"" if source_ll is None else _addr_option(ND_OPT_SOURCE_LL_ADDR, source_ll)
    out += b"" if target_ll is None else _addr_option(ND_OPT_TARGET_LL_ADDR, target_ll)
    for p in prefixes:
        out += _PREFIX.pack(ND_OPT_PREFIX_INFO, 4, p.prefix_len, p.flags, p.valid_lft, p.preferred_lft, 0,
                            p.prefix.to_bytes(16, "big"))
    out += b"" if mtu is None else struct.pack("!BBHI", ND_OPT_MTU, 1, 0, mtu)
    out += b"" if nonce is None else _addr_option(ND_OPT_NONCE, nonce)
    if redirected is not None:
        data = redirected[:len(redirected) & ~7]
        out += bytes((ND_OPT_REDIRECT_HDR, len(data) // 8 + 1)) + bytes(6) + data
    return parse_options(out, 0, len(out))


# ---------------------------------------------------------------- neighbour discovery messages

# Neighbour advertisement flags, in the 32 bits after the checksum
ND_NA_ROUTER = 0x80000000
ND_NA_SOLICITED = 0x40000000
ND_NA_OVERRIDE = 0x20000000
# Router advertisement flags
ND_RA_FLAG_MANAGED = 0x80
ND_RA_FLAG_OTHER = 0x40


class RouterSolicit(NamedTuple):
    opts: NdOptions = NO_OPTIONS

    def wire(self) -> tuple:
        return NDISC_ROUTER_SOLICITATION, 0, b""


class RouterAdvert(NamedTuple):
    cur_hop_limit: int
    flags: int
    router_lifetime: int            # seconds; 0: not a default router
    reachable_time: int             # ms
    retrans_timer: int              # ms
    opts: NdOptions = NO_OPTIONS

    def wire(self) -> tuple:
        rest = self.cur_hop_limit << 24 | self.flags << 16 | self.router_lifetime
        return NDISC_ROUTER_ADVERTISEMENT, rest, struct.pack("!II", self.reachable_time, self.retrans_timer)


class NeighSolicit(NamedTuple):
    target: int
    opts: NdOptions = NO_OPTIONS

    def wire(self) -> tuple:
        return NDISC_NEIGHBOUR_SOLICITATION, 0, self.target.to_bytes(16, "big")


class NeighAdvert(NamedTuple):
    flags: int                      # ND_NA_ROUTER | ND_NA_SOLICITED | ND_NA_OVERRIDE, as on the wire
    target: int
    opts: NdOptions = NO_OPTIONS

    router = _flag(ND_NA_ROUTER)
    solicited = _flag(ND_NA_SOLICITED)
    override = _flag(ND_NA_OVERRIDE)

    def wire(self) -> tuple:
        return NDISC_NEIGHBOUR_ADVERTISEMENT, self.flags, self.target.to_bytes(16, "big")


class Redirect(NamedTuple):
    target: int                     # the better first hop
    dest: int                       # the destination redirected
    opts: NdOptions = NO_OPTIONS

    def wire(self) -> tuple:
        return NDISC_REDIRECT, 0, self.target.to_bytes(16, "big") + self.dest.to_bytes(16, "big")


def emit_ndisc(msg, src: int, dst: int) -> bytes:
    type_, rest, body = msg.wire()
    return emit(Icmpv6Repr(type_, 0, rest), body + msg.opts.raw, src, dst)


def parse_ndisc(buf, offset: int, end: int, ip: Ipv6Repr):
    """ndisc_rcv() and the checks its handlers make before they act: the hop limit
    must be 255, so the message cannot come from off the link
    (IPV6_NDISC_HOP_LIMIT), the code 0 (IPV6_NDISC_BAD_CODE); then each type's
    length (PKT_TOO_SMALL), options (IPV6_NDISC_BAD_OPTIONS), link-layer address
    option of 6 bytes and the address rules of RFC 4861 (NOT_SPECIFIED: the
    kernel frees those without a reason). Run after parse(), which checked the
    checksum; a fragmented message (suppress_frag_ndisc) is the caller's to drop."""
    if ip.hop_limit != 255:
        raise Malformed("IPV6_NDISC_HOP_LIMIT", f"hop limit {ip.hop_limit}")
    if buf[offset + 1]:
        raise Malformed("IPV6_NDISC_BAD_CODE", f"code {buf[offset + 1]}")
    return _ND_RCV[buf[offset]](buf, offset, end, ip)


def _too_small(offset: int, end: int, need: int, what: str):
    if end - offset < need:
        raise Malformed("PKT_TOO_SMALL", f"{what} of {end - offset} bytes")


def _refuse(what: str):
    raise Malformed("NOT_SPECIFIED", what)


def _lladdr(opt: bytes | None, what: str):
    """ndisc_opt_addr_data(): an Ethernet address option is 8 bytes long."""
    if opt is not None and len(opt) != 6:
        _refuse(f"{what}: invalid link-layer address length")


def _addr(buf, i: int) -> int:
    return int.from_bytes(buf[i:i + 16], "big")


def _recv_rs(buf, offset, end, ip) -> RouterSolicit:
    _too_small(offset, end, 8, "RS")
    opts = parse_options(buf, offset + 8, end)
    _lladdr(opts.source_ll, "RS")
    return RouterSolicit(opts)


def _recv_ra(buf, offset, end, ip) -> RouterAdvert:
    if not addr_type(ip.src) & IPV6_ADDR_LINKLOCAL:
        _refuse("RA: source address is not link-local")
    _too_small(offset, end, 16, "RA")
    opts = parse_options(buf, offset + 16, end)
    _lladdr(opts.source_ll, "RA")               # Linux finds it only after acting on the RA's fields
    cur, flags, lifetime, reachable, retrans = struct.unpack_from("!BBHII", buf, offset + 4)
    return RouterAdvert(cur, flags, lifetime, reachable, retrans, opts)


def _recv_ns(buf, offset, end, ip) -> NeighSolicit:
    _too_small(offset, end, 24, "NS")
    target, dad = _addr(buf, offset + 8), ip.src == 0
    if is_multicast(target):
        _refuse("NS: multicast target address")
    if dad and not is_solicited_multicast(ip.dst):
        _refuse("NS: bad DAD packet (wrong destination)")
    opts = parse_options(buf, offset + 24, end)
    _lladdr(opts.source_ll, "NS")
    if dad and opts.source_ll is not None:
        _refuse("NS: bad DAD packet (link-layer address option)")
    return NeighSolicit(target, opts)


def _recv_na(buf, offset, end, ip) -> NeighAdvert:
    _too_small(offset, end, 24, "NA")
    flags, target = int.from_bytes(buf[offset + 4:offset + 8], "big"), _addr(buf, offset + 8)
    if is_multicast(target):
        _refuse("NA: target address is multicast")
    if is_multicast(ip.dst) and flags & ND_NA_SOLICITED:
        _refuse("NA: solicited NA is multicasted")
    opts = parse_options(buf, offset + 24, end)
    _lladdr(opts.target_ll, "NA")
    return NeighAdvert(flags, target, opts)


def _recv_redirect(buf, offset, end, ip) -> Redirect:
    if not addr_type(ip.src) & IPV6_ADDR_LINKLOCAL:
        _refuse("Redirect: source address is not link-local")
    if end - offset < 40:
        # ndisc_redirect_rcv() hands ndisc_parse_options() a negative length, which it refuses
        raise Malformed("IPV6_NDISC_BAD_OPTIONS", f"redirect of {end - offset} bytes")
    opts = parse_options(buf, offset + 40, end)
    target, dest = _addr(buf, offset + 8), _addr(buf, offset + 24)
    if is_multicast(dest):                      # the checks of rt6_do_redirect()
        _refuse("redirect: destination address is multicast")
    if target != dest and addr_type(target) != IPV6_ADDR_UNICAST | IPV6_ADDR_LINKLOCAL:
        _refuse("redirect: target address is not link-local unicast")
    _lladdr(opts.target_ll, "redirect")
    return Redirect(target, dest, opts)


_ND_RCV = {NDISC_ROUTER_SOLICITATION: _recv_rs, NDISC_ROUTER_ADVERTISEMENT: _recv_ra,
           NDISC_NEIGHBOUR_SOLICITATION: _recv_ns, NDISC_NEIGHBOUR_ADVERTISEMENT: _recv_na,
           NDISC_REDIRECT: _recv_redirect}
NDISC_TYPES = tuple(_ND_RCV)
