"""An in-process wiring of the cores (no gRPC, no clock): frames in at a
device, the frames each layer would put on the wire out, and every verdict
seen on the way. What the services do, minus the shells."""
import random
from collections import Counter

from pktflow.services.common import topology
from pktflow.services.common.skbuff import DOWN, DROP, TIMER, UP
from pktflow.services.ip.stack import Ip
from pktflow.services.link import neighbour
from pktflow.services.link.dev import Link
from pktflow.services.transport.sock import NeedRoute
from pktflow.services.transport.stack import Transport
from pktflow.services.wire import ethernet, ipv4
from pktflow.v1.skb_pb2 import Skb


class Kernel:
    def __init__(self, topo=None, seed: int = 1):
        self.topo = topo or topology.load()
        rng = random.Random(seed)
        self.link, self.ip, self.tr = Link(self.topo, rng), Ip(self.topo, rng), Transport(self.topo, rng)
        self.now = 1_000_000_000
        self.wire: list = []          # (netns, ifindex, frame) handed to the nic layer
        self.up: list = []            # skbs handed to the socket layer
        self.drops: list = []         # (layer, fn, reason, skb)
        self.timers: dict = {}
        self.req = 0

    def learn(self, netns: str, ifname: str, ip: str, mac: str):
        """A REACHABLE neighbour entry, as if ARP had run."""
        ifindex = self.topo.hosts[netns].interfaces[ifname].ifindex
        self.link.netns[netns].neigh.update(ifindex, ipv4.aton(ip), ethernet.mac_from_str(mac),
                                            neighbour.NUD_REACHABLE, self.now, create=True)

    def _route(self, need: NeedRoute):
        err, rt = self.ip.route_output(need.netns, need.daddr, need.saddr)
        self.tr.add_route(need.netns, need.daddr, need.saddr, err, rt.saddr if rt else 0, rt.mtu if rt else 0,
                          rt.type if rt else 0)

    def _run(self, layer: str, verdicts: list):
        for kind, skb, fn, arg in verdicts:
            if kind == TIMER:
                self.timers[fn] = arg
            elif kind == DROP:
                self.drops.append((layer, fn, arg, skb))
            elif kind == DOWN:
                self.down_from(layer, skb)
            elif kind == UP:
                self.up_from(layer, skb, arg)

    def down_from(self, layer: str, skb):
        if layer == "transport":
            self._run("ip", self.ip.from_transport(skb, self.now))
        elif layer == "ip":
            self._run("link", self.link.dev_queue_xmit(skb, self.now))
        elif layer == "link":
            self.wire.append((skb.netns, skb.ifindex, skb.data))

    def up_from(self, layer: str, skb, to):
        if layer == "link" and to != "socket":
            self._run("ip", self.ip.ip_rcv(skb, self.now))
        elif layer == "ip":
            self._run("transport", self.tr.rcv(skb, self.now))
        else:
            self.up.append(skb)

    def receive(self, netns: str, ifname: str, frame: bytes):
        """A frame arriving at a device, as the nic hands it up."""
        ifindex = self.topo.hosts[netns].interfaces[ifname].ifindex
        skb = Skb(netns=netns, ifindex=ifindex, data=bytes(frame))
        self._run("link", self.link.netif_receive_skb(skb, self.now))

    def call(self, netns: str, sk: int, op, **fields):
        """A socket-layer call into transport; returns the COMPLETE event."""
        from pktflow.v1.skb_pb2 import ProtoCall
        self.req += 1
        skb = Skb(netns=netns, sk=sk, data=fields.pop("data", b""), call=ProtoCall(op=op, req=self.req, **fields))
        while True:
            try:
                verdicts = self.tr.from_socket(skb, self.now)
                break
            except NeedRoute as need:
                self._route(need)
        events = [v[1].event for v in verdicts if v[0] == UP and v[1].event.kind == v[1].event.COMPLETE]
        self._run("transport", [v for v in verdicts if not (v[0] == UP and v[1].event.kind == 1)])
        return events[0] if events else None

    def fire(self, key):
        self.now = max(self.now, self.timers.pop(key))
        self._run("link", self.link.timer(key, self.now))

    def counters(self, netns: str) -> Counter:
        out = Counter()
        out.update(self.ip.netns[netns].mib)
        out.update(self.tr.netns[netns].mib)
        out.update(self.link.netns[netns].mib)
        return out
