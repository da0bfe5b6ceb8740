"""Sockets as the application sees them (struct socket + the sock fields the
socket layer owns): options with Linux's validation and defaults, the receive
queue and the error queue. Pure: the shell does the waiting."""
import errno
from collections import deque

AF_INET, AF_PACKET = 2, 17
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_UDP = 0, 1, 17
SOL_SOCKET = 1
SO_TYPE, SO_ERROR, SO_REUSEADDR, SO_BROADCAST, SO_SNDBUF, SO_RCVBUF = 3, 4, 2, 6, 7, 8
SO_PRIORITY, SO_PROTOCOL, SO_DOMAIN, SO_MARK = 12, 38, 39, 36
IP_TOS, IP_TTL, IP_RECVERR, IP_RECVTTL, IP_RECVTOS = 1, 2, 11, 12, 13
SOCK_MIN_RCVBUF = 2048 + 256          # 2048 + sizeof(struct sk_buff), rounded as on x86-64
SOCK_MIN_SNDBUF = 2 * SOCK_MIN_RCVBUF
SKB_TRUESIZE_OVERHEAD = 576

# Options the transport layer must hear about.
TRANSPORT_OPTS = {(SOL_SOCKET, SO_REUSEADDR), (SOL_SOCKET, SO_BROADCAST), (SOL_SOCKET, SO_RCVBUF),
                  (IPPROTO_IP, IP_TTL), (IPPROTO_IP, IP_TOS), (IPPROTO_IP, IP_RECVERR)}


class Sock:
    def __init__(self, fd: int, netns: str, family: int, type_: int, proto: int, sysctl: dict):
        self.fd, self.netns, self.family, self.type, self.proto = fd, netns, family, type_, proto
        self.laddr = self.lport = self.raddr = self.rport = 0
        self.bound = self.connected = False
        self.ifindex = 0                  # packet sockets: the bound device (0: any)
        self.packet_proto = 0             # packet sockets: the ethertype received (host order)
        self.sysctl = sysctl
        self.opts = {(SOL_SOCKET, SO_RCVBUF): sysctl["net.core.rmem_default"],
                     (SOL_SOCKET, SO_SNDBUF): sysctl["net.core.wmem_default"]}
        self.rcvq: deque = deque()        # (skb, queued at ns)
        self.rmem = 0
        self.errq: deque = deque()
        self.sk_err = 0
        self.drops = 0

    def opt(self, level: int, name: int, default: int = 0) -> int:
        return self.opts.get((level, name), default)

    def setsockopt(self, level: int, name: int, value: int) -> tuple[int, int]:
        """sock_setsockopt()/ip_setsockopt(): (errno, the value stored)."""
        norm = _SETTABLE.get((level, name))
        if norm is None or (level == IPPROTO_IP and self.family != AF_INET):
            return errno.ENOPROTOOPT, 0
        value = norm(self, value)
        if value is None:
            return errno.EINVAL, 0
        self.opts[(level, name)] = value
        return 0, value

    def getsockopt(self, level: int, name: int) -> tuple[int, int]:
        if level == SOL_SOCKET:
            if name == SO_TYPE:
                return 0, self.type
            if name == SO_DOMAIN:
                return 0, self.family
            if name == SO_PROTOCOL:
                return 0, self.proto
            if name == SO_ERROR:
                return 0, self.take_error()
        if (level, name) not in _SETTABLE or (level == IPPROTO_IP and self.family != AF_INET):
            return errno.ENOPROTOOPT, 0
        if (level, name) == (IPPROTO_IP, IP_TTL):
            ttl = self.opt(level, name, -1)
            return 0, self.sysctl["net.ipv4.ip_default_ttl"] if ttl == -1 else ttl
        return 0, self.opt(level, name)

    def take_error(self) -> int:
        """sock_error(): the pending error, cleared by reading it."""
        err, self.sk_err = self.sk_err, 0
        return err

    def queue(self, skb, now_ns: int) -> bool:
        """Packet sockets account their own receive buffer; INET sockets were
        charged by transport already. False when the skb must be dropped."""
        if self.family == AF_PACKET:
            if self.rmem >= self.opt(SOL_SOCKET, SO_RCVBUF):
                self.drops += 1
                return False
            self.rmem += len(skb.data) + SKB_TRUESIZE_OVERHEAD
        self.rcvq.append((skb, now_ns))
        return True

    def dequeue(self, limit: int) -> tuple[list, int]:
        """Up to `limit` queued skbs and the receive-buffer bytes they free."""
        out, freed = [], 0
        while self.rcvq and len(out) < limit:
            skb, t = self.rcvq.popleft()
            size = skb.event.count if self.family == AF_INET else len(skb.data) + SKB_TRUESIZE_OVERHEAD
            freed += size
            out.append((skb, t))
        if self.family == AF_PACKET:
            self.rmem = max(0, self.rmem - freed)
        return out, freed


def _bool(sock, v):
    return int(v != 0)


def _u32(sock, v):
    return v & 0xFFFFFFFF


def _rcvbuf(sock, v):
    # the kernel doubles the request (bookkeeping overhead) within rmem_max
    return max(min(v, sock.sysctl["net.core.rmem_max"]) * 2, SOCK_MIN_RCVBUF)


def _sndbuf(sock, v):
    return max(min(v, sock.sysctl["net.core.wmem_max"]) * 2, SOCK_MIN_SNDBUF)


def _ttl(sock, v):
    return v if v == -1 or 1 <= v <= 255 else None


def _tos(sock, v):
    return v & 0xFF


SO_DEBUG, SO_DONTROUTE, SO_KEEPALIVE, SO_OOBINLINE, SO_REUSEPORT, SO_RCVLOWAT, SO_TIMESTAMP = 1, 5, 9, 10, 15, 18, 29
_SETTABLE = {
    (SOL_SOCKET, SO_REUSEADDR): _bool, (SOL_SOCKET, SO_BROADCAST): _bool, (SOL_SOCKET, SO_RCVBUF): _rcvbuf,
    (SOL_SOCKET, SO_SNDBUF): _sndbuf, (SOL_SOCKET, SO_MARK): _u32, (SOL_SOCKET, SO_PRIORITY): _u32,
    (SOL_SOCKET, SO_DEBUG): _bool, (SOL_SOCKET, SO_DONTROUTE): _bool, (SOL_SOCKET, SO_KEEPALIVE): _bool,
    (SOL_SOCKET, SO_OOBINLINE): _bool, (SOL_SOCKET, SO_REUSEPORT): _bool, (SOL_SOCKET, SO_TIMESTAMP): _bool,
    (SOL_SOCKET, SO_RCVLOWAT): lambda s, v: max(v, 1),
    (IPPROTO_IP, IP_TTL): _ttl, (IPPROTO_IP, IP_TOS): _tos, (IPPROTO_IP, IP_RECVERR): _bool,
    (IPPROTO_IP, IP_RECVTTL): _bool, (IPPROTO_IP, IP_RECVTOS): _bool,
}
