"""Linux's ping, curl and nc against an emulated host across a TAP device,
and the other way round; bulk transfers with loss on the Linux side."""
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading

import pktflow
import pytest
from conftest import counters, eventually
from pktflow import tracequery as tq

from interop.conftest import EMU_ADDR, FAR_ADDR, LINUX_ADDR, wait_port

pytestmark = pytest.mark.integration
HERE = os.path.dirname(os.path.abspath(__file__))


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed")


def test_linux_ping_gets_replies(linux):
    need("ping")
    out = linux.run("ping", "-c", "3", "-i", "0.2", "-W", "2", EMU_ADDR).stdout
    assert "3 packets transmitted, 3 received" in out
    assert re.findall(r"ttl=(\d+)", out) == ["64"] * 3


def test_emulated_host_pings_linux(linux):
    r = pktflow.ping(LINUX_ADDR, netns="h1", count=3, interval=0.1)
    assert [x.ttl for x in r.replies] == [64, 64, 64]


PADDING_PROBE = """
import json, socket, subprocess, sys, time
tap, emu = sys.argv[1:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))     # ETH_P_ALL: outgoing too
s.bind((tap, 0))
s.settimeout(0.2)
subprocess.run(["ip", "neigh", "flush", "dev", tap], check=True)
subprocess.run(["ping", "-c", "1", "-W", "2", emu], capture_output=True)
seen, end = [], time.monotonic() + 1
while time.monotonic() < end:
    try:
        f, addr = s.recvfrom(2048)
    except TimeoutError:
        continue
    if f[12:14] == bytes.fromhex("0806"):
        seen.append(("out" if addr[2] == socket.PACKET_OUTGOING else "in", f[20:22].hex(), len(f)))
print(json.dumps(seen))
"""


def test_linux_gets_short_frames_padded_to_eth_zlen(linux):
    """The emulated NIC pads as hardware does: Linux's ARP request leaves its TAP
    as 42 bytes (a TAP, like a veth, does not pad), the emulated host's reply
    arrives as 60 (ETH_ZLEN), and Linux takes it."""
    need("ping")
    seen = json.loads(linux.run(sys.executable, "-c", PADDING_PROBE, linux.tap, EMU_ADDR).stdout)
    assert ["out", "0001", 42] in seen and ["in", "0002", 60] in seen, seen


def test_linux_packets_enter_at_the_nic(linux):
    need("ping")
    linux.run("ping", "-c", "1", "-W", "2", EMU_ADDR)

    def journey():
        for tr in tq.find(service="nic", operation="netif_receive_skb", tags={"pktflow.netns": "h1"}, limit=50):
            spans = tq.journey(tr)
            echo = next((i for i, s in enumerate(spans) if s["operationName"] == "icmp_echo"), None)
            # each layer exports on its own clock: wait until the chain up to icmp_echo is whole
            if spans[0]["operationName"] == "netif_receive_skb" and echo is not None and all(
                    s["depth"] == i for i, s in enumerate(spans[:echo + 1])):
                return spans
    spans = eventually(journey, timeout=15, interval=0.3)
    assert [s["service"] for s in spans[:3]] == ["nic", "link", "ip"]
    assert tq.tag(spans[0], "pktflow.ifname") == "eth0"


def test_curl_fetches_from_an_sdk_http_server(linux):
    need("curl")
    import sys
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
    import http_server
    ready = threading.Event()
    threading.Thread(target=http_server.serve, args=("h1", "", 8080, ready), daemon=True).start()
    assert ready.wait(10)
    page = linux.run("curl", "-sS", "-m", "10", f"http://{EMU_ADDR}:8080/").stdout
    assert "Hello from an emulated host" in page
    body = linux.run("curl", "-sS", "-m", "60", f"http://{EMU_ADDR}:8080/bytes/2000000", text=False).stdout
    assert hashlib.sha256(body).digest() == hashlib.sha256(bytes(i & 0xFF for i in range(2_000_000))).digest()


def download_from_linux_http_server(peer, family, bind: str, addr: str, port: int, blob: bytes, tmp_path):
    """The SDK on h1 fetches `blob` from Linux's `python3 -m http.server --bind BIND` at (addr, port)."""
    (tmp_path / "blob").write_bytes(blob)
    server = peer.popen("python3", "-m", "http.server", str(port), "--bind", bind, "--directory",
                        str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(peer, port)
        with pktflow.socket(family, pktflow.SOCK_STREAM, netns="h1") as s:
            s.settimeout(30)
            s.connect((addr, port))
            s.sendall(b"GET /blob HTTP/1.0\r\nHost: linux\r\n\r\n")
            reply = b""
            while chunk := s.recv(1 << 20):
                reply += chunk
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.0 200") and body == blob
    finally:
        server.terminate()
        server.wait()


def test_sdk_client_downloads_from_linux_http_server(linux, tmp_path):
    download_from_linux_http_server(linux, pktflow.AF_INET, LINUX_ADDR, LINUX_ADDR, 8000,
                                    random.Random(21).randbytes(1_500_000), tmp_path)


def test_nc_reads_what_the_sdk_sends(linux):
    need("nc")
    nc = linux.popen("nc", "-l", LINUX_ADDR, "9001", stdout=subprocess.PIPE)
    try:
        wait_port(linux, 9001)
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
            s.settimeout(10)
            s.connect((LINUX_ADDR, 9001))
            s.sendall(b"hello, nc\n")
        assert nc.communicate(timeout=10)[0] == b"hello, nc\n"
    finally:
        nc.kill()


class forward_drop:
    """A DROP rule in the Linux router's FORWARD chain (between h1 and the far
    namespace: real loss to both TCPs, no sch_netem here), removed on exit;
    `dropped()` reads its packet counter."""

    def __init__(self, linux, *match, tool="iptables"):
        need(tool)
        self.linux, self.rule, self.tool = linux, ("FORWARD", *match, "-j", "DROP"), tool

    def __enter__(self):
        self.linux.run(self.tool, "-I", *self.rule)
        return self

    def dropped(self) -> int:
        out = self.linux.run(self.tool, "-L", "FORWARD", "-v", "-x", "-n").stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if "DROP" in line)

    def __exit__(self, *exc):
        self.linux.run(self.tool, "-D", *self.rule, check=False)


def forward_loss(linux):
    """2% random loss of TCP both ways."""
    return forward_drop(linux, "-p", "tcp", "-m", "statistic", "--mode", "random", "--probability", "0.02")


def receiver(family, addr):
    """An h1 listener on `addr` and a thread reading one connection to its end into `got`."""
    got = []
    srv = pktflow.socket(family, pktflow.SOCK_STREAM, netns="h1")
    srv.bind(addr)
    srv.listen(1)
    srv.settimeout(60)

    def receive():
        conn, _ = srv.accept()
        conn.settimeout(120)
        buf = bytearray()
        while chunk := conn.recv(1 << 20):
            buf += chunk
        got.append(bytes(buf))
        conn.close()
    t = threading.Thread(target=receive)
    t.start()
    return srv, t, got


@pytest.mark.impaired
def test_bulk_from_linux_with_loss(linux, tmp_path):
    need("nc")
    data = random.Random(22).randbytes(4_000_000)
    (tmp_path / "data").write_bytes(data)
    srv, t, got = receiver(pktflow.AF_INET, ("", 9100))
    before = linux.far.mib()
    try:
        with forward_loss(linux) as loss:
            linux.far.run("sh", "-c", f"nc -N {EMU_ADDR} 9100 < {tmp_path / 'data'}", timeout=180)
            t.join(180)
            assert loss.dropped() > 0
    finally:
        srv.close()
    assert got and got[0] == data
    after = linux.far.mib()
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"]                 # Linux recovered...
    assert after["TcpExtTCPSackRecovery"] > before["TcpExtTCPSackRecovery"]   # ...from our SACK blocks


@pytest.mark.impaired
def test_bulk_to_linux_with_loss(linux, tmp_path):
    need("nc")
    data = random.Random(23).randbytes(4_000_000)
    before = counters("h1")
    out = tmp_path / "received"
    nc = linux.far.popen("sh", "-c", f"nc -l {FAR_ADDR} 9200 > {out}")
    try:
        wait_port(linux.far, 9200)
        with forward_loss(linux) as loss:
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
                s.settimeout(180)
                s.connect((FAR_ADDR, 9200))
                s.sendall(data)
            nc.wait(180)
            assert loss.dropped() > 0
    finally:
        nc.kill()
    assert out.read_bytes() == data
    after = counters("h1")
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"]           # we recovered...
    assert after["TcpExtTCPSackRecovery"] > before["TcpExtTCPSackRecovery"]       # ...from Linux's SACK blocks


ECHO_SERVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
conn, _ = srv.accept()
while data := conn.recv(65536):
    conn.sendall(data)
conn.close()
"""


@pytest.mark.impaired
def test_echo_through_linux_with_loss_both_ways(linux):
    """The stall's regression against Linux: Linux echoes every byte while the SDK
    is still sending, 2 MB each way with loss in both directions; the segments
    carrying SACK blocks fit the MTU on both sides and the echo is byte-identical."""
    data = random.Random(24).randbytes(2_000_000)
    before = counters("h1")
    echo = linux.far.popen("python3", "-c", ECHO_SERVER, FAR_ADDR, "9300", stdout=subprocess.PIPE, text=True)
    back = bytearray()
    try:
        assert echo.stdout.readline().strip() == "ready"
        with forward_loss(linux) as loss:
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
                s.settimeout(120)
                s.connect((FAR_ADDR, 9300))

                def read_back():
                    while chunk := s.recv(1 << 20):
                        back.extend(chunk)
                reader = threading.Thread(target=read_back, daemon=True)
                reader.start()
                s.sendall(data)
                s.shutdown(pktflow.SHUT_WR)
                reader.join(180)
            assert loss.dropped() > 0
        echo.wait(30)
    finally:
        echo.kill()
    assert bytes(back) == data
    after = counters("h1")
    assert after["DropPKT_TOO_BIG"] == before["DropPKT_TOO_BIG"] and after["IpFragFails"] == before["IpFragFails"]
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"]
