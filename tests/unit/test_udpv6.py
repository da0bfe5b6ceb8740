"""UDP over IPv6 in the transport core (net/ipv6/udp.c, af_inet6.c,
datagram.c): AF_INET6 sockets' binding rules and errnos, dual-stack sockets
and v4-mapped addresses, datagrams out (checked by scapy) and in (built by
scapy, as ip6_input hands them up), ICMPv6 errors, the Udp6* counters."""
import errno

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, UDP as UDP6

from pktflow.services.common.actions import Drop, Stop
from pktflow.services.wire import ipv4, ipv6
from pktflow.v1.skb_pb2 import ProtoCall, Skb
from v6stack import AF_INET, H1, H1_LL, H2, V6, b16, downs, ups

A6 = ipv6.aton
SOL_SOCKET, SO_REUSEADDR, IPPROTO_IPV6 = 1, 2, 41
IPV6_V6ONLY, IPV6_UNICAST_HOPS, IPV6_RECVERR, IPV6_MTU_DISCOVER = 26, 16, 25, 23


def test_bind_wildcard_then_again_is_einval_and_the_event_carries_addr6():
    st = V6()
    s = st.socket(3)
    ev = st.bind(s, 0, 7000)
    assert (ev.err, ev.addr6, ev.port) == (0, bytes(16), 7000)
    assert st.bind(s, 0, 7001).err == errno.EINVAL            # already bound (inet_num)


def test_bind_needs_a_local_address():
    st = V6()
    assert st.bind(st.socket(3), A6("2001:db8:9::1"), 0).err == errno.EADDRNOTAVAIL
    assert st.bind(st.socket(4), H2, 0).err == errno.EADDRNOTAVAIL      # h2's, not h1's
    ev = st.bind(st.socket(5), H1, 0)
    assert ev.err == 0 and ev.addr6 == b16(H1) and 32768 <= ev.port <= 60999


def test_link_local_bind_needs_its_interface():
    st = V6()
    assert st.bind(st.socket(3), H1_LL, 0).err == errno.EINVAL            # no scope id
    assert st.bind(st.socket(4), H1_LL, 0, scope_id=9).err == errno.ENODEV
    assert st.bind(st.socket(5), H1_LL, 0, scope_id=1).err == errno.EADDRNOTAVAIL   # it is eth0's, not lo's
    assert st.bind(st.socket(6), A6("fe80::99"), 0, scope_id=2).err == errno.EADDRNOTAVAIL
    assert st.bind(st.socket(7), H1_LL, 0, scope_id=2).err == 0
    assert st.tr.socks[7].bound_dev_if == 2


def test_v4_mapped_bind_is_an_ipv4_bind_refused_on_a_v6only_socket():
    st = V6()
    s = st.socket(3)
    assert st.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1) == 0
    assert st.bind(s, ipv6.v4mapped(ipv4.aton("10.0.1.10")), 0).err == errno.EINVAL
    assert st.bind(st.socket(4), ipv6.v4mapped(ipv4.aton("10.0.9.9")), 0).err == errno.EADDRNOTAVAIL
    ev = st.bind(st.socket(5), ipv6.v4mapped(ipv4.aton("10.0.1.10")), 6000)
    assert ev.err == 0 and ev.addr6 == b16(ipv6.v4mapped(ipv4.aton("10.0.1.10")))
    v4 = st.socket(6, family=AF_INET)
    assert st.bind(v4, None, 6000, v4=ipv4.aton("10.0.1.10")).err == errno.EADDRINUSE


def test_one_port_table_for_both_families_as_inet_rcv_saddr_equal():
    st = V6()
    v4 = st.socket(3, family=AF_INET)
    assert st.bind(v4, None, 7000, v4=0).err == 0
    assert st.bind(st.socket(4), 0, 7000).err == errno.EADDRINUSE          # :: takes IPv4 too
    only = st.socket(5)
    st.setsockopt(only, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert st.bind(only, 0, 7000).err == 0                                  # unless V6ONLY
    assert st.bind(st.socket(6), H1, 7001).err == 0                         # a specific IPv6 address is v6-only
    assert st.bind(st.socket(7, family=AF_INET), None, 7001, v4=0).err == 0
    assert st.bind(st.socket(8), 0, 7001).err == errno.EADDRINUSE
    a, b = st.socket(9), st.socket(10)
    for s in (a, b):
        st.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, 1)
    assert st.bind(a, 0, 7002).err == 0 and st.bind(b, 0, 7002).err == 0


def test_v6only_cannot_be_changed_once_bound_in_the_core_either():
    st = V6()
    s = st.socket(3)
    st.bind(s, H1, 0)
    assert st.tr.socks[s].v6only                       # sk_ipv6only = 1 after binding an IPv6 address


def test_sendto_builds_the_datagram_with_the_ipv6_pseudo_header():
    st = V6()
    s = st.socket(3)
    out = st.sendto(s, b"hello", H2, 7000)
    assert st.asked == [(b16(H2), bytes(16))]
    [skb] = downs(out)
    assert skb.protocol == 0x86DD and skb.ip_proto == 17 and skb.saddr == skb.daddr == 0
    assert (skb.saddr6, skb.daddr6, skb.ttl) == (b16(H1), b16(H2), 0)       # hop limit 0: the device's
    pkt = IPv6(src=ipv6.ntoa(H1), dst=ipv6.ntoa(H2)) / UDP6(skb.data)
    good = IPv6(bytes(IPv6(src=ipv6.ntoa(H1), dst=ipv6.ntoa(H2)) / UDP6(sport=pkt[UDP6].sport, dport=7000)
                      / b"hello"))
    assert pkt[UDP6].chksum == good[UDP6].chksum and pkt[UDP6].dport == 7000 and bytes(pkt[UDP6].payload) == b"hello"
    assert skb.dst.nexthop6 == b16(A6("2001:db8:1::1"))
    assert st.ns.mib["Udp6OutDatagrams"] == 1 and st.ns.mib["UdpOutDatagrams"] == 0


def test_sendto_errnos():
    st = V6()
    s = st.socket(3)
    assert st.done(st.sendto(s, b"x", H2, 0)).err == errno.EINVAL              # port 0
    assert st.done(st.sendto(s, b"x", None)).err == errno.EDESTADDRREQ
    assert st.done(st.sendto(s, b"x" * 65528, H2, 9)).err == errno.EMSGSIZE   # beyond IPV6_MAXPLEN
    r1 = V6("r1")
    t = r1.socket(3)
    assert r1.done(r1.sendto(t, b"x", A6("2001:db8:77::1"), 9)).err == errno.ENETUNREACH


def test_unicast_hops_sets_the_hop_limit():
    st = V6()
    s = st.socket(3)
    st.setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7)
    assert downs(st.sendto(s, b"x", H2, 9))[0].ttl == 7
    st.setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -1)
    assert downs(st.sendto(s, b"x", H2, 9))[0].ttl == 0


def test_dual_stack_socket_sends_ipv4_to_a_v4_mapped_address():
    st = V6()
    s = st.socket(3)
    [skb] = downs(st.sendto(s, b"v4", ipv6.v4mapped(ipv4.aton("10.0.2.10")), 7000))
    assert skb.protocol != 0x86DD and skb.daddr == ipv4.aton("10.0.2.10") and skb.saddr == ipv4.aton("10.0.1.10")
    assert st.ns.mib["UdpOutDatagrams"] == 1                       # udp_sendmsg()'s counter
    only = st.socket(4)
    st.setsockopt(only, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert st.done(st.sendto(only, b"x", ipv6.v4mapped(ipv4.aton("10.0.2.10")), 7000)).err == errno.ENETUNREACH


def test_a_v4_mapped_socket_cannot_send_to_ipv6():
    st = V6()
    s = st.socket(3)
    st.bind(s, ipv6.v4mapped(ipv4.aton("10.0.1.10")), 0)
    assert st.done(st.sendto(s, b"x", H2, 9)).err == errno.EAFNOSUPPORT    # ip6_dst_lookup_tail()


def test_connect_chooses_the_source_and_link_local_needs_a_scope():
    st = V6()
    s = st.socket(3)
    ev = st.connect(s, H2, 7000)
    assert (ev.err, ev.addr6, ev.peer_addr6, ev.peer_port) == (0, b16(H1), b16(H2), 7000)
    assert downs(st.sendto(s, b"x", None))[0].daddr6 == b16(H2)
    assert st.connect(st.socket(4), A6("fe80::1"), 7000).err == errno.EINVAL
    ev = st.connect(st.socket(5), A6("fe80::ff:fe00:101"), 7000, scope_id=2)
    assert ev.err == 0 and ev.addr6 == b16(H1_LL)
    ev = st.connect(st.socket(6), ipv6.v4mapped(ipv4.aton("10.0.2.10")), 7000)
    assert ev.err == 0 and ev.addr6 == b16(ipv6.v4mapped(ipv4.aton("10.0.1.10")))


def test_disconnect_forgets_the_source_connect_chose():
    st = V6()
    s = st.socket(3)
    st.connect(s, ipv6.v4mapped(ipv4.aton("10.0.2.10")), 7000)
    ev = st.done(st.call(s, ProtoCall.DISCONNECT))
    assert ev.addr6 == bytes(16) and ev.peer_port == 0
    assert downs(st.sendto(s, b"x", H2, 9))[0].saddr6 == b16(H1)       # IPv6 again


def udp6(src, dst, sport, dport, payload=b"data", chksum=None):
    u = UDP6(sport=sport, dport=dport) if chksum is None else UDP6(sport=sport, dport=dport, chksum=chksum)
    return IPv6(src=ipv6.ntoa(src), dst=ipv6.ntoa(dst), hlim=63) / u / payload


def test_datagrams_in_reach_the_socket_and_nothing_listening_is_port_unreachable():
    st = V6()
    s = st.socket(3)
    st.bind(s, 0, 7000)
    [up] = ups(st.rcv(udp6(H2, H1, 4000, 7000)))
    assert up.sk == s and up.sport == 4000 and up.data[up.head:] == b"data" and up.ttl == 63
    out = st.rcv(udp6(H2, H1, 4000, 7001))
    assert [(type(a), a.reason) for a in out if type(a) is Drop] == [(Drop, "NO_SOCKET")]
    [icmp] = downs(out)
    assert (icmp.icmp_send.type, icmp.icmp_send.code) == (1, 4) and icmp.protocol == 0x86DD
    assert st.ns.mib["Udp6NoPorts"] == 1 and st.ns.mib["UdpNoPorts"] == 0


def test_bad_and_zero_checksums():
    st = V6()
    s = st.socket(3)
    st.bind(s, 0, 7000)
    out = st.rcv(udp6(H2, H1, 4000, 7000, chksum=0x1234))
    assert [a.reason for a in out if type(a) is Drop] == ["UDP_CSUM"]
    out = st.rcv(udp6(H2, H1, 4000, 7000, chksum=0))
    assert [a.reason for a in out if type(a) is Drop] == ["UDP_CSUM"]          # RFC 8200 8.1
    out = st.rcv(udp6(H2, H1, 4000, 7009, chksum=0))
    assert [a.reason for a in out if type(a) is Drop] == ["NO_SOCKET"] and not downs(out)   # no ICMPv6 for it
    assert (st.ns.mib["Udp6InCsumErrors"], st.ns.mib["Udp6InErrors"], st.ns.mib["Udp6NoPorts"]) == (3, 3, 0)


def test_a_dual_stack_socket_takes_ipv4_unless_v6only_and_an_inet_socket_wins():
    st = V6()
    s = st.socket(3)
    st.bind(s, 0, 7000)
    v4pkt = IP(src="10.0.2.10", dst="10.0.1.10", ttl=63) / UDP(sport=4000, dport=7000) / b"four"
    [up] = ups(st.rcv4(v4pkt))
    assert up.sk == s and up.data[up.head:] == b"four"
    only = st.socket(4)
    st.setsockopt(only, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    st.bind(only, 0, 7001)
    out = st.rcv4(IP(src="10.0.2.10", dst="10.0.1.10") / UDP(sport=4000, dport=7001) / b"x")
    assert [a.reason for a in out if type(a) is Drop] == ["NO_SOCKET"] and st.ns.mib["UdpNoPorts"] == 1
    # a v6-only :: socket and an AF_INET one on the same port: IPv4 to the AF_INET one
    inet = st.socket(5, family=AF_INET)
    assert st.bind(inet, None, 7001, v4=0).err == 0
    assert ups(st.rcv4(IP(src="10.0.2.10", dst="10.0.1.10") / UDP(sport=4000, dport=7001) / b"x"))[0].sk == inet
    assert ups(st.rcv(udp6(H2, H1, 4000, 7001)))[0].sk == only


def icmp6_error(st, skb, type_, code, info=0, offender=A6("2001:db8:1::1")):
    """What ip's icmpv6_rcv() hands up for an ICMPv6 error quoting `skb` (one we sent)."""
    data = bytes(64) + skb.data
    err = Skb(netns=st.netns, data=data, protocol=0x86DD, head=64)
    e = err.icmp_error
    e.type, e.code, e.info, e.offender6 = type_, code, info, b16(offender)
    e.quoted_payload = 64
    q = e.quoted
    q.saddr6, q.daddr6, q.protocol = skb.saddr6, skb.daddr6, skb.ip_proto
    q.sport, q.dport = int.from_bytes(skb.data[0:2], "big"), int.from_bytes(skb.data[2:4], "big")
    return err


def test_icmpv6_port_unreachable_refuses_a_connected_socket():
    st = V6()
    s = st.socket(3)
    st.connect(s, H2, 7000)
    [sent] = downs(st.sendto(s, b"x", None))
    [up] = ups(st.tr.rcv(icmp6_error(st, sent, 1, 4), 0))
    ev = up.event
    assert (ev.kind, ev.err, ev.errqueue, ev.ee.ee_origin) == (ev.ERROR_REPORT, errno.ECONNREFUSED, False, 3)
    assert ev.peer_addr6 == b16(H2) and ev.peer_port == 7000


def test_icmpv6_errors_reach_an_unconnected_socket_only_with_ipv6_recverr():
    st = V6()
    s = st.socket(3)
    [sent] = downs(st.sendto(s, b"x", H2, 7000))
    out = st.tr.rcv(icmp6_error(st, sent, 1, 4), 0)
    assert [type(a) for a in out] == [Stop]
    st.setsockopt(s, IPPROTO_IPV6, IPV6_RECVERR, 1)
    [up] = ups(st.tr.rcv(icmp6_error(st, sent, 3, 0), 0))          # time exceeded: EHOSTUNREACH, soft
    ev = up.event
    assert (ev.err, ev.errqueue, ev.ee.ee_type, ev.ee.offender6) == (errno.EHOSTUNREACH, True, 3,
                                                                      b16(A6("2001:db8:1::1")))
    assert up.data[up.head:] == b"x"                   # the quoted payload after the UDP header


def test_packet_too_big_teaches_ip_the_path_mtu():
    st = V6()
    s = st.socket(3)
    st.connect(s, H2, 7000)
    [sent] = downs(st.sendto(s, b"x", None))
    out = st.tr.rcv(icmp6_error(st, sent, 2, 0, info=1400), 0)
    [pmtu] = downs(out)
    assert (pmtu.pmtu_update.daddr6, pmtu.pmtu_update.mtu) == (b16(H2), 1400)
    [up] = ups(out)
    assert up.event.err == errno.EMSGSIZE                  # hard: PMTU discovery is on (WANT)
    st.setsockopt(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, 2)     # IPV6_PMTUDISC_DO
    assert st.done(st.sendto(s, b"x" * 1400, None)).err == errno.EMSGSIZE


def test_multicast_to_every_socket_and_ignored_when_none():
    st = V6()
    a, b = st.socket(3), st.socket(4)
    for s in (a, b):
        st.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, 1)
        st.bind(s, 0, 9000)
    got = ups(st.rcv(udp6(H2, A6("ff02::1"), 4000, 9000)))
    assert sorted(u.sk for u in got) == [a, b]
    out = st.rcv(udp6(H2, A6("ff02::1"), 4000, 9001))
    assert [a.reason for a in out if type(a) is Drop] == ["NOT_SPECIFIED"] and not downs(out)
    assert st.ns.mib["Udp6IgnoredMulti"] == 1 and st.ns.mib["Udp6NoPorts"] == 0
