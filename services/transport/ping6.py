"""ICMPv6 echo sockets (net/ipv6/ping.c, with net/ipv4/ping.c's common code):
socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6), what ping -6 uses. The
application writes an echo request (type 128, code 0) and data; the kernel
sets the identifier to the socket's "port" and the checksum over the IPv6
pseudo-header. Replies with that identifier come back as ICMPv6 header plus
data. Ping sockets of both families share one table of identifiers."""
import errno

from ..common.actions import Down, Stop
from ..wire import icmpv6, ipv6
from .af_inet6 import a16, chk_addr, from16, needs_scope_id, pkt_addrs
from .sock import InetSock, sock_queue_rcv_skb
from .udp import report_error
from .udpv6 import Target, datagram_flow6, datagram_route6


def send_target(sock: InetSock, skb) -> Target:
    """ping_common_sendmsg() and ping_v6_sendmsg()'s checks, in their order,
    before the route lookup. call.family AF_INET6: the datagram names its destination."""
    data = skb.data
    if len(data) > 0xFFFF:
        return Target(errno.EMSGSIZE)
    if len(data) < icmpv6.ICMPV6_HLEN or data[0] != icmpv6.ICMPV6_ECHO_REQUEST or data[1] != 0:
        return Target(errno.EINVAL)
    call = skb.call
    oif = 0
    if call.family:
        daddr = from16(call.addr6)
        if needs_scope_id(daddr):
            oif = call.scope_id
    elif sock.connected:
        daddr = sock.raddr if sock.ipv6 else ipv6.v4mapped(sock.raddr)     # connected to ::ffff:a.b.c.d: EINVAL below
    else:
        return Target(errno.EDESTADDRREQ)
    oif = oif or sock.bound_dev_if
    if needs_scope_id(daddr) and not oif or ipv6.is_v4mapped(daddr) or \
            oif and sock.bound_dev_if and oif != sock.bound_dev_if:
        return Target(errno.EINVAL)
    return Target(0, daddr, 0, True, oif)


def route_key(sock: InetSock, skb) -> tuple | None:
    t = send_target(sock, skb)
    return None if t.err else (a16(t.daddr), a16(sock.laddr))


def sendmsg(tr, ns, sock: InetSock, skb, now: int) -> tuple[int, list]:
    """ping_v6_sendmsg(): the echo request with the socket's identifier."""
    t = send_target(sock, skb)
    if t.err:
        return t.err, []
    data = skb.data
    err, rt = datagram_route6(tr, ns, sock, t.daddr, t.oif, len(data))
    if err:
        return err, []
    saddr = sock.laddr or rt.saddr
    seq = int.from_bytes(data[6:8], "big")
    skb.data = icmpv6.echo(icmpv6.ICMPV6_ECHO_REQUEST, sock.lport, seq, data[icmpv6.ICMPV6_HLEN:], saddr, t.daddr)
    datagram_flow6(skb, sock, rt, saddr, t.daddr, ipv6.NEXTHDR_ICMP)
    return 0, [Down(skb, "ping_v6_sendmsg")]


def bind_check(tr, ns, sock: InetSock, call) -> tuple[int, int, int]:
    """ping_check_bind_addr() for AF_INET6: (errno, address, scope). Only ::
    or a unicast address of the host (v4-mapped is refused: EINVAL; a foreign
    one EADDRNOTAVAIL); a link-local one needs its interface."""
    addr = from16(call.addr6)
    t = ipv6.addr_type(addr)
    scoped = needs_scope_id(addr)
    if t != ipv6.IPV6_ADDR_ANY and not t & ipv6.IPV6_ADDR_UNICAST or scoped and not call.scope_id:
        return errno.EINVAL, 0, 0
    dev = call.scope_id or sock.bound_dev_if
    iface = ns.host.interface(dev) if dev else None
    if dev and iface is None:
        return errno.ENODEV, 0, 0
    if t != ipv6.IPV6_ADDR_ANY and not chk_addr(tr, ns, addr, iface):
        return errno.EADDRNOTAVAIL, 0, 0
    return 0, addr, call.scope_id if scoped else sock.bound_dev_if


def ping_rcv(tr, ns, skb, now: int) -> list:
    """ping_rcv(): an echo reply, to the AF_INET6 ping socket of its identifier."""
    _, saddr, daddr = pkt_addrs(skb)
    sock = ns.ping.lookup(daddr, skb.dport, saddr, 0, ipv6=True)
    if sock is None or sock.rmem_alloc > sock.rcvbuf:
        return [Stop(skb, "ping_rcv")]
    skb.head = skb.transport_header
    return sock_queue_rcv_skb(sock, skb, "ping_rcv")


def ping_err(tr, ns, skb, now: int) -> list:
    """ping_err() for ICMPv6: an error quoting one of our echo requests
    (icmpv6_err_convert(); packet too big teaches nothing here, as in Linux)."""
    e = skb.icmp_error
    q = e.quoted
    if q.icmp_type != icmpv6.ICMPV6_ECHO_REQUEST:
        return [Stop(skb, "ping_err")]
    sock = ns.ping.lookup(from16(q.saddr6), q.sport, from16(q.daddr6), 0, ipv6=True)
    return report_error(sock, skb, e.quoted_payload, "ping_err", ipv6=True)
