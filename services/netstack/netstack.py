"""The whole packet path in one process: transport, ip, link and nic cores for
every host of a topology, wired as the services wire them, with the cables
between the NICs and a clock that only moves when told to.

    calls ─▶ transport ─▶ ip ─▶ link ─▶ nic ══ cable ══▶ nic ─▶ link ─▶ ip ─▶ transport ─▶ events

Each arrow is what a service does with a core's action: `Down` hands the skb to
the next core below, `Up` to the one above, `Arm`/`Cancel` set a timer, `Drop`
is recorded with its reason, `AskRoute` is answered by ip's route_output() at
once. Frames wait on `wire` until pump() carries them across their cable, in
order (frames sent while delivering queue behind, as on a wire); advance()
fires due timers in order. No gRPC, no threads, no clock reads: the tests, the
golden comparisons with Linux and the benchmarks' no-gRPC figure run this.

The socket layer is the socket room's core (SockFs): what transport and link's
taps send up goes through it (its Answer completes a call, data lands on the
socket's receive queue, a new connection on its listener's accept queue), and
is logged in `up` too. `Sock` below is the application's side of one socket.
"""
import random
from collections import Counter

from pktflow.v1.skb_pb2 import ProtoCall, Skb

from ..common import tcp_offload, topology, uapi
from ..common.actions import Arm, AskRoute, Cancel, Down, Drop, Up
from ..ip.stack import Ip
from ..link import neighbour
from ..link.dev import Link
from ..nic.netdev import Nic, eth_pad, fcs
from ..socket.sockfs import Answer, SockFs
from ..transport.stack import Transport
from ..wire import ethernet, ipv4


class Netstack:
    def __init__(self, topo=None, seed: int = 1, loss=None):
        self.topo = topo or topology.load()
        rng = random.Random(seed)
        self.tr, self.ip = Transport(self.topo, rng), Ip(self.topo, rng)
        self.link, self.nic = Link(self.topo, rng), Nic(self.topo)
        self.fs = SockFs(self.topo)
        self.now = 1_000_000_000           # monotonic ns; only advance() moves it
        self.loss = loss                   # f(netns, ifindex, frame) -> True to lose it on its cable
        self.wire: list = []               # (netns, ifindex, frame) put on a cable, not yet across
        self.frames: list = []             # every frame that went across a cable, as `wire` holds them
        self.up: list = []                 # every skb handed to the socket layer (events, packet taps)
        self.drops: list = []              # (layer, fn, reason, skb)
        self.timers: dict = {}             # (layer, key) -> when
        self.completions: dict = {}        # req -> the COMPLETE event answering a call

    # -- the wiring: what each service does with its core's actions
    def _run(self, layer: str, actions: list):
        for act in actions:
            kind = type(act)
            if kind is Down:
                self.down_from(layer, act.skb)
            elif kind is Up:
                self.up_from(layer, act.skb, act.to)
            elif kind is Drop:
                self.drops.append((layer, act.fn, act.reason, act.skb))
            elif kind is Arm:
                self.timers[(layer, act.key)] = act.when
            elif kind is Cancel:
                self.timers.pop((layer, act.key), None)
            elif kind is AskRoute:
                reply = self.ip.route_output(act.netns, act.daddr, act.saddr)
                self._run("transport", self.tr.route_answer(act.netns, act.daddr, act.saddr, reply, self.now))
            elif kind is Answer:
                self.completions[act.req] = act.event

    def down_from(self, layer: str, skb):
        if layer == "transport":
            if skb.ip_proto == ipv4.IPPROTO_TCP:
                self.check_fits_path_mtu(skb)
            self._run("ip", self.ip.from_transport(skb, self.now))
        elif layer == "ip":
            self._run("link", self.link.dev_queue_xmit(skb, self.now))
        elif layer == "link":
            self._run("nic", self.nic.ndo_start_xmit(skb, self.now))
            # this harness's cables are physical ones: a GSO packet, which the nic
            # passes whole to an emulated peer as a veth does, crosses as its frames
            # (the loss and reordering the tests apply act on frames)
            self.wire += [(dev.netns, dev.ifindex, f.data) for dev, s in self.nic.on_wire
                          for f in (tcp_offload.gso_segment(s) if s.gso_size else (s,))]
            self.nic.on_wire.clear()

    def up_from(self, layer: str, skb, to):
        if layer == "nic":
            self._run("link", self.link.netif_receive_skb(skb, self.now))
        elif layer == "link" and to != "socket":
            self._run("ip", self.ip.ip_rcv(skb, self.now))
        elif layer == "ip":
            self.tr.set_genid(self.ip.genid)        # what each batch from ip tells transport
            self._run("transport", self.tr.rcv(skb, self.now))
        else:
            if skb.event.kind != skb.event.COMPLETE:
                self.up.append(skb)
            self._run("socket", self.fs.ingress(skb, self.now))

    def check_fits_path_mtu(self, skb):
        """TCP never hands IP a segment larger than the route's MTU: it cuts
        its segments (a TSO packet's too) to tcp_current_mss() (options
        included), as Linux does."""
        rt = self.ip.route_output(skb.netns, skb.daddr, skb.saddr)
        if not rt.err:
            size = ((skb.data[12] >> 4) * 4 + skb.gso_size if skb.gso_size else len(skb.data)) + ipv4.IPV4_HLEN
            assert size <= rt.mtu, f"a {size}-byte TCP segment for a {rt.mtu}-byte path MTU"

    # -- the cables
    def receive(self, netns: str, ifname: str, frame: bytes):
        """A frame arriving at a device: DMA'd into its RX ring, then NAPI."""
        dev = self.nic.device(netns, self.topo.hosts[netns].interfaces[ifname].ifindex)
        self._run("nic", self.nic.dma_rx(dev, bytes(frame) + fcs(frame), Skb(), 0))
        self.softirq()

    def softirq(self):
        """NET_RX softirq runs until no host has work left (ksoftirqd's too)."""
        while self.nic.rx_pending:
            self._run("nic", self.nic.net_rx_action(self.now))
            if self.nic.on_wire:             # what XDP sent back out (XDP_TX, redirects) during the poll
                self.wire += [(d.netns, d.ifindex, skb.data) for d, skb in self.nic.on_wire]
                self.nic.on_wire.clear()

    def pump(self):
        """Carries the frames on `wire` across their cables, in order."""
        while self.wire:
            self.cross(*self.wire.pop(0))

    def cross(self, netns: str, ifindex: int, frame: bytes):
        """One frame over its cable: recorded as the sender built it, lost (by
        `loss`), or into each peer's NIC, padded to ETH_ZLEN as the hardware
        sends it (a loopback device's frame goes to its host's backlog)."""
        self.frames.append((netns, ifindex, frame))
        if self.loss and self.loss(netns, ifindex, frame):
            return
        dev = self.nic.device(netns, ifindex)
        if dev.loopback:
            self._run("nic", self.nic.loopback_xmit(dev, Skb(data=frame), 0))
            self.softirq()
            return
        for peer in dev.peers:
            self.receive(peer.netns, peer.name, eth_pad(frame))

    # -- time
    def advance(self, seconds: float):
        """Moves the clock, firing every timer that falls due on the way."""
        end = self.now + int(seconds * 1e9)
        while True:
            due = [(when, key) for key, when in self.timers.items() if when <= end]
            if not due:
                break
            when, (layer, key) = min(due, key=lambda x: x[0])
            self.fire_timer(layer, key, when)
            self.pump()
        self.now = end

    def fire(self, key):
        """Runs a link-layer timer (a neighbour's) now or at its deadline."""
        self.fire_timer("link", key, self.timers[("link", key)])

    def fire_timer(self, layer: str, key, when: int):
        del self.timers[(layer, key)]
        self.now = max(self.now, when)
        core = {"transport": self.tr, "ip": self.ip, "link": self.link}[layer]
        self._run(layer, core.timer(key, self.now))

    # -- the socket layer's side
    def call(self, netns: str, sk: int, op, **fields):
        """A socket-layer call into transport; returns its COMPLETE event."""
        req = self.fs.new_req()
        skb = Skb(netns=netns, sk=sk, data=fields.pop("data", b""), call=ProtoCall(op=op, req=req, **fields))
        self._run("transport", self.tr.from_socket(skb, self.now))
        return self.completions.pop(req, None)

    def socket(self, netns: str, type_: int = uapi.SOCK_STREAM, proto: int = 0) -> "Sock":
        """socket(AF_INET, type_, proto) in `netns`."""
        err, detail, s = self.fs.create(netns, uapi.AF_INET, type_, proto)
        assert not err, (err, detail)
        assert self.call(netns, s.fd, ProtoCall.CREATE, type=s.type, protocol=s.proto).err == 0
        return Sock(self, s)

    # -- state, as the admin commands show it
    def learn(self, netns: str, ifname: str, ip: str, mac: str):
        """A REACHABLE neighbour entry, as if ARP had run."""
        ifindex = self.topo.hosts[netns].interfaces[ifname].ifindex
        self.link.netns[netns].neigh.update(ifindex, ipv4.aton(ip), ethernet.mac_from_str(mac),
                                            neighbour.NUD_REACHABLE, self.now, create=True)

    def counters(self, netns: str) -> Counter:
        out = Counter()
        out.update(self.ip.netns[netns].mib)
        out.update(self.tr.netns[netns].mib)
        out.update(self.link.netns[netns].mib)
        return out


class Sock:
    """The application's side of one socket the socket core holds: each call
    is followed by the wire's traffic (as a batch would be)."""

    def __init__(self, net: Netstack, s):
        self.net, self.s, self.netns, self.sk = net, s, s.netns, s.fd

    def call(self, op, **fields):
        ev = self.net.call(self.netns, self.sk, op, **fields)
        self.net.pump()
        return ev

    def bind(self, addr: str, port: int):
        return self.call(ProtoCall.BIND, addr=ipv4.aton(addr) if addr else 0, port=port).err

    def listen(self, backlog: int = 128):
        err = self.call(ProtoCall.LISTEN, backlog=backlog).err
        self.s.listening = not err
        return err

    def connect(self, addr: str, port: int):
        return self.call(ProtoCall.CONNECT, addr=ipv4.aton(addr), port=port).err

    def send(self, data: bytes) -> int:
        ev = self.call(ProtoCall.SENDMSG, data=data)
        return ev.sent if not ev.err else -ev.err

    def shutdown(self, how: int):
        return self.call(ProtoCall.SHUTDOWN, how=how).err

    def close(self):
        self.net.fs.close(self.s)
        return self.call(ProtoCall.RELEASE).err

    def setsockopt(self, level: int, name: int, value: int | bytes):
        val = {"optbytes": value} if isinstance(value, bytes) else {"optval": value}
        return self.call(ProtoCall.SETSOCKOPT, level=level, optname=name, **val).err

    def mine(self):
        return [e for e in self.net.up if e.sk == self.sk]

    def recv(self, consume: bool = True) -> bytes:
        """Everything on the receive queue; tells transport it was read."""
        got, _ = self.s.dequeue(len(self.s.rcvq))
        self.s.rbytes = self.s.roff = 0
        data = b"".join(skb.data[skb.head:] for skb, _ in got)
        if consume and data:
            self.call(ProtoCall.RECVMSG, consumed=len(data))
        return data

    def states(self):
        return [e.event.state for e in self.mine() if e.event.kind == e.event.STATE_CHANGE]

    def errors(self):
        return [e.event.err for e in self.mine() if e.event.kind == e.event.ERROR_REPORT]

    def accept(self) -> "Sock | None":
        if not self.s.accept_q:
            return None
        child = Sock(self.net, self.s.accept_q.popleft())
        self.call(ProtoCall.ACCEPT, child=child.sk)
        return child

    def info(self):
        return self.net.tr.tcp.socks.get(self.sk)
