"""IPv6 input (net/ipv6/ip6_input.c and the receive handlers of exthdrs.c):
ipv6_rcv() checks the header in ip6_rcv_core()'s order (wire/ipv6.py) and a
hop-by-hop header, which every router reads; ip6_rcv_finish() routes the
packet: ip6_input() for this host (its own or subnet-router anycast
addresses), ip6_mc_input() for a multicast group, ip6_forward(), or
ip6_pkt_discard() (no route: destination unreachable, no route). ip6_input()
walks the extension headers in ip6_protocol_deliver_rcu()'s order
(wire/ipv6_exthdrs.py), reassembles fragments (reassembly.py) and delivers:
ICMPv6 here (icmpv6.py), UDP and TCP to the transport layer, anything else
answered with a parameter problem (unknown next header).

What goes up carries the header as ip6_input read it: saddr6, daddr6,
ip_proto (the upper-layer protocol past the extension headers), ttl (the hop
limit), tos (the traffic class), flowlabel; transport_header and head at the
upper-layer header."""
from ..common.actions import Drop, Up
from ..wire import Malformed, ipv6
from ..wire.icmpv6 import ICMPV6_ADM_PROHIBITED, ICMPV6_DEST_UNREACH, ICMPV6_NOROUTE, ICMPV6_UNK_NEXTHDR
from ..wire.ipv6_exthdrs import FragHdr, ParamProblem, parse_hopopts, rcv_exthdrs
from . import ip6_route, reassembly
from .icmpv6 import icmp6_send, icmpv6_param_prob, icmpv6_rcv
from .ip6_forward import ip6_forward

PACKET_HOST, PACKET_OTHERHOST = 0, 3
LOOPBACK_IFINDEX = 1
ECN_COUNTERS = ("Ip6InNoECTPkts", "Ip6InECT1Pkts", "Ip6InECT0Pkts", "Ip6InCEPkts")
_HDR_ERROR_COUNTERS = {"IP_INHDR": "Ip6InHdrErrors", "UNHANDLED_PROTO": "Ip6InHdrErrors",
                       "PKT_TOO_SMALL": "Ip6InTruncatedPkts"}


def ipv6_rcv(ns, skb, now: int) -> list:
    fn = ("ipv6_rcv",)
    if skb.pkt_type == PACKET_OTHERHOST:
        ns.devstats[skb.ifindex]["rx_otherhost_dropped"] += 1
        return [Drop(skb, fn, "OTHERHOST")]
    n6, mib = ns.v6, ns.mib
    data, nh = skb.data, skb.network_header
    mib["Ip6InReceives"] += 1
    mib["Ip6InOctets"] += len(data) - nh
    dev = n6.devs.get(skb.ifindex)
    if dev is None or dev.cnf["disable_ipv6"]:
        mib["Ip6InDiscards"] += 1
        cnf = n6.conf.get(ns.ifname(skb.ifindex))
        return [Drop(skb, fn, "IPV6DISABLED" if cnf and cnf["disable_ipv6"] else "NOT_SPECIFIED")]
    if len(data) - nh >= ipv6.IPV6_HLEN and data[nh] >> 4 == 6:
        mib[ECN_COUNTERS[(data[nh + 1] >> 4) & 3]] += 1
    try:
        hdr = ipv6.parse(data, nh, loopback=dev.loopback)
    except Malformed as e:
        mib[_HDR_ERROR_COUNTERS.get(e.reason, "Ip6InHdrErrors")] += 1
        return [Drop(skb, fn, e.reason)]
    end = ipv6.payload_end(data, nh, hdr)
    if len(data) > end:                    # pskb_trim_rcsum(): the medium padded the frame
        skb.data = data[:end]
    skb.transport_header = nh + ipv6.IPV6_HLEN
    if hdr.nexthdr == ipv6.NEXTHDR_HOP:
        try:
            parse_hopopts(skb.data, nh, hdr)
        except ParamProblem as e:
            mib["Ip6InHdrErrors"] += 1
            return icmpv6_param_prob(ns, skb, e.code, e.pointer, e.reason, now, fn)
        except Malformed as e:
            mib["Ip6InHdrErrors"] += 1
            return [Drop(skb, fn, e.reason)]
    return ip6_rcv_finish(ns, skb, hdr, now, fn)


def ip6_rcv_finish(ns, skb, hdr, now: int, fn) -> list:
    """The input route decides: dst_input(). A packet looped back through lo kept the
    route it was sent with (skb_valid_dst()): a local one."""
    if skb.ifindex == LOOPBACK_IFINDEX and not ipv6.is_multicast(hdr.dst):
        return ip6_input(ns, skb, hdr, now, fn + ("ip6_input",))
    kind, rt = ip6_route.ip6_route_input(ns.v6, hdr.dst, skb.ifindex)
    if kind == ip6_route.LOCAL:
        return ip6_input(ns, skb, hdr, now, fn + ("ip6_input",))
    if kind == ip6_route.MULTICAST:
        return ip6_mc_input(ns, skb, hdr, now, fn + ("ip6_mc_input",))
    if kind == ip6_route.FORWARD:
        return ip6_forward(ns, skb, hdr, rt, now, fn)
    if kind == ip6_route.BLACKHOLE:
        return [Drop(skb, fn + ("dst_discard",), "NOT_SPECIFIED")]
    if kind == ip6_route.PROHIBIT:
        return ip6_pkt_drop(ns, skb, hdr, ICMPV6_ADM_PROHIBITED, now, fn + ("ip6_pkt_prohibit",))
    return ip6_pkt_drop(ns, skb, hdr, ICMPV6_NOROUTE, now, fn + ("ip6_pkt_discard",))


def ip6_pkt_drop(ns, skb, hdr, code: int, now: int, fn) -> list:
    """ip6_pkt_drop(): no route (or a reject route) for a packet received; :: as its
    destination is an address error, anything else InNoRoutes; destination
    unreachable either way."""
    if hdr.dst == ipv6.IN6ADDR_ANY:
        ns.mib["Ip6InAddrErrors"] += 1
        reason = "IP_INADDRERRORS"
    else:
        ns.mib["Ip6InNoRoutes"] += 1
        reason = "IP_INNOROUTES"
    return icmp6_send(ns, skb, ICMPV6_DEST_UNREACH, code, 0, now) + [Drop(skb, fn, reason)]


def ip6_mc_input(ns, skb, hdr, now: int, fn) -> list:
    """ip6_mc_input(): taken when the device joined the group (all-nodes, the
    solicited-node groups of its addresses, all-routers when it forwards)."""
    mib = ns.mib
    mib["Ip6InMcastPkts"] += 1
    mib["Ip6InMcastOctets"] += len(skb.data) - skb.network_header
    if not ns.v6.chk_mcast(skb.ifindex, hdr.dst):
        return [Drop(skb, fn, "NOT_SPECIFIED")]
    return ip6_input(ns, skb, hdr, now, fn + ("ip6_input",))


def ip6_input(ns, skb, hdr, now: int, fn, resume=None) -> list:
    """ip6_input_finish() -> ip6_protocol_deliver_rcu(): the extension headers, then the
    upper-layer protocol. `resume`: the chain of a datagram just reassembled."""
    mib, nh = ns.mib, skb.network_header
    try:
        chain = rcv_exthdrs(skb.data, nh, hdr, pkt_host=skb.pkt_type == PACKET_HOST, resume=resume)
    except ParamProblem as e:
        mib["Ip6InUnknownProtos" if e.code == ICMPV6_UNK_NEXTHDR else "Ip6InHdrErrors"] += 1
        return icmpv6_param_prob(ns, skb, e.code, e.pointer, e.reason, now, fn)
    except Malformed as e:
        if e.what == "no next header":     # NEXTHDR_NONE: the nodata protocol takes it (dst_discard)
            mib["Ip6InDelivers"] += 1
        else:
            mib["Ip6InAddrErrors" if "InAddrErrors" in e.what else "Ip6InHdrErrors"] += 1
        return [Drop(skb, fn, e.reason)]
    for h in chain.headers[len(resume.headers) + 1 if resume else 0:]:
        if isinstance(h, FragHdr):         # an atomic fragment: reassembled at once
            mib["Ip6ReasmReqds"] += 1
            mib["Ip6ReasmOKs"] += 1
    if chain.proto == ipv6.NEXTHDR_FRAGMENT:
        whole, resume, out = reassembly.ipv6_frag_rcv(ns, skb, hdr, chain, now, fn + ("ipv6_frag_rcv",))
        if whole is None:
            return out
        return out + ip6_input(ns, whole, ipv6.parse(whole.data, 0, loopback=True), now, ("ip6_input_finish",),
                               resume)
    return ip6_protocol_deliver(ns, skb, hdr, chain, now, fn)


def ip6_protocol_deliver(ns, skb, hdr, chain, now: int, fn) -> list:
    mib, nh = ns.mib, skb.network_header
    proto, l4 = chain.proto, chain.offset
    skb.saddr6, skb.daddr6 = hdr.src.to_bytes(16, "big"), hdr.dst.to_bytes(16, "big")
    skb.ip_proto, skb.ttl, skb.tos, skb.flowlabel = proto, hdr.hop_limit, hdr.tclass, hdr.flow_label
    skb.transport_header = l4
    if proto == ipv6.IPPROTO_ICMPV6:
        mib["Ip6InDelivers"] += 1
        return icmpv6_rcv(ns, skb, hdr, l4, ipv6.payload_end(skb.data, nh, hdr), now, fn)
    if proto in (ipv6.NEXTHDR_UDP, ipv6.NEXTHDR_TCP):
        mib["Ip6InDelivers"] += 1
        skb.head = l4
        return [Up(skb, fn)]
    mib["Ip6InUnknownProtos"] += 1
    return icmpv6_param_prob(ns, skb, ICMPV6_UNK_NEXTHDR, chain.nhoff - nh, "IP_NOPROTO", now, fn)
