"""Unit tests of the FIB (services/ip/fib.py), route resolution
(services/ip/route.py), the namespace built from a topology host
(services/ip/netns.py) and the ICMP rate limits (services/ip/icmp_ratelimit.py).

Expected values are Linux's: `ip route show [table local]` output of a host
configured like the topology, ip_route_output_key()/ip_route_input_slow()
results and errnos, inet_peer_xrlim_allow()/icmp_global_allow() budgets."""
import errno
import random

import pytest
from pktflow.services.common import sysctl, topology
from pktflow.services.ip import fib
from pktflow.services.ip.fib import (
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_UNICAST,
    TABLE_LOCAL,
    TABLE_MAIN,
    Fib,
    FibRoute,
)
from pktflow.services.ip.icmp_ratelimit import RateLimits
from pktflow.services.ip.netns import IpNetns
from pktflow.services.ip.route import BROADCAST, FORWARD, LOCAL, RouteError, Rt, ip_route_input, ip_route_output
from pktflow.services.wire.ipv4 import Ipv4Repr
from pktflow.services.wire.ipv4 import aton as A

MS = 1_000_000
S = 1_000_000_000


# ---------------------------------------------------------------- helpers

def netns(text: str, host: str) -> IpNetns:
    return IpNetns(topology.loads(text, "t.yaml").hosts[host], random.Random(1))


def default_ns(host: str) -> IpNetns:
    return IpNetns(topology.load().hosts[host], random.Random(1))


def one_host(interfaces: str, routes: str = "", sysctls: str = "") -> IpNetns:
    """A host `h` with the given interface lines (each `      ifname: {...}`)."""
    text = "hosts:\n  h:\n    interfaces:\n" + interfaces
    if routes:
        text += "    routes:\n" + routes
    if sysctls:
        text += "    sysctls:\n" + sysctls
    return netns(text, "h")


def h1_with(routes: str = "", sysctls: str = "") -> IpNetns:
    """h1 of the default topology (eth0 10.0.1.10/24) with extra routes/sysctls."""
    return one_host("      eth0: {mac: \"02:00:00:00:01:0a\", addresses: [10.0.1.10/24]}\n",
                    "      - default via 10.0.1.1\n" + routes, sysctls)


def r1_with(sysctls: str = "      net.ipv4.ip_forward: 1\n", routes: str = "") -> IpNetns:
    return one_host("      eth0: {addresses: [10.0.1.1/24]}\n      eth1: {addresses: [10.0.2.1/24]}\n",
                    routes, sysctls)


def iph(src: str, dst: str, proto: int = 17) -> Ipv4Repr:
    return Ipv4Repr(ihl=20, tos=0, total_len=48, ident=1, frag_off=0, ttl=64, proto=proto, src=A(src), dst=A(dst))


def show(ns: IpNetns, table: int = TABLE_MAIN) -> list[str]:
    return ns.fib.show(table, ns.ifname)


def out_err(ns, daddr: str, **kw) -> int:
    with pytest.raises(RouteError) as ei:
        ip_route_output(ns, A(daddr), **kw)
    return ei.value.errno


def in_err(ns, src: str, dst: str, ifindex: int = 2) -> RouteError:
    with pytest.raises(RouteError) as ei:
        ip_route_input(ns, iph(src, dst), ifindex)
    return ei.value


# ================================================================ the FIB

def test_local_table_of_a_host():
    # `ip route show table local` on Linux for lo 127.0.0.1/8 + eth0 10.0.1.10/24
    assert show(default_ns("h1"), TABLE_LOCAL) == [
        "local 10.0.1.10 dev eth0 proto kernel scope host src 10.0.1.10",
        "broadcast 10.0.1.255 dev eth0 proto kernel scope link src 10.0.1.10",
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
    ]


def test_local_table_of_the_router():
    assert show(default_ns("r1"), TABLE_LOCAL) == [
        "local 10.0.1.1 dev eth0 proto kernel scope host src 10.0.1.1",
        "broadcast 10.0.1.255 dev eth0 proto kernel scope link src 10.0.1.1",
        "local 10.0.2.1 dev eth1 proto kernel scope host src 10.0.2.1",
        "broadcast 10.0.2.255 dev eth1 proto kernel scope link src 10.0.2.1",
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
    ]


def test_main_table_of_a_host():
    assert show(default_ns("h1")) == [
        "default via 10.0.1.1 dev eth0",
        "10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10",
    ]
    assert show(default_ns("h2")) == [
        "default via 10.0.2.1 dev eth0",
        "10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.10",
    ]


def test_main_table_of_the_router():
    assert show(default_ns("r1")) == [
        "10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.1",
        "10.0.2.0/24 dev eth1 proto kernel scope link src 10.0.2.1",
    ]


def test_local_entries_are_in_the_local_table_only():
    ns = default_ns("h1")
    local = ns.fib.local.lookup(A("10.0.1.10"))
    assert (local.type, local.plen, local.dev, local.prefsrc, local.table) == (RTN_LOCAL, 32, 2, A("10.0.1.10"),
                                                                              TABLE_LOCAL)
    assert local.scope == fib.RT_SCOPE_HOST
    connected = ns.fib.main.lookup(A("10.0.1.10"))
    assert (connected.type, connected.dst, connected.plen, connected.scope) == (RTN_UNICAST, A("10.0.1.0"), 24,
                                                                                fib.RT_SCOPE_LINK)


def test_broadcast_route_only_below_slash_31():
    ns = one_host("      eth0: {addresses: [10.0.1.10/30]}\n      eth1: {addresses: [10.0.2.0/31]}\n")
    lines = show(ns, TABLE_LOCAL)
    assert "broadcast 10.0.1.11 dev eth0 proto kernel scope link src 10.0.1.10" in lines
    assert not any("broadcast" in line and "eth1" in line for line in lines)
    # a /31 still has its connected route (RFC 3021)
    assert "10.0.2.0/31 dev eth1 proto kernel scope link src 10.0.2.0" in show(ns)


def test_slash_32_address_has_no_connected_route():
    # fib_add_ifaddr(): the prefix route is added only if
    # (prefix != addr || ifa_prefixlen < 32); `ip addr add 10.9.9.9/32 dev eth0`
    # leaves `ip route` without a 10.9.9.9 line (only `local 10.9.9.9` in table local).
    ns = one_host("      eth0: {addresses: [10.0.1.10/24, 10.9.9.9/32]}\n")
    assert "local 10.9.9.9 dev eth0 proto kernel scope host src 10.9.9.9" in show(ns, TABLE_LOCAL)
    assert show(ns) == ["10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10"]


def test_secondary_address_adds_no_second_connected_route():
    # __inet_insert_ifa() marks a second address of the same subnet IFA_F_SECONDARY;
    # fib_add_ifaddr() adds only its local route, with the primary as prefsrc.
    ns = one_host("      eth0: {addresses: [10.0.1.10/24, 10.0.1.11/24]}\n")
    assert show(ns) == ["10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10"]
    local = show(ns, TABLE_LOCAL)
    assert "local 10.0.1.11 dev eth0 proto kernel scope host src 10.0.1.10" in local
    assert local.count("broadcast 10.0.1.255 dev eth0 proto kernel scope link src 10.0.1.10") == 1
    assert not any("src 10.0.1.11" in line for line in local)


def test_is_local_and_is_broadcast():
    f = default_ns("r1").fib
    for a in ("10.0.1.1", "10.0.2.1", "127.0.0.1", "127.1.2.3"):
        assert f.is_local(A(a)), a
    for a in ("10.0.1.2", "10.0.1.255", "10.0.3.1", "8.8.8.8"):
        assert not f.is_local(A(a)), a
    for a in ("10.0.1.255", "10.0.2.255", "127.255.255.255", "255.255.255.255"):
        assert f.is_broadcast(A(a)), a
    for a in ("10.0.1.1", "10.0.1.0", "10.0.3.255"):
        assert not f.is_broadcast(A(a)), a


def test_longest_prefix_wins():
    ns = h1_with("      - 10.0.0.0/8 via 10.0.1.2\n"
                 "      - 10.20.0.0/16 via 10.0.1.3\n"
                 "      - 10.20.30.0/24 via 10.0.1.4\n"
                 "      - 10.20.30.40 via 10.0.1.5\n")
    gw = lambda d: ns.fib.lookup(A(d)).gw
    assert gw("8.8.8.8") == A("10.0.1.1")
    assert gw("10.1.2.3") == A("10.0.1.2")
    assert gw("10.20.1.1") == A("10.0.1.3")
    assert gw("10.20.30.1") == A("10.0.1.4")
    assert gw("10.20.30.40") == A("10.0.1.5")
    assert gw("10.20.30.41") == A("10.0.1.4")
    assert ns.fib.lookup(A("10.0.1.77")).gw == 0          # connected /24 beats 10.0.0.0/8


def test_local_table_beats_main():
    ns = h1_with("      - 10.0.1.10 via 10.0.1.1\n")
    assert ns.fib.lookup(A("10.0.1.10")).type == RTN_LOCAL


def test_metric_breaks_ties():
    ns = h1_with("      - 10.9.0.0/16 via 10.0.1.2 metric 200\n"
                 "      - 10.9.0.0/16 via 10.0.1.3 metric 50\n"
                 "      - 10.9.0.0/16 via 10.0.1.4 metric 100\n")
    r = ns.fib.lookup(A("10.9.1.1"))
    assert (r.gw, r.metric) == (A("10.0.1.3"), 50)


def test_more_specific_beats_lower_metric():
    ns = h1_with("      - 10.9.0.0/16 via 10.0.1.2 metric 1000\n      - 10.0.0.0/8 via 10.0.1.3 metric 0\n")
    assert ns.fib.lookup(A("10.9.1.1")).gw == A("10.0.1.2")


def test_no_route():
    ns = default_ns("r1")
    assert ns.fib.lookup(A("8.8.8.8")) is None


def test_fib_add_changes_genid_and_invalidates_the_cache():
    ns = default_ns("r1")
    assert ns.fib.lookup(A("10.9.1.1")) is None              # negative result, cached
    gen = ns.fib.genid
    ns.fib.add(FibRoute(A("10.9.0.0"), 16, RTN_UNICAST, 2, A("10.0.1.254")))
    assert ns.fib.genid != gen
    r = ns.fib.lookup(A("10.9.1.1"))
    assert r is not None and r.gw == A("10.0.1.254")
    # a more specific route replaces the cached answer too
    gen = ns.fib.genid
    ns.fib.add(FibRoute(A("10.9.1.0"), 24, RTN_UNICAST, 3, A("10.0.2.254")))
    assert ns.fib.genid != gen
    assert ns.fib.lookup(A("10.9.1.1")).gw == A("10.0.2.254")
    assert ns.fib.lookup(A("10.9.2.1")).gw == A("10.0.1.254")


def test_add_ifaddr_changes_genid():
    f = Fib()
    g = f.genid
    f.add_ifaddr(2, A("192.168.0.1"), 24, loopback=False)
    assert f.genid != g
    assert f.is_local(A("192.168.0.1"))


def test_lookup_is_cached_until_a_change():
    f = Fib()
    f.add_ifaddr(2, A("192.168.0.1"), 24, loopback=False)
    first = f.lookup(A("192.168.0.7"))
    assert f.lookup(A("192.168.0.7")) is first
    f.add(FibRoute(A("192.168.0.7"), 32, RTN_UNICAST, 2, A("192.168.0.254")))
    assert f.lookup(A("192.168.0.7")).plen == 32


def test_show_main_table_order_and_format():
    ns = h1_with("      - 192.168.0.0/16 via 10.0.1.2 metric 100\n"
                 "      - 10.9.0.0/16 via 10.0.1.3 src 10.0.1.10\n"
                 "      - blackhole 10.66.0.0/16\n"
                 "      - unreachable 10.67.0.0/16 metric 5\n"
                 "      - prohibit 10.68.0.1\n"
                 "      - 10.0.0.0/8 via 10.0.1.4 metric 20\n"
                 "      - default via 10.0.1.5 metric 10\n")
    assert show(ns) == [
        "default via 10.0.1.1 dev eth0",
        "default via 10.0.1.5 dev eth0 metric 10",
        "10.0.0.0/8 via 10.0.1.4 dev eth0 metric 20",
        "10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10",
        "10.9.0.0/16 via 10.0.1.3 dev eth0 src 10.0.1.10",
        "blackhole 10.66.0.0/16",
        "unreachable 10.67.0.0/16 metric 5",
        "prohibit 10.68.0.1",
        "192.168.0.0/16 via 10.0.1.2 dev eth0 metric 100",
    ]


def test_show_same_destination_longer_prefix_first():
    # fib_insert_alias() keeps a leaf's aliases in ascending fa_slen (= 32 - plen),
    # and the dump walks them in that order: `ip route` prints 10.0.0.0/16 before 10.0.0.0/8.
    ns = h1_with("      - 10.0.0.0/8 via 10.0.1.2\n      - 10.0.0.0/16 via 10.0.1.3\n")
    assert show(ns) == [
        "default via 10.0.1.1 dev eth0",
        "10.0.0.0/16 via 10.0.1.3 dev eth0",
        "10.0.0.0/8 via 10.0.1.2 dev eth0",
        "10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.10",
    ]


def test_show_device_route_has_scope_link():
    # iproute2 `ip route add 10.9.0.0/16 dev eth0` (no gateway) sends
    # rtm_scope = RT_SCOPE_LINK, and `ip route` prints "scope link".
    ns = h1_with("      - 10.9.0.0/16 dev eth0\n")
    assert "10.9.0.0/16 dev eth0 scope link" in show(ns)


# ================================================================ ip_route_output

def test_output_via_default_gateway():
    ns = default_ns("h1")
    assert ip_route_output(ns, A("10.0.2.10")) == Rt(RTN_UNICAST, 2, A("10.0.1.1"), A("10.0.1.10"), 1500)


def test_output_on_link_nexthop_is_the_destination():
    ns = default_ns("h1")
    assert ip_route_output(ns, A("10.0.1.1")) == Rt(RTN_UNICAST, 2, A("10.0.1.1"), A("10.0.1.10"), 1500)
    assert ip_route_output(ns, A("10.0.1.77")).nexthop == A("10.0.1.77")


def test_output_router_picks_the_right_interface():
    ns = default_ns("r1")
    assert ip_route_output(ns, A("10.0.2.10")) == Rt(RTN_UNICAST, 3, A("10.0.2.10"), A("10.0.2.1"), 1500)
    assert ip_route_output(ns, A("10.0.1.10")) == Rt(RTN_UNICAST, 2, A("10.0.1.10"), A("10.0.1.1"), 1500)


def test_output_mtu_is_the_devices():
    ns = one_host("      eth0: {addresses: [10.0.1.10/24], mtu: 9000}\n", "      - default via 10.0.1.1\n")
    assert ip_route_output(ns, A("1.1.1.1")).mtu == 9000
    assert ip_route_output(ns, A("10.0.1.10")).mtu == 65536          # lo


def test_output_source_is_the_route_prefsrc():
    ns = one_host("      eth0: {addresses: [10.0.1.10/24]}\n      eth1: {addresses: [10.0.5.10/24]}\n",
                  "      - default via 10.0.1.1\n      - 10.9.0.0/16 via 10.0.1.1 src 10.0.5.10\n")
    rt = ip_route_output(ns, A("10.9.3.4"))
    assert (rt.oif, rt.nexthop, rt.saddr) == (2, A("10.0.1.1"), A("10.0.5.10"))
    assert ip_route_output(ns, A("10.8.3.4")).saddr == A("10.0.1.10")


def test_output_source_is_the_address_on_the_gateways_subnet():
    # inet_select_addr(dev, gw, scope): the primary address whose subnet holds the gateway
    ns = one_host("      eth0: {addresses: [10.0.1.10/24, 192.168.7.10/24]}\n",
                  "      - default via 192.168.7.1\n      - 10.9.0.0/16 via 10.0.1.1\n")
    assert ip_route_output(ns, A("8.8.8.8")) == Rt(RTN_UNICAST, 2, A("192.168.7.1"), A("192.168.7.10"), 1500)
    assert ip_route_output(ns, A("10.9.0.1")).saddr == A("10.0.1.10")
    assert ip_route_output(ns, A("192.168.7.99")).saddr == A("192.168.7.10")


def test_output_source_for_a_device_route_without_address_on_that_subnet():
    ns = one_host("      eth0: {addresses: [10.0.1.10/24]}\n", "      - 10.9.0.0/16 dev eth0\n")
    rt = ip_route_output(ns, A("10.9.0.5"))
    assert (rt.oif, rt.nexthop, rt.saddr) == (2, A("10.9.0.5"), A("10.0.1.10"))


def test_output_given_source_is_kept():
    ns = one_host("      eth0: {addresses: [10.0.1.10/24, 10.0.1.11/24]}\n", "      - default via 10.0.1.1\n")
    assert ip_route_output(ns, A("8.8.8.8"), saddr=A("10.0.1.11")).saddr == A("10.0.1.11")


def test_output_to_own_address_goes_to_lo():
    ns = default_ns("h1")
    assert ip_route_output(ns, A("10.0.1.10")) == Rt(RTN_LOCAL, 1, A("10.0.1.10"), A("10.0.1.10"), 65536)


def test_output_to_own_address_of_another_interface_goes_to_lo():
    ns = default_ns("r1")
    rt = ip_route_output(ns, A("10.0.2.1"))
    assert (rt.type, rt.oif, rt.nexthop, rt.saddr) == (RTN_LOCAL, 1, A("10.0.2.1"), A("10.0.2.1"))


def test_output_to_loopback():
    ns = default_ns("h1")
    assert ip_route_output(ns, A("127.0.0.1")) == Rt(RTN_LOCAL, 1, A("127.0.0.1"), A("127.0.0.1"), 65536)


def test_output_to_other_loopback_address_uses_the_routes_prefsrc():
    # ip_route_output_key_hash_rcu(): for RTN_LOCAL, saddr = fib_prefsrc if set,
    # else daddr. `local 127.0.0.0/8 ... src 127.0.0.1` has prefsrc 127.0.0.1:
    # `ip route get 127.0.0.5` says "local 127.0.0.5 dev lo src 127.0.0.1".
    ns = default_ns("h1")
    rt = ip_route_output(ns, A("127.0.0.5"))
    assert (rt.type, rt.oif, rt.nexthop) == (RTN_LOCAL, 1, A("127.0.0.5"))
    assert rt.saddr == A("127.0.0.1")


def test_output_to_0_0_0_0_means_this_host():
    ns = default_ns("h1")
    rt = ip_route_output(ns, 0)
    assert (rt.type, rt.oif, rt.nexthop, rt.saddr) == (RTN_LOCAL, 1, A("127.0.0.1"), A("127.0.0.1"))


def test_output_no_route_is_enetunreach():
    assert out_err(default_ns("r1"), "8.8.8.8") == errno.ENETUNREACH


@pytest.mark.parametrize("rtype,err", [("unreachable", errno.EHOSTUNREACH), ("prohibit", errno.EACCES),
                                       ("blackhole", errno.EINVAL)])
def test_output_error_routes(rtype, err):
    ns = h1_with(f"      - {rtype} 10.66.0.0/16\n")
    e = out_err(ns, "10.66.1.1")
    assert e == err
    assert ip_route_output(ns, A("10.67.1.1")).nexthop == A("10.0.1.1")


def test_route_error_carries_errno_and_name():
    e = RouteError(errno.EHOSTUNREACH)
    assert e.errno == errno.EHOSTUNREACH and "EHOSTUNREACH" in str(e)


@pytest.mark.parametrize("daddr", ["224.0.0.1", "239.255.255.250", "0.1.2.3"])
def test_output_multicast_or_zeronet_destination_is_einval(daddr):
    assert out_err(default_ns("h1"), daddr) == errno.EINVAL


def test_output_subnet_broadcast():
    ns = default_ns("h1")
    assert ip_route_output(ns, A("10.0.1.255")) == Rt(RTN_BROADCAST, 2, A("10.0.1.255"), A("10.0.1.10"), 1500)


def test_output_limited_broadcast_with_oif():
    ns = default_ns("h1")
    assert ip_route_output(ns, 0xFFFFFFFF, oif=2) == Rt(RTN_BROADCAST, 2, 0xFFFFFFFF, A("10.0.1.10"), 1500)


def test_output_limited_broadcast_with_unknown_oif():
    assert out_err(default_ns("h1"), "255.255.255.255", oif=7) == errno.ENODEV


def test_output_limited_broadcast_without_oif_is_not_sent_to_the_gateway():
    # __mkroute_output(): type RTN_BROADCAST sets fi = NULL, so the route has no
    # gateway and the frame goes to 255.255.255.255 (ff:ff:ff:ff:ff:ff), not to
    # the default gateway the FIB lookup found.
    ns = default_ns("h1")
    rt = ip_route_output(ns, 0xFFFFFFFF)
    assert (rt.type, rt.oif, rt.saddr) == (RTN_BROADCAST, 2, A("10.0.1.10"))
    assert rt.nexthop == 0xFFFFFFFF


def test_output_oif_overrides_the_route_device():
    ns = default_ns("r1")
    rt = ip_route_output(ns, A("10.0.2.10"), oif=3)
    assert (rt.oif, rt.saddr) == (3, A("10.0.2.1"))


# ================================================================ ip_route_input

def test_input_local_delivery():
    ns = default_ns("h1")
    assert ip_route_input(ns, iph("10.0.1.1", "10.0.1.10"), 2) == (LOCAL, None)
    assert ip_route_input(ns, iph("10.0.2.10", "10.0.1.10"), 2) == (LOCAL, None)


def test_input_local_delivery_to_another_interfaces_address():
    # the weak host model: r1 accepts 10.0.2.1 on eth0
    assert ip_route_input(default_ns("r1"), iph("10.0.1.10", "10.0.2.1"), 2) == (LOCAL, None)


def test_input_loopback_on_lo():
    ns = default_ns("h1")
    assert ip_route_input(ns, iph("127.0.0.1", "127.0.0.1"), 1) == (LOCAL, None)
    assert ip_route_input(ns, iph("10.0.1.10", "10.0.1.10"), 1) == (LOCAL, None)


@pytest.mark.parametrize("src,dst", [("10.0.1.1", "255.255.255.255"), ("10.0.1.1", "10.0.1.255"),
                                     ("0.0.0.0", "255.255.255.255"), ("0.0.0.0", "0.0.0.0")])
def test_input_broadcast(src, dst):
    assert ip_route_input(default_ns("h1"), iph(src, dst), 2) == (BROADCAST, None)


def test_input_directed_broadcast_of_the_other_subnet_is_not_forwarded():
    # the router's own 10.0.2.255 is a broadcast route in its local table (bc_forwarding=0)
    assert ip_route_input(default_ns("r1"), iph("10.0.1.10", "10.0.2.255"), 2) == (BROADCAST, None)


def test_input_forwarding():
    ns = default_ns("r1")
    assert ip_route_input(ns, iph("10.0.1.10", "10.0.2.10"), 2) == (FORWARD, Rt(RTN_UNICAST, 3, A("10.0.2.10"), 0,
                                                                                 1500))
    assert ip_route_input(ns, iph("10.0.2.10", "10.0.1.10"), 3) == (FORWARD, Rt(RTN_UNICAST, 2, A("10.0.1.10"), 0,
                                                                                 1500))


def test_input_forwarding_via_a_gateway():
    ns = r1_with(routes="      - 172.16.0.0/12 via 10.0.2.254\n")
    kind, rt = ip_route_input(ns, iph("10.0.1.10", "172.16.5.5"), 2)
    assert kind == FORWARD and (rt.oif, rt.nexthop) == (3, A("10.0.2.254"))


def test_input_not_forwarding_is_ehostunreach():
    ns = default_ns("h1")                    # ip_forward=0, has a default route
    e = in_err(ns, "10.0.1.1", "10.0.2.10")
    assert e.errno == errno.EHOSTUNREACH and getattr(e, "reason", None) is None
    assert in_err(ns, "10.0.1.1", "8.8.8.8").errno == errno.EHOSTUNREACH


def test_input_forwarding_without_route_is_enetunreach():
    e = in_err(default_ns("r1"), "10.0.1.10", "8.8.8.8")
    assert e.errno == errno.ENETUNREACH and getattr(e, "reason", None) is None


@pytest.mark.parametrize("rtype,err", [("unreachable", errno.EHOSTUNREACH), ("prohibit", errno.EACCES),
                                       ("blackhole", errno.EINVAL)])
def test_input_forwarding_into_error_routes(rtype, err):
    ns = r1_with(routes=f"      - {rtype} 10.66.0.0/16\n")
    assert in_err(ns, "10.0.1.10", "10.66.0.1").errno == err


@pytest.mark.parametrize("src", ["224.0.0.1", "239.1.2.3", "255.255.255.255"])
def test_martian_multicast_or_broadcast_source(src):
    for dst in ("10.0.1.10", "255.255.255.255"):
        e = in_err(default_ns("h1"), src, dst)
        assert (e.errno, e.reason) == (errno.EINVAL, "IP_INVALID_SOURCE")


@pytest.mark.parametrize("src", ["0.0.0.0", "0.1.2.3"])
def test_martian_zeronet_source(src):
    e = in_err(default_ns("h1"), src, "10.0.1.10")
    assert e.reason == "IP_INVALID_SOURCE"


def test_martian_zeronet_destination():
    assert in_err(default_ns("r1"), "10.0.1.10", "0.1.2.3").reason == "IP_INVALID_DEST"


def test_martian_multicast_destination_when_forwarding():
    assert in_err(default_ns("r1"), "10.0.1.10", "239.1.2.3").reason == "IP_INVALID_DEST"


@pytest.mark.parametrize("src,dst", [("10.0.1.1", "127.0.0.1"), ("127.0.0.1", "10.0.1.10"),
                                     ("127.0.0.1", "127.0.0.1"), ("10.0.1.1", "127.1.2.3")])
def test_martian_loopback_on_a_non_loopback_device(src, dst):
    e = in_err(default_ns("h1"), src, dst, ifindex=2)
    assert (e.errno, e.reason) == (errno.EINVAL, "IP_LOCALNET")


@pytest.mark.parametrize("src,dst", [("10.0.1.10", "10.0.1.10"), ("10.0.1.10", "10.0.1.255"),
                                     ("127.0.0.1", "10.0.1.10")])
def test_martian_own_address_as_source(src, dst):
    e = in_err(default_ns("h1"), src, dst)
    assert e.reason in ("IP_LOCAL_SOURCE", "IP_LOCALNET")
    if not src.startswith("127."):
        assert e.reason == "IP_LOCAL_SOURCE"


def test_martian_router_own_other_address_as_source():
    e = in_err(default_ns("r1"), "10.0.2.1", "10.0.1.1", ifindex=2)
    assert e.reason == "IP_LOCAL_SOURCE"


def test_martian_own_address_as_source_of_a_limited_broadcast():
    # ip_route_input_slow(): 255.255.255.255 goes to brd_input, which runs
    # fib_validate_source() for any non-zero source -> IP_LOCAL_SOURCE.
    e = in_err(default_ns("h1"), "10.0.1.10", "255.255.255.255")
    assert e.reason == "IP_LOCAL_SOURCE"


def test_martian_own_address_as_source_of_a_forwarded_packet():
    # __mkroute_input() calls fib_validate_source() too; its fast path returns
    # -EINVAL (IP_LOCAL_SOURCE) when inet_lookup_ifaddr_rcu(net, src) finds the source.
    e = in_err(default_ns("r1"), "10.0.2.1", "10.0.2.10", ifindex=2)
    assert e.reason == "IP_LOCAL_SOURCE"


def test_accept_local_all_allows_own_source():
    ns = h1_with(sysctls="      net.ipv4.conf.all.accept_local: 1\n")
    assert ip_route_input(ns, iph("10.0.1.10", "10.0.1.10"), 2) == (LOCAL, None)


def test_accept_local_on_the_input_device_allows_own_source():
    # IN_DEV_ACCEPT_LOCAL(idev) is IN_DEV_ORCONF(idev, ACCEPT_LOCAL): all OR the device's own
    ns = h1_with(sysctls="      net.ipv4.conf.eth0.accept_local: 1\n")
    assert ip_route_input(ns, iph("10.0.1.10", "10.0.1.10"), 2) == (LOCAL, None)


def test_forwarding_enabled_by_conf_all_forwarding():
    # net.ipv4.conf.all.forwarding is the same switch as net.ipv4.ip_forward
    # (devinet_sysctl_forward() propagates it to every device).
    ns = r1_with(sysctls="      net.ipv4.conf.all.forwarding: 1\n")
    kind, rt = ip_route_input(ns, iph("10.0.1.10", "10.0.2.10"), 2)
    assert kind == FORWARD and rt.oif == 3


def test_forwarding_disabled_on_the_input_device():
    # ip_route_input_slow() checks IN_DEV_FORWARD(in_dev), the input device's
    # conf.<dev>.forwarding; ip_forward=1 then conf.eth0.forwarding=0 leaves eth0 off.
    ns = r1_with(sysctls="      net.ipv4.ip_forward: 1\n      net.ipv4.conf.eth0.forwarding: 0\n")
    assert in_err(ns, "10.0.1.10", "10.0.2.10", ifindex=2).errno == errno.EHOSTUNREACH


def test_forwarding_disabled_on_another_device_still_forwards():
    ns = r1_with(sysctls="      net.ipv4.ip_forward: 1\n      net.ipv4.conf.eth0.forwarding: 0\n")
    kind, rt = ip_route_input(ns, iph("10.0.2.10", "10.0.1.10"), 3)
    assert kind == FORWARD and rt.oif == 2


# ================================================================ IpNetns

def test_netns_devices_and_sysctls():
    ns = default_ns("r1")
    assert ns.name == "r1"
    assert sorted(ns.devices) == [1, 2, 3]
    assert [ns.ifname(i) for i in (1, 2, 3, 9)] == ["lo", "eth0", "eth1", "if9"]
    assert ns.devices[1].loopback and not ns.devices[2].loopback
    assert ns.by_name["eth1"].addrs == [(A("10.0.2.1"), 24)]
    assert ns.forwarding and not default_ns("h1").forwarding
    assert ns.default_ttl == 64
    assert ns.sysctl == sysctl.defaults() | {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}


def test_netns_select_addr():
    ns = one_host("      eth0: {addresses: [10.0.1.10/24, 192.168.7.10/24]}\n      eth1: {}\n")
    assert ns.select_addr(2, A("192.168.7.1")) == A("192.168.7.10")
    assert ns.select_addr(2, A("8.8.8.8")) == A("10.0.1.10")          # first address
    assert ns.select_addr(3, A("8.8.8.8")) == A("10.0.1.10")          # none on eth1: any non-loopback
    assert ns.select_addr(9, A("8.8.8.8")) == A("10.0.1.10")


def test_ident_is_consecutive_from_a_random_start():
    ns = default_ns("h1")
    start = random.Random(1).getrandbits(16)
    key = (A("10.0.1.10"), A("10.0.2.10"), 17)
    assert [ns.ident(*key) for _ in range(4)] == [start, start + 1, start + 2, start + 3]


def test_ident_per_flow_key():
    ns = default_ns("h1")
    a = [ns.ident(A("10.0.1.10"), A("10.0.2.10"), 17) for _ in range(3)]
    b = [ns.ident(A("10.0.1.10"), A("10.0.2.10"), 1) for _ in range(2)]
    c = ns.ident(A("10.0.1.10"), A("10.0.2.11"), 17)
    assert a[1] == a[0] + 1 and a[2] == a[0] + 2
    assert b[1] == (b[0] + 1) & 0xFFFF
    assert ns.ident(A("10.0.1.10"), A("10.0.2.10"), 17) == (a[2] + 1) & 0xFFFF
    assert c is not None and ns.ident(A("10.0.1.10"), A("10.0.2.11"), 17) == (c + 1) & 0xFFFF


def test_ident_wraps_at_16_bits():
    class Rng:
        def getrandbits(self, n):
            assert n == 16
            return 0xFFFE
    host = topology.load().hosts["h1"]
    ns = IpNetns(host, Rng())
    assert [ns.ident(1, 2, 6) for _ in range(4)] == [0xFFFE, 0xFFFF, 0, 1]


# ================================================================ ICMP rate limits

def limits(**over) -> RateLimits:
    s = sysctl.defaults()
    s.update({f"net.ipv4.{k}": v for k, v in over.items()})
    return RateLimits(s)


@pytest.mark.parametrize("type_,code,limited", [
    (3, 0, True), (3, 1, True), (3, 3, True), (3, 13, True), (3, 4, False),
    (4, 0, True), (11, 0, True), (11, 1, True), (12, 0, True),
    (0, 0, False), (8, 0, False), (5, 0, False), (13, 0, False), (14, 0, False)])
def test_limited_types(type_, code, limited):
    assert RateLimits.limited_type(type_, code) is limited


def test_peer_burst_of_six_then_refused():
    rl = limits()
    d = A("10.0.2.10")
    t = 5 * S
    assert [rl.peer_allow(d, t) for _ in range(6)] == [True] * 6
    assert rl.peer_allow(d, t) is False
    assert rl.peer_allow(d, t + 999 * MS) is False


def test_peer_refills_one_per_ratelimit():
    rl = limits()
    d = A("10.0.2.10")
    t = 5 * S
    for _ in range(6):
        rl.peer_allow(d, t)
    assert rl.peer_allow(d, t + 1000 * MS) is True
    assert rl.peer_allow(d, t + 1000 * MS) is False
    assert rl.peer_allow(d, t + 1500 * MS) is False
    assert rl.peer_allow(d, t + 2000 * MS) is True
    # 3 s later: three tokens
    assert [rl.peer_allow(d, t + 5000 * MS) for _ in range(4)] == [True, True, True, False]


def test_peer_bucket_caps_at_the_burst():
    rl = limits()
    d = A("10.0.2.10")
    for _ in range(6):
        rl.peer_allow(d, 0)
    assert [rl.peer_allow(d, 3600 * S) for _ in range(7)] == [True] * 6 + [False]


def test_peer_buckets_are_per_destination():
    rl = limits()
    for _ in range(6):
        rl.peer_allow(A("10.0.2.10"), 0)
    assert rl.peer_allow(A("10.0.2.10"), 0) is False
    assert rl.peer_allow(A("10.0.2.11"), 0) is True


def test_peer_ratelimit_setting():
    rl = limits(icmp_ratelimit=250)
    d = A("10.0.2.10")
    for _ in range(6):
        assert rl.peer_allow(d, 0)
    assert not rl.peer_allow(d, 0)
    assert not rl.peer_allow(d, 249 * MS)
    assert rl.peer_allow(d, 250 * MS)


def test_peer_ratelimit_zero_disables():
    rl = limits(icmp_ratelimit=0)
    assert all(rl.peer_allow(A("10.0.2.10"), 0) for _ in range(1000))


def test_global_burst_then_refused():
    rl = limits()
    t = 7 * S
    assert sum(rl.global_allow(t) for _ in range(60)) == 50
    assert rl.global_allow(t + 19 * MS) is False          # refills only after HZ/50


def test_global_refills_with_time():
    rl = limits()
    t = 7 * S
    for _ in range(50):
        rl.global_allow(t)
    assert rl.global_allow(t) is False
    # 20 ms at 1000/s: 20 more messages
    assert sum(rl.global_allow(t + 20 * MS) for _ in range(30)) == 20
    # a long pause refills to the burst, not beyond
    assert sum(rl.global_allow(t + 60 * S) for _ in range(100)) == 50


def test_global_settings():
    rl = limits(icmp_msgs_per_sec=100, icmp_msgs_burst=5)
    assert sum(rl.global_allow(0) for _ in range(10)) == 5
    assert sum(rl.global_allow(50 * MS) for _ in range(10)) == 5          # 100/s * 50 ms = 5


def test_global_low_rate_still_refills_when_polled_often():
    # icmp_global_allow() moves icmp_global.stamp only when it grants credit
    # (incr != 0), so time keeps accumulating between calls: at 10/s a caller
    # polling every 50 ms gets a message after 100 ms.
    rl = limits(icmp_msgs_per_sec=10, icmp_msgs_burst=1)
    assert rl.global_allow(0) is True
    granted = [rl.global_allow(k * 50 * MS) for k in range(1, 21)]     # 50 ms .. 1 s
    assert any(granted)
