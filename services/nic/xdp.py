"""XDP: a program that sees every received frame before the stack does, and
decides its fate (include/uapi/linux/bpf.h enum xdp_action; net/core/dev.c
dev_xdp_attach(), do_xdp_generic(); net/core/filter.c xdp_do_redirect();
drivers/net/virtio_net.c virtnet_xdp_handler(), virtnet_xdp_xmit()).

pktflow has no eBPF. A device's XDP program is an ordered list of rules,
(pcap-filter expression, action): the first rule whose expression matches the
frame decides, and a frame no rule matches gets XDP_PASS. User space (iproute2's
part, services/iproute2/iplink_xdp.py) compiled each expression with libpcap;
here the instructions are checked as the kernel checks a classic BPF program
(bpf_check_classic()) and translated once (services/common/bpf.py).

The actions, as a driver carries them out:
  XDP_DROP      the frame is freed in the driver (drop reason XDP).
  XDP_PASS      it goes up as it would have without a program.
  XDP_TX        it goes back out the device it came in on, through the driver's
                own XDP TX path (ndo_xdp_xmit()), with its Ethernet source and
                destination swapped, as the "reflector" programs (samples/bpf's
                xdp_tx, xdp-bench tx) do: unswapped, the frame would carry the
                peer's own MAC as its source and be addressed to this device.
  XDP_REDIRECT  to another device of the same host (bpf_redirect()): out its
                cable by its ndo_xdp_xmit(), past link, qdiscs and ip; or to the
                AF_XDP socket bound to this device's queue (an XSKMAP, as
                bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS) does: with no
                socket bound there, the frame is passed).
  XDP_ABORTED   the program failed: dropped, and counted as an exception
                (the xdp:xdp_exception tracepoint), as a failed TX or redirect is.

Two attach points, as Linux has (`ip link set dev IF xdp|xdpdrv|xdpgeneric`):
native (XDP_MODE_DRV), in the driver's NAPI poll right after the frame leaves
the RX ring and passed its FCS and length checks, before GRO and before any skb
exists; and generic (XDP_MODE_SKB), in netif_receive_skb() on what GRO handed
up, where TX and redirect go through the ordinary ndo_start_xmit(). The native
path counts in the driver's ethtool -S statistics, virtio-net's names
(rx_queue_0_xdp_packets, _xdp_tx, _xdp_redirects, _xdp_drops, tx_queue_0_xdp_tx,
_xdp_tx_drops); as in virtio-net, an XDP drop is also an rx_dropped, and the
frames an XDP program saw are rx_packets. Every program also counts its verdicts
and each rule's matches (what a BPF map would hold), whatever the mode. As in
virtio-net, ndo_xdp_xmit() works only on a device that has an XDP program of
its own (ENXIO otherwise: a redirect target needs one, `xdp pass` will do, as
the kernel's xdp_redirect sample loads a dummy program on its egress device).
The loopback device has no driver XDP: `xdp` on lo is generic.
"""
import errno
import hashlib

from ..common import bpf
from ..common.actions import Drop, Step, Stop, Up
from ..wire import ethernet

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
ACTIONS = ("XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT")
# include/uapi/linux/if_link.h
XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE = 1, 2, 4, 8
XDP_FLAGS_MODES = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE
XDP_FLAGS_MASK = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_MODES
MODE_SKB, MODE_DRV = "skb", "drv"             # enum bpf_xdp_mode's XDP_MODE_SKB, XDP_MODE_DRV
VLAN_HLEN = 4
PROG_NAME = "pktflow_rules"                   # bpf_prog_info.name (BPF_OBJ_NAME_LEN 16)
MAX_RULES = 256
FN = "bpf_prog_run_xdp"                       # the span of the program's run


class XdpError(Exception):
    """What dev_xdp_attach() refuses: an errno and the netlink extended ack."""

    def __init__(self, err: int, extack: str):
        super().__init__(extack)
        self.err, self.extack = err, extack


class XdpRule:
    """One rule: where its expression matches, `action`. `step` is its span,
    made once: the verdict, the rule's number and its expression."""
    __slots__ = ("index", "action", "match", "filter", "target", "xsk", "hits", "step")

    def __init__(self, index: int, action: int, match, filter_: str, target=None, xsk: bool = False,
                 mode: str = MODE_DRV):
        self.index, self.action, self.match, self.filter = index, action, match, filter_
        self.target, self.xsk = target, xsk
        self.hits = 0
        attrs = [("pktflow.xdp.action", ACTIONS[action]), ("pktflow.xdp.rule", index), ("pktflow.xdp.mode", mode)]
        if filter_:
            attrs.append(("pktflow.xdp.filter", filter_))
        if action == XDP_REDIRECT:
            attrs.append(("pktflow.xdp.redirect", "xsk" if xsk else target.name))
        self.step = Step(FN, tuple(attrs))

    def describe(self) -> dict:
        d = {"action": ACTIONS[self.action], "filter": self.filter, "hits": self.hits}
        if self.action == XDP_REDIRECT:
            d["redirect"] = "xsk" if self.xsk else self.target.name
        return d


class XdpProg:
    """An attached program: its rules, in order, and the default (XDP_PASS)."""

    def __init__(self, prog_id: int, rules: list[XdpRule], mode: str, text: str):
        self.id, self.rules, self.mode = prog_id, rules, mode
        self.default = XdpRule(0, XDP_PASS, None, "", mode=mode)
        self.tag = hashlib.sha1(text.encode()).hexdigest()[:16]     # bpf_prog_info.tag: 8 bytes of a SHA-1
        self.verdicts = [0] * len(ACTIONS)
        self.exceptions = 0                     # xdp:xdp_exception
        # with no socket bound: bpf_redirect_map()'s fallback, XDP_PASS
        self.fallback = {r.index: Step(FN, (("pktflow.xdp.action", "XDP_PASS"),) + r.step.attrs[1:]
                                       + (("pktflow.xdp.xsk", "none bound"),))
                         for r in rules if r.xsk}

    def run(self, frame) -> XdpRule:
        """bpf_prog_run_xdp(): the first rule that matches."""
        for r in self.rules:
            m = r.match
            if m is None or m(frame):
                r.hits += 1
                return r
        d = self.default
        d.hits += 1
        return d

    def describe(self) -> dict:
        return {"id": self.id, "name": PROG_NAME, "tag": self.tag, "jited": True, "mode": self.mode,
                "rules": [r.describe() for r in self.rules], "default": {"action": "XDP_PASS",
                                                                         "hits": self.default.hits},
                "verdicts": dict(zip(ACTIONS, self.verdicts)), "exceptions": self.exceptions}


# --- attaching: dev_xdp_attach() ----------------------------------------------------------------------------

def dev_change_xdp(nic, netns: str, req) -> dict:
    """`ip link set dev IF xdp...` (an XdpRequest): attach, replace or detach the
    program of the mode the flags name, as dev_xdp_attach() checks it; returns
    the device's XDP state. Raises XdpError."""
    dev = next((d for d in nic.devices.values() if d.netns == netns and d.name == req.dev), None)
    if dev is None:
        raise XdpError(errno.ENODEV, f'Cannot find device "{req.dev}"')
    flags = req.flags
    if flags & ~XDP_FLAGS_MASK:
        raise XdpError(errno.EINVAL, "Invalid XDP flags for BPF link attachment")
    if bin(flags & XDP_FLAGS_MODES).count("1") > 1:
        raise XdpError(errno.EINVAL, "Only one XDP mode flag can be set")
    if flags & XDP_FLAGS_HW_MODE:
        raise XdpError(errno.EOPNOTSUPP, "pktflow's NICs do not offload XDP: use xdp, xdpdrv or xdpgeneric")
    # dev_xdp_mode(): generic when asked, or when the driver has no ndo_bpf (loopback)
    if flags & XDP_FLAGS_MODES:
        mode = MODE_SKB if flags & XDP_FLAGS_SKB_MODE else MODE_DRV
    else:
        mode = MODE_SKB if dev.loopback else MODE_DRV
    if mode == MODE_DRV and dev.loopback:
        raise XdpError(errno.EOPNOTSUPP, "Underlying driver does not support XDP in native mode")
    slot, other = ("xdp_prog", "xdp_generic") if mode == MODE_DRV else ("xdp_generic", "xdp_prog")
    cur = getattr(dev, slot)
    if req.detach:
        if cur is not None:
            setattr(dev, slot, None)
            nic.xdp_attached(dev)
        return xdp_state(dev)
    if flags & XDP_FLAGS_UPDATE_IF_NOEXIST and cur is not None:
        raise XdpError(errno.EBUSY, "XDP program already attached")
    if getattr(dev, other) is not None:
        raise XdpError(errno.EEXIST, "Native and generic XDP can't be active at the same time")
    prog = bpf_prog_load(nic, dev, req.rules, mode)
    setattr(dev, slot, prog)
    nic.xdp_attached(dev)
    return xdp_state(dev)


def bpf_prog_load(nic, dev, rules, mode: str) -> XdpProg:
    """The program from its rules: each expression's instructions checked
    (bpf_check_classic()) and translated, each redirect target found."""
    if not rules:
        raise XdpError(errno.EINVAL, "an XDP program needs at least one rule")
    if len(rules) > MAX_RULES:
        raise XdpError(errno.E2BIG, f"at most {MAX_RULES} rules")
    out, text = [], []
    for i, r in enumerate(rules, 1):
        if r.action not in range(len(ACTIONS)):
            raise XdpError(errno.EINVAL, f"rule {i}: no XDP action {r.action}")
        match = None
        if r.insns:
            try:
                match = bpf.Program([(x.code, x.jt, x.jf, x.k) for x in r.insns], r.filter).match
            except bpf.FilterError as e:
                raise XdpError(errno.EINVAL, f"rule {i}: {e}") from None
        target, xsk = None, False
        if r.action == XDP_REDIRECT:
            if r.redirect_xsk == bool(r.redirect_dev):
                raise XdpError(errno.EINVAL, f"rule {i}: redirect to a device or to xsk")
            xsk = r.redirect_xsk
            if not xsk:
                target = next((d for d in nic.devices.values() if d.netns == dev.netns and d.name == r.redirect_dev),
                              None)
                if target is None:
                    raise XdpError(errno.ENODEV, f'rule {i}: no device "{r.redirect_dev}" to redirect to')
        out.append(XdpRule(i, r.action, match, r.filter, target, xsk, mode))
        text.append(f"{r.action} {r.filter!r} {r.redirect_dev} {xsk} {[(x.code, x.jt, x.jf, x.k) for x in r.insns]}")
    nic.last_prog_id += 1                       # prog ids are the kernel's, not a namespace's
    return XdpProg(nic.last_prog_id, out, mode, "\n".join(text))


def xdp_state(dev) -> dict:
    """What IFLA_XDP reports of a device: the attached program, if any."""
    prog = dev.xdp_prog or dev.xdp_generic
    return {"attached": prog.mode if prog else None, "prog": prog.describe() if prog else None}


# --- running: the driver's (native) and netif_receive_skb()'s (generic) ---------------------------------------

def _fail(dev, prog, skb, fn, err: str, native: bool):
    """An action that could not be carried out (a full ring, a target down):
    trace_xdp_exception(), and the frame is dropped as XDP_DROP would."""
    prog.exceptions += 1
    if native:
        dev.stats["rx_queue_0_xdp_drops"] += 1
        dev.stats["rx_dropped"] += 1
    return Drop(skb, fn + (Step("xdp_exception", (("pktflow.xdp.err", err),)),), "XDP")


def xdp_ok_fwd_dev(target, n: int) -> str | None:
    if not target.up:
        return "ENETDOWN"
    if n > target.mtu + ethernet.ETH_HLEN + VLAN_HLEN:
        return "EMSGSIZE"
    return None


def ndo_xdp_xmit(nic, dev, skb) -> str | None:
    """The driver's XDP transmit (virtnet_xdp_xmit()): onto the cable, past the
    qdisc; only with an XDP program on the device (ENXIO otherwise)."""
    if dev.loopback:
        return "EOPNOTSUPP"
    if dev.xdp_prog is None:
        return "ENXIO"
    stats = dev.stats
    stats["tx_queue_0_xdp_tx"] += 1
    if not dev.carrier:
        stats["tx_queue_0_xdp_tx_drops"] += 1
        stats["tx_errors"] += 1
        stats["tx_carrier_errors"] += 1
        return "ENETDOWN"
    stats["tx_packets"] += 1
    stats["tx_bytes"] += len(skb.data)
    nic.on_wire.append((dev, skb))
    return None


def xmit(nic, skb, now: int, fn: tuple) -> list:
    """ndo_start_xmit() for a frame that did not come down from link (generic
    XDP's generic_xdp_tx(), an AF_XDP socket's __dev_direct_xmit()): its hop
    named `fn`."""
    return [Drop(a.skb, fn, a.reason) if type(a) is Drop else Stop(a.skb, fn)
            for a in nic.ndo_start_xmit(skb, now)]


def swap_macs(data: bytes) -> bytes:
    return data[6:12] + data[:6] + data[12:]


def bpf_prog_run_xdp(nic, dev, prog: XdpProg, skb):
    """The driver's XDP handler for one frame (skb.data, no FCS): returns the
    Step to put before netif_receive_skb when the verdict is XDP_PASS, else the
    hop's last action (the frame's journey ends here: dropped, transmitted or
    handed to an AF_XDP socket)."""
    stats = dev.stats
    stats["rx_queue_0_xdp_packets"] += 1
    rule = prog.run(skb.data)
    act = rule.action
    if act == XDP_PASS:
        prog.verdicts[XDP_PASS] += 1
        return rule.step
    fn = (rule.step,)
    if act == XDP_REDIRECT and rule.xsk:
        xs = nic.xsks.get((dev.netns, dev.ifindex, 0))
        if xs is None:
            prog.verdicts[XDP_PASS] += 1
            return prog.fallback[rule.index]
    prog.verdicts[act] += 1
    if act == XDP_DROP:
        stats["rx_queue_0_xdp_drops"] += 1
        stats["rx_dropped"] += 1
        return Drop(skb, fn, "XDP")
    if act == XDP_TX:
        stats["rx_queue_0_xdp_tx"] += 1
        skb.data = swap_macs(skb.data)
        err = ndo_xdp_xmit(nic, dev, skb)
        return _fail(dev, prog, skb, fn, err, True) if err else Stop(skb, fn + ("ndo_xdp_xmit",))
    if act == XDP_REDIRECT:
        stats["rx_queue_0_xdp_redirects"] += 1
        fn += ("xdp_do_redirect",)
        if rule.xsk:
            err = xs.rcv(skb.data, skb.tstamp)
            if err:
                return _fail(dev, prog, skb, fn, err, True)
            nic.xsk_ready[xs] = None
            return Stop(skb, fn + ("xsk_rcv",))
        target = rule.target
        err = xdp_ok_fwd_dev(target, len(skb.data)) or ndo_xdp_xmit(nic, target, skb)
        return _fail(dev, prog, skb, fn, err, True) if err else Stop(skb, fn + ("ndo_xdp_xmit",))
    prog.exceptions += 1                        # XDP_ABORTED: trace_xdp_exception(), then a drop
    stats["rx_queue_0_xdp_drops"] += 1
    stats["rx_dropped"] += 1
    return Drop(skb, fn, "XDP")


def do_xdp_generic(nic, dev, prog: XdpProg, out: list, now: int) -> list:
    """Generic XDP on what a poll hands up (after GRO), as
    __netif_receive_skb_core() runs it: XDP_TX and redirects to a device leave
    by ndo_start_xmit() (generic_xdp_tx()), a redirect to xsk is copied
    (xsk_generic_rcv()); the driver counts nothing of it."""
    res = []
    for a in out:
        if type(a) is not Up:
            res.append(a)
            continue
        skb = a.skb
        rule = prog.run(skb.data)
        act = rule.action
        fn = (a.fn if isinstance(a.fn, tuple) else (a.fn,)) + (rule.step,)
        xs = nic.xsks.get((dev.netns, dev.ifindex, 0)) if act == XDP_REDIRECT and rule.xsk else None
        if act == XDP_PASS or rule.xsk and xs is None:
            prog.verdicts[XDP_PASS] += 1
            res.append(Up(skb, fn if act == XDP_PASS else fn[:-1] + (prog.fallback[rule.index],), a.to))
            continue
        prog.verdicts[act] += 1
        if act == XDP_TX:
            skb.data = swap_macs(skb.data)
            res += xmit(nic, skb, now, fn + ("ndo_start_xmit",))
        elif act == XDP_REDIRECT and xs is not None:
            err = xs.rcv(skb.data, skb.tstamp)
            if err:
                res.append(_fail(dev, prog, skb, fn + ("xdp_do_generic_redirect",), err, False))
            else:
                nic.xsk_ready[xs] = None
                res.append(Stop(skb, fn + ("xdp_do_generic_redirect", "xsk_generic_rcv")))
        elif act == XDP_REDIRECT:
            err = xdp_ok_fwd_dev(rule.target, len(skb.data))
            if err:
                res.append(_fail(dev, prog, skb, fn + ("xdp_do_generic_redirect",), err, False))
            else:
                skb.ifindex = rule.target.ifindex
                res += xmit(nic, skb, now, fn + ("xdp_do_generic_redirect", "ndo_start_xmit"))
        else:
            if act == XDP_ABORTED:
                prog.exceptions += 1
            res.append(Drop(skb, fn, "XDP"))
    return res
