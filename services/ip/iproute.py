"""`ip route` and `ip rule` as a namespace's administrator runs them (iproute2
6.1 with the kernel's answers, captured in a namespace here): the words in,
(exit status, stdout, stderr) out, and the FIB changed as rtnetlink would
change it. A command that fails changes nothing."""
import errno

from ..wire import ipv4
from . import fib as fibmod, fib_rules
from .fib_rules import FibRule, TABLE_LOCAL, TABLE_MAIN, TABLE_NAMES

TABLE_IDS = {v: k for k, v in TABLE_NAMES.items()}
RTNETLINK = {errno.EEXIST: "RTNETLINK answers: File exists", errno.ESRCH: "RTNETLINK answers: No such process",
             errno.ENOENT: "RTNETLINK answers: No such file or directory"}


class IpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _kernel(err: int) -> IpError:
    return IpError(2, RTNETLINK[err])


def _extack(text: str) -> IpError:
    """A refusal the kernel explains (netlink extended ack)."""
    return IpError(2, f"Error: {text}")


def _prefix(word: str, wire=ipv4, what: str = "any valid prefix") -> tuple[int, int]:
    """A prefix of the family whose wire module is `wire` (ipv4, ipv6); iproute2's words for a bad one."""
    if word in ("default", "all", "any"):
        return 0, 0
    try:
        return wire.parse_prefix(word)
    except ValueError:
        raise IpError(1, f'Error: {what} is expected rather than "{word}".') from None


def _table(word: str) -> int:
    if word in TABLE_IDS:
        return TABLE_IDS[word]
    if word.isdigit() and 0 < int(word) < 2**32:
        return int(word)
    raise IpError(1, f'Error: argument "{word}" is wrong: "table" value is invalid')


def _dev(ns, name: str) -> int:
    d = ns.by_name.get(name)
    if d is None:
        raise IpError(1, f'Cannot find device "{name}"')
    return d.ifindex


def _need(words: list[str], i: int, what: str) -> str:
    if i + 1 >= len(words):
        raise IpError(1, 'Command line is not complete. Try option "help"')
    return words[i + 1]


# -- ip route
def parse_route(ns, words: list[str], checked: bool = True) -> tuple[fibmod.FibRoute, set]:
    """The route the words describe, and which of its fields the words gave
    (for del, not `checked` as a new route is: only the given fields must match)."""
    rtype, given = fibmod.RTN_UNICAST, set()
    if words and words[0] in fibmod.TYPE_BY_NAME and words[0] not in ("local", "broadcast"):
        rtype = fibmod.TYPE_BY_NAME[words.pop(0)]
        given.add("type")
    if not words:
        raise IpError(1, "Error: any valid prefix is expected rather than \"\".")
    dst, plen = _prefix(words[0])
    if dst & ~ipv4.prefix_mask(plen) & 0xFFFFFFFF:
        raise _extack("Invalid prefix for given prefix length.")
    f = {"gw": 0, "dev": 0, "prefsrc": 0, "metric": 0, "table": TABLE_MAIN}
    nhs, i = [], 1
    while i < len(words):
        w = words[i]
        if w == "nexthop":
            nh = {"gw": 0, "dev": 0, "weight": 1}
            i += 1
            while i < len(words) and words[i] in ("via", "dev", "weight"):
                v = _need(words, i, words[i])
                if words[i] == "via":
                    nh["gw"] = _address(v)
                elif words[i] == "dev":
                    nh["dev"] = _dev(ns, v)
                else:
                    if not v.isdigit() or not 1 <= int(v) <= 256:
                        raise IpError(1, f'Error: argument "{v}" is wrong: "weight" is invalid')
                    nh["weight"] = int(v)
                i += 2
            nhs.append(nh)
            continue
        given.add(route_word(ns, f, w, _need(words, i, w), _address))
        i += 2
    routed = _check_nexthops(ns, rtype, f, nhs) if checked else ()
    scope = fibmod.RT_SCOPE_LINK if rtype == fibmod.RTN_UNICAST and not f["gw"] and not nhs \
        else fibmod.RT_SCOPE_UNIVERSE
    route = fibmod.FibRoute(dst, plen, rtype, f["dev"] if not nhs else 0, f["gw"], f["prefsrc"], f["metric"],
                            scope, table=f["table"], nhs=routed)
    return route, given


def route_word(ns, f: dict, w: str, v: str, address, inet: str = "inet",
               ignored=("proto", "protocol", "scope")) -> str:
    """One `WORD VALUE` pair of ip route's into the fields `f` (gw, dev, prefsrc, metric,
    table); the words in `ignored` are taken and left as iproute2's defaults. Returns
    the field's name for the given set."""
    if w == "via":
        f["gw"] = address(v.removeprefix(inet + " "))
    elif w == "dev" or w == "oif":
        f["dev"] = _dev(ns, v)
    elif w == "src":
        f["prefsrc"] = address(v)
    elif w in ("metric", "preference", "priority"):
        if not v.isdigit():
            raise IpError(1, f'Error: argument "{v}" is wrong: "metric" value is invalid')
        f["metric"] = int(v)
    elif w == "table":
        f["table"] = _table(v)
    elif w not in ignored:
        raise IpError(1, f'Error: either "to" is duplicate, or "{w}" is a garbage.')
    return w if w not in ("oif", "preference", "priority") else {"oif": "dev"}.get(w, "metric")


def _address(word: str, wire=ipv4, what: str = "inet address") -> int:
    try:
        return wire.aton(word)
    except ValueError:
        raise IpError(1, f'Error: {what} is expected rather than "{word}".') from None


def _check_nexthops(ns, rtype: int, f: dict, nhs: list) -> tuple:
    """fib_check_nh(): a gateway must be on a subnet of an interface (of the one
    named, if one is); a unicast route needs a device or a gateway; the source
    must be an address of the host."""
    if f["prefsrc"] and not ns.fib.is_local(f["prefsrc"]):
        raise _extack("Invalid prefsrc address.")
    if rtype != fibmod.RTN_UNICAST:
        if f["gw"] or nhs:
            raise _extack("Nexthop has invalid gateway.")
        return ()
    for nh in ([f] if not nhs else nhs):
        if nh["gw"]:
            on_link = ns.fib.main.lookup(nh["gw"])
            if on_link is None or on_link.gw or on_link.type != fibmod.RTN_UNICAST or \
                    (nh["dev"] and on_link.dev != nh["dev"]):
                raise _extack("Nexthop has invalid gateway.")
            nh["dev"] = nh["dev"] or on_link.dev
        elif not nh["dev"]:
            raise IpError(2, "RTNETLINK answers: No such device")
    return tuple((nh["gw"], nh["dev"], nh["weight"]) for nh in nhs)


def ip_route(ns, words: list[str]) -> tuple[int, str, str]:
    """ip route add|append|replace|change|del|flush|show ... (get and flush cache: the
    ip layer's own)."""
    try:
        return 0, _ip_route(ns, list(words)), ""
    except IpError as e:
        return e.status, "", f"{e}\n"


def shown_table(words: list[str], tables, family: str = "ipv4") -> int | None:
    """`show [table ID|all]`: the table asked for (None: all of them); one that is not
    there is the kernel's error."""
    table: int | None = TABLE_MAIN
    if words[:1] == ["table"]:
        name = _need(words, 0, "table")
        table = None if name == "all" else _table(name)
        if table is not None and table not in tables:
            raise IpError(2, f"Error: {family}: FIB table does not exist.\nDump terminated")
    return table


def _ip_route(ns, words: list[str]) -> str:
    cmd = words.pop(0) if words else "show"
    if cmd in ("show", "list", "ls", "lst"):
        lines = ns.fib.show(shown_table(words, ns.fib.tables), ns.ifname)
        return "".join(line + "\n" for line in lines)
    if cmd == "flush":
        table = _table(_need(words, 0, "table")) if words[:1] == ["table"] else TABLE_MAIN
        t = ns.fib.tables.get(table)
        if t is not None:
            for r in list(t.routes()):
                if r.proto != "kernel":
                    t.delete(r.dst, r.plen, lambda x, r=r: x is r)
            ns.fib.changed()
        return ""
    if cmd not in ("add", "append", "replace", "change", "delete", "del"):
        raise IpError(1, f'Command "{cmd}" is unknown, try "ip route help".')
    if cmd in ("delete", "del"):
        route, given = parse_route(ns, words, checked=False)
        _delete(ns, route, given)
        return ""
    route, _ = parse_route(ns, words)
    table = ns.fib.tables.setdefault(route.table, fibmod.Table())
    same = [r for r in table.routes() if r.same_key(route)]
    if cmd == "add" and same:
        raise _kernel(errno.EEXIST)
    if cmd == "append" and route in same:
        raise _kernel(errno.EEXIST)
    if cmd in ("replace", "change") and same:
        table.delete(route.dst, route.plen, lambda x: x is same[0])
    elif cmd == "change":
        raise _kernel(errno.ENOENT)
    ns.fib.add(route)
    return ""


def _delete(ns, route, given: set):
    """fib_table_delete(): the first route with the prefix whose given fields match."""
    table = ns.fib.tables.get(route.table if route else TABLE_MAIN)
    for r in (table.routes() if table is not None else ()):
        if (r.dst, r.plen) != (route.dst, route.plen) or r.table == TABLE_LOCAL and route.table != TABLE_LOCAL:
            continue
        if "metric" in given and r.metric != route.metric or "type" in given and r.type != route.type:
            continue
        if "via" in given and r.gw != route.gw and route.gw not in (gw for gw, _, _ in r.nhs):
            continue
        if "dev" in given and r.dev != route.dev and route.dev not in (d for _, d, _ in r.nhs):
            continue
        table.delete(r.dst, r.plen, lambda x: x is r)
        ns.fib.changed()
        return
    raise _kernel(errno.ESRCH)


# -- ip rule
def parse_rule(ns, words: list[str]) -> tuple[dict, set]:
    f = {"invert": False}
    given = set()
    i = 0
    while i < len(words):
        w = words[i]
        if w == "not":
            f["invert"] = True
            i += 1
            continue
        if w in ACTIONS:
            f["action"] = ACTIONS[w]
            given.add("action")
            i += 1
            continue
        v = _need(words, i, w)
        if w == "from":
            f["src"], f["src_len"] = _prefix(v)
        elif w == "to":
            f["dst"], f["dst_len"] = _prefix(v)
        elif w == "fwmark":
            mark, _, mask = v.partition("/")
            try:
                f["mark"], f["mark_mask"] = int(mark, 0), int(mask, 0) if mask else 0xFFFFFFFF
            except ValueError:
                raise IpError(1, f'Error: argument "{v}" is wrong: fwmark value is invalid') from None
        elif w in ("iif", "dev"):
            d = ns.by_name.get(v)
            f["iifname"], f["iif"] = v, d.ifindex if d else fib_rules.DETACHED
            w = "iif"
        elif w == "oif":
            d = ns.by_name.get(v)
            f["oifname"], f["oif"] = v, d.ifindex if d else fib_rules.DETACHED
        elif w in ("priority", "pref", "preference", "order"):
            if not v.isdigit():
                raise IpError(1, f'Error: argument "{v}" is wrong: preference value is invalid')
            f["priority"] = int(v)
            w = "priority"
        elif w in ("table", "lookup"):
            f["table"] = _table(v)
            w = "table"
        else:
            raise IpError(1, f'Error: argument "{w}" is wrong: Failed to parse rule type')
        given.add({"from": "src", "to": "dst", "fwmark": "mark"}.get(w, w))
        i += 2
    if "invert" in f and f["invert"]:
        given.add("invert")
    return f, given


ACTIONS = {"blackhole": fib_rules.FR_ACT_BLACKHOLE, "unreachable": fib_rules.FR_ACT_UNREACHABLE,
           "prohibit": fib_rules.FR_ACT_PROHIBIT}
_FIELDS = {"src": ("src", "src_len"), "dst": ("dst", "dst_len"), "mark": ("mark", "mark_mask"), "iif": ("iif",),
           "oif": ("oif",), "priority": ("priority",), "table": ("table",), "action": ("action",),
           "invert": ("invert",)}


def ip_rule(ns, words: list[str]) -> tuple[int, str, str]:
    """ip rule add|del|show|flush ..."""
    words = list(words)
    cmd = words.pop(0) if words else "show"
    fib = ns.fib
    try:
        if cmd in ("show", "list", "ls", "lst"):
            return 0, "".join(r.show() + "\n" for r in fib.rules), ""
        if cmd == "flush":                       # every rule but the one that looks in local
            fib.rules = [r for r in fib.rules if r.priority == 0]
            fib.changed()
            return 0, "", ""
        if cmd not in ("add", "delete", "del"):
            raise IpError(1, f'Command "{cmd}" is unknown, try "ip rule help".')
        f, given = parse_rule(ns, words)
        if cmd == "add":
            if "action" not in f and "table" not in f:
                f["table"] = TABLE_MAIN        # iproute2: no table named means main
            f.setdefault("priority", fib_rules.default_priority(fib.rules))
            rule = FibRule(**f)
            if rule in fib.rules:
                raise _kernel(errno.EEXIST)
            fib.rules.append(rule)
            fib.rules.sort(key=lambda r: r.priority)          # a new rule goes after those of its priority
        else:
            for r in fib.rules:
                if all(getattr(r, a) == f.get(a, getattr(FibRule(0), a)) for g in given for a in _FIELDS[g]):
                    fib.rules.remove(r)
                    break
            else:
                raise _kernel(errno.ENOENT)
        fib.changed()
        return 0, "", ""
    except IpError as e:
        return e.status, "", f"{e}\n"


# -- ip address, ip link (the ip layer's part: addresses, routes, MTU)
def addr_words(words: list[str], prefix) -> tuple[str, int, int, dict]:
    """`ip address add|del ADDR/PLEN dev IF`'s words as iproute2 checks them: (the
    command, the address and prefix length `prefix` reads, the other words by name)."""
    words = list(words)
    cmd = words.pop(0) if words else ""
    if cmd not in ("add", "del", "delete"):
        raise IpError(1, f'Command "{cmd}" is unknown, try "ip address help".')
    if not words:
        raise IpError(1, 'Command line is not complete. Try option "help"')
    addr, plen = prefix(words[0])
    opts = dict(zip(words[1::2], words[2::2]))
    if "dev" not in opts:
        raise IpError(1, 'Not enough information: "dev" argument is required.')
    return cmd, addr, plen, opts


def ip_addr(ns, words: list[str]) -> tuple[int, str, str]:
    """ip address add|del ADDR/PLEN dev IF: the address and the routes the kernel
    makes for it (fib_add_ifaddr()) or takes away (fib_del_ifaddr(); deleting a
    primary takes its secondaries too, promote_secondaries being 0)."""
    try:
        cmd, addr, plen, opts = addr_words(words, _prefix)
        d = ns.by_name.get(opts["dev"])
        if d is None:
            raise IpError(1, f'Cannot find device "{opts["dev"]}"')
        if cmd == "add":
            if (addr, plen) in d.addrs:
                raise _extack("ipv4: Address already assigned.")
            d.addrs.append((addr, plen))
        else:
            if (addr, plen) not in d.addrs:
                raise _extack("ipv4: Address not found.")
            mask = ipv4.prefix_mask(plen)
            primary = next(a for a, p in d.addrs if p == plen and (a ^ addr) & mask == 0)
            d.addrs = [(a, p) for a, p in d.addrs if (a, p) != (addr, plen) and
                       not (addr == primary and p == plen and (a ^ addr) & mask == 0)]
        ns.addresses_changed(d)
        return 0, "", ""
    except IpError as e:
        return e.status, "", f"{e}\n"


def ip_link_set(ns, words: list[str]) -> tuple[int, str, str]:
    """ip link set [dev] IF [up|down] [mtu N]: a device going down takes every
    route through it (fib_disable_ip(): static ones too, which do not come back),
    keeping its local addresses' routes; going up puts its addresses' routes back."""
    try:
        words = [w for w in words if w != "set"]
        if words[:1] == ["dev"]:
            words = words[1:]
        if not words:
            raise IpError(1, 'Not enough information: "dev" argument is required.')
        d = ns.by_name.get(words[0])
        if d is None:
            raise IpError(1, f'Cannot find device "{words[0]}"')
        up, mtu, i = None, None, 1
        while i < len(words):
            w = words[i]
            if w in ("up", "down"):
                up = w == "up"
                i += 1
            elif w == "mtu":
                v = _need(words, i, w)
                if not v.isdigit():
                    raise IpError(1, f'Error: argument "{v}" is wrong: Invalid "mtu" value')
                mtu = int(v)
                if mtu < 68:
                    raise _extack("mtu less than device minimum.")
                if mtu > 65535:
                    raise _extack("mtu greater than device maximum.")
                i += 2
            else:
                raise IpError(1, f'Error: either "dev" is duplicate, or "{w}" is a garbage.')
        if mtu is not None:
            d.mtu = mtu
            ns.fib.changed()
        if up is not None and up != d.up:
            d.up = up
            ns.addresses_changed(d)
        if mtu is not None or up is not None:
            ns.v6.link_changed(d)              # addrconf's NETDEV_CHANGEMTU, NETDEV_UP/DOWN
        return 0, "", ""
    except IpError as e:
        return e.status, "", f"{e}\n"
