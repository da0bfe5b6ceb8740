"""Forwarding (net/ipv4/ip_forward.c)."""
from ..common import tcp_offload
from ..common.actions import Drop
from ..wire import icmp, ipv4
from . import icmp as icmpmod, ip_output
from .netfilter.nf_hook import nf_hook
from .netfilter.x_tables import NF_INET_FORWARD


def ip_forward(ns, skb, iph, rt, now: int, fn=("ip_rcv",)) -> list:
    fn = fn + ("ip_forward",)
    if skb.pkt_type != 0:
        return [Drop(skb, fn, "OTHERHOST")]
    if iph.ttl <= 1:
        # too_many_hops: counted as a header error, answered with time exceeded
        ns.mib["IpInHdrErrors"] += 1
        return icmpmod.icmp_send(ns, skb, icmp.ICMP_TIME_EXCEEDED, icmp.ICMP_EXC_TTL, 0, now) + \
            [Drop(skb, fn, "IP_INHDR")]
    if iph.total_len > rt.mtu and iph.df and not (skb.gso_size and
                                                  tcp_offload.gso_network_len(skb, skb.network_header) <= rt.mtu):
        # ip_exceeds_mtu(): a GRO packet fits when each of its segments does
        ns.mib["IpFragFails"] += 1
        return icmpmod.icmp_send(ns, skb, icmp.ICMP_DEST_UNREACH, icmp.ICMP_FRAG_NEEDED, rt.mtu, now) + \
            [Drop(skb, fn, "PKT_TOO_BIG")]
    nh = skb.network_header
    data = skb.data
    skb.data = ipv4.decrease_ttl(data[nh:nh + iph.ihl]) + data[nh + iph.ihl:]
    skb.network_header = 0
    skb.transport_header = iph.ihl
    skb.head = 0
    skb.mac_header = 0
    if ns.nf_active[NF_INET_FORWARD]:
        done, fn = nf_hook(ns, NF_INET_FORWARD, skb, iph, skb.ifindex, rt.oif, now, fn)
        if done is not None:
            return done
    ns.mib["IpForwDatagrams"] += 1               # ip_forward_finish()
    return ip_output.ip_output(ns, skb, rt, fn + ("ip_output",), now)
