"""`pktflow dropwatch`: where packets are dropped, as they are, like dropwatch(1).

    pktflow dropwatch [-n NETNS] [-i SECONDS] [-c ROUNDS]

Every layer counts its drops by host, drop reason and the kernel function that
dropped (the last step of the hop's span, what kfree_skb's `location` is in
Linux). Each interval the five layers are asked, and what changed is printed,
one line per place, as dropwatch prints it with drop reasons:

    3 drops at __udp4_lib_rcv (NO_SOCKET) [h2 transport]
"""
import sys
import time

from . import _client


def snapshot(netns: str) -> dict:
    """(netns, layer, function, reason) -> drops so far."""
    return {(ns, layer, fn, reason): n for layer, sites in _client.each_layer(netns, "dropwatch")
            for ns, reason, fn, n in sites}


def changes(before: dict, after: dict) -> list[str]:
    lines = []
    for key, n in sorted(after.items()):
        d = n - before.get(key, 0)
        if d > 0:
            ns, layer, fn, reason = key
            lines.append(f"{d} drops at {fn} ({reason}) [{ns} {layer}]")
    return lines


def run(a) -> int:
    netns = a.netns or ""
    if netns:
        _client.admin("ip", netns, "counters")          # an unknown host is an error, not silence
    print("Initializing pktflow lookup method\ndropwatch> start\nHit Ctrl-C to stop", flush=True)
    last = snapshot(netns)
    rounds = 0
    try:
        while a.c is None or rounds < a.c:
            time.sleep(a.i)
            now = snapshot(netns)
            for line in changes(last, now):
                print(line, flush=True)
            last, rounds = now, rounds + 1
    except KeyboardInterrupt:
        pass
    print("Got a stop message", file=sys.stderr)
    return 0
