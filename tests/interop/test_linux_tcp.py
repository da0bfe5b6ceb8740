"""Side by side with Linux's TCP over the TAP: the same tail loss recovered by a
loss probe on both stacks (RACK-TLP), and ECN negotiated with a Linux that asks
for it (RFC 3168), each read back from both sides' own counters and from tcpdump."""
import subprocess
import threading

import pktflow
import pytest
from conftest import counters

from interop.conftest import EMU_ADDR, FAR_ADDR
from interop.test_linux_peer import forward_drop, need

pytestmark = pytest.mark.integration

HEAD, TAIL = 1448, 500
TAIL_IP_LEN = 20 + 32 + TAIL          # IP + TCP with timestamps + the tail's payload


def drop_first_tail(linux, port_match: tuple):
    """The first packet of TAIL_IP_LEN bytes on a port is dropped in the Linux
    router (iptables' nth statistic: packet 0 of every 100000), its retransmission passes."""
    return forward_drop(linux, "-p", "tcp", *port_match, "-m", "length", "--length", str(TAIL_IP_LEN),
                        "-m", "statistic", "--mode", "nth", "--every", "100000", "--packet", "0")


LINUX_RECEIVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
conn, _ = srv.accept()
got = 0
while got < int(sys.argv[3]):
    got += len(conn.recv(65536))
conn.sendall(b"k")
conn.close()
"""

LINUX_SENDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(b"a" * int(sys.argv[3]) + b"b" * int(sys.argv[4]))
assert s.recv(1) == b"k"
s.close()
"""


@pytest.mark.impaired
def test_a_tail_loss_is_repaired_by_a_probe_on_both_stacks(linux):
    """One write of a full segment and a 500-byte tail, the tail lost once: both
    Linux and pktflow send a tail loss probe before any RTO fires (TCPLossProbes
    moves, TCPTimeouts does not) and the data arrives whole."""
    # pktflow sends, Linux receives
    before = counters("h1")
    rx = linux.far.popen("python3", "-c", LINUX_RECEIVER, FAR_ADDR, "9401", str(HEAD + TAIL),
                         stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        with drop_first_tail(linux, ("--dport", "9401")) as drop:
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
                s.settimeout(30)
                s.connect((FAR_ADDR, 9401))
                s.sendall(b"a" * HEAD + b"b" * TAIL)
                assert s.recv(1) == b"k"
            assert drop.dropped() == 1
        rx.wait(10)
    finally:
        rx.kill()
    after = counters("h1")
    assert after["TcpExtTCPLossProbes"] > before["TcpExtTCPLossProbes"]
    assert after["TcpExtTCPTimeouts"] == before["TcpExtTCPTimeouts"]
    # Linux sends, pktflow receives
    linux_before = linux.far.mib()
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
    srv.bind(("", 9402))
    srv.listen(1)
    srv.settimeout(10)
    got = bytearray()

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(10)
        while len(got) < HEAD + TAIL:
            got.extend(conn.recv(65536))
        conn.sendall(b"k")
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with drop_first_tail(linux, ("--dport", "9402")) as drop:
            linux.far.run("python3", "-c", LINUX_SENDER, EMU_ADDR, "9402", str(HEAD), str(TAIL), timeout=30)
            t.join(10)
            assert drop.dropped() == 1
    finally:
        srv.close()
    assert bytes(got) == b"a" * HEAD + b"b" * TAIL
    linux_after = linux.far.mib()
    assert linux_after["TcpExtTCPLossProbes"] > linux_before["TcpExtTCPLossProbes"]
    assert linux_after["TcpExtTCPTimeouts"] == linux_before["TcpExtTCPTimeouts"]


def test_ecn_is_negotiated_with_a_linux_that_asks(linux):
    """Linux with net.ipv4.tcp_ecn=1 asks in its SYN (ECE|CWR); pktflow, at Linux's
    default 2 (accept when asked), agrees in its SYN-ACK (ECE alone), and Linux,
    so told, sends its data ECN-capable (ECT(0)): tcpdump reads all three."""
    need("tcpdump")
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1")
    srv.bind(("", 9403))
    srv.listen(1)
    srv.settimeout(10)
    linux.far.run("sysctl", "-qw", "net.ipv4.tcp_ecn=1")
    dump = linux.far.popen("tcpdump", "-lni", "fwd1", "-c", "6", "-v", "tcp port 9403", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in dump.stderr.readline()

        def serve():
            conn, _ = srv.accept()
            conn.settimeout(10)
            got = 0
            while got < 3000:
                got += len(conn.recv(65536))
            conn.sendall(b"k")
            conn.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        linux.far.run("python3", "-c", LINUX_SENDER, EMU_ADDR, "9403", "3000", "0", timeout=30)
        t.join(10)
        lines = dump.communicate(timeout=10)[0].splitlines()
    finally:
        dump.kill()
        linux.far.run("sysctl", "-qw", "net.ipv4.tcp_ecn=2")
        srv.close()
    flags = [line.split("Flags [")[1].split("]")[0] for line in lines if "Flags [" in line]
    assert flags[:2] == ["SEW", "S.E"], lines                        # the ECN-setup SYN and SYN-ACK
    tos = [line for line in lines if "length 1500" in line or "ECT" in line]
    assert any("ECT(0)" in line for line in tos), lines              # Linux's data: ECN-capable
