"""Route resolution (net/ipv4/route.c): ip_route_output_key() for packets this
host sends, ip_route_input() for packets it receives."""
import errno
from typing import NamedTuple

from ..wire import ipv4
from .fib import RTN_BLACKHOLE, RTN_BROADCAST, RTN_LOCAL, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE

LOOPBACK_IFINDEX = 1
# fib lookup result type -> the errno a route of that type gives
_TYPE_ERR = {RTN_UNREACHABLE: errno.EHOSTUNREACH, RTN_PROHIBIT: errno.EACCES, RTN_BLACKHOLE: errno.EINVAL}


class Rt(NamedTuple):
    type: int
    oif: int
    nexthop: int
    saddr: int
    mtu: int


class RouteError(Exception):
    def __init__(self, err: int):
        super().__init__(errno.errorcode.get(err, err))
        self.errno = err


def ip_route_output(ns, daddr: int, saddr: int = 0, oif: int = 0) -> Rt:
    """ip_route_output_key(): where a locally generated packet to daddr goes.
    Raises RouteError with ENETUNREACH, EHOSTUNREACH, EACCES or EINVAL."""
    if ipv4.is_multicast(daddr) or ipv4.is_zeronet(daddr) and daddr:
        raise RouteError(errno.EINVAL)
    if daddr == 0:                       # 0.0.0.0 means this host
        daddr = saddr or ipv4.aton("127.0.0.1")
    if daddr == ipv4.INADDR_BROADCAST and oif:
        dev = ns.devices.get(oif)
        if dev is None:
            raise RouteError(errno.ENODEV)
        return Rt(RTN_BROADCAST, oif, daddr, saddr or ns.select_addr(oif, daddr), dev.mtu)
    r = ns.fib.lookup(daddr)
    if r is None:
        raise RouteError(errno.ENETUNREACH)
    err = _TYPE_ERR.get(r.type)
    if err:
        raise RouteError(err)
    if r.type == RTN_LOCAL:
        lo = ns.devices[LOOPBACK_IFINDEX]
        return Rt(RTN_LOCAL, LOOPBACK_IFINDEX, daddr, saddr or daddr, lo.mtu)
    out_dev = oif or r.dev
    dev = ns.devices[out_dev]
    nexthop = r.gw or daddr
    if not saddr:
        saddr = r.prefsrc if r.prefsrc and r.type == RTN_UNICAST else ns.select_addr(out_dev, nexthop)
    rtype = RTN_BROADCAST if daddr == ipv4.INADDR_BROADCAST or r.type == RTN_BROADCAST else RTN_UNICAST
    return Rt(rtype, out_dev, nexthop, saddr, dev.mtu)


# ip_route_input() outcomes
LOCAL, BROADCAST, FORWARD = "local", "broadcast", "forward"


def ip_route_input(ns, iph, in_ifindex: int):
    """ip_route_input_slow(): (LOCAL|BROADCAST, None) or (FORWARD, Rt); raises
    RouteError (with the drop reason in .reason) for martians and no route."""
    src, dst = iph.src, iph.dst
    in_dev = ns.devices.get(in_ifindex)
    on_lo = in_dev is not None and in_dev.loopback
    if ipv4.is_multicast(src) or src == ipv4.INADDR_BROADCAST:
        raise _martian("IP_INVALID_SOURCE")
    if dst == ipv4.INADDR_BROADCAST or (src == 0 and dst == 0):
        return BROADCAST, None
    if ipv4.is_zeronet(src):
        raise _martian("IP_INVALID_SOURCE")
    if ipv4.is_zeronet(dst):
        raise _martian("IP_INVALID_DEST")
    if not on_lo and (ipv4.is_loopback(dst) or ipv4.is_loopback(src)):
        raise _martian("IP_LOCALNET")
    r = ns.fib.lookup(dst)
    if r is not None and r.type in (RTN_LOCAL, RTN_BROADCAST):
        # fib_validate_source(): a packet from outside claiming one of our addresses
        if not on_lo and ns.fib.is_local(src) and not ns.sysctl.get("net.ipv4.conf.all.accept_local"):
            raise _martian("IP_LOCAL_SOURCE")
        return (LOCAL if r.type == RTN_LOCAL else BROADCAST), None
    if ipv4.is_multicast(dst):
        raise _martian("IP_INVALID_DEST")
    if not ns.forwarding:
        raise RouteError(errno.EHOSTUNREACH)
    if r is None:
        raise RouteError(errno.ENETUNREACH)
    err = _TYPE_ERR.get(r.type)
    if err:
        raise RouteError(err)
    dev = ns.devices[r.dev]
    return FORWARD, Rt(RTN_UNICAST, r.dev, r.gw or dst, 0, dev.mtu)


def _martian(reason: str) -> RouteError:
    e = RouteError(errno.EINVAL)
    e.reason = reason
    return e
