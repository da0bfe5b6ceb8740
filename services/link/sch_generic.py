"""What every qdisc shares (net/sched/sch_generic.c, include/net/sch_generic.h):
the counters `tc -s qdisc` prints, the FIFO queue most qdiscs keep, ECN
marking and the flow hash. A qdisc, like Netem, has `kind`, `handle`,
`stats`, `qlen`, `enqueue(skb, now) -> actions`, `dequeue(now) -> (frames,
when the next is due or None)` and `purge()`. A qdisc sees frames, Ethernet
header on; its lengths are qdisc_pkt_len(): the frame without FCS."""
import zlib
from collections import deque

from ..common import tcp_offload
from ..common.actions import Drop, Stop
from ..wire import ethernet, ipv4

STATS = ("bytes", "packets", "drops", "overlimits", "requeues", "backlog")


class Qdisc:
    kind = ""

    def __init__(self, handle: int = 0):
        self.handle = handle
        self.stats = dict.fromkeys(STATS, 0)

    def bstats_update(self, frames: list):
        """qdisc_bstats_update(): what left, counted once it has."""
        st = self.stats
        for skb in frames:
            st["bytes"] += len(skb.data)
            st["packets"] += skb.gso_segs or 1        # a GSO packet counts its segments

    def drop(self, skb, fn: str, reason: str = "QDISC_DROP") -> Drop:
        """qdisc_drop(): counted, freed with the kernel's reason."""
        self.stats["drops"] += 1
        return Drop(skb, fn, reason)


def gso_enqueue_each(skb, fn: str, enqueue, *args) -> list:
    """tbf_segment(), netem_segment(): a GSO packet cut into its frames,
    each one enqueued on its own."""
    segs = tcp_offload.gso_segment(skb)
    if segs is None:
        return [Drop(skb, fn, "SKB_GSO_SEG")]
    return [act for seg in segs for act in enqueue(seg, *args)]


class Fifo(Qdisc):
    """A queue of frames with a limit in packets (pfifo) or bytes (bfifo):
    fifo_enqueue() drops what would go past it, at the tail."""

    def __init__(self, limit: int, handle: int = 0, in_bytes: bool = False):
        super().__init__(handle)
        self.limit, self.in_bytes = limit, in_bytes
        self.q: deque = deque()

    @property
    def kind(self) -> str:
        return "bfifo" if self.in_bytes else "pfifo"

    @property
    def qlen(self) -> int:
        return len(self.q)

    def enqueue(self, skb, now: int) -> list:
        n = len(skb.data)
        if (self.stats["backlog"] + n if self.in_bytes else len(self.q) + 1) > self.limit:
            return [self.drop(skb, f"{self.kind}_enqueue")]
        self.q.append(skb)
        self.stats["backlog"] += n
        return [Stop(skb, f"{self.kind}_enqueue")]

    def peek(self, now: int = 0):
        return self.q[0] if self.q else None

    def next_due(self) -> int | None:
        return None

    def dequeue_one(self, now: int = 0):
        if not self.q:
            return None
        skb = self.q.popleft()
        self.stats["backlog"] -= len(skb.data)
        self.bstats_update([skb])
        return skb

    def dequeue(self, now: int) -> tuple[list, int | None]:
        out = list(self.q)
        self.q.clear()
        self.stats["backlog"] = 0
        self.bstats_update(out)
        return out, None

    def purge(self) -> list:
        out = list(self.q)
        self.q.clear()
        self.stats["backlog"] = 0
        return out


def ecn_set_ce(skb) -> bool:
    """INET_ECN_set_ce() on an IPv4 frame; False when it cannot carry the mark."""
    nh = ethernet.ETH_HLEN
    if skb.protocol != ethernet.ETH_P_IP or len(skb.data) < nh + ipv4.IPV4_HLEN:
        return False
    ihl = (skb.data[nh] & 0x0F) * 4
    hdr = ipv4.set_ce(skb.data[nh:nh + ihl])
    if hdr is None:
        return False
    skb.data = skb.data[:nh] + hdr + skb.data[nh + ihl:]
    return True


def flow_hash(skb) -> int:
    """skb_get_hash(): a hash of the flow's addresses, protocol and ports (the
    kernel's is jhash with a boot-time key; this is CRC-32, the same spread)."""
    d, nh = skb.data, ethernet.ETH_HLEN
    if skb.protocol != ethernet.ETH_P_IP or len(d) < nh + ipv4.IPV4_HLEN:
        return zlib.crc32(d[:ethernet.ETH_HLEN])
    th = nh + (d[nh] & 0x0F) * 4
    ports = d[th:th + 4] if d[nh + 9] in (ipv4.IPPROTO_TCP, ipv4.IPPROTO_UDP) else b""
    return zlib.crc32(d[nh + 12:nh + 20] + d[nh + 9:nh + 10] + ports)


TC_PRIO_MAX = 15
PRIO2BAND = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)    # sch_generic.c's prio2band: tc's priomap


class PfifoFast(Qdisc):
    """pfifo_fast, the default qdisc: three FIFO bands by skb->priority through
    the priomap, band 0 first, txqueuelen packets in all (1000)."""
    kind = "pfifo_fast"

    def __init__(self, limit: int = 1000, handle: int = 0):
        super().__init__(handle)
        self.limit = limit
        self.bands = (deque(), deque(), deque())

    @property
    def qlen(self) -> int:
        return sum(map(len, self.bands))

    def enqueue(self, skb, now: int) -> list:
        if self.qlen >= self.limit:
            return [self.drop(skb, "pfifo_fast_enqueue")]
        self.bands[PRIO2BAND[skb.priority & TC_PRIO_MAX]].append(skb)
        self.stats["backlog"] += len(skb.data)
        return [Stop(skb, "pfifo_fast_enqueue")]

    def next_due(self) -> int | None:
        return None

    def dequeue_one(self, now: int = 0):
        for band in self.bands:
            if band:
                skb = band.popleft()
                self.stats["backlog"] -= len(skb.data)
                self.bstats_update([skb])
                return skb
        return None

    def dequeue(self, now: int) -> tuple[list, int | None]:
        out = []
        while (skb := self.dequeue_one()) is not None:
            out.append(skb)
        return out, None

    def purge(self) -> list:
        out = [skb for band in self.bands for skb in band]
        for band in self.bands:
            band.clear()
        self.stats["backlog"] = 0
        return out
