"""TCP's state machine driven in-process (services/netstack: every host's cores,
the cables, a fake clock): RFC 9293 behaviour with Linux's defaults."""
import errno
import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pktflow.services.netstack import Netstack
from pktflow.services.common.uapi import LINGER
from pktflow.services.transport import tcp as T
from conftest import LINUX_CAPTURES

DATA = LINUX_CAPTURES
SOL_SOCKET, IPPROTO_TCP = 1, 6
SO_KEEPALIVE, SO_RCVBUF = 9, 8
TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_SYNCNT = 1, 4, 5, 6, 7


def segments(net, netns=None, ifindex=None):
    """TCP segments that crossed cables, as scapy sees them."""
    out = []
    for ns, ifi, frame in net.frames:
        if (netns is None or ns == netns) and (ifindex is None or ifi == ifindex):
            p = Ether(frame)
            if TCP in p:
                out.append(p)
    return out


def connected_pair(net, port=80):
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", port) == 0 and srv.listen() == 0
    cli = net.socket("h1")
    assert cli.connect("10.0.2.10", port) == errno.EINPROGRESS
    child = srv.accept()
    assert child is not None and cli.states() == [T.ESTABLISHED]
    return srv, cli, child


def transfer(net, sender, receiver, data: bytes, step: float = 0.005, limit: float = 300.0) -> bytes:
    sent, got = 0, b""
    start = net.now
    while len(got) < len(data):
        if sent < len(data):
            n = sender.send(data[sent:sent + 65536])
            if n > 0:
                sent += n
        got += receiver.recv()
        net.advance(step)
        assert (net.now - start) / 1e9 < limit, f"stalled at {len(got)} of {len(data)} bytes"
    return got


def test_syn_carries_linuxs_options():
    net = Netstack()
    connected_pair(net)
    syn = segments(net, "h1")[0]
    linux = rdpcap(str(DATA / "tcp-rst-closed-port.h1.pcap"))[0]
    assert syn[TCP].flags == "S" and syn[TCP].window == linux[TCP].window == 64240
    ours = [(k, v) for k, v in syn[TCP].options if k != "Timestamp"]
    theirs = [(k, v) for k, v in linux[TCP].options if k != "Timestamp"]
    # Linux here runs tcp_rmem max 32 MiB (wscale 10); upstream's 6 MiB default gives 7
    assert ours == [(k, 7 if k == "WScale" else v) for k, v in theirs]
    assert [k for k, _ in syn[TCP].options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
    assert syn[IP].flags.DF and syn[IP].ttl == 64 and syn[TCP].dataofs == linux[TCP].dataofs
    synack = segments(net, "h2")[0]
    assert synack[TCP].flags == "SA" and synack[TCP].ack == syn[TCP].seq + 1
    assert dict(synack[TCP].options)["Timestamp"][1] == dict(syn[TCP].options)["Timestamp"][0]


def test_rst_for_a_closed_port_matches_linux():
    net = Netstack()
    cli = net.socket("h1")
    cli.connect("10.0.2.10", 9)
    assert cli.errors() == [errno.ECONNREFUSED]
    rst = segments(net, "h2")[0]
    syn = segments(net, "h1")[0]
    linux = rdpcap(str(DATA / "tcp-rst-closed-port.h1.pcap"))[1]
    assert rst[TCP].flags == linux[TCP].flags == "RA"
    assert rst[TCP].seq == 0 and rst[TCP].ack == syn[TCP].seq + 1 and rst[TCP].window == 0
    assert (rst[IP].id, rst[IP].flags.DF) == (linux[IP].id, linux[IP].flags.DF) == (0, True)
    assert net.counters("h2")["TcpOutRsts"] == 1 and net.counters("h1")["TcpAttemptFails"] == 1
    assert [r for _, _, r, _ in net.drops] == ["NO_SOCKET"]


@pytest.mark.parametrize("direction", ["h1 to h2", "h2 to h1"])
def test_bulk_transfer_is_byte_identical(direction):
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    data = random.Random(1).randbytes(1_000_000)
    a, b = (cli, child) if direction == "h1 to h2" else (child, cli)
    assert transfer(net, a, b, data) == data
    for host in ("h1", "h2"):
        c = net.counters(host)
        # No recovery on a lossless path. A reader that wakes every 5 ms holds its
        # ACKs longer than 2 x SRTT, so a tail loss probe may go and be D-SACKed:
        # that is Linux's behaviour too, and it costs no window (no TCPLossProbeRecovery).
        assert c["TCPTimeouts"] == c["TCPSackRecovery"] == c["TCPLossProbeRecovery"] == 0
        assert c["TcpRetransSegs"] <= c["TCPLossProbes"] and c["TCPDSACKRecv"] == c["TcpRetransSegs"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_transfer_survives_loss_both_ways(seed):
    rng = random.Random(seed)
    net = Netstack(loss=lambda ns, ifi, f: ns == "r1" and rng.random() < 0.05)
    _srv, cli, child = None, None, None
    for _ in range(20):                               # the handshake itself may lose a segment
        net.advance(1)
        if child is None:
            srv = net.socket("h2") if _srv is None else _srv
            if _srv is None:
                srv.bind("10.0.2.10", 80)
                srv.listen()
                _srv = srv
                cli = net.socket("h1")
                cli.connect("10.0.2.10", 80)
            child = srv.accept()
    data = rng.randbytes(500_000)
    assert transfer(net, cli, child, data) == data
    c = net.counters("h1")
    assert c["TcpRetransSegs"] > 0 and c["TCPSackRecovery"] + c["TCPTimeouts"] > 0


def echo(net, client, server, data: bytes, step: float = 0.005, limit: float = 300.0) -> bytes:
    """`server` echoes every byte it reads while `client` is still sending: both
    directions carry data at once, so each side's segments carry SACK blocks."""
    sent, pending, back = 0, b"", b""
    start = net.now
    while len(back) < len(data):
        if sent < len(data):
            n = client.send(data[sent:sent + 65536])
            sent += max(n, 0)
        pending += server.recv()
        if pending:
            pending = pending[max(server.send(pending), 0):]
        back += client.recv()
        net.advance(step)
        assert (net.now - start) / 1e9 < limit, f"stalled at {len(back)} of {len(data)} bytes"
    return back


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_echo_with_loss_both_ways_never_exceeds_the_mtu(seed):
    """A data segment that carries SACK blocks has a shorter payload
    (tcp_current_mss()), and a retransmission is cut to the current MSS
    (tcp_fragment()): none is ever larger than the path MTU (services/netstack
    asserts it for every segment), so none is dropped as PKT_TOO_BIG."""
    rng = random.Random(seed)
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    net.loss = lambda ns, ifi, f: ns == "r1" and rng.random() < 0.05
    data = random.Random(1).randbytes(500_000)
    assert echo(net, cli, child, data) == data
    assert not [d for d in net.drops if d[2] == "PKT_TOO_BIG"]
    sacks = [p for p in segments(net) if p[TCP].payload and any(o[0] == "SAck" for o in p[TCP].options)]
    assert sacks and max(len(p[IP]) for p in sacks) == 1500    # full-sized with SACK blocks: exactly the MTU


def test_corrupted_segments_fail_the_checksum_and_are_resent():
    rng = random.Random(4)

    class Corrupt:
        def __call__(self, ns, ifi, frame):
            if ns == "r1" and ifi == 3 and len(frame) > 200 and rng.random() < 0.05:
                net.receive("h2", "eth0", frame[:100] + bytes([frame[100] ^ 0x10]) + frame[101:])
                return True
            return False
    net = Netstack(loss=Corrupt())
    _srv, cli, child = connected_pair(net)
    data = rng.randbytes(300_000)
    assert transfer(net, cli, child, data) == data
    assert net.counters("h2")["TcpInCsumErrors"] > 0
    assert "TCP_CSUM" in {r for _, _, r, _ in net.drops}


def test_reordering_and_duplicates_do_not_corrupt():
    rng = random.Random(5)
    held = []

    def shuffle(ns, ifi, frame):
        if ns != "r1" or ifi != 3:
            return False
        if rng.random() < 0.1:                        # duplicate it
            net.wire.append((ns, ifi, frame))
        if rng.random() < 0.2 and not held:           # hold it back behind the next one
            held.append(frame)
            return True
        if held:
            net.wire.append((ns, ifi, held.pop()))
        return False
    net = Netstack(loss=shuffle)
    _srv, cli, child = connected_pair(net)
    data = rng.randbytes(300_000)
    assert transfer(net, cli, child, data) == data
    assert "TCP_OLD_DATA" in {r for _, _, r, _ in net.drops}


def test_rst_on_an_established_connection_is_econnreset():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    from pktflow.v1.skb_pb2 import ProtoCall
    child.setsockopt(SOL_SOCKET, 13, LINGER.pack(1, 0))   # SO_LINGER {on, 0}: close() aborts
    child.call(ProtoCall.RELEASE)
    assert cli.errors() == [errno.ECONNRESET]
    assert segments(net, "h2")[-1][TCP].flags == "RA"
    assert net.counters("h1")["TcpEstabResets"] == 1


def tcp_only(ns, ifi, frame) -> bool:
    return ns == "r1" and ifi == 3 and TCP in Ether(frame)        # TCP does not reach h2, ARP does


def test_syn_retries_back_off_then_etimedout():
    net = Netstack(loss=tcp_only)
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_syn_retries"] = 3
    cli = net.socket("h1")
    cli.connect("10.0.2.10", 80)
    net.advance(20)
    syns = [f for ns, _, f in net.frames if ns == "h1" and TCP in Ether(f)]
    assert len(syns) == 4                                  # the SYN and three retries: 1, 2, 4 s apart
    assert cli.errors() == [errno.ETIMEDOUT]
    assert net.counters("h1")["TCPTimeouts"] >= 3


def test_syn_retry_timing():
    net = Netstack(loss=tcp_only)
    cli = net.socket("h1")
    start = net.now
    cli.connect("10.0.2.10", 80)
    times = []
    for _ in range(200):
        before = len(segments(net, "h1"))
        net.advance(0.1)
        if len(segments(net, "h1")) > before:
            times.append(round((net.now - start) / 1e9))
    assert times[:4] == [1, 3, 7, 15]                      # RTO 1 s, doubling (RFC 6298 5.5)


def test_half_close_lets_the_other_side_keep_sending():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.send(b"request")
    assert cli.shutdown(1) == 0                            # SHUT_WR: FIN after the data
    assert child.recv() == b"request"
    assert T.CLOSE_WAIT in child.states()                  # the socket layer sees end of stream
    assert child.send(b"response") == 8
    assert cli.recv() == b"response"
    child.close()
    assert cli.info().state == T.TIME_WAIT
    assert child.info() is None                            # LAST-ACK ended in CLOSED


def test_time_wait_lasts_its_length():
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_timewait_len"] = 5
    _srv, cli, child = connected_pair(net)
    cli.close()
    child.close()
    assert cli.info().state == T.TIME_WAIT
    net.advance(4.9)
    assert cli.info() is not None
    net.advance(0.2)
    assert cli.info() is None


def test_simultaneous_open():
    net = Netstack()
    a, b = net.socket("h1"), net.socket("h2")
    a.bind("10.0.1.10", 5000)
    b.bind("10.0.2.10", 6000)
    # both SYNs cross: h1's is held until h2's has gone out
    held = []
    net.loss = lambda ns, ifi, f: (ns == "h1" and TCP in Ether(f) and not held and held.append(f) is None)
    a.connect("10.0.2.10", 6000)
    net.loss = None
    b.connect("10.0.1.10", 5000)
    net.wire.append(("h1", 2, held[0]))
    net.pump()
    net.advance(2)
    assert a.info().state == b.info().state == T.ESTABLISHED
    assert a.send(b"hi") == 2 and b.recv() == b"hi"


def test_simultaneous_close():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    held = []
    net.loss = lambda ns, ifi, f: ns == "h1" and not held and held.append(f) is None
    cli.shutdown(1)                                        # h1's FIN is held back
    net.loss = None
    child.shutdown(1)                                      # h2's FIN crosses it
    net.wire.append(("h1", 2, held[0]))
    net.pump()
    assert cli.info().state == child.info().state == T.TIME_WAIT
    # Two TIME-WAITs: a bare ACK in the window is not answered (else they would ACK
    # each other forever); a retransmitted FIN is, at most once per tcp_invalid_ratelimit.
    last_ack = next(f for ns, ifi, f in reversed(net.frames) if ns == "h1" and not len(Ether(f)[TCP].payload)
                    and Ether(f)[TCP].flags == "A")
    sent = len(net.frames)
    net.wire.append(("h1", 2, last_ack))
    net.pump()
    assert len(net.frames) == sent + 2                     # the replayed ACK on both cables, no answer
    fin = held[0]
    for _ in range(3):
        net.wire.append(("h1", 2, fin))
        net.pump()
    answers = [f for ns, ifi, f in net.frames[sent:] if ns == "h2"]
    assert len(answers) == 1 and net.counters("h2")["TCPACKSkippedTimeWait"] == 2


def test_zero_window_and_probes_lose_nothing():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    child.setsockopt(SOL_SOCKET, SO_RCVBUF, 32768)         # a small buffer, autotuning off
    data = random.Random(6).randbytes(200_000)
    sent = 0
    for _ in range(100):                                   # the reader does not read
        n = cli.send(data[sent:sent + 65536])
        sent += max(n, 0)
        net.advance(0.05)
    info = cli.info()
    assert info.snd_wnd == 0 and sent < len(data)
    net.advance(10)
    probe_seq = (info.snd_una - 1) & 0xFFFFFFFF
    probes = [p for p in segments(net, "h1") if not len(p[TCP].payload) and p[TCP].seq == probe_seq]
    assert len(probes) >= 2                                # zero-window probes, backing off
    got = child.recv()                                     # the reader wakes up: nothing was lost
    while len(got) < len(data):
        if sent < len(data):
            n = cli.send(data[sent:sent + 65536])
            sent += max(n, 0)
        net.advance(0.05)
        got += child.recv()
    assert got == data


def test_delayed_ack_after_quickack():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    for _ in range(20):                                    # past the quickack budget (16)
        cli.send(b"x" * 100)
        child.recv()
        net.advance(0.1)
    acks_before = len(segments(net, "h2"))
    cli.send(b"y" * 100)
    assert len(segments(net, "h2")) == acks_before         # not acknowledged at once...
    net.advance(0.039)
    assert len(segments(net, "h2")) == acks_before
    net.advance(0.002)
    assert len(segments(net, "h2")) == acks_before + 1     # ...but after 40 ms (TCP_DELACK_MIN)
    assert net.counters("h2")["DelayedACKs"] >= 1


def test_nagle_holds_small_writes_until_the_ack():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    held = []
    net.loss = lambda ns, ifi, f: ns == "h2" and held.append(f) is None   # ACKs do not come back
    cli.send(b"a")
    cli.send(b"b")
    cli.send(b"c")
    data_segs = [p for p in segments(net, "h1") if len(p[TCP].payload)]
    assert [bytes(p[TCP].payload) for p in data_segs] == [b"a"]
    net.loss = None
    for f in held:
        net.wire.append(("h2", 2, f))
    net.pump()
    net.advance(0.05)
    data_segs = [p for p in segments(net, "h1") if len(p[TCP].payload)]
    assert [bytes(p[TCP].payload) for p in data_segs][-1] == b"bc"


def test_nodelay_sends_small_writes_at_once():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    net.loss = lambda ns, ifi, f: ns == "h2"
    for ch in (b"a", b"b", b"c"):
        cli.send(ch)
    assert [bytes(p[TCP].payload) for p in segments(net, "h1") if len(p[TCP].payload)] == [b"a", b"b", b"c"]


def test_single_tail_loss_is_repaired_by_a_loss_probe():
    """RACK-TLP (RFC 8985): one segment out, lost, no ACK to tell. After the
    probe timeout (2 x SRTT + tcp_rto_min with one segment out) the last segment
    goes again as a probe, well before the RTO; the ACK beyond the probe shows a
    loss was repaired, so the window is reduced once (CWR), not reset to 1."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    dropped = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 100 and not dropped and dropped.append(1) is None
    cwnd = cli.info().cwnd
    cli.send(b"z" * 500)
    assert child.recv() == b""
    net.advance(0.19)
    assert child.recv() == b""                             # the probe waits out a delayed ACK (200 ms)
    net.advance(0.1)
    assert child.recv() == b"z" * 500
    c = net.counters("h1")
    assert c["TCPLossProbes"] == c["TcpRetransSegs"] == 1 and c["TCPTimeouts"] == 0
    cli.send(b"y" * 500)                                   # an ACK beyond the probe: the loss was real
    assert child.recv() == b"y" * 500
    assert net.counters("h1")["TCPLossProbeRecovery"] == 1
    assert cli.info().cwnd == cwnd * 717 // 1024           # cubic's beta, once


def test_single_loss_without_probes_is_an_rto():
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_early_retrans"] = 0      # no tail loss probes
    _srv, cli, child = connected_pair(net)
    dropped = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 100 and not dropped and dropped.append(1) is None
    cli.send(b"z" * 500)
    assert child.recv() == b""
    net.advance(0.19)
    assert child.recv() == b""                             # RTO >= 200 ms (Linux's minimum)
    net.advance(1.2)
    assert child.recv() == b"z" * 500
    assert net.counters("h1")["TCPTimeouts"] == 1 and net.counters("h1")["TCPLossProbes"] == 0


def test_three_dupacks_fast_retransmit():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    data = random.Random(7).randbytes(20 * 1448)
    dropped = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 1000 and not dropped and dropped.append(1) is None
    cli.send(data)
    net.advance(0.01)                                      # well before any RTO
    assert child.recv() == data
    c = net.counters("h1")
    assert c["TCPFastRetrans"] == 1 and c["TCPTimeouts"] == 0 and c["TCPSackRecovery"] == 1


@pytest.mark.parametrize("algo, factor", [("cubic", 717 / 1024), ("reno", 0.5)])
def test_congestion_control_reacts_to_loss(algo, factor):
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_congestion_control"] = algo
    _srv, cli, child = connected_pair(net)
    assert cli.info().ca.name == algo
    data = random.Random(8).randbytes(400_000)
    transfer(net, cli, child, data[:200_000])
    cwnd = cli.info().cwnd
    dropped = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 1000 and not dropped and dropped.append(1) is None
    cli.send(data[200_000:260_000])
    assert cli.info().ssthresh == max(int(cli.info().prior_cwnd * factor), 2)
    assert cwnd > 10


def test_tcp_congestion_option_per_socket():
    net = Netstack()
    cli = net.socket("h1")
    from pktflow.v1.skb_pb2 import ProtoCall
    ev = cli.call(ProtoCall.SETSOCKOPT, level=IPPROTO_TCP, optname=13, optbytes=b"reno")
    assert ev.err == 0 and cli.info().ca.name == "reno"


def test_syn_cookies_let_clients_in_when_the_syn_queue_is_full():
    net = Netstack()
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(backlog=2)
    net.loss = lambda ns, ifi, f: ns == "r1" and ifi == 2 and TCP in Ether(f)   # no SYN-ACK reaches h1
    for port in range(3):                                   # the SYN queue holds backlog + 1
        s = net.socket("h1")
        s.bind("10.0.1.10", 40000 + port)
        s.connect("10.0.2.10", 80)
    net.loss = None
    cli = net.socket("h1")
    cli.connect("10.0.2.10", 80)                            # the queue is full: a cookie answers
    c = net.counters("h2")
    assert c["SyncookiesSent"] == 1 and c["SyncookiesRecv"] == 1
    child = srv.accept()
    assert child is not None and cli.states() == [T.ESTABLISHED]
    assert cli.send(b"with cookies") == 12 and child.recv() == b"with cookies"
    info = child.info()
    assert info.sack_ok and info.ts_ok and info.snd_wscale == 7     # carried in the timestamp


def test_a_cookie_makes_one_connection_however_often_its_ack_comes():
    """Issue 15: a SYN cookie validates once. The third ACK duplicated, then data:
    the child made by the first is in the established table, so the others
    find it and never reach the listener (cookie_v4_check() runs for none)."""
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_syncookies"] = 2           # every SYN answered with a cookie
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen()
    cli = net.socket("h1")
    cli.connect("10.0.2.10", 80)
    [ack] = [f for f in segments(net, "h1") if f[TCP].flags == "A" and not len(f[TCP].payload)][:1]
    for _ in range(3):
        net.receive("h2", "eth0", bytes(Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:02:01") / ack[IP]))
    net.pump()
    assert cli.send(b"once") == 4
    child = srv.accept()
    assert child.recv() == b"once" and srv.accept() is None
    c = net.counters("h2")
    assert c["SyncookiesSent"] == 1 and c["SyncookiesRecv"] == 1 and c["TcpPassiveOpens"] == 1


def cookie_server(net, backlog: int = 128):
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_syncookies"] = 2           # every SYN answered with a cookie
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(backlog)
    return srv


def to_h2(net, frame: bytes):
    """A copy of a frame h1 sent, delivered to h2 as r1 would forward it."""
    net.receive("h2", "eth0", bytes(Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:02:01") / Ether(frame)[IP]))
    net.pump()


def holding(net, match):
    """Frames `match` picks are held back (returned in a list) instead of crossing."""
    held = []
    net.loss = lambda ns, ifi, f: match(ns, ifi, Ether(f)) and held.append((ns, ifi, f)) is None
    return held


def release(net, held):
    net.loss = None
    for w in held:
        net.cross(*w)
    net.pump()


def children_of(net, cli):
    """h2's sockets for cli's 4-tuple, whatever their state."""
    c = next(s for s in net.tr.tcp.socks.values() if s.netns == "h1" and s.sk == cli.sk)
    return [s for s in net.tr.tcp.socks.values() if s.netns == "h2" and (s.raddr, s.rport) == (c.laddr, c.lport)]


def is_pure_ack(p):
    return TCP in p and p[TCP].flags == "A" and not len(p[TCP].payload)


@pytest.mark.parametrize("case", ["syn_retransmitted", "ack_lost_data_validates", "fin_duplicated"])
def test_a_cookie_validates_once_while_its_connection_lives(case):
    """Issue 15: one cookie handshake, one connection, whatever else of the
    4-tuple arrives while it lives: the child cookie_v4_check() made is in the
    established table (inet_ehash_nolisten()), so tcp_v4_rcv() finds it first
    and nothing more reaches the listener's cookie check."""
    net = Netstack()
    srv = cookie_server(net)
    cli = net.socket("h1")
    if case == "syn_retransmitted":
        # the cookie SYN-ACK is late: the client sends its SYN again and gets a second cookie
        held = holding(net, lambda ns, ifi, p: ns == "r1" and TCP in p and p[TCP].flags == "SA")
        cli.connect("10.0.2.10", 80)
        net.advance(1.5)
        release(net, held)                  # the second SYN-ACK finds the client established: a dup ACK
        syns = [p for p in segments(net, "h1") if p[TCP].flags == "S"]
        assert len(held) == 2 and len(syns) == 2
        to_h2(net, bytes(syns[0]))          # and an old SYN after all that: the child ACKs it
        assert segments(net, "h2")[-1][TCP].flags == "A"
        assert cli.send(b"once") == 4
    elif case == "ack_lost_data_validates":
        held = holding(net, lambda ns, ifi, p: ns == "h1" and is_pure_ack(p))
        cli.connect("10.0.2.10", 80)
        net.loss = None
        assert len(held) == 1 and cli.send(b"once") == 4     # the data carries the cookie
        data = [p for p in segments(net, "h1") if len(p[TCP].payload)][0]
        for frame in (held[0][2], bytes(data), held[0][2]):   # the lost ACK late, the data again
            to_h2(net, frame)
    else:
        cli.connect("10.0.2.10", 80)
        assert cli.send(b"once") == 4
        cli.shutdown(1)                     # SHUT_WR: a FIN with the cookie's ACK number
        fin = [p for p in segments(net, "h1") if p[TCP].flags.F][0]
        for _ in range(3):
            to_h2(net, bytes(fin))
    child = srv.accept()
    assert child is not None and child.recv() == b"once" and srv.accept() is None
    assert len(children_of(net, cli)) == 1
    c = net.counters("h2")
    assert c["SyncookiesRecv"] == 1 and c["TcpPassiveOpens"] == 1 and c["SyncookiesFailed"] == 0


def test_a_cookie_ack_the_accept_queue_dropped_validates_again():
    """The accept queue is full when the third ACK comes: cookie_v4_check()
    counts SyncookiesRecv, the child is freed and the ACK dropped. The client
    believes it is connected; its data carries the same cookie and, once
    accept() made room, makes the one child. So SyncookiesRecv can exceed the
    connections accepted, in Linux as here: it counts validated ACKs."""
    net = Netstack()
    srv = cookie_server(net, backlog=0)                      # the accept queue holds one
    cli = net.socket("h1")
    held = holding(net, lambda ns, ifi, p: ns == "h1" and is_pure_ack(p))
    cli.connect("10.0.2.10", 80)                             # its third ACK is held back
    net.loss = None
    net.socket("h1").connect("10.0.2.10", 80)                # fills the accept queue
    release(net, held)                                       # ListenOverflows: dropped
    assert net.counters("h2")["ListenOverflows"] == 1 and children_of(net, cli) == []
    assert srv.accept() is not None                          # room again
    assert cli.send(b"late") == 4
    child = srv.accept()
    assert child is not None and child.recv() == b"late" and srv.accept() is None
    assert len(children_of(net, cli)) == 1
    c = net.counters("h2")
    assert c["SyncookiesRecv"] == 3 and c["TcpPassiveOpens"] == 2


def test_a_late_copy_of_the_last_ack_revalidates_the_cookie_after_the_connection_closed():
    """What issue 15's flood showed (54 passive opens for 30 connects): a cookie
    is linear in the client's ISN (secure_tcp_syn_cookie() adds sseq), so any
    segment whose seq and ack moved by the same amount checks as well - the
    client's last ACK, after one FIN each way, is (ISN + 2, cookie + 2). Slow
    enough, the server retransmits its FIN, the client's TIME-WAIT ACKs again;
    the first ACK closes the server's LAST-ACK socket (no TIME-WAIT on this
    side), the second finds only the listener, and cookie_v4_check() makes a new
    child of it. Linux does the same (its only other condition,
    tcp_synq_no_recent_overflow(), holds during a flood): a second
    SyncookiesRecv and TcpPassiveOpens, never two sockets at once."""
    net = Netstack()
    srv = cookie_server(net)
    cli = net.socket("h1")
    cli.connect("10.0.2.10", 80)
    child = srv.accept()
    cli.close()
    held = holding(net, lambda ns, ifi, p: ns == "h1" and is_pure_ack(p))
    child.close()                                            # CLOSE-WAIT -> LAST-ACK: its FIN
    net.advance(1.5)                                         # the ACK is slow: the FIN again, ACKed again
    assert len(held) == 2 and len(children_of(net, cli)) == 1
    release(net, held[:1])
    assert children_of(net, cli) == []                       # LAST-ACK -> CLOSE
    release(net, held[1:])
    c = net.counters("h2")
    assert c["SyncookiesRecv"] == 2 and c["TcpPassiveOpens"] == 2
    assert len(children_of(net, cli)) == 1 and srv.accept() is not None


def test_a_cookie_ack_the_accept_queue_has_no_room_for_leaves_nothing_behind():
    """cookie_v4_check() with a full accept queue: the ACK is dropped and the child
    it would have made is freed (tcp_get_cookie_sock() gets NULL), not kept."""
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_syncookies"] = 2
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(backlog=0)                                    # the accept queue holds one
    held = []
    net.loss = lambda ns, ifi, f: (ns == "h1" and TCP in Ether(f) and Ether(f)[TCP].flags == "A" and not held
                                   and held.append(f) is None)
    late = net.socket("h1")
    late.connect("10.0.2.10", 80)                            # its third ACK is held back
    net.loss = None
    net.socket("h1").connect("10.0.2.10", 80)                # fills the accept queue
    socks = len(net.tr.tcp.socks)
    net.receive("h2", "eth0", bytes(Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:02:01") / Ether(held[0])[IP]))
    net.pump()
    c = net.counters("h2")
    assert c["SyncookiesRecv"] == 2 and c["ListenOverflows"] == 1
    assert len(net.tr.tcp.socks) == socks                    # no orphan child on h2


def test_forged_cookie_is_refused():
    net = Netstack()
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen()
    ack = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") / TCP(
        sport=1234, dport=80, flags="A", seq=1000, ack=123456)
    net.receive("h2", "eth0", bytes(ack))
    net.pump()
    assert net.counters("h2")["SyncookiesFailed"] == 1
    assert segments(net, "h2")[-1][TCP].flags == "R"


def test_keepalive_probes_then_gives_up():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
    cli.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 10)
    cli.setsockopt(IPPROTO_TCP, TCP_KEEPINTVL, 2)
    cli.setsockopt(IPPROTO_TCP, TCP_KEEPCNT, 3)
    net.advance(11)
    probes = [p for p in segments(net, "h1") if not len(p[TCP].payload) and p[TCP].flags == "A"]
    assert probes and cli.errors() == []                    # the peer answered
    net.loss = lambda ns, ifi, f: True                      # now it is gone
    net.advance(30)
    assert cli.errors() == [errno.ETIMEDOUT]


def test_out_of_window_segment_is_dropped_and_acked():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    info = child.info()
    bogus = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") / TCP(
        sport=cli.info().lport, dport=80, flags="A", seq=(info.rcv_nxt + 10_000_000) & 0xFFFFFFFF,
        ack=info.snd_nxt & 0xFFFFFFFF) / b"junk"
    before = len(segments(net, "h2"))
    net.receive("h2", "eth0", bytes(bogus))
    net.pump()
    assert net.drops[-1][2] == "TCP_INVALID_SEQUENCE"
    assert len(segments(net, "h2")) == before + 1           # RFC 9293: an ACK answers it


def test_rst_in_window_but_not_exact_gets_a_challenge_ack():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    info = child.info()
    rst = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") / TCP(
        sport=cli.info().lport, dport=80, flags="R", seq=(info.rcv_nxt + 100) & 0xFFFFFFFF)
    net.receive("h2", "eth0", bytes(rst))
    net.pump()
    assert child.info().state == T.ESTABLISHED              # RFC 5961: not a reset
    assert segments(net, "h2")[-1][TCP].flags == "A"


def test_close_with_unread_data_sends_rst():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.send(b"unread")
    child.close()
    assert segments(net, "h2")[-1][TCP].flags == "RA"
    assert cli.errors() == [errno.ECONNRESET]


def test_bind_and_listen_conflicts():
    net = Netstack()
    a, b = net.socket("h2"), net.socket("h2")
    assert a.bind("10.0.2.10", 80) == 0 and a.listen() == 0
    assert b.bind("0.0.0.0", 80) == errno.EADDRINUSE
    c = net.socket("h2")
    assert c.bind("10.0.1.10", 81) == errno.EADDRNOTAVAIL


# -- loss recovery, ECN and pacing as Linux 6.x does them by default ---------

def test_rack_waits_out_its_reordering_window_before_declaring_a_loss():
    """RFC 8985: one segment SACKed past a hole is not yet a loss (fewer than
    DupThresh SACKed, no reordering seen: the window is min_rtt/4); the
    reordering timer marks it lost when the window has passed, and fast
    recovery repairs it without an RTO."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    net.advance(0.01)
    sk = cli.info()
    sk.rtt_min, sk.srtt = 40_000, 40 * T.MS               # a 40 ms path (rtt_min in us): a 10 ms window
    held = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 1000 and not held and held.append(f) is None
    cli.send(b"a" * 1448 + b"b" * 1448)                   # the first is lost, the second SACKed
    assert sk.sacked_out == 1 and sk.lost_out == 0 and sk.t_reo is not None
    assert sk.t_reo - net.now == 10 * T.MS + T.TCP_TIMEOUT_MIN
    net.advance(0.005)
    assert net.counters("h1")["TcpRetransSegs"] == 0     # still inside the window
    net.advance(0.01)
    c = net.counters("h1")
    assert c["TcpRetransSegs"] == 1 and c["TCPSackRecovery"] == 1 and c["TCPTimeouts"] == 0
    assert child.recv() == b"a" * 1448 + b"b" * 1448


def test_prr_spreads_the_reduction_over_the_recovery():
    """RFC 6937: on entering recovery cwnd does not drop to ssthresh at once;
    while the pipe is above ssthresh one segment goes for about every
    1/beta delivered, so the window ends at ssthresh without a burst or a stall."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    data = random.Random(3).randbytes(40 * 1448)
    dropped = []
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 1000 and not dropped and dropped.append(1) is None
    sk = cli.info()
    cwnds = []
    real = net.tr.tcp.rcv

    def watch(ns, skb, now):
        out = real(ns, skb, now)
        if ns.name == "h1" and sk.ca_state == T.CA_RECOVERY:
            cwnds.append(sk.cwnd)
        return out
    net.tr.tcp.rcv = watch
    assert transfer(net, cli, child, data) == data
    c = net.counters("h1")
    assert c["TCPSackRecovery"] == 1 and c["TcpRetransSegs"] == 1
    assert cwnds and cwnds[0] > sk.ssthresh               # not halved at once
    assert sk.cwnd >= sk.ssthresh and max(cwnds) <= sk.prior_cwnd


def test_dsack_of_a_spurious_fast_retransmit_undoes_the_reduction():
    """RFC 2883 / tcp_try_undo_dsack(): a segment held back (reordered, not lost)
    triggers a fast retransmit; the receiver gets it twice and D-SACKs the copy;
    every retransmission D-SACKed means no loss: cwnd and ssthresh go back."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    held = []

    def reorder(ns, ifi, f):
        if ns == "h1" and len(f) > 1000 and not held:
            held.append(f)
            return True
        return False
    net.loss = reorder
    sk = cli.info()
    cwnd = sk.cwnd
    cli.send(random.Random(4).randbytes(8 * 1448))         # the first held, seven SACKed: a fast retransmit
    assert net.counters("h1")["TCPSackRecovery"] == 1 and sk.cwnd < cwnd
    net.loss = None
    net.wire.append(("h1", 2, held[0]))                     # the original arrives late, after its copy
    net.pump()
    net.advance(0.3)
    c, r = net.counters("h1"), net.counters("h2")
    assert r["TCPDSACKOldSent"] >= 1 and c["TCPDSACKRecv"] >= 1 and c["TCPDSACKUndo"] == 1
    assert sk.cwnd >= cwnd and sk.ssthresh >= cwnd


def test_ecn_negotiated_and_a_ce_mark_halves_once_without_loss():
    """RFC 3168 with net.ipv4.tcp_ecn=1 on the client (2, Linux's default, on the
    server: accept when asked): ECE|CWR in the SYN, ECE in the SYN-ACK, ECT(0)
    on data; a CE mark makes the receiver echo ECE until the sender's CWR, and
    the sender reduces its window once (CWR state), retransmitting nothing."""
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_ecn"] = 1
    marked = []

    def mark_ce(ns, ifi, f):                               # a router that marks instead of dropping
        p = Ether(f)
        if ns == "r1" and TCP in p and len(p[TCP].payload) and not marked and p[IP].tos & 3 == 2:
            p[IP].tos |= 3
            del p[IP].chksum
            marked.append(1)
            net.wire.insert(0, (ns, ifi, bytes(p)))
            return True
        return False
    srv, cli, child = connected_pair(net)
    syn, synack = segments(net, "h1")[0], segments(net, "h2")[0]
    assert syn[TCP].flags & 0xC0 == 0xC0 and synack[TCP].flags & 0xC0 == 0x40
    sk = cli.info()
    assert sk.ecn_flags & T.TCP_ECN_OK and child.info().ecn_flags & T.TCP_ECN_OK
    net.loss = mark_ce
    cwnd = sk.cwnd
    data = random.Random(5).randbytes(30 * 1448)
    assert transfer(net, cli, child, data) == data
    assert marked
    data_segs = [p for p in segments(net, "h1") if len(p[TCP].payload)]
    assert all(p[IP].tos & 3 == 2 for p in data_segs)      # ECT(0)
    assert any(p[TCP].flags & 0x40 for p in segments(net, "h2"))        # ECE echoed
    assert any(p[TCP].flags & 0x80 for p in data_segs)                  # CWR once reduced
    assert net.counters("h1")["TcpRetransSegs"] == 0
    assert sk.ssthresh == cwnd * 717 // 1024                # marked in the first flight: reduced once from 10
    assert len([p for p in data_segs if p[TCP].flags & 0x80]) == 1


def test_ecn_is_not_asked_for_by_default_and_a_retransmitted_syn_drops_it():
    net = Netstack()
    connected_pair(net)
    assert segments(net, "h1")[0][TCP].flags & 0xC0 == 0              # tcp_ecn=2: accept, do not ask
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_ecn"] = 1
    net.loss = lambda ns, ifi, f: ns == "r1" and ifi == 2 and TCP in Ether(f)   # no SYN-ACK reaches h1
    s = net.socket("h1")
    s.connect("10.0.2.10", 80)
    net.advance(1.5)
    syns = segments(net, "h1")
    assert syns[0][TCP].flags & 0xC0 == 0xC0 and syns[-1][TCP].flags & 0xC0 == 0   # tcp_ecn_fallback


def test_so_max_pacing_rate_spaces_the_segments():
    """SO_MAX_PACING_RATE turns on TCP's own pacing (no fq here): after the first
    ten segments, one leaves every size/rate seconds."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    assert cli.setsockopt(1, 47, 1448 * 100) == 0          # 100 segments a second
    sk = cli.info()
    assert sk.pacing_needed and sk.max_pacing_rate == 144800
    start = net.now
    data = random.Random(6).randbytes(30 * 1448)
    assert transfer(net, cli, child, data, step=0.001) == data
    took = (net.now - start) / 1e9
    assert 0.15 <= took < 0.4                                # 20 paced segments at 10 ms each
    assert sk.pacing_rate <= 144800


@pytest.mark.parametrize("timestamps", [1, 0])
def test_a_spurious_rto_is_detected_and_undone(timestamps):
    """The ACKs are late, not the data: the RTO fires and resends the head, then
    the held ACKs arrive acknowledging segments that were never retransmitted.
    With timestamps the echoed TSval predates the retransmission (Eifel,
    tcp_packet_delayed()); without, F-RTO (RFC 5682): the first ACK covers only
    the resent head, so new data goes next (step 2b: more is queued than cwnd
    allowed), and the ACK after it covers original data. Either way cwnd and
    ssthresh come back (TCPLossUndo), and F-RTO counts TCPSpuriousRTOs."""
    net = Netstack()
    for host in ("h1", "h2"):
        net.tr.netns[host].sysctl["net.ipv4.tcp_timestamps"] = timestamps
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_early_retrans"] = 0       # the RTO, not a probe, fires
    _srv, cli, child = connected_pair(net)
    sk = cli.info()
    if sk.ts_ok != bool(timestamps):
        pytest.skip("net.ipv4.tcp_timestamps is not honoured")
    held = []
    net.loss = lambda ns, ifi, f: ns == "h2" and held.append((ns, ifi, f)) is None      # every ACK late
    cwnd = sk.cwnd
    cli.send(random.Random(9).randbytes(2 * cwnd * 1448))   # a window in flight, a window queued
    net.advance(1.1)
    c = net.counters("h1")
    assert c["TCPTimeouts"] == 1 and sk.ca_state == T.CA_LOSS and sk.cwnd < cwnd
    net.loss = None
    net.wire.extend(held)
    net.pump()
    c = net.counters("h1")
    assert c["TCPLossUndo"] == 1 and sk.ca_state == T.CA_OPEN and sk.cwnd >= cwnd
    assert c["TCPSpuriousRTOs"] == (0 if timestamps else 1)


def test_the_first_sack_block_holds_the_segment_that_arrived_last():
    """RFC 2018 4: the first block reports the newest arrival, even when it is
    below a block reported before (tcp_sack_new_ofo_skb()); a D-SACK goes first of all."""
    from pktflow.services.transport import tcp_output
    sk = T.TcpSock(1, "h2")
    sk.sack_ok = sk.ts_ok = True
    sk.rcv_nxt = 1000
    sk.ofo = {3000: (4000, b"", False), 6000: (7000, b"", False), 7000: (8000, b"", False), 9000: (9500, b"", False)}
    sk.sack_recent = [3000, 7000, 9000]                  # 3000 arrived last
    assert tcp_output.sack_blocks(sk) == ((3000, 4000), (6000, 8000), (9000, 9500))
    sk.sack_recent = [9000, 3000]
    assert tcp_output.sack_blocks(sk) == ((9000, 9500), (3000, 4000), (6000, 8000))
    sk.dsack = (500, 1000)                               # a duplicate below rcv_nxt, then at most 3 in all
    assert tcp_output.sack_blocks(sk) == ((500, 1000), (9000, 9500), (3000, 4000))
    assert tcp_output.current_mss(sk) == sk.mss_cache - 4 - 3 * 8


# -- the smaller departures from Linux, each as Linux does it --------------------

def test_minshall_nagle_sends_a_2000_byte_write_at_once():
    """tcp_minshall_check(): a partial segment waits only behind an unacknowledged
    small one, so a 2,000-byte write on an idle connection leaves whole; a small
    write right after it waits for that small segment's ACK."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    net.loss = lambda ns, ifi, f: ns == "h2"                 # no ACK comes back
    before = len(segments(net, "h1"))
    cli.send(b"a" * 2000)
    assert [len(p[TCP].payload) for p in segments(net, "h1")[before:]] == [1448, 552]
    cli.send(b"b" * 100)
    assert len(segments(net, "h1")) == before + 2           # held: the 552-byte segment is unacknowledged


def test_the_window_grows_from_rcv_ssthresh():
    """tcp_select_initial_window() then tcp_grow_window(): the first ACK offers the
    SYN's 64240 rounded up to the scale's unit (502 x 128), and each full segment
    that arrives lets the offer grow by two segments, ACKed at once meanwhile."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    ack = [p for p in segments(net, "h1") if p[TCP].flags == "A"][0]
    assert ack[TCP].window == 502
    before = len(segments(net, "h1"))
    child.send(random.Random(11).randbytes(8 * 1448))
    windows = [p[TCP].window << 7 for p in segments(net, "h1")[before:] if p[TCP].flags == "A"]
    assert len(windows) == 8                                 # each segment ACKed while the window grows
    assert windows == sorted(windows) and windows[-1] >= 64240 + 8 * 2 * 1460 - 8 * 1448 - 128


def test_data_into_a_zero_window_is_dropped():
    """tcp_data_queue(): a segment at rcv_nxt when no room was offered is dropped
    (TCP_ZEROWINDOW, TCPZeroWindowDrop) and answered with an ACK at once."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    child.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)            # 8 KiB, never read
    sent = 0
    for _ in range(40):
        sent += max(cli.send(b"z" * 4096), 0)
        net.advance(0.05)
    sk = cli.info()
    assert sk.snd_wnd == 0 and sk.sendq_bytes
    from pktflow.services.transport import tcp_output
    sk.snd_wnd = 65535                                       # a sender that ignores the window
    out: list = []
    tcp_output.write_xmit(net.tr.tcp, net.tr.netns["h1"], sk, net.now, out)
    net._run("transport", out)
    net.pump()
    assert net.counters("h2")["TCPZeroWindowDrop"] >= 1
    assert "TCP_ZEROWINDOW" in [d[2] for d in net.drops]


def test_challenge_acks_are_rate_limited_per_socket():
    """tcp_send_challenge_ack(): one per tcp_invalid_ratelimit (500 ms) a socket;
    the host-wide limit is off (INT_MAX) as since Linux 6.0."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    info = child.info()
    before = len(segments(net, "h2"))
    for _ in range(5):
        rst = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") / TCP(
            sport=cli.info().lport, dport=80, flags="R", seq=(info.rcv_nxt + 100) & 0xFFFFFFFF)
        net.receive("h2", "eth0", bytes(rst))
        net.pump()
    c = net.counters("h2")
    assert len(segments(net, "h2")) == before + 1 and c["TCPChallengeACK"] == 1 and c["TCPACKSkippedChallenge"] == 4
    net.advance(0.6)
    net.receive("h2", "eth0", bytes(rst))
    net.pump()
    assert net.counters("h2")["TCPChallengeACK"] == 2


def test_an_orphaned_fin_wait_2_expires_quietly():
    """tcp_fin_timeout passed with no FIN from the peer: the orphan goes, with no
    RST (Linux sends one only when TCP_LINGER2 is negative)."""
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_fin_timeout"] = 2
    _srv, cli, child = connected_pair(net)
    sk = cli.info()
    cli.close()
    assert sk.state == T.FIN_WAIT2
    before = len(segments(net, "h1"))
    net.advance(3)
    assert sk.state == T.CLOSE and len(segments(net, "h1")) == before
    assert sk.sk not in net.tr.tcp.socks


def test_keepalive_is_quiet_while_data_is_in_flight():
    """tcp_keepalive_timer(): packets out or queued, no probe: the RTO watches the peer."""
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    cli.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
    cli.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 1)
    net.loss = lambda ns, ifi, f: ns == "h2"                 # no ACK comes back
    cli.send(b"x" * 100)
    net.advance(5)
    probe_seq = (cli.info().snd_una - 1) & 0xFFFFFFFF
    assert not [p for p in segments(net, "h1") if p[TCP].seq == probe_seq and p[TCP].flags == "A"
                and not len(p[TCP].payload)]
    assert net.counters("h1")["TcpRetransSegs"] >= 2
