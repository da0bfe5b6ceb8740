"""IPv6 on the real services, the dual-stacked default topology: ping -6 across
r1, UDP over IPv6 and v4-mapped on a dual-stack socket, ICMPv6 errors, and the
ip -6 views, as Linux gives them (tests/data/linux/ipv6 are its frames)."""
import errno
import subprocess
import sys

import pytest

import pktflow

pytestmark = pytest.mark.integration


def cli(*args):
    return subprocess.run([sys.executable, "-m", "pktflow.cli", *args], capture_output=True, text=True, timeout=60)


def test_ping_dash_6_crosses_r1_with_the_hop_limit_decremented(stack):
    r = cli("ping", "-6", "-n", "h1", "-c", "2", "2001:db8:2::10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("64 bytes from 2001:db8:2::10: icmp_seq=") == 2 and "ttl=63" in r.stdout
    assert "2 packets transmitted, 2 received, 0% packet loss" in r.stdout


def test_udp_over_ipv6_and_v4_mapped_on_one_dual_stack_socket(stack):
    with pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h2") as rx, \
            pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1") as tx6, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as tx4:
        rx.bind(("::", 45801))
        rx.settimeout(10)
        tx6.sendto(b"six", ("2001:db8:2::10", 45801))
        data, (host, port, flowinfo, scope) = rx.recvfrom(100)
        assert (data, host, flowinfo, scope) == (b"six", "2001:db8:1::10", 0, 0)
        assert tx6.getsockname()[1] == port
        tx4.sendto(b"four", ("10.0.2.10", 45801))
        data, (host, *_) = rx.recvfrom(100)
        assert (data, host) == (b"four", "::ffff:10.0.1.10")


def test_a_connected_udp6_socket_hears_port_unreachable(stack):
    with pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1") as s:
        s.settimeout(10)
        s.connect(("2001:db8:2::10", 45802))
        s.send(b"nobody")
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)


def test_ip6_views_print_as_iproute2(stack):
    route = cli("ip", "-6", "route", "-n", "r1")
    assert route.stdout.splitlines()[:2] == ["2001:db8:1::/64 dev eth0 proto kernel metric 256 pref medium",
                                             "2001:db8:2::/64 dev eth1 proto kernel metric 256 pref medium"]
    cli("ping", "-6", "-n", "h1", "-c", "1", "2001:db8:1::1")
    neigh = cli("ip", "-6", "neigh", "-n", "h1")
    assert "2001:db8:1::1 dev eth0 lladdr 02:00:00:00:01:01 router" in neigh.stdout
    addr = cli("ip", "-6", "addr", "-n", "h1").stdout
    assert "inet6 2001:db8:1::10/64 scope global" in addr and "inet6 fe80::ff:fe00:10a/64 scope link" in addr


def test_a_link_local_destination_needs_its_scope(stack):
    with pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_DGRAM, netns="h1") as s:
        with pytest.raises(OSError) as e:
            s.connect(("fe80::ff:fe00:101", 45803))
        assert e.value.errno == errno.EINVAL
