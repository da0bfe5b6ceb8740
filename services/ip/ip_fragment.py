"""IP fragmentation and reassembly (net/ipv4/ip_output.c's ip_do_fragment(),
net/ipv4/ip_fragment.c and inet_fragment.c).

Output: a packet larger than the route's MTU is cut into fragments whose
payloads are multiples of 8 bytes, each with a copy of the header (options
whose copy bit is clear are replaced by NOPs after the first fragment, as
ip_options_fragment() does) and its own checksum.

Input: fragments wait in a queue keyed by (saddr, daddr, id, protocol) until
the first and the last are in and nothing is missing; then the datagram goes
on whole. Linux's rules: a fragment inside one already queued is a duplicate
(DUP_FRAG, the queue goes on); any other overlap kills the queue (RFC 5722's
rule, which Linux applies to IPv4 too); a last fragment that disagrees with
the length already known, or an empty one, kills it; a queue that waits
`ipfrag_time` seconds expires, with ICMP time exceeded (fragment reassembly)
when its first fragment came; a queue `ipfrag_max_dist` fragments of the same
source behind starts again (FRAG_TOO_FAR); above `ipfrag_high_thresh` bytes
queued no fragment is taken (since Linux 4.17 nothing is evicted: queues
leave by completing or expiring).
"""
from ..common.actions import Arm, Drop, Merge, Stop
from ..common.skbuff import SAMPLED, clone
from ..wire import icmp, ipv4
from .inet_fragment import SKB_TRUESIZE_OVERHEAD, FragDir, FragQueue
IPOPT_END, IPOPT_NOOP, IPOPT_COPY = 0, 1, 0x80


def ip_options_fragment(opts: bytes) -> bytes:
    """The options a second or later fragment carries: those whose copy bit
    is set; the others become NOPs, so the header keeps its length."""
    out = bytearray(opts)
    i = 0
    while i < len(out):
        kind = out[i]
        if kind == IPOPT_END:
            break
        if kind == IPOPT_NOOP:
            i += 1
            continue
        size = out[i + 1] if i + 1 < len(out) else 0
        if size < 2 or i + size > len(out):
            break                        # malformed: ip_options_compile() would have refused it
        if not kind & IPOPT_COPY:
            out[i:i + size] = bytes([IPOPT_NOOP]) * size
        i += size
    return bytes(out)


def ip_do_fragment(skb, mtu: int) -> list:
    """The fragments of the IP packet in skb.data (network header at 0), each
    an skb of the same journey; [] when the MTU leaves no room for 8 bytes."""
    data = skb.data
    ihl = (data[0] & 0x0F) * 4
    hdr, payload = data[:ihl], data[ihl:int.from_bytes(data[2:4], "big")]
    room = (mtu - ihl) & ~7
    if room < 8:
        return []
    frag_off = int.from_bytes(data[6:8], "big")
    base = (frag_off & ipv4.IP_OFFSET) * 8         # refragmenting a fragment keeps its place
    more = frag_off & ipv4.IP_MF              # ... and a fragment that was not the last stays so
    later_hdr = hdr[:ipv4.IPV4_HLEN] + ip_options_fragment(hdr[ipv4.IPV4_HLEN:])
    out = []
    for start in range(0, len(payload), room):
        piece = payload[start:start + room]
        last = start + room >= len(payload)
        flags = 0 if last and not more else ipv4.IP_MF
        h = hdr if start == 0 else later_hdr
        frag = clone(skb)
        frag.data = ipv4.with_length(h, ihl + len(piece), flags | (base + start) >> 3) + piece
        frag.network_header = 0
        frag.transport_header = ihl
        out.append(frag)
    return out


def ip_fragment(ns, skb, mtu: int, fn) -> list:
    """ip_fragment(): a packet too big for the MTU, DF clear, goes as fragments."""
    frags = ip_do_fragment(skb, mtu)
    if not frags:
        ns.mib["IpFragFails"] += 1
        return [Drop(skb, fn, "PKT_TOO_BIG")]
    ns.mib["IpFragOKs"] += 1
    ns.mib["IpFragCreates"] += len(frags)
    return frags


class Frags(FragDir):
    """One namespace's IPv4 reassembly queues (struct fqdir) and their sysctls."""

    def __init__(self, sysctl: dict):
        super().__init__("ipfrag", 0, 0)
        self.configure(sysctl)

    def configure(self, sysctl: dict):
        """The sysctls, at start and after `sysctl -w`."""
        self.set_limits(sysctl["net.ipv4.ipfrag_high_thresh"], sysctl["net.ipv4.ipfrag_time"] * 1_000_000_000,
                        sysctl["net.ipv4.ipfrag_max_dist"])

    def frag_too_far(self, q: FragQueue, src: int) -> bool:
        """ip_frag_too_far(): more than max_dist fragments from this source since this queue's last."""
        rid = self.peer_rid[src] = self.peer_rid.get(src, 0) + 1
        start, q.rid = q.rid, rid
        return bool(self.max_dist) and bool(q.runs) and rid - start > self.max_dist


def timer_key(netns: str, key: tuple) -> tuple:
    return ("ipfrag", netns, key)


def ip_defrag(ns, skb, iph, now: int, fn) -> tuple[object, list]:
    """ip_defrag(): (the whole datagram's skb when this fragment completes it,
    else None; the actions for this fragment and any it frees)."""
    frags, mib = ns.frags, ns.mib
    mib["IpReasmReqds"] += 1
    key = (iph.src, iph.dst, iph.ident, iph.proto)
    q = frags.queues.get(key)
    if frags.full():                                 # inet_frag_find() refuses
        mib["IpReasmFails"] += 1
        return None, [Drop(skb, fn, "NOT_SPECIFIED")]
    out = []
    if q is None:
        q = frags.queues[key] = FragQueue(key, now + frags.timeout_ns)
        out.append(Arm(timer_key(ns.name, key), q.expires))
    if frags.frag_too_far(q, iph.src):
        mib["IpReasmFails"] += 1
        out += _reinit(ns, q, now, fn)
    return _queue(ns, q, skb, iph, now, fn, out)


def _queue(ns, q: FragQueue, skb, iph, now: int, fn, out: list) -> tuple[object, list]:
    """ip_frag_queue()."""
    mib = ns.mib
    nh = skb.network_header
    offset = (iph.frag_off & ipv4.IP_OFFSET) * 8
    end = offset + iph.total_len - iph.ihl
    if not iph.frag_off & ipv4.IP_MF:
        if end < q.len or (q.last_in and end != q.len):
            return None, out + _kill(ns, q, skb, fn)
        q.last_in, q.len = True, end
    else:
        end &= ~7
        if end > q.len:
            if q.last_in:
                return None, out + _kill(ns, q, skb, fn)
            q.len = end
    if end == offset:
        return None, out + _kill(ns, q, skb, fn)
    start = nh + iph.ihl
    verdict = q.insert(offset, end, skb.data[start:start + end - offset])
    if verdict == "dup":
        return None, out + [Drop(skb, fn, "DUP_FRAG")]
    if verdict == "overlap":
        mib["IpExtReasmOverlaps"] += 1
        return None, out + _kill(ns, q, skb, fn)
    ns.frags.account(q, skb, len(skb.data) + SKB_TRUESIZE_OVERHEAD)
    q.meat += end - offset
    if offset == 0:
        q.first_in, q.first = True, skb
    fragsize = end - offset + iph.ihl
    q.max_size = max(q.max_size, fragsize)
    if iph.df:
        q.max_df_size = max(q.max_df_size, fragsize)
    if q.complete():
        return _reasm(ns, q, skb, fn, out)
    return None, out + [Stop(skb, fn)]                     # waits in the queue


def _reasm(ns, q: FragQueue, skb, fn, out: list) -> tuple[object, list]:
    """ip_frag_reasm(): the datagram whole, in the skb of the fragment that completed it."""
    others = [s for s in q.skbs if s is not skb]
    first = q.first
    nh = first.network_header
    ihl = (first.data[nh] & 0x0F) * 4
    hdr = first.data[nh:nh + ihl]
    out += _forget(ns, q)
    if ihl + q.len > ipv4.IP_MAXPACKET:                        # the ping of death
        ns.mib["IpReasmFails"] += 1
        return None, out + [Drop(s, fn, "NOT_SPECIFIED") for s in q.skbs]
    ns.mib["IpReasmOKs"] += 1
    # IPSKB_FRAG_PMTU: DF stays when every fragment had it and the largest was a DF one
    frag_off = ipv4.IP_DF if q.max_df_size == q.max_size else 0
    skb.data = ipv4.with_length(hdr, ihl + q.len, frag_off) + q.payload()
    skb.network_header = 0
    skb.transport_header = ihl
    # The datagram goes on in its last fragment's journey, linked to the
    # others' (each ended its hop in ip_local_deliver when it was queued).
    links = tuple((s.trace_id, s.span_id) for s in others if s.trace_flags & SAMPLED and s.trace_id)
    return skb, out + [Merge(skb, ("ip_rcv", "ip_local_deliver", "ip_defrag"), links)]


def _forget(ns, q: FragQueue) -> list:
    """inet_frag_kill(): the queue leaves the table and its timer stops."""
    return ns.frags.forget(ns.name, q)


def _kill(ns, q: FragQueue, skb, fn) -> list:
    """discard_qp: the queue and what it held are dropped, with this fragment."""
    ns.mib["IpReasmFails"] += 1
    return _forget(ns, q) + [Drop(s, fn, "NOT_SPECIFIED") for s in q.skbs + [skb]]


def _reinit(ns, q: FragQueue, now: int, fn) -> list:
    """ip_frag_reinit(): a queue too far behind starts again, its fragments dropped."""
    out = [Drop(s, fn, "FRAG_TOO_FAR") for s in q.skbs]
    ns.frags.mem -= q.truesize
    q.runs, q.skbs, q.first = [], [], None
    q.len = q.meat = q.truesize = q.max_size = q.max_df_size = 0
    q.first_in = q.last_in = False
    q.expires = now + ns.frags.timeout_ns
    return out + [Arm(timer_key(ns.name, q.key), q.expires)]


def ip_expire(ns, key: tuple, now: int, icmp_send) -> list:
    """ip_expire(): a queue's time is up. ICMP time exceeded (code 1) goes to
    the source when the first fragment came (it is what the error quotes)."""
    q = ns.frags.queues.get(key)
    if q is None:
        return []
    fn = ("ip_expire",)
    _forget(ns, q)
    ns.mib["IpReasmFails"] += 1
    ns.mib["IpReasmTimeout"] += 1
    out = []
    if q.first_in:
        out += icmp_send(ns, q.first, icmp.ICMP_TIME_EXCEEDED, icmp.ICMP_EXC_FRAGTIME, 0, now)
    return out + [Drop(s, fn, "FRAG_REASM_TIMEOUT") for s in q.skbs]
