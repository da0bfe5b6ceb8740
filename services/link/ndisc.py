"""Neighbour discovery (net/ipv6/ndisc.c, RFC 4861) beside ARP, over nd_tbl: the
neighbour table and NUD state machine ARP uses (neighbour.py), keyed by
(ifindex, address) with IPv6 addresses as ints.

Egress (dev.LinkNetns.output6(), ip6_finish_output2()): a group's frame goes to
its 33:33 MAC; a unicast next hop resolves through nd_tbl, whose probes are
ndisc_solicit()'s neighbour solicitations: to the target's solicited-node group
(33:33:ff:xx:xx:xx) while INCOMPLETE, to the target itself in PROBE, with the
source link-layer address option, from the waiting packet's source when that is
a usable address of the device, else from its link-local address (so r1 asks
h2 from fe80::ff:fe00:201 for a packet it forwards, as Linux 6.18 does in
ipv6-echo.h2.pcap). An entry that fails drops what waits (NEIGH_FAILED) and
tells ip (LinkFailure.nexthop6, ndisc_error_report()), which answers with
ICMPv6 address unreachable.

Ingress (ipv6_rcv() here): an IPv6 frame to a 33:33 MAC the device has not
joined (addrconf.rejoin()) is not for this host; an NDP message (ICMPv6 type
133..137 right after the IPv6 header, to an address of the host or a group the
device is in) is handled here as ndisc_rcv() and its handlers do, with their
drop reasons and what they leave for kfree_skb (NOT_SPECIFIED, the reason the
kernel's icmpv6_rcv() gives whatever ndisc did not consume); every other IPv6
frame goes up to ip.

Not modelled: proxy NDP, the RA's parameters (default router, prefixes, MTU,
hop limit: an RA only teaches the neighbour entry of its sender and stops the
router solicitations), redirects (dropped, NOT_SPECIFIED), optimistic DAD.
"""
from pktflow.v1.skb_pb2 import PACKET_HOST, PACKET_OTHERHOST

from ..common.actions import Arm, Drop, Stop, Up
from ..common.skbuff import clone, new_skb
from ..wire import Malformed, ethernet, icmpv6, ipv6
from . import addrconf
from . import neighbour as nd

ND_HOPLIMIT = 255
PROXY_DELAY = 800_000_000            # nd_tbl's proxy_delay (0.8 s): a subnet-router anycast answer waits
_NDP = frozenset(range(icmpv6.NDISC_ROUTER_SOLICITATION, icmpv6.NDISC_REDIRECT + 1))
_HANDLER = {icmpv6.NDISC_ROUTER_SOLICITATION: "ndisc_recv_rs", icmpv6.NDISC_ROUTER_ADVERTISEMENT:
            "ndisc_router_discovery", icmpv6.NDISC_NEIGHBOUR_SOLICITATION: "ndisc_recv_ns",
            icmpv6.NDISC_NEIGHBOUR_ADVERTISEMENT: "ndisc_recv_na", icmpv6.NDISC_REDIRECT: "ndisc_redirect_rcv"}
_MIB = {icmpv6.NDISC_ROUTER_SOLICITATION: "RouterSolicits", icmpv6.NDISC_ROUTER_ADVERTISEMENT: "RouterAdvertisements",
        icmpv6.NDISC_NEIGHBOUR_SOLICITATION: "NeighborSolicits",
        icmpv6.NDISC_NEIGHBOUR_ADVERTISEMENT: "NeighborAdvertisements", icmpv6.NDISC_REDIRECT: "Redirects"}
_OVERRIDE = nd.NEIGH_UPDATE_F_WEAK_OVERRIDE | nd.NEIGH_UPDATE_F_OVERRIDE


# ---------------------------------------------------------------- sending

def _out_counters(ns, type_: int):
    ns.mib["Icmp6OutMsgs"] += 1
    ns.mib[f"Icmp6Out{_MIB[type_]}"] += 1
    ns.mib[f"Icmp6OutType{type_}"] += 1


def _skb(ns, dev, pkt: bytes, src: int, dst: int, cause):
    return new_skb(ns.name, pkt, cause, ifindex=dev.ifindex, protocol=ethernet.ETH_P_IPV6,
                   saddr6=src.to_bytes(16, "big"), daddr6=dst.to_bytes(16, "big"), ip_proto=ipv6.IPPROTO_ICMPV6)


def xmit_mcast(ns, dev, pkt: bytes, src: int, dst: int, cause, fn) -> list:
    """A packet to a group: its 33:33 MAC (ipv6_eth_mc_map()), no resolution."""
    return ns.output(dev, _skb(ns, dev, pkt, src, dst, cause), ipv6.multicast_mac(dst), fn)


def send_skb(ns, dev, msg, src: int, dst: int, cause, fn, dst_mac: bytes | None = None) -> list:
    """ndisc_send_skb(): the message in an IPv6 header with hop limit 255, to a
    group's MAC, to `dst_mac`, or through nd_tbl to a unicast destination."""
    body = icmpv6.emit_ndisc(msg, src, dst)
    pkt = ipv6.header(src, dst, ipv6.IPPROTO_ICMPV6, len(body), hop_limit=ND_HOPLIMIT) + body
    _out_counters(ns, body[0])
    if ipv6.is_multicast(dst):
        return xmit_mcast(ns, dev, pkt, src, dst, cause, fn)
    skb = _skb(ns, dev, pkt, src, dst, cause)
    if dst_mac is not None:
        return ns.output(dev, skb, dst_mac, fn)
    return ns.output6(dev, skb, dst, ns.now, fn)


def send_ns(ns, dev, target: int, daddr: int, saddr: int | None, nonce: bytes | None, cause, fn,
            dst_mac: bytes | None = None) -> list:
    """ndisc_send_ns(): without a source, the device's usable link-local address
    (none: nothing is sent); from :: (DAD) without the source link-layer option."""
    if saddr is None:
        saddr = addrconf.lladdr(dev)
        if saddr is None:
            return []
    opts = icmpv6.nd_options(source_ll=dev.mac if saddr else None, nonce=nonce or None)
    return send_skb(ns, dev, icmpv6.NeighSolicit(target, opts), saddr, daddr, cause, fn, dst_mac)


def send_na(ns, dev, daddr: int, target: int, router: bool, solicited: bool, override: bool, inc_opt: bool,
            cause) -> list:
    """ndisc_send_na(): from the target when it is an address of the device (else,
    for an anycast target, the device's source address for daddr), with the target
    link-layer option when asked for."""
    ifa = dev.idev6.ifa.get(target)
    if ifa is not None:
        src = target
        if ifa.flags & addrconf.IFA_F_OPTIMISTIC:
            override = False
    else:
        src = addrconf.select_saddr(dev, daddr)
        if src is None:
            return []
    flags = (icmpv6.ND_NA_ROUTER if router else 0) | (icmpv6.ND_NA_SOLICITED if solicited else 0) | \
        (icmpv6.ND_NA_OVERRIDE if override else 0)
    opts = icmpv6.nd_options(target_ll=dev.mac if inc_opt else None)
    return send_skb(ns, dev, icmpv6.NeighAdvert(flags, target, opts), src, daddr, cause, "ndisc_send_na")


def send_rs(ns, dev, saddr: int, fn) -> list:
    """ndisc_send_rs(): to all-routers, with the source link-layer option."""
    msg = icmpv6.RouterSolicit(icmpv6.nd_options(source_ll=dev.mac))
    return send_skb(ns, dev, msg, saddr, ipv6.IN6ADDR_LINKLOCAL_ALLROUTERS, None, (fn, "ndisc_send_rs"))


def solicit(ns, n: nd.Neighbour, cause, dst_mac: bytes | None) -> list:
    """ndisc_solicit(): a neighbour solicitation for n's address, to its
    solicited-node group while INCOMPLETE, to the address itself (dst_mac) in PROBE;
    from the waiting packet's source if that is a usable address of the device."""
    dev = ns.devices[n.ifindex]
    if dev.idev6 is None:
        return []
    saddr = None
    if cause is not None and len(cause.data) >= ipv6.IPV6_HLEN:
        src = int.from_bytes(cause.data[8:24], "big")
        if addrconf.usable(dev.idev6.ifa.get(src)):
            saddr = src
    daddr = n.ip if dst_mac is not None else ipv6.solicited_node(n.ip)
    return send_ns(ns, dev, n.ip, daddr, saddr, None, cause, ("ndisc_solicit", "ndisc_send_ns"), dst_mac)


# ---------------------------------------------------------------- receiving

def ipv6_rcv(ns, dev, skb, dst_mac: bytes, now: int) -> list:
    """An IPv6 frame off the wire: one to a group the device is not in goes no
    further (a NIC's multicast filter, or ip6_mc_input() for a veth: OTHERHOST);
    neighbour discovery for this host stays here; the rest goes up to ip."""
    idev = dev.idev6
    if dst_mac[:2] == b"\x33\x33" and not dev.loopback and (idev is None or dst_mac not in idev.macs):
        return [Drop(skb, "ip6_mc_input", "OTHERHOST")]
    if idev is None or skb.pkt_type == PACKET_OTHERHOST or not _is_ndisc(ns, dev, skb.data, skb.network_header):
        return [Up(skb, "__netif_receive_skb_core", "ip")]
    return ndisc_rcv(ns, dev, skb, now)


def _is_ndisc(ns, dev, data, off: int) -> bool:
    """An NDP message right after the IPv6 header (ip6_input -> icmpv6_rcv ->
    ndisc_rcv), for a group the device is in or an address of the host."""
    if len(data) < off + ipv6.IPV6_HLEN + 1 or data[off + 6] != ipv6.IPPROTO_ICMPV6 or \
            data[off + ipv6.IPV6_HLEN] not in _NDP:
        return False
    dst = int.from_bytes(data[off + 24:off + 40], "big")
    if ipv6.is_multicast(dst):
        return dst in dev.idev6.groups
    return dst in dev.idev6.ifa or dst in dev.idev6.anycast or (not ipv6.is_linklocal(dst) and dst in ns.local6())


def ndisc_rcv(ns, dev, skb, now: int, requeued: bool = False) -> list:
    """ipv6_rcv()'s checks of the header, icmpv6_rcv()'s checksum, then ndisc_rcv()'s
    and its handler's, each a drop with its reason; then the handler."""
    data, off = skb.data, skb.network_header
    try:
        ip = ipv6.parse(data, off, loopback=dev.loopback)
    except Malformed as e:
        return [Drop(skb, "ipv6_rcv", e.reason)]
    l4, end = off + ipv6.IPV6_HLEN, ipv6.payload_end(data, off, ip)
    if not requeued:
        ns.mib["Icmp6InMsgs"] += 1
    try:
        icmpv6.parse(data, l4, end, ip.src, ip.dst)
    except Malformed as e:
        ns.mib["Icmp6InCsumErrors"] += e.reason == "ICMP_CSUM"
        ns.mib["Icmp6InErrors"] += 1
        return [Drop(skb, "icmpv6_rcv", e.reason)]
    type_ = data[l4]
    handler = _HANDLER[type_]
    if not requeued:
        ns.mib[f"Icmp6In{_MIB[type_]}"] += 1
        ns.mib[f"Icmp6InType{type_}"] += 1
    try:
        msg = icmpv6.parse_ndisc(data, l4, end, ip)
    except Malformed as e:
        first = e.reason in ("IPV6_NDISC_HOP_LIMIT", "IPV6_NDISC_BAD_CODE")
        return [Drop(skb, "ndisc_rcv" if first else ("ndisc_rcv", handler), e.reason)]
    fn = ("ndisc_rcv", handler)
    if type_ == icmpv6.NDISC_NEIGHBOUR_SOLICITATION:
        reason, out = recv_ns(ns, dev, skb, ip, msg, now, requeued)
    elif type_ == icmpv6.NDISC_NEIGHBOUR_ADVERTISEMENT:
        reason, out = recv_na(ns, dev, skb, ip, msg, now)
    elif type_ == icmpv6.NDISC_ROUTER_SOLICITATION:
        reason, out = recv_rs(ns, dev, ip, msg, now)
    elif type_ == icmpv6.NDISC_ROUTER_ADVERTISEMENT:
        reason, out = router_discovery(ns, dev, ip, msg, now)
    else:
        reason, out = "NOT_SPECIFIED", []      # ndisc_redirect_rcv(): redirects are not modelled
    return [Stop(skb, fn) if reason is None else Drop(skb, fn, reason)] + out


def _update(ns, dev, addr: int, lladdr: bytes | None, state: int, flags: int, now: int, create: bool) -> list:
    """ndisc_update() -> neigh_update() on nd_tbl (its tracepoint too)."""
    return ns.neigh_update(dev, addr, lladdr, state, now, create, tbl=ns.nd_tbl, flags=flags)


def recv_ns(ns, dev, skb, ip, msg, now: int, requeued: bool) -> tuple:
    """ndisc_recv_ns(). Returns (drop reason or None when consumed, actions)."""
    idev, saddr, target = dev.idev6, ip.src, msg.target
    dad, inc = saddr == 0, ipv6.is_multicast(ip.dst)
    lladdr = msg.opts.source_ll
    ifa = idev.ifa.get(target)
    out = []
    if ifa is not None:
        if ifa.flags & (addrconf.IFA_F_TENTATIVE | addrconf.IFA_F_OPTIMISTIC):
            if dad and not ifa.flags & addrconf.IFA_F_DADFAILED:
                if msg.opts.nonce is not None and msg.opts.nonce == ifa.nonce:
                    return "NOT_SPECIFIED", []         # our own probe, looped back
                return "NOT_SPECIFIED", addrconf.dad_failure(ns, dev, ifa)   # another node wants it too
            if not ifa.flags & addrconf.IFA_F_OPTIMISTIC:
                return "NOT_SPECIFIED", []
    elif target in idev.anycast:
        if not requeued and skb.pkt_type != PACKET_HOST and inc:
            # pneigh_enqueue(): an anycast answer waits a random time below proxy_delay
            ns.pndisc_seq += 1
            key = ("pndisc", ns.name, dev.ifindex, ns.pndisc_seq)
            ns.pndisc[key] = clone(skb)
            return "NOT_SPECIFIED", [Arm(key, now + int(ns.rng.random() * PROXY_DELAY))]
    else:
        return "IPV6_NDISC_NS_OTHERHOST", []
    router = idev.forwarding
    if dad:
        return "NOT_SPECIFIED", send_na(ns, dev, ipv6.IN6ADDR_LINKLOCAL_ALLNODES, target, router, False,
                                        ifa is not None, True, skb)
    ns.nd_tbl.stats["rcv_probes_mcast" if inc else "rcv_probes_ucast"] += 1
    n = ns.nd_tbl.lookup(dev.ifindex, saddr)
    if n is None and (not inc or lladdr is not None):        # __neigh_lookup(..., creat)
        out += _update(ns, dev, saddr, lladdr, nd.NUD_STALE, _OVERRIDE, now, create=True)
        n = ns.nd_tbl.lookup(dev.ifindex, saddr)
    elif n is not None:
        out += _update(ns, dev, saddr, lladdr, nd.NUD_STALE, _OVERRIDE, now, create=False)
    if n is None:
        return "NOT_SPECIFIED", out
    return None, out + send_na(ns, dev, saddr, target, router, True, ifa is not None and inc, inc, skb)


def recv_na(ns, dev, skb, ip, msg, now: int) -> tuple:
    """ndisc_recv_na(): an advertisement for our own address fails its DAD if it is
    tentative (and is otherwise ignored); one for a neighbour we know updates it,
    REACHABLE if solicited, else STALE, its address replaced only with the
    override flag, NTF_ROUTER from the router flag; one for an entry that FAILED,
    or that we do not know (accept_untracked_na 0), changes nothing."""
    lladdr = msg.opts.target_ll
    ifa = dev.idev6.ifa.get(msg.target)
    if ifa is not None:
        if ifa.flags & addrconf.IFA_F_TENTATIVE and not ifa.flags & addrconf.IFA_F_DADFAILED:
            return "NOT_SPECIFIED", addrconf.dad_failure(ns, dev, ifa)
        return "NOT_SPECIFIED", []
    n = ns.nd_tbl.lookup(dev.ifindex, msg.target)
    if n is None or n.state & nd.NUD_FAILED:
        return "NOT_SPECIFIED", []
    flags = nd.NEIGH_UPDATE_F_WEAK_OVERRIDE | nd.NEIGH_UPDATE_F_OVERRIDE_ISROUTER | \
        (nd.NEIGH_UPDATE_F_OVERRIDE if msg.override else 0) | (nd.NEIGH_UPDATE_F_ISROUTER if msg.router else 0)
    state = nd.NUD_REACHABLE if msg.solicited else nd.NUD_STALE
    return None, _update(ns, dev, msg.target, lladdr, state, flags, now, create=False)


def recv_rs(ns, dev, ip, msg, now: int) -> tuple:
    """ndisc_recv_rs(): only a router listens; it learns the soliciting host
    (STALE, not a router). No RA is sent: pktflow's routers advertise nothing,
    as a Linux router without radvd."""
    if not dev.idev6.forwarding or ip.src == 0:
        return "NOT_SPECIFIED", []
    flags = _OVERRIDE | nd.NEIGH_UPDATE_F_OVERRIDE_ISROUTER
    return None, _update(ns, dev, ip.src, msg.opts.source_ll, nd.NUD_STALE, flags, now, create=True)


def router_discovery(ns, dev, ip, msg, now: int) -> tuple:
    """ndisc_router_discovery(): whoever takes RAs (a host, accept_ra) notes one
    came after its solicitations (IF_RA_RCVD stops them); a router ignores its
    parameters; both learn the sender, a router (STALE, NTF_ROUTER)."""
    if not dev.idev6.forwarding:
        addrconf.ra_received(dev)
    flags = _OVERRIDE | nd.NEIGH_UPDATE_F_OVERRIDE_ISROUTER | nd.NEIGH_UPDATE_F_ISROUTER
    return None, _update(ns, dev, ip.src, msg.opts.source_ll, nd.NUD_STALE, flags, now, create=True)


def pndisc_redo(ns, key, now: int) -> list:
    """pndisc_redo(): the delayed anycast solicitation handled again, now answered."""
    skb = ns.pndisc.pop(key, None)
    dev = ns.devices.get(key[2]) if skb is not None else None
    if dev is None or dev.idev6 is None:
        return []
    return ndisc_rcv(ns, dev, skb, now, requeued=True)
