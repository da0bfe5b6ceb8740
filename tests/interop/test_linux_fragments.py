"""Fragmentation and path MTU discovery against the real Linux kernel over the
TAP: Linux's `ping -s 4000` (its fragments reassembled here, our reply's
reassembled by Linux), 8,000-byte UDP datagrams each way, and a TCP transfer
through a Linux router whose next link carries only 1,400 bytes (pktflow
learns the path MTU from Linux's ICMP and finishes the transfer)."""
import re
import subprocess
import sys

import pktflow
import pytest
from conftest import counters

from interop.conftest import EMU_ADDR, FAR_ADDR, LINUX_ADDR, wait_port
from interop.test_linux_peer import need

pytestmark = pytest.mark.integration


def test_linux_ping_with_4000_bytes_gets_whole_replies(linux):
    need("ping")
    before = counters("h1")
    out = linux.run("ping", "-c", "2", "-i", "0.2", "-W", "3", "-s", "4000", EMU_ADDR).stdout
    assert "2 packets transmitted, 2 received" in out
    assert re.findall(r"(\d+) bytes from", out) == ["4008", "4008"]
    after = counters("h1")
    assert after["IpReasmOKs"] - before["IpReasmOKs"] == 2                 # Linux's fragments, whole here
    assert after["IpFragOKs"] - before["IpFragOKs"] == 2                   # our replies, cut for the wire
    assert after["IpFragCreates"] - before["IpFragCreates"] == 6


LINUX_UDP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
data, _ = s.recvfrom(65535)
print(len(data), data == bytes(range(250)) * 32, flush=True)
"""


def test_8000_byte_udp_datagrams_each_way(linux):
    payload = bytes(range(250)) * 32
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
        s.bind((EMU_ADDR, 9300))
        s.settimeout(10)
        linux.run(sys.executable, "-c", f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                  f".sendto(bytes(range(250)) * 32, ('{EMU_ADDR}', 9300))")
        data, (host, _) = s.recvfrom(65535)
        assert data == payload and host == LINUX_ADDR
        rx = linux.popen(sys.executable, "-c", LINUX_UDP_RECEIVER, LINUX_ADDR, "9301", stdout=subprocess.PIPE,
                         text=True)
        try:
            assert rx.stdout.readline().strip() == "ready"
            s.sendto(payload, (LINUX_ADDR, 9301))
            assert rx.stdout.readline().split() == ["8000", "True"]
        finally:
            rx.kill()
            rx.wait()


LINUX_TCP_RECEIVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
conn, _ = srv.accept()
got = b""
while chunk := conn.recv(65536):
    got += chunk
print(len(got), got == bytes(range(256)) * 800, flush=True)
"""


@pytest.mark.impaired          # the segments too big for the narrow link are lost, and sent again
def test_tcp_learns_the_path_mtu_from_a_linux_router(linux):
    """The far host offers MSS 1460 (its link is 1500), the Linux router's link
    towards it carries 1400: the first full segments draw ICMP "fragmentation
    needed" (MTU 1400) from Linux, pktflow shrinks its MSS and resends."""
    data = bytes(range(256)) * 800                     # 204,800 bytes
    linux.run("ip", "route", "flush", "cache", check=False)
    linux.run("ip", "link", "set", "fwd0", "mtu", "1400")
    rx = linux.far.popen(sys.executable, "-c", LINUX_TCP_RECEIVER, FAR_ADDR, "9302", stdout=subprocess.PIPE,
                         text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        wait_port(linux.far, 9302)
        before = counters("h1")
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
            s.settimeout(60)
            s.connect((FAR_ADDR, 9302))
            s.sendall(data)
        assert rx.stdout.readline().split() == [str(len(data)), "True"]
        rx.wait(10)
        after = counters("h1")
        assert after["IcmpInDestUnreachs"] > before["IcmpInDestUnreachs"]
        route = subprocess.run([sys.executable, "-m", "pktflow.cli", "ip", "-n", "h1", "route", "get", FAR_ADDR],
                               capture_output=True, text=True, check=True).stdout
        assert re.search(r"cache expires \d+sec mtu 1400", route), route
    finally:
        rx.kill()
        rx.wait()
        linux.run("ip", "link", "set", "fwd0", "mtu", "1500")
        subprocess.run([sys.executable, "-m", "pktflow.cli", "ip", "-n", "h1", "route", "flush", "cache"],
                       check=True)                  # the learned MTU would outlive the test (600 s)
    route = subprocess.run([sys.executable, "-m", "pktflow.cli", "ip", "-n", "h1", "route", "get", FAR_ADDR],
                           capture_output=True, text=True, check=True).stdout
    assert "mtu" not in route, route
