"""The topology file: hosts (network namespaces) with interfaces, addresses,
routes and sysctls, and the links that join interfaces.

    hosts:
      h1:
        interfaces:
          eth0: {mac: "02:00:00:00:01:0a", addresses: [10.0.1.10/24, 2001:db8:1::10/64], mtu: 1500}
        routes:
          - default via 10.0.1.1
          - default via 2001:db8:1::1
        sysctls:
          net.ipv4.ip_forward: 0
    links:
      - endpoints: [h1:eth0, r1:eth0]

Routes use `ip route` syntax: `[unicast|blackhole|unreachable|prohibit] PREFIX
[via GW] [dev IF] [src ADDR] [metric N]`, or the same as a mapping (`{to: PREFIX,
via: GW, dev: IF, src: ADDR, metric: N, type: TYPE}`). A route is IPv6 when its
prefix or gateway is (`default via 2001:db8:1::1`, `::/0 dev eth0`); IPv6 routes
are kept apart (Host.routes6) and checked as `ip -6 route add` checks them.
Every host also gets `lo` (ifindex 1, 127.0.0.1/8 and ::1/128); every other
interface with IPv6 on gets its EUI-64 link-local address (Interface.addrs6).
A bad file is refused with `FILE:LINE: problem`.
"""
import errno
import hashlib
import ipaddress
import pathlib
import re
from dataclasses import dataclass, field

import yaml

from . import sysctl
from ..wire import ethernet, ipv4, ipv6
from ..iproute2 import q_netem, tc_util
from .pkt_sched import Qopt

IFNAMSIZ = 16
LOOPBACK_MTU = 65536
ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")
ROUTE_KEYS = ("to", "via", "dev", "src", "metric", "type")


class TopologyError(ValueError):
    pass


@dataclass
class Interface:
    name: str
    ifindex: int
    mac: bytes
    addresses: list[tuple[int, int]]       # (address, prefix length)
    mtu: int = 1500
    tap: str | None = None                 # backed by this Linux TAP device
    speed: int = 0                         # line rate in bytes/s; 0: none enforced, as a veth pair
    # IPv6 (address as a 128-bit int, prefix length) in the order configured: the link-local
    # (fe80::/64, EUI-64 of the MAC) first, then the file's; lo: ::1/128; none when IPv6 is off
    addrs6: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_loopback(self) -> bool:
        return self.ifindex == 1


@dataclass
class Route:
    """An IPv4 route (Host.routes) or an IPv6 one (Host.routes6: 128-bit addresses, the
    device always resolved, metric 1024 unless given)."""
    dst: int
    plen: int
    type: str = "unicast"
    via: int = 0
    dev: str | None = None
    src: int = 0
    metric: int = 0


@dataclass
class Host:
    name: str
    interfaces: dict[str, Interface]
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, object] = field(default_factory=dict)
    iptables: str = ""                 # the host's rules, in iptables-save's format
    routes6: list[Route] = field(default_factory=list)
    # net.ipv6.conf.{all,default,IF}.* once the file's sysctls are written (sysctl.conf6())
    conf6: dict[str, dict[str, int]] = field(default_factory=dict)

    def interface(self, ifindex: int) -> Interface | None:
        for i in self.interfaces.values():
            if i.ifindex == ifindex:
                return i
        return None


@dataclass
class Link:
    endpoints: list[tuple[str, str]]       # (host, ifname)
    netem: str | None = None               # tc's words, as the file gives them
    netem_qopt: Qopt | None = None         # what tc would hand the kernel for them


@dataclass
class Topology:
    hosts: dict[str, Host]                 # the hosts this view serves (a shard's: shard_view())
    links: list[Link]                      # every cable; an end on another shard's host is remote
    source: str = "<topology>"
    shards: int = 1
    placement: dict[str, int] = field(default_factory=dict)   # every host of the file -> its shard
    shard: int | None = None               # the shard this view is of (None: the whole topology)
    remote: dict[str, Host] = field(default_factory=dict)     # the other shards' hosts (names, addresses)

    def shard_view(self, shard: int) -> "Topology":
        """What shard `shard`'s services serve: its hosts; the rest are remote."""
        mine = {n: h for n, h in self.hosts.items() if self.placement.get(n, 0) == shard}
        others = {n: h for n, h in (self.hosts | self.remote).items() if n not in mine}
        return Topology(mine, self.links, self.source, self.shards, self.placement, shard, others)

    def cross_shard(self, link: Link) -> bool:
        return len({self.placement.get(h, 0) for h, _ in link.endpoints}) > 1

    def peers(self, host: str, ifname: str) -> list[tuple[str, str]]:
        for link in self.links:
            if (host, ifname) in link.endpoints:
                return [e for e in link.endpoints if e != (host, ifname)]
        return []

    def hosts_file(self) -> dict[str, list[str]]:
        """name -> addresses, as an /etc/hosts written for the topology would list them:
        localhost, and each host's interfaces' addresses (IPv4, then IPv6 but link-local)."""
        names = {"localhost": ["127.0.0.1", "::1"], "ip6-localhost": ["::1"]}
        every = self.hosts | self.remote
        for name in self.placement or every:           # the file's order, on every shard alike
            host = every[name]
            addrs = []
            for iface in host.interfaces.values():
                if iface.is_loopback:
                    continue
                addrs += [str(ipaddress.IPv4Address(a)) for a, _ in iface.addresses]
                addrs += [str(ipaddress.IPv6Address(a)) for a, _ in iface.addrs6 if a >> 118 != 0x3FA]
            names[name] = addrs
        return names


def select_addr(addrs: list[tuple[int, int]], dst: int) -> int:
    """inet_select_addr() (net/ipv4/devinet.c) on one device's addresses
    [(address, prefix length)]: the one on dst's subnet, else the primary (the
    first); 0 when the device has none (the caller looks further)."""
    for a, p in addrs:
        if (a ^ dst) & ipv4.prefix_mask(p) == 0:
            return a
    return addrs[0][0] if addrs else 0


def is_ipv6_route(text: str) -> bool:
    """A route is IPv6 when its prefix is, or (`default`) its gateway or source is, as
    iproute2 takes the family from the first address it reads."""
    words = text.split()
    if words and words[0] in ROUTE_TYPES:
        words = words[1:]
    if not words:
        return False
    if words[0] != "default":
        return ":" in words[0]
    return any(k in ("via", "src") and ":" in v for k, v in zip(words[1::2], words[2::2]))


def dev_valid_name(name: str) -> bool:
    """net/core/dev.c dev_valid_name(): 1 to IFNAMSIZ-1 bytes, not "." or "..",
    no '/', ':' or whitespace (the kernel's isspace(), which includes 0xa0)."""
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or name in (".", "..") or 0 in raw:
        return False
    return not any(b in b"/: \t\n\v\f\r" or b == 0xA0 for b in raw)


def default_path() -> pathlib.Path:
    from importlib import resources
    return pathlib.Path(str(resources.files("pktflow") / "topologies" / "default.yaml"))


def load(path: str | pathlib.Path | None = None) -> Topology:
    path = pathlib.Path(path) if path else default_path()
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(f"{path}: cannot read the topology file: {e.strerror}") from None
    return loads(text, str(path))


def loads(text: str, source: str = "<topology>") -> Topology:
    return _Loader(source).load(text)


MAX_SHARDS = 64


def place(hosts: list[str], links: list[Link], shards: int, pinned: dict[str, int]) -> dict[str, int]:
    """Which shard serves each host: the file's `shard:` where it says, the rest so that
    shards are as even as can be (sizes differ by one at most, pinned hosts counted) and
    as few cables as possible cross shards: hosts in breadth-first order over the cables,
    each onto the shard with room where most of its placed neighbours are, then single
    moves and swaps between shards while they cut fewer cables."""
    if shards == 1:
        return {h: 0 for h in hosts}
    adj: dict[str, list[str]] = {h: [] for h in hosts}
    for link in links:
        ends = [h for h, _ in link.endpoints]
        for h in ends:
            adj[h] += [o for o in ends if o != h]
    cap = -(-len(hosts) // shards)
    where = dict(pinned)
    size = [0] * shards
    for s in where.values():
        size[s] += 1
    order, seen = [], set()
    for start in [h for h in hosts if h in pinned] + hosts:       # BFS from the pinned hosts first
        queue = [start] if start not in seen else []
        seen.add(start)
        while queue:
            h = queue.pop(0)
            order.append(h)
            for o in adj[h]:
                if o not in seen:
                    seen.add(o)
                    queue.append(o)
    for h in order:
        if h in where:
            continue
        pull = [0] * shards
        for o in adj[h]:
            if o in where:
                pull[where[o]] += 1
        room = [s for s in range(shards) if size[s] < cap] or list(range(shards))
        s = max(room, key=lambda s: (pull[s], -size[s], -s))
        where[h] = s
        size[s] += 1

    def gain(h, s):                      # cables of h that stop crossing if h moves to s
        return sum(where[o] == s for o in adj[h]) - sum(where[o] == where[h] for o in adj[h])
    free = [h for h in hosts if h not in pinned]
    for _ in range(16):                  # passes of first-improvement moves and swaps
        improved = False
        # only a host with a cable to another shard can gain (its partner in a swap may be any)
        edge = [h for h in free if any(where[o] != where[h] for o in adj[h])]
        for a in edge:
            moves = [(gain(a, s), s) for s in range(shards) if s != where[a] and size[s] < cap]
            g, s = max(moves, default=(0, None))
            if g > 0:
                size[where[a]] -= 1
                size[s] += 1
                where[a], improved = s, True
                continue
            for b in free:
                if where[a] != where[b] and gain(a, where[b]) + gain(b, where[a]) - 2 * adj[a].count(b) > 0:
                    where[a], where[b] = where[b], where[a]
                    improved = True
                    break
        if not improved:
            break
    return {h: where[h] for h in hosts}


def auto_mac(host: str, ifname: str) -> bytes:
    """A stable, locally administered unicast MAC for an interface given none."""
    h = hashlib.sha256(f"{host}/{ifname}".encode()).digest()
    return bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]


class _Loader:
    def __init__(self, source: str):
        self.pins: dict[str, object] = {}      # host -> its `shard:` node
        self.source = source

    def fail(self, node, problem: str):
        line = node.start_mark.line + 1 if node is not None else 1
        raise TopologyError(f"{self.source}:{line}: {problem}")

    # -- YAML nodes, read without yaml's type guessing (a MAC is not a number)
    def mapping(self, node, what: str, allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        out = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                self.fail(k, f"{what}: keys must be plain names")
            if k.value in out:
                self.fail(k, f"{what}: {k.value!r} appears twice")
            if allowed is not None and k.value not in allowed:
                self.fail(k, f"{what}: unknown key {k.value!r} (expected one of: {', '.join(allowed)})")
            out[k.value] = (k, v)
        return out

    def sequence(self, node, what: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return node.value

    def scalar(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what} must be a single value")
        return node.value

    def integer(self, node, what: str, lo: int, hi: int) -> int:
        text = self.scalar(node, what)
        try:
            value = int(text, 0)
        except ValueError:
            self.fail(node, f"{what}: {text!r} is not an integer")
        if not lo <= value <= hi:
            self.fail(node, f"{what}: {value} is out of range {lo}..{hi}")
        return value

    def address(self, node, text: str, what: str) -> int:
        try:
            return ipv4.aton(text)
        except ValueError:
            self.fail(node, f"{what}: {text!r} is not an IPv4 address")

    def prefix(self, node, text: str, what: str) -> tuple[int, int]:
        addr, _, plen = text.partition("/")
        a = self.address(node, addr, what)
        if not plen:
            return a, 32
        if not plen.isdigit() or not 0 <= int(plen) <= 32:
            self.fail(node, f"{what}: {text!r} has a bad prefix length")
        return a, int(plen)

    # -- the file
    def load(self, text: str) -> Topology:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            raise TopologyError(f"{self.source}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
        if root is None:
            raise TopologyError(f"{self.source}:1: the file is empty (expected 'hosts:' and 'links:')")
        top = self.mapping(root, "the topology", ("hosts", "links", "shards"))
        if "hosts" not in top:
            self.fail(root, "no 'hosts:' section")
        hosts: dict[str, Host] = {}
        macs: dict[bytes, str] = {}
        for name, (knode, vnode) in self.mapping(top["hosts"][1], "hosts").items():
            if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
                self.fail(knode, f"host name {name!r}: use letters, digits, '-', '_' or '.'")
            hosts[name] = self.host(name, vnode, macs)
        seen: dict[tuple[str, str], int] = {}     # endpoint -> line of the link that has it
        links = [self.link(n, hosts, seen) for n in self.sequence(top["links"][1], "links")] if "links" in top else []
        shards = self.integer(top["shards"][1], "shards", 1, MAX_SHARDS) if "shards" in top else 1
        pinned = {}
        for name, node in self.pins.items():
            pinned[name] = self.integer(node, f"host {name!r} shard", 0, MAX_SHARDS - 1)
            if pinned[name] >= shards:
                self.fail(node, f"host {name!r} shard: {pinned[name]} is not one of the topology's shards "
                                f"(shards: {shards}, numbered from 0)")
        return Topology(hosts, links, self.source, shards, place(list(hosts), links, shards, pinned))

    def host(self, name: str, node, macs: dict) -> Host:
        spec = self.mapping(node, f"host {name!r}", ("interfaces", "routes", "sysctls", "iptables", "shard"))
        if "shard" in spec:
            self.pins[name] = spec["shard"][1]
        interfaces = {"lo": Interface("lo", 1, ethernet.ZERO, [(ipv4.aton("127.0.0.1"), 8)], LOOPBACK_MTU)}
        addrs6: dict[str, list] = {}           # ifname -> the file's IPv6 (address, plen, node)
        if "interfaces" in spec:
            for ifname, (knode, vnode) in self.mapping(spec["interfaces"][1], f"host {name!r} interfaces").items():
                where = f"host {name!r} interface {ifname!r}"
                if ifname == "lo":
                    self.fail(knode, f"{where}: lo is built in")
                if not dev_valid_name(ifname):
                    self.fail(knode, f"{where}: interface names are 1 to 15 characters, not '.' or '..', "
                                     "without '/', ':' or whitespace")
                iface = self.interface(name, ifname, len(interfaces) + 1, vnode, where, addrs6.setdefault(ifname, []))
                if iface.mac in macs:
                    mac = ethernet.mac_to_str(iface.mac)
                    # Name the `mac` value's line, not the interface's first key.
                    mac_node = next((v for k, v in vnode.value if k.value == "mac"), vnode) \
                        if isinstance(vnode, yaml.MappingNode) else vnode
                    self.fail(mac_node, f"{where}: MAC {mac} is already used by {macs[iface.mac]}")
                macs[iface.mac] = f"{name}:{ifname}"
                interfaces[ifname] = iface
        host = Host(name, interfaces)
        routes6 = []                           # (node, text): checked once the IPv6 addresses are known
        if "routes" in spec:
            lines: dict[tuple[int, int, int], int] = {}
            for rnode in self.sequence(spec["routes"][1], f"host {name!r} routes"):
                text = self.route_text(host, rnode)
                if is_ipv6_route(text):
                    routes6.append((rnode, text))
                    continue
                route = self.route(host, rnode, text)
                # `ip route add` is NLM_F_CREATE|NLM_F_EXCL: fib_table_insert() refuses an alias with the
                # same prefix, tos and priority (metric) with -EEXIST, whatever its type or gateway.
                key = (route.dst, route.plen, route.metric)
                if key in lines:
                    self.fail(rnode, f"host {name!r} route {text!r}: RTNETLINK answers: File exists "
                                     f"(same prefix and metric as the route at line {lines[key]})")
                lines[key] = rnode.start_mark.line + 1
                host.routes.append(route)
        if "sysctls" in spec:
            for key, (knode, vnode) in self.mapping(spec["sysctls"][1], f"host {name!r} sysctls").items():
                try:
                    k, v = sysctl.parse(key, self.scalar(vnode, key), set(interfaces))
                except ValueError as e:
                    self.fail(knode, f"host {name!r} sysctl {key}: {e}")
                dev = k.split(".")[3] if k.startswith("net.ipv6.conf.") and k.endswith(".mtu") else None
                if dev in interfaces and v > interfaces[dev].mtu:     # addrconf_sysctl_mtu(): up to the device's
                    self.fail(knode, f"host {name!r} sysctl {key}: {v} is out of range "
                                     f"{sysctl.IPV6_MIN_MTU}..{interfaces[dev].mtu} ({dev}'s MTU)")
                host.sysctls[k] = v
        self.ipv6(host, addrs6, routes6)
        if "iptables" in spec:
            host.iptables = self.rules(name, spec["iptables"][1])
        return host

    def rules(self, host: str, node) -> str:
        """The `iptables:` text, checked as iptables-restore would load it."""
        from ..ip.netfilter.iptables import iptables_restore
        from ..ip.netfilter.x_tables import Netfilter
        text = self.scalar(node, f"host {host!r} iptables")
        status, _, err = iptables_restore(Netfilter(), text)
        if status:
            # name the rule's own line: a block scalar's text starts on the line after its `|`
            at = re.search(r"line:? (\d+)", err)
            line = node.start_mark.line + 1 + (int(at.group(1)) if at and node.style == "|" else 0)
            problem = " ".join(x for x in err.strip().splitlines() if not x.startswith("Try `"))
            raise TopologyError(f"{self.source}:{line}: host {host!r} iptables: {problem}")
        return text

    def interface(self, host: str, ifname: str, ifindex: int, node, where: str, six: list) -> Interface:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            spec = {}
        else:
            spec = self.mapping(node, where, ("mac", "addresses", "mtu", "tap", "speed"))
        mac = auto_mac(host, ifname)
        if "mac" in spec:
            text = self.scalar(spec["mac"][1], f"{where} mac")
            try:
                mac = ethernet.mac_from_str(text)
            except ValueError as e:
                self.fail(spec["mac"][1], f"{where}: {e}")
            if ethernet.is_multicast(mac) or mac == ethernet.ZERO:
                self.fail(spec["mac"][1], f"{where}: {text} is not a unicast MAC address")
        addrs = []
        if "addresses" in spec:
            for anode in self.sequence(spec["addresses"][1], f"{where} addresses"):
                text = self.scalar(anode, f"{where} address")
                if ":" in text:
                    six.append(self.address6(anode, text, where, six))
                    continue
                if "/" not in text:
                    self.fail(anode, f"{where}: {text!r} needs a prefix length (e.g. {text}/24)")
                addr, plen = self.prefix(anode, text, where)
                if plen == 0 or ipv4.is_multicast(addr) or addr == ipv4.INADDR_BROADCAST or ipv4.is_zeronet(addr):
                    self.fail(anode, f"{where}: {text} cannot be an interface address")
                if (addr, plen) in addrs:
                    self.fail(anode, f"{where}: {text} is listed twice")
                addrs.append((addr, plen))
        mtu = self.integer(spec["mtu"][1], f"{where} mtu", 68, 65535) if "mtu" in spec else 1500
        tap = self.scalar(spec["tap"][1], f"{where} tap") if "tap" in spec else None
        if tap is not None and not 0 < len(tap) < IFNAMSIZ:
            self.fail(spec["tap"][1], f"{where}: TAP device names are 1 to 15 characters")
        speed = 0
        if "speed" in spec:                    # tc's rate words: 10mbit, 1gbit, 100kbit ...
            text = self.scalar(spec["speed"][1], f"{where} speed")
            try:
                speed = tc_util.get_rate64(text)
            except ValueError:
                speed = 0
            if not speed:
                self.fail(spec["speed"][1], f"{where}: speed {text!r} is not a rate (e.g. 10mbit, 1gbit)")
        return Interface(ifname, ifindex, mac, addrs, mtu, tap, speed)

    def route_text(self, host: Host, node) -> str:
        """A route's `ip route` words: the scalar itself, or a mapping's keys in that order."""
        if not isinstance(node, yaml.MappingNode):
            return self.scalar(node, f"host {host.name!r} route")
        spec = self.mapping(node, f"host {host.name!r} route", ROUTE_KEYS)
        if "to" not in spec:
            self.fail(node, f"host {host.name!r} route: no 'to:' (the destination prefix, or default)")
        values = {k: self.scalar(v, f"host {host.name!r} route {k}") for k, (_, v) in spec.items()}
        words = [values["type"]] if "type" in values else []
        words.append(values["to"])
        for k in ("via", "dev", "src", "metric"):
            if k in values:
                words += [k, values[k]]
        return " ".join(words)

    def route(self, host: Host, node, text: str) -> Route:
        where = f"host {host.name!r} route {text!r}"

        def prefix(dst: str) -> tuple[int, int]:
            addr, plen = self.prefix(node, dst, where)
            if addr & ~ipv4.prefix_mask(plen) & 0xFFFFFFFF:
                self.fail(node, f"{where}: {dst} has host bits set (did you mean "
                                f"{ipv4.ntoa(addr & ipv4.prefix_mask(plen))}/{plen}?)")
            return addr, plen

        def address(key: str, value: str) -> int:
            a = self.address(node, value, where)
            if key == "src" and not any(a == b for i in host.interfaces.values() for b, _ in i.addresses):
                self.fail(node, f"{where}: src {value} is not an address of {host.name}")
            return a
        route = self.route_words(host, node, text, where, prefix, address)
        if route.type == "unicast" and route.via:
            on_link = [i.name for i in host.interfaces.values()
                       for a, p in i.addresses if (a ^ route.via) & ipv4.prefix_mask(p) == 0]
            if not on_link or (route.dev and route.dev not in on_link):
                self.fail(node, f"{where}: Nexthop has invalid gateway "
                                f"({ipv4.ntoa(route.via)} is on no subnet of {route.dev or host.name})")
            route.dev = route.dev or on_link[0]
        return route

    def route_words(self, host: Host, node, text: str, where: str, prefix, address,
                    metric_max: int | None = None) -> Route:
        """`ip route`'s words, [TYPE] PREFIX|default [via GW] [dev IF] [src ADDR] [metric N], of
        either family: `prefix(word)` and `address(key, word)` read its addresses."""
        words = text.split()
        if not words:
            self.fail(node, f"{where}: empty route")
        rtype = "unicast"
        if words[0] in ROUTE_TYPES:
            rtype = words.pop(0)
        if not words:
            self.fail(node, f"{where}: no destination prefix")
        dst = words.pop(0)
        addr, plen = (0, 0) if dst == "default" else prefix(dst)
        route = Route(addr, plen, rtype)
        while words:
            key = words.pop(0)
            if not words:
                self.fail(node, f"{where}: {key!r} needs a value")
            value = words.pop(0)
            if key in ("via", "src"):
                setattr(route, key, address(key, value))
            elif key == "dev":
                if value not in host.interfaces:
                    self.fail(node, f"{where}: no interface {value!r} on {host.name}")
                route.dev = value
            elif key == "metric":
                if not value.isdigit() or metric_max is not None and int(value) > metric_max:
                    self.fail(node, f"{where}: metric {value!r} is not a number" +
                                    (f" from 0 to {metric_max}" if metric_max is not None else ""))
                route.metric = int(value)
            else:
                self.fail(node, f"{where}: unknown keyword {key!r} (expected via, dev, src or metric)")
        if rtype == "unicast" and not route.via and not route.dev:
            self.fail(node, f"{where}: needs 'via GATEWAY' or 'dev IFNAME'")
        if rtype != "unicast" and (route.via or route.dev):
            self.fail(node, f"{where}: a {rtype} route takes no 'via' or 'dev'")
        return route

    # -- IPv6
    def address6(self, node, text: str, where: str, seen: list) -> tuple[int, int, object]:
        """One IPv6 interface address, refused as ipv6_add_addr() refuses it (::, multicast,
        ::1 off lo, one address twice whatever its prefix length)."""
        addr, slash, plen = text.partition("/")
        if not slash:
            self.fail(node, f"{where}: {text!r} needs a prefix length (e.g. {text}/64)")
        try:
            a = ipv6.aton(addr)
        except ValueError:
            self.fail(node, f"{where}: {addr!r} is not an IPv6 address")
        if not plen.isdigit() or not 0 <= int(plen) <= 128:
            self.fail(node, f"{where}: {text!r} has a bad prefix length (0 to 128)")
        if int(plen) == 0 or a in (ipv6.IN6ADDR_ANY, ipv6.IN6ADDR_LOOPBACK) or ipv6.is_multicast(a):
            self.fail(node, f"{where}: {text} cannot be an interface address")
        if any(a == b for b, _, _ in seen):
            self.fail(node, f"{where}: {ipv6.ntoa(a)} is listed twice")
        return a, int(plen), node

    def ipv6(self, host: Host, addrs6: dict[str, list], routes6: list):
        """The host's IPv6, once its interfaces and sysctls are known: each device's devconf,
        its addresses (the EUI-64 link-local first, unless IPv6 is off on it: disable_ipv6,
        or an MTU below 1280, as addrconf), then the IPv6 routes, checked in order as
        `ip -6 route add` would check them against what is there so far."""
        from ..ip import ip6_fib
        host.conf6 = sysctl.conf6(host.sysctls, {n: i.mtu for n, i in host.interfaces.items()})
        for iface in host.interfaces.values():
            listed, disabled = addrs6.get(iface.name, []), host.conf6[iface.name]["disable_ipv6"]
            where = f"host {host.name!r} interface {iface.name!r}"
            if disabled or iface.mtu < sysctl.IPV6_MIN_MTU:
                if listed:
                    why = f"net.ipv6.conf.{iface.name}.disable_ipv6 is {disabled}" if disabled else \
                        f"its MTU {iface.mtu} is below IPv6's minimum, {sysctl.IPV6_MIN_MTU}"
                    a, p, n = listed[0]
                    self.fail(n, f"{where}: {ipv6.ntoa(a)}/{p}: IPv6 is off on the interface ({why})")
                continue
            if iface.is_loopback:
                iface.addrs6 = [(ipv6.IN6ADDR_LOOPBACK, 128)]
                continue
            link_local = ipv6.link_local(iface.mac)
            for a, p, n in listed:
                if a == link_local:
                    self.fail(n, f"{where}: {ipv6.ntoa(a)} is its link-local address already (EUI-64 of its MAC)")
            iface.addrs6 = [(link_local, 64)] + [(a, p) for a, p, _ in listed]
        fib = ip6_fib.build(host)
        lines: dict[tuple[int, int, int], int] = {}
        for node, text in routes6:
            where = f"host {host.name!r} route {text!r}"
            route = self.route6(host, node, text, where)
            key = (route.dst & ipv6.prefix_mask(route.plen), route.plen, route.metric or ip6_fib.IP6_RT_PRIO_USER)
            if key in lines:
                self.fail(node, f"{where}: RTNETLINK answers: File exists "
                                f"(same prefix and metric as the route at line {lines[key]})")
            try:
                r = fib.route_add(ip6_fib.route_of(host, route))
            except ip6_fib.Fib6Error as e:
                self.fail(node, f"{where}: {e}{self._why6(host, route, e.errno)}")
            lines[key] = node.start_mark.line + 1
            route.dst, route.metric, route.dev = r.dst, r.metric, host.interface(r.dev).name
            host.routes6.append(route)

    @staticmethod
    def _why6(host: Host, route: Route, err: int) -> str:
        if err == errno.EHOSTUNREACH:
            return f" ({ipv6.ntoa(route.via)} is on no prefix of {route.dev or host.name})"
        if err == errno.EEXIST:
            return " (a route the kernel made for an address has this prefix and metric)"
        return ""

    def route6(self, host: Host, node, text: str, where: str) -> Route:
        """`ip -6 route add`'s words. Host bits in the prefix are cleared, as ip6_route_add()
        does, by the FIB (so is metric 0, which is 1024)."""
        def prefix(dst: str) -> tuple[int, int]:
            try:
                return ipv6.parse_prefix(dst)
            except ValueError:
                self.fail(node, f"{where}: {dst!r} is not an IPv6 prefix")

        def address(key: str, value: str) -> int:
            try:
                return ipv6.aton(value)
            except ValueError:
                self.fail(node, f"{where}: {key} {value!r} is not an IPv6 address")
        return self.route_words(host, node, text, where, prefix, address, 0xFFFFFFFF)

    def link(self, node, hosts: dict[str, Host], seen: dict[tuple[str, str], int]) -> Link:
        netem = qopt = None
        if isinstance(node, yaml.MappingNode):
            spec = self.mapping(node, "link", ("endpoints", "netem"))
            if "endpoints" not in spec:
                self.fail(node, "link: no 'endpoints:'")
            eps_node = spec["endpoints"][1]
            if "netem" in spec:
                netem = self.scalar(spec["netem"][1], "link netem")
                try:
                    qopt = q_netem.parse(netem)
                except ValueError as e:
                    self.fail(spec["netem"][1], f"link netem {netem!r}: {str(e).splitlines()[0]}")
        else:
            eps_node = node
        endpoints = []
        for ep in self.sequence(eps_node, "link endpoints"):
            text = self.scalar(ep, "link endpoint")
            host, _, ifname = text.partition(":")
            if not ifname:
                self.fail(ep, f"link endpoint {text!r}: write HOST:IFNAME")
            if host not in hosts:
                self.fail(ep, f"link endpoint {text!r}: no host {host!r}")
            if ifname not in hosts[host].interfaces or ifname == "lo":
                self.fail(ep, f"link endpoint {text!r}: host {host!r} has no interface {ifname!r}")
            if hosts[host].interfaces[ifname].tap:
                self.fail(ep, f"link endpoint {text!r}: {ifname} is backed by a TAP device, its peer is Linux")
            if (host, ifname) in endpoints:
                self.fail(ep, f"link endpoint {text!r} is listed twice")
            if (host, ifname) in seen:
                self.fail(ep, f"{host}:{ifname} is already on the link at line {seen[(host, ifname)]}")
            endpoints.append((host, ifname))
        if len(endpoints) < 2:
            self.fail(eps_node, "a link joins at least two interfaces")
        seen.update(dict.fromkeys(endpoints, node.start_mark.line + 1))
        return Link(endpoints, netem, qopt)
