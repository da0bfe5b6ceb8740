"""Connection tracking's core against a fake clock: states a rule sees, the TCP
tracker's path, confirmation, expiry, a full table; and `conntrack -L` lines
in conntrack-tools 1.4.7's format (captured from the real tool here)."""
from pktflow.services.ip.netfilter import nf_conntrack as ctm
from pktflow.services.wire import ipv4

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


C, D = ipv4.aton("10.77.0.1"), ipv4.aton("10.77.0.2")
SEC = ctm.S


def _tcp(ct, flags, reply=False, now=0, sport=53576, dport=80):
    if reply:
        got = ct.track(D, C, 6, dport, sport, flags, now=now)
    else:
        got = ct.track(C, D, 6, sport, dport, flags, now=now)
    ct.confirm(got[1])
    return got


def _handshake(ct, now=0, sport=53576):
    assert _tcp(ct, SYN, now=now, sport=sport)[0] == ctm.NEW
    assert _tcp(ct, SYN | ACK, reply=True, now=now, sport=sport)[0] == ctm.ESTABLISHED
    bits, c, _ = _tcp(ct, ACK, now=now, sport=sport)
    assert bits == ctm.ESTABLISHED
    return c


def test_core_handshake_and_teardown_walk_the_kernel_states():
    ct = ctm.Conntrack()
    bits, c, drop = ct.track(C, D, 6, 53576, 80, SYN, now=0)
    assert (bits, c.state, c.confirmed, drop) == (ctm.NEW, "SYN_SENT", False, None)
    assert ct.entries() == []                                   # not in the table before confirm()
    ct.confirm(c)
    assert c.timeout == 120 * SEC and not c.seen_reply
    _tcp(ct, SYN | ACK, reply=True)
    assert (c.state, c.seen_reply, c.assured, c.timeout) == ("SYN_RECV", True, False, 60 * SEC)
    _tcp(ct, ACK)
    assert (c.state, c.assured, c.timeout) == ("ESTABLISHED", True, 432000 * SEC)
    _tcp(ct, FIN | ACK, now=SEC)
    assert (c.state, c.timeout) == ("FIN_WAIT", 121 * SEC)
    _tcp(ct, ACK, reply=True, now=SEC)
    assert c.state == "CLOSE_WAIT"
    _tcp(ct, FIN | ACK, reply=True, now=SEC)
    assert c.state == "LAST_ACK"
    bits, _, _ = _tcp(ct, ACK, now=SEC)
    assert (bits, c.state, c.timeout) == (ctm.ESTABLISHED, "TIME_WAIT", 121 * SEC)
    assert ct.stats["insert"] == 1 and ct.stats["found"] == 6


def test_core_conntrack_list_matches_conntrack_tools():
    ct = ctm.Conntrack()
    _handshake(ct, sport=53576)
    c = _handshake(ct, sport=53572)
    for flags, reply in ((FIN | ACK, False), (ACK, True), (FIN | ACK, True), (ACK, False)):
        _tcp(ct, flags, reply, sport=53572)
    ct.confirm(ct.track(C, D, 17, 5353, 53, now=0)[1])
    p = ct.track(C, D, 1, icmp_type=8, icmp_code=0, icmp_id=25100, now=0)[1]
    ct.confirm(p)
    ct.track(D, C, 1, icmp_type=0, icmp_code=0, icmp_id=25100, now=0)
    assert c.state == "TIME_WAIT"
    out = ct.conntrack_list(SEC // 2)
    assert out.splitlines() == [
        "tcp      6 431999 ESTABLISHED src=10.77.0.1 dst=10.77.0.2 sport=53576 dport=80 src=10.77.0.2 "
        "dst=10.77.0.1 sport=80 dport=53576 [ASSURED] mark=0 use=1",
        "tcp      6 119 TIME_WAIT src=10.77.0.1 dst=10.77.0.2 sport=53572 dport=80 src=10.77.0.2 "
        "dst=10.77.0.1 sport=80 dport=53572 [ASSURED] mark=0 use=1",
        "udp      17 29 src=10.77.0.1 dst=10.77.0.2 sport=5353 dport=53 [UNREPLIED] src=10.77.0.2 "
        "dst=10.77.0.1 sport=53 dport=5353 mark=0 use=1",
        "icmp     1 29 src=10.77.0.1 dst=10.77.0.2 type=8 code=0 id=25100 src=10.77.0.2 dst=10.77.0.1 "
        "type=0 code=0 id=25100 mark=0 use=1",
    ]
    rc, stdout, stderr = ct.conntrack(["-L"], SEC // 2)
    assert (rc, stdout) == (0, out)
    assert stderr == "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.\n"
    assert ct.conntrack(["-F"], 0) == (0, "", "conntrack v1.4.7 (conntrack-tools): connection tracking "
                                              "table has been emptied.\n")
    assert ct.conntrack(["-L"], 0)[2] == "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n"
    assert ct.conntrack_stats().startswith("cpu=0   \tfound=")
    assert ct.conntrack_stats().endswith(" search_restart=0 clash_resolve=0 chaintoolong=0 \n")


def test_core_tcp_invalid_cases():
    ct = ctm.Conntrack()
    for flags in (RST, SYN | ACK, FIN, 0, RST | ACK):            # tcp_new(): nothing starts so
        assert ct.track(C, D, 6, 1, 80, flags, now=0) == (ctm.INVALID, None, None)
    assert ct.stats["invalid"] == 5 and ct.entries() == []
    _tcp(ct, SYN)
    assert _tcp(ct, ACK)[0:2] == (ctm.INVALID, None)            # sSS: an ACK before any SYN/ACK
    assert _tcp(ct, SYN | ACK)[0:2] == (ctm.INVALID, None)      # the client cannot send SYN/ACK
    assert _tcp(ct, FIN, reply=True)[0:2] == (ctm.INVALID, None)
    assert ct.entries()[0].state == "SYN_SENT"


def test_core_tcp_loose_picks_up_a_connection_mid_stream():
    ct = ctm.Conntrack()
    bits, c, _ = _tcp(ct, ACK)
    assert (bits, c.state, c.timeout) == (ctm.NEW, "ESTABLISHED", 300 * SEC)   # capped until a reply
    _tcp(ct, ACK, reply=True)
    assert c.seen_reply and not c.assured
    assert _tcp(ct, ACK)[0] == ctm.ESTABLISHED
    assert c.assured and c.timeout == 432000 * SEC
    strict = ctm.Conntrack(tcp_loose=False)
    assert strict.track(C, D, 6, 1, 80, ACK, now=0)[0] == ctm.INVALID


def test_core_rst_as_only_reply_forgets_the_connection_and_syn_retransmit_keeps_timer():
    ct = ctm.Conntrack()
    _tcp(ct, SYN, now=0)
    c = _tcp(ct, SYN, now=50 * SEC)[1]                          # retransmitted SYN: timer not renewed
    assert c.timeout == 120 * SEC
    bits, c2, _ = _tcp(ct, RST | ACK, reply=True, now=51 * SEC)
    assert bits == ctm.ESTABLISHED and c2 is c and ct.entries() == []


def test_core_rst_closes_an_established_connection_and_syn_reopens_time_wait():
    ct = ctm.Conntrack()
    c = _handshake(ct)
    _tcp(ct, RST, reply=True, now=SEC)
    assert (c.state, c.timeout) == ("CLOSE", 11 * SEC)
    ct2 = ctm.Conntrack()
    old = _handshake(ct2)
    for flags, reply in ((FIN | ACK, True), (ACK, False), (FIN | ACK, False), (ACK, True)):
        _tcp(ct2, flags, reply)
    assert old.state == "TIME_WAIT"
    bits, new, _ = _tcp(ct2, SYN, now=SEC)                      # reuse of the tuple: a new connection
    assert bits == ctm.NEW and new is not old and new.state == "SYN_SENT"
    assert ct2.entries() == [new]


def test_core_retransmitted_syn_in_established_is_ignored():
    ct = ctm.Conntrack()
    c = _handshake(ct)
    before = c.timeout
    assert _tcp(ct, SYN, now=5 * SEC)[0] == ctm.ESTABLISHED
    assert (c.state, c.timeout) == ("ESTABLISHED", before)


def test_core_simultaneous_open():
    ct = ctm.Conntrack()
    c = _tcp(ct, SYN)[1]
    _tcp(ct, SYN, reply=True)
    assert c.state == "SYN_SENT2"
    _tcp(ct, SYN | ACK)
    assert c.state == "SYN_RECV"
    _tcp(ct, ACK, reply=True)
    assert c.state == "ESTABLISHED"


def test_core_timeouts_expire_lazily_and_by_the_timer():
    ct = ctm.Conntrack(timeouts={"udp_timeout": 5})
    c = ct.track(C, D, 17, 1000, 53, now=0)[1]
    ct.confirm(c)
    assert c.timeout == 5 * SEC and ct.next_expiry() == 5 * SEC
    assert ct.expire(5 * SEC - 1) == 0
    assert ct.track(C, D, 17, 1000, 53, now=5 * SEC)[0] == ctm.NEW      # expired on lookup: new again
    g = ct.track(C, D, 47, now=0)[1]
    ct.confirm(g)
    i = ct.track(C, D, 1, icmp_type=8, icmp_id=7, now=0)[1]
    ct.confirm(i)
    assert (g.timeout, i.timeout) == (600 * SEC, 30 * SEC)
    assert ct.expire(30 * SEC) == 1 and ct.entries() == [g]
    assert ct.expire(600 * SEC) == 1 and ct.entries() == []


def test_core_udp_becomes_a_stream_after_two_seconds_of_both_ways():
    ct = ctm.Conntrack()
    c = ct.track(C, D, 17, 1000, 53, now=0)[1]
    ct.confirm(c)
    assert ct.track(D, C, 17, 53, 1000, now=SEC)[0] == ctm.ESTABLISHED
    assert (c.seen_reply, c.assured, c.timeout) == (True, False, 31 * SEC)
    ct.track(C, D, 17, 1000, 53, now=SEC + 1)
    assert not c.assured and c.timeout == 31 * SEC + 1
    ct.track(C, D, 17, 1000, 53, now=3 * SEC)
    assert c.assured and c.timeout == 123 * SEC


def test_core_icmp_error_quoting_a_tracked_flow_is_related():
    ct = ctm.Conntrack()
    u = ct.track(C, D, 17, 5353, 9, now=0)[1]
    ct.confirm(u)
    router = ipv4.aton("10.77.0.254")
    # port unreachable from D, and time exceeded from a router, both back to C
    assert ct.track(D, C, 1, icmp_type=3, icmp_code=3, inner=(C, D, 17, 5353, 9), now=0) == (ctm.RELATED, u, None)
    assert ct.track(router, C, 1, icmp_type=11, inner=(C, D, 17, 5353, 9), now=0)[0] == ctm.RELATED
    # an error about the reply direction, travelling to D: related too
    assert ct.track(C, D, 1, icmp_type=3, icmp_code=1, inner=(D, C, 17, 9, 5353), now=0)[0] == ctm.RELATED
    # quoting nothing tracked, or sent to someone else than the quoted sender: INVALID
    assert ct.track(D, C, 1, icmp_type=3, inner=(C, D, 17, 5353, 10), now=0) == (ctm.INVALID, None, None)
    assert ct.track(D, router, 1, icmp_type=3, inner=(C, D, 17, 5353, 9), now=0)[0] == ctm.INVALID
    assert ct.track(D, C, 1, icmp_type=3, inner=None, now=0)[0] == ctm.INVALID
    assert ct.stats["error"] == 3
    # an error quoting an echo request
    e = ct.track(C, D, 1, icmp_type=8, icmp_id=9, now=0)[1]
    ct.confirm(e)
    assert ct.track(router, C, 1, icmp_type=11, inner=(C, D, 1, 9, 8), now=0) == (ctm.RELATED, e, None)


def test_core_icmp_replies_do_not_start_connections():
    ct = ctm.Conntrack()
    assert ct.track(D, C, 1, icmp_type=0, icmp_id=1, now=0)[0] == ctm.INVALID
    assert ct.track(D, C, 1, icmp_type=9, now=0)[0] == ctm.INVALID       # router advertisement: no reply type
    ping = ct.track(C, D, 1, icmp_type=8, icmp_id=1, now=0)[1]
    ct.confirm(ping)
    assert ct.track(D, C, 1, icmp_type=0, icmp_id=1, now=0)[:2] == (ctm.ESTABLISHED, ping)
    assert ct.track(C, D, 1, icmp_type=8, icmp_id=1, now=0)[0] == ctm.ESTABLISHED


def test_core_confirm_semantics_a_dropped_first_packet_leaves_nothing():
    ct = ctm.Conntrack()
    bits, c, _ = ct.track(C, D, 6, 1, 80, SYN, now=0)
    assert bits == ctm.NEW                       # a filter drops it: no confirm()
    assert ct.entries() == [] and ct.lookup(c.reply, 0) is None
    bits2, c2, _ = ct.track(C, D, 6, 1, 80, SYN, now=1)
    assert bits2 == ctm.NEW and c2 is not c      # the retransmission is NEW again
    assert ct.confirm(c2) and ct.entries() == [c2]
    assert ct.confirm(c2)                        # confirming twice is harmless
    assert ct.stats["insert"] == 1
    # a clash: two unconfirmed conns for one tuple (e.g. queued packets); TCP's loser is dropped
    a = ct.track(C, D, 6, 2, 80, SYN, now=0)[1]
    b = ct.track(C, D, 6, 2, 80, SYN, now=0)[1]
    assert ct.confirm(a) and not ct.confirm(b)
    assert ct.stats["insert_failed"] == 1


def test_core_nat_can_change_the_reply_tuple_before_confirmation():
    ct = ctm.Conntrack()
    snat = ipv4.aton("192.0.2.1")
    c = ct.track(C, D, 6, 1000, 80, SYN, now=0)[1]
    c.set_reply(ctm.Tuple(D, snat, 6, 80, 61000))
    ct.confirm(c)
    assert ct.lookup(ctm.Tuple(D, snat, 6, 80, 61000), 0) == (c, 1)
    assert ct.track(D, snat, 6, 80, 61000, SYN | ACK, now=0)[:2] == (ctm.ESTABLISHED, c)
    try:
        c.set_reply(ctm.Tuple(D, C, 6, 80, 1000))
        raise AssertionError("a confirmed connection's reply tuple changed")
    except ValueError:
        pass


def test_core_full_table_early_drops_an_unassured_entry_else_drops():
    ct = ctm.Conntrack(max_entries=2)
    first = _handshake(ct, sport=1)                            # assured
    second = _tcp(ct, SYN, sport=2)[1]                         # not assured
    bits, third, drop = _tcp(ct, SYN, sport=3)
    assert (bits, drop) == (ctm.NEW, None) and ct.stats["early_drop"] == 1
    assert ct.entries() == [first, third] and ct.lookup(second.orig, 0) is None
    _tcp(ct, SYN | ACK, reply=True, sport=3)
    _tcp(ct, ACK, sport=3)                                     # now both are assured
    assert ct.track(C, D, 6, 4, 80, SYN, now=0) == (ctm.INVALID, None, "NETFILTER_DROP")
    assert ct.stats["drop"] == 1 and ct.log == ["nf_conntrack: table full, dropping packet"]
    assert ct.track(C, D, 6, 1, 80, ACK, now=0)[0] == ctm.ESTABLISHED   # known flows still pass


def test_core_state_bits_are_xt_conntracks_and_the_sysctls_are_declared():
    assert (ctm.INVALID, ctm.ESTABLISHED, ctm.RELATED, ctm.NEW, ctm.UNTRACKED) == (1, 2, 4, 8, 64)
    from pktflow.services.common.sysctl import KNOBS, defaults
    k = KNOBS["net.netfilter.nf_conntrack_tcp_timeout_established"]
    assert k.default == 432000 and k.parse("60") == 60
    ct = ctm.Conntrack.from_sysctl(defaults() | {"net.netfilter.nf_conntrack_max": 7,
                                                 "net.netfilter.nf_conntrack_udp_timeout_stream": 180})
    assert (ct.max, ct.timeouts["udp_timeout_stream"], ct.timeouts["icmp_timeout"]) == (7, 180 * SEC, 30 * SEC)
