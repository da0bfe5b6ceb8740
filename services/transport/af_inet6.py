"""AF_INET6 sockets in the transport layer (net/ipv6/af_inet6.c, datagram.c,
inet6_hashtables.c): the addresses a socket is bound and connected to, which
packets of which family it takes, and the flow its packets ask of ip.

Addresses are ints in both families, as on the wire: 32 bits for IPv4, 128
for IPv6. A socket (InetSock, TcpSock) has
  family   AF_INET or AF_INET6: what the application sees (sockaddr_in or _in6);
  ipv6     its addresses (laddr, raddr) are IPv6 ones; False for every AF_INET
           socket and for an AF_INET6 one bound or connected to a v4-mapped
           address, whose traffic is IPv4 (Linux's ipv6_mapped af_ops);
  v6only   IPV6_V6ONLY (net.ipv6.bindv6only): an AF_INET6 socket bound to ::
           takes IPv4 too unless it is set;
  bound_dev_if  the interface a link-local address was scoped to (sin6_scope_id).
The socket layer sees AF_INET6 addresses as 128 bits, IPv4 ones v4-mapped
(::ffff:a.b.c.d), as Linux's sk_v6_rcv_saddr and sk_v6_daddr hold them."""
import errno

from pktflow.v1.layers_pb2 import RTN_BROADCAST, RTN_LOCAL
from pktflow.v1.skb_pb2 import Skb

from ..common.skbuff import new_skb
from ..common.uapi import AF_INET6, IPV6_MTU_DISCOVER, IPV6_RECVERR, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY
from ..wire import ipv4, ipv6
from ..wire.checksum import pseudo_header_sum, pseudo_header_sum6
from ..wire.ethernet import ETH_P_IPV6

LOOPBACK4_IPV6 = ipv4.aton("127.0.0.6")     # sk_rcv_saddr of a socket bound to a real IPv6 address
IPV6_HLEN = ipv6.IPV6_HLEN
MAPPED_MASK = 0xFFFFFFFF


def a16(addr: int) -> bytes:
    return addr.to_bytes(16, "big")


def from16(b: bytes) -> int:
    return int.from_bytes(b, "big")


def needs_scope_id(addr: int) -> bool:
    """__ipv6_addr_needs_scope_id(): link-local unicast, link- or interface-local multicast."""
    t = ipv6.addr_type(addr)
    return bool(t & ipv6.IPV6_ADDR_LINKLOCAL or
                t & ipv6.IPV6_ADDR_MULTICAST and t & (ipv6.IPV6_ADDR_LOOPBACK | ipv6.IPV6_ADDR_LINKLOCAL))


def init(sk, family: int, bindv6only: int):
    """The family fields of a new socket (inet6_create(): sk_ipv6only from net.ipv6.bindv6only)."""
    sk.family = family
    sk.ipv6 = family == AF_INET6
    sk.v6only = family == AF_INET6 and bool(bindv6only)
    sk.bound_dev_if = 0


# -- what a socket receives ----------------------------------------------------
def rcv_saddr4(sk) -> int | None:
    """The IPv4 address the socket takes packets for (0: any), None for none
    (inet_rcv_saddr: LOOPBACK4_IPV6 for a socket bound to an IPv6 address)."""
    if not sk.ipv6:
        return sk.laddr
    return 0 if not sk.v6only and sk.laddr == 0 else None


def takes(sk, ipv6_pkt: bool, daddr: int) -> bool:
    """Does the socket's local address take a packet of that family to daddr?"""
    if ipv6_pkt:
        return sk.ipv6 and (sk.laddr == 0 or sk.laddr == daddr)
    a = rcv_saddr4(sk)
    return a is not None and (a == 0 or a == daddr)


def _view(family: int, ipv6_addr: bool, addr: int, v6only: bool) -> tuple:
    """(is AF_INET6, sk_v6_rcv_saddr or None for an AF_INET socket, sk_rcv_saddr, ipv6only)."""
    if family != AF_INET6:
        return False, None, addr, False
    if not ipv6_addr:
        return True, ipv6.v4mapped(addr), addr, v6only
    return True, addr, 0 if addr == 0 else LOOPBACK4_IPV6, v6only


def view(sk, addr: int | None = None, ipv6_addr: bool | None = None) -> tuple:
    """The socket's bound addresses as inet_rcv_saddr_equal() compares them;
    `addr`/`ipv6_addr` for the binding being tried."""
    return _view(sk.family, sk.ipv6 if ipv6_addr is None else ipv6_addr, sk.laddr if addr is None else addr,
                 sk.v6only)


def rcv_saddr_equal(a: tuple, b: tuple) -> bool:
    """inet_rcv_saddr_equal(sk, sk2, match_wildcard=true): do two bindings of
    one port overlap? ipv6_rcv_saddr_equal() for an AF_INET6 `a`,
    ipv4_rcv_saddr_equal() for an AF_INET one."""
    a6, a_v6, a_v4, a_only = a
    _b6, b_v6, b_v4, b_only = b
    if not a6:
        return not b_only and (a_v4 == b_v4 or not a_v4 or not b_v4)
    t1 = ipv6.addr_type(a_v6)
    t2 = ipv6.addr_type(b_v6) if b_v6 is not None else ipv6.IPV6_ADDR_MAPPED
    if t1 == ipv6.IPV6_ADDR_MAPPED and t2 == ipv6.IPV6_ADDR_MAPPED:
        return not b_only and (a_v4 == b_v4 or not a_v4 or not b_v4)
    if t1 == ipv6.IPV6_ADDR_ANY and t2 == ipv6.IPV6_ADDR_ANY:
        return True
    if t2 == ipv6.IPV6_ADDR_ANY and not (b_only and t1 == ipv6.IPV6_ADDR_MAPPED):
        return True
    if t1 == ipv6.IPV6_ADDR_ANY and not (a_only and t2 == ipv6.IPV6_ADDR_MAPPED):
        return True
    return b_v6 is not None and a_v6 == b_v6


def ehash_key(ipv6_conn: bool, laddr: int, lport: int, raddr: int, rport: int) -> tuple:
    """A connection's key in the established table; IPv6 ones are marked so
    that ::a.b.c.d never meets a.b.c.d."""
    return (laddr, lport, raddr, rport, 6) if ipv6_conn else (laddr, lport, raddr, rport)


# -- the addresses the socket layer sees -------------------------------------
def user_addr(sk, addr: int) -> int:
    """An address of the socket as its family shows it (v4-mapped on AF_INET6)."""
    return ipv6.v4mapped(addr) if sk.family == AF_INET6 and not sk.ipv6 else addr


def set_event_addrs(ev, sk, laddr: int, raddr: int):
    """A SockEvent's local and peer addresses for this socket: addr/peer_addr
    for AF_INET, addr6/peer_addr6 (16 bytes) for AF_INET6."""
    if sk.family == AF_INET6:
        ev.addr6, ev.peer_addr6 = a16(user_addr(sk, laddr)), a16(user_addr(sk, raddr))
    else:
        ev.addr, ev.peer_addr = laddr, raddr


def pkt_addrs(skb) -> tuple[bool, int, int]:
    """(IPv6?, saddr, daddr) of a packet ip handed up, as ip parsed its header."""
    if skb.protocol == ETH_P_IPV6:
        return True, from16(skb.saddr6), from16(skb.daddr6)
    return False, skb.saddr, skb.daddr


def pseudo(ipv6_pkt: bool):
    """The pseudo-header sum the checksum covers (RFC 768/9293, RFC 8200 8.1)."""
    return pseudo_header_sum6 if ipv6_pkt else pseudo_header_sum


def net_header_len(ipv6_pkt: bool) -> int:
    return IPV6_HLEN if ipv6_pkt else ipv4.IPV4_HLEN


def set_flow(skb: Skb, ipv6_pkt: bool, saddr: int, daddr: int, proto: int):
    """The flow a packet asks of ip: flowi4 in saddr/daddr, or flowi6 in
    saddr6/daddr6 (16 bytes) with skb->protocol ETH_P_IPV6."""
    skb.ip_proto = proto
    if ipv6_pkt:
        skb.protocol = ETH_P_IPV6
        skb.saddr6, skb.daddr6 = a16(saddr), a16(daddr)
    else:
        skb.saddr, skb.daddr = saddr, daddr


def flow_skb(netns: str, data: bytes, cause, ipv6_pkt: bool, saddr: int, daddr: int, proto: int, **fields) -> Skb:
    """new_skb() with the flow of either family."""
    skb = new_skb(netns, data, cause, **fields)
    set_flow(skb, ipv6_pkt, saddr, daddr, proto)
    return skb


def dsfield(skb) -> int:
    """The received packet's DS field (IPv4 TOS or IPv6 traffic class)."""
    if skb.protocol == ETH_P_IPV6:
        return ipv6.dsfield(skb.data, skb.network_header)
    return ipv4.dsfield(skb.data, skb.network_header)


def ntoa(ipv6_addr: bool, addr: int) -> str:
    return ipv6.ntoa(addr) if ipv6_addr else ipv4.ntoa(addr)


def sk_ntoa(sk, addr: int) -> str:
    """An address of the socket as ss and the tracepoints print it: AF_INET6
    sockets' IPv4 addresses v4-mapped."""
    return ipv6.ntoa(user_addr(sk, addr)) if sk.family == AF_INET6 else ipv4.ntoa(addr)


# -- bind() --------------------------------------------------------------------
def bind_key(sk, call, stream: bool) -> tuple | None:
    """The route __inet6_bind() asks (whether the address is local), or None
    when it fails before (bind_check()'s order) or asks nothing."""
    addr = from16(call.addr6)
    t = ipv6.addr_type(addr)
    if t & ipv6.IPV6_ADDR_MULTICAST and stream:
        return None
    if t == ipv6.IPV6_ADDR_MAPPED:
        return (addr & MAPPED_MASK, 0) if addr & MAPPED_MASK and not sk.v6only else None
    if t == ipv6.IPV6_ADDR_ANY or t & ipv6.IPV6_ADDR_MULTICAST or needs_scope_id(addr):
        return None
    return a16(addr), a16(0)


def bind_check(tr, ns, sk, call, stream: bool) -> tuple[int, int, bool, int]:
    """__inet6_bind()'s checks of the address, in its order, once the caller
    has refused a bound socket (EINVAL): (errno, the address, is it IPv6,
    the interface it is scoped to). A v4-mapped address is checked as
    inet_bind() checks an IPv4 one; a link-local one needs its interface
    (EINVAL without, ENODEV for none such) and must be on it; any other must
    be one of the host's (ipv6_chk_addr(): EADDRNOTAVAIL)."""
    addr = from16(call.addr6)
    t = ipv6.addr_type(addr)
    if t & ipv6.IPV6_ADDR_MULTICAST and stream:
        return errno.EINVAL, 0, True, 0
    if t == ipv6.IPV6_ADDR_MAPPED:
        if sk.v6only:                        # binding to v4-mapped address on a v6-only socket makes no sense
            return errno.EINVAL, 0, True, 0
        v4 = addr & MAPPED_MASK
        if v4:
            r = tr.route(ns, v4, 0)
            if r.err or r.type not in (RTN_LOCAL, RTN_BROADCAST):
                return errno.EADDRNOTAVAIL, 0, False, 0
        return 0, v4, False, sk.bound_dev_if
    scope = sk.bound_dev_if
    if t == ipv6.IPV6_ADDR_ANY:
        return 0, 0, True, scope
    if needs_scope_id(addr):
        scope = call.scope_id or scope
        if not scope:                        # binding to link-local address requires an interface
            return errno.EINVAL, 0, True, 0
    iface = ns.host.interface(scope) if scope else None
    if scope and iface is None:
        return errno.ENODEV, 0, True, 0
    if not t & ipv6.IPV6_ADDR_MULTICAST and not chk_addr(tr, ns, addr, iface):
        return errno.EADDRNOTAVAIL, 0, True, 0
    return 0, addr, True, scope if needs_scope_id(addr) else sk.bound_dev_if


def chk_addr(tr, ns, addr: int, iface) -> bool:
    """ipv6_chk_addr(): is addr one of the host's? A link-local one must be on
    `iface` (the topology's addresses: they do not change); any other is asked
    of ip's FIB, which has a local route for it once DAD is done."""
    if needs_scope_id(addr):
        return iface is not None and any(a == addr for a, _ in iface.addrs6)
    r = tr.route6(ns, addr, 0)
    return not r.err and r.type == RTN_LOCAL


def bound(sk, addr: int, ipv6_addr: bool, scope: int):
    """What a successful bind leaves: a socket bound to an IPv6 address other
    than :: is IPv6-only (sk_ipv6only = 1), its address locked (SOCK_BINDADDR_LOCK)."""
    sk.bound_dev_if = scope
    if ipv6_addr and addr:
        sk.v6only = True
    sk.addr_bound = bool(addr) or not ipv6_addr


def ipv6_setsockopt(sk, optname: int, value: int):
    """ipv6_setsockopt()'s options at level IPPROTO_IPV6 that change what goes
    out (UDP, ping and TCP sockets alike); the socket layer validated them
    (do_ipv6_setsockopt()'s ranges)."""
    if optname == IPV6_V6ONLY:
        sk.v6only = bool(value)
    elif optname == IPV6_UNICAST_HOPS:
        sk.hops = 0 if value == -1 else value
    elif optname == IPV6_TCLASS:
        sk.tclass = 0 if value == -1 else value & 0xFF
    elif optname == IPV6_RECVERR:
        sk.recverr6 = bool(value)
    elif optname == IPV6_MTU_DISCOVER:
        sk.pmtudisc6 = value
