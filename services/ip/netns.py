"""struct netns_ipv4: one namespace's IP state, built from its topology host."""
from collections import deque
import random

from ..common import topology
from ..common.snmp import Mib
from ..common.sysctl import defaults as sysctl_defaults
from ..wire import ipv4
from . import fib as fibmod
from .addrconf import Ipv6Netns
from .icmp_ratelimit import RateLimits
from .ip_fragment import Frags


class IpDevice:
    def __init__(self, iface):
        self.name, self.ifindex, self.mtu = iface.name, iface.ifindex, iface.mtu
        self.loopback = iface.is_loopback
        self.addrs = list(iface.addresses)
        self.up = True                         # IFF_UP: `ip link set IF down` clears it
        self.forwarding = False                # conf.<dev>.forwarding, see IpNetns._replay_forwarding()
        self.accept_local = False              # conf.all or conf.<dev>.accept_local


class IpNetns:
    def __init__(self, host, rng: random.Random):
        self.name = host.name
        self.sysctl = sysctl_defaults() | host.sysctls
        self.devices = {i.ifindex: IpDevice(i) for i in host.interfaces.values()}
        self.by_name = {d.name: d for d in self.devices.values()}
        self.ifnames = {i: d.name for i, d in self.devices.items()}
        self.fib = fibmod.Fib()
        for d in self.devices.values():
            self._add_ifaddrs(d)
        for r in host.routes:
            # iproute2 `ip route add` asks for RT_SCOPE_LINK for a unicast route without a gateway.
            scope = fibmod.RT_SCOPE_LINK if r.type == "unicast" and not r.via else fibmod.RT_SCOPE_UNIVERSE
            self.fib.add(fibmod.FibRoute(r.dst, r.plen, fibmod.TYPE_BY_NAME[r.type],
                                         self.by_name[r.dev].ifindex if r.dev else 0, r.via, r.src, r.metric, scope))
        self._replay_forwarding(host.sysctls)
        # inet_addr_lst: every interface address and its device (__ip_dev_find(), fib_validate_source())
        self.ifaddrs = {a: d.ifindex for d in self.devices.values() for a, _ in d.addrs}
        self._copy_accept_local()
        self.mib = Mib()
        self.devstats: dict[int, Mib] = {i: Mib() for i in self.devices}
        self.rng = rng
        self.icmp_limits = RateLimits(self.sysctl)
        self._idents: dict = {}
        self.frags = Frags(self.sysctl)
        self.pmtu: dict = {}                   # daddr -> route.Fnhe: path MTUs learned from ICMP
        self.nf = None                         # netfilter: made on first use (netfilter/tools.py)
        self.nf_active = (False,) * 5          # per hook: does netfilter have work there? (tools.run() keeps it)
        self.ct = None                         # connection tracking: from the first rule that needs it
        self.ct_cur: dict = {}                 # id(skb) -> (state bits, conn, direction) between a packet's hooks
        self.dmesg: deque = deque(maxlen=1000)  # the kernel log (LOG target, martians): (time ns, line)
        self.v6 = Ipv6Netns(self, host)        # struct netns_ipv6: IPv6's devices, FIB, devconf (addrconf.py)
        self._printk = (-1 << 62, 0)           # net_ratelimit()'s window start and count
        if host.iptables:                      # the topology's rules, loaded as iptables-restore would
            from .netfilter import tools
            tools.run(self, "iptables-restore", [host.iptables], 0)

    def _add_ifaddrs(self, d: IpDevice):
        for i, (addr, plen) in enumerate(d.addrs):
            # __inet_insert_ifa(): an address in a subnet (same mask) the device already has is
            # IFA_F_SECONDARY; fib_add_ifaddr() then uses the primary.
            primary = next((a for a, p in d.addrs[:i] if p == plen and (a ^ addr) & ipv4.prefix_mask(p) == 0), 0)
            self.fib.add_ifaddr(d.ifindex, addr, plen, d.loopback, primary)

    def addresses_changed(self, d: IpDevice):
        """`ip addr` or `ip link set up|down` changed the device: its routes are
        made again from its addresses (local ones only while it is down, as
        fib_disable_ip() leaves them), and a down device keeps no other route."""
        for tid, table in self.fib.tables.items():
            for r in list(table.routes()):
                through = r.dev == d.ifindex or r.nhs and all(dev == d.ifindex for _, dev, _ in r.nhs)
                kernel = r.proto == "kernel"
                if through and (kernel or not d.up):
                    table.delete(r.dst, r.plen, lambda x, r=r: x is r)
        if d.up:
            self._add_ifaddrs(d)
        else:
            for addr, _ in d.addrs:
                self.fib.local.add(fibmod.FibRoute(addr, 32, fibmod.RTN_LOCAL, d.ifindex, prefsrc=addr,
                                                   scope=fibmod.RT_SCOPE_HOST, proto="kernel",
                                                   table=fibmod.TABLE_LOCAL))
        self.ifaddrs = {a: dev.ifindex for dev in self.devices.values() for a, _ in dev.addrs}
        self.fib.changed()

    def _copy_accept_local(self):
        all_accept_local = bool(self.sysctl.get("net.ipv4.conf.all.accept_local"))
        for d in self.devices.values():            # IN_DEV_ACCEPT_LOCAL() = IN_DEV_ORCONF(): all OR the device
            d.accept_local = all_accept_local or bool(self.sysctl.get(f"net.ipv4.conf.{d.name}.accept_local"))

    def _replay_forwarding(self, sysctls: dict):
        """The topology's forwarding sysctls written in file order, after the interfaces exist, as
        devinet_sysctl_forward() handles them: net.ipv4.ip_forward *is* conf.all.forwarding, and a
        change of it (inet_forward_change()) sets conf.default and every device; conf.<dev>.forwarding
        sets that device only; conf.default only seeds devices created later."""
        all_fwd = 0
        for key, value in sysctls.items():
            if key in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"):
                if value != all_fwd:
                    all_fwd = value
                    for d in self.devices.values():
                        d.forwarding = bool(value)
            elif key.startswith("net.ipv4.conf.") and key.endswith(".forwarding"):
                d = self.by_name.get(key.split(".")[3])
                if d is not None:
                    d.forwarding = bool(value)
        self.sysctl["net.ipv4.ip_forward"] = self._all_forwarding = all_fwd
        if "net.ipv4.conf.all.forwarding" in self.sysctl:
            self.sysctl["net.ipv4.conf.all.forwarding"] = all_fwd

    def sysctl_written(self, names: list[str]):
        """`sysctl -w`: what was copied from the sysctls at start follows them. Writing
        ip_forward (= conf.all.forwarding) sets every device when it changes
        (devinet_sysctl_forward()); conf.<dev>.forwarding sets that device."""
        sc = self.sysctl
        v6 = [name for name in names if name.startswith("net.ipv6.")]
        if v6:
            self.v6.sysctl_written(v6)
        for name in names:
            if name in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"):
                value = sc[name]
                if value != self._all_forwarding:
                    self._all_forwarding = value
                    for d in self.devices.values():
                        d.forwarding = bool(value)
                sc["net.ipv4.ip_forward"] = sc["net.ipv4.conf.all.forwarding"] = value
            elif name.startswith("net.ipv4.conf.") and name.endswith(".forwarding"):
                d = self.by_name.get(name.split(".")[3])
                if d is not None:
                    d.forwarding = bool(sc[name])
            elif name.endswith(".accept_local"):
                self._copy_accept_local()
            elif name.startswith("net.ipv4.icmp_"):
                self.icmp_limits = RateLimits(sc)
            elif name.startswith("net.ipv4.ipfrag_"):
                self.frags.configure(sc)
            elif name.startswith("net.netfilter.") and self.ct is not None:
                self.ct.configure(sc)

    @property
    def forwarding(self) -> bool:
        """net.ipv4.ip_forward (= conf.all.forwarding): IpForwarding in the MIB."""
        return bool(self.sysctl["net.ipv4.ip_forward"])

    def in_dev_forward(self, ifindex: int) -> bool:
        """IN_DEV_FORWARD(in_dev): the receiving device's own conf.<dev>.forwarding."""
        d = self.devices.get(ifindex)
        return d is not None and d.forwarding

    def in_dev_rpfilter(self, ifindex: int) -> int:
        """IN_DEV_RPFILTER(in_dev) = IN_DEV_MAXCONF(): the larger of conf.all and the
        device's own rp_filter (conf.default seeds only devices made later: none here)."""
        sc = self.sysctl
        own = sc.get(f"net.ipv4.conf.{self.ifname(ifindex)}.rp_filter", 0)
        return max(sc.get("net.ipv4.conf.all.rp_filter", 0), own)

    def in_dev_log_martians(self, ifindex: int) -> bool:
        """IN_DEV_LOG_MARTIANS() = IN_DEV_ORCONF(): conf.all or the device's own."""
        sc = self.sysctl
        return bool(sc.get("net.ipv4.conf.all.log_martians") or
                    sc.get(f"net.ipv4.conf.{self.ifname(ifindex)}.log_martians"))

    def printk_ratelimit(self, now: int) -> bool:
        """net_ratelimit(): at most 10 messages in 5 s (DEFAULT_RATELIMIT_BURST, _INTERVAL)."""
        start, n = self._printk
        if now - start >= 5_000_000_000:
            start, n = now, 0
        self._printk = (start, n + 1)
        return n < 10

    def in_dev_accept_local(self, ifindex: int) -> bool:
        """IN_DEV_ACCEPT_LOCAL(in_dev) = IN_DEV_ORCONF(): conf.all OR the device's own accept_local."""
        d = self.devices.get(ifindex)
        return d.accept_local if d is not None else bool(self.sysctl.get("net.ipv4.conf.all.accept_local"))

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
        if dev and dev.addrs:
            return topology.select_addr(dev.addrs, dst)
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
