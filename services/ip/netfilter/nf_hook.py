"""NF_HOOK() for IPv4 (include/linux/netfilter.h; nf_hook_slow() in
net/netfilter/core.c): where a packet passes one of the five hooks, the
namespace's tables see it, and their verdict lets it go on, drops it
(NETFILTER_DROP) or rejects it. A namespace without netfilter (ns.nf is None)
never gets here: the call sites check first, so an unused netfilter costs
nothing. Every hook that has rules adds a span step, `nf_hook_slow`, saying
which table, chain and rule decided."""
import struct

from ...common.actions import Drop, Step
from ...wire import ipv4
from . import nf_reject
from .x_tables import Pkt

HOOK_NAMES = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_PORTS = struct.Struct("!HH")


def nf_hook(ns, hook: int, skb, iph, in_ifindex: int, out_ifindex: int, now: int, fn: tuple):
    """Returns (the actions that end the packet here, or None when it goes on;
    `fn` with this hook's step added when its tables had a say)."""
    nf = ns.nf
    if nf.empty(hook):
        return None, fn
    v = nf.hook(hook, _pkt(ns, skb, iph, in_ifindex, out_ifindex), now)
    if v is None:
        return None, fn
    fn = fn + (Step("nf_hook_slow", (("netfilter.hook", HOOK_NAMES[hook]), ("netfilter.table", v.table),
                                     ("netfilter.chain", v.chain), ("netfilter.rule", v.rule),
                                     ("netfilter.verdict", v.verdict))),)
    if v.verdict == "DROP":
        return [Drop(skb, fn, "NETFILTER_DROP")], fn
    if v.verdict == "REJECT":
        return nf_reject.reject(ns, skb, iph, v.reject_with, now, fn), fn
    return None, fn


def _pkt(ns, skb, iph, in_ifindex: int, out_ifindex: int) -> Pkt:
    """What the rules look at, read from the packet once."""
    p = Pkt(iph.src, iph.dst, iph.proto, iif=ns.ifname(in_ifindex) if in_ifindex else "",
            oif=ns.ifname(out_ifindex) if out_ifindex else "", mark=skb.mark, length=iph.total_len,
            fragment=bool(iph.frag_off & ipv4.IP_OFFSET))
    if p.fragment:
        return p
    data, th = skb.data, skb.network_header + iph.ihl
    proto = iph.proto
    if proto in (ipv4.IPPROTO_TCP, ipv4.IPPROTO_UDP) and len(data) >= th + 4:
        p.sport, p.dport = _PORTS.unpack_from(data, th)
        if proto == ipv4.IPPROTO_TCP and len(data) > th + 13:
            p.tcp_flags = data[th + 13]
    elif proto == ipv4.IPPROTO_ICMP and len(data) >= th + 2:
        p.icmp_type, p.icmp_code = data[th], data[th + 1]
    return p
