"""Fair queuing with CoDel (net/sched/sch_fq_codel.c, include/net/codel_impl.h):
frames are hashed into `flows` queues served by deficit round robin (new
flows before old ones, `quantum` bytes a turn), and each queue runs CoDel:
once a frame has waited more than `target` for a whole `interval`, frames are
dropped (or ECN-marked) at intervals shrinking as interval/sqrt(count), the
kernel's control law in its fixed-point arithmetic. Past `limit` frames the
fattest flow loses up to half its backlog (at most drop_batch_size frames).
Times are ns; CoDel's clock is the kernel's: ns >> 10."""
from collections import deque

from ..common.actions import Drop, Stop
from .sch_generic import Qdisc, ecn_set_ce, flow_hash

CODEL_SHIFT = 10
REC_INV_SQRT_SHIFT = 16                          # 32 - bits of the u16 rec_inv_sqrt
MS = 1_000_000
U32 = 0xFFFFFFFF


def codel_time(ns: int) -> int:
    return (ns >> CODEL_SHIFT) & U32


def _after(a: int, b: int) -> bool:
    """codel_time_after(): a later than b, on the wrapping u32 clock."""
    return ((a - b) & U32) - (1 << 32 if (a - b) & U32 >= 1 << 31 else 0) > 0


def _diff(a: int, b: int) -> int:
    d = (a - b) & U32
    return d - (1 << 32) if d >= 1 << 31 else d


class CodelVars:
    __slots__ = ("count", "lastcount", "dropping", "rec_inv_sqrt", "first_above_time", "drop_next", "ldelay")

    def __init__(self):
        self.count = self.lastcount = 0
        self.dropping = False
        self.rec_inv_sqrt = 0
        self.first_above_time = self.drop_next = self.ldelay = 0

    def newton_step(self):
        """codel_Newton_step(): rec_inv_sqrt ~ 1/sqrt(count), one Newton iteration."""
        invsqrt = self.rec_inv_sqrt << REC_INV_SQRT_SHIFT
        invsqrt2 = (invsqrt * invsqrt) >> 32
        val = ((3 << 32) - self.count * invsqrt2) & ((1 << 64) - 1)
        val >>= 2
        val = (val * invsqrt) >> (32 - 2 + 1)
        self.rec_inv_sqrt = (val >> REC_INV_SQRT_SHIFT) & 0xFFFF


def control_law(t: int, interval: int, rec_inv_sqrt: int) -> int:
    """codel_control_law(): t + interval/sqrt(count), as reciprocal_scale()."""
    return (t + ((interval * (rec_inv_sqrt << REC_INV_SQRT_SHIFT)) >> 32)) & U32


class Flow:
    __slots__ = ("idx", "q", "deficit", "cvars", "dropped", "listed")

    def __init__(self, idx: int):
        self.idx = idx
        self.q: deque = deque()                  # (enqueue time in codel time, skb)
        self.deficit = 0
        self.cvars = CodelVars()
        self.dropped = 0
        self.listed = False


class FqCodel(Qdisc):
    kind = "fq_codel"

    def __init__(self, handle: int = 0, limit: int = 10240, flows: int = 1024, quantum: int = 1514,
                 target: int = 5 * MS, interval: int = 100 * MS, ecn: bool = True, drop_batch_size: int = 64,
                 mtu: int = 1514):
        super().__init__(handle)
        self.limit, self.quantum, self.ecn, self.drop_batch_size, self.mtu = limit, quantum, ecn, drop_batch_size, mtu
        self.target, self.interval = codel_time(target), codel_time(interval)
        self.flows = [Flow(i) for i in range(flows)]
        self.backlogs = [0] * flows
        self.new_flows: deque = deque()
        self.old_flows: deque = deque()
        self._qlen = 0
        self.freed: list = []                    # CoDel's drops, for the caller to free
        self.xstats = dict.fromkeys(("maxpacket", "drop_overlimit", "new_flow_count", "ecn_mark", "drop_count"), 0)

    @property
    def qlen(self) -> int:
        return self._qlen

    def enqueue(self, skb, now: int) -> list:
        """fq_codel_enqueue()"""
        idx = flow_hash(skb) % len(self.flows)
        flow = self.flows[idx]
        n = len(skb.data)
        flow.q.append((codel_time(now), skb))
        self.backlogs[idx] += n
        self.stats["backlog"] += n
        self.xstats["maxpacket"] = max(self.xstats["maxpacket"], n)
        if not flow.listed:
            flow.listed = True
            self.new_flows.append(flow)
            self.xstats["new_flow_count"] += 1
            flow.deficit = self.quantum
        self._qlen += 1
        if self._qlen <= self.limit:
            return [Stop(skb, "fq_codel_enqueue")]
        dropped = self._drop_fattest()
        self.xstats["drop_overlimit"] += len(dropped)
        return [Drop(s, "fq_codel_drop", "QDISC_DROP") for s in dropped] + \
            ([] if skb in dropped else [Stop(skb, "fq_codel_enqueue")])

    def _drop_fattest(self) -> list:
        """fq_codel_drop(): half the backlog of the flow with the most, at most drop_batch_size frames."""
        idx = max(range(len(self.backlogs)), key=self.backlogs.__getitem__)
        flow = self.flows[idx]
        threshold = self.backlogs[idx] >> 1
        out, gone = [], 0
        while flow.q and gone < threshold and len(out) < self.drop_batch_size:
            _, skb = flow.q.popleft()
            gone += len(skb.data)
            out.append(skb)
        flow.dropped += len(out)
        self.backlogs[idx] -= gone
        self.stats["backlog"] -= gone
        self.stats["drops"] += len(out)
        self._qlen -= len(out)
        return out

    def _dequeue_head(self, flow: Flow):
        if not flow.q:
            return None
        t, skb = flow.q.popleft()
        n = len(skb.data)
        self.backlogs[flow.idx] -= n
        self.stats["backlog"] -= n
        self._qlen -= 1
        return t, skb

    def _codel_drop(self, skb, dropped: list):
        """drop_func(): counted now, freed by the caller."""
        dropped.append(skb)
        self.stats["drops"] += 1
        self.xstats["drop_count"] += 1

    def _should_drop(self, item, v: CodelVars, now: int) -> bool:
        """codel_should_drop()"""
        if item is None:
            v.first_above_time = 0
            return False
        v.ldelay = (now - item[0]) & U32
        if _diff(v.ldelay, self.target) < 0 or self.stats["backlog"] <= self.mtu:
            v.first_above_time = 0               # below target (or one packet's worth): stay below an interval
            return False
        if v.first_above_time == 0:
            v.first_above_time = (now + self.interval) & U32 or 1
            return False
        return _after(now, v.first_above_time)

    def _codel_dequeue(self, flow: Flow, now: int, dropped: list):
        """codel_dequeue(): the next frame of this flow that CoDel lets through (or marks)."""
        v = flow.cvars
        item = self._dequeue_head(flow)
        if item is None:
            v.dropping = False
            return None
        drop = self._should_drop(item, v, now)
        if v.dropping:
            if not drop:
                v.dropping = False
            elif _diff(now, v.drop_next) >= 0:
                while v.dropping and _diff(now, v.drop_next) >= 0:
                    v.count = (v.count + 1) & U32
                    v.newton_step()
                    if self.ecn and ecn_set_ce(item[1]):
                        self.xstats["ecn_mark"] += 1
                        v.drop_next = control_law(v.drop_next, self.interval, v.rec_inv_sqrt)
                        return item[1]
                    self._codel_drop(item[1], dropped)
                    item = self._dequeue_head(flow)
                    if not self._should_drop(item, v, now):
                        v.dropping = False
                    else:
                        v.drop_next = control_law(v.drop_next, self.interval, v.rec_inv_sqrt)
        elif drop:
            if self.ecn and ecn_set_ce(item[1]):
                self.xstats["ecn_mark"] += 1
            else:
                self._codel_drop(item[1], dropped)
                item = self._dequeue_head(flow)
                self._should_drop(item, v, now)
            v.dropping = True
            delta = (v.count - v.lastcount) & U32
            if delta > 1 and _diff(now, v.drop_next) < 16 * self.interval:
                v.count = delta
                v.newton_step()
            else:
                v.count = 1
                v.rec_inv_sqrt = U32 >> REC_INV_SQRT_SHIFT
            v.lastcount = v.count
            v.drop_next = control_law(now, self.interval, v.rec_inv_sqrt)
        return item[1] if item is not None else None

    def next_due(self) -> int | None:
        return None

    def dequeue_one(self, now: int, dropped: list | None = None):
        """fq_codel_dequeue(): deficit round robin over new flows, then old ones.
        CoDel's drops go to `dropped` (default: `freed`, for the caller to free)."""
        if dropped is None:
            dropped = self.freed
        codel_now = codel_time(now)
        while True:
            head = self.new_flows if self.new_flows else self.old_flows
            if not head:
                return None
            flow = head[0]
            if flow.deficit <= 0:
                flow.deficit += self.quantum
                head.popleft()
                self.old_flows.append(flow)
                continue
            skb = self._codel_dequeue(flow, codel_now, dropped)
            if skb is None:
                head.popleft()
                if head is self.new_flows and self.old_flows:
                    self.old_flows.append(flow)          # a pass through old_flows first: no starvation
                else:
                    flow.listed = False
                continue
            flow.deficit -= len(skb.data)
            self.bstats_update([skb])
            return skb

    def dequeue(self, now: int) -> tuple[list, int | None]:
        """Every frame CoDel lets through now; the frames it dropped on the way
        wait in `freed` for the caller to free (QDISC_DROP), as drop_func() does."""
        out, dropped = [], []
        while (skb := self.dequeue_one(now, dropped)) is not None:
            out.append(skb)
        self.freed += dropped
        return out, None

    def purge(self) -> list:
        out = [skb for f in self.flows for _, skb in f.q]
        for f in self.flows:
            f.q.clear()
            f.listed = False
        self.new_flows.clear()
        self.old_flows.clear()
        self.backlogs = [0] * len(self.flows)
        self.stats["backlog"] = self._qlen = 0
        return out
