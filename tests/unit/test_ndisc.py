"""Neighbour discovery in the link room (services/link/ndisc.py over nd_tbl:
neighbour.py's NUD machine for IPv6), driven through the link cores of the
default topology joined by their cables (linkwire.py), with a fake clock.

The oracle is Linux 6.18 (tests/data/linux/ipv6, record6.sh): every neighbour
discovery frame of ipv6-echo (both links) is rebuilt here byte for byte; the
rules are net/ipv6/ndisc.c's and net/core/neighbour.c's (ndisc_recv_ns/na,
__neigh_update). DAD, router solicitations and MLD: test_link_addrconf.py."""
import pytest
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6,
                                in6_getnsmac)
from scapy.layers.l2 import Ether

from linkwire import (A, H1, H2, LL_R1A, MAC_H1, MAC_R1A, MS, R1A, R1B, S, LinkWire, capture, frame, na_frame, ndp,
                      ns_frame)
from pktflow.services.common import tracepoints
from pktflow.services.link import neighbour as nd
from pktflow.services.wire import ethernet, icmpv6, ipv6


def drops(w, netns=None) -> list[tuple]:
    return [(n, fn, reason) for n, fn, reason, _ in w.drops if netns in (None, n)]


def entry(w, netns, ifname, addr: str):
    return w.ns(netns).nd_tbl.lookup(w.ifindex(netns, ifname), A(addr))


# ---------------------------------------------------------------- golden: what Linux 6.18 sends

def test_the_echo_captures_neighbour_discovery_byte_for_byte():
    """ping -6 h1 -> h2 (ipv6-echo): the packets Linux's ip layers handed down, in
    the order they did, make exactly the frames captured on both links: h1's NS
    for its router from its global address to ff02::1:ff00:1 and r1's NA (R, S,
    O, target link-layer option); r1's NS for h2 from its link-local address (the
    forwarded packet's source is not r1's) and h2's NA (S, O, no R); h2's NS for
    its router and r1's NA; the echoes with the MACs resolved; r1's reply to h1
    needs no NS (r1 learned h1 from its solicitation)."""
    h1_cap, h2_cap = capture("ipv6-echo.h1"), capture("ipv6-echo.h2")
    w = LinkWire()
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:2::10", "2001:db8:1::1", packet=h1_cap[3][14:])
    w.send6("r1", "eth1", "2001:db8:1::10", "2001:db8:2::10", packet=h2_cap[2][14:])
    w.send6("h2", "eth0", "2001:db8:2::10", "2001:db8:1::10", "2001:db8:2::1", packet=h2_cap[5][14:])
    w.send6("r1", "eth0", "2001:db8:2::10", "2001:db8:1::10", packet=h1_cap[4][14:])
    assert w.on_link(H1, R1A) == h1_cap[1:5]
    assert w.on_link(R1B, H2) == h2_cap[:6]
    assert not w.drops
    assert [(n, fn) for n, fn, _ in w.up] == [("r1", "__netif_receive_skb_core"), ("h2", "__netif_receive_skb_core"),
                                              ("r1", "__netif_receive_skb_core"), ("h1", "__netif_receive_skb_core")]


def test_the_captured_frames_as_scapy_reads_them():
    """The NS and NA, read by scapy: checksums as scapy computes them, hop limit
    255, the solicited-node group and its MAC, the flags and options."""
    w = LinkWire()
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:2::10", "2001:db8:1::1")
    ns_, na = (Ether(f) for f in ndp(w.on_link(H1, R1A)))
    for p, layer in ((ns_, ICMPv6ND_NS), (na, ICMPv6ND_NA)):
        rebuilt = p.copy()
        del rebuilt[layer].cksum
        assert bytes(Ether(bytes(rebuilt))) == bytes(p)
        assert p[IPv6].hlim == 255 and p[IPv6].fl == 0 and p[IPv6].tc == 0
    assert ns_.dst == in6_getnsmac(bytes.fromhex("ff0200000000000000000001ff000001")) == "33:33:ff:00:00:01"
    assert ns_[IPv6].dst == "ff02::1:ff00:1" and ns_[ICMPv6ND_NS].tgt == "2001:db8:1::1"
    assert ns_[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:01:0a"
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 1, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:01:01" and na[IPv6].src == "2001:db8:1::1"


# ---------------------------------------------------------------- egress: resolution through nd_tbl

def test_three_multicast_solicitations_then_failed_and_address_unreachable():
    """Nobody has 2001:db8:1::77: NS to its solicited-node group at 0, 1, 2 s
    (mcast_solicit 3, retrans_time 1 s), then the queued packets are dropped
    (NEIGH_FAILED) and ip is told for each (LinkFailure.nexthop6)."""
    w = LinkWire()
    p1 = w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::77")
    w.advance(0.5)
    p2 = w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::77")
    w.advance(5)
    sent = [(t, Ether(f)) for t, n, _, f in w.frames if n == "h1"]
    assert [t for t, _ in sent] == [0, S, 2 * S]
    for _, p in sent:
        assert p.dst == "33:33:ff:00:00:77" and p[IPv6].dst == "ff02::1:ff00:77"
        assert p[ICMPv6ND_NS].tgt == "2001:db8:1::77" and p[IPv6].src == "2001:db8:1::10"
    assert entry(w, "h1", "eth0", "2001:db8:1::77").state == nd.NUD_FAILED
    assert drops(w, "h1") == [("h1", "neigh_timer_handler", "NEIGH_FAILED")] * 2
    assert drops(w, "r1") == [("r1", "ip6_mc_input", "OTHERHOST")] * 3          # not r1's group
    reports = [skb for n, fn, skb in w.up if fn == "ndisc_error_report"]
    assert [r.link_failure.nexthop6 for r in reports] == [A("2001:db8:1::77").to_bytes(16, "big")] * 2
    assert [r.data for r in reports] == [p1.data, p2.data] and reports[0].netns == "h1"


def test_a_group_needs_no_resolution():
    """ff02::1 and ff02::1:2: 33:33 and the group's low 32 bits, no NS."""
    w = LinkWire()
    w.send6("h1", "eth0", "fe80::ff:fe00:10a", "ff02::1")
    w.send6("h1", "eth0", "fe80::ff:fe00:10a", "ff05::1:3")
    assert [f[:6] for f in w.on_link(H1)][:2] == [bytes.fromhex("333300000001"), bytes.fromhex("333300010003")]
    assert not ndp(w.on_link(H1)) and not w.ns("h1").nd_tbl.entries


def test_probe_asks_by_unicast_from_the_link_local_address():
    """A STALE entry used goes DELAY, then PROBE after delay_first_probe_time (5 s):
    unicast NS to the neighbour itself (its MAC), from the link-local address when
    the packet's source is not ours."""
    w = LinkWire()
    w.send6("r1", "eth1", "2001:db8:1::10", "2001:db8:2::10")        # resolved: REACHABLE
    w.advance(60)                                                     # REACHABLE -> STALE
    assert entry(w, "r1", "eth1", "2001:db8:2::10").state == nd.NUD_STALE
    n0 = len(w.frames)
    w.send6("r1", "eth1", "2001:db8:1::10", "2001:db8:2::10")
    assert entry(w, "r1", "eth1", "2001:db8:2::10").state == nd.NUD_DELAY
    w.advance(5)
    probe = Ether(ndp([f for _, n, _, f in w.frames[n0:] if n == "r1"], 135)[0])
    assert probe.dst == "02:00:00:00:02:0a" and probe[IPv6].dst == "2001:db8:2::10"
    assert probe[IPv6].src == "fe80::ff:fe00:201" and probe[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:02:01"
    # h2 answers a unicast NS without the override flag nor its link-layer option (ndisc_recv_ns: inc is 0)
    na = Ether(ndp([f for _, n, _, f in w.frames[n0:] if n == "h2"], 136)[0])
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1, 0)
    assert ICMPv6NDOptDstLLAddr not in na
    assert entry(w, "r1", "eth1", "2001:db8:2::10").state == nd.NUD_REACHABLE


def test_arp_and_neighbour_discovery_keep_their_tables_apart():
    w = LinkWire()
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::1")
    ns_ = w.ns("h1")
    assert len(ns_.nd_tbl.entries) == 1 and not ns_.neigh.entries
    assert ns_.nd_tbl.family == nd.AF_INET6 and ns_.neigh.family == nd.AF_INET
    assert ("nd", "h1", 2, A("2001:db8:1::1")) in w.timers


# ---------------------------------------------------------------- ingress: ndisc_recv_ns

def test_a_dad_probe_for_our_address_is_answered_to_all_nodes():
    """Another node's DAD NS for r1's (ready) address: NA to ff02::1, not solicited,
    override, router (r1 forwards), target option; nothing learned about ::."""
    w = LinkWire()
    w.receive("r1", "eth0", ns_frame(0, A("2001:db8:1::1"), lladdr=False, nonce=b"\1\2\3\4\5\6"))
    na = Ether(ndp(w.on_link(R1A), 136)[0])
    assert na.dst == "33:33:00:00:00:01" and na[IPv6].dst == "ff02::1" and na[IPv6].src == "2001:db8:1::1"
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 0, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:01:01"
    assert not w.ns("r1").nd_tbl.entries
    assert drops(w, "r1") == [("r1", ("ndisc_rcv", "ndisc_recv_ns"), "NOT_SPECIFIED")]   # as ndisc_recv_ns leaves it


def test_a_solicitation_creates_a_stale_entry_and_is_answered():
    w = LinkWire()
    peer = A("2001:db8:1::77")
    w.receive("h1", "eth0", ns_frame(peer, A("2001:db8:1::10"), dst_mac=ipv6.multicast_mac(
        ipv6.solicited_node(A("2001:db8:1::10")))))
    n = entry(w, "h1", "eth0", "2001:db8:1::77")
    assert n.lladdr == b"\x02\0\0\0\x01\x77" and n.state == nd.NUD_DELAY        # STALE, then used by the NA
    na = Ether(ndp(w.on_link(H1), 136)[0])
    assert na.dst == "02:00:00:00:01:77" and na[IPv6].dst == "2001:db8:1::77"
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1, 1)
    assert [(n_, fn) for n_, fn, _ in w.stops] == [("h1", ("ndisc_rcv", "ndisc_recv_ns"))]
    assert not w.drops


def test_a_unicast_solicitation_without_its_address_is_answered_after_resolving():
    """No source link-layer option (allowed in a unicast NS): the entry is made,
    NONE; the NA waits for our own NS to resolve the solicitor."""
    w = LinkWire()
    peer = A("2001:db8:1::77")
    w.receive("h1", "eth0", ns_frame(peer, A("2001:db8:1::10"), dst=A("2001:db8:1::10"), dst_mac=MAC_H1,
                                     lladdr=False))
    assert entry(w, "h1", "eth0", "2001:db8:1::77").state == nd.NUD_INCOMPLETE
    ours = Ether(ndp(w.on_link(H1), 135)[0])
    assert ours[IPv6].dst == "ff02::1:ff00:77" and ours[IPv6].src == "2001:db8:1::10"
    assert not ndp(w.on_link(H1), 136)
    w.receive("h1", "eth0", na_frame(peer, A("2001:db8:1::10"), peer, icmpv6.ND_NA_SOLICITED | icmpv6.ND_NA_OVERRIDE,
                                     b"\x02\0\0\0\x01\x77", MAC_H1))
    na = Ether(ndp(w.on_link(H1), 136)[0])
    assert na.dst == "02:00:00:00:01:77" and (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 0)
    assert ICMPv6NDOptDstLLAddr not in na


def test_a_solicitation_for_someone_else_is_not_ours():
    w = LinkWire()
    w.receive("h1", "eth0", ns_frame(A("2001:db8:1::77"), A("2001:db8:1::55"), dst=A("2001:db8:1::10"),
                                     dst_mac=MAC_H1))
    assert drops(w) == [("h1", ("ndisc_rcv", "ndisc_recv_ns"), "IPV6_NDISC_NS_OTHERHOST")]
    assert not w.frames


@pytest.mark.parametrize("mutate, fn, reason", [
    (lambda f: f[:21] + b"\xfe" + f[22:], "ndisc_rcv", "IPV6_NDISC_HOP_LIMIT"),
    (lambda f: f[:56] + bytes([f[56] ^ 1]) + f[57:], "icmpv6_rcv", "ICMP_CSUM"),
    (lambda f: f[:18] + b"\x01\x00" + f[20:], "ipv6_rcv", "PKT_TOO_SMALL"),
    (lambda f: f[:55] + b"\x01" + f[56:], "icmpv6_rcv", "ICMP_CSUM"),
])
def test_malformed_neighbour_discovery_is_dropped_with_its_reason(mutate, fn, reason):
    w = LinkWire()
    good = ns_frame(A("2001:db8:1::77"), A("2001:db8:1::10"), dst_mac=ipv6.multicast_mac(
        ipv6.solicited_node(A("2001:db8:1::10"))))
    w.receive("h1", "eth0", mutate(good))     # (the hop limit is not in the checksum)
    assert drops(w) == [("h1", fn, reason)] and not w.frames


def test_only_the_groups_the_device_joined_are_taken():
    """33:33 frames: all-nodes and our solicited-node groups everywhere,
    all-routers only on r1 (forwarding); any other group is not for us."""
    w = LinkWire()
    assert w.dev("h1", "eth0").idev6.macs == {bytes.fromhex(m) for m in ("333300000001", "3333ff000010",
                                                                         "3333ff00010a")}
    assert bytes.fromhex("333300000002") in w.dev("r1", "eth0").idev6.macs
    assert bytes.fromhex("3333ff000000") in w.dev("r1", "eth0").idev6.macs      # 2001:db8:1::, the anycast's group
    rs = frame(b"\x02\0\0\0\x01\x77", bytes.fromhex("333300000002"), A("fe80::77"), ipv6.IN6ADDR_LINKLOCAL_ALLROUTERS,
               icmpv6.RouterSolicit(icmpv6.nd_options(source_ll=b"\x02\0\0\0\x01\x77")))
    w.receive("h1", "eth0", rs)
    assert drops(w) == [("h1", "ip6_mc_input", "OTHERHOST")]
    w.receive("r1", "eth0", rs)
    assert entry(w, "r1", "eth0", "fe80::77").state == nd.NUD_STALE


def test_other_ipv6_goes_up_to_ip():
    w = LinkWire()
    pkt = ipv6.header(A("2001:db8:1::77"), A("2001:db8:1::10"), 58, 8) + b"\x80\0\0\0\0\0\0\0"
    w.receive("h1", "eth0", ethernet.header(MAC_H1, b"\x02\0\0\0\x01\x77", ethernet.ETH_P_IPV6) + pkt)
    (netns, fn, skb), = w.up
    assert (netns, fn, skb.protocol, skb.pkt_type, skb.network_header) == ("h1", "__netif_receive_skb_core",
                                                                          0x86DD, 0, 14)


# ---------------------------------------------------------------- ingress: ndisc_recv_na and __neigh_update

def _resolved(w):
    """h1's entry for r1 REACHABLE (router) through a real NS/NA."""
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::1")
    n = entry(w, "h1", "eth0", "2001:db8:1::1")
    assert n.state == nd.NUD_REACHABLE and n.lladdr == MAC_R1A and n.flags & nd.NTF_ROUTER
    return n


NEW_MAC = b"\x02\0\0\0\x09\x09"


@pytest.mark.parametrize("flags, state, mac", [
    (0, nd.NUD_STALE, MAC_R1A),                                      # no override: the address kept, STALE
    (icmpv6.ND_NA_OVERRIDE, nd.NUD_STALE, NEW_MAC),                  # override: the new one, STALE
    (icmpv6.ND_NA_OVERRIDE | icmpv6.ND_NA_SOLICITED, nd.NUD_REACHABLE, NEW_MAC),
    (icmpv6.ND_NA_SOLICITED, nd.NUD_STALE, MAC_R1A),                 # solicited, no override: refused -> STALE
])
def test_an_advertisement_with_another_address(flags, state, mac):
    w = LinkWire()
    n = _resolved(w)
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), A("2001:db8:1::10"), A("2001:db8:1::1"), flags, NEW_MAC,
                                     MAC_H1))
    assert (n.state, n.lladdr) == (state, mac)
    # OVERRIDE_ISROUTER: an accepted NA without R makes it a host; a refused address keeps the flag
    assert bool(n.flags & nd.NTF_ROUTER) == (mac == MAC_R1A)


def test_the_router_flag_follows_an_accepted_advertisement():
    w = LinkWire()
    n = _resolved(w)
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), A("2001:db8:1::10"), A("2001:db8:1::1"),
                                     icmpv6.ND_NA_SOLICITED | icmpv6.ND_NA_OVERRIDE, MAC_R1A, MAC_H1))
    assert n.state == nd.NUD_REACHABLE and not n.flags & nd.NTF_ROUTER
    assert w.link.neighbours("h1", nd.AF_INET6) == [
        {"dst": "2001:db8:1::1", "dev": "eth0", "lladdr": "02:00:00:00:01:01", "state": "REACHABLE", "router": False}]


def test_an_unsolicited_advertisement_of_the_same_address_keeps_reachable():
    w = LinkWire()
    n = _resolved(w)
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), ipv6.IN6ADDR_LINKLOCAL_ALLNODES, A("2001:db8:1::1"),
                                     icmpv6.ND_NA_ROUTER | icmpv6.ND_NA_OVERRIDE, MAC_R1A,
                                     bytes.fromhex("333300000001")))
    assert n.state == nd.NUD_REACHABLE


def test_advertisements_nobody_asked_for_change_nothing():
    """An NA for an unknown target (accept_untracked_na 0) or a FAILED entry is
    not taken: dropped (NOT_SPECIFIED), no entry made."""
    w = LinkWire()
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), A("2001:db8:1::10"), A("2001:db8:1::1"),
                                     icmpv6.ND_NA_SOLICITED | icmpv6.ND_NA_OVERRIDE, MAC_R1A, MAC_H1))
    assert not w.ns("h1").nd_tbl.entries
    assert drops(w) == [("h1", ("ndisc_rcv", "ndisc_recv_na"), "NOT_SPECIFIED")]
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::66")
    w.advance(3)
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::66"), A("2001:db8:1::10"), A("2001:db8:1::66"),
                                     icmpv6.ND_NA_SOLICITED | icmpv6.ND_NA_OVERRIDE, NEW_MAC, MAC_H1))
    assert entry(w, "h1", "eth0", "2001:db8:1::66").state == nd.NUD_FAILED


def test_a_multicast_solicited_advertisement_is_refused():
    w = LinkWire()
    _resolved(w)
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), ipv6.IN6ADDR_LINKLOCAL_ALLNODES, A("2001:db8:1::1"),
                                     icmpv6.ND_NA_SOLICITED, MAC_R1A, bytes.fromhex("333300000001")))
    assert drops(w) == [("h1", ("ndisc_rcv", "ndisc_recv_na"), "NOT_SPECIFIED")]


# ---------------------------------------------------------------- the rest

def test_r1_answers_for_its_subnet_router_anycast_address_after_a_delay():
    """2001:db8:1:: (r1 forwards): the NA waits a random time below 0.8 s
    (proxy_delay), comes from r1's address on that subnet, without override."""
    w = LinkWire()
    w.receive("r1", "eth0", ns_frame(A("2001:db8:1::10"), A("2001:db8:1::"), src_mac=MAC_H1))
    assert not ndp(w.on_link(R1A), 136)
    w.advance(0.8)
    na = Ether(ndp(w.on_link(R1A), 136)[0])
    assert na[ICMPv6ND_NA].tgt == "2001:db8:1::" and na[IPv6].src == "2001:db8:1::1"
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 1, 0)
    assert 0 < w.frames[-1][0] < 800 * MS


def test_a_host_ignores_router_solicitations_and_redirects_are_dropped():
    w = LinkWire()
    rs = frame(b"\x02\0\0\0\x01\x77", bytes.fromhex("333300000001"), A("fe80::77"), ipv6.IN6ADDR_LINKLOCAL_ALLNODES,
               icmpv6.RouterSolicit(icmpv6.nd_options(source_ll=b"\x02\0\0\0\x01\x77")))
    w.receive("h1", "eth0", rs)
    redirect = frame(MAC_R1A, MAC_H1, LL_R1A, A("2001:db8:1::10"),
                     icmpv6.Redirect(A("fe80::5"), A("2001:db8:9::1"), icmpv6.nd_options()))
    w.receive("h1", "eth0", redirect)
    assert drops(w) == [("h1", ("ndisc_rcv", "ndisc_recv_rs"), "NOT_SPECIFIED"),
                        ("h1", ("ndisc_rcv", "ndisc_redirect_rcv"), "NOT_SPECIFIED")]
    assert not w.ns("h1").nd_tbl.entries


def test_the_neigh_update_tracepoint_for_ipv6():
    w = LinkWire()
    w.link.probes.on = frozenset({tracepoints.NEIGH_UPDATE})
    w.receive("h1", "eth0", na_frame(A("2001:db8:1::1"), A("2001:db8:1::10"), A("2001:db8:1::1"), 0, MAC_R1A, MAC_H1))
    assert not w.link.probes.take()                 # no entry: ndisc_recv_na makes none, no update
    _resolved(w)
    events = [f for tp, netns, f in w.link.probes.take() if tp == tracepoints.NEIGH_UPDATE]
    assert events[-1] == {"family": 10, "dev": "eth0", "lladdr": "", "nud_state": "incomplete",
                          "primary_key4": "0.0.0.0", "primary_key6": "2001:db8:1::1", "new_lladdr": "020000000101",
                          "new_state": "reachable"}


def test_counters_of_neighbour_discovery():
    w = LinkWire()
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::1")
    h1, r1 = w.ns("h1").mib, w.ns("r1").mib
    assert (h1["Icmp6OutNeighborSolicits"], h1["Icmp6OutType135"], h1["Icmp6InNeighborAdvertisements"]) == (1, 1, 1)
    assert (r1["Icmp6InNeighborSolicits"], r1["Icmp6OutNeighborAdvertisements"], r1["Icmp6InMsgs"]) == (1, 1, 1)


def test_the_spans_of_neighbour_discovery():
    """Each frame's hop is named after the kernel functions that made it: a
    probe ndisc_solicit -> ndisc_send_ns, the answer ndisc_send_na, the packet
    that waited __neigh_event_send then dev_queue_xmit, DAD's probe from
    addrconf_dad_work, the RS, MLD's reports; each NDP message received ends
    its hop in ndisc_rcv and its handler."""
    w = LinkWire()
    seen = []
    run = w.run
    w.run = lambda actions: (seen.extend((a.skb.netns, a.fn) for a in actions if type(a).__name__ in ("Down", "Stop")),
                             run(actions))
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::1")
    assert seen == [("h1", ("ndisc_solicit", "ndisc_send_ns")), ("h1", "__neigh_event_send"),
                    ("r1", ("ndisc_rcv", "ndisc_recv_ns")), ("r1", ("ndisc_send_na", "dev_queue_xmit")),
                    ("h1", ("ndisc_rcv", "ndisc_recv_na")), ("h1", "dev_queue_xmit")]
    seen.clear()
    w.up_all()
    w.advance(3)
    fns = {fn for netns, fn in seen if netns == "h1" and isinstance(fn, tuple) and fn[0] != "ndisc_rcv"}
    assert fns == {("mld_ifc_work", "mld_sendpack"), ("mld_dad_work", "mld_sendpack"),
                   ("addrconf_dad_work", "ndisc_send_ns"), ("addrconf_dad_completed", "ndisc_send_rs")}


def test_neigh_update_flags_as_neigh_update_reads_them():
    """__neigh_update() on its own: no address and none known changes nothing;
    an unchanged state keeps its timer (no action); OVERRIDE_ISROUTER without
    ISROUTER clears NTF_ROUTER."""
    import random
    from pktflow.services.common import sysctl
    t = nd.NeighTable(nd.NeighParms(sysctl.defaults(), nd.AF_INET6), random.Random(1), nd.AF_INET6)
    assert t.parms.retrans_time == S and t.parms.mcast_probes == 3 and t.parms.ucast_probes == 3
    f = nd.NEIGH_UPDATE_F_OVERRIDE | nd.NEIGH_UPDATE_F_WEAK_OVERRIDE
    assert t.update(2, 7, None, nd.NUD_STALE, 0, True, flags=f) == [] and t.lookup(2, 7).state == nd.NUD_NONE
    out = t.update(2, 7, MAC_R1A, nd.NUD_REACHABLE, 0, False, flags=f | nd.NEIGH_UPDATE_F_OVERRIDE_ISROUTER |
                   nd.NEIGH_UPDATE_F_ISROUTER)
    n = t.lookup(2, 7)
    assert n.state == nd.NUD_REACHABLE and n.flags & nd.NTF_ROUTER and [k for k, _, _ in out] == [nd.TIMER]
    assert t.update(2, 7, MAC_R1A, nd.NUD_REACHABLE, S, False, flags=f) == [] and n.confirmed == S
    t.update(2, 7, None, nd.NUD_STALE, 2 * S, False, flags=f | nd.NEIGH_UPDATE_F_OVERRIDE_ISROUTER)
    assert n.state == nd.NUD_REACHABLE and not n.flags & nd.NTF_ROUTER


def test_ip_6_neigh_prints_as_iproute2(monkeypatch, capsys):
    """`pktflow ip -6 neigh -n h1` through the link layer's admin (`neigh -6`), as
    iproute2 prints nd_tbl: a router's entry says so; NONE entries are not shown;
    `ip neigh` stays ARP's."""
    from pktflow import _client, cli
    from pktflow.services.link.server import LinkShell
    from pktflow.v1 import admin_pb2
    w = LinkWire()
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::1")
    w.send6("h1", "eth0", "2001:db8:1::10", "2001:db8:1::77")
    w.ns("h1").nd_tbl.update(2, A("2001:db8:1::5"), None, nd.NUD_STALE, 0, True, flags=0)     # NONE
    shell = LinkShell(w.topo)
    shell.link = w.link

    def admin(layer, netns, command, *args):
        assert layer == "link"
        return shell.admin(admin_pb2.AdminRequest(netns=netns, command=command, args=list(args)))
    monkeypatch.setattr(_client, "admin", admin)
    assert cli.cmd_ip(["-6", "neigh", "-n", "h1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2001:db8:1::1 dev eth0 lladdr 02:00:00:00:01:01 router REACHABLE", "2001:db8:1::77 dev eth0 INCOMPLETE"]
    assert cli.cmd_ip(["neigh", "show", "-n", "h1"]) == 0
    assert capsys.readouterr().out == ""
    w.advance(3)
    assert cli.cmd_ip(["-n", "r1", "-6", "neigh"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2001:db8:1::10 dev eth0 lladdr 02:00:00:00:01:0a DELAY"]

