"""An emulated Ethernet driver: ndo_start_xmit() puts a frame with its FCS on
the cable, padded to ETH_ZLEN as the hardware does; frames that arrive are
"DMA'd" into a fixed-size RX ring, and NAPI polls the ring with a budget,
checking FCS and length as the hardware does. A device backed by a Linux TAP
device has the machine's kernel at the other end of its cable: what it
transmits the shell writes to the TAP, what the TAP gives the shell arrives
here (tap_rx). A device whose cable ends on another shard's host has that
shard's nic at the other end (`remote`): what it transmits the shell sends
there (to_shard), what comes from there arrives here (cable_rx), and it has
carrier while the shell's stream to that shard is up (`remote_up`). The loopback
device has no cable and no ring: what it sends goes to its CPU's backlog
(softnet.py says which path is which, and why).

Counters are the ones `ip -s link` shows (struct rtnl_link_stats64 names),
and the driver's own that `ethtool -S` shows (virtio-net's names). An XDP
program (xdp.py) runs in the poll, before GRO, when one is attached: the cost
without one is one attribute test per poll.
"""
import zlib
from collections import Counter, deque

from pktflow.v1.skb_pb2 import Skb

from ..common import tcp_offload
from ..common.actions import Drop, Step, Stop, Up
from ..common.skbuff import NEW_JOURNEY
from ..common.sysctl import defaults as sysctl_defaults
from ..wire import ethernet
from . import xdp
from .softnet import Napi, SoftnetData

RX_RING_SIZE = 256          # descriptors, as virtio-net's default
TX_RING_SIZE = 256
NAPI_POLL_WEIGHT = 64       # NAPI_POLL_WEIGHT: frames one poll of one device may take (netif_napi_add())


class NetDevice:
    def __init__(self, netns: str, name: str, ifindex: int, mac: bytes, mtu: int, loopback: bool = False,
                 tap: str | None = None):
        self.netns, self.name, self.ifindex, self.mac, self.mtu = netns, name, ifindex, mac, mtu
        self.loopback = loopback
        self.tap = tap                      # the Linux TAP device on the other end, if any
        self.tap_attached = tap is not None   # False while that TAP device is gone (no carrier)
        self.peers: list[NetDevice] = []
        # the cable's ends on other shards' hosts, (shard, netns, ifindex): what is sent goes to those
        # shards' nic services on the shell's streams; carrier while a stream to one of them is up
        self.remote: list[tuple[int, str, int]] = []
        self.remote_up = False
        self.cable = f"{netns}-{name}--{tap}" if tap else None     # a name for the wire it is on
        self.rx_ring: deque = deque()
        self.rx_ring_size = RX_RING_SIZE
        self.napi = Napi(self, NAPI_POLL_WEIGHT)
        self.stats: Counter = Counter()
        self.up = True                      # IFF_UP (`ip link set IF down` clears it)
        self.gro = not loopback             # NETIF_F_GRO, on as virtio-net has it (`ethtool -K IF gro off`)
        self.xdp_prog = None                # the native XDP program (xdp.XdpProg), run by the driver
        self.xdp_generic = None             # the generic one, run in netif_receive_skb()

    @property
    def carrier(self) -> bool:
        """A device that is down has no carrier, and neither has the other end of
        its cable (as a veth peer shows NO-CARRIER)."""
        return self.up and (self.loopback or any(p.up for p in self.peers) or self.tap_attached or self.remote_up)

    def key(self):
        return self.netns, self.ifindex


def fcs(frame: bytes) -> bytes:
    """The Ethernet frame check sequence, CRC-32, least significant byte first."""
    return zlib.crc32(frame).to_bytes(4, "little")


def eth_pad(frame: bytes) -> bytes:
    """What the hardware puts on the wire: a frame shorter than ETH_ZLEN (60
    bytes, without FCS) padded with zeros to it, as drivers do with
    eth_skb_pad() or leave to the NIC. The stack above (and a capture on the
    sending host) still sees the frame as it was built."""
    n = len(frame)
    return frame if n >= ethernet.ETH_ZLEN else frame + bytes(ethernet.ETH_ZLEN - n)


def napi_gro(out: list) -> list:
    """napi_gro_receive() for what one poll hands up, then napi_gro_flush():
    consecutive segments of a TCP flow go up as one packet. The segments merged
    into another end their journey here (their span: napi_gro_receive); the
    packet they became goes on with the first one's."""
    ups = {id(a.skb): a for a in out if type(a) is Up}
    merged = tcp_offload.napi_gro([a.skb for a in ups.values()])
    if len(merged) == len(ups):
        return out
    kept = {id(s) for s in merged}
    return [a for a in out if type(a) is not Up] + \
        [Stop(a.skb, "napi_gro_receive") for k, a in ups.items() if k not in kept] + \
        [Up(s, "napi_gro_receive") if s.gso_segs else ups[id(s)] for s in merged]


class Nic:
    """All emulated devices of all namespaces, and the cables between them."""

    def __init__(self, topology):
        self.devices: dict[tuple[str, int], NetDevice] = {}
        for host in topology.hosts.values():
            for iface in host.interfaces.values():
                dev = NetDevice(host.name, iface.name, iface.ifindex, iface.mac, iface.mtu, iface.is_loopback,
                                iface.tap)
                self.devices[dev.key()] = dev
        by_name = {(d.netns, d.name): d for d in self.devices.values()}
        remote = getattr(topology, "remote", {})
        for link in topology.links:
            ends = [by_name[e] for e in link.endpoints if e in by_name]
            far = [(topology.placement[h], h, remote[h].interfaces[i].ifindex) for h, i in link.endpoints
                   if (h, i) not in by_name]
            cable = "--".join(sorted(f"{h}-{i}" for h, i in link.endpoints))   # its name on every shard
            for d in ends:
                d.peers = [p for p in ends if p is not d]
                d.cable = cable
                d.remote = far
        self.remote_shards = sorted({s for d in self.devices.values() for s, _, _ in d.remote})
        # (shard, netns, ifindex) of a far end -> the device here whose cable ends there
        self.far_ends = {end: d for d in self.devices.values() for end in d.remote}
        self.to_shard: list = []            # (shard, device, skb): frames onto cables ending on another shard
        self.on_wire: list = []             # (device, skb) put on the cable by this batch
        # each host is one CPU: its softnet_data, with the host's net.core sysctls
        self.softnet = {h.name: SoftnetData(sysctl_defaults() | h.sysctls) for h in topology.hosts.values()}
        self.rx_pending: dict = {}          # the softnet_data that raised NET_RX (ordered set)
        self.to_tap: list = []              # (device, frame) for the shell to write to TAP devices
        self.wire_log: list | None = None   # (device, frame, tstamp) of every frame sent, when recording
        self.taps = {d.tap: d for d in self.devices.values() if d.tap}
        self.last_prog_id = 0               # XDP programs' ids, as the kernel numbers BPF programs
        self.xsks: dict = {}                # (netns, ifindex, queue_id) -> the AF_XDP socket bound there (xsk.py)
        self.xsk_ready: dict = {}           # the sockets that got frames since the shell last looked (ordered set)
        self.xdp_lo: set = set()            # loopback devices with a (generic) XDP program

    def xdp_attached(self, dev: NetDevice):
        """A program was attached to `dev` or detached from it."""
        if dev.loopback and dev.xdp_generic is not None:
            self.xdp_lo.add(dev.key())
        else:
            self.xdp_lo.discard(dev.key())

    def device(self, netns: str, ifindex: int) -> NetDevice | None:
        return self.devices.get((netns, ifindex))

    def ndo_start_xmit(self, skb, now: int) -> list:
        """A frame from the link layer (dev_hard_start_xmit)."""
        dev = self.devices.get((skb.netns, skb.ifindex))
        if dev is None:
            return [Drop(skb, "ndo_start_xmit", "DEV_READY")]
        if skb.gso_size:
            if dev.tap is not None:          # TSO: the hardware cuts the packet into frames for the wire
                segs = tcp_offload.gso_segment(skb)
                if segs is None:
                    return [Drop(skb, "ndo_start_xmit", "SKB_GSO_SEG")]
                return [a for seg in segs for a in self.ndo_start_xmit(seg, now)]
            # to an emulated peer it goes whole, as a veth (or virtio-net with its
            # host's TSO) passes a GSO skb: each of its segments must fit the MTU
            n = ethernet.ETH_HLEN + tcp_offload.gso_network_len(skb, ethernet.ETH_HLEN)
        else:
            n = len(skb.data)
        if n > dev.mtu + ethernet.ETH_HLEN:
            dev.stats["tx_dropped"] += 1
            return [Drop(skb, "ndo_start_xmit", "PKT_TOO_BIG")]
        if not dev.carrier:
            dev.stats["tx_errors"] += 1
            dev.stats["tx_carrier_errors"] += 1
            return [Drop(skb, "ndo_start_xmit", "DEV_READY")]
        if not dev.loopback:                 # loopback_xmit() counts once the backlog took it
            dev.stats["tx_packets"] += 1
            dev.stats["tx_bytes"] += len(skb.data)
        self.on_wire.append((dev, skb))
        return [Stop(skb, "ndo_start_xmit")]

    def transmit(self, now: int, tstamp: int) -> list:
        """The cable: every frame xmitted since the last call lands in its
        peers' RX rings (a copy each), padded to ETH_ZLEN, FCS attached,
        stamped with the wall-clock `tstamp` (skb->tstamp, what SO_TIMESTAMPNS
        reports); a loopback device's frame goes to its CPU's backlog. Called
        after the xmit spans were taken, so the receiving hop is the sending one's child."""
        out = []
        wire, self.on_wire = self.on_wire, []
        for dev, skb in wire:
            if dev.loopback:
                out += self.loopback_xmit(dev, skb, tstamp)
                continue
            data = eth_pad(skb.data)
            if self.wire_log is not None:      # a tap on a physical wire: a GSO packet's frames
                frames = (tcp_offload.gso_segment(skb) or [skb]) if skb.gso_size else [skb]
                self.wire_log += [(dev, eth_pad(f.data), tstamp) for f in frames]
            if dev.tap is not None:              # Linux takes frames without their FCS
                self.to_tap.append((dev, data))
                continue
            frame = data + fcs(data)
            for peer in dev.peers:
                out += self.dma_rx(peer, frame, skb, tstamp)
            if dev.remote:                       # unsharded: this test is all a frame pays
                self.to_remote(dev, frame, skb, tstamp)
        return out

    def to_remote(self, dev: NetDevice, frame: bytes, skb, tstamp: int):
        """A frame onto a cable whose other ends are on other shards: for the shell to
        send to those shards' nics (layers.proto: cables between shards). The journey
        goes on there (the trace context of this hop), a GSO packet whole, as it goes
        to an emulated peer here: both ends are emulated NICs, and cutting it would
        put its frames on the stream one by one."""
        for shard, netns, ifindex in dev.remote:
            self.to_shard.append((shard, dev, Skb(
                data=frame, netns=netns, ifindex=ifindex, tstamp=tstamp, trace_id=skb.trace_id,
                span_id=skb.span_id, trace_flags=skb.trace_flags, gso_size=skb.gso_size,
                gso_segs=skb.gso_segs, ip_summed=skb.ip_summed)))

    def remote_sender(self, shard: int, skb) -> NetDevice | None:
        """The device here that sent `skb`, a frame queued for shard `shard` (to_shard):
        a frame the stream could not carry is lost on the sending host."""
        return self.far_ends.get((shard, skb.netns, skb.ifindex))

    def cable_rx(self, skb, shard: int) -> list:
        """A frame from shard `shard`'s end of a cable (with its FCS, in the journey
        of the frame that was sent): into the RX ring of the device at this end.
        Only a device whose cable does end on that shard takes it."""
        dev = self.devices.get((skb.netns, skb.ifindex))
        if dev is None or not any(s == shard for s, _, _ in dev.remote):
            return [Drop(skb, "netif_receive_skb", "DEV_READY")]
        return self.dma_rx(dev, skb.data, skb, skb.tstamp)

    @staticmethod
    def rx_skb(dev: NetDevice, data: bytes, cause, tstamp: int):
        """A received frame's skb, in the journey of the skb that caused it (a
        GSO packet from an emulated peer stays one, its checksum as it was)."""
        skb = Skb(data=data, netns=dev.netns, ifindex=dev.ifindex, tstamp=tstamp,
                  trace_id=cause.trace_id, span_id=cause.span_id, trace_flags=cause.trace_flags)
        if cause.gso_size:
            skb.gso_size, skb.gso_segs, skb.ip_summed = cause.gso_size, cause.gso_segs, cause.ip_summed
        return skb

    def dma_rx(self, dev: NetDevice, frame: bytes, cause, tstamp: int) -> list:
        """A frame (with FCS) arrives at `dev`: into the RX ring, or dropped when
        full; the first one schedules the device's NAPI (the interrupt)."""
        rx = self.rx_skb(dev, frame, cause, tstamp)
        if len(dev.rx_ring) >= dev.rx_ring_size:
            dev.stats["rx_missed_errors"] += 1
            dev.stats["rx_dropped"] += 1
            return [Drop(rx, "netif_receive_skb", "FULL_RING")]
        dev.rx_ring.append(rx)
        if not dev.napi.scheduled:
            sd = self.softnet[dev.netns]
            sd.napi_schedule(dev.napi)
            self.rx_pending[sd] = None
        return []

    def loopback_xmit(self, dev: NetDevice, skb, tstamp: int) -> list:
        """drivers/net/loopback.c: no cable, no FCS, no padding; the frame goes
        to this CPU's backlog (__netif_rx()), and the device counts it, sent and
        received alike, only once queued and without its Ethernet header (the
        skb->len after eth_type_trans())."""
        rx = self.rx_skb(dev, skb.data, skb, tstamp)
        sd = self.softnet[dev.netns]
        if not sd.enqueue_to_backlog(rx):
            dev.stats["rx_dropped"] += 1
            return [Drop(rx, "netif_rx", "CPU_BACKLOG")]
        self.rx_pending[sd] = None
        n = len(skb.data) - ethernet.ETH_HLEN
        stats = dev.stats
        stats["tx_packets"] += 1
        stats["tx_bytes"] += n
        stats["rx_packets"] += 1
        stats["rx_bytes"] += n
        return []

    def tap_rx(self, tap: str, frame: bytes, tstamp: int) -> list:
        """A frame the Linux side sent through a TAP device."""
        dev = self.taps[tap]
        if self.wire_log is not None:
            self.wire_log.append((dev, frame, tstamp))
        # A frame from outside starts its own journey, at netif_receive_skb.
        return self.dma_rx(dev, frame + fcs(frame), Skb(trace_flags=NEW_JOURNEY), tstamp)

    def net_rx_action(self, now: int) -> list:
        """One run of the NET_RX softirq on every host (CPU) that raised it
        (softnet.py: each scheduled NAPI polled once, up to its weight, within
        netdev_budget). What is left stays in `rx_pending` for the next run,
        which the caller schedules (ksoftirqd)."""
        out = []
        for sd in list(self.rx_pending):
            out += sd.net_rx_action(now, self.poll)
            if not sd.poll_list:
                del self.rx_pending[sd]
        return out

    def poll(self, sd: SoftnetData, n: Napi, weight: int, now: int) -> tuple[int, list]:
        """n->poll(): the driver's for a device's RX ring (complete when it took
        fewer than its weight), process_backlog() for the CPU's backlog."""
        if n is sd.backlog:
            skbs = sd.process_backlog(weight)
            sd.processed += len(skbs)
            out = [Up(skb, "netif_receive_skb") for skb in skbs]
            if self.xdp_lo:                      # generic XDP on a loopback device
                out = [a for up in out for a in self.lo_xdp(up, now)]
            return len(skbs), out
        dev = n.owner
        work = min(weight, len(dev.rx_ring))
        out = self.napi_poll(dev, now, weight)
        if work < weight:
            n.scheduled = False                  # napi_complete_done()
        return work, out

    def lo_xdp(self, up: Up, now: int) -> list:
        dev = self.devices[(up.skb.netns, up.skb.ifindex)]
        return xdp.do_xdp_generic(self, dev, dev.xdp_generic, [up], now) if dev.xdp_generic else [up]

    def napi_poll(self, dev: NetDevice, now: int, budget: int = NAPI_POLL_WEIGHT) -> list:
        """One NAPI poll of `dev`: up to `budget` frames, FCS and length checked,
        each through the device's XDP program if it has one, handed up as the
        driver's netif_receive_skb() does (GRO first; generic XDP after)."""
        out = []
        ring = dev.rx_ring
        stats = dev.stats
        prog = dev.xdp_prog
        for _ in range(min(budget, len(ring))):
            skb = ring.popleft()
            frame = skb.data
            body = frame[:-4]
            if fcs(body) != frame[-4:]:
                stats["rx_errors"] += 1
                stats["rx_crc_errors"] += 1
                skb.data = body
                out.append(Drop(skb, "netif_receive_skb", "DEV_HDR"))
                continue
            if prog is not None and skb.gso_size:
                out += self.xdp_frames(dev, skb, body, prog)
                continue
            out.append(self.rx_frame(dev, skb, body, prog))
        if dev.gro and len(out) > 1:
            out = napi_gro(out)
        if dev.xdp_generic is not None:
            out = xdp.do_xdp_generic(self, dev, dev.xdp_generic, out, now)
        return out

    def xdp_frames(self, dev: NetDevice, skb, body: bytes, prog) -> list:
        """A GSO packet from an emulated peer for a device whose XDP program
        sees frames: as virtio-net turns its guest TSO off while XDP is on
        (virtnet_xdp_set()), its peer sends it as frames."""
        skb.data = body
        segs = tcp_offload.gso_segment(skb)
        if segs is None:
            return [Drop(skb, "netif_receive_skb", "SKB_GSO_SEG")]
        return [self.rx_frame(dev, seg, seg.data, prog) for seg in segs]

    def rx_frame(self, dev: NetDevice, skb, body: bytes, prog=None):
        """Length checks of a received frame (without FCS), the XDP program
        (`prog`, native) if there is one, then up to the link layer."""
        skb.data = body
        n = len(body)
        if n < ethernet.ETH_HLEN:
            dev.stats["rx_errors"] += 1
            dev.stats["rx_length_errors"] += 1
            return Drop(skb, "netif_receive_skb", "PKT_TOO_SMALL")
        if n > dev.mtu + ethernet.ETH_HLEN + 4 and not skb.gso_size:     # + 4: room for an 802.1Q tag
            dev.stats["rx_errors"] += 1
            dev.stats["rx_length_errors"] += 1
            return Drop(skb, "netif_receive_skb", "PKT_TOO_BIG")
        dev.stats["rx_packets"] += 1
        dev.stats["rx_bytes"] += n
        fn = "netif_receive_skb"
        if prog is not None:
            verdict = xdp.bpf_prog_run_xdp(self, dev, prog, skb)
            if type(verdict) is not Step:
                return verdict
            fn = (verdict, fn)
        if body[0] & 1:                     # the group bit: multicast, broadcast included (is_multicast_ether_addr())
            dev.stats["multicast"] += 1
        self.softnet[dev.netns].processed += 1     # __netif_receive_skb_core()
        return Up(skb, fn)

    def link_stats(self, netns: str) -> list[dict]:
        return [{"ifindex": d.ifindex, "ifname": d.name, "mtu": d.mtu, "mac": ethernet.mac_to_str(d.mac),
                 "carrier": d.carrier, "loopback": d.loopback, "tap": d.tap, "stats": dict(d.stats),
                 "rx_ring": [len(d.rx_ring), d.rx_ring_size], "xdp": xdp.xdp_state(d)}
                for d in sorted(self.devices.values(), key=lambda d: d.ifindex) if d.netns == netns]
