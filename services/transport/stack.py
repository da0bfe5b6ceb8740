"""The transport layer of every namespace: the socket layer's calls (struct
proto) and packets from ip, dispatched to UDP and ping sockets."""
import errno
import random
from collections import deque

from pktflow.v1.layers_pb2 import RTN_BROADCAST, RTN_LOCAL, RTN_UNICAST, RouteReply
from pktflow.v1.skb_pb2 import Dst, ProtoCall, SockEvent, Skb

from ..common.actions import AskRoute, Drop, Stop, Up
from ..common.tracepoints import Probes
from ..common.uapi import (AF_INET, AF_INET6, IP_MTU, IP_MTU_DISCOVER, IP_RECVERR, IP_TOS, IP_TTL, IPPROTO_ICMP,
                           IPPROTO_ICMPV6, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_MTU,
                           SO_BROADCAST, SO_RCVBUF, SO_REUSEADDR, SOCK_DGRAM, SOCK_STREAM, SOL_SOCKET)
from ..wire import ipv4, ipv6
from ..wire.ethernet import ETH_P_IPV6
from . import af_inet6, ping, ping6, udp, udpv6
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
        self.tcp.next_child += (getattr(topology, "shard", None) or 0) << 48   # a shard's numbers are its own
        # inet_protos[] and inet6_protos[]: each protocol's handler and err_handler
        tcp_rcv = lambda tr, ns, skb, now: tr.tcp.rcv(ns, skb, now)    # noqa: E731
        tcp_err = lambda tr, ns, skb, now: tr.tcp.err(ns, skb, now)    # noqa: E731
        self.handlers = {ipv4.IPPROTO_TCP: tcp_rcv, ipv4.IPPROTO_UDP: udp.udp_rcv, ipv4.IPPROTO_ICMP: ping.ping_rcv}
        self.handlers6 = {ipv6.NEXTHDR_TCP: tcp_rcv, ipv6.NEXTHDR_UDP: udpv6.udpv6_rcv,
                          ipv6.NEXTHDR_ICMP: ping6.ping_rcv}
        self.err_handlers = {ipv4.IPPROTO_TCP: tcp_err, ipv4.IPPROTO_UDP: udp.udp_err,
                             ipv4.IPPROTO_ICMP: ping.ping_err}
        self.err_handlers6 = {ipv6.NEXTHDR_TCP: tcp_err, ipv6.NEXTHDR_UDP: udpv6.udpv6_err,
                              ipv6.NEXTHDR_ICMP: ping6.ping_err}
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

    def route6(self, ns: TransportNetns, daddr: int, saddr: int, oif: int = 0) -> Rtable:
        """ip6_route_output()'s answer for daddr from saddr (128-bit ints; the
        cache holds them as RouteRequest's 16-byte daddr6/saddr6). A link-local
        destination's scope (`oif`) pins the route to that interface: on-link,
        from its link-local address (AskRoute carries no oif; every IPv6
        interface has fe80::/64, so ip's answer differs only in the device)."""
        key = (af_inet6.a16(daddr), af_inet6.a16(saddr))
        r = ns.routes[key]
        if r.err:
            del ns.routes[key]
        elif oif and af_inet6.needs_scope_id(daddr) and r.dst.oif != oif:
            return self.scoped_route(ns, daddr, saddr, oif, r.dst.genid)
        return r

    @staticmethod
    def scoped_route(ns, daddr: int, saddr: int, oif: int, genid: int | None = None) -> Rtable:
        """The on-link route of a link-local destination out of interface `oif`,
        from its link-local address (what ip6_route_output() gives with that
        flowi6_oif); `genid` the FIB generation it holds for (by default that
        of the IPv6 routes cached, all of one namespace's FIB)."""
        iface = ns.host.interface(oif)
        if iface is None:
            return Rtable(RouteReply(err=errno.ENODEV))
        if genid is None:
            genid = next((r.dst.genid for k, r in ns.routes.items() if isinstance(k[0], bytes) and not r.err), 0)
        src = saddr or next((a for a, _ in iface.addrs6 if ipv6.is_linklocal(a)), 0)
        dst = Dst(oif=oif, nexthop6=af_inet6.a16(daddr), mtu=iface.mtu, genid=genid)
        return Rtable(RouteReply(saddr6=af_inet6.a16(src), mtu=iface.mtu, type=RTN_UNICAST, dst=dst))

    def route_key(self, skb) -> tuple | None:
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
        if sock.family == AF_INET6:
            return self.route_key6(sock, skb)
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

    def route_key6(self, sock: InetSock, skb) -> tuple | None:
        """route_key() for an AF_INET6 UDP or ping socket."""
        call = skb.call
        op = call.op
        if op == ProtoCall.SENDMSG:
            if call.req and sock.failed_req == call.req:
                return None
            return (ping6 if sock.proto == IPPROTO_ICMPV6 else udpv6).route_key(sock, skb)
        if op == ProtoCall.CONNECT:
            return udpv6.connect_key(sock, call)
        if op == ProtoCall.BIND and not sock.lport:
            if sock.proto == IPPROTO_ICMPV6 and ipv6.is_v4mapped(af_inet6.from16(call.addr6)):
                return None                      # ping_check_bind_addr(): not unicast, EINVAL
            return af_inet6.bind_key(sock, call, stream=False)
        if op == ProtoCall.GETSOCKOPT and sock.connected and \
                (call.level, call.optname) in ((IPPROTO_IP, IP_MTU), (IPPROTO_IPV6, IPV6_MTU)):
            return self.conn_key(sock)
        return None

    @staticmethod
    def conn_key(sock) -> tuple:
        """The key of a connected socket's route."""
        if sock.ipv6:
            return af_inet6.a16(sock.raddr), af_inet6.a16(sock.laddr)
        return sock.raddr, sock.laddr

    def conn_route(self, ns, sock) -> Rtable:
        if sock.ipv6:
            return self.route6(ns, sock.raddr, sock.laddr, sock.bound_dev_if)
        return self.route(ns, sock.raddr, sock.laddr)

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
        return ns.ping if sock.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) else ns.udp

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
            return self.create(ns, skb)
        sock = self.socks.get(skb.sk)
        if sock is None:
            return self.complete(skb, errno.EBADF)
        if sock.family == AF_INET6:
            done = self.dispatch6(ns, sock, skb, now)
            if done is not None:
                return done
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

    def create(self, ns, skb) -> list:
        """inet_create() / inet6_create(): the protocols each family has."""
        call = skb.call
        family = call.family or AF_INET
        ping_proto = IPPROTO_ICMPV6 if family == AF_INET6 else IPPROTO_ICMP
        if call.type == SOCK_STREAM and call.protocol in (0, IPPROTO_TCP):
            self.tcp.create(ns, skb)
            return self.complete(skb, 0)
        if call.type != SOCK_DGRAM or call.protocol not in (0, IPPROTO_UDP, ping_proto):
            return self.complete(skb, errno.EPROTONOSUPPORT)
        sock = InetSock(skb.sk, ns.name, ping_proto if call.protocol == ping_proto else IPPROTO_UDP, family,
                        ns.sysctl["net.ipv6.bindv6only"])
        sock.rcvbuf = ns.sysctl["net.core.rmem_default"]
        self.socks[skb.sk] = sock
        return self.complete(skb, 0)

    def dispatch6(self, ns, sock: InetSock, skb, now: int) -> list | None:
        """The calls an AF_INET6 datagram socket answers its own way (inet6_dgram_ops);
        None for those it answers as AF_INET does."""
        call = skb.call
        op = call.op
        if op == ProtoCall.BIND:
            return self.complete(skb, self.bind6(ns, sock, call), sock)
        if op == ProtoCall.CONNECT:            # ip6_datagram_connect() (ping6's too: ..._v6_only checks the family)
            return self.complete(skb, udpv6.connect(self, ns, sock, call), sock)
        if op == ProtoCall.DISCONNECT:
            udpv6.disconnect(sock)
            return self.complete(skb, 0, sock)
        if op == ProtoCall.RECVMSG and call.family == AF_INET6:
            sock.rmem_alloc = max(0, sock.rmem_alloc - call.consumed)
            if sock.proto == IPPROTO_UDP:
                ns.mib["Udp6InDatagrams"] += call.segs
            return []
        if op == ProtoCall.GETSOCKOPT and (call.level, call.optname) in ((IPPROTO_IP, IP_MTU),
                                                                        (IPPROTO_IPV6, IPV6_MTU)):
            if not sock.connected:
                return self.complete(skb, errno.ENOTCONN)
            done = self.complete(skb, 0)
            done[0].skb.event.optval = self.conn_route(ns, sock).mtu.to_bytes(4, "little")
            return done
        return None

    def bind6(self, ns, sock: InetSock, call) -> int:
        """inet6_bind() (ping_bind() for a ping socket)."""
        if sock.lport:
            return errno.EINVAL
        if sock.proto == IPPROTO_ICMPV6:
            err, addr, scope = ping6.bind_check(self, ns, sock, call)
            ipv6_addr = True
        else:
            err, addr, ipv6_addr, scope = af_inet6.bind_check(self, ns, sock, call, stream=False)
        if err:
            return err
        saved = sock.v6only
        af_inet6.bound(sock, addr, ipv6_addr, scope)
        if sock.proto == IPPROTO_ICMPV6:
            sock.v6only = saved                  # ping_bind() leaves sk_ipv6only alone
        err = self.table(ns, sock).bind(sock, addr, call.port, ipv6_addr)
        if err:
            sock.v6only, sock.addr_bound, sock.bound_dev_if = saved, False, 0
        return err

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
        elif level == IPPROTO_IPV6:
            af_inet6.ipv6_setsockopt(sock, optname, value)
        return 0

    def sendmsg(self, ns, sock: InetSock, skb, now: int) -> list:
        call = skb.call
        req, last, index = call.req, call.last, call.index
        if req and sock.failed_req == req:       # sendmmsg() stops at its first failure
            return [Stop(skb, "udp_sendmsg")]
        if sock.family == AF_INET6:
            proto = ping6 if sock.proto == IPPROTO_ICMPV6 else udpv6
        else:
            proto = ping if sock.proto == IPPROTO_ICMP else udp
        err, out = proto.sendmsg(self, ns, sock, skb, now)
        if err:
            sock.failed_req = req
            reason = _SEND_ERR_REASON.get(err, "NOT_SPECIFIED")
            fn = "udp_sendmsg" if sock.family == AF_INET else \
                ("ping_v6_sendmsg" if sock.proto == IPPROTO_ICMPV6 else "udpv6_sendmsg")
            return [Drop(skb, fn, reason)] + self.complete(skb, err, sock, index, req)
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
            if sock.family == AF_INET6:
                af_inet6.set_event_addrs(ev, sock, sock.laddr, sock.raddr)
                ev.port, ev.peer_port = sock.lport, sock.rport
            else:
                ev.addr, ev.port, ev.peer_addr, ev.peer_port = sock.laddr, sock.lport, sock.raddr, sock.rport
        return [Up(Skb(netns=skb.netns, sk=skb.sk, event=ev), "complete")]

    # -- packets from ip
    def rcv(self, skb, now: int) -> list:
        ns = self.netns.get(skb.netns)
        if ns is None:
            return [Drop(skb, "tcp_v4_rcv", "NO_SOCKET")]
        if skb.HasField("icmp_error"):          # an ICMP error for one of our protocols: its err_handler
            six = bool(skb.icmp_error.quoted.daddr6)
            handler = (self.err_handlers6 if six else self.err_handlers).get(skb.icmp_error.quoted.protocol)
            return handler(self, ns, skb, now) if handler else [Stop(skb, "icmpv6_notify" if six else "icmp_unreach")]
        if skb.protocol == ETH_P_IPV6:      # ip6_protocol_deliver_rcu(): ip walked the extension headers
            handler = self.handlers6.get(skb.ip_proto)
            return handler(self, ns, skb, now) if handler else [Drop(skb, "ip6_protocol_deliver_rcu", "IP_NOPROTO")]
        handler = self.handlers.get(skb.data[skb.network_header + 9])
        return handler(self, ns, skb, now) if handler else [Drop(skb, "ip_local_deliver", "IP_NOPROTO")]

    def timer(self, key, now: int) -> list:
        return self.tcp.timer(key[1], now) if key[0] == "tcp" else []

