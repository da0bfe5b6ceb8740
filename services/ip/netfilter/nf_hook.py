"""NF_HOOK() for IPv4 (include/linux/netfilter.h; nf_hook_slow() in
net/netfilter/core.c): where a packet passes one of the five hooks, the
namespace's tables see it in priority order (raw, conntrack, mangle, nat,
filter, nat's source half, confirm), and their verdict lets it go on, drops
it (NETFILTER_DROP) or rejects it. Conntrack and NAT rewrite the packet in
place: a caller that routes after the hook re-reads the header when skb.data
changed. A namespace without netfilter never gets here (ns.nf_active): the
call sites check first, so an unused netfilter costs nothing. Every hook that
has rules adds a span step, `nf_hook_slow`, saying which table, chain and rule
decided, and the NAT binding a connection got."""
import struct

from ...common.actions import Drop, Step
from ...wire import Malformed, icmp as icmp_wire, ipv4
from . import nf_nat, nf_reject
from .nf_conntrack import ICMP_ERRORS, NEW, RELATED, UNTRACKED
from .nf_log import log_packet
from .x_tables import (NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, Pkt,
                       ipt_do_table)

HOOK_NAMES = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_PORTS = struct.Struct("!HH")
LOOPBACK = 0x7F000001
NO_CT = (0, None, 0)


def nf_hook(ns, hook: int, skb, iph, in_ifindex: int, out_ifindex: int, now: int, fn: tuple, nexthop: int = 0):
    """Returns (the actions that end the packet here, or None when it goes on;
    `fn` with this hook's step added when its tables had a say). Called only
    where ns.nf_active says this hook has work."""
    nf, ct = ns.nf, ns.ct
    p = _pkt(ns, skb, iph, in_ifindex, out_ifindex)
    if ct is None:
        v = nf.hook(hook, p, now)
        note = None
    else:
        t = _Tracked(ns, hook, skb, iph, in_ifindex, out_ifindex, now, nexthop, p)
        v = nf.hook(hook, p, now, t.conntrack if hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT) else None,
                    t.nat if nf.nat_used else None)
        note = t.note
    if v is not None:
        if v.table or v.verdict != "ACCEPT":
            attrs = (("netfilter.hook", HOOK_NAMES[hook]), ("netfilter.table", v.table),
                     ("netfilter.chain", v.chain), ("netfilter.rule", v.rule), ("netfilter.verdict", v.verdict))
            fn = fn + (Step("nf_hook_slow", attrs + (("netfilter.nat", note),) if note else attrs),)
        if v.mark is not None:
            skb.mark = v.mark
        for prefix, mark in v.logs:
            ns.dmesg.append((now, log_packet(prefix, p.iif, p.oif, skb.data, skb.network_header, mark)))
        if v.verdict == "DROP":
            ns.ct_cur.pop(id(skb), None)
            return [Drop(skb, fn, "NETFILTER_DROP")], fn
        if v.verdict == "REJECT":
            ns.ct_cur.pop(id(skb), None)
            return nf_reject.reject(ns, skb, iph, v.reject_with, now, fn), fn
    if ct is not None and hook in (NF_INET_LOCAL_IN, NF_INET_POST_ROUTING):
        # __nf_conntrack_confirm(): the last hook; a clash with a connection
        # inserted meanwhile drops the packet
        if not ct.confirm(ns.ct_cur.pop(id(skb), NO_CT)[1]):
            return [Drop(skb, fn + ("__nf_conntrack_confirm",), "NETFILTER_DROP")], fn
    return None, fn


class _Tracked:
    """A packet's passage through a hook of a namespace that tracks connections:
    conntrack's and NAT's steps, which the rule walk calls at their priorities."""
    __slots__ = ("ns", "hook", "skb", "iph", "in_ifindex", "out_ifindex", "now", "nexthop", "cur", "note")

    def __init__(self, ns, hook, skb, iph, in_ifindex, out_ifindex, now, nexthop, p):
        self.ns, self.hook, self.skb, self.iph, self.now, self.nexthop = ns, hook, skb, iph, now, nexthop
        self.in_ifindex, self.out_ifindex = in_ifindex, out_ifindex
        entering = hook in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT)
        self.cur = NO_CT if entering else ns.ct_cur.get(id(skb), NO_CT)
        self.note = None
        p.ctstate = self.cur[0]

    def conntrack(self, p, v) -> str:
        """nf_conntrack_in(): the packet's connection and state, for the hooks after."""
        ns, skb = self.ns, self.skb
        if v.notrack:
            self.cur = (UNTRACKED, None, 0)
        else:
            self.cur, drop = _track(ns.ct, p, skb.data, skb.network_header + self.iph.ihl, self.now)
            if drop:
                v.table, v.chain, v.rule = "conntrack", "", 0
                return "DROP"
        if len(ns.ct_cur) > 256:                   # packets dropped on the way never came to confirm
            ns.ct_cur.clear()
        ns.ct_cur[id(skb)] = self.cur
        p.ctstate = self.cur[0]
        return "ACCEPT"

    def nat(self, table, chain, p, v) -> str:
        """nf_nat_ipv4_fn(): a new connection's first packet walks the chain and
        binds it (or gets the null binding); every packet is then rewritten."""
        bits, conn, d = self.cur
        if conn is None:
            return "ACCEPT"
        ns, skb, hook = self.ns, self.skb, self.hook
        nh = skb.network_header
        if bits & RELATED and p.proto == ipv4.IPPROTO_ICMP:
            skb.data = nf_nat.icmp_reply_translation(conn, d, hook, skb.data, nh)
            return "ACCEPT"
        mtype = nf_nat.manip_type(hook)
        if bits & NEW and not nf_nat.initialized(conn, mtype):
            verdict = ipt_do_table(table, chain, p, self.now, v)
            rng = None
            if verdict == "NAT":
                rng = _nat_range(ns, v.nat, hook, self.in_ifindex, self.out_ifindex, self.nexthop or p.daddr)
                if rng is None:                      # MASQUERADE/REDIRECT on a device without an address
                    return "DROP"
            elif verdict != "ACCEPT":
                return verdict
            before = conn.reply
            nf_nat.setup_info(ns.ct, conn, rng, mtype, ns.rng)
            if conn.reply != before:
                self.note = _binding(conn, mtype)
        skb.data = nf_nat.nat_packet(conn, d, hook, skb.data, nh)
        return "ACCEPT"


def _track(ct, p: Pkt, data: bytes, th: int, now: int):
    """((state bits, connection, direction), drop reason) for the packet."""
    if p.fragment:
        return (0, None, 0), None                 # only reached for fragments nobody reassembled
    inner = None
    if p.proto == ipv4.IPPROTO_ICMP and p.icmp_type in ICMP_ERRORS:
        try:
            q = icmp_wire.quoted(data, th + icmp_wire.ICMP_HLEN)
            inner = (q.src, q.dst, q.proto, *(q.echo[::-1] if q.proto == ipv4.IPPROTO_ICMP else q.ports))
        except Malformed:
            pass
    icmp_id = int.from_bytes(data[th + 4:th + 6], "big") if p.proto == ipv4.IPPROTO_ICMP else 0
    bits, conn, drop = ct.track(p.saddr, p.daddr, p.proto, p.sport, p.dport, p.tcp_flags, p.icmp_type,
                                max(p.icmp_code, 0), icmp_id, inner, now)
    if conn is None:
        return (bits, None, 0), drop
    o = conn.orig
    if inner is not None:                         # the error goes the other way from what it quotes
        d = 0 if (inner[1], inner[0]) == (o.saddr, o.daddr) else 1
    else:
        d = 0 if (p.saddr, p.daddr) == (o.saddr, o.daddr) and (p.proto == ipv4.IPPROTO_ICMP or
                                                                   p.sport == o.sport) else 1
    return (bits, conn, d), drop


def _nat_range(ns, nat: tuple, hook: int, in_ifindex: int, out_ifindex: int, nexthop: int):
    """The range a NAT target asks for; MASQUERADE and REDIRECT take the device's
    address (nf_nat_masquerade_ipv4(), nf_nat_redirect_ipv4()); None: no address."""
    kind, lo, hi, plo, phi, flags = nat
    if kind == "MASQUERADE":
        lo = hi = ns.select_addr(out_ifindex, nexthop)
    elif kind == "REDIRECT":
        if hook == NF_INET_LOCAL_OUT:
            lo = hi = LOOPBACK
        else:
            dev = ns.devices.get(in_ifindex)
            lo = hi = dev.addrs[0][0] if dev is not None and dev.addrs else 0
    else:
        return lo, hi, plo, phi, flags
    return (lo, hi, plo, phi, flags | nf_nat.RANGE_MAP_IPS) if lo else None


def _binding(conn, mtype: int) -> str:
    """The new address (and port) a binding gave, as conntrack -L shows it in the reply tuple."""
    o, r = conn.orig, conn.reply
    if mtype == nf_nat.MANIP_SRC:
        return f"SNAT {ipv4.ntoa(o.saddr)}:{o.sport} to {ipv4.ntoa(r.daddr)}:{r.dport}"
    return f"DNAT {ipv4.ntoa(o.daddr)}:{o.dport} to {ipv4.ntoa(r.saddr)}:{r.sport}"


def _pkt(ns, skb, iph, in_ifindex: int, out_ifindex: int) -> Pkt:
    """What the rules look at, read from the packet once."""
    names = ns.ifnames
    p = Pkt(iph.src, iph.dst, iph.proto, 0, 0, 0, -1, -1, names.get(in_ifindex, ""), names.get(out_ifindex, ""),
            skb.mark, 0, iph.total_len, bool(iph.frag_off & ipv4.IP_OFFSET))
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
