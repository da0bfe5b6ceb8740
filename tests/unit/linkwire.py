"""A harness of link cores only (services/link/dev.py's Link) for the tests of
neighbour discovery: every host's device layer, the topology's cables carrying
frames straight from one device's egress into its peers' ingress, a fake clock
that moves only when told, the link timers fired in order. What a core hands up
(to ip) and drops is recorded; frames are recorded as (time, netns, ifname, bytes). Beside it, what the tests
of neighbour discovery share: Linux's captures, and NDP frames as a peer sends them."""
import random

from scapy.utils import RawPcapReader

from conftest import LINUX_CAPTURES
from pktflow.services.common import topology
from pktflow.services.common.actions import Arm, Cancel, Down, Drop, Stop, Up
from pktflow.services.link.dev import Link
from pktflow.services.wire import ethernet, icmpv6, ipv6
from pktflow.v1.skb_pb2 import Skb

S = 1_000_000_000
MS = 1_000_000
CAPTURES = LINUX_CAPTURES / "ipv6"
H1, R1A, R1B, H2 = ("h1", "eth0"), ("r1", "eth0"), ("r1", "eth1"), ("h2", "eth0")
MAC_H1, MAC_R1A, MAC_R1B = bytes.fromhex("02000000010a"), bytes.fromhex("020000000101"), bytes.fromhex("020000000201")
LL_H1, LL_R1A, LL_R1B = ipv6.aton("fe80::ff:fe00:10a"), ipv6.aton("fe80::ff:fe00:101"), ipv6.aton("fe80::ff:fe00:201")
A = ipv6.aton


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


def capture(name: str) -> list[bytes]:
    return [bytes(data) for data, _ in RawPcapReader(str(CAPTURES / f"{name}.pcap"))]


def ndp(frames, type_=None) -> list[bytes]:
    """The neighbour discovery frames (or those of one type) among `frames`."""
    return [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] in range(133, 138)
            and (type_ is None or f[54] == type_)]


def frame(src_mac: bytes, dst_mac: bytes, src: int, dst: int, msg, hop_limit: int = 255) -> bytes:
    """A neighbour discovery frame as a peer (or scapy's test) would send it."""
    body = icmpv6.emit_ndisc(msg, src, dst)
    return ethernet.header(dst_mac, src_mac, ethernet.ETH_P_IPV6) + \
        ipv6.header(src, dst, 58, len(body), hop_limit=hop_limit) + body


def ns_frame(src: int, target: int, src_mac: bytes = b"\x02\0\0\0\x01\x77", dst: int | None = None,
             dst_mac: bytes | None = None, lladdr: bool = True, nonce: bytes | None = None, **kw) -> bytes:
    dst = ipv6.solicited_node(target) if dst is None else dst
    opts = icmpv6.nd_options(source_ll=src_mac if lladdr else None, nonce=nonce)
    mac = dst_mac or (ipv6.multicast_mac(dst) if ipv6.is_multicast(dst) else MAC_R1A)
    return frame(src_mac, mac, src, dst, icmpv6.NeighSolicit(target, opts), **kw)


def na_frame(src: int, dst: int, target: int, flags: int, lladdr: bytes | None, dst_mac: bytes,
             src_mac: bytes = b"\x02\0\0\0\x01\x77") -> bytes:
    opts = icmpv6.nd_options(target_ll=lladdr)
    return frame(src_mac, dst_mac, src, dst, icmpv6.NeighAdvert(flags, target, opts))


def records(report: bytes) -> list[tuple[int, str]]:
    """An MLDv2 report's (record type, group), read by hand (scapy nests them)."""
    n, off = int.from_bytes(report[68:70], "big"), 70
    return [(report[off + 20 * i], ipv6.ntoa(int.from_bytes(report[off + 20 * i + 4:off + 20 * i + 20], "big")))
            for i in range(n)]
