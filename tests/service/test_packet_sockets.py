"""AF_PACKET sockets and captures: crafted frames in, whole frames out, and
every malformed frame dropped with the kernel's reason and counted."""
import errno
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

import pktflow
from pktflow import _client
from conftest import counters, eventually, link_stats, own_frames

pytestmark = pytest.mark.integration

H1, R1_ETH0, R1_ETH1, H2 = "02:00:00:00:01:0a", "02:00:00:00:01:01", "02:00:00:00:02:01", "02:00:00:00:02:0a"


@pytest.fixture
def raw_h1(stack):
    s = pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns="h1")
    s.bind(("eth0", 0))
    yield s
    s.close()


def udp_frame(**ip):
    return Ether(dst=R1_ETH0, src=H1) / IP(src="10.0.1.10", dst="10.0.2.10", **ip) / UDP(sport=5555, dport=9) / b"hi"


def test_crafted_frame_is_forwarded(stack, raw_h1):
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv:
        srv.bind(("10.0.2.10", 40001))
        srv.settimeout(5)
        frame = Ether(dst=R1_ETH0, src=H1) / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=777, dport=40001) / b"x"
        raw_h1.send(bytes(frame))
        assert srv.recvfrom(100) == (b"x", ("10.0.1.10", 777))


def drop_case(raw, frame: bytes, netns: str, counter: str):
    before = counters(netns)[counter]
    raw.send(frame)
    eventually(lambda: counters(netns)[counter] == before + 1)


@pytest.mark.malformed
def test_bad_ip_checksum(stack, raw_h1):
    before = counters("r1")
    drop_case(raw_h1, bytes(udp_frame(chksum=0x1234)), "r1", "IpExtInCsumErrors")
    assert counters("r1")["IpInHdrErrors"] == before["IpInHdrErrors"] + 1      # both, as Linux counts it


@pytest.mark.malformed
def test_truncated_ip_header(stack, raw_h1):
    drop_case(raw_h1, bytes(udp_frame())[:14 + 12], "r1", "IpInHdrErrors")


@pytest.mark.malformed
def test_wrong_ip_version(stack, raw_h1):
    f = bytearray(bytes(udp_frame()))
    f[14] = 0x65
    drop_case(raw_h1, bytes(f), "r1", "IpInHdrErrors")


@pytest.mark.malformed
def test_header_length_below_five_words(stack, raw_h1):
    f = bytearray(bytes(udp_frame()))
    f[14] = 0x44
    drop_case(raw_h1, bytes(f), "r1", "IpInHdrErrors")


@pytest.mark.malformed
def test_total_length_beyond_the_frame(stack, raw_h1):
    drop_case(raw_h1, bytes(udp_frame(len=200)), "r1", "IpExtInTruncatedPkts")


@pytest.mark.malformed
def test_total_length_shorter_than_header(stack, raw_h1):
    drop_case(raw_h1, bytes(udp_frame(len=12)), "r1", "IpInHdrErrors")


def test_ttl_one_is_time_exceeded(stack, raw_h1):
    before = counters("r1")
    drop_case(raw_h1, bytes(udp_frame(ttl=1)), "r1", "IcmpOutTimeExcds")
    assert counters("r1")["IpInHdrErrors"] == before["IpInHdrErrors"] + 1


@pytest.mark.malformed
def test_bad_udp_checksum_at_the_receiver(stack, raw_h1):
    f = Ether(dst=R1_ETH0, src=H1) / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=1, dport=9, chksum=0xBEEF) / b"hi"
    before = counters("h2")
    drop_case(raw_h1, bytes(f), "h2", "UdpInCsumErrors")
    assert counters("h2")["UdpInErrors"] == before["UdpInErrors"] + 1
    assert counters("h2")["UdpNoPorts"] == before["UdpNoPorts"]


@pytest.mark.malformed
def test_udp_length_field_too_long(stack, raw_h1):
    f = Ether(dst=R1_ETH0, src=H1) / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=1, dport=9, len=300) / b"hi"
    drop_case(raw_h1, bytes(f), "h2", "UdpInErrors")


@pytest.mark.malformed
def test_bad_icmp_checksum(stack, raw_h1):
    f = Ether(dst=R1_ETH0, src=H1) / IP(src="10.0.1.10", dst="10.0.1.1") / ICMP(chksum=1) / b"x"
    before = counters("r1")
    drop_case(raw_h1, bytes(f), "r1", "IcmpInCsumErrors")
    assert counters("r1")["IcmpInErrors"] == before["IcmpInErrors"] + 1


@pytest.mark.malformed
def test_frame_for_another_mac_is_otherhost(stack, raw_h1):
    import json

    def otherhost():
        return next(d["stats"].get("rx_otherhost_dropped", 0)
                    for d in json.loads(_client.admin("ip", "r1", "link").json)
                    if d["ifname"] == "eth0")
    before = otherhost()
    f = bytes(udp_frame())
    raw_h1.send(b"\x02\x00\x00\x00\x09\x09" + f[6:])
    eventually(lambda: otherhost() == before + 1)


@pytest.mark.malformed
def test_unknown_ethertype_counts_rx_dropped(stack, raw_h1):
    before = link_stats("r1", "link")["eth0"].get("rx_dropped", 0)
    raw_h1.send(bytes(Ether(dst=R1_ETH0, src=H1, type=0x88B5) / (b"\0" * 46)))
    eventually(lambda: link_stats("r1", "link")["eth0"].get("rx_dropped", 0) == before + 1)


@pytest.mark.malformed
def test_short_frames(stack, raw_h1):
    with pytest.raises(OSError) as e:
        raw_h1.send(b"\x01" * 13)                       # shorter than the Ethernet header: Linux refuses
    assert e.value.errno == errno.EINVAL
    drop_case(raw_h1, bytes(Ether(dst=R1_ETH0, src=H1, type=0x0800)) + b"\x45", "r1", "IpInHdrErrors")


def test_oversized_frame_is_emsgsize(stack, raw_h1):
    with pytest.raises(OSError) as e:
        raw_h1.send(b"\0" * 1515)
    assert e.value.errno == errno.EMSGSIZE


@pytest.mark.malformed
def test_services_survive_garbage(stack, raw_h1):
    import random
    rng = random.Random(7)
    for n in (14, 20, 34, 60, 100, 1514):
        for _ in range(10):
            raw_h1.send(bytes(Ether(dst=R1_ETH0, src=H1)) + bytes(rng.getrandbits(8) for _ in range(n - 14)))
    assert stack.failed() is None
    assert pktflow.ping("10.0.2.10", netns="h1").replies[0] is not None


def test_packet_socket_sees_both_directions(stack):
    with pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, pktflow.htons(pktflow.ETH_P_ALL), netns="h2") as s:
        s.bind(("eth0", 0))
        s.settimeout(5)
        assert s.getsockname()[:2] == ("eth0", pktflow.ETH_P_ALL)
        pktflow.ping("10.0.2.10", netns="h1")
        seen = {}
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            frame, (ifname, proto, pkttype, hatype, addr) = s.recvfrom(2048)
            p = Ether(frame)
            if ICMP in p:
                seen[p[ICMP].type] = (ifname, proto, pkttype, hatype, addr)
        assert seen[8] == ("eth0", 0x0800, pktflow.PACKET_HOST, 1, bytes.fromhex(R1_ETH1.replace(":", "")))
        assert seen[0][2] == pktflow.PACKET_OUTGOING


def test_packet_socket_with_protocol_zero_receives_nothing(stack):
    with pktflow.socket(pktflow.AF_PACKET, pktflow.SOCK_RAW, netns="h2") as s:
        s.bind(("eth0", 0))
        pktflow.ping("10.0.2.10", netns="h1")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(2048)


def test_capture_writes_a_pcap_scapy_reads(stack, tmp_path):
    path = tmp_path / "h1.pcap"
    with pktflow.capture(netns="h1", ifname="eth0", path=path) as cap:
        r = pktflow.ping("10.0.2.10", netns="h1", count=2, interval=0.05)
        assert r.received == 2
        eventually(lambda: cap.count >= 4)
    frames = rdpcap(str(path))
    echoes = [p for p in frames if ICMP in p]
    assert [p[ICMP].type for p in echoes][:4] == [8, 0, 8, 0]
    for p in echoes:
        assert p[IP].src in ("10.0.1.10", "10.0.2.10")
        for layer in (IP, ICMP):
            original = bytes(p[layer])
            rebuilt = p[layer].copy()
            del rebuilt.chksum
            assert bytes(rebuilt.__class__(bytes(rebuilt))) == original    # checksums as scapy computes them
    assert echoes[0][IP].ttl == 64 and echoes[1][IP].ttl == 63
    assert all(p.time > 1e9 for p in frames)


def test_capture_sees_arp(stack, tmp_path):
    path = tmp_path / "arp.pcap"
    with pktflow.capture(netns="h1", ifname="eth0", path=path):
        pktflow.ping("10.0.1.77", netns="h1", count=1, timeout=0.2)    # nobody: only ARP requests
    arps = [p for p in rdpcap(str(path)) if ARP in p]
    assert arps and arps[0][ARP].op == 1 and arps[0][ARP].pdst == "10.0.1.77"
    assert arps[0][Ether].dst == "ff:ff:ff:ff:ff:ff" and arps[0][ARP].psrc == "10.0.1.10"


def test_a_packet_socket_flood_meets_backpressure_not_loss(stack, raw_h1):
    """6,000 frames in one sendmmsg() are more than the queue to link holds: the
    sender waits for room (as for send buffer), so every frame is taken, none
    refused; each then leaves h1's eth0 or is dropped by its qdisc, counted."""
    frame = bytes(Ether(dst="02:00:00:00:09:09", src=H1) / IP(src="10.0.1.10", dst="10.0.2.10") /
                  UDP(sport=5555, dport=9) / b"flood")               # a MAC nobody has: r1 drops it as OTHERHOST
    def out():
        """Frames h1's devices sent or their qdiscs dropped, less those h1's own stack made
        meanwhile (ARP, IPv4, and IPv6's router solicitations, MLD reports, NDP)."""
        sent = sum(st.get("tx_packets", 0) + st.get("tx_dropped", 0) for st in link_stats("h1").values())
        return sent - own_frames("h1")
    before = out()
    assert raw_h1.sendmmsg([(frame, None)] * 6000) == 6000
    eventually(lambda: out() - before == 6000, timeout=30)

