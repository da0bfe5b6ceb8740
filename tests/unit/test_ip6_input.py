"""The IPv6 receive path of the ip core (ip6_input, ip6_forward, icmpv6),
fed the frames Linux received in the dual-stacked default topology and
compared with what Linux sent back (tests/data/linux/ipv6): byte for byte
but the flow label, which is Linux's keyed hash of the flow."""
from ip6_frames import (A6, B, core, downs, drops, frames, ip6, rcv, same_but_flow, ups, without_flowlabel)

from pktflow.services.ip import iproute
from pktflow.services.wire import icmpv6 as wire6, ipv6
from pktflow.v1.skb_pb2 import Skb


def test_echo_request_at_h2_gets_the_reply_linux_sent():
    ip = core()
    request, reply = frames("ipv6-echo.h2")[2], frames("ipv6-echo.h2")[5]
    out = rcv(ip, "h2", "eth0", request)
    [sent] = downs(out)
    same_but_flow(sent.data, ip6(reply))
    assert (sent.ifindex, sent.nexthop6, sent.protocol) == (2, B("2001:db8:2::1"), 0x86DD)
    label = int.from_bytes(sent.data[1:4], "big") & 0xFFFFF
    assert label                                                  # auto_flowlabels=1: labelled
    c = ip.netns["h2"].mib
    assert (c["Ip6InReceives"], c["Ip6InDelivers"], c["Icmp6InMsgs"], c["Icmp6InType128"], c["Ip6OutRequests"],
            c["Icmp6OutMsgs"], c["Icmp6OutType129"], c["Ip6OutTransmits"]) == (1, 1, 1, 1, 1, 1, 1, 1)
    # the second echo (another sequence number) is the same flow: the same label, as Linux's 0xa6bf7 twice
    [again] = downs(rcv(ip, "h2", "eth0", frames("ipv6-echo.h2")[6]))
    same_but_flow(again.data, ip6(frames("ipv6-echo.h2")[7]))
    assert again.data[1:4] == sent.data[1:4]


def test_echo_request_at_r1_is_answered_from_the_address_asked():
    ip = core()
    request = bytearray(frames("ipv6-echo.h1")[3])               # h1's echo, to r1's other address
    request[14 + 24:14 + 40] = B("2001:db8:2::1")
    request[14 + 40 + 2:14 + 40 + 4] = b"\0\0"
    icmp = wire6.emit(wire6.Icmpv6Repr(128, 0, int.from_bytes(request[58:62], "big")), bytes(request[62:]),
                      A6("2001:db8:1::10"), A6("2001:db8:2::1"))
    [reply] = downs(rcv(ip, "r1", "eth0", bytes(request[:54]) + icmp))
    h = ipv6.parse(reply.data)
    assert (h.src, h.dst, h.hop_limit, reply.ifindex) == (A6("2001:db8:2::1"), A6("2001:db8:1::10"), 64, 2)
    assert reply.nexthop6 == B("2001:db8:1::10")  # on link: the destination itself


def test_echo_to_the_subnet_router_anycast_address_comes_from_a_unicast_one():
    ip = core()
    anycast = A6("2001:db8:1::")
    pkt = ipv6.header(A6("2001:db8:1::10"), anycast, 58, 16) + \
        wire6.echo(128, 7, 1, b"anycast!", A6("2001:db8:1::10"), anycast)
    [reply] = downs(rcv(ip, "r1", "eth0", bytes(14) + pkt))
    assert ipv6.parse(reply.data).src == A6("2001:db8:1::1")


def test_r1_forwards_h1s_echo_as_linux_did_hop_limit_63():
    ip = core()
    [fwd] = downs(rcv(ip, "r1", "eth0", frames("ipv6-echo.h1")[3]))
    assert fwd.data == ip6(frames("ipv6-echo.h2")[2])               # byte for byte: label kept, hop limit 63
    assert (fwd.ifindex, fwd.nexthop6) == (3, B("2001:db8:2::10"))
    c = ip.netns["r1"].mib
    assert (c["Ip6InReceives"], c["Ip6OutForwDatagrams"], c["Ip6InDelivers"], c["Ip6OutRequests"],
            c["Ip6OutTransmits"]) == (1, 1, 0, 0, 1)


def test_hop_limit_1_gets_the_time_exceeded_linux_sent():
    ip = core()
    request, error = frames("ipv6-hoplimit-exceeded.h1")[:2]
    out = rcv(ip, "r1", "eth0", request)
    [sent] = downs(out)
    same_but_flow(sent.data, ip6(error))
    assert drops(out) == [(("ipv6_rcv", "ip6_forward"), "IP_INHDR")]
    c = ip.netns["r1"].mib
    assert (c["Ip6InHdrErrors"], c["Icmp6OutType3"], c["Ip6OutForwDatagrams"]) == (1, 1, 0)


def test_no_route_gets_the_unreachable_linux_sent():
    ip = core()
    request, error = frames("ipv6-no-route.h1")
    out = rcv(ip, "r1", "eth0", request)
    [sent] = downs(out)
    same_but_flow(sent.data, ip6(error))
    assert drops(out) == [(("ipv6_rcv", "ip6_pkt_discard"), "IP_INNOROUTES")]
    assert ip.netns["r1"].mib["Ip6InNoRoutes"] == 1 and ip.netns["r1"].mib["Icmp6OutType1"] == 1


def test_too_big_at_r1_gets_the_packet_too_big_linux_sent():
    ip = core()
    r1 = ip.netns["r1"]
    assert iproute.ip_link_set(r1, ["eth1", "mtu", "1280"])[0] == 0   # record6.sh: ip link set eth1 mtu 1280
    request, error = frames("ipv6-packet-too-big.h1")[:2]
    out = rcv(ip, "r1", "eth0", request)
    [sent] = downs(out)
    same_but_flow(sent.data, ip6(error))                             # 1240 bytes: as much as fits in 1280
    assert drops(out) == [(("ipv6_rcv", "ip6_forward"), "PKT_TOO_BIG")]
    assert (r1.mib["Ip6InTooBigErrors"], r1.mib["Ip6FragFails"], r1.mib["Icmp6OutType2"]) == (1, 1, 1)


def test_a_host_does_not_forward():
    ip = core()
    out = rcv(ip, "h2", "eth0", frames("ipv6-echo.h1")[3][:14] + ipv6.header(
        A6("2001:db8:1::10"), A6("2001:db8:9::1"), 59, 0))
    assert not downs(out) and drops(out) == [(("ipv6_rcv", "ip6_forward"), "IP_INADDRERRORS")]
    assert ip.netns["h2"].mib["Ip6InAddrErrors"] == 1


def test_forwarding_off_on_r1_by_sysctl():
    ip = core()
    r1 = ip.netns["r1"]
    r1.sysctl["net.ipv6.conf.all.forwarding"] = 0
    r1.sysctl_written(["net.ipv6.conf.all.forwarding"])
    assert r1.sysctl["net.ipv6.conf.eth1.forwarding"] == 0          # all sets every device
    out = rcv(ip, "r1", "eth0", frames("ipv6-echo.h1")[3])
    assert drops(out) == [(("ipv6_rcv", "ip6_forward"), "IP_INADDRERRORS")]
    assert not [r for r in r1.v6.fib.local.routes() if r.type == 4]     # no anycast routes left


def test_udp_goes_up_with_the_header_read_once():
    ip = core()
    datagram = frames("ipv6-port-unreachable.h2")[0]
    [up] = ups(rcv(ip, "h2", "eth0", datagram))
    assert (up.saddr6, up.daddr6) == (B("2001:db8:1::10"), B("2001:db8:2::10"))
    assert (up.ip_proto, up.ttl, up.flowlabel, up.transport_header, up.head) == (17, 63, 0x2B865, 54, 54)


def test_port_unreachable_asked_by_transport_is_the_one_linux_sent():
    ip = core()
    datagram, error = frames("ipv6-port-unreachable.h2")
    [up] = ups(rcv(ip, "h2", "eth0", datagram))
    up.icmp_send.type, up.icmp_send.code = 1, 4
    [sent] = downs(ip.from_transport(up, 2))
    same_but_flow(sent.data, ip6(error))


def test_errors_go_up_decoded():
    """The time exceeded r1 sent h1, as h1 receives it: to transport with the quoted flow."""
    ip = core()
    [up] = ups(rcv(ip, "h1", "eth0", frames("ipv6-hoplimit-exceeded.h1")[1]))
    e = up.icmp_error
    assert (e.type, e.code, e.offender6, e.quoted.protocol) == (3, 0, B("2001:db8:1::1"), 58)
    assert (e.quoted.icmp_type, e.quoted.sport, e.quoted.daddr6) == (128, 4108, B("2001:db8:2::10"))
    assert up.head == 14 + 48 and e.quoted_payload == 14 + 48 + 40


def test_multicast_to_joined_groups_only():
    ip = core()
    src = A6("fe80::ff:fe00:10a")
    for group, answered in (("ff02::1", True), ("ff02::1:ff00:10", True), ("ff02::2", False), ("ff02::5", False)):
        g = A6(group)
        pkt = ipv6.header(src, g, 58, 16) + wire6.echo(128, 1, 1, b"12345678", src, g)
        out = rcv(ip, "h2", "eth0", bytes(14) + pkt, pkt_type=2)
        assert bool(downs(out)) == answered, group
    [reply] = downs(rcv(ip, "r1", "eth0", bytes(14) + ipv6.header(src, A6("ff02::2"), 58, 16) +
                        wire6.echo(128, 1, 1, b"12345678", src, A6("ff02::2")), pkt_type=2))
    assert ipv6.parse(reply.data).src == A6("fe80::ff:fe00:101")    # a router joined all-routers


def test_ndisc_reaching_ip_is_dropped_and_unknown_protocols_refused():
    ip = core()
    ns_frame = frames("ipv6-echo.h2")[0]                              # an NS to h2's solicited-node group
    out = rcv(ip, "h2", "eth0", ns_frame, pkt_type=2)
    assert drops(out) == [(("ipv6_rcv", "ip6_mc_input", "ip6_input", "ndisc_rcv"), "NOT_SPECIFIED")]
    pkt = ipv6.header(A6("2001:db8:1::10"), A6("2001:db8:2::10"), 253, 4) + b"abcd"
    out = rcv(ip, "h2", "eth0", bytes(14) + pkt)
    [err] = downs(out)
    assert err.data[40:42] == b"\x04\x01" and err.data[44:48] == (6).to_bytes(4, "big")   # pointer: next header
    assert drops(out)[-1][1] == "IP_NOPROTO" and ip.netns["h2"].mib["Ip6InUnknownProtos"] == 1


def test_header_checks_count_as_linux_does():
    ip = core()
    good = ip6(frames("ipv6-echo.h2")[2])
    cases = [(b"\x40" + good[1:], "UNHANDLED_PROTO", "Ip6InHdrErrors"),
             (good[:8] + A6("::1").to_bytes(16, "big") + good[24:], "IP_INHDR", "Ip6InHdrErrors"),
             (good[:-1], "PKT_TOO_SMALL", "Ip6InTruncatedPkts")]
    for pkt, reason, counter in cases:
        before = ip.netns["h2"].mib[counter]
        assert drops(rcv(ip, "h2", "eth0", bytes(14) + pkt))[0][1] == reason
        assert ip.netns["h2"].mib[counter] == before + 1


def test_type0_routing_header_is_refused_with_a_parameter_problem():
    from pktflow.services.wire.ipv6_exthdrs import rt0_hdr
    ip = core()
    body = rt0_hdr(59, [A6("2001:db8:2::99")], 1)
    pkt = ipv6.header(A6("2001:db8:1::10"), A6("2001:db8:2::10"), 43, len(body)) + body
    out = rcv(ip, "h2", "eth0", bytes(14) + pkt)
    [err] = downs(out)
    assert err.data[40:42] == b"\x04\x00" and err.data[44:48] == (42).to_bytes(4, "big")
    assert ip.netns["h2"].mib["Ip6InHdrErrors"] == 1


def test_errors_are_rate_limited_per_destination():
    """net.ipv6.icmp.ratelimit 100 ms, bursts of six; to a /64's host every 25 ms
    (the wider the route, the shorter the wait)."""
    ip = core()
    request = frames("ipv6-no-route.h1")[0]
    sent = [bool(downs(rcv(ip, "r1", "eth0", request, now=1_000_000_000))) for _ in range(10)]
    assert sent == [True] * 6 + [False] * 4
    assert ip.netns["r1"].mib["Icmp6OutRateLimitHost"] == 4
    assert downs(rcv(ip, "r1", "eth0", request, now=1_025_000_000))
    assert not downs(rcv(ip, "r1", "eth0", request, now=1_026_000_000))


def test_flow_labels_are_per_flow_and_follow_auto_flowlabels():
    ip = core()
    h2 = ip.netns["h2"]
    [a] = downs(rcv(ip, "h2", "eth0", frames("ipv6-echo.h2")[2]))
    h2.sysctl["net.ipv6.auto_flowlabels"] = 0
    [b] = downs(rcv(ip, "h2", "eth0", frames("ipv6-echo.h2")[6]))
    assert without_flowlabel(a.data)[:4] != a.data[:4] and b.data[1:4] == b"\0\0\0"


def test_to_itself_through_lo_link_local_too():
    """A packet this host sent itself comes back through lo with its route: local, even
    to a link-local address of another device (no input lookup there)."""
    ip = core()
    ll = A6("fe80::ff:fe00:10a")
    [out] = downs(ip.from_transport(Skb(netns="h1", data=wire6.echo(128, 9, 1, b"me", ll, ll), ip_proto=58,
                                        daddr6=ll.to_bytes(16, "big")), 1))
    assert out.ifindex == 1 and ipv6.parse(out.data).src == ll
    [reply] = downs(rcv(ip, "h1", "lo", bytes(14) + out.data))
    assert reply.ifindex == 1 and reply.data[40] == 129
