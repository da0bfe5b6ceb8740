"""pcap-filter expressions on captures, as tcpdump runs them: compiled by libpcap,
attached to the packet socket (SO_ATTACH_FILTER), run by the link layer where it
taps the frames. The oracle is tcpdump itself: the frames a filtered capture
keeps are those `tcpdump -r ALL -w - EXPR` keeps of an unfiltered one taken at
the same time."""
import errno
import shutil
import struct
import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP
from scapy.utils import rdpcap

import pktflow
from conftest import eventually, needs_libpcap
from pktflow.services.common import bpf

pytestmark = [pytest.mark.integration, needs_libpcap,
              pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")]

EXPRESSIONS = ("udp port 45411", "icmp", "udp and not port 45411", "ip[8] < 64 or arp",
               "udp[8:4] = 0x68656c6c", "greater 200")


def frames(path) -> list[bytes]:
    """This test's frames in a capture: its datagrams (and the ICMP errors quoting
    them) and pings; the shared stack may carry other tests' stragglers, which
    the captures, started and stopped one after another, need not all see."""
    return [bytes(p) for p in rdpcap(str(path))
            if b"hell" in bytes(p) or ICMP in p and p[ICMP].type in (0, 8)]


def test_a_filtered_capture_keeps_what_tcpdump_keeps(stack, tmp_path):
    caps = {"": pktflow.capture(netns="h1", ifname="eth0", path=tmp_path / "all.pcap")}
    for i, expr in enumerate(EXPRESSIONS):
        caps[expr] = pktflow.capture(netns="h1", ifname="eth0", path=tmp_path / f"f{i}.pcap", filter=expr)
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
        for port, size in ((45411, 10), (45412, 300), (45411, 500), (45413, 20)):
            s.sendto(b"hell" + bytes(size), ("10.0.2.10", port))      # closed ports: ICMP errors come back
    pktflow.ping("10.0.2.10", netns="h1", count=2, interval=0.05)
    eventually(lambda: caps[""].count >= 12 and caps["icmp"].count >= 8)
    for cap in caps.values():
        cap.stop()
    everything = frames(tmp_path / "all.pcap")
    for i, expr in enumerate(EXPRESSIONS):
        out = tmp_path / f"tcpdump{i}.pcap"
        subprocess.run(["tcpdump", "-r", str(tmp_path / "all.pcap"), "-w", str(out), "--", expr],
                       check=True, capture_output=True)
        theirs = frames(out)
        assert frames(tmp_path / f"f{i}.pcap") == theirs, expr
        assert 0 < len(theirs) < len(everything), expr           # each expression keeps some, not all


def test_an_invalid_expression_fails_with_libpcaps_message(stack, tmp_path):
    with pytest.raises(bpf.FilterError, match="syntax error"):
        pktflow.capture(netns="h1", ifname="eth0", path=tmp_path / "x.pcap", filter="udp port port")


def test_so_attach_filter_refusals_are_linuxs(stack):
    with pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, pktflow.htons(3), netns="h1") as p:
        with pytest.raises(OSError) as e:                          # jumps past the end: sk_chk_filter() refuses
            p.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_ATTACH_FILTER, struct.pack("<HBBI", 0x15, 5, 5, 0))
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            p.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_DETACH_FILTER, 0)
        assert e.value.errno == errno.ENOENT                       # nothing attached
        p.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_ATTACH_FILTER,
                     bpf.sock_filter_bytes(bpf.compile_filter("icmp").insns))
        p.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_DETACH_FILTER, 0)
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as u, pytest.raises(OSError) as e:
        u.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_ATTACH_FILTER, struct.pack("<HBBI", 0x06, 0, 0, 0))
    assert e.value.errno == errno.EOPNOTSUPP


def tcpdump(*args, stdout=subprocess.PIPE):
    return subprocess.Popen([sys.executable, "-m", "pktflow.cli", "tcpdump", *args], stdout=stdout,
                            stderr=subprocess.PIPE)


def test_pktflow_tcpdump_prints_as_tcpdump_does(stack):
    """Lines are tcpdump's own (it prints the pcap stream), only what the filter keeps."""
    proc = tcpdump("-n", "h1", "-i", "eth0", "-c", "4", "icmp")
    try:
        assert "listening on h1:eth0" in proc.stderr.readline().decode()
        pktflow.ping("10.0.2.10", netns="h1", count=2, interval=0.05)
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
            s.sendto(b"not icmp", ("10.0.2.10", 45499))        # its ICMP error is the 5th: -c 4 stops before
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    lines = out.decode().splitlines()
    assert len(lines) == 4 and "4 packets captured" in err.decode()
    assert [line.split(" ", 1)[1].rsplit(", id", 1)[0] for line in lines] == [
        "IP 10.0.1.10 > 10.0.2.10: ICMP echo request", "IP 10.0.2.10 > 10.0.1.10: ICMP echo reply"] * 2


def test_pktflow_tcpdump_writes_a_pcap_stream_and_refuses_what_tcpdump_refuses(stack, tmp_path):
    path = tmp_path / "stream.pcap"
    with open(path, "wb") as f:
        proc = tcpdump("-n", "h1", "-c", "2", "-w", "-", "icmp", stdout=f)
        assert "listening on h1:any" in proc.stderr.readline().decode()
        pktflow.ping("10.0.2.10", netns="h1", count=1)
        proc.wait(30)
    assert [p[ICMP].type for p in rdpcap(str(path))] == [8, 0]          # -i any: both directions, h1's eth0
    bad = tcpdump("-n", "h1", "-i", "eth9")
    assert bad.wait(30) == 1 and b"eth9" in bad.stderr.read()
    bad = tcpdump("-n", "h1", "udp port port")
    assert bad.wait(30) == 1 and b"syntax error" in bad.stderr.read()
