"""Sockets as the application sees them (struct socket + the sock fields the
socket layer owns): options with Linux's validation and defaults, the receive
queue and the error queue. Pure: the shell does the waiting."""
import errno
from collections import deque

from ..common import bpf, uapi
from ..common.sysctl import CONGESTION_CONTROLS
from ..common.uapi import (AF_INET, AF_INET6, AF_PACKET, IP_MTU, IP_MTU_DISCOVER, IP_PMTUDISC_WANT,
                           IP_RECVERR, IP_RECVTOS, IP_RECVTTL, IP_TOS, IP_TTL, IPPROTO_IP, IPPROTO_IPV6, IPV6_MTU,
                           IPV6_MTU_DISCOVER, IPV6_RECVERR, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS, IPV6_TCLASS,
                           IPV6_UNICAST_HOPS, IPV6_V6ONLY,
                           IPPROTO_TCP, SO_BROADCAST, SO_DEBUG, SO_DOMAIN, SO_DONTROUTE, SO_ERROR, SO_KEEPALIVE,
                           SO_ATTACH_FILTER, SO_DETACH_FILTER, SO_LINGER, SO_MARK, SO_MAX_PACING_RATE, SO_OOBINLINE,
                           SO_PRIORITY, SO_PROTOCOL, SO_RCVBUF,
                           SO_RCVLOWAT, SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF, SO_TIMESTAMP, SO_TYPE, SOCK_STREAM,
                           SOL_SOCKET, TCP_CONGESTION, TCP_INFO, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_MAXSEG,
                           TCP_NODELAY, TCP_SYNCNT)

INET = (AF_INET, AF_INET6)
SOCK_MIN_RCVBUF = 2048 + 256          # 2048 + sizeof(struct sk_buff), rounded as on x86-64
SOCK_MIN_SNDBUF = 2 * SOCK_MIN_RCVBUF
SKB_TRUESIZE_OVERHEAD = 576

# Options the transport layer must hear about.
TRANSPORT_OPTS = {(SOL_SOCKET, SO_REUSEADDR), (SOL_SOCKET, SO_BROADCAST), (SOL_SOCKET, SO_RCVBUF),
                  (SOL_SOCKET, SO_SNDBUF), (SOL_SOCKET, SO_KEEPALIVE), (SOL_SOCKET, SO_LINGER),
                  (SOL_SOCKET, SO_MAX_PACING_RATE),
                  (IPPROTO_IP, IP_TTL), (IPPROTO_IP, IP_TOS), (IPPROTO_IP, IP_RECVERR),
                  (IPPROTO_IP, IP_MTU_DISCOVER)} | {
                  (IPPROTO_TCP, o) for o in (TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT,
                                             TCP_SYNCNT, TCP_CONGESTION)} | {
                  (IPPROTO_IPV6, o) for o in (IPV6_V6ONLY, IPV6_UNICAST_HOPS, IPV6_TCLASS, IPV6_RECVERR,
                                              IPV6_MTU_DISCOVER)}

# Options whose value is the connection's state, which transport owns: getsockopt asks it.
TRANSPORT_GETOPTS = {(IPPROTO_TCP, TCP_INFO), (IPPROTO_TCP, TCP_CONGESTION), (IPPROTO_IP, IP_MTU),
                     (IPPROTO_IPV6, IPV6_MTU)}


class Sock:
    def __init__(self, fd: int, netns: str, family: int, type_: int, proto: int, sysctl: dict):
        self.fd, self.netns, self.family, self.type, self.proto = fd, netns, family, type_, proto
        self.owner = ""                   # the client session whose file table holds it ("": none)
        self.laddr = self.lport = self.raddr = self.rport = 0     # AF_INET6: 128 bits, IPv4 v4-mapped
        self.scope_id = 0                 # AF_INET6: the interface of a link-local address (sk_bound_dev_if)
        self.bound = self.connected = False
        self.ifindex = 0                  # packet sockets: the bound device (0: any)
        self.packet_proto = 0             # packet sockets: the ethertype received (host order)
        self.sysctl = sysctl
        self.opts = {(SOL_SOCKET, SO_RCVBUF): sysctl["net.core.rmem_default"],
                     (SOL_SOCKET, SO_SNDBUF): sysctl["net.core.wmem_default"],
                     (SOL_SOCKET, SO_MAX_PACING_RATE): 0xFFFFFFFF}       # ~0U: no limit
        self.rcvq: deque = deque()        # (skb, queued at ns)
        self.rmem = 0
        self.errq: deque = deque()
        self.sk_err = 0
        self.drops = 0
        # stream sockets
        self.stream = type_ == SOCK_STREAM
        self.listening = self.connecting = self.eof = self.shut_rd = self.shut_wr = False
        self.nospace = False              # SOCK_NOSPACE: a send found the buffer full; WRITE_SPACE clears it
        self.closed = False               # the connection reached TCP_CLOSE (a reset, or both sides' FINs)
        self.rbytes = 0                   # bytes in rcvq not yet read (rcvq holds (skb, t); roff into the first)
        self.roff = 0
        self.accept_q: deque = deque()
        self.opts[(SOL_SOCKET, SO_LINGER)] = b"\0" * 8
        if family in INET:                # net.ipv4.ip_no_pmtu_disc = 0: path MTU discovery wanted
            self.opts[(IPPROTO_IP, IP_MTU_DISCOVER)] = IP_PMTUDISC_WANT
        if family == AF_INET6:            # inet6_create(): IPV6_PMTUDISC_WANT, hop limit -1, bindv6only
            self.opts[(IPPROTO_IPV6, IPV6_MTU_DISCOVER)] = IP_PMTUDISC_WANT
            self.opts[(IPPROTO_IPV6, IPV6_UNICAST_HOPS)] = -1
            self.opts[(IPPROTO_IPV6, IPV6_V6ONLY)] = int(bool(sysctl.get("net.ipv6.bindv6only", 0)))
        if self.stream:
            self.opts[(IPPROTO_TCP, TCP_CONGESTION)] = sysctl["net.ipv4.tcp_congestion_control"].encode()
    def opt(self, level: int, name: int, default: int = 0) -> int:
        return self.opts.get((level, name), default)

    def setsockopt(self, level: int, name: int, value) -> tuple[int, object]:
        """sock_setsockopt()/ip_setsockopt()/do_tcp_setsockopt(): (errno, the
        value stored). `value` is an int, or bytes for SO_LINGER and TCP_CONGESTION."""
        norm = _SETTABLE.get((level, name))
        if norm is None or not self.has_level(level):
            return errno.ENOPROTOOPT, 0
        try:
            value = norm(self, value)
        except OSError as e:
            return e.errno, 0
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
        if (level, name) not in _SETTABLE or not self.has_level(level):
            return errno.ENOPROTOOPT, 0
        if (level, name) == (IPPROTO_TCP, TCP_MAXSEG):
            return 0, self.opt(level, name) or self.mss
        if (level, name) == (IPPROTO_IP, IP_TTL):
            ttl = self.opt(level, name, -1)
            return 0, self.sysctl["net.ipv4.ip_default_ttl"] if ttl == -1 else ttl
        if (level, name) == (IPPROTO_IPV6, IPV6_UNICAST_HOPS):
            hops = self.opt(level, name, -1)         # no route cached here: net.ipv6.conf.all.hop_limit
            return 0, self.sysctl.get("net.ipv6.conf.all.hop_limit", 64) if hops == -1 else hops
        return 0, self.opt(level, name)

    def has_level(self, level: int) -> bool:
        """ip_setsockopt() serves AF_INET sockets and the IPv4 side of AF_INET6 ones
        (ipv6_setsockopt() hands SOL_IP to it); SOL_IPV6 is AF_INET6's only."""
        if level == IPPROTO_IP:
            return self.family in INET
        if level == IPPROTO_IPV6:
            return self.family == AF_INET6
        return level != IPPROTO_TCP or self.stream

    def poll(self) -> int:
        """sock_poll(): tcp_poll() for a stream socket, datagram_poll() for the rest."""
        err = uapi.POLLERR if self.sk_err or self.errq else 0
        if not self.stream:             # sock_writeable(): transport owns the send buffer and never fills it
            return err | uapi.POLLOUT | uapi.POLLWRNORM | uapi.POLLWRBAND | \
                (uapi.POLLIN | uapi.POLLRDNORM if self.rcvq else 0)
        if self.listening:              # inet_csk_listen_poll()
            return uapi.POLLIN | uapi.POLLRDNORM if self.accept_q else 0
        mask = err
        if (self.eof or self.shut_rd) and self.shut_wr or self.closed or not (self.connected or self.connecting):
            mask |= uapi.POLLHUP        # SHUTDOWN_MASK, or TCP_CLOSE
        if self.eof or self.shut_rd:    # RCV_SHUTDOWN: a FIN came, or shutdown(SHUT_RD)
            mask |= uapi.POLLIN | uapi.POLLRDNORM | uapi.POLLRDHUP
        if not self.connecting:         # not SYN_SENT
            if self.rbytes:
                mask |= uapi.POLLIN | uapi.POLLRDNORM
            if self.shut_wr or not self.nospace:
                mask |= uapi.POLLOUT | uapi.POLLWRNORM
        return mask

    def take_error(self) -> int:
        """sock_error(): the pending error, cleared by reading it."""
        err, self.sk_err = self.sk_err, 0
        return err

    mss = 536                             # TCP_MAXSEG before a connection says otherwise

    def read_stream(self, n: int, peek: bool = False) -> tuple[bytes, int]:
        """tcp_recvmsg(): up to n bytes from the byte stream; and how many were consumed."""
        parts, got, off = [], 0, self.roff
        for skb, _t in self.rcvq:
            avail = len(skb.data) - skb.head - off
            take = min(avail, n - got)
            parts.append(skb.data[skb.head + off:skb.head + off + take])
            got += take
            off = 0
            if got >= n:
                break
        if not peek:
            left = got
            while left:
                skb, _t = self.rcvq[0]
                avail = len(skb.data) - skb.head - self.roff
                if avail <= left:
                    self.rcvq.popleft()
                    self.roff = 0
                    left -= avail
                else:
                    self.roff += left
                    left = 0
            self.rbytes -= got
        return b"".join(parts), (0 if peek else got)

    def queue(self, skb, now_ns: int) -> bool:
        """Packet sockets account their own receive buffer; INET sockets were
        charged by transport already. False when the skb must be dropped."""
        if self.family == AF_PACKET:
            if self.rmem >= self.opt(SOL_SOCKET, SO_RCVBUF):
                self.drops += 1
                return False
            self.rmem += len(skb.data) + SKB_TRUESIZE_OVERHEAD
        self.rcvq.append((skb, now_ns))
        if self.stream:
            self.rbytes += len(skb.data) - skb.head
        return True

    def dequeue(self, limit: int) -> tuple[list, int]:
        """Up to `limit` queued skbs and the receive-buffer bytes they free."""
        out, freed = [], 0
        while self.rcvq and len(out) < limit:
            skb, t = self.rcvq.popleft()
            size = skb.event.truesize if self.family in INET else len(skb.data) + SKB_TRUESIZE_OVERHEAD
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


def _range(lo: int, hi: int):
    return lambda sock, v: v if lo <= v <= hi else None


def _linger(sock, v):
    """struct linger {int l_onoff; int l_linger;}: 8 bytes, or EINVAL."""
    if not isinstance(v, bytes) or len(v) < 8:
        return None
    return bytes(v[:8])


def _attach_filter(sock, v):
    """SO_ATTACH_FILTER: a struct sock_filter array, checked as sk_attach_filter()
    checks it (EINVAL if not). Packet sockets run it where their frames are
    tapped; pktflow has no socket filter for other sockets (EOPNOTSUPP)."""
    if sock.family != AF_PACKET:
        raise OSError(errno.EOPNOTSUPP, "socket filters are for packet sockets here")
    try:
        bpf.from_sock_filter(bytes(v))
    except bpf.FilterError:
        return None
    return bytes(v)


def _detach_filter(sock, v):
    """SO_DETACH_FILTER: ENOENT when none is attached, as sk_detach_filter()."""
    if sock.opts.pop((SOL_SOCKET, SO_ATTACH_FILTER), None) is None:
        raise OSError(errno.ENOENT, "no filter attached")
    return 0


def _congestion(sock, v):
    name = v.split(b"\0")[0] if isinstance(v, bytes) else None
    if name is None:
        return None
    if name.decode(errors="replace") not in CONGESTION_CONTROLS:
        raise OSError(errno.ENOENT, "no such congestion control")
    return name


def _tos(sock, v):
    return v & 0xFF


def _v6only(sock, v):
    """IPV6_V6ONLY: only before the socket has a port (inet_num), else EINVAL."""
    return None if sock.lport else int(v != 0)


def _tclass(sock, v):
    """IPV6_TCLASS: -1 is the default, 0 (RFC 3542 6.5)."""
    return None if not -1 <= v <= 255 else max(v, 0)


_SETTABLE = {
    (SOL_SOCKET, SO_REUSEADDR): _bool, (SOL_SOCKET, SO_BROADCAST): _bool, (SOL_SOCKET, SO_RCVBUF): _rcvbuf,
    (SOL_SOCKET, SO_SNDBUF): _sndbuf, (SOL_SOCKET, SO_MARK): _u32, (SOL_SOCKET, SO_PRIORITY): _u32,
    (SOL_SOCKET, SO_DEBUG): _bool, (SOL_SOCKET, SO_DONTROUTE): _bool, (SOL_SOCKET, SO_KEEPALIVE): _bool,
    (SOL_SOCKET, SO_OOBINLINE): _bool, (SOL_SOCKET, SO_REUSEPORT): _bool, (SOL_SOCKET, SO_TIMESTAMP): _bool,
    (SOL_SOCKET, SO_RCVLOWAT): lambda s, v: max(v, 1), (SOL_SOCKET, SO_MAX_PACING_RATE): _u32,
    (IPPROTO_IP, IP_TTL): _ttl, (IPPROTO_IP, IP_TOS): _tos, (IPPROTO_IP, IP_RECVERR): _bool,
    (IPPROTO_IP, IP_RECVTTL): _bool, (IPPROTO_IP, IP_RECVTOS): _bool, (IPPROTO_IP, IP_MTU_DISCOVER): _range(0, 5),
    (SOL_SOCKET, SO_LINGER): _linger,
    (IPPROTO_TCP, TCP_NODELAY): _bool, (IPPROTO_TCP, TCP_MAXSEG): _range(88, 32767),
    (IPPROTO_TCP, TCP_KEEPIDLE): _range(1, 32767), (IPPROTO_TCP, TCP_KEEPINTVL): _range(1, 32767),
    (IPPROTO_TCP, TCP_KEEPCNT): _range(1, 127), (IPPROTO_TCP, TCP_SYNCNT): _range(1, 127),
    (IPPROTO_TCP, TCP_CONGESTION): _congestion,
    (SOL_SOCKET, SO_ATTACH_FILTER): _attach_filter, (SOL_SOCKET, SO_DETACH_FILTER): _detach_filter,
    # do_ipv6_setsockopt()'s ranges
    (IPPROTO_IPV6, IPV6_V6ONLY): _v6only, (IPPROTO_IPV6, IPV6_UNICAST_HOPS): _range(-1, 255),
    (IPPROTO_IPV6, IPV6_TCLASS): _tclass, (IPPROTO_IPV6, IPV6_RECVERR): _bool,
    (IPPROTO_IPV6, IPV6_MTU_DISCOVER): _range(0, 5), (IPPROTO_IPV6, IPV6_RECVHOPLIMIT): _bool,
    (IPPROTO_IPV6, IPV6_RECVTCLASS): _bool,
}
_BYTES_OPTS = {(SOL_SOCKET, SO_LINGER), (IPPROTO_TCP, TCP_CONGESTION), (SOL_SOCKET, SO_ATTACH_FILTER)}


def is_bytes_opt(level: int, name: int) -> bool:
    return (level, name) in _BYTES_OPTS
