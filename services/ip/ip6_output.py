"""IPv6 output (net/ipv6/ip6_output.c, output_core.c): ip6_xmit() builds the
IPv6 header for a segment from the transport layer (the hop limit the socket
set or the out device's, the traffic class, the flow label the socket set or
ip6_make_flowlabel()'s hash of the flow), ip6_fragment() cuts what this host
sends into fragments with a fragment header when it exceeds the path MTU
(routers never fragment: ip6_forward() answers Packet Too Big instead), and
ip6_finish_output2() hands each packet to the neighbour layer with its next
hop (nexthop6: the route's gateway, or the destination itself; link's
neighbour discovery resolves it, a multicast destination maps to 33:33:...).

Counters as /proc/net/snmp6 names them: Ip6OutRequests for each packet this
host sends (ip6_local_out()), Ip6OutTransmits and Ip6OutOctets for each that
leaves (forwarded ones too), Ip6OutMcastPkts/Octets, Ip6Frag*, and the ICMPv6
output counters of every ICMPv6 message sent (__ip6_make_skb(): Icmp6OutMsgs,
Icmp6OutType<N>), the ping sockets' echo requests among them."""
import errno
import hashlib
import struct

from pktflow.v1.layers_pb2 import RTN_UNICAST

from ..common.actions import Down, Drop
from ..common import tcp_offload
from ..common.skbuff import clone
from ..wire import ipv6
from ..wire.ipv6_exthdrs import frag_hdr
from .ip6_route import Rt6, ip6_route_output
from .route import RouteError

ETH_P_IPV6 = 0x86DD
FRAG_HLEN = 8
IP6_MF = 0x0001
IP6_AUTO_FLOW_LABEL_OFF, IP6_AUTO_FLOW_LABEL_OPTOUT, IP6_AUTO_FLOW_LABEL_OPTIN, IP6_AUTO_FLOW_LABEL_FORCED = 0, 1, 2, 3


def addr6(b: bytes) -> int:
    return int.from_bytes(b, "big") if b else 0


def ip6_xmit(ns, skb, now: int, fn="ip6_xmit") -> list:
    """A segment from the transport layer: skb.data is the upper-layer message, the flow
    is skb.daddr6/saddr6 (empty: routing chooses), ip_proto, ttl (the hop limit; 0: the
    route's), tos (the traffic class), flowlabel (0: ip6_make_flowlabel()), df (the
    socket forbids fragmentation: TCP, IPV6_DONTFRAG, IPV6_PMTUDISC_DO); skb.dst the
    socket's cached route, used while the FIB generation holds (ip6_sk_dst_check())."""
    n6 = ns.v6
    daddr, saddr = addr6(skb.daddr6), addr6(skb.saddr6)
    dst = skb.dst
    if dst.oif and dst.nexthop6 and saddr and dst.genid == n6.fib.genid:
        rt = Rt6(RTN_UNICAST, dst.oif, addr6(dst.nexthop6), saddr, dst.mtu)
    else:
        try:
            rt = ip6_route_output(n6, daddr, saddr)
        except RouteError as e:
            if e.errno == errno.ENETUNREACH:
                ns.mib["Ip6OutNoRoutes"] += 1
            return [Drop(skb, fn, "IP_OUTNOROUTES")]
    return ip6_send(ns, skb, rt, now, fn)


def ip6_send(ns, skb, rt: Rt6, now: int, fn) -> list:
    """The IPv6 header in front of skb.data, then ip6_local_out(): the packets this host
    makes (the transport layer's, its own ICMPv6 replies and errors) go this way."""
    n6, mib = ns.v6, ns.mib
    daddr = addr6(skb.daddr6)
    saddr = addr6(skb.saddr6) or rt.saddr
    proto = skb.ip_proto
    if len(skb.data) > ipv6.IPV6_MAXPLEN:                     # a jumbogram: not sent
        mib["Ip6OutDiscards"] += 1
        return [Drop(skb, fn, "PKT_TOO_BIG")]
    hop_limit = skb.ttl or (1 if ipv6.is_multicast(daddr) else n6.hop_limit(rt.oif))   # mcast_hops: 1
    label = skb.flowlabel & ipv6.IPV6_FLOWLABEL_MASK or ip6_make_flowlabel(n6, skb, saddr, daddr, proto)
    hdr = ipv6.header(saddr, daddr, proto, len(skb.data), hop_limit=hop_limit, tclass=skb.tos & 0xFF,
                      flow_label=label)
    if proto == ipv6.IPPROTO_ICMPV6 and skb.data:
        mib["Icmp6OutMsgs"] += 1
        mib[f"Icmp6OutType{skb.data[0]}"] += 1
    skb.data = hdr + skb.data
    skb.saddr6 = saddr.to_bytes(16, "big")
    skb.flowlabel = label
    skb.network_header = skb.head = 0
    skb.transport_header = ipv6.IPV6_HLEN
    skb.protocol = ETH_P_IPV6
    mib["Ip6OutRequests"] += 1
    return ip6_output(ns, skb, rt, fn, now, local=True)


def ip6_make_flowlabel(n6, skb, saddr: int, daddr: int, proto: int) -> int:
    """ip6_make_flowlabel() with net.ipv6.auto_flowlabels (1, opt-out, by default: every
    socket labels its flows; 2, opt-in, none does here; 3 forced; 0 off): the flow's
    hash rotated by 16 bits, its low 20 bits. The hash is the socket's (skb.hash: TCP's
    sk_txhash, random per connection) or the flow dissector's over the addresses,
    the protocol and the ports (an ICMPv6 message's type and code where ports are),
    made symmetric (__flow_hash_consistentify()) and keyed with the host's secret:
    stable for a flow, unrelated between flows, as Linux's (whose key is its own)."""
    mode = n6.ns.sysctl.get("net.ipv6.auto_flowlabels", IP6_AUTO_FLOW_LABEL_OPTOUT)
    if mode in (IP6_AUTO_FLOW_LABEL_OFF, IP6_AUTO_FLOW_LABEL_OPTIN):
        return 0
    h = skb.hash or flow_hash6(n6.secret(), saddr, daddr, proto, skb.data)
    return ((h << 16 | h >> 16) & 0xFFFFFFFF) & ipv6.IPV6_FLOWLABEL_MASK


def flow_hash6(secret: bytes, saddr: int, daddr: int, proto: int, l4: bytes) -> int:
    """__get_hash_from_flowi6() -> flow_hash_from_keys(): never 0."""
    if proto in (ipv6.NEXTHDR_TCP, ipv6.NEXTHDR_UDP) and len(l4) >= 4:
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    elif proto == ipv6.IPPROTO_ICMPV6 and len(l4) >= 2:
        sport, dport = 0, l4[0] << 8 | l4[1]                 # fl6_icmp_type/code overlay the ports
    else:
        sport = dport = 0
    a, b = sorted((saddr, daddr))
    p, q = sorted((sport, dport))
    key = struct.pack("!16s16sHHB", a.to_bytes(16, "big"), b.to_bytes(16, "big"), p, q, proto)
    return int.from_bytes(hashlib.blake2b(key, key=secret, digest_size=4).digest(), "big") or 1


def ip6_output(ns, skb, rt: Rt6, fn, now: int, local: bool = False) -> list:
    """ip6_output() -> __ip6_finish_output(): a packet this host made that exceeds the
    path MTU is fragmented unless the socket forbids it (then PKT_TOO_BIG, as
    ip6_xmit()'s EMSGSIZE); then each goes to the device."""
    dev = ns.v6.devs.get(rt.oif)
    if dev is None or dev.cnf["disable_ipv6"]:
        ns.mib["Ip6OutDiscards"] += 1
        return [Drop(skb, fn, "IPV6DISABLED")]
    pkts = [skb]
    if len(skb.data) > rt.mtu:
        pkts = tcp_offload.fit_mtu(skb, rt.mtu)
        if pkts is None:
            return [Drop(skb, fn, "SKB_GSO_SEG")]
        out = []
        for p in pkts:
            if len(p.data) <= rt.mtu or p.gso_size:
                out.append(p)
                continue
            if not local or p.df:
                ns.mib["Ip6FragFails"] += 1
                return [Drop(p, fn, "PKT_TOO_BIG")]
            frags = ip6_fragment(ns, p, rt.mtu, fn)
            if type(frags[0]) is Drop:
                return frags
            out += frags
        pkts = out
    return ip6_finish_output2(ns, pkts, rt, fn)


def ip6_finish_output2(ns, pkts: list, rt: Rt6, fn) -> list:
    mib = ns.mib
    out = []
    nexthop = rt.nexthop.to_bytes(16, "big")
    for p in pkts:
        n = len(p.data)
        daddr = p.data[24:40]
        if daddr[0] == 0xFF:
            mib["Ip6OutMcastPkts"] += 1
            mib["Ip6OutMcastOctets"] += n
            if daddr[1] & 0x0F <= ipv6.IPV6_ADDR_SCOPE_NODELOCAL and rt.oif != 1:
                out.append(Drop(p, fn, "NOT_SPECIFIED"))      # interface-local multicast never leaves
                continue
        mib["Ip6OutTransmits"] += 1
        mib["Ip6OutOctets"] += n
        p.ifindex = rt.oif
        p.nexthop6 = nexthop
        p.protocol = ETH_P_IPV6
        out.append(Down(p, fn))
    return out


def ip6_find_1stfragopt(data: bytes) -> tuple[int, int]:
    """ip6_find_1stfragopt(): (the length of the unfragmentable part, the offset of the
    next-header field the fragment header goes behind): the IPv6 header, a hop-by-hop
    header, and a routing header with the destination options before it."""
    offset, nh_off, found_rhdr = ipv6.IPV6_HLEN, 6, False
    while offset + 2 <= len(data):
        nexthdr = data[nh_off]
        if nexthdr == ipv6.NEXTHDR_ROUTING:
            found_rhdr = True
        elif nexthdr != ipv6.NEXTHDR_HOP and not (nexthdr == ipv6.NEXTHDR_DEST and not found_rhdr):
            return offset, nh_off
        nh_off, offset = offset, offset + (data[offset + 1] + 1) * 8
    return offset, nh_off


def ip6_fragment(ns, skb, mtu: int, fn) -> list:
    """ip6_fragment()'s slow path (ip6_frag_next()), the geometry ip6_append_data() gives
    a datagram too: each fragment the unfragmentable part, a fragment header (the
    identification ipv6_select_ident() drew) and as much of the rest as the MTU
    leaves, a multiple of 8 bytes but for the last."""
    data = skb.data
    hlen, nh_off = ip6_find_1stfragopt(data)
    if mtu < hlen + FRAG_HLEN + 8:
        ns.mib["Ip6FragFails"] += 1
        return [Drop(skb, fn, "PKT_TOO_BIG")]
    room = mtu - hlen - FRAG_HLEN
    nexthdr = data[nh_off]
    unfrag = bytearray(data[:hlen])
    unfrag[nh_off] = ipv6.NEXTHDR_FRAGMENT
    unfrag = bytes(unfrag)
    ident = ns.v6.frag_ident()
    payload = data[hlen:]
    out, offset, left = [], 0, len(payload)
    while left > 0:
        n = min(left, room)
        if n < left:
            n &= ~7
        left -= n
        frag = clone(skb)
        frag.data = ipv6.with_payload_len(unfrag, hlen - ipv6.IPV6_HLEN + FRAG_HLEN + n) + \
            frag_hdr(nexthdr, offset | (IP6_MF if left else 0), ident) + payload[offset:offset + n]
        frag.network_header = 0
        frag.transport_header = hlen + FRAG_HLEN
        out.append(frag)
        offset += n
    ns.mib["Ip6FragCreates"] += len(out)
    ns.mib["Ip6FragOKs"] += 1
    return out
