"""ICMP echo sockets (net/ipv4/ping.c): socket(AF_INET, SOCK_DGRAM,
IPPROTO_ICMP). The application writes an echo request header and data; the
kernel sets the identifier to the socket's "port" and the checksum. Replies
with that identifier come back as ICMP header plus data."""
import errno


from ..common.actions import Down, Stop
from ..common.uapi import IP_PMTUDISC_DO
from ..wire import icmp, ipv4
from .sock import InetSock, sock_queue_rcv_skb
from .udp import datagram_flow, datagram_route, frag_needed, report_error


def send_target(sock: InetSock, skb) -> tuple[int, int, int]:
    """What ping_v4_sendmsg() checks before it routes: (errno, daddr, 0)."""
    if skb.call.addr:
        daddr = skb.call.addr
    elif sock.connected:
        daddr = sock.raddr
    else:
        return errno.EDESTADDRREQ, 0, 0
    data = skb.data
    if len(data) < icmp.ICMP_HLEN or len(data) > 0xFFFF - ipv4.IPV4_HLEN:
        return errno.EINVAL if len(data) < icmp.ICMP_HLEN else errno.EMSGSIZE, 0, 0
    if data[0] != icmp.ICMP_ECHO or data[1] != 0:
        return errno.EINVAL, 0, 0
    return 0, daddr, 0


def sendmsg(tr, ns, sock: InetSock, skb, now: int) -> tuple[int, list]:
    """ping_v4_sendmsg()."""
    err, daddr, _ = send_target(sock, skb)
    if err:
        return err, []
    data = skb.data
    err, rt = datagram_route(tr, ns, sock, daddr, len(data))
    if err:
        return err, []
    seq = int.from_bytes(data[6:8], "big")
    skb.data = icmp.echo(icmp.ICMP_ECHO, sock.lport, seq, data[icmp.ICMP_HLEN:])
    datagram_flow(skb, sock, rt, sock.laddr or rt.saddr, daddr, ipv4.IPPROTO_ICMP)
    return 0, [Down(skb, "ping_v4_sendmsg")]


def ping_rcv(tr, ns, skb, now: int) -> list:
    """An echo reply: to the ping socket bound to its identifier."""
    th = skb.transport_header
    sock = ns.ping.lookup(skb.daddr, skb.dport, skb.saddr, 0)
    if sock is None:
        return [Stop(skb, "ping_rcv")]
    if sock.rmem_alloc > sock.rcvbuf:
        return [Stop(skb, "ping_rcv")]
    skb.head = th
    return sock_queue_rcv_skb(sock, skb, "ping_rcv")


def ping_err(tr, ns, skb, now: int) -> list:
    """An ICMP error quoting one of our echo requests."""
    e = skb.icmp_error
    q = e.quoted
    if q.icmp_type != icmp.ICMP_ECHO:
        return [Stop(skb, "ping_err")]
    sock = ns.ping.lookup(q.saddr, q.sport, q.daddr, 0)
    out = frag_needed(ns, sock, skb)           # ping_err(): EMSGSIZE, hard only for IP_PMTUDISC_DO
    return out + report_error(sock, skb, e.quoted_payload, "ping_err",
                              hard=sock.pmtudisc == IP_PMTUDISC_DO if out else None)
