"""The ip service: a thin shell around stack.Ip, plus the route lookup the
transport layer asks for."""
import errno
import json
import time

from pktflow.v1 import admin_pb2, layers_pb2_grpc

from ..common import metrics, snmp
from ..common.shell import LayerShell
from ..wire import ipv4
from . import iproute
from .netfilter import tools as nf_tools
from .route import RouteError
from .stack import Ip


class IpShell(LayerShell, layers_pb2_grpc.IpServicer):
    name = "ip"
    default_upper = "transport"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.ip = Ip(topo)

    def egress(self, skb, now):
        return self.ip.from_transport(skb, now)

    def ingress(self, skb, now):
        return self.ip.ip_rcv(skb, now)

    def timer(self, key, now):
        return self.ip.timer(key, now)

    def batch_stamp(self):
        return {"fib_genid": self.ip.genid}

    def add_services(self, server):
        layers_pb2_grpc.add_IpServicer_to_server(self, server)

    async def RouteOutput(self, request, context):
        return self.ip.route_output(request.netns, request.daddr, request.saddr, request.oif)

    def span_attrs(self, skb):
        """Addresses, protocol and TTL from the IP header, as the hop left it."""
        nh = skb.network_header
        d = skb.data
        if len(d) < nh + 20 or d[nh] >> 4 != 4:
            return b""
        key = d[nh + 8:nh + 10] + d[nh + 12:nh + 20]           # TTL, protocol, addresses
        return self.cached_attrs(key, lambda: (
            ("network.type", "ipv4"), ("source.address", ipv4.ntoa(int.from_bytes(key[2:6], "big"))),
            ("destination.address", ipv4.ntoa(int.from_bytes(key[6:10], "big"))),
            ("network.transport", _PROTO_NAMES.get(key[1], str(key[1]))), ("pktflow.ip.ttl", key[0])))

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        ns = self.ip.netns[req.netns]
        if req.command == "counters":
            return admin_pb2.AdminReply(counters=[admin_pb2.Counter(name=k, value=v)
                                                  for k, v in self.mib_rows(req.netns)]
                                        + self.drop_counters(req.netns))
        if req.command == "route" and req.args[:1] == ["get"]:
            try:
                words = dict(zip(req.args[2::2], req.args[3::2]))     # get ADDR [from ADDR] [mark N]
                lines = self.ip.route_get(req.netns, ipv4.aton(req.args[1]), time.monotonic_ns(),
                                          ipv4.aton(words.get("from", "0.0.0.0")), int(words.get("mark", "0"), 0))
            except (IndexError, ValueError):
                return admin_pb2.AdminReply(err=errno.EINVAL, detail="ip route get ADDRESS [from ADDRESS] [mark N]")
            except RouteError as e:
                return admin_pb2.AdminReply(err=e.errno)
            return admin_pb2.AdminReply(json=json.dumps(lines))
        if req.command == "route" and req.args[:2] == ["flush", "cache"]:
            self.ip.flush_cache(req.netns)
            return admin_pb2.AdminReply(json="[]")
        if req.command in ("route", "rule"):          # ip route add|del|replace|show ..., ip rule ...
            run = iproute.ip_route if req.command == "route" else iproute.ip_rule
            status, out, err = run(ns, list(req.args))
            return admin_pb2.AdminReply(json=json.dumps({"status": status, "out": out, "err": err}))
        if req.command in ("addr", "link") and req.args[:1] in (["add"], ["del"], ["delete"], ["set"]):
            run = iproute.ip_addr if req.command == "addr" else iproute.ip_link_set
            status, out, err = run(ns, list(req.args))
            return admin_pb2.AdminReply(json=json.dumps({"status": status, "out": out, "err": err}))
        if req.command in ("addr", "link"):
            return admin_pb2.AdminReply(json=json.dumps(self.ip.addresses(req.netns)))
        if req.command in nf_tools.TOOLS:
            status, out, err = nf_tools.run(ns, req.command, list(req.args), time.monotonic_ns())
            return admin_pb2.AdminReply(json=json.dumps({"status": status, "out": out, "err": err}))
        return super().admin(req)

    def mib_rows(self, netns: str) -> list[tuple[str, int]]:
        """nstat's Ip, IpExt and Icmp rows of the namespace."""
        ns = self.ip.netns[netns]
        fixed = {"IpForwarding": 1 if ns.forwarding else 2, "IpDefaultTTL": ns.default_ttl}
        return [(k, fixed.get(k, v)) for k, v in ns.mib.rows(snmp.IP + snmp.IP_EXT + snmp.ICMP)]

    def metric_families(self):
        return metrics.nstat(self.name, ((n, self.mib_rows(n)) for n in self.ip.netns)) + super().metric_families()

    def sysctls(self, netns: str):
        ns = self.ip.netns[netns]
        return ns.sysctl, set(ns.by_name)

    def sysctl_written(self, netns: str, names: list[str]):
        self.ip.netns[netns].sysctl_written(names)


_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
