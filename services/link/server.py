"""The link service: a thin shell around dev.Link."""
import json
import time

from pktflow.v1 import admin_pb2

from ..common import metrics
from ..common.shell import LayerShell
from ..wire import ethernet, ipv4
from . import neighbour as nd, sch_api
from .dev import Link


class LinkShell(LayerShell):
    name = "link"
    default_upper = "ip"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.link = Link(topo, probes=self.probes)
        self._socket_instance = None

    def egress_for(self, from_layer):
        return self.link.packet_xmit if from_layer == "socket" else self.link.dev_queue_xmit

    def ingress(self, skb, now):
        return self.link.netif_receive_skb(skb, now)

    def timer(self, key, now):
        return self.link.timer(key, now)

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
        if any(n.startswith("net.ipv4.neigh.") for n in names):    # the ARP table's parameters
            ns = self.link.netns[netns]
            ns.neigh.parms = nd.NeighParms(ns.sysctl)

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        ns = self.link.netns[req.netns]
        if req.command == "neigh":
            return admin_pb2.AdminReply(json=json.dumps(self.link.neighbours(req.netns)))
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
