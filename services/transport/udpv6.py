"""UDP over IPv6 (net/ipv6/udp.c, datagram.c): udpv6_sendmsg(),
ip6_datagram_connect(), __udp6_lib_rcv() and udpv6_err(), for AF_INET6
sockets. A dual-stack socket's datagrams to a v4-mapped address go as IPv4
through udp.py, as udpv6_sendmsg() hands them to udp_sendmsg(); the port
table is the one both families share.

Counters are /proc/net/snmp6's Udp6* (UDP6); TCP's are shared, UDP's are not."""
import errno

from ..common.actions import Down, Drop, Stop
from ..common.skbuff import clone
from ..common.uapi import AF_INET6, IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IP_PMTUDISC_INTERFACE, IP_PMTUDISC_OMIT
from ..wire import icmpv6, ipv6, udp
from ..wire.checksum import pseudo_header_sum6
from . import udp as udp4
from .af_inet6 import IPV6_HLEN, MAPPED_MASK, a16, from16, needs_scope_id, pkt_addrs, set_flow
from .sock import InetSock, pmtu_update

UDP6 = ("Udp6InDatagrams", "Udp6NoPorts", "Udp6InErrors", "Udp6OutDatagrams", "Udp6RcvbufErrors",
        "Udp6SndbufErrors", "Udp6InCsumErrors", "Udp6IgnoredMulti", "Udp6MemErrors")
UDP6_MAX_PAYLOAD = ipv6.IPV6_MAXPLEN - udp.UDP_HLEN        # ip6_append_data(): IPV6_MAXPLEN


class Target:
    """Where a datagram goes, as udpv6_sendmsg() works it out before routing:
    `ipv6` False for a v4-mapped destination (the IPv4 path), `oif` the
    scope of a link-local one."""
    __slots__ = ("err", "daddr", "dport", "ipv6", "oif")

    def __init__(self, err=0, daddr=0, dport=0, ipv6=True, oif=0):
        self.err, self.daddr, self.dport, self.ipv6, self.oif = err, daddr, dport, ipv6, oif


def send_target(sock: InetSock, skb) -> Target:
    """udpv6_sendmsg()'s checks before its route lookup. The socket layer marks
    a datagram that names its destination with call.family AF_INET6."""
    call = skb.call
    if call.family == AF_INET6:
        daddr = from16(call.addr6)
        if ipv6.is_v4mapped(daddr):
            if sock.v6only:                      # ipv6_only_sock(sk) ? -ENETUNREACH : udp_sendmsg()
                return Target(errno.ENETUNREACH)
            return v4_target(sock, daddr & MAPPED_MASK, call.port)
        if call.port == 0:
            return Target(errno.EINVAL)
        if daddr == 0:
            daddr = ipv6.IN6ADDR_LOOPBACK         # :: means loopback (BSD'ism)
        oif = call.scope_id if call.scope_id and needs_scope_id(daddr) else sock.bound_dev_if
        return Target(0, daddr, call.port, True, oif)
    if not sock.connected:
        return Target(errno.EDESTADDRREQ)
    if not sock.ipv6:
        return v4_target(sock, sock.raddr, sock.rport)
    return Target(0, sock.raddr, sock.rport, True, sock.bound_dev_if)


def v4_target(sock: InetSock, daddr: int, dport: int) -> Target:
    """A dual-stack socket's datagram to ::ffff:a.b.c.d: udp_sendmsg()'s own checks."""
    if dport == 0:
        return Target(errno.EINVAL)
    if sock.ipv6 and sock.laddr:
        # bound or connected to an IPv6 address: its IPv4 source would be LOOPBACK4_IPV6,
        # which no IPv4 route takes here (Linux sends from 127.0.0.6, which no peer accepts)
        return Target(errno.ENETUNREACH)
    return Target(0, daddr, dport, False)


def route_key(sock: InetSock, skb) -> tuple | None:
    """The route a SENDMSG will ask, or None when it fails first."""
    t = send_target(sock, skb)
    if t.err:
        return None
    if not t.ipv6:
        return (None if len(skb.data) > udp4.UDP_MAX_PAYLOAD else (t.daddr, 0 if sock.ipv6 else sock.laddr))
    return a16(t.daddr), a16(sock.laddr if sock.ipv6 else 0)


def sendmsg(tr, ns, sock: InetSock, skb, now: int) -> tuple[int, list]:
    """udpv6_sendmsg(): (errno, verdicts)."""
    t = send_target(sock, skb)
    if t.err:
        return t.err, []
    if not t.ipv6:
        if len(skb.data) > udp4.UDP_MAX_PAYLOAD:
            return errno.EMSGSIZE, []
        return udp4.send_to(tr, ns, sock, skb, t.daddr, t.dport)
    err, rt = datagram_route6(tr, ns, sock, t.daddr, t.oif, udp.UDP_HLEN + len(skb.data))
    if err:
        return err, []
    saddr = sock.laddr or rt.saddr
    skb.data = udp.emit(sock.lport, t.dport, skb.data, saddr, t.daddr, pseudo_sum=pseudo_header_sum6)
    datagram_flow6(skb, sock, rt, saddr, t.daddr, ipv6.NEXTHDR_UDP)
    skb.transport_header = 0
    ns.mib["Udp6OutDatagrams"] += 1
    return 0, [Down(skb, "udpv6_sendmsg")]


def datagram_route6(tr, ns, sock: InetSock, daddr: int, oif: int, size: int) -> tuple[int, object]:
    """Bind a port if none, route (ip6_sk_dst_lookup_flow()), then what
    ip6_append_data() refuses: more than IPV6_MAXPLEN, or more than the path
    MTU for IPV6_PMTUDISC_DO (PROBE, INTERFACE); others are fragmented by ip."""
    err = tr.autobind(ns, sock)
    if err:
        return err, None
    if not sock.ipv6:                            # bound or connected to a v4-mapped address
        rt = tr.route6(ns, daddr, 0, oif)
        return (rt.err or errno.EAFNOSUPPORT), None     # ip6_dst_lookup_tail(): a mapped source
    rt = tr.route6(ns, daddr, sock.laddr, oif)
    if rt.err:
        return rt.err, None
    if size > ipv6.IPV6_MAXPLEN or \
            size + IPV6_HLEN > rt.mtu and IP_PMTUDISC_DO <= sock.pmtudisc6 <= IP_PMTUDISC_INTERFACE:
        return errno.EMSGSIZE, None
    return 0, rt


def datagram_flow6(skb, sock: InetSock, rt, saddr: int, daddr: int, proto: int):
    """The flow a datagram asks of ip6_xmit(): hop limit (0: the device's), traffic class, the route."""
    set_flow(skb, True, saddr, daddr, proto)
    skb.ttl, skb.tos = sock.hops, sock.tclass
    skb.dst.CopyFrom(rt.dst)
    skb.ClearField("call")


# -- connect() -------------------------------------------------------------
def connect_key(sock: InetSock, call) -> tuple | None:
    """The route ip6_datagram_connect() asks, or None when it fails first."""
    err, daddr, mapped = connect_target(sock, call)
    if err:
        return None
    if mapped:
        return daddr, 0 if sock.ipv6 else sock.laddr
    return a16(daddr), a16(sock.laddr if sock.ipv6 else 0)


def connect_target(sock: InetSock, call) -> tuple[int, int, bool]:
    """(errno, daddr, v4-mapped?) before the route lookup."""
    daddr = from16(call.addr6)
    if daddr == 0:
        daddr = ipv6.IN6ADDR_LOOPBACK                      # connect to self
    if ipv6.is_v4mapped(daddr):
        if sock.v6only:
            return errno.ENETUNREACH, 0, True
        return 0, daddr & MAPPED_MASK, True
    if needs_scope_id(daddr):
        if call.scope_id and sock.bound_dev_if and sock.bound_dev_if != call.scope_id:
            return errno.EINVAL, 0, False
        if not (call.scope_id or sock.bound_dev_if):        # connect to link-local address requires an interface
            return errno.EINVAL, 0, False
    return 0, daddr, False


def connect(tr, ns, sock: InetSock, call) -> int:
    """__ip6_datagram_connect() (ip4_datagram_connect() for a v4-mapped peer)."""
    err, daddr, mapped = connect_target(sock, call)
    if err:
        return err
    if mapped:
        if sock.ipv6 and sock.laddr and sock.addr_bound:
            return errno.ENETUNREACH
        was = sock.ipv6, sock.laddr
        if sock.ipv6:
            sock.laddr = 0
        err = udp4.connect(tr, ns, sock, daddr, call.port)
        if err:
            sock.ipv6, sock.laddr = was
            return err
        sock.ipv6 = False
        return 0
    if not sock.ipv6:
        return errno.EAFNOSUPPORT
    err = tr.autobind(ns, sock)
    if err:
        return err
    if needs_scope_id(daddr) and call.scope_id:
        sock.bound_dev_if = call.scope_id
    rt = tr.route6(ns, daddr, sock.laddr, sock.bound_dev_if if needs_scope_id(daddr) else 0)
    if rt.err:
        return rt.err
    if not sock.laddr:
        sock.laddr = rt.saddr                              # np->saddr = fl6.saddr; rehash
    sock.raddr, sock.rport, sock.connected = daddr, call.port, True
    return 0


def disconnect(sock: InetSock):
    """__udp_disconnect(): the peer forgotten; an address the socket did not
    bind itself (connect chose it) is released (inet_reset_saddr())."""
    sock.connected, sock.raddr, sock.rport = False, 0, 0
    if not sock.addr_bound:
        sock.laddr, sock.ipv6 = 0, True


# -- receiving -------------------------------------------------------------
def udpv6_rcv(tr, ns, skb, now: int) -> list:
    """__udp6_lib_rcv(): checksum over the IPv6 pseudo-header (a zero checksum
    is refused: RFC 8200 8.1), multicast to every socket, unicast by lookup,
    ICMPv6 port unreachable when nobody listens."""
    _, saddr, daddr = pkt_addrs(skb)
    uh, dropped = udp4.parse_rcv(ns, skb, saddr, daddr, "Udp6", "udpv6_rcv", pseudo_header_sum6)
    if uh is None:
        return dropped
    if ipv6.is_multicast(daddr):               # __udp6_lib_mcast_deliver()
        socks = ns.udp.all_for(daddr, uh.dport, ipv6=True)
        if not socks:                          # kfree_skb(): no reason given
            ns.mib["Udp6IgnoredMulti"] += 1
            return [Drop(skb, "udpv6_rcv", "NOT_SPECIFIED")]
        return udp4.deliver_all(ns, socks, skb, "Udp6", "udpv6_rcv")
    sock = ns.udp.lookup(daddr, uh.dport, saddr, uh.sport, ipv6=True)
    if uh.checksum == 0:                       # udp6_csum_zero_error()
        ns.mib["Udp6InCsumErrors"] += 1
        ns.mib["Udp6InErrors"] += 1
        return [Drop(skb, "udpv6_rcv", "UDP_CSUM" if sock is not None else "NO_SOCKET")]
    if sock is None:
        ns.mib["Udp6NoPorts"] += 1
        report = clone(skb)
        report.icmp_send.type, report.icmp_send.code = icmpv6.ICMPV6_DEST_UNREACH, icmpv6.ICMPV6_PORT_UNREACH
        return [Drop(skb, "udpv6_rcv", "NO_SOCKET"), Down(report, "icmpv6_send")]
    return udp4.queue_rcv(ns, sock, skb, "Udp6", "udpv6_rcv")


def udpv6_err(tr, ns, skb, now: int) -> list:
    """__udp6_lib_err(): an ICMPv6 error quoting a datagram we sent. Packet
    too big teaches ip the path MTU (ip6_sk_update_pmtu()) and is a hard
    error unless the socket said IPV6_PMTUDISC_DONT."""
    e = skb.icmp_error
    q = e.quoted
    sock = ns.udp.lookup(from16(q.saddr6), q.sport, from16(q.daddr6), q.dport, ipv6=True)
    if sock is None:
        return [Stop(skb, "udpv6_err")]
    hard = None
    out = []
    if e.type == icmpv6.ICMPV6_PKT_TOOBIG:
        if sock.pmtudisc6 in (IP_PMTUDISC_INTERFACE, IP_PMTUDISC_OMIT):     # !ip6_sk_accept_pmtu()
            return [Stop(skb, "udpv6_err")]
        out.append(pmtu_update(ns, from16(q.daddr6), e.info, skb, ipv6=True))
        hard = True if sock.pmtudisc6 != IP_PMTUDISC_DONT else None
    return out + udp4.report_error(sock, skb, e.quoted_payload + udp.UDP_HLEN, "udpv6_err", hard=hard, ipv6=True)
