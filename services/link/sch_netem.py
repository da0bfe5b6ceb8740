"""The network emulator qdisc (net/sched/sch_netem.c): delay with jitter, loss,
duplication, reordering, corruption and rate on a device's egress. tc's words
for it live in user space (pktflow.services.iproute2.q_netem).

`Netem` is the qdisc: `enqueue(skb, now)` returns actions (dropped or queued),
`dequeue(now)` the frames due by `now` and the time of the next one. Like the
kernel, a packet's fate is decided at enqueue: its send time goes into a time-
sorted queue (the kernel's tfifo), a reordered packet goes to the front.

Probabilities are kept as tc sends them, fractions of 2**32 - 1, and compared
with 32-bit random numbers as netem's get_crandom() does, correlation included.
`seed N` makes the random sequence repeatable, as in Linux (TCA_NETEM_PRNG_SEED);
the numbers come from Python's generator, not the kernel's prandom, so a seed
gives pktflow the same losses every run, not the same losses as Linux.
"""
import heapq
import itertools
import random
from collections import deque

from ..common.actions import Drop, Stop
from ..common.pkt_sched import INT_MAX, NSEC_PER_SEC, Qopt
from ..common.skbuff import clone
from .sch_generic import ecn_set_ce, gso_enqueue_each

ENQUEUE = "netem_enqueue"


class Netem:
    """One netem qdisc (struct netem_sched_data)."""
    kind = "netem"

    def __init__(self, opt: Qopt, handle: int, entropy: random.Random | None = None):
        self.handle = handle
        self._entropy = entropy or random.Random()     # seeds the generator when no `seed` is given
        self.tfifo: list = []                          # heap of (time_to_send, arrival, skb)
        self.head: deque = deque()                     # reordered packets: out before anything else
        self._arrival = itertools.count()              # equal send times leave in arrival order
        self.t_last = None                             # the latest send time queued (rate's reference)
        self.counter = 0                               # packets since the last reordered one (gap)
        self.stats = dict.fromkeys(("bytes", "packets", "drops", "overlimits", "requeues", "backlog",
                                    "delayed", "dropped", "corrupted", "duplicated", "reordered",
                                    "ecn_marked"), 0)
        self.change(opt)

    def change(self, opt: Qopt):
        """netem_change(): new options; queued packets and counters stay. Without
        a seed the generator is reseeded at random, as the kernel does."""
        self.opt = opt
        self.opt.jitter = min(opt.jitter, INT_MAX)     # the kernel keeps jitter in an s32
        self.prng = random.Random(opt.seed if opt.seed is not None else self._entropy.getrandbits(64))
        self.last = {k: self.prng.getrandbits(32) for k in ("delay", "loss", "dup", "reorder", "corrupt")}

    @property
    def qlen(self) -> int:
        return len(self.tfifo) + len(self.head)

    def _crandom(self, which: str, rho: int) -> int:
        """get_crandom(): a u32, correlated with the previous one of its kind by rho/2**32."""
        value = self.prng.getrandbits(32)
        if not rho:
            return value
        rho += 1
        answer = (value * ((1 << 32) - rho) + self.last[which] * rho) >> 32
        self.last[which] = answer
        return answer

    def _tabledist(self) -> int:
        """The delay: latency, plus a uniform jitter in [-jitter, +jitter) (no distribution table)."""
        o = self.opt
        if not o.jitter:
            return o.latency
        return self._crandom("delay", o.delay_corr) % (2 * o.jitter) + o.latency - o.jitter

    def _packet_time(self, length: int) -> int:
        """packet_time_ns(): how long `length` bytes take at `rate`, with overhead and cells."""
        o = self.opt
        length += o.packet_overhead
        if o.cell_size:
            length = -(-length // o.cell_size) * (o.cell_size + o.cell_overhead)
        return length * NSEC_PER_SEC // o.rate

    def enqueue(self, skb, now: int, may_duplicate: bool = True) -> list:
        """netem_enqueue(): drop, or queue with a send time. Its actions are Drop or Stop.
        A GSO packet is cut into its frames first, so loss, corruption and delay
        act on each frame as they would on the wire. (Linux's netem cuts only to
        corrupt and otherwise loses a GSO packet whole, which is why netem's
        users turn offloads off; this is what they get then.)"""
        if skb.gso_size:
            return gso_enqueue_each(skb, ENQUEUE, self.enqueue, now, may_duplicate)
        o, st = self.opt, self.stats
        count = 1                                      # the xstats count decisions, as the kernel's do
        if may_duplicate and o.duplicate and o.duplicate >= self._crandom("dup", o.dup_corr):
            count += 1
            st["duplicated"] += 1
        if o.loss and o.loss >= self._crandom("loss", o.loss_corr):
            st["dropped"] += 1
            if o.ecn and ecn_set_ce(skb):
                st["drops"] += 1                       # marked, and counted as a drop, as the kernel does
                st["ecn_marked"] += 1
            else:
                count -= 1
        if count == 0:
            st["drops"] += 1
            return [Drop(skb, ENQUEUE, "NETEM_LOSS")]
        dup = clone(skb) if count > 1 else None        # cloned before the original is corrupted
        if o.corrupt and o.corrupt >= self._crandom("corrupt", o.corrupt_corr) and skb.data:
            data = bytearray(skb.data)                 # one random bit of the frame flipped
            data[self.prng.randrange(len(data))] ^= 1 << self.prng.randrange(8)
            skb.data = bytes(data)
            st["corrupted"] += 1
        if self.qlen >= o.limit:
            st["drops"] += 1                           # qdisc_drop_all(): one counted, the clone just freed
            return [Drop(s, ENQUEUE, "QDISC_DROP") for s in (skb, dup) if s is not None]
        out = []
        if dup is not None:                            # the kernel re-enqueues the copy at the root,
            out += self.enqueue(dup, now, may_duplicate=False)   # where a copy is not copied again
        st["backlog"] += len(skb.data)
        if o.gap == 0 or self.counter < o.gap - 1 or o.reorder < self._crandom("reorder", o.reorder_corr):
            delay, ref = self._tabledist(), now
            if o.rate:                                 # behind the last packet queued, then its own time
                if self.t_last is not None:
                    delay = max(0, delay - (self.t_last - now))
                    ref = self.t_last
                delay += self._packet_time(len(skb.data))
            t = ref + delay
            self.counter += 1
            self.t_last = t if self.t_last is None else max(self.t_last, t)
            heapq.heappush(self.tfifo, (t, next(self._arrival), skb))
            if delay:
                st["delayed"] += 1
        else:                                          # reordered: to the front, sent at once
            self.counter = 0
            self.head.appendleft(skb)
            st["requeues"] += 1
            st["reordered"] += 1
        out.append(Stop(skb, ENQUEUE))
        return out

    def dequeue(self, now: int) -> tuple[list, int | None]:
        """netem_dequeue(), as often as it gives a packet: the frames due by
        `now`, and when the next one is due (None: the queue is empty)."""
        out = list(self.head)
        self.head.clear()
        tfifo = self.tfifo
        while tfifo and tfifo[0][0] <= now:
            out.append(heapq.heappop(tfifo)[2])
        if not tfifo:
            self.t_last = None
        st = self.stats
        for skb in out:
            n = len(skb.data)
            st["bytes"] += n
            st["packets"] += 1
            st["backlog"] -= n
        return out, (tfifo[0][0] if tfifo else None)

    def peek(self, now: int):
        """The next frame if it is due (what a parent such as tbf sees first)."""
        if self.head:
            return self.head[0]
        return self.tfifo[0][2] if self.tfifo and self.tfifo[0][0] <= now else None

    def dequeue_one(self, now: int):
        if self.head:
            skb = self.head.popleft()
        elif self.tfifo and self.tfifo[0][0] <= now:
            skb = heapq.heappop(self.tfifo)[2]
        else:
            return None
        if not self.tfifo:
            self.t_last = None
        st = self.stats
        st["bytes"] += len(skb.data)
        st["packets"] += 1
        st["backlog"] -= len(skb.data)
        return skb

    def next_due(self) -> int | None:
        return self.tfifo[0][0] if self.tfifo and not self.head else None

    def purge(self) -> list:
        """netem_reset(): the queued packets, removed (the qdisc is going away)."""
        out = list(self.head) + [e[2] for e in sorted(self.tfifo)]
        self.head.clear()
        self.tfifo.clear()
        self.t_last = None
        self.stats["backlog"] = 0
        return out
