"""The link service: a thin shell around dev.Link."""
import asyncio
import json
import logging
import time

from grpc_health.v1 import health_pb2
from pktflow.v1 import admin_pb2

from ..common import metrics
from ..common.shell import LayerShell
from ..common import sysctl as sysctl_mod
from ..wire import ethernet, ipv4, ipv6
from . import addrconf, neighbour as nd, sch_api
from .dev import Link

log = logging.getLogger("pktflow.link")


class LinkShell(LayerShell):
    name = "link"
    default_upper = "ip"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.link = Link(topo, probes=self.probes)
        self._socket_instance = None
        self._devices_up = False
        self._dad_done = False                 # the start's DAD is over (or failed) on every device

    def egress_for(self, from_layer):
        return self.link.packet_xmit if from_layer == "socket" else self.link.dev_queue_xmit

    def ingress(self, skb, now):
        return self.link.netif_receive_skb(skb, now)

    def timer(self, key, now):
        return self.link.timer(key, now)

    def on_lower_state(self, layer, up):
        """The NIC layer reachable for the first time: the devices come up (DAD, MLD,
        router solicitations: Link.netdev_up())."""
        if layer == "nic" and up and not self._devices_up:
            self._devices_up = True
            t = time.monotonic_ns()
            try:                               # (called from the NIC stream's task: a bug here must not end it)
                self.apply(self.link.netdev_up(t), time.time_ns(), time.time_ns(), "egress")
            except Exception:
                log.exception("link: bringing the devices up failed")
                self._dad_done = True          # serve anyway, with the addresses as they are
            asyncio.ensure_future(self._await_dad())

    def dad_pending(self) -> bool:
        """Some address is still tentative (and has not failed DAD)."""
        return any(ifa.flags & addrconf.IFA_F_TENTATIVE and not ifa.flags & addrconf.IFA_F_DADFAILED
                   for ns in self.link.netns.values() for d in ns.devices.values() if d.idev6
                   for ifa in d.idev6.ifa.values())

    async def _await_dad(self):
        """The start's DAD takes a second or two (a random delay below 1 s, then
        retrans_time); the emulator is ready once it is done, so traffic never
        meets a tentative address: until then the service says NOT_SERVING, and
        `pktflow up` (which waits for every layer's health) returns after it."""
        while not self._dad_done and self.dad_pending():
            await asyncio.sleep(0.05)
        self._dad_done = True
        await self._update_health()

    async def _update_health(self):
        if self._devices_up and not self._dad_done:
            for name in ("", f"pktflow.{self.name}"):
                await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            return
        await super()._update_health()

    def on_upper_connect(self, layer, instance):
        if layer == "socket" and instance != self._socket_instance:
            self.link.reset_taps()
            self._socket_instance = instance

    def span_attrs(self, skb):
        ns = self.link.netns.get(skb.netns)
        dev = ns.devices.get(skb.ifindex) if ns else None
        return self.cached_attrs(("dev", dev.name), lambda: (("pktflow.ifname", dev.name),)) if dev else b""

    def metric_families(self):
        """Arp counters (nstat), the devices' drops seen here, every root and child qdisc (tc -s)."""
        nets = self.link.netns
        return (metrics.nstat(self.name, ((n, sorted(ns.mib.items())) for n, ns in nets.items()))
                + metrics.netdev(self.name, ((n, d.name, d.stats) for n, ns in nets.items()
                                             for d in sorted(ns.devices.values(), key=lambda d: d.ifindex)), always=())
                + metrics.qdiscs((n, q) for n, ns in nets.items() for q in sch_api.dump(ns))
                + super().metric_families())

    def sysctls(self, netns: str):
        ns = self.link.netns[netns]
        return ns.sysctl, {d.name for d in ns.devices.values()}

    def sysctl_written(self, netns: str, names: list[str]):
        ns = self.link.netns[netns]
        if any(n.startswith("net.ipv4.neigh.") for n in names):    # the ARP table's parameters
            ns.neigh.parms = nd.NeighParms(ns.sysctl)
        if any(n.startswith("net.ipv6.neigh.") for n in names):    # nd_tbl's
            ns.nd_tbl.parms = nd.NeighParms(ns.sysctl, nd.AF_INET6)
        six = [n for n in names if n.startswith("net.ipv6.conf.")]
        for name in six:                       # forwarding: the groups a device is in (all-routers, anycast)
            sysctl_mod.conf6_write(ns.conf6, name, ns.sysctl[name])
        actions, now = [], time.monotonic_ns()
        for d in ns.devices.values() if six else ():
            if d.idev6 is not None:
                actions += addrconf.join(ns, d, now) if self._devices_up else addrconf.rejoin(d) or []
        if actions:
            ns.now = now
            t = time.time_ns()
            self.apply(actions, t, t, "egress")

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        ns = self.link.netns[req.netns]
        if req.command == "neigh":             # `neigh [-6]`: arp_tbl, or nd_tbl
            family = nd.AF_INET6 if list(req.args[:1]) == ["-6"] else nd.AF_INET
            return admin_pb2.AdminReply(json=json.dumps(self.link.neighbours(req.netns, family)))
        if req.command == "addrs6":            # `addrs6 [IF A/P...]`: show, or the ip layer's IPv6 addresses now
            return self.addrs6(ns, list(req.args))
        if req.command == "ntable":            # `ip -s ntable show name arp_cache`: size, thresholds, GC runs
            t = ns.neigh
            return admin_pb2.AdminReply(json=json.dumps(
                {"entries": len(t.entries), "gc_thresh1": t.parms.gc_thresh1, "gc_thresh2": t.parms.gc_thresh2,
                 "gc_thresh3": t.parms.gc_thresh3, "forced_gc_runs": t.stats["forced_gc_runs"],
                 "periodic_gc_runs": t.stats["periodic_gc_runs"], "table_fulls": t.stats["table_fulls"]}))
        if req.command in ("addrs", "link") and req.args[:1] != [] and (req.command == "addrs" or
                                                                        req.args[0] == "set"):
            # `addrs IF A/P...`: the ip layer's addresses after `ip addr add|del`; `link set IF ... mtu N`
            words = list(req.args[1:] if req.command == "link" else req.args)
            d = next((d for d in ns.devices.values() if d.name == (words[:1] or [""])[0]), None)
            try:
                if d is None:
                    raise ValueError("no such device")
                if req.command == "addrs":
                    d.set_addresses([ipv4.parse_prefix(a) for a in words[1:]])
                    ns.local = {a for dev in ns.devices.values() for a in dev.local}
                elif "mtu" in words:
                    d.mtu = int(words[words.index("mtu") + 1])
                elif "speed" in words:         # bytes/s, from `ethtool -s IF speed N` (Mb/s)
                    speed = int(words[words.index("speed") + 1])
                    if speed <= 0:
                        raise ValueError("a speed is a positive number of Mb/s")
                    d.set_speed(speed)
            except (ValueError, IndexError) as e:
                return admin_pb2.AdminReply(err=22, detail=f"{req.command} {' '.join(req.args)}: {e}")
            return admin_pb2.AdminReply(json="{}")
        if req.command == "features":          # `ethtool -k|-K IF [tso|gso on|off]...`: the link layer's offloads
            return self.features(ns.devices.values(), list(req.args), ("tso", "gso"))
        if req.command == "link":
            return admin_pb2.AdminReply(json=json.dumps([
                {"ifindex": d.ifindex, "ifname": d.name, "mtu": d.mtu, "mac": ethernet.mac_to_str(d.mac),
                 "loopback": d.loopback, "addresses": [f"{ipv4.ntoa(a)}/{p}" for a, p in d.addrs],
                 "qdisc": sch_api.qdisc_kind(d), "speed": d.speed,
                 "stats": dict(d.stats)} for d in sorted(ns.devices.values(), key=lambda d: d.ifindex)]))
        if req.command == "tc":                # `tc qdisc ...`, as tc sends it (TcQdiscRequest)
            try:
                qdiscs, actions = sch_api.tc_qdisc(ns, req.tc_qdisc)
            except sch_api.QdiscError as e:
                return admin_pb2.AdminReply(err=e.err, detail=e.extack)
            t = time.time_ns()
            self.apply(actions, t, t, "egress")    # a replaced qdisc's packets freed, its timer cancelled
            return admin_pb2.AdminReply(qdiscs=qdiscs)
        if req.command == "counters":
            return admin_pb2.AdminReply(counters=[admin_pb2.Counter(name=k, value=v) for k, v in sorted(ns.mib.items())]
                                        + self.drop_counters(req.netns))
        return super().admin(req)

    def addrs6(self, ns, words: list[str]):
        """`addrs6`: every device's IPv6 addresses with what DAD concluded (tentative,
        dadfailed); `addrs6 IF A/P...`: the device's addresses after `ip -6 addr
        add|del` (a new one starts DAD, its group joined and reported)."""
        if not words:
            return admin_pb2.AdminReply(json=json.dumps(
                {d.name: addrconf.addr_lines(d) for d in sorted(ns.devices.values(), key=lambda d: d.ifindex)}))
        d = next((d for d in ns.devices.values() if d.name == words[0]), None)
        try:
            if d is None:
                raise ValueError("no such device")
            now = time.monotonic_ns()
            actions = addrconf.set_addrs(ns, d, [ipv6.parse_prefix(a) for a in words[1:]], now)
        except ValueError as e:
            return admin_pb2.AdminReply(err=22, detail=f"addrs6 {' '.join(words)}: {e}")
        ns.now = now
        t = time.time_ns()
        self.apply(actions, t, t, "egress")
        return admin_pb2.AdminReply(json="{}")
