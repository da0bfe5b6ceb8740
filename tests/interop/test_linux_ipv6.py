"""IPv6 with the real Linux kernel as the peer: an emulated dual-stack h1 whose
eth0 is a TAP in a namespace where Linux has 2001:db8:1::99 (IPv6 on, unlike the
IPv4 tests' peer). Neighbour discovery both ways, ping -6 both ways (global and
link-local), UDP over IPv6; tshark finds no malformed frame on the TAP."""
import os
import re
import shutil
import subprocess

import pytest

import pktflow
from interop.conftest import PORT_BASE as BASE, WHY_NOT, LinuxPeer

PORT_BASE = BASE + 300
LINUX6, EMU6, EMU_LL = "2001:db8:1::99", "2001:db8:1::10", "fe80::ff:fe00:10a"
EMU_MAC = "02:00:00:00:01:0a"


@pytest.fixture(scope="module")
def linux6(tmp_path_factory):
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    from pktflow.up import Stack
    tag = os.getpid() % 10000
    netns, tap = f"pf6i{tag}", f"pf6t{tag}"
    work = tmp_path_factory.mktemp("interop6")
    wire = work / "wire"
    topo = work / "tap6.yaml"
    topo.write_text(f"""hosts:
  h1:
    interfaces:
      eth0: {{mac: "{EMU_MAC}", addresses: [10.0.1.10/24, {EMU6}/64], tap: {tap}}}
    routes: [default via {LINUX6}]
""")
    stack = Stack(str(topo), port_base=PORT_BASE, trace_store=False, extra_env={"PKTFLOW_WIRE_PCAP": str(wire)})
    stack.start()
    saved = os.environ.get("PKTFLOW_ENDPOINT")
    os.environ["PKTFLOW_ENDPOINT"] = stack.endpoint
    try:
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        subprocess.run(["ip", "link", "set", tap, "netns", netns], check=True, capture_output=True)
        peer = LinuxPeer(netns, tap, stack, wire)
        peer.run("ip", "link", "set", "lo", "up")
        peer.run("ip", "link", "set", tap, "address", "02:00:00:00:01:63")
        peer.run("ip", "addr", "add", f"{LINUX6}/64", "dev", tap, "nodad")
        peer.run("ip", "link", "set", tap, "up")
        peer.run("ip", "-6", "addr", "show", "dev", tap)
        yield peer
    finally:
        if saved is None:
            os.environ.pop("PKTFLOW_ENDPOINT", None)
        else:
            os.environ["PKTFLOW_ENDPOINT"] = saved
        stack.stop()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    from wirecheck import available, check
    if available():
        complaints = check(wire, ())
        assert not complaints, "tshark on the TAP's wire:\n" + "\n".join(complaints[:40])


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed")


def test_linux_pings_the_emulated_host_and_learns_it_by_ndisc(linux6):
    need("ping")
    out = linux6.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", EMU6).stdout
    assert "3 packets transmitted, 3 received" in out
    assert re.findall(r"ttl=(\d+)", out) == ["64"] * 3
    neigh = linux6.run("ip", "-6", "neigh", "show", EMU6).stdout
    assert f"lladdr {EMU_MAC}" in neigh and "FAILED" not in neigh


def test_linux_pings_the_link_local_address(linux6):
    need("ping")
    out = linux6.run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", f"{EMU_LL}%{linux6.tap}").stdout
    assert "2 packets transmitted, 2 received" in out


def test_the_emulated_host_pings_linux_and_learns_it_by_ndisc(linux6):
    r = pktflow.ping(LINUX6, netns="h1", count=3, interval=0.1)
    assert [x.ttl for x in r.replies] == [64, 64, 64]
    out = subprocess.run([os.sys.executable, "-m", "pktflow.cli", "ip", "-6", "neigh", "-n", "h1"],
                         capture_output=True, text=True, timeout=30).stdout
    assert f"{LINUX6} dev eth0 lladdr 02:00:00:00:01:63" in out


def test_udp_over_ipv6_both_ways(linux6):
    need("nc")
    rx = linux6.popen("nc", "-6", "-u", "-l", "-W", "1", LINUX6, "45901", stdout=subprocess.PIPE, text=True)
    try:
        with pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1") as s:
            s.bind((EMU6, 45902))
            s.settimeout(10)
            deadline = 50
            while rx.poll() is None and deadline:           # nc listens once it is up: send until it has one
                s.sendto(b"from pktflow\n", (LINUX6, 45901))
                try:
                    rx.wait(0.2)
                except subprocess.TimeoutExpired:
                    deadline -= 1
            assert "from pktflow" in rx.communicate(timeout=10)[0]
            linux6.run("sh", "-c", f"echo from linux | nc -6 -u -w 1 -s {LINUX6} -p 45903 {EMU6} 45902")
            data, addr = s.recvfrom(100)
            assert data == b"from linux\n" and addr[:2] == (LINUX6, 45903)
    finally:
        rx.kill()
