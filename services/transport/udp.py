"""UDP (net/ipv4/udp.c): udp_sendmsg(), udp_rcv() with its demux, udp_err()."""
import errno

from pktflow.v1.layers_pb2 import RTN_BROADCAST
from pktflow.v1.skb_pb2 import SockEvent, SockExtendedErr

from ..common.actions import Down, Drop, Stop, Up
from ..common.skbuff import IP_ID_SET, clone
from ..common.uapi import (AF_INET6, IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IP_PMTUDISC_INTERFACE, IP_PMTUDISC_PROBE,
                           IP_PMTUDISC_WANT, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6)
from ..wire import Malformed, icmpv6, ipv4, udp
from ..wire.checksum import pseudo_header_sum
from ..wire.ipv6 import v4mapped
from .af_inet6 import a16
from ..wire.icmp import ICMP_FRAG_NEEDED
from .sock import InetSock, Rtable, pmtu_update, sock_queue_rcv_skb

UDP_MAX_PAYLOAD = 0xFFFF - ipv4.IPV4_HLEN - udp.UDP_HLEN
ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB = 3, 3, 11, 12
# icmp_err_convert[]: (errno, fatal) for destination-unreachable codes 0..15
ICMP_ERR_CONVERT = [(errno.ENETUNREACH, 0), (errno.EHOSTUNREACH, 0), (errno.ENOPROTOOPT, 1),
                    (errno.ECONNREFUSED, 1), (errno.EMSGSIZE, 0), (errno.EOPNOTSUPP, 0), (errno.ENETUNREACH, 1),
                    (errno.EHOSTDOWN, 1), (errno.ENONET, 1), (errno.ENETUNREACH, 1), (errno.EHOSTUNREACH, 1),
                    (errno.ENETUNREACH, 0), (errno.EHOSTUNREACH, 0), (errno.EHOSTUNREACH, 1),
                    (errno.EHOSTUNREACH, 1), (errno.EHOSTUNREACH, 1)]


def icmp_to_errno(type_: int, code: int) -> tuple[int, bool]:
    """(errno, hard error?) for an ICMP error, as __udp4_lib_err() maps it."""
    if type_ == ICMP_PARAMETERPROB:
        return errno.EPROTO, True
    if type_ == ICMP_DEST_UNREACH and code < len(ICMP_ERR_CONVERT):
        e, fatal = ICMP_ERR_CONVERT[code]
        return e, bool(fatal)
    return errno.EHOSTUNREACH, False


def route_checks(tr, ns, sock: InetSock, daddr: int) -> tuple[int, Rtable | None]:
    """The route a datagram to daddr takes, and the errno Linux gives instead."""
    r = tr.route(ns, daddr, sock.laddr)
    if r.err:
        return r.err, None
    if r.type == RTN_BROADCAST and not sock.broadcast:
        return errno.EACCES, None
    return 0, r


def connect(tr, ns, sock: InetSock, daddr: int, dport: int) -> int:
    """ip4_datagram_connect()."""
    err = tr.autobind(ns, sock)
    if err:
        return err
    err, rt = route_checks(tr, ns, sock, daddr)
    if err:
        return err
    if not sock.laddr:
        sock.laddr = rt.saddr         # the route's source becomes the bound address
    sock.raddr, sock.rport, sock.connected = daddr, dport, True
    sock.inet_id = ns.rng.getrandbits(16)
    return 0


def send_target(sock: InetSock, skb) -> tuple[int, int, int]:
    """What udp_sendmsg() checks before it routes: (errno, daddr, dport)."""
    call = skb.call
    if call.port or call.addr:
        if call.port == 0:
            return errno.EINVAL, 0, 0
        daddr, dport = call.addr, call.port
    elif sock.connected:
        daddr, dport = sock.raddr, sock.rport
    else:
        return errno.EDESTADDRREQ, 0, 0
    if len(skb.data) > UDP_MAX_PAYLOAD:
        return errno.EMSGSIZE, 0, 0
    return 0, daddr, dport


def sendmsg(tr, ns, sock: InetSock, skb, now: int) -> tuple[int, list]:
    """udp_sendmsg(): (errno, verdicts). The skb holds the payload; call.addr/port
    the destination (0 for the connected peer)."""
    err, daddr, dport = send_target(sock, skb)
    if err:
        return err, []
    return send_to(tr, ns, sock, skb, daddr, dport)


def send_to(tr, ns, sock: InetSock, skb, daddr: int, dport: int) -> tuple[int, list]:
    """udp_sendmsg() once the destination is known (an AF_INET6 socket's
    datagram to a v4-mapped address comes here too)."""
    err, rt = datagram_route(tr, ns, sock, daddr, udp.UDP_HLEN + len(skb.data))
    if err:
        return err, []
    saddr = sock.laddr or rt.saddr
    skb.data = udp.emit(sock.lport, dport, skb.data, saddr, daddr)
    datagram_flow(skb, sock, rt, saddr, daddr, ipv4.IPPROTO_UDP)
    if sock.connected and daddr == sock.raddr:
        sock.inet_id = (sock.inet_id + 1) & 0xFFFF
        skb.ip_id = IP_ID_SET | sock.inet_id
    skb.transport_header = 0
    ns.mib["UdpOutDatagrams"] += 1
    return 0, [Down(skb, "udp_sendmsg")]


def datagram_route(tr, ns, sock: InetSock, daddr: int, size: int) -> tuple[int, Rtable | None]:
    """What udp_sendmsg() and ping_v4_sendmsg() do once the destination is
    known: bind a port if none, route, and refuse what the path MTU cannot
    carry when the socket said IP_PMTUDISC_DO (or PROBE, INTERFACE); others
    are fragmented by ip."""
    err = tr.autobind(ns, sock)
    if err:
        return err, None
    err, rt = route_checks(tr, ns, sock, daddr)
    if err:
        return err, None
    if size + ipv4.IPV4_HLEN > rt.mtu and IP_PMTUDISC_DO <= sock.pmtudisc <= IP_PMTUDISC_INTERFACE:
        return errno.EMSGSIZE, None
    return 0, rt


def datagram_flow(skb, sock: InetSock, rt: Rtable, saddr: int, daddr: int, proto: int):
    """The flow a datagram asks of ip_queue_xmit(), with the route it took.
    DF as __ip_make_skb() sets it: always for DO and PROBE, for WANT when
    the datagram fits the path (a larger one goes as fragments)."""
    pmtudisc = sock.pmtudisc
    skb.saddr, skb.daddr, skb.ip_proto = saddr, daddr, proto
    skb.ttl, skb.tos = sock.ttl, sock.tos
    fits = len(skb.data) + ipv4.IPV4_HLEN <= rt.mtu
    skb.df = rt.type != RTN_BROADCAST and (pmtudisc in (IP_PMTUDISC_DO, IP_PMTUDISC_PROBE) or
                                           pmtudisc == IP_PMTUDISC_WANT and fits)
    skb.dst.CopyFrom(rt.dst)
    skb.ClearField("call")


def udp_rcv(tr, ns, skb, now: int) -> list:
    """__udp4_lib_rcv()."""
    saddr, daddr = skb.saddr, skb.daddr
    uh, dropped = parse_rcv(ns, skb, saddr, daddr, "Udp", "udp_rcv", pseudo_header_sum)
    if uh is None:
        return dropped
    if skb.pkt_type in (1, 2):        # broadcast or multicast: every matching socket gets a copy
        socks = ns.udp.all_for(daddr, uh.dport)
        if not socks:
            ns.mib["UdpNoPorts"] += 1
            return [Drop(skb, "udp_rcv", "NO_SOCKET")]
        return deliver_all(ns, socks, skb)
    sock = ns.udp.lookup(daddr, uh.dport, saddr, uh.sport)
    if sock is None:
        ns.mib["UdpNoPorts"] += 1
        report = clone(skb)
        report.icmp_send.type, report.icmp_send.code = ICMP_DEST_UNREACH, ICMP_PORT_UNREACH
        return [Drop(skb, "udp_rcv", "NO_SOCKET"), Down(report, "icmp_send")]
    return queue_rcv(ns, sock, skb)


def parse_rcv(ns, skb, saddr: int, daddr: int, mib: str, fn: str, pseudo_sum) -> tuple:
    """The header checks both families make (udp.parse()), counted in the
    family's table (`mib`: Udp, Udp6): (the header, []) or (None, the drop).
    The skb is left as the protocol wants it: ports noted, trimmed to the UDP
    length (pskb_trim_rcsum()), its data after the header."""
    data, th = skb.data, skb.transport_header
    end = len(data)
    try:
        uh = udp.parse(data, th, end, saddr, daddr, pseudo_sum=pseudo_sum)
    except Malformed as e:
        ns.mib[mib + "InErrors"] += 1
        if e.reason == "UDP_CSUM":
            ns.mib[mib + "InCsumErrors"] += 1
        return None, [Drop(skb, fn, e.reason)]
    skb.sport, skb.dport = uh.sport, uh.dport
    if th + uh.length < end:         # bytes beyond the UDP length are not data
        skb.data = data[:th + uh.length]
    skb.head = th + udp.UDP_HLEN
    return uh, []


def deliver_all(ns, socks: list, skb, mib: str = "Udp", fn: str = "udp_rcv") -> list:
    """A broadcast or multicast datagram: a copy for every socket that takes it."""
    out = []
    for s in socks[1:]:
        out += queue_rcv(ns, s, clone(skb), mib, fn)
    return out + queue_rcv(ns, socks[0], skb, mib, fn)


def queue_rcv(ns, sock: InetSock, skb, mib: str = "Udp", fn: str = "udp_rcv") -> list:
    """__udp_enqueue_schedule_skb(): charge the receive buffer, wake the reader."""
    if sock.rmem_alloc > sock.rcvbuf:
        ns.mib[mib + "RcvbufErrors"] += 1
        ns.mib[mib + "InErrors"] += 1
        return [Drop(skb, fn, "SOCKET_RCVBUFF")]
    return sock_queue_rcv_skb(sock, skb, fn)


def udp_err(tr, ns, skb, now: int) -> list:
    """__udp4_lib_err(): an ICMP error quoting a datagram we sent."""
    e = skb.icmp_error
    q = e.quoted
    sock = ns.udp.lookup(q.saddr, q.sport, q.daddr, q.dport)
    out = frag_needed(ns, sock, skb)
    if out and sock.pmtudisc == IP_PMTUDISC_DONT:
        return out + [Stop(skb, "udp_err")]
    return out + report_error(sock, skb, e.quoted_payload + udp.UDP_HLEN, "udp_err", hard=bool(out) or None)


def frag_needed(ns, sock: InetSock | None, skb) -> list:
    """ICMP "fragmentation needed" about a socket's datagram: ip learns the
    path MTU (ipv4_sk_update_pmtu()); without a socket nothing is learned."""
    e = skb.icmp_error
    if sock is None or e.type != ICMP_DEST_UNREACH or e.code != ICMP_FRAG_NEEDED:
        return []
    return [pmtu_update(ns, e.quoted.daddr, e.info, skb)]


def report_error(sock: InetSock | None, skb, payload: int, fn: str, hard: bool | None = None,
                 ipv6: bool = False) -> list:
    """sk->sk_err = err; sk_error_report(): hard errors reach connected sockets,
    every error reaches an IP_RECVERR socket (with its error queue entry).
    `hard` overrides the errno table's verdict (EMSGSIZE is hard for PMTU discovery).
    `ipv6`: an ICMPv6 error (icmpv6_err_convert(), IPV6_RECVERR, SO_EE_ORIGIN_ICMP6)."""
    if sock is None:
        return [Stop(skb, fn)]
    e = skb.icmp_error
    err, table_hard = (icmpv6_err_convert if ipv6 else icmp_to_errno)(e.type, e.code)
    hard = table_hard if hard is None else hard
    recverr = sock.recverr6 if ipv6 else sock.recverr
    if not recverr and (not hard or not sock.connected):
        return [Stop(skb, fn)]
    skb.sk = sock.sk
    skb.head = min(payload, len(skb.data))     # what recvmsg(MSG_ERRQUEUE) returns
    ee = SockExtendedErr(ee_errno=err, ee_origin=SO_EE_ORIGIN_ICMP6 if ipv6 else SO_EE_ORIGIN_ICMP,
                         ee_type=e.type, ee_code=e.code, ee_info=e.info, offender=e.offender,
                         offender6=e.offender6)
    # the event replaces the ICMP error in the skb's control oneof
    ev = SockEvent(kind=SockEvent.ERROR_REPORT, err=err, ee=ee, errqueue=recverr, peer_port=e.quoted.dport)
    if sock.family == AF_INET6:                # ipv6_recv_error(): an IPv4 one's addresses v4-mapped
        ev.peer_addr6 = e.quoted.daddr6 if ipv6 else a16(v4mapped(e.quoted.daddr))
        if not ipv6:
            ee.offender6 = a16(v4mapped(e.offender))
    else:
        ev.peer_addr = e.quoted.daddr
    skb.event.CopyFrom(ev)
    return [Up(skb, fn)]


# icmpv6_err_convert() (net/ipv6/icmp.c): tab_unreach[] for destination-unreachable codes 0..6
ICMPV6_ERR_CONVERT = [(errno.ENETUNREACH, False), (errno.EACCES, True), (errno.EHOSTUNREACH, False),
                      (errno.EHOSTUNREACH, False), (errno.ECONNREFUSED, True), (errno.EACCES, True),
                      (errno.EACCES, True)]


def icmpv6_err_convert(type_: int, code: int) -> tuple[int, bool]:
    """(errno, hard error?) for an ICMPv6 error, as icmpv6_err_convert() maps it."""
    if type_ == icmpv6.ICMPV6_DEST_UNREACH:
        return ICMPV6_ERR_CONVERT[code] if code < len(ICMPV6_ERR_CONVERT) else (errno.EPROTO, True)
    if type_ == icmpv6.ICMPV6_PKT_TOOBIG:
        return errno.EMSGSIZE, False
    if type_ == icmpv6.ICMPV6_PARAMPROB:
        return errno.EPROTO, True
    if type_ == icmpv6.ICMPV6_TIME_EXCEED:
        return errno.EHOSTUNREACH, False
    return errno.EPROTO, False
