"""`pktflow tcpdump`: tcpdump on an emulated host's interface.

    pktflow tcpdump -n h1 -i eth0 'tcp port 8080 and host 10.0.2.10'
    pktflow tcpdump -n r1 -i any -c 10 -e icmp
    pktflow tcpdump -n h1 -i eth0 -w - | wireshark -k -i -

The expression is pcap-filter(7)'s, compiled by libpcap and attached to the
capture's packet socket (SO_ATTACH_FILTER), so the link layer taps only the
frames it matches. The frames stream as a pcap: to FILE or standard output
(`-w`), or to tcpdump itself (`tcpdump -r - -n`) to be printed, so each line
is exactly what tcpdump prints. `-n` names the host, as everywhere in
pktflow: addresses are always printed as numbers, as with tcpdump's `-n`.
"""
import argparse
import shutil
import signal
import subprocess
import sys
import threading

from ._capture import capture
from .services.common.bpf import FilterError


def add_arguments(p: argparse.ArgumentParser, need_file: bool = False):
    p.add_argument("-n", "--netns", required=True, help="the emulated host")
    p.add_argument("-i", "--interface", default=None if need_file else "any",
                   required=need_file, help="an interface of the host, or any (the default)")
    p.add_argument("-c", type=int, default=None, metavar="COUNT", help="stop after COUNT packets")
    p.add_argument("-w", required=need_file, metavar="FILE", help="write a pcap to FILE (-: standard output)")
    if not need_file:
        p.add_argument("-e", action="store_true", help="print each frame's Ethernet header")
    p.add_argument("expression", nargs="*", help="a pcap-filter(7) expression")


def run(a, prog: str = "tcpdump") -> int:
    printer = None
    if a.w is None:
        binary = shutil.which("tcpdump")
        if binary is None:
            print(f"pktflow {prog}: printing packets needs tcpdump installed; -w FILE or -w - works without it",
                  file=sys.stderr)
            return 1
        printer = subprocess.Popen([binary, "-r", "-", "-n", "-l", *(["-e"] if a.e else [])],
                                   stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = printer.stdin
    else:
        out = sys.stdout.buffer if a.w == "-" else a.w
    ifname = "" if a.interface == "any" else a.interface
    try:
        cap = capture(netns=a.netns, ifname=ifname, path=out, count=a.c, filter=" ".join(a.expression) or None)
    except (FilterError, OSError) as e:
        print(f"pktflow {prog}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)   # libpcap's words for a filter
        if printer is not None:
            printer.stdin.close()
            printer.wait()
        return 1
    where = f"writing {a.w}" if a.w else "snapshot length 262144 bytes"
    print(f"{prog}: listening on {a.netns}:{a.interface}, link-type EN10MB (Ethernet), {where}",
          file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.is_set() and not cap.done.is_set():
            done.wait(0.2)
    except KeyboardInterrupt:
        pass
    n = cap.stop()
    if printer is not None:
        printer.stdin.close()
        printer.wait()
    print(f"{n} packets captured", file=sys.stderr)
    return 0
