"""The topology file: hosts (network namespaces) with interfaces, addresses,
routes and sysctls, and the links that join interfaces.

    hosts:
      h1:
        interfaces:
          eth0: {mac: "02:00:00:00:01:0a", addresses: [10.0.1.10/24], mtu: 1500}
        routes:
          - default via 10.0.1.1
        sysctls:
          net.ipv4.ip_forward: 0
    links:
      - endpoints: [h1:eth0, r1:eth0]

Routes use `ip route` syntax: `[unicast|blackhole|unreachable|prohibit] PREFIX
[via GW] [dev IF] [src ADDR] [metric N]`. Every host also gets `lo` (ifindex 1,
127.0.0.1/8). A bad file is refused with `FILE:LINE: problem`.
"""
import hashlib
import pathlib
import re
from dataclasses import dataclass, field

import yaml

from . import sysctl
from ..wire import ethernet, ipv4
from ..iproute2 import q_netem, tc_util
from .pkt_sched import Qopt

IFNAMSIZ = 16
LOOPBACK_MTU = 65536
ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")


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

    @property
    def is_loopback(self) -> bool:
        return self.ifindex == 1


@dataclass
class Route:
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
    hosts: dict[str, Host]
    links: list[Link]
    source: str = "<topology>"

    def peers(self, host: str, ifname: str) -> list[tuple[str, str]]:
        for link in self.links:
            if (host, ifname) in link.endpoints:
                return [e for e in link.endpoints if e != (host, ifname)]
        return []




def select_addr(addrs: list[tuple[int, int]], dst: int) -> int:
    """inet_select_addr() (net/ipv4/devinet.c) on one device's addresses
    [(address, prefix length)]: the one on dst's subnet, else the primary (the
    first); 0 when the device has none (the caller looks further)."""
    for a, p in addrs:
        if (a ^ dst) & ipv4.prefix_mask(p) == 0:
            return a
    return addrs[0][0] if addrs else 0


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


def auto_mac(host: str, ifname: str) -> bytes:
    """A stable, locally administered unicast MAC for an interface given none."""
    h = hashlib.sha256(f"{host}/{ifname}".encode()).digest()
    return bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]


class _Loader:
    def __init__(self, source: str):
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
        top = self.mapping(root, "the topology", ("hosts", "links"))
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
        return Topology(hosts, links, self.source)

    def host(self, name: str, node, macs: dict) -> Host:
        spec = self.mapping(node, f"host {name!r}", ("interfaces", "routes", "sysctls", "iptables"))
        interfaces = {"lo": Interface("lo", 1, ethernet.ZERO, [(ipv4.aton("127.0.0.1"), 8)], LOOPBACK_MTU)}
        if "interfaces" in spec:
            for ifname, (knode, vnode) in self.mapping(spec["interfaces"][1], f"host {name!r} interfaces").items():
                where = f"host {name!r} interface {ifname!r}"
                if ifname == "lo":
                    self.fail(knode, f"{where}: lo is built in")
                if not dev_valid_name(ifname):
                    self.fail(knode, f"{where}: interface names are 1 to 15 characters, not '.' or '..', "
                                     "without '/', ':' or whitespace")
                iface = self.interface(name, ifname, len(interfaces) + 1, vnode, where)
                if iface.mac in macs:
                    mac = ethernet.mac_to_str(iface.mac)
                    # Name the `mac` value's line, not the interface's first key.
                    mac_node = next((v for k, v in vnode.value if k.value == "mac"), vnode) \
                        if isinstance(vnode, yaml.MappingNode) else vnode
                    self.fail(mac_node, f"{where}: MAC {mac} is already used by {macs[iface.mac]}")
                macs[iface.mac] = f"{name}:{ifname}"
                interfaces[ifname] = iface
        host = Host(name, interfaces)
        if "routes" in spec:
            lines: dict[tuple[int, int, int], int] = {}
            for rnode in self.sequence(spec["routes"][1], f"host {name!r} routes"):
                route = self.route(host, rnode)
                # `ip route add` is NLM_F_CREATE|NLM_F_EXCL: fib_table_insert() refuses an alias with the
                # same prefix, tos and priority (metric) with -EEXIST, whatever its type or gateway.
                key = (route.dst, route.plen, route.metric)
                if key in lines:
                    self.fail(rnode, f"host {name!r} route {rnode.value!r}: RTNETLINK answers: File exists "
                                     f"(same prefix and metric as the route at line {lines[key]})")
                lines[key] = rnode.start_mark.line + 1
                host.routes.append(route)
        if "sysctls" in spec:
            for key, (knode, vnode) in self.mapping(spec["sysctls"][1], f"host {name!r} sysctls").items():
                try:
                    k, v = sysctl.parse(key, self.scalar(vnode, key), set(interfaces))
                except ValueError as e:
                    self.fail(knode, f"host {name!r} sysctl {key}: {e}")
                host.sysctls[k] = v
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

    def interface(self, host: str, ifname: str, ifindex: int, node, where: str) -> Interface:
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

    def route(self, host: Host, node) -> Route:
        text = self.scalar(node, f"host {host.name!r} route")
        words = text.split()
        where = f"host {host.name!r} route {text!r}"
        if not words:
            self.fail(node, f"{where}: empty route")
        rtype = "unicast"
        if words[0] in ROUTE_TYPES:
            rtype = words.pop(0)
        if not words:
            self.fail(node, f"{where}: no destination prefix")
        dst = words.pop(0)
        addr, plen = (0, 0) if dst == "default" else self.prefix(node, dst, where)
        if addr & ~ipv4.prefix_mask(plen) & 0xFFFFFFFF:
            self.fail(node, f"{where}: {dst} has host bits set (did you mean "
                            f"{ipv4.ntoa(addr & ipv4.prefix_mask(plen))}/{plen}?)")
        route = Route(addr, plen, rtype)
        while words:
            key = words.pop(0)
            if not words:
                self.fail(node, f"{where}: {key!r} needs a value")
            value = words.pop(0)
            if key == "via":
                route.via = self.address(node, value, where)
            elif key == "dev":
                if value not in host.interfaces:
                    self.fail(node, f"{where}: no interface {value!r} on {host.name}")
                route.dev = value
            elif key == "src":
                route.src = self.address(node, value, where)
                if not any(a == route.src for i in host.interfaces.values() for a, _ in i.addresses):
                    self.fail(node, f"{where}: src {value} is not an address of {host.name}")
            elif key == "metric":
                if not value.isdigit():
                    self.fail(node, f"{where}: metric {value!r} is not a number")
                route.metric = int(value)
            else:
                self.fail(node, f"{where}: unknown keyword {key!r} (expected via, dev, src or metric)")
        if rtype == "unicast":
            if not route.via and not route.dev:
                self.fail(node, f"{where}: needs 'via GATEWAY' or 'dev IFNAME'")
            if route.via:
                on_link = [i.name for i in host.interfaces.values()
                           for a, p in i.addresses if (a ^ route.via) & ipv4.prefix_mask(p) == 0]
                if not on_link or (route.dev and route.dev not in on_link):
                    self.fail(node, f"{where}: Nexthop has invalid gateway "
                                    f"({ipv4.ntoa(route.via)} is on no subnet of {route.dev or host.name})")
                route.dev = route.dev or on_link[0]
        elif route.via or route.dev:
            self.fail(node, f"{where}: a {rtype} route takes no 'via' or 'dev'")
        return route

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
