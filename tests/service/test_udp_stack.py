"""UDP and ping through the five real services (the issue's user story), and
the errno every misuse gets."""
import errno
import itertools

import pytest

import pktflow
from conftest import counters, eventually

pytestmark = pytest.mark.integration
_ports = itertools.count(20000)


def udp(netns):
    s = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns=netns)
    s.settimeout(5)
    return s


def test_datagram_crosses_the_router(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli:
        srv.bind(("10.0.2.10", port))
        before = counters("r1")["IpForwDatagrams"]
        cli.sendto(b"hello", ("10.0.2.10", port))
        data, (host, sport) = srv.recvfrom(2048)
        assert data == b"hello"
        assert host == "10.0.1.10"
        assert cli.getsockname() == ("0.0.0.0", sport)
        assert 32768 <= sport <= 60999                     # net.ipv4.ip_local_port_range
        assert counters("r1")["IpForwDatagrams"] >= before + 1


def test_reply_goes_back_and_connected_socket_filters_peers(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli, udp("r1") as other:
        srv.bind(("0.0.0.0", port))
        cli.connect(("10.0.2.10", port))
        assert cli.getpeername() == ("10.0.2.10", port)
        assert cli.getsockname()[0] == "10.0.1.10"         # connect() picked the route's source
        cli.send(b"ping")
        data, addr = srv.recvfrom(100)
        srv.sendto(b"pong", addr)
        other.sendto(b"not from the peer", addr)           # a connected socket ignores others
        srv.sendto(b"pong2", addr)
        assert cli.recv(100) == b"pong"
        assert cli.recv(100) == b"pong2"


def test_sendmmsg_and_recvmmsg_keep_order(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli:
        srv.bind(("10.0.2.10", port))
        msgs = [(b"%d" % i, ("10.0.2.10", port)) for i in range(100)]
        assert cli.sendmmsg(msgs) == 100
        got = []
        while len(got) < 100:
            got += [d for d, _ in srv.recvmmsg(64)]
        assert got == [m for m, _ in msgs]


def test_closed_port_gives_port_unreachable_and_econnrefused(stack):
    port = next(_ports)
    h1, h2 = counters("h1"), counters("h2")
    with udp("h1") as cli:
        cli.connect(("10.0.2.10", port))
        cli.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            cli.recv(100)
    after = counters("h2")
    assert after["UdpNoPorts"] == h2["UdpNoPorts"] + 1
    assert after["IcmpOutDestUnreachs"] == h2["IcmpOutDestUnreachs"] + 1
    assert counters("h1")["IcmpInDestUnreachs"] == h1["IcmpInDestUnreachs"] + 1


def test_unconnected_socket_ignores_port_unreachable(stack):
    port = next(_ports)
    with udp("h1") as cli:
        cli.sendto(b"x", ("10.0.2.10", port))
        cli.settimeout(0.3)
        with pytest.raises(TimeoutError):
            cli.recv(100)


def test_ping_replies_like_linux(stack):
    r = pktflow.ping("10.0.2.10", netns="h1", count=3, interval=0.05)
    assert [x.seq for x in r.replies] == [1, 2, 3]
    assert all(x.ttl == 63 for x in r.replies)              # 64, minus the router
    assert all(0 < x.rtt < 1 for x in r.replies)
    assert r.replies[0].size == 64 and r.replies[0].src == "10.0.2.10"
    assert pktflow.ping("10.0.1.1", netns="h1").replies[0].ttl == 64


def test_large_datagrams_go_as_fragments_and_arrive_whole(stack):
    """ping -s 4000 and an 8,000-byte datagram across the router (fragmented by
    the sender, forwarded as fragments, reassembled by the receiver); ping -M do
    refuses what the path cannot carry unfragmented."""
    before = counters("h2")
    r = pktflow.ping("10.0.2.10", netns="h1", count=1, size=4000)
    assert r.replies[0] is not None and r.replies[0].size == 4008
    with udp("h2") as rx, udp("h1") as tx:
        rx.bind(("10.0.2.10", 7801))
        rx.settimeout(5)
        tx.sendto(bytes(range(250)) * 32, ("10.0.2.10", 7801))
        assert rx.recvfrom(65535)[0] == bytes(range(250)) * 32
    after = counters("h2")
    assert after["IpReasmOKs"] - before["IpReasmOKs"] == 2 and after["IpFragOKs"] - before["IpFragOKs"] == 1
    with pytest.raises(OSError) as e:
        pktflow.ping("10.0.2.10", netns="h1", count=1, size=2000, pmtudisc="do")
    assert e.value.errno == errno.EMSGSIZE
    with udp("h1") as s:
        with pytest.raises(OSError) as e:
            s.getsockopt(pktflow.IPPROTO_IP, pktflow.IP_MTU)
        assert e.value.errno == errno.ENOTCONN
        s.connect(("10.0.2.10", 7801))
        assert s.getsockopt(pktflow.IPPROTO_IP, pktflow.IP_MTU) == 1500


def test_ping_own_address_goes_through_loopback(stack):
    before = pktflow.ping.__module__ and counters("h1")
    r = pktflow.ping("10.0.1.10", netns="h1", count=1)
    assert r.replies[0] is not None and r.replies[0].ttl == 64
    assert counters("h1")["IcmpInEchos"] == before["IcmpInEchos"] + 1


def test_ping_ttl_exceeded_at_the_router(stack):
    r = pktflow.ping("10.0.2.10", netns="h1", count=1, ttl=1, timeout=0.5)
    assert r.replies == [None]
    assert [(e.offender, e.type, e.code, e.text) for e in r.errors] == \
        [("10.0.1.1", 11, 0, "Time to live exceeded")]


def test_ping_without_route_at_the_router(stack):
    before = counters("r1")
    r = pktflow.ping("10.0.3.5", netns="h1", count=1, timeout=0.5)
    assert r.replies == [None]
    assert [(e.offender, e.text) for e in r.errors] == [("10.0.1.1", "Destination Net Unreachable")]
    after = counters("r1")
    assert after["IpExtInNoRoutes"] == before["IpExtInNoRoutes"] + 1
    assert after["IcmpOutDestUnreachs"] == before["IcmpOutDestUnreachs"] + 1


def test_ping_unanswered_arp_is_host_unreachable(stack):
    # nobody has 10.0.1.99: three ARP probes, then the neighbour fails and
    # h1 tells itself, as Linux's ping shows "Destination Host Unreachable"
    r = pktflow.ping("10.0.1.99", netns="h1", count=1, timeout=5)
    assert r.replies == [None]
    assert [(e.offender, e.text) for e in r.errors] == [("10.0.1.10", "Destination Host Unreachable")]


def test_no_route_is_enetunreach_at_send(stack):
    before = counters("r1")["IpOutNoRoutes"]
    with udp("r1") as s:                                  # r1 has no default route
        with pytest.raises(OSError) as e:
            s.sendto(b"x", ("10.9.9.9", 9))
    assert e.value.errno == errno.ENETUNREACH
    assert counters("r1")["IpOutNoRoutes"] == before + 1


@pytest.mark.parametrize("call, exc, err", [
    (lambda: pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="nosuch"), FileNotFoundError, errno.ENOENT),
    (lambda: pktflow.socket(99, pktflow.SOCK_DGRAM, netns="h1"), OSError, errno.EAFNOSUPPORT),
])
def test_socket_creation_errors(stack, call, exc, err):
    with pytest.raises(exc) as e:
        call()
    assert e.value.errno == err


def test_bind_errors(stack):
    port = next(_ports)
    with udp("h1") as a, udp("h1") as b, udp("h1") as c:
        with pytest.raises(OSError) as e:
            a.bind(("10.0.2.10", port))                    # not an address of h1
        assert e.value.errno == errno.EADDRNOTAVAIL
        a.bind(("10.0.1.10", port))
        with pytest.raises(OSError) as e:
            a.bind(("10.0.1.10", port + 1))
        assert e.value.errno == errno.EINVAL               # already bound
        with pytest.raises(OSError) as e:
            b.bind(("0.0.0.0", port))
        assert e.value.errno == errno.EADDRINUSE
        a.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_REUSEADDR, 1)
        c.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_REUSEADDR, 1)
        c.bind(("10.0.1.10", port))                        # both asked for SO_REUSEADDR
        with pytest.raises(OverflowError):
            b.bind(("10.0.1.10", 70000))


def test_same_port_in_another_netns_is_free(stack):
    port = next(_ports)
    with udp("h1") as a, udp("h2") as b:
        a.bind(("0.0.0.0", port))
        b.bind(("0.0.0.0", port))


def test_closed_socket_is_ebadf(stack):
    s = udp("h1")
    s.close()
    with pytest.raises(OSError) as e:
        s.sendto(b"x", ("10.0.2.10", 9))
    assert e.value.errno == errno.EBADF
    s.close()                                              # closing twice is fine


def test_send_unconnected_without_address_is_edestaddrreq(stack):
    with udp("h1") as s:
        with pytest.raises(OSError) as e:
            s.send(b"x")
        assert e.value.errno == errno.EDESTADDRREQ
        with pytest.raises(OSError) as e:
            s.getpeername()
        assert e.value.errno == errno.ENOTCONN


def test_oversized_datagram_is_emsgsize(stack):
    with udp("h1") as s:
        with pytest.raises(OSError) as e:
            s.sendto(b"x" * 65508, ("10.0.2.10", 9))
        assert e.value.errno == errno.EMSGSIZE


def test_timeouts_and_nonblocking(stack):
    with udp("h1") as s:
        s.bind(("0.0.0.0", next(_ports)))
        s.settimeout(0.05)
        with pytest.raises(TimeoutError):
            s.recv(10)
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(10)


def test_socket_options(stack):
    with udp("h1") as s:
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_RCVBUF) == 212992   # net.core.rmem_default
        s.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_RCVBUF, 4096)
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_RCVBUF) == 8192      # the kernel doubles it
        s.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_SNDBUF, 1 << 30)
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_SNDBUF) == 2 * 212992  # capped at wmem_max
        assert s.getsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL) == 64
        s.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, 7)
        assert s.getsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL) == 7
        s.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TOS, 0x10)
        s.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_MARK, 42)
        s.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_PRIORITY, 3)
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_MARK) == 42
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_PRIORITY) == 3
        assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_TYPE) == pktflow.SOCK_DGRAM
        for level, opt, value, err in [(pktflow.IPPROTO_IP, pktflow.IP_TTL, 0, errno.EINVAL),
                                       (pktflow.IPPROTO_IP, pktflow.IP_TTL, 256, errno.EINVAL),
                                       (pktflow.SOL_SOCKET, 12345, 1, errno.ENOPROTOOPT),
                                       (77, 1, 1, errno.ENOPROTOOPT)]:
            with pytest.raises(OSError) as e:
                s.setsockopt(level, opt, value)
            assert e.value.errno == err
        with pytest.raises(TypeError):
            s.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, "64")
        with pytest.raises(OSError) as e:
            s.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, b"\x01")
        assert e.value.errno == errno.EINVAL


def test_ttl_and_tos_reach_the_wire(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli:
        srv.bind(("10.0.2.10", port))
        srv.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_RECVTTL, 1)
        srv.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_RECVTOS, 1)
        cli.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TTL, 9)
        cli.setsockopt(pktflow.IPPROTO_IP, pktflow.IP_TOS, 0x28)
        cli.sendto(b"x", ("10.0.2.10", port))
        data, anc, flags, addr = srv.recvmsg(100, 64)
        assert (pktflow.IPPROTO_IP, pktflow.IP_TTL, (8).to_bytes(4, "little")) in anc   # 9, minus r1
        assert (pktflow.IPPROTO_IP, pktflow.IP_TOS, b"\x28") in anc


def test_receive_buffer_overflow_drops_and_counts(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli:
        srv.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_RCVBUF, 1)    # the minimum, 2304 bytes
        srv.bind(("10.0.2.10", port))
        before = counters("h2")
        cli.sendmmsg([(b"x" * 100, ("10.0.2.10", port))] * 20)
        eventually(lambda: counters("h2")["UdpRcvbufErrors"] > before["UdpRcvbufErrors"])
        got = len(srv.recvmmsg(64))
        after = counters("h2")
        assert got + after["UdpRcvbufErrors"] - before["UdpRcvbufErrors"] == 20
        assert after["UdpInErrors"] - before["UdpInErrors"] == after["UdpRcvbufErrors"] - before["UdpRcvbufErrors"]


def test_truncation_reports_msg_trunc(stack):
    port = next(_ports)
    with udp("h2") as srv, udp("h1") as cli:
        srv.bind(("10.0.2.10", port))
        cli.sendto(b"abcdefgh", ("10.0.2.10", port))
        data, anc, flags, addr = srv.recvmsg(3)
        assert data == b"abc" and flags & pktflow.MSG_TRUNC
