"""Fragmentation and path MTU discovery against the real Linux kernel over the
TAP: Linux's `ping -s 4000` (its fragments reassembled here, our reply's
reassembled by Linux), 8,000-byte UDP datagrams each way, and TCP across a
1,400-byte link on both sides: pktflow learns the path MTU from a Linux
router's ICMP, and Linux learns it from pktflow's router."""
import os
import re
import shutil
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


ROUTER_TOPOLOGY = """hosts:
  r1:
    interfaces:
      eth0: {{mac: "02:00:00:00:01:01", addresses: [10.0.1.1/24], tap: {tap}}}
      eth1: {{mac: "02:00:00:00:02:01", addresses: [10.0.2.1/24], mtu: 1400}}
    sysctls: {{net.ipv4.ip_forward: 1}}
  h2:
    interfaces:
      eth0: {{mac: "02:00:00:00:02:0a", addresses: [10.0.2.10/24]}}
    routes: [default via 10.0.2.1]
links:
  - [r1:eth1, h2:eth0]
"""

LINUX_TCP_SENDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(bytes(range(256)) * 800)
s.shutdown(socket.SHUT_WR)
assert s.recv(1) == b"k"
"""


@pytest.fixture(scope="module")
def linux_before_our_router(tmp_path_factory):
    """Linux in a namespace whose TAP is pktflow's router r1; behind r1 a 1,400-byte
    link to the emulated h2 (whose own link says 1500, so it offers MSS 1460)."""
    from interop.conftest import WHY_NOT, LinuxPeer, PORT_BASE, _ip
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    from pktflow.up import Stack
    tag = os.getpid() % 10000
    netns, tap = f"pfr{tag}", f"pfrt{tag}"
    work = tmp_path_factory.mktemp("router")
    (work / "topo.yaml").write_text(ROUTER_TOPOLOGY.format(tap=tap))
    base = PORT_BASE + 100
    stack = Stack(str(work / "topo.yaml"), port_base=base, trace_store=False,
                  extra_env={"OTEL_TRACES_EXPORTER": "none"})
    stack.start()
    try:
        _ip("netns", "add", netns)
        _ip("link", "set", tap, "netns", netns)
        peer = LinuxPeer(netns, tap, stack, work)
        peer.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        peer.run("ip", "link", "set", "lo", "up")
        peer.run("ip", "addr", "add", "10.0.1.99/24", "dev", tap)
        peer.run("ip", "link", "set", tap, "up")
        peer.run("ip", "route", "add", "10.0.2.0/24", "via", "10.0.1.1")
        if shutil.which("ethtool"):
            peer.run("ethtool", "-K", tap, "tx", "off", "rx", "off", "tso", "off", "gso", "off", check=False)
        yield peer
    finally:
        stack.stop()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


@pytest.mark.impaired
def test_linux_learns_the_path_mtu_from_our_router(linux_before_our_router, monkeypatch):
    """Linux sends 1500-byte DF segments towards h2; pktflow's r1 cannot forward
    them into its 1400-byte link and answers "fragmentation needed" (MTU 1400):
    Linux keeps the route exception and the transfer completes."""
    peer = linux_before_our_router
    monkeypatch.setenv("PKTFLOW_ENDPOINT", peer.stack.endpoint)
    data = bytes(range(256)) * 800
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2") as srv:
        srv.bind(("10.0.2.10", 9303))
        srv.listen(1)
        srv.settimeout(30)
        tx = peer.popen(sys.executable, "-c", LINUX_TCP_SENDER, "10.0.2.10", "9303", stderr=subprocess.PIPE,
                        text=True)
        try:
            conn, _ = srv.accept()
            conn.settimeout(30)
            got = bytearray()
            while chunk := conn.recv(65536):
                got.extend(chunk)
            conn.sendall(b"k")
            conn.close()
            assert tx.wait(30) == 0, tx.stderr.read()
        finally:
            tx.kill()
            tx.wait()
    assert bytes(got) == data
    assert counters("r1")["IpFragFails"] >= 1                   # the DF segments it could not forward
    route = peer.run("ip", "route", "get", "10.0.2.10").stdout
    assert re.search(r"expires \d+sec mtu 1400", route), route
