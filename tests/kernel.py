"""An in-process wiring of the cores (no gRPC, no clock): frames in at a
device, the frames each layer would put on the wire out, and every verdict
seen on the way. What the services do, minus the shells."""
import random
from collections import Counter

from pktflow.services.common import topology
from pktflow.services.common.actions import Arm, AskRoute, Cancel, Down, Drop, Up
from pktflow.services.ip.stack import Ip
from pktflow.services.link import neighbour
from pktflow.services.link.dev import Link
from pktflow.services.transport.stack import Transport
from pktflow.services.wire import ethernet, ipv4
from pktflow.v1.skb_pb2 import ProtoCall as ProtoCallOp, Skb


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
        self.completions: dict = {}   # req -> the COMPLETE event answering a call

    def learn(self, netns: str, ifname: str, ip: str, mac: str):
        """A REACHABLE neighbour entry, as if ARP had run."""
        ifindex = self.topo.hosts[netns].interfaces[ifname].ifindex
        self.link.netns[netns].neigh.update(ifindex, ipv4.aton(ip), ethernet.mac_from_str(mac),
                                            neighbour.NUD_REACHABLE, self.now, create=True)

    def _route(self, ask: AskRoute) -> list:
        reply = self.ip.route_output(ask.netns, ask.daddr, ask.saddr)
        return self.tr.route_answer(ask.netns, ask.daddr, ask.saddr, reply, self.now)

    def _run(self, layer: str, actions: list):
        for act in actions:
            kind = type(act)
            if kind is Arm:
                self.timers[(layer, act.key)] = act.when
            elif kind is Cancel:
                self.timers.pop((layer, act.key), None)
            elif kind is Drop:
                self.drops.append((layer, act.fn, act.reason, act.skb))
            elif kind is Down:
                self.down_from(layer, act.skb)
            elif kind is Up:
                self.up_from(layer, act.skb, act.to)
            elif kind is AskRoute:
                self._run("transport", self._route(act))

    def down_from(self, layer: str, skb):
        if layer == "transport":
            if skb.ip_proto == ipv4.IPPROTO_TCP:
                self.check_fits_path_mtu(skb)
            self._run("ip", self.ip.from_transport(skb, self.now))
        elif layer == "ip":
            self._run("link", self.link.dev_queue_xmit(skb, self.now))
        elif layer == "link":
            self.wire.append((skb.netns, skb.ifindex, skb.data))

    def check_fits_path_mtu(self, skb):
        """TCP never hands IP a segment larger than the route's MTU: it cuts
        its segments to tcp_current_mss() (options included), as Linux does."""
        rt = self.ip.route_output(skb.netns, skb.daddr, skb.saddr)
        if not rt.err:
            size = len(skb.data) + ipv4.IPV4_HLEN
            assert size <= rt.mtu, f"a {size}-byte TCP segment for a {rt.mtu}-byte path MTU"

    def up_from(self, layer: str, skb, to):
        if layer == "transport" and skb.event.kind == skb.event.COMPLETE:
            self.completions[skb.event.req] = skb.event
        elif layer == "link" and to != "socket":
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
        self.req += 1
        req = self.req
        skb = Skb(netns=netns, sk=sk, data=fields.pop("data", b""), call=ProtoCallOp(op=op, req=req, **fields))
        self._run("transport", self.tr.from_socket(skb, self.now))
        return self.completions.pop(req, None)

    def fire(self, key):
        """Runs a link-layer timer (a neighbour's) now or at its deadline."""
        self.now = max(self.now, self.timers.pop(("link", key)))
        self._run("link", self.link.timer(key, self.now))

    def counters(self, netns: str) -> Counter:
        out = Counter()
        out.update(self.ip.netns[netns].mib)
        out.update(self.tr.netns[netns].mib)
        out.update(self.link.netns[netns].mib)
        return out


class Network(Kernel):
    """The cores of every host with the topology's cables between them and a
    fake clock: frames go across at once (or are lost, by `loss`), timers fire
    in order as time is advanced. Enough to run TCP between hosts in-process."""

    def __init__(self, topo=None, seed: int = 1, loss=None):
        super().__init__(topo, seed)
        self.loss = loss                   # f(netns, ifindex, frame) -> True to lose it
        self.events: list = []             # skbs the socket layer would receive
        self.next_sk = 100
        self.frames: list = []             # every frame that crossed a cable: (netns, ifindex, frame)

    def up_from(self, layer, skb, to):
        super().up_from(layer, skb, to)
        if self.up and self.up[-1] is skb:
            self.events.append(self.up.pop())

    def pump(self):
        """Delivers queued frames in order; frames sent while delivering (an ACK
        that frees the window) queue behind, as on a wire. Called only when a
        whole call or timer has finished, as the services work batch by batch."""
        while self.wire:
            netns, ifindex, frame = self.wire.pop(0)
            self.frames.append((netns, ifindex, frame))
            if self.loss and self.loss(netns, ifindex, frame):
                continue
            host = self.topo.hosts[netns]
            iface = host.interface(ifindex)
            if iface.is_loopback:
                self.receive(netns, "lo", frame)
                continue
            for peer_host, peer_if in self.topo.peers(netns, iface.name):
                self.receive(peer_host, peer_if, frame)

    def advance(self, seconds: float):
        """Moves the clock, firing every timer that falls due on the way."""
        end = self.now + int(seconds * 1e9)
        while True:
            due = [(when, key) for key, when in self.timers.items() if when <= end]
            if not due:
                break
            when, (layer, key) = min(due, key=lambda x: x[0])
            del self.timers[(layer, key)]
            self.now = max(self.now, when)
            core = self.tr if layer == "transport" else self.link
            self._run(layer, core.timer(key, self.now))
            self.pump()
        self.now = end

    # -- a socket layer, just enough to drive TCP
    def socket(self, netns: str, type_: int = 1) -> "Sock":
        self.next_sk += 1
        assert self.call(netns, self.next_sk, ProtoCallOp.CREATE, type=type_, protocol=0).err == 0
        return Sock(self, netns, self.next_sk)


class Sock:
    def __init__(self, net: Network, netns: str, sk: int):
        self.net, self.netns, self.sk = net, netns, sk

    def call(self, op, **fields):
        ev = self.net.call(self.netns, self.sk, op, **fields)
        self.net.pump()
        return ev

    def bind(self, addr: str, port: int):
        return self.call(ProtoCallOp.BIND, addr=ipv4.aton(addr) if addr else 0, port=port).err

    def listen(self, backlog: int = 128):
        return self.call(ProtoCallOp.LISTEN, backlog=backlog).err

    def connect(self, addr: str, port: int):
        return self.call(ProtoCallOp.CONNECT, addr=ipv4.aton(addr), port=port).err

    def send(self, data: bytes) -> int:
        ev = self.call(ProtoCallOp.SENDMSG, data=data)
        return ev.sent if not ev.err else -ev.err

    def shutdown(self, how: int):
        return self.call(ProtoCallOp.SHUTDOWN, how=how).err

    def close(self):
        return self.call(ProtoCallOp.RELEASE).err

    def setsockopt(self, level: int, name: int, value: int | bytes):
        val = {"optbytes": value} if isinstance(value, bytes) else {"optval": value}
        return self.call(ProtoCallOp.SETSOCKOPT, level=level, optname=name, **val).err

    def mine(self):
        return [e for e in self.net.events if e.sk == self.sk]

    def recv(self, consume: bool = True) -> bytes:
        """Everything delivered so far; tells transport it was read."""
        got = [e for e in self.mine() if e.event.kind == e.event.DATA_READY]
        for e in got:
            self.net.events.remove(e)
        data = b"".join(e.data[e.head:] for e in got)
        if consume and data:
            self.call(ProtoCallOp.RECVMSG, consumed=len(data))
        return data

    def states(self):
        return [e.event.state for e in self.mine() if e.event.kind == e.event.STATE_CHANGE]

    def errors(self):
        return [e.event.err for e in self.mine() if e.event.kind == e.event.ERROR_REPORT]

    def accept(self) -> "Sock | None":
        for e in self.net.events:
            if e.event.kind == e.event.STATE_CHANGE and e.event.listener == self.sk:
                self.net.events.remove(e)
                child = Sock(self.net, self.netns, e.sk)
                self.call(ProtoCallOp.ACCEPT, child=e.sk)
                return child
        return None

    def info(self):
        return self.net.tr.tcp.socks.get(self.sk)
