"""CPU time each service spends per datagram at a fixed offered load below
capacity (UDP h1 -> h2 across the router, sendmmsg batches every 20 ms,
tracing off). On a shared machine packets/s swings with what the neighbours
do; the services' own CPU time (utime + stime from /proc, which leaves out
time stolen by the host) per datagram, at the same batch sizes, is the
steadier figure for comparing two commits: run it in each, alternately.

    python -m bench.cpu [--batches 300] [--batch 64] [--size 64]
"""
import argparse
import json
import os
import subprocess
import sys
import time

from bench import stacks
from bench.udp import DST, HDR, HERE

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(a) -> dict:
    from pktflow import up
    procs = {}
    start = up.Stack.start

    def start_and_note(self, *args, **kw):
        start(self, *args, **kw)
        procs.update(self.procs)
    up.Stack.start = start_and_note
    try:
        with stacks.pktflow(a.port_base, tracing=False) as endpoint:
            env = os.environ | {"PYTHONPATH": str(HERE.parent)}
            rx = subprocess.Popen([sys.executable, "-m", "bench.udp", "--worker", "rx", "--endpoint", endpoint],
                                  stdout=subprocess.PIPE, text=True, env=env)
            assert json.loads(rx.stdout.readline())["ready"]
            os.environ["PKTFLOW_ENDPOINT"] = endpoint
            import pktflow
            s = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
            s.sendto(HDR.pack(0, time.time_ns()), DST)         # ARP resolved before the count starts
            time.sleep(0.5)
            before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
            pad = b"\0" * max(0, a.size - HDR.size)
            t = time.monotonic()
            for k in range(a.batches):
                s.sendmmsg([(HDR.pack(k, time.time_ns()) + pad, DST)] * a.batch)
                t += a.every
                time.sleep(max(0.0, t - time.monotonic()))
            got = json.loads(rx.communicate()[0].strip().splitlines()[-1])["received"]
            after = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    finally:
        up.Stack.start = start
    per = {name: (after[name] - before[name]) / max(1, got) * 1e6 for name in before}
    return {"sent": a.batches * a.batch + 1, "received": got, "us_per_datagram": per, "total_us": sum(per.values())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch", type=int, default=64, help="datagrams per sendmmsg()")
    p.add_argument("--every", type=float, default=0.02, help="seconds between batches")
    p.add_argument("--size", type=int, default=64, help="UDP payload bytes")
    p.add_argument("--port-base", type=int, default=51150)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = measure(a)
    if a.json:
        print(json.dumps(r, indent=1))
        return
    per = r["us_per_datagram"]
    print(f"UDP h1 -> r1 -> h2, {a.size}-byte datagrams, {a.batch} every {a.every * 1000:.0f} ms, tracing off: "
          f"{r['received']} of {r['sent']} received")
    print("CPU us per datagram: " + "  ".join(f"{k} {v:.1f}" for k, v in per.items()) +
          f"  total {r['total_us']:.1f}")


if __name__ == "__main__":
    main()
