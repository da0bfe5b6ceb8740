"""The IPv6 FIB (services/ip/ip6_fib.py): the routes Linux makes for addresses,
`ip -6 route add`'s checks, lookups, and `ip -6 route` / `ip -6 addr` output.

The expected outputs were recorded from Linux 6.18 with iproute2 6.1 in
network namespaces on this machine (tests/data/ip6/, its README says how): the
default topology built as ../shared/captures/linux/record6.sh builds it, then
the changes each test names, made with `ip -6 addr|route` and `sysctl -w`.
The kernel lists routes of one prefix and metric in the order they were made;
where devices came up together that order followed linkwatch's timing, and the
tests add them in the order Linux did.
"""
import errno
import pathlib

import pytest
from pktflow.services.common import topology
from pktflow.services.ip import fib as fibmod, ip6_fib
from pktflow.services.ip.fib_rules import TABLE_LOCAL, TABLE_MAIN
from pktflow.services.ip.ip6_fib import Fib6Error, Ip6Fib
from pktflow.services.wire import ipv6

A6 = ipv6.aton
LO, ETH0, ETH1 = 1, 2, 3

DATA = pathlib.Path(__file__).parent.parent / "data" / "ip6"          # what Linux printed (README.md there)


def linux(name: str) -> str:
    return (DATA / name).read_text()


def linux_addr_lines(host: str, dev: str) -> list[str]:
    """The address lines of one device in a recorded `ip -6 addr` (the device's own line is the link layer's)."""
    out, mine = [], False
    for line in linux(f"{host}.ip-6-addr.txt").splitlines():
        if not line.startswith(" "):
            mine = line.split(": ")[1].split("@")[0] == dev
        elif mine:
            out.append(line)
    return out


def text(lines) -> str:
    return "".join(line + "\n" for line in lines)


def default_host(name: str) -> topology.Host:
    return topology.load().hosts[name]


def default_fib(name: str) -> tuple[Ip6Fib, callable]:
    h = default_host(name)
    return ip6_fib.build(h), lambda i: h.interface(i).name


# ------------------------------------------------------------ the default topology against Linux

@pytest.mark.parametrize("host", ["h1", "r1", "h2"])
def test_default_topology_routes_as_linux_lists_them(host):
    fib, ifname = default_fib(host)
    recorded = linux(f"{host}.ip-6-route-show-table-all.txt")
    assert text(fib.show(None, ifname)) == recorded
    lines = recorded.splitlines()
    assert fib.show(TABLE_MAIN, ifname) == [line for line in lines if " table " not in line]
    assert fib.show(TABLE_LOCAL, ifname) == [line.replace(" table local", "") for line in lines if " table " in line]


@pytest.mark.parametrize("host, dev", [("h1", "lo"), ("h1", "eth0"), ("r1", "eth0"), ("r1", "eth1"), ("h2", "eth0")])
def test_default_topology_addresses_as_linux_lists_them(host, dev):
    assert ip6_fib.addr_lines(default_host(host).interfaces[dev].addrs6) == linux_addr_lines(host, dev)


# ------------------------------------------------------------ ip -6 addr

def test_addr_lines_by_scope_then_newest_first():
    """eth0 and lo of h1 after `ip -6 addr add` of these, in this order (the link-local and ::1 were there)."""
    eth0 = [(A6("fe80::ff:fe00:10a"), 64), (A6("2001:db8:1::10"), 64), (A6("2001:db8:1::20"), 64),
            (A6("2001:db8:1::30"), 64), (A6("2001:db8:5::5"), 128), (A6("2001:db8:6::6"), 127),
            (A6("fe80::1"), 64), (A6("fd00::1"), 64), (A6("fec0::1"), 64),
            (A6("2001:db8:8::1"), 48, ip6_fib.IFA_F_PERMANENT | ip6_fib.IFA_F_NODAD)]
    forever = "       valid_lft forever preferred_lft forever"
    assert ip6_fib.addr_lines(eth0)[::2] == [
        "    inet6 2001:db8:8::1/48 scope global nodad ",
        "    inet6 fd00::1/64 scope global ",
        "    inet6 2001:db8:6::6/127 scope global ",
        "    inet6 2001:db8:5::5/128 scope global ",
        "    inet6 2001:db8:1::30/64 scope global ",
        "    inet6 2001:db8:1::20/64 scope global ",
        "    inet6 2001:db8:1::10/64 scope global ",
        "    inet6 fec0::1/64 scope site ",
        "    inet6 fe80::1/64 scope link ",
        "    inet6 fe80::ff:fe00:10a/64 scope link "]
    assert set(ip6_fib.addr_lines(eth0)[1::2]) == {forever}
    assert ip6_fib.addr_lines([(1, 128), (A6("2001:db8:7::1"), 64)])[::2] == [
        "    inet6 2001:db8:7::1/64 scope global ", "    inet6 ::1/128 scope host "]


def test_addr_lines_flags_in_iproute2_order():
    f = ip6_fib.IFA_F_TENTATIVE | ip6_fib.IFA_F_DADFAILED | ip6_fib.IFA_F_PERMANENT
    assert ip6_fib.addr_lines([(A6("2001:db8::1"), 64, f)])[0] == \
        "    inet6 2001:db8::1/64 scope global dadfailed tentative "
    assert ip6_fib.addr_lines([(A6("2001:db8::1"), 64, ip6_fib.IFA_F_TENTATIVE)])[0] == \
        "    inet6 2001:db8::1/64 scope global dynamic tentative "


# ------------------------------------------------------------ addresses make routes

def h1_fib() -> Ip6Fib:
    fib = Ip6Fib()
    fib.add_dev(LO, "lo", loopback=True)
    fib.add_ifaddr(LO, 1, 128, prefix_route=False)
    fib.add_dev(ETH0, "eth0")
    fib.add_ifaddr(ETH0, A6("fe80::ff:fe00:10a"), 64)
    fib.add_ifaddr(ETH0, A6("2001:db8:1::10"), 64)
    return fib


def names(i: int) -> str:
    return {LO: "lo", ETH0: "eth0", ETH1: "eth1"}.get(i, f"d{i}")


def test_addresses_and_their_routes_as_linux_makes_them():
    """h1 after the same `ip -6 addr add`s as test_addr_lines_by_scope_then_newest_first
    (2001:db8:7::1/64 on lo); one prefix route for several addresses in it, a /128 and
    a lo address get theirs too."""
    fib = h1_fib()
    for a, p in (("2001:db8:1::20", 64), ("2001:db8:1::30", 64), ("2001:db8:5::5", 128), ("2001:db8:6::6", 127),
                 ("fe80::1", 64), ("fd00::1", 64), ("fec0::1", 64), ("2001:db8:8::1", 48)):
        fib.add_ifaddr(ETH0, A6(a), p)
    fib.add_ifaddr(LO, A6("2001:db8:7::1"), 64)
    fib.route_add(fibmod.FibRoute(0, 0, gw=A6("2001:db8:1::1")))
    assert text(fib.show(TABLE_MAIN, names)) == """\
2001:db8:1::/64 dev eth0 proto kernel metric 256 pref medium
2001:db8:5::5 dev eth0 proto kernel metric 256 pref medium
2001:db8:6::6/127 dev eth0 proto kernel metric 256 pref medium
2001:db8:7::/64 dev lo proto kernel metric 256 pref medium
2001:db8:8::/48 dev eth0 proto kernel metric 256 pref medium
fd00::/64 dev eth0 proto kernel metric 256 pref medium
fe80::/64 dev eth0 proto kernel metric 256 pref medium
fec0::/64 dev eth0 proto kernel metric 256 pref medium
default via 2001:db8:1::1 dev eth0 metric 1024 pref medium
"""
    assert text(fib.show(TABLE_LOCAL, names)) == """\
local ::1 dev lo proto kernel metric 0 pref medium
local 2001:db8:1::10 dev eth0 proto kernel metric 0 pref medium
local 2001:db8:1::20 dev eth0 proto kernel metric 0 pref medium
local 2001:db8:1::30 dev eth0 proto kernel metric 0 pref medium
local 2001:db8:5::5 dev eth0 proto kernel metric 0 pref medium
local 2001:db8:6::6 dev eth0 proto kernel metric 0 pref medium
local 2001:db8:7::1 dev lo proto kernel metric 0 pref medium
local 2001:db8:8::1 dev eth0 proto kernel metric 0 pref medium
local fd00::1 dev eth0 proto kernel metric 0 pref medium
local fe80::1 dev eth0 proto kernel metric 0 pref medium
local fe80::ff:fe00:10a dev eth0 proto kernel metric 0 pref medium
local fec0::1 dev eth0 proto kernel metric 0 pref medium
multicast ff00::/8 dev eth0 proto kernel metric 256 pref medium
"""


def test_deleting_addresses():
    """A prefix route stays while an address of the device is in it (2001:db8:1::/64 after ::20 goes),
    goes with the last one (a /128's, fe80::/64 with the last link-local); the local route goes."""
    fib = h1_fib()
    fib.add_ifaddr(ETH0, A6("2001:db8:1::20"), 64)
    fib.add_ifaddr(ETH0, A6("2001:db8:5::5"), 128)
    left = [(A6("fe80::ff:fe00:10a"), 64), (A6("2001:db8:1::10"), 64)]
    fib.del_ifaddr(ETH0, A6("2001:db8:1::20"), 64, left + [(A6("2001:db8:5::5"), 128)])
    fib.del_ifaddr(ETH0, A6("2001:db8:5::5"), 128, left)
    recorded = linux("h1.ip-6-route-show-table-all.txt").splitlines()
    assert fib.show(None, names) == recorded[:2] + recorded[3:]      # h1 without its default route
    fib.del_ifaddr(ETH0, A6("fe80::ff:fe00:10a"), 64, left[1:])
    assert "fe80::/64 dev eth0 proto kernel metric 256 pref medium" not in fib.show(TABLE_MAIN, names)
    assert not fib.chk_addr(A6("fe80::ff:fe00:10a")) and fib.chk_addr(A6("2001:db8:1::10"))


def test_forwarding_joins_the_subnet_router_anycast_addresses():
    """`sysctl -w net.ipv6.conf.eth0.forwarding=1` on h2 with only its link-local: `anycast fe80::`;
    two addresses in one prefix share their anycast route; /127 and /128 have none (RFC 6164)."""
    fib = Ip6Fib()
    fib.add_dev(LO, "lo", loopback=True)
    fib.add_ifaddr(LO, 1, 128, prefix_route=False)
    fib.add_dev(ETH0, "eth0")
    fib.add_ifaddr(ETH0, A6("fe80::ff:fe00:20a"), 64)
    fib.set_forwarding(ETH0, [(A6("fe80::ff:fe00:20a"), 64)], True)
    assert text(fib.show(TABLE_LOCAL, names)) == """\
local ::1 dev lo proto kernel metric 0 pref medium
anycast fe80:: dev eth0 proto kernel metric 0 pref medium
local fe80::ff:fe00:20a dev eth0 proto kernel metric 0 pref medium
multicast ff00::/8 dev eth0 proto kernel metric 256 pref medium
"""
    for a, p in (("2001:db8:1::10", 64), ("2001:db8:1::30", 64), ("2001:db8:6::6", 127)):
        fib.add_ifaddr(ETH0, A6(a), p, forwarding=True)
    anycast = [line for line in fib.show(TABLE_LOCAL, names) if line.startswith("anycast")]
    assert anycast == ["anycast 2001:db8:1:: dev eth0 proto kernel metric 0 pref medium",
                       "anycast fe80:: dev eth0 proto kernel metric 0 pref medium"]
    fib.del_ifaddr(ETH0, A6("2001:db8:1::30"), 64, [(A6("2001:db8:1::10"), 64)], forwarding=True)
    assert fib.lookup(A6("2001:db8:1::")).type == ip6_fib.RTN_ANYCAST
    fib.del_ifaddr(ETH0, A6("2001:db8:1::10"), 64, [], forwarding=True)
    assert fib.lookup(A6("2001:db8:1::")) is None
    fib.set_forwarding(ETH0, [(A6("fe80::ff:fe00:20a"), 64)], False)
    assert not [line for line in fib.show(TABLE_LOCAL, names) if line.startswith("anycast")]


def test_link_down_takes_every_route_of_the_device():
    """`ip link set eth0 down` on h2 (keep_addr_on_down 0): only `local ::1 dev lo` is left."""
    fib, ifname = default_fib("h2")
    fib.ifdown(ETH0)
    assert fib.show(None, ifname) == ["local ::1 dev lo table local proto kernel metric 0 pref medium"]
    assert ETH0 in fib.devs
    fib.add_dev(ETH0, "eth0")                  # up again: addrconf makes the link-local again
    fib.add_ifaddr(ETH0, A6("fe80::ff:fe00:20a"), 64)
    assert text(fib.show(None, ifname)) == """\
fe80::/64 dev eth0 proto kernel metric 256 pref medium
local ::1 dev lo table local proto kernel metric 0 pref medium
local fe80::ff:fe00:20a dev eth0 table local proto kernel metric 0 pref medium
multicast ff00::/8 dev eth0 table local proto kernel metric 256 pref medium
"""


def test_tentative_address_has_its_prefix_route_but_no_local_route_until_dad_is_done():
    fib = h1_fib()
    fib.add_ifaddr(ETH0, A6("2001:db8:1::99"), 64, tentative=True)
    assert not fib.chk_addr(A6("2001:db8:1::99")) and fib.lookup(A6("2001:db8:1::99")).type == fibmod.RTN_UNICAST
    fib.addr_ready(ETH0, A6("2001:db8:1::99"), 64)
    assert fib.chk_addr(A6("2001:db8:1::99")) and fib.lookup(A6("2001:db8:1::99")).type == fibmod.RTN_LOCAL


# ------------------------------------------------------------ ip -6 route add

def r1_fib() -> Ip6Fib:
    """r1 as in the default topology, with veth pairs d0-d0p (5, 6) and d1-d1p (7, 8) up after it;
    each pair's peer got its link-local first there (linkwatch's order)."""
    fib, _ = default_fib("r1")
    for i, name in ((6, "d0p"), (5, "d0"), (8, "d1p"), (7, "d1")):
        fib.add_dev(i, name)
        fib.add_ifaddr(i, ipv6.link_local(bytes((2, 0, 0, 0, i, 1))), 64, forwarding=True)
    return fib


R1_NAMES = {LO: "lo", ETH0: "eth0", ETH1: "eth1", 5: "d0", 6: "d0p", 7: "d1", 8: "d1p"}


def add(fib: Ip6Fib, words: str) -> fibmod.FibRoute:
    """The few words of `ip -6 route add` these tests use, as FibRoute."""
    w = words.split()
    rtype = fibmod.TYPE_BY_NAME[w.pop(0)] if w[0] in ("unreachable", "blackhole", "prohibit") else fibmod.RTN_UNICAST
    dst, plen = (0, 0) if w[0] == "default" else ipv6.parse_prefix(w[0])
    kv = dict(zip(w[1::2], w[2::2]))
    dev = {v: k for k, v in R1_NAMES.items()}.get(kv.get("dev"), 0)
    return fib.route_add(fibmod.FibRoute(dst, plen, rtype, dev, A6(kv["via"]) if "via" in kv else 0,
                                         A6(kv["src"]) if "src" in kv else 0, int(kv.get("metric", 0))))


# Run one after another on Linux's r1 (the refused ones change nothing); then `ip -6 route`.
R1_ADDS = [
    ("unreachable 2001:db8:66::/48", None), ("blackhole 2001:db8:67::/48", None), ("prohibit 2001:db8:68::/48", None),
    ("2001:db8:69::/48 via fe80::1 dev eth0", None),
    ("2001:db8:6a::/48 via 2001:db8:1::5 src 2001:db8:2::1", None),
    ("2001:db8::/32 via 2001:db8:1::5", None),
    ("2001:db8:9::/64 dev d0", None),
    ("2001:db8:9::/64 dev d1", "RTNETLINK answers: File exists"),
    ("2001:db8:9::/64 dev d1 metric 10", None), ("2001:db8:9::/64 dev d0 metric 2000", None),
    ("2001:db8:ffff:ffff::/64 dev d0", None), ("2000::/3 dev d1", None), ("2001:db8:1::77 dev d1", None),
    ("2001:db8:70::/48 via 2001:db8:9::5", None),                     # through the metric-10 route: d1
    ("2001:db8:71::/48 via 2001:db8:6a::5", "RTNETLINK answers: No route to host"),   # a route with a gateway
    ("2001:db8:72::/48 via 2001:db8:1::5 dev eth1", "RTNETLINK answers: No route to host"),
    ("2001:db8:73::/48 via 2001:db8:2::1", "Error: Gateway can not be a local address."),
    ("2001:db8:74::/48 via ::1", "Error: Egress device can not be loopback device for this route."),
    ("2001:db8:75::/48 via fe80::9 dev eth1", None),
    ("2001:db8:76::/48 via ff02::1 dev eth1", "Error: Invalid gateway address."),
    ("2001:db8:78::/48 via 2001:db8:1::5 dev eth0 metric 0", None),
    ("2001:db8:79::/48 dev lo", None),
    ("unreachable 2001:db8:80::/48 via 2001:db8:1::5", None),
    ("2001:db8:81::5/48 dev eth0", None),
    ("default via 2001:db8:1::5 src fe80::ff:fe00:101", None),
    ("2001:db8:82::/48 via 2001:db8:1::1", "Error: Gateway can not be a local address."),
    ("2001:db8:84::/48 dev eth0 src 2001:db8:2::1", None),
    ("default dev eth0", "RTNETLINK answers: File exists"),
    ("2001:db8:6b::/48 via 2001:db8:5::5", "RTNETLINK answers: No route to host"),
    ("2001:db8:6b::/48 via fe80::5", "Error: Egress device not specified."),
    ("2001:db8:6b::/48 via 2001:db8:1::5 src 2001:db8:7::1", "Error: Invalid source address."),
    ("2001:db8:97::/48 via 2001:db8:1::", None),                     # r1's own anycast address: not local
]


def test_ip6_route_add_as_linux_takes_and_refuses():
    fib = r1_fib()
    for words, refusal in R1_ADDS:
        before = fib.show(None, R1_NAMES.get)
        if refusal is None:
            add(fib, words)
        else:
            with pytest.raises(Fib6Error) as e:
                add(fib, words)
            assert str(e.value) == refusal, words
            assert fib.show(None, R1_NAMES.get) == before
    assert text(fib.show(TABLE_MAIN, R1_NAMES.get)) == linux("r1-after-route-adds.ip-6-route.txt")


def test_route_add_errnos_and_a_device_without_ipv6():
    fib = r1_fib()
    cases = {"2001:db8:71::/48 via 2001:db8:5::5": errno.EHOSTUNREACH, "2001:db8:9::/64 via fe80::1": errno.EINVAL,
             "default dev eth0 metric 256": None, "default dev eth1 metric 256": errno.EEXIST}
    for words, err in cases.items():
        if err is None:
            add(fib, words)
            continue
        with pytest.raises(Fib6Error) as e:
            add(fib, words)
        assert e.value.errno == err
    with pytest.raises(Fib6Error, match=r"^Error: IPv6 is disabled on nexthop device\.$"):
        fib.route_add(fibmod.FibRoute(A6("2001:db8:9::"), 48, dev=9))
    with pytest.raises(Fib6Error, match="No such device"):
        fib.route_add(fibmod.FibRoute(A6("2001:db8:9::"), 48))


# ------------------------------------------------------------ lookups

def test_lookup_local_table_first_then_longest_prefix_then_metric():
    """Each as `ip -6 route get` answered on Linux's r1 after R1_ADDS."""
    fib = r1_fib()
    for words, refusal in R1_ADDS:
        if refusal is None:
            add(fib, words)
    def look(dst, oif=0, src="::"):
        r = fib.lookup(A6(dst), oif, A6(src))
        return r and (fibmod.RTN_NAMES.get(r.type) or ip6_fib.NAMES6[r.type], r.plen, R1_NAMES.get(r.dev), r.metric)
    assert look("2001:db8:1::1") == ("local", 128, "eth0", 0)
    assert look("2001:db8:1::") == ("anycast", 128, "eth0", 0)
    assert look("ff02::1") == ("multicast", 8, "eth0", 256)
    assert look("ff02::1", ETH1) == ("multicast", 8, "eth1", 256)          # strict: the route through oif
    assert look("2001:db8:1::77") == ("unicast", 128, "d1", 1024)
    assert look("2001:db8:1::78") == ("unicast", 64, "eth0", 256)
    assert look("2001:db8:9::1") == ("unicast", 64, "d1", 10)              # lowest metric
    # an oif without a source is strict (`ip -6 route get 2001:db8:9::1 oif d0`): a worse metric through d0,
    # or none at that prefix through eth0: the walk backs up to 2001:db8::/32
    assert look("2001:db8:9::1", 5) == ("unicast", 64, "d0", 1024)
    assert look("2001:db8:9::1", ETH0) == ("unicast", 32, "eth0", 1024)
    # with a source it only breaks ties (`... oif d0 from 2001:db8:1::1`: d1, metric 10)
    assert look("2001:db8:9::1", 5, "2001:db8:1::1") == ("unicast", 64, "d1", 10)
    assert fib.lookup(A6("2001:db8:9::1"), 5, A6("2001:db8:1::1"), strict=True).dev == 5
    assert look("2001:db8:66::1") == ("unreachable", 48, "lo", 1024)
    assert look("2001:db9::1") == ("unicast", 3, "d1", 1024)
    assert look("4001::1") == ("unicast", 0, "eth0", 1024)
    assert look("fe80::1") == ("unicast", 64, "eth0", 256)
    assert look("fe80::1", 7) == ("unicast", 64, "d1", 256)
    assert ip6_fib.ROUTE_ERRNO[fib.lookup(A6("2001:db8:68::1")).type] == errno.EACCES


def test_lookup_without_a_route_and_the_cache_follows_changes():
    fib, _ = default_fib("r1")
    assert fib.lookup(A6("2001:db8:3::5")) is None           # r1 has no default: ENETUNREACH (ipv6-no-route)
    genid = fib.genid
    fib.route_add(fibmod.FibRoute(A6("2001:db8:3::"), 64, gw=A6("2001:db8:2::10")))
    assert fib.genid > genid and fib.lookup(A6("2001:db8:3::5")).gw == A6("2001:db8:2::10")
    assert fib.lookup(A6("2001:db8:3::5")).dev == ETH1


def test_build_follows_forwarding_per_device():
    h = topology.loads("""\
hosts:
  r:
    interfaces:
      eth0: {mac: "02:00:00:00:01:01", addresses: [2001:db8:1::1/64]}
      eth1: {mac: "02:00:00:00:02:01", addresses: [2001:db8:2::1/64]}
    sysctls:
      net.ipv6.conf.eth1.forwarding: 1
""").hosts["r"]
    fib = ip6_fib.build(h)
    anycast = [r.dev for r in fib.local.routes() if r.type == ip6_fib.RTN_ANYCAST]
    assert anycast == [ETH1, ETH1]                           # 2001:db8:2:: and fe80::, eth1's only


# ------------------------------------------------------------ the shared table

def test_table_is_one_structure_for_both_widths():
    t4, t6 = fibmod.Table(), ip6_fib.Table6()
    t4.add(fibmod.FibRoute(0x0A000000, 8))
    t6.add(fibmod.FibRoute(A6("2001:db8::"), 32))
    assert t4.lookup(0x0A010203).plen == 8 and t4.lookup(0x0B000000) is None
    assert t6.lookup(A6("2001:db8:ffff::1")).plen == 32 and t6.lookup(A6("2001:db9::")) is None
    assert t6.lookup(0x0A000000) is None                     # 128 bits: an IPv4 number is ::a00:0
