"""AF_INET6 datagram sockets end to end in-process: the socket service's calls
(services/socket) over transport, ip, link, the NICs and the cables of the
dual-stacked default topology (h1 2001:db8:1::10 -- r1 -- h2 2001:db8:2::10).
The errnos and names are Linux's (net/ipv6/af_inet6.c, datagram.c, udp.c, ping.c)."""
import errno
import struct

from sockhost import Api, addr

AF_INET, AF_INET6, SOCK_DGRAM = 2, 10, 2
IPPROTO_IP, IPPROTO_IPV6, IPPROTO_ICMPV6 = 0, 41, 58
IP_TTL, IPV6_UNICAST_HOPS, IPV6_RECVERR, IPV6_V6ONLY, IPV6_MTU = 2, 16, 25, 26, 24
MSG_ERRQUEUE = 0x2000
H1, H2 = "2001:db8:1::10", "2001:db8:2::10"
H1_LL = "fe80::ff:fe00:10a"


def test_a_datagram_both_ways_with_python_s_names():
    api = Api()
    srv = api.fd("h2", AF_INET6, SOCK_DGRAM)
    r = api.bind(srv, addr("::", 7000))
    assert r.status.err == 0 and (r.addr.host, r.addr.port) == ("::", 7000)
    cli = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.sendto(cli, b"hello", addr(H2, 7000)).sent == 1
    name = api.getsockname(cli).addr
    assert name.host == "::" and name.port                  # sk_v6_rcv_saddr stays :: (unconnected)
    [d] = api.recv(srv).msgs
    assert (d.data, d.addr.host, d.addr.port, d.addr.scope_id, d.ttl) == (b"hello", H1, name.port, 0, 63)
    assert api.sendto(srv, b"back", d.addr).sent == 1
    [back] = api.recv(cli).msgs
    assert (back.data, back.addr.host, back.addr.port) == (b"back", H2, 7000)
    ns = api.net.tr.netns
    assert ns["h2"].mib["Udp6InDatagrams"] == 1 and ns["h1"].mib["Udp6OutDatagrams"] == 1


def test_bind_errnos_as_linux():
    api = Api()
    s = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.bind(s, addr(H2, 0)).status.err == errno.EADDRNOTAVAIL        # a foreign address
    assert api.bind(s, addr(H1_LL, 0)).status.err == errno.EINVAL            # link-local, no scope id
    assert api.bind(s, addr("10.0.1.10", 0)).status.err == errno.EINVAL      # a sockaddr_in: too short
    assert api.bind(s, addr("not an address", 0)).status.err == errno.EINVAL
    r = api.bind(s, addr(H1_LL, 5000, scope_id=2))
    assert r.status.err == 0 and (r.addr.host, r.addr.scope_id) == (H1_LL, 2)
    assert api.getsockname(s).addr.scope_id == 2
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY) == (0, 1)          # bound to an IPv6 address
    assert api.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 0) == errno.EINVAL  # once bound
    v4 = api.fd("h1", AF_INET, SOCK_DGRAM)
    assert api.bind(v4, addr(H1, 0)).status.err == errno.EAFNOSUPPORT         # a sockaddr_in6 to AF_INET
    assert api.setsockopt(v4, IPPROTO_IPV6, IPV6_V6ONLY, 1) == errno.ENOPROTOOPT
    assert api.getpeername(s).status.err == errno.ENOTCONN


def test_options_and_their_defaults():
    api = Api()
    s = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY) == (0, 0)           # net.ipv6.bindv6only = 0
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == (0, 64)
    for bad in (256, -2):
        assert api.setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, bad) == errno.EINVAL
    assert api.setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 5) == 0
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == (0, 5)
    assert api.setsockopt(s, IPPROTO_IP, IP_TTL, 9) == 0                    # ip_setsockopt() for its IPv4 side
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_MTU)[0] == errno.ENOTCONN
    api.connect(s, addr(H2, 9))
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_MTU) == (0, 1500)


def test_the_hop_limit_leaves_as_set():
    api = Api()
    srv = api.fd("h2", AF_INET6, SOCK_DGRAM)
    api.bind(srv, addr("", 7000))
    cli = api.fd("h1", AF_INET6, SOCK_DGRAM)
    api.setsockopt(cli, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 5)
    api.sendto(cli, b"x", addr(H2, 7000))
    assert api.recv(srv).msgs[0].ttl == 4                                   # one router on the way


def test_a_dual_stack_socket_sees_ipv4_peers_v4_mapped():
    api = Api()
    srv = api.fd("h2", AF_INET6, SOCK_DGRAM)
    api.bind(srv, addr("", 7000))
    v4 = api.fd("h1", AF_INET, SOCK_DGRAM)
    api.sendto(v4, b"four", addr("10.0.2.10", 7000))
    [d] = api.recv(srv).msgs
    assert (d.data, d.addr.host) == (b"four", "::ffff:10.0.1.10")
    assert api.sendto(srv, b"reply", d.addr).sent == 1                      # back as IPv4
    assert api.recv(v4).msgs[0].addr.host == "10.0.2.10"
    assert api.net.tr.netns["h2"].mib["UdpInDatagrams"] == 1                # udpv6_recvmsg(): an IPv4 one
    cli = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.sendto(cli, b"mapped", addr("10.0.2.10", 7000)).sent == 1    # a sockaddr_in: udp_sendmsg()
    assert api.recv(srv).msgs[0].data == b"mapped"
    r = api.connect(cli, addr("::ffff:10.0.2.10", 7000))
    assert r.status.err == 0 and r.addr.host == "::ffff:10.0.1.10"
    assert api.getpeername(cli).addr.host == "::ffff:10.0.2.10"


def test_v6only_refuses_ipv4():
    api = Api()
    s = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1) == 0
    assert api.sendto(s, b"x", addr("::ffff:10.0.2.10", 7000)).status.err == errno.ENETUNREACH
    assert api.connect(s, addr("10.0.2.10", 7000)).status.err == errno.EAFNOSUPPORT
    assert api.connect(s, addr("::ffff:10.0.2.10", 7000)).status.err == errno.ENETUNREACH


def test_connected_socket_is_refused_by_icmpv6_port_unreachable():
    api = Api()
    s = api.fd("h1", AF_INET6, SOCK_DGRAM)
    r = api.connect(s, addr(H2, 9))
    assert r.status.err == 0 and r.addr.host == H1
    api.sendto(s, b"anyone?")
    assert api.recv(s).status.err == errno.ECONNREFUSED
    assert api.net.tr.netns["h2"].mib["Udp6NoPorts"] == 1


def test_ipv6_recverr_queues_the_error_with_its_offender():
    api = Api()
    s = api.fd("h1", AF_INET6, SOCK_DGRAM)
    api.setsockopt(s, IPPROTO_IPV6, IPV6_RECVERR, 1)
    api.sendto(s, b"lost", addr("2001:db8:3::5", 9))              # r1 has no route: unreachable, no route
    [e] = api.recv(s, MSG_ERRQUEUE).msgs
    assert (e.ee.ee_origin, e.ee.ee_type, e.ee.ee_code, e.ee.offender) == (3, 1, 0, "2001:db8:1::1")
    assert (e.data, e.addr.host, e.addr.port) == (b"lost", "2001:db8:3::5", 9)


def test_unroutable_and_unscoped():
    api = Api()
    s = api.fd("r1", AF_INET6, SOCK_DGRAM)
    assert api.sendto(s, b"x", addr("2001:db8:9::1", 9)).status.err == errno.ENETUNREACH
    c = api.fd("h1", AF_INET6, SOCK_DGRAM)
    assert api.connect(c, addr("fe80::1", 9)).status.err == errno.EINVAL


def test_link_local_with_its_scope():
    api = Api()
    srv = api.fd("r1", AF_INET6, SOCK_DGRAM)
    api.bind(srv, addr("", 7000))
    cli = api.fd("h1", AF_INET6, SOCK_DGRAM)
    r = api.connect(cli, addr("fe80::ff:fe00:101", 7000, scope_id=2))
    assert r.status.err == 0 and (r.addr.host, r.addr.scope_id) == (H1_LL, 2)
    assert api.getpeername(cli).addr.scope_id == 2
    api.sendto(cli, b"on-link")
    [d] = api.recv(srv).msgs
    assert (d.data, d.addr.host, d.addr.scope_id, d.ttl) == (b"on-link", H1_LL, 2, 64)   # r1's eth0


def test_ping6_socket_echo():
    api = Api()
    p = api.fd("h1", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)
    req = struct.pack("!BBHHH", 128, 0, 0, 0, 1) + b"abcdefgh"
    assert api.sendto(p, req, addr(H2, 0)).sent == 1
    [d] = api.recv(p).msgs
    assert d.data[0] == 129 and d.data[8:] == b"abcdefgh" and d.addr.host == H2 and d.ttl == 63
    assert struct.unpack("!H", d.data[6:8])[0] == 1
    assert api.sendto(p, req, addr("10.0.2.10", 0)).status.err == errno.EINVAL     # a sockaddr_in
    assert api.sendto(p, b"\x08" + req[1:], addr(H2, 0)).status.err == errno.EINVAL
