"""The numbers of Linux's socket API, once (include/uapi/linux/socket.h, in.h,
tcp.h, errqueue.h and asm-generic/socket.h, as on x86-64): the SDK, the socket
room and transport all speak them."""
import struct

AF_UNSPEC, AF_INET, AF_INET6, AF_PACKET = 0, 2, 10, 17
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_IPV6, IPPROTO_ICMPV6 = 41, 58

SOL_SOCKET = 1
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_PRIORITY, SO_LINGER, SO_REUSEPORT = 7, 8, 9, 10, 12, 13, 15
SO_RCVLOWAT, SO_TIMESTAMP, SO_MARK, SO_PROTOCOL, SO_DOMAIN, SO_MAX_PACING_RATE = 18, 29, 36, 38, 39, 47
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27

IP_TOS, IP_TTL, IP_MTU_DISCOVER, IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_MTU = 1, 2, 10, 11, 12, 13, 14
IP_PMTUDISC_DONT, IP_PMTUDISC_WANT, IP_PMTUDISC_DO, IP_PMTUDISC_PROBE = 0, 1, 2, 3
IP_PMTUDISC_INTERFACE, IP_PMTUDISC_OMIT = 4, 5

# include/uapi/linux/in6.h (SOL_IPV6 = IPPROTO_IPV6); IPV6_PMTUDISC_* have IP_PMTUDISC_*'s values
IPV6_UNICAST_HOPS, IPV6_MTU_DISCOVER, IPV6_MTU, IPV6_RECVERR, IPV6_V6ONLY = 16, 23, 24, 25, 26
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT, IPV6_RECVTCLASS, IPV6_TCLASS = 51, 52, 66, 67
IPV6_PMTUDISC_DONT, IPV6_PMTUDISC_WANT, IPV6_PMTUDISC_DO, IPV6_PMTUDISC_PROBE = 0, 1, 2, 3
IPV6_PMTUDISC_INTERFACE, IPV6_PMTUDISC_OMIT = 4, 5

TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_SYNCNT = 1, 2, 4, 5, 6, 7
TCP_INFO, TCP_CONGESTION = 11, 13

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2

# poll(2)'s events (include/uapi/asm-generic/poll.h)
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x100, 0x200, 0x2000

# AF_XDP (include/linux/socket.h, include/uapi/linux/if_xdp.h)
AF_XDP, SOL_XDP = 44, 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_TX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING = 1, 2, 3, 4, 5
XDP_UMEM_COMPLETION_RING, XDP_STATISTICS, XDP_OPTIONS = 6, 7, 8
XDP_SHARED_UMEM, XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP = 1, 2, 4, 8
XDP_OPTIONS_ZEROCOPY = 1
# struct xdp_statistics: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full,
# rx_fill_ring_empty_descs, tx_ring_empty_descs
XDP_STATISTICS_STRUCT = struct.Struct("=6Q")
MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, MSG_WAITALL, MSG_ERRQUEUE, MSG_MORE = 0x2, 0x20, 0x40, 0x100, 0x2000, 0x8000
SOMAXCONN = 4096
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3

# struct linger {int l_onoff; int l_linger;}
LINGER = struct.Struct("=ii")


def linger_seconds(optval: bytes) -> int | None:
    """SO_LINGER's struct linger as sk_setsockopt() reads it: None when off,
    else the seconds, l_linger taken as unsigned (so -1 lingers "forever")."""
    onoff, secs = LINGER.unpack(optval[:LINGER.size])
    return secs & 0xFFFFFFFF if onoff else None
