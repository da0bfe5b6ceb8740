"""Socket addresses in the socket layer, both INET families: what a SockAddr
names for a socket of each family (sockaddr_in, sockaddr_in6) and the errno
Linux gives when the two do not fit, and the names the socket reports back
(inet_getname(), inet6_getname(): an AF_INET6 socket's IPv4 addresses
v4-mapped, a link-local address with its interface as sin6_scope_id).

SockAddr.host is text: a dotted quad is a sockaddr_in (16 bytes), IPv6 text a
sockaddr_in6 (28). So an IPv6 address given to an AF_INET socket is
EAFNOSUPPORT (inet_bind(), ip4_datagram_connect(), udp_sendmsg() check
sin_family), and an IPv4 one given to an AF_INET6 socket is the short
sockaddr_in: EINVAL where __inet6_bind(), tcp_v6_connect() and ping6 check
addr_len < SIN6_LEN_RFC2133, while ip6_datagram_connect() and udpv6_sendmsg()
take it as IPv4 (dual-stack), as if v4-mapped."""
import errno

from pktflow.v1 import socket_pb2

from ..common import uapi
from ..wire import ipv4, ipv6
from ..wire.ethernet import ETH_P_IPV6

IPV6_LINKLOCAL_TYPES = ipv6.IPV6_ADDR_LINKLOCAL | ipv6.IPV6_ADDR_LOOPBACK
FLOWINFO_MASK = 0x0FFFFFFF


def needs_scope_id(addr: int) -> bool:
    """__ipv6_addr_needs_scope_id()."""
    t = ipv6.addr_type(addr)
    return bool(t & ipv6.IPV6_ADDR_LINKLOCAL or t & ipv6.IPV6_ADDR_MULTICAST and t & IPV6_LINKLOCAL_TYPES)


def _parse(host: str) -> tuple[int | None, int]:
    """(family of the text, address): AF_INET, AF_INET6, or None for neither; '' is any."""
    if not host:
        return None, 0
    try:
        return uapi.AF_INET, ipv4.aton(host)
    except (ValueError, OSError):
        pass
    try:
        return uapi.AF_INET6, ipv6.aton(host)
    except ValueError:
        return 0, 0


def call_fields(s, sa, op: str) -> tuple[dict, int, str]:
    """The ProtoCall fields naming `sa` for socket `s` in a bind, connect or
    sendto (`op`): ({addr, port} or {addr6, port, flowinfo, scope_id}), or the
    errno refusing it and why."""
    if not 0 <= sa.port <= 0xFFFF:
        return {}, errno.EINVAL, f"port {sa.port} is not 0-65535"
    fam, addr = _parse(sa.host)
    if s.family == uapi.AF_INET:
        if fam == uapi.AF_INET6:
            return {}, errno.EAFNOSUPPORT, f"{sa.host!r} is an IPv6 address, the socket AF_INET"
        if fam == 0:
            return {}, errno.EINVAL, f"{sa.host!r} is not an IPv4 address"
        return {"addr": addr, "port": sa.port}, 0, ""
    if fam == 0:
        return {}, errno.EINVAL, f"{sa.host!r} is not an IPv6 address"
    if fam == uapi.AF_INET:                    # a struct sockaddr_in handed to an AF_INET6 socket
        if op == "bind" or s.stream or s.proto == uapi.IPPROTO_ICMPV6:
            return {}, errno.EINVAL, "a sockaddr_in is shorter than SIN6_LEN_RFC2133"
        if op == "connect" and s.opt(uapi.IPPROTO_IPV6, uapi.IPV6_V6ONLY):
            return {}, errno.EAFNOSUPPORT, "an IPv4 peer for an IPV6_V6ONLY socket"
        addr = ipv6.v4mapped(addr)
        return {"addr6": addr.to_bytes(16, "big"), "port": sa.port}, 0, ""
    if sa.flowinfo & ~FLOWINFO_MASK:
        return {}, errno.EINVAL, f"flowinfo {sa.flowinfo:#x}"
    return {"addr6": addr.to_bytes(16, "big"), "port": sa.port, "flowinfo": sa.flowinfo,
            "scope_id": sa.scope_id}, 0, ""


def ev_addrs(family: int, ev) -> tuple[int, int]:
    """A SockEvent's local and peer address for a socket of `family`."""
    if family == uapi.AF_INET6:
        return int.from_bytes(ev.addr6, "big"), int.from_bytes(ev.peer_addr6, "big")
    return ev.addr, ev.peer_addr


def name(s, addr: int, port: int, scope: int | None = None) -> socket_pb2.SockAddr:
    """inet_getname() / inet6_getname(): sin6_scope_id is the interface of a
    link-local address (ipv6_iface_scope_id()), flowinfo 0."""
    if s.family != uapi.AF_INET6:
        return socket_pb2.SockAddr(host=ipv4.ntoa(addr), port=port)
    scope = s.scope_id if scope is None else scope
    return socket_pb2.SockAddr(host=ipv6.ntoa(addr), port=port, scope_id=scope if needs_scope_id(addr) else 0)


def source(s, skb) -> socket_pb2.SockAddr:
    """recvfrom()'s address: the sender as ip parsed the header; an IPv4 one
    v4-mapped for an AF_INET6 socket, a link-local one scoped to the interface
    it came in on (inet6_iif())."""
    if s.family != uapi.AF_INET6:
        return socket_pb2.SockAddr(host=ipv4.ntoa(skb.saddr))
    if skb.protocol == ETH_P_IPV6:
        return name(s, int.from_bytes(skb.saddr6, "big"), 0, skb.ifindex)
    return socket_pb2.SockAddr(host=ipv6.ntoa(ipv6.v4mapped(skb.saddr)))


def text(s, addr: int) -> str:
    return ipv6.ntoa(addr) if s.family == uapi.AF_INET6 else ipv4.ntoa(addr)


def bound(s, call: dict, is_bind: bool):
    """What a successful bind() or connect() tells the socket layer beyond the
    names: the interface a link-local address was scoped to (sk_bound_dev_if),
    and that binding an IPv6 address other than :: made a UDP or TCP socket
    IPv6-only (__inet6_bind()'s sk_ipv6only = 1)."""
    if s.family != uapi.AF_INET6 or "addr6" not in call:
        return
    addr = int.from_bytes(call["addr6"], "big")
    if needs_scope_id(addr) and call.get("scope_id"):
        s.scope_id = call["scope_id"]
    if is_bind and s.proto != uapi.IPPROTO_ICMPV6 and addr and not ipv6.is_v4mapped(addr):
        s.opts[(uapi.IPPROTO_IPV6, uapi.IPV6_V6ONLY)] = 1
