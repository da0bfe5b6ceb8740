"""`pktflow perf`: Linux's networking tracepoints, as perf counts them.

    pktflow perf list
    pktflow perf stat [-n NETNS] [-e EVENT[,EVENT...]]... -- COMMAND [ARGS...]
    pktflow perf trace [-n NETNS] [-e EVENT[,EVENT...]]... [-- COMMAND [ARGS...]]

`perf stat` has every layer count the tracepoints its hops hit (services/
common/tracepoints.py) while COMMAND runs here (`sleep 5`, a script sending
traffic), then prints the counts as perf does, for one host or all of them;
one runs at a time. `perf trace` watches them (the Watch RPC: the layers send
only the events asked for) and prints each one, with its fields, until COMMAND
ends or Ctrl-C.
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
    """perf trace: one line per event, as the layers send them, until COMMAND
    ends (or Ctrl-C without one): milliseconds since the first, host/layer,
    the tracepoint and its fields."""
    watch = _client.watch(events, netns)
    t0, status = None, 0

    def show(got):
        nonlocal t0
        for t, ns, layer, tp, fields in sorted(got):
            t0 = t if t0 is None else t0
            print(f"{(t - t0) / 1e6:10.3f} {ns}/{layer} {tp}({format_fields(tp, fields)})", flush=True)
    try:
        proc = subprocess.Popen(command) if command else None
        while proc is None or proc.poll() is None:
            show(watch.poll(0.2))
        status = proc.returncode
        show(watch.poll(0.2))                     # what the command's last packets set off
    except KeyboardInterrupt:
        status = 130
    finally:
        watch.close()
    lost = sum(watch.lost.values())
    if lost:
        print(f"LOST {lost} events!", file=sys.stderr)
    return status


def format_fields(tp: str, fields: dict) -> str:
    """`name: value, ...` in the format file's order (addresses of kernel objects in hex), then pktflow's own."""
    order = list(tracepoints.FIELDS.get(tp, ())) + sorted(set(fields) - set(tracepoints.FIELDS.get(tp, ())))
    return ", ".join(f"{k}: {hex(fields[k]) if k in ('skbaddr', 'skaddr') else fields[k]}"
                     for k in order if k in fields)
