"""One namespace's IPv6 state (struct netns_ipv6) and its devices' (struct
inet6_dev), as net/ipv6/addrconf.c keeps them: each device's devconf
(net.ipv6.conf.<if>.*: forwarding, hop_limit, mtu, disable_ipv6, ...), its
addresses and the multicast groups it joined, the IPv6 FIB (ip6_fib.py), the
path MTUs learned from Packet Too Big, the reassembly queues, and source
address selection (ipv6_dev_get_saddr(), RFC 6724).

Addresses are usable at once: duplicate address detection is the link room's
(neighbour discovery), and nothing here waits for it (as with `nodad`)."""
from pktflow.v1.layers_pb2 import RTN_ANYCAST

from ..wire import ipv6
from .ip6_fib import IFA_F_OPTIMISTIC, IFA_F_PERMANENT, IFA_F_TENTATIVE, Ip6Fib, addr_lines, build
from .reassembly import Frags6

LOOPBACK_IFINDEX = 1
ALL_NODES = ipv6.IN6ADDR_LINKLOCAL_ALLNODES
ALL_ROUTERS = ipv6.IN6ADDR_LINKLOCAL_ALLROUTERS
NODE_ALL_NODES, NODE_ALL_ROUTERS, SITE_ALL_ROUTERS = ipv6.aton("ff01::1"), ipv6.aton("ff01::2"), ipv6.aton("ff05::2")

# The default policy table of net/ipv6/addrlabel.c (RFC 6724 2.1, with 6to4, Teredo,
# ORCHID, site-local and 6bone as Linux has them): (prefix, length, label), longest first.
_LABELS = sorted(((ipv6.aton(p), n, label) for p, n, label in (
    ("::", 0, 1), ("fc00::", 7, 5), ("fec0::", 10, 11), ("2002::", 16, 2), ("3ffe::", 16, 12),
    ("2001::", 32, 6), ("2001:10::", 28, 7), ("::ffff:0:0", 96, 4), ("::", 96, 3), ("::1", 128, 0))),
    key=lambda x: -x[1])


def addr_label(addr: int) -> int:
    """ipv6_addr_label(): the label of the longest policy prefix holding addr."""
    return next(label for p, n, label in _LABELS if (addr ^ p) & ipv6.prefix_mask(n) == 0)


def common_prefix(a: int, b: int) -> int:
    """ipv6_addr_diff(): how many leading bits two addresses share."""
    return 128 - (a ^ b).bit_length()


class Inet6Dev:
    """struct inet6_dev: IPv6 on one device."""
    __slots__ = ("ifindex", "name", "loopback", "addrs", "cnf")

    def __init__(self, ifindex: int, name: str, loopback: bool, cnf: dict):
        self.ifindex, self.name, self.loopback = ifindex, name, loopback
        self.addrs: list[tuple[int, int, int]] = []    # (address, plen, IFA_F_*) in the order added
        self.cnf = cnf                                 # net.ipv6.conf.<name>.*, shared with Ipv6Netns.conf

    @property
    def mtu(self) -> int:
        """idev->cnf.mtu6: the IPv6 MTU (1280 up to the device's MTU)."""
        return self.cnf["mtu"]

    def in_order(self) -> list[tuple[int, int, int]]:
        """idev->addr_list: by scope, global first, the newest first within a scope."""
        order = sorted(range(len(self.addrs)), key=lambda i: (-ipv6.addr_src_scope(self.addrs[i][0]), -i))
        return [self.addrs[i] for i in order]

    def usable(self):
        """The addresses a packet may come from: not tentative (unless optimistic)."""
        return [a for a in self.addrs if not a[2] & IFA_F_TENTATIVE or a[2] & IFA_F_OPTIMISTIC]

    def groups(self) -> set[int]:
        """The multicast groups the device joined: all-nodes (ipv6_dev_mc_inc() in
        ipv6_add_dev()), each address's solicited-node group (addrconf_join_solict()),
        and the all-routers groups while it forwards (dev_forward_change())."""
        g = {ALL_NODES, NODE_ALL_NODES} | {ipv6.solicited_node(a) for a, _, _ in self.addrs}
        if self.cnf["forwarding"]:
            g |= {ALL_ROUTERS, NODE_ALL_ROUTERS, SITE_ALL_ROUTERS}
        return g


class Ipv6Netns:
    """struct netns_ipv6 of one host. `ns` is the namespace's IpNetns: the MIB, the
    devices' IPv4 view (up, MTU), the sysctl values and the ICMP rate limits are shared."""

    def __init__(self, ns, host):
        self.ns = ns
        self.conf = {dev: dict(cnf) for dev, cnf in host.conf6.items()}
        self.fib: Ip6Fib = build(host)
        self.devs: dict[int, Inet6Dev] = {}
        self.macs = {i.ifindex: i.mac for i in host.interfaces.values()}
        for iface in sorted(host.interfaces.values(), key=lambda i: i.ifindex):
            if iface.addrs6:
                dev = self.devs[iface.ifindex] = Inet6Dev(iface.ifindex, iface.name, iface.is_loopback,
                                                          self.conf[iface.name])
                dev.addrs = [(a, p, IFA_F_PERMANENT) for a, p in iface.addrs6]
        self.pmtu: dict = {}                   # daddr -> route.Fnhe: the exceptions Packet Too Big made
        self.frags = Frags6(ns.sysctl)
        self._secret = None

    @property
    def mib(self):
        return self.ns.mib

    @property
    def name(self) -> str:
        return self.ns.name

    @property
    def forwarding(self) -> bool:
        """net.ipv6.conf.all.forwarding: what ip6_forward() asks."""
        return bool(self.conf["all"]["forwarding"])

    def hop_limit(self, ifindex: int) -> int:
        """ip6_dst_hoplimit(): the out device's hop_limit, else conf.all's."""
        dev = self.devs.get(ifindex)
        return (dev.cnf if dev is not None else self.conf["all"])["hop_limit"]

    def mtu(self, ifindex: int) -> int:
        dev = self.devs.get(ifindex)
        return dev.mtu if dev is not None else ipv6.IPV6_MIN_MTU

    def secret(self) -> bytes:
        """The key of this host's flow hashes (the kernel's hashrnd), drawn at first use."""
        if self._secret is None:
            self._secret = self.ns.rng.getrandbits(128).to_bytes(16, "big")
        return self._secret

    def frag_ident(self) -> int:
        """ipv6_select_ident(): get_random_u32_above(0), since Linux 5.17."""
        return self.ns.rng.randrange(1, 1 << 32)

    # -- addresses
    def chk_addr(self, addr: int, ifindex: int = 0) -> bool:
        """ipv6_chk_addr(): a usable address of this host (with ifindex, a link-local one
        must be that device's)."""
        return self.fib.chk_addr(addr, ifindex)

    def chk_mcast(self, ifindex: int, group: int) -> bool:
        """ipv6_chk_mcast_addr(): the device joined the group."""
        dev = self.devs.get(ifindex)
        return dev is not None and group in dev.groups()

    def anycast_on(self, ifindex: int, addr: int) -> bool:
        """ipv6_chk_acast_addr_src(): addr is a subnet-router anycast address of the device."""
        return any(r.type == RTN_ANYCAST and r.dev == ifindex for r in
                   self.fib.local.by_plen.get(128, {}).get(addr, ()))

    def dev_get_saddr(self, daddr: int, oif: int = 0) -> int:
        """ipv6_dev_get_saddr() (RFC 6724 section 5): the candidates are the out device's
        addresses for a multicast or link-local destination, every device's otherwise;
        the best by the rules in order: the same address, the appropriate scope, the
        out device, the same label, the longest common prefix (up to the address's
        prefix length). 0 when there is none (EADDRNOTAVAIL)."""
        dst_type, dst_scope = ipv6.addr_type(daddr), ipv6.addr_src_scope(daddr)
        use_oif = oif and (dst_type & ipv6.IPV6_ADDR_MULTICAST or dst_scope <= ipv6.IPV6_ADDR_SCOPE_LINKLOCAL)
        devs = [self.devs[oif]] if use_oif and oif in self.devs else \
            [] if use_oif else [self.devs[i] for i in sorted(self.devs)]
        label = addr_label(daddr)
        best, best_score = 0, None
        for dev in devs:
            for addr, plen, flags in dev.in_order():
                if flags & IFA_F_TENTATIVE and not flags & IFA_F_OPTIMISTIC:
                    continue
                t = ipv6.addr_type(addr)
                if t == ipv6.IPV6_ADDR_ANY or t & ipv6.IPV6_ADDR_MULTICAST:
                    continue
                scope = ipv6.addr_src_scope(addr)
                score = (addr == daddr, -scope if scope >= dst_scope else scope - 128,
                         not oif or dev.ifindex == oif, addr_label(addr) == label,
                         min(common_prefix(addr, daddr), plen))
                if best_score is None or score > best_score:
                    best, best_score = addr, score
        return best

    def addresses(self, ifname) -> list[dict]:
        """`ip -6 addr`: each device with IPv6, its addresses in the order added (text,
        prefix length, IFA_F_*) and their lines as iproute2 prints them."""
        return [{"ifindex": d.ifindex, "ifname": d.name, "loopback": d.loopback,
                 "mtu": self.ns.devices[d.ifindex].mtu, "up": self.ns.devices[d.ifindex].up,
                 "addrs": [(ipv6.ntoa(a), p, f) for a, p, f in d.addrs], "lines": addr_lines(d.addrs)}
                for d in (self.devs[i] for i in sorted(self.devs))]

    # -- sysctls and devices changing
    def sync_sysctls(self):
        """The devconf as sysctl(8) reads it, net.ipv6.conf.{all,default,<if>}.<key>, put
        among the namespace's sysctl values (when the shell's sysctl view is asked for,
        and after a write)."""
        sc = self.ns.sysctl
        for dev, cnf in self.conf.items():
            for key, value in cnf.items():
                sc[f"net.ipv6.conf.{dev}.{key}"] = value

    def sysctl_written(self, names: list[str]):
        """`sysctl -w` of net.ipv6.*: a devconf write as the kernel's handlers make it
        (all.forwarding and all.disable_ipv6 set default and every device; forwarding
        joins or leaves the subnet-router anycast addresses; an MTU above the device's
        is the device's; disable_ipv6 takes IPv6 off the device, addresses and routes)."""
        from ..common.sysctl import conf6_write
        sc = self.ns.sysctl
        for name in names:
            if name.startswith("net.ipv6.ip6frag_"):
                self.frags.configure(sc)
            if not name.startswith("net.ipv6.conf."):
                continue
            key = name.split(".")[4]
            before = {d: cnf[key] for d, cnf in self.conf.items()}
            for devname in conf6_write(self.conf, name, sc[name]):
                self._devconf_changed(devname, key, before[devname])
        self.sync_sysctls()
        self.fib.changed()

    def _devconf_changed(self, devname: str, key: str, old):
        ifindex = next((i for i, d in self.ns.devices.items() if d.name == devname), None)
        cnf = self.conf[devname]
        if key == "mtu":
            cnf["mtu"] = min(cnf["mtu"], self.ns.devices[ifindex].mtu) if ifindex else cnf["mtu"]
        dev = self.devs.get(ifindex)
        if key == "forwarding" and dev is not None and bool(old) != bool(cnf["forwarding"]):
            self.fib.set_forwarding(ifindex, dev.usable(), bool(cnf["forwarding"]))
        if key == "disable_ipv6" and bool(old) != bool(cnf["disable_ipv6"]):
            if cnf["disable_ipv6"]:
                self.ifdown(ifindex, unregister=True)
            else:
                self.ifup(ifindex)

    def ifdown(self, ifindex: int, unregister: bool = False):
        """addrconf_ifdown(): every address (keep_addr_on_down is 0) and route of the device
        goes; unregistered (disable_ipv6, an MTU below 1280), the device has no IPv6 left."""
        if ifindex not in self.devs:
            return
        self.fib.ifdown(ifindex, unregister)
        self.devs[ifindex].addrs = []
        if unregister:
            del self.devs[ifindex]

    def ifup(self, ifindex: int):
        """addrconf_dev_config() on NETDEV_UP: IPv6 comes back with the link-local address
        (EUI-64 of the MAC) only, and ::1 on lo; the addresses a user gave are gone."""
        d = self.ns.devices.get(ifindex)
        cnf = self.conf.get(d.name) if d is not None else None
        if cnf is None or cnf["disable_ipv6"] or d.mtu < ipv6.IPV6_MIN_MTU or not d.up:
            return
        dev = self.devs.get(ifindex)
        if dev is None:
            dev = self.devs[ifindex] = Inet6Dev(ifindex, d.name, d.loopback, cnf)
        if dev.addrs:
            return
        self.fib.add_dev(ifindex, d.name, d.loopback)
        addr, plen = (ipv6.IN6ADDR_LOOPBACK, 128) if d.loopback else (ipv6.link_local(self.macs[ifindex]), 64)
        self.add_addr(ifindex, addr, plen, prefix_route=not d.loopback)

    def add_addr(self, ifindex: int, addr: int, plen: int, flags: int = IFA_F_PERMANENT, prefix_route: bool = True):
        dev = self.devs[ifindex]
        dev.addrs.append((addr, plen, flags))
        self.fib.add_ifaddr(ifindex, addr, plen, forwarding=bool(dev.cnf["forwarding"]), prefix_route=prefix_route)

    def del_addr(self, ifindex: int, addr: int, plen: int):
        dev = self.devs[ifindex]
        dev.addrs = [a for a in dev.addrs if (a[0], a[1]) != (addr, plen)]
        self.fib.del_ifaddr(ifindex, addr, plen, dev.addrs, forwarding=bool(dev.cnf["forwarding"]))

    def link_changed(self, d):
        """`ip link set IF up|down|mtu N` (the IPv4 device `d` already changed): down takes
        IPv6's addresses and routes; up brings the link-local back; the IPv6 MTU follows
        the device's (NETDEV_CHANGEMTU), and below 1280 IPv6 is off on it."""
        cnf = self.conf.get(d.name)
        if cnf is None:
            return
        if d.mtu < ipv6.IPV6_MIN_MTU:
            self.ifdown(d.ifindex, unregister=True)
        elif not d.up:
            self.ifdown(d.ifindex)
        else:
            cnf["mtu"] = d.mtu
            self.ifup(d.ifindex)
        self.sync_sysctls()
        self.fib.changed()

