"""Smaller departures from Linux 6.x, fixed: option sysctls, listen queues,
RFC 6528 ISNs, TCP_INFO, the initial window however a write arrives.
In-process (services/netstack: every host's cores, a fake clock)."""
import errno

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from pktflow.services.netstack import Netstack
from pktflow.services.transport import tcp as T


def segments(net, netns=None):
    return [p for p in (Ether(f) for ns, _i, f in net.frames if netns is None or ns == netns) if TCP in p]


def pair(net, port=80, backlog=128):
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", port) == 0 and srv.listen(backlog) == 0
    cli = net.socket("h1")
    assert cli.connect("10.0.2.10", port) == errno.EINPROGRESS
    child = srv.accept()
    assert child is not None and cli.states() == [T.ESTABLISHED]
    return srv, cli, child


# -- net.ipv4.tcp_timestamps, tcp_sack, tcp_window_scaling -------------------
def test_timestamps_off_the_syn_offers_none_and_none_are_used():
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_timestamps"] = 0
    _srv, cli, child = pair(net)
    syn, synack = segments(net, "h1")[0], segments(net, "h2")[0]
    assert [k for k, _ in syn[TCP].options] == ["MSS", "NOP", "NOP", "SAckOK", "NOP", "WScale"]
    assert "Timestamp" not in dict(synack[TCP].options) and "SAckOK" in dict(synack[TCP].options)
    assert not cli.info().ts_ok and not child.info().ts_ok and cli.info().sack_ok
    assert cli.info().mss_cache == 1460


def test_sack_off_at_the_listener_its_synack_does_not_accept_it():
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_sack"] = 0
    _srv, cli, child = pair(net)
    syn, synack = segments(net, "h1")[0], segments(net, "h2")[0]
    assert "SAckOK" in dict(syn[TCP].options)
    assert [k for k, _ in synack[TCP].options] == ["MSS", "NOP", "NOP", "Timestamp", "NOP", "WScale"]
    assert not cli.info().sack_ok and not child.info().sack_ok and cli.info().ts_ok


def test_sack_and_window_scaling_off_the_syn_offers_neither():
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_sack"] = 0
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_window_scaling"] = 0
    _srv, cli, child = pair(net)
    syn = segments(net, "h1")[0]
    assert [k for k, _ in syn[TCP].options] == ["MSS", "NOP", "NOP", "Timestamp"]
    assert not cli.info().wscale_ok and not child.info().wscale_ok and not child.info().sack_ok


# -- listen queues (tcp_conn_request) ----------------------------------------
def test_accept_queue_holds_backlog_plus_one():
    """sk_acceptq_is_full() is `>`: listen(2) lets three connections wait."""
    net = Netstack()
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(2)
    clients = [net.socket("h1") for _ in range(4)]
    for c in clients:
        c.connect("10.0.2.10", 80)
    assert [c.states() for c in clients] == [[T.ESTABLISHED]] * 3 + [[]]
    assert len(srv.info().accept_queue) == 3
    c = net.counters("h2")
    assert c["ListenOverflows"] == 1 and c["ListenDrops"] == 1


def syn_flood(net, count: int, port: int = 80):
    """SYNs from h1's address that nobody completes (the SYN-ACKs are lost)."""
    net.loss = lambda ns, ifi, f: ns == "r1" and ifi == 2 and TCP in Ether(f)
    for i in range(count):
        s = net.socket("h1")
        s.bind("10.0.1.10", 20000 + i)
        s.connect("10.0.2.10", port)


def test_with_syncookies_the_syn_queue_is_not_capped_by_max_syn_backlog():
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_max_syn_backlog"] = 128
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(200)
    syn_flood(net, 150)
    assert len(srv.info().syn_queue) == 150
    assert net.counters("h2")["SyncookiesSent"] == 0


def test_without_syncookies_the_last_quarter_of_max_syn_backlog_is_kept():
    """max_syn_backlog - qlen < max_syn_backlog >> 2 drops: 128 - 97 < 32."""
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_max_syn_backlog"] = 128
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_syncookies"] = 0
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(200)
    syn_flood(net, 150)
    c = net.counters("h2")
    assert len(srv.info().syn_queue) == 97
    assert c["ListenDrops"] == 150 - 97 and c["TCPReqQFullDrop"] == 0 and c["SyncookiesSent"] == 0


def test_without_syncookies_a_full_syn_queue_drops():
    net = Netstack()
    net.tr.netns["h2"].sysctl["net.ipv4.tcp_syncookies"] = 0
    srv = net.socket("h2")
    srv.bind("10.0.2.10", 80)
    srv.listen(4)
    syn_flood(net, 8)
    c = net.counters("h2")
    assert len(srv.info().syn_queue) == 5 and c["TCPReqQFullDrop"] == 3 and c["ListenDrops"] == 3


# -- RFC 6528 ISNs and timestamp offsets --------------------------------------
def test_isn_is_a_keyed_hash_of_the_four_tuple_plus_a_64ns_clock():
    from pktflow.services.transport import secure_seq
    net = Netstack()
    _srv, cli, child = pair(net)
    sk, t = cli.info(), net.tr.tcp.tables(net.tr.netns["h1"])
    syn_time = net.now
    assert sk.iss == secure_seq.secure_tcp_seq(t.net_secret, sk.laddr, sk.raddr, sk.lport, sk.rport, syn_time)
    # the same 4-tuple a second later starts 1e9 / 64 higher (the clock part)
    later = secure_seq.secure_tcp_seq(t.net_secret, sk.laddr, sk.raddr, sk.lport, sk.rport, syn_time + 10**9)
    assert (later - sk.iss) & 0xFFFFFFFF == 10**9 >> 6
    # another port: an unrelated hash; another namespace: another secret
    other = secure_seq.secure_tcp_seq(t.net_secret, sk.laddr, sk.raddr, sk.lport + 1, sk.rport, syn_time)
    assert abs(other - sk.iss) > 1000
    t2 = net.tr.tcp.tables(net.tr.netns["h2"])
    assert t2.net_secret != t.net_secret
    c = child.info()
    assert c.iss == secure_seq.secure_tcp_seq(t2.net_secret, c.laddr, c.raddr, c.lport, c.rport, syn_time)
    # TSval's offset hashes the address pair only: every connection between two hosts shares it
    assert sk.ts_offset == secure_seq.secure_tcp_ts_off(t.ts_secret, sk.laddr, sk.raddr)
    cli2 = net.socket("h1")
    cli2.connect("10.0.2.10", 80)
    assert cli2.info().ts_offset == sk.ts_offset and cli2.info().iss != sk.iss


def test_isns_repeat_with_the_same_seed():
    a, b = Netstack(seed=7), Netstack(seed=7)
    assert pair(a)[1].info().iss == pair(b)[1].info().iss
    assert pair(Netstack(seed=8))[1].info().iss != pair(Netstack(seed=7))[1].info().iss


# -- getsockopt(IPPROTO_TCP, TCP_INFO) ----------------------------------------
# struct tcp_info as include/uapi/linux/tcp.h declares it (Linux 6.18: 280 bytes),
# written from the header independently of the encoder: "@" lets struct align
# each field as the C compiler does on x86-64.
TCP_INFO_FIELDS = """state ca_state retransmits probes backoff options wscale app_limited
    rto ato snd_mss rcv_mss unacked sacked lost retrans fackets
    last_data_sent last_ack_sent last_data_recv last_ack_recv
    pmtu rcv_ssthresh rtt rttvar snd_ssthresh snd_cwnd advmss reordering rcv_rtt rcv_space total_retrans
    pacing_rate max_pacing_rate bytes_acked bytes_received segs_out segs_in
    notsent_bytes min_rtt data_segs_in data_segs_out delivery_rate busy_time rwnd_limited sndbuf_limited
    delivered delivered_ce bytes_sent bytes_retrans dsack_dups reord_seen rcv_ooopack snd_wnd rcv_wnd rehash
    total_rto total_rto_recoveries total_rto_time received_ce delivered_e1_bytes delivered_e0_bytes
    delivered_ce_bytes received_e1_bytes received_e0_bytes received_ce_bytes accecn_fail_mode accecn_opt_seen
    """.split()
TCP_INFO_FORMAT = ("@" + "B" * 8 + "I" * 24 + "QQQQ" + "II" + "IIII" + "Q" + "QQQ" + "II" + "QQ" + "II" + "I" +
                   "II" + "I" + "HHI" + "I" * 7 + "HH")


def tcp_info(raw: bytes) -> dict:
    import struct
    return dict(zip(TCP_INFO_FIELDS, struct.unpack(TCP_INFO_FORMAT, raw)))


IPPROTO_TCP, TCP_INFO, TCP_CONGESTION = 6, 11, 13


def getsockopt(sock, optname: int, optlen: int):
    from pktflow.v1.skb_pb2 import ProtoCall
    ev = sock.call(ProtoCall.GETSOCKOPT, level=IPPROTO_TCP, optname=optname, optlen=optlen)
    return ev.err, ev.optval


def test_tcp_info_after_a_transfer():
    import struct
    assert len(TCP_INFO_FIELDS) == len(struct.unpack(TCP_INFO_FORMAT, bytes(280)))
    net = Netstack()
    _srv, cli, child = pair(net)
    data = bytes(range(256)) * 2000
    sent, got = 0, b""
    while len(got) < len(data):
        if sent < len(data):
            n = cli.send(data[sent:sent + 65536])
            sent += max(n, 0)
        got += child.recv()
        net.advance(0.01)
    net.advance(0.5)                                        # the last delayed ACK
    assert struct.calcsize(TCP_INFO_FORMAT) == 280
    err, raw = getsockopt(cli, TCP_INFO, 512)
    assert err == 0 and len(raw) == 280                     # min(optlen, sizeof)
    i = tcp_info(raw)
    assert i["state"] == T.ESTABLISHED and i["ca_state"] == 0
    assert i["options"] == 1 | 2 | 4                          # TIMESTAMPS | SACK | WSCALE
    assert (i["wscale"] & 0xF, i["wscale"] >> 4) == (7, 7)    # snd_wscale : 4, rcv_wscale : 4
    # Linux's rcv_mss is 536 until data arrives, then measured
    # (tcp_measure_rcv_mss()); pktflow keeps min(advmss, the peer's MSS)
    assert i["snd_mss"] == 1448 and i["advmss"] == 1448 and i["rcv_mss"] == cli.info().rcv_mss
    assert i["unacked"] == 0 and i["snd_cwnd"] > 10 and i["snd_ssthresh"] == 0x7FFFFFFF
    assert i["rto"] >= 200_000 and 0 < i["rtt"] < i["rto"] and i["rttvar"] >= 0 and i["pmtu"] == 1500
    assert i["rtt"] == cli.info().srtt // 1000 and i["min_rtt"] <= i["rtt"] + 1
    assert i["bytes_acked"] == len(data) and i["bytes_received"] == 0
    assert i["segs_out"] > len(data) // 1448 and i["segs_in"] > 0 and i["data_segs_out"] >= len(data) // 1448
    assert i["snd_wnd"] > 0 and i["reordering"] == 3 and i["max_pacing_rate"] == 2**64 - 1
    assert i["pacing_rate"] == cli.info().pacing_rate and i["rcv_ssthresh"] == cli.info().rcv_ssthresh
    err, raw = getsockopt(child, TCP_INFO, 512)
    c = tcp_info(raw)
    assert c["bytes_received"] == len(data) and c["data_segs_in"] >= len(data) // 1448 and c["rcv_wnd"] > 0
    # a short buffer gets the struct's beginning, as Linux copies min(len, sizeof)
    err, short = getsockopt(cli, TCP_INFO, 8)
    assert err == 0 and short == raw_cli_prefix(cli)
    # getsockopt(TCP_CONGESTION, 16): the name, NUL padded to TCP_CA_NAME_MAX
    assert getsockopt(cli, TCP_CONGESTION, 16) == (0, b"cubic".ljust(16, b"\0"))
    assert getsockopt(cli, TCP_CONGESTION, 3) == (0, b"cub")


def raw_cli_prefix(sock):
    return getsockopt(sock, TCP_INFO, 280)[1][:8]


def test_tcp_info_of_a_listener_counts_its_accept_queue():
    net = Netstack()
    srv, _cli, _child = pair(net, backlog=5)
    other = net.socket("h1")
    other.connect("10.0.2.10", 80)                          # waits in the accept queue
    i = tcp_info(getsockopt(srv, TCP_INFO, 280)[1])
    assert i["state"] == T.LISTEN and (i["unacked"], i["sacked"]) == (1, 5)   # aliased: accept queue, backlog


# -- the initial window, however the write arrives ----------------------------
MSG_MORE = 0x8000


def initial_window(nodelay: bool, piece: int, more: bool = True) -> list:
    """h2 writes 64 KiB handed to transport in `piece`-byte calls (MSG_MORE on
    all but the last); no ACK comes back: the data segments that leave."""
    from pktflow.v1.skb_pb2 import ProtoCall
    net = Netstack()
    _srv, cli, child = pair(net)
    if nodelay:
        assert child.setsockopt(6, 1, 1) == 0                    # TCP_NODELAY
    net.frames.clear()
    net.loss = lambda ns, ifi, f: ns == "h1"                      # h1's ACKs are lost
    data = b"x" * 65536
    off = 0
    while off < len(data):                  # as the socket layer does, until the send buffer is full
        chunk = data[off:off + piece]
        last = off + len(chunk) >= len(data)
        ev = child.call(ProtoCall.SENDMSG, data=chunk, flags=0 if last or not more else MSG_MORE)
        assert ev.err == 0
        off += ev.sent
        if ev.sent < len(chunk):
            break                           # it waits for write space, which no ACK brings
    return [len(p[TCP].payload) for p in segments(net, "h2") if len(p[TCP].payload)]


def test_a_write_in_small_pieces_still_leaves_as_ten_full_segments():
    """tcp_sendmsg() queues the whole write before tcp_push(): IW 10 x MSS."""
    assert initial_window(nodelay=False, piece=376) == [1448] * 10
    assert initial_window(nodelay=True, piece=376) == [1448] * 10
    assert initial_window(nodelay=True, piece=5000) == [1448] * 10
    assert initial_window(nodelay=False, piece=65536) == [1448] * 10


def test_separate_small_writes_are_separate_as_on_linux():
    """Without MSG_MORE each piece is its own write: the first leaves at once
    (nothing in flight), then Nagle holds partial segments."""
    sizes = initial_window(nodelay=False, piece=376, more=False)
    assert sizes[0] == 376 and sizes[1:] == [1448] * 9


# -- neighbour confirmation by TCP progress -----------------------------------
def arp_requests(net, netns: str, since: int = 0) -> list:
    from scapy.layers.l2 import ARP
    return [p for p in (Ether(f) for ns, _i, f in net.frames[since:] if ns == netns) if ARP in p and p[ARP].op == 1]


def test_a_tcp_flow_making_progress_keeps_its_neighbour_reachable():
    """tcp_ack() -> sk_dst_confirm(); the next segment out confirms the
    neighbour (sock_confirm_neigh()): over two minutes of a steady flow the
    sender never probes its gateway again (REACHABLE lasts 15..45 s unconfirmed)."""
    from pktflow.services.link import neighbour as nd
    from pktflow.services.wire import ipv4
    net = Netstack()
    _srv, cli, child = pair(net)
    assert len(arp_requests(net, "h1")) == 1                  # the first resolution, a broadcast
    start = len(net.frames)
    for _ in range(1200):                                     # 120 s, 10 writes a second
        assert cli.send(b"x" * 1000) == 1000
        child.recv()
        net.advance(0.1)
    assert arp_requests(net, "h1", start) == []
    eth0 = net.topo.hosts["h1"].interfaces["eth0"].ifindex
    assert net.link.netns["h1"].neigh.lookup(eth0, ipv4.aton("10.0.1.1")).state == nd.NUD_REACHABLE
    assert child.info().bytes_received == 1_200_000


def test_without_progress_the_neighbour_is_probed_as_on_linux():
    """A connection that sends nothing keeps no entry fresh: after REACHABLE
    times out, the next use goes DELAY -> PROBE and asks by unicast."""
    net = Netstack()
    _srv, cli, child = pair(net)
    start = len(net.frames)
    net.advance(60)
    assert cli.send(b"late") == 4                             # STALE -> DELAY
    net.advance(10)
    assert child.recv() == b"late"
    probes = arp_requests(net, "h1", start)
    assert probes and probes[0].dst != "ff:ff:ff:ff:ff:ff"    # unicast: the PROBE state
