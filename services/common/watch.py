"""The service side of a tracepoint watch (the Watch RPC: perf trace, bpftrace):
each watcher names the tracepoints it wants, a host, and a filter that the
service applies before anything is sent, so a watcher gets only its events and
a tracepoint nobody watches is never even built (tracepoints.Probes.on).

A watcher keeps at most LIMIT events it has not taken yet; past that it loses
them and is told how many (perf's "LOST events"), rather than the layer
slowing down or growing without bound.
"""
import asyncio

from pktflow.v1 import admin_pb2

from . import tracepoints

LIMIT = 100_000          # events a watcher may fall behind by
BATCH = 1_000            # events per message


class Watcher:
    __slots__ = ("events", "netns", "pred", "with_netns", "buf", "lost", "wake")

    def __init__(self, events, netns: str, pred, with_netns: bool = False):
        self.events = frozenset(events)
        self.netns = netns
        self.pred = pred
        self.with_netns = with_netns           # the filter reads args.netns, which the events carry beside their fields
        self.buf: list = []
        self.lost = 0
        self.wake = asyncio.Event()

    def offer(self, t: int, netns: str, tp: str, fields: dict):
        if tp not in self.events or (self.netns and netns != self.netns):
            return
        if self.pred is not None:
            try:
                if not self.pred({**fields, "netns": netns} if self.with_netns else fields):
                    return
            except (KeyError, TypeError, ValueError):      # a field this event lacks, a str compared with an int
                return
        if len(self.buf) >= LIMIT:
            self.lost += 1
            return
        if not self.buf:
            self.wake.set()
        self.buf.append((t, netns, tp, fields))

    async def batches(self, layer: str):
        """TraceEvents messages of what was offered, as it comes; forever."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            buf, self.buf = self.buf, []
            for i in range(0, len(buf), BATCH):
                yield admin_pb2.TraceEvents(layer=layer, lost=self.lost,
                                            events=[encode(*e) for e in buf[i:i + BATCH]])


def encode(t: int, netns: str, tp: str, fields: dict) -> admin_pb2.TraceEvent:
    ev = admin_pb2.TraceEvent(time_ns=t, netns=netns, name=tp)
    for k, v in fields.items():
        if isinstance(v, str):
            ev.strs[k] = v
        else:
            ev.ints[k] = int(v)
    return ev


def decode(ev: admin_pb2.TraceEvent) -> dict:
    return {**ev.ints, **ev.strs}


def watcher(request: admin_pb2.WatchRequest, hosts) -> Watcher:
    """A Watcher for a request; ValueError naming what is wrong with it (an
    unknown event or host, a filter that does not parse)."""
    events = tracepoints.selected(list(request.events) or ["*"])
    if request.netns and request.netns not in hosts:
        raise LookupError(f"no network namespace {request.netns!r}")
    pred = None
    if request.filter:
        from .bpftrace_lang import compile_predicate
        pred = compile_predicate(request.filter)
    return Watcher(events, request.netns, pred, "netns" in request.filter)
