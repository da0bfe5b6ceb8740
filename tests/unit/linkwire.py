"""A harness of link cores only (services/link/dev.py's Link) for the tests of
neighbour discovery: every host's device layer, the topology's cables carrying
frames straight from one device's egress into its peers' ingress, a fake clock
that moves only when told, the link timers fired in order. What a core hands up
(to ip) and drops is recorded; frames are recorded as (time, netns, ifname, bytes)."""
import random

from pktflow.services.common import topology
from pktflow.services.common.actions import Arm, Cancel, Down, Drop, Stop, Up
from pktflow.services.link.dev import Link
from pktflow.services.wire import ethernet, ipv6
from pktflow.v1.skb_pb2 import Skb

S = 1_000_000_000
MS = 1_000_000


class LinkWire:
    def __init__(self, topo=None, seed: int = 1):
        self.topo = topo or topology.load()
        self.link = Link(self.topo, random.Random(seed))
        self.now = 0
        self.timers: dict = {}
        self.frames: list = []          # (when, netns, ifname, frame) as they left a device
        self.up: list = []              # (netns, fn, skb) handed to ip
        self.drops: list = []           # (netns, fn, reason, skb)
        self.stops: list = []           # (netns, fn, skb)
        self.pending: list = []         # frames on a cable, not yet across

    def ifname(self, netns: str, ifindex: int) -> str:
        return self.topo.hosts[netns].interface(ifindex).name

    def ifindex(self, netns: str, ifname: str) -> int:
        return self.topo.hosts[netns].interfaces[ifname].ifindex

    def run(self, actions):
        for act in actions:
            kind = type(act)
            if kind is Down:
                name = self.ifname(act.skb.netns, act.skb.ifindex)
                self.frames.append((self.now, act.skb.netns, name, bytes(act.skb.data)))
                self.pending.append((act.skb.netns, name, bytes(act.skb.data)))
            elif kind is Up:
                self.up.append((act.skb.netns, act.fn, act.skb))
            elif kind is Drop:
                self.drops.append((act.skb.netns, act.fn, act.reason, act.skb))
            elif kind is Stop:
                self.stops.append((act.skb.netns, act.fn, act.skb))
            elif kind is Arm:
                self.timers[act.key] = act.when
            elif kind is Cancel:
                self.timers.pop(act.key, None)
        while self.pending:
            netns, name, frame = self.pending.pop(0)
            for peer, pname in self.topo.peers(netns, name):
                self.receive(peer, pname, frame)

    def receive(self, netns: str, ifname: str, frame: bytes):
        skb = Skb(netns=netns, ifindex=self.ifindex(netns, ifname), data=frame)
        self.run(self.link.netif_receive_skb(skb, self.now))

    def up_all(self):
        """The devices come up (DAD, MLD, RS), at the current time."""
        self.run(self.link.netdev_up(self.now))

    def send6(self, netns: str, ifname: str, src: str, dst: str, nexthop: str | None = None,
              payload: bytes = b"\x80\0\0\0\0\0\0\0", packet: bytes | None = None):
        """An IPv6 packet as ip hands it to link (protocol 0x86DD, Skb.nexthop6): a
        header from src to dst before `payload`, or `packet` as it is."""
        s, d = ipv6.aton(src), ipv6.aton(dst)
        pkt = packet if packet is not None else ipv6.header(s, d, ipv6.IPPROTO_ICMPV6, len(payload)) + payload
        skb = Skb(netns=netns, ifindex=self.ifindex(netns, ifname), data=pkt, protocol=ethernet.ETH_P_IPV6,
                  nexthop6=ipv6.aton(nexthop or dst).to_bytes(16, "big"))
        self.run(self.link.dev_queue_xmit(skb, self.now))
        return skb

    def advance(self, seconds: float):
        end = self.now + int(seconds * S)
        while True:
            due = [(when, key) for key, when in self.timers.items() if when <= end]
            if not due:
                break
            when, key = min(due, key=lambda x: x[0])
            del self.timers[key]
            self.now = max(self.now, when)
            self.run(self.link.timer(key, self.now))
        self.now = end

    def ns(self, netns: str):
        return self.link.netns[netns]

    def on_link(self, *ends) -> list[bytes]:
        """The frames that went over the cable of these (netns, ifname) ends, in order."""
        return [f for _, netns, ifname, f in self.frames if (netns, ifname) in ends]

    def dev(self, netns: str, ifname: str):
        return self.ns(netns).devices[self.ifindex(netns, ifname)]
