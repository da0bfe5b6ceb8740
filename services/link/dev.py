"""The device layer (net/core/dev.c, net/ethernet/eth.c): dev_queue_xmit()
with neighbour output (ARP's arp_tbl for IPv4, neighbour discovery's nd_tbl for
IPv6: neighbour.py, arp.py, ndisc.py) and the root qdisc,
__netif_receive_skb_core() with eth_type_trans(), and the packet taps that
AF_PACKET sockets (and so captures) read from."""
import errno
import random
from collections import Counter, deque
from dataclasses import replace

from pktflow.v1.skb_pb2 import SockEvent, Skb

from ..common import bpf, tcp_offload, topology
from ..common.tracepoints import NEIGH_UPDATE, Probes
from ..common.actions import Arm, Cancel, Down, Drop, Step, Stop, Up
from ..common.skbuff import clone
from ..common.sysctl import defaults as sysctl_defaults
from ..wire import Malformed, ethernet, ipv4, ipv6
from . import addrconf, arp, ndisc, neighbour as nd, sch_netem
from .sch_generic import Fifo, PfifoFast

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4
TX_RING_SIZE = 256          # the driver's TX descriptors
WIRE_OVERHEAD = 4 + 8 + 12  # FCS, preamble and start delimiter, inter-frame gap: a frame's bytes on the cable
DQL_HOLD_TIME = 1_000_000_000   # ns: how long slack must last before the limit shrinks (HZ)
CATCH_UP = 10_000_000           # ns: how late a completion may come and the cable still not have idled


def default_qdisc(kind: str, dev) -> object:
    """attach_default_qdiscs(): net.core.default_qdisc's kind, with its defaults."""
    from .sch_fq_codel import FqCodel
    if kind == "fq_codel":
        return FqCodel()
    if kind in ("pfifo", "bfifo"):
        return Fifo(1000 * (dev.mtu + ethernet.ETH_HLEN) if kind == "bfifo" else 1000, in_bytes=kind == "bfifo")
    return PfifoFast()


class Device:
    def __init__(self, iface, default_kind: str = "pfifo_fast"):
        self.name, self.ifindex, self.mac, self.mtu = iface.name, iface.ifindex, iface.mac, iface.mtu
        self.loopback = iface.is_loopback
        self.set_addresses(list(iface.addresses))
        self.stats: Counter = Counter()
        self.qdisc = None                               # the root qdisc; None: the default (pfifo_fast, noqueue on lo)
        self.qdisc_wake: int | None = None              # when the qdisc's watchdog timer is armed for
        self.tx_bytes = self.tx_packets = 0             # what the default qdisc sent
        # The line rate (bytes/s; 0: none, as a veth pair) and, when there is one, the
        # driver's TX ring: frames on the cable until their last bit has left
        # (serialization with FCS, preamble and gap), at most TX_RING_SIZE of them
        # and BQL's byte limit (1 ms of line rate, doubled whenever the cable starves);
        # the rest waits in the qdisc (the default: pfifo_fast).
        self.ring: deque = deque()                      # (when its last bit has left, skb, when it came in)
        self.ring_bytes = 0
        self.busy_until = 0
        self.set_speed(iface.speed)
        self.backlogged = False                         # frames waited for room when the ring was last filled
        self.default_q = default_qdisc(default_kind, self)   # used when a line rate makes frames wait
        # Offloads (`ethtool -K`), on as on a veth or virtio-net device: with TSO the
        # driver takes TCP's GSO packets whole (a capture shows them), with GSO
        # alone they are cut in software just before it; with neither they are
        # cut as they enter dev_queue_xmit, as TCP would not have built them.
        self.tso = self.gso = True


    def set_speed(self, speed: int):
        """A line rate (bytes/s): from the topology, or `ethtool -s IF speed N` at run
        time (frames already in the ring keep their times; the next ones take the new rate)."""
        self.speed = speed
        self.bql_limit = self.bql_min = max(2 * (self.mtu + ethernet.ETH_HLEN), speed // 1000)   # ~1 ms of it
        self.bql_max = max(self.bql_limit, speed // 10)                                        # up to 100 ms
        self.slack, self.slack_start = None, 0          # dql's slack: the least queued beyond need, since when

    def set_addresses(self, addrs: list):
        """The device's IPv4 addresses, and what ARP answers for and accepts as broadcast."""
        self.addrs = addrs
        self.local = {a for a, _ in addrs}
        self.broadcasts = {a | (~ipv4.prefix_mask(p) & 0xFFFFFFFF) for a, p in addrs if p < 31}
        self.broadcasts.add(ipv4.INADDR_BROADCAST)


class LinkNetns:
    """The device layer's state in one network namespace."""

    def __init__(self, host, rng, probes):
        self.name = host.name
        self.probes = probes
        self.sysctl = sysctl_defaults() | host.sysctls
        self.devices = {i.ifindex: Device(i, self.sysctl["net.core.default_qdisc"]) for i in host.interfaces.values()}
        self.local = {a for d in self.devices.values() for a in d.local}
        self.neigh = nd.NeighTable(nd.NeighParms(self.sysctl), rng)          # arp_tbl
        self.nd_tbl = nd.NeighTable(nd.NeighParms(self.sysctl, nd.AF_INET6), rng, nd.AF_INET6)
        self.conf6 = {dev: dict(conf) for dev, conf in host.conf6.items()}   # net.ipv6.conf.*, link's copy
        for i in host.interfaces.values():
            addrconf.init_dev(self.devices[i.ifindex], i, self.conf6)
        self.pndisc: dict = {}                 # anycast solicitations waiting for their answer (pneigh_enqueue())
        self.pndisc_seq = 0
        self.rng = rng
        self.taps: dict[int, dict[int, int]] = {}     # ifindex (0: any) -> {socket: ethertype}
        self.tap_filters: dict = {}            # socket -> its SO_ATTACH_FILTER program (bpf.Program)
        self.mib: Counter = Counter()
        self.handles = 0x8000                  # the last qdisc handle given out
        # The time of the call being handled: the qdisc needs it deep in the
        # output path (ARP, neighbour timers), where no caller passes it.
        self.now = 0

    def select_addr(self, dev: Device, dst: int) -> int:
        """inet_select_addr(): an address of `dev` on dst's subnet, else its first,
        else any of the host's."""
        return topology.select_addr(dev.addrs, dst) or next(iter(self.local), 0)

    def local6(self) -> set[int]:
        """The host's IPv6 addresses, every device's."""
        return {a for d in self.devices.values() if d.idev6 for a in d.idev6.ifa}

    def neigh_update(self, dev, ip: int, lladdr: bytes | None, state: int, now: int, create: bool,
                     weak: bool = False, tbl: nd.NeighTable | None = None, flags: int | None = None) -> list:
        """neigh_update() on arp_tbl (or `tbl`: nd_tbl, with ndisc's NEIGH_UPDATE_F_*
        flags), and first its tracepoint (as __neigh_update() fires it), when watched."""
        tbl = tbl or self.neigh
        if NEIGH_UPDATE in self.probes.on:
            n = tbl.lookup(dev.ifindex, ip)
            if n is not None or create:
                six = tbl.family == nd.AF_INET6
                new = lladdr if lladdr is not None else (n.lladdr if n is not None else None)
                fields = {"family": tbl.family, "dev": dev.name, "lladdr": n.lladdr.hex() if n and n.lladdr else "",
                          "nud_state": nd.trace_name(n.state if n else nd.NUD_NONE),
                          "primary_key4": "0.0.0.0" if six else ipv4.ntoa(ip),
                          "primary_key6": ipv6.ntoa(ip) if six else "::",
                          "new_lladdr": new.hex() if new else "", "new_state": nd.trace_name(state)}
                self.probes.emit(NEIGH_UPDATE, self.name, fields)
        return self.neigh_actions(tbl.update(dev.ifindex, ip, lladdr, state, now, create, weak, flags), tbl)

    def neigh_actions(self, actions, tbl: nd.NeighTable | None = None, fn=None, skb=None) -> list:
        """Turns a neighbour table's requests into actions: arp_tbl's (the default)
        or nd_tbl's, whose probes are neighbour solicitations, timers ("nd", ...)
        and failures reported as IPv6's. `fn`: the function that handed `skb` to
        the table, the outer span of its hop."""
        six = tbl is not None and tbl.family == nd.AF_INET6
        outer = () if fn is None else (fn,) if isinstance(fn, str) else tuple(fn)
        out = []
        for kind, n, arg in actions:
            if kind == nd.SEND:
                hop = (*outer, "dev_queue_xmit") if outer and arg is skb else "dev_queue_xmit"
                out += self.output(self.devices[n.ifindex], arg, n.lladdr, hop)
            elif kind == nd.QUEUED:
                out.append(Stop(arg, (*outer, "__neigh_event_send") if outer and arg is skb else "__neigh_event_send"))
            elif kind == nd.DROP:
                out.append(Drop(arg[0], "__neigh_event_send", arg[1]))
            elif kind == nd.SOLICIT:
                out += (ndisc if six else arp).solicit(self, n, *arg)
            elif kind == nd.TIMER:
                key = ("nd" if six else "neigh", self.name, n.ifindex, n.ip)
                out.append(Cancel(key) if arg is None else Arm(key, arg))
            elif kind == nd.FAILED:
                # arp_error_report() -> ipv4_link_failure(): ip answers with host unreachable;
                # ndisc_error_report() -> ip6_link_failure(): address unreachable
                report = clone(arg)
                if six:
                    report.link_failure.nexthop6 = n.ip.to_bytes(16, "big")
                else:
                    report.link_failure.nexthop = n.ip
                out.append(Drop(arg, "neigh_timer_handler", "NEIGH_FAILED"))
                out.append(Up(report, "ndisc_error_report" if six else "arp_error_report", "ip"))
        return out

    def output(self, dev: Device, skb, dst_mac: bytes, fn) -> list:
        """Ethernet header on, then out (neigh_hh_output()): IPv6's ethertype for
        an IPv6 skb (protocol ETH_P_IPV6), IPv4's otherwise."""
        proto = ethernet.ETH_P_IPV6 if skb.protocol == ethernet.ETH_P_IPV6 else ethernet.ETH_P_IP
        skb.data = ethernet.header(dst_mac, dev.mac, proto) + skb.data
        skb.protocol = proto
        return self.xmit(dev, skb, fn)

    def output6(self, dev: Device, skb, nexthop: int, now: int, fn=None, confirm: bool = False) -> list:
        """ip6_finish_output2(): to a group, its 33:33 MAC; to a unicast next hop,
        through nd_tbl (neighbour discovery resolves it)."""
        if dev.loopback:
            return self.output(dev, skb, ethernet.ZERO, fn or "dev_queue_xmit")
        if ipv6.is_multicast(nexthop):
            return self.output(dev, skb, ipv6.multicast_mac(nexthop), fn or "dev_queue_xmit")
        return self.neigh_actions(self.nd_tbl.output(dev.ifindex, nexthop, skb, now, confirm=confirm),
                                  self.nd_tbl, fn, skb)

    def xmit(self, dev: Device, skb, fn: str) -> list:
        """__dev_xmit_skb(): through the device's root qdisc, if it has one
        other than the default, then out."""
        skb.mac_header = 0
        if skb.gso_size and not (dev.tso or dev.gso):
            segs = self.gso_segment(skb, fn)
            return segs if type(segs[0]) is Drop else [a for seg in segs for a in self.xmit(dev, seg, fn)]
        q = dev.qdisc
        if q is None and not dev.speed:
            dev.tx_bytes += len(skb.data)
            dev.tx_packets += skb.gso_segs or 1
            return self.hard_start_xmit(dev, skb, fn)
        # a qdisc, or a line rate (the qdisc, the default one, holds what the ring
        # cannot); its spans nest under the caller's (dev_queue_xmit -> netem_enqueue)
        q = q or dev.default_q
        skb.enqueued = self.now
        head = (fn,) if isinstance(fn, str) else fn
        out = [replace(act, fn=(*head, act.fn)) for act in q.enqueue(skb, self.now)]
        return out + self.qdisc_run(dev)

    def qdisc_run(self, dev: Device) -> list:
        """__qdisc_run(): what the qdisc lets out now goes to the driver; the
        watchdog timer is (re)armed for the next one."""
        if dev.speed:
            return self.tx_run(dev)
        q = dev.qdisc
        frames, wake = q.dequeue(self.now)
        out = self._freed(q)
        for skb in frames:
            out += self.hard_start_xmit(dev, skb, self.waited(f"{q.kind}_dequeue", skb.enqueued))
        return out + self._rearm(dev, wake)

    @staticmethod
    def _freed(q) -> list:
        """What a qdisc (or the one on its class) dropped while dequeuing (CoDel)."""
        out = []
        for owner in (q, getattr(q, "child", None)):
            freed = getattr(owner, "freed", None)
            if freed:
                out += [Drop(skb, f"{owner.kind}_dequeue", "QDISC_DROP") for skb in freed]
                freed.clear()
        return out

    def _rearm(self, dev: Device, wake: int | None) -> list:
        """The device's one timer (qdisc watchdog, TX completion), moved to `wake` (None: off)."""
        if wake == dev.qdisc_wake:
            return []
        dev.qdisc_wake = wake
        return [Arm(self.qdisc_key(dev), wake) if wake is not None else Cancel(self.qdisc_key(dev))]

    def tx_run(self, dev: Device) -> list:
        """A device with a line rate: TX completions first (frames whose last bit
        has left go to the cable's far end, in order), then the ring refilled
        from the qdisc while it has room (netif_stop_queue() when it has none;
        the completions wake it), each frame on the cable after the one before;
        one timer for the next completion or the qdisc's next frame. A timer
        that fired late (a busy service) while frames waited for room does not
        idle the cable: up to CATCH_UP late, the next frames go on as they would
        have, and those whose time has passed complete at once."""
        q, now, ring = dev.qdisc or dev.default_q, self.now, dev.ring
        out = []
        self.dql_completed(dev, now)
        catch_up = dev.backlogged and now - dev.busy_until <= CATCH_UP
        while True:
            while ring and ring[0][0] <= now:
                _, skb, queued = ring.popleft()
                dev.ring_bytes -= len(skb.data)
                if dev.qdisc is None:
                    dev.tx_bytes += len(skb.data)
                    dev.tx_packets += 1
                out += self.hard_start_xmit(dev, skb, self.waited("sch_direct_xmit", skb.enqueued, queued))
            if dev.ring_bytes >= dev.bql_limit or len(ring) >= TX_RING_SIZE:
                dev.backlogged = q.qlen > 0    # netif_stop_queue() with frames waiting
                break
            skb = q.dequeue_one(now)
            if skb is None:
                dev.backlogged = False
                break
            # a GSO packet takes the cable for all of its frames, back to back, as a
            # TSO NIC sends them; it completes (and reaches the far end, where GRO
            # would have merged them) when the last has left
            if skb.gso_size:
                wire = tcp_offload.gso_wire_len(skb, WIRE_OVERHEAD)
            else:
                wire = max(len(skb.data), ethernet.ETH_ZLEN) + WIRE_OVERHEAD    # padded by the NIC
            start = dev.busy_until if catch_up else max(now, dev.busy_until)
            dev.busy_until = start + wire * 1_000_000_000 // dev.speed
            ring.append((dev.busy_until, skb, now))
            dev.ring_bytes += len(skb.data)
        out += self._freed(q)
        due = [t for t in (ring[0][0] if ring else None, q.next_due()) if t is not None]
        return out + self._rearm(dev, min(due) if due else None)

    @staticmethod
    def dql_completed(dev: Device, now: int):
        """dql_completed() (lib/dynamic_queue_limits.c): the ring's byte limit
        doubles when the cable went idle while frames waited for room (the
        completion came later than tx_run() catches up), and shrinks by the
        slack it never needed (the least still queued at a completion while
        frames waited) once that held for DQL_HOLD_TIME, so the ring stays as
        shallow as the completions allow and the qdisc keeps the queue."""
        if not dev.backlogged:
            return
        if now - dev.busy_until > CATCH_UP:
            dev.bql_limit = min(dev.bql_limit * 2, dev.bql_max)
            dev.slack, dev.slack_start = None, now
            return
        dev.slack = dev.ring_bytes if dev.slack is None else min(dev.slack, dev.ring_bytes)
        if now - dev.slack_start >= DQL_HOLD_TIME:
            dev.bql_limit = max(dev.bql_min, dev.bql_limit - dev.slack)
            dev.slack, dev.slack_start = None, now

    def alloc_handle(self, handle: int = 0) -> int:
        if not handle:                         # qdisc_alloc_handle(): 8001:, 8002:, ...
            self.handles += 1
            handle = self.handles << 16
        return handle

    def new_netem(self, opt: sch_netem.Qopt, handle: int = 0) -> sch_netem.Netem:
        return sch_netem.Netem(opt, self.alloc_handle(handle), random.Random(self.rng.getrandbits(64)))

    def qdisc_graft(self, dev: Device, new) -> list:
        """qdisc_graft(): `new` becomes the device's root qdisc (None: a fresh
        default one); what the old one still held is freed, its timer cancelled."""
        old, dev.qdisc = dev.qdisc, new
        dev.tx_bytes = dev.tx_packets = 0
        if old is None:                        # the default qdisc is reset too
            old = dev.default_q
        if new is None:                        # a fresh default, of net.core.default_qdisc's kind now
            dev.default_q = default_qdisc(self.sysctl["net.core.default_qdisc"], dev)
        out = [Drop(skb, "qdisc_reset", "QUEUE_PURGE") for skb in old.purge()] if old is not None else []
        if dev.qdisc_wake is not None:
            dev.qdisc_wake = None
            out.append(Cancel(self.qdisc_key(dev)))
        return out

    def qdisc_key(self, dev: Device) -> tuple:
        return ("qdisc", self.name, dev.ifindex, 0)

    def hard_start_xmit(self, dev: Device, skb, fn) -> list:
        """validate_xmit_skb() (a GSO packet cut into frames unless the device
        does TSO) and dev_hard_start_xmit(): every frame leaving a device passes
        the taps, so a capture shows what the qdisc let out."""
        if skb.gso_size and not dev.tso:
            segs = self.gso_segment(skb, fn)
            return segs if type(segs[0]) is Drop else [a for seg in segs for a in self.hard_start_xmit(dev, seg, fn)]
        return self.taps_out(dev, skb) + [Down(skb, fn)] if self.taps else [Down(skb, fn)]

    def waited(self, fn: str, enqueued: int, queued: int | None = None) -> tuple:
        """The span of a frame leaving the qdisc (and the TX ring) says how long
        it waited in each, in microseconds."""
        now = self.now
        if queued is None:
            return Step(fn, (("pktflow.qdisc.wait_us", (now - enqueued) // 1000),)),
        return Step(fn, (("pktflow.qdisc.wait_us", (queued - enqueued) // 1000),
                         ("pktflow.txring.wait_us", max(0, now - queued) // 1000))),

    @staticmethod
    def gso_segment(skb, fn) -> list:
        """skb_gso_segment(): the frames of a GSO packet, or its drop."""
        segs = tcp_offload.gso_segment(skb)
        return segs if segs else [Drop(skb, (*((fn,) if isinstance(fn, str) else fn), "skb_gso_segment"),
                                        "SKB_GSO_SEG")]

    def taps_out(self, dev: Device, skb) -> list:
        """dev_queue_xmit_nit(): a copy of an outgoing frame for every ETH_P_ALL
        packet socket on the device, except the one that sent it."""
        out = []
        for ifindex in (dev.ifindex, 0):
            for sk, proto in self.taps.get(ifindex, {}).items():
                if proto == ethernet.ETH_P_ALL and sk != skb.sk:
                    c = self.tap_copy(sk, skb)
                    if c is not None:
                        c.ifindex, c.pkt_type = dev.ifindex, PACKET_OUTGOING
                        c.tstamp = 0                  # net_timestamp_set(): the shell stamps it now
                        out.append(Up(c, "dev_queue_xmit_nit", "socket"))
        return out

    def taps_in(self, dev: Device, skb, ethertype: int) -> list:
        out = []
        for ifindex in (dev.ifindex, 0):
            for sk, proto in self.taps.get(ifindex, {}).items():
                if proto == ethernet.ETH_P_ALL or proto == ethertype:
                    c = self.tap_copy(sk, skb)
                    if c is not None:
                        out.append(Up(c, "packet_rcv", "socket"))
        return out

    def tap_copy(self, sk: int, skb):
        """packet_rcv()'s run_filter(): a copy of the frame for packet socket `sk`
        if its filter takes it, cut to the length the filter keeps (the snap
        length); frames it refuses never leave the link layer."""
        prog = self.tap_filters.get(sk)
        keep = prog.run(skb.data) if prog is not None else -1
        if not keep:
            return None
        c = clone(skb)
        c.sk = sk
        if 0 < keep < len(c.data):
            c.data = c.data[:keep]
        return c


class Link:
    """The device layer of every namespace."""

    def __init__(self, topology, rng: random.Random | None = None, probes: Probes | None = None):
        rng = rng or random.Random()
        self.probes = probes or Probes()           # the tracepoints the cores fire (the shell's)
        self.netns = {h.name: LinkNetns(h, rng, self.probes) for h in topology.hosts.values()}
        # A link's `netem:` impairs every endpoint's egress, as `tc qdisc add
        # dev IF root netem ...` on each would.
        for link in topology.links:
            for host, ifname in link.endpoints if link.netem else ():
                if host not in self.netns:             # another shard's end: it impairs its own egress
                    continue
                ns = self.netns[host]
                dev = ns.devices[topology.hosts[host].interfaces[ifname].ifindex]
                ns.qdisc_graft(dev, ns.new_netem(link.netem_qopt))

    def _dev(self, skb):
        ns = self.netns.get(skb.netns)
        return ns, (ns.devices.get(skb.ifindex) if ns else None)

    def dev_queue_xmit(self, skb, now: int) -> list:
        """An IP packet from the ip layer, for device skb.ifindex and next hop skb.nexthop."""
        ns, dev = self._dev(skb)
        if dev is None:
            return [Drop(skb, "dev_queue_xmit", "DEV_READY")]
        ns.now = now
        if skb.protocol == ethernet.ETH_P_IPV6:
            # ip6_finish_output2(): the next hop ip chose (rt6_nexthop()), else the destination
            nexthop = int.from_bytes(skb.nexthop6 or skb.data[24:40], "big")
            return ns.output6(dev, skb, nexthop, now, confirm=skb.dst_pending_confirm)
        if dev.loopback:
            return ns.output(dev, skb, ethernet.ZERO, "dev_queue_xmit")
        if skb.nexthop in dev.broadcasts:
            return ns.output(dev, skb, ethernet.BROADCAST, "dev_queue_xmit")
        return ns.neigh_actions(ns.neigh.output(dev.ifindex, skb.nexthop, skb, now,
                                                confirm=skb.dst_pending_confirm))

    def packet_xmit(self, skb, now: int) -> list:
        """packet_sendmsg(): a whole frame from an AF_PACKET socket, or its bind/release."""
        ns, dev = self._dev(skb)
        op = skb.call.op
        if op:
            return self.packet_call(ns, skb)
        if dev is None:
            return [Drop(skb, "packet_sendmsg", "DEV_READY")]
        ns.now = now
        return ns.xmit(dev, skb, "dev_queue_xmit")

    def packet_call(self, ns, skb) -> list:
        """dev_add_pack()/dev_remove_pack() for a packet socket; a protocol of 0
        receives nothing, as in Linux."""
        call = skb.call
        err = errno.ENODEV if ns is None else 0
        if ns is not None:
            for taps in ns.taps.values():
                taps.pop(skb.sk, None)
            ns.tap_filters.pop(skb.sk, None)
            if call.op == call.BIND and call.protocol:
                ns.taps.setdefault(skb.ifindex, {})[skb.sk] = call.protocol
                if call.optbytes:                  # SO_ATTACH_FILTER, checked again here
                    try:
                        ns.tap_filters[skb.sk] = bpf.from_sock_filter(call.optbytes)
                    except bpf.FilterError:
                        err = errno.EINVAL
        if not call.req:
            return []
        ev = SockEvent(kind=SockEvent.COMPLETE, req=call.req, err=err)
        return [Up(Skb(netns=skb.netns, sk=skb.sk, event=ev), "complete", "socket")]

    def netif_receive_skb(self, skb, now: int) -> list:
        """A frame from the driver: eth_type_trans(), taps, protocol handlers."""
        ns, dev = self._dev(skb)
        if dev is None:
            return [Drop(skb, "__netif_receive_skb_core", "DEV_READY")]
        ns.now = now
        try:
            eth = ethernet.parse(skb.data)
        except Malformed as e:
            dev.stats["rx_dropped"] += 1
            return [Drop(skb, "__netif_receive_skb_core", e.reason)]
        if dev.loopback or eth.dst == dev.mac:
            skb.pkt_type = PACKET_HOST
        elif eth.dst == ethernet.BROADCAST:
            skb.pkt_type = PACKET_BROADCAST
        elif eth.dst[0] & 1:
            skb.pkt_type = PACKET_MULTICAST
        else:
            skb.pkt_type = PACKET_OTHERHOST
        skb.protocol = eth.ethertype
        skb.mac_header = 0
        skb.network_header = skb.head = ethernet.ETH_HLEN
        out = ns.taps_in(dev, skb, eth.ethertype) if ns.taps else []
        if eth.ethertype == ethernet.ETH_P_IP:
            out.append(Up(skb, "__netif_receive_skb_core", "ip"))
        elif eth.ethertype == ethernet.ETH_P_ARP:
            out += arp.arp_rcv(ns, dev, skb, now)
        elif eth.ethertype == ethernet.ETH_P_IPV6:
            out += ndisc.ipv6_rcv(ns, dev, skb, eth.dst, now)
        else:
            dev.stats["rx_dropped"] += 1
            out.append(Drop(skb, "__netif_receive_skb_core", "UNHANDLED_PROTO"))
        return out

    def timer(self, key, now: int) -> list:
        kind, netns, ifindex, ip = key
        ns = self.netns[netns]
        ns.now = now
        if kind == "qdisc":                    # qdisc_watchdog() or a TX completion: the next frame is due
            dev = ns.devices[ifindex]
            dev.qdisc_wake = None
            return ns.qdisc_run(dev) if dev.qdisc is not None or dev.speed else []
        if kind == "neigh":
            return ns.neigh_actions(ns.neigh.timer(ifindex, ip, now))
        if kind == "nd":
            return ns.neigh_actions(ns.nd_tbl.timer(ifindex, ip, now), ns.nd_tbl)
        if kind == "pndisc":
            return ndisc.pndisc_redo(ns, key, now)
        dev = ns.devices.get(ifindex)
        if dev is None:
            return []
        if kind == "dad":                      # addrconf_dad_work(): DAD's next probe, or done
            return addrconf.dad_work(ns, dev, ip, now)
        if kind == "rs":
            return addrconf.rs_timer(ns, dev, now)
        if kind == "mld":
            return addrconf.mld_timer(ns, dev, ip, now)
        return []

    def netdev_up(self, now: int, netns: str | None = None) -> list:
        """The devices come up (addrconf_notify(NETDEV_UP)): DAD for every IPv6
        address, MLD's reports, and, once the link-local address is ready, a host's
        router solicitations. The link service does this when the NIC layer is
        first reachable; the in-process netstack when a test asks."""
        out = []
        for name, ns in self.netns.items():
            if netns is None or name == netns:
                ns.now = now
                for dev in sorted(ns.devices.values(), key=lambda d: d.ifindex):
                    out += addrconf.dev_up(ns, dev, now)
        return out

    def reset_taps(self):
        """The socket layer restarted: its packet sockets are gone."""
        for ns in self.netns.values():
            ns.taps.clear()
            ns.tap_filters.clear()

    def neighbours(self, netns: str, family: int = nd.AF_INET) -> list[dict]:
        """`ip neigh` (arp_tbl) or `ip -6 neigh` (nd_tbl, `family` AF_INET6: with NTF_ROUTER as `router`)."""
        ns = self.netns[netns]
        six = family == nd.AF_INET6
        tbl = ns.nd_tbl if six else ns.neigh
        out = []
        for e in tbl.show():
            entry = {"dst": ipv6.ntoa(e["dst"]) if six else ipv4.ntoa(e["dst"]), "dev": ns.devices[e["ifindex"]].name,
                     "lladdr": ethernet.mac_to_str(e["lladdr"]) if e["lladdr"] else None,
                     "state": nd.NAMES.get(e["state"], hex(e["state"]))}
            if six:
                entry["router"] = bool(tbl.lookup(e["ifindex"], e["dst"]).flags & nd.NTF_ROUTER)
            out.append(entry)
        return out

