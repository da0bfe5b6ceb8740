"""The transport service: a thin shell around stack.Transport. Route lookups
the core asks for (AskRoute) are answered by the ip layer's RouteOutput."""
import errno
import json
import logging
import time

import grpc

from pktflow.v1 import admin_pb2, layers_pb2, layers_pb2_grpc

from ..common import metrics, snmp
from ..common.shell import LayerShell
from ..common.actions import AskRoute
from .stack import Transport
from .udpv6 import UDP6
from . import af_inet6
from .tcp import TRACE_NAMES, trace_fields

log = logging.getLogger("pktflow.transport")


class TransportShell(LayerShell):
    name = "transport"
    default_upper = "socket"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.tr = Transport(topo, probes=self.probes)
        self._socket_instance = None
        self._asks: set = set()

    def egress(self, skb, now):
        return self.tr.from_socket(skb, now)

    def on_action(self, act):
        if type(act) is AskRoute:           # the call waits; the batch and other sockets go on
            task = self.loop.create_task(self.fetch_route(act))
            self._asks.add(task)
            task.add_done_callback(self._asks.discard)

    async def fetch_route(self, ask: AskRoute):
        ip = layers_pb2_grpc.IpStub(self.downs["ip"].channel)
        t0 = time.time_ns()
        try:
            if isinstance(ask.daddr, bytes):     # IPv6: the 16-byte addresses (route6())
                req = layers_pb2.RouteRequest(netns=ask.netns, daddr6=ask.daddr,
                                              saddr6=ask.saddr if any(ask.saddr) else b"")
            else:
                req = layers_pb2.RouteRequest(netns=ask.netns, daddr=ask.daddr, saddr=ask.saddr)
            r = await ip.RouteOutput(req, timeout=5)
        except grpc.aio.AioRpcError as e:
            log.warning("route lookup in the ip layer failed: %s", e.code().name)
            r = layers_pb2.RouteReply(err=errno.ENETDOWN)
        actions = self.tr.route_answer(ask.netns, ask.daddr, ask.saddr, r, time.monotonic_ns())
        self.apply(actions, t0, time.time_ns(), "egress")

    def on_ingress_batch(self, batch):
        self.tr.set_genid(batch.fib_genid)
        super().on_ingress_batch(batch)

    def ingress(self, skb, now):
        return self.tr.rcv(skb, now)

    def timer(self, key, now):
        return self.tr.timer(key, now)

    def on_upper_connect(self, layer, instance):
        if instance != self._socket_instance:
            self.tr.reset()
            self._socket_instance = instance

    def span_attrs(self, skb):
        th, nh, d = skb.transport_header, skb.network_header, skb.data
        proto = skb.ip_proto or (d[nh + 9] if len(d) > nh + 9 else 0)
        if proto not in (6, 17) or len(d) < th + 4:     # TCP and UDP: the ports name the flow
            return b""
        ports = d[th:th + 4]
        return self.cached_attrs(ports, lambda: (("source.port", int.from_bytes(ports[:2], "big")),
                                                 ("destination.port", int.from_bytes(ports[2:], "big"))))

    def tracepoint_fields(self, tp: str, skb) -> dict:
        """tcp:tcp_retransmit_skb and tcp:tcp_send_reset: the socket's fields, or
        (a reset for no socket) the segment's own addresses and ports."""
        if not tp.startswith("tcp:"):
            return {}
        sk = self.tr.tcp.socks.get(skb.sk)
        if sk is not None:
            f = trace_fields(sk)
            state = TRACE_NAMES[sk.state]
        else:
            th, d = skb.transport_header, skb.data
            ipv6, saddr, daddr = af_inet6.pkt_addrs(skb)
            f = {"skaddr": 0, "family": "AF_INET6" if ipv6 else "AF_INET",
                 "sport": int.from_bytes(d[th:th + 2], "big"), "dport": int.from_bytes(d[th + 2:th + 4], "big"),
                 "saddr": af_inet6.ntoa(ipv6, saddr), "daddr": af_inet6.ntoa(ipv6, daddr)}
            state = "UNKNOWN"
        if tp == "tcp:tcp_send_reset":           # a sockaddr here, ports inside (the kernel's fields)
            if f["family"] == "AF_INET6":        # %pISpc of a sockaddr_in6: [addr]:port
                src, dst = f.get("saddr_v6", f["saddr"]), f.get("daddr_v6", f["daddr"])
                return {"skaddr": f["skaddr"], "state": state, "saddr": f"[{src}]:{f['sport']}",
                        "daddr": f"[{dst}]:{f['dport']}"}
            return {"skaddr": f["skaddr"], "state": state, "saddr": f"{f['saddr']}:{f['sport']}",
                    "daddr": f"{f['daddr']}:{f['dport']}"}
        return {**f, "state": state}

    def mib_rows(self, netns: str) -> list[tuple[str, int]]:
        """nstat's Tcp, Udp, Udp6 (/proc/net/snmp6's) and TcpExt rows of the namespace."""
        rows = self.tr.netns[netns].mib.rows(snmp.TCP + snmp.UDP + UDP6, "TcpExt", snmp.TCP_EXT)
        return [(k, snmp.TCP_FIXED.get(k, v)) for k, v in rows]

    def metric_families(self):
        return metrics.nstat(self.name, ((n, self.mib_rows(n)) for n in self.tr.netns)) + super().metric_families()

    def sysctls(self, netns: str):
        return self.tr.netns[netns].sysctl, None

    def sysctl_written(self, netns: str, names: list[str]):
        ns = self.tr.netns[netns]
        if "net.ipv4.ip_local_port_range" in names:       # inet_get_local_port_range() reads it each bind
            tcp = getattr(ns, "tcp", None)                 # made on the namespace's first TCP socket
            for table in [ns.udp] + ([tcp.ports] if tcp else []):
                table.port_range = ns.sysctl["net.ipv4.ip_local_port_range"]

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        ns = self.tr.netns[req.netns]
        if req.command == "counters":
            return admin_pb2.AdminReply(counters=[admin_pb2.Counter(name=k, value=v)
                                                  for k, v in self.mib_rows(req.netns)]
                                        + self.drop_counters(req.netns))
        if req.command == "sockets":
            return admin_pb2.AdminReply(json=json.dumps(self.tr.tcp.sockets(ns)))
        return super().admin(req)
