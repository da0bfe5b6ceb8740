"""The transport layer of every namespace: the socket layer's calls (struct
proto) and packets from ip, dispatched to UDP and ping sockets."""
import errno
import random
from collections import deque

from pktflow.v1.layers_pb2 import RTN_BROADCAST, RTN_LOCAL, RouteReply
from pktflow.v1.skb_pb2 import ProtoCall, SockEvent, Skb

from ..common.actions import AskRoute, Drop, Stop, Up
from ..common.tracepoints import Probes
from ..common.uapi import (IP_MTU, IP_MTU_DISCOVER, IP_RECVERR, IP_TOS, IP_TTL, IPPROTO_ICMP, IPPROTO_IP, IPPROTO_TCP,
                           IPPROTO_UDP,
                           SO_BROADCAST, SO_RCVBUF, SO_REUSEADDR, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET)
from ..wire import ipv4
from . import ping, udp
from .sock import InetSock, Rtable, TransportNetns
from .tcp_ipv4 import TcpProto

# A send the syscall refuses never becomes a packet; its trace still ends with a reason.
_SEND_ERR_REASON = {errno.ENETUNREACH: "IP_OUTNOROUTES", errno.EHOSTUNREACH: "IP_OUTNOROUTES",
                    errno.EMSGSIZE: "PKT_TOO_BIG"}


class Transport:
    def __init__(self, topology, rng: random.Random | None = None, probes: Probes | None = None):
        rng = rng or random.Random()
        self.probes = probes or Probes()           # the tracepoints the cores fire (the shell's)
        self.netns = {h.name: TransportNetns(h, rng, self.probes) for h in topology.hosts.values()}
        self.socks: dict[int, InetSock] = {}        # UDP and ping sockets
        self.tcp = TcpProto(self, rng)
        self.genid = 0
        self.waiting: dict[int, deque] = {}      # sk -> its calls, held until a route is known
        self.asking: dict[tuple, list[int]] = {}  # (netns, daddr, saddr) -> sockets waiting for it

    # -- routes: ip_route_output_key()'s answers, cached per netns (as dst entries)
    def route(self, ns: TransportNetns, daddr: int, saddr: int) -> Rtable:
        """ip's answer (err, or saddr, mtu, type and the dst to cache); from_socket()
        made sure the call that asks has it."""
        key = (daddr, saddr)
        r = ns.routes[key]
        if r.err:
            del ns.routes[key]          # errors are asked again, so ip counts each
        return r

    def route_key(self, skb) -> tuple[int, int] | None:
        """The route (daddr, saddr) a call will look up, decided by the checks
        the call makes before its lookup, so a call that fails first asks nothing."""
        call = skb.call
        tsk = self.tcp.socks.get(skb.sk)
        if tsk is not None:
            return self.tcp.route_key(tsk, call)
        sock = self.socks.get(skb.sk)
        if sock is None:
            return None
        op = call.op
        if op == ProtoCall.SENDMSG:
            if call.req and sock.failed_req == call.req:
                return None
            err, daddr, _ = (ping if sock.proto == IPPROTO_ICMP else udp).send_target(sock, skb)
            return None if err else (daddr, sock.laddr)
        if op == ProtoCall.CONNECT:
            return call.addr, sock.laddr
        if op == ProtoCall.BIND and call.addr and not sock.lport:
            return call.addr, 0
        if op == ProtoCall.GETSOCKOPT and sock.connected and (call.level, call.optname) == (IPPROTO_IP, IP_MTU):
            return sock.raddr, sock.laddr                       # the connected route's MTU
        return None

    def wait_for_route(self, ns, sk: int, key: tuple, queue: deque) -> list:
        """Holds a socket's calls until the route is known; asks once per route."""
        self.waiting[sk] = queue
        askers = self.asking.setdefault((ns.name, *key), [])
        askers.append(sk)
        return [AskRoute(ns.name, *key)] if len(askers) == 1 else []

    def route_answer(self, netns: str, daddr: int, saddr: int, reply: RouteReply, now: int) -> list:
        """The ip layer answered an AskRoute: cache it and run the calls that
        waited, in order, until one needs another route it does not have."""
        self.set_genid(reply.fib_genid)
        ns = self.netns[netns]
        if len(ns.routes) > 65536:
            ns.routes.clear()
        ns.routes[(daddr, saddr)] = Rtable(reply)
        out = []
        for sk in self.asking.pop((netns, daddr, saddr), ()):
            queue = self.waiting.pop(sk, None)
            while queue:
                skb = queue.popleft()
                key = self.route_key(skb)
                if key is not None and key not in ns.routes:
                    queue.appendleft(skb)
                    out += self.wait_for_route(ns, sk, key, queue)
                    break
                out += self.dispatch(ns, skb, now)
        return out

    def set_genid(self, genid: int):
        if genid and genid != self.genid:
            self.genid = genid
            for ns in self.netns.values():
                ns.routes.clear()

    def reset(self):
        """The socket layer restarted: its sockets are gone."""
        self.waiting.clear()
        for s in list(self.socks.values()):
            self._release(s)
        for sk in list(self.tcp.socks.values()):
            self.tcp.release_owner(self.netns[sk.netns], sk)

    # -- helpers for the protocols
    def table(self, ns, sock):
        return ns.ping if sock.proto == IPPROTO_ICMP else ns.udp

    def autobind(self, ns, sock: InetSock) -> int:
        if sock.lport:
            return 0
        # inet_autobind(): no ephemeral port left is EAGAIN (bind() to port 0 says EADDRINUSE)
        err = self.table(ns, sock).bind(sock, sock.laddr, 0)
        return errno.EAGAIN if err == errno.EADDRINUSE else err

    # -- calls from the socket layer
    def from_socket(self, skb, now: int) -> list:
        ns = self.netns.get(skb.netns)
        if ns is None:
            return self.complete(skb, errno.ENODEV)
        queue = self.waiting.get(skb.sk)
        if queue is not None:                   # a socket's calls keep their order
            queue.append(skb)
            return []
        key = self.route_key(skb)
        if key is not None and key not in ns.routes:
            return self.wait_for_route(ns, skb.sk, key, deque([skb]))
        return self.dispatch(ns, skb, now)

    def dispatch(self, ns, skb, now: int) -> list:
        call = skb.call
        op = call.op
        tsk = self.tcp.socks.get(skb.sk)
        if tsk is not None:
            return self.tcp.call(ns, tsk, skb, now)
        if op == ProtoCall.CREATE:
            if call.type == SOCK_STREAM and call.protocol in (0, IPPROTO_TCP):
                self.tcp.create(ns, skb)
                return self.complete(skb, 0)
            if call.type != SOCK_DGRAM or call.protocol not in (0, IPPROTO_UDP, IPPROTO_ICMP):
                return self.complete(skb, errno.EPROTONOSUPPORT)
            sock = InetSock(skb.sk, ns.name, IPPROTO_ICMP if call.protocol == IPPROTO_ICMP else IPPROTO_UDP)
            sock.rcvbuf = ns.sysctl["net.core.rmem_default"]
            self.socks[skb.sk] = sock
            return self.complete(skb, 0)
        sock = self.socks.get(skb.sk)
        if sock is None:
            return self.complete(skb, errno.EBADF)
        if op == ProtoCall.SENDMSG:
            return self.sendmsg(ns, sock, skb, now)
        if op == ProtoCall.RECVMSG:
            sock.rmem_alloc = max(0, sock.rmem_alloc - call.consumed)
            if sock.proto == IPPROTO_UDP:
                ns.mib["UdpInDatagrams"] += call.segs
            return []
        if op == ProtoCall.BIND:
            return self.complete(skb, self.bind(ns, sock, call.addr, call.port), sock)
        if op == ProtoCall.CONNECT:
            err = udp.connect(self, ns, sock, call.addr, call.port)
            return self.complete(skb, err, sock)
        if op == ProtoCall.DISCONNECT:
            sock.connected, sock.raddr, sock.rport = False, 0, 0
            return self.complete(skb, 0, sock)
        if op == ProtoCall.SETSOCKOPT:
            return self.complete(skb, self.setsockopt(sock, call.level, call.optname, call.optval))
        if op == ProtoCall.RELEASE:
            self._release(sock)
            return self.complete(skb, 0)
        if op == ProtoCall.GETSOCKOPT:
            if (call.level, call.optname) != (IPPROTO_IP, IP_MTU):
                return self.complete(skb, errno.ENOPROTOOPT)
            if not sock.connected:
                return self.complete(skb, errno.ENOTCONN)
            done = self.complete(skb, 0)
            done[0].skb.event.optval = self.route(ns, sock.raddr, sock.laddr).mtu.to_bytes(4, "little")
            return done
        return self.complete(skb, errno.EOPNOTSUPP)

    def bind(self, ns, sock: InetSock, addr: int, port: int) -> int:
        """inet_bind()."""
        if sock.lport:
            return errno.EINVAL
        if addr:
            r = self.route(ns, addr, 0)
            if r.err or r.type not in (RTN_LOCAL, RTN_BROADCAST):
                return errno.EADDRNOTAVAIL
        return self.table(ns, sock).bind(sock, addr, port)

    def setsockopt(self, sock: InetSock, level: int, optname: int, value: int) -> int:
        """The options the protocol itself needs; the socket layer validated them."""
        if level == SOL_SOCKET:
            if optname == SO_REUSEADDR:
                sock.reuseaddr = bool(value)
            elif optname == SO_BROADCAST:
                sock.broadcast = bool(value)
            elif optname == SO_RCVBUF:
                sock.rcvbuf = value
        elif level == IPPROTO_IP:
            if optname == IP_TTL:
                sock.ttl = 0 if value == -1 else value
            elif optname == IP_TOS:
                sock.tos = value & 0xFF
            elif optname == IP_RECVERR:
                sock.recverr = bool(value)
            elif optname == IP_MTU_DISCOVER:
                sock.pmtudisc = value
        return 0

    def sendmsg(self, ns, sock: InetSock, skb, now: int) -> list:
        call = skb.call
        req, last, index = call.req, call.last, call.index
        if req and sock.failed_req == req:       # sendmmsg() stops at its first failure
            return [Stop(skb, "udp_sendmsg")]
        proto = ping if sock.proto == IPPROTO_ICMP else udp
        err, out = proto.sendmsg(self, ns, sock, skb, now)
        if err:
            sock.failed_req = req
            reason = _SEND_ERR_REASON.get(err, "NOT_SPECIFIED")
            return [Drop(skb, "udp_sendmsg", reason)] + self.complete(skb, err, sock, index, req)
        if last:
            out += self.complete(skb, 0, sock, index + 1, req)
        return out

    def _release(self, sock: InetSock):
        ns = self.netns[sock.netns]
        self.table(ns, sock).unhash(sock)
        self.socks.pop(sock.sk, None)

    def complete(self, skb, err: int, sock: InetSock | None = None, sent: int = 0, req: int | None = None) -> list:
        """The COMPLETE event answering a call; carries the local and peer address."""
        ev = SockEvent(kind=SockEvent.COMPLETE, req=skb.call.req if req is None else req, err=err, sent=sent)
        if sock is not None:
            ev.addr, ev.port, ev.peer_addr, ev.peer_port = sock.laddr, sock.lport, sock.raddr, sock.rport
        return [Up(Skb(netns=skb.netns, sk=skb.sk, event=ev), "complete")]

    # -- packets from ip
    def rcv(self, skb, now: int) -> list:
        ns = self.netns.get(skb.netns)
        if ns is None:
            return [Drop(skb, "tcp_v4_rcv", "NO_SOCKET")]
        if skb.HasField("icmp_error"):          # an ICMP error for one of our protocols
            inner = skb.icmp_error.quoted.protocol
            if inner == ipv4.IPPROTO_UDP:
                return udp.udp_err(self, ns, skb, now)
            if inner == ipv4.IPPROTO_ICMP:
                return ping.ping_err(self, ns, skb, now)
            if inner == ipv4.IPPROTO_TCP:
                return self.tcp.err(ns, skb, now)
            return [Stop(skb, "icmp_unreach")]
        proto = skb.data[skb.network_header + 9]
        if proto == ipv4.IPPROTO_TCP:
            return self.tcp.rcv(ns, skb, now)
        if proto == ipv4.IPPROTO_UDP:
            return udp.udp_rcv(self, ns, skb, now)
        if proto == ipv4.IPPROTO_ICMP:
            return ping.ping_rcv(self, ns, skb, now)
        return [Drop(skb, "ip_local_deliver", "IP_NOPROTO")]

    def timer(self, key, now: int) -> list:
        return self.tcp.timer(key[1], now) if key[0] == "tcp" else []
