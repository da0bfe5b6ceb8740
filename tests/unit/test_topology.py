"""Unit tests of the topology file loader (services/common/topology.py) and
the sysctl vocabulary it validates against (services/common/sysctl.py).

The contract under test: a good file gives exactly the hosts, interfaces,
routes, sysctls and links it describes; a bad one is refused with
TopologyError "SOURCE:LINE: problem", LINE (1-based) pointing at the faulty
line. In the YAML snippets below the expected line carries a `# <--` marker.
"""
import re
import textwrap

import pytest
from pktflow.services.common import sysctl, topology
from pktflow.services.common.topology import TopologyError
from pktflow.services.wire import ethernet, ipv4, ipv6

SRC = "topo.yaml"
A = ipv4.aton
A6 = ipv6.aton


def mac(text: str) -> bytes:
    return ethernet.mac_from_str(text)


def load(text: str) -> topology.Topology:
    return topology.loads(textwrap.dedent(text), SRC)


def refused(text: str) -> tuple[int, str]:
    """Loads `text`, expects TopologyError "SRC:LINE: problem"; returns (LINE, problem)."""
    with pytest.raises(TopologyError) as ei:
        topology.loads(textwrap.dedent(text), SRC)
    msg = str(ei.value)
    m = re.fullmatch(rf"{re.escape(SRC)}:(\d+): (.+)", msg, re.DOTALL)
    assert m, f"not 'SOURCE:LINE: problem': {msg!r}"
    return int(m.group(1)), m.group(2)


def marked(text: str) -> int:
    """The 1-based line of `text` carrying the `# <--` marker."""
    lines = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if "# <--" in line]
    assert len(lines) == 1, "exactly one marker expected"
    return lines[0]


def assert_refused(text: str, *fragments: str) -> str:
    line, problem = refused(text)
    assert line == marked(text), f"line {line}, expected {marked(text)}: {problem}"
    for f in fragments:
        assert f in problem, f"{f!r} not in {problem!r}"
    return problem


# A valid two-host skeleton the error tests vary.
def two_hosts(h1_extra: str = "", h2_extra: str = "", links: str = "links:\n  - [h1:eth0, h2:eth0]\n") -> str:
    return ("hosts:\n"
            "  h1:\n"
            "    interfaces:\n"
            "      eth0: {mac: \"02:00:00:00:01:0a\", addresses: [10.0.1.10/24]}\n"
            + h1_extra +
            "  h2:\n"
            "    interfaces:\n"
            "      eth0: {mac: \"02:00:00:00:01:0b\", addresses: [10.0.1.11/24]}\n"
            + h2_extra + links)


# ------------------------------------------------------------ the default

def test_default_topology_path_is_the_packaged_file():
    p = topology.default_path()
    assert p.name == "default.yaml" and p.is_file()


def test_default_topology_hosts_and_order():
    t = topology.load()
    assert list(t.hosts) == ["h1", "r1", "h2"]
    assert t.source == str(topology.default_path())


@pytest.mark.parametrize("host", ["h1", "r1", "h2"])
def test_default_topology_every_host_has_lo_first(host):
    interfaces = topology.load().hosts[host].interfaces
    lo = interfaces["lo"]
    assert next(iter(interfaces)) == "lo"
    assert lo.ifindex == 1 and lo.is_loopback
    assert lo.addresses == [(A("127.0.0.1"), 8)]
    assert lo.mac == ethernet.ZERO
    assert lo.mtu == 65536
    assert lo.addrs6 == [(1, 128)]                 # ::1/128, no link-local on lo


def test_default_topology_h1():
    h1 = topology.load().hosts["h1"]
    assert list(h1.interfaces) == ["lo", "eth0"]
    eth0 = h1.interfaces["eth0"]
    assert (eth0.name, eth0.ifindex, eth0.mac, eth0.addresses, eth0.mtu, eth0.tap) == \
        ("eth0", 2, mac("02:00:00:00:01:0a"), [(A("10.0.1.10"), 24)], 1500, None)
    assert not eth0.is_loopback
    assert h1.routes == [topology.Route(dst=0, plen=0, type="unicast", via=A("10.0.1.1"), dev="eth0",
                                        src=0, metric=0)]
    assert h1.sysctls == {}
    assert h1.interface(2) is eth0 and h1.interface(1).name == "lo" and h1.interface(9) is None
    # dual-stacked as record6.sh builds it in Linux: the EUI-64 link-local first, then the file's
    assert eth0.addrs6 == [(A6("fe80::ff:fe00:10a"), 64), (A6("2001:db8:1::10"), 64)]
    assert h1.routes6 == [topology.Route(0, 0, "unicast", A6("2001:db8:1::1"), "eth0", 0, 1024)]
    assert h1.conf6["eth0"] == {"forwarding": 0, "disable_ipv6": 0, "accept_dad": 1, "dad_transmits": 1,
                                "hop_limit": 64, "mtu": 1500}


def test_default_topology_r1():
    r1 = topology.load().hosts["r1"]
    assert list(r1.interfaces) == ["lo", "eth0", "eth1"]
    e0, e1 = r1.interfaces["eth0"], r1.interfaces["eth1"]
    assert (e0.ifindex, e0.mac, e0.addresses, e0.mtu) == (2, mac("02:00:00:00:01:01"), [(A("10.0.1.1"), 24)], 1500)
    assert (e1.ifindex, e1.mac, e1.addresses, e1.mtu) == (3, mac("02:00:00:00:02:01"), [(A("10.0.2.1"), 24)], 1500)
    assert r1.routes == [] and r1.routes6 == []
    assert r1.sysctls == {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}
    assert e0.addrs6 == [(A6("fe80::ff:fe00:101"), 64), (A6("2001:db8:1::1"), 64)]
    assert e1.addrs6 == [(A6("fe80::ff:fe00:201"), 64), (A6("2001:db8:2::1"), 64)]
    assert all(r1.conf6[d]["forwarding"] == 1 for d in ("all", "default", "lo", "eth0", "eth1"))


def test_default_topology_h2():
    h2 = topology.load().hosts["h2"]
    eth0 = h2.interfaces["eth0"]
    assert (eth0.ifindex, eth0.mac, eth0.addresses, eth0.mtu) == (2, mac("02:00:00:00:02:0a"),
                                                                  [(A("10.0.2.10"), 24)], 1500)
    assert h2.routes == [topology.Route(0, 0, "unicast", A("10.0.2.1"), "eth0", 0, 0)]
    assert h2.sysctls == {}
    assert eth0.addrs6 == [(A6("fe80::ff:fe00:20a"), 64), (A6("2001:db8:2::10"), 64)]
    assert h2.routes6 == [topology.Route(0, 0, "unicast", A6("2001:db8:2::1"), "eth0", 0, 1024)]


def test_default_topology_links_and_peers():
    t = topology.load()
    assert [link.endpoints for link in t.links] == [[("h1", "eth0"), ("r1", "eth0")],
                                                    [("r1", "eth1"), ("h2", "eth0")]]
    assert all(link.netem is None for link in t.links)
    assert t.peers("h1", "eth0") == [("r1", "eth0")]
    assert t.peers("r1", "eth0") == [("h1", "eth0")]
    assert t.peers("r1", "eth1") == [("h2", "eth0")]
    assert t.peers("h2", "eth0") == [("r1", "eth1")]
    assert t.peers("h1", "lo") == []


def test_load_from_a_path_names_the_file_in_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("hosts:\n  h1:\n    bogus: 1\n")
    with pytest.raises(TopologyError, match=rf"^{re.escape(str(p))}:3: "):
        topology.load(p)


def test_load_from_a_path(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(two_hosts())
    t = topology.load(str(p))
    assert t.source == str(p) and list(t.hosts) == ["h1", "h2"]


def test_load_missing_file_is_refused(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        topology.load(tmp_path / "nope.yaml")


def test_loads_default_source_name():
    with pytest.raises(TopologyError, match=r"^<topology>:1: "):
        topology.loads("")


# ------------------------------------------------------------ file level

def test_not_yaml():
    assert_refused("""\
        hosts:
          h1:
            interfaces: {eth0: [}   # <--
        """, "not valid YAML")


def test_not_yaml_bad_indentation():
    assert_refused("""\
        hosts: x
         links: y   # <--
        """, "not valid YAML")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text):
    line, problem = refused(text)
    assert line == 1 and "empty" in problem


def test_top_level_must_be_a_mapping():
    line, problem = refused("- h1\n- h2\n")
    assert line == 1 and "must be a mapping" in problem


def test_unknown_top_level_key():
    text = two_hosts() + "switches: []   # <--\n"
    assert_refused(text, "unknown key 'switches'", "hosts", "links")


def test_missing_hosts():
    line, problem = refused("links: []\n")
    assert line == 1 and "no 'hosts:'" in problem


def test_missing_hosts_after_comments_names_the_first_key():
    assert_refused("""\
        # a comment
        links: []   # <--
        """, "no 'hosts:'")


def test_hosts_must_be_a_mapping():
    assert_refused("""\
        hosts:
          - h1   # <--
        """, "must be a mapping")


def test_links_are_optional():
    t = load("""\
        hosts:
          h1:
            interfaces:
              eth0: {addresses: [10.0.1.10/24]}
        """)
    assert t.links == [] and t.peers("h1", "eth0") == []


# ------------------------------------------------------------ hosts

def test_duplicate_host_name():
    assert_refused("""\
        hosts:
          h1:
            interfaces: {eth0: {addresses: [10.0.1.10/24]}}
          h1:   # <--
            interfaces: {eth0: {addresses: [10.0.1.11/24]}}
        """, "'h1' appears twice")


def test_duplicate_host_name_quoted_and_plain():
    assert_refused("""\
        hosts:
          h1: {}
          "h1": {}   # <--
        """, "appears twice")


@pytest.mark.parametrize("name", ["h/1", "h 1", "h:1", "h@1", "x" * 65])
def test_bad_host_name(name):
    problem = assert_refused(f"""\
        hosts:
          "{name}": {{}}   # <--
        """, "host name")
    assert "letters, digits" in problem


def test_good_host_names():
    t = load("""\
        hosts:
          a-b_c.d: {}
          H2: {}
        """)
    assert list(t.hosts) == ["a-b_c.d", "H2"]
    assert list(t.hosts["H2"].interfaces) == ["lo"]


def test_unknown_host_key():
    assert_refused("""\
        hosts:
          h1:
            interfaces: {eth0: {addresses: [10.0.1.10/24]}}
            adresses: [10.0.1.10/24]   # <--
        """, "unknown key 'adresses'")


# ------------------------------------------------------------ interfaces

def test_unknown_interface_key():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses: [10.0.1.10/24]
                duplex: full   # <--
        """, "unknown key 'duplex'", "mac", "addresses", "mtu", "speed")


def test_interface_named_lo():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              lo: {addresses: [127.0.0.2/8]}   # <--
        """, "lo is built in")


def test_interface_name_too_long():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0123456789ab: {}
              eth0123456789abc: {}   # <--
        """, "1 to 15 characters")


def test_interface_name_of_15_characters_is_accepted():
    t = load("hosts:\n  h1:\n    interfaces:\n      abcdefghijklmno: {}\n")
    assert t.hosts["h1"].interfaces["abcdefghijklmno"].ifindex == 2


@pytest.mark.parametrize("name", ["eth/0", " eth0"])
def test_interface_name_with_slash_or_leading_space(name):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              "{name}": {{}}   # <--
        """, "1 to 15 characters")


# dev_valid_name() (net/core/dev.c) refuses "", ".", "..", and any name containing
# '/', ':' or whitespace; the message itself promises "without '/' or spaces".
@pytest.mark.parametrize("name", ["eth 0", "eth\t0", "eth:0", ".", ".."])
def test_interface_name_refused_like_dev_valid_name(name):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              "{name}": {{}}   # <--
        """, "interface")


def test_interfaces_are_numbered_in_order():
    h = load("""\
        hosts:
          h1:
            interfaces:
              wan: {}
              eth7: {}
              a: {}
        """).hosts["h1"]
    assert [(i.name, i.ifindex) for i in h.interfaces.values()] == [("lo", 1), ("wan", 2), ("eth7", 3), ("a", 4)]


def test_interface_with_null_or_empty_body():
    h = load("""\
        hosts:
          h1:
            interfaces:
              eth0:
              eth1: {}
        """).hosts["h1"]
    for name in ("eth0", "eth1"):
        i = h.interfaces[name]
        assert i.addresses == [] and i.mtu == 1500 and i.mac == topology.auto_mac("h1", name)


def test_interface_body_must_be_a_mapping():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: 10.0.1.10/24   # <--
        """, "must be a mapping")


@pytest.mark.parametrize("bad", ["02:00:00:00:01", "02:00:00:00:01:0g", "0200.0000.010a", "02-00-00-00-01-0a",
                                 "02:00:00:00:01:0a:0b", "123:00:00:00:01:0a"])
def test_bad_mac(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses: [10.0.1.10/24]
                mac: "{bad}"   # <--
        """, "not a MAC address")


def test_mac_unquoted_is_read_as_text():
    # YAML 1.1 would read 02:00:00:00:01:10 as a sexagesimal number; the loader must not.
    h = load("hosts:\n  h1:\n    interfaces:\n      eth0: {mac: 02:00:00:00:01:10}\n").hosts["h1"]
    assert h.interfaces["eth0"].mac == bytes.fromhex("020000000110")


def test_mac_short_octets_and_upper_case():
    h = load('hosts:\n  h1:\n    interfaces:\n      eth0: {mac: "2:0:0:0:1:AB"}\n').hosts["h1"]
    assert h.interfaces["eth0"].mac == bytes.fromhex("0200000001ab")


@pytest.mark.parametrize("bad", ["01:00:5e:00:00:01", "03:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"])
def test_multicast_broadcast_or_zero_mac(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                mac: "{bad}"   # <--
        """, "not a unicast MAC address")


def test_duplicate_mac_across_hosts():
    problem = assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: {mac: "02:00:00:00:01:0a"}
          h2:
            interfaces:
              eth0: {mac: "02:00:00:00:01:0a"}   # <--
        """, "02:00:00:00:01:0a", "already used")
    assert "h1:eth0" in problem


def test_duplicate_mac_on_one_host():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: {mac: "02:00:00:00:01:0a"}
              eth1: {mac: "02:00:00:00:01:0A"}   # <--
        """, "already used by h1:eth0")


def test_duplicate_mac_names_the_mac_line_in_block_style():
    # The problem is the mac value; the error should point at it, not at the
    # interface's first key.
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: {mac: "02:00:00:00:01:0a"}
          h2:
            interfaces:
              eth0:
                addresses: [10.0.1.11/24]
                mtu: 1500
                mac: "02:00:00:00:01:0a"   # <--
        """, "already used by h1:eth0")


def test_address_without_prefix_length():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses:
                  - 10.0.1.10/24
                  - 10.0.3.10   # <--
        """, "'10.0.3.10' needs a prefix length")


@pytest.mark.parametrize("bad", ["10.0.1.300/24", "10.0.1/24", "10.0.1.1.1/24", "host/24"])
def test_bad_address(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses: ["{bad}"]   # <--
        """, "is not an IPv4 address")


@pytest.mark.parametrize("bad", ["10.0.1.10/33", "10.0.1.10/-1", "10.0.1.10/x", "10.0.1.10/99"])
def test_prefix_length_out_of_range(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses: ["{bad}"]   # <--
        """, "bad prefix length")


def test_address_listed_twice():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses:
                  - 10.0.1.10/24
                  - 10.0.1.10/24   # <--
        """, "listed twice")


def test_several_addresses_and_prefix_lengths():
    i = load("""\
        hosts:
          h1:
            interfaces:
              eth0: {addresses: [10.0.1.10/24, 192.168.7.1/30, 10.9.9.9/32, 172.16.0.1/31, 10.0.1.10/16]}
        """).hosts["h1"].interfaces["eth0"]
    assert i.addresses == [(A("10.0.1.10"), 24), (A("192.168.7.1"), 30), (A("10.9.9.9"), 32),
                           (A("172.16.0.1"), 31), (A("10.0.1.10"), 16)]


@pytest.mark.parametrize("bad", ["224.0.0.1/24", "239.1.2.3/8", "0.0.0.0/8", "0.1.2.3/24", "255.255.255.255/32"])
def test_multicast_zero_or_broadcast_interface_address(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses: ["{bad}"]   # <--
        """, "cannot be an interface address")


@pytest.mark.parametrize("bad,words", [("1500.0", "not an integer"), ("jumbo", "not an integer"),
                                       ("67", "out of range 68..65535"), ("0", "out of range"),
                                       ("65536", "out of range 68..65535"), ("-1", "out of range")])
def test_bad_mtu(bad, words):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                mtu: {bad}   # <--
        """, "mtu", words)


def test_mtu_must_be_a_single_value():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0:
                mtu: [1500]   # <--
        """, "single value")


@pytest.mark.parametrize("mtu", [68, 1280, 9000, 65535])
def test_good_mtu(mtu):
    h = load(f"hosts:\n  h1:\n    interfaces:\n      eth0: {{mtu: {mtu}}}\n").hosts["h1"]
    assert h.interfaces["eth0"].mtu == mtu


@pytest.mark.parametrize("bad", ["fast", "0mbit", "10 parsecs", "-1mbit"])
def test_bad_speed(bad):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                speed: {bad}   # <--
        """, "speed", "is not a rate")


@pytest.mark.parametrize("speed, bytes_per_s", [("10mbit", 1_250_000), ("1gbit", 125_000_000), ("100kbit", 12_500)])
def test_good_speed(speed, bytes_per_s):
    h = load(f"hosts:\n  h1:\n    interfaces:\n      eth0: {{speed: {speed}}}\n").hosts["h1"]
    assert h.interfaces["eth0"].speed == bytes_per_s


# ------------------------------------------------------------ auto MACs

def test_auto_mac_is_locally_administered_unicast():
    for host, ifname in [("h1", "eth0"), ("r1", "eth1"), ("x", "y"), ("a-very-long-host", "abcdefghijklmno")]:
        m = topology.auto_mac(host, ifname)
        assert len(m) == 6
        assert m[0] & 0x01 == 0, "unicast"
        assert m[0] & 0x02 == 0x02, "locally administered"
        assert not ethernet.is_multicast(m) and m != ethernet.ZERO


def test_auto_mac_is_stable_and_distinct():
    assert topology.auto_mac("h1", "eth0") == topology.auto_mac("h1", "eth0")
    macs = {topology.auto_mac(h, i) for h in ("h1", "h2", "r1") for i in ("eth0", "eth1", "eth2")}
    assert len(macs) == 9


def test_interfaces_without_mac_get_auto_mac():
    t = load("""\
        hosts:
          h1:
            interfaces:
              eth0: {addresses: [10.0.1.10/24]}
          h2:
            interfaces:
              eth0: {addresses: [10.0.1.11/24]}
        links:
          - [h1:eth0, h2:eth0]
        """)
    m1, m2 = t.hosts["h1"].interfaces["eth0"].mac, t.hosts["h2"].interfaces["eth0"].mac
    assert m1 == topology.auto_mac("h1", "eth0") and m2 == topology.auto_mac("h2", "eth0")
    assert m1 != m2
    # and loading again gives the same addresses
    assert load(two_hosts()).hosts["h1"].interfaces["eth0"].mac == mac("02:00:00:00:01:0a")
    t2 = load("hosts:\n  h1:\n    interfaces:\n      eth0: {addresses: [10.0.1.10/24]}\n")
    assert t2.hosts["h1"].interfaces["eth0"].mac == m1


# ------------------------------------------------------------ routes

def routes_of(routes: str, extra_ifaces: str = "", sysctls: str = "") -> list[topology.Route]:
    text = ("hosts:\n"
            "  h1:\n"
            "    interfaces:\n"
            "      eth0: {addresses: [10.0.1.10/24]}\n"
            + extra_ifaces +
            "    routes:\n" + routes + sysctls)
    return topology.loads(text, SRC).hosts["h1"].routes


ROUTE_HEAD = """\
    hosts:
      h1:
        interfaces:
          eth0: {addresses: [10.0.1.10/24]}
          eth1: {addresses: [10.0.2.10/24]}
        routes:
"""


def test_route_default_via_fills_dev():
    assert routes_of("      - default via 10.0.1.1\n") == [topology.Route(0, 0, "unicast", A("10.0.1.1"), "eth0")]


def test_route_full_syntax():
    [r] = routes_of("      - unicast 10.9.0.0/16 via 10.0.1.1 dev eth0 src 10.0.1.10 metric 100\n")
    assert r == topology.Route(A("10.9.0.0"), 16, "unicast", A("10.0.1.1"), "eth0", A("10.0.1.10"), 100)


def test_route_dev_only():
    [r] = routes_of("      - 10.9.0.0/16 dev eth0\n")
    assert r == topology.Route(A("10.9.0.0"), 16, "unicast", 0, "eth0", 0, 0)


def test_route_without_prefix_length_is_a_host_route():
    [r] = routes_of("      - 10.9.0.1 via 10.0.1.1\n")
    assert (r.dst, r.plen) == (A("10.9.0.1"), 32)


def test_route_0_0_0_0_slash_0_is_default():
    [r] = routes_of("      - 0.0.0.0/0 via 10.0.1.1\n")
    assert (r.dst, r.plen, r.via) == (0, 0, A("10.0.1.1"))


def test_route_via_picks_the_interface_on_the_gateways_subnet():
    text = textwrap.dedent(ROUTE_HEAD) + "      - default via 10.0.2.1\n"
    [r] = topology.loads(text, SRC).hosts["h1"].routes
    assert r.dev == "eth1"


def test_route_unknown_keyword():
    assert_refused(ROUTE_HEAD + """\
          - default via 10.0.1.1 proto static   # <--
    """, "unknown keyword 'proto'")


def test_route_keyword_without_value():
    assert_refused(ROUTE_HEAD + """\
          - default via   # <--
    """, "'via' needs a value")


def test_route_gateway_not_on_a_connected_subnet():
    assert_refused(ROUTE_HEAD + """\
          - default via 10.0.1.1
          - 10.9.0.0/16 via 10.0.3.1   # <--
    """, "Nexthop has invalid gateway")


def test_route_gateway_not_on_the_given_dev():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 via 10.0.1.1 dev eth1   # <--
    """, "Nexthop has invalid gateway")


def test_route_bad_gateway_address():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 via 10.0.1.256   # <--
    """, "not an IPv4 address")


def test_route_dev_does_not_exist():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 dev eth7   # <--
    """, "no interface 'eth7'")


def test_route_src_not_local():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 via 10.0.1.1 src 10.0.1.99   # <--
    """, "src 10.0.1.99 is not an address of h1")


def test_route_src_of_another_interface_is_fine():
    text = textwrap.dedent(ROUTE_HEAD) + "      - 10.9.0.0/16 via 10.0.1.1 src 10.0.2.10\n"
    [r] = topology.loads(text, SRC).hosts["h1"].routes
    assert (r.dev, r.src) == ("eth0", A("10.0.2.10"))


def test_route_prefix_with_host_bits_set():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.1/16 via 10.0.1.1   # <--
    """, "host bits set", "10.9.0.0/16")


def test_route_bad_prefix_length():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/40 via 10.0.1.1   # <--
    """, "bad prefix length")


def test_route_with_neither_via_nor_dev():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 metric 5   # <--
    """, "needs 'via GATEWAY' or 'dev IFNAME'")


def test_route_without_destination():
    assert_refused(ROUTE_HEAD + """\
          - blackhole   # <--
    """, "no destination")


def test_route_bad_metric():
    assert_refused(ROUTE_HEAD + """\
          - 10.9.0.0/16 via 10.0.1.1 metric high   # <--
    """, "metric 'high'")


def test_route_must_be_text_or_mapping():
    assert_refused(ROUTE_HEAD + """\
          - [10.9.0.0/16, dev, eth0]   # <--
    """, "single value")
    assert_refused(ROUTE_HEAD + """\
          - {to: 10.9.0.0/16}   # <--
    """, "route '10.9.0.0/16': needs 'via GATEWAY' or 'dev IFNAME'")
    assert_refused(ROUTE_HEAD + """\
          - {to: 10.9.0.0/16, gw: 10.0.1.1}   # <--
    """, "unknown key 'gw'")
    assert_refused(ROUTE_HEAD + """\
          - {via: 10.0.1.1}   # <--
    """, "no 'to:'")


def test_route_mapping_form_is_the_same_route():
    a = routes_of("      - {to: 10.9.0.0/16, via: 10.0.1.1, metric: 5}\n      - {type: blackhole, to: 10.8.0.0/16}\n")
    b = routes_of("      - 10.9.0.0/16 via 10.0.1.1 metric 5\n      - blackhole 10.8.0.0/16\n")
    assert a == b and a[0] == topology.Route(A("10.9.0.0"), 16, "unicast", A("10.0.1.1"), "eth0", 0, 5)


@pytest.mark.parametrize("rtype", ["blackhole", "unreachable", "prohibit"])
def test_error_routes_accepted(rtype):
    [r1, r2] = routes_of(f"      - {rtype} 10.9.0.0/16\n      - {rtype} default metric 7\n")
    assert r1 == topology.Route(A("10.9.0.0"), 16, rtype)
    assert r2 == topology.Route(0, 0, rtype, metric=7)


@pytest.mark.parametrize("rtype", ["blackhole", "unreachable", "prohibit"])
def test_error_routes_refused_with_via(rtype):
    assert_refused(ROUTE_HEAD + f"""\
          - {rtype} 10.9.0.0/16 via 10.0.1.1   # <--
    """, f"a {rtype} route takes no 'via' or 'dev'")


@pytest.mark.parametrize("rtype", ["blackhole", "unreachable", "prohibit"])
def test_error_routes_refused_with_dev(rtype):
    # fib_create_info(): "Gateway, device and multipath can not be specified for this route type"
    assert_refused(ROUTE_HEAD + f"""\
          - {rtype} 10.9.0.0/16 dev eth0   # <--
    """, "takes no 'via' or 'dev'")


def test_routes_keep_their_order_and_metrics():
    rs = routes_of("      - default via 10.0.1.1 metric 100\n"
                   "      - default via 10.0.1.2 metric 50\n"
                   "      - 10.9.0.0/16 via 10.0.1.3\n")
    assert [(r.dst, r.plen, r.via, r.metric) for r in rs] == [
        (0, 0, A("10.0.1.1"), 100), (0, 0, A("10.0.1.2"), 50), (A("10.9.0.0"), 16, A("10.0.1.3"), 0)]


def test_duplicate_route_same_prefix_and_metric_is_refused():
    # `ip route add` sends NLM_F_CREATE|NLM_F_EXCL; fib_table_insert() finds an
    # alias with the same prefix, tos and priority and returns -EEXIST
    # ("RTNETLINK answers: File exists"), whatever the gateway.
    assert_refused(ROUTE_HEAD + """\
          - default via 10.0.1.1
          - default via 10.0.1.2   # <--
    """, "exists")


# ------------------------------------------------------------ sysctls

SYSCTL_HEAD = """\
    hosts:
      h1:
        interfaces:
          eth0: {addresses: [10.0.1.10/24]}
        sysctls:
"""


def test_sysctls_are_parsed_to_values():
    h = load(SYSCTL_HEAD + """\
          net.ipv4.ip_forward: 1
          net.ipv4.ip_default_ttl: 128
          net.ipv4.ip_local_port_range: 1024 65000
          net.ipv4.tcp_rmem: 4096 87380 6291456
          net.ipv4.conf.all.rp_filter: 0
          net.ipv4.conf.eth0.rp_filter: 0
          net.ipv4.conf.lo.accept_local: 1
          net.ipv4.conf.default.forwarding: 1
    """).hosts["h1"]
    assert h.sysctls == {
        "net.ipv4.ip_forward": 1, "net.ipv4.ip_default_ttl": 128,
        "net.ipv4.ip_local_port_range": (1024, 65000), "net.ipv4.tcp_rmem": (4096, 87380, 6291456),
        "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.eth0.rp_filter": 0,
        "net.ipv4.conf.lo.accept_local": 1, "net.ipv4.conf.default.forwarding": 1}


def test_unknown_sysctl():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.ip_forward: 1
          net.ipv4.ip_forwarding: 1   # <--
    """, "net.ipv4.ip_forwarding", "unknown sysctl")


def test_sysctl_bad_value():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.ip_forward: yes   # <--
    """, "net.ipv4.ip_forward", "'yes' is not an integer")


def test_sysctl_out_of_range():
    # ip_default_ttl has extra1 = 1, extra2 = 255 in Linux (EINVAL outside)
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.ip_default_ttl: 256   # <--
    """, "net.ipv4.ip_default_ttl", "256 is out of range 1..255")


def test_sysctl_bool_out_of_range():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.tcp_sack: 2   # <--
    """, "out of range 0..1")


def test_sysctl_port_range_inverted():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.ip_local_port_range: 60999 32768   # <--
    """, "first port is above the second")


def test_sysctl_duplicate_key():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.ip_forward: 1
          net.ipv4.ip_forward: 0   # <--
    """, "appears twice")


@pytest.mark.parametrize("key", ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
                                 "net.ipv4.conf.eth0.rp_filter"])
def test_rp_filter_takes_0_1_2(key):
    for value in (0, 1, 2):
        h = topology.loads(textwrap.dedent(SYSCTL_HEAD) + f"      {key}: {value}\n", SRC).hosts["h1"]
        assert h.sysctls == {key: value}
    assert_refused(SYSCTL_HEAD + f"""\
          {key}: 3   # <--
    """, key)


def test_per_interface_sysctl_for_unknown_interface():
    assert_refused(SYSCTL_HEAD + """\
          net.ipv4.conf.eth9.rp_filter: 0   # <--
    """, "no interface 'eth9'")


def test_per_interface_sysctl_of_another_host_interface_refused():
    assert_refused("""\
        hosts:
          h1:
            interfaces: {eth0: {}}
          h2:
            interfaces: {eth0: {}, eth1: {}}
            sysctls: {net.ipv4.conf.eth1.rp_filter: 0}
          h3:
            interfaces: {eth0: {}}
            sysctls:
              net.ipv4.conf.eth1.rp_filter: 0   # <--
        """, "no interface 'eth1'")


def test_sysctl_module_defaults_and_parse():
    d = sysctl.defaults()
    assert d["net.ipv4.ip_forward"] == 0 and d["net.ipv4.ip_default_ttl"] == 64
    assert d["net.ipv4.icmp_ratelimit"] == 1000 and d["net.ipv4.icmp_msgs_per_sec"] == 1000
    assert d["net.ipv4.icmp_msgs_burst"] == 50
    assert d["net.ipv4.neigh.default.mcast_solicit"] == 3 and d["net.ipv4.neigh.default.ucast_solicit"] == 3
    assert d["net.ipv4.neigh.default.base_reachable_time_ms"] == 30000
    assert d["net.ipv4.neigh.default.gc_stale_time"] == 60
    assert d["net.ipv4.neigh.default.unres_qlen_bytes"] == 212992
    assert sysctl.parse("net.ipv4.ip_forward", "0x1", set()) == ("net.ipv4.ip_forward", 1)
    with pytest.raises(ValueError, match="unknown sysctl"):
        sysctl.parse("net.ipv4.conf.eth0.bogus", "0", {"eth0"})
    with pytest.raises(ValueError, match="unknown sysctl"):
        sysctl.parse("net.ipv4.conf.eth0.x.rp_filter", "0", {"eth0"})


# ------------------------------------------------------------ IPv6

def host6(ifaces: str = "      eth0: {mac: \"02:00:00:00:01:0a\", addresses: [10.0.1.10/24, 2001:db8:1::10/64]}\n",
          routes: str = "", sysctls: str = "") -> topology.Host:
    text = "hosts:\n  h1:\n    interfaces:\n" + ifaces
    text += ("    routes:\n" + routes if routes else "") + ("    sysctls:\n" + sysctls if sysctls else "")
    return topology.loads(text, SRC).hosts["h1"]


def test_ipv6_addresses_beside_ipv4_ones():
    eth0 = host6().interfaces["eth0"]
    assert eth0.addresses == [(A("10.0.1.10"), 24)]            # what every IPv4 consumer reads: unchanged
    assert eth0.addrs6 == [(A6("fe80::ff:fe00:10a"), 64), (A6("2001:db8:1::10"), 64)]


def test_ipv6_only_interface_and_several_addresses_in_file_order():
    eth0 = host6("      eth0: {mac: \"02:00:00:00:01:0a\", addresses: [2001:db8:1::10/64, fd00::1/48, "
                 "fe80::1/64]}\n").interfaces["eth0"]
    assert eth0.addresses == []
    assert eth0.addrs6 == [(A6("fe80::ff:fe00:10a"), 64), (A6("2001:db8:1::10"), 64), (A6("fd00::1"), 48),
                           (A6("fe80::1"), 64)]


@pytest.mark.parametrize("mac_text, link_local", [
    ("02:00:00:00:01:0a", "fe80::ff:fe00:10a"),           # local bit set: flipped off (Linux's h1, captured)
    ("00:1b:21:3c:4d:5e", "fe80::21b:21ff:fe3c:4d5e"),    # a universal MAC: the bit set
    ("52:54:00:12:34:56", "fe80::5054:ff:fe12:3456"),
])
def test_link_local_is_eui64_of_the_mac(mac_text, link_local):
    eth0 = host6(f"      eth0: {{mac: \"{mac_text}\"}}\n").interfaces["eth0"]
    assert eth0.addrs6 == [(A6(link_local), 64)]


def test_link_local_of_an_auto_mac_and_every_interface():
    h = host6("      eth0: {}\n      eth1: {tap: pftap0}\n")
    for name in ("eth0", "eth1"):
        i = h.interfaces[name]
        assert i.addrs6 == [(ipv6.link_local(i.mac), 64)] and i.addrs6[0][0] >> 64 == 0xFE80 << 48
    assert h.interfaces["lo"].addrs6 == [(1, 128)]


def test_disable_ipv6_on_one_interface_or_all():
    h = host6("      eth0: {addresses: [10.0.1.10/24]}\n      eth1: {}\n",
              sysctls="      net.ipv6.conf.eth1.disable_ipv6: 1\n")
    assert h.interfaces["eth0"].addrs6 and h.interfaces["eth1"].addrs6 == [] and h.interfaces["lo"].addrs6
    h = host6("      eth0: {}\n", sysctls="      net.ipv6.conf.all.disable_ipv6: 1\n")
    assert [i.addrs6 for i in h.interfaces.values()] == [[], []]          # lo's ::1 goes too, as in Linux
    assert h.conf6["default"]["disable_ipv6"] == 1
    # conf.default only seeds interfaces made later: none here
    h = host6("      eth0: {}\n", sysctls="      net.ipv6.conf.default.disable_ipv6: 1\n")
    assert h.interfaces["eth0"].addrs6 and h.conf6["eth0"]["disable_ipv6"] == 0


def test_ipv6_address_on_an_interface_with_ipv6_off_is_refused():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: {addresses: [10.0.1.10/24, 2001:db8:1::10/64]}   # <--
            sysctls:
              net.ipv6.conf.eth0.disable_ipv6: 1
        """, "2001:db8:1::10/64: IPv6 is off on the interface (net.ipv6.conf.eth0.disable_ipv6 is 1)")


def test_mtu_below_1280_means_no_ipv6():
    assert host6("      eth0: {mtu: 1279}\n").interfaces["eth0"].addrs6 == []       # addrconf: no link-local
    assert host6("      eth0: {mtu: 1280}\n").interfaces["eth0"].addrs6 != []
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0:
                mtu: 1200
                addresses:
                  - 2001:db8:1::10/64   # <--
        """, "IPv6 is off on the interface (its MTU 1200 is below IPv6's minimum, 1280)")


@pytest.mark.parametrize("bad, problem", [
    ("2001:db8::1", "'2001:db8::1' needs a prefix length (e.g. 2001:db8::1/64)"),
    ("2001:db8::g/64", "'2001:db8::g' is not an IPv6 address"),
    ("2001:db8:::1/64", "'2001:db8:::1' is not an IPv6 address"),
    ("2001:db8::1/129", "'2001:db8::1/129' has a bad prefix length (0 to 128)"),
    ("2001:db8::1/x", "'2001:db8::1/x' has a bad prefix length"),
    ("2001:db8::1/0", "2001:db8::1/0 cannot be an interface address"),
    ("::/64", "::/64 cannot be an interface address"),
    ("::1/128", "::1/128 cannot be an interface address"),
    ("ff02::1/64", "ff02::1/64 cannot be an interface address"),
    ("fe80::ff:fe00:10a/64", "fe80::ff:fe00:10a is its link-local address already"),
])
def test_bad_ipv6_address(bad, problem):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                mac: "02:00:00:00:01:0a"
                addresses: [10.0.1.10/24, "{bad}"]   # <--
        """, "host 'h1' interface 'eth0': " + problem)


@pytest.mark.parametrize("second, problem", [
    ("2001:db8:1:0::10/48", "2001:db8:1::10 is listed twice"),       # whatever its prefix length
    ("10.0.3.10", "'10.0.3.10' needs a prefix length"),               # IPv4's checks beside IPv6
])
def test_second_address_refused(second, problem):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0:
                addresses:
                  - 2001:db8:1::10/64
                  - {second}   # <--
        """, problem)


# IPv6 routes: each checked as `ip -6 route add` is by Linux 6.18 (the messages are iproute2's, captured)
R6_IFACES = ("      eth0: {mac: \"02:00:00:00:01:0a\", addresses: [10.0.1.10/24, 2001:db8:1::10/64]}\n"
             "      eth1: {mac: \"02:00:00:00:02:0a\", addresses: [2001:db8:2::10/64]}\n")


def routes6_of(routes: str, sysctls: str = "") -> list[topology.Route]:
    return host6(R6_IFACES, routes, sysctls).routes6


def test_ipv6_default_route_gets_its_device_and_metric_1024():
    h = host6(R6_IFACES, "      - default via 10.0.1.1\n      - default via 2001:db8:1::1\n")
    assert h.routes == [topology.Route(0, 0, "unicast", A("10.0.1.1"), "eth0", 0, 0)]      # IPv4 as before
    assert h.routes6 == [topology.Route(0, 0, "unicast", A6("2001:db8:1::1"), "eth0", 0, 1024)]


def test_ipv6_route_forms():
    rs = routes6_of("      - 2001:db8:9::/48 dev eth1\n"
                    "      - {to: 2001:db8:a::/48, via: 2001:db8:2::1, metric: 7}\n"
                    "      - {to: default, via: fe80::1, dev: eth0}\n"
                    "      - 2001:db8:b::/48 via 2001:db8:9::5 metric 0\n"         # on-link through the first
                    "      - 2001:db8:c::5/48 dev eth0 src 2001:db8:2::10\n"      # host bits cleared, as Linux
                    "      - ::/0 dev eth1 metric 2000\n"
                    "      - 2001:db8:d::1 dev eth0\n")
    assert rs == [topology.Route(A6("2001:db8:9::"), 48, "unicast", 0, "eth1", 0, 1024),
                  topology.Route(A6("2001:db8:a::"), 48, "unicast", A6("2001:db8:2::1"), "eth1", 0, 7),
                  topology.Route(0, 0, "unicast", A6("fe80::1"), "eth0", 0, 1024),
                  topology.Route(A6("2001:db8:b::"), 48, "unicast", A6("2001:db8:9::5"), "eth1", 0, 1024),
                  topology.Route(A6("2001:db8:c::"), 48, "unicast", 0, "eth0", A6("2001:db8:2::10"), 1024),
                  topology.Route(0, 0, "unicast", 0, "eth1", 0, 2000),
                  topology.Route(A6("2001:db8:d::1"), 128, "unicast", 0, "eth0", 0, 1024)]


@pytest.mark.parametrize("rtype", ["blackhole", "unreachable", "prohibit"])
def test_ipv6_reject_routes_go_through_lo(rtype):
    assert routes6_of(f"      - {rtype} 2001:db8:9::/48\n      - {{type: {rtype}, to: \"::/0\", metric: 9}}\n") == [
        topology.Route(A6("2001:db8:9::"), 48, rtype, 0, "lo", 0, 1024), topology.Route(0, 0, rtype, 0, "lo", 0, 9)]


@pytest.mark.parametrize("route, problem", [
    ("2001:db8:9::/48 via 2001:db8:5::5", "RTNETLINK answers: No route to host (2001:db8:5::5 is on no prefix of h1)"),
    ("2001:db8:9::/48 via 2001:db8:1::5 dev eth1", "RTNETLINK answers: No route to host (2001:db8:1::5 is on no "
                                                   "prefix of eth1)"),
    ("2001:db8:9::/48 via 2001:db8:2::10", "Error: Gateway can not be a local address."),
    ("2001:db8:9::/48 via ::1", "Error: Egress device can not be loopback device for this route."),
    ("2001:db8:9::/48 via fe80::1", "Error: Egress device not specified."),
    ("2001:db8:9::/48 via ff02::1 dev eth0", "Error: Invalid gateway address."),
    ("2001:db8:9::/48 dev eth0 src 2001:db8:7::1", "Error: Invalid source address."),
    ("2001:db8:1::/64 dev eth0 metric 256", "RTNETLINK answers: File exists (a route the kernel made"),
    ("2001:db8:9::/129 dev eth0", "'2001:db8:9::/129' is not an IPv6 prefix"),
    ("2001:db8:9::/48 via 10.0.1.1", "via '10.0.1.1' is not an IPv6 address"),
    ("2001:db8:9::/48", "needs 'via GATEWAY' or 'dev IFNAME'"),
    ("2001:db8:9::/48 dev eth9", "no interface 'eth9' on h1"),
    ("2001:db8:9::/48 dev eth0 metric 4294967296", "metric '4294967296' is not a number"),
    ("2001:db8:9::/48 dev eth0 table 5", "unknown keyword 'table'"),
    ("2001:db8:9::/48 dev", "'dev' needs a value"),
    ("blackhole 2001:db8:9::/48 dev eth0", "a blackhole route takes no 'via' or 'dev'"),
])
def test_bad_ipv6_route(route, problem):
    assert_refused(ROUTE6_HEAD + f"""\
          - {route}   # <--
    """, f"host 'h1' route {route!r}: {problem}")


ROUTE6_HEAD = """\
    hosts:
      h1:
        interfaces:
          eth0: {addresses: [10.0.1.10/24, 2001:db8:1::10/64]}
          eth1: {addresses: [2001:db8:2::10/64]}
        routes:
"""


def test_ipv6_route_same_prefix_and_metric_twice():
    assert_refused(ROUTE6_HEAD + """\
          - 2001:db8:9::/48 dev eth0
          - 2001:db8:9::/48 via 2001:db8:2::1 metric 1024   # <--
    """, "File exists (same prefix and metric as the route at line 7)")
    assert len(routes6_of("      - 2001:db8:9::/48 dev eth0\n      - 2001:db8:9::/48 dev eth1 metric 5\n")) == 2


def test_ipv6_route_through_an_interface_without_ipv6():
    assert_refused("""\
        hosts:
          h1:
            interfaces:
              eth0: {addresses: [10.0.1.10/24]}
            routes:
              - 2001:db8:9::/48 dev eth0   # <--
            sysctls:
              net.ipv6.conf.eth0.disable_ipv6: 1
    """, "Error: IPv6 is disabled on nexthop device.")


def test_ipv4_route_words_still_ipv4():
    h = host6(R6_IFACES, "      - default dev eth0\n      - 10.9.0.0/16 via 10.0.1.1\n")
    assert [r.dst for r in h.routes] == [0, A("10.9.0.0")] and h.routes6 == []
    assert topology.is_ipv6_route("default via fe80::1 dev eth0") and topology.is_ipv6_route("unreachable ::/0")
    assert not topology.is_ipv6_route("default via 10.0.1.1") and not topology.is_ipv6_route("blackhole")


# IPv6 sysctls: Linux 6.18's defaults (../shared/captures/linux/sysctl6.txt, and sysctl in a namespace here)

def test_ipv6_sysctl_defaults():
    d = sysctl.defaults()
    assert d["net.ipv6.icmp.ratelimit"] == 100 and d["net.ipv6.auto_flowlabels"] == 1
    assert d["net.ipv6.bindv6only"] == 0 and d["net.ipv6.ip6frag_time"] == 60
    assert d["net.ipv6.ip6frag_high_thresh"] == 4194304 and d["net.ipv6.route.mtu_expires"] == 600
    conf = host6("      eth0: {mtu: 9000}\n").conf6
    assert conf["all"] == {"forwarding": 0, "disable_ipv6": 0, "accept_dad": 0, "dad_transmits": 1,
                           "hop_limit": 64, "mtu": 1280}
    assert conf["default"] == conf["all"] | {"accept_dad": 1}
    assert conf["lo"] == conf["default"] | {"accept_dad": -1, "mtu": 65536}
    assert conf["eth0"] == conf["default"] | {"mtu": 9000}


def test_ipv6_forwarding_written_in_order():
    """conf.all.forwarding sets default and every device whenever written (addrconf_fixup_forwarding());
    a device's own write sets only it."""
    ifaces = "      eth0: {}\n      eth1: {}\n"
    c = host6(ifaces, sysctls="      net.ipv6.conf.all.forwarding: 1\n      net.ipv6.conf.eth1.forwarding: 0\n").conf6
    assert [c[d]["forwarding"] for d in ("all", "default", "lo", "eth0", "eth1")] == [1, 1, 1, 1, 0]
    c = host6(ifaces, sysctls="      net.ipv6.conf.eth1.forwarding: 1\n      net.ipv6.conf.all.forwarding: 0\n").conf6
    assert [c[d]["forwarding"] for d in ("all", "default", "lo", "eth0", "eth1")] == [0, 0, 0, 0, 0]
    c = host6(ifaces, sysctls="      net.ipv6.conf.default.forwarding: 1\n").conf6
    assert [c[d]["forwarding"] for d in ("all", "default", "eth0")] == [0, 1, 0]


@pytest.mark.parametrize("key, value, problem", [
    ("net.ipv6.conf.eth0.hop_limit", "0", "0 is out of range 1..255"),
    ("net.ipv6.conf.all.hop_limit", "256", "256 is out of range 1..255"),
    ("net.ipv6.conf.eth0.mtu", "1279", "1279 is out of range 1280.."),
    ("net.ipv6.conf.eth0.mtu", "1501", "1501 is out of range 1280..1500 (eth0's MTU)"),
    ("net.ipv6.auto_flowlabels", "4", "4 is out of range 0..3"),
    ("net.ipv6.icmp.ratelimit", "-1", "-1 is out of range 0.."),
    ("net.ipv6.conf.eth0.bogus", "1", "unknown sysctl"),
    ("net.ipv6.conf.eth9.forwarding", "1", "no interface 'eth9'"),
])
def test_bad_ipv6_sysctl(key, value, problem):
    assert_refused(f"""\
        hosts:
          h1:
            interfaces:
              eth0: {{}}
            sysctls:
              {key}: {value}   # <--
    """, f"host 'h1' sysctl {key}: {problem}")


def test_ipv6_sysctls_taken_as_linux_takes_them():
    """proc_dointvec: forwarding, disable_ipv6, accept_dad, dad_transmits take any int (Linux keeps 2, -1)."""
    c = host6("      eth0: {mtu: 9000}\n", sysctls="      net.ipv6.conf.eth0.accept_dad: 2\n"
              "      net.ipv6.conf.eth0.dad_transmits: 3\n      net.ipv6.conf.eth0.mtu: 9000\n"
              "      net.ipv6.conf.all.mtu: 65575\n").conf6
    assert (c["eth0"]["accept_dad"], c["eth0"]["dad_transmits"], c["eth0"]["mtu"], c["all"]["mtu"]) == \
        (2, 3, 9000, 65575)


def test_sysctl_tool_reads_ipv6_defaults():
    def read(name):
        return sysctl.sysctl_tool(sysctl.defaults(), {"eth0", "lo"}, ["-n", name])[1]
    assert read("net.ipv6.conf.all.accept_dad") == "0\n" and read("net.ipv6.conf.eth0.accept_dad") == "1\n"
    assert read("net.ipv6.conf.lo.mtu") == "65536\n" and read("net.ipv6.conf.default.mtu") == "1280\n"
    assert read("net.ipv6.conf.eth0.forwarding") == "0\n" and read("net.ipv6.icmp.ratelimit") == "100\n"
    assert sysctl.sysctl_tool(sysctl.defaults() | {"net.ipv6.conf.eth0.mtu": 1400}, {"eth0"},
                              ["net.ipv6.conf.eth0.mtu"])[1] == "net.ipv6.conf.eth0.mtu = 1400\n"


# ------------------------------------------------------------ links

def test_link_plain_list_form():
    t = load(two_hosts(links="links:\n  - [h1:eth0, h2:eth0]\n"))
    assert [link.endpoints for link in t.links] == [[("h1", "eth0"), ("h2", "eth0")]]
    assert t.peers("h2", "eth0") == [("h1", "eth0")]


def test_link_mapping_form():
    t = load(two_hosts(links="links:\n  - endpoints: [h1:eth0, h2:eth0]\n    netem: delay 10ms\n"))
    [link] = t.links
    assert link.endpoints == [("h1", "eth0"), ("h2", "eth0")] and link.netem == "delay 10ms"


def test_link_block_list_form():
    t = load(two_hosts(links="links:\n  - endpoints:\n      - h1:eth0\n      - h2:eth0\n"))
    assert t.links[0].endpoints == [("h1", "eth0"), ("h2", "eth0")]


def test_link_endpoint_without_colon():
    assert_refused(two_hosts(links="""\
links:
  - [h1:eth0, h2-eth0]   # <--
"""), "'h2-eth0'", "HOST:IFNAME")


def test_link_unknown_host():
    assert_refused(two_hosts(links="""\
links:
  - endpoints:
      - h1:eth0
      - h9:eth0   # <--
"""), "no host 'h9'")


def test_link_unknown_interface():
    assert_refused(two_hosts(links="""\
links:
  - [h1:eth0, h2:eth1]   # <--
"""), "host 'h2' has no interface 'eth1'")


def test_link_to_lo_refused():
    assert_refused(two_hosts(links="""\
links:
  - [h1:lo, h2:eth0]   # <--
"""), "has no interface 'lo'")


def test_link_unknown_key():
    assert_refused(two_hosts(links="""\
links:
  - endpoints: [h1:eth0, h2:eth0]
    delay: 10ms   # <--
"""), "unknown key 'delay'")


def test_link_mapping_without_endpoints():
    assert_refused(two_hosts(links="""\
links:
  - netem: delay 1ms   # <--
"""), "no 'endpoints:'")


def test_interface_on_two_links():
    problem = assert_refused("""\
        hosts:
          h1: {interfaces: {eth0: {}}}
          h2: {interfaces: {eth0: {}}}
          h3: {interfaces: {eth0: {}}}
        links:
          - [h1:eth0, h2:eth0]
          - [h3:eth0, h1:eth0]   # <--
        """, "h1:eth0", "already on the link at line 6")
    assert problem


def test_interface_on_two_links_names_the_endpoint_line_in_block_style():
    assert_refused("""\
        hosts:
          h1: {interfaces: {eth0: {}}}
          h2: {interfaces: {eth0: {}}}
          h3: {interfaces: {eth0: {}}}
        links:
          - endpoints:
              - h1:eth0
              - h2:eth0
          - endpoints:
              - h3:eth0
              - h1:eth0   # <--
        """, "h1:eth0", "already on the link at line")


def test_same_endpoint_twice_on_one_link():
    assert_refused(two_hosts(links="""\
links:
  - [h1:eth0, h2:eth0, h1:eth0]   # <--
"""), "listed twice")


def test_link_with_one_endpoint():
    assert_refused(two_hosts(links="""\
links:
  - [h1:eth0]   # <--
"""), "at least two interfaces")


def test_link_with_no_endpoint():
    assert_refused(two_hosts(links="""\
links:
  - endpoints: []   # <--
"""), "at least two interfaces")


def test_links_must_be_a_list():
    assert_refused(two_hosts(links="""\
links:
  a: [h1:eth0, h2:eth0]   # <--
"""), "links must be a list")


# ------------------------------------------------------------ a bigger topology

BIG = """\
# three hosts on one segment (a bridge-like link), a router towards a second segment
hosts:
  a:
    interfaces:
      eth0: {addresses: [192.168.1.10/24], mtu: 9000}
    routes:
      - default via 192.168.1.1 metric 100
      - default via 192.168.1.2 metric 200
      - blackhole 10.66.0.0/16
  b:
    interfaces:
      eth0: {mac: "02:aa:00:00:00:0b", addresses: [192.168.1.11/24, 192.168.100.1/30]}
    routes:
      - 10.0.0.0/8 via 192.168.1.1 src 192.168.100.1 metric 10
      - unreachable 10.99.0.0/16 metric 5
  gw:
    interfaces:
      lan: {mac: "02:aa:00:00:00:01", addresses: [192.168.1.1/24]}
      wan: {mac: "02:aa:00:00:01:01", addresses: [10.0.0.1/24], mtu: 1400}
      mgmt:
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv4.conf.all.rp_filter: 0
      net.ipv4.conf.wan.accept_local: 0
      net.ipv4.icmp_ratelimit: 0
  srv:
    interfaces:
      eth0: {addresses: [10.0.0.10/24]}
    routes:
      - prohibit 192.168.1.11
      - 192.168.0.0/16 via 10.0.0.1 dev eth0
links:
  - endpoints: [a:eth0, b:eth0, gw:lan]
    netem: delay 1ms loss 1%
  - [gw:wan, srv:eth0]
"""


def test_big_topology_hosts_and_interfaces():
    t = topology.loads(BIG, "big.yaml")
    assert list(t.hosts) == ["a", "b", "gw", "srv"]
    gw = t.hosts["gw"]
    assert [(i.name, i.ifindex) for i in gw.interfaces.values()] == [("lo", 1), ("lan", 2), ("wan", 3), ("mgmt", 4)]
    assert gw.interfaces["wan"].mtu == 1400 and gw.interfaces["mgmt"].addresses == []
    assert gw.interfaces["mgmt"].mac == topology.auto_mac("gw", "mgmt")
    assert t.hosts["a"].interfaces["eth0"].mtu == 9000
    assert t.hosts["b"].interfaces["eth0"].addresses == [(A("192.168.1.11"), 24), (A("192.168.100.1"), 30)]
    assert gw.sysctls == {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0,
                          "net.ipv4.conf.wan.accept_local": 0, "net.ipv4.icmp_ratelimit": 0}


def test_big_topology_routes():
    t = topology.loads(BIG, "big.yaml")
    R = topology.Route
    assert t.hosts["a"].routes == [R(0, 0, "unicast", A("192.168.1.1"), "eth0", 0, 100),
                                   R(0, 0, "unicast", A("192.168.1.2"), "eth0", 0, 200),
                                   R(A("10.66.0.0"), 16, "blackhole")]
    assert t.hosts["b"].routes == [R(A("10.0.0.0"), 8, "unicast", A("192.168.1.1"), "eth0", A("192.168.100.1"), 10),
                                   R(A("10.99.0.0"), 16, "unreachable", metric=5)]
    assert t.hosts["gw"].routes == []
    assert t.hosts["srv"].routes == [R(A("192.168.1.11"), 32, "prohibit"),
                                     R(A("192.168.0.0"), 16, "unicast", A("10.0.0.1"), "eth0")]


def test_big_topology_bridge_like_link():
    t = topology.loads(BIG, "big.yaml")
    lan, wan = t.links
    assert lan.endpoints == [("a", "eth0"), ("b", "eth0"), ("gw", "lan")]
    assert lan.netem == "delay 1ms loss 1%" and wan.netem is None
    assert t.peers("a", "eth0") == [("b", "eth0"), ("gw", "lan")]
    assert t.peers("gw", "lan") == [("a", "eth0"), ("b", "eth0")]
    assert t.peers("srv", "eth0") == [("gw", "wan")]
    assert t.peers("gw", "mgmt") == []


def test_big_topology_one_bad_line_is_named():
    bad = BIG.replace("      - unreachable 10.99.0.0/16 metric 5",
                      "      - unreachable 10.99.0.0/16 via 192.168.1.1")
    line, problem = refused(bad)
    assert line == BIG.splitlines().index("      - unreachable 10.99.0.0/16 metric 5") + 1
    assert "takes no 'via' or 'dev'" in problem


def test_select_addr_prefers_the_address_on_the_destinations_subnet():
    """inet_select_addr() on one device's addresses, shared by the ip and link rooms."""
    from pktflow.services.common.topology import select_addr
    from pktflow.services.wire.ipv4 import aton
    addrs = [(aton("10.0.1.10"), 24), (aton("192.168.5.1"), 16)]
    assert select_addr(addrs, aton("192.168.9.9")) == aton("192.168.5.1")
    assert select_addr(addrs, aton("172.16.0.1")) == aton("10.0.1.10")       # the primary
    assert select_addr([], aton("10.0.1.1")) == 0


IPTABLES_HOST = """\
    hosts:
      r1:
        interfaces:
          eth0: {addresses: [10.0.1.1/24]}
        iptables: |
          *filter
          :FORWARD DROP [0:0]
          -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
          -A FORWARD -i eth0 -j %s
          COMMIT
"""


def test_a_hosts_iptables_rules_are_loaded_as_iptables_restore_would():
    h = load(IPTABLES_HOST % "ACCEPT").hosts["r1"]
    assert h.iptables.splitlines()[0] == "*filter"
    import random
    from pktflow.services.ip.netns import IpNetns
    ns = IpNetns(h, random.Random(1))
    assert ns.nf is not None and ns.ct is not None and not ns.nf.empty(2)


def test_a_bad_rule_in_the_topology_is_refused_naming_its_line():
    with pytest.raises(topology.TopologyError) as e:
        topology.loads(textwrap.dedent(IPTABLES_HOST % "NOWHERE"), SRC)
    assert str(e.value) == (f"{SRC}:9: host 'r1' iptables: iptables-restore v1.8.9 (nf_tables): "
                            "Chain 'NOWHERE' does not exist Error occurred at line: 4")
