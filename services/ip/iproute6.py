"""`ip -6 route` and `ip -6 addr` as a namespace's administrator runs them
(iproute2 6.1 on Linux 6.18): the words in, (exit status, stdout, stderr)
out, and the IPv6 FIB and addresses changed as rtnetlink would change them
(ip6_fib.py checks a route as ip6_route_add() does and words its refusals as
ip prints them). A command that fails changes nothing."""
from ..wire import ipv6
from . import fib as fibmod, iproute
from .fib_rules import TABLE_LOCAL, TABLE_MAIN
from .ip6_fib import IP6_RT_PRIO_USER, NAMES6, Fib6Error, Table6
from .iproute import IpError, _dev, _need, _table, addr_words

_TYPES = {name: t for t, name in NAMES6.items() if name in ("unicast", "blackhole", "unreachable", "prohibit")}


def _prefix(word: str) -> tuple[int, int]:
    return iproute._prefix(word, ipv6, "inet6 prefix")


def _address(word: str) -> int:
    return iproute._address(word, ipv6, "inet6 address")


def parse_route6(ns, words: list[str]) -> tuple[fibmod.FibRoute, set]:
    """The route the words describe, and which of its fields they gave."""
    rtype, given = fibmod.RTN_UNICAST, set()
    if words and words[0] in _TYPES:
        rtype = _TYPES[words.pop(0)]
        given.add("type")
    if not words:
        raise IpError(1, 'Error: inet6 prefix is expected rather than "".')
    dst, plen = _prefix(words[0])
    f = {"gw": 0, "dev": 0, "prefsrc": 0, "metric": 0, "table": TABLE_MAIN}
    i = 1
    while i < len(words):
        given.add(iproute.route_word(ns, f, words[i], _need(words, i, words[i]), _address, "inet6",
                                     ("proto", "protocol", "scope", "pref")))
        i += 2
    return fibmod.FibRoute(dst, plen, rtype, f["dev"], f["gw"], f["prefsrc"], f["metric"], table=f["table"]), given


def ip6_route(ns, words: list[str]) -> tuple[int, str, str]:
    """ip -6 route [show [table ID|all]] | add|del|flush ... (get and flush cache: the ip layer's own)."""
    try:
        return 0, _ip6_route(ns, list(words)), ""
    except IpError as e:
        return e.status, "", f"{e}\n"
    except Fib6Error as e:
        return 2, "", f"{e}\n"


def _ip6_route(ns, words: list[str]) -> str:
    fib = ns.v6.fib
    cmd = words.pop(0) if words else "show"
    if cmd in ("show", "list", "ls", "lst"):
        return "".join(line + "\n" for line in fib.show(iproute.shown_table(words, fib.tables, "ipv6"), ns.ifname))
    if cmd == "flush":
        t = fib.tables.get(_table(_need(words, 0, "table")) if words[:1] == ["table"] else TABLE_MAIN)
        for r in list(t.routes()) if t is not None else ():
            if r.proto != "kernel":
                t.delete(r.dst, r.plen, lambda x, r=r: x is r)
        fib.changed()
        return ""
    if cmd in ("delete", "del"):
        route, given = parse_route6(ns, words)
        _delete6(fib, route, given)
        return ""
    if cmd not in ("add", "append", "replace", "change"):
        raise IpError(1, f'Command "{cmd}" is unknown, try "ip route help".')
    route, _ = parse_route6(ns, words)
    if cmd in ("replace", "change"):
        metric = route.metric or IP6_RT_PRIO_USER
        table = fib.tables.setdefault(route.table, Table6())
        mask = ipv6.prefix_mask(route.plen)
        same = [r for r in table.by_plen.get(route.plen, {}).get(route.dst & mask, ()) if r.metric == metric]
        if not same and cmd == "change":
            raise IpError(2, "RTNETLINK answers: No such file or directory")
        for r in same:
            table.delete(r.dst, r.plen, lambda x, r=r: x is r)
    fib.route_add(route)
    return ""


def _delete6(fib, route: fibmod.FibRoute, given: set):
    """fib6_del(): the first route with the prefix whose given fields match (metric
    1024 unless given, as ip6_route_del() asks)."""
    table = fib.tables.get(route.table)
    dst = route.dst & ipv6.prefix_mask(route.plen)
    metric = route.metric or IP6_RT_PRIO_USER
    for r in list(table.by_plen.get(route.plen, {}).get(dst, ())) if table is not None else ():
        if r.table == TABLE_LOCAL and route.table != TABLE_LOCAL:
            continue
        if ("metric" in given or r.proto != "kernel") and r.metric != metric:
            continue
        if "via" in given and r.gw != route.gw or "dev" in given and r.dev != route.dev:
            continue
        table.delete(r.dst, r.plen, lambda x, r=r: x is r)
        fib.changed()
        return
    raise IpError(2, "RTNETLINK answers: No such process")


def ip6_addr(ns, words: list[str]) -> tuple[int, str, str]:
    """ip -6 address add|del ADDR/PLEN dev IF: the address, its prefix route, its local
    route and its solicited-node group (addrconf), or their going."""
    try:
        cmd, addr, plen, opts = addr_words(words, _prefix)
        ifindex = _dev(ns, opts["dev"])
        n6 = ns.v6
        dev = n6.devs.get(ifindex)
        if dev is None:
            raise IpError(2, "RTNETLINK answers: Permission denied")        # IPv6 is off on the device
        known = [(a, p) for a, p, _ in dev.addrs]
        if cmd == "add":
            if addr in (a for a, _ in known):
                raise IpError(2, "RTNETLINK answers: File exists")
            if addr == 0 or ipv6.is_multicast(addr):
                raise IpError(2, "RTNETLINK answers: Cannot assign requested address")
            n6.add_addr(ifindex, addr, plen)
        else:
            if (addr, plen) not in known:
                raise IpError(2, "RTNETLINK answers: Cannot assign requested address")
            n6.del_addr(ifindex, addr, plen)
        return 0, "", ""
    except IpError as e:
        return e.status, "", f"{e}\n"
