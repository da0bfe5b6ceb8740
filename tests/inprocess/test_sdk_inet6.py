"""The SDK's AF_INET6 sockets and ping -6 (import pktflow) on the in-process
stack: Python's address tuples and errors, and iputils' output for IPv6."""
import errno
import socket as pysocket

import pytest

import pktflow
from pktflow import cli
from sockhost import sdk_on

H1, H2 = "2001:db8:1::10", "2001:db8:2::10"


@pytest.fixture
def api(monkeypatch):
    return sdk_on(monkeypatch)


def test_udp_with_python_s_four_tuples(api):
    srv = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h2")
    srv.bind(("", 7000))
    assert srv.getsockname() == ("::", 7000, 0, 0)
    cli_ = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1")
    cli_.sendto(b"hello", (H2, 7000))
    data, peer = srv.recvfrom(2048)
    assert data == b"hello" and peer[0] == H1 and peer[2:] == (0, 0)
    srv.sendto(b"back", peer)
    assert cli_.recvfrom(2048) == (b"back", (H2, 7000, 0, 0))
    v4 = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
    v4.sendto(b"four", ("10.0.2.10", 7000))
    assert srv.recvfrom(2048) == (b"four", ("::ffff:10.0.1.10", v4.getsockname()[1], 0, 0))


def test_python_s_address_errors(api):
    s = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1")
    with pytest.raises(pysocket.gaierror) as e:
        s.bind(("10.0.1.10", 0))
    assert e.value.errno == pysocket.EAI_ADDRFAMILY
    with pytest.raises(TypeError):
        s.bind(("::1",))
    with pytest.raises(OverflowError, match="flowinfo must be 0-1048575"):
        s.bind(("::", 0, 1 << 20))
    with pytest.raises(OverflowError, match="port must be 0-65535"):
        s.bind(("::", 70000))
    with pytest.raises(pysocket.gaierror):
        s.bind(("fe80::1%nosuch", 0))
    with pytest.raises(OSError) as e:              # %eth0 names an interface, but the scope is the tuple's
        s.bind(("fe80::ff:fe00:10a%eth0", 0))
    assert e.value.errno == errno.EINVAL
    s.bind(("fe80::ff:fe00:10a", 0, 0, 2))
    assert s.getsockname()[::2] == ("fe80::ff:fe00:10a", 0) and s.getsockname()[3] == 2
    v4 = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
    with pytest.raises(pysocket.gaierror) as e:
        v4.bind((H1, 0))
    assert e.value.errno == pysocket.EAI_ADDRFAMILY


def test_errnos_reach_python_as_oserrors(api):
    s = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1")
    with pytest.raises(OSError) as e:
        s.bind((H2, 0))
    assert e.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(OSError) as e:
        s.connect(("fe80::1", 9))
    assert e.value.errno == errno.EINVAL
    s.setsockopt(pktflow.IPPROTO_IPV6, pktflow.IPV6_V6ONLY, 1)
    with pytest.raises(OSError) as e:
        s.sendto(b"x", ("::ffff:10.0.2.10", 9))
    assert e.value.errno == errno.ENETUNREACH
    assert s.getsockopt(pktflow.IPPROTO_IPV6, pktflow.IPV6_UNICAST_HOPS) == 64
    with pytest.raises(OSError) as e:
        pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, pktflow.IPPROTO_ICMP, netns="h1")
    assert e.value.errno == errno.EPROTONOSUPPORT


def test_recvmsg_hop_limit_and_the_error_queue(api):
    srv = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h2")
    srv.bind(("::", 7000))
    srv.setsockopt(pktflow.IPPROTO_IPV6, pktflow.IPV6_RECVHOPLIMIT, 1)
    c = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1")
    c.setsockopt(pktflow.IPPROTO_IPV6, pktflow.IPV6_RECVERR, 1)
    c.sendto(b"x", (H2, 7000))
    data, anc, flags, _ = srv.recvmsg(100, 100)
    assert anc == [(pktflow.IPPROTO_IPV6, pktflow.IPV6_HOPLIMIT, (63).to_bytes(4, "little"))]
    c.sendto(b"y", (H2, 7001))
    data, anc, flags, addr = c.recvmsg(100, 100, pktflow.MSG_ERRQUEUE)
    [(level, type_, ee)] = anc
    assert (level, type_, data, addr[:2]) == (pktflow.IPPROTO_IPV6, pktflow.IPV6_RECVERR, b"y", (H2, 7001))
    assert ee[0:4] == errno.ECONNREFUSED.to_bytes(4, "little") and ee[4:7] == bytes((3, 1, 4))
    assert pysocket.inet_ntop(pysocket.AF_INET6, ee[16 + 8:16 + 24]) == H2       # the offender: h2 itself


def test_ping6_as_iputils_prints_it(api, capsys):
    res = pktflow.ping(H2, netns="h1", count=2, interval=0)
    assert [(r.seq, r.ttl, r.size, r.src) for r in res.replies] == [(1, 63, 64, H2), (2, 63, 64, H2)]
    assert cli.main(["ping", "-n", "h1", "-c", "1", "-i", "0", H2]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"PING {H2} ({H2}) 56 data bytes"
    assert out[1].startswith(f"64 bytes from {H2}: icmp_seq=1 ttl=63 time=")
    assert cli.main(["ping", "-6", "-n", "h1", "-c", "1", "-i", "0", "2001:db8:3::1"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "From 2001:db8:1::1 icmp_seq=1 Destination unreachable: No route"
    assert cli.main(["ping", "-4", "-n", "h1", "-c", "1", H2]) == 2


def test_ping6_link_local_with_its_zone(api, capsys):
    res = pktflow.ping("fe80::ff:fe00:101%eth0", netns="h1", count=1)
    assert [(r.ttl, r.src) for r in res.replies] == [(64, "fe80::ff:fe00:101%eth0")]
    assert cli.main(["ping", "-n", "h1", "-c", "1", "fe80::ff:fe00:101%eth0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "PING fe80::ff:fe00:101%eth0 (fe80::ff:fe00:101%eth0) 56 data bytes"
    assert out[1].startswith("64 bytes from fe80::ff:fe00:101%eth0: icmp_seq=1 ttl=64 time=")
