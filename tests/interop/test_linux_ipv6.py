"""IPv6 with the real Linux kernel as the peer: an emulated dual-stack h1 whose
eth0 is a TAP in a namespace where Linux has 2001:db8:1::99 (IPv6 on, unlike the
IPv4 tests' peer), and behind it a second namespace routed through it (loss made
in the router's FORWARD chain is real loss to both TCPs). Neighbour discovery
both ways, ping -6 both ways (global and link-local), UDP over IPv6, HTTP over
IPv6 both ways (curl -6, python -m http.server --bind ::), bulk TCP with loss both
ways (nc -6); tshark finds no malformed frame on the TAP."""
import hashlib
import os
import random
import re
import shutil
import subprocess
import threading

import pytest

import pktflow
from interop.conftest import PORT_BASE as BASE, WHY_NOT, LinuxPeer, wait_port
from interop.test_linux_peer import download_from_linux_http_server, forward_drop, receiver

PORT_BASE = BASE + 300
LINUX6, EMU6, EMU_LL = "2001:db8:1::99", "2001:db8:1::10", "fe80::ff:fe00:10a"
EMU_MAC = "02:00:00:00:01:0a"
FAR6, FAR_GW6 = "2001:db8:9::2", "2001:db8:9::1"


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
        peer.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        far = LinuxPeer(netns + "f", tap, stack, wire)
        subprocess.run(["ip", "netns", "add", far.netns], check=True, capture_output=True)
        peer.run("ip", "link", "add", "fwd0", "type", "veth", "peer", "name", "fwd1", "netns", far.netns)
        peer.run("ip", "addr", "add", f"{FAR_GW6}/64", "dev", "fwd0", "nodad")
        peer.run("ip", "link", "set", "fwd0", "up")
        far.run("ip", "link", "set", "lo", "up")
        far.run("ip", "addr", "add", f"{FAR6}/64", "dev", "fwd1", "nodad")
        far.run("ip", "link", "set", "fwd1", "up")
        far.run("ip", "-6", "route", "add", "default", "via", FAR_GW6)
        if shutil.which("ethtool"):              # segments on the wire as TCP made them
            for p, dev in ((peer, tap), (peer, "fwd0"), (far, "fwd1")):
                p.run("ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                      check=False)
        peer.far = far
        yield peer
    finally:
        if saved is None:
            os.environ.pop("PKTFLOW_ENDPOINT", None)
        else:
            os.environ["PKTFLOW_ENDPOINT"] = saved
        stack.stop()
        subprocess.run(["ip", "netns", "del", netns + "f"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    from conftest import WINDOWS
    from wirecheck import available, check
    if available():
        complaints = check(wire, WINDOWS)
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


def test_curl_6_fetches_from_an_sdk_http_server(linux6):
    need("curl")
    body = random.Random(31).randbytes(1_000_000)
    srv = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_STREAM, netns="h1")
    srv.bind(("::", 8086))
    srv.listen()
    srv.settimeout(30)

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(30)
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        conn.close()
    t = threading.Thread(target=serve)
    t.start()
    try:
        got = linux6.run("curl", "-6", "-sS", "-m", "60", f"http://[{EMU6}]:8086/blob", text=False).stdout
    finally:
        t.join(30)
        srv.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_sdk_client_downloads_from_linux_http_server_bound_to_any6(linux6, tmp_path):
    download_from_linux_http_server(linux6, pktflow.AF_INET6, "::", LINUX6, 8006,
                                    random.Random(32).randbytes(1_500_000), tmp_path)


def loss6(linux6):
    """2% random loss of TCP both ways, in the Linux router's FORWARD chain."""
    return forward_drop(linux6, "-p", "tcp", "-m", "statistic", "--mode", "random", "--probability", "0.02",
                        tool="ip6tables")


@pytest.mark.impaired
def test_bulk_both_ways_with_loss(linux6, tmp_path):
    need("nc")
    data = random.Random(33).randbytes(2_000_000)
    (tmp_path / "data").write_bytes(data)
    srv, t, got = receiver(pktflow.AF_INET6, ("::", 9106))
    far = linux6.far
    try:
        with loss6(linux6) as loss:
            far.run("sh", "-c", f"nc -6 -N {EMU6} 9106 < {tmp_path / 'data'}", timeout=180)      # Linux -> pktflow
            t.join(180)
            sink = far.popen("sh", "-c", f"nc -6 -l {FAR6} 9107 > {tmp_path / 'back'}")         # pktflow -> Linux
            try:
                wait_port(far, 9107)
                with pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_STREAM, netns="h1") as s:
                    s.settimeout(120)
                    s.connect((FAR6, 9107))
                    s.sendall(data)
                sink.wait(180)
            finally:
                sink.kill()
            assert loss.dropped() > 0
    finally:
        srv.close()
    assert got and got[0] == data
    assert (tmp_path / "back").read_bytes() == data
