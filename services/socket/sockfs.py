"""The socket room's core (net/socket.c's sockfs, with af_inet.c's and
af_packet.c's callbacks): the table of sockets per fd, the calls into the layer
below and the matching of their COMPLETE events, and what each event from
below does to a socket: data and errors queued, a connection established or
ended, a new connection on a listener's accept queue, room to write.

Pure, like the other rooms' cores: it takes skbs and the time and returns
actions; the shell (server.py) does the waiting. Two actions are the socket
room's own: Wake(fd), a waiter on that socket should look again, and
Answer(req, event), the call `req` is complete."""
import errno
from dataclasses import dataclass

from pktflow.v1.skb_pb2 import ProtoCall, Skb, SockEvent

from ..common import uapi
from ..common.actions import Drop, Stop
from ..common.sysctl import defaults as sysctl_defaults
from . import sock as so
from .af_inet6 import ev_addrs

TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_CLOSE = 1, 8, 7


@dataclass(slots=True)
class Wake:
    """sk_data_ready & co: whoever waits on socket `fd` should look again."""
    fd: int


@dataclass(slots=True)
class Answer:
    """The COMPLETE event answering the call `req`."""
    req: int
    event: object


class SockFs:
    def __init__(self, topo):
        self.topo = topo
        self.socks: dict[int, so.Sock] = {}
        # a shard's numbers are its own (the shard in the top 16 bits): the SDK keys descriptors by them
        self.next_fd = 3 + ((topo.shard or 0) << 48)
        self.next_req = 1
        self.sysctl = {h: sysctl_defaults() | host.sysctls for h, host in topo.hosts.items()}
        self.write_space: dict[int, int] = {}     # WRITE_SPACE events seen, per stream socket

    # -- the table
    def create(self, netns: str, family: int, type_: int, proto: int) -> tuple[int, str, so.Sock | None]:
        """__sock_create(): (errno, detail, the new socket)."""
        if netns not in self.topo.hosts:
            return errno.ENOENT, f"no network namespace {netns!r}", None
        if family not in (uapi.AF_INET, uapi.AF_INET6, uapi.AF_PACKET):
            return errno.EAFNOSUPPORT, "", None
        ping = uapi.IPPROTO_ICMPV6 if family == uapi.AF_INET6 else uapi.IPPROTO_ICMP
        if family in so.INET and not (            # inet_create() / inet6_create(): the protocols each has
                type_ == uapi.SOCK_DGRAM and proto in (0, uapi.IPPROTO_UDP, ping) or
                type_ == uapi.SOCK_STREAM and proto in (0, uapi.IPPROTO_TCP)):
            return (errno.EPROTONOSUPPORT if type_ in (uapi.SOCK_DGRAM, uapi.SOCK_STREAM)
                    else errno.ESOCKTNOSUPPORT), "", None
        if family == uapi.AF_PACKET and type_ != uapi.SOCK_RAW:
            return errno.ESOCKTNOSUPPORT, "packet sockets here are SOCK_RAW", None
        default_proto = {uapi.SOCK_DGRAM: uapi.IPPROTO_UDP, uapi.SOCK_STREAM: uapi.IPPROTO_TCP}.get(type_, 0)
        s = so.Sock(self.next_fd, netns, family, type_,
                    proto or (default_proto if family in so.INET else 0), self.sysctl[netns])
        self.next_fd += 1
        self.socks[s.fd] = s
        return 0, "", s

    def owned_by(self, session: str) -> list:
        """The sockets in one client session's file table."""
        return [s for s in self.socks.values() if s.owner == session]

    def forget(self, s: so.Sock) -> list:
        """The fd is gone: a blocked call on it wakes up to EBADF."""
        self.socks.pop(s.fd, None)
        self.write_space.pop(s.fd, None)
        return [Wake(s.fd)]

    def close(self, s: so.Sock) -> tuple[list, Skb]:
        """sock_close(): the socket and the connections it never accepted are
        gone (transport resets those); the RELEASE call for the layer below."""
        out = self.forget(s)
        for child in s.accept_q:
            out += self.forget(child)
        return out, Skb(netns=s.netns, sk=s.fd, call=ProtoCall(op=ProtoCall.RELEASE))

    # -- calls into the layer below
    def new_req(self) -> int:
        req = self.next_req
        self.next_req += 1
        return req

    def call(self, s: so.Sock, op: int, ifindex: int = 0, **fields) -> Skb:
        """A ProtoCall skb; its COMPLETE comes back as Answer(skb.call.req, event)."""
        return Skb(netns=s.netns, sk=s.fd, ifindex=ifindex, call=ProtoCall(op=op, req=self.new_req(), **fields))

    # -- events and frames from below
    def ingress(self, skb, now_ns: int) -> list:
        """Transport's events (completions, data, errors, state changes) and frames from link's taps."""
        ev = skb.event
        s = self.socks.get(skb.sk)
        if ev.kind == SockEvent.COMPLETE:
            if s is not None and ev.port:
                s.laddr, s.lport, s.bound = ev_addrs(s.family, ev)[0], ev.port, True
            return [Answer(ev.req, ev)]
        if ev.kind in (SockEvent.STATE_CHANGE, SockEvent.WRITE_SPACE) or \
                (ev.kind == SockEvent.ERROR_REPORT and (s is None or s.stream)):
            if ev.kind == SockEvent.WRITE_SPACE and s is not None:
                self.write_space[s.fd] = self.write_space.get(s.fd, 0) + 1
                s.nospace = False
            return self.stream_event(s, skb)
        if s is None:
            return [Drop(skb, "sock_queue_rcv_skb", "SOCKET_CLOSE")]
        if s.stream:
            s.queue(skb, now_ns)
            return [Stop(skb, "sock_queue_rcv_skb"), Wake(s.fd)]
        if ev.kind == SockEvent.ERROR_REPORT:
            s.sk_err = ev.err
            if ev.errqueue:
                s.errq.append(skb)
            return [Stop(skb, "sk_error_report"), Wake(s.fd)]
        if not s.queue(skb, now_ns):
            return [Drop(skb, "packet_rcv", "PACKET_SOCK_ERROR")]
        return [Stop(skb, "sock_queue_rcv_skb"), Wake(s.fd)]

    def stream_event(self, s: so.Sock | None, skb) -> list:
        """Transport's callbacks for a TCP socket (sk_state_change & co)."""
        ev = skb.event
        if ev.kind == SockEvent.STATE_CHANGE:
            if s is None and ev.state == TCP_ESTABLISHED and ev.listener:
                return self.new_child(skb, ev)
            if s is None:
                return []
            if ev.state == TCP_ESTABLISHED:
                s.connecting, s.connected = False, True
                (s.laddr, s.raddr), s.lport, s.rport = ev_addrs(s.family, ev), ev.port, ev.peer_port
            elif ev.state in (TCP_CLOSE_WAIT, TCP_CLOSE):
                s.eof = True
                s.closed = ev.state == TCP_CLOSE
                s.connecting = False
        elif s is None:
            return []
        elif ev.kind == SockEvent.ERROR_REPORT:
            s.sk_err = ev.err
            s.connecting = False
            s.eof = s.closed = True
        return [Wake(s.fd)]

    def new_child(self, skb, ev) -> list:
        """A connection completed on a listener: a socket for accept() to return."""
        parent = self.socks.get(ev.listener)
        if parent is None or not parent.listening:
            return []
        child = so.Sock(skb.sk, parent.netns, parent.family, parent.type, parent.proto, parent.sysctl)
        child.opts.update(parent.opts)
        child.owner = parent.owner
        child.connected = True
        child.scope_id = skb.ifindex or parent.scope_id          # tcp_v6_syn_recv_sock(): a link-local peer's iif
        (child.laddr, child.raddr), child.lport, child.rport = ev_addrs(child.family, ev), ev.port, ev.peer_port
        self.socks[child.fd] = child
        parent.accept_q.append(child)
        return [Wake(parent.fd)]
