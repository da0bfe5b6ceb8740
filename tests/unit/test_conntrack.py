"""Connection tracking's core against a fake clock: states a rule sees, the TCP
tracker's path, confirmation, expiry, a full table; and `conntrack -L` lines
in conntrack-tools 1.4.7's format (captured from the real tool here)."""
from pktflow.services.ip.netfilter.nf_conntrack import ESTABLISHED, INVALID, NEW, S, Conntrack
from pktflow.services.ip.netfilter.x_tables import Pkt
from pktflow.services.wire import ipv4

A, B = ipv4.aton("10.9.0.1"), ipv4.aton("10.9.0.2")
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def tcp(flags, reply=False, sport=48710, dport=8080) -> Pkt:
    if reply:
        return Pkt(B, A, 6, sport=dport, dport=sport, tcp_flags=flags)
    return Pkt(A, B, 6, sport=sport, dport=dport, tcp_flags=flags)


def step(ct, p, now=0):
    bits, conn, drop = ct.track(p, b"", 0, now)
    ct.confirm(conn)
    return bits, conn


def test_a_tcp_connection_through_its_states():
    ct = Conntrack()
    assert step(ct, tcp(SYN))[0] == NEW
    assert step(ct, tcp(SYN | ACK, reply=True))[0] == ESTABLISHED
    bits, c = step(ct, tcp(ACK))
    assert (bits, c.state, c.assured) == (ESTABLISHED, "ESTABLISHED", True)
    step(ct, tcp(FIN | ACK))
    step(ct, tcp(ACK, reply=True))
    assert c.state == "CLOSE_WAIT"
    step(ct, tcp(FIN | ACK, reply=True))
    assert c.state == "LAST_ACK"
    step(ct, tcp(ACK))
    assert c.state == "TIME_WAIT"


def test_what_cannot_start_a_connection_is_invalid_and_leaves_nothing():
    ct = Conntrack()
    for flags in (SYN | ACK, RST, FIN):
        assert step(ct, tcp(flags))[0] == INVALID
    assert ct.conns == {}
    assert step(ct, tcp(ACK))[1].state == "ESTABLISHED"        # picked up mid-stream (tcp_loose)


def test_an_unconfirmed_connection_is_not_in_the_table():
    ct = Conntrack()
    bits, conn, _ = ct.track(tcp(SYN), b"", 0, 0)             # dropped by a rule: never confirmed
    assert bits == NEW and ct.conns == {}
    assert ct.track(tcp(SYN | ACK, reply=True), b"", 0, 0)[0] == INVALID


def test_entries_expire_with_their_timeouts():
    ct = Conntrack()
    step(ct, Pkt(A, B, 17, sport=40000, dport=9999), now=0)
    assert ct.listing(29 * S) == ("udp      17 1 src=10.9.0.1 dst=10.9.0.2 sport=40000 dport=9999 [UNREPLIED] "
                                  "src=10.9.0.2 dst=10.9.0.1 sport=9999 dport=40000 mark=0 use=1\n")
    assert ct.listing(30 * S) == "" and ct.conns == {}


def test_a_full_table_drops_new_connections_unless_one_can_go():
    ct = Conntrack(max_entries=1)
    step(ct, tcp(SYN))
    step(ct, tcp(SYN | ACK, reply=True))
    step(ct, tcp(ACK))                                          # assured: early drop may not take it
    assert ct.track(tcp(SYN, sport=1), b"", 0, 0)[2] == "NETFILTER_DROP"
    ct = Conntrack(max_entries=1)
    step(ct, tcp(SYN))                                          # not assured: it makes room
    bits, conn, drop = ct.track(tcp(SYN, sport=1), b"", 0, 0)
    assert (bits, drop, ct.stats["early_drop"]) == (NEW, None, 1)


def test_icmp_echo_is_a_connection():
    ct = Conntrack()
    echo = Pkt(A, B, 1, icmp_type=8, icmp_code=0)
    data = bytes([8, 0, 0, 0, 0x2C, 0x40, 0, 1])               # id 11328, as the real capture
    ct.confirm(ct.track(echo, data, 0, 0)[1])
    reply = Pkt(B, A, 1, icmp_type=0, icmp_code=0)
    assert ct.track(reply, bytes([0, 0, 0, 0, 0x2C, 0x40, 0, 1]), 0, 2 * S)[0] == ESTABLISHED
    assert ct.listing(2 * S) == ("icmp     1 30 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=11328 "
                                 "src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=11328 mark=0 use=1\n")
