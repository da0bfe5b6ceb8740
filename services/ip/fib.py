"""The FIB (net/ipv4/fib_*.c): routing tables with longest-prefix match, and
the policy rules that choose among them (fib_rules.py).

As in Linux, adding an address puts `local ADDR` and `broadcast BCAST` routes
in the local table and the connected prefix route in the main table; with the
default rules a lookup tries local, main, then default. Results are cached per
destination (per flow once there are rules of one's own) until the tables or
rules change (fib_genid, the kernel's rt_genid)."""
from dataclasses import dataclass

# Route types: the contract's enum (layers.proto RouteType), rtnetlink.h's numbers.
from pktflow.v1.layers_pb2 import RTN_BLACKHOLE, RTN_BROADCAST, RTN_LOCAL, RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE

from ..wire.ipv4 import INADDR_BROADCAST, ntoa, prefix_mask
from . import fib_rules
from .fib_rules import TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, TABLE_NAMES

RTN_NAMES = {RTN_UNICAST: "unicast", RTN_LOCAL: "local", RTN_BROADCAST: "broadcast", RTN_BLACKHOLE: "blackhole",
             RTN_UNREACHABLE: "unreachable", RTN_PROHIBIT: "prohibit"}
TYPE_BY_NAME = {v: k for k, v in RTN_NAMES.items()}

RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
SCOPE_NAMES = {RT_SCOPE_UNIVERSE: "global", RT_SCOPE_LINK: "link", RT_SCOPE_HOST: "host"}


@dataclass(frozen=True)
class FibRoute:
    dst: int
    plen: int
    type: int = RTN_UNICAST
    dev: int = 0               # ifindex, 0 for none
    gw: int = 0
    prefsrc: int = 0
    metric: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    proto: str = "boot"
    table: int = TABLE_MAIN
    nhs: tuple = ()            # a multipath route's nexthops: ((gw, dev, weight), ...)
    err: int = 0               # a rule's answer (fib_rules ACTION_ERRNO), not a route in a table

    def same_key(self, other: "FibRoute") -> bool:
        """fib_table_insert()'s alias key: prefix, tos (always 0 here) and priority (metric)."""
        return (self.dst, self.plen, self.metric) == (other.dst, other.plen, other.metric)


class Table:
    """Routes by prefix length, then destination: a longest-prefix match is one
    dict probe per prefix length in use, longest first. `width` is the address
    width in bits (32; 128 for the IPv6 FIB, ip6_fib.py)."""

    def __init__(self, width: int = 32):
        self.width = width
        self.by_plen: dict[int, dict[int, list[FibRoute]]] = {}
        self.plens: list[int] = []
        self.levels: list[tuple[int, dict]] = []     # (mask, by_plen[plen]) for self.plens, longest first

    def add(self, r: FibRoute):
        bucket = self.by_plen.setdefault(r.plen, {}).setdefault(r.dst, [])
        bucket.append(r)
        bucket.sort(key=lambda x: x.metric)
        self.plens = sorted(self.by_plen, reverse=True)
        full = (1 << self.width) - 1
        self.levels = [((full << (self.width - p)) & full, self.by_plen[p]) for p in self.plens]

    def delete(self, dst: int, plen: int, match=lambda r: True) -> bool:
        bucket = self.by_plen.get(plen, {}).get(dst, [])
        for r in bucket:
            if match(r):
                bucket.remove(r)
                if not bucket:
                    del self.by_plen[plen][dst]
                return True
        return False

    def lookup(self, daddr: int) -> FibRoute | None:
        for mask, by_dst in self.levels:
            bucket = by_dst.get(daddr & mask)
            if bucket:
                return bucket[0]
        return None

    def matches(self, daddr: int):
        """The buckets (routes of one prefix, by metric) that hold daddr, longest prefix first."""
        for mask, by_dst in self.levels:
            bucket = by_dst.get(daddr & mask)
            if bucket:
                yield bucket

    def routes(self):
        """In `ip route` order: by destination, then longer prefix first (a trie leaf
        keeps its aliases in ascending fa_slen = 32 - plen, fib_insert_alias())."""
        keys = sorted(((dst, plen) for plen, by_dst in self.by_plen.items() for dst in by_dst),
                      key=lambda k: (k[0], -k[1]))
        for dst, plen in keys:
            yield from self.by_plen[plen][dst]


class Fib:
    def __init__(self):
        self.tables = {TABLE_LOCAL: Table(), TABLE_MAIN: Table(), TABLE_DEFAULT: Table()}
        self.local, self.main = self.tables[TABLE_LOCAL], self.tables[TABLE_MAIN]
        self.rules = fib_rules.default_rules()
        self.own_rules = False                  # rules beyond the three defaults: look up per flow
        self.genid = 1
        self._cache: dict = {}

    def changed(self):
        self.genid += 1
        self._cache.clear()
        self.own_rules = self.rules != fib_rules.default_rules()

    def add_ifaddr(self, ifindex: int, addr: int, plen: int, loopback: bool, primary: int = 0):
        """fib_add_ifaddr(). `primary` is set for an IFA_F_SECONDARY address (one more
        in a subnet the device already has): it gets only its local route, with the
        primary as prefsrc."""
        mask = prefix_mask(plen)
        prim = primary or addr
        self.local.add(FibRoute(addr, 32, RTN_LOCAL, ifindex, prefsrc=prim, scope=RT_SCOPE_HOST,
                                proto="kernel", table=TABLE_LOCAL))
        prefix = addr & mask
        # No prefix (or broadcast) route for a secondary, nor for a /32 (prefix == addr and plen 32).
        if not primary and (prefix != addr or plen < 32):
            if loopback:
                self.local.add(FibRoute(prefix, plen, RTN_LOCAL, ifindex, prefsrc=addr, scope=RT_SCOPE_HOST,
                                        proto="kernel", table=TABLE_LOCAL))
            else:
                self.main.add(FibRoute(prefix, plen, RTN_UNICAST, ifindex, prefsrc=addr, scope=RT_SCOPE_LINK,
                                       proto="kernel"))
            if plen < 31:
                self.local.add(FibRoute(prefix | (~mask & 0xFFFFFFFF), 32, RTN_BROADCAST, ifindex, prefsrc=addr,
                                        scope=RT_SCOPE_LINK, proto="kernel", table=TABLE_LOCAL))
        self.changed()

    def add(self, route: FibRoute):
        self.tables.setdefault(route.table, Table()).add(route)
        self.changed()

    def lookup(self, daddr: int, saddr: int = 0, iif: int = 0, oif: int = 0, mark: int = 0) -> FibRoute | None:
        """fib_lookup(): with only the default rules, local, main, then default,
        cached per destination; else fib_rules_lookup(), cached per flow."""
        key = daddr if not self.own_rules else (daddr, saddr, iif, oif, mark)
        try:
            return self._cache[key]
        except KeyError:
            pass
        if not self.own_rules:
            r = self.local.lookup(daddr) or self.main.lookup(daddr) or self.tables[TABLE_DEFAULT].lookup(daddr)
        else:
            r = self._rules_lookup(daddr, saddr, iif, oif, mark)
        if len(self._cache) < 65536:
            self._cache[key] = r
        return r

    def _rules_lookup(self, daddr: int, saddr: int, iif: int, oif: int, mark: int) -> FibRoute | None:
        for rule in self.rules:
            if not rule.matches(daddr, saddr, iif, oif, mark):
                continue
            if rule.action != fib_rules.FR_ACT_TO_TBL:
                return FibRoute(daddr, 32, RTN_UNREACHABLE, err=fib_rules.ACTION_ERRNO[rule.action])
            table = self.tables.get(rule.table)
            r = table.lookup(daddr) if table is not None else None
            if r is not None:                  # no route there: -EAGAIN, the next rule
                return r
        return None

    def is_local(self, addr: int) -> bool:
        r = self.local.lookup(addr)
        return r is not None and r.type == RTN_LOCAL

    def is_broadcast(self, addr: int) -> bool:
        if addr == INADDR_BROADCAST:
            return True
        r = self.local.lookup(addr)
        return r is not None and r.type == RTN_BROADCAST and r.plen == 32

    def show(self, table: int | None, ifname) -> list[str]:
        """`ip route show [table ID|all]` lines (None: all, each line naming its table)."""
        out = []
        for tid in sorted(self.tables, key=lambda t: (t == TABLE_LOCAL, t != TABLE_MAIN, t)) \
                if table is None else [table]:
            for r in self.tables[tid].routes():
                words = [] if r.type == RTN_UNICAST and tid != TABLE_LOCAL else [RTN_NAMES[r.type]]
                words.append("default" if r.plen == 0 else ntoa(r.dst) if r.plen == 32 else f"{ntoa(r.dst)}/{r.plen}")
                if r.gw:
                    words += ["via", ntoa(r.gw)]
                if r.dev:
                    words += ["dev", ifname(r.dev)]
                if table is None and tid != TABLE_MAIN:
                    words += ["table", TABLE_NAMES.get(tid, str(tid))]
                if r.proto != "boot":          # `ip route add` routes are proto boot, not shown
                    words += ["proto", r.proto]
                if r.scope != RT_SCOPE_UNIVERSE:
                    words += ["scope", SCOPE_NAMES[r.scope]]
                if r.prefsrc:
                    words += ["src", ntoa(r.prefsrc)]
                if r.metric:
                    words += ["metric", str(r.metric)]
                line = " ".join(words)
                for gw, dev, weight in r.nhs:
                    line += f"\n\tnexthop via {ntoa(gw)} dev {ifname(dev)} weight {weight}"
                out.append(line)
        return out
