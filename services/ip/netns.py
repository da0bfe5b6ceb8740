"""struct netns_ipv4: one namespace's IP state, built from its topology host."""
import random

from ..common.snmp import Mib
from ..common.sysctl import defaults as sysctl_defaults
from ..wire import ipv4
from . import fib as fibmod
from .icmp_ratelimit import RateLimits


class IpDevice:
    def __init__(self, iface):
        self.name, self.ifindex, self.mtu = iface.name, iface.ifindex, iface.mtu
        self.loopback = iface.is_loopback
        self.addrs = list(iface.addresses)


class IpNetns:
    def __init__(self, host, rng: random.Random):
        self.name = host.name
        self.sysctl = sysctl_defaults() | host.sysctls
        self.devices = {i.ifindex: IpDevice(i) for i in host.interfaces.values()}
        self.by_name = {d.name: d for d in self.devices.values()}
        self.fib = fibmod.Fib()
        for d in self.devices.values():
            for addr, plen in d.addrs:
                self.fib.add_ifaddr(d.ifindex, addr, plen, d.loopback)
        for r in host.routes:
            self.fib.add(fibmod.FibRoute(r.dst, r.plen, fibmod.TYPE_BY_NAME[r.type],
                                         self.by_name[r.dev].ifindex if r.dev else 0, r.via, r.src, r.metric))
        self.mib = Mib()
        self.devstats: dict[int, Mib] = {i: Mib() for i in self.devices}
        self.rng = rng
        self.icmp_limits = RateLimits(self.sysctl)
        self._idents: dict = {}

    @property
    def forwarding(self) -> bool:
        return bool(self.sysctl["net.ipv4.ip_forward"])

    @property
    def default_ttl(self) -> int:
        return self.sysctl["net.ipv4.ip_default_ttl"]

    def ifname(self, ifindex: int) -> str:
        d = self.devices.get(ifindex)
        return d.name if d else f"if{ifindex}"

    def select_addr(self, ifindex: int, dst: int, scope_link_ok: bool = True) -> int:
        """inet_select_addr(): the device's address on dst's subnet, else its
        first, else any address of the host that is not loopback."""
        dev = self.devices.get(ifindex)
        if dev:
            for a, p in dev.addrs:
                if (a ^ dst) & ipv4.prefix_mask(p) == 0:
                    return a
            if dev.addrs:
                return dev.addrs[0][0]
        for d in self.devices.values():
            if not d.loopback and d.addrs:
                return d.addrs[0][0]
        return 0

    def ident(self, saddr: int, daddr: int, proto: int) -> int:
        """__ip_select_ident(): a counter per (saddr, daddr, proto) from a random start."""
        key = (saddr, daddr, proto)
        v = self._idents.get(key)
        v = self.rng.getrandbits(16) if v is None else (v + 1) & 0xFFFF
        if len(self._idents) > 4096:
            self._idents.clear()
        self._idents[key] = v
        return v
