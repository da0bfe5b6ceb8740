"""Packets from the device layer (net/ipv4/ip_input.c): ip_rcv() checks the
header in ip_rcv_core()'s order, routes it, and either forwards it or delivers
it to ICMP here or to the transport layer above."""
import errno

from pktflow.v1.skb_pb2 import PACKET_HOST

from ..common.actions import Drop, Up
from ..wire import Malformed, icmp, ipv4
from . import icmp as icmpmod, ip_forward, ip_fragment, route
from .netfilter.nf_hook import nf_hook
from .netfilter.x_tables import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING
from .route import RouteError

PACKET_OTHERHOST = 3
TRANSPORT_PROTOCOLS = (ipv4.IPPROTO_UDP, ipv4.IPPROTO_TCP)
_HDR_ERROR_COUNTERS = {"IP_CSUM": ("IpExtInCsumErrors", "IpInHdrErrors"), "IP_INHDR": ("IpInHdrErrors",),
                       "PKT_TOO_SMALL": ("IpExtInTruncatedPkts",)}


def ip_rcv(ns, skb, now: int) -> list:
    fn = ("ip_rcv",)
    if skb.pkt_type == PACKET_OTHERHOST:
        ns.devstats[skb.ifindex]["rx_otherhost_dropped"] += 1
        return [Drop(skb, fn, "OTHERHOST")]
    mib = ns.mib
    nh = skb.network_header
    mib["IpInReceives"] += 1
    mib["IpExtInOctets"] += len(skb.data) - nh
    try:
        iph = ipv4.parse(skb.data, nh)
    except Malformed as e:
        for c in _HDR_ERROR_COUNTERS.get(e.reason, ()):
            mib[c] += 1
        return [Drop(skb, fn, e.reason)]
    if len(skb.data) > nh + iph.total_len:     # pskb_trim_rcsum(): the medium padded the frame
        skb.data = skb.data[:nh + iph.total_len]
    skb.transport_header = nh + iph.ihl
    out = []
    if ns.nf_active[NF_INET_PRE_ROUTING]:
        if ns.ct is not None and iph.is_fragment:
            # nf_defrag_ipv4 (priority -400): conntrack and NAT see whole datagrams;
            # ip_output() fragments them again where they leave
            whole, out = ip_fragment.ip_defrag(ns, skb, iph, now, fn + ("ip_defrag",))
            if whole is None:
                return out
            skb, iph = whole, ipv4.parse(whole.data)
        data = skb.data
        done, fn = nf_hook(ns, NF_INET_PRE_ROUTING, skb, iph, skb.ifindex, 0, now, fn)
        if done is not None:
            return out + done
        if skb.data is not data:                 # DNAT: route the new destination
            iph = ipv4.parse(skb.data, skb.network_header)
        if out:                                  # the fragments this datagram completed
            return out + _route_input(ns, skb, iph, now, fn)
    return _route_input(ns, skb, iph, now, fn)


def _route_input(ns, skb, iph, now: int, fn) -> list:
    try:
        kind, rt = route.ip_route_input(ns, iph, skb.ifindex, skb.mark)
    except RouteError as e:
        if getattr(e, "martian", None):
            route.log_martian(ns, e.martian, skb.data, skb.network_header, skb.ifindex, now)
        return ip_error(ns, skb, e, now, fn)
    if kind == route.FORWARD:
        return ip_forward.ip_forward(ns, skb, iph, rt, now, fn)
    if kind == route.BROADCAST and skb.pkt_type == PACKET_HOST:
        skb.pkt_type = 1                         # delivered as a broadcast
    return ip_local_deliver(ns, skb, iph, now, fn + ("ip_local_deliver",))


def ip_error(ns, skb, e: RouteError, now: int, fn) -> list:
    """ip_error(): the input route said no."""
    reason = getattr(e, "reason", None)
    if reason:                                   # a martian
        return [Drop(skb, fn, reason)]
    if not ns.in_dev_forward(skb.ifindex):      # IN_DEV_FORWARD(in_dev), as ip_route_input_slow() decided
        if e.errno == errno.EHOSTUNREACH:
            ns.mib["IpInAddrErrors"] += 1
            return [Drop(skb, fn, "IP_INADDRERRORS")]
        ns.mib["IpExtInNoRoutes"] += 1
        return [Drop(skb, fn, "IP_INNOROUTES")]
    code = {errno.EHOSTUNREACH: icmp.ICMP_HOST_UNREACH, errno.ENETUNREACH: icmp.ICMP_NET_UNREACH,
            errno.EACCES: icmp.ICMP_PKT_FILTERED}.get(e.errno)
    reason = "NOT_SPECIFIED"
    if e.errno == errno.ENETUNREACH:
        ns.mib["IpExtInNoRoutes"] += 1
        reason = "IP_INNOROUTES"
    out = [Drop(skb, fn, reason)]
    if code is not None:
        out = icmpmod.icmp_send(ns, skb, icmp.ICMP_DEST_UNREACH, code, 0, now) + out
    return out


def ip_local_deliver(ns, skb, iph, now: int, fn=("ip_rcv", "ip_local_deliver")) -> list:
    if iph.is_fragment:
        whole, done = ip_fragment.ip_defrag(ns, skb, iph, now, fn)
        if whole is None:
            return done
        # the reassembled datagram: ip_defrag() returned to ip_local_deliver(), which goes on
        return done + ip_local_deliver(ns, whole, ipv4.parse(whole.data), now, ("ip_local_deliver_finish",))
    if ns.nf_active[NF_INET_LOCAL_IN]:
        done, fn = nf_hook(ns, NF_INET_LOCAL_IN, skb, iph, skb.ifindex, 0, now, fn)
        if done is not None:
            return done
    proto = iph.proto
    # ip_hdr(skb) for the layers above: the header, parsed once
    skb.saddr, skb.daddr, skb.ip_proto, skb.ttl, skb.tos = iph.src, iph.dst, proto, iph.ttl, iph.tos
    if proto == ipv4.IPPROTO_ICMP:
        ns.mib["IpInDelivers"] += 1
        return icmpmod.icmp_rcv(ns, skb, iph, now, fn)
    if proto in TRANSPORT_PROTOCOLS:
        ns.mib["IpInDelivers"] += 1
        skb.head = skb.transport_header
        return [Up(skb, fn)]
    ns.mib["IpInUnknownProtos"] += 1
    out = [] if skb.pkt_type != 0 else icmpmod.icmp_send(ns, skb, icmp.ICMP_DEST_UNREACH, icmp.ICMP_PROT_UNREACH,
                                                         0, now)
    return out + [Drop(skb, fn, "IP_NOPROTO")]
