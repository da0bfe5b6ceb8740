"""What firewall rules cost: UDP h1 -> h2 forwarded by r1 with 0, 100, 1,000
and 10,000 linear rules in FORWARD that do not match (each tests a source
address, as a blocklist does), and with one rule matching an ipset of 10,000
addresses instead; each rate relative to r1 with no netfilter at all, in the
same run.

Two measures: the layers' cores in one process (services/netstack, no gRPC:
the rules' own cost, as on Linux where the rule walk is the whole cost), and
the five real services (what a user sees, where per-packet gRPC work dilutes
it). Linux walks iptables rules linearly too, so its rate also falls with the
count; an ipset lookup is one hash probe whatever the set's size.

    python -m bench.rules [--seconds 2] [--repeat 5] [--offered 1000] [--only cores|stack] [--json]
"""
import argparse
import json
import os
import time

from . import stacks, udp

CONFIGS = (("no netfilter", 0, False), ("0 rules", 0, True), ("100 rules", 100, True), ("1,000 rules", 1000, True),
           ("10,000 rules", 10000, True), ("ipset, 10,000 entries", -10000, True))


def blocklist(n: int) -> tuple[str, str]:
    """(iptables-restore text, ipset restore text): n non-matching source rules, or
    for n < 0 one set match on a hash:ip of -n addresses. None of them is h1's."""
    addrs = [f"198.18.{i >> 8 & 255}.{i & 255}" for i in range(abs(n))]
    if n < 0:
        sets = "create blocked hash:ip maxelem 65536\n" + "".join(f"add blocked {a}\n" for a in addrs)
        rules = ["-A FORWARD -m set --match-set blocked src -j DROP"]
    else:
        sets = ""
        rules = [f"-A FORWARD -s {a}/32 -p udp -m udp --dport 7000 -j DROP" for a in addrs]
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + \
        "".join(r + "\n" for r in rules) + "COMMIT\n"
    return text, sets


def run_cores(a) -> list[dict]:
    """Each configuration --repeat times, taking turns so that the machine's
    mood falls on all alike; the median rate of each, per second of CPU time."""
    from pktflow.services.ip.netfilter import tools
    runs: dict = {name: [] for name, _, _ in CONFIGS}
    for _ in range(a.repeat):
        for name, n, netfilter in CONFIGS:
            rules, sets = blocklist(n)

            def configure(net, rules=rules, sets=sets, netfilter=netfilter):
                r1 = net.ip.netns["r1"]
                if sets:
                    assert tools.run(r1, "ipset", ["restore", sets], 0)[0] == 0
                if netfilter:
                    assert tools.run(r1, "iptables-restore", [rules], 0)[0] == 0
            runs[name].append(udp.run_cores(argparse.Namespace(seconds=a.seconds, size=a.size, batch=a.batch),
                                            configure, time.process_time))
    return [{"config": name, **sorted(r, key=lambda x: x["pps"])[len(r) // 2]} for name, r in runs.items()]


def run_stack(a) -> list[dict]:
    """The real services at a fixed offered load (--offered datagrams/s for
    --seconds, below what r1 forwards with no rules): what arrives, how fast,
    and the ip service's CPU time per datagram it forwarded. Where the rules
    make r1 slower than the offered load, the rate falls to what r1 manages
    and the rest is lost, as on Linux."""
    import subprocess
    import sys

    from pktflow import _client

    from .cpu import cpu_seconds
    out = []
    every = a.batch / a.offered
    with stacks.pktflow_stack(a.port_base, tracing=False) as stack:
        endpoint = stack.endpoint
        os.environ["PKTFLOW_ENDPOINT"] = endpoint
        import pktflow
        ip_pid = stack.procs["ip"].pid
        env = os.environ | {"PYTHONPATH": str(udp.HERE.parent)}
        tx = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
        tx.sendto(b"arp", udp.DST)                           # neighbours resolved before the count
        for name, n, netfilter in CONFIGS:
            if netfilter:
                rules, sets = blocklist(n)
                admin = [("iptables", "-F"), ("ipset", "destroy")] + ([("ipset", "restore", sets)] if sets else []) + \
                    [("iptables-restore", rules)]
                for words in admin:
                    reply = json.loads(_client.admin("ip", "r1", *words).json)
                    assert reply["status"] == 0, reply["err"]
            rx = subprocess.Popen([sys.executable, "-m", "bench.udp", "--worker", "rx", "--endpoint", endpoint],
                                  stdout=subprocess.PIPE, text=True, env=env)
            assert json.loads(rx.stdout.readline())["ready"]
            cpu0 = cpu_seconds(ip_pid)
            pad = b"\0" * max(0, a.size - udp.HDR.size)
            sent, t = 0, time.monotonic()
            end = t + a.seconds
            while t < end:
                sent += tx.sendmmsg([(udp.HDR.pack(sent + i, time.time_ns()) + pad, udp.DST) for i in range(a.batch)])
                t += every
                time.sleep(max(0.0, t - time.monotonic()))
            r = json.loads(rx.communicate()[0].strip().splitlines()[-1])     # after 2 s with nothing more
            cpu = cpu_seconds(ip_pid) - cpu0
            got = r["received"]
            out.append({"config": name, "pps": got / r["seconds"] if r["seconds"] else 0.0, "sent": sent,
                        "received": got, "loss": 1 - got / max(1, sent), "ip_us": cpu / max(1, got) * 1e6})
        tx.close()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=5, help="turns of the in-process configurations (median)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--offered", type=float, default=1000.0, help="datagrams/s offered to the real services")
    p.add_argument("--only", choices=["cores", "stack"])
    p.add_argument("--port-base", type=int, default=52050)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    results = {}
    t0 = time.monotonic()
    if a.only in (None, "cores"):
        results["cores"] = run_cores(a)
    if a.only in (None, "stack"):
        results["stack"] = run_stack(a)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    for kind, rows in results.items():
        base = rows[0]["pps"] or 1
        print(f"{kind}: UDP forwarded by r1 ({a.size}-byte payloads)")
        for r in rows:
            cpu = f"  ip service {r['ip_us']:.0f} us/datagram" if "ip_us" in r else ""
            print(f"  {r['config']:<24} {r['pps']:>10.0f} pkt/s  {r['pps'] / base:6.3f}x  loss {r['loss']:.1%}{cpu}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
