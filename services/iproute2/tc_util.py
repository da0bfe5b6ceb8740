"""tc's number readers and printers (iproute2's lib/utils.c, lib/utils_math.c,
tc/tc_util.c): times, percentages, rates and sizes with tc's units and rounding."""
import math
import re

from ..common.pkt_sched import NSEC_PER_SEC, U32_MAX

_NUM = re.compile(r"\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)", re.IGNORECASE)
_TIME_UNITS = {u: 1 for u in ("ns", "nsec", "nsecs")} | {u: 1000 for u in ("us", "usec", "usecs")} | \
    {u: 1_000_000 for u in ("ms", "msec", "msecs")} | {u: NSEC_PER_SEC for u in ("s", "sec", "secs")}
_RATE_UNITS = {"bit": 1, "kibit": 1024, "kbit": 1000, "mibit": 1024 ** 2, "mbit": 10 ** 6, "gibit": 1024 ** 3,
               "gbit": 10 ** 9, "tibit": 1024 ** 4, "tbit": 10 ** 12, "bps": 8, "kibps": 8 * 1024,
               "kbps": 8000, "mibps": 8 * 1024 ** 2, "mbps": 8 * 10 ** 6, "gibps": 8 * 1024 ** 3,
               "gbps": 8 * 10 ** 9, "tibps": 8 * 1024 ** 4, "tbps": 8 * 10 ** 12}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "g": 1024 ** 3,
               "gb": 1024 ** 3, "kbit": 1024 / 8, "mbit": 1024 ** 2 / 8, "gbit": 1024 ** 3 / 8}


def _strtod(text: str) -> tuple[float, str] | None:
    """C's strtod(): the number at the start of `text` and what follows it."""
    m = _NUM.match(text)
    return (float(m.group()), text[m.end():]) if m else None


def get_time64(text: str) -> int:
    """A time in ns: a bare number is ns, or s/sec, ms/msec, us/usec, ns/nsec."""
    got = _strtod(text)
    if got is None or got[0] < 0 or got[1].lower() not in _TIME_UNITS | {"": 1}:
        raise ValueError
    return int(got[0] * (_TIME_UNITS.get(got[1].lower()) or 1))


def get_percent(text: str) -> int:
    """`PERCENT` or `PERCENT%` (0 to 100), scaled to a u32 as tc does."""
    got = _strtod(text)
    if got is None or got[1] not in ("", "%") or not 0.0 <= got[0] / 100.0 <= 1.0:
        raise ValueError
    return round(got[0] / 100.0 * U32_MAX)          # rint(): round half to even


def get_rate64(text: str) -> int:
    """A rate in bytes/s from bit, kbit, mbit, gbit, bps (bytes), kbps, mbps ...; a bare number is bit/s."""
    got = _strtod(text)
    unit = got[1].lower() if got else None
    if got is None or got[0] < 0 or (unit and unit not in _RATE_UNITS):
        raise ValueError
    return int(got[0] * _RATE_UNITS.get(unit, 1) / 8)


def get_size(text: str) -> int:
    """A size in bytes: b, k/kb, m/mb, g/gb, kbit, mbit, gbit; whole bytes that fit in a u32."""
    got = _strtod(text)
    if got is None or got[0] < 0 or got[1].lower() not in _SIZE_UNITS:
        raise ValueError
    size = got[0] * _SIZE_UNITS[got[1].lower()]
    if size != math.floor(size) or size > U32_MAX:
        raise ValueError
    return int(size)


def get_int(text: str, lo: int, hi: int) -> int:
    """strtol(text, 0): decimal, 0x hex or 0 octal, the whole word."""
    t = text.strip().lower()
    sign, t = (-1, t[1:]) if t.startswith("-") else (1, t.lstrip("+"))
    base = 16 if t.startswith("0x") else 8 if len(t) > 1 and t.startswith("0") else 10
    try:
        value = sign * int(t[2:] if base == 16 else t, base)
    except ValueError:
        raise ValueError from None
    if not lo <= value <= hi:
        raise ValueError
    return value


def get_u64(text: str) -> int:
    """A decimal u64 (the seed)."""
    if not text.isdigit() or int(text) > 2 ** 64 - 1:
        raise ValueError
    return int(text)


def matches(word: str, keyword: str) -> bool:
    """iproute2's matches(): `word` is a non-empty prefix of `keyword`."""
    return bool(word) and keyword.startswith(word)


def _number_next(words: list[str], i: int, signed: bool = False) -> bool:
    """NEXT_IS_NUMBER(): the word after i starts with a digit (or '-')."""
    return i + 1 < len(words) and words[i + 1][:1] != "" and (words[i + 1][0].isdigit()
                                                              or signed and words[i + 1][0] == "-")


def sprint_time64(ns: int) -> str:
    for scale, unit in ((NSEC_PER_SEC, "s"), (1_000_000, "ms"), (1000, "us")):
        if ns >= scale:
            return f"{ns / scale:.3g}{unit}"
    return f"{ns}ns"


def sprint_percent(u32: int) -> str:
    return f"{100.0 * u32 / U32_MAX:g}%"


def sprint_rate(bytes_per_s: int) -> str:
    """print_rate(): bit/s with the largest SI unit that divides it (1Mbit, 1500Kbit)."""
    rate, units = bytes_per_s * 8, ("", "K", "M", "G", "T")
    i = 0
    while i < len(units) - 1 and rate >= 1000 and not (rate % 1000 and rate < 1000 * 1000):
        rate //= 1000
        i += 1
    return f"{rate}{units[i]}bit"


def sprint_size(size: int) -> str:
    """sprint_size(): 1514b, 3Kb, 2Mb ... (a unit only when it is nearly exact)."""
    for scale, unit, slack in ((1 << 30, "Gb", 1024), (1 << 20, "Mb", 1024), (1 << 10, "Kb", 16)):
        if size >= scale and abs(scale * round(size / scale) - size) < slack:
            return f"{round(size / scale):g}{unit}"
    return f"{size}b"
