"""`pktflow bpftrace` on the real services: a one-liner's filter applied in the
layers, its map printed as bpftrace prints it."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SEND = ("import pktflow\n"
        "with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns='h1') as s:\n"
        "    for _ in range(4): s.sendto(b'x' * 10, ('10.0.2.10', 45721))\n"
        "    s.settimeout(0.5)\n"
        "    try: s.recvfrom(10)\n"                      # nothing comes: 0.5 s for the drops to happen
        "    except OSError: pass\n")


def bpftrace(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", "bpftrace", *args], capture_output=True, text=True,
                          timeout=60)


def test_drops_counted_by_reason_and_location(stack):
    r = bpftrace("-n", "h2", "-c", f"{sys.executable} -c \"{SEND}\"",
                 "-e", 'tracepoint:skb:kfree_skb /args.reason == "NO_SOCKET"/ '
                 '{ @[args.reason, args.location] = count(); }'
                 ' t:net:netif_receive_skb /args.name == "eth0" && args.len >= 60/ { @rx = count(); }')
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("Attached 2 probes")
    lines = r.stdout.splitlines()
    assert "@[NO_SOCKET, udp_rcv]: 4" in lines, r.stdout
    rx = [int(line.split(": ")[1]) for line in lines if line.startswith("@rx: ")]
    assert rx and rx[0] >= 4                  # the four datagrams, as frames of at least ETH_ZLEN on eth0


def test_a_program_outside_the_subset_is_refused(stack):
    r = bpftrace("-e", "kprobe:tcp_reset { @ = count(); }")
    assert r.returncode == 1 and "kprobe: probes are not supported" in r.stderr
