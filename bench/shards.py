"""Shards: aggregate UDP packets/s of many independent host pairs with the stack
in one shard and in two (`pktflow up --shards 2` on this machine), and what a
cable between shards costs against one inside a shard, all in the same run so
the figures are ratios on the same machine.

    python -m bench.shards [--pairs 4] [--seconds 5] [--batch 64] [--json]

Topology: --pairs pairs aN -- bN, each pair a cable and a /24 of its own (no
router). Every pair sends at once (one sender and one receiver process per
pair, sendmmsg() batches of --batch 64-byte datagrams as fast as they are taken);
the aggregate is datagrams received per second. Placement puts each pair inside
one shard, so in two shards no cable crosses. The cable cost: in one two-shard
stack, pair 0 inside shard 0 and pair 1 with its cable between the shards' nics,
each alone: packets/s and the time of one datagram at a time.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from . import udp

HERE = pathlib.Path(__file__).resolve().parent
HDR = udp.HDR
PORT = 7000


def topology(pairs: int, shards: int = 1, pins: dict | None = None) -> str:
    lines = [f"shards: {shards}"] if shards > 1 else []
    lines.append("hosts:")
    for i in range(pairs):
        for end, last in (("a", 1), ("b", 2)):
            lines += [f"  {end}{i}:"]
            if pins and f"{end}{i}" in pins:
                lines += [f"    shard: {pins[f'{end}{i}']}"]
            lines += ["    interfaces:", "      eth0:", f"        addresses: [10.{100 + i}.0.{last}/24]"]
    lines.append("links:")
    lines += [f"  - [a{i}:eth0, b{i}:eth0]" for i in range(pairs)]
    return "\n".join(lines) + "\n"


def worker_tx(endpoint, pair, seconds, batch):
    pk = udp._sdk(endpoint)
    s = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns=f"a{pair}")
    dst = (f"10.{100 + pair}.0.2", PORT)
    pad = b"\0" * (64 - HDR.size)
    seq, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.time_ns()
        seq += s.sendmmsg([(HDR.pack(seq + i, now) + pad, dst) for i in range(batch)])
    print(json.dumps({"sent": seq}), flush=True)


def worker_rx(endpoint, pair, idle=3.0):
    udp.worker_rx(endpoint, idle, f"b{pair}", (f"10.{100 + pair}.0.2", PORT))


def aggregate(endpoint, pairs: list[int], a) -> dict:
    """The pairs sending at once: datagrams received per second, summed."""
    env = os.environ | {"PYTHONPATH": str(HERE.parent)}
    cmd = [sys.executable, "-m", "bench.shards", "--endpoint", endpoint]
    rxs = [subprocess.Popen(cmd + ["--worker", "rx", "--pair", str(i)], stdout=subprocess.PIPE, text=True, env=env)
           for i in pairs]
    for rx in rxs:
        assert json.loads(rx.stdout.readline())["ready"]
    txs = [subprocess.Popen(cmd + ["--worker", "tx", "--pair", str(i), "--seconds", str(a.seconds),
                                   "--batch", str(a.batch)], stdout=subprocess.PIPE, text=True, env=env)
           for i in pairs]
    sent = sum(json.loads(tx.communicate()[0].strip().splitlines()[-1])["sent"] for tx in txs)
    got = [json.loads(rx.communicate()[0].strip().splitlines()[-1]) for rx in rxs]
    received = sum(r["received"] for r in got)
    rate = sum(r["received"] / r["seconds"] for r in got if r["seconds"])
    return {"pps": rate, "sent": sent, "received": received, "loss": 1 - received / max(1, sent)}


def latency(endpoint, pair: int, samples: int) -> float:
    """Median time of one datagram aN -> bN at a time (sendto() to recv() returning), in ms."""
    pk = udp._sdk(endpoint)
    dst = (f"10.{100 + pair}.0.2", PORT + 1)
    rx = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns=f"b{pair}")
    rx.bind(dst)
    rx.settimeout(5)
    tx = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns=f"a{pair}")
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        tx.sendto(b"x", dst)
        rx.recv(16)
        out.append((time.perf_counter() - t0) * 1000)
    rx.close()
    tx.close()
    return sorted(out)[len(out) // 2]


def run(text: str, a, groups: list[list[int]], samples: int = 0) -> list[dict]:
    """One stack of `text`; each group of pairs measured in turn."""
    from pktflow import up
    d = tempfile.mkdtemp(prefix="pktflow-bench-shards-")
    path = os.path.join(d, "topology.yaml")
    with open(path, "w") as f:
        f.write(text)
    stack = up.Stack(path, port_base=a.port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    stack.start()
    try:
        out = []
        for pairs in groups:
            r = aggregate(stack.endpoint, pairs, a)
            if samples:
                r["p50_ms"] = latency(stack.endpoint, pairs[0], samples)
            out.append(r)
        return out
    finally:
        stack.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--samples", type=int, default=200, help="latency samples for the cable comparison")
    p.add_argument("--port-base", type=int, default=58050)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=["tx", "rx"])
    p.add_argument("--endpoint")
    p.add_argument("--pair", type=int)
    a = p.parse_args()
    if a.worker == "tx":
        return worker_tx(a.endpoint, a.pair, a.seconds, a.batch)
    if a.worker == "rx":
        return worker_rx(a.endpoint, a.pair)
    every = [list(range(a.pairs))]
    results = {f"{a.pairs} pairs, 1 shard": run(topology(a.pairs), a, every)[0],
               f"{a.pairs} pairs, 2 shards": run(topology(a.pairs, 2), a, every)[0]}
    inside, across = run(topology(2, 2, {"a0": 0, "b0": 0, "a1": 0, "b1": 1}), a, [[0], [1]], a.samples)
    results |= {"1 pair, cable in a shard": inside, "1 pair, cable between shards": across}
    if a.json:
        print(json.dumps(results, indent=1))
        return
    one, two = (results[f"{a.pairs} pairs, {n}"]["pps"] for n in ("1 shard", "2 shards"))
    print(f"UDP, 64-byte datagrams in sendmmsg batches of {a.batch}, {a.seconds:.0f} s, {os.cpu_count()} CPUs")
    for name, r in results.items():
        lat = f"  p50 {r['p50_ms']:.2f} ms" if "p50_ms" in r else ""
        print(f"{name:32} {r['pps']:9.0f} pkts/s  loss {r['loss']:5.1%}{lat}")
    print(f"2 shards / 1 shard: {two / one:.2f}; a cable between shards keeps {across['pps'] / inside['pps']:.0%} "
          f"of an in-shard cable's rate, latency {across['p50_ms'] - inside['p50_ms']:+.2f} ms")


if __name__ == "__main__":
    main()
