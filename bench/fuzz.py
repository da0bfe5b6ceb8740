"""A bounded fuzz run through the real services: mutated and random frames
from h1's and h2's packet sockets into r1, the router of the default topology.
Afterwards every service is alive, none logged a traceback, every frame r1's
NICs received is accounted for (handed to ip, handled as ARP, or dropped with
a reason), and a ping goes through again (at once, or once neighbour
probing has undone what fuzzed ARP did to r1's entry for h1, as on Linux).

    python -m bench.fuzz [--frames 100000] [--seed 1] [--port-base 51250]

The accounting, summed over r1's interfaces (the deltas of the run):
    nic rx_packets == ip IpInReceives + ip drops before it (OTHERHOST)
                      + ARP frames consumed (ArpInConsumed) + link drops + nic drops (each by reason)
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

from bench import stacks  # noqa: F401  (the benchmarks' topology and stack helpers)

H1, R1_ETH0, R1_ETH1, H2 = "02:00:00:00:01:0a", "02:00:00:00:01:01", "02:00:00:00:02:01", "02:00:00:00:02:0a"
BATCH = 256


def seeds() -> list[tuple[str, bytes]]:
    """Real frames of every kind r1 handles, from h1's (eth0) or h2's side (eth1)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    e0, e1 = Ether(dst=R1_ETH0, src=H1), Ether(dst=R1_ETH1, src=H2)
    fwd = IP(src="10.0.1.10", dst="10.0.2.10")
    frames = [
        ("h1", e0 / fwd / UDP(sport=5000, dport=7000) / (b"u" * 40)),
        ("h1", e0 / fwd / TCP(sport=5001, dport=80, flags="S", options=[("MSS", 1460), ("SAckOK", b""),
                                                                         ("Timestamp", (1, 0)), ("WScale", 7)])),
        ("h1", e0 / fwd / TCP(sport=5001, dport=80, flags="A", seq=1, ack=1) / b"data"),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1") / TCP(sport=5002, dport=22, flags="S")),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1") / UDP(sport=5003, dport=53) / b"q"),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1") / ICMP(type=8, id=7, seq=1) / (b"p" * 56)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.2.10", flags="MF", id=77) / UDP(sport=1, dport=2) / (b"f" * 64)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", frag=8, id=78) / (b"g" * 64)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", options=[IPOption_RR()]) / UDP(sport=1, dport=2)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1") / ICMP(type=3, code=3) /
         IP(src="10.0.1.1", dst="10.0.1.10") / UDP(sport=53, dport=5003)),
        ("h1", Ether(dst="ff:ff:ff:ff:ff:ff", src=H1) / ARP(op=1, hwsrc=H1, psrc="10.0.1.10", pdst="10.0.1.1")),
        ("h1", e0 / ARP(op=2, hwsrc=H1, psrc="10.0.1.10", hwdst=R1_ETH0, pdst="10.0.1.1")),
        ("h1", e0 / Dot1Q(vlan=5) / fwd / UDP(sport=1, dport=2)),
        ("h1", e0 / Dot1Q(vlan=5) / Dot1Q(vlan=6) / fwd / UDP(sport=1, dport=2)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10") / ICMP(type=3, code=4, nexthopmtu=1200) /
         IP(src="10.0.1.10", dst="10.0.2.10") / TCP(sport=5001, dport=80)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10", ttl=1) / UDP(sport=9, dport=9)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10") / TCP(sport=80, dport=5001, flags="SA", ack=1)),
    ]
    return [(side, bytes(f)) for side, f in frames]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """Byte flips past the MAC addresses (so most frames reach r1's stack),
    extreme header fields, truncations, garbage tails, or random bytes."""
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(14, 200))
    data = bytearray(frame)
    if kind <= 5:
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(12, len(data))
            data[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif kind == 6:
        del data[rng.randrange(14, len(data)):]
    elif kind == 7:
        data += rng.randbytes(rng.randrange(1, 64))
    elif kind == 8 and len(data) > 34:                # IP header fields at their extremes
        off = 14 if data[12:14] == b"\x08\x00" else 18
        field = rng.choice(((off, 1), (off + 2, 2), (off + 6, 2), (off + 8, 1), (off + 9, 1)))
        i, n = field
        if i + n <= len(data):
            data[i:i + n] = rng.choice((b"\x00" * n, b"\xff" * n))
    return bytes(data)


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ledger(netns: str) -> dict:
    """The counters the accounting sums, for one host."""
    from pktflow import _client
    nic = json.loads(_client.admin("nic", netns, "link").json)
    out = {"rx_packets": sum(d["stats"].get("rx_packets", 0) for d in nic)}
    for layer in ("nic", "link", "ip"):
        for c in _client.admin(layer, netns, "counters").counters:
            out[f"{layer}.{c.name}"] = c.value
    return out


def account(before: dict, after: dict) -> dict:
    d = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    parts = {
        "ip": d.get("ip.IpInReceives", 0) + d.get("ip.DropOTHERHOST", 0),
        "arp": d.get("link.ArpInConsumed", 0),
        "link drops": sum(v for k, v in d.items() if k.startswith("link.Drop")),
        "nic drops": sum(v for k, v in d.items() if k.startswith("nic.Drop")),
    }
    return {"received": d["rx_packets"], "accounted": sum(parts.values()), **parts,
            "drops": {k.split(".Drop", 1)[1]: v for k, v in sorted(d.items(), key=lambda kv: -kv[1])
                      if ".Drop" in k and v}}


def run(frames: int, seed: int, port_base: int) -> dict:
    import pktflow
    from pktflow.up import Stack
    logs = tempfile.mkdtemp(prefix="pktflow-fuzz-")
    stack = Stack(port_base=port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"}, log_dir=logs)
    stack.start(restart=False)                       # a crash must show, not be healed
    saved = os.environ.get("PKTFLOW_ENDPOINT")
    os.environ["PKTFLOW_ENDPOINT"] = stack.endpoint
    try:
        rng = random.Random(seed)
        pool = seeds()
        socks = {}
        for side in ("h1", "h2"):
            socks[side] = pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns=side)
            socks[side].bind(("eth0", 0))
        assert pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=5).received == 1   # ARP settled first
        rss0 = {name: rss_kb(p.pid) for name, p in stack.procs.items()}
        before = ledger("r1")
        t0 = time.monotonic()
        sent = 0
        while sent < frames:
            batch = {"h1": [], "h2": []}
            for _ in range(min(BATCH, frames - sent)):
                side, frame = rng.choice(pool)
                batch[side].append((mutate(rng, frame), None))
            for side, msgs in batch.items():
                if msgs:
                    sent += socks[side].sendmmsg(msgs)
        for s in socks.values():
            s.close()
        # the last frames are in flight: r1 is done when its counters stop moving
        last, after = None, ledger("r1")
        while after != last:
            settled = time.monotonic()
            time.sleep(0.5)
            last, after = after, ledger("r1")
        elapsed = settled - t0
        # Fuzzed ARP can poison r1's neighbour entry for h1 (as on Linux): the ping goes
        # through again once neighbour probing has found the entry wrong and resolved it anew.
        t1 = time.monotonic()
        while not (ping_ok := pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=1).received == 1) and \
                time.monotonic() - t1 < 30:
            pass
        ping_s = round(time.monotonic() - t1, 1)
        alive = {name: p.poll() is None for name, p in stack.procs.items()}
        rss1 = {name: rss_kb(p.pid) for name, p in stack.procs.items()}
    finally:
        stack.stop()
        if saved is None:
            os.environ.pop("PKTFLOW_ENDPOINT", None)
        else:
            os.environ["PKTFLOW_ENDPOINT"] = saved
    tracebacks = {}
    for name in os.listdir(logs):
        text = open(os.path.join(logs, name), errors="replace").read()
        if "Traceback" in text:
            at = text.index("Traceback")
            tracebacks[name] = text[at:at + 2000]
    return {"frames": sent, "seconds": round(elapsed, 1), "frames_per_s": round(sent / elapsed),
            "alive": alive, "tracebacks": tracebacks, "ping_after": ping_ok, "ping_after_s": ping_s,
            "rss_kb": {name: [rss0[name], rss1[name]] for name in rss0}, "r1": account(before, after), "logs": logs}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port-base", type=int, default=51250)
    a = p.parse_args()
    r = run(a.frames, a.seed, a.port_base)
    print(json.dumps(r, indent=1))
    ok = all(r["alive"].values()) and not r["tracebacks"] and r["ping_after"] and \
        r["r1"]["received"] == r["r1"]["accounted"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
