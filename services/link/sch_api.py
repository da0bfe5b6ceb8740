"""The kernel's side of `tc qdisc` (net/sched/sch_api.c) for a device's root
qdisc: tc_modify_qdisc() and tc_get_qdisc() with their checks in their order
and their extack messages, and the dump (tc_fill_qdisc()). It takes the typed
request tc sends (admin.proto's TcQdiscRequest); tc's words are read in user
space (pktflow.services.iproute2.tc_qdisc).

`tc_qdisc(ns, req)` returns the dump (for SHOW) and the actions of what
changed (packets freed with a replaced qdisc, its timer cancelled), or raises
QdiscError with the errno and the extack message."""
import errno

from pktflow.v1.admin_pb2 import Qdisc, TcQdiscRequest

from ..common.actions import Drop

from ..common.pkt_sched import qopt_from_msg, qopt_to_msg
from .sch_fq_codel import FqCodel, codel_time
from .sch_generic import Fifo, PfifoFast
from .sch_tbf import Tbf

CREATE, EXCL, REPLACE = 1, 2, 4
FLAGS = {TcQdiscRequest.ADD: CREATE | EXCL, TcQdiscRequest.CHANGE: 0, TcQdiscRequest.REPLACE: CREATE | REPLACE}


class QdiscError(Exception):
    """A refusal: the errno, and the extack message ("" when the kernel gives none)."""

    def __init__(self, err: int, extack: str = ""):
        super().__init__(extack or errno.errorcode.get(err, str(err)))
        self.err, self.extack = err, extack


def tc_qdisc(ns, req: TcQdiscRequest) -> tuple[list, list]:
    if req.cmd == TcQdiscRequest.SHOW:
        return dump(ns, req.dev), []
    dev = _device(ns, req.dev)
    if not req.root and req.parent:
        return [], _child(ns, dev, req)
    if req.cmd == TcQdiscRequest.DELETE:
        return [], _delete(ns, dev, req.root, req.handle, req.kind)
    return [], _modify(ns, dev, FLAGS[req.cmd], req.root, req.handle, req.kind, req if req.kind in KINDS else None)


KINDS = ("netem", "tbf", "fq_codel", "pfifo", "bfifo", "pfifo_fast")
TXQUEUELEN = 1000
MS = 1_000_000


def _new_qdisc(ns, dev, req: TcQdiscRequest, handle: int):
    """qdisc_create(): the qdisc of that kind with its options (0: the kernel's defaults,
    a FIFO's from the device: txqueuelen packets, or txqueuelen x the frame size in bytes)."""
    handle = ns.alloc_handle(handle)
    kind = req.kind
    if kind == "netem":
        return ns.new_netem(qopt_from_msg(req.netem), handle)
    if kind == "tbf":
        t = req.tbf
        if not t.rate or not t.burst or not t.limit:
            raise QdiscError(errno.EINVAL, "Missing TBF parameters")
        return Tbf(t.rate, t.burst, t.limit, handle)
    if kind == "fq_codel":
        return FqCodel(handle, **_fq_codel_opts(req.fq_codel))
    if kind == "pfifo_fast":
        return PfifoFast(req.fifo.limit or TXQUEUELEN, handle)
    in_bytes = kind == "bfifo"
    return Fifo(req.fifo.limit or (TXQUEUELEN * (dev.mtu + 14) if in_bytes else TXQUEUELEN), handle, in_bytes)


def _fq_codel_opts(o) -> dict:
    given = {"limit": o.limit, "flows": o.flows, "quantum": o.quantum, "target": o.target,
             "interval": o.interval, "drop_batch_size": o.drop_batch}
    return {k: v for k, v in given.items() if v} | {"ecn": not o.noecn}


def _change(q, req: TcQdiscRequest):
    """The kind's change(): new options, queued frames and counters stay."""
    if req.kind == "netem":
        q.change(qopt_from_msg(req.netem))
    elif req.kind == "tbf":
        t = req.tbf
        q.change(t.rate or q.rate, t.burst or q.burst, t.limit or q.limit)
    elif req.kind == "fq_codel":
        o = _fq_codel_opts(req.fq_codel)
        for name in ("limit", "quantum", "drop_batch_size", "ecn"):
            if name in o:
                setattr(q, name, o[name])
        for name in ("target", "interval"):
            if name in o:
                setattr(q, name, codel_time(o[name]))
    elif req.fifo.limit:
        q.limit = req.fifo.limit


def _device(ns, name: str):
    dev = next((d for d in ns.devices.values() if d.name == name), None) if name else None
    if dev is None:                            # __dev_get_by_index(): no such device
        raise QdiscError(errno.ENODEV)
    return dev


def qdisc_kind(dev) -> str:
    return dev.qdisc.kind if dev.qdisc is not None else "noqueue" if dev.loopback else dev.default_q.kind


def _modify(ns, dev, flags: int, root: bool, handle: int, kind: str, req) -> list:
    """tc_modify_qdisc() for the root (or, without `root`, the qdisc with that handle)."""
    if root:
        return _modify_at(ns, dev, dev.qdisc, lambda new: ns.qdisc_graft(dev, new), flags, handle, kind, req)
    if not handle:
        raise QdiscError(errno.EINVAL, "Handle cannot be zero")
    q = dev.qdisc if dev.qdisc is not None and dev.qdisc.handle == handle else None
    if q is None:
        raise QdiscError(errno.ENOENT, "Specified qdisc not found")
    return _change_checked(q, flags, kind, req)


def _modify_at(ns, dev, q, graft, flags: int, handle: int, kind: str, req) -> list:
    """tc_modify_qdisc() at one place, the root or a class: a new qdisc grafted
    there (`graft(new)` returns the actions), or `q` (None: the default) changed."""
    if q is None or not handle or q.handle != handle:
        if handle and q is not None and not flags & REPLACE:
            raise QdiscError(errno.EEXIST, "NLM_F_REPLACE needed to override")
        # a handle not q's, nothing there yet, or "this magic test": replace by another kind
        if handle or q is None or flags & CREATE and flags & REPLACE and (flags & EXCL or kind and kind != q.kind):
            if not flags & CREATE:
                raise QdiscError(errno.ENOENT, "Qdisc not found. To create specify NLM_F_CREATE flag")
            if req is None:
                raise QdiscError(errno.ENOENT, "Specified qdisc kind is unknown")
            return graft(_new_qdisc(ns, dev, req, handle))
    return _change_checked(q, flags, kind, req)


def _change_checked(q, flags: int, kind: str, req) -> list:
    if flags & EXCL:
        raise QdiscError(errno.EEXIST, "Exclusivity flag on, cannot modify")
    if kind and kind != q.kind:
        raise QdiscError(errno.EINVAL, "Invalid qdisc name")
    if req is not None:
        _change(q, req)
    return []


def _purged(frames: list) -> list:
    return [Drop(skb, "qdisc_reset", "QUEUE_PURGE") for skb in frames]


def _child(ns, dev, req: TcQdiscRequest) -> list:
    """tc_modify_qdisc()/tc_get_qdisc() with a parent: the root must have that
    handle and classes (tbf has one, whatever the minor); what hangs there is
    replaced, changed or deleted (then the parent's default bfifo is back)."""
    parent = dev.qdisc
    if parent is None or parent.handle != req.parent & 0xFFFF0000:
        raise QdiscError(errno.ENOENT, "Failed to find specified qdisc")
    if not getattr(parent, "classful", False):
        raise QdiscError(errno.EINVAL, "Parent qdisc is not classful")
    q = parent.child
    if req.cmd != TcQdiscRequest.DELETE:
        return _modify_at(ns, dev, q, lambda new: _purged(parent.graft(new)), FLAGS[req.cmd], req.handle,
                          req.kind, req if req.kind in KINDS else None)
    if q is None:
        raise QdiscError(errno.ENOENT, "Cannot find specified qdisc on specified device")
    if req.kind and req.kind != q.kind:
        raise QdiscError(errno.EINVAL, "Invalid qdisc name")
    return _purged(parent.graft(None))


def _delete(ns, dev, root: bool, handle: int, kind: str) -> list:
    """tc_get_qdisc() for RTM_DELQDISC, in its order of checks."""
    current = dev.qdisc.handle if dev.qdisc is not None else 0
    if not root:
        if handle != current:
            raise QdiscError(errno.ENOENT, "Failed to find qdisc with specified handle")
    elif handle and handle != current:
        raise QdiscError(errno.EINVAL, "Invalid handle")
    if kind and kind != qdisc_kind(dev):
        raise QdiscError(errno.EINVAL, "Invalid qdisc name")
    if not root:
        raise QdiscError(errno.EINVAL, "Classid cannot be zero")
    if dev.qdisc is None:
        raise QdiscError(errno.ENOENT, "Cannot delete qdisc with handle of zero")
    return ns.qdisc_graft(dev, None)


def dump(ns, dev_name: str = "") -> list[Qdisc]:
    """tc_dump_qdisc(): each device's root qdisc (one device's when named), with
    its counters; noqueue counts nothing, the default qdisc what the device sent."""
    devs = [_device(ns, dev_name)] if dev_name else sorted(ns.devices.values(), key=lambda d: d.ifindex)
    out = []
    for dev in devs:
        q = dev.qdisc
        r = Qdisc(dev=dev.name, kind=qdisc_kind(dev), handle=q.handle if q is not None else 0)
        if q is not None:
            _dump_qdisc(q, r)
        elif not dev.loopback:                 # the default qdisc (net.core.default_qdisc), handle 0
            r.bytes, r.packets = dev.tx_bytes, dev.tx_packets
            _dump_options(dev.default_q, r)
            if dev.speed:                      # a line rate: the default qdisc holds frames
                st = dev.default_q.stats
                r.drops, r.backlog, r.qlen = st["drops"], st["backlog"], dev.default_q.qlen
        out.append(r)
        child = getattr(q, "child", None)
        if child is not None:                  # a qdisc grafted on the root's class 1
            c = Qdisc(dev=dev.name, kind=child.kind, handle=child.handle, parent=q.handle | 1)
            _dump_qdisc(child, c)
            out.append(c)
    return out


def _dump_qdisc(q, r: Qdisc):
    """tc_fill_qdisc(): the options and every counter."""
    st = q.stats
    _dump_options(q, r)
    r.bytes, r.packets, r.drops, r.overlimits = st["bytes"], st["packets"], st["drops"], st["overlimits"]
    r.requeues, r.backlog, r.qlen = st["requeues"], st["backlog"], q.qlen


def _dump_options(q, r: Qdisc):
    """The kind's dump(): its options and xstats."""
    if q.kind == "netem":
        r.netem.CopyFrom(qopt_to_msg(q.opt))
        for k in ("delayed", "dropped", "corrupted", "duplicated", "reordered", "ecn_marked"):
            r.xstats[k] = q.stats[k]
    elif q.kind == "tbf":
        r.tbf.rate, r.tbf.burst, r.tbf.limit = q.rate, q.burst, q.limit
    elif q.kind == "fq_codel":
        o = r.fq_codel
        o.limit, o.flows, o.quantum, o.drop_batch = q.limit, len(q.flows), q.quantum, q.drop_batch_size
        o.target, o.interval, o.noecn = q.target << 10, q.interval << 10, not q.ecn
        for k, v in q.xstats.items():
            r.xstats[k] = v
        r.xstats["new_flows_len"], r.xstats["old_flows_len"] = len(q.new_flows), len(q.old_flows)
    else:
        r.fifo.limit = q.limit
