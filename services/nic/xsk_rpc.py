"""The Xsk gRPC service (xsk.proto): AF_XDP sockets for the SDK, served by the
nic service so that what an XDP program redirects to a socket goes from the
NIC to the application in one hop.

A socket is one Bind stream: its first message answers bind(), the following
ones carry its RX ring's frames in batches; the socket closes when the stream
ends, however it ends (close(), the process exiting, its connection lost).
Backpressure is the stream's: while the application does not read, HTTP/2 flow
control holds the writes, the core's ring fills, and what does not fit is
dropped and counted (rx_ring_full). Send and Statistics name the socket by the
token its stream's first message carried, which only that client has seen.
Who may connect is decided as for every service of the stack: mutual TLS when
PKTFLOW_TLS_* is set."""
import asyncio
import errno
import logging
import secrets
import time

from pktflow.v1 import socket_pb2, xsk_pb2, xsk_pb2_grpc

from . import xsk

log = logging.getLogger("pktflow.nic")
BATCH = 256                     # frames per stream message at most


def _status(err: int = 0, detail: str = "") -> socket_pb2.Status:
    return socket_pb2.Status(err=err, detail=detail)


class XskService(xsk_pb2_grpc.XskServicer):
    def __init__(self, shell):
        self.shell = shell
        self.socks: dict[str, xsk.XdpSock] = {}        # token -> bound socket
        self.events: dict[xsk.XdpSock, asyncio.Event] = {}

    def wake(self, ready):
        """xsk_flush() -> sock_def_readable(): the sockets that got frames."""
        for xs in ready:
            ev = self.events.get(xs)
            if ev is not None:
                ev.set()

    async def Bind(self, req, context):
        nic = self.shell.nic
        if self.shell.check_netns(req.netns):
            yield xsk_pb2.XskRx(status=_status(errno.ENOENT, f"no network namespace {req.netns!r}"))
            return
        token = secrets.token_hex(16)
        try:
            xs = xsk.xsk_bind(nic, req.netns, req.ifname, req.queue_id, req.flags, token, req.rx_ring_size,
                              req.tx_ring_size)
        except OSError as e:
            yield xsk_pb2.XskRx(status=_status(e.errno, e.strerror))
            return
        ev = self.events[xs] = asyncio.Event()
        self.socks[token] = xs
        try:
            yield xsk_pb2.XskRx(status=_status(), token=token, ifindex=xs.dev.ifindex)
            while True:
                if not xs.rx:
                    ev.clear()
                    await ev.wait()
                    continue
                yield xsk_pb2.XskRx(frames=[xsk_pb2.XskFrame(data=f, tstamp=t) for f, t in xs.take(BATCH)])
        finally:
            self.socks.pop(token, None)
            self.events.pop(xs, None)
            xsk.xsk_release(nic, xs)

    async def Send(self, req, context):
        xs = self.socks.get(req.token)
        if xs is None:
            return xsk_pb2.XskSendReply(status=_status(errno.ENXIO, "the AF_XDP socket is not bound"))
        t0 = time.time_ns()
        try:
            sent, actions = xsk.xsk_sendmsg(self.shell.nic, xs, list(req.frames), time.monotonic_ns())
        except OSError as e:
            return xsk_pb2.XskSendReply(status=_status(e.errno, e.strerror))
        self.shell.apply(actions, t0, time.time_ns(), "egress")
        self.shell.softirq()
        return xsk_pb2.XskSendReply(status=_status(), sent=sent)

    async def Statistics(self, req, context):
        xs = self.socks.get(req.token)
        if xs is None:
            return xsk_pb2.XskStatistics(status=_status(errno.ENXIO, "the AF_XDP socket is not bound"))
        return xsk_pb2.XskStatistics(status=_status(), **xs.statistics())
