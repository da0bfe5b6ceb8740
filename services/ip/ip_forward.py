"""Forwarding (net/ipv4/ip_forward.c)."""
from ..common.actions import Drop
from ..wire import icmp, ipv4
from . import icmp as icmpmod, ip_output

FN = ("ip_rcv", "ip_forward")


def ip_forward(ns, skb, iph, rt, now: int) -> list:
    if skb.pkt_type != 0:
        return [Drop(skb, FN, "OTHERHOST")]
    if iph.ttl <= 1:
        # too_many_hops: counted as a header error, answered with time exceeded
        ns.mib["IpInHdrErrors"] += 1
        return icmpmod.icmp_send(ns, skb, icmp.ICMP_TIME_EXCEEDED, icmp.ICMP_EXC_TTL, 0, now) + \
            [Drop(skb, FN, "IP_INHDR")]
    if iph.total_len > rt.mtu and iph.df:
        ns.mib["IpFragFails"] += 1
        return icmpmod.icmp_send(ns, skb, icmp.ICMP_DEST_UNREACH, icmp.ICMP_FRAG_NEEDED, rt.mtu, now) + \
            [Drop(skb, FN, "PKT_TOO_BIG")]
    nh = skb.network_header
    data = skb.data
    skb.data = ipv4.decrease_ttl(data[nh:nh + iph.ihl]) + data[nh + iph.ihl:]
    skb.network_header = 0
    skb.transport_header = iph.ihl
    skb.head = 0
    skb.mac_header = 0
    ns.mib["IpForwDatagrams"] += 1               # ip_forward_finish()
    return ip_output.ip_output(ns, skb, rt, FN + ("ip_output",))
