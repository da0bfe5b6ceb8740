"""ICMPv6 (net/ipv6/icmp.c): icmpv6_rcv() answers echo requests
(icmpv6_echo_reply()), passes echo replies to the ping sockets and errors to
the transport protocol they quote (icmpv6_notify(), as IcmpError with the
IPv6 fields); icmp6_send() builds errors as Linux does: from the address the
offending packet was sent to when it is this host's, else the one source
address selection picks on the device it came in on; quoting as much of it as
fits in 1280 bytes; never about an ICMPv6 error, a multicast destination or a
frame not for this host (but Packet Too Big and a parameter problem about an
option whose type says to report it), never to :: or a multicast source; rate
limited (the host-wide bucket shared with IPv4, then one per destination:
net.ipv6.icmp.ratelimit ms, less for a wider route's destinations) for the
types in net.ipv6.icmp.ratemask (every error but Packet Too Big).

Neighbour discovery is the link layer's (ndisc_rcv()): a message that reaches
this layer all the same is dropped. MLD messages are taken and ignored."""
import errno

from ..common.actions import Drop, Stop, Up
from ..common.skbuff import new_skb
from ..wire import Malformed, ipv6
from ..wire import icmpv6 as wire6
from ..wire.ipv6_exthdrs import skip_exthdr
from . import ip6_output
from .ip6_route import ip6_route_output
from .route import RouteError

MS = 1_000_000
PACKET_HOST = 0
ETH_P_IPV6 = 0x86DD
_MLD = (wire6.ICMPV6_MGM_QUERY, wire6.ICMPV6_MGM_REPORT, wire6.ICMPV6_MGM_REDUCTION, wire6.ICMPV6_MLD2_REPORT)
_NEEDS_SCOPE_ID = ipv6.IPV6_ADDR_LINKLOCAL | ipv6.IPV6_ADDR_LOOPBACK


def b16(addr: int) -> bytes:
    return addr.to_bytes(16, "big")


def icmpv6_rcv(ns, skb, hdr, l4: int, end: int, now: int, fn) -> list:
    """An ICMPv6 message for this host at l4 (its IPv6 payload ends at `end`)."""
    mib = ns.mib
    mib["Icmp6InMsgs"] += 1
    try:
        h = wire6.parse(skb.data, l4, end, hdr.src, hdr.dst)
    except Malformed as e:
        if e.reason == "ICMP_CSUM":
            mib["Icmp6InCsumErrors"] += 1
        mib["Icmp6InErrors"] += 1
        return [Drop(skb, fn + ("icmpv6_rcv",), e.reason)]
    mib[f"Icmp6InType{h.type}"] += 1
    if h.type == wire6.ICMPV6_ECHO_REQUEST:
        return icmpv6_echo_reply(ns, skb, hdr, h, l4, end, now, fn + ("icmpv6_echo_reply",))
    if h.type == wire6.ICMPV6_ECHO_REPLY:
        skb.head = l4                       # ping_rcv() reads from the ICMPv6 header on
        skb.dport = h.echo_id               # the identifier is the ping socket's port
        return [Up(skb, fn + ("icmpv6_rcv",))]
    if h.type in wire6.NDISC_TYPES:
        return [Drop(skb, fn + ("ndisc_rcv",), "NOT_SPECIFIED")]           # the link layer's
    if h.type in _MLD:
        return [Stop(skb, fn + ("igmp6_event_query" if h.type == wire6.ICMPV6_MGM_QUERY else "icmpv6_rcv",))]
    if h.type & wire6.ICMPV6_INFOMSG_MASK:
        return [Stop(skb, fn + ("icmpv6_rcv",))]                           # informational: nothing to do
    return icmpv6_notify(ns, skb, hdr, h, l4, end, fn + ("icmpv6_notify",))


def icmpv6_notify(ns, skb, hdr, h, l4: int, end: int, fn) -> list:
    """An error (or one of a type Linux does not know below 128): to the err_handler of
    the protocol it quotes (TCP, UDP, ICMPv6 for the ping sockets), decoded here once."""
    inner = l4 + wire6.ICMPV6_HLEN
    try:
        q = wire6.quoted(skb.data, inner, end)
    except Malformed as e:
        ns.mib["Icmp6InErrors"] += 1
        return [Drop(skb, fn, e.reason)]
    if q.proto not in (ipv6.NEXTHDR_TCP, ipv6.NEXTHDR_UDP, ipv6.IPPROTO_ICMPV6):
        return [Stop(skb, fn)]                                             # no err_handler: consumed
    e = skb.icmp_error
    e.type, e.code, e.info, e.offender6 = h.type, h.code, h.rest, b16(hdr.src)
    e.quoted_payload = q.l4
    f = e.quoted
    f.saddr6, f.daddr6, f.protocol = b16(q.src), b16(q.dst), q.proto
    if q.proto == ipv6.IPPROTO_ICMPV6:
        f.icmp_type, f.sport = q.echo
    else:
        f.sport, f.dport = q.ports
    skb.head = inner
    return [Up(skb, fn)]


def icmpv6_echo_reply(ns, skb, hdr, h, l4: int, end: int, now: int, fn) -> list:
    """The reply: same identifier, sequence and data, the request's traffic class, from
    the address asked (from the one source selection picks when that was a multicast
    or anycast address), out of the device the request came in on for a link-local
    peer, the device's hop limit. Echo replies are not rate limited (ratemask)."""
    n6 = ns.v6
    saddr = hdr.dst if n6.fib.chk_addr(hdr.dst) and not ipv6.is_multicast(hdr.dst) else 0
    oif = skb.ifindex if skb.ifindex != 1 else 0                          # icmp6_iif()
    try:
        rt = ip6_route_output(n6, hdr.src, saddr, oif)
    except RouteError as e:
        ns.mib["Ip6OutNoRoutes"] += e.errno == errno.ENETUNREACH
        return [Drop(skb, fn, "NOT_SPECIFIED")]
    saddr = saddr or rt.saddr
    payload = bytes(skb.data[l4 + wire6.ICMPV6_HLEN:end])
    body = wire6.emit(wire6.Icmpv6Repr(wire6.ICMPV6_ECHO_REPLY, 0, h.rest), payload, saddr, hdr.src)
    reply = new_skb(ns.name, body, skb, saddr6=b16(saddr), daddr6=b16(hdr.src), ip_proto=ipv6.IPPROTO_ICMPV6,
                    tos=hdr.tclass, protocol=ETH_P_IPV6)
    return [Stop(skb, fn)] + ip6_output.ip6_send(ns, reply, rt, now, "icmpv6_echo_reply")


def _opt_unrec(data, offset: int) -> bool:
    """opt_unrec(): the option's type says to report it even to a multicast address."""
    return offset >= len(data) or data[offset] & 0xC0 == 0x80


def is_ineligible(data, nh: int, end: int) -> bool:
    """is_ineligible(): never answer an ICMPv6 error (nor a packet cut before its type)."""
    if end - nh < ipv6.IPV6_HLEN:
        return True
    try:
        walk = skip_exthdr(data, nh + ipv6.IPV6_HLEN, data[nh + 6], end)
    except Malformed:
        return False
    if walk.proto != ipv6.IPPROTO_ICMPV6:
        return False
    if walk.offset >= end:
        return not walk.frag_off
    return not data[walk.offset] & wire6.ICMPV6_INFOMSG_MASK


def icmp6_send(ns, skb, type_: int, code: int, info: int, now: int, fn="icmp6_send") -> list:
    """An ICMPv6 error about `skb` (a packet received, its network header at
    network_header, skb.ifindex its in-device; or one this host was sending).
    Returns the new packet's actions, or nothing when Linux stays silent."""
    n6, data, nh = ns.v6, skb.data, skb.network_header
    if len(data) - nh < ipv6.IPV6_HLEN:
        return []
    src, dst = int.from_bytes(data[nh + 8:nh + 24], "big"), int.from_bytes(data[nh + 24:nh + 40], "big")
    end = min(len(data), nh + ipv6.IPV6_HLEN + int.from_bytes(data[nh + 4:nh + 6], "big")) \
        if data[nh + 4:nh + 6] != b"\0\0" else len(data)
    iif = skb.ifindex
    saddr = dst if n6.chk_addr(dst) or n6.anycast_on(iif, dst) else 0
    if ipv6.is_multicast(dst) or skb.pkt_type != PACKET_HOST:
        if type_ != wire6.ICMPV6_PKT_TOOBIG and not (
                type_ == wire6.ICMPV6_PARAMPROB and code == wire6.ICMPV6_UNK_OPTION and _opt_unrec(data, nh + info)):
            return []
        saddr = 0
    src_type = ipv6.addr_type(src)
    if src_type == ipv6.IPV6_ADDR_ANY or src_type & ipv6.IPV6_ADDR_MULTICAST or is_ineligible(data, nh, end):
        return []
    oif = iif if src_type & _NEEDS_SCOPE_ID else 0
    limited = type_ < 128 and type_ != wire6.ICMPV6_PKT_TOOBIG              # net.ipv6.icmp.ratemask
    if limited and iif != 1 and not ns.icmp_limits.global_allow(now):
        ns.mib["IcmpOutRateLimitGlobal"] += 1                              # the shared bucket's counter (IPv4's)
        return []
    if not saddr and iif in n6.devs and not getattr(n6.fib.lookup(src, oif), "prefsrc", 0):
        saddr = n6.dev_get_saddr(src, iif)        # from the device it came in on, unless the route names one
    try:
        rt = ip6_route_output(n6, src, saddr, oif)
    except RouteError as e:
        ns.mib["Ip6OutNoRoutes"] += e.errno == errno.ENETUNREACH       # ip6_dst_lookup_tail()
        return []
    if limited and not icmpv6_xrlim_allow(ns, rt, src, now):
        ns.mib["Icmp6OutRateLimitHost"] += 1
        return []
    saddr = saddr or rt.saddr
    body = wire6.error(type_, code, info, bytes(data[nh:end]), saddr, src)
    err = new_skb(ns.name, body, skb, saddr6=b16(saddr), daddr6=b16(src), ip_proto=ipv6.IPPROTO_ICMPV6,
                  protocol=ETH_P_IPV6)
    return ip6_output.ip6_send(ns, err, rt, now, fn)


def icmpv6_xrlim_allow(ns, rt, daddr: int, now: int) -> bool:
    """One message per net.ipv6.icmp.ratelimit ms to a destination (bursts of six), the
    time shortened for wider routes ("give more bandwidth to wider prefixes":
    >> (128 - plen) / 32); none to this host itself (lo)."""
    if rt.oif == 1:
        return True
    tmo = ns.sysctl["net.ipv6.icmp.ratelimit"] >> ((128 - rt.plen) >> 5)
    return ns.icmp_limits.peer_allow(daddr, now, tmo * MS, ns.icmp_limits.peers6)


def icmpv6_param_prob(ns, skb, code: int, pointer: int, reason: str, now: int, fn) -> list:
    """icmpv6_param_prob_reason(): the error, then the packet dropped."""
    return icmp6_send(ns, skb, wire6.ICMPV6_PARAMPROB, code, pointer, now) + [Drop(skb, fn, reason)]
