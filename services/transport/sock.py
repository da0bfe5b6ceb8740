"""struct inet_sock and the per-namespace port tables (inet_hashtables.c,
udp_lib_get_port()): binding, ephemeral ports, lookups with Linux's scoring
(an exact local address and a connected peer beat wildcards)."""
import errno
from collections import Counter

from pktflow.v1.skb_pb2 import PmtuUpdate

from ..common.actions import Down, Up
from ..common.pmtu import learned_pmtu
from ..common.skbuff import new_skb
from ..common.uapi import IP_PMTUDISC_WANT
from ..common.snmp import Mib
from ..common.sysctl import defaults as sysctl_defaults

SKB_TRUESIZE_OVERHEAD = 576       # sk_buff + skb_shared_info, as SKB_TRUESIZE() charges


def sock_queue_rcv_skb(sock, skb, fn: str) -> list:
    """__sock_queue_rcv_skb(): charge the receive buffer with the skb's truesize
    and wake the reader (sk_data_ready: the socket layer queues it)."""
    truesize = len(skb.data) + SKB_TRUESIZE_OVERHEAD
    sock.rmem_alloc += truesize
    skb.sk = sock.sk
    ev = skb.event
    ev.kind, ev.truesize = ev.DATA_READY, truesize
    return [Up(skb, fn)]


def pmtu_update(ns, daddr: int, mtu: int, cause) -> Down:
    """ipv4_sk_update_pmtu(): ip is told the path MTU an ICMP "fragmentation
    needed" gave for daddr (it keeps it as a route exception). The routes
    cached here take it at once: the next datagram must not wait for ip's
    new FIB generation to be fragmented (or refused) at the right size."""
    for (d, _), r in ns.routes.items():
        if d == daddr and not r.err:
            r.mtu = path_mtu_after(ns, r.mtu, mtu)
    return Down(new_skb(ns.name, cause=cause, pmtu_update=PmtuUpdate(daddr=daddr, mtu=mtu)), "ipv4_sk_update_pmtu")


def path_mtu_after(ns, old: int, mtu: int) -> int:
    """The path MTU ip will settle on after pmtu_update() (the same rule)."""
    learned = learned_pmtu(old, mtu, ns.sysctl["net.ipv4.route.min_pmtu"])
    return old if learned is None else learned[0]


class Rtable:
    """One cached answer of ip_route_output_key() (struct rtable): read on
    every datagram, so plain attributes rather than the RouteReply message."""
    __slots__ = ("err", "saddr", "mtu", "type", "dst")

    def __init__(self, reply):
        self.err, self.saddr, self.mtu, self.type = reply.err, reply.saddr, reply.mtu, reply.type
        self.dst = reply.dst                # the Dst a socket caches and puts on its skbs


class InetSock:
    __slots__ = ("sk", "netns", "proto", "laddr", "lport", "raddr", "rport", "connected", "reuseaddr",
                 "broadcast", "ttl", "tos", "recverr", "pmtudisc", "rcvbuf", "rmem_alloc", "inet_id", "failed_req")

    def __init__(self, sk: int, netns: str, proto: int):
        self.sk, self.netns, self.proto = sk, netns, proto
        self.laddr = self.lport = self.raddr = self.rport = 0
        self.connected = False
        self.reuseaddr = self.broadcast = self.recverr = False
        self.ttl = 0                   # 0: net.ipv4.ip_default_ttl
        self.tos = 0
        self.pmtudisc = IP_PMTUDISC_WANT
        self.rcvbuf = 212992
        self.rmem_alloc = 0
        self.inet_id = 0
        self.failed_req = 0


class PortTable:
    """Sockets of one protocol in one namespace, by local port."""

    def __init__(self, rng, port_range: tuple[int, int]):
        self.by_port: dict[int, list[InetSock]] = {}
        self.rng = rng
        self.port_range = port_range

    def in_use(self, sock: InetSock, port: int, addr: int) -> bool:
        for other in self.by_port.get(port, ()):
            if other is sock:
                continue
            if other.laddr and addr and other.laddr != addr:
                continue
            if not (other.reuseaddr and sock.reuseaddr):
                return True
        return False

    def bind(self, sock: InetSock, addr: int, port: int) -> int:
        """Returns 0 or an errno; chooses an ephemeral port for port 0."""
        if port == 0:
            lo, hi = self.port_range
            span = hi - lo + 1
            start = self.rng.randrange(span)
            for i in range(span):
                candidate = lo + (start + i) % span
                if not self.in_use(sock, candidate, addr):
                    port = candidate
                    break
            else:
                return errno.EADDRINUSE
        elif self.in_use(sock, port, addr):
            return errno.EADDRINUSE
        sock.laddr, sock.lport = addr, port
        self.by_port.setdefault(port, []).insert(0, sock)
        return 0

    def unhash(self, sock: InetSock):
        socks = self.by_port.get(sock.lport)
        if socks and sock in socks:
            socks.remove(sock)
            if not socks:
                del self.by_port[sock.lport]

    def lookup(self, daddr: int, dport: int, saddr: int, sport: int) -> InetSock | None:
        """The best socket for a packet daddr:dport <- saddr:sport (compute_score())."""
        best, best_score = None, -1
        for s in self.by_port.get(dport, ()):
            score = 0
            if s.laddr:
                if s.laddr != daddr:
                    continue
                score += 4
            if s.connected:
                if s.raddr != saddr or (s.rport and s.rport != sport):
                    continue
                score += 4
            if score > best_score:
                best, best_score = s, score
        return best

    def all_for(self, daddr: int, dport: int) -> list[InetSock]:
        return [s for s in self.by_port.get(dport, ()) if not s.laddr or s.laddr == daddr]


class TransportNetns:
    def __init__(self, host, rng, probes):
        self.name = host.name
        self.probes = probes
        self.sysctl = sysctl_defaults() | host.sysctls
        port_range = self.sysctl["net.ipv4.ip_local_port_range"]
        self.udp = PortTable(rng, port_range)
        self.ping = PortTable(rng, (1, 65535))
        self.mib = Mib()
        self.rng = rng
        self.routes: dict[tuple[int, int], Rtable] = {}   # (daddr, saddr) -> ip's answer
        self.drops = Counter()
