"""The session's tshark check (tests/wirecheck.py) on captures made here: it
must complain about what it exists to catch, and blame the right test."""
import pytest
import wirecheck
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

pytestmark = pytest.mark.skipif(not wirecheck.available(), reason="tshark is not installed")

A, B = "10.0.1.10", "10.0.2.10"


def segment(t: float, src, dst, sport, dport, flags, seq, ack, payload=b""):
    frame = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                                  window=65160) / payload
    frame = Ether(bytes(frame))         # checksums filled in
    frame.time = t
    return frame


def connection(opened_at: float, fin_again_at: float):
    """A handshake, a segment of data, a FIN and the same FIN again (a retransmission)."""
    c, s = (A, B, 40000, 80), (B, A, 80, 40000)
    return [segment(opened_at, *c, "S", 100, 0), segment(opened_at + 0.001, *s, "SA", 500, 101),
            segment(opened_at + 0.002, *c, "A", 101, 501), segment(opened_at + 0.003, *c, "PA", 101, 501, b"x" * 10),
            segment(opened_at + 0.004, *s, "A", 501, 111), segment(opened_at + 0.005, *c, "FA", 111, 501),
            segment(fin_again_at, *c, "FA", 111, 501)]


def window(name, start, end, *markers):
    return (name, int(start * 1e9), int(end * 1e9), set(markers))


def test_a_retransmission_belongs_to_the_test_that_opened_the_connection(tmp_path):
    wrpcap(str(tmp_path / "a.pcap"), connection(opened_at=100.0, fin_again_at=103.0))
    impaired_then_clean = [window("lossy", 99, 101, "impaired"), window("clean", 102, 104)]
    assert wirecheck.check(tmp_path, impaired_then_clean) == []
    clean_then_clean = [window("first", 99, 101), window("clean", 102, 104)]
    [complaint] = wirecheck.check(tmp_path, clean_then_clean)
    assert complaint.startswith("a.pcap frame 7: TCP loss recovery") and complaint.endswith("during clean")


def test_a_bad_checksum_is_allowed_only_while_a_malformed_test_runs(tmp_path):
    frame = Ether() / IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="S", chksum=0xdead)
    frame.time = 100.0
    wrpcap(str(tmp_path / "b.pcap"), [frame])
    [complaint] = wirecheck.check(tmp_path, [window("clean", 99, 101)])
    assert complaint.startswith("b.pcap frame 1: bad frame")
    assert wirecheck.check(tmp_path, [window("crafted", 99, 101, "malformed")]) == []


def test_a_retransmission_the_receiver_dsacked_is_allowed_anywhere(tmp_path):
    """A tail loss probe that fired before a delayed ACK: the receiver already had
    the FIN and says so with a D-SACK (RFC 2883). Nothing was lost: no complaint,
    for the probe nor for the duplicate ACK that reports it. Without the D-SACK the
    same retransmission is a complaint on a clean path."""
    frames = connection(opened_at=100.0, fin_again_at=100.006)
    dsack = Ether() / IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="A", seq=501, ack=112, window=65160,
                                             options=[("NOP", None), ("NOP", None), ("SAck", (111, 112))])
    dsack = Ether(bytes(dsack))
    dsack.time = 100.007
    wrpcap(str(tmp_path / "c.pcap"), frames + [dsack])
    assert wirecheck.check(tmp_path, [window("clean", 99, 101)]) == []
    wrpcap(str(tmp_path / "c.pcap"), frames)
    [complaint] = wirecheck.check(tmp_path, [window("clean", 99, 101)])
    assert complaint.startswith("c.pcap frame 7: TCP loss recovery")


def test_recovery_after_the_last_test_is_the_stack_stopping(tmp_path):
    """After the session's last test the services stop one by one; a FIN still
    in flight is retransmitted into the teardown. Not a complaint; the same
    frame while a clean test runs is."""
    wrpcap(str(tmp_path / "d.pcap"), connection(opened_at=100.0, fin_again_at=100.5))
    assert wirecheck.check(tmp_path, [window("last", 99, 100.2)]) == []
    [complaint] = wirecheck.check(tmp_path, [window("last", 99, 100.2), window("clean", 100.3, 101)])
    assert complaint.startswith("d.pcap frame 7: TCP loss recovery")


def test_a_retransmission_of_what_was_already_acknowledged_is_allowed_anywhere(tmp_path):
    """A probe that raced its ACK: the peer had acknowledged the FIN before the
    copy went (Linux's TIME-WAIT answers it with a plain duplicate ACK, no D-SACK).
    Nothing was lost: no complaint for the copy nor for the ACK answering it."""
    c, s = (A, B, 40000, 80), (B, A, 80, 40000)
    frames = connection(opened_at=100.0, fin_again_at=100.008)[:-1]
    frames.append(segment(100.006, *s, "A", 501, 112))            # the FIN acknowledged...
    frames.append(segment(100.008, *c, "FA", 111, 501))           # ...then its copy
    frames.append(segment(100.009, *s, "A", 501, 112))            # the duplicate ACK answering it
    wrpcap(str(tmp_path / "e.pcap"), frames)
    assert wirecheck.check(tmp_path, [window("clean", 99, 101)]) == []


def test_a_copy_is_judged_where_it_reached_the_receiver(tmp_path):
    """A probe sent before the receiver's ACK of the FIN was seen anywhere, which reached
    the receiver's cable after that ACK left it (the two crossed at the router): nothing
    was lost, no complaint on either cable. Had the ACK left only after the copy came,
    the copy repaired a loss: a complaint on both."""
    c, s = (A, B, 40000, 80), (B, A, 80, 40000)

    def cables(ack_leaves_at):
        near_sender = connection(opened_at=100.0, fin_again_at=100.020)
        near_sender.append(segment(ack_leaves_at + 0.003, *s, "A", 501, 112))
        near_receiver = [f.copy() for f in near_sender[:-2]]
        for f in near_receiver:
            f.time += 0.002
        near_receiver += [segment(ack_leaves_at, *s, "A", 501, 112), segment(100.024, *c, "FA", 111, 501)]
        wrpcap(str(tmp_path / "a-sender.pcap"), near_sender)
        wrpcap(str(tmp_path / "b-receiver.pcap"), sorted(near_receiver, key=lambda f: f.time))
    cables(ack_leaves_at=100.022)
    assert wirecheck.check(tmp_path, [window("clean", 99, 101)]) == []
    cables(ack_leaves_at=100.025)
    complaints = wirecheck.check(tmp_path, [window("clean", 99, 101)])
    assert [c.split(" frame")[0] for c in complaints] == ["a-sender.pcap", "b-receiver.pcap"], complaints


def test_a_copy_sent_to_a_receiver_that_had_reset_the_connection_is_no_loss(tmp_path):
    """The receiver closed with data unread and reset the connection; the sender's probe
    of its FIN, scheduled before the RST came, goes anyway: nothing was lost. The same copy
    with no RST before it is a complaint."""
    c, s = (A, B, 40000, 80), (B, A, 80, 40000)
    frames = connection(opened_at=100.0, fin_again_at=100.009)[:-1]
    rst = segment(100.006, *s, "RA", 501, 112)
    wrpcap(str(tmp_path / "f.pcap"), frames + [rst, segment(100.009, *c, "FA", 111, 501)])
    assert wirecheck.check(tmp_path, [window("clean", 99, 101)]) == []
    rst.time = 100.010                                           # the reset after the copy arrived
    wrpcap(str(tmp_path / "f.pcap"), frames + [segment(100.009, *c, "FA", 111, 501), rst])
    [complaint] = wirecheck.check(tmp_path, [window("clean", 99, 101)])
    assert complaint.startswith("f.pcap frame 7: TCP loss recovery")


def test_an_icmp_error_quoting_a_truncated_segment_is_no_fault_but_a_bad_icmp_checksum_is(tmp_path):
    """Linux quotes 548 bytes of a 1500-byte segment in "fragmentation needed":
    the quoted TCP checksum cannot verify; the error's own checksums must."""
    from scapy.layers.inet import ICMP
    big = bytes(IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="A", seq=1, ack=1) / (b"d" * 1448))
    good = Ether() / IP(src="10.0.1.1", dst=A) / ICMP(type=3, code=4, nexthopmtu=1400) / big[:548]
    good = Ether(bytes(good))
    good.time = 100.0
    wrpcap(str(tmp_path / "a.pcap"), [good])
    assert wirecheck.check(tmp_path, [window("pmtu", 99, 101)]) == []
    bad = Ether(bytes(good))
    bad[ICMP].chksum ^= 0xFFFF
    bad.time = 100.0
    wrpcap(str(tmp_path / "a.pcap"), [bad])
    [complaint] = wirecheck.check(tmp_path, [window("pmtu", 99, 101)])
    assert "Bad checksum" in complaint and "pmtu" in complaint
