"""struct inet_sock and the per-namespace port tables (inet_hashtables.c,
udp_lib_get_port()): binding, ephemeral ports, lookups with Linux's scoring
(an exact local address and a connected peer beat wildcards)."""
import errno
from collections import Counter

from pktflow.v1.skb_pb2 import PmtuUpdate

from ..common.actions import Down, Up
from ..common.pmtu import learned_pmtu
from ..common.skbuff import new_skb
from ..common.uapi import AF_INET, IP_PMTUDISC_WANT
from ..common.snmp import Mib
from ..common.sysctl import defaults as sysctl_defaults
from ..wire.ipv6 import IPV6_MIN_MTU
from . import af_inet6

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


def pmtu_update(ns, daddr: int, mtu: int, cause, ipv6: bool = False) -> Down:
    """ipv4_sk_update_pmtu() (ip6_sk_update_pmtu() for IPv6): ip is told the
    path MTU an ICMP "fragmentation needed" (ICMPv6 "packet too big") gave
    for daddr; it keeps it as a route exception. The routes cached here take
    it at once: the next datagram must not wait for ip's new FIB generation
    to be fragmented (or refused) at the right size."""
    key = af_inet6.a16(daddr) if ipv6 else daddr
    for (d, _), r in ns.routes.items():
        if d == key and not r.err:
            r.mtu = path_mtu_after(ns, r.mtu, mtu, ipv6)
    update = PmtuUpdate(daddr6=key, mtu=mtu) if ipv6 else PmtuUpdate(daddr=daddr, mtu=mtu)
    return Down(new_skb(ns.name, cause=cause, pmtu_update=update),
                "ip6_sk_update_pmtu" if ipv6 else "ipv4_sk_update_pmtu")


def path_mtu_after(ns, old: int, mtu: int, ipv6: bool = False) -> int:
    """The path MTU ip will settle on after pmtu_update() (the same rule; IPv6's
    floor is its minimum MTU, 1280: rt6_do_update_pmtu() never goes below it)."""
    learned = learned_pmtu(old, mtu, IPV6_MIN_MTU if ipv6 else ns.sysctl["net.ipv4.route.min_pmtu"])
    return old if learned is None else learned[0]


class Rtable:
    """One cached answer of ip_route_output_key() (struct rtable), or of
    ip6_route_output() (struct rt6_info: saddr is then the 128-bit source
    ipv6_dev_get_saddr() chose): read on every datagram, so plain attributes
    rather than the RouteReply message."""
    __slots__ = ("err", "saddr", "mtu", "type", "dst")

    def __init__(self, reply):
        self.err, self.saddr, self.mtu, self.type = reply.err, reply.saddr, reply.mtu, reply.type
        if reply.saddr6:
            self.saddr = int.from_bytes(reply.saddr6, "big")
        self.dst = reply.dst                # the Dst a socket caches and puts on its skbs


class InetSock:
    __slots__ = ("sk", "netns", "proto", "laddr", "lport", "raddr", "rport", "connected", "reuseaddr",
                 "broadcast", "ttl", "tos", "recverr", "pmtudisc", "rcvbuf", "rmem_alloc", "inet_id", "failed_req",
                 # AF_INET6 (af_inet6.py): the family, whether the addresses are IPv6 ones, IPV6_V6ONLY, the
                 # scope of a link-local binding, and struct ipv6_pinfo's hop_limit, tclass, recverr, pmtudisc
                 "family", "ipv6", "v6only", "bound_dev_if", "addr_bound", "hops", "tclass", "recverr6",
                 "pmtudisc6")

    def __init__(self, sk: int, netns: str, proto: int, family: int = AF_INET, bindv6only: int = 0):
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
        af_inet6.init(self, family, bindv6only)
        self.addr_bound = False         # SOCK_BINDADDR_LOCK: bind() named an address
        self.hops = 0                   # IPV6_UNICAST_HOPS; 0: the device's hop_limit
        self.tclass = 0
        self.recverr6 = False
        self.pmtudisc6 = IP_PMTUDISC_WANT


class PortTable:
    """Sockets of one protocol in one namespace, by local port: both families
    share it, as Linux's udp_table and tcp_hashinfo are shared."""

    def __init__(self, rng, port_range: tuple[int, int]):
        self.by_port: dict[int, list[InetSock]] = {}
        self.rng = rng
        self.port_range = port_range

    def in_use(self, sock: InetSock, port: int, addr: int, ipv6: bool | None = None) -> bool:
        """Another socket holds the port for an overlapping address
        (inet_rcv_saddr_equal()), and not both said SO_REUSEADDR."""
        me = af_inet6.view(sock, addr, ipv6)
        for other in self.by_port.get(port, ()):
            if other is sock or not af_inet6.rcv_saddr_equal(me, af_inet6.view(other)):
                continue
            if not (other.reuseaddr and sock.reuseaddr):
                return True
        return False

    def bind(self, sock: InetSock, addr: int, port: int, ipv6: bool | None = None) -> int:
        """Returns 0 or an errno; chooses an ephemeral port for port 0. `ipv6`:
        whether addr is an IPv6 address (default: the socket's kind so far)."""
        if port == 0:
            lo, hi = self.port_range
            span = hi - lo + 1
            start = self.rng.randrange(span)
            for i in range(span):
                candidate = lo + (start + i) % span
                if not self.in_use(sock, candidate, addr, ipv6):
                    port = candidate
                    break
            else:
                return errno.EADDRINUSE
        elif self.in_use(sock, port, addr, ipv6):
            return errno.EADDRINUSE
        sock.laddr, sock.lport = addr, port
        if ipv6 is not None:
            sock.ipv6 = ipv6
        self.by_port.setdefault(port, []).insert(0, sock)
        return 0

    def unhash(self, sock: InetSock):
        socks = self.by_port.get(sock.lport)
        if socks and sock in socks:
            socks.remove(sock)
            if not socks:
                del self.by_port[sock.lport]

    def lookup(self, daddr: int, dport: int, saddr: int, sport: int, ipv6: bool = False) -> InetSock | None:
        """The best socket for a packet daddr:dport <- saddr:sport (compute_score():
        an exact local address and a connected peer first; for IPv4, an AF_INET
        socket before a dual-stack AF_INET6 one)."""
        best, best_score = None, -1
        for s in self.by_port.get(dport, ()):
            if ipv6:
                if not s.ipv6:
                    continue
                score = 2
            elif s.ipv6:                      # an AF_INET6 socket on :: takes IPv4 unless IPV6_V6ONLY
                if s.v6only or s.laddr:
                    continue
                score = 1
            else:
                score = 2
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

    def all_for(self, daddr: int, dport: int, ipv6: bool = False) -> list[InetSock]:
        return [s for s in self.by_port.get(dport, ()) if af_inet6.takes(s, ipv6, daddr)]


class TransportNetns:
    def __init__(self, host, rng, probes):
        self.name = host.name
        self.host = host                # its interfaces: a link-local address's scope (sin6_scope_id)
        self.probes = probes
        self.sysctl = sysctl_defaults() | host.sysctls
        port_range = self.sysctl["net.ipv4.ip_local_port_range"]
        self.udp = PortTable(rng, port_range)
        self.ping = PortTable(rng, (1, 65535))
        self.mib = Mib()
        self.rng = rng
        # (daddr, saddr) -> ip's answer; IPv6 routes are keyed by their 16-byte addresses
        self.routes: dict[tuple, Rtable] = {}
        self.drops = Counter()
