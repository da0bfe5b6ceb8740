"""The token bucket filter (net/sched/sch_tbf.c): frames leave at most at
`rate`, in bursts of up to `burst` bytes; what waits sits in an inner bfifo
of `limit` bytes (tc derives it from `latency`: rate x latency + burst). As
the kernel keeps them, tokens are time: the bucket holds up to `burst`'s
worth of nanoseconds at `rate`, refilled by the time that passes."""
from ..common.actions import Drop
from ..common.pkt_sched import NSEC_PER_SEC
from .sch_generic import Fifo, Qdisc, gso_enqueue_each


class Tbf(Qdisc):
    kind = "tbf"

    classful = True

    def __init__(self, rate: int, burst: int, limit: int, handle: int = 0, child: Qdisc | None = None):
        """rate in bytes/s, burst and limit in bytes; `child` replaces the inner bfifo."""
        super().__init__(handle)
        self.q = child if child is not None else Fifo(limit, in_bytes=True)
        self.child = child                          # a qdisc grafted on class 1 (tc shows it), or None
        self.change(rate, burst, limit)
        self.tokens = self.buffer                   # a full bucket to start
        self.t_c = None                             # when tokens were last counted
        self.wake = None                            # when the head frame may leave, if it must wait

    def change(self, rate: int, burst: int, limit: int):
        self.rate, self.burst, self.limit = rate, burst, limit
        self.buffer = self.l2t(burst)               # q->buffer: the bucket, in ns
        if isinstance(self.q, Fifo):
            self.q.limit = limit

    def graft(self, child: Qdisc | None) -> list:
        """tbf_graft(): `child` takes class 1 (None: a fresh bfifo of `limit`
        bytes); the frames the old one held are returned, to be freed."""
        old, self.child = self.q, child
        self.q = child if child is not None else Fifo(self.limit, in_bytes=True)
        self.stats["backlog"] = self.q.stats["backlog"]
        return old.purge()

    def l2t(self, length: int) -> int:
        """psched_l2t_ns(): the time `length` bytes take at `rate`."""
        return length * NSEC_PER_SEC // self.rate

    @property
    def qlen(self) -> int:
        return self.q.qlen

    def enqueue(self, skb, now: int) -> list:
        """tbf_enqueue(): a frame larger than the bucket can never leave:
        dropped, unless it is a GSO packet, which is cut into its frames
        (tbf_segment()); else the inner qdisc takes it or drops it."""
        if len(skb.data) > self.burst:
            if skb.gso_size:
                return gso_enqueue_each(skb, "tbf_segment", self.enqueue, now)
            return [self.drop(skb, "tbf_enqueue")]
        out = self.q.enqueue(skb, now)
        if type(out[-1]) is Drop:
            self.stats["drops"] += 1
        self.stats["backlog"] = self.q.stats["backlog"]
        return out

    def dequeue_one(self, now: int):
        """tbf_dequeue(): the head frame leaves when the bucket holds its time;
        else the watchdog is set for when it will (an overlimit)."""
        skb = self.q.peek(now)
        if skb is None:
            self.wake = self.q.next_due()           # a child that delays (netem) has its own time
            return None
        toks = min(now - self.t_c, self.buffer) if self.t_c is not None else self.buffer
        toks = min(toks + self.tokens, self.buffer) - self.l2t(len(skb.data))
        if toks < 0:
            self.stats["overlimits"] += 1
            self.wake = now - toks
            return None
        self.t_c, self.tokens, self.wake = now, toks, None
        skb = self.q.dequeue_one(now)
        self.stats["backlog"] = self.q.stats["backlog"]
        self.bstats_update([skb])
        return skb

    def next_due(self) -> int | None:
        return self.wake

    def dequeue(self, now: int) -> tuple[list, int | None]:
        """As often as it gives a frame: the frames due, and when the next is."""
        out = []
        while (skb := self.dequeue_one(now)) is not None:
            out.append(skb)
        return out, self.wake

    def purge(self) -> list:
        self.stats["backlog"] = 0
        return self.q.purge()
