"""A tracepoint watch on every layer (the Watch RPC, one stream per layer through
the socket service): what `pktflow perf trace` and `pktflow bpftrace` read.

    with Watch(["skb:kfree_skb"], netns="h2", predicate='args.reason == "NO_SOCKET"') as w:
        for time_ns, netns, layer, name, fields in w: ...

The layers apply the host and the predicate (a bpftrace filter) before they
send anything. Once the constructor returns, every layer that is up watches.
"""
import errno
import queue
import threading
from collections import Counter

import grpc

from . import _client
from .services.common.config import LAYERS
from .services.common.watch import decode
from .v1 import admin_pb2, admin_pb2_grpc

_REFUSED = {grpc.StatusCode.INVALID_ARGUMENT: errno.EINVAL, grpc.StatusCode.NOT_FOUND: errno.ENOENT}


class Watch:
    def __init__(self, events: list[str], netns: str = "", predicate: str = "", timeout: float = 15.0):
        self._q: queue.Queue = queue.Queue()
        self.lost: Counter = Counter()                # layer -> events it could not keep for us (perf's LOST)
        self._early: list = []
        # one host: its shard's layers; every host: every shard's
        eps = [_client.endpoint_of(netns)] if netns else _client.endpoints()
        self._calls = [admin_pb2_grpc.AdminStub(_client._dial(ep)).Watch(admin_pb2.WatchRequest(
            layer=layer, events=events, netns=netns, filter=predicate)) for ep in eps for layer in LAYERS]
        for layer, call in zip(LAYERS * len(eps), self._calls):
            threading.Thread(target=self._read, args=(layer, call), daemon=True, name=f"watch-{layer}").start()
        waiting, refused = {i: len(eps) for i in LAYERS}, None
        try:
            while waiting:
                item = self._q.get(timeout=timeout)
                if item[0] == "events":
                    self._early.append(item)
                    continue
                waiting[item[1]] -= 1
                if not waiting[item[1]]:
                    del waiting[item[1]]
                if item[0] == "error":
                    e = item[2]
                    if e.code() in _REFUSED:
                        refused = refused or OSError(_REFUSED[e.code()], e.details())
                    elif item[1] == "socket":            # a layer that is down is left out; the stack is not
                        refused = refused or _client.unreachable(e)
        except queue.Empty:
            refused = TimeoutError(f"the layers did not start the watch in {timeout:g} s")
        if refused:
            self.close()
            raise refused

    def _read(self, layer: str, call):
        try:
            first = True
            for batch in call:
                if first:
                    self._q.put(("ready", layer))
                    first = False
                if batch.events or batch.lost:
                    self._q.put(("events", layer, batch))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self._q.put(("error", layer, e))

    def poll(self, timeout: float | None = None) -> list:
        """The events that came, waiting up to `timeout` seconds for the first (None: until one comes)."""
        out = []
        items = self._early
        self._early = []
        try:
            if not items:
                items.append(self._q.get(timeout=timeout))
            while True:
                items.append(self._q.get_nowait())
        except queue.Empty:
            pass
        for item in items:
            if item[0] != "events":
                continue
            layer, batch = item[1], item[2]
            self.lost[layer] = batch.lost
            out += [(ev.time_ns, ev.netns, layer, ev.name, decode(ev)) for ev in batch.events]
        return out

    def __iter__(self):
        while True:
            yield from self.poll()

    def close(self):
        for call in self._calls:
            call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
