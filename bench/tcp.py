"""TCP h1 -> h2 across the router: bulk throughput and connection set-up rate,
for pktflow with tracing off and on, and with TSO, GSO and GRO off (tracing
off) to show what the offloads save, with the bare chain (bench/bare_chain.py)
measured in the same run for scale: its UDP packets/s times the MSS (1448
bytes) is what the same hops could carry if every packet were a full segment.

    python -m bench.tcp [--seconds 5] [--connections 200] [--json] [-6]
    python -m bench.tcp --cc reno,cubic,bbr [--netem "delay 20ms loss 1%"] [--seconds 10]

Bulk: one connection; one process writes with sendall() in 1 MiB calls for
--seconds, another reads; the rate is bytes received per second of receiving.
Set-up: connect(), accept(), close() one connection after another.
-6: the same over IPv6 (h2's 2001:db8:2::10).

--cc: the congestion controls side by side, as on Linux: one stack (tracing
off), `tc qdisc add dev eth1 root netem ...` on r1 (the h1 -> h2 direction),
then one bulk transfer per congestion control (TCP_CONGESTION on the sender),
each reporting throughput and the sender's retransmitted segments
(TcpRetransSegs) and HyStart exits (TCPHystart*Detect).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from . import stacks, udp

MSS = 1448
PORT = 5001
H2 = {4: "10.0.2.10", 6: "2001:db8:2::10"}


def _sdk(endpoint):
    os.environ["PKTFLOW_ENDPOINT"] = endpoint
    import pktflow
    return pktflow


def _family(pk, family: int):
    return pk.AF_INET6 if family == 6 else pk.AF_INET


def worker_rx(endpoint, port, family=4):
    pk = _sdk(endpoint)
    srv = pk.socket(_family(pk, family), pk.SOCK_STREAM, netns="h2")
    srv.bind((H2[family], port))
    srv.listen(8)
    print(json.dumps({"ready": True}), flush=True)
    conn, _ = srv.accept()
    got, first = 0, None
    while True:
        d = conn.recv(1 << 20)
        if not d:
            break
        first = first or time.perf_counter()
        got += len(d)
    print(json.dumps({"received": got, "seconds": time.perf_counter() - first}), flush=True)


def worker_tx(endpoint, port, seconds, cc=None, family=4):
    pk = _sdk(endpoint)
    c = pk.socket(_family(pk, family), pk.SOCK_STREAM, netns="h1")
    if cc:
        c.setsockopt(pk.IPPROTO_TCP, pk.TCP_CONGESTION, cc.encode())
    c.connect((H2[family], port))
    chunk = os.urandom(1 << 20)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        c.sendall(chunk)
        sent += len(chunk)
    c.close()
    print(json.dumps({"sent": sent}), flush=True)


def bulk(endpoint, a, cc: str = "", port: int = PORT) -> dict:
    env = os.environ | {"PYTHONPATH": str(stacks.HERE.parent)}
    six = ["-6"] if getattr(a, "family", 4) == 6 else []
    rx = subprocess.Popen([sys.executable, "-m", "bench.tcp", "--worker", "rx", "--endpoint", endpoint,
                           "--port", str(port), *six], stdout=subprocess.PIPE, text=True, env=env)
    assert json.loads(rx.stdout.readline())["ready"]
    subprocess.run([sys.executable, "-m", "bench.tcp", "--worker", "tx", "--endpoint", endpoint,
                    "--seconds", str(a.seconds), "--port", str(port), *six] + (["--cc-name", cc] if cc else []),
                   stdout=subprocess.PIPE, env=env, check=True)
    r = json.loads(rx.communicate()[0].strip().splitlines()[-1])
    return {"mbps": r["received"] / r["seconds"] / 1e6, "bytes": r["received"]}


def setup_rate(endpoint, n: int, family: int = 4) -> float:
    pk = _sdk(endpoint)
    srv = pk.socket(_family(pk, family), pk.SOCK_STREAM, netns="h2")
    srv.bind((H2[family], PORT + 1))
    srv.listen(128)

    def accept_loop():
        for _ in range(n):
            conn, _ = srv.accept()
            conn.close()
    t = threading.Thread(target=accept_loop)
    t.start()
    start = time.perf_counter()
    for _ in range(n):
        c = pk.socket(_family(pk, family), pk.SOCK_STREAM, netns="h1")
        c.connect((H2[family], PORT + 1))
        c.close()
    t.join()
    rate = n / (time.perf_counter() - start)
    srv.close()
    return rate


def h1_counters(names) -> dict:
    from pktflow import _client
    reply = _client.admin("transport", "h1", "counters")
    got = {c.name: c.value for c in reply.counters}
    return {n: got.get(n, 0) for n in names}


CC_COUNTERS = ("TcpRetransSegs", "TcpOutSegs", "TCPHystartTrainDetect", "TCPHystartDelayDetect", "TCPTimeouts")


def compare_cc(a) -> dict:
    """One stack, netem on r1's eth1, one bulk transfer per congestion control."""
    from pktflow import cli
    results = {}
    with stacks.pktflow(a.port_base, tracing=False) as ep:
        _sdk(ep)
        rc = cli.main(["tc", "-n", "r1", "qdisc", "add", "dev", "eth1", "root", "netem", *a.netem.split()])
        assert rc == 0, "tc qdisc add failed"
        for i, cc in enumerate(a.cc.split(",")):
            before = h1_counters(CC_COUNTERS)
            r = bulk(ep, a, cc=cc, port=PORT + 10 + i)
            after = h1_counters(CC_COUNTERS)
            r.update({n: after[n] - before[n] for n in CC_COUNTERS})
            results[cc] = r
    return results


def print_cc(a, results: dict):
    print(f"TCP h1 -> r1 -> h2, r1 eth1: netem {a.netem}; {a.seconds:.0f} s bulk transfer each, "
          f"{os.cpu_count()} CPUs")
    names = list(results)
    print(f"{'':26}" + "".join(f"{n:>12}" for n in names))
    rows = (("throughput MB/s", lambda r: f"{r['mbps']:.2f}"),
            ("segments sent", lambda r: f"{r['TcpOutSegs']}"),
            ("retransmitted segments", lambda r: f"{r['TcpRetransSegs']}"),
            ("retransmitted %", lambda r: f"{100 * r['TcpRetransSegs'] / max(r['TcpOutSegs'], 1):.2f}"),
            ("RTO timeouts", lambda r: f"{r['TCPTimeouts']}"),
            ("HyStart exits", lambda r: f"{r['TCPHystartTrainDetect'] + r['TCPHystartDelayDetect']}"))
    for label, fmt in rows:
        print(f"{label:26}" + "".join(f"{fmt(results[n]):>12}" for n in names))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--port-base", type=int, default=51050)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=["tx", "rx"])
    p.add_argument("--endpoint")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--cc", help="compare these congestion controls, e.g. reno,cubic,bbr")
    p.add_argument("--netem", default="delay 20ms loss 1%", help="the impairment on r1 eth1 for --cc")
    p.add_argument("--cc-name", help=argparse.SUPPRESS)
    p.add_argument("-6", dest="family", action="store_const", const=6, default=4, help="TCP over IPv6")
    a = p.parse_args()
    if a.worker == "rx":
        return worker_rx(a.endpoint, a.port, a.family)
    if a.worker == "tx":
        return worker_tx(a.endpoint, a.port, a.seconds, a.cc_name, a.family)
    if a.cc:
        results = compare_cc(a)
        if a.json:
            print(json.dumps(results, indent=1))
        else:
            print_cc(a, results)
        return
    ua = argparse.Namespace(seconds=a.seconds, size=64, batch=64, latency_samples=20, port_base=a.port_base)
    with stacks.bare(a.port_base) as ep:
        bare_pps = udp.measure(ep, ua)["pps"]
    mss = MSS - 20 if a.family == 6 else MSS          # IPv6's header is 20 bytes longer
    results = {"bare chain": {"mbps": bare_pps * mss / 1e6, "pps": bare_pps}}
    runs = (("pktflow, tracing off", False, True), ("pktflow, tracing on", True, True),
            ("tracing off, no offloads", False, False))
    for name, tracing, offloads in runs:
        with stacks.pktflow(a.port_base, tracing) as ep:
            if not offloads:
                os.environ["PKTFLOW_ENDPOINT"] = ep
                stacks.set_offloads(False)
            r = bulk(ep, a)
            r["conn_per_s"] = setup_rate(ep, a.connections, a.family)
            results[name] = r
    if a.json:
        print(json.dumps(results, indent=1))
        return
    base = results["bare chain"]["mbps"]
    print(f"TCP{'/IPv6' if a.family == 6 else ''} h1 -> r1 -> h2, {a.seconds:.0f} s bulk transfer, "
          f"{a.connections} connections set up, "
          f"{os.cpu_count()} CPUs")
    print(f"{'':22} {'MB/s':>7} {'vs bare x MSS':>14} {'connections/s':>14}")
    print(f"{'bare chain':22} {base:7.1f} {'100.0%':>14} {'':>14}   "
          f"({results['bare chain']['pps']:.0f} UDP packets/s x {mss} bytes)")
    for name, *_ in runs:
        r = results[name]
        print(f"{name:22} {r['mbps']:7.1f} {r['mbps'] / base:14.1%} {r['conn_per_s']:14.0f}")


if __name__ == "__main__":
    main()
