"""UDP h1 -> h2 across the router: packets/s and one-way latency, for pktflow
with tracing off and on, and for the bare chain (bench/bare_chain.py) in the
same run, so the figures are ratios against a baseline on the same machine;
and the rate of the layers' cores alone, in one process with no gRPC
(services/netstack): what the layers' own work costs.

    python -m bench.udp [--seconds 5] [--size 64] [--batch 64] [--json]

Throughput: one process sends sendmmsg() batches as fast as they are accepted
for --seconds, another receives with recvmmsg(); the rate is datagrams
received per second of receiving, loss is what did not arrive. Latency: one
datagram at a time (the next is sent when the last arrived), time from before
sendto() to after recvfrom() returns, so it includes the SDK's two RPCs.
"""
import argparse
import json
import os
import pathlib
import struct
import subprocess
import sys
import time

from . import stacks

HERE = pathlib.Path(__file__).resolve().parent
DST = ("10.0.2.10", 7000)
HDR = struct.Struct("!QQ")          # sequence, send time (ns)


def _sdk(endpoint):
    os.environ["PKTFLOW_ENDPOINT"] = endpoint
    import pktflow
    return pktflow


def worker_tx(endpoint, seconds, size, batch):
    pk = _sdk(endpoint)
    s = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns="h1")
    pad = b"\0" * max(0, size - HDR.size)
    seq, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.time_ns()
        msgs = [(HDR.pack(seq + i, now) + pad, DST) for i in range(batch)]
        seq += s.sendmmsg(msgs)
    print(json.dumps({"sent": seq}), flush=True)


def worker_rx(endpoint, idle, netns="h2", addr=DST):
    """Receives datagrams at `addr` on `netns` until `idle` seconds bring none; prints the
    count, the seconds between the first and the last, and one-way latencies (ms)."""
    pk = _sdk(endpoint)
    s = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns=netns)
    s.setsockopt(pk.SOL_SOCKET, pk.SO_RCVBUF, 1 << 25)
    s.bind(addr)
    print(json.dumps({"ready": True}), flush=True)
    got, first, last, lat = 0, None, None, []
    s.settimeout(idle)
    while True:
        try:
            msgs = s.recvmmsg(1024, 2048)
        except TimeoutError:
            break
        now = time.time_ns()
        first = first or now
        last = now
        got += len(msgs)
        lat.extend((now - HDR.unpack_from(m)[1]) / 1e6 for m, _ in msgs[::16])
    print(json.dumps({"received": got, "seconds": (last - first) / 1e9 if got > 1 else 0,
                      "lat": sorted(lat)}), flush=True)


def latency(endpoint, samples):
    pk = _sdk(endpoint)
    rx = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns="h2")
    rx.bind(DST)
    rx.settimeout(5)
    tx = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns="h1")
    out = []
    for i in range(samples + 20):
        t0 = time.perf_counter_ns()
        tx.sendto(HDR.pack(i, 0), DST)
        rx.recv(2048)
        if i >= 20:                      # the first ones resolve ARP
            out.append((time.perf_counter_ns() - t0) / 1e6)
    rx.close()
    tx.close()
    return sorted(out)


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def measure(endpoint, a) -> dict:
    lat = latency(endpoint, a.latency_samples)
    env = os.environ | {"PYTHONPATH": str(HERE.parent)}
    rx = subprocess.Popen([sys.executable, "-m", "bench.udp", "--worker", "rx", "--endpoint", endpoint],
                          stdout=subprocess.PIPE, text=True, env=env)
    assert json.loads(rx.stdout.readline())["ready"]
    tx = subprocess.run([sys.executable, "-m", "bench.udp", "--worker", "tx", "--endpoint", endpoint,
                         "--seconds", str(a.seconds), "--size", str(a.size), "--batch", str(a.batch)],
                        stdout=subprocess.PIPE, text=True, env=env, check=True)
    sent = json.loads(tx.stdout.strip().splitlines()[-1])["sent"]
    r = json.loads(rx.communicate()[0].strip().splitlines()[-1])
    rate = r["received"] / r["seconds"] if r["seconds"] else 0.0
    return {"pps": rate, "sent": sent, "received": r["received"], "loss": 1 - r["received"] / max(1, sent),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "loaded_p50_ms": pct(r["lat"], 50),
            "loaded_p99_ms": pct(r["lat"], 99)}


def run_cores(a, configure=None, clock=time.perf_counter) -> dict:
    """The same datagrams through every layer's core in one process
    (services/netstack): what the layers' own work costs, without gRPC,
    processes or the SDK. `configure(net)`, if given, sets the stack up first;
    `clock` may be time.process_time, which leaves out time stolen by neighbours."""
    from pktflow.services.netstack import Netstack
    from pktflow.services.wire import ipv4
    from pktflow.v1.skb_pb2 import ProtoCall
    net = Netstack()
    if configure is not None:
        configure(net)
    rx, tx = net.socket("h2", type_=2), net.socket("h1", type_=2)
    assert rx.bind(DST[0], DST[1]) == 0
    payload, daddr, last = b"\0" * a.size, ipv4.aton(DST[0]), a.batch - 1
    sent = received = 0
    t0 = clock()
    while clock() - t0 < a.seconds:
        for i in range(a.batch):            # one sendmmsg(), then the wire, then one recvmmsg()
            net.call("h1", tx.sk, ProtoCall.SENDMSG, data=payload, addr=daddr, port=DST[1], index=i,
                     last=i == last)
        sent += a.batch
        net.pump()
        got, freed = rx.s.dequeue(len(rx.s.rcvq))
        net.up.clear()
        received += len(got)
        net.call("h2", rx.sk, ProtoCall.RECVMSG, consumed=freed, segs=len(got))
    seconds = clock() - t0
    nan = float("nan")
    return {"pps": received / seconds, "sent": sent, "received": received, "loss": 1 - received / max(1, sent),
            "p50_ms": nan, "p99_ms": nan, "loaded_p50_ms": nan, "loaded_p99_ms": nan}


def run_bare(a) -> dict:
    with stacks.bare(a.port_base) as endpoint:
        return measure(endpoint, a)


def run_pktflow(a, tracing: bool) -> dict:
    with stacks.pktflow(a.port_base, tracing) as endpoint:
        return measure(endpoint, a)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--size", type=int, default=64, help="UDP payload bytes")
    p.add_argument("--batch", type=int, default=64, help="datagrams per sendmmsg()")
    p.add_argument("--latency-samples", type=int, default=300)
    p.add_argument("--port-base", type=int, default=51050)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=["tx", "rx"])
    p.add_argument("--endpoint")
    a = p.parse_args()
    if a.worker == "tx":
        return worker_tx(a.endpoint, a.seconds, a.size, a.batch)
    if a.worker == "rx":
        return worker_rx(a.endpoint, 3.0)
    results = {"bare chain": run_bare(a), "pktflow, tracing off": run_pktflow(a, False),
               "pktflow, tracing on": run_pktflow(a, True), "cores, one process": run_cores(a)}
    base = results["bare chain"]["pps"]
    off = results["pktflow, tracing off"]["pps"]
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"UDP h1 -> r1 -> h2, {a.size}-byte datagrams, sendmmsg batches of {a.batch}, {a.seconds:.0f} s each, "
          f"{os.cpu_count()} CPUs")
    print(f"{'':22} {'pkts/s':>9} {'vs bare':>8} {'loss':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'loaded p50':>11} {'loaded p99':>11}")
    for name, r in results.items():
        print(f"{name:22} {r['pps']:9.0f} {r['pps'] / base:8.1%} {r['loss']:6.1%} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['loaded_p50_ms']:11.1f} {r['loaded_p99_ms']:11.1f}")
    on = results["pktflow, tracing on"]["pps"]
    print(f"tracing on keeps {on / off:.0%} of the tracing-off rate")


if __name__ == "__main__":
    main()
