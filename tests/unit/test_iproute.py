"""`ip route` and `ip rule` on a namespace at run time, with iproute2 6.1's
words, output and the kernel's answers (captured in a namespace here), and
policy routing as fib_lookup() does it: rules by priority, tables, fwmark,
iif/oif, blackhole/unreachable/prohibit; ECMP nexthops by weight."""
import errno
import random
from collections import Counter

import pytest

from pktflow.services.common import topology
from pktflow.services.ip import iproute, route
from pktflow.services.ip.netns import IpNetns
from pktflow.services.wire import ipv4


def r1() -> IpNetns:
    return IpNetns(topology.load().hosts["r1"], random.Random(1))


def ip(ns, obj, *words):
    return (iproute.ip_route if obj == "route" else iproute.ip_rule)(ns, list(words))


def ok(ns, obj, *words):
    status, out, err = ip(ns, obj, *words)
    assert status == 0, err
    return out


def test_route_add_show_replace_append_del_as_iproute2():
    ns = r1()
    ok(ns, "route", "add", "10.50.0.0/16", "via", "10.0.1.10", "table", "100")
    assert ip(ns, "route", "add", "10.50.0.0/16", "via", "10.0.1.10", "table", "100") == (
        2, "", "RTNETLINK answers: File exists\n")
    ok(ns, "route", "replace", "10.50.0.0/16", "via", "10.0.2.10", "table", "100")
    assert ok(ns, "route", "show", "table", "100") == "10.50.0.0/16 via 10.0.2.10 dev eth1\n"
    ok(ns, "route", "add", "10.70.0.0/16", "dev", "eth0", "metric", "5")
    assert ip(ns, "route", "add", "10.70.0.0/16", "dev", "eth1", "metric", "5")[2] == "RTNETLINK answers: File exists\n"
    ok(ns, "route", "append", "10.70.0.0/16", "dev", "eth1", "metric", "5")
    ok(ns, "route", "add", "10.60.0.0/16", "nexthop", "via", "10.0.1.10", "weight", "1", "nexthop", "via", "10.0.2.10",
       "weight", "3")
    ok(ns, "route", "add", "unreachable", "10.80.0.0/16", "table", "100")
    assert ok(ns, "route") == ("10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.1\n"
                               "10.0.2.0/24 dev eth1 proto kernel scope link src 10.0.2.1\n"
                               "10.60.0.0/16\n\tnexthop via 10.0.1.10 dev eth0 weight 1\n"
                               "\tnexthop via 10.0.2.10 dev eth1 weight 3\n"
                               "10.70.0.0/16 dev eth0 scope link metric 5\n"
                               "10.70.0.0/16 dev eth1 scope link metric 5\n")
    assert "unreachable 10.80.0.0/16 table 100\n" in ok(ns, "route", "show", "table", "all")
    assert ip(ns, "route", "del", "10.70.0.0/16", "metric", "6") == (2, "", "RTNETLINK answers: No such process\n")
    ok(ns, "route", "del", "10.70.0.0/16")
    assert "10.70.0.0/16 dev eth1 scope link metric 5\n" in ok(ns, "route")
    ok(ns, "route", "del", "10.60.0.0/16", "via", "10.0.1.10")        # one nexthop names the whole route
    assert "10.60.0.0/16" not in ok(ns, "route")


@pytest.mark.parametrize("words, status, err", [
    (["add", "10.51.0.0/16", "via", "10.7.1.2"], 2, "Error: Nexthop has invalid gateway."),
    (["add", "10.51.0.0/16", "via", "10.0.1.10", "dev", "eth1"], 2, "Error: Nexthop has invalid gateway."),
    (["add", "10.51.0.0/16", "via", "10.0.1.10", "dev", "x"], 1, 'Cannot find device "x"'),
    (["add", "foo", "via", "10.0.1.10"], 1, 'Error: any valid prefix is expected rather than "foo".'),
    (["add", "10.51.1.0/16", "dev", "eth0"], 2, "Error: Invalid prefix for given prefix length."),
    (["add", "10.51.0.0/16", "via", "10.0.1.10", "src", "10.9.9.9"], 2, "Error: Invalid prefsrc address."),
    (["del", "10.52.0.0/16"], 2, "RTNETLINK answers: No such process"),
    (["show", "table", "999"], 2, "Error: ipv4: FIB table does not exist.\nDump terminated"),
])
def test_route_errors_as_iproute2(words, status, err):
    ns = r1()
    before = ok(ns, "route", "show", "table", "all")
    assert ip(ns, "route", *words) == (status, "", err + "\n")
    assert ok(ns, "route", "show", "table", "all") == before                 # nothing changed


def test_rules_as_iproute2_prints_them():
    ns = r1()
    assert ok(ns, "rule") == ("0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
                              "32767:\tfrom all lookup default\n")
    ok(ns, "rule", "add", "from", "10.0.1.0/24", "table", "100")
    ok(ns, "rule", "add", "fwmark", "0x1", "lookup", "100")
    ok(ns, "rule", "add", "not", "to", "10.0.0.0/8", "iif", "a", "prohibit")
    ok(ns, "rule", "add", "fwmark", "0x10/0xf0", "oif", "eth1", "priority", "500", "blackhole")
    assert ok(ns, "rule") == ("0:\tfrom all lookup local\n"
                              "500:\tfrom all fwmark 0x10/0xf0 oif eth1 blackhole\n"
                              "32763:\tnot from all to 10.0.0.0/8 iif a [detached] prohibit\n"
                              "32764:\tfrom all fwmark 0x1 lookup 100\n"
                              "32765:\tfrom 10.0.1.0/24 lookup 100\n"
                              "32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n")
    ok(ns, "rule", "del", "priority", "500")
    assert ip(ns, "rule", "del", "priority", "4000") == (2, "", "RTNETLINK answers: No such file or directory\n")
    ok(ns, "rule", "del", "fwmark", "0x1", "lookup", "100")
    assert "fwmark" not in ok(ns, "rule")


def test_policy_routing_by_source_mark_and_interface():
    ns = r1()
    ok(ns, "route", "add", "default", "via", "10.0.2.10", "table", "100")
    ok(ns, "route", "add", "default", "via", "10.0.1.10", "table", "200")
    far = ipv4.aton("192.0.2.1")
    with pytest.raises(route.RouteError) as e:
        route.ip_route_output(ns, far)                        # main has no default
    assert e.value.errno == errno.ENETUNREACH
    ok(ns, "rule", "add", "from", "10.0.2.1", "lookup", "100")
    ok(ns, "rule", "add", "fwmark", "7", "lookup", "200")
    assert route.ip_route_output(ns, far, ipv4.aton("10.0.2.1")).nexthop == ipv4.aton("10.0.2.10")
    assert route.ip_route_output(ns, far, mark=7).nexthop == ipv4.aton("10.0.1.10")
    ok(ns, "rule", "add", "fwmark", "8", "unreachable")
    ok(ns, "rule", "add", "fwmark", "9", "prohibit")
    for mark, err in ((8, errno.ENETUNREACH), (9, errno.EACCES)):     # fib4_rule_action()'s answers
        with pytest.raises(route.RouteError) as e:
            route.ip_route_output(ns, far, mark=mark)
        assert e.value.errno == err
    ok(ns, "rule", "add", "iif", "eth0", "lookup", "100")              # what h1 sends goes to table 100
    iph = ipv4.parse(ipv4.header(ipv4.aton("10.0.1.10"), far, 17, 8) + bytes(8))
    kind, rt = route.ip_route_input(ns, iph, ns.by_name["eth0"].ifindex)
    assert (kind, rt.nexthop) == (route.FORWARD, ipv4.aton("10.0.2.10"))


def test_ecmp_spreads_flows_by_weight_and_keeps_each_flow_on_one_path():
    ns = r1()
    ok(ns, "route", "add", "10.60.0.0/16", "nexthop", "via", "10.0.1.10", "weight", "1",
       "nexthop", "via", "10.0.2.10", "weight", "3")
    paths = Counter(route.ip_route_output(ns, ipv4.aton("10.60.0.0") + i).oif for i in range(4000))
    assert 0.2 < paths[2] / 4000 < 0.3 and 0.7 < paths[3] / 4000 < 0.8
    one = ipv4.aton("10.60.1.2")
    assert len({route.ip_route_output(ns, one).oif for _ in range(10)}) == 1


def test_addresses_and_links_change_the_routes_as_the_kernel_does():
    ns = r1()
    ok_ = iproute.ip_addr
    assert ok_(ns, ["add", "10.0.1.1/24", "dev", "eth0"]) == (2, "", "Error: ipv4: Address already assigned.\n")
    assert ok_(ns, ["del", "10.0.7.7/24", "dev", "eth0"]) == (2, "", "Error: ipv4: Address not found.\n")
    assert ok_(ns, ["add", "10.0.9.9/33", "dev", "eth0"])[0] == 1
    assert ok_(ns, ["add", "10.0.3.1/24", "dev", "nope"]) == (1, "", 'Cannot find device "nope"\n')
    assert ok_(ns, ["add", "10.0.3.1/24", "dev", "eth0"])[0] == 0
    assert ok_(ns, ["add", "10.0.3.5/24", "dev", "eth0"])[0] == 0                # a secondary
    assert "10.0.3.0/24 dev eth0 proto kernel scope link src 10.0.3.1\n" in ok(ns, "route")
    assert ns.fib.is_local(ipv4.aton("10.0.3.5")) and ns.ifaddrs[ipv4.aton("10.0.3.5")] == 2
    ok_(ns, ["del", "10.0.3.1/24", "dev", "eth0"])                               # the primary takes its secondary
    assert "10.0.3." not in ok(ns, "route", "show", "table", "all")
    ok(ns, "route", "add", "10.50.0.0/16", "via", "10.0.1.10")
    link = iproute.ip_link_set
    assert link(ns, ["set", "dev", "eth0", "mtu", "60"]) == (2, "", "Error: mtu less than device minimum.\n")
    assert link(ns, ["set", "dev", "eth0", "mtu", "70000"]) == (2, "", "Error: mtu greater than device maximum.\n")
    assert link(ns, ["set", "dev", "eth0", "mtu", "1400"])[0] == 0
    assert route.ip_route_output(ns, ipv4.aton("10.0.1.10")).mtu == 1400
    assert link(ns, ["set", "dev", "eth0", "down"])[0] == 0
    assert ok(ns, "route") == "10.0.2.0/24 dev eth1 proto kernel scope link src 10.0.2.1\n"
    assert "local 10.0.1.1 dev eth0" in ok(ns, "route", "show", "table", "local")   # the local route stays
    with pytest.raises(route.RouteError):
        route.ip_route_output(ns, ipv4.aton("10.0.1.10"))
    assert link(ns, ["set", "dev", "eth0", "up"])[0] == 0
    assert ok(ns, "route") == ("10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.1\n"   # the static
                               "10.0.2.0/24 dev eth1 proto kernel scope link src 10.0.2.1\n")    # one is gone
