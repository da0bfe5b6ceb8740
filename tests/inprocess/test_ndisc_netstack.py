"""Neighbour discovery through the whole in-process path (services/netstack): the
link cores with the NIC cores, their rings, FCS and padding, and the cables
between them. IPv6 packets enter where the ip layer hands them to link (Skb
protocol 0x86DD, nexthop6); the neighbour discovery frames must be what Linux
6.18 put on the wire (tests/data/linux/ipv6), and what link hands up to ip the
packets it released."""
from scapy.utils import RawPcapReader

from conftest import LINUX_CAPTURES
from pktflow.services.link import addrconf, neighbour as nd
from pktflow.services.netstack import Netstack
from pktflow.services.wire import ethernet, ipv6
from pktflow.v1.skb_pb2 import Skb

A = ipv6.aton


def capture(name: str) -> list[bytes]:
    return [bytes(data) for data, _ in RawPcapReader(str(LINUX_CAPTURES / "ipv6" / f"{name}.pcap"))]


def hand_down(net: Netstack, netns: str, ifname: str, packet: bytes, nexthop: str):
    """What ip6_finish_output2() hands the device layer."""
    ifindex = net.topo.hosts[netns].interfaces[ifname].ifindex
    net.down_from("ip", Skb(netns=netns, ifindex=ifindex, data=packet, protocol=ethernet.ETH_P_IPV6,
                            nexthop6=A(nexthop).to_bytes(16, "big")))
    net.pump()


def up_to_ip(net: Netstack, calls: list):
    """Records what link hands ip (ip's IPv6 input is the ip room's)."""
    def ip_rcv(skb, now):
        calls.append(skb)
        return []
    net.ip.ip_rcv = ip_rcv


def test_h1_resolves_its_router_and_the_echo_crosses_as_on_linux():
    net, got = Netstack(), []
    up_to_ip(net, got)
    h1 = capture("ipv6-echo.h1")
    hand_down(net, "h1", "eth0", h1[3][14:], "2001:db8:1::1")
    assert [f for ns_, _, f in net.frames] == h1[1:4]
    assert [(s.netns, s.data) for s in got] == [("r1", h1[3])]
    n = net.link.netns["h1"].nd_tbl.lookup(2, A("2001:db8:1::1"))
    assert n.state == nd.NUD_REACHABLE and n.flags & nd.NTF_ROUTER
    assert net.link.neighbours("r1", nd.AF_INET6) == [
        {"dst": "2001:db8:1::10", "dev": "eth0", "lladdr": "02:00:00:00:01:0a", "state": "DELAY", "router": False}]


def test_r1_resolves_h2_from_its_link_local_address_as_on_linux():
    net, got = Netstack(), []
    up_to_ip(net, got)
    h2 = capture("ipv6-echo.h2")
    hand_down(net, "r1", "eth1", h2[2][14:], "2001:db8:2::10")
    hand_down(net, "h2", "eth0", h2[5][14:], "2001:db8:2::1")
    assert [f for _, _, f in net.frames] == h2[:6]
    assert [s.netns for s in got] == ["h2", "r1"]


def test_resolving_a_link_local_address():
    """h1 to r1's link-local address (ping fe80::ff:fe00:101%eth0): the NS from h1's
    link-local address, the NA from r1's, the packet after it."""
    net, got = Netstack(), []
    up_to_ip(net, got)
    pkt = ipv6.header(A("fe80::ff:fe00:10a"), A("fe80::ff:fe00:101"), 59, 0)
    hand_down(net, "h1", "eth0", pkt, "fe80::ff:fe00:101")
    ns_, na, sent = (f for _, _, f in net.frames)
    assert ns_[:6] == bytes.fromhex("3333ff000101") and ns_[22:38] == A("fe80::ff:fe00:10a").to_bytes(16, "big")
    assert na[22:38] == A("fe80::ff:fe00:101").to_bytes(16, "big") and na[58] & 0xE0 == 0xE0     # R, S, O
    assert sent[14:] == pkt
    assert [s.data for s in got] == [sent + bytes(6)]          # padded to 60 bytes by the NIC, as on a wire


def test_nobody_answers_three_probes_then_ip_hears_of_it():
    net, got = Netstack(), []
    up_to_ip(net, got)
    pkt = ipv6.header(A("2001:db8:1::10"), A("2001:db8:1::77"), 59, 0)
    hand_down(net, "h1", "eth0", pkt, "2001:db8:1::77")
    net.advance(3)
    assert len([f for ns_, _, f in net.frames if ns_ == "h1"]) == 3
    assert [(layer, fn, reason) for layer, fn, reason, _ in net.drops if layer == "link" and fn != "ip6_mc_input"] == \
        [("link", "neigh_timer_handler", "NEIGH_FAILED")]
    [report] = got
    assert report.HasField("link_failure") and report.link_failure.nexthop6 == A("2001:db8:1::77").to_bytes(16, "big")
    assert report.data == pkt


def test_the_start_dad_rs_and_mld_cross_the_cables():
    """Link.netdev_up() in the netstack: every frame of the start crosses the NICs;
    the addresses are ready once DAD is done; r1 learns the hosts that solicited it."""
    net, got = Netstack(), []
    up_to_ip(net, got)
    net._run("link", net.link.netdev_up(net.now))
    net.pump()
    net.advance(3)
    for host in ("h1", "r1", "h2"):
        for dev in net.link.netns[host].devices.values():
            assert all(not ifa.flags & addrconf.IFA_F_TENTATIVE for ifa in dev.idev6.ifa.values())
    assert {e["dst"] for e in net.link.neighbours("r1", nd.AF_INET6)} == {"fe80::ff:fe00:10a", "fe80::ff:fe00:20a"}
    assert not got                      # nothing of it was for ip
    rx = net.nic.device("r1", 2).stats
    assert rx["multicast"] > 0


def without_flow_label(frame: bytes) -> bytes:
    return frame[:15] + bytes([frame[15] & 0xF0]) + b"\0\0" + frame[18:]


def test_ping6_through_ip_and_link_is_linuxs_exchange_on_both_links():
    """ping -6 h1 -> h2 with the ip room's IPv6 path: h1's echo request (as a ping
    socket hands it to ip, with the flow label Linux chose) goes out after h1
    resolves its router, r1 forwards it after resolving h2, h2 resolves its router
    for the reply: every frame on both links is ipv6-echo's, in Linux's order,
    byte for byte but the reply's flow label (each host hashes its own)."""
    net = Netstack()
    h1_cap, h2_cap = capture("ipv6-echo.h1"), capture("ipv6-echo.h2")
    request = h1_cap[3]
    net._run("ip", net.ip.from_transport(Skb(netns="h1", data=request[54:], saddr6=request[22:38],
                                             daddr6=request[38:54], ip_proto=58, flowlabel=788615), net.now))
    net.pump()
    h1_link = [f for ns_, ifindex, f in net.frames if (ns_, ifindex) in (("h1", 2), ("r1", 2))]
    h2_link = [f for ns_, ifindex, f in net.frames if (ns_, ifindex) in (("r1", 3), ("h2", 2))]
    assert h1_link[:3] == h1_cap[1:4] and h2_link[:5] == h2_cap[:5]
    assert without_flow_label(h2_link[5]) == without_flow_label(h2_cap[5])
    assert without_flow_label(h1_link[3]) == without_flow_label(h1_cap[4]) and len(h1_link) == 4
    assert [e["state"] for e in net.link.neighbours("h2", nd.AF_INET6)] == ["DELAY", "REACHABLE"]
