"""Is a link's line rate honoured? r1's eth1 (towards h2) gets a `speed:`, one
TCP bulk transfer h1 -> h2 runs for --seconds on the real services, and its
goodput is compared with what the rate can carry: each 1448-byte segment is a
1514-byte frame plus 24 bytes of FCS, preamble and gap on the cable, so the
ceiling is rate x 1448/1538 (94.1%). The goal is >= 90% of that ceiling; the
highest rate listed that still meets it is what this machine can honour (above
it the services, not the cable, are the bottleneck).

    python -m bench.linkrate [--speeds 10mbit,50mbit,100mbit,200mbit] [--seconds 5] [--json]
"""
import argparse
import json
import os
import tempfile

from . import stacks, tcp
from .tcp import MSS

ON_WIRE = 1514 + 24                       # a full segment's frame, FCS, preamble and gap


def measure(speed: str, a) -> dict:
    from pktflow.services.iproute2.tc_util import get_rate64
    eth1 = 'eth1: {mac: "02:00:00:00:02:01", addresses: [10.0.2.1/24, 2001:db8:2::1/64]'
    text = open(stacks.TOPOLOGY).read().replace(eth1 + "}", f"{eth1}, speed: {speed}}}")
    assert f"speed: {speed}" in text
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        with stacks.pktflow_stack(a.port_base, tracing=False, topology=f.name) as stack:
            r = tcp.bulk(stack.endpoint, a)
    finally:
        os.unlink(f.name)
    ceiling = get_rate64(speed) * MSS / ON_WIRE
    return {"speed": speed, "goodput_MBps": r["mbps"], "ceiling_MBps": ceiling / 1e6,
            "of_ceiling": r["mbps"] * 1e6 / ceiling}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speeds", default="10mbit,50mbit,100mbit,200mbit")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--port-base", type=int, default=55050)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    rows = [measure(s, a) for s in a.speeds.split(",")]
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"TCP bulk h1 -> h2 over r1's eth1 at a set speed, {a.seconds:.0f} s each, {os.cpu_count()} CPUs")
    for r in rows:
        verdict = "honoured" if r["of_ceiling"] >= 0.9 else "not reached"
        print(f"  {r['speed']:>8}: {r['goodput_MBps']:7.3f} MB/s of {r['ceiling_MBps']:7.3f} "
              f"({r['of_ceiling']:.1%}) {verdict}")


if __name__ == "__main__":
    main()
