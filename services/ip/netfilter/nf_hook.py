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
from .x_tables import NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, Pkt

HOOK_NAMES = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_PORTS = struct.Struct("!HH")


def nf_hook(ns, hook: int, skb, iph, in_ifindex: int, out_ifindex: int, now: int, fn: tuple):
    """Returns (the actions that end the packet here, or None when it goes on;
    `fn` with this hook's step added when its tables had a say)."""
    nf, ct = ns.nf, ns.ct
    if nf.empty(hook) and ct is None:
        return None, fn
    p = _pkt(ns, skb, iph, in_ifindex, out_ifindex)
    if ct is not None:
        # nf_conntrack_in() where packets enter (PRE_ROUTING, LOCAL_OUT); the later
        # hooks of the same packet see what it found
        key = id(skb)
        if hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT):
            bits, conn, drop = ct.track(p, skb.data, skb.network_header + iph.ihl, now)
            if drop:
                return [Drop(skb, fn + ("nf_conntrack_in",), drop)], fn
            if len(ns.ct_cur) > 256:           # packets dropped on the way never came to confirm
                ns.ct_cur.clear()
            ns.ct_cur[key] = (bits, conn)
        else:
            bits, conn = ns.ct_cur.get(key, (0, None))
        p.ctstate = bits
    v = None if nf.empty(hook) else nf.hook(hook, p, now)
    if v is not None:
        fn = fn + (Step("nf_hook_slow", (("netfilter.hook", HOOK_NAMES[hook]), ("netfilter.table", v.table),
                                         ("netfilter.chain", v.chain), ("netfilter.rule", v.rule),
                                         ("netfilter.verdict", v.verdict))),)
        if v.verdict == "DROP":
            return [Drop(skb, fn, "NETFILTER_DROP")], fn
        if v.verdict == "REJECT":
            return nf_reject.reject(ns, skb, iph, v.reject_with, now, fn), fn
    if ct is not None and hook in (NF_INET_LOCAL_IN, NF_INET_POST_ROUTING):
        ct.confirm(ns.ct_cur.pop(id(skb), (0, None))[1])      # __nf_conntrack_confirm(): the last hook
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
