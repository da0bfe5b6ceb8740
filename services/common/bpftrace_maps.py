"""The maps of `pktflow bpftrace` (count, sum, avg, min, max, hist, lhist) and
their text, as bpftrace prints them (0.24 and later, src/output/text.cpp and
src/types_format.cpp): `@name[key]: value` lines sorted by value ascending,
histograms sorted by their total, log2 and linear histograms with bpftrace's
bucket labels (`[4, 8)`, `[1K, 2K)`, `[0]`, `(..., 0)`, `[100, ...)`) and
bars of at most 52 `@`. Pure: values in, text out.
"""
import struct

# the map functions and how many arguments each takes (min, max)
AGGREGATIONS = {"count": (0, 0), "sum": (1, 1), "avg": (1, 1), "min": (1, 1), "max": (1, 1), "hist": (1, 2),
                "lhist": (4, 4)}
_TYPE = {"count": "count_t", "sum": "sum_t", "avg": "avg_t", "min": "min_t", "max": "max_t", "hist": "hist_t",
         "lhist": "lhist_t"}
BAR = 52


class Map:
    """One map: its aggregation, its fixed arguments (hist's k; lhist's min,
    max, step), how many keys it takes (0: a scalar, printed `@name: v`), and
    its values by key (a key is the value, a tuple for several, None for a scalar)."""
    __slots__ = ("name", "kind", "params", "nkeys", "data")

    def __init__(self, name: str, kind: str, params: tuple = (), nkeys: int = 0):
        self.name, self.kind, self.params, self.nkeys = name, kind, params, nkeys
        self.data: dict = {}

    @property
    def type_name(self) -> str:
        return _TYPE[self.kind]

    def updater(self, key, value):
        """`fn(fields)` that adds one event's value (value(fields); None for count) under key(fields)."""
        data, kind = self.data, self.kind
        if kind == "count":
            def update(d):
                k = key(d)
                data[k] = data.get(k, 0) + 1
        elif kind == "sum":
            def update(d):
                v, k = _int(value(d)), key(d)
                data[k] = data.get(k, 0) + v
        elif kind in ("min", "max"):
            better = min if kind == "min" else max

            def update(d):
                v, k = _int(value(d)), key(d)
                data[k] = better(data[k], v) if k in data else v
        elif kind == "avg":
            def update(d):
                v, k = _int(value(d)), key(d)
                acc = data.get(k)
                if acc is None:
                    data[k] = [1, v]
                else:
                    acc[0] += 1
                    acc[1] += v
        else:
            index = (lambda v: log2_index(v, self.params[0])) if kind == "hist" else \
                (lambda v: linear_index(v, *self.params))

            def update(d):
                i, k = index(_int(value(d))), key(d)
                buckets = data.get(k)
                if buckets is None:
                    buckets = data[k] = {}
                buckets[i] = buckets.get(i, 0) + 1
        return update

    def clear(self):
        self.data.clear()

    def zero(self):
        for k, v in self.data.items():
            self.data[k] = [0, 0] if self.kind == "avg" else {} if self.kind in ("hist", "lhist") else 0

    def text(self, top: int = 0, div: int = 1) -> str:
        """What print(@map, top, div) prints: nothing for an empty map."""
        div = div or 1
        hist = self.kind in ("hist", "lhist")
        rank = (lambda v: sum(v.values())) if hist else _avg if self.kind == "avg" else (lambda v: v)
        items = sorted(self.data.items(), key=lambda kv: (rank(kv[1]), _order(kv[0])))
        if top and len(items) > top:
            items = items[len(items) - top:]
        out = []
        for key, value in items:
            where = self.name if self.nkeys == 0 else f"{self.name}[{_show_key(key)}]"
            if self.kind == "hist":
                out.append(f"{where}:\n{hist_rows(value, self.params[0], div)}\n")
            elif self.kind == "lhist":
                out.append(f"{where}:\n{lhist_rows(value, *self.params)}\n")
            else:
                v = _avg(value) if self.kind == "avg" else value
                out.append(f"{where}: {_cdiv(v, div)}\n")
        return "".join(out)


def print_all(maps) -> str:
    """What bpftrace prints when it ends: two newlines, then every map by name."""
    return "\n\n" + "".join(m.text() for m in sorted(maps, key=lambda m: m.name))


def _int(v) -> int:
    if isinstance(v, int):
        return v
    raise TypeError(f"{v!r} is not an integer")


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _avg(acc) -> int:
    return _cdiv(acc[1], acc[0]) if acc[0] else 0


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _show_key(key) -> str:
    return ", ".join(_show(k) for k in key) if isinstance(key, tuple) else _show(key)


def _order(key):
    """Keys that tie on value: in key order, numbers before strings."""
    parts = key if isinstance(key, tuple) else (key,)
    return tuple((isinstance(p, str), p if isinstance(p, (int, str)) else str(p)) for p in parts)


# -- histograms
def log2_index(v: int, k: int = 0) -> int:
    """hist()'s bucket of v with 2**k buckets per power of two (codegen's log2()):
    0 for negatives, v + 1 up to 2**k - 1, then ((log2(v) - k + 1) << k) + the next k bits + 1."""
    if v < 0:
        return 0
    mask = (1 << k) - 1
    if v <= mask:
        return v + 1
    shift = v.bit_length() - 1 - k
    return ((shift + 1) << k) + ((v >> shift) & mask) + 1


def linear_index(v: int, lo: int, hi: int, step: int) -> int:
    """lhist()'s bucket: 0 below min, 1 + (v - min) / step up to max, 1 + (max - min) / step above."""
    if v < lo:
        return 0
    if v > hi:
        return 1 + (hi - lo) // step
    return 1 + (v - lo) // step


def _log2_label(i: int, k: int) -> tuple:
    """The upper bound of bucket i: (text, int or None); an int only where bpftrace keeps a number."""
    if i <= (2 << k):
        return (str(i), i)
    n = 1 << k
    power = (i >> k) - 1
    decade = power // 10
    text = str((1 << (power - 10 * decade)) * (n + (i & (n - 1)))) + " KMGTPE"[decade].strip()
    return (text, None)


def _linear_label(number: int, step: int) -> tuple:
    if step % 1024:
        return (str(number), number)
    if number and number % (1 << 20) == 0:
        return (f"{number // (1 << 20)}M", None)
    if number and number % 1024 == 0:
        return (f"{number // 1024}K", None)
    return (str(number), None)


def hist_rows(buckets: dict, k: int = 0, div: int = 1) -> str:
    used = [i for i, c in buckets.items() if c > 0]
    if not used:
        return ""
    lo, hi = min(used), max(used)
    labels = [_log2_label(i, k) for i in range(lo, hi + 1)]
    lower = _log2_label(lo - 1, k) if lo else None
    return _rows([buckets.get(i, 0) // div for i in range(lo, hi + 1)], labels, lower)


def lhist_rows(buckets: dict, lo: int, hi: int, step: int) -> str:
    used = [i for i, c in buckets.items() if c > 0]
    if not used:
        return ""
    first, last = min(used), max(used)
    labels = [_linear_label(lo + i * step, step) for i in range(first, last + 1) if lo + i * step <= hi]
    lower = _linear_label(lo + (first - 1) * step, step) if first else None
    return _rows([buckets.get(i, 0) for i in range(first, last + 1)], labels, lower)


def _single(a, b) -> bool:
    return a[1] is not None and b[1] is not None and a[1] + 1 == b[1]


def _header(lower, upper) -> str:
    if upper is None:
        return f"[{lower[0]}, ...)"
    if lower is None:
        return f"(..., {upper[0]})"
    return f"[{lower[0]}]" if _single(lower, upper) else f"[{lower[0]}, {upper[0]})"


def _rows(counts: list, labels: list, lower) -> str:
    top = max(counts)
    out = []
    for i, count in enumerate(counts):
        below = lower if i == 0 else labels[i - 1]
        header = _header(below, labels[i] if i < len(labels) else None)
        out.append(f"{header:<16}{count:>8} |{'@' * _bar(count, top):<{BAR}}|\n")
    return "".join(out)


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _bar(count: int, top: int) -> int:
    """int(count / (float)max * 52), in single precision as bpftrace computes it."""
    if not top:
        return 0
    return int(_f32(_f32(_f32(count) / _f32(top)) * BAR))
