"""ICMPv6 ping sockets in the transport core (net/ipv6/ping.c): the echo
request the kernel completes (identifier, checksum over the IPv6
pseudo-header), what ping_v6_sendmsg() refuses, replies and errors back."""
import errno

from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from pktflow.services.common.actions import Stop
from pktflow.services.wire import ipv4, ipv6
from pktflow.v1.skb_pb2 import Skb
from v6stack import AF_INET, H1, H1_LL, H2, V6, b16, downs, ups

A6 = ipv6.aton
IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPV6, IPV6_RECVERR = 1, 58, 41, 25
REQUEST = bytes((128, 0, 0, 0, 0, 0, 0, 1)) + b"payload"


def test_protocols_per_family_as_inet6_create():
    st = V6()
    assert st.done(st.call(3, 1, family=10, type=2, protocol=IPPROTO_ICMP)).err == errno.EPROTONOSUPPORT
    assert st.done(st.call(4, 1, family=AF_INET, type=2, protocol=IPPROTO_ICMPV6)).err == errno.EPROTONOSUPPORT
    assert st.done(st.call(5, 1, family=10, type=2, protocol=IPPROTO_ICMPV6)).err == 0


def test_echo_request_gets_the_sockets_identifier_and_a_valid_checksum():
    st = V6()
    s = st.socket(3, proto=IPPROTO_ICMPV6)
    [skb] = downs(st.sendto(s, REQUEST, H2))
    ident = st.tr.socks[s].lport
    assert ident and skb.ip_proto == 58 and skb.protocol == 0x86DD
    pkt = IPv6(bytes(IPv6(src=ipv6.ntoa(H1), dst=ipv6.ntoa(H2), nh=58) / skb.data))
    req = pkt[ICMPv6EchoRequest]
    assert (req.id, req.seq, bytes(req.data)) == (ident, 1, b"payload")
    good = IPv6(bytes(IPv6(src=ipv6.ntoa(H1), dst=ipv6.ntoa(H2)) / ICMPv6EchoRequest(id=ident, seq=1, data=b"payload")))
    assert req.cksum == good[ICMPv6EchoRequest].cksum


def test_what_ping_v6_sendmsg_refuses():
    st = V6()
    s = st.socket(3, proto=IPPROTO_ICMPV6)
    assert st.done(st.sendto(s, bytes((8, 0)) + REQUEST[2:], H2)).err == errno.EINVAL      # an ICMPv4 echo
    assert st.done(st.sendto(s, REQUEST[:6], H2)).err == errno.EINVAL                      # no full header
    assert st.done(st.sendto(s, REQUEST, ipv6.v4mapped(ipv4.aton("10.0.2.10")))).err == errno.EINVAL
    assert st.done(st.sendto(s, REQUEST, A6("fe80::1"))).err == errno.EINVAL              # no scope
    assert st.done(st.sendto(s, REQUEST, None)).err == errno.EDESTADDRREQ
    t = st.socket(4, proto=IPPROTO_ICMPV6)
    assert st.connect(t, ipv6.v4mapped(ipv4.aton("10.0.2.10")), 0).err == 0      # ip6_datagram_connect() lets it
    assert st.done(st.sendto(t, REQUEST, None)).err == errno.EINVAL              # ping_v6_sendmsg() does not
    [skb] = downs(st.sendto(s, REQUEST, A6("fe80::ff:fe00:101"), scope_id=2))
    assert skb.saddr6 == b16(H1_LL) and skb.dst.oif == 2


def test_ping_bind_rules():
    st = V6()
    assert st.bind(st.socket(3, proto=IPPROTO_ICMPV6), ipv6.v4mapped(ipv4.aton("10.0.1.10")), 0).err == errno.EINVAL
    assert st.bind(st.socket(4, proto=IPPROTO_ICMPV6), H1_LL, 0).err == errno.EINVAL
    assert st.bind(st.socket(5, proto=IPPROTO_ICMPV6), H2, 0).err == errno.EADDRNOTAVAIL
    assert st.bind(st.socket(6, proto=IPPROTO_ICMPV6), H1, 77).err == 0


def reply(st, ident, seq=1, src=H2, dst=H1):
    pkt = IPv6(src=ipv6.ntoa(src), dst=ipv6.ntoa(dst), hlim=63) / ICMPv6EchoReply(id=ident, seq=seq, data=b"payload")
    data = bytes(pkt)
    skb = Skb(netns=st.netns, data=data, protocol=0x86DD, network_header=0, transport_header=40, head=40,
              saddr6=b16(src), daddr6=b16(dst), ip_proto=58, ttl=63, dport=ident)
    return st.tr.rcv(skb, 0)


def test_echo_reply_reaches_its_socket_by_identifier():
    st = V6()
    s = st.socket(3, proto=IPPROTO_ICMPV6)
    st.sendto(s, REQUEST, H2)
    ident = st.tr.socks[s].lport
    [up] = ups(reply(st, ident))
    assert up.sk == s and up.data[up.head] == 129 and up.ttl == 63
    assert [type(a) for a in reply(st, ident + 1)] == [Stop]
    v4 = st.socket(4, proto=IPPROTO_ICMP, family=AF_INET)          # an ICMPv4 ping socket never gets it
    st.bind(v4, None, ident + 1, v4=0)
    assert [type(a) for a in reply(st, ident + 1)] == [Stop]


def test_destination_unreachable_with_ipv6_recverr():
    st = V6()
    s = st.socket(3, proto=IPPROTO_ICMPV6)
    st.setsockopt(s, IPPROTO_IPV6, IPV6_RECVERR, 1)
    [sent] = downs(st.sendto(s, REQUEST, A6("2001:db8:3::5")))
    err = Skb(netns="h1", data=bytes(48) + sent.data, protocol=0x86DD, head=48)
    e = err.icmp_error
    e.type, e.code, e.offender6, e.quoted_payload = 1, 0, b16(A6("2001:db8:1::1")), 48
    q = e.quoted
    q.saddr6, q.daddr6, q.protocol, q.icmp_type, q.sport = sent.saddr6, sent.daddr6, 58, 128, st.tr.socks[s].lport
    [up] = ups(st.tr.rcv(err, 0))
    assert (up.event.err, up.event.ee.ee_origin, up.event.ee.ee_type) == (errno.ENETUNREACH, 3, 1)
