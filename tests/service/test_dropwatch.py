"""`pktflow dropwatch`: drops by host, function and reason as they happen."""
import re
import subprocess
import sys
from collections import Counter

import pytest

import pktflow
from pktflow import dropwatch

pytestmark = pytest.mark.integration


def test_changes_prints_what_grew_since_the_last_look():
    before = {("h2", "transport", "udp_rcv", "NO_SOCKET"): 1, ("r1", "ip", "ip_forward", "IP_INHDR"): 2}
    after = dict(before) | {("h2", "transport", "udp_rcv", "NO_SOCKET"): 4, ("h1", "link", "x", "QDISC_DROP"): 1}
    assert dropwatch.changes(before, after) == ["1 drops at x (QDISC_DROP) [h1 link]",
                                               "3 drops at udp_rcv (NO_SOCKET) [h2 transport]"]


def test_dropwatch_shows_datagrams_to_a_closed_port(stack):
    proc = subprocess.Popen([sys.executable, "-m", "pktflow.cli", "dropwatch", "-n", "h2", "-i", "0.3", "-c", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("Initializing")
        assert proc.stdout.readline() == "dropwatch> start\n"
        proc.stdout.readline()
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
            for _ in range(3):
                s.sendto(b"nobody", ("10.0.2.10", 45601))
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    seen = Counter()
    for line in out.splitlines():
        m = re.fullmatch(r"(\d+) drops at (\S+) \((\w+)\) \[(\S+) (\w+)\]", line)
        assert m, line
        seen[m.group(2, 3, 4, 5)] += int(m.group(1))
    assert seen[("udp_rcv", "NO_SOCKET", "h2", "transport")] == 3
    assert all(ns == "h2" for _, _, ns, _ in seen)


def test_dropwatch_refuses_an_unknown_host(stack):
    r = subprocess.run([sys.executable, "-m", "pktflow.cli", "dropwatch", "-n", "h9", "-c", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "h9" in r.stderr
