"""Floods through the real services, one after the other, each a fixed number of
frames from a packet socket, while a legitimate client keeps trying:

  udp   datagrams from h1 at a UDP socket on h2 that never reads
  syn   SYNs from random spoofed sources at a listener on h2 (SYN cookies)
  frag  first fragments from h1 of datagrams to h2 that never complete (ipfrag_high_thresh)
  arp   ARP requests for r1 from random spoofed senders (the neighbour table's GC)

Each sends at most --frames frames for at most --max-seconds, in sendmmsg()
batches of 256. For each: the services' RSS before, at its peak (sampled every
0.2 s) and after; the drops by reason; the counters that tell the story (for
ARP, r1's neighbour table: its size at the peak and after, GC runs, table
fulls); how the legitimate client fared (attempts, successes, worst latency,
how soon after the flood it got through). At the end every service must be
alive and no log may hold a traceback.

    python -m bench.flood [--frames 30000] [--max-seconds 60] [--only udp,syn,frag,arp] [--port-base 37050]
"""
import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter

from bench import stacks
from bench.fuzz import BATCH, H1, HOSTS, R1_ETH0, rss_kb

FLOODS = ("udp", "syn", "frag", "arp")       # arp last: its aftermath in r1's neighbour table outlives it
# The host to watch and its counters; the first is the flood's own (the legitimate client's
# traffic moves the others), read to tell when the flood has been taken in.
WATCH = {"udp": ("h2", ("UdpRcvbufErrors", "UdpInDatagrams")),
         "syn": ("h2", ("TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
                        "TcpExtListenOverflows", "TcpPassiveOpens")),
         "arp": ("r1", ("ArpInRequests", "ArpOutReplies")),
         "frag": ("h2", ("IpReasmReqds", "IpReasmFails", "IpReasmTimeout", "IpReasmOKs"))}


def frames_for(kind: str, n: int, rng: random.Random) -> list[bytes]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    e0 = Ether(dst=R1_ETH0, src=H1)

    def spoofed():
        return f"10.{rng.randrange(3, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == "udp":
        f = bytes(e0 / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=5555, dport=9000) / (b"u" * 100))
        return [f] * n
    if kind == "syn":
        return [bytes(e0 / IP(src=spoofed(), dst="10.0.2.10") /
                      TCP(sport=rng.randrange(1024, 65536), dport=80, flags="S", seq=rng.getrandbits(32),
                          options=[("MSS", 1460)])) for _ in range(n)]
    if kind == "arp":
        out = []
        for _ in range(n):
            mac = "02:%02x:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256) for _ in range(5))
            out.append(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) /
                             ARP(op=1, hwsrc=mac, psrc=spoofed(), pdst="10.0.1.1")))
        return out
    return [bytes(e0 / IP(src=spoofed(), dst="10.0.2.10", id=rng.randrange(65536), flags="MF") /
                  UDP(sport=1, dport=9001) / (b"f" * 1000)) for _ in range(n)]


def legit(kind: str, stop: threading.Event, result: dict):
    """The client that should still get through: TCP connects for the SYN flood,
    a UDP exchange for the others (h1 -> h2 through r1)."""
    import pktflow
    lat = []
    attempts = 0
    while not stop.is_set() or attempts == 0:
        attempts += 1
        t = time.monotonic()
        try:
            if kind == "syn":
                with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as c:
                    c.settimeout(5)
                    c.connect(("10.0.2.10", 80))
            else:
                with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
                    c.settimeout(5)
                    c.sendto(b"hello", ("10.0.2.10", 7007))
                    c.recvfrom(100)
            lat.append(time.monotonic() - t)
        except OSError:
            pass
        stop.wait(0.2)
    result.update(attempts=attempts, ok=len(lat), worst_ms=round(max(lat) * 1000) if lat else None)


def _once() -> threading.Event:
    ev = threading.Event()
    ev.set()                                 # legit() makes one attempt when stop is already set
    return ev


def drops() -> Counter:
    """Drops so far by (host, reason), from every layer."""
    from pktflow import _client
    out = Counter()
    for ns in HOSTS:
        for layer in ("nic", "link", "ip", "transport"):
            for c in _client.admin(layer, ns, "counters").counters:
                if c.name.startswith("Drop"):
                    out[ns, c.name[4:]] += c.value
    return out


def counters(netns: str) -> Counter:
    from pktflow import _client
    return Counter({c.name: c.value for layer in ("ip", "transport", "link")
                    for c in _client.admin(layer, netns, "counters").counters})


def ntable() -> dict:
    """r1's neighbour table: entries, gc_thresh1..3, GC runs, table fulls."""
    from pktflow import _client
    return json.loads(_client.admin("link", "r1", "ntable").json)


def settle(netns: str, name: str, timeout: float = 30.0) -> float:
    """When the flood was taken in: the monotonic time the flood's own counter
    stopped moving (by at most 5 in 0.5 s: the legitimate client's SYNs move
    SyncookiesSent too; drops are not watched, as the SYN queue's SYN-ACK
    retransmissions keep dropping at r1 for 30 s). At most `timeout`."""
    last, now = None, counters(netns)[name]
    deadline = time.monotonic() + timeout
    while (last is None or now - last > 5) and time.monotonic() < deadline:
        settled = time.monotonic()
        time.sleep(0.5)
        last, now = now, counters(netns)[name]
    return settled


def reassembly_over(netns: str, before: Counter, timeout: float = 45.0):
    """Until every fragment queued has left reassembly (each datagram here is one
    fragment: IpReasmFails, at ipfrag_high_thresh or at ipfrag_time, 30 s, catches
    up with IpReasmReqds), so the timeouts and the memory freed count for this flood."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = counters(netns)
        if c["IpReasmFails"] - before["IpReasmFails"] >= c["IpReasmReqds"] - before["IpReasmReqds"]:
            return
        time.sleep(1)


def one(stack, kind: str, n: int, max_s: float, rng: random.Random) -> dict:
    import pktflow
    frames = frames_for(kind, n, rng)
    netns, names = WATCH[kind]
    before_c, before_d, table0 = counters(netns), drops(), ntable()
    rss0 = {name: rss_kb(p.pid) for name, p in stack.procs.items()}
    peak = dict(rss0, neighbours=table0["entries"])
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.2):
            for name, p in stack.procs.items():
                peak[name] = max(peak[name], rss_kb(p.pid))
            if kind == "arp":
                peak["neighbours"] = max(peak["neighbours"], ntable()["entries"])
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stop, client = threading.Event(), {}
    t = threading.Thread(target=legit, args=(kind, stop, client), daemon=True)
    t.start()
    raw = pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns="h1")
    raw.bind(("eth0", 0))
    t0 = time.monotonic()
    sent = 0
    while sent < len(frames) and time.monotonic() - t0 < max_s:
        sent += raw.sendmmsg([(f, None) for f in frames[sent:sent + BATCH]])
    raw.close()
    sent_s = max(settle(netns, names[0]) - t0, 0.1)
    if kind == "frag":
        reassembly_over(netns, before_c)
    stop.set()
    t.join(30)
    after_flood = {}                         # how long after the flood the client gets through again
    t1 = time.monotonic()
    while not after_flood.get("ok") and time.monotonic() - t1 < 30:
        legit(kind, _once(), after_flood)
    client["recovered_after_s"] = round(time.monotonic() - t1, 1) if after_flood.get("ok") else None
    sampling.set()
    sampler.join()
    after_c, after_d, table1 = counters(netns), drops(), ntable()
    gc = {k: table1[k] - table0[k] for k in ("forced_gc_runs", "periodic_gc_runs", "table_fulls")}
    dropped, by_reason = after_d - before_d, Counter()
    for (_, reason), n in dropped.items():
        by_reason[reason] += n
    return {"frames": sent, "seconds": round(sent_s, 1), "frames_per_s": round(sent / sent_s),
            "rss_kb": {name: [rss0[name], peak[name], rss_kb(p.pid)] for name, p in stack.procs.items()},
            "drops": dict(by_reason.most_common(6)),
            "drops_by_host": {ns: {r: n for (h, r), n in sorted(dropped.items()) if h == ns} for ns in HOSTS},
            "counters": {k: after_c[k] - before_c[k] for k in names},
            "r1_neighbours": {"before": table0["entries"], "peak": peak["neighbours"], "after": table1["entries"],
                              "gc_thresh3": table1["gc_thresh3"], **gc},
            "legit": client}


def run(frames: int = 30_000, port_base: int = 37050, only=FLOODS, max_s: float = 60.0, seed: int = 1,
        log_dir: str | None = None) -> dict:
    import pktflow
    from pktflow.up import Stack
    logs = str(log_dir or tempfile.mkdtemp(prefix="pktflow-flood-"))
    stack = Stack(port_base=port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"}, log_dir=logs)
    rng = random.Random(seed)
    out = {}
    with stacks.started(stack, restart=False):                # a crash must show, not be healed
        sink = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2")
        sink.bind(("10.0.2.10", 9000))                        # never read
        listener = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
        listener.bind(("10.0.2.10", 80))
        listener.listen(128)
        echo = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2")
        echo.bind(("10.0.2.10", 7007))
        running = threading.Event()

        def serve():                                          # the UDP echo and accept() for the legit client
            echo.settimeout(0.2)
            listener.settimeout(0.2)
            while not running.is_set():
                try:
                    data, peer = echo.recvfrom(100)
                    echo.sendto(data, peer)
                except OSError:
                    pass
                try:
                    listener.accept()[0].close()
                except OSError:
                    pass
        server = threading.Thread(target=serve, daemon=True)
        server.start()
        assert pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=5).received == 1
        for kind in only:
            out[kind] = one(stack, kind, frames, max_s, rng)
        running.set()
        server.join(5)
        out["alive"] = {name: p.poll() is None for name, p in stack.procs.items()}
    out["tracebacks"] = {}
    for name in sorted(os.listdir(logs)):
        text = open(os.path.join(logs, name), errors="replace").read()
        if "Traceback" in text:
            out["tracebacks"][name] = text[text.index("Traceback"):][:3000]
    out["logs"] = logs
    return out


def table(r: dict) -> str:
    """The figures in a few lines: one a flood."""
    lines = [f"{'flood':5} {'frames':>7} {'s':>5} {'legit ok/tries':>14} {'worst ms':>8} {'back after s':>12}  "
             "RSS MB before/peak/after per service; drops by reason"]
    for kind in FLOODS:
        if kind in r:
            f, c = r[kind], r[kind]["legit"]
            rss = " ".join(f"{name} {b / 1024:.0f}/{p / 1024:.0f}/{a / 1024:.0f}"
                           for name, (b, p, a) in f["rss_kb"].items())
            lines.append(f"{kind:5} {f['frames']:>7} {f['seconds']:>5} {c['ok']:>6}/{c['attempts']:<7} "
                         f"{c['worst_ms'] if c['worst_ms'] is not None else '-':>8} "
                         f"{c['recovered_after_s'] if c['recovered_after_s'] is not None else 'never':>12}  {rss}; "
                         f"{f['drops']}")
    lines.append(f"alive {r['alive']}; tracebacks in {sorted(r['tracebacks']) or 'no log'}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=30_000, help="frames a flood, at most")
    p.add_argument("--max-seconds", type=float, default=60.0, help="sending time a flood, at most")
    p.add_argument("--only", default=",".join(FLOODS))
    p.add_argument("--port-base", type=int, default=37050)
    a = p.parse_args()
    r = run(a.frames, a.port_base, tuple(a.only.split(",")), a.max_seconds)
    print(json.dumps(r, indent=1))
    print(table(r), file=sys.stderr)
    sys.exit(0 if all(r["alive"].values()) and not r["tracebacks"] else 1)


if __name__ == "__main__":
    main()
