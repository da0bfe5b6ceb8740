"""Sockets a client leaves behind: a process opens N sockets (half of them
bound), then is killed. Its session ends, and its sockets are closed as a
process's descriptors are when it exits: the socket and transport services
hold none of them afterwards. Twice, to show the memory is reused, not grown.

    python -m bench.orphans [--sockets 5000] [--port-base 51450]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from bench import stacks
from bench.fuzz import rss_kb

CLIENT = """
import pktflow, sys, time
n = int(sys.argv[1])
socks = [pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") for _ in range(n)]
for s in socks[::2]:
    s.bind(("10.0.1.10", 0))
print("open", flush=True)
time.sleep(600)
"""


def run(sockets: int, port_base: int, rounds: int = 2) -> dict:
    from pktflow import _client
    from pktflow.up import Stack
    stack = Stack(port_base=port_base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    with stacks.started(stack, restart=False):
        def held() -> int:
            return len(json.loads(_client.admin("socket", "h1", "sockets").json))

        def rss() -> dict:
            return {name: rss_kb(stack.procs[name].pid) for name in ("socket", "transport")}
        before, rss0 = held(), rss()
        rounds_out = []
        for _ in range(rounds):
            t0 = time.monotonic()
            child = subprocess.Popen([sys.executable, "-c", CLIENT, str(sockets)], stdout=subprocess.PIPE,
                                     text=True, env=os.environ | {"PKTFLOW_ENDPOINT": stack.endpoint})
            try:
                assert child.stdout.readline().strip() == "open"
                opened_s = time.monotonic() - t0
                during, rss1 = held(), rss()
                child.send_signal(signal.SIGKILL)
                child.wait(10)
                t1 = time.monotonic()
                while held() > before and time.monotonic() - t1 < 60:
                    time.sleep(0.1)
                reclaimed_s = time.monotonic() - t1
            finally:
                child.kill()
                child.wait()
            rounds_out.append({"opened_in_s": round(opened_s, 1), "held_while_open": during, "held_after": held(),
                               "reclaimed_in_s": round(reclaimed_s, 1), "rss_kb_open": rss1, "rss_kb_after": rss()})
    return {"sockets": sockets, "held_before": before, "rss_kb_before": rss0, "rounds": rounds_out}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=5000)
    p.add_argument("--port-base", type=int, default=51450)
    a = p.parse_args()
    r = run(a.sockets, a.port_base)
    print(json.dumps(r, indent=1))
    sys.exit(0 if all(x["held_after"] == r["held_before"] for x in r["rounds"]) else 1)


if __name__ == "__main__":
    main()
