"""`tc qdisc` for the link room: iproute2's tc/tc_qdisc.c (the words) and the
kernel's net/sched/sch_api.c (tc_modify_qdisc(), tc_get_qdisc(), the dump),
with their error messages, for root qdiscs: netem, or the default one.

`tc_qdisc(ns, words)` takes what follows `tc qdisc` (with a leading `-s` per
-s given to tc) and returns the lines `tc` would print and the verdicts of what
changed (packets freed with a replaced qdisc, its timer cancelled). A failure
raises TcError with tc's message and exit status: 1 for what tc refuses itself
(a bad option, an unknown device), 2 for what the kernel refuses ("Error: ...").
"""
import errno

from . import sch_netem
from .sch_netem import matches

CREATE, EXCL, REPLACE = 1, 2, 4
PRIOMAP = "bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"
USAGE = ["Usage: tc qdisc [ add | del | replace | change | show ] dev STRING",
         "       [ handle QHANDLE ] root [ netem OPTIONS ]",
         "",
         "       tc qdisc { show | list } [ dev STRING ] [ root | handle QHANDLE ]",
         "OPTIONS := ... try tc qdisc add dev STRING root netem help"]


class TcError(Exception):
    def __init__(self, message: str, exit_code: int = 2, err: int = errno.EINVAL):
        super().__init__(message)
        self.exit_code, self.err = exit_code, err


def _kernel(message: str, err: int):
    """A refusal with an extack message: tc prints "Error: <message>." and exits 2."""
    return TcError(f"Error: {message}.", 2, err)


def _handle(text: str) -> int:
    """get_qdisc_handle(): `1:`, `8001` (hex), or `none`."""
    if text == "none":
        return 0
    head, _, rest = text.partition(":")
    try:
        major = int(head, 16)
    except ValueError:
        major = -1
    if not 0 <= major < 1 << 16 or rest:
        raise TcError(f'Error: argument "{text}" is wrong: invalid qdisc ID', 255)
    return major << 16


def tc_qdisc(ns, words: list[str]) -> tuple[list[str], list]:
    stats = 0
    while words and words[0] == "-s":
        stats, words = stats + 1, words[1:]
    if not words or any(matches(words[0], c) for c in ("list", "show", "lst")):
        return _show(ns, words[1:], stats), []
    op, rest = words[0], words[1:]
    if matches(op, "help"):
        return USAGE, []
    for name, flags in (("add", CREATE | EXCL), ("change", 0), ("replace", CREATE | REPLACE), ("delete", None)):
        if matches(op, name):
            return [], _modify(ns, rest, flags)
    raise TcError(f'Command "{op}" is unknown, try "tc qdisc help".', 255)


def _words(rest: list[str]) -> tuple[str | None, bool, int, str | None, list[str]]:
    """tc_qdisc_modify()'s loop: dev, root, handle, then the kind and its options."""
    dev, root, handle, kind = None, False, 0, None
    i = 0
    while i < len(rest):
        w = rest[i]
        if w in ("dev", "handle"):
            if i + 1 >= len(rest):
                raise TcError('Command line is not complete. Try option "help"', 255)
            i += 1
            if w == "dev":
                dev = rest[i]
            else:
                handle = _handle(rest[i])
        elif w == "root":
            if root:
                raise TcError('Error: "root" is duplicate parent ID', 255)
            root = True
        elif w in ("parent", "ingress", "clsact") or matches(w, "estimator") or matches(w, "stab"):
            raise TcError(f'"{w}": pktflow has only root qdiscs', 1, errno.EOPNOTSUPP)
        else:
            kind = w
            return dev, root, handle, kind, rest[i + 1:]
        i += 1
    return dev, root, handle, kind, []


def _device(ns, name: str | None):
    if name is None:                           # ifindex 0: the kernel finds no device
        raise TcError("RTNETLINK answers: No such device", 2, errno.ENODEV)
    dev = next((d for d in ns.devices.values() if d.name == name), None)
    if dev is None:
        raise TcError(f'Cannot find device "{name}"', 1, errno.ENODEV)
    return dev


def qdisc_kind(dev) -> str:
    return dev.qdisc.kind if dev.qdisc is not None else "noqueue" if dev.loopback else "pfifo_fast"


def _modify(ns, rest: list[str], flags: int | None) -> list:
    dev_name, root, handle, kind, options = _words(rest)
    opt = None
    if kind == "netem":                        # tc parses the options before it looks the device up
        try:
            opt = sch_netem.parse(options)
        except ValueError as e:                # tc follows some refusals with its usage
            usage = str(e).startswith(("What is", "reordering", "gap")) and "\n" + sch_netem.USAGE or ""
            raise TcError(str(e) + usage, 1) from None
    elif kind is not None and flags is not None:
        raise TcError(f'qdisc "{kind}" is not supported by pktflow (netem is)', 1, errno.EOPNOTSUPP)
    dev = _device(ns, dev_name)
    if flags is None:
        return _delete(ns, dev, root, handle, kind)
    q = dev.qdisc                              # None: the default qdisc, handle 0, "ignored"
    if root:
        if q is None or not handle or q.handle != handle:
            if handle and q is not None and not flags & REPLACE:
                raise _kernel("NLM_F_REPLACE needed to override", errno.EEXIST)
            if handle or q is None:            # only root qdiscs here: a handle not the root's is not found
                return _create(ns, dev, flags, handle, opt)
    else:
        if not handle:
            raise _kernel("Handle cannot be zero", errno.EINVAL)
        q = q if q is not None and q.handle == handle else None
    if q is None:
        raise _kernel("Specified qdisc not found", errno.ENOENT)
    if flags & EXCL:
        raise _kernel("Exclusivity flag on, cannot modify", errno.EEXIST)
    if kind is not None and kind != q.kind:
        raise _kernel("Invalid qdisc name", errno.EINVAL)
    if opt is not None:
        q.change(opt)
    return []


def _create(ns, dev, flags: int, handle: int, opt) -> list:
    if not flags & CREATE:
        raise _kernel("Qdisc not found. To create specify NLM_F_CREATE flag", errno.ENOENT)
    if opt is None:
        raise _kernel("Specified qdisc kind is unknown", errno.ENOENT)
    return ns.qdisc_graft(dev, ns.new_netem(opt, handle))


def _delete(ns, dev, root: bool, handle: int, kind: str | None) -> list:
    """tc_get_qdisc() for RTM_DELQDISC, in its order of checks."""
    current = dev.qdisc.handle if dev.qdisc is not None else 0
    if not root:
        if handle != current:
            raise _kernel("Failed to find qdisc with specified handle", errno.ENOENT)
    elif handle and handle != current:
        raise _kernel("Invalid handle", errno.EINVAL)
    if kind is not None and kind != qdisc_kind(dev):
        raise _kernel("Invalid qdisc name", errno.EINVAL)
    if not root:
        raise _kernel("Classid cannot be zero", errno.EINVAL)
    if dev.qdisc is None:
        raise _kernel("Cannot delete qdisc with handle of zero", errno.ENOENT)
    return ns.qdisc_graft(dev, None)


def _show(ns, rest: list[str], stats: int) -> list[str]:
    """tc_qdisc_list() + print_qdisc(): one line per device's root qdisc, `-s` adds the counters."""
    dev_name, handle = None, None
    i = 0
    while i < len(rest):
        w = rest[i]
        if w in ("dev", "handle") or matches(w, "parent"):
            if i + 1 >= len(rest):
                raise TcError('Command line is not complete. Try option "help"', 255)
            i += 1
            if w == "dev":
                dev_name = rest[i]
            elif w == "handle":
                handle = _handle(rest[i])
            else:
                return []                      # only root qdiscs: no child has this parent
        elif w in ("ingress", "clsact"):
            return []
        elif w not in ("root", "invisible"):
            raise TcError(f'What is "{w}"? Try "tc qdisc help".', 255)
        i += 1
    devs = [_device(ns, dev_name)] if dev_name is not None else sorted(ns.devices.values(), key=lambda d: d.ifindex)
    lines = []
    for dev in devs:
        q = dev.qdisc
        h = q.handle if q is not None else 0
        if handle is not None and handle != h:
            continue
        options = q.options() if q is not None else "" if dev.loopback else PRIOMAP
        where = "" if dev_name is not None else f"dev {dev.name} "
        lines.append(f"qdisc {qdisc_kind(dev)} {h >> 16:x}: {where}root refcnt 2 {options}")
        if stats:
            lines += _stats(dev)
    return lines


def _stats(dev) -> list[str]:
    """print_tcstats_attr() and netem_print_xstats()."""
    if dev.qdisc is not None:
        st = dev.qdisc.stats
        qlen = dev.qdisc.qlen
    else:                                      # noqueue counts nothing
        st = dict.fromkeys(("drops", "overlimits", "requeues", "backlog"), 0)
        st["bytes"], st["packets"] = (0, 0) if dev.loopback else (dev.tx_bytes, dev.tx_packets)
        qlen = 0
    out = [(f" Sent {st['bytes']} bytes {st['packets']} pkt (dropped {st['drops']}, "
            f"overlimits {st['overlimits']} requeues {st['requeues']}) "),
           f" backlog {sprint_size(st['backlog'])} {qlen}p requeues {st['requeues']}"]
    if dev.qdisc is not None:
        out.append(f"  delayed {st['delayed']} dropped {st['dropped']} corrupted {st['corrupted']} "
                   f"duplicated {st['duplicated']} reordered {st['reordered']} ecn_marked {st['ecn_marked']}")
    return out


def sprint_size(size: int) -> str:
    """sprint_size(): 1514b, 3Kb, 2Mb ... (a unit only when it is nearly exact)."""
    for scale, unit, slack in ((1 << 30, "Gb", 1024), (1 << 20, "Mb", 1024), (1 << 10, "Kb", 16)):
        if size >= scale and abs(scale * round(size / scale) - size) < slack:
            return f"{round(size / scale):g}{unit}"
    return f"{size}b"
