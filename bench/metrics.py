"""What the Prometheus /metrics endpoints cost: UDP h1 -> h2 (bench/udp.py's
measurement, tracing off) with no endpoints, and with all five scraped every
--interval seconds while the traffic runs (Prometheus scrapes every 15 s by
default; 1 s is harsher), alternating, so the two rates are from the same
machine minutes apart; and how long one scrape of each layer takes.

    python -m bench.metrics [--seconds 5] [--interval 1] [--rounds 2]

The counters are the cores' own (collected when scraped, nothing is done per
packet), so the difference is the scrapes' own work on the services' loops.
"""
import argparse
import os
import statistics
import threading
import time
import urllib.request

from . import udp
from .stacks import TOPOLOGY


def scraper(ports: dict, interval: float, stop: threading.Event, took: dict, sizes: dict):
    while not stop.is_set():
        for layer, port in ports.items():
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                sizes[layer] = len(r.read())
            took.setdefault(layer, []).append((time.perf_counter() - t0) * 1000)
        stop.wait(interval)


def run(a, scraped: bool, took: dict, sizes: dict) -> dict:
    from pktflow import up
    metrics_port = a.port_base + 30 if scraped else None
    stack = up.Stack(TOPOLOGY, port_base=a.port_base, trace_store=False, metrics_port=metrics_port,
                     extra_env={"OTEL_TRACES_EXPORTER": "none"})
    stack.start()
    stop = threading.Event()
    t = threading.Thread(target=scraper, args=(stack.metrics_ports, a.interval, stop, took, sizes), daemon=True)
    try:
        if scraped:
            t.start()
        return udp.measure(stack.endpoint, a)
    finally:
        stop.set()
        if scraped:
            t.join()
        stack.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes of the five")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latency-samples", type=int, default=100)
    p.add_argument("--port-base", type=int, default=51350)
    a = p.parse_args()
    took: dict = {}
    sizes: dict = {}
    rates = {False: [], True: []}
    for _ in range(a.rounds):
        for scraped in (False, True):
            rates[scraped].append(run(a, scraped, took, sizes)["pps"])
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"UDP h1 -> r1 -> h2, {a.size}-byte datagrams, tracing off, {a.seconds:.0f} s x {a.rounds} each, "
          f"{os.cpu_count()} CPUs")
    print(f"no /metrics                         {off:9.0f} pkts/s  ({', '.join(f'{r:.0f}' for r in rates[False])})")
    print(f"/metrics scraped every {a.interval:g} s          {on:9.0f} pkts/s  "
          f"({', '.join(f'{r:.0f}' for r in rates[True])}): {on / off:.1%}")
    print(f"{'one scrape':12} {'p50 ms':>8} {'max ms':>8} {'bytes':>8}")
    for layer, ms in took.items():
        print(f"{layer:12} {statistics.median(ms):8.2f} {max(ms):8.2f} {sizes[layer]:8d}")


if __name__ == "__main__":
    main()
