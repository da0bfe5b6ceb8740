"""netem's words (iproute2's tc/q_netem.c): netem_parse_opt() reads the
options after `netem` into the kernel's Qopt, with tc's units and error
messages; netem_print_opt() prints them back as `tc qdisc show` does."""
from ..common.pkt_sched import INT_MAX, U32_MAX, Qopt
from .tc_util import (_number_next, get_int, get_percent, get_rate64, get_size, get_time64, get_u64, matches,
                      sprint_percent, sprint_rate, sprint_time64)

USAGE = """Usage: ... netem [ limit PACKETS ]
                 [ delay TIME [ JITTER [ CORRELATION ] ] ]
                 [ corrupt PERCENT [ CORRELATION ] ]
                 [ duplicate PERCENT [ CORRELATION ] ]
                 [ loss [ random ] PERCENT [ CORRELATION ] ]
                 [ seed SEED ]
                 [ reorder PERCENT [ CORRELATION ] [ gap DISTANCE ] ]
                 [ rate RATE [ PACKETOVERHEAD ] [ CELLSIZE ] [ CELLOVERHEAD ] ]"""


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
