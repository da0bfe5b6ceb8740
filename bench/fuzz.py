"""A bounded fuzz run through the real services: mutated and random frames
from packet sockets on h1 and h2 into r1, the router of the default topology,
and from r1 back into h1 and h2. Afterwards every service is alive, none
logged a traceback, every frame any NIC received is accounted for, and a UDP
exchange and a ping h1 -> h2 go through again (at once, or once neighbour
probing has undone what fuzzed ARP did to r1's entries, as on Linux).

    python -m bench.fuzz [--frames 100000] [--seed 1] [--port-base 51250]

The accounting: deltas over the run, once every counter has stopped moving.
  wire:  every host's NICs received what the other ends sent, and the NICs
         sent what was fuzzed plus what the stacks themselves sent:
           sum rx_packets == sum tx_packets
                          == frames + IpOutTransmits + ArpOutRequests + ArpOutReplies
                                    + Ip6OutTransmits + link's Icmp6OutMsgs (neighbour
                                      discovery, router solicitations, MLD reports)
  fate:  in each host, every frame its NICs received ended as exactly one of
           rx_packets == ArpInConsumed                (ARP: answered or learnt from)
                       + IpForwDatagrams              (forwarded)
                       + IcmpInMsgs - IcmpInErrors - ip's INVALID_PROTO drops
                                                      (ICMP answered or taken in; icmp_rcv()
                                                      drops broadcast echoes and errors with
                                                      INVALID_PROTO without IcmpInErrors)
                       + UdpInDatagrams               (delivered to a socket)
                       + drops at nic, link, ip, transport (each with its reason)
         with IpReasmOKs 0 everywhere: no fuzzed fragments make a whole datagram
         (the seeds' fragments never complete one, and a mutated IP header fails
         its checksum), so every fragment ends as a drop (FRAG_REASM_TIMEOUT,
         DUP_FRAG, ...); ipfrag_time is 1 s here, so none is still waiting when
         the counters are read. (A reassembled datagram would count k fragments
         received and one fate.)
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

from bench import stacks

H1, R1_ETH0, R1_ETH1, H2 = "02:00:00:00:01:0a", "02:00:00:00:01:01", "02:00:00:00:02:01", "02:00:00:00:02:0a"
HOSTS = ("h1", "r1", "h2")
BATCH = 256
# The default topology, reassembly queues expiring after 1 s instead of 30.
TOPOLOGY = """hosts:
  h1:
    interfaces: {eth0: {mac: "02:00:00:00:01:0a", addresses: [10.0.1.10/24]}}
    routes: [default via 10.0.1.1]
    sysctls: {net.ipv4.ipfrag_time: 1}
  r1:
    interfaces:
      eth0: {mac: "02:00:00:00:01:01", addresses: [10.0.1.1/24]}
      eth1: {mac: "02:00:00:00:02:01", addresses: [10.0.2.1/24]}
    sysctls: {net.ipv4.ip_forward: 1, net.ipv4.ipfrag_time: 1}
  h2:
    interfaces: {eth0: {mac: "02:00:00:00:02:0a", addresses: [10.0.2.10/24]}}
    routes: [default via 10.0.2.1]
    sysctls: {net.ipv4.ipfrag_time: 1}
links:
  - [h1:eth0, r1:eth0]
  - [r1:eth1, h2:eth0]
"""
def seeds() -> list[tuple[str, str, bytes]]:
    """Real frames of every kind a host handles: (sender, its interface, frame)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, IPOption_Timestamp
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    e0, e1 = Ether(dst=R1_ETH0, src=H1), Ether(dst=R1_ETH1, src=H2)
    fwd = IP(src="10.0.1.10", dst="10.0.2.10")
    to_r1 = IP(src="10.0.1.10", dst="10.0.1.1")
    syn_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    frames = [
        ("h1", e0 / fwd / UDP(sport=5000, dport=7000) / (b"u" * 40)),
        ("h1", e0 / fwd / TCP(sport=5001, dport=80, flags="S", options=syn_opts)),
        ("h1", e0 / fwd / TCP(sport=5001, dport=80, flags="A", seq=1, ack=1) / b"data"),
        ("h1", e0 / to_r1 / TCP(sport=5002, dport=22, flags="S", options=syn_opts)),
        ("h1", e0 / to_r1 / TCP(sport=5002, dport=22, flags="SA", options=[("SAck", (1, 9)), ("EOL", None)])),
        ("h1", e0 / to_r1 / UDP(sport=5003, dport=53) / b"q"),
        ("h1", e0 / to_r1 / ICMP(type=8, id=7, seq=1) / (b"p" * 56)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.255") / ICMP(type=8, id=8, seq=1)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.2.10", flags="MF", id=77) / UDP(sport=1, dport=2) / (b"f" * 64)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", flags="MF", id=78) / ICMP(type=8) / (b"g" * 64)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", frag=9, id=79) / (b"g" * 64)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", options=[IPOption_RR()]) / UDP(sport=1, dport=2)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.2.10", options=[IPOption_Timestamp(flg=1)]) / ICMP(type=8)),
        ("h1", e0 / IP(src="10.0.1.10", dst="10.0.1.1", ihl=9, options=b"\x07\x27\x04" + bytes(13)) / UDP()),
        ("h1", e0 / to_r1 / ICMP(type=3, code=3) / IP(src="10.0.1.1", dst="10.0.1.10") / UDP(sport=53, dport=5003)),
        ("h1", e0 / fwd / ICMP(type=11) / IP(src="10.0.2.10", dst="10.0.1.10", ttl=0) / TCP(sport=80, dport=5001)),
        ("h1", Ether(dst="ff:ff:ff:ff:ff:ff", src=H1) / ARP(op=1, hwsrc=H1, psrc="10.0.1.10", pdst="10.0.1.1")),
        ("h1", e0 / ARP(op=2, hwsrc=H1, psrc="10.0.1.10", hwdst=R1_ETH0, pdst="10.0.1.1")),
        ("h1", e0 / Dot1Q(vlan=5) / fwd / UDP(sport=1, dport=2)),
        ("h1", e0 / Dot1Q(vlan=5) / Dot1Q(vlan=6) / fwd / UDP(sport=1, dport=2)),
        ("h1", Ether(dst=R1_ETH0, src=H1, type=0x86DD) / (b"\x60" + bytes(60))),      # IPv6, LLDP, MPLS, 0 and ~0
        ("h1", Ether(dst="01:80:c2:00:00:0e", src=H1, type=0x88CC) / bytes(40)),
        ("h1", Ether(dst=R1_ETH0, src=H1, type=0x8847) / b"\x00\x01\x01\x40" / fwd / UDP()),
        ("h1", Ether(dst=R1_ETH0, src=H1, type=0) / bytes(46)),
        ("h1", Ether(dst=R1_ETH0, src=H1, type=0xFFFF) / bytes(46)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10") / ICMP(type=3, code=4, nexthopmtu=1200) /
         IP(src="10.0.1.10", dst="10.0.2.10") / TCP(sport=5001, dport=80)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10", ttl=1) / UDP(sport=9, dport=9)),
        ("h2", e1 / IP(src="10.0.2.10", dst="10.0.1.10") / TCP(sport=80, dport=5001, flags="SA", ack=1,
                                                                options=syn_opts)),
        ("h2", Ether(dst="ff:ff:ff:ff:ff:ff", src=H2) / ARP(op=1, hwsrc=H2, psrc="10.0.2.10", pdst="10.0.2.1")),
        # r1 into the hosts: the same kinds, so their input paths are fuzzed too
        ("r1:eth0", Ether(dst=H1, src=R1_ETH0) / IP(src="10.0.2.10", dst="10.0.1.10") / UDP(sport=7000, dport=5000)),
        ("r1:eth0", Ether(dst=H1, src=R1_ETH0) / IP(src="10.0.1.1", dst="10.0.1.10") /
         ICMP(type=3, code=4, nexthopmtu=576) / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=5000, dport=7000)),
        ("r1:eth1", Ether(dst=H2, src=R1_ETH1) / IP(src="10.0.1.10", dst="10.0.2.10") /
         TCP(sport=5001, dport=80, flags="S", options=syn_opts)),
        ("r1:eth1", Ether(dst=H2, src=R1_ETH1) / IP(src="10.0.1.10", dst="10.0.2.10", flags="MF", id=5) /
         ICMP(type=8) / (b"h" * 32)),
        ("r1:eth1", Ether(dst="ff:ff:ff:ff:ff:ff", src=R1_ETH1) / ARP(op=1, hwsrc=R1_ETH1, psrc="10.0.2.1",
                                                                      pdst="10.0.2.10")),
    ]
    return [(side, bytes(f)) for side, f in frames]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """Byte flips past the MAC addresses (so most frames get in), extreme
    header fields, truncations, garbage tails, or random bytes."""
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
        i, n = rng.choice(((off, 1), (off + 2, 2), (off + 6, 2), (off + 8, 1), (off + 9, 1), (off + 20, 4)))
        if i + n <= len(data):
            data[i:i + n] = rng.choice((b"\x00" * n, b"\xff" * n))
    return bytes(data)


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ledger() -> dict:
    """Every host's NIC stats and every layer's counters, drops by reason included."""
    from pktflow import _client
    out = {}
    for ns in HOSTS:
        for d in json.loads(_client.admin("nic", ns, "link").json):
            for k in ("rx_packets", "tx_packets"):
                out[f"{ns}.{k}"] = out.get(f"{ns}.{k}", 0) + d["stats"].get(k, 0)
        for layer in ("nic", "link", "ip", "transport"):
            for c in _client.admin(layer, ns, "counters").counters:
                out[f"{ns}.{layer}.{c.name}"] = c.value
    return out


def account(before: dict, after: dict, frames: int) -> dict:
    """The identities of the module's docstring, from the deltas."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    fates, drops, stack_sent, reassembled = {}, {}, 0, 0
    for ns in HOSTS:
        c = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith(ns + ".")}
        own = {k: v for k, v in c.items() if ".Drop" in k and v}           # "ip.DropIP_CSUM": 3
        fate = {"arp": c.get("link.ArpInConsumed", 0), "forwarded": c.get("ip.IpForwDatagrams", 0),
                "icmp": c.get("ip.IcmpInMsgs", 0) - c.get("ip.IcmpInErrors", 0) - c.get("ip.DropINVALID_PROTO", 0),
                "to sockets": c.get("transport.UdpInDatagrams", 0), "dropped": sum(own.values())}
        fates[ns] = {"received": c.get("rx_packets", 0), "accounted": sum(fate.values()), **fate}
        for k, v in own.items():
            reason = k.split(".Drop", 1)[1]
            drops[reason] = drops.get(reason, 0) + v
        stack_sent += sum(c.get(k, 0) for k in ("ip.IpOutTransmits", "link.ArpOutRequests", "link.ArpOutReplies",
                                                "ip.Ip6OutTransmits", "link.Icmp6OutMsgs"))
        reassembled += c.get("ip.IpReasmOKs", 0)
    rx, tx = (sum(d.get(f"{ns}.{k}", 0) for ns in HOSTS) for k in ("rx_packets", "tx_packets"))
    wire = {"rx": rx, "tx": tx, "fuzzed + stack_sent": frames + stack_sent}
    holds = reassembled == 0 and rx == tx == frames + stack_sent and \
        all(f["received"] == f["accounted"] for f in fates.values())
    return {"holds": holds, "reassembled": reassembled, "wire": wire, "fate": fates,
            "drops": dict(sorted(drops.items(), key=lambda kv: -kv[1]))}


def settle(timeout: float = 30.0) -> dict:
    """The counters once they stop moving (frames in flight, reassembly timers)."""
    last, now = None, ledger()
    deadline = time.monotonic() + timeout
    while now != last and time.monotonic() < deadline:
        time.sleep(1.2)
        last, now = now, ledger()
    return now


def legitimate(pktflow, timeout: float = 30.0) -> tuple[bool, float]:
    """A UDP datagram h1 -> h2 and its echo, then a ping, within `timeout`
    (fuzzed ARP may have poisoned a neighbour entry: probing repairs it)."""
    t0 = time.monotonic()
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2")
    srv.bind(("10.0.2.10", 7007))
    srv.settimeout(1)
    cli = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
    cli.settimeout(1)
    ok = False
    try:
        while not ok and time.monotonic() - t0 < timeout:
            try:
                cli.sendto(b"hello", ("10.0.2.10", 7007))
                data, peer = srv.recvfrom(100)
                srv.sendto(data.upper(), peer)
                ok = cli.recvfrom(100)[0] == b"HELLO"
            except (TimeoutError, OSError):
                pass
        ok = ok and pktflow.ping("10.0.2.10", netns="h1", count=1, timeout=5).received == 1
    finally:
        cli.close()
        srv.close()
    return ok, round(time.monotonic() - t0, 1)


def run(frames: int, seed: int, port_base: int) -> dict:
    import pktflow
    from pktflow.up import Stack
    logs = tempfile.mkdtemp(prefix="pktflow-fuzz-")
    topo = os.path.join(logs, "topology.yaml")
    with open(topo, "w") as f:
        f.write(TOPOLOGY)
    stack = Stack(topo, port_base=port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"},
                  log_dir=logs)
    with stacks.started(stack, restart=False):          # a crash must show, not be healed
        procs = dict(stack.procs)
        rng = random.Random(seed)
        pool = seeds()
        socks = {}
        for side in {side for side, _ in pool}:
            host, _, dev = side.partition(":")
            socks[side] = pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns=host)
            socks[side].bind((dev or "eth0", 0))
        for dst in ("10.0.1.10", "10.0.2.10"):           # the neighbours resolved before the count starts
            assert pktflow.ping(dst, netns="r1", count=1, timeout=5).received == 1
        rss0 = {name: rss_kb(p.pid) for name, p in procs.items()}
        before = settle()
        t0 = time.monotonic()
        sent = 0
        while sent < frames:
            batch = {side: [] for side in socks}
            for _ in range(min(BATCH, frames - sent)):
                side, frame = rng.choice(pool)
                batch[side].append((mutate(rng, frame), None))
            for side, msgs in batch.items():
                if msgs:
                    sent += socks[side].sendmmsg(msgs)
        for s in socks.values():
            s.close()
        last, after = None, ledger()                     # taken in when r1's counters stop moving
        while after != last:
            done = time.monotonic()
            time.sleep(0.3)
            last, after = after, ledger()
        elapsed = done - t0
        after = settle()                                 # and the reassembly queues expired
        accounting = account(before, after, sent)
        legit, legit_s = legitimate(pktflow)
        alive = {name: p.poll() is None for name, p in procs.items()}
        rss1 = {name: rss_kb(p.pid) for name, p in procs.items()}
    tracebacks = {}
    for name in sorted(os.listdir(logs)):
        text = open(os.path.join(logs, name), errors="replace").read()
        if "Traceback" in text:
            at = text.index("Traceback")
            tracebacks[name] = text[max(0, at - 300):at + 3000]
    return {"frames": sent, "seconds": round(elapsed, 1), "frames_per_s": round(sent / elapsed),
            "alive": alive, "tracebacks": tracebacks, "legitimate_after": legit, "legitimate_after_s": legit_s,
            "rss_kb": {name: {"before": rss0[name], "after": rss1[name]} for name in rss0},
            "accounting": accounting, "logs": logs}


def ok(r: dict) -> bool:
    return all(r["alive"].values()) and not r["tracebacks"] and r["legitimate_after"] and r["accounting"]["holds"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port-base", type=int, default=51250)
    a = p.parse_args()
    r = run(a.frames, a.seed, a.port_base)
    print(json.dumps(r, indent=1))
    for name, excerpt in r["tracebacks"].items():
        print(f"\n--- {name} ---\n{excerpt}", file=sys.stderr)
    sys.exit(0 if ok(r) else 1)


if __name__ == "__main__":
    main()
