"""Stream sockets (inet_stream_ops in net/ipv4/af_inet.c): connect, listen,
accept, send, recv and shutdown with their blocking, as a mixin of the socket
service. The byte stream's state lives in transport; this side keeps what the
application waits on: the receive queue, the accept queue, the errors."""
import asyncio
import errno
import time

from pktflow.v1 import socket_pb2
from pktflow.v1.skb_pb2 import ProtoCall, Skb as ProtoSkb, SockEvent

from . import af_inet6, sock as so

MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_MORE = 0x2, 0x40, 0x100, 0x8000
SEND_CHUNK = 256 * 1024          # bytes handed to transport per call


def _status(err: int = 0, detail: str = "") -> socket_pb2.Status:
    return socket_pb2.Status(err=err, detail=detail)


def inet_fields(s: so.Sock, sa, op: str) -> tuple[dict, socket_pb2.AddrReply | None]:
    """The ProtoCall fields naming the sockaddr `sa` ('' is the wildcard) for
    socket `s` in a bind, connect or sendto (`op`), or the reply refusing it
    (a port is 16 bits: the wire's uint32 is not trusted; af_inet6.call_fields()
    says which family's address fits which socket)."""
    fields, err, detail = af_inet6.call_fields(s, sa, op)
    return fields, (socket_pb2.AddrReply(status=_status(err, detail)) if err else None)


class InetStream:
    """Needs from the shell: fs (the core), wakes, call(), exchange(), _wake(), _sock(), downs, tracer."""

    async def wait(self, s: so.Sock, ready, timeout: float | None) -> bool:
        """Waits until ready() holds or the socket closes (True), or the timeout (False).
        timeout None: forever; 0: not at all. A caller's NaN waits not at all
        (the SDK refuses it as Python's socket does; a raw client must not spin us)."""
        if timeout is not None and not timeout < float("inf"):
            timeout = None if timeout == float("inf") else 0.0
        ev = self.wakes.setdefault(s.fd, asyncio.Event())
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not ready() and self.socks.get(s.fd) is s:
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return False
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return True

    async def stream_connect(self, s: so.Sock, req) -> socket_pb2.AddrReply:
        """inet_stream_connect(): SYN, then wait for the handshake (or not)."""
        if s.connected:
            return socket_pb2.AddrReply(status=_status(errno.EISCONN))
        if s.connecting:
            return socket_pb2.AddrReply(status=_status(errno.EALREADY))
        if s.listening:
            return socket_pb2.AddrReply(status=_status(errno.EISCONN))
        fields, bad = inet_fields(s, req.addr, "connect")
        if bad:
            return bad
        ev = await self.call(s, ProtoCall.CONNECT, **fields)
        if ev.err != errno.EINPROGRESS:
            return socket_pb2.AddrReply(status=_status(ev.err or errno.EIO))
        # the handshake's outcome may have come up with the COMPLETE (a peer with no
        # delay, as the in-process stack or loopback): then it is already known
        s.connecting = not (s.connected or s.sk_err or s.eof)
        af_inet6.bound(s, fields, False)
        if not s.connected:
            (s.laddr, s.raddr), s.lport, s.rport = af_inet6.ev_addrs(s.family, ev), ev.port, req.addr.port
        timeout = None if req.timeout < 0 else req.timeout
        if timeout == 0:
            return socket_pb2.AddrReply(status=_status(errno.EINPROGRESS))
        if not await self.wait(s, lambda: not s.connecting, timeout):
            return socket_pb2.AddrReply(status=_status(errno.ETIMEDOUT, "timed out"))
        err = s.take_error()
        if err or not s.connected:
            return socket_pb2.AddrReply(status=_status(err or errno.ECONNREFUSED))
        return socket_pb2.AddrReply(addr=self._inet_name(s, s.laddr, s.lport))

    async def Listen(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return _status(errno.EBADF)
        if not s.stream:
            return _status(errno.EOPNOTSUPP)
        if s.connected or s.connecting:
            return _status(errno.EINVAL)
        ev = await self.call(s, ProtoCall.LISTEN, backlog=max(req.how, 0))
        if not ev.err:
            s.listening = True
            s.laddr, s.lport = af_inet6.ev_addrs(s.family, ev)[0], ev.port
        return _status(ev.err)

    async def Accept(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.FdReply(status=_status(errno.EBADF))
        if not s.stream:
            return socket_pb2.FdReply(status=_status(errno.EOPNOTSUPP))
        if not s.listening:
            return socket_pb2.FdReply(status=_status(errno.EINVAL))
        timeout = None if req.timeout < 0 else req.timeout
        if not await self.wait(s, lambda: bool(s.accept_q), timeout):
            return socket_pb2.FdReply(status=_status(errno.EAGAIN))
        if self._sock(req.fd, context) is not s:
            return socket_pb2.FdReply(status=_status(errno.EBADF))
        child = s.accept_q.popleft()
        self.downs["transport"].put(ProtoSkb(netns=s.netns, sk=s.fd, call=ProtoCall(op=ProtoCall.ACCEPT,
                                                                                      child=child.fd)))
        return socket_pb2.FdReply(fd=child.fd, addr=self._inet_name(child, child.raddr, child.rport))

    async def Shutdown(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return _status(errno.EBADF)
        if req.how not in (0, 1, 2):
            return _status(errno.EINVAL)
        if not s.stream or not (s.connected or s.connecting):
            return _status(errno.ENOTCONN)
        if req.how in (0, 2):
            s.shut_rd = True
        if req.how in (1, 2):
            s.shut_wr = True
        ev = await self.call(s, ProtoCall.SHUTDOWN, how=req.how)
        self._wake(s)
        return _status(ev.err)

    async def stream_send(self, s: so.Sock, req, context) -> socket_pb2.SendReply:
        """tcp_sendmsg(): everything is queued before returning (blocking), or
        what fits (non-blocking); EPIPE once the writing side is shut."""
        data = b"".join(m.data for m in req.msgs)
        timeout = 0.0 if req.flags & MSG_DONTWAIT else (None if req.timeout < 0 else req.timeout)
        if s.connecting and not await self.wait(s, lambda: not s.connecting, timeout):
            return socket_pb2.SendReply(status=_status(errno.EAGAIN))
        sent = 0
        t0 = time.time_ns()
        while sent < len(data):
            err = s.take_error()
            if err:
                break
            if s.shut_wr:
                err = errno.EPIPE
                break
            chunk = data[sent:sent + SEND_CHUNK]
            before = self.fs.write_space.get(s.fd, 0)       # read before the call: the event may beat our wake-up
            # one write handed over in pieces: all but the last say more follows (or the caller's MSG_MORE)
            more = bool(req.flags & MSG_MORE) or sent + len(chunk) < len(data)
            ev = await self.stream_call(s, chunk, req, t0, more)
            if ev.err:
                err = ev.err
                break
            sent += ev.sent
            if ev.sent < len(chunk):
                # not writable (poll) until transport says there is room (unless it said so already)
                s.nospace = self.fs.write_space.get(s.fd, 0) == before
                if timeout == 0:
                    break
                if not await self.wait(s, lambda: self.fs.write_space.get(s.fd, 0) != before or s.sk_err or s.eof,
                                       timeout):
                    break
        else:
            err = 0
        if sent == 0 and (err or len(data)):
            return socket_pb2.SendReply(status=_status(err or errno.EAGAIN))
        return socket_pb2.SendReply(sent=sent, lengths=[sent])

    async def stream_call(self, s: so.Sock, chunk: bytes, req, t0: int, more: bool = False) -> SockEvent:
        """One SENDMSG into transport, the journey's root when it is traced;
        `more`: the write goes on in the next call (MSG_MORE)."""
        skb = self.fs.call(s, ProtoCall.SENDMSG, flags=MSG_MORE if more else 0)
        skb.data, skb.tstamp = chunk, t0
        if not (req.traceparent and self.tracer.continue_from(skb, req.traceparent)):
            self.tracer.start(skb, "sock_sendmsg")
        await self.downs["transport"].room(s.netns)
        return (await self.exchange(skb.call.req, [skb], "transport"))[1]

    async def stream_recv(self, s: so.Sock, req) -> socket_pb2.RecvReply:
        """tcp_recvmsg(): at least one byte, or 0 bytes at the end of the stream."""
        if not (s.connected or s.connecting or s.eof or s.sk_err):
            return socket_pb2.RecvReply(status=_status(errno.ENOTCONN))
        timeout = 0.0 if req.flags & MSG_DONTWAIT else (None if req.timeout < 0 else req.timeout)
        want = req.bufsize or 65536
        if req.flags & MSG_WAITALL:
            ready = lambda: s.rbytes >= want or s.eof or s.sk_err or s.shut_rd  # noqa: E731
        else:
            ready = lambda: s.rbytes or s.eof or s.sk_err or s.shut_rd  # noqa: E731
        if not await self.wait(s, ready, timeout):
            return socket_pb2.RecvReply(status=_status(errno.EAGAIN))
        if not s.rbytes:
            err = s.take_error()
            if err:
                return socket_pb2.RecvReply(status=_status(err))
            return socket_pb2.RecvReply(msgs=[socket_pb2.Datagram(data=b"")])     # end of stream
        data, consumed = s.read_stream(want, peek=bool(req.flags & MSG_PEEK))
        if consumed:
            self.downs["transport"].put(ProtoSkb(netns=s.netns, sk=s.fd, call=ProtoCall(
                op=ProtoCall.RECVMSG, consumed=consumed)))
        d = socket_pb2.Datagram(data=data, length=len(data))
        d.addr.CopyFrom(self._inet_name(s, s.raddr, s.rport))
        return socket_pb2.RecvReply(msgs=[d])
