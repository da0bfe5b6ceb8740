"""Tracepoint watches on the real services (the Watch RPC): the fields the
layers send, the host and event filtering they do, their refusals; and perf
stat's count of kfree_skb against nstat's drop counters."""
import errno
import json
import re
import subprocess
import sys

import pytest

import pktflow
from pktflow import _client

pytestmark = pytest.mark.integration


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True, timeout=60)


def drops(netns: str) -> int:
    r = cli("nstat", "-n", netns, "--drops", "--json")
    assert r.returncode == 0, r.stderr
    return sum(v for k, v in json.loads(r.stdout)["kernel"].items() if k.startswith("Drop"))


def test_perf_stat_counts_as_many_kfree_skb_as_nstat_counts_drops(stack):
    send = ("import pktflow\n"
            "with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns='h1') as s:\n"
            "    for _ in range(5): s.sendto(b'x', ('10.0.2.10', 45711))\n"
            "    s.settimeout(0.5)\n"
            "    try: s.recvfrom(10)\n"                      # nothing comes: 0.5 s for the drops to happen
            "    except OSError: pass\n")
    before = drops("h2")
    r = cli("perf", "stat", "-n", "h2", "-e", "skb:kfree_skb", "--", sys.executable, "-c", send)
    assert r.returncode == 0, r.stderr
    counted = int(re.search(r"^\s+([\d,]+)\s+skb:kfree_skb$", r.stderr, re.M).group(1).replace(",", ""))
    assert counted >= 5 and drops("h2") - before == counted


def test_a_watch_gets_the_socket_and_reset_tracepoints_of_one_host(stack):
    with _client.watch(["sock:inet_sock_set_state", "tcp:tcp_send_reset"], netns="h2") as w:
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("10.0.2.10", 45712))                 # nothing listens: h2 answers RST
        events = []
        while not any(name == "tcp:tcp_send_reset" for _, _, _, name, _ in events):
            events += w.poll(10) or pytest.fail(f"no reset in {events}")
    assert all(ns == "h2" for _, ns, _, _, _ in events)            # h1's state changes stay in the layer
    (rst,) = [f for _, _, layer, name, f in events if name == "tcp:tcp_send_reset"]
    assert rst["saddr"] == "10.0.2.10:45712" and rst["daddr"].startswith("10.0.1.10:")
    assert rst["state"] == "UNKNOWN" and rst["skaddr"] == 0
    assert set(rst) == {"skbaddr", "skaddr", "state", "saddr", "daddr", "len"}     # the format file's, and len


def test_a_watch_of_tcp_sees_the_states_and_probes_of_a_connection(stack):
    with _client.watch(["sock:inet_sock_set_state", "tcp:tcp_probe"], netns="h1") as w:
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2") as srv:
            srv.bind(("10.0.2.10", 45713))
            srv.listen()
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
                s.connect(("10.0.2.10", 45713))
                child, _ = srv.accept()
                child.sendall(b"y" * 3000)
                got = b""
                while len(got) < 3000:
                    got += s.recv(4096)
                child.close()
        events = []
        while sum(f["data_len"] for _, _, _, name, f in events if name == "tcp:tcp_probe") < 3000:
            events += w.poll(10) or pytest.fail(f"too few probes in {events}")   # one, with GRO, or several
    states = [(f["oldstate"], f["newstate"]) for _, _, _, name, f in events if name == "sock:inet_sock_set_state"]
    assert states[:2] == [("TCP_CLOSE", "TCP_SYN_SENT"), ("TCP_SYN_SENT", "TCP_ESTABLISHED")]
    probes = [f for _, _, _, name, f in events if name == "tcp:tcp_probe"]
    assert all(p["daddr"] == "10.0.2.10:45713" and p["family"] == "AF_INET" for p in probes)
    assert sum(p["data_len"] for p in probes) >= 3000


def test_a_watch_refuses_an_unknown_event_or_host(stack):
    with pytest.raises(OSError) as e:
        _client.watch(["sched:sched_switch"])
    assert e.value.errno == errno.EINVAL and "sched:sched_switch" in str(e.value)
    with pytest.raises(FileNotFoundError, match="h9"):
        _client.watch(["skb:kfree_skb"], netns="h9")
