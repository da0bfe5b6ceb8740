"""IPv6 reassembly (net/ipv6/reassembly.c), on inet_fragment.py's queues.

ipv6_frag_rcv() meets a fragment header in a packet for this host (the checks
that need no queue are wire/ipv6_exthdrs.py's parse_fraghdr(): they answer
with a parameter problem). Fragments wait in a queue keyed by (identification,
source, destination, and the in-device for link-local and multicast
destinations) until the first and the last are in and nothing is missing;
then the datagram is the first fragment's unfragmentable part (its IPv6 header
and the extension headers before the fragment header, the fragment header
taken out) followed by every fragment's payload, and the walk through its
extension headers goes on after where the fragment header stood.

The rules of ip6_frag_queue(): a fragment inside one queued is a duplicate
(DUP_FRAG); any other overlap kills the queue (RFC 5722); a last fragment that
disagrees with the length known, bytes beyond the last, or an empty fragment
kill it; above net.ipv6.ip6frag_high_thresh bytes queued no fragment is taken.
A queue that waits net.ipv6.ip6frag_time seconds expires with ICMPv6 time
exceeded (fragment reassembly time exceeded) to the source if its first
fragment came. An atomic fragment (offset 0, no M: RFC 6946) is no fragment:
counted as a reassembly that succeeded at once."""
from ..common.actions import Arm, Drop, Merge, Stop
from ..common.skbuff import SAMPLED
from ..wire import ipv6
from ..wire.icmpv6 import ICMPV6_EXC_FRAGTIME, ICMPV6_TIME_EXCEED
from ..wire.ipv6_exthdrs import ExtChain
from .inet_fragment import SKB_TRUESIZE_OVERHEAD, FragDir, FragQueue

FRAG_HLEN = 8
_NEEDS_IIF = ipv6.IPV6_ADDR_MULTICAST | ipv6.IPV6_ADDR_LINKLOCAL


class Frags6(FragDir):
    """net->ipv6.fqdir: one namespace's IPv6 reassembly queues and their sysctls."""

    def __init__(self, sysctl: dict):
        super().__init__("ip6frag", 0, 0)
        self.configure(sysctl)

    def configure(self, sysctl: dict):
        self.set_limits(sysctl["net.ipv6.ip6frag_high_thresh"], sysctl["net.ipv6.ip6frag_time"] * 1_000_000_000)


def rebase(chain: ExtChain, nh: int) -> ExtChain:
    """The chain with its offsets from the IPv6 header rather than the frame."""
    return chain._replace(offset=chain.offset - nh, nhoff=chain.nhoff - nh)


def ipv6_frag_rcv(ns, skb, hdr, chain: ExtChain, now: int, fn) -> tuple[object, ExtChain | None, list]:
    """A fragment for this host: (the whole datagram's skb when this one completes it,
    else None; the chain to resume its extension headers with; the actions)."""
    n6, mib = ns.v6, ns.mib
    mib["Ip6ReasmReqds"] += 1
    frags = n6.frags
    if frags.full():                                          # fq_find() failed
        mib["Ip6ReasmFails"] += 1
        return None, None, [Drop(skb, fn, "NOT_SPECIFIED")]
    fh = chain.frag
    iif = skb.ifindex if ipv6.addr_type(hdr.dst) & _NEEDS_IIF else 0
    key = (fh.ident, hdr.src, hdr.dst, iif)
    q = frags.queues.get(key)
    out = []
    if q is None:
        q = frags.queues[key] = FragQueue(key, now + frags.timeout_ns)
        out.append(Arm(frags.timer_key(ns.name, key), q.expires))
    return ip6_frag_queue(ns, q, skb, hdr, chain, fn, out)


def ip6_frag_queue(ns, q: FragQueue, skb, hdr, chain: ExtChain, fn, out: list):
    nh = skb.network_header
    data_start = chain.offset + FRAG_HLEN
    end_of_packet = ipv6.payload_end(skb.data, nh, hdr)
    fh = chain.frag
    offset = fh.offset
    end = offset + end_of_packet - data_start
    if not fh.more:
        if end < q.len or (q.last_in and end != q.len):
            return None, None, out + _kill(ns, q, skb, fn)
        q.last_in, q.len = True, end
    elif end > q.len:
        if q.last_in:                                        # bytes beyond the end: corrupted
            return None, None, out + _kill(ns, q, skb, fn)
        q.len = end
    if end == offset:
        return None, None, out + _kill(ns, q, skb, fn)
    verdict = q.insert(offset, end, bytes(skb.data[data_start:end_of_packet]))
    if verdict == "dup":
        return None, None, out + [Drop(skb, fn, "DUP_FRAG")]
    if verdict == "overlap":
        return None, None, out + _kill(ns, q, skb, fn)
    ns.v6.frags.account(q, skb, len(skb.data) + SKB_TRUESIZE_OVERHEAD)
    q.meat += end - offset
    q.iif = skb.ifindex
    q.max_size = max(q.max_size, end_of_packet - nh)
    if offset == 0:
        q.first_in, q.first, q.nhoff = True, skb, rebase(chain, nh)
    if q.complete():
        return ip6_frag_reasm(ns, q, skb, fn, out)
    return None, None, out + [Stop(skb, fn)]                 # waits in the queue


def ip6_frag_reasm(ns, q: FragQueue, skb, fn, out: list):
    """ip6_frag_reasm(): the datagram, in the skb of the fragment that completed it."""
    first, chain = q.first, q.nhoff
    nh = first.network_header
    unfrag = bytearray(first.data[nh:nh + chain.offset])
    unfrag[chain.nhoff] = chain.frag.nexthdr                 # the fragment header taken out
    payload_len = len(unfrag) - ipv6.IPV6_HLEN + q.len
    others = [s for s in q.skbs if s is not skb]
    out += ns.v6.frags.forget(ns.name, q)
    if payload_len > ipv6.IPV6_MAXPLEN:                      # out_oversize
        ns.mib["Ip6ReasmFails"] += 1
        return None, None, out + [Drop(s, fn, "NOT_SPECIFIED") for s in q.skbs]
    ns.mib["Ip6ReasmOKs"] += 1
    skb.data = ipv6.with_payload_len(bytes(unfrag), payload_len) + q.payload()
    skb.network_header = 0
    skb.transport_header = chain.offset
    links = tuple((s.trace_id, s.span_id) for s in others if s.trace_flags & SAMPLED and s.trace_id)
    return skb, chain, out + [Merge(skb, ("ipv6_rcv", "ip6_input", "ipv6_frag_rcv"), links)]


def _kill(ns, q: FragQueue, skb, fn) -> list:
    """discard_fq: the queue and what it held are dropped, with this fragment."""
    ns.mib["Ip6ReasmFails"] += 1
    return ns.v6.frags.forget(ns.name, q) + [Drop(s, fn, "NOT_SPECIFIED") for s in q.skbs + [skb]]


def ip6_frag_expire(ns, key: tuple, now: int, icmp6_send) -> list:
    """ip6_frag_expire() -> ip6_expire_frag_queue(): time exceeded (code 1, fragment
    reassembly time exceeded) to the source, quoting the first fragment, if it came."""
    n6 = ns.v6
    q = n6.frags.queues.get(key)
    if q is None:
        return []
    fn = ("ip6_frag_expire",)
    n6.frags.forget(ns.name, q)
    ns.mib["Ip6ReasmFails"] += 1
    ns.mib["Ip6ReasmTimeout"] += 1
    out = []
    if q.first_in:
        out += icmp6_send(ns, q.first, ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME, 0, now, "ip6_frag_expire")
    return out + [Drop(s, fn, "FRAG_REASM_TIMEOUT") for s in q.skbs]
