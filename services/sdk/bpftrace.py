"""`pktflow bpftrace`: bpftrace's one-liners over pktflow's tracepoints.

    pktflow bpftrace [-n NETNS] [-q] [-c COMMAND] -e PROGRAM
    pktflow bpftrace [-n NETNS] [-q] [-c COMMAND] FILE        (FILE - : the program from stdin)
    pktflow bpftrace -l [PATTERN] [-v]

The language is the subset services/common/bpftrace_lang.py describes; a
program outside it is refused with what is not supported. The tracepoint
blocks are watched through the Watch RPC (_client.watch), one watch per
distinct filter, which the layers apply before they send anything; the maps
live here, in user space, as bpftrace's user space prints them
(services/common/bpftrace_maps.py). It runs until Ctrl-C, exit(), or the end
of -c's COMMAND, then runs END and prints the maps. As bpftrace 0.24 and
later, "Attached N probes" goes to stderr (-q: not at all); older releases
printed "Attaching N probes..." on stdout.
"""
import fnmatch
import re
import shlex
import signal
import subprocess
import sys
import time

from .services.common import tracepoints
from .services.common.bpftrace_lang import (BpftraceError, closure, const_int, fields_of, parse_program, predicate,
                                            typeof)
from .services.common.bpftrace_maps import AGGREGATIONS, Map, print_all

USAGE = ("usage: pktflow bpftrace [-n NETNS] [-q] [-c COMMAND] -e PROGRAM | FILE\n"
         "       pktflow bpftrace -l [PATTERN] [-v]")
_STATEMENTS = "printf, print, clear, zero, time, exit"


class _Exit(Exception):
    """exit(): the rest of the block does not run."""


class Frame:
    """What the actions of the probe running now see, and where they write."""
    __slots__ = ("probe", "nsecs", "start", "out", "now", "exit_code")

    def __init__(self, out, now):
        self.probe, self.nsecs, self.start, self.out, self.now, self.exit_code = "", 0, 0, out, now, None


class Block:
    __slots__ = ("probes", "events", "filter", "pred", "stmts")

    def __init__(self, probes, filter_text, pred, stmts):
        self.probes, self.filter, self.pred, self.stmts = probes, filter_text, pred, stmts
        self.events = frozenset(n for p in probes if p[0] == "tracepoint" for n in p[2])


class Program:
    """A program compiled: its blocks as closures over its maps. `out(text)`
    writes what printf, print and time print; `now()` is the wall clock time() reads."""

    def __init__(self, src: str, out=None, now=time.time):
        self.maps: dict[str, Map] = {}
        self.frame = Frame(out or (lambda text: None), now)
        self._used: list = []                 # (map name, where) that print/clear/zero name
        self.blocks = [self._block(*b) for b in parse_program(src)]
        for name, at in self._used:
            if name not in self.maps:
                raise BpftraceError(f"Undefined map: {name}", at)
        self._by_event: dict[str, list] = {}
        for b in self.blocks:
            for name in sorted(b.events):
                self._by_event.setdefault(name, []).append(b)

    # -- compiling
    def _block(self, probes, pred, stmts) -> Block:
        reads = [pred[0]] if pred else []
        for s in stmts:
            reads += s[1:3] if s[0] == "agg" else [s]
        read_at = [at for r in reads for at in fields_of(r).values()]
        if read_at and any(p[0] != "tracepoint" for p in probes):
            other = next(p[1] for p in probes if p[0] != "tracepoint")
            raise BpftraceError(f"args: only tracepoint probes have args ({other} has none)", min(read_at),
                                min(read_at) + 4)
        return Block(probes, pred[1] if pred else "", predicate(pred[0]) if pred else None,
                      [self._statement(s) for s in stmts])

    def _statement(self, stmt):
        if stmt[0] == "agg":
            return self._aggregation(stmt[1], stmt[2])
        _, at, name, args, end = stmt
        if name in AGGREGATIONS:
            raise BpftraceError(f"{name}() must be assigned to a map: @x = {name}(...)", at, end)
        handler = {"printf": self._printf, "print": self._map_call, "clear": self._map_call,
                   "zero": self._map_call, "exit": self._exit, "time": self._time}.get(name)
        if handler is None:
            raise BpftraceError(f"{name}(): not supported in pktflow bpftrace (statements: {_STATEMENTS}, "
                                f"@map = {'/'.join(AGGREGATIONS)}())", at, end)
        return handler(name, args, at, end)

    def _aggregation(self, ref, call):
        _, at, name, keys, _ = ref
        _, cat, fn, args, cend = call
        lo, hi = AGGREGATIONS[fn]
        if not lo <= len(args) <= hi:
            raise BpftraceError(f"{fn}() takes {lo if lo == hi else f'{lo} to {hi}'} argument"
                                f"{'' if hi == 1 else 's'}, {len(args)} given", cat, cend)
        for a in args:
            if typeof(a) == "string":
                raise BpftraceError(f"{fn}() expects an integer, not a string", a[1])
        params = ()
        if fn == "hist":
            params = (const_int(args[1], "hist()'s bits") if len(args) > 1 else 0,)
            if not 0 <= params[0] <= 5:
                raise BpftraceError("hist(): bits must be between 0 and 5", args[1][1])
        elif fn == "lhist":
            params = tuple(const_int(a, f"lhist()'s {w}") for a, w in zip(args[1:], ("min", "max", "step")))
            if params[2] < 1 or params[1] <= params[0]:
                raise BpftraceError("lhist(): step must be >= 1 and max greater than min", cat, cend)
        m = self.maps.get(name)
        if m is None:
            m = self.maps[name] = Map(name, fn, params, len(keys))
        elif m.kind != fn:
            raise BpftraceError(f"Type mismatch for {name}: trying to assign value of type '{Map(name, fn).type_name}' "
                                f"when map already contains a value of type '{m.type_name}'", cat, cend)
        elif m.nkeys != len(keys):
            raise BpftraceError(f"Argument mismatch for {name}: trying to access with {len(keys)} arguments "
                                f"when map expects {m.nkeys} arguments", at)
        elif m.params != params:
            raise BpftraceError(f"{name}: {fn}() with other arguments than before", cat, cend)
        for k in keys:
            typeof(k)
        fns = [closure(k, self.frame) for k in keys]
        if not fns:
            key = _none
        elif len(fns) == 1:
            key = fns[0]
        else:
            key = lambda d: tuple(f(d) for f in fns)             # noqa: E731
        return m.updater(key, closure(args[0], self.frame) if args else None)

    def _printf(self, name, args, at, end):
        if not args or args[0][0] != "str":
            raise BpftraceError("printf: the first argument must be a string literal", at, end)
        for a in args[1:]:
            typeof(a)
        parts = printf_parts(args[0][2], at, len(args) - 1)
        values = [closure(a, self.frame) for a in args[1:]]
        frame = self.frame
        return lambda d: frame.out(printf_format(parts, [v(d) for v in values]))

    def _map_call(self, name, args, at, end):
        ref = args[0] if args else None
        if ref is None or ref[0] != "mapref" or ref[3] or (name != "print" and len(args) > 1) or len(args) > 3:
            usage = "print(@map[, top[, div]])" if name == "print" else f"{name}(@map)"
            raise BpftraceError(f"{name}(): give a map: {usage}", at, end)
        self._used.append((ref[2], ref[1]))
        maps, map_name, frame = self.maps, ref[2], self.frame
        if name == "print":
            top, div = _print_args(args)
            return lambda d: frame.out(maps[map_name].text(top, div))
        return lambda d: getattr(maps[map_name], name)()

    def _exit(self, name, args, at, end):
        code = const_int(args[0], "exit()'s code") if args else 0
        frame = self.frame

        def stop(d):
            frame.exit_code = code
            raise _Exit
        return stop

    def _time(self, name, args, at, end):
        if args and args[0][0] != "str":
            raise BpftraceError("time(): the format must be a string literal", at, end)
        fmt, frame = args[0][2] if args else "%H:%M:%S\n", self.frame
        return lambda d: frame.out(time.strftime(fmt, time.localtime(frame.now())))

    # -- what to attach
    def attach_count(self) -> int:
        """bpftrace's "Attached N probes": every tracepoint a probe matched, and each other probe."""
        return sum(len(p[2]) if p[0] == "tracepoint" else 1 for b in self.blocks for p in b.probes)

    def groups(self) -> list[tuple[list[str], str, list[Block]]]:
        """(tracepoints, filter, blocks) to watch: one watch per distinct filter text."""
        out: dict[str, list] = {}
        for b in self.blocks:
            if b.events:
                out.setdefault(b.filter, []).append(b)
        return [(sorted(set().union(*(b.events for b in bs))), f, bs) for f, bs in out.items()]

    def intervals(self) -> list[tuple[int, str, Block]]:
        """(period in ns, probe, block) of each interval probe."""
        return [(p[2], p[1], b) for b in self.blocks for p in b.probes if p[0] == "interval"]

    # -- running
    @property
    def exit_code(self):
        return self.frame.exit_code

    def start(self, t_ns: int):
        self.frame.start = t_ns

    def begin(self, t_ns: int = 0):
        self._special("begin", t_ns)

    def end(self, t_ns: int = 0):
        code, self.frame.exit_code = self.frame.exit_code, None       # END runs after exit() too
        self._special("end", t_ns)
        self.frame.exit_code = code if self.frame.exit_code is None else self.frame.exit_code

    def _special(self, kind: str, t_ns: int):
        for b in self.blocks:
            for p in b.probes:
                if p[0] == kind and self.frame.exit_code is None:
                    self._fire(b, p[1], t_ns, {})

    def interval(self, block: Block, probe: str, t_ns: int):
        if self.frame.exit_code is None:
            self._fire(block, probe, t_ns, {})

    def event(self, name: str, fields: dict, time_ns: int = 0, netns: str = "", blocks=None):
        """One tracepoint event through the blocks that watch it (those of `blocks`, when given)."""
        frame = self.frame
        if frame.exit_code is not None:
            return
        if netns and "netns" not in fields:
            fields = {**fields, "netns": netns}
        probe = "tracepoint:" + name
        for b in self._by_event.get(name, ()) if blocks is None else blocks:
            if name in b.events:
                self._fire(b, probe, time_ns, fields)
                if frame.exit_code is not None:
                    return

    def _fire(self, block: Block, probe: str, t_ns: int, d: dict):
        if block.pred is not None and not block.pred(d):
            return
        frame = self.frame
        frame.probe, frame.nsecs = probe, t_ns
        try:
            for stmt in block.stmts:
                stmt(d)
        except _Exit:
            pass
        except (LookupError, TypeError):       # a field this event lacks, a string where a number goes
            pass

    def finish(self) -> str:
        """What bpftrace prints as it ends: a blank line and every map."""
        return print_all(self.maps.values())


def _none(d):
    return None


def _print_args(args) -> tuple[int, int]:
    top = const_int(args[1], "print()'s top") if len(args) > 1 else 0
    div = const_int(args[2], "print()'s div") if len(args) > 2 else 1
    return top, div


# -- printf, formatted here as bpftrace formats it in user space
_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d+))?(?:hh|h|ll|l|z|j|t)?(?P<conv>.?)")
_U64 = (1 << 64) - 1


def printf_parts(fmt: str, at: int = 0, nargs: int = 0) -> list:
    """fmt as [text, (spec, conversion), text, ...]; BpftraceError as bpftrace refuses a format."""
    parts, i = [], 0
    for m in _SPEC.finditer(fmt):
        parts.append(fmt[i:m.start()])
        i = m.end()
        if m.group() == "%%":
            parts[-1] += "%"
            continue
        conv = m.group("conv")
        if not conv or conv not in "diouxXcs":
            raise BpftraceError(f"printf: Unknown format string token: {m.group()}", at)
        prec = f".{m.group('prec')}" if m.group("prec") else ""
        parts.append((f"%{m.group('flags')}{m.group('width')}{prec}", conv))
    parts.append(fmt[i:])
    # the literal text between specs: merge what "%%" split
    merged = [parts[0]]
    for p in parts[1:]:
        if isinstance(p, str) and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    want = len(merged) // 2
    if nargs != want:
        many = "Too many" if nargs > want else "Not enough"
        raise BpftraceError(f"printf: {many} arguments for format string ({nargs} supplied, {want} expected)", at)
    return merged


def printf_format(parts: list, values) -> str:
    out = [parts[0]]
    for (spec, conv), text, v in zip(parts[1::2], parts[2::2], values):
        if isinstance(v, bool):
            v = ("true" if v else "false") if conv == "s" else int(v)
        if isinstance(v, str):
            conv = "s"
        elif conv in "uxXo" and v < 0:
            v &= _U64
        out.append((spec + ("d" if conv == "u" else conv)) % v)
        out.append(text)
    return "".join(out)


# -- the command
def cmd_bpftrace(argv: list[str]) -> int:
    opts = _options(argv)
    if opts is None:
        print(USAGE, file=sys.stderr)
        return 1
    if opts["list"]:
        return list_probes(opts["pattern"], opts["verbose"])
    src, name = opts["program"], "stdin"
    if src is None:
        name = opts["file"]
        try:
            src = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        except OSError as e:
            print(f"pktflow bpftrace: {name}: {e.strerror}", file=sys.stderr)
            return 1

    def write(text: str):
        sys.stdout.write(text)
        sys.stdout.flush()
    try:
        prog = Program(src, out=write)
    except BpftraceError as e:
        print(f"pktflow bpftrace: {e.render(src, name)}", file=sys.stderr)
        return 1
    return run(prog, opts["netns"], opts["command"], opts["quiet"])


def _options(argv: list[str]):
    opts = {"list": False, "verbose": False, "quiet": False, "netns": "", "command": None, "program": None,
            "file": None, "pattern": "*"}
    words = list(argv)
    while words:
        w = words.pop(0)
        if w in ("-e", "-n", "-c") and words:
            opts[{"-e": "program", "-n": "netns", "-c": "command"}[w]] = words.pop(0)
        elif w in ("-l", "-v", "-q", "-lv"):
            for c in w[1:]:
                opts[{"l": "list", "v": "verbose", "q": "quiet"}[c]] = True
        elif w == "-" or not w.startswith("-"):
            if opts["list"]:
                opts["pattern"] = w
            elif opts["file"] is None and opts["program"] is None:
                opts["file"] = w
            else:
                return None
        else:
            return None
    if not opts["list"] and (opts["program"] is None) == (opts["file"] is None):
        return None
    return opts


def list_probes(pattern: str, verbose: bool) -> int:
    """bpftrace -l [-v]: the tracepoints pktflow has (and their fields)."""
    provider, _, rest = pattern.partition(":")
    if provider in ("t", "tracepoint"):
        pattern = f"tracepoint:{rest}"
    elif rest:
        pattern = f"tracepoint:{pattern}"                 # net:* as tracepoint:net:*
    elif not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    for tp in tracepoints.ALL:
        if fnmatch.fnmatchcase(f"tracepoint:{tp}", pattern):
            print(f"tracepoint:{tp}")
            if verbose:
                for field in tracepoints.FIELDS[tp]:
                    print(f"    {field}")
    return 0


def run(prog: Program, netns: str = "", command: str | None = None, quiet: bool = False) -> int:
    """Watch, run BEGIN, feed the events and intervals until Ctrl-C, exit() or COMMAND's end; END; the maps."""
    from . import _client
    signal.signal(signal.SIGTERM, signal.default_int_handler)      # bpftrace ends the same way on SIGTERM
    watches = []
    try:
        for events, filter_text, blocks in prog.groups():
            watches.append((_client.watch(events, netns, filter_text), blocks))
    except OSError as e:
        for w, _ in watches:
            w.close()
        print(f"pktflow bpftrace: {str(e.strerror or e).removeprefix('pktflow: ')}", file=sys.stderr)
        return 1
    if not quiet:
        n = prog.attach_count()
        print(f"Attached {n} probe{'' if n == 1 else 's'}", file=sys.stderr, flush=True)
    prog.start(time.time_ns())
    proc = None
    try:
        prog.begin(time.time_ns())
        proc = subprocess.Popen(shlex.split(command)) if command else None
        _loop(prog, watches, proc)
    except KeyboardInterrupt:
        pass
    finally:
        for w, _ in watches:
            w.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
    prog.end(time.time_ns())
    prog.frame.out(prog.finish())
    lost = sum(sum(w.lost.values()) for w, _ in watches)
    if lost:
        print(f"WARNING: Total lost event count: {lost}", file=sys.stderr)
    return prog.exit_code or 0


def _loop(prog: Program, watches: list, proc):
    ticks = [[time.monotonic() + period / 1e9, period / 1e9, probe, block]
             for period, probe, block in prog.intervals()]
    if not (watches or ticks or proc):
        return                                   # BEGIN and END only: bpftrace runs them and ends
    last = False
    while prog.exit_code is None:
        now = time.monotonic()
        timeout = max(0.0, min([0.2] + [t[0] - now for t in ticks]))
        got = []
        for i, (w, blocks) in enumerate(watches):
            got += [(ev, blocks) for ev in w.poll(timeout if i == 0 else 0)]
        if not watches:
            time.sleep(timeout)
        got.sort(key=lambda e: e[0][0])
        for (t, ns, _layer, name, fields), blocks in got:
            prog.event(name, fields, t, ns, blocks)
        now = time.monotonic()
        for tick in ticks:
            while tick[0] <= now and prog.exit_code is None:
                prog.interval(tick[3], tick[2], time.time_ns())
                tick[0] += tick[1]
        if last:
            return
        last = proc is not None and proc.poll() is not None      # one more look: what its last packets set off
