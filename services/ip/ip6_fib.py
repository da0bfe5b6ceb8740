"""The IPv6 FIB (net/ipv6/ip6_fib.c, route.c, and the routes addrconf.c makes):
tables of routes with longest-prefix match, then the lowest metric.

As in Linux (captured with iproute2 6.1 on Linux 6.18 in namespaces): a device
with IPv6 gets `multicast ff00::/8` (table local, metric 256); an address gets
its prefix route in main (`proto kernel metric 256`, the link-local's is
`fe80::/64`) and, once DAD is done, `local ADDR` (table local, metric 0); on a
device that forwards, each prefix shorter than /127 also gets the subnet-router
anycast route `anycast PREFIX::` (addrconf_join_anycast()). Routes a user adds
are metric 1024 unless given one (IP6_RT_PRIO_USER; 0 means 1024). A lookup
tries table local, then main (the two default rules of fib6_rules.c), and
within a table takes the longest prefix, then the lowest metric, preferring
the device asked for (rt6_select()); when a device must match (link-local and
multicast destinations, bound sockets: RT6_LOOKUP_F_IFACE) and none at that
prefix does, shorter prefixes are tried (fib6_backtrack()).

Addresses are ints, as in wire/ipv6.py; routes are fib.FibRoute, the IPv4
FIB's record, with the same tables (fib.Table, 128 bits wide)."""
import errno
from dataclasses import replace

from pktflow.v1.layers_pb2 import RTN_ANYCAST, RTN_MULTICAST

from ..wire import ipv6
from .fib import (RTN_BLACKHOLE, RTN_LOCAL, RTN_NAMES, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE, TYPE_BY_NAME,
                  FibRoute, Table)
from .fib_rules import TABLE_LOCAL, TABLE_MAIN, TABLE_NAMES

IP6_RT_PRIO_USER = 1024            # include/uapi/linux/ipv6_route.h: routes a user adds
IP6_RT_PRIO_ADDRCONF = 256         # prefix routes of addresses, fe80::/64, ff00::/8
LOOPBACK_IFINDEX = 1
MULTICAST_PREFIX = ipv6.aton("ff00::")
REJECT = (RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT)
# ip6_rt_type_to_error(): what a lookup that ends on a route of this type gives; no route: ENETUNREACH
ROUTE_ERRNO = {RTN_BLACKHOLE: errno.EINVAL, RTN_UNREACHABLE: errno.EHOSTUNREACH, RTN_PROHIBIT: errno.EACCES}
NAMES6 = RTN_NAMES | {RTN_ANYCAST: "anycast", RTN_MULTICAST: "multicast"}

# IFA_F_* (include/uapi/linux/if_addr.h) and the words `ip -6 addr` prints for them, in its order
IFA_F_NODAD, IFA_F_OPTIMISTIC, IFA_F_DADFAILED, IFA_F_TENTATIVE, IFA_F_PERMANENT = 0x02, 0x04, 0x08, 0x40, 0x80
IFA_F_NOPREFIXROUTE = 0x200
_FLAG_WORDS = ((IFA_F_NODAD, "nodad"), (IFA_F_OPTIMISTIC, "optimistic"), (IFA_F_DADFAILED, "dadfailed"),
               (IFA_F_TENTATIVE, "tentative"), (IFA_F_NOPREFIXROUTE, "noprefixroute"))


class Fib6Error(Exception):
    """The kernel refused a route: `.errno`, and str() the line `ip -6 route` prints."""

    def __init__(self, err: int, message: str):
        super().__init__(message)
        self.errno = err


def _extack(text: str) -> Fib6Error:
    return Fib6Error(errno.EINVAL, f"Error: {text}.")


class Table6(Table):
    def __init__(self):
        super().__init__(128)

    def routes(self):
        """In `ip -6 route` order: fib6_walk() visits the radix tree's nodes in post-order,
        0 bits before 1 bits, a prefix after the longer ones inside it, so by the last
        address each prefix covers, then longer first; one prefix's routes by metric,
        then in the order they came."""
        keys = sorted(((dst, plen) for plen, by_dst in self.by_plen.items() for dst, b in by_dst.items() if b),
                      key=lambda k: (k[0] | ((1 << (128 - k[1])) - 1), -k[1]))
        for dst, plen in keys:
            yield from self.by_plen[plen][dst]


def scope_name(addr: int) -> str:
    """The scope `ip -6 addr` shows (ipv6_addr_scope()): host for ::1, link for fe80::/10,
    site for fec0::/10, global otherwise."""
    t = ipv6.addr_type(addr)
    return "host" if t & ipv6.IPV6_ADDR_LOOPBACK else "link" if t & ipv6.IPV6_ADDR_LINKLOCAL \
        else "site" if t & ipv6.IPV6_ADDR_SITELOCAL else "global"


def addr_lines(addrs) -> list[str]:
    """`ip -6 addr show dev IF`'s lines for the device's addresses: `addrs` are (address,
    prefix length[, IFA_F_* flags]) in the order they were added. Linux keeps them by
    scope, global first, the newest first within a scope (ipv6_link_dev_addr())."""
    order = sorted(range(len(addrs)), key=lambda i: (-ipv6.addr_src_scope(addrs[i][0]), -i))
    out = []
    for i in order:
        addr, plen, *rest = addrs[i]
        flags = rest[0] if rest else IFA_F_PERMANENT
        words = "".join(f"{w} " for bit, w in _FLAG_WORDS if flags & bit)
        dynamic = "" if flags & IFA_F_PERMANENT else "dynamic "
        out.append(f"    inet6 {ipv6.ntoa(addr)}/{plen} scope {scope_name(addr)} {dynamic}{words}")
        out.append("       valid_lft forever preferred_lft forever")
    return out


class Ip6Fib:
    """One namespace's IPv6 routes, and which devices have IPv6 (name by ifindex)."""

    def __init__(self):
        self.tables: dict[int, Table6] = {TABLE_LOCAL: Table6(), TABLE_MAIN: Table6()}
        self.local, self.main = self.tables[TABLE_LOCAL], self.tables[TABLE_MAIN]
        self.devs: dict[int, str] = {}             # devices with IPv6 on (inet6_dev), ifindex -> name
        self._anycast: dict[tuple[int, int], int] = {}      # (ifindex, prefix) -> users (ifacaddr6.aca_users)
        self.genid = 1
        self._cache: dict = {}

    def changed(self):
        self.genid += 1
        self._cache.clear()

    # -- what addrconf does
    def add_dev(self, ifindex: int, name: str, loopback: bool = False):
        """addrconf_add_dev(): IPv6 on the device; `multicast ff00::/8` unless loopback."""
        self.devs[ifindex] = name
        if not loopback:
            self._add_once(FibRoute(MULTICAST_PREFIX, 8, RTN_MULTICAST, ifindex, metric=IP6_RT_PRIO_ADDRCONF,
                                    proto="kernel", table=TABLE_LOCAL))
        self.changed()

    def add_ifaddr(self, ifindex: int, addr: int, plen: int, *, forwarding: bool = False, prefix_route: bool = True,
                   tentative: bool = False):
        """inet6_addr_add(): the prefix route at once (not for ::1 on lo, which init_loopback()
        adds without one, nor with noprefixroute); the local route now unless `tentative`
        (then addr_ready() once DAD is done, as __ipv6_ifa_notify(RTM_NEWADDR))."""
        if prefix_route:
            self._add_once(FibRoute(addr & ipv6.prefix_mask(plen), plen, RTN_UNICAST, ifindex,
                                    metric=IP6_RT_PRIO_ADDRCONF, proto="kernel"))
        if not tentative:
            self.addr_ready(ifindex, addr, plen, forwarding)
        self.changed()

    def addr_ready(self, ifindex: int, addr: int, plen: int, forwarding: bool = False):
        """DAD succeeded (or was not done): `local ADDR`, and the anycast route when forwarding."""
        self._add_once(FibRoute(addr, 128, RTN_LOCAL, ifindex, proto="kernel", table=TABLE_LOCAL))
        if forwarding:
            self._join_anycast(ifindex, addr, plen)
        self.changed()

    def del_ifaddr(self, ifindex: int, addr: int, plen: int, remaining=(), forwarding: bool = False):
        """ipv6_del_addr(): its local and anycast routes go; its prefix route goes when no
        address left on the device (`remaining`: (address, plen) pairs) is in the prefix."""
        self._delete(TABLE_LOCAL, addr, 128, lambda r: r.dev == ifindex and r.type == RTN_LOCAL)
        if forwarding:
            self._leave_anycast(ifindex, addr, plen)
        mask = ipv6.prefix_mask(plen)
        if not any(p == plen and (a ^ addr) & mask == 0 for a, p, *_ in remaining):
            self._delete(TABLE_MAIN, addr & mask, plen,
                         lambda r: r.dev == ifindex and r.proto == "kernel" and r.metric == IP6_RT_PRIO_ADDRCONF)
        self.changed()

    def set_forwarding(self, ifindex: int, addrs, on: bool):
        """dev_forward_change(): the device's usable addresses join or leave their subnet-router anycast."""
        for addr, plen, *_ in addrs:
            (self._join_anycast if on else self._leave_anycast)(ifindex, addr, plen)
        self.changed()

    def ifdown(self, ifindex: int, unregister: bool = False):
        """NETDEV_DOWN with keep_addr_on_down 0: every route through the device goes, static
        ones too (rt6_sync_down_dev()), with its addresses (the caller drops them); the
        device keeps IPv6 (its routes come back from addrconf when it is up) unless unregistered."""
        for table in self.tables.values():
            for r in list(table.routes()):
                if r.dev == ifindex:
                    table.delete(r.dst, r.plen, lambda x, r=r: x is r)
        self._anycast = {k: n for k, n in self._anycast.items() if k[0] != ifindex}
        if unregister:
            self.devs.pop(ifindex, None)
        self.changed()

    def _join_anycast(self, ifindex: int, addr: int, plen: int):
        """addrconf_join_anycast(): not for /127 and /128 (RFC 6164), nor the prefix ::."""
        prefix = addr & ipv6.prefix_mask(plen)
        if plen >= 127 or prefix == 0:
            return
        users = self._anycast.get((ifindex, prefix), 0)
        self._anycast[(ifindex, prefix)] = users + 1
        if not users:
            self.local.add(FibRoute(prefix, 128, RTN_ANYCAST, ifindex, proto="kernel", table=TABLE_LOCAL))

    def _leave_anycast(self, ifindex: int, addr: int, plen: int):
        prefix = addr & ipv6.prefix_mask(plen)
        users = self._anycast.pop((ifindex, prefix), 0)
        if users > 1:
            self._anycast[(ifindex, prefix)] = users - 1
        elif users == 1:
            self._delete(TABLE_LOCAL, prefix, 128, lambda r: r.dev == ifindex and r.type == RTN_ANYCAST)

    def _add_once(self, route: FibRoute):
        """The kernel's own routes: one of a kind (a second prefix route for the same prefix,
        device and metric is refused, fib6_add_rt2node())."""
        table = self.tables.setdefault(route.table, Table6())
        bucket = table.by_plen.get(route.plen, {}).get(route.dst, ())
        if not any(r.dev == route.dev and r.metric == route.metric and r.type == route.type for r in bucket):
            table.add(route)

    def _delete(self, tid: int, dst: int, plen: int, match) -> bool:
        table = self.tables.get(tid)
        return table is not None and table.delete(dst, plen, match)

    # -- what ip -6 route add does
    def add(self, route: FibRoute):
        """Puts a route in its table as it is (checked by route_add(), or the kernel's own)."""
        self.tables.setdefault(route.table, Table6()).add(route)
        self.changed()

    def route_add(self, route: FibRoute) -> FibRoute:
        """ip6_route_add() for `ip -6 route add`: metric 0 is 1024, a reject route goes
        through lo, a gateway is checked and gives the device (ip6_validate_gw()), the
        source must be an address of the host; the same prefix and metric in the table
        already is EEXIST (NLM_F_EXCL). Returns the route added; raises Fib6Error."""
        route = replace(route, dst=route.dst & ipv6.prefix_mask(route.plen), metric=route.metric or IP6_RT_PRIO_USER)
        if route.type in REJECT:
            route = replace(route, dev=LOOPBACK_IFINDEX, gw=0)
        elif route.type != RTN_UNICAST:
            raise Fib6Error(errno.EINVAL, "RTNETLINK answers: Invalid argument")
        else:
            route = self._check_nexthop(route)
        if route.prefsrc and not self.chk_addr(route.prefsrc, route.dev):
            raise _extack("Invalid source address")
        table = self.tables.get(route.table)
        if table is not None and any(r.metric == route.metric for r in
                                     table.by_plen.get(route.plen, {}).get(route.dst, ())):
            raise Fib6Error(errno.EEXIST, "RTNETLINK answers: File exists")
        self.add(route)
        return route

    def _check_nexthop(self, route: FibRoute) -> FibRoute:
        dev = route.dev
        if dev and dev not in self.devs:
            raise _extack("IPv6 is disabled on nexthop device")
        if not route.gw:
            if not dev:
                raise Fib6Error(errno.ENODEV, "RTNETLINK answers: No such device")
            return route
        gw, gw_type = route.gw, ipv6.addr_type(route.gw)
        if dev and self.chk_addr(gw, dev if gw_type & ipv6.IPV6_ADDR_LINKLOCAL else 0):
            raise _extack("Gateway can not be a local address")
        if gw_type != ipv6.IPV6_ADDR_LINKLOCAL | ipv6.IPV6_ADDR_UNICAST:
            if not gw_type & (ipv6.IPV6_ADDR_UNICAST | ipv6.IPV6_ADDR_MAPPED):
                raise _extack("Invalid gateway address")
            dev = self._check_nh(route.table, gw, dev)
        if not dev:
            raise _extack("Egress device not specified")
        if dev == LOOPBACK_IFINDEX:
            raise _extack("Egress device can not be loopback device for this route")
        if not route.dev and self.chk_addr(gw, dev if gw_type & ipv6.IPV6_ADDR_LINKLOCAL else 0):
            raise _extack("Gateway can not be a local address")
        return replace(route, dev=dev)

    def _check_nh(self, tid: int, gw: int, dev: int) -> int:
        """ip6_route_check_nh(): the gateway is reached by a route without a gateway (and not a
        reject route) in the route's own table, else in a full lookup; through `dev` if given."""
        def usable(r):
            return r is not None and r.type not in REJECT and not r.gw and (not dev or r.dev == dev)
        table = self.tables.get(tid)
        r = self._table_lookup(table, gw, dev, True) if table is not None else None
        if not usable(r):
            r = self.lookup(gw, dev, strict=True)
            if r is None or r.type in REJECT or r.gw:
                raise Fib6Error(errno.EHOSTUNREACH, "RTNETLINK answers: No route to host")
            if dev and r.dev != dev:
                raise Fib6Error(errno.EHOSTUNREACH, "RTNETLINK answers: No route to host")
        return r.dev

    def owners(self, addr: int) -> list[int]:
        """The devices that have addr as a usable (not tentative) address: its local routes."""
        return [r.dev for r in self.local.by_plen.get(128, {}).get(addr, ()) if r.type == RTN_LOCAL]

    def chk_addr(self, addr: int, dev: int = 0) -> bool:
        """ipv6_chk_addr(): addr is a usable address of this host; with `dev`, a link-local
        one (or ::1) must be that device's."""
        owners = self.owners(addr)
        if dev and ipv6.addr_src_scope(addr) <= ipv6.IPV6_ADDR_SCOPE_LINKLOCAL:
            return dev in owners
        return bool(owners)

    # -- lookups
    def lookup(self, daddr: int, oif: int = 0, saddr: int = 0, strict: bool | None = None) -> FibRoute | None:
        """fib6_rule_lookup() with the default rules: table local, then main. `strict`
        (RT6_LOOKUP_F_IFACE: only routes through oif) is by default what
        ip6_route_output_flags() decides: for multicast, link-local and loopback
        destinations (rt6_need_strict()) and for an oif without a source address
        (`ip -6 route get ADDR oif DEV`); a bound socket's caller passes True. Without
        it oif only breaks ties between routes of the lowest metric."""
        if strict is None:
            strict = bool(oif and not saddr) or bool(ipv6.addr_type(daddr) & (
                ipv6.IPV6_ADDR_MULTICAST | ipv6.IPV6_ADDR_LINKLOCAL | ipv6.IPV6_ADDR_LOOPBACK))
        key = (daddr, oif, strict)
        try:
            return self._cache[key]
        except KeyError:
            pass
        r = self._table_lookup(self.local, daddr, oif, strict) or self._table_lookup(self.main, daddr, oif, strict)
        if len(self._cache) < 65536:
            self._cache[key] = r
        return r

    @staticmethod
    def _table_lookup(table: Table6, daddr: int, oif: int, strict: bool) -> FibRoute | None:
        """fib6_table_lookup(): the longest prefix holding daddr; there rt6_select(): the
        lowest metric, preferring a route through oif among equals; with strict, only
        routes through oif count, and a prefix without one backtracks to shorter ones."""
        for bucket in table.matches(daddr):
            if not oif:
                return bucket[0]
            best = None
            for r in bucket:
                if r.dev == oif:
                    if best is None or r.metric == best.metric:
                        return r
                    break
                if best is None and not strict:
                    best = r
            if best is not None:
                return best
        return None

    # -- ip -6 route show
    def show(self, table: int | None, ifname) -> list[str]:
        """`ip -6 route show [table ID|all]` lines (None: all, naming each table but main).
        Tables come in the kernel's hash order (the id's low byte), so main before local."""
        out = []
        for tid in (sorted(self.tables, key=lambda t: (t & 0xFF, t)) if table is None else [table]):
            for r in self.tables[tid].routes():
                words = [] if r.type == RTN_UNICAST else [NAMES6[r.type]]
                words.append("default" if r.plen == 0 else ipv6.ntoa(r.dst) if r.plen == 128
                             else f"{ipv6.ntoa(r.dst)}/{r.plen}")
                if r.gw:
                    words += ["via", ipv6.ntoa(r.gw)]
                if r.dev:
                    words += ["dev", ifname(r.dev)]
                if table is None and tid != TABLE_MAIN:
                    words += ["table", TABLE_NAMES.get(tid, str(tid))]
                if r.proto != "boot":
                    words += ["proto", r.proto]
                if r.prefsrc:
                    words += ["src", ipv6.ntoa(r.prefsrc)]
                words += ["metric", str(r.metric), "pref", "medium"]
                out.append(" ".join(words))
        return out


def build(host) -> Ip6Fib:
    """The IPv6 routes of a topology host (common/topology.py) as Linux has them once its
    devices are up, DAD is done and its routes are added: devices in ifindex order, each
    with its addresses (Interface.addrs6, the link-local first), then Host.routes6."""
    fib = Ip6Fib()
    conf = host.conf6
    for iface in sorted(host.interfaces.values(), key=lambda i: i.ifindex):
        if not iface.addrs6:
            continue
        fib.add_dev(iface.ifindex, iface.name, iface.is_loopback)
        forwarding = bool(conf.get(iface.name, {}).get("forwarding", 0))
        for addr, plen in iface.addrs6:
            fib.add_ifaddr(iface.ifindex, addr, plen, forwarding=forwarding,
                           prefix_route=not (iface.is_loopback and addr == ipv6.IN6ADDR_LOOPBACK))
    for r in host.routes6:
        fib.add(route_of(host, r))
    return fib


def route_of(host, r) -> FibRoute:
    """A topology Route (IPv6, checked and with its device resolved) as the FIB keeps it."""
    dev = host.interfaces[r.dev].ifindex if r.dev else 0
    return FibRoute(r.dst, r.plen, TYPE_BY_NAME[r.type], dev, r.via, r.src, r.metric)
