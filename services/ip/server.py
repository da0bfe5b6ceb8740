"""The ip service: a thin shell around stack.Ip, plus the route lookup the
transport layer asks for."""
import errno
import json
import time

from pktflow.v1 import admin_pb2, layers_pb2_grpc

from ..common import metrics, snmp
from ..common.shell import LayerShell
from ..wire import ipv4, ipv6
from . import iproute, iproute6
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
        if request.daddr6:                   # ip6_route_output()
            return self.ip.route_output6(request.netns, int.from_bytes(request.daddr6, "big"),
                                         int.from_bytes(request.saddr6, "big"), request.oif)
        return self.ip.route_output(request.netns, request.daddr, request.saddr, request.oif)

    def span_attrs(self, skb):
        """Addresses, protocol and TTL (hop limit) from the IP header, as the hop left it."""
        nh = skb.network_header
        d = skb.data
        if len(d) >= nh + 40 and d[nh] >> 4 == 6:
            key = d[nh + 6:nh + 40]                         # next header, hop limit, addresses
            return self.cached_attrs(key, lambda: (
                ("network.type", "ipv6"), ("source.address", ipv6.ntoa(int.from_bytes(key[2:18], "big"))),
                ("destination.address", ipv6.ntoa(int.from_bytes(key[18:34], "big"))),
                ("network.transport", _PROTO_NAMES.get(key[0], str(key[0]))), ("pktflow.ip.ttl", key[1])))
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
        if req.command in ("route", "addr") and req.args[:1] == ["-6"]:
            return self.admin6(ns, req.command, list(req.args[1:]))
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

    def admin6(self, ns, command: str, args: list[str]) -> admin_pb2.AdminReply:
        """`ip -6 route [get ADDR [from ADDR] [oif DEV] | flush cache | show | add | del ...]`,
        `ip -6 addr [add|del ADDR/PLEN dev IF]`."""
        if command == "route" and args[:1] == ["get"]:
            try:
                words = dict(zip(args[2::2], args[3::2]))
                oif = ns.by_name[words["oif"]].ifindex if "oif" in words else 0
                lines = self.ip.route_get6(ns.name, ipv6.aton(args[1]), time.monotonic_ns(),
                                           ipv6.aton(words.get("from", "::")), oif)
            except (IndexError, ValueError, KeyError):
                return admin_pb2.AdminReply(err=errno.EINVAL,
                                            detail="ip -6 route get ADDRESS [from ADDRESS] [oif DEVICE]")
            except RouteError as e:
                return admin_pb2.AdminReply(err=e.errno)
            return admin_pb2.AdminReply(json=json.dumps(lines))
        if command == "route" and args[:2] == ["flush", "cache"]:
            self.ip.flush_cache(ns.name, v6=True)
            return admin_pb2.AdminReply(json="[]")
        if command == "route" or args[:1] in (["add"], ["del"], ["delete"]):
            run = iproute6.ip6_route if command == "route" else iproute6.ip6_addr
            status, out, err = run(ns, args)
            return admin_pb2.AdminReply(json=json.dumps({"status": status, "out": out, "err": err}))
        return admin_pb2.AdminReply(json=json.dumps(ns.v6.addresses(ns.ifname)))

    def mib_rows(self, netns: str) -> list[tuple[str, int]]:
        """nstat's Ip, IpExt and Icmp rows of the namespace, then /proc/net/snmp6's Ip6 and
        Icmp6 ones (the message counters by name and by type, as snmp6 prints them)."""
        ns = self.ip.netns[netns]
        fixed = {"IpForwarding": 1 if ns.forwarding else 2, "IpDefaultTTL": ns.default_ttl}
        mib = ns.mib
        six = {k for k in mib if k.startswith(("Ip6", "Icmp6"))}
        rows = [(k, fixed.get(k, v)) for k, v in mib.rows(snmp.IP + snmp.IP_EXT + snmp.ICMP) if k not in six]
        return rows + [(k, mib[k]) for k in snmp.IP6] + snmp.icmp6_rows(mib)

    def metric_families(self):
        return metrics.nstat(self.name, ((n, self.mib_rows(n)) for n in self.ip.netns)) + super().metric_families()

    def sysctls(self, netns: str):
        ns = self.ip.netns[netns]
        ns.v6.sync_sysctls()                 # net.ipv6.conf.*: the devconf as it is
        return ns.sysctl, set(ns.by_name)

    def sysctl_written(self, netns: str, names: list[str]):
        self.ip.netns[netns].sysctl_written(names)


_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}
