"""bpftrace's language, the part the one-liners people know are written in,
over pktflow's tracepoints (tracepoints.py): `pktflow bpftrace` runs it, and a
layer applies a block's filter (compile_predicate) before it sends an event.
Pure: program text in; probes, closures, aggregations and the text bpftrace
would print out. No eval: expressions become closures built from the tree.

The subset (anything else is refused, naming what is not supported):

  probes    tracepoint:CATEGORY:NAME (t:..., globs as tracepoint:net:*), several
            on one block separated by commas; interval:s:N, interval:ms:N,
            interval:us:N, interval:hz:N, interval:1s, interval:100ms (i:...);
            BEGIN and END (begin, end)
  filters   /EXPR/ over args.FIELD (args->FIELD), integer and "string" literals,
            == != < <= > >=, && || !, + - * / % & | ^ << >> ~, ( ), str(x), ntop(x)
  actions   @NAME = count() | sum(x) | avg(x) | min(x) | max(x) | hist(x[, k])
            | lhist(x, min, max, step); @NAME[KEY, ...] = ...; @[KEY] = ...;
            printf("fmt", x, ...) (%d %i %u %x %X %o %c %s, flags, width,
            precision, h/l/ll); print(@m[, top[, div]]); clear(@m); zero(@m);
            time(["fmt"]); exit([code])
  values    args.FIELD, literals, probe, nsecs (the event's time), elapsed
            (ns since the start), and the operators above

A field is read by its name in the kernel's format file (args.reason,
args.len, args.snd_cwnd); pktflow's extra fields (netns, ..._us) are read the
same way. An event that lacks a field a filter reads does not match; one that
lacks a field an action reads skips the rest of that block. There are no
processes here: comm, pid, tid, kstack and the like are refused, as are
scalar variables ($x), map reads, if/while, and kprobe/uprobe/... probes.
"""
import fnmatch
import operator
import re

from . import tracepoints
from .bpftrace_maps import AGGREGATIONS

SUPPORTED_PROBES = "tracepoint:CATEGORY:NAME, interval:s:N, BEGIN, END"
_BUILTINS = {"probe": "string", "nsecs": "int64", "elapsed": "int64"}
_NO_SUCH_BUILTINS = frozenset((
    "comm", "pid", "tid", "uid", "gid", "cpu", "cgroup", "curtask", "rand", "kstack", "ustack", "func",
    "retval", "username", "cpid", "jiffies", "numaid", "ncpus", "probetype", "arg0", "arg1", "arg2", "arg3",
    "arg4", "arg5", "sarg0", "sarg1", "sarg2", "ctx", "pcomm", "ppid", "usermode", "__builtin_comm"))
_MAP_CALLS = frozenset(("print", "clear", "zero"))
_CMP = ("==", "!=", "<", "<=", ">", ">=")
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_PREC = (("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
         ("+", "-"), ("*", "/", "%"))
_U64 = (1 << 64) - 1
_NO_MATCH = (LookupError, TypeError)      # a field the event lacks; a string where a number goes


class BpftraceError(ValueError):
    """A program or filter bpftrace would not run here, with where (offsets in the text)."""

    def __init__(self, msg: str, start: int = 0, end: int = 0):
        super().__init__(msg)
        self.msg, self.start, self.end = msg, start, max(end, start + 1)

    def render(self, src: str, name: str = "stdin") -> str:
        """The message, then `name:line:col: ` and the line, with a marker under the place."""
        line_no = src.count("\n", 0, self.start) + 1
        bol = src.rfind("\n", 0, self.start) + 1
        eol = src.find("\n", self.start)
        line = src[bol:eol if eol >= 0 else len(src)]
        col = self.start - bol
        width = max(1, min(self.end, bol + len(line)) - self.start)
        where = f"{name}:{line_no}:{col + 1}: "
        return f"{self.msg}\n{where}{line}\n{' ' * (len(where) + col)}{'~' * width}"


# -- the lexer
_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.S)
_TOKEN = re.compile(r"""
    (?P<num>0[xX][0-9a-fA-F]+|[0-9][0-9_]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<map>@\w*)
  | (?P<var>\$\w+)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<op>->|==|!=|<=|>=|&&|\|\||<<|>>|\+\+|--|\+=|-=|[-+*/%&|^~!<>=(){}\[\],;.:?#])
""", re.X)
_PROBE = re.compile(r"[A-Za-z_]\w*(?::[^\s,{}/:]*)*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v", "e": "\x1b"}


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")


def _unescape(body: str, at: int) -> str:
    """A string literal's escapes, as C's (and bpftrace's): \\n \\t \\" \\\\ \\x41 \\101 ..."""
    def one(m):
        e = m.group(1)
        if e in _ESCAPES:
            return _ESCAPES[e]
        if len(e) > 1 and e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        raise BpftraceError(f"invalid escape sequence '\\{e}' in a string", at + m.start(), at + m.end())
    return _ESCAPE.sub(one, body)


class _Parser:
    """Recursive descent over the text; a token is (kind, text, start, end)."""

    def __init__(self, src: str):
        self.src, self.pos, self._tok, self.no_div = src, 0, None, False

    def peek(self):
        if self._tok is None:
            start = _SPACE.match(self.src, self.pos).end()
            if self.src.startswith("/*", start):
                raise BpftraceError("unterminated comment", start, start + 2)
            if start >= len(self.src):
                self._tok = ("eof", "", start, start)
            else:
                m = _TOKEN.match(self.src, start)
                if m is None:
                    raise BpftraceError(f"syntax error, unexpected character '{self.src[start]}'", start)
                self._tok = (m.lastgroup, m.group(), start, m.end())
        return self._tok

    def take(self):
        tok = self.peek()
        self.pos, self._tok = tok[3], None
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok[0] in ("op", "id") and tok[1] == text

    def expect(self, text: str):
        tok = self.take()
        if tok[1] != text or tok[0] not in ("op", "id"):
            raise BpftraceError(f"syntax error, unexpected {_shown(tok)}, expecting {text}", tok[2], tok[3])
        return tok

    def unexpected(self, tok=None):
        tok = tok or self.peek()
        return BpftraceError(f"syntax error, unexpected {_shown(tok)}", tok[2], tok[3])

    # -- expressions: C's precedence, each level a list of operators
    def expr(self, level: int = 0):
        if level == len(_PREC):
            return self.unary()
        left = self.expr(level + 1)
        while True:
            tok = self.peek()
            if tok[0] != "op" or tok[1] not in _PREC[level] or (tok[1] == "/" and self.no_div):
                return left
            self.take()
            left = ("bin", tok[2], tok[1], left, self.expr(level + 1))

    def unary(self):
        tok = self.peek()
        if tok[0] == "op" and tok[1] in ("!", "-", "~"):
            self.take()
            return ("un", tok[2], tok[1], self.unary())
        if tok[0] == "op" and tok[1] in ("++", "--", "*", "&"):
            raise BpftraceError(f"'{tok[1]}' is not supported in pktflow bpftrace expressions", tok[2], tok[3])
        return self.primary()

    def primary(self):
        tok = self.take()
        kind, text, start, end = tok
        if kind == "num":
            return ("num", start, int(text.replace("_", ""), 0))
        if kind == "str":
            return ("str", start, _unescape(text[1:-1], start + 1))
        if kind == "op" and text == "(":
            saved, self.no_div = self.no_div, False
            node = self.expr()
            self.no_div = saved
            self.expect(")")
            if self.at("?"):
                raise BpftraceError("the ?: operator is not supported", *self.peek()[2:])
            return node
        if kind == "map":
            raise BpftraceError(f"reading a map ({text}) in an expression is not supported", start, end)
        if kind == "var":
            raise BpftraceError(f"scalar variables ({text}) are not supported", start, end)
        if kind != "id":
            raise self.unexpected(tok)
        if text == "args":
            arrow = self.take()
            if arrow[1] not in (".", "->"):
                raise BpftraceError("args: give a field, args.FIELD", start, arrow[3])
            field = self.take()
            if field[0] != "id":
                raise self.unexpected(field)
            return ("field", start, field[1])
        if self.at("("):
            return self.call(tok)
        if text in _BUILTINS:
            return ("builtin", start, text)
        if text in _NO_SUCH_BUILTINS:
            raise BpftraceError(f"{text}: not available in pktflow (no processes or CPUs here); "
                                f"values are args.FIELD, probe, nsecs, elapsed", start, end)
        raise BpftraceError(f"unknown identifier: '{text}'", start, end)

    def call(self, name_tok):
        name, start = name_tok[1], name_tok[2]
        self.expect("(")
        args = []
        saved, self.no_div = self.no_div, False
        while not self.at(")"):
            if args:
                self.expect(",")
            args.append(self.map_ref() if self.peek()[0] == "map" and name in _MAP_CALLS else self.expr())
        self.no_div = saved
        end = self.expect(")")[3]
        return ("call", start, name, args, end)

    def map_ref(self):
        """@name or @name[key, ...]: (name, keys, start, end)."""
        tok = self.take()
        keys = []
        if self.at("["):
            self.take()
            keys.append(self.expr())
            while self.at(","):
                self.take()
                keys.append(self.expr())
            self.expect("]")
        return ("mapref", tok[2], tok[1], keys, self.pos)

    # -- the program
    def program(self):
        blocks = []
        if self.src.startswith("#!"):
            self.pos = self.src.find("\n") if "\n" in self.src else len(self.src)
        while self.peek()[0] != "eof":
            if self.at("config") or self.at("import") or self.at("fn") or self.at("macro") or self.at("struct"):
                tok = self.peek()
                raise BpftraceError(f"{tok[1]}: not supported in pktflow bpftrace", tok[2], tok[3])
            blocks.append(self.block())
        if not blocks:
            raise BpftraceError("no probes: give a program such as 'tracepoint:skb:kfree_skb "
                                "{ @[args.reason] = count(); }'", 0, len(self.src))
        return blocks

    def block(self):
        probes = [self.probe()]
        while self.at(","):
            self.take()
            probes.append(self.probe())
        pred = None
        if self.at("/"):
            self.take()
            self.no_div = True
            start = self.peek()[2]
            pred = self.expr()
            self.no_div = False
            end = self.expect("/")[2]
            pred = (pred, self.src[start:end].strip())
        self.expect("{")
        stmts = []
        while not self.at("}"):
            if self.peek()[0] == "eof":
                raise self.unexpected()
            if self.at(";"):
                self.take()
                continue
            stmts.append(self.statement())
            if not self.at("}"):
                self.expect(";")
        self.take()
        return probes, pred, stmts

    def probe(self):
        start = _SPACE.match(self.src, self.pos).end()
        self._tok = None
        m = _PROBE.match(self.src, start)
        if m is None:
            self.pos = start
            raise self.unexpected()
        self.pos = m.end()
        return parse_probe(m.group(), start)

    def statement(self):
        tok = self.peek()
        if tok[0] == "map":
            ref = self.map_ref()
            op = self.take()
            if op[1] != "=":
                raise BpftraceError(f"{ref[2]}{op[1]}: only map = count(), sum(), avg(), min(), max(), hist(), "
                                    "lhist() is supported", ref[1], op[3])
            value = self.expr()
            if value[0] != "call" or value[2] not in AGGREGATIONS:
                raise BpftraceError(f"assigning a value to {ref[2]} is not supported: use count(), sum(x), "
                                    "avg(x), min(x), max(x), hist(x) or lhist(x, min, max, step)", value[1], self.pos)
            return ("agg", ref, value)
        if tok[0] == "var":
            raise BpftraceError(f"scalar variables ({tok[1]}) are not supported", tok[2], tok[3])
        if tok[0] == "id" and tok[1] in ("if", "while", "for", "unroll", "return", "let", "delete"):
            raise BpftraceError(f"'{tok[1]}' is not supported in pktflow bpftrace", tok[2], tok[3])
        if tok[0] == "id":
            self.take()
            if self.at("("):
                return self.call(tok)
        raise self.unexpected(tok)


def _shown(tok) -> str:
    return "end of file" if tok[0] == "eof" else repr(tok[1]).replace("'", '"') if tok[0] != "str" else "string"


# -- probes
_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def parse_probe(text: str, start: int = 0) -> tuple:
    """("tracepoint", full, [names]) | ("interval", full, period_ns) | ("begin"|"end", full, None)."""
    end = start + len(text)
    provider, _, rest = text.partition(":")
    if provider in ("BEGIN", "begin", "END", "end") and not rest:
        return (provider.lower(), text, None)
    if provider in ("tracepoint", "t"):
        parts = rest.split(":")
        if len(parts) != 2 or not all(parts):
            raise BpftraceError(f"{text}: give tracepoint:CATEGORY:NAME", start, end)
        pattern = ":".join(parts)
        names = [t for t in tracepoints.ALL if fnmatch.fnmatchcase(t, pattern)]
        if not names:
            raise BpftraceError(f"tracepoint:{pattern}: no such tracepoint in pktflow "
                                f"(pktflow bpftrace -l lists them)", start, end)
        return ("tracepoint", f"tracepoint:{pattern}", names)
    if provider in ("interval", "i"):
        return ("interval", f"interval:{rest}", _interval_ns(rest, text, start, end))
    raise BpftraceError(f"{provider}: probes are not supported ({SUPPORTED_PROBES})", start, end)


def _interval_ns(rest: str, text: str, start: int, end: int) -> int:
    m = re.fullmatch(r"(?:(s|ms|us|hz):)?([0-9]+)(s|ms|us|ns|hz)?", rest)
    if m is None or (m.group(1) and m.group(3)) or not int(m.group(2)):
        raise BpftraceError(f"{text}: give interval:s:N, interval:ms:N, interval:us:N, interval:hz:N "
                            "or interval:Ns", start, end)
    unit, n = m.group(1) or m.group(3) or "ns", int(m.group(2))
    return 10**9 // n if unit == "hz" else n * _UNITS[unit]


# -- types and closures
def typeof(node) -> str | None:
    """"int64", "string", or None for a field (known only when an event comes); checks what bpftrace checks."""
    kind = node[0]
    if kind == "field":
        return None
    if kind == "num":
        return "int64"
    if kind == "str":
        return "string"
    if kind == "builtin":
        return _BUILTINS[node[2]]
    if kind == "call":
        for a in node[3]:
            typeof(a)
        return "string"
    if kind == "un":
        t = typeof(node[3])
        if t == "string" and node[2] != "!":
            raise BpftraceError(f"the {node[2]} operator can not be used on a string", node[1])
        return "int64"
    op, lt, rt = node[2], typeof(node[3]), typeof(node[4])
    if op in ("&&", "||"):
        return "int64"
    if lt and rt and lt != rt:
        raise BpftraceError(f"Type mismatch for '{op}': comparing {lt} with {rt}", node[1])
    if "string" in (lt, rt) and op not in ("==", "!="):
        raise BpftraceError(f"The {op} operator can not be used on expressions of type string", node[1])
    return "int64"


def fields_of(node) -> dict:
    """The args fields a tree reads: name -> where it is first read."""
    kind = node[0]
    if kind == "field":
        return {node[2]: node[1]}
    if kind in ("un", "bin", "call", "mapref"):
        subs = node[3:] if kind in ("un", "bin") else node[3]
        out: dict = {}
        for sub in reversed(subs):
            out.update(fields_of(sub))
        return out
    return {}


def _has_builtin(node) -> bool:
    kind = node[0]
    if kind == "builtin":
        return True
    if kind in ("un", "bin"):
        return any(_has_builtin(n) for n in node[3:])
    return kind == "call" and any(_has_builtin(a) for a in node[3])


def _int(v) -> int:
    if isinstance(v, int):
        return v
    raise TypeError(f"{v!r} is not an integer")


def _s64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


def _div(a, b):
    a, b = _int(a), _int(b)
    if b == 0:
        return 0                                   # BPF: division by zero gives 0
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _mod(a, b):
    a, b = _int(a), _int(b)
    return a if b == 0 else a - b * _div(a, b)     # C's remainder; BPF leaves a by 0


def _str(v) -> str:
    return v if isinstance(v, str) else str(v)


def _ntop(v):
    if isinstance(v, int):
        return ".".join(str((v >> s) & 255) for s in (0, 8, 16, 24))     # __be32 as stored
    return v


_ARITH = {
    "+": lambda a, b: _s64(_int(a) + _int(b)), "-": lambda a, b: _s64(_int(a) - _int(b)),
    "*": lambda a, b: _s64(_int(a) * _int(b)), "/": _div, "%": _mod,
    "&": lambda a, b: _int(a) & _int(b), "|": lambda a, b: _int(a) | _int(b), "^": lambda a, b: _int(a) ^ _int(b),
    "<<": lambda a, b: _s64(_int(a) << (_int(b) & 63)), ">>": lambda a, b: (_int(a) & _U64) >> (_int(b) & 63),
}
# field OP constant: one closure, one dict lookup, one comparison (the filter of every watched event)
_FIELD_CONST = {
    "==": lambda f, c: lambda d: d[f] == c, "!=": lambda f, c: _not_equal(f, c),
    "<": lambda f, c: lambda d: d[f] < c, "<=": lambda f, c: lambda d: d[f] <= c,
    ">": lambda f, c: lambda d: d[f] > c, ">=": lambda f, c: lambda d: d[f] >= c,
}


def _not_equal(f: str, c):
    """args.FIELD != literal: a field of the other type (a string, a number) does not match either."""
    cls = type(c)
    return lambda d: (v := d[f]) != c and v.__class__ is cls


_ANY = {
    "==": lambda a, b: lambda d: a(d) == b(d), "!=": lambda a, b: lambda d: a(d) != b(d),
    "<": lambda a, b: lambda d: a(d) < b(d), "<=": lambda a, b: lambda d: a(d) <= b(d),
    ">": lambda a, b: lambda d: a(d) > b(d), ">=": lambda a, b: lambda d: a(d) >= b(d),
}


def _terms(node, op: str) -> list:
    if node[0] == "bin" and node[2] == op:
        return _terms(node[3], op) + _terms(node[4], op)
    return [node]


def _as_bool(node, frame):
    fn = closure(node, frame)
    if node[0] == "un" and node[2] == "!" or node[0] == "bin" and node[2] in _CMP + ("&&", "||"):
        return fn
    return lambda d: bool(fn(d))


def closure(node, frame):
    """The tree as a function of an event's fields (frame: what builtins read; None in a filter)."""
    kind = node[0]
    if kind in ("num", "str"):
        value = node[2]
        return lambda d: value
    if kind == "field":
        return operator.itemgetter(node[2])
    if kind == "builtin":
        name = node[2]
        if frame is None:
            raise BpftraceError(f"{name}: a filter may read args fields and literals only", node[1])
        if name == "probe":
            return lambda d: frame.probe
        if name == "nsecs":
            return lambda d: frame.nsecs
        return lambda d: frame.nsecs - frame.start
    if kind == "call":
        return _call_closure(node, frame)
    if not fields_of(node) and not _has_builtin(node):         # constant: folded once
        value = _closure_raw(node, frame)({})
        return lambda d: value
    return _closure_raw(node, frame)


def _closure_raw(node, frame):
    kind, op = node[0], node[2]
    if kind == "un":
        x = closure(node[3], frame)
        if op == "!":
            return lambda d: not x(d)
        if op == "-":
            return lambda d: _s64(-_int(x(d)))
        return lambda d: _s64(~_int(x(d)))
    left, right = node[3], node[4]
    if op == "&&":
        return _chain(_and_terms(node, frame), True)
    if op == "||":
        return _chain([_as_bool(t, frame) for t in _terms(node, op)], False)
    if op in _CMP:
        _, _, op, left, right = _normal(node)
        if left[0] == "field" and right[0] in ("num", "str"):
            return _FIELD_CONST[op](left[2], right[2])
        return _ANY[op](closure(left, frame), closure(right, frame))
    fn, a, b = _ARITH[op], closure(left, frame), closure(right, frame)
    return lambda d: fn(a(d), b(d))


def _literal(node):
    """A subtree that reads nothing (-1, 1 << 10) as the literal it is worth."""
    if node[0] in ("un", "bin") and not fields_of(node) and not _has_builtin(node):
        value = _closure_raw(node, None)({})
        return ("str" if isinstance(value, str) else "num", node[1], value)
    return node


def _normal(node):
    """A comparison with its constant sides folded and a field on the left (5 < args.len: args.len > 5)."""
    if node[0] != "bin" or node[2] not in _CMP:
        return node
    op, left, right = node[2], _literal(node[3]), _literal(node[4])
    if right[0] == "field" and left[0] in ("num", "str"):
        op, left, right = _MIRROR[op], right, left
    return ("bin", node[1], op, left, right)


def _and_terms(node, frame) -> list:
    """The terms of an && chain as closures; its `args.FIELD == literal` terms
    as one: one itemgetter and one tuple comparison instead of a call each
    (all must hold, so neither the order nor which one raises changes the result)."""
    nodes = [_normal(t) for t in _terms(node, "&&")]
    eq = [t for t in nodes if t[0] == "bin" and t[2] == "==" and t[3][0] == "field" and t[4][0] in ("num", "str")]
    if len(eq) < 2:
        return [_as_bool(t, frame) for t in nodes]
    get, want = operator.itemgetter(*(t[3][2] for t in eq)), tuple(t[4][2] for t in eq)
    return [(lambda d: get(d) == want) if t is eq[0] else _as_bool(t, frame)      # where the first one was
            for t in nodes if t is eq[0] or t not in eq]


def _chain(terms: list, conj: bool):
    if len(terms) == 2:
        a, b = terms
        return (lambda d: a(d) and b(d)) if conj else (lambda d: a(d) or b(d))
    if len(terms) == 3:
        a, b, c = terms
        return (lambda d: a(d) and b(d) and c(d)) if conj else (lambda d: a(d) or b(d) or c(d))
    if conj:
        return lambda d: all(t(d) for t in terms)
    return lambda d: any(t(d) for t in terms)


def _call_closure(node, frame):
    name, args = node[2], node[3]
    if name not in ("str", "ntop") or not 1 <= len(args) <= 2:
        raise BpftraceError(f"{name}(): not supported in an expression (str(x) and ntop(x) are)", node[1], node[4])
    x = closure(args[0], frame)
    if name == "ntop":
        return lambda d: _ntop(x(d))
    if len(args) == 2:
        n = const_int(args[1], "str()'s length")
        return lambda d: str(x(d))[:max(0, n - 1)]
    return lambda d: _str(x(d))


def const_int(node, what: str) -> int:
    if fields_of(node) or _has_builtin(node) or typeof(node) != "int64":
        raise BpftraceError(f"{what} must be an integer literal", node[1])
    return closure(node, None)({})


def parse_program(src: str) -> list:
    """The blocks of a program: (probes, (filter tree, filter text) or None, statements); a probe is
    parse_probe()'s tuple, a statement ("agg", mapref, call) or a call ("call", at, name, args, end)."""
    return _Parser(src).program()


def compile_predicate(text: str):
    """A bpftrace filter (the text between the slashes; the slashes may be
    given) as `fn(fields) -> bool`; ValueError (BpftraceError) naming what is
    wrong. An event lacking a field the filter reads, or whose field is a
    string where the filter has a number, does not match."""
    src = text.strip()
    if len(src) > 1 and src[0] == "/" and src[-1] == "/":
        src = src[1:-1]
    p = _Parser(src)
    if p.peek()[0] == "eof":
        raise BpftraceError("an empty filter", 0, len(src))
    node = p.expr()
    if p.peek()[0] != "eof":
        raise p.unexpected()
    return predicate(node)


def predicate(node):
    """A parsed filter as `fn(fields) -> bool` (compile_predicate's): the
    terms of its && chain called in one function that also catches a missing
    field (LookupError) or a string compared with a number (TypeError): no match."""
    typeof(node)
    terms = _and_terms(node, None)
    if len(terms) == 1:
        a = terms[0]

        def pred(d):
            try:
                return a(d)
            except _NO_MATCH:
                return False
    elif len(terms) == 2:
        a, b = terms

        def pred(d):
            try:
                return a(d) and b(d)
            except _NO_MATCH:
                return False
    elif len(terms) == 3:
        a, b, c = terms

        def pred(d):
            try:
                return a(d) and b(d) and c(d)
            except _NO_MATCH:
                return False
    else:
        def pred(d):
            try:
                return all(t(d) for t in terms)
            except _NO_MATCH:
                return False
    return pred
