"""`pktflow perf`: Linux's networking tracepoints, as perf counts them.

    pktflow perf list
    pktflow perf stat [-n NETNS] [-e EVENT[,EVENT...]]... -- COMMAND [ARGS...]
    pktflow perf trace [-n NETNS] [-e EVENT[,EVENT...]]... [-- COMMAND [ARGS...]]

`perf stat` has every layer count the tracepoints its hops hit (services/
common/tracepoints.py) while COMMAND runs here (`sleep 5`, a script sending
traffic), then prints the counts as perf does, for one host or all of them;
`perf trace` prints each one (time, host/layer, tracepoint, the function that
fired it, the skb's length, a drop's reason) until COMMAND ends or Ctrl-C.
The layers keep them only while one runs; one runs at a time.
"""
import subprocess
import sys
import time
from collections import Counter

from . import _client
from .services.common import tracepoints

USAGE = ("usage: pktflow perf list | pktflow perf stat [-n NETNS] [-e EVENTS] -- COMMAND [ARGS...] |\n"
         "       pktflow perf trace [-n NETNS] [-e EVENTS] [-- COMMAND [ARGS...]]")


def cmd_perf(argv: list[str]) -> int:
    if argv[:1] == ["list"]:
        for tp in tracepoints.ALL:
            print(f"  {tp:<50} [Tracepoint event]")
        return 0
    if argv[:1] not in (["stat"], ["trace"]):
        print(USAGE, file=sys.stderr)
        return 129
    netns, patterns, words = "", [], argv[1:]
    while words and words[0] != "--" and words[0].startswith("-"):
        opt, value = words[0], words[1] if len(words) > 1 else None
        if opt not in ("-n", "--netns", "-e", "--event") or value is None:
            print(USAGE, file=sys.stderr)
            return 129
        if opt in ("-n", "--netns"):
            netns = value
        else:
            patterns += value.split(",")
        words = words[2:]
    command = words[1:] if words[:1] == ["--"] else words
    if not command and argv[0] == "stat":
        print(USAGE, file=sys.stderr)
        return 129
    try:
        events = tracepoints.selected(patterns or ["*"])
    except ValueError as e:
        print(e, file=sys.stderr)
        return 129
    if netns:
        _client.admin("ip", netns, "counters")          # an unknown host is an error, not silence
    if argv[0] == "trace":
        return trace(netns, events, command)
    list(_client.each_layer("", "perf", "start"))
    t0 = time.monotonic()
    try:
        status = subprocess.run(command).returncode
    except KeyboardInterrupt:
        status = 130
    elapsed = time.monotonic() - t0
    counts = Counter()
    for _, rows in _client.each_layer("", "perf", "stop"):
        for ns, tp, n in rows:
            if netns in ("", ns):
                counts[tp] += n
    where = f" on {netns}" if netns else ""
    print(f"\n Performance counter stats for '{' '.join(command)}'{where}:\n", file=sys.stderr)
    for tp in events:
        print(f"{counts[tp]:>18,}      {tp}", file=sys.stderr)
    print(f"\n{elapsed:>18.9f} seconds time elapsed\n", file=sys.stderr)
    return status


def trace(netns: str, events: list[str], command: list[str]) -> int:
    """perf trace: one line per event, as the layers report them (every 0.2 s),
    until COMMAND ends (or Ctrl-C without one)."""
    wanted = set(events)
    list(_client.each_layer("", "perf", "trace-start"))
    proc = subprocess.Popen(command) if command else None
    t0, status = None, 0

    def show(verb: str):
        nonlocal t0
        got = [(t, ns, layer, tp, fn, n, reason) for layer, events in _client.each_layer("", "perf", verb)
               for t, ns, tp, fn, n, reason in events if tp in wanted and netns in ("", ns)]
        for t, ns, layer, tp, fn, n, reason in sorted(got):
            t0 = t if t0 is None else t0
            why = f", reason: {reason}" if reason else ""
            print(f"{(t - t0) / 1e6:10.3f} {ns}/{layer} {tp}(location: {fn}, len: {n}{why})", flush=True)
    try:
        while proc is None or proc.poll() is None:
            time.sleep(0.2)
            show("trace-read")
        status = proc.returncode
    except KeyboardInterrupt:
        status = 130
    finally:
        time.sleep(0.2)                        # what the command's last packets set off
        show("trace-stop")
    return status
