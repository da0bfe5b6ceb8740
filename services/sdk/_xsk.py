"""AF_XDP sockets: `pktflow.socket(pktflow.AF_XDP, pktflow.SOCK_RAW, netns=...)`,
bound to (ifname, queue_id), or `pktflow.xsk(netns=..., ifname=...)`.

A bound socket receives the whole Ethernet frames that the device's XDP program
redirects to it (`ip link set dev IF xdp redirect xsk [filter EXPR]`) and sends
whole frames straight to the device's driver; neither crosses link, ip,
transport or socket. The SDK talks to the nic service for it (the endpoint
from PKTFLOW_NIC_ENDPOINT, else from the socket service), with the stack's TLS
settings. What differs from Linux: no UMEM and no mmap'd rings; recv() and
recvmmsg() return the frames (the RX ring's consumer side), send() and
sendmmsg() take them (the TX ring and the kick in one call)."""
import collections
import errno
import os
import threading

import grpc

from . import _client
from ._socket import _bytes, _FileLike, getdefaulttimeout
from .services.common.uapi import (AF_XDP, MSG_DONTWAIT, MSG_TRUNC, SOCK_RAW, SOL_SOCKET, SO_DOMAIN, SO_PROTOCOL,
                                   SO_TYPE, SOL_XDP, XDP_OPTIONS, XDP_RX_RING, XDP_STATISTICS,
                                   XDP_STATISTICS_STRUCT, XDP_TX_RING)
from .v1 import xsk_pb2, xsk_pb2_grpc

STATISTICS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full", "rx_fill_ring_empty_descs",
              "tx_ring_empty_descs")
DEFAULT_RING = 2048


def _err(err: int, detail: str = "") -> OSError:
    msg = os.strerror(err)
    return OSError(err, f"{msg} ({detail})" if detail else msg)


class xdp_socket(_FileLike):
    """An AF_XDP socket on an emulated host."""

    def __init__(self, family: int = AF_XDP, type: int = SOCK_RAW, proto: int = 0, *, netns: str):
        if type != SOCK_RAW:                   # xsk_create()
            raise _err(errno.ESOCKTNOSUPPORT)
        if proto:
            raise _err(errno.EPROTONOSUPPORT)
        self.family, self.type, self.proto, self.netns = AF_XDP, SOCK_RAW, 0, netns
        self._rings = {XDP_RX_RING: 0, XDP_TX_RING: 0}
        self._timeout = getdefaulttimeout()
        self._call = self._stub = self._token = self._name = None
        self._frames: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._ended: OSError | None = None
        self._reader: threading.Thread | None = None
        self._closed = False

    # -- bind: the stream that is the socket
    def bind(self, address):
        """(ifname, queue_id) or (ifname, queue_id, sxdp_flags)."""
        self._check()
        if self._call is not None:
            raise _err(errno.EINVAL)
        if not isinstance(address, tuple) or not 2 <= len(address) <= 3:
            raise TypeError("AF_XDP address must be a tuple (ifname, queue_id[, flags])")
        ifname, queue_id, *flags = address
        if not isinstance(ifname, str) or not isinstance(queue_id, int):
            raise TypeError("AF_XDP address must be (str, int[, int])")
        self._stub = xsk_pb2_grpc.XskStub(_client.nic_channel(self.netns))
        call = self._stub.Bind(xsk_pb2.XskBindRequest(
            netns=self.netns, ifname=ifname, queue_id=queue_id, flags=flags[0] if flags else 0,
            rx_ring_size=self._rings[XDP_RX_RING], tx_ring_size=self._rings[XDP_TX_RING]))
        try:
            first = next(call)
        except grpc.RpcError as e:
            call.cancel()
            raise _unreachable(e) from None
        except StopIteration:
            raise _err(errno.EIO, "the nic service ended the stream") from None
        if first.status.err:
            call.cancel()
            raise _err(first.status.err, first.status.detail)
        self._call, self._token, self._name = call, first.token, (ifname, queue_id)
        self._limit = self._rings[XDP_RX_RING] or DEFAULT_RING
        self._reader = threading.Thread(target=self._read, name=f"xsk-{self.netns}-{ifname}", daemon=True)
        self._reader.start()

    def _read(self):
        """The RX ring's consumer: while the application has a ring's worth
        unread, stop reading the stream (its flow control then stops the
        service's writes, and its ring fills and drops)."""
        cond, frames = self._cond, self._frames
        try:
            for msg in self._call:
                with cond:
                    while len(frames) >= self._limit and not self._closed:
                        cond.wait(0.25)
                    if self._closed:
                        return
                    frames.extend(f.data for f in msg.frames)
                    cond.notify_all()
            ended = _err(errno.ENETDOWN, "the nic service closed the AF_XDP socket")
        except grpc.RpcError as e:
            ended = _unreachable(e)
        with cond:
            self._ended = ended
            cond.notify_all()

    # -- receiving
    def _take(self, count: int, flags: int) -> list[bytes]:
        self._check()
        if self._call is None:
            raise _err(errno.ENXIO)             # __xsk_recvmsg(): not bound
        wait = 0.0 if flags & MSG_DONTWAIT or self._timeout == 0 else self._timeout
        cond, frames = self._cond, self._frames
        with cond:
            if not frames:
                if self._ended:
                    raise self._ended
                if wait == 0.0:
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
                if not cond.wait_for(lambda: frames or self._ended or self._closed, wait):
                    raise TimeoutError("timed out")
                if not frames:
                    raise self._ended or _err(errno.EBADF)
            out = [frames.popleft() for _ in range(min(count, len(frames)))]
            cond.notify_all()
        return out

    def recv(self, bufsize: int = 65536, flags: int = 0) -> bytes:
        """One whole frame (cut to `bufsize`, as a packet socket's recv())."""
        frame = self._take(1, flags)[0]
        return frame if flags & MSG_TRUNC else frame[:bufsize]

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        frame = self._take(1, flags)[0]
        n = min(len(frame), nbytes or len(view))
        view[:n] = frame[:n]
        return n

    def recvmmsg(self, count: int, bufsize: int = 65536, flags: int = 0) -> list[bytes]:
        """Up to `count` frames: waits for the first (as recv), then takes what is there."""
        return [f[:bufsize] for f in self._take(count, flags)]

    # -- sending
    def sendmmsg(self, frames, flags: int = 0) -> int:
        """Whole Ethernet frames onto the TX ring, and the kick: how many it took
        (a frame that is not one is skipped and counted, tx_invalid_descs)."""
        self._check()
        if self._call is None:
            raise _err(errno.ENXIO)
        req = xsk_pb2.XskSendRequest(token=self._token, frames=[_bytes(f) for f in frames])
        r = _nic_call(self._stub.Send, req)
        if r.status.err:
            raise _err(r.status.err, r.status.detail)
        return r.sent

    def send(self, data, flags: int = 0) -> int:
        data = _bytes(data)
        return len(data) if self.sendmmsg([data], flags) else 0

    sendall = send

    # -- options
    def setsockopt(self, level: int, optname: int, value, optlen=None) -> None:
        """XDP_RX_RING / XDP_TX_RING: the ring's entries, a power of two, before bind."""
        self._check()
        if level != SOL_XDP or optname not in self._rings:
            raise _err(errno.ENOPROTOOPT)
        n = int.from_bytes(bytes(value)[:4], "little") if isinstance(value, (bytes, bytearray)) else value
        if not isinstance(n, int) or n <= 0 or n & (n - 1):
            raise _err(errno.EINVAL)
        if self._call is not None:
            raise _err(errno.EBUSY)
        self._rings[optname] = n

    def getsockopt(self, level: int, optname: int, buflen: int = 0):
        self._check()
        if level == SOL_XDP and optname == XDP_STATISTICS:
            raw = XDP_STATISTICS_STRUCT.pack(*self.statistics().values())
            return raw[:buflen] if buflen else raw
        if level == SOL_XDP and optname == XDP_OPTIONS:
            return 0 if not buflen else bytes(4)[:buflen]                 # not XDP_OPTIONS_ZEROCOPY
        if level == SOL_SOCKET and optname in (SO_TYPE, SO_DOMAIN, SO_PROTOCOL):
            return {SO_TYPE: SOCK_RAW, SO_DOMAIN: AF_XDP, SO_PROTOCOL: 0}[optname]
        raise _err(errno.ENOPROTOOPT)

    def statistics(self) -> dict:
        """getsockopt(SOL_XDP, XDP_STATISTICS), named: struct xdp_statistics."""
        self._check()
        if self._call is None:
            return dict.fromkeys(STATISTICS, 0)
        r = _nic_call(self._stub.Statistics, xsk_pb2.XskToken(token=self._token))
        if r.status.err:
            raise _err(r.status.err, r.status.detail)
        return {k: getattr(r, k) for k in STATISTICS}

    def getsockname(self):
        self._check()
        return self._name or ("", 0)

    # -- life cycle
    def fileno(self) -> int:
        return -1

    def _check(self):
        if self._closed:
            raise _err(errno.EBADF)

    def close(self):
        """The stream ends: the nic service unbinds the socket and frees its queue."""
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)

    def __repr__(self):
        state = "closed" if self._closed else f"bound to {self._name}" if self._name else "unbound"
        return f"<pktflow.xdp_socket {state}, netns={self.netns!r}>"


def _nic_call(method, request):
    try:
        return method(request, timeout=30)
    except grpc.RpcError as e:
        raise _unreachable(e) from None


def _unreachable(e: grpc.RpcError) -> OSError:
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return OSError(errno.ENETDOWN, f"pktflow: cannot reach the nic service at {_client.nic_endpoint_in_use()} "
                                       "(set PKTFLOW_NIC_ENDPOINT to where it listens)")
    if e.code() == grpc.StatusCode.CANCELLED:
        return _err(errno.EBADF)
    return OSError(errno.EIO, f"pktflow: the nic service failed: {e.code().name}")


def xsk(*, netns: str, ifname: str, queue_id: int = 0, rx_ring_size: int | None = None,
        flags: int = 0) -> xdp_socket:
    """An AF_XDP socket bound to queue `queue_id` of `ifname` on `netns`."""
    s = xdp_socket(netns=netns)
    try:
        if rx_ring_size:
            s.setsockopt(SOL_XDP, XDP_RX_RING, rx_ring_size)
        s.bind((ifname, queue_id, flags) if flags else (ifname, queue_id))
    except BaseException:
        s.close()
        raise
    return s
