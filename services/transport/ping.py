"""ICMP echo sockets (net/ipv4/ping.c): socket(AF_INET, SOCK_DGRAM,
IPPROTO_ICMP). The application writes an echo request header and data; the
kernel sets the identifier to the socket's "port" and the checksum. Replies
with that identifier come back as ICMP header plus data."""
import errno

from pktflow.v1.layers_pb2 import RTN_BROADCAST

from ..common.actions import Down, Stop, Up
from ..wire import icmp, ipv4
from .sock import SKB_TRUESIZE_OVERHEAD, InetSock
from .udp import report_error, route_checks


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
    err = tr.autobind(ns, sock)
    if err:
        return err, []
    err, rt = route_checks(tr, ns, sock, daddr)
    if err:
        return err, []
    if len(data) + ipv4.IPV4_HLEN > rt.mtu:
        return errno.EMSGSIZE, []
    seq = int.from_bytes(data[6:8], "big")
    skb.data = icmp.echo(icmp.ICMP_ECHO, sock.lport, seq, data[icmp.ICMP_HLEN:])
    skb.saddr, skb.daddr, skb.ip_proto = sock.laddr or rt.saddr, daddr, ipv4.IPPROTO_ICMP
    skb.ttl, skb.tos, skb.df = sock.ttl, sock.tos, rt.type != RTN_BROADCAST
    skb.dst.CopyFrom(rt.dst)
    skb.ClearField("call")
    return 0, [Down(skb, "ping_v4_sendmsg")]


def ping_rcv(tr, ns, skb, now: int) -> list:
    """An echo reply: to the ping socket bound to its identifier."""
    data, th = skb.data, skb.transport_header
    sock = ns.ping.lookup(skb.daddr, skb.dport, skb.saddr, 0)
    if sock is None:
        return [Stop(skb, "ping_rcv")]
    if sock.rmem_alloc > sock.rcvbuf:
        return [Stop(skb, "ping_rcv")]
    truesize = len(data) + SKB_TRUESIZE_OVERHEAD
    sock.rmem_alloc += truesize
    skb.sk = sock.sk
    skb.head = th
    skb.event.kind = skb.event.DATA_READY
    skb.event.truesize = truesize
    return [Up(skb, "ping_rcv")]


def ping_err(tr, ns, skb, now: int) -> list:
    """An ICMP error quoting one of our echo requests."""
    e = skb.icmp_error
    q = e.quoted
    if q.icmp_type != icmp.ICMP_ECHO:
        return [Stop(skb, "ping_err")]
    sock = ns.ping.lookup(q.saddr, q.sport, q.daddr, 0)
    return report_error(sock, skb, e.quoted_payload, "ping_err")
