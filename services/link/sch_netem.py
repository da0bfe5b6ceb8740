"""The network emulator qdisc (net/sched/sch_netem.c) and its tc vocabulary
(iproute2's tc/q_netem.c): delay with jitter, loss, duplication, reordering,
corruption and rate on a device's egress.

`parse()` reads a `tc qdisc ... netem` option list with tc's units and errors;
`Netem` is the qdisc: `enqueue(skb, now)` returns verdicts (dropped or queued),
`dequeue(now)` the frames due by `now` and the time of the next one. Like the
kernel, a packet's fate is decided at enqueue: its send time goes into a time-
sorted queue (the kernel's tfifo), a reordered packet goes to the front.

Probabilities are kept as tc sends them, fractions of 2**32 - 1, and compared
with 32-bit random numbers as netem's get_crandom() does, correlation included.
`seed N` makes the random sequence repeatable, as in Linux (TCA_NETEM_PRNG_SEED);
the numbers come from Python's generator, not the kernel's prandom, so a seed
gives pktflow the same losses every run, not the same losses as Linux.
"""
import heapq
import itertools
import math
import random
import re
from collections import deque
from dataclasses import dataclass

from ..common.actions import Drop, Stop
from ..common.skbuff import clone
from ..wire import ethernet, ipv4

U32_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF
NSEC_PER_SEC = 1_000_000_000
ENQUEUE = "netem_enqueue"

USAGE = """Usage: ... netem [ limit PACKETS ]
                 [ delay TIME [ JITTER [ CORRELATION ] ] ]
                 [ corrupt PERCENT [ CORRELATION ] ]
                 [ duplicate PERCENT [ CORRELATION ] ]
                 [ loss [ random ] PERCENT [ CORRELATION ] ]
                 [ seed SEED ]
                 [ reorder PERCENT [ CORRELATION ] [ gap DISTANCE ] ]
                 [ rate RATE [ PACKETOVERHEAD ] [ CELLSIZE ] [ CELLOVERHEAD ] ]"""


@dataclass
class Qopt:
    """What tc hands the kernel: times in ns, probabilities as u32 fractions, rate in bytes/s."""
    limit: int = 1000
    latency: int = 0
    jitter: int = 0
    delay_corr: int = 0
    loss: int = 0
    loss_corr: int = 0
    duplicate: int = 0
    dup_corr: int = 0
    reorder: int = 0
    reorder_corr: int = 0
    gap: int = 0
    corrupt: int = 0
    corrupt_corr: int = 0
    rate: int = 0
    packet_overhead: int = 0
    cell_size: int = 0
    cell_overhead: int = 0
    seed: int | None = None
    ecn: bool = False                  # mark CE instead of dropping ECN-capable packets


# -- tc's number readers (lib/utils.c, lib/utils_math.c, tc/tc_util.c)
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


def parse(spec: str | list[str]) -> Qopt:
    """netem_parse_opt(): the options after `netem`, as tc reads them. A bad
    option raises ValueError naming it, in tc's words."""
    words = spec.split() if isinstance(spec, str) else list(spec)
    o = Qopt()
    i = 0

    def value(what: str, read, *args):
        nonlocal i
        i += 1
        if i >= len(words):
            raise ValueError(f'Command line is not complete after "{words[i - 1]}". Try option "help"')
        try:
            return read(words[i], *args)
        except ValueError:
            raise ValueError(f'Illegal "{what}": "{words[i]}"') from None

    def optional(what: str, read, *args, signed=False):
        return value(what, read, *args) if _number_next(words, i, signed) else None

    while i < len(words):
        w = words[i]
        if matches(w, "limit"):
            o.limit = value("limit", get_size)
        elif matches(w, "latency") or matches(w, "delay"):
            o.latency = value("latency", get_time64)
            jitter = optional("latency", get_time64)
            if jitter is not None:
                o.jitter = jitter
                o.delay_corr = optional("latency", get_percent) or 0
        elif matches(w, "loss") or matches(w, "drop"):
            if o.loss:
                raise ValueError('Illegal "duplicate loss argument"')
            if i + 1 < len(words) and words[i + 1] == "random":
                i += 1
            elif i + 1 < len(words) and words[i + 1] in ("state", "gemodel"):
                raise ValueError(f'"loss {words[i + 1]}": pktflow\'s netem has only the random loss model')
            elif i + 1 < len(words) and not words[i + 1][:1].isdigit():
                raise ValueError(f"Unknown loss parameter: {words[i + 1]}")
            o.loss = value("loss percent", get_percent)
            o.loss_corr = optional("loss correlation", get_percent) or 0
        elif matches(w, "seed"):
            o.seed = value("seed", get_u64)
        elif matches(w, "ecn"):
            o.ecn = True
        elif matches(w, "distribution") or matches(w, "slot"):
            raise ValueError(f'"{w}" is not supported by pktflow\'s netem')
        elif matches(w, "reorder"):
            o.reorder = value("reorder", get_percent)
            o.reorder_corr = optional("reorder", get_percent) or 0
        elif matches(w, "corrupt"):
            o.corrupt = value("corrupt", get_percent)
            o.corrupt_corr = optional("corrupt", get_percent) or 0
        elif matches(w, "gap"):
            o.gap = value("gap", get_int, 0, U32_MAX)
        elif matches(w, "duplicate"):
            o.duplicate = value("duplicate", get_percent)
            o.dup_corr = optional("duplicate", get_percent) or 0
        elif matches(w, "rate"):
            o.rate = value("rate", get_rate64)
            if _number_next(words, i, signed=True):
                o.packet_overhead = value("rate", get_int, -INT_MAX - 1, INT_MAX)
            if _number_next(words, i):
                o.cell_size = value("rate", get_int, 0, U32_MAX)
            if _number_next(words, i, signed=True):
                o.cell_overhead = value("rate", get_int, -INT_MAX - 1, INT_MAX)
        elif w == "help":
            raise ValueError(USAGE)
        else:
            raise ValueError(f'What is "{w}"?')
        i += 1
    if o.ecn and not o.loss:
        raise ValueError("ecn requested without loss model")
    if o.reorder:
        if o.latency == 0:
            raise ValueError("reordering not possible without specifying some delay")
        o.gap = o.gap or 1
    elif o.gap:
        raise ValueError("gap specified without reorder probability")
    return o


# -- tc's printing (netem_print_opt())
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


def format_qopt(o: Qopt) -> str:
    """The options as `tc qdisc show` prints them."""
    out = [f"limit {o.limit}"]
    if o.latency:
        out.append(f"delay {sprint_time64(o.latency)}")
        if o.jitter:
            out[-1] += f"  {sprint_time64(o.jitter)}" + (f" {sprint_percent(o.delay_corr)}" if o.delay_corr else "")
    for name, p, corr in (("loss", o.loss, o.loss_corr), ("duplicate", o.duplicate, o.dup_corr),
                          ("reorder", o.reorder, o.reorder_corr), ("corrupt", o.corrupt, o.corrupt_corr)):
        if p:
            out.append(f"{name} {sprint_percent(p)}" + (f" {sprint_percent(corr)}" if corr else ""))
            if name == "loss" and o.ecn:
                out.append("ecn")
    if o.rate:
        out.append(f"rate {sprint_rate(o.rate)}")
        for name, v in (("packetoverhead", o.packet_overhead), ("cellsize", o.cell_size),
                        ("celloverhead", o.cell_overhead)):
            if v:
                out.append(f"{name} {v}")
    if o.seed is not None:
        out.append(f"seed {o.seed}")
    if o.gap:
        out.append(f"gap {o.gap}")
    return " ".join(out)


class Netem:
    """One netem qdisc (struct netem_sched_data)."""
    kind = "netem"

    def __init__(self, opt: Qopt, handle: int, entropy: random.Random | None = None):
        self.handle = handle
        self._entropy = entropy or random.Random()     # seeds the generator when no `seed` is given
        self.tfifo: list = []                          # heap of (time_to_send, arrival, skb)
        self.head: deque = deque()                     # reordered packets: out before anything else
        self._arrival = itertools.count()              # equal send times leave in arrival order
        self.t_last = None                             # the latest send time queued (rate's reference)
        self.counter = 0                               # packets since the last reordered one (gap)
        self.stats = dict.fromkeys(("bytes", "packets", "drops", "overlimits", "requeues", "backlog",
                                    "delayed", "dropped", "corrupted", "duplicated", "reordered",
                                    "ecn_marked"), 0)
        self.change(opt)

    def change(self, opt: Qopt):
        """netem_change(): new options; queued packets and counters stay. Without
        a seed the generator is reseeded at random, as the kernel does."""
        self.opt = opt
        self.opt.jitter = min(opt.jitter, INT_MAX)     # the kernel keeps jitter in an s32
        self.prng = random.Random(opt.seed if opt.seed is not None else self._entropy.getrandbits(64))
        self.last = {k: self.prng.getrandbits(32) for k in ("delay", "loss", "dup", "reorder", "corrupt")}

    @property
    def qlen(self) -> int:
        return len(self.tfifo) + len(self.head)

    def _crandom(self, which: str, rho: int) -> int:
        """get_crandom(): a u32, correlated with the previous one of its kind by rho/2**32."""
        value = self.prng.getrandbits(32)
        if not rho:
            return value
        rho += 1
        answer = (value * ((1 << 32) - rho) + self.last[which] * rho) >> 32
        self.last[which] = answer
        return answer

    def _tabledist(self) -> int:
        """The delay: latency, plus a uniform jitter in [-jitter, +jitter) (no distribution table)."""
        o = self.opt
        if not o.jitter:
            return o.latency
        return self._crandom("delay", o.delay_corr) % (2 * o.jitter) + o.latency - o.jitter

    def _packet_time(self, length: int) -> int:
        """packet_time_ns(): how long `length` bytes take at `rate`, with overhead and cells."""
        o = self.opt
        length += o.packet_overhead
        if o.cell_size:
            length = -(-length // o.cell_size) * (o.cell_size + o.cell_overhead)
        return length * NSEC_PER_SEC // o.rate

    @staticmethod
    def _mark_ce(skb) -> bool:
        """INET_ECN_set_ce() on an IPv4 packet; False when it cannot carry the mark."""
        nh = ethernet.ETH_HLEN                         # a qdisc sees the frame, Ethernet header on
        if skb.protocol != ethernet.ETH_P_IP or len(skb.data) < nh + ipv4.IPV4_HLEN:
            return False
        ihl = (skb.data[nh] & 0x0F) * 4
        hdr = ipv4.set_ce(skb.data[nh:nh + ihl])
        if hdr is None:
            return False
        skb.data = skb.data[:nh] + hdr + skb.data[nh + ihl:]
        return True

    def enqueue(self, skb, now: int, may_duplicate: bool = True) -> list:
        """netem_enqueue(): drop, or queue with a send time. Its actions are Drop or Stop."""
        o, st = self.opt, self.stats
        count = 1                                      # the xstats count decisions, as the kernel's do
        if may_duplicate and o.duplicate and o.duplicate >= self._crandom("dup", o.dup_corr):
            count += 1
            st["duplicated"] += 1
        if o.loss and o.loss >= self._crandom("loss", o.loss_corr):
            st["dropped"] += 1
            if o.ecn and self._mark_ce(skb):
                st["drops"] += 1                       # marked, and counted as a drop, as the kernel does
                st["ecn_marked"] += 1
            else:
                count -= 1
        if count == 0:
            st["drops"] += 1
            return [Drop(skb, ENQUEUE, "NETEM_LOSS")]
        dup = clone(skb) if count > 1 else None        # cloned before the original is corrupted
        if o.corrupt and o.corrupt >= self._crandom("corrupt", o.corrupt_corr) and skb.data:
            data = bytearray(skb.data)                 # one random bit of the frame flipped
            data[self.prng.randrange(len(data))] ^= 1 << self.prng.randrange(8)
            skb.data = bytes(data)
            st["corrupted"] += 1
        if self.qlen >= o.limit:
            st["drops"] += 1                           # qdisc_drop_all(): one counted, the clone just freed
            return [Drop(s, ENQUEUE, "QDISC_DROP") for s in (skb, dup) if s is not None]
        out = []
        if dup is not None:                            # the kernel re-enqueues the copy at the root,
            out += self.enqueue(dup, now, may_duplicate=False)   # where a copy is not copied again
        st["backlog"] += len(skb.data)
        if o.gap == 0 or self.counter < o.gap - 1 or o.reorder < self._crandom("reorder", o.reorder_corr):
            delay, ref = self._tabledist(), now
            if o.rate:                                 # behind the last packet queued, then its own time
                if self.t_last is not None:
                    delay = max(0, delay - (self.t_last - now))
                    ref = self.t_last
                delay += self._packet_time(len(skb.data))
            t = ref + delay
            self.counter += 1
            self.t_last = t if self.t_last is None else max(self.t_last, t)
            heapq.heappush(self.tfifo, (t, next(self._arrival), skb))
            if delay:
                st["delayed"] += 1
        else:                                          # reordered: to the front, sent at once
            self.counter = 0
            self.head.appendleft(skb)
            st["requeues"] += 1
            st["reordered"] += 1
        out.append(Stop(skb, ENQUEUE))
        return out

    def dequeue(self, now: int) -> tuple[list, int | None]:
        """netem_dequeue(), as often as it gives a packet: the frames due by
        `now`, and when the next one is due (None: the queue is empty)."""
        out = list(self.head)
        self.head.clear()
        tfifo = self.tfifo
        while tfifo and tfifo[0][0] <= now:
            out.append(heapq.heappop(tfifo)[2])
        if not tfifo:
            self.t_last = None
        st = self.stats
        for skb in out:
            n = len(skb.data)
            st["bytes"] += n
            st["packets"] += 1
            st["backlog"] -= n
        return out, (tfifo[0][0] if tfifo else None)

    def purge(self) -> list:
        """netem_reset(): the queued packets, removed (the qdisc is going away)."""
        out = list(self.head) + [e[2] for e in sorted(self.tfifo)]
        self.head.clear()
        self.tfifo.clear()
        self.t_last = None
        self.stats["backlog"] = 0
        return out

    def options(self) -> str:
        return format_qopt(self.opt)
