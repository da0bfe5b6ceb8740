"""The streams between adjacent layers.

The upper layer dials the lower one's Layer.Exchange and keeps one stream open:
egress batches go down the request side, ingress batches come up the response
side. Each direction has an Outbox, drained by a writer task into batches.

Backpressure follows the kernel: the egress path of an application's send may
wait for room (a full socket send buffer blocks), everything else is softirq
work that never waits: when a queue is full the skb is dropped and counted, as
netdev_max_backlog and a full qdisc do. So a stream never deadlocks against
the one coming the other way.
"""
import asyncio
import hmac
import logging

import grpc

from pktflow.v1 import layers_pb2, layers_pb2_grpc

from .config import GRPC_OPTIONS, dial
from .rpc_guard import refusal, undecodable

log = logging.getLogger("pktflow.plumbing")

LAYER_KEY = "pktflow-layer"
INSTANCE_KEY = "pktflow-instance"
SECRET_KEY = "pktflow-secret"
MAX_BATCH = 256
# Each namespace has a queue of its own towards a neighbour, served in turn, as
# RSS spreads flows over per-CPU backlogs: a flooded host loses its own packets
# (CPU_BACKLOG above NS_LIMIT), not its neighbours'. An egress sender of that
# namespace waits above NS_HIGH; a whole batch from above waits only above
# HIGH_WATER in all, which one namespace alone never reaches.
NS_LIMIT = 4096
NS_HIGH = 1024
HIGH_WATER = 2 * NS_LIMIT
QUEUE_LIMIT = 4 * NS_LIMIT


class Outbox:
    """Skbs waiting for one stream, per namespace, taken by its writer in
    batches that serve the namespaces in turn."""

    def __init__(self, ns_limit: int = NS_LIMIT, ns_high: int = NS_HIGH, high: int = HIGH_WATER,
                 limit: int = QUEUE_LIMIT):
        self.queues: dict[str, list] = {}       # netns -> its skbs; the order of service
        self.count = 0
        self.ns_limit, self.ns_high, self.high, self.limit = ns_limit, ns_high, high, limit
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._ns_room: dict[str, asyncio.Event] = {}
        self._kicked = False
        self.replaced = False           # another stream took this one's place: the writer says so, then stops
        self.ending = False             # the stream is ending: the writer stops after its current write

    def kick(self):
        """Makes the writer send a batch even if it is empty (it carries a stamp)."""
        self._kicked = True
        self._ready.set()

    def put(self, skb) -> bool:
        if self.count >= self.limit:
            return False
        q = self.queues.get(skb.netns)
        if q is None:
            q = self.queues[skb.netns] = []
        elif len(q) >= self.ns_limit:
            return False
        q.append(skb)
        self.count += 1
        if self.count == 1:
            self._ready.set()
        if self.count >= self.high:
            self._room.clear()
        return True

    async def room(self, netns: str | None = None):
        """Waits while the queues (or `netns`'s queue) are above their high water."""
        if netns is not None and len(self.queues.get(netns, ())) >= self.ns_high:
            ev = self._ns_room.get(netns)
            if ev is None:
                ev = self._ns_room[netns] = asyncio.Event()
            await ev.wait()
        if self.count >= self.high:
            await self._room.wait()

    async def take(self) -> list:
        while not self.count and not self._kicked:
            self._ready.clear()
            await self._ready.wait()
        self._kicked = False
        queues = self.queues
        if len(queues) == 1:                     # one namespace busy: no turns to take
            netns, q = next(iter(queues.items()))
            batch = q[:MAX_BATCH]
            del q[:MAX_BATCH]
            self._served(netns, q)
        else:
            batch = []
            while queues and len(batch) < MAX_BATCH:
                share = max(1, (MAX_BATCH - len(batch)) // len(queues))
                for netns in list(queues):
                    if len(batch) >= MAX_BATCH:
                        break
                    q = queues.pop(netns)        # served: it goes to the back of the line
                    batch += q[:share]
                    del q[:share]
                    queues[netns] = q
                    self._served(netns, q)
        self.count -= len(batch)
        if self.count < self.high:
            self._room.set()
        return batch

    def _served(self, netns: str, q: list):
        if len(q) < self.ns_high:
            ev = self._ns_room.pop(netns, None)
            if ev is not None:
                ev.set()
        if not q:
            del self.queues[netns]

    def clear(self) -> list:
        items = [skb for q in self.queues.values() for skb in q]
        self.queues, self.count = {}, 0
        self._room.set()
        for ev in self._ns_room.values():
            ev.set()
        self._ns_room.clear()
        return items

    def __len__(self):
        return self.count


async def _write_loop(outbox: Outbox, write, stamp):
    while True:
        batch = await outbox.take()
        if outbox.replaced:
            await write(layers_pb2.SkbBatch(replaced=True))
            return
        if outbox.ending:
            return
        await write(layers_pb2.SkbBatch(skbs=batch, **stamp()))


def _no_stamp():
    return {}


class Downlink:
    """The stream to the layer below, reconnected with backoff when it breaks.

    `on_batch(batch)` is called for every ingress batch; `on_lost(skbs, reason)`
    for egress skbs that could not be handed over; `on_state(up)` when the
    stream comes up or goes down."""

    def __init__(self, me: str, instance: str, target: str, address: str, on_batch, on_lost, on_state=None,
                 secret: str = ""):
        self.me, self.instance, self.target, self.address = me, instance, target, address
        self.metadata = ((LAYER_KEY, me), (INSTANCE_KEY, instance)) + (((SECRET_KEY, secret),) if secret else ())
        self.on_batch, self.on_lost, self.on_state = on_batch, on_lost, on_state or (lambda up: None)
        self.outbox = Outbox()
        self.connected = False
        self.channel = dial(address, GRPC_OPTIONS, aio=True)
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"downlink-{self.target}")

    def put(self, skb) -> str | None:
        """Queues an egress skb; returns a drop reason when it cannot go."""
        if not self.connected:
            return "LAYER_UNAVAILABLE"
        return None if self.outbox.put(skb) else "CPU_BACKLOG"

    async def room(self, netns: str | None = None):
        await self.outbox.room(netns)

    async def _run(self):
        backoff = 0.05
        stub = layers_pb2_grpc.LayerStub(self.channel)
        while True:
            call = writer = None
            try:
                call = stub.Exchange(metadata=self.metadata)
                # The lower layer greets with an empty batch once it has set up
                # its side, so "connected" means skbs can flow both ways.
                hello = await call.read()
                if hello is grpc.aio.EOF:
                    raise ConnectionError("the stream closed at once")
                self.connected = True
                backoff = 0.05
                log.info("%s: stream to %s at %s is up", self.me, self.target, self.address)
                self.on_state(True)
                writer = asyncio.get_running_loop().create_task(_write_loop(self.outbox, call.write, _no_stamp))
                while True:
                    batch = await call.read()
                    if batch is grpc.aio.EOF:
                        log.warning("%s: the %s layer closed the stream", self.me, self.target)
                        break
                    if batch.replaced:
                        log.warning("%s: the %s layer took another %s stream in place of this one; dialling again",
                                    self.me, self.target, self.me)
                        break
                    self.on_batch(batch)
                    if writer.done():
                        writer.result()
            except asyncio.CancelledError:
                raise
            except Exception as e:    # the lower layer restarted or is not up yet
                if self.connected:
                    log.warning("%s: stream to %s lost: %s", self.me, self.target, _short(e))
                else:
                    log.debug("%s: no stream to %s yet: %s", self.me, self.target, _short(e))
            finally:
                was = self.connected
                self.connected = False
                if writer:
                    writer.cancel()
                if call:
                    call.cancel()
                lost = self.outbox.clear()
                if lost:
                    self.on_lost(lost, "LAYER_UNAVAILABLE")
                if was:
                    self.on_state(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def drain(self, timeout: float):
        """Waits until queued egress is written (graceful shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.outbox) and self.connected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def close(self):
        if self._task:
            self._task.cancel()
        await self.channel.close()


class Uplinks(layers_pb2_grpc.LayerServicer):
    """The Exchange service: one stream per upper layer that dialled us.

    `on_batch(batch, layer)` handles egress from above (and may await room
    below); `on_connect(layer, instance)` tells that an upper layer (re)appeared,
    so state it owned can be reset when it is a new instance."""

    def __init__(self, allowed: tuple[str, ...], on_batch, on_connect=None, stamp=_no_stamp, secret: str = ""):
        self.allowed = allowed
        self.secret = secret.encode()
        self.on_batch, self.on_connect, self.stamp = on_batch, on_connect, stamp
        self.outboxes: dict[str, Outbox] = {}

    def connected(self, layer: str) -> bool:
        return layer in self.outboxes

    def put(self, layer: str, skb) -> str | None:
        ob = self.outboxes.get(layer)
        if ob is None:
            return "LAYER_UNAVAILABLE"
        return None if ob.put(skb) else "CPU_BACKLOG"

    def kick(self, layer: str):
        """Sends an empty batch (carrying only the stamp) to `layer`."""
        ob = self.outboxes.get(layer)
        if ob is not None:
            ob.kick()

    async def Exchange(self, request_iterator, context):
        md = dict(context.invocation_metadata())
        if self.secret and not hmac.compare_digest(md.get(SECRET_KEY, "").encode(), self.secret):
            log.warning("refused an Exchange stream from %s: no valid %s", context.peer(), SECRET_KEY)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this stack's layers show its secret (PKTFLOW_SECRET)")
        layer = md.get(LAYER_KEY)
        if layer not in self.allowed:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"layer {layer!r} may not exchange skbs here (allowed: {', '.join(self.allowed)})")
        old = self.outboxes.get(layer)
        if old is not None:           # a restarted upper layer replaces its old stream:
            log.warning("the %s layer dialled again: its old stream is told to end", layer)
            old.replaced = True       # ... whose writer says so, and whose caller then ends it
            old.kick()
        outbox = Outbox()
        self.outboxes[layer] = outbox
        if self.on_connect:
            self.on_connect(layer, md.get(INSTANCE_KEY, ""))
        writer = asyncio.get_running_loop().create_task(_write_loop(outbox, context.write, self.stamp))
        outbox.kick()                     # the greeting Downlink waits for
        try:
            while True:
                batch = await context.read()
                if batch is grpc.aio.EOF or undecodable(batch):
                    break
                await self.on_batch(batch, layer)
                if writer.done():
                    writer.result()
            # No write may be in flight when the call finishes (or aborts), so
            # the writer stops by itself after its current one.
            outbox.ending = True
            outbox.kick()
            await asyncio.wait({writer}, timeout=1.0)
            if batch is not grpc.aio.EOF:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal(context, "/pktflow.v1.Layer/Exchange"))
        finally:
            writer.cancel()
            if self.outboxes.get(layer) is outbox:
                del self.outboxes[layer]

    async def drain(self, timeout: float):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(len(o) for o in self.outboxes.values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)


def _short(e: Exception) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return repr(e)
