"""Linux's networking tracepoints, as the hops of pktflow's spans hit them:
a hop step named after the kernel function that fires a tracepoint counts
as that tracepoint (net:net_dev_queue fires in __dev_queue_xmit(), ...), and
every drop is skb:kfree_skb. `pktflow perf list` lists them; `pktflow perf
stat` counts them, `pktflow perf trace` lists each one, while it runs (the
layers keep them only then)."""

# the kernel function (a hop step's name) -> the tracepoint it fires
BY_FUNCTION = {
    "dev_queue_xmit": "net:net_dev_queue",
    "ndo_start_xmit": "net:net_dev_xmit",
    "netif_receive_skb": "net:netif_receive_skb",
    "napi_gro_receive": "net:napi_gro_receive_entry",
    "tcp_retransmit_skb": "tcp:tcp_retransmit_skb",
    "tcp_v4_send_reset": "tcp:tcp_send_reset",
    **{f"{kind}_dequeue": "qdisc:qdisc_dequeue" for kind in ("pfifo_fast", "pfifo", "bfifo", "fq_codel", "tbf",
                                                              "netem")},
    "sch_direct_xmit": "qdisc:qdisc_dequeue",
}
KFREE_SKB = "skb:kfree_skb"
ALL = sorted({KFREE_SKB, *BY_FUNCTION.values()})


def steps(fn):
    """The function names of a hop's steps (a name, or a tuple of names and Steps)."""
    if isinstance(fn, str):
        yield fn
        return
    for part in fn:
        if isinstance(part, str):
            yield part
        elif hasattr(part, "name"):
            yield part.name
        else:
            yield from steps(part)


def site(fn) -> str:
    """Where a hop ended (where a drop happened): its last step, kfree_skb's location."""
    *_, last = steps(fn)
    return last


def hits(fn, dropped: bool) -> list[tuple[str, str]]:
    """The (tracepoint, function) pairs one hop fires: its steps', then kfree_skb's at its last step."""
    out = [(BY_FUNCTION[name], name) for name in steps(fn) if name in BY_FUNCTION]
    if dropped:
        out.append((KFREE_SKB, site(fn)))
    return out


def count(counter, netns: str, fn, dropped: bool):
    """What one hop adds to perf stat's counts: (netns, tracepoint) -> hits."""
    for tp, _ in hits(fn, dropped):
        counter[(netns, tp)] += 1


def selected(patterns: list[str]) -> list[str]:
    """perf's -e: tracepoint names or globs (`net:*`, `skb:kfree_skb`); ValueError
    naming one that matches nothing, as perf refuses an unknown event."""
    import fnmatch
    out = []
    for p in patterns:
        hits = [t for t in ALL if fnmatch.fnmatchcase(t, p)]
        if not hits:
            raise ValueError(f"event syntax error: '{p}' (pktflow perf list shows the events)")
        out += [t for t in hits if t not in out]
    return out
