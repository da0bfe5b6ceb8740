"""IPv6 routes for packets (net/ipv6/route.c): ip6_route_output() (with the
source ip6_route_get_saddr() chooses) for packets this host sends,
ip6_route_input() for those it receives, the route exceptions Packet Too Big
leaves (rt6_do_update_pmtu(): a smaller path MTU per destination for
net.ipv6.route.mtu_expires seconds), and `ip -6 route get` as iproute2 prints
its answer. The tables themselves are ip6_fib.py's."""
import errno
from typing import NamedTuple

from pktflow.v1.layers_pb2 import RTN_ANYCAST, RTN_BLACKHOLE, RTN_LOCAL, RTN_MULTICAST, RTN_PROHIBIT, RTN_UNICAST

from ..common.actions import Arm
from ..common.pmtu import learned_pmtu6
from ..wire import ipv6
from .fib_rules import TABLE_MAIN, TABLE_NAMES
from .ip6_fib import NAMES6, REJECT, ROUTE_ERRNO
from .route import Fnhe, RouteError

LOOPBACK_IFINDEX = 1
_STRICT = ipv6.IPV6_ADDR_MULTICAST | ipv6.IPV6_ADDR_LINKLOCAL | ipv6.IPV6_ADDR_LOOPBACK


class Rt6(NamedTuple):
    """What a dst (struct rt6_info) tells the output path."""
    type: int
    oif: int
    nexthop: int            # rt6_nexthop(): the gateway, or the destination itself
    saddr: int
    mtu: int
    plen: int = 128         # the route's prefix length
    route: object = None    # the FibRoute it came from (None: a socket's cached dst)


def ip6_route_output(n6, daddr: int, saddr: int = 0, oif: int = 0, strict: bool | None = None) -> Rt6:
    """ip6_dst_lookup_tail(): where a packet this host sends to daddr goes, and from
    which address (the route's preferred source, else ipv6_dev_get_saddr() with the
    route's device). Local and anycast destinations go through lo. Raises RouteError:
    ENETUNREACH (no route), EHOSTUNREACH/EACCES/EINVAL (unreachable, prohibit,
    blackhole), EADDRNOTAVAIL (no source address)."""
    r = n6.fib.lookup(daddr, oif, saddr, strict)
    if r is None:
        raise RouteError(errno.ENETUNREACH)
    if r.type in REJECT:
        raise RouteError(ROUTE_ERRNO[r.type])
    if r.type in (RTN_LOCAL, RTN_ANYCAST):
        dev, nexthop, mtu = LOOPBACK_IFINDEX, daddr, n6.mtu(LOOPBACK_IFINDEX)
    else:
        dev, nexthop = r.dev, r.gw or daddr
        mtu = n6.mtu(dev) if r.type == RTN_MULTICAST else path_mtu6(n6, daddr, n6.mtu(dev))
    if not saddr:
        saddr = r.prefsrc or n6.dev_get_saddr(daddr, r.dev)
        if not saddr:
            raise RouteError(errno.EADDRNOTAVAIL)
    return Rt6(r.type, dev, nexthop, saddr, mtu, r.plen, r)


# ip6_route_input() outcomes: the dst's input function
LOCAL, MULTICAST, FORWARD, DISCARD, PROHIBIT, BLACKHOLE = "local", "multicast", "forward", "discard", "prohibit", \
    "blackhole"


def ip6_route_input(n6, daddr: int, iif: int) -> tuple[str, Rt6 | None]:
    """ip6_route_input(): the route for a received packet, looked up with the in-device
    (which must match for link-local and multicast destinations). Its input function:
    LOCAL (ip6_input: a local or anycast route), MULTICAST (ip6_mc_input), FORWARD
    (ip6_forward, with the route: the device's MTU, as ip6_dst_mtu_maybe_forward()
    takes it), DISCARD (no route or `unreachable`: ip6_pkt_discard), PROHIBIT
    (ip6_pkt_prohibit), BLACKHOLE (dst_discard)."""
    r = n6.fib.lookup(daddr, iif, 0, strict=bool(ipv6.addr_type(daddr) & _STRICT))
    if r is None:
        return DISCARD, None
    if r.type in REJECT:
        return {RTN_PROHIBIT: PROHIBIT, RTN_BLACKHOLE: BLACKHOLE}.get(r.type, DISCARD), None
    if r.type in (RTN_LOCAL, RTN_ANYCAST):
        return LOCAL, None
    if r.type == RTN_MULTICAST or ipv6.is_multicast(r.dst):
        return MULTICAST, None
    return FORWARD, Rt6(RTN_UNICAST, r.dev, r.gw or daddr, 0, n6.mtu(r.dev), r.plen, r)


# -- route exceptions: path MTUs from Packet Too Big
def path_mtu6(n6, daddr: int, dev_mtu: int) -> int:
    e = n6.pmtu.get(daddr)
    return min(dev_mtu, e.mtu) if e else dev_mtu


def ip6_update_pmtu(n6, daddr: int, mtu: int, now: int) -> list:
    """ip6_update_pmtu() -> __ip6_rt_update_pmtu(): Packet Too Big said the path to
    daddr carries only `mtu` bytes: a route exception with it (never above the MTU
    the route has now, never below 1280, which is ignored), for
    net.ipv6.route.mtu_expires seconds. Cached dsts go stale with the generation."""
    try:
        old = ip6_route_output(n6, daddr).mtu
    except RouteError:
        return []
    learned = learned_pmtu6(old, mtu)
    if learned is None:
        return []
    expires = now + n6.ns.sysctl["net.ipv6.route.mtu_expires"] * 1_000_000_000
    n6.pmtu[daddr] = Fnhe(learned, expires, False)
    n6.fib.changed()
    return [Arm(pmtu6_timer(n6.name, daddr), expires)]


def pmtu6_timer(netns: str, daddr: int) -> tuple:
    return ("pmtu6", netns, daddr)


# -- ip -6 route get
def route_get6(n6, daddr: int, now: int, saddr: int = 0, oif: int = 0, ifname=str) -> list[str]:
    """`ip -6 route get ADDR [from ADDR] [oif DEV]` as iproute2 6.1 prints Linux 6.18's
    answer (CONFIG_IPV6_SUBTREES: `from`, :: without one): the route's type unless
    unicast, `from` as given (not checked, as the kernel does not), the device the
    packet leaves by (lo for local ones), the table unless main, the protocol unless
    boot or the answer is a route exception (RTM_F_CLONED), the source the route
    chooses, the metric, a learned path MTU with its expiry. Raises RouteError."""
    rt = ip6_route_output(n6, daddr, saddr, oif)
    r = rt.route
    e = n6.pmtu.get(daddr) if rt.type == RTN_UNICAST else None
    words = [] if r.type == RTN_UNICAST else [NAMES6[r.type]]
    words += [ipv6.ntoa(daddr), "from", ipv6.ntoa(saddr)]
    if r.gw:
        words += ["via", ipv6.ntoa(r.gw)]
    words += ["dev", ifname(rt.oif)]
    if r.table != TABLE_MAIN:
        words += ["table", TABLE_NAMES.get(r.table, str(r.table))]
    if r.proto != "boot" and e is None:          # an exception is RTM_F_CLONED: no protocol shown
        words += ["proto", r.proto]
    words += ["src", ipv6.ntoa(r.prefsrc or n6.dev_get_saddr(daddr, r.dev)), "metric", str(r.metric)]
    if e is not None:
        words += ["expires", f"{max(0, (e.expires - now) // 1_000_000_000)}sec", "mtu", str(e.mtu)]
    return [" ".join(words + ["pref", "medium"])]
