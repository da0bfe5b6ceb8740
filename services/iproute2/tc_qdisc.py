"""`tc qdisc` in user space (iproute2's tc/tc_qdisc.c): the words after
`qdisc` become the typed request the kernel takes (TcQdiscRequest), and the
kernel's answer becomes tc's lines, or its error message and exit status: 1
or 255 for what tc refuses itself (a bad option, an unknown device), 2 for
what the kernel refuses ("Error: <extack>.").

`tc_qdisc(words, kernel)`: `kernel(request)` returns (errno, extack, [Qdisc])."""
import errno

from pktflow.v1.admin_pb2 import TcQdiscRequest

from ..common.pkt_sched import qopt_from_msg, qopt_to_msg
from . import q_netem, q_sched
from .tc_util import matches, sprint_size

USAGE = ["Usage: tc qdisc [ add | del | replace | change | show ] dev STRING",
         "       [ handle QHANDLE ] root [ netem | tbf | fq_codel | pfifo | bfifo | pfifo_fast OPTIONS ]",
         "",
         "       tc qdisc { show | list } [ dev STRING ] [ root | handle QHANDLE ]",
         "OPTIONS := ... try tc qdisc add dev STRING root netem help"]
COMMANDS = (("add", TcQdiscRequest.ADD), ("change", TcQdiscRequest.CHANGE), ("replace", TcQdiscRequest.REPLACE),
            ("delete", TcQdiscRequest.DELETE))


class TcError(Exception):
    def __init__(self, message: str, exit_code: int = 2, err: int = errno.EINVAL):
        super().__init__(message)
        self.exit_code, self.err = exit_code, err


def tc_qdisc(words: list[str], kernel) -> list[str]:
    """`tc [-s]... qdisc WORDS`: the lines tc prints, or TcError."""
    stats = 0
    while words and words[0] == "-s":
        stats, words = stats + 1, words[1:]
    if not words or any(matches(words[0], c) for c in ("list", "show", "lst")):
        return _show(words[1:], stats, kernel)
    op, rest = words[0], words[1:]
    if matches(op, "help"):
        return USAGE
    for name, cmd in COMMANDS:
        if matches(op, name):
            _ask(kernel, modify_request(cmd, rest))
            return []
    raise TcError(f'Command "{op}" is unknown, try "tc qdisc help".', 255)


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


def _classid(text: str) -> int:
    """get_tc_classid(): `MAJ:MIN` in hex."""
    major, sep, minor = text.partition(":")
    try:
        value = (int(major or "0", 16) << 16) | int(minor or "0", 16)
    except ValueError:
        value = -1
    if not sep or not 0 <= value < 1 << 32:
        raise TcError(f'Error: argument "{text}" is wrong: Invalid parent ID', 255)
    return value


def modify_request(cmd: int, rest: list[str]) -> TcQdiscRequest:
    """tc_qdisc_modify()'s loop: dev, root, handle, then the kind and its
    options, which tc reads before it looks the device up."""
    req = TcQdiscRequest(cmd=cmd)
    i = 0
    while i < len(rest):
        w = rest[i]
        if w in ("dev", "handle"):
            if i + 1 >= len(rest):
                raise TcError('Command line is not complete. Try option "help"', 255)
            i += 1
            if w == "dev":
                req.dev = rest[i]
            else:
                req.handle = _handle(rest[i])
        elif w == "root":
            if req.root:
                raise TcError('Error: "root" is duplicate parent ID', 255)
            req.root = True
        elif w == "parent":
            if i + 1 >= len(rest):
                raise TcError('Command line is not complete. Try option "help"', 255)
            i += 1
            req.parent = _classid(rest[i])
        elif w in ("ingress", "clsact") or matches(w, "estimator") or matches(w, "stab"):
            raise TcError(f'"{w}": pktflow has root qdiscs and their classes\' children only', 1, errno.EOPNOTSUPP)
        else:
            req.kind = w
            _options(req, rest[i + 1:])
            break
        i += 1
    return req


def _options(req: TcQdiscRequest, options: list[str]):
    if req.kind == "netem":
        try:
            req.netem.CopyFrom(qopt_to_msg(q_netem.parse(options)))
        except ValueError as e:                # tc follows some refusals with its usage
            usage = str(e).startswith(("What is", "reordering", "gap")) and "\n" + q_netem.USAGE or ""
            raise TcError(str(e) + usage, 1) from None
    elif req.kind in q_sched.KINDS:
        try:
            q_sched.parse(req, options)
        except ValueError as e:
            raise TcError(str(e), 1) from None
    elif req.cmd != TcQdiscRequest.DELETE:
        raise TcError(f'qdisc "{req.kind}" is not supported by pktflow (netem, {", ".join(q_sched.KINDS)} are)',
                      1, errno.EOPNOTSUPP)


def _ask(kernel, req: TcQdiscRequest) -> list:
    err, extack, qdiscs = kernel(req)
    if err == errno.ENODEV and req.dev:        # ll_name_to_index() found nothing
        raise TcError(f'Cannot find device "{req.dev}"', 1, err)
    if err == errno.ENODEV and not extack:
        raise TcError("RTNETLINK answers: No such device", 2, err)
    if err:
        raise TcError(f"Error: {extack}.", 2, err)
    return qdiscs


def _show(rest: list[str], stats: int, kernel) -> list[str]:
    """tc_qdisc_list() + print_qdisc(): one line per device's root qdisc, `-s` adds the counters."""
    req, handle = TcQdiscRequest(cmd=TcQdiscRequest.SHOW), None
    i = 0
    while i < len(rest):
        w = rest[i]
        if w in ("dev", "handle") or matches(w, "parent"):
            if i + 1 >= len(rest):
                raise TcError('Command line is not complete. Try option "help"', 255)
            i += 1
            if w == "dev":
                req.dev = rest[i]
            elif w == "handle":
                handle = _handle(rest[i])
            else:
                return []                      # only root qdiscs: no child has this parent
        elif w in ("ingress", "clsact"):
            return []
        elif w not in ("root", "invisible"):
            raise TcError(f'What is "{w}"? Try "tc qdisc help".', 255)
        i += 1
    lines = []
    for q in _ask(kernel, req):
        if handle is not None and handle != q.handle:
            continue
        options = q_netem.format_qopt(qopt_from_msg(q.netem)) if q.kind == "netem" else \
            q_sched.format(q) if q.kind in q_sched.KINDS else ""
        where = "" if req.dev else f"dev {q.dev} "
        at = f"parent {q.parent >> 16:x}:{q.parent & 0xFFFF:x} " if q.parent else "root refcnt 2 "
        lines.append(f"qdisc {q.kind} {q.handle >> 16:x}: {where}{at}{options}")
        if stats:
            lines += _stats(q)
    return lines


def _stats(q) -> list[str]:
    """print_tcstats_attr() and netem_print_xstats()."""
    out = [(f" Sent {q.bytes} bytes {q.packets} pkt (dropped {q.drops}, "
            f"overlimits {q.overlimits} requeues {q.requeues}) "),
           f" backlog {sprint_size(q.backlog)} {q.qlen}p requeues {q.requeues}"]
    if q.kind == "netem":
        x = q.xstats
        out.append(f"  delayed {x['delayed']} dropped {x['dropped']} corrupted {x['corrupted']} "
                   f"duplicated {x['duplicated']} reordered {x['reordered']} ecn_marked {x['ecn_marked']}")
    return out + q_sched.format_xstats(q)
