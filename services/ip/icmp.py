"""ICMP (net/ipv4/icmp.c): icmp_rcv() answers echo requests and passes errors
to the transport protocol they quote; icmp_send() builds errors about a packet,
as Linux does: quoting up to 576 bytes of the offending datagram, TOS with
precedence "internetwork control", rate-limited, never about an ICMP error, a
broadcast or a non-first fragment."""
from ..common.actions import Drop, Stop, Up
from ..common.skbuff import new_skb
from ..wire import Malformed, icmp, ipv4
from . import ip_output, route
from .icmp_ratelimit import RateLimits
from .route import RouteError

IPTOS_TOS_MASK = 0x1E
IPTOS_PREC_INTERNETCONTROL = 0xC0
ICMP_QUOTE_ROOM = 576 - ipv4.IPV4_HLEN - icmp.ICMP_HLEN
IN_COUNTER = {icmp.ICMP_DEST_UNREACH: "IcmpInDestUnreachs", icmp.ICMP_TIME_EXCEEDED: "IcmpInTimeExcds",
              icmp.ICMP_PARAMETERPROB: "IcmpInParmProbs", icmp.ICMP_ECHO: "IcmpInEchos",
              icmp.ICMP_ECHOREPLY: "IcmpInEchoReps"}
OUT_COUNTER = {k: v.replace("In", "Out", 1) for k, v in IN_COUNTER.items()}


def _count_out(ns, type_: int):
    ns.mib["IcmpOutMsgs"] += 1
    if type_ in OUT_COUNTER:
        ns.mib[OUT_COUNTER[type_]] += 1
    ns.mib[f"IcmpMsgOutType{type_}"] += 1


def icmp_rcv(ns, skb, iph, now: int, fn) -> list:
    """An ICMP message delivered to this host (skb.transport_header set)."""
    th = skb.transport_header
    end = skb.network_header + iph.total_len
    ns.mib["IcmpInMsgs"] += 1
    try:
        h = icmp.parse(skb.data, th, end)
    except Malformed as e:
        ns.mib["IcmpInErrors"] += 1
        if e.reason == "ICMP_CSUM":
            ns.mib["IcmpInCsumErrors"] += 1
        return [Drop(skb, fn + ("icmp_rcv",), e.reason)]
    if h.type in IN_COUNTER:
        ns.mib[IN_COUNTER[h.type]] += 1
    ns.mib[f"IcmpMsgInType{h.type}"] += 1
    broadcast = skb.pkt_type != 0 or ns.fib.is_broadcast(iph.dst)
    if h.type == icmp.ICMP_ECHO:
        if ns.sysctl["net.ipv4.icmp_echo_ignore_all"]:
            return [Stop(skb, fn + ("icmp_echo",))]
        if broadcast and ns.sysctl["net.ipv4.icmp_echo_ignore_broadcasts"]:
            return [Drop(skb, fn + ("icmp_echo",), "INVALID_PROTO")]
        return [Stop(skb, fn + ("icmp_echo",))] + icmp_reply(ns, skb, iph, h, end, now)
    if h.type == icmp.ICMP_ECHOREPLY:
        skb.head = th                   # ping_rcv() reads from the ICMP header on
        skb.dport = h.echo_id           # the identifier is the ping socket's port
        return [Up(skb, fn + ("icmp_rcv",))]
    if icmp.is_error(h.type):
        # icmp_unreach(): the quoted header must be there for the err_handler
        inner = th + icmp.ICMP_HLEN
        if end - inner < ipv4.IPV4_HLEN or (skb.data[inner] & 0x0F) < 5 or \
                end - inner < (skb.data[inner] & 0x0F) * 4 + 8:          # iph->ihl < 5: mangled
            ns.mib["IcmpInErrors"] += 1
            return [Drop(skb, fn + ("icmp_unreach",), "NOT_SPECIFIED")]   # as icmp_unreach(): no reason
        if broadcast:
            return [Drop(skb, fn + ("icmp_unreach",), "INVALID_PROTO")]
        skb.head = inner
        report_error(skb, h, iph.src, icmp.quoted(skb.data, inner))
        return [Up(skb, fn + ("icmp_unreach",))]
    return [Stop(skb, fn + ("icmp_rcv",))]


def report_error(skb, h, offender: int, q: icmp.Quoted):
    """What icmp_unreach() hands the quoted protocol's err_handler: the error and
    the flow it quotes, decoded here once."""
    e = skb.icmp_error
    e.type, e.code, e.info, e.offender = h.type, h.code, h.rest & 0xFFFF, offender
    e.quoted_payload = q.l4
    f = e.quoted
    f.saddr, f.daddr, f.protocol = q.src, q.dst, q.proto
    if q.proto == ipv4.IPPROTO_ICMP:
        f.icmp_type, f.sport = q.echo
    else:
        f.sport, f.dport = q.ports


def icmp_reply(ns, skb, iph, h, end: int, now: int) -> list:
    """icmp_echo() -> icmp_reply(): same id, sequence and data, back to the sender."""
    payload = skb.data[skb.transport_header + icmp.ICMP_HLEN:end]
    data = icmp.emit(icmp.IcmpRepr(icmp.ICMP_ECHOREPLY, 0, h.rest), payload)
    saddr = iph.dst if ns.fib.is_local(iph.dst) else 0
    reply = new_skb(ns.name, data, skb, daddr=iph.src, saddr=saddr, ip_proto=ipv4.IPPROTO_ICMP,
                    tos=iph.tos, ttl=ns.default_ttl)
    _count_out(ns, icmp.ICMP_ECHOREPLY)
    return ip_output.ip_queue_xmit(ns, reply, now, "icmp_reply")


def icmp_send(ns, skb, type_: int, code: int, info: int, now: int, fn="icmp_send") -> list:
    """An ICMP error about `skb` (a received packet with network_header set, or a
    packet this host was sending). Returns the new packet's verdicts, or nothing
    when Linux would stay silent."""
    nh = skb.network_header
    data = skb.data
    try:
        iph = ipv4.parse(data, nh)
    except Malformed:
        return []
    if iph.frag_off & ipv4.IP_OFFSET or skb.pkt_type not in (0, 4):
        return []
    if ns.fib.is_broadcast(iph.dst) or ipv4.is_multicast(iph.dst) or ipv4.is_zeronet(iph.src) \
            or ipv4.is_multicast(iph.src) or iph.src == ipv4.INADDR_BROADCAST:
        return []
    if iph.proto == ipv4.IPPROTO_ICMP:
        t = nh + iph.ihl
        inner_type = data[t] if len(data) > t else 255
        if inner_type > 18 or icmp.is_error(inner_type):
            return []                   # never an error about an error
    if RateLimits.limited_type(type_, code):
        limits = ns.icmp_limits
        try:
            to_self = route.ip_route_output(ns, iph.src).oif == route.LOOPBACK_IFINDEX
        except RouteError:
            return []
        if not to_self:
            if not limits.global_allow(now):
                ns.mib["IcmpOutRateLimitGlobal"] += 1
                return []
            if not limits.peer_allow(iph.src, now):
                ns.mib["IcmpOutRateLimitHost"] += 1
                return []
    quoted = data[nh:nh + min(iph.total_len, ICMP_QUOTE_ROOM)]
    body = icmp.emit(icmp.IcmpRepr(type_, code, info), quoted)
    saddr = iph.dst if ns.fib.is_local(iph.dst) else 0
    err = new_skb(ns.name, body, skb, daddr=iph.src, saddr=saddr, ip_proto=ipv4.IPPROTO_ICMP,
                  tos=(iph.tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL, ttl=ns.default_ttl)
    _count_out(ns, type_)
    return ip_output.ip_queue_xmit(ns, err, now, fn)
