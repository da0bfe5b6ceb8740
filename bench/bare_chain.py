"""The baseline: five processes with the same gRPC streams, batching and SDK
calls as pktflow, relaying each datagram along the same route a UDP datagram
from h1 to h2 takes (socket, transport, ip, link, nic on h1; nic, link, ip,
link, nic on r1; nic, link, ip, transport, socket on h2) but doing no layer
work at all: what the plumbing alone costs.

    python -m bench.bare_chain LAYER     (one relay process; or PKTFLOW_LAYER; env as the services)
"""
import asyncio
import os
import sys
from collections import deque

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pktflow.services.common import config
from pktflow.services.common.plumbing import Downlink, Uplinks
from pktflow.v1 import layers_pb2_grpc, skb_pb2, socket_pb2, socket_pb2_grpc

# The hops of the route: which way each layer sends an skb on its n-th visit.
ROUTE = ["socket", "transport", "ip", "link", "nic",          # h1, down
         "link", "ip", "link", "nic",                        # r1: up to ip, forward, down
         "link", "ip", "transport", "socket"]               # h2, up


class Relay(socket_pb2_grpc.SocketServicer):
    def __init__(self, layer: str):
        self.layer = layer
        self.down: Downlink | None = None
        self.up: Uplinks | None = None
        self.queues: dict[int, deque] = {}
        self.ready: dict[int, asyncio.Event] = {}
        self.next_fd = 3

    def forward(self, skb):
        hop = skb.hash + 1                # this relay is ROUTE[hop]
        skb.hash = hop
        if hop == len(ROUTE) - 1:         # arrived at h2's socket layer
            q = self.queues.get(skb.sk)
            if q is not None:
                q.append(skb)
                self.ready[skb.sk].set()
            return
        nxt = ROUTE[hop + 1]
        if config.LAYERS.index(nxt) > config.LAYERS.index(self.layer):
            self.down.put(skb)
        else:
            self.up.put(nxt, skb)

    async def from_above(self, batch, layer):
        for skb in batch.skbs:
            self.forward(skb)
        if self.down:
            await self.down.room()

    def from_below(self, batch):
        for skb in batch.skbs:
            self.forward(skb)

    # the socket layer's calls, just enough for the benchmark
    async def Create(self, req, context):
        fd = self.next_fd
        self.next_fd += 1
        self.queues[fd] = deque()
        self.ready[fd] = asyncio.Event()
        return socket_pb2.FdReply(fd=fd)

    async def Bind(self, req, context):
        self.port_owner = req.fd
        return socket_pb2.AddrReply(addr=req.addr)

    async def SendMsg(self, req, context):
        for m in req.msgs:
            self.down.put(skb_pb2.Skb(netns="h1", sk=self.port_owner, data=m.data))
        await self.down.room()
        return socket_pb2.SendReply(sent=len(req.msgs))

    async def RecvMsg(self, req, context):
        q, ev = self.queues[req.fd], self.ready[req.fd]
        while not q:
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), None if req.timeout < 0 else req.timeout)
            except asyncio.TimeoutError:
                return socket_pb2.RecvReply(status=socket_pb2.Status(err=11))
        out = []
        while q and len(out) < max(1, req.max):
            skb = q.popleft()
            out.append(socket_pb2.Datagram(data=skb.data, length=len(skb.data)))
        return socket_pb2.RecvReply(msgs=out)

    async def SetSockOpt(self, req, context):
        return socket_pb2.SockOptReply()

    async def Close(self, req, context):
        return socket_pb2.Status()

    async def serve(self):
        server = grpc.aio.server(options=config.SERVER_OPTIONS)
        uppers = config.UPPERS.get(self.layer)
        if uppers:
            self.up = Uplinks(uppers, self.from_above)
            layers_pb2_grpc.add_LayerServicer_to_server(self.up, server)
        if self.layer == "socket":
            socket_pb2_grpc.add_SocketServicer_to_server(self, server)
        hs = health.aio.HealthServicer()
        await hs.set("", health_pb2.HealthCheckResponse.NOT_SERVING)     # grpc's default is SERVING
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        server.add_insecure_port(config.listen_address(self.layer))
        await server.start()
        lower = config.LOWER.get(self.layer)
        if lower:
            async def state(up):
                await hs.set("", health_pb2.HealthCheckResponse.SERVING if up else
                             health_pb2.HealthCheckResponse.NOT_SERVING)
            self.down = Downlink(self.layer, "bare", lower, config.endpoint(lower), self.from_below,
                                 lambda *a: None, lambda up: asyncio.ensure_future(state(up)))
            self.down.start()
        else:
            await hs.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(Relay(sys.argv[1] if len(sys.argv) > 1 else os.environ["PKTFLOW_LAYER"]).serve())
