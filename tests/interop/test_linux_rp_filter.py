"""rp_filter side by side with Linux: the default topology (h1 - r1 - h2) built
from three network namespaces and veth pairs, the same rp_filter settings on
Linux's r1 and on pktflow's, the same spoofed packets from h1's side; each
packet's fate (forwarded or dropped by the reverse-path filter, and the
IPReversePathFilter counter) must be Linux's."""
import os
import subprocess
import time

import pytest

from interop.conftest import WHY_NOT

pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

CONFS = [{}, {"all": 1}, {"eth0": 1}, {"all": 2}, {"eth0": 2}, {"all": 2, "eth0": 1}, {"all": 1, "eth0": 0},
         {"eth1": 1}]
SOURCES = ["10.0.2.99", "192.0.2.1", "10.0.1.10"]     # h2's subnet, nowhere, the honest one

SEND = """
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
udp = struct.pack("!HHHH", 4, 9, 9, 0) + b"x"
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 9, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(hdr + udp, (dst, 0))
"""


def _sh(*cmd, check=True) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)}: {r.stderr}")
    return r.stdout


@pytest.fixture(scope="module")
def linux_net():
    """h1, r1, h2 as Linux namespaces, addressed and routed as the default topology."""
    tag = os.getpid() % 10000
    h1, r1, h2 = (f"pfrp{n}{tag}" for n in ("a", "r", "b"))
    for ns in (h1, r1, h2):
        _sh("ip", "netns", "add", ns)
    try:
        for a, aif, b, bif in ((h1, "eth0", r1, "eth0"), (r1, "eth1", h2, "eth0")):
            _sh("ip", "link", "add", f"v{tag}x", "netns", a, "type", "veth", "peer", "name", f"v{tag}y", "netns", b)
            _sh("ip", "-n", a, "link", "set", f"v{tag}x", "name", aif)
            _sh("ip", "-n", b, "link", "set", f"v{tag}y", "name", bif)
        for ns, dev, addr in ((h1, "eth0", "10.0.1.10/24"), (r1, "eth0", "10.0.1.1/24"), (r1, "eth1", "10.0.2.1/24"),
                              (h2, "eth0", "10.0.2.10/24")):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", h1, "route", "add", "default", "via", "10.0.1.1")
        _sh("ip", "-n", h2, "route", "add", "default", "via", "10.0.2.1")
        _sh("ip", "netns", "exec", r1, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield h1, r1, h2
    finally:
        for ns in (h1, r1, h2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _netstat(ns: str) -> dict:
    lines = _sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat", "/proc/net/snmp").splitlines()
    out = {}
    for names, values in zip(lines[::2], lines[1::2]):
        proto, *keys = names.split()
        out.update({proto.rstrip(":") + k: int(v) for k, v in zip(keys, values.split()[1:])})
    return out


def linux_fate(net, conf: dict, src: str) -> tuple[str, int]:
    import sys
    h1, r1, h2 = net
    for dev in ("all", "default", "eth0", "eth1"):
        _sh("ip", "netns", "exec", r1, "sysctl", "-qw", f"net.ipv4.conf.{dev}.rp_filter={conf.get(dev, 0)}")
    before_r1, before_h2 = _netstat(r1), _netstat(h2)
    _sh("ip", "netns", "exec", h1, sys.executable, "-c", SEND, src, "10.0.2.10")
    deadline = time.monotonic() + 2
    while True:                 # veth delivers in softirq: wait for r1's verdict or h2's arrival to show
        after_r1, after_h2 = _netstat(r1), _netstat(h2)
        rpf = after_r1["TcpExtIPReversePathFilter"] - before_r1["TcpExtIPReversePathFilter"]
        arrived = after_h2["IpInReceives"] - before_h2["IpInReceives"]
        if rpf or arrived or time.monotonic() > deadline:
            return ("forwarded" if arrived else "IP_RPFILTER" if rpf else "lost"), rpf
        time.sleep(0.01)


def pktflow_fate(conf: dict, src: str) -> tuple[str, int]:
    from inprocess.test_rp_filter import r1_with, send
    k = r1_with(**conf)
    fate = send(k, src)
    return fate, k.counters("r1")["TcpExtIPReversePathFilter"]


@pytest.mark.parametrize("conf", CONFS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "off")
def test_rp_filter_decides_as_linux_does(linux_net, conf):
    for src in SOURCES:
        assert pktflow_fate(conf, src) == linux_fate(linux_net, conf, src), (conf, src)
