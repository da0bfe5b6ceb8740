"""rp_filter side by side with Linux: the default topology (h1 - r1 - h2) built
from three network namespaces and veth pairs, the same rp_filter settings on
Linux's r1 and on pktflow's, the same spoofed packets from h1's side; each
packet's fate (forwarded or dropped by the reverse-path filter, and the
IPReversePathFilter counter) must be Linux's."""
import time

import pytest

from interop.conftest import WHY_NOT, _sh

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
