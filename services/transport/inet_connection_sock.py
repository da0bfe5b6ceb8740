"""The connection-socket side of TCP (net/ipv4/inet_connection_sock.c and
inet_hashtables.c): binding a port with inet_csk_bind_conflict()'s rules,
listening, choosing an ephemeral port for connect(), finding the listener a
SYN is for. A mixin of TcpProto (tcp_ipv4.py)."""
import errno
import os

from pktflow.v1.layers_pb2 import RTN_BROADCAST, RTN_LOCAL

from ..common.uapi import AF_INET
from . import af_inet6, secure_seq
from .sock import PortTable
from .tcp import CLOSE, LISTEN, TcpSock, set_state


class TcpNetns:
    """One namespace's TCP tables: bound ports, connections, listeners."""

    def __init__(self, ns, rng):
        self.ports = PortTable(rng, ns.sysctl["net.ipv4.ip_local_port_range"])
        self.ehash: dict[tuple, TcpSock] = {}          # (laddr, lport, raddr, rport) -> connection
        self.listeners: dict[int, list[TcpSock]] = {}  # port -> listening sockets
        self.cookie_secret = os.urandom(16)
        self.net_secret = secure_seq.new_secret(rng)      # ISNs (RFC 6528)
        self.ts_secret = secure_seq.new_secret(rng)       # timestamp offsets


class InetConnectionSock:
    """Ports, listeners and the accept queue of every namespace."""

    def bind(self, ns, sk: TcpSock, addr: int, port: int, ipv6: bool | None = None, checked: bool = False) -> int:
        """inet_bind() with inet_csk_bind_conflict(): SO_REUSEADDR on both lets
        a port be shared unless one of them listens. Bindings overlap as
        inet_rcv_saddr_equal() says (both families share the table). `ipv6`:
        addr is an IPv6 address; `checked`: __inet6_bind() checked it is local."""
        if sk.lport or sk.state != CLOSE:
            return errno.EINVAL
        if addr and not checked:
            r = self.transport.route(ns, addr, 0)
            if r.err or r.type not in (RTN_LOCAL, RTN_BROADCAST):
                return errno.EADDRNOTAVAIL
        t = self.tables(ns)
        me = af_inet6.view(sk, addr, ipv6)
        holders = t.ports.by_port.get(port, ())
        if port and any(o.state == LISTEN or o.state != CLOSE and not o.reuseaddr
                        for o in holders if af_inet6.rcv_saddr_equal(me, af_inet6.view(o))):
            if not sk.reuseaddr or any(o.state == LISTEN for o in holders):
                return errno.EADDRINUSE
        return t.ports.bind(sk, addr, port, ipv6)

    def listen(self, ns, sk: TcpSock, backlog: int) -> int:
        """inet_csk_listen_start(): the backlog bounds both queues (capped at somaxconn)."""
        if sk.state not in (CLOSE, LISTEN):
            return errno.EINVAL
        t = self.tables(ns)
        if not sk.lport:
            err = t.ports.bind(sk, sk.laddr, 0)
            if err:
                return err
        elif sk.state == CLOSE and any(o is not sk and o.state == LISTEN and
                                       af_inet6.rcv_saddr_equal(af_inet6.view(sk), af_inet6.view(o))
                                       for o in t.ports.by_port.get(sk.lport, ())):
            return errno.EADDRINUSE
        sk.backlog = min(max(backlog, 0), ns.sysctl["net.core.somaxconn"])
        if sk.state != LISTEN:
            set_state(ns, sk, LISTEN)
            t.listeners.setdefault(sk.lport, []).append(sk)
        return 0

    def pick_port(self, t: TcpNetns, sk: TcpSock, daddr: int, dport: int) -> int:
        """__inet_hash_connect(): an ephemeral port no other connection to this
        destination uses (and no listener or exclusive binding holds)."""
        lo, hi = t.ports.port_range
        span = hi - lo + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if port in t.ports.by_port or af_inet6.ehash_key(sk.ipv6, sk.laddr, port, daddr, dport) in t.ehash:
                continue
            return t.ports.bind(sk, sk.laddr, port)
        return errno.EADDRNOTAVAIL

    def lookup_listener(self, t: TcpNetns, daddr: int, port: int, ipv6: bool = False) -> TcpSock | None:
        """inet_lhash2_lookup() / inet6_lhash2_lookup(): a listener on the exact
        address first, else one on the wildcard; for IPv4, an AF_INET socket
        before a dual-stack AF_INET6 one on :: (compute_score())."""
        best, best_score = None, 0
        for lsk in t.listeners.get(port, ()):
            if not af_inet6.takes(lsk, ipv6, daddr):
                continue
            score = (4 if lsk.laddr else 0) + (1 if lsk.family == AF_INET else 0)
            if score >= best_score:
                best, best_score = lsk, score
        return best
