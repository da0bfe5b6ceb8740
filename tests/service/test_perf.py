"""`pktflow perf list|stat`: tracepoints counted while a command runs."""
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SEND = ("import pktflow\n"
        "with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns='h1') as s:\n"
        "    for _ in range(3): s.sendto(b'x', ('10.0.2.10', 45701))\n"
        "import time; time.sleep(0.5)\n")


def perf(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", "perf", *args], capture_output=True, text=True,
                          timeout=60)


def test_perf_stat_counts_the_drops_and_receives_of_a_command(stack):
    r = perf("stat", "-n", "h2", "-e", "skb:kfree_skb,net:netif_receive_skb,tcp:*", "--", sys.executable, "-c", SEND)
    assert r.returncode == 0, r.stderr
    counts = {m.group(2): int(m.group(1).replace(",", ""))
              for m in re.finditer(r"^\s+([\d,]+)\s+(\S+)$", r.stderr, re.M)}
    assert counts["skb:kfree_skb"] >= 3                     # udp_rcv: NO_SOCKET, three times
    assert counts["net:netif_receive_skb"] >= 3
    assert set(counts) == {"skb:kfree_skb", "net:netif_receive_skb", "tcp:tcp_probe", "tcp:tcp_retransmit_skb",
                           "tcp:tcp_send_reset"}
    assert "Performance counter stats for" in r.stderr and "seconds time elapsed" in r.stderr


def test_perf_list_and_refusals(stack):
    assert "skb:kfree_skb" in perf("list").stdout
    bad = perf("stat", "-e", "sched:sched_switch", "--", "true")
    assert bad.returncode == 129 and "sched:sched_switch" in bad.stderr
    assert perf("stat", "-n", "h9", "--", "true").returncode != 0


def test_perf_trace_prints_each_event(stack):
    r = perf("trace", "-n", "h2", "-e", "skb:kfree_skb", "--", sys.executable, "-c", SEND)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    drops = [line for line in lines if "location: udp_rcv" in line]
    assert len(drops) == 3, r.stdout
    assert all(re.fullmatch(r"\s*\d+\.\d{3} h2/transport skb:kfree_skb\(skbaddr: 0x[0-9a-f]+, location: udp_rcv, "
                            r"protocol: 2048, reason: NO_SOCKET, len: \d+\)", line) for line in drops)
    assert all(" h2/" in line and "skb:kfree_skb" in line for line in lines)
