"""The IPv6 send path of the ip core (ip6_output, reassembly, ip6_route):
segments from transport routed, sourced and labelled, fragmented as Linux
fragmented them (tests/data/linux/ipv6), fragments reassembled, path MTUs
learned, `ip -6 route get` as iproute2 prints it, source address selection."""
import errno

import pytest
from ip6_frames import A6, B, core, downs, drops, frames, ip6, rcv, same_but_flow, ups

from pktflow.services.common import topology
from pktflow.services.common.actions import Arm
from pktflow.services.ip import iproute
from pktflow.services.ip.route import RouteError
from pktflow.services.wire import icmpv6 as wire6, ipv6
from pktflow.v1.skb_pb2 import Skb

def udp_datagram(capture: str) -> bytes:
    """The UDP datagram a capture's fragments carry (their payloads after the fragment header)."""
    return b"".join(ip6(f)[48:] for f in frames(capture))


def test_a_datagram_bigger_than_the_mtu_leaves_in_the_fragments_linux_sent():
    ip = core()
    skb = Skb(netns="h1", data=udp_datagram("ipv6-udp-fragments.h1"), daddr6=B("2001:db8:2::10"), ip_proto=17)
    out = downs(ip.from_transport(skb, 1))
    linux = [ip6(f) for f in frames("ipv6-udp-fragments.h1")]
    assert len(out) == 3
    for ours, theirs in zip(out, linux):
        same_but_flow(ours.data, theirs)
        assert ours.nexthop6 == B("2001:db8:1::1") and ours.ifindex == 2
    assert len({p.data[1:4] for p in out}) == 1 and len({p.data[44:48] for p in out}) == 1   # one label, one id
    c = ip.netns["h1"].mib
    assert (c["Ip6OutRequests"], c["Ip6FragOKs"], c["Ip6FragCreates"], c["Ip6OutTransmits"]) == (1, 1, 3, 3)


def test_fragments_reassemble_in_any_order():
    for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        ip = core()
        fs = frames("ipv6-udp-fragments.h2")
        out = [a for i in order for a in rcv(ip, "h2", "eth0", fs[i])]
        [up] = ups(out)
        assert up.data[40:] == udp_datagram("ipv6-udp-fragments.h2") and up.ip_proto == 17
        assert len(up.data) == 40 + 8 + 4096 and up.data[6] == 17 and up.head == up.transport_header == 40
        c = ip.netns["h2"].mib
        assert (c["Ip6ReasmReqds"], c["Ip6ReasmOKs"], c["Ip6InDelivers"]) == (3, 1, 1)
        assert not ip.netns["h2"].v6.frags.queues and ip.netns["h2"].v6.frags.mem == 0


def test_a_duplicate_is_dropped_and_an_overlap_kills_the_queue():
    ip = core()
    fs = frames("ipv6-udp-fragments.h2")
    rcv(ip, "h2", "eth0", fs[0])
    assert drops(rcv(ip, "h2", "eth0", fs[0]))[0][1] == "DUP_FRAG"
    overlap = bytearray(fs[1])
    overlap[14 + 42:14 + 44] = (1440 | 1).to_bytes(2, "big")              # offset 1440, M: across the first's end
    out = rcv(ip, "h2", "eth0", bytes(overlap))
    assert [r for _, r in drops(out)] == ["NOT_SPECIFIED", "NOT_SPECIFIED"]
    assert ip.netns["h2"].mib["Ip6ReasmFails"] == 1 and not ip.netns["h2"].v6.frags.queues


def test_an_incomplete_datagram_expires_with_time_exceeded():
    ip = core()
    first = frames("ipv6-udp-fragments.h2")[0]
    out = rcv(ip, "h2", "eth0", first)
    [arm] = [a for a in out if type(a) is Arm]
    assert arm.when == 1_000_000_000 + 60 * 1_000_000_000                 # net.ipv6.ip6frag_time
    out = ip.timer(arm.key, arm.when)
    [err] = downs(out)
    assert err.data[40:42] == bytes((wire6.ICMPV6_TIME_EXCEED, wire6.ICMPV6_EXC_FRAGTIME))
    assert err.data[48:48 + 1232] == ip6(first)[:1232]                     # quoting the first fragment
    c = ip.netns["h2"].mib
    assert (c["Ip6ReasmTimeout"], c["Ip6ReasmFails"]) == (1, 1)
    assert drops(out) == [(("ip6_frag_expire",), "FRAG_REASM_TIMEOUT")]


def test_h2_reassembles_the_big_echo_and_answers_in_the_fragments_linux_sent():
    """ipv6-packet-too-big: r1's eth1 and h2's eth0 have an MTU of 1280."""
    ip = core()
    assert iproute.ip_link_set(ip.netns["h2"], ["eth0", "mtu", "1280"])[0] == 0
    fs = frames("ipv6-packet-too-big.h2")
    out = rcv(ip, "h2", "eth0", fs[0]) + rcv(ip, "h2", "eth0", fs[1])
    replies = downs(out)
    assert len(replies) == 2
    for ours, theirs in zip(replies, fs[2:4]):
        same_but_flow(ours.data, ip6(theirs))
    c = ip.netns["h2"].mib
    assert (c["Ip6ReasmOKs"], c["Icmp6OutType129"], c["Ip6FragCreates"]) == (1, 1, 2)


def test_packet_too_big_lowers_the_path_mtu_and_the_next_echo_is_fragmented():
    ip = core()
    h1 = ip.netns["h1"]
    update = Skb(netns="h1")
    update.pmtu_update.daddr6, update.pmtu_update.mtu = B("2001:db8:2::10"), 1280
    [arm] = [a for a in ip.from_transport(update, 5) if type(a) is Arm]
    assert arm.when == 5 + 600 * 1_000_000_000                           # net.ipv6.route.mtu_expires
    reply = ip.route_output6("h1", A6("2001:db8:2::10"))
    assert (reply.mtu, reply.dst.mtu) == (1280, 1280)
    assert ip.route_get6("h1", A6("2001:db8:2::10"), 5 + 18 * 1_000_000_000) == [
        "2001:db8:2::10 from :: via 2001:db8:1::1 dev eth0 src 2001:db8:1::10 metric 1024 expires 582sec mtu 1280 "
        "pref medium"]
    # the second echo of ipv6-packet-too-big, as ping's socket hands it down (seq 2)
    fs = frames("ipv6-packet-too-big.h1")
    echo = ip6(fs[2])[48:] + ip6(fs[3])[48:]
    skb = Skb(netns="h1", data=echo, daddr6=B("2001:db8:2::10"), ip_proto=58, dst=reply.dst,
              saddr6=reply.saddr6)
    out = downs(ip.from_transport(skb, 6))
    for ours, theirs in zip(out, fs[2:4]):
        same_but_flow(ours.data, ip6(theirs))
    assert h1.mib["Icmp6OutType128"] == 1
    # below 1280 or above what the path has: nothing learned
    for mtu in (1000, 1400):
        update.pmtu_update.mtu = mtu
        assert not [a for a in ip.from_transport(update, 7) if type(a) is Arm]
    ip.timer(arm.key, arm.when)
    assert ip.route_output6("h1", A6("2001:db8:2::10")).mtu == 1500


def test_tcp_may_not_be_fragmented():
    ip = core()
    skb = Skb(netns="h1", data=bytes(1600), daddr6=B("2001:db8:2::10"), ip_proto=6, df=True)
    assert drops(ip.from_transport(skb, 1)) == [("ip6_xmit", "PKT_TOO_BIG")]


def test_route_output_answers_transport():
    ip = core()
    r = ip.route_output6("h1", A6("2001:db8:2::10"))
    assert (r.err, r.saddr6, r.oif, r.mtu, r.dst.nexthop6) == (0, B("2001:db8:1::10"), 2, 1500, B("2001:db8:1::1"))
    r = ip.route_output6("h1", A6("fe80::ff:fe00:101"), oif=2)
    assert (r.saddr6, r.dst.nexthop6) == (B("fe80::ff:fe00:10a"), B("fe80::ff:fe00:101"))
    r = ip.route_output6("h1", A6("2001:db8:1::10"))
    assert (r.oif, r.type, r.saddr6) == (1, 2, B("2001:db8:1::10"))      # local: through lo
    assert ip.route_output6("r1", A6("2001:db8:3::5")).err == errno.ENETUNREACH
    assert ip.netns["r1"].mib["Ip6OutNoRoutes"] == 1
    assert ip.route_output6("h1", A6("2001:db8:2::10"), A6("2001:db8:2::10")).err == errno.EADDRNOTAVAIL
    assert ip.route_output6("h1", A6("::1")).saddr6 == B("::1")


def test_route_get_as_iproute2_prints_it():
    """Formats as ip -6 route get printed them on this machine's Linux 6.18 (iproute2 6.1)."""
    ip = core()
    get = lambda host, dst, **kw: ip.route_get6(host, A6(dst), 0, **kw)[0]     # noqa: E731
    assert get("h1", "2001:db8:2::10") == \
        "2001:db8:2::10 from :: via 2001:db8:1::1 dev eth0 src 2001:db8:1::10 metric 1024 pref medium"
    assert get("h1", "2001:db8:1::1") == \
        "2001:db8:1::1 from :: dev eth0 proto kernel src 2001:db8:1::10 metric 256 pref medium"
    assert get("h1", "2001:db8:1::10") == \
        "local 2001:db8:1::10 from :: dev lo table local proto kernel src 2001:db8:1::10 metric 0 pref medium"
    assert get("h1", "fe80::1") == "fe80::1 from :: dev eth0 proto kernel src fe80::ff:fe00:10a metric 256 pref medium"
    assert get("r1", "ff02::1") == \
        "multicast ff02::1 from :: dev eth0 table local proto kernel src fe80::ff:fe00:101 metric 256 pref medium"
    assert get("h1", "2001:db8:2::10", saddr=A6("2001:db8:1::10")) == \
        "2001:db8:2::10 from 2001:db8:1::10 via 2001:db8:1::1 dev eth0 src 2001:db8:1::10 metric 1024 pref medium"
    assert get("h1", "2001:db8:2::10", saddr=A6("2001:db8:9::9")) == \
        "2001:db8:2::10 from 2001:db8:9::9 via 2001:db8:1::1 dev eth0 src 2001:db8:1::10 metric 1024 pref medium"
    with pytest.raises(RouteError) as e:
        get("r1", "2001:db8:3::5")
    assert e.value.errno == errno.ENETUNREACH


def test_source_address_selection():
    h = topology.loads("""\
hosts:
  h:
    interfaces:
      eth0: {mac: "02:00:00:00:01:0a", addresses: [2001:db8:1::10/64, fd00::10/64, 2001:db8:1::20/64]}
      eth1: {mac: "02:00:00:00:02:0a", addresses: [2001:db8:2::10/64]}
    routes:
      - default via 2001:db8:1::1
""").hosts["h"]
    ip = core(topology.Topology({"h": h}, []))
    sel = ip.netns["h"].v6.dev_get_saddr
    assert sel(A6("2001:db8:1::99"), 2) == A6("2001:db8:1::20")          # longest prefix, then the newest
    assert sel(A6("fd00::99"), 2) == A6("fd00::10")                       # same label (fc00::/7)
    assert sel(A6("2001:db8:2::1"), 3) == A6("2001:db8:2::10")            # the out device
    assert sel(A6("2001:db8:9::1"), 3) == A6("2001:db8:2::10")
    assert sel(A6("fe80::1"), 3) == ipv6.link_local(bytes.fromhex("02000000020a"))   # link-local scope
    assert sel(A6("2001:db8:2::10"), 2) == A6("2001:db8:2::10")          # the same address first


def test_hop_limit_from_devconf_and_the_socket():
    ip = core()
    h1 = ip.netns["h1"]
    h1.sysctl["net.ipv6.conf.eth0.hop_limit"] = 7
    h1.sysctl_written(["net.ipv6.conf.eth0.hop_limit"])
    body = wire6.echo(128, 1, 1, b"x", 0, 0)
    [p] = downs(ip.from_transport(Skb(netns="h1", data=body, daddr6=B("2001:db8:2::10"), ip_proto=58), 1))
    assert ipv6.parse(p.data).hop_limit == 7
    [p] = downs(ip.from_transport(Skb(netns="h1", data=body, daddr6=B("2001:db8:2::10"), ip_proto=58, ttl=3), 1))
    assert ipv6.parse(p.data).hop_limit == 3
    [p] = downs(ip.from_transport(Skb(netns="h1", data=body, daddr6=B("ff02::1"), ip_proto=58), 1))
    h = ipv6.parse(p.data)
    assert (h.hop_limit, h.src, p.nexthop6) == (1, A6("fe80::ff:fe00:10a"), B("ff02::1"))     # mcast_hops 1
    assert h1.mib["Ip6OutMcastPkts"] == 1


def test_link_down_takes_the_addresses_and_up_brings_the_link_local_back():
    ip = core()
    h1 = ip.netns["h1"]
    iproute.ip_link_set(h1, ["eth0", "down"])
    assert ip.route_output6("h1", A6("2001:db8:2::10")).err == errno.ENETUNREACH
    iproute.ip_link_set(h1, ["eth0", "up"])
    assert [a for a, _, _ in h1.v6.devs[2].addrs] == [A6("fe80::ff:fe00:10a")]    # keep_addr_on_down 0
    assert ip.route_output6("h1", A6("fe80::1"), oif=2).saddr6 == B("fe80::ff:fe00:10a")
