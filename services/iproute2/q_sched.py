"""tc's words for tbf, fq_codel, pfifo, bfifo and pfifo_fast (iproute2 6.1's
tc/q_tbf.c, q_fq_codel.c, q_fifo.c): parse() fills the request's options,
format() prints them as `tc qdisc show` does. The messages are tc's (captured
here for tbf and the FIFOs; this machine's kernel has no fq_codel, so its
listing follows q_fq_codel.c's print_opt)."""
from .tc_util import get_int, get_rate64, get_size, get_time64, sprint_rate, sprint_size, sprint_time64

TBF_USAGE = ("Usage: ... tbf limit BYTES burst BYTES[/BYTES] rate KBPS [ mtu BYTES[/BYTES] ]\n"
             "\t[ peakrate KBPS ] [ latency TIME ] [ overhead BYTES ] [ linklayer TYPE ]")
FQ_CODEL_USAGE = ("Usage: ... fq_codel\t[ limit PACKETS ] [ flows NUMBER ]\n[ memory_limit BYTES ]\n"
                  "[ target TIME ] [ interval TIME ]\n[ quantum BYTES ] [ [no]ecn ]\n[ ce_threshold TIME ]\n"
                  "[ ce_threshold_selector VALUE/MASK ]\n[ drop_batch SIZE ]")
FIFO_USAGE = "Usage: ... <[p|b]fifo | pfifo_head_drop> [ limit NUMBER ]"
KINDS = ("tbf", "fq_codel", "pfifo", "bfifo", "pfifo_fast")
PRIOMAP = "bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"


def parse(req, words: list[str]):
    """Fills req.tbf / req.fq_codel / req.fifo from tc's words; ValueError with tc's message."""
    {"tbf": _tbf, "fq_codel": _fq_codel}.get(req.kind, _fifo)(req, words)


def _value(words, i, what, reader, usage):
    if i + 1 >= len(words):
        raise ValueError('Command line is not complete. Try option "help"')
    try:
        return reader(words[i + 1])
    except ValueError:
        raise ValueError(f'Illegal "{what}"\n{usage}' if usage else f'Illegal "{what}"') from None


def _tbf(req, words):
    t, latency, i = req.tbf, 0, 0
    while i < len(words):
        w = words[i]
        if w == "limit":
            if latency:
                raise ValueError('tbf: specifying both "latency" and "limit" is not allowed')
            t.limit = _value(words, i, "limit", get_size, "")
        elif w == "latency":
            if t.limit:
                raise ValueError('tbf: specifying both "latency" and "limit" is not allowed')
            latency = _value(words, i, "latency", get_time64, "")
        elif w in ("burst", "buffer", "maxburst"):
            t.burst = _value(words, i, "burst", lambda v: get_size(v.split("/")[0]), "")
        elif w == "rate":
            t.rate = _value(words, i, "rate", get_rate64, "")
        else:
            raise ValueError(f'What is "{w}"?\n{TBF_USAGE}')
        i += 2
    errors = [m for bad, m in ((not t.rate, 'tbf: the "rate" parameter is mandatory.'),
                               (not t.burst, 'tbf: the "burst" parameter is mandatory.'),
                               (not t.limit and not latency, 'tbf: either "limit" or "latency" is required.'))
              if bad]
    if errors:                       # all at once, then the usage, as tbf_parse_opt() does
        raise ValueError("\n".join(errors + [TBF_USAGE]))
    if not t.limit:                  # rate x latency + burst
        t.limit = int(t.rate * latency / 1_000_000_000 + t.burst)


def _fq_codel(req, words):
    o, i = req.fq_codel, 0
    while i < len(words):
        w = words[i]
        if w in ("ecn", "noecn"):
            o.noecn = w == "noecn"
            i += 1
            continue
        if w in ("limit", "flows", "quantum", "drop_batch"):
            setattr(o, w, _value(words, i, w, lambda v: get_int(v, 0, 2**32 - 1), ""))
        elif w in ("target", "interval"):
            setattr(o, w, _value(words, i, w, get_time64, ""))
        else:
            raise ValueError(f'What is "{w}"?\n{FQ_CODEL_USAGE}')
        i += 2


def _fifo(req, words):
    if req.kind == "pfifo_fast":
        if words:
            raise ValueError(f'What is "{words[0]}"?')
        return
    if words[:1] == ["limit"]:
        reader = get_size if req.kind == "bfifo" else (lambda v: get_int(v, 0, 2**32 - 1))
        req.fifo.limit = _value(words, 0, "limit", reader, FIFO_USAGE)
        words = words[2:]
    if words:
        raise ValueError(f'{req.kind}: unknown parameter "{words[0]}"\n{FIFO_USAGE}')


def format(q) -> str:
    """The options part of a `tc qdisc show` line."""
    if q.kind == "tbf":
        t = q.tbf
        lat = t.limit * 1_000_000_000 // t.rate - t.burst * 1_000_000_000 // t.rate
        tail = f"lat {sprint_time64(lat)} " if lat >= 0 else f"limit {sprint_size(t.limit)} "
        return f"rate {sprint_rate(t.rate)} burst {sprint_size(t.burst)} {tail}"
    if q.kind == "fq_codel":
        o = q.fq_codel
        return (f"limit {o.limit}p flows {o.flows} quantum {o.quantum} target {sprint_time64(o.target)} "
                f"interval {sprint_time64(o.interval)} memory_limit 32Mb {'' if o.noecn else 'ecn '}"
                f"drop_batch {o.drop_batch} ")
    if q.kind == "pfifo_fast":
        return PRIOMAP
    return f"limit {sprint_size(q.fifo.limit)}" if q.kind == "bfifo" else f"limit {q.fifo.limit}p"


def format_xstats(q) -> list[str]:
    """fq_codel_print_xstats()"""
    if q.kind != "fq_codel":
        return []
    x = q.xstats
    return [f"  maxpacket {x['maxpacket']} drop_overlimit {x['drop_overlimit']} "
            f"new_flow_count {x['new_flow_count']} ecn_mark {x['ecn_mark']}",
            f"  new_flows_len {x['new_flows_len']} old_flows_len {x['old_flows_len']}"]
