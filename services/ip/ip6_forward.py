"""IPv6 forwarding (ip6_forward() in net/ipv6/ip6_output.c), in its order:
net.ipv6.conf.all.forwarding must be on (else the packet is an address error:
a host does not forward), the frame must have been for this host, a hop limit
of 1 or less is answered with time exceeded, a source that is ::, multicast or
loopback is refused and a link-local one answered with "beyond scope of source
address" (destination unreachable code 2), a packet bigger than the out
device's MTU is answered with Packet Too Big (routers never fragment), and the
hop limit goes down by one (no checksum to mend in IPv6).

Not here: redirects (ndisc_send_redirect() when a packet leaves by the device
it came in on: neighbour discovery is the link room's), the router alert
chain (no raw socket asks for it), proxy NDP."""
from ..common import tcp_offload
from ..common.actions import Drop
from ..wire import ipv6
from ..wire.icmpv6 import (ICMPV6_DEST_UNREACH, ICMPV6_EXC_HOPLIMIT, ICMPV6_NOT_NEIGHBOUR, ICMPV6_PKT_TOOBIG,
                           ICMPV6_TIME_EXCEED)
from . import ip6_output
from .icmpv6 import icmp6_send

PACKET_HOST = 0


def ip6_forward(ns, skb, hdr, rt, now: int, fn=("ipv6_rcv",)) -> list:
    fn = fn + ("ip6_forward",)
    n6, mib = ns.v6, ns.mib
    if not n6.forwarding:
        mib["Ip6InAddrErrors"] += 1
        return [Drop(skb, fn, "IP_INADDRERRORS")]
    if skb.pkt_type != PACKET_HOST:
        return [Drop(skb, fn, "NOT_SPECIFIED")]
    if hdr.hop_limit <= 1:
        mib["Ip6InHdrErrors"] += 1
        return icmp6_send(ns, skb, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0, now) + [Drop(skb, fn, "IP_INHDR")]
    src_type = ipv6.addr_type(hdr.src)
    bad = ipv6.IPV6_ADDR_MULTICAST | ipv6.IPV6_ADDR_LOOPBACK | ipv6.IPV6_ADDR_LINKLOCAL
    # (a packet leaving by the device it came in on would get a redirect instead of these checks)
    if rt.oif != skb.ifindex and (src_type == ipv6.IPV6_ADDR_ANY or src_type & bad):
        out = icmp6_send(ns, skb, ICMPV6_DEST_UNREACH, ICMPV6_NOT_NEIGHBOUR, 0, now) \
            if src_type & ipv6.IPV6_ADDR_LINKLOCAL else []
        mib["Ip6InAddrErrors"] += 1
        return out + [Drop(skb, fn, "IP_INADDRERRORS")]
    nh = skb.network_header
    end = ipv6.payload_end(skb.data, nh, hdr)
    mtu = max(rt.mtu, ipv6.IPV6_MIN_MTU)
    if end - nh > mtu and not (skb.gso_size and tcp_offload.gso_network_len(skb, nh) <= mtu):
        # ip6_pkt_too_big(): a GRO packet fits when each of its segments does
        mib["Ip6InTooBigErrors"] += 1
        mib["Ip6FragFails"] += 1
        return icmp6_send(ns, skb, ICMPV6_PKT_TOOBIG, 0, mtu, now) + [Drop(skb, fn, "PKT_TOO_BIG")]
    data = skb.data
    skb.data = ipv6.decrease_hop_limit(data[nh:nh + ipv6.IPV6_HLEN]) + data[nh + ipv6.IPV6_HLEN:end]
    skb.network_header = skb.head = skb.mac_header = 0
    skb.transport_header = ipv6.IPV6_HLEN
    mib["Ip6OutForwDatagrams"] += 1
    return ip6_output.ip6_output(ns, skb, rt, fn + ("ip6_output",), now)
