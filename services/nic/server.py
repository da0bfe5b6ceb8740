"""The nic service: a thin shell around netdev.Nic."""
import json
import time

from pktflow.v1 import admin_pb2

from ..common.shell import LayerShell
from .netdev import Nic


class NicShell(LayerShell):
    name = "nic"
    default_upper = "link"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.nic = Nic(topo)

    def egress(self, skb, now):
        return self.nic.ndo_start_xmit(skb, now)

    async def on_egress_batch(self, batch, from_layer):
        await super().on_egress_batch(batch, from_layer)
        self.softirq()

    def softirq(self):
        """The cable, then NAPI: poll every device with frames, a budget at a time."""
        now = time.monotonic_ns()
        nic, apply, ns = self.nic, self.apply, time.time_ns
        t0 = ns()
        apply(nic.transmit(now, t0), t0, ns(), "ingress")
        while nic.rx_pending:
            for dev in list(nic.rx_pending):
                t0 = ns()
                apply(nic.napi_poll(dev, now), t0, ns(), "ingress")

    def span_attrs(self, skb):
        dev = self.nic.device(skb.netns, skb.ifindex)
        return self.cached_attrs(("dev", dev.name), lambda: (("pktflow.ifname", dev.name),)) if dev else b""

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        if req.command in ("link", "counters"):
            return admin_pb2.AdminReply(json=json.dumps(self.nic.link_stats(req.netns)),
                                        counters=self.drop_counters(req.netns))
        return super().admin(req)
