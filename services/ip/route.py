"""Route resolution (net/ipv4/route.c): ip_route_output_key() for packets this
host sends, ip_route_input() for packets it receives."""
import errno
import zlib
from typing import NamedTuple

from ..common.actions import Arm
from ..common.pmtu import learned_pmtu
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


def fib_select_path(r, saddr: int, daddr: int) -> tuple[int, int]:
    """(device, gateway) of route r; a multipath route's nexthop chosen by the
    hash-threshold method of fib_select_multipath(): the flow's L3 hash (source
    and destination, fib_multipath_hash_policy 0) against each nexthop's upper
    bound, its share of the total weight of 2**31 (fib_rebalance()). Linux
    hashes with a per-boot random key; this hash is CRC-32, so the spread is
    Linux's, not the very flow-to-path mapping of one Linux boot."""
    if not r.nhs:
        return r.dev, r.gw
    h = zlib.crc32(saddr.to_bytes(4, "big") + daddr.to_bytes(4, "big")) >> 1
    total = sum(w for _, _, w in r.nhs)
    acc = 0
    for gw, dev, w in r.nhs:
        acc += w
        if h <= ((acc << 31) + total // 2) // total - 1:
            return dev, gw
    return r.nhs[-1][1], r.nhs[-1][0]


def ip_route_output(ns, daddr: int, saddr: int = 0, oif: int = 0, mark: int = 0) -> Rt:
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
    if daddr == ipv4.INADDR_BROADCAST and saddr:
        # no oif but a source: out of the device that owns saddr (__ip_dev_find()), else ENETUNREACH
        ifindex = ns.ifaddrs.get(saddr)
        if ifindex is None:
            raise RouteError(errno.ENETUNREACH)
        return Rt(RTN_BROADCAST, ifindex, daddr, saddr, ns.devices[ifindex].mtu)
    r = ns.fib.lookup(daddr, saddr, LOOPBACK_IFINDEX, oif, mark)    # output lookups have iif lo
    if r is None:
        raise RouteError(errno.ENETUNREACH)
    err = r.err or _TYPE_ERR.get(r.type)
    if err:
        raise RouteError(err)
    if r.type == RTN_LOCAL:
        # ip_route_output_key_hash_rcu(): saddr = fib_prefsrc, else daddr (127.0.0.5 -> src 127.0.0.1)
        lo = ns.devices[LOOPBACK_IFINDEX]
        return Rt(RTN_LOCAL, LOOPBACK_IFINDEX, daddr, saddr or r.prefsrc or daddr, lo.mtu)
    dev_, gw = fib_select_path(r, saddr, daddr)
    out_dev = oif or dev_
    dev = ns.devices[out_dev]
    nexthop = gw or daddr
    if not saddr:
        saddr = r.prefsrc if r.prefsrc and r.type == RTN_UNICAST else ns.select_addr(out_dev, nexthop)
    rtype = RTN_BROADCAST if daddr == ipv4.INADDR_BROADCAST or r.type == RTN_BROADCAST else RTN_UNICAST
    if rtype == RTN_BROADCAST:
        nexthop = daddr      # __mkroute_output(): a broadcast route drops fi, so no gateway
        return Rt(rtype, out_dev, nexthop, saddr, dev.mtu)
    return Rt(rtype, out_dev, nexthop, saddr, path_mtu(ns, daddr, dev.mtu))


def path_mtu(ns, daddr: int, dev_mtu: int) -> int:
    """ipv4_mtu(): the device's MTU, or the smaller one a route exception learned."""
    e = ns.pmtu.get(daddr)
    return min(dev_mtu, e.mtu) if e else dev_mtu


class Fnhe:
    """struct fib_nh_exception: a path MTU learned for one destination."""
    __slots__ = ("mtu", "expires", "locked")

    def __init__(self, mtu: int, expires: int, locked: bool):
        self.mtu, self.expires, self.locked = mtu, expires, locked


def ip_rt_update_pmtu(ns, daddr: int, mtu: int, now: int) -> list:
    """__ip_rt_update_pmtu(): ICMP said the path to daddr carries only `mtu`.
    Never raised; below net.ipv4.route.min_pmtu it is clamped there and
    locked; the exception expires after net.ipv4.route.mtu_expires seconds.
    Routes cached from before (transport's, sockets' dsts) go stale with the
    FIB generation."""
    try:
        old = ip_route_output(ns, daddr).mtu
    except RouteError:
        return []
    e = ns.pmtu.get(daddr)
    learned = learned_pmtu(old, mtu, ns.sysctl["net.ipv4.route.min_pmtu"])
    if e is not None and e.locked or learned is None:
        return []
    mtu, lock = learned
    lifetime = ns.sysctl["net.ipv4.route.mtu_expires"] * 1_000_000_000
    if e is not None and e.mtu == mtu and not lock and now < e.expires - lifetime // 2:
        return []
    ns.pmtu[daddr] = Fnhe(mtu, now + lifetime, lock)
    ns.fib.changed()
    return [Arm(pmtu_timer(ns.name, daddr), now + lifetime)]


def pmtu_timer(netns: str, daddr: int) -> tuple:
    return ("pmtu", netns, daddr)


def pmtu_expire(ns, daddr: int, now: int) -> list:
    """The exception's time is up: the device's MTU again."""
    e = ns.pmtu.get(daddr)
    if e is not None and e.expires <= now:
        del ns.pmtu[daddr]
        ns.fib.changed()
    return []


# ip_route_input() outcomes
LOCAL, BROADCAST, FORWARD = "local", "broadcast", "forward"


def ip_route_input(ns, iph, in_ifindex: int, mark: int = 0):
    """ip_route_input_slow(): (LOCAL|BROADCAST, None) or (FORWARD, Rt); raises
    RouteError (with the drop reason in .reason) for martians and no route."""
    src, dst = iph.src, iph.dst
    in_dev = ns.devices.get(in_ifindex)
    on_lo = in_dev is not None and in_dev.loopback
    if ipv4.is_multicast(src) or src == ipv4.INADDR_BROADCAST:
        raise _martian("IP_INVALID_SOURCE")
    if dst == ipv4.INADDR_BROADCAST or (src == 0 and dst == 0):
        # brd_input: fib_validate_source() for any non-zeronet source
        if not on_lo and not ipv4.is_zeronet(src):
            _fib_validate_source(ns, src, in_ifindex, 0)
        return BROADCAST, None
    if ipv4.is_zeronet(src):
        raise _martian("IP_INVALID_SOURCE")
    if ipv4.is_zeronet(dst):
        raise _martian("IP_INVALID_DEST", "destination")
    if not on_lo and (ipv4.is_loopback(dst) or ipv4.is_loopback(src)):
        raise _martian("IP_LOCALNET", "destination" if ipv4.is_loopback(dst) else "source")
    r = ns.fib.lookup(dst, src, in_ifindex, 0, mark)
    if r is not None and r.type in (RTN_LOCAL, RTN_BROADCAST):
        if not on_lo:          # loopback packets keep their output route and skip this in Linux
            _fib_validate_source(ns, src, in_ifindex, 0)
        return (LOCAL if r.type == RTN_LOCAL else BROADCAST), None
    if ipv4.is_multicast(dst):
        raise _martian("IP_INVALID_DEST", "destination")
    if not ns.in_dev_forward(in_ifindex):        # IN_DEV_FORWARD(in_dev): the input device's switch
        raise RouteError(errno.EHOSTUNREACH)
    if r is None:
        raise RouteError(errno.ENETUNREACH)
    err = r.err or _TYPE_ERR.get(r.type)
    if err:
        raise RouteError(err)
    out_dev, gw = fib_select_path(r, src, dst)
    _fib_validate_source(ns, src, in_ifindex, out_dev)     # __mkroute_input()
    dev = ns.devices[out_dev]
    return FORWARD, Rt(RTN_UNICAST, out_dev, gw or dst, 0, path_mtu(ns, dst, dev.mtu))


def _fib_validate_source(ns, src: int, in_ifindex: int, oif: int):
    """fib_validate_source(). With rp_filter off, a packet from outside claiming one
    of our addresses is a martian (IP_LOCAL_SOURCE) unless accept_local, and that is
    all, unless it would leave by the device it came in on (send_redirects is on).
    Otherwise __fib_validate_source(): the route back to src may not be broadcast
    (IP_INVALID_SOURCE), nor local without accept_local; with rp_filter 1 (strict)
    it must leave by the device the packet came in on, with 2 (loose) by any device,
    else the drop is IP_RPFILTER (-EXDEV, counted as IPReversePathFilter)."""
    rpf = ns.in_dev_rpfilter(in_ifindex)
    if not rpf and oif != in_ifindex:
        if src in ns.ifaddrs and not ns.in_dev_accept_local(in_ifindex):
            raise _martian("IP_LOCAL_SOURCE")        # inet_lookup_ifaddr_rcu(net, src) found it
        return
    back = ns.fib.lookup(src, 0, oif or LOOPBACK_IFINDEX)        # the reverse flow: iif is the output device
    if back is None or back.err or back.type not in (RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST):
        # last_resort: no route back (fib_lookup() fails on error routes too)
        if rpf:
            raise _rpfilter(ns)
        return
    if back.type == RTN_BROADCAST:
        raise _martian("IP_INVALID_SOURCE")
    if back.type == RTN_LOCAL and not ns.in_dev_accept_local(in_ifindex):
        raise _martian("IP_LOCAL_SOURCE")
    if back.dev == in_ifindex or in_ifindex in (dev for _, dev, _ in back.nhs) or not rpf:   # fib_info_nh_uses_dev()
        return
    if rpf == 1 or not ns.devices[in_ifindex].addrs:        # (no_addr: last_resort too)
        raise _rpfilter(ns)


def _rpfilter(ns) -> RouteError:
    ns.mib["TcpExtIPReversePathFilter"] += 1     # LINUX_MIB_IPRPFILTER, in ip_rcv_finish_core()
    e = RouteError(errno.EXDEV)
    e.reason, e.martian = "IP_RPFILTER", "source"
    return e


def _martian(reason: str, kind: str = "source") -> RouteError:
    """ip_route_input_slow()'s martian_source and martian_destination."""
    e = RouteError(errno.EINVAL)
    e.reason, e.martian = reason, kind
    return e


def log_martian(ns, kind: str, data: bytes, nh: int, in_ifindex: int, now: int):
    """With log_martians on (conf.all or the arriving device), the kernel's warning,
    rate limited as net_ratelimit(): ip_handle_martian_source() adds the frame's
    link-layer header as print_hex_dump() writes it."""
    if not ns.in_dev_log_martians(in_ifindex) or not ns.printk_ratelimit(now):
        return
    src = ipv4.ntoa(int.from_bytes(data[nh + 12:nh + 16], "big"))
    dst = ipv4.ntoa(int.from_bytes(data[nh + 16:nh + 20], "big"))
    dev = ns.ifname(in_ifindex)
    if kind == "destination":
        ns.dmesg.append((now, f"martian destination {dst} from {src}, dev {dev}"))
        return
    ns.dmesg.append((now, f"martian source {dst} from {src}, on dev {dev}"))     # (daddr first, as the kernel)
    if nh >= 14:
        ns.dmesg.append((now, "ll header: 00000000: " + " ".join(f"{b:02x}" for b in data[nh - 14:nh])))
