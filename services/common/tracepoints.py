"""Linux's networking tracepoints, as the hops of pktflow's spans hit them:
a hop step named after the kernel function that fires a tracepoint counts
as that tracepoint (net:net_dev_queue fires in __dev_queue_xmit(), ...), and
every drop is skb:kfree_skb. Some fire inside a core instead (a TCP state
change, a segment on an established connection, a neighbour update): the
core writes those into its Probes, only while someone watches them.

Each event carries the fields the kernel's format file names
(/sys/kernel/tracing/events/<cat>/<name>/format; tests/data/tracefs holds
this machine's), as far as pktflow has them: FIELDS lists which. Addresses
are text ("10.0.1.10", or "10.0.1.10:5000" where the kernel prints a
sockaddr), symbolic fields (reason, state) the names the kernel prints.

`pktflow perf list` lists them; `pktflow perf stat` counts them, `pktflow
perf trace` and `pktflow bpftrace` watch them (the Watch RPC).
"""
import fnmatch

QDISC_ENQUEUE = "qdisc:qdisc_enqueue"
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
    # dev_qdisc_enqueue(): only when the qdisc took the skb (a hop that ends dropped there does not count)
    **{f"{kind}_enqueue": QDISC_ENQUEUE for kind in ("pfifo_fast", "pfifo", "bfifo", "fq_codel", "tbf", "netem")},
}
KFREE_SKB = "skb:kfree_skb"
SKB_GSO_TCPV4 = 1

# Fired by a core (Probes.emit), not by a hop's step.
INET_SOCK_SET_STATE = "sock:inet_sock_set_state"
TCP_PROBE = "tcp:tcp_probe"
NEIGH_UPDATE = "neigh:neigh_update"

_SKB = ("skbaddr",)
_TCP4 = ("sport", "dport", "family", "saddr", "daddr")
# The fields each tracepoint's events carry: the kernel's names, those pktflow has.
FIELDS = {
    KFREE_SKB: _SKB + ("location", "protocol", "reason"),
    "net:net_dev_queue": _SKB + ("len", "name"),
    "net:net_dev_xmit": _SKB + ("len", "rc", "name"),
    "net:netif_receive_skb": _SKB + ("len", "name"),
    "net:napi_gro_receive_entry": _SKB + ("len", "name", "protocol", "ip_summed", "hash", "gso_size", "gso_type"),
    "qdisc:qdisc_dequeue": _SKB + ("ifindex", "packets"),
    QDISC_ENQUEUE: _SKB + ("ifindex",),
    "tcp:tcp_retransmit_skb": _SKB + ("skaddr", "state") + _TCP4,
    "tcp:tcp_send_reset": _SKB + ("skaddr", "state", "saddr", "daddr"),
    TCP_PROBE: ("saddr", "daddr", "sport", "dport", "family", "mark", "data_len", "snd_nxt", "snd_una", "snd_cwnd",
                "ssthresh", "snd_wnd", "srtt", "rcv_wnd", "skaddr"),
    INET_SOCK_SET_STATE: ("skaddr", "oldstate", "newstate", "protocol") + _TCP4,
    NEIGH_UPDATE: ("family", "dev", "lladdr", "nud_state", "primary_key4", "primary_key6", "new_lladdr",
                   "new_state"),
}
ALL = sorted(FIELDS)


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
        if out and out[-1][0] == QDISC_ENQUEUE and out[-1][1] == site(fn):
            out.pop()                                  # the qdisc refused it
        out.append((KFREE_SKB, site(fn)))
    return out


def step_fields(fn, name: str) -> dict:
    """The attributes a hop's step `name` carries (pktflow.qdisc.wait_us ...), as
    extra fields: qdisc_wait_us."""
    if isinstance(fn, str):
        return {}
    for part in fn:
        if getattr(part, "name", None) == name:
            return {k.removeprefix("pktflow.").replace(".", "_"): v for k, v in part.attrs}
        if isinstance(part, tuple):
            found = step_fields(part, name)
            if found:
                return found
    return {}


def skb_fields(tp: str, skb, where: str, reason: str, dev: str) -> dict:
    """The fields of a tracepoint a hop fired, from its skb: skbaddr is the skb's
    identity in this layer (as the kernel's is its address), len the bytes
    from the header the layer is at, name the device."""
    f = {"skbaddr": id(skb), "len": len(skb.data) - skb.head}
    if tp == KFREE_SKB:
        f.update(location=where, protocol=skb.protocol, reason=reason)
    elif tp == "qdisc:qdisc_dequeue":
        f.update(ifindex=skb.ifindex, packets=1)
    elif tp == QDISC_ENQUEUE:
        f["ifindex"] = skb.ifindex
    elif tp.startswith("net:"):
        f["name"] = dev
        if tp == "net:net_dev_xmit":
            f["rc"] = 0
        elif tp == "net:napi_gro_receive_entry":
            f.update(protocol=skb.protocol, ip_summed=skb.ip_summed, hash=skb.hash, gso_size=skb.gso_size,
                     gso_type=SKB_GSO_TCPV4 if skb.gso_size else 0)
    return f


class Probes:
    """The tracepoints enabled now (the kernel's static keys: a core asks
    `name in probes.on` before it builds an event) and the events cores
    emitted since the shell last took them."""
    __slots__ = ("on", "events")

    def __init__(self):
        self.on: frozenset = frozenset()
        self.events: list = []

    def emit(self, name: str, netns: str, fields: dict):
        self.events.append((name, netns, fields))

    def take(self) -> list:
        events, self.events = self.events, []
        return events


def selected(patterns: list[str]) -> list[str]:
    """perf's -e: tracepoint names or globs (`net:*`, `skb:kfree_skb`); ValueError
    naming one that matches nothing, as perf refuses an unknown event."""
    out = []
    for p in patterns:
        hits = [t for t in ALL if fnmatch.fnmatchcase(t, p)]
        if not hits:
            raise ValueError(f"event syntax error: '{p}' (pktflow perf list shows the events)")
        out += [t for t in hits if t not in out]
    return out
