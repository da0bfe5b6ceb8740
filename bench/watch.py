"""What watching tracepoints costs: UDP h1 -> h2 (bench/udp.py's measurement,
tracing off) on one stack with nothing watched, with a watch that nothing
matches (a tracepoint this traffic never fires), with a watch whose filter
the layers apply and that passes nothing, and with a `perf trace` of every
packet (every tracepoint a datagram fires on its way, each sent to this
process and read), in turns, so the rates are from the same minutes.

    python -m bench.watch [--seconds 5] [--rounds 2]

An unwatched tracepoint costs one attribute test per hop (LayerShell.tracing);
a watched one costs building its fields and the watcher's filter; a sent one,
encoding and the stream.
"""
import argparse
import os
import statistics
import threading

from . import udp
from .stacks import TOPOLOGY

EVERY_PACKET = ["net:*", "qdisc:*", "skb:kfree_skb"]
MODES = {
    "nothing watched": None,
    "watched, never fires (tcp:tcp_retransmit_skb)": (["tcp:tcp_retransmit_skb"], ""),
    "watched, filtered out in the layer": (EVERY_PACKET, "args.len > 100000"),
    "perf trace of every packet": (EVERY_PACKET, ""),
}


def reader(watch, stop: threading.Event, got: list):
    while not stop.is_set():
        got[0] += len(watch.poll(0.2))


def measure(a, endpoint: str, mode) -> tuple[dict, int, int]:
    from pktflow import _client
    if mode is None:
        return udp.measure(endpoint, a), 0, 0
    events, predicate = mode
    got, stop = [0], threading.Event()
    with _client.watch(events, predicate=predicate) as w:
        t = threading.Thread(target=reader, args=(w, stop, got), daemon=True)
        t.start()
        try:
            r = udp.measure(endpoint, a)
        finally:
            stop.set()
            t.join()
        return r, got[0], sum(w.lost.values())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latency-samples", type=int, default=100)
    p.add_argument("--port-base", type=int, default=51450)
    a = p.parse_args()
    from pktflow import up
    stack = up.Stack(TOPOLOGY, port_base=a.port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    stack.start()
    os.environ["PKTFLOW_ENDPOINT"] = stack.endpoint
    rates = {m: [] for m in MODES}
    events = {m: [0, 0] for m in MODES}
    try:
        for _ in range(a.rounds):
            for name, mode in MODES.items():
                r, n, lost = measure(a, stack.endpoint, mode)
                rates[name].append(r["pps"])
                events[name][0] += n
                events[name][1] += lost
    finally:
        stack.stop()
    base = statistics.median(rates["nothing watched"])
    print(f"UDP h1 -> r1 -> h2, {a.size}-byte datagrams, tracing off, {a.seconds:.0f} s x {a.rounds} each, "
          f"{os.cpu_count()} CPUs, one stack")
    for name in MODES:
        rate = statistics.median(rates[name])
        got, lost = events[name]
        print(f"{name:48} {rate:9.0f} pkts/s {rate / base:7.1%}   events read {got:>9,} lost {lost:>7,}  "
              f"({', '.join(f'{r:.0f}' for r in rates[name])})")


if __name__ == "__main__":
    main()
