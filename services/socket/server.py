"""The socket service: the SDK's system calls (socket.proto) on top of the
socket table, with blocking waits, and the two downward streams: to transport
for AF_INET and to link for AF_PACKET (packet sockets sit on the device layer)."""
import asyncio
import errno
import json
import os
import time
from collections import Counter

import grpc

from pktflow.v1 import admin_pb2, skb_pb2, socket_pb2, socket_pb2_grpc
from pktflow.v1.skb_pb2 import ProtoCall, SockEvent

from ..common.shell import LayerShell
from ..common.skbuff import SAMPLED
from ..common import config, metrics, uapi
from ..wire import ethernet
from ..wire.ethernet import ETH_P_IPV6
from . import af_inet6, sock as so
from .inet_stream import InetStream, _status, inet_fields
from .sockfs import Answer, SockFs, Wake

ProtoSkb = skb_pb2.Skb
MSG_ERRQUEUE, MSG_DONTWAIT, MSG_PEEK = 0x2000, 0x40, 0x2
CALL_TIMEOUT = 10.0


class SocketShell(InetStream, LayerShell, socket_pb2_grpc.SocketServicer):
    name = "socket"
    default_upper = None

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.fs = SockFs(topo)
        self.socks = self.fs.socks                # read here; the core changes it
        self.pending: dict[int, asyncio.Future] = {}   # req -> the waiter for its COMPLETE
        self.wakes: dict[int, asyncio.Event] = {}      # fd -> what its waiters wait on
        self.sessions: dict[str, list] = {}            # client session -> the queues of its Session streams
        self.polled: dict[int, int] = {}               # fd -> the readiness its session last heard (Poll)
        self.ready_seq = 0
        # where the SDK finds each shard's hosts (admin "shards"): every shard's, or refused here
        self.shard_sockets = config.shard_endpoints("socket") if topo.shards > 1 else []
        if topo.shards > 1 and len(self.shard_sockets) != topo.shards:
            raise config.ConfigError(f"the topology has {topo.shards} shards, but PKTFLOW_SHARD_SOCKETS names "
                                     f"{len(self.shard_sockets)} socket address(es): every shard's, in shard order")

    def extra_downlinks(self):
        self.connect_down("link")

    def add_services(self, server):
        socket_pb2_grpc.add_SocketServicer_to_server(self, server)

    # -- talking to the layers below: calls and their COMPLETE events
    async def call(self, s: so.Sock, op: int, layer: str = "transport", ifindex: int = 0, **args) -> SockEvent:
        """A call into the layer below, answered by a COMPLETE event."""
        skb = self.fs.call(s, op, ifindex, **args)
        return (await self.exchange(skb.call.req, [skb], layer))[1]

    async def exchange(self, req: int, skbs: list, layer: str) -> tuple[int, SockEvent]:
        """The one rendezvous with the layer below: puts a call's skbs down (a
        sendmmsg() has several) and waits for the COMPLETE answering `req`.
        Returns how many went down, and the event (ENETDOWN when the layer is
        unreachable or silent)."""
        fut = self.loop.create_future()
        self.pending[req] = fut
        try:
            for i, skb in enumerate(skbs):
                lost = self.downs[layer].put(skb)
                if skb.trace_flags & SAMPLED:
                    self._spans(skb, "sock_sendmsg", skb.tstamp, time.time_ns(), "egress", lost, ())
                if lost:
                    return i, SockEvent(err=errno.ENETDOWN)
            return len(skbs), await asyncio.wait_for(fut, CALL_TIMEOUT)
        except asyncio.TimeoutError:
            return len(skbs), SockEvent(err=errno.ENETDOWN)
        finally:
            self.pending.pop(req, None)

    def ingress(self, skb, now):
        """Events from transport (completions, data, errors) and frames from link taps."""
        return self.fs.ingress(skb, time.time_ns())

    def on_action(self, act):
        if type(act) is Answer:
            fut = self.pending.get(act.req)
            if fut is not None and not fut.done():
                fut.set_result(act.event)
        elif type(act) is Wake:
            ev = self.wakes.get(act.fd) if act.fd in self.socks else self.wakes.pop(act.fd, None)
            if ev is not None:
                ev.set()
            if act.fd in self.polled:
                self._poll_changed(act.fd)

    def _wake(self, s: so.Sock):
        self.on_action(Wake(s.fd))

    def on_lower_state(self, layer, up):
        if not up:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_result(SockEvent(err=errno.ENETDOWN))

    # -- the system calls
    def _sock(self, fd: int, context) -> so.Sock | None:
        """The caller's socket `fd`: a descriptor in another session's table is
        EBADF here, as another process's fd number means nothing to this one."""
        s = self.socks.get(fd)
        return s if s is not None and s.owner == _session(context) else None

    async def Create(self, req, context):
        err, detail, s = self.fs.create(req.netns, req.family, req.type, req.protocol)
        if err:
            return socket_pb2.FdReply(status=_status(err, detail))
        s.owner = _session(context)
        if s.family in so.INET:
            ev = await self.call(s, ProtoCall.CREATE, family=s.family, type=s.type, protocol=s.proto)
        elif req.protocol:
            ev = await self._packet_register(s, 0, _ntohs(req.protocol))
        else:
            ev = SockEvent()
        if ev.err:
            self._forget(s)
            return socket_pb2.FdReply(status=_status(ev.err))
        return socket_pb2.FdReply(fd=s.fd)

    async def _packet_register(self, s: so.Sock, ifindex: int, proto: int) -> SockEvent:
        """packet_do_bind(): the link layer starts copying frames to this socket."""
        s.ifindex = ifindex
        s.packet_proto = proto
        return await self.call(s, ProtoCall.BIND, layer="link", ifindex=ifindex, protocol=proto,
                               optbytes=s.opts.get((uapi.SOL_SOCKET, uapi.SO_ATTACH_FILTER), b""))

    def _ifindex(self, s: so.Sock, ifname: str) -> int:
        iface = self.topo.hosts[s.netns].interfaces.get(ifname)
        return iface.ifindex if iface else 0

    async def Bind(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.AddrReply(status=_status(errno.EBADF))
        if s.family == uapi.AF_PACKET:
            ifindex = self._ifindex(s, req.addr.ifname) if req.addr.ifname else 0
            if req.addr.ifname and not ifindex:
                return socket_pb2.AddrReply(status=_status(errno.ENODEV, f"no interface {req.addr.ifname!r}"))
            ev = await self._packet_register(s, ifindex, req.addr.proto or s.packet_proto)
            if ev.err:
                return socket_pb2.AddrReply(status=_status(ev.err))
            s.bound = True
            return socket_pb2.AddrReply(addr=self._packet_name(s))
        ev, refused = await self._inet_call(s, ProtoCall.BIND, req.addr)
        return refused or socket_pb2.AddrReply(addr=self._inet_name(s, s.laddr, ev.port))

    async def _inet_call(self, s: so.Sock, op: int, sa) -> tuple[SockEvent | None, socket_pb2.AddrReply | None]:
        """bind() or connect() to a sockaddr_in or sockaddr_in6: the COMPLETE
        event, or the reply refusing it."""
        fields, bad = inet_fields(s, sa, "bind" if op == ProtoCall.BIND else "connect")
        if bad:
            return None, bad
        ev = await self.call(s, op, **fields)
        if ev.err:
            return ev, socket_pb2.AddrReply(status=_status(ev.err))
        af_inet6.bound(s, fields, op == ProtoCall.BIND)
        return ev, None

    async def Connect(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.AddrReply(status=_status(errno.EBADF))
        if s.family == uapi.AF_PACKET:
            return socket_pb2.AddrReply(status=_status(errno.EOPNOTSUPP))
        if s.stream:
            return await self.stream_connect(s, req)
        if req.addr.host == "" and req.addr.port == 0 and req.addr.ifname == "AF_UNSPEC":
            ev = await self.call(s, ProtoCall.DISCONNECT)
            s.connected = False
            return socket_pb2.AddrReply(status=_status(ev.err))
        ev, refused = await self._inet_call(s, ProtoCall.CONNECT, req.addr)
        if refused:
            return refused
        (s.laddr, s.raddr), s.rport, s.connected = af_inet6.ev_addrs(s.family, ev), ev.peer_port, True
        return socket_pb2.AddrReply(addr=self._inet_name(s, s.laddr, ev.port))

    async def SendMsg(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.SendReply(status=_status(errno.EBADF))
        err = s.take_error()
        if err:
            return socket_pb2.SendReply(status=_status(err))
        if s.family == uapi.AF_PACKET:
            return await self._packet_send(s, req)
        if s.stream:
            return await self.stream_send(s, req, context)
        if not req.msgs:
            return socket_pb2.SendReply()
        await self.downs["transport"].room(s.netns)
        reqid = self.fs.new_req()
        last = len(req.msgs) - 1
        mark, prio = s.opt(uapi.SOL_SOCKET, uapi.SO_MARK), s.opt(uapi.SOL_SOCKET, uapi.SO_PRIORITY)
        tracer, pid = self.tracer, _pid(context)
        if pid is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "pktflow-pid metadata must be a process id")
        skbs = []
        for i, m in enumerate(req.msgs):
            fields, bad = self._dest(s, m.addr)
            if bad:                         # sendmmsg() stops here; what came before goes
                for skb in skbs:
                    self.downs["transport"].put(skb)
                return _partial([len(x.data) for x in req.msgs[:i]], bad.status.err)
            skb = ProtoSkb(netns=s.netns, sk=s.fd, data=m.data, mark=mark, priority=prio, pid=pid,
                           tstamp=time.time_ns(),
                           call=ProtoCall(op=ProtoCall.SENDMSG, req=reqid, index=i, last=i == last, **fields))
            if not (req.traceparent and tracer.continue_from(skb, req.traceparent)):
                tracer.start(skb, "sock_sendmsg")
            skbs.append(skb)
        went, ev = await self.exchange(reqid, skbs, "transport")
        if went < len(skbs):
            if went:
                return socket_pb2.SendReply(sent=went)
            return socket_pb2.SendReply(status=_status(errno.ENETDOWN, "the transport layer is not reachable"))
        if ev.err and ev.sent == 0:
            return socket_pb2.SendReply(status=_status(ev.err))
        return socket_pb2.SendReply(sent=ev.sent, lengths=[len(m.data) for m in req.msgs[:ev.sent]])

    @staticmethod
    def _dest(s: so.Sock, sa) -> tuple[dict, socket_pb2.AddrReply | None]:
        """A datagram's destination: none named (the connected peer), or the
        ProtoCall fields naming it; an AF_INET6 one marked with family AF_INET6."""
        if s.family == uapi.AF_INET6 and not sa.host and not sa.port:
            return {}, None
        fields, bad = inet_fields(s, sa, "sendto")
        if s.family == uapi.AF_INET6 and not bad:
            fields["family"] = uapi.AF_INET6
        return fields, bad

    async def _packet_send(self, s: so.Sock, req) -> socket_pb2.SendReply:
        """packet_snd(): whole frames onto the bound (or addressed) device. A
        sender waits while its namespace's queue to link is full, as it would
        for send buffer (sock_alloc_send_skb()); a frame that still finds no
        room is ENOBUFS (net_xmit_errno(NET_XMIT_DROP))."""
        link = self.downs["link"]
        sent = []
        for m in req.msgs:
            ifindex = self._ifindex(s, m.addr.ifname) if m.addr.ifname else s.ifindex
            iface = self.topo.hosts[s.netns].interface(ifindex) if ifindex else None
            err = 0
            if iface is None:
                err = errno.ENXIO if not m.addr.ifname else errno.ENODEV
            elif len(m.data) < ethernet.ETH_HLEN:
                err = errno.EINVAL
            elif len(m.data) > iface.mtu + ethernet.ETH_HLEN:
                err = errno.EMSGSIZE
            if err:
                return _partial(sent, err)
            await link.room(s.netns)
            t0 = time.time_ns()
            skb = ProtoSkb(netns=s.netns, sk=s.fd, data=m.data, ifindex=ifindex, tstamp=t0,
                           mark=s.opt(uapi.SOL_SOCKET, uapi.SO_MARK), priority=s.opt(uapi.SOL_SOCKET, uapi.SO_PRIORITY))
            self.tracer.start(skb, "packet_sendmsg")
            lost = link.put(skb)
            if skb.trace_flags & SAMPLED:
                self._spans(skb, "packet_sendmsg", t0, time.time_ns(), "egress", lost, ())
            if lost:
                return _partial(sent, errno.ENOBUFS if lost == "CPU_BACKLOG" else errno.ENETDOWN)
            sent.append(len(m.data))
        return socket_pb2.SendReply(sent=len(sent), lengths=sent)

    async def RecvMsg(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.RecvReply(status=_status(errno.EBADF))
        if req.flags & MSG_ERRQUEUE:
            return self._recv_errqueue(s)
        if s.stream:
            return await self.stream_recv(s, req)
        timeout = 0.0 if req.flags & MSG_DONTWAIT else (None if req.timeout < 0 else req.timeout)
        if not await self.wait(s, lambda: bool(s.rcvq or s.sk_err), timeout):
            return socket_pb2.RecvReply(status=_status(errno.EAGAIN))
        if self._sock(req.fd, context) is not s:
            return socket_pb2.RecvReply(status=_status(errno.EBADF))
        err = s.take_error()
        if err:
            return socket_pb2.RecvReply(status=_status(err))
        if req.flags & MSG_PEEK:
            taken, freed = [s.rcvq[0]], 0
        else:
            taken, freed = s.dequeue(max(1, req.max))
        msgs = [self._datagram(s, skb, t, req.bufsize) for skb, t in taken]
        if freed and s.family in so.INET:
            # udpv6_recvmsg() counts an IPv6 datagram in Udp6InDatagrams, an IPv4 one in UdpInDatagrams
            six = sum(skb.protocol == ETH_P_IPV6 for skb, _ in taken) if s.family == uapi.AF_INET6 else 0
            self.downs["transport"].put(ProtoSkb(netns=s.netns, sk=s.fd, call=ProtoCall(
                op=ProtoCall.RECVMSG, consumed=freed, segs=len(taken) - six)))
            if six:
                self.downs["transport"].put(ProtoSkb(netns=s.netns, sk=s.fd, call=ProtoCall(
                    op=ProtoCall.RECVMSG, family=uapi.AF_INET6, segs=six)))
        return socket_pb2.RecvReply(msgs=msgs)

    def _datagram(self, s: so.Sock, skb, queued: int, bufsize: int) -> socket_pb2.Datagram:
        data = skb.data
        # SOCK_RAW packet sockets read from the MAC header, the rest after their headers
        payload = data[skb.mac_header:] if s.family == uapi.AF_PACKET else data[skb.head:]
        if skb.trace_flags & SAMPLED:
            self._spans(skb, "skb_recv_datagram", queued, time.time_ns(), "ingress", None, ())
        d = socket_pb2.Datagram(length=len(payload), tstamp=skb.tstamp)
        if bufsize and len(payload) > bufsize:
            payload, d.truncated = payload[:bufsize], True
        d.data = payload
        if s.family == uapi.AF_PACKET:
            d.addr.ifname = self.topo.hosts[s.netns].interface(skb.ifindex).name
            d.addr.proto = int.from_bytes(data[12:14], "big")
            d.addr.pkttype, d.addr.hatype = skb.pkt_type, 1
            d.addr.haddr = data[6:12] if skb.pkt_type != 4 else data[0:6]
            return d
        d.addr.CopyFrom(af_inet6.source(s, skb))      # the headers as ip and udp parsed them
        if s.proto == uapi.IPPROTO_UDP:
            d.addr.port = skb.sport
        d.ttl, d.tos = skb.ttl, skb.tos
        return d

    def _recv_errqueue(self, s: so.Sock) -> socket_pb2.RecvReply:
        """recvmsg(MSG_ERRQUEUE): the oldest queued ICMP error; the offender,
        type, code and info travel in the Datagram fields the SDK turns into an
        IP_RECVERR control message."""
        if not s.errq:
            return socket_pb2.RecvReply(status=_status(errno.EAGAIN))
        skb = s.errq.popleft()
        ev = skb.event
        payload = skb.data[skb.head:]
        e = ev.ee
        offender = int.from_bytes(e.offender6, "big") if s.family == uapi.AF_INET6 else e.offender
        ee = socket_pb2.ExtendedErr(ee_errno=e.ee_errno, ee_origin=e.ee_origin, ee_type=e.ee_type,
                                    ee_code=e.ee_code, ee_info=e.ee_info, offender=af_inet6.text(s, offender))
        d = socket_pb2.Datagram(data=payload, length=len(payload), ee=ee)
        if s.proto == uapi.IPPROTO_UDP:  # msg_name: where the erring datagram went
            d.addr.host, d.addr.port = af_inet6.text(s, af_inet6.ev_addrs(s.family, ev)[1]), ev.peer_port
        return socket_pb2.RecvReply(msgs=[d])

    async def SetSockOpt(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.SockOptReply(status=_status(errno.EBADF))
        is_bytes = so.is_bytes_opt(req.level, req.optname)
        if is_bytes and not req.is_bytes:
            return socket_pb2.SockOptReply(status=_status(errno.EINVAL))
        err, value = s.setsockopt(req.level, req.optname, req.bvalue if is_bytes else req.value)
        if err:
            return socket_pb2.SockOptReply(status=_status(err))
        if s.family == uapi.AF_PACKET and req.level == uapi.SOL_SOCKET and \
                req.optname in (uapi.SO_ATTACH_FILTER, uapi.SO_DETACH_FILTER) and s.packet_proto:
            # the link layer runs the filter where it taps the frames (packet_rcv()'s run_filter())
            ev = await self._packet_register(s, s.ifindex, s.packet_proto)
            if ev.err:
                return socket_pb2.SockOptReply(status=_status(ev.err))
        if s.family in so.INET and (req.level, req.optname) in so.TRANSPORT_OPTS:
            args = {"optbytes": value} if isinstance(value, bytes) else {"optval": value}
            ev = await self.call(s, ProtoCall.SETSOCKOPT, level=req.level, optname=req.optname, **args)
            if ev.err:
                return socket_pb2.SockOptReply(status=_status(ev.err))
        return socket_pb2.SockOptReply(**({"bvalue": value} if is_bytes else {"value": value}))

    async def GetSockOpt(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.SockOptReply(status=_status(errno.EBADF))
        if s.family in so.INET and (s.stream or req.level in (uapi.IPPROTO_IP, uapi.IPPROTO_IPV6)) and \
                (req.level, req.optname) in so.TRANSPORT_GETOPTS and s.has_level(req.level):
            # do_tcp_getsockopt(): min(optlen, the value's size) bytes; without a buffer, an int's 4
            ev = await self.call(s, ProtoCall.GETSOCKOPT, level=req.level, optname=req.optname,
                                 optlen=req.buflen or 4)
            return socket_pb2.SockOptReply(status=_status(ev.err), bvalue=ev.optval)
        err, value = s.getsockopt(req.level, req.optname)
        if isinstance(value, bytes):
            return socket_pb2.SockOptReply(status=_status(err), bvalue=value)
        return socket_pb2.SockOptReply(status=_status(err), value=value)

    async def GetSockName(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.AddrReply(status=_status(errno.EBADF))
        if s.family == uapi.AF_PACKET:
            return socket_pb2.AddrReply(addr=self._packet_name(s))
        return socket_pb2.AddrReply(addr=self._inet_name(s, s.laddr, s.lport))

    async def GetPeerName(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return socket_pb2.AddrReply(status=_status(errno.EBADF))
        if s.family == uapi.AF_PACKET or not s.connected or s.stream and s.eof and s.sk_err:
            return socket_pb2.AddrReply(status=_status(errno.ENOTCONN))
        return socket_pb2.AddrReply(addr=self._inet_name(s, s.raddr, s.rport))

    # -- readiness (sock_poll) for the SDK's descriptors
    def _readiness(self, s: so.Sock) -> socket_pb2.Readiness:
        self.ready_seq += 1
        self.polled[s.fd] = mask = s.poll()
        return socket_pb2.Readiness(fd=s.fd, revents=mask, seq=self.ready_seq)

    def _poll_changed(self, fd: int):
        """A polled socket's readiness, onto its session's stream when it changed."""
        s = self.socks.get(fd)
        if s is None:
            self.polled.pop(fd, None)
            return
        if s.poll() != self.polled[fd]:
            ready = self._readiness(s)
            for q in self.sessions.get(s.owner, ()):
                q.put_nowait(ready)

    async def Poll(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return _status(errno.EBADF)
        return socket_pb2.Status(ready=self._readiness(s))

    async def Close(self, req, context):
        s = self._sock(req.fd, context)
        if s is None:
            return _status(errno.EBADF)
        self._close(s)
        return _status()

    def _close(self, s: so.Sock):
        actions, release = self.fs.close(s)
        for act in actions:
            self.on_action(act)
        self.downs["transport" if s.family in so.INET else "link"].put(release)

    async def Session(self, req, context):
        """A client process's lifetime: when its stream ends (it exited, its
        channel dropped), the sockets in its file table close, as a process's
        descriptors do when it exits."""
        session = _session(context)
        if not session:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a session needs pktflow-session metadata")
        q = asyncio.Queue()
        self.sessions.setdefault(session, []).append(q)
        try:
            yield socket_pb2.SessionEvent()
            while True:                 # readiness changes of the session's polled sockets, batched
                ready = [await q.get()]
                while not q.empty():
                    ready.append(q.get_nowait())
                yield socket_pb2.SessionEvent(ready=ready)
        finally:
            self.sessions[session].remove(q)
            if not self.sessions[session]:
                del self.sessions[session]
                for s in self.fs.owned_by(session):
                    if s.fd in self.socks:
                        self._close(s)

    def _forget(self, s: so.Sock):
        for act in self.fs.forget(s):
            self.on_action(act)

    @staticmethod
    def _inet_name(s: so.Sock, addr: int, port: int) -> socket_pb2.SockAddr:
        return af_inet6.name(s, addr, port)

    def _packet_name(self, s: so.Sock) -> socket_pb2.SockAddr:
        iface = self.topo.hosts[s.netns].interface(s.ifindex) if s.ifindex else None
        return socket_pb2.SockAddr(ifname=iface.name if iface else "", proto=s.packet_proto,
                                   hatype=1, haddr=iface.mac if iface else b"")

    def metric_families(self):
        """Open sockets by host, family and type."""
        counts = Counter((s.netns, s.family, s.type) for s in self.socks.values())
        return metrics.sockets(counts, self.topo.hosts) + super().metric_families()

    # -- Admin: the socket table (for ss)
    def sysctls(self, netns: str):
        return self.fs.sysctl[netns], None

    def admin(self, req):
        if req.command == "hosts":             # the names getaddrinfo() knows, the same on every host (_netdb)
            return admin_pb2.AdminReply(json=json.dumps(self.topo.hosts_file()))
        if req.command == "shards":            # where the SDK finds each host's socket service (_client)
            return admin_pb2.AdminReply(json=json.dumps({
                "shard": self.topo.shard or 0, "placement": self.topo.placement,
                "sockets": self.shard_sockets}))
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        if req.command == "sockets":
            rows = [{"fd": s.fd, "family": s.family, "type": s.type, "proto": s.proto,
                     "local": [af_inet6.text(s, s.laddr), s.lport], "peer": [af_inet6.text(s, s.raddr), s.rport],
                     "connected": s.connected, "recv_q": sum(len(k.data) - k.head for k, _ in s.rcvq)}
                    for s in self.socks.values() if s.netns == req.netns]
            return admin_pb2.AdminReply(json=json.dumps(rows))
        if req.command == "interfaces":        # if_nametoindex() for the SDK: a sin6_scope_id from %eth0
            ifaces = self.topo.hosts[req.netns].interfaces.values()
            return admin_pb2.AdminReply(json=json.dumps({i.name: i.ifindex for i in ifaces}))
        if req.command == "endpoints":         # where the SDK finds the nic service (AF_XDP sockets)
            return admin_pb2.AdminReply(json=json.dumps({"nic": config.endpoint("nic")}))
        return super().admin(req)


def _with_readiness(handler):
    """A call on a polled socket answers with its readiness after the call, so the
    SDK's descriptor says what poll() would before the call returns to the program."""
    async def call(self, req, context):
        reply = await handler(self, req, context)
        s = self.socks.get(req.fd) if req.fd in self.polled else None
        if s is not None and s.owner == _session(context):
            (reply if type(reply) is socket_pb2.Status else reply.status).ready.CopyFrom(self._readiness(s))
        return reply
    call.__name__ = handler.__name__
    return call


for _name in ("Bind", "Connect", "SendMsg", "RecvMsg", "SetSockOpt", "GetSockOpt", "Listen", "Accept", "Shutdown"):
    setattr(SocketShell, _name, _with_readiness(getattr(SocketShell, _name)))


def _partial(sent: list, err: int) -> socket_pb2.SendReply:
    """sendmmsg() semantics: the error only when nothing was sent."""
    if sent:
        return socket_pb2.SendReply(sent=len(sent), lengths=sent)
    return socket_pb2.SendReply(status=_status(err))


def _ntohs(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


def _session(context) -> str:
    """The client session a call comes from (pktflow-session metadata; "" for a
    raw client, whose sockets only other raw calls see)."""
    for k, v in context.invocation_metadata():
        if k == "pktflow-session":
            return v[:64]
    return ""


def _pid(context) -> int | None:
    """The calling process (pktflow-pid metadata), None when it is not a pid."""
    for k, v in context.invocation_metadata():
        if k == "pktflow-pid":
            return int(v) if v.isdigit() and int(v) < 1 << 22 else None
    return os.getpid()
