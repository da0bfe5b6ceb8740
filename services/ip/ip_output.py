"""Locally generated packets (net/ipv4/ip_output.c): ip_queue_xmit() builds the
IP header for a segment from the transport layer, routes it, and hands it to
the neighbour layer; ip_output() is the last step for forwarded packets too."""
from ..common.actions import Down, Drop
from ..common import tcp_offload
from ..common.skbuff import IP_ID_SET
from ..wire import ipv4
from . import ip_fragment, route
from .netfilter.nf_hook import nf_hook
from .netfilter.x_tables import NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING
from .route import RouteError


def ip_queue_xmit(ns, skb, now: int, fn="ip_queue_xmit") -> list:
    """skb.data is the transport segment; skb carries the flow (daddr, saddr,
    ip_proto, ttl, tos, df) the transport layer chose."""
    dst = skb.dst
    if dst.oif and skb.saddr and dst.genid == ns.fib.genid:   # __sk_dst_check(): the socket's route holds
        rt = route.Rt(0, dst.oif, dst.nexthop, skb.saddr, dst.mtu)
    else:
        try:
            rt = route.ip_route_output(ns, skb.daddr, skb.saddr, mark=skb.mark)
        except RouteError:
            ns.mib["IpOutNoRoutes"] += 1
            return [Drop(skb, fn, "IP_OUTNOROUTES")]
    saddr = skb.saddr or rt.saddr
    ns.mib["IpOutRequests"] += 1
    if skb.ip_id & IP_ID_SET:
        ident = skb.ip_id & 0xFFFF
    elif skb.df:
        ident = 0                        # ip_select_ident_segs(): DF and no connected socket
    else:
        ident = ns.ident(saddr, skb.daddr, skb.ip_proto)
    hdr = ipv4.header(saddr, skb.daddr, skb.ip_proto, len(skb.data), ttl=skb.ttl or ns.default_ttl,
                      tos=skb.tos, ident=ident, df=skb.df)
    skb.data = hdr + skb.data
    skb.saddr = saddr
    skb.network_header = 0
    skb.transport_header = ipv4.IPV4_HLEN
    skb.protocol = 0x0800
    if ns.nf_active[NF_INET_LOCAL_OUT]:  # __ip_local_out()
        mark = skb.mark
        done, fn = nf_hook(ns, NF_INET_LOCAL_OUT, skb, ipv4.parse(skb.data), 0, rt.oif, now, (fn,) if
                           isinstance(fn, str) else fn)
        if done is not None:
            return done
        if skb.data[16:20] != hdr[16:20] or skb.mark != mark:   # DNAT or MARK: ip_route_me_harder()
            try:
                rt = route.ip_route_output(ns, int.from_bytes(skb.data[16:20], "big"), saddr, mark=skb.mark)
            except RouteError:
                ns.mib["IpOutNoRoutes"] += 1
                return [Drop(skb, fn, "IP_OUTNOROUTES")]
    return ip_output(ns, skb, rt, fn, now)


def ip_output(ns, skb, rt: route.Rt, fn, now: int) -> list:
    """ip_output() -> ip_finish_output(): a packet larger than the MTU is
    fragmented (ip_fragment()) unless DF forbids it; then each goes to the
    device with the next hop."""
    if ns.nf_active[NF_INET_POST_ROUTING]:
        done, fn = nf_hook(ns, NF_INET_POST_ROUTING, skb, ipv4.parse(skb.data), skb.ifindex, rt.oif, now,
                           (fn,) if isinstance(fn, str) else fn, rt.nexthop)
        if done is not None:
            return done
    pkts = [skb]
    if len(skb.data) > rt.mtu:
        pkts = tcp_offload.fit_mtu(skb, rt.mtu)
        if pkts is None:
            return [Drop(skb, fn, "SKB_GSO_SEG")]
        out = []
        for p in pkts:
            if len(p.data) <= rt.mtu or p.gso_size:
                out.append(p)
            elif int.from_bytes(p.data[6:8], "big") & ipv4.IP_DF:     # the sender asked for PMTU discovery
                ns.mib["IpFragFails"] += 1
                return [Drop(p, fn, "PKT_TOO_BIG")]
            else:
                frags = ip_fragment.ip_fragment(ns, p, rt.mtu, fn)
                if type(frags[0]) is Drop:
                    return frags
                out += frags
        pkts = out
    return ip_finish_output(ns, pkts, rt, fn)


def ip_finish_output(ns, pkts: list, rt: route.Rt, fn) -> list:
    mib = ns.mib
    out = []
    for p in pkts:
        mib["IpOutTransmits"] += 1
        mib["IpExtOutOctets"] += len(p.data)
        p.ifindex = rt.oif
        p.nexthop = rt.nexthop
        out.append(Down(p, fn))
    return out
