"""Kernel bypass against the full path, in one run on one stack (tracing off):

  latency   a small UDP request/reply h1 -> r1 -> h2, one at a time, answered on h2
            (a) by a UDP socket on port 9001 (h2's nic, link, ip, transport and socket
            services, both ways), (b) by an AF_XDP socket (h2's eth0: `xdp redirect xsk
            filter 'udp port 9000'`; the frame goes from h2's nic to the application and
            the reply from the application to the nic). The two alternate, one round
            trip each, so a busy neighbour slows both alike; (a)'s frames pass the same
            XDP program (a rule that does not match them). The round trip as h1's
            application sees it: median and p99, and their ratio.
  drop rate frames/s that h2 disposes of: (c) an XDP_DROP rule at h2's eth0 against
            (d) the full path dropping at a closed port (udp_rcv: UdpNoPorts). The
            frames come from an AF_XDP socket on r1's eth1, so they land on h2's cable
            without crossing r1's stack, in sendmmsg() batches as fast as they are taken;
            the rate is what reached the drop point over the time it took; the two
            alternate --rounds times, and the median is kept. With it, the steadier
            figure on a shared machine: the CPU time (utime + stime) each service spent
            per frame, the generator's share in the nic included for both. (e) is the
            NIC core alone in one process: frames through dma_rx() and the NAPI poll
            with the XDP_DROP rule, no gRPC.

    python -m bench.xdp [--samples 1000] [--frames 20000] [--batch 256] [--port-base 56050] [--json]

The servers on h2 run in a process of their own (`--serve udp|xsk`), as an
application would; h1's client is this process.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from . import stacks
from .cpu import cpu_seconds

HERE = pathlib.Path(__file__).resolve().parent
H2, PORT, UDP_PORT, CLOSED = "10.0.2.10", 9000, 9001, 9999


def _sdk(endpoint):
    os.environ["PKTFLOW_ENDPOINT"] = endpoint
    import pktflow
    return pktflow


def reply(frame: bytes) -> bytes:
    """An echo at layer 2: MACs, IP addresses and UDP ports swapped, the rest as it
    came. Swapping leaves both checksums right (each sums the same 16-bit words)."""
    ihl = (frame[14] & 0xF) * 4
    u = 14 + ihl
    return (frame[6:12] + frame[0:6] + frame[12:26] + frame[30:34] + frame[26:30] + frame[34:u]
            + frame[u + 2:u + 4] + frame[u:u + 2] + frame[u + 4:])


def serve(endpoint: str, kind: str):
    """An echo server on h2, until killed: a UDP socket (port 9001), or an AF_XDP socket."""
    pk = _sdk(endpoint)
    if kind == "udp":
        s = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns="h2")
        s.bind((H2, UDP_PORT))
        print(json.dumps({"ready": True}), flush=True)
        while True:
            data, addr = s.recvfrom(2048)
            s.sendto(data, addr)
    x = pk.xsk(netns="h2", ifname="eth0")
    print(json.dumps({"ready": True}), flush=True)
    while True:
        x.sendmmsg([reply(f) for f in x.recvmmsg(64)])


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stderr)


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def round_trips(endpoint: str, samples: int) -> dict:
    """Round trips to the UDP server and the AF_XDP one, alternately."""
    env = os.environ | {"PYTHONPATH": str(HERE.parent), "PKTFLOW_ENDPOINT": endpoint}
    servers = [subprocess.Popen([sys.executable, "-m", "bench.xdp", "--serve", kind, "--endpoint", endpoint],
                                stdout=subprocess.PIPE, text=True, env=env) for kind in ("udp", "xsk")]
    try:
        for srv in servers:
            assert json.loads(srv.stdout.readline())["ready"]
        pk = _sdk(endpoint)
        c = pk.socket(pk.AF_INET, pk.SOCK_DGRAM, netns="h1")
        c.settimeout(5)
        out = {UDP_PORT: [], PORT: []}
        for i in range(samples + 50):
            for port, rtts in out.items():
                msg = b"%08d" % i
                t0 = time.perf_counter_ns()
                c.sendto(msg, (H2, port))
                data = c.recv(2048)
                if i >= 50:                       # the first ones resolve ARP and warm up
                    rtts.append((time.perf_counter_ns() - t0) / 1e6)
                assert data == msg, (data, msg)
        c.close()
    finally:
        for srv in servers:
            srv.kill()
            srv.wait()
            srv.stdout.close()
    res = {}
    for name, port in (("udp socket", UDP_PORT), ("af_xdp socket", PORT)):
        rtts = sorted(out[port])
        res[name] = {"p50_ms": pct(rtts, 50), "p99_ms": pct(rtts, 99), "samples": len(rtts)}
    return res


def frames_to_h2(nic_devs: dict, count: int, dport: int) -> list[bytes]:
    """UDP frames r1's eth1 would put on h2's cable (h1 -> h2, as r1 forwards them)."""
    from pktflow.services.wire import ethernet
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    dst, src = nic_devs[("h2", "eth0")], nic_devs[("r1", "eth1")]
    tmpl = bytes(Ether(dst=ethernet.mac_to_str(dst), src=ethernet.mac_to_str(src)) /
                 IP(src="10.0.1.10", dst=H2, ttl=63) / UDP(sport=40000, dport=dport) / (b"\0" * 18))
    return [tmpl] * count


def drop_rate(endpoint: str, procs: dict, frames: int, batch: int, xdp: bool) -> dict:
    """Frames/s h2 disposes of: at its driver (XDP_DROP) or in udp_rcv (closed port),
    and each service's CPU time per frame (`procs`: the services' processes)."""
    pk = _sdk(endpoint)
    from pktflow import _client
    macs = {}
    for ns in ("h2", "r1"):
        for d in json.loads(_client.admin("nic", ns, "link").json):
            macs[(ns, d["ifname"])] = bytes.fromhex(d["mac"].replace(":", ""))

    def done() -> int:
        """What reached the drop point: the nic's XDP drops, or transport's UdpNoPorts (alike cheap to ask)."""
        layer, name = ("nic", "DropXDP") if xdp else ("transport", "UdpNoPorts")
        return {c.name: c.value for c in _client.admin(layer, "h2", "counters").counters}.get(name, 0)

    def lost() -> dict:
        """Drops on h2 other than the one measured, by layer and reason."""
        out = {}
        for layer in ("nic", "link", "ip", "transport"):
            for c in _client.admin(layer, "h2", "counters").counters:
                where = f"{layer}:{c.name[4:]}"
                if c.name.startswith("Drop") and c.value and where != ("nic:XDP" if xdp else "transport:NO_SOCKET"):
                    out[where] = c.value
        return out
    if xdp:
        cli("ip", "-force", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "drop", "filter", f"udp port {CLOSED}")
    gen = pk.xsk(netns="r1", ifname="eth1")
    try:
        base, lost0 = done(), lost()
        tmpl = frames_to_h2(macs, batch, CLOSED)
        cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        t0 = time.perf_counter()
        for _ in range(frames // batch):
            gen.sendmmsg(tmpl)
        sent = frames // batch * batch
        last, last_t, idle = done(), time.perf_counter(), time.perf_counter()
        while last - base < sent and time.perf_counter() - idle < 2.0:
            time.sleep(0.01)
            n = done()
            if n != last:
                last, last_t, idle = n, time.perf_counter(), time.perf_counter()
        got = last - base
        seconds = last_t - t0
        cpu = {name: (cpu_seconds(p.pid) - cpu0[name]) / max(1, got) * 1e6 for name, p in procs.items()}
        lost1 = lost()
    finally:
        gen.close()
        if xdp:
            cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")
    return {"fps": got / seconds, "sent": sent, "dropped_there": got, "seconds": seconds, "cpu_us": cpu,
            "lost_elsewhere": {k: v - lost0.get(k, 0) for k, v in lost1.items() if v != lost0.get(k, 0)}}


def core_drop_rate(frames: int) -> dict:
    """The NIC core alone: frames DMA'd into h2's ring and polled, with the XDP_DROP rule."""
    from pktflow.services.common import topology
    from pktflow.services.iproute2 import iplink_xdp
    from pktflow.services.nic import xdp
    from pktflow.services.nic.netdev import Nic, fcs
    from pktflow.v1.skb_pb2 import Skb
    nic = Nic(topology.load())
    req, _ = iplink_xdp.xdp_parse(["xdp", "drop", "filter", f"udp port {CLOSED}"], "eth0")
    xdp.dev_change_xdp(nic, "h2", req)
    h2 = next(d for d in nic.devices.values() if (d.netns, d.name) == ("h2", "eth0"))
    macs = {("h2", "eth0"): h2.mac,
            ("r1", "eth1"): next(d.mac for d in nic.devices.values() if (d.netns, d.name) == ("r1", "eth1"))}
    frame = frames_to_h2(macs, 1, CLOSED)[0]
    wire = frame + bytes(60 - len(frame)) if len(frame) < 60 else frame
    wire += fcs(wire)
    cause = Skb()
    t0 = time.perf_counter()
    for _ in range(frames // 256):
        for _ in range(256):
            nic.dma_rx(h2, wire, cause, 0)
        while nic.rx_pending:
            nic.net_rx_action(0)
    seconds = time.perf_counter() - t0
    return {"fps": frames // 256 * 256 / seconds, "dropped_there": h2.stats["rx_queue_0_xdp_drops"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1000, help="round trips per server")
    p.add_argument("--frames", type=int, default=40000, help="frames per drop-rate run")
    p.add_argument("--batch", type=int, default=256, help="frames per sendmmsg() of the generator")
    p.add_argument("--rounds", type=int, default=3, help="drop-rate runs of each kind, alternating")
    p.add_argument("--port-base", type=int, default=56050)
    p.add_argument("--json", action="store_true")
    p.add_argument("--serve", choices=["udp", "xsk"])
    p.add_argument("--endpoint")
    a = p.parse_args()
    if a.serve:
        return serve(a.endpoint, a.serve)
    with stacks.pktflow_stack(a.port_base, tracing=False) as stack:
        endpoint = stack.endpoint
        os.environ["PKTFLOW_ENDPOINT"] = endpoint
        cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "redirect", "xsk", "filter", f"udp port {PORT}")
        rtt = round_trips(endpoint, a.samples)
        udp, xsk = rtt["udp socket"], rtt["af_xdp socket"]
        cli("ip", "-n", "h2", "link", "set", "dev", "eth0", "xdp", "off")
        runs = {True: [], False: []}
        for _ in range(a.rounds):
            for xdp in (True, False):
                runs[xdp].append(drop_rate(endpoint, stack.procs, a.frames, a.batch, xdp=xdp))
        xdp_drop, closed = (sorted(runs[x], key=lambda r: r["fps"])[len(runs[x]) // 2] for x in (True, False))
    core = core_drop_rate(a.frames * 5)
    results = {"rtt": {"udp socket": udp, "af_xdp socket": xsk,
                       "ratio_p50": xsk["p50_ms"] / udp["p50_ms"], "ratio_p99": xsk["p99_ms"] / udp["p99_ms"]},
               "drop": {"xdp_drop": xdp_drop, "closed port": closed, "ratio": xdp_drop["fps"] / closed["fps"],
                        "nic core alone, xdp_drop": core}}
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"UDP request/reply h1 -> r1 -> h2, {a.samples} round trips each, alternating, tracing off, "
          f"{os.cpu_count()} CPUs")
    print(f"{'answered on h2 by':22} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("udp socket", "af_xdp socket"):
        r = results["rtt"][name]
        print(f"{name:22} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    print(f"{'af_xdp / udp':22} {results['rtt']['ratio_p50']:8.0%} {results['rtt']['ratio_p99']:8.0%}")
    print(f"\nFrames at h2 from an AF_XDP generator on r1's eth1, {a.frames} in batches of {a.batch}, "
          f"median of {a.rounds} runs")
    print(f"{'dropped by':22} {'frames/s':>9} {'reached':>8} {'lost before':>12}")
    for name, r in (("XDP_DROP rule", xdp_drop), ("closed port (udp_rcv)", closed)):
        lost = sum(r["lost_elsewhere"].values())
        print(f"{name:22} {r['fps']:9.0f} {r['dropped_there']:8d} {lost:12d}  {r['lost_elsewhere'] or ''}".rstrip())
    print(f"{'XDP_DROP / closed port':22} {results['drop']['ratio']:9.1f}x")
    layers = ("nic", "link", "ip", "transport", "socket")
    print("CPU us per frame        " + " ".join(f"{n:>9}" for n in layers) + "     total")
    for name, r in (("XDP_DROP rule", xdp_drop), ("closed port (udp_rcv)", closed)):
        print(f"{name:22} " + " ".join(f"{r['cpu_us'].get(n, 0):9.1f}" for n in layers)
              + f" {sum(r['cpu_us'].values()):9.1f}")
    print(f"{'nic core alone, XDP_DROP':22} {core['fps']:9.0f} frames/s (one process, no gRPC)")


if __name__ == "__main__":
    main()
