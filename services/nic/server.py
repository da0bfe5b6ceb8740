"""The nic service: a thin shell around netdev.Nic, and the file descriptors
of the TAP devices that connect emulated interfaces to the Linux kernel."""
import json
import logging
import os
import time

from pktflow.v1 import admin_pb2, xsk_pb2_grpc
from pktflow.v1.skb_pb2 import Skb

from ..common import config, metrics
from ..common.pcap import PcapWriter
from ..common.plumbing import Downlink
from ..common.shell import LayerShell
from . import tap as taplib
from . import xdp
from .netdev import NAPI_POLL_WEIGHT, Nic
from .softnet import softnet_seq_show
from .xsk_rpc import XskService

log = logging.getLogger("pktflow.nic")


TAP_RETRY = 1.0              # s between looks for a TAP device that went away
# kernel/softirq.c's __do_softirq(): a softirq raised again while it runs runs again,
# at most MAX_SOFTIRQ_RESTART times in all and for MAX_SOFTIRQ_TIME; then ksoftirqd has the rest.
MAX_SOFTIRQ_RESTART = 10
MAX_SOFTIRQ_TIME = 2_000_000         # ns


class NicShell(LayerShell):
    name = "nic"
    default_upper = "link"

    def __init__(self, topo, tracer=None):
        super().__init__(topo, tracer)
        self.nic = Nic(topo)
        self.tap_fds: dict[str, int] = {}
        self._ksoftirqd_woken = False
        self.xsk = XskService(self)
        for name in self.nic.taps:                 # refused at start, naming the device, if impossible
            self.tap_fds[name] = taplib.open_tap(name)
        # Cables to other shards: a stream to each such shard's nic (an Exchange stream, as a
        # layer's to the one below, authenticated alike), named nic<shard>.
        self.shard_addrs = config.shard_endpoints("nic")
        missing = [s for s in self.nic.remote_shards if s >= len(self.shard_addrs)]
        if missing:
            raise config.ConfigError(f"cables go to shard {missing[0]}, but PKTFLOW_SHARD_NICS names "
                                     f"{len(self.shard_addrs)} nic address(es): every shard's, in shard order")
        self.shard_links: dict[int, Downlink] = {}
        self._closing = False
        # PKTFLOW_WIRE_PCAP=DIR records every frame on every cable, both ways, one
        # pcap per cable (a TAP's cable ends at Linux): what a tap on the wire sees.
        self.wire_dir = os.environ.get("PKTFLOW_WIRE_PCAP")
        self.wire_pcaps: dict = {}
        if self.wire_dir:
            os.makedirs(self.wire_dir, exist_ok=True)
            self.nic.wire_log = []

    def add_services(self, server):
        xsk_pb2_grpc.add_XskServicer_to_server(self.xsk, server)

    def upper_layers(self):
        return super().upper_layers() + tuple(f"nic{s}" for s in self.nic.remote_shards)

    def extra_downlinks(self):
        for shard in self.nic.remote_shards:       # not self.downs: a shard is ready without its peers
            d = Downlink(f"nic{self.topo.shard}", self.instance, f"nic{shard}", self.shard_addrs[shard],
                         lambda batch: None, lambda skbs, why, s=shard: self.shard_lost(s, skbs, why),
                         lambda up, s=shard: self.shard_cable(s, up), secret=config.stack_secret())
            self.shard_links[shard] = d
            d.start()
        for name, fd in self.tap_fds.items():
            self.loop.add_reader(fd, self.tap_readable, name, fd)
            log.info("interface %s:%s is backed by TAP device %s", self.nic.taps[name].netns,
                     self.nic.taps[name].name, name)

    def shard_cable(self, shard: int, up: bool):
        """The stream to shard `shard`'s nic came up or went down: the cables to it
        have carrier or lose it, as a pulled cable."""
        for dev in self.nic.devices.values():
            if dev.remote:
                dev.remote_up = any(self.shard_links[s].connected for s, _, _ in dev.remote)
        if not up and self._closing:              # this nic is stopping: no news
            return
        (log.info if up else log.warning)("cables to shard %d: carrier %s", shard,
                                          "on" if up else "off (its nic is not reachable)")

    def shard_lost(self, shard: int, skbs, reason: str):
        """Frames for shard `shard` that its stream could not carry (it broke with them
        queued, or its queue was full): dropped and counted on the host that sent them."""
        sent = []
        for skb in skbs:
            dev = self.nic.remote_sender(shard, skb)
            sent.append(Skb(netns=dev.netns if dev else skb.netns, ifindex=dev.ifindex if dev else 0,
                            trace_id=skb.trace_id, span_id=skb.span_id, trace_flags=skb.trace_flags))
        self.lost(sent, reason)

    def tap_readable(self, name: str, fd: int):
        """Frames from the Linux side: into the device's RX ring, then NAPI."""
        t0 = time.time_ns()
        dev = self.nic.taps[name]
        try:
            frames = taplib.read_frames(fd)
        except OSError as e:
            return self.tap_lost(name, fd, e)
        for frame in frames:
            dev.stats["tap_rx"] += 1
            self.apply(self.nic.tap_rx(name, frame, t0), t0, time.time_ns(), "ingress")
        self.softirq()

    def tap_lost(self, name: str, fd: int, e: OSError):
        """The TAP device went away: the interface loses carrier (what it sends is
        dropped and counted as carrier errors) until a device of that name is back."""
        self.loop.remove_reader(fd)
        os.close(fd)
        del self.tap_fds[name]
        dev = self.nic.taps[name]
        dev.tap_attached = False
        log.warning("TAP device %s is gone (%s): %s:%s has no carrier until it is back", name, e.strerror,
                    dev.netns, dev.name)
        self.loop.call_later(TAP_RETRY, self.tap_retry, name)

    def tap_retry(self, name: str):
        if taplib.exists(name):
            try:
                fd = taplib.open_tap(name)
            except OSError:
                fd = None
            if fd is not None:
                self.tap_fds[name] = fd
                self.nic.taps[name].tap_attached = True
                self.loop.add_reader(fd, self.tap_readable, name, fd)
                log.warning("TAP device %s is back: carrier on", name)
                return
        self.loop.call_later(TAP_RETRY, self.tap_retry, name)

    def egress(self, skb, now):
        return self.nic.ndo_start_xmit(skb, now)

    async def on_egress_batch(self, batch, from_layer):
        if from_layer.startswith("nic"):          # another shard's nic (nic<k>): frames off its cables
            self.shard_rx(batch, int(from_layer[3:]))
            return
        await super().on_egress_batch(batch, from_layer)
        self.softirq()

    def shard_rx(self, batch, shard: int):
        """Frames from shard `shard`'s ends of cables, into the RX rings, NAPI polling
        after each poll's worth: they came over time on the wire, not as one burst."""
        for i, skb in enumerate(batch.skbs, 1):
            t0 = time.time_ns()
            self.apply(self.nic.cable_rx(skb, shard), t0, time.time_ns(), "ingress")
            if i % NAPI_POLL_WEIGHT == 0:
                self.softirq()
        self.softirq()

    def softirq(self):
        """The cable, then the NET_RX softirq (NAPI polls and the backlog)."""
        self.cable()
        if self.nic.rx_pending:
            self.do_softirq()

    def cable(self):
        """What the drivers put on their cables since the last look: into the
        peers' RX rings, or to the TAP devices."""
        nic, apply, ns = self.nic, self.apply, time.time_ns
        t0 = ns()
        apply(nic.transmit(time.monotonic_ns(), t0), t0, ns(), "ingress")
        for dev, frame in nic.to_tap:
            fd = self.tap_fds.get(dev.tap)
            if fd is None or not taplib.write_frame(fd, frame):
                dev.stats["tx_errors"] += 1
                dev.stats["tx_carrier_errors"] += 1
        nic.to_tap.clear()
        if nic.to_shard:
            for shard, _, skb in nic.to_shard:
                lost = self.shard_links[shard].put(skb)
                if lost:
                    self.shard_lost(shard, [skb], lost)
            nic.to_shard.clear()
        if nic.wire_log:
            self.record_wire()

    def do_softirq(self):
        """__do_softirq() for NET_RX: runs of net_rx_action() while work is left
        (a run ends at netdev_budget: time_squeeze), at most MAX_SOFTIRQ_RESTART
        of them and MAX_SOFTIRQ_TIME; the rest is ksoftirqd's, the event loop's
        next turn, after what else waits there: a flood cannot starve the others."""
        nic, apply, ns, mono = self.nic, self.apply, time.time_ns, time.monotonic_ns
        end = mono() + MAX_SOFTIRQ_TIME
        for _ in range(MAX_SOFTIRQ_RESTART):
            t0 = ns()
            apply(nic.net_rx_action(mono()), t0, ns(), "ingress")
            if nic.on_wire:                       # XDP_TX and redirects, sent at the end of the poll
                self.cable()
            if not nic.rx_pending or mono() >= end:
                break
        if nic.xsk_ready:                         # xsk_flush(): the AF_XDP sockets that got frames
            self.xsk.wake(nic.xsk_ready)
            nic.xsk_ready.clear()
        if nic.rx_pending and not self._ksoftirqd_woken:       # wakeup_softirqd()
            self._ksoftirqd_woken = True
            self.loop.call_soon(self.ksoftirqd)

    def ksoftirqd(self):
        self._ksoftirqd_woken = False
        if self.nic.rx_pending:
            self.do_softirq()

    async def shutdown(self, server):
        """What is on its way to other shards is written first (as a layer drains
        its stream below), then the streams close."""
        self._closing = True
        for d in self.shard_links.values():
            await d.drain(1.0)
        await super().shutdown(server)
        for d in self.shard_links.values():
            await d.close()

    def record_wire(self):
        for dev, frame, tstamp in self.nic.wire_log:
            w = self.wire_pcaps.get(dev.cable)
            if w is None:
                # a cable between shards is recorded at each end, what that end sent
                name = dev.cable if not dev.remote else f"{dev.cable}.shard{self.topo.shard}"
                w = self.wire_pcaps[dev.cable] = PcapWriter(os.path.join(self.wire_dir, f"{name}.pcap"))
            w.write(frame, tstamp)
        self.nic.wire_log.clear()
        for w in self.wire_pcaps.values():
            w.flush()

    def span_attrs(self, skb):
        dev = self.nic.device(skb.netns, skb.ifindex)
        return self.cached_attrs(("dev", dev.name), lambda: (("pktflow.ifname", dev.name),)) if dev else b""

    def admin(self, req):
        bad = self.check_netns(req.netns)
        if bad:
            return bad
        if req.command == "link" and req.args[:1] == ["set"]:     # set IF [up|down] [mtu N]
            dev = next((d for d in self.nic.devices.values() if d.netns == req.netns and
                        d.name == (req.args[1:2] or [""])[0]), None)
            if dev is None:
                return admin_pb2.AdminReply(err=19, detail="link set IFNAME [up|down] [mtu N]")
            words = iter(req.args[2:])
            for w in words:
                if w in ("up", "down"):
                    dev.up = w == "up"
                elif w == "mtu":
                    n = next(words, "")
                    if not n.isdigit() or not 68 <= int(n) <= 65535:
                        return admin_pb2.AdminReply(err=22, detail=f"mtu {n!r}: 68 to 65535")
                    dev.mtu = int(n)
            return admin_pb2.AdminReply(json="{}")
        if req.command in ("link", "counters"):
            counters = self.drop_counters(req.netns)
            if req.command == "counters":
                counters += [admin_pb2.Counter(name=f"Softnet{k.title().replace('_', '')}", value=v)
                             for k, v in self.nic.softnet[req.netns].stat().items() if not k.endswith("qlen")]
            return admin_pb2.AdminReply(json=json.dumps(self.nic.link_stats(req.netns)), counters=counters)
        if req.command == "features":          # `ethtool -k|-K IF [gro on|off]`: NAPI's receive offload
            return self.features([d for d in self.nic.devices.values() if d.netns == req.netns],
                                 list(req.args), ("gro",))
        if req.command == "xdp":               # `ip link set dev IF xdp...`: IFLA_XDP
            try:
                state = xdp.dev_change_xdp(self.nic, req.netns, req.xdp)
            except xdp.XdpError as e:
                return admin_pb2.AdminReply(err=e.err, detail=e.extack)
            return admin_pb2.AdminReply(json=json.dumps(state))
        if req.command == "softnet":           # /proc/net/softnet_stat: the host is one CPU
            sd = self.nic.softnet[req.netns]
            return admin_pb2.AdminReply(json=json.dumps(sd.stat() | {"softnet_stat": softnet_seq_show(sd)}))
        return super().admin(req)

    def metric_families(self):
        """`ip -s link` of every device, softnet_stat of every host."""
        devs = sorted(self.nic.devices.values(), key=lambda d: (d.netns, d.ifindex))
        return (metrics.netdev(self.name, ((d.netns, d.name, d.stats) for d in devs))
                + metrics.softnet(self.nic.softnet) + super().metric_families())

    def sysctls(self, netns: str):
        return self.nic.softnet[netns].sysctl, {d.name for d in self.nic.devices.values() if d.netns == netns}
