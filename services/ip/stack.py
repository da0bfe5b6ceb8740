"""The ip layer of every namespace: entry points the shell calls."""
import errno
import random

from pktflow.v1.layers_pb2 import RTN_BROADCAST, RTN_LOCAL, RouteReply
from pktflow.v1.skb_pb2 import Dst

from ..common.actions import Drop, Stop
from ..wire import ipv4
from ..wire.icmp import ICMP_DEST_UNREACH, ICMP_HOST_UNREACH
from ..wire import icmpv6 as wire6
from . import icmp, icmpv6, ip6_input, ip6_output, ip6_route, ip_fragment, ip_input, ip_output, reassembly, route
from .fib_rules import TABLE_LOCAL, TABLE_MAIN, TABLE_NAMES
from .netns import IpNetns
from .route import RouteError

ETH_P_IPV6 = 0x86DD


class Ip:
    def __init__(self, topology, rng: random.Random | None = None):
        rng = rng or random.Random()
        self.netns = {h.name: IpNetns(h, rng) for h in topology.hosts.values()}

    @property
    def genid(self) -> int:
        return sum(ns.fib.genid + ns.v6.fib.genid for ns in self.netns.values())

    def ip_rcv(self, skb, now: int) -> list:
        """From the device layer: a received packet, or a neighbour failure report."""
        ns = self.netns.get(skb.netns)
        if ns is None:
            return [Drop(skb, "ip_rcv", "DEV_READY")]
        if skb.HasField("link_failure") and skb.link_failure.nexthop6:
            # ip6_link_failure(): neighbour discovery found no one at the next hop
            return icmpv6.icmp6_send(ns, skb, wire6.ICMPV6_DEST_UNREACH, wire6.ICMPV6_ADDR_UNREACH, 0, now,
                                     "ip6_link_failure") + [Stop(skb, "ip6_link_failure")]
        if skb.HasField("link_failure"):
            # ipv4_link_failure(): the next hop never answered ARP
            return icmp.icmp_send(ns, skb, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0, now, "ipv4_link_failure") + \
                [Stop(skb, "ipv4_link_failure")]
        if skb.protocol == ETH_P_IPV6:
            return ip6_input.ipv6_rcv(ns, skb, now)
        return ip_input.ip_rcv(ns, skb, now)

    def from_transport(self, skb, now: int) -> list:
        """From the transport layer: a segment to send, or an icmp_send() request
        about a packet it received (skb.icmp_send set)."""
        ns = self.netns.get(skb.netns)
        if ns is None:
            return [Drop(skb, "ip_queue_xmit", "DEV_READY")]
        if skb.HasField("pmtu_update"):
            u = skb.pmtu_update
            if u.daddr6:
                return ip6_route.ip6_update_pmtu(ns.v6, int.from_bytes(u.daddr6, "big"), u.mtu, now) + \
                    [Stop(skb, "ip6_sk_update_pmtu")]
            return route.ip_rt_update_pmtu(ns, u.daddr, u.mtu, now) + [Stop(skb, "ipv4_sk_update_pmtu")]
        if skb.HasField("icmp_send"):
            req = skb.icmp_send
            if skb.protocol == ETH_P_IPV6:
                return icmpv6.icmp6_send(ns, skb, req.type, req.code, req.info, now) + [Stop(skb, "icmp6_send")]
            return icmp.icmp_send(ns, skb, req.type, req.code, req.info, now) + [Stop(skb, "icmp_send")]
        if skb.daddr6:
            return ip6_output.ip6_xmit(ns, skb, now)
        return ip_output.ip_queue_xmit(ns, skb, now)

    def timer(self, key, now: int) -> list:
        """A reassembly queue's time is up (ip_expire()), or a learned path MTU's."""
        kind, netns, what = key
        if kind == "pmtu":
            return route.pmtu_expire(self.netns[netns], what, now)
        if kind == "pmtu6":
            return route.pmtu_expire(self.netns[netns].v6, what, now)     # rt6_age_examine_exception()
        if kind == "ip6frag":
            return reassembly.ip6_frag_expire(self.netns[netns], what, now, icmpv6.icmp6_send)
        return ip_fragment.ip_expire(self.netns[netns], what, now, icmp.icmp_send)

    def route_output(self, netns: str, daddr: int, saddr: int = 0, oif: int = 0) -> RouteReply:
        """ip_route_output_key() for the transport layer: the route, or the errno. An
        IPv6 flow (16-byte addresses, as transport's AskRoute carries them) is route_output6()'s."""
        if isinstance(daddr, bytes):
            return self.route_output6(netns, int.from_bytes(daddr, "big"), int.from_bytes(saddr or b"", "big"), oif)
        ns = self.netns.get(netns)
        if ns is None:
            return RouteReply(err=errno.ENODEV, fib_genid=self.genid)
        if saddr and not ns.fib.is_local(saddr):
            return RouteReply(err=errno.EADDRNOTAVAIL, fib_genid=self.genid)
        try:
            rt = route.ip_route_output(ns, daddr, saddr, oif)
        except RouteError as e:
            if e.errno == errno.ENETUNREACH:
                ns.mib["IpOutNoRoutes"] += 1
            return RouteReply(err=e.errno, fib_genid=self.genid)
        return RouteReply(saddr=rt.saddr, oif=rt.oif, mtu=rt.mtu, type=rt.type, fib_genid=self.genid,
                          dst=Dst(oif=rt.oif, nexthop=rt.nexthop, mtu=rt.mtu, genid=ns.fib.genid))

    def route_output6(self, netns: str, daddr: int, saddr: int = 0, oif: int = 0) -> RouteReply:
        """ip6_dst_lookup() for the transport layer (RouteRequest.daddr6): the route, the
        source address ipv6_dev_get_saddr() chose, or the errno (ENETUNREACH, EHOSTUNREACH,
        EACCES, EINVAL; EADDRNOTAVAIL for a source that is not this host's, or none)."""
        ns = self.netns.get(netns)
        n6 = ns.v6 if ns is not None else None
        err = errno.ENODEV if ns is None else errno.EADDRNOTAVAIL if saddr and not n6.chk_addr(saddr, oif) else 0
        if not err:
            try:
                rt = ip6_route.ip6_route_output(n6, daddr, saddr, oif)
            except RouteError as e:
                err = e.errno
                ns.mib["Ip6OutNoRoutes"] += err == errno.ENETUNREACH
        if err:
            return RouteReply(err=err, fib_genid=self.genid)
        nexthop = rt.nexthop.to_bytes(16, "big")
        return RouteReply(saddr6=rt.saddr.to_bytes(16, "big"), oif=rt.oif, mtu=rt.mtu, type=rt.type,
                          fib_genid=self.genid, dst=Dst(oif=rt.oif, nexthop6=nexthop, mtu=rt.mtu, genid=n6.fib.genid))

    def route_get6(self, netns: str, daddr: int, now: int, saddr: int = 0, oif: int = 0) -> list[str]:
        """`ip -6 route get ADDR [from ADDR] [oif DEV]` (ip6_route.route_get6()). Raises RouteError."""
        ns = self.netns[netns]
        return ip6_route.route_get6(ns.v6, daddr, now, saddr, oif, ns.ifname)

    def route_get(self, netns: str, daddr: int, now: int, saddr: int = 0, mark: int = 0) -> list[str]:
        """`ip route get ADDR [from ADDR] [mark N]`: the route a packet to daddr
        takes, as iproute2 prints it (the table when it is not main), with the
        path MTU a route exception holds and when it expires. Raises RouteError."""
        ns = self.netns[netns]
        rt = route.ip_route_output(ns, daddr, saddr, mark=mark)
        via = f" via {ipv4.ntoa(rt.nexthop)}" if rt.nexthop != daddr else ""
        kind = {RTN_LOCAL: "local ", RTN_BROADCAST: "broadcast "}.get(rt.type, "")
        e = ns.pmtu.get(daddr)
        cache = f" expires {max(0, (e.expires - now) // 1_000_000_000)}sec mtu {e.mtu}" if e else ""
        if rt.type == RTN_LOCAL:
            cache = " <local>"
        r = ns.fib.lookup(daddr, saddr, route.LOOPBACK_IFINDEX, 0, mark)
        table = f" table {TABLE_NAMES.get(r.table, r.table)}" if r is not None and r.table not in (
            TABLE_MAIN, TABLE_LOCAL) else ""
        src = f" from {ipv4.ntoa(saddr)}" if saddr else ""
        mark_ = f" mark 0x{mark:x}" if mark else ""
        return [f"{kind}{ipv4.ntoa(daddr)}{src}{via} dev {ns.ifname(rt.oif)}{table}"
                f"{'' if saddr else ' src ' + ipv4.ntoa(rt.saddr)}{mark_} uid 0 ", f"    cache{cache} "]

    def flush_cache(self, netns: str, v6: bool = False):
        """`ip [-6] route flush cache`: the route exceptions (learned path MTUs) go."""
        ns = self.netns[netns]
        fib, pmtu = (ns.v6.fib, ns.v6.pmtu) if v6 else (ns.fib, ns.pmtu)
        pmtu.clear()
        fib.changed()

    def addresses(self, netns: str) -> list[dict]:
        ns = self.netns[netns]
        return [{"ifindex": d.ifindex, "ifname": d.name, "mtu": d.mtu, "loopback": d.loopback,
                 "addresses": [{"local": ipv4.ntoa(a), "prefixlen": p,
                                "broadcast": ipv4.ntoa(a | (~ipv4.prefix_mask(p) & 0xFFFFFFFF)) if p < 31 else None}
                               for a, p in d.addrs],
                 "stats": dict(ns.devstats[d.ifindex])}
                for d in sorted(ns.devices.values(), key=lambda d: d.ifindex)]
