"""A device's IPv6 addresses as the device layer sees them: what net/ipv6/addrconf.c
does when an interface comes up (addrconf_dad_start(), addrconf_dad_work(),
addrconf_dad_completed(), addrconf_rs_timer()) and the multicast groups it then
listens to, reported with MLDv2 (net/ipv6/mcast.c).

When a device comes up (dev_up(), the emulator's start), each of its addresses is
tentative and DAD probes it: after a random delay below rtr_solicit_delay (1 s),
dad_transmits neighbour solicitations from :: to the address's solicited-node
group, with a nonce (enhanced_dad, on by default), retrans_time apart; retrans_time
after the last, with no answer, the address is ready. An NA for a tentative
address, or another node's DAD NS for it (its nonce not ours), fails DAD: the
address stays `tentative dadfailed` (IFA_F_DADFAILED), as a permanent address
does in Linux. When a host's (forwarding off, accept_ra on) link-local address is
ready, it solicits routers: an RS from it to ff02::2 at once, then again after
~4 s, doubling (RFC 7559's backoff: rfc3315_s14_backoff_init/update) up to an
hour, forever (router_solicitations -1), until an RA comes.

MLDv2: joining or leaving groups sends a state-change report at once and again
within unsolicited_report_interval (1 s; mc_qrv 2 reports), from the link-local
address, or from :: while it is tentative (so twice from :: when the device comes
up); the link-local address ready, mld_send_initial_cr() reports every group
twice more. Linux 6.18's defaults throughout (addrconf.c's ipv6_devconf, mcast.c);
the frames are ipv6-dad.h1.pcap's and ipv6-echo.h1.pcap's, byte for byte.

The ip layer builds its FIB with every address ready (ip6_fib.build(), ip's
addrconf.py), and the emulator completes DAD before traffic: the link service
says NOT_SERVING until the start's DAD is over (server.py), and `pktflow up`
waits for it. What link keeps here is what DAD concluded, shown by the admin
command `addrs6` (flags tentative / dadfailed), and what neighbour discovery
answers for (not a tentative address, as Linux).

Addresses are ints (wire/ipv6.py); `ns` is dev.LinkNetns, `dev` dev.Device.
"""
from ..common.actions import Arm, Cancel
from ..wire import icmpv6, ipv6
from ..wire.ipv6_exthdrs import IPV6_TLV_ROUTERALERT, opt_hdr

# IFA_F_* (include/uapi/linux/if_addr.h) and the words `ip -6 addr` prints for them
IFA_F_NODAD, IFA_F_OPTIMISTIC, IFA_F_DADFAILED, IFA_F_TENTATIVE, IFA_F_PERMANENT = 0x02, 0x04, 0x08, 0x40, 0x80
FLAG_WORDS = ((IFA_F_OPTIMISTIC, "optimistic"), (IFA_F_DADFAILED, "dadfailed"), (IFA_F_TENTATIVE, "tentative"))

MS = 1_000_000
S = 1_000_000_000
# struct ipv6_devconf's defaults (net/ipv6/addrconf.c) that no pktflow sysctl sets
RTR_SOLICITS = -1                       # router_solicitations: for ever
RTR_SOLICIT_INTERVAL = 4 * S
RTR_SOLICIT_MAX_INTERVAL = 3600 * S
RTR_SOLICIT_DELAY = 1 * S
ACCEPT_RA = 1
ENHANCED_DAD = 1
MLD_QRV = 2                             # mc_qrv: the robustness variable, reports sent twice
MLD2_UNSOLICITED_REPORT_INTERVAL = 1 * S
IF_RS_SENT, IF_RA_RCVD = 0x10, 0x20     # inet6_dev if_flags

MLD2_CHANGE_TO_INCLUDE, MLD2_CHANGE_TO_EXCLUDE = 3, 4
IN6ADDR_SITELOCAL_ALLROUTERS = ipv6.aton("ff05::2")


class Ifaddr6:
    """struct inet6_ifaddr: an address of the device, its flags and its DAD state."""
    __slots__ = ("addr", "plen", "flags", "dad_probes", "nonce")

    def __init__(self, addr: int, plen: int):
        self.addr, self.plen = addr, plen
        self.flags = IFA_F_PERMANENT
        self.dad_probes = 0
        self.nonce = b""


class Idev6:
    """struct inet6_dev: the device's IPv6 state that the link room keeps."""
    __slots__ = ("ifa", "conf", "groups", "macs", "anycast", "if_flags", "rs_probes", "rs_interval", "mc_dad_count",
                 "mc_ifc_count", "mc_tomb", "mc_joined")

    def __init__(self, conf: dict):
        self.ifa: dict[int, Ifaddr6] = {}       # in the order they came: the link-local first
        self.conf = conf                        # net.ipv6.conf.<dev>.*, as Host.conf6 has it
        self.groups: list[int] = []             # multicast groups joined, the newest first (idev->mc_list)
        self.macs: frozenset = frozenset()      # their 33:33 MACs: the frames the device takes
        self.anycast: frozenset = frozenset()   # subnet-router anycast addresses (a forwarding device's)
        self.if_flags = 0
        self.rs_probes = 0
        self.rs_interval = 0
        self.mc_dad_count = 0
        self.mc_ifc_count = 0
        self.mc_tomb: list[int] = []            # groups left, their leave still being reported (idev->mc_tomb)
        self.mc_joined = False                  # the state-change reports list the groups joined too

    @property
    def forwarding(self) -> bool:
        return bool(self.conf.get("forwarding", 0))


def init_dev(dev, iface, conf6: dict):
    """The device's IPv6 (None when it has none: disable_ipv6, an MTU below 1280), its
    addresses ready, as the topology describes the host once it is up."""
    dev.idev6 = None
    if not iface.addrs6:
        return
    dev.idev6 = idev = Idev6(conf6.get(iface.name, {}))
    for addr, plen in iface.addrs6:
        idev.ifa[addr] = Ifaddr6(addr, plen)
    rejoin(dev)


def rejoin(dev):
    """The groups the device is in (ipv6_add_dev(), dev_forward_change(),
    addrconf_join_solict(), addrconf_join_anycast()), newest first, and the MACs
    it therefore takes: all-nodes; all-routers (link and site scope) when
    forwarding; each address's solicited-node group (a tentative one's too: DAD
    hears others' probes there); a forwarding device's subnet-router anycast
    addresses' groups. Interface-local groups (ff01::) never reach the wire."""
    idev = dev.idev6
    groups = [ipv6.IN6ADDR_LINKLOCAL_ALLNODES]
    if idev.forwarding:
        groups += [ipv6.IN6ADDR_LINKLOCAL_ALLROUTERS, IN6ADDR_SITELOCAL_ALLROUTERS]
    anycast = []
    for ifa in idev.ifa.values():
        groups.append(ipv6.solicited_node(ifa.addr))
        if idev.forwarding and ifa.plen < 127 and not ifa.flags & IFA_F_TENTATIVE and not dev.loopback:
            anycast.append(ifa.addr & ipv6.prefix_mask(ifa.plen))
    groups += [ipv6.solicited_node(a) for a in anycast]
    idev.groups = list(reversed(dict.fromkeys(groups)))
    idev.macs = frozenset(ipv6.multicast_mac(g) for g in idev.groups)
    idev.anycast = frozenset(anycast)


def join(ns, dev, now: int) -> list:
    """rejoin() on a device that is up: the groups it joins or leaves now are
    reported (igmp6_group_added(), igmp6_group_dropped())."""
    old = dev.idev6.groups
    rejoin(dev)
    joined, left = set(dev.idev6.groups) - set(old), [g for g in old if g not in dev.idev6.groups]
    return mld_ifc_event(ns, dev, now, bool(joined), left) if joined or left else []


def usable(ifa: Ifaddr6 | None) -> bool:
    """The address may be used (a source, an NA's target): not tentative."""
    return ifa is not None and not ifa.flags & IFA_F_TENTATIVE


def lladdr(dev) -> int | None:
    """ipv6_get_lladdr(dev, banned IFA_F_TENTATIVE): the device's usable link-local address."""
    idev = dev.idev6
    for ifa in idev.ifa.values() if idev else ():
        if ipv6.is_linklocal(ifa.addr) and usable(ifa):
            return ifa.addr
    return None


def select_saddr(dev, daddr: int) -> int | None:
    """ipv6_dev_get_saddr() among the device's usable addresses, as far as NA and
    MLD need it: the link-local for a link-local or multicast destination,
    otherwise the global address sharing the longest prefix with daddr."""
    idev = dev.idev6
    cands = [a for a, ifa in idev.ifa.items() if usable(ifa)] if idev else []
    if not cands:
        return None
    if ipv6.is_linklocal(daddr) or ipv6.is_multicast(daddr):
        return lladdr(dev) or cands[0]
    glob = [a for a in cands if not ipv6.is_linklocal(a)] or cands
    return max(glob, key=lambda a: (128 - (a ^ daddr).bit_length()))


def dad_key(ns, dev, addr: int) -> tuple:
    return ("dad", ns.name, dev.ifindex, addr)


def dev_up(ns, dev, now: int) -> list:
    """addrconf_notify(NETDEV_UP): DAD starts for every address of the device, and
    MLD reports the groups just joined (from ::, no address being usable yet)."""
    out = []
    if dev.idev6 is None:
        return out
    for ifa in list(dev.idev6.ifa.values()):
        out += dad_start(ns, dev, ifa, now)
    rejoin(dev)
    return out + mld_ifc_event(ns, dev, now)


def dad_start(ns, dev, ifa: Ifaddr6, now: int) -> list:
    """addrconf_dad_begin() and addrconf_dad_kick(): the address is tentative, DAD's
    first probe after a random delay below rtr_solicit_delay. No DAD on lo, nor
    when accept_dad is below 1 for the device and for all (or the address says
    nodad): the address is ready at once."""
    idev = dev.idev6
    conf_all = ns.conf6.get("all", {})
    if dev.loopback or ifa.flags & IFA_F_NODAD or (conf_all.get("accept_dad", 0) < 1 and
                                                   idev.conf.get("accept_dad", 1) < 1):
        ifa.flags &= ~(IFA_F_TENTATIVE | IFA_F_DADFAILED)
        return dad_completed(ns, dev, ifa, now)
    ifa.flags = (ifa.flags | IFA_F_TENTATIVE) & ~IFA_F_DADFAILED
    ifa.nonce = b""
    if ENHANCED_DAD:
        while not any(ifa.nonce):
            ifa.nonce = ns.rng.getrandbits(48).to_bytes(6, "big")
    ifa.dad_probes = idev.conf.get("dad_transmits", 1)
    return [Arm(dad_key(ns, dev, ifa.addr), now + int(ns.rng.random() * RTR_SOLICIT_DELAY))]


def dad_work(ns, dev, addr: int, now: int) -> list:
    """addrconf_dad_work(): the next probe, or, the probes all sent and unanswered, done."""
    from . import ndisc
    idev = dev.idev6
    ifa = idev.ifa.get(addr) if idev else None
    if ifa is None or not ifa.flags & IFA_F_TENTATIVE or ifa.flags & IFA_F_DADFAILED:
        return []
    if ifa.dad_probes <= 0:
        ifa.flags &= ~(IFA_F_TENTATIVE | IFA_F_OPTIMISTIC)
        return join(ns, dev, now) + dad_completed(ns, dev, ifa, now)      # a forwarding device's anycast group
    ifa.dad_probes -= 1
    out = [Arm(dad_key(ns, dev, addr), now + max(ns.nd_tbl.parms.retrans_time, 10 * MS))]
    return out + ndisc.send_ns(ns, dev, addr, ipv6.solicited_node(addr), 0, ifa.nonce, None,
                                ("addrconf_dad_work", "ndisc_send_ns"))


def dad_failure(ns, dev, ifa: Ifaddr6) -> list:
    """addrconf_dad_failure() -> addrconf_dad_stop(ifp, 1): someone else has the
    address; it stays, tentative and dadfailed, and is never used."""
    ifa.flags = (ifa.flags | IFA_F_DADFAILED | IFA_F_TENTATIVE) & ~IFA_F_OPTIMISTIC
    ns.mib["NdiscDadFailures"] += 1        # link's own (as ArpIn*): Linux logs "IPv6 duplicate address ..."
    return [Cancel(dad_key(ns, dev, ifa.addr))]


def dad_completed(ns, dev, ifa: Ifaddr6, now: int) -> list:
    """addrconf_dad_completed(): for the device's first usable link-local address,
    MLD's reports (ipv6_mc_dad_complete()) and, on a host, the first router
    solicitation at once, the RS timer armed for the next."""
    idev = dev.idev6
    if dev.loopback or not ipv6.is_linklocal(ifa.addr) or lladdr(dev) != ifa.addr:
        return []
    out = []
    idev.mc_dad_count = MLD_QRV
    out += mld_timer(ns, dev, 0, now)
    accept_ra = ACCEPT_RA if not idev.forwarding or ACCEPT_RA > 1 else 0
    if accept_ra and RTR_SOLICITS != 0:
        from . import ndisc
        out += ndisc.send_rs(ns, dev, ifa.addr, "addrconf_dad_completed")
        idev.rs_interval = backoff_init(ns.rng, RTR_SOLICIT_INTERVAL)
        idev.rs_probes = 1
        idev.if_flags |= IF_RS_SENT
        out.append(Arm(("rs", ns.name, dev.ifindex, 0), now + idev.rs_interval))
    return out


def backoff_init(rng, irt: int) -> int:
    """rfc3315_s14_backoff_init(): the initial interval times 0.9 .. 1.1."""
    return irt * rng.randint(900000, 1100000) // 1000000


def backoff_update(rng, rt: int, mrt: int) -> int:
    """rfc3315_s14_backoff_update(): times 1.9 .. 2.1, at most the maximum times 0.9 .. 1.1."""
    t = rt * rng.randint(1900000, 2100000) // 1000000
    return t if t <= mrt else mrt * rng.randint(900000, 1100000) // 1000000


def rs_timer(ns, dev, now: int) -> list:
    """addrconf_rs_timer(): solicit again until an RA came (or router_solicitations ran out)."""
    from . import ndisc
    idev = dev.idev6
    if idev is None or idev.if_flags & IF_RA_RCVD:
        return []
    idev.rs_probes += 1
    if not (idev.rs_probes - 1 < RTR_SOLICITS or RTR_SOLICITS < 0):
        return []                               # "no IPv6 routers present"
    src = lladdr(dev)
    if src is None:
        return []
    out = ndisc.send_rs(ns, dev, src, "addrconf_rs_timer")
    idev.rs_interval = backoff_update(ns.rng, idev.rs_interval, RTR_SOLICIT_MAX_INTERVAL)
    wait = RTR_SOLICIT_DELAY if idev.rs_probes == RTR_SOLICITS else idev.rs_interval
    return out + [Arm(("rs", ns.name, dev.ifindex, 0), now + wait)]


def ra_received(dev):
    """ndisc_router_discovery() on a device that takes RAs: IF_RA_RCVD after an RS, which stops them."""
    idev = dev.idev6
    if idev.if_flags & IF_RS_SENT:
        idev.if_flags |= IF_RA_RCVD


# -- MLDv2 (net/ipv6/mcast.c). Two report timers, as Linux has: ("mld", netns, ifindex, 0)
# resends after DAD (mld_dad_work), ("mld", netns, ifindex, 1) after a join (mld_ifc_work).

def mld_ifc_event(ns, dev, now: int, joined: bool = True, left=()) -> list:
    """igmp6_group_added()/igmp6_group_dropped() -> mld_ifc_event(): groups joined
    (or `left`); the state-change report goes now and again (mc_qrv times in all)
    within unsolicited_report_interval."""
    idev = dev.idev6
    if dev.loopback:                           # lo is not IFF_MULTICAST: no reports
        return []
    idev.mc_ifc_count = MLD_QRV
    idev.mc_joined = joined or idev.mc_joined
    idev.mc_tomb = [g for g in idev.mc_tomb if g not in idev.groups] + [g for g in left if g not in idev.mc_tomb]
    return mld_timer(ns, dev, 1, now)


def mld_timer(ns, dev, which: int, now: int) -> list:
    """mld_dad_work() (which 0) or mld_ifc_work() (1): a report, and the next armed
    a random time within unsolicited_report_interval while the count lasts."""
    idev = dev.idev6
    if idev is None:
        return []
    left = idev.mc_ifc_count if which else idev.mc_dad_count
    if not left:
        return []
    if which:
        out = mld_send_cr(ns, dev, "mld_ifc_work", idev.mc_tomb, idev.mc_joined)
    else:
        out = mld_send_cr(ns, dev, "mld_dad_work")
    left -= 1
    if which:
        idev.mc_ifc_count = left
        if not left:
            idev.mc_tomb, idev.mc_joined = [], False
    else:
        idev.mc_dad_count = left
    if left:
        out.append(Arm(("mld", ns.name, dev.ifindex, which),
                       now + int(ns.rng.random() * MLD2_UNSOLICITED_REPORT_INTERVAL)))
    return out


def mld_send_cr(ns, dev, fn: str, left=(), joined: bool = True) -> list:
    """One MLDv2 report: a CHANGE_TO_INCLUDE({}) record for each group `left`
    (mld_send_cr()'s deleted groups first), then, `joined`, a CHANGE_TO_EXCLUDE({})
    record for every group the device is in, newest first, but all-nodes
    (MAF_NOREPORT): what mld_send_initial_cr() sends, and what Linux 6.18 sent when
    an address was added (ipv6-dad.h1.pcap: the new group and the older ones) or
    deleted (ipv6-echo.h1.pcap: the group left). From the usable link-local address
    (:: without one) to ff02::16, hop limit 1, with the router alert option in a
    hop-by-hop header, as mld_newpack() builds it."""
    from . import ndisc
    idev = dev.idev6
    records = [(MLD2_CHANGE_TO_INCLUDE, g) for g in left]
    if joined:
        records += [(MLD2_CHANGE_TO_EXCLUDE, g) for g in idev.groups if g != ipv6.IN6ADDR_LINKLOCAL_ALLNODES]
    if not records:
        return []
    src = lladdr(dev) or 0
    dst = ipv6.IN6ADDR_MLDV2_ROUTERS
    body = b"".join(bytes((rtype, 0, 0, 0)) + g.to_bytes(16, "big") for rtype, g in records)
    body = icmpv6.emit(icmpv6.Icmpv6Repr(icmpv6.ICMPV6_MLD2_REPORT, 0, len(records)), body, src, dst)
    hbh = opt_hdr(ipv6.IPPROTO_ICMPV6, [(IPV6_TLV_ROUTERALERT, b"\0\0")])
    pkt = ipv6.header(src, dst, ipv6.NEXTHDR_HOP, len(hbh) + len(body), hop_limit=1) + hbh + body
    ns.mib["Icmp6OutMsgs"] += 1
    ns.mib["Icmp6OutMLDv2Reports"] += 1
    ns.mib["Icmp6OutType143"] += 1
    return ndisc.xmit_mcast(ns, dev, pkt, src, dst, None, (fn, "mld_sendpack"))


def addr_lines(dev) -> list[dict]:
    """The device's addresses with their DAD state, for the admin command `addrs6`."""
    idev = dev.idev6
    return [{"addr": ipv6.ntoa(a), "plen": ifa.plen, "flags": [w for f, w in FLAG_WORDS if ifa.flags & f]}
            for a, ifa in (idev.ifa.items() if idev else ())]


def set_addrs(ns, dev, addrs: list[tuple[int, int]], now: int) -> list:
    """`ip -6 addr add|del` as the ip layer applied it: the device's addresses are
    now `addrs`; a new one starts DAD (and joins its group), a gone one stops it."""
    idev = dev.idev6
    if idev is None:
        raise ValueError("IPv6 is off on the device")
    out, old = [], idev.ifa
    idev.ifa = {}
    for addr, plen in addrs:
        ifa = old.get(addr)
        if ifa is None:
            ifa = Ifaddr6(addr, plen)
            ifa.flags |= IFA_F_TENTATIVE
        ifa.plen = plen
        idev.ifa[addr] = ifa
    for addr in old.keys() - idev.ifa.keys():
        out.append(Cancel(dad_key(ns, dev, addr)))
    for addr in [a for a in idev.ifa if a not in old]:
        out += dad_start(ns, dev, idev.ifa[addr], now)
    return out + join(ns, dev, now)
