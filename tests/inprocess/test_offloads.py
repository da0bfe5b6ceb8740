"""TSO and GSO through the whole stack (services/netstack): TCP hands one packet
of many segments down; a cable between emulated NICs carries it whole, as a
veth does, a TAP device (and the harness's physical cables) get MSS-sized
frames; where the cut happens follows the device's offloads as `ethtool -K`
sets them."""
import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pktflow.services.netstack import Netstack
from test_tcp import connected_pair, transfer

ETH_P_ALL = 0x0003


def spy_driver(net) -> list:
    """(netns, gso_segs) of every skb handed to a driver."""
    seen, xmit = [], net.nic.ndo_start_xmit

    def spy(skb, now):
        seen.append((skb.netns, skb.gso_segs))
        return xmit(skb, now)
    net.nic.ndo_start_xmit = spy
    return seen


def h1_eth0(net):
    ns = net.link.netns["h1"]
    return ns, next(d for d in ns.devices.values() if d.name == "eth0")


def bulk(net, n=300_000) -> bytes:
    data = random.Random(1).randbytes(n)
    _, cli, child = connected_pair(net)
    assert transfer(net, cli, child, data) == data
    return data


def wire_tcp(net, netns):
    return [Ether(f) for ns, _, f in net.frames if ns == netns and TCP in Ether(f)]


def gso_frame(net) -> object:
    """A 10-segment GSO packet from h1's eth0 to r1, as the link layer hands it down."""
    from pktflow.v1.skb_pb2 import Skb
    big = bytes(Ether(src="02:00:00:00:01:0a", dst="02:00:00:00:01:01") / IP(src="10.0.1.10", dst="10.0.2.10") /
                TCP(flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / bytes(14480))
    return Skb(data=big, netns="h1", ifindex=h1_eth0(net)[1].ifindex, gso_size=1448, gso_segs=10)


def test_an_emulated_cable_carries_a_gso_packet_whole_as_a_veth_does():
    net = Netstack()
    nic = net.nic
    nic.ndo_start_xmit(gso_frame(net), net.now)
    nic.transmit(net.now, 0)
    r1 = nic.device("r1", net.topo.hosts["r1"].interfaces["eth0"].ifindex)
    (rx,) = r1.rx_ring
    assert (rx.gso_size, rx.gso_segs, len(rx.data)) == (1448, 10, 14 + 20 + 32 + 14480 + 4)
    (up,) = [a.skb for a in nic.napi_poll(r1, net.now)]
    assert up.gso_segs == 10                                # up to r1's stack in one piece


def test_a_tap_cable_gets_the_frames_tso_cuts():
    net = Netstack()
    nic = net.nic
    nic.devices[("h1", h1_eth0(net)[1].ifindex)].tap = "tap-test"      # the wire ends at Linux
    nic.ndo_start_xmit(gso_frame(net), net.now)
    assert [len(s.data) for _, s in nic.on_wire] == [14 + 20 + 32 + 1448] * 10


def test_tcp_sends_tso_packets_and_a_physical_wire_carries_mss_frames():
    net = Netstack()
    seen = spy_driver(net)
    bulk(net)
    from_h1 = [segs for ns, segs in seen if ns == "h1"]
    assert max(from_h1) >= 10                              # superpackets reached the "hardware"
    frames = wire_tcp(net, "h1")
    assert max(len(p) for p in frames) == 1514             # and left it cut to the MSS
    assert all(p[IP].len == len(p[IP]) for p in frames)


@pytest.mark.parametrize("tso,gso", [(False, True), (False, False)])
def test_without_tso_the_stack_cuts_before_the_driver(tso, gso):
    net = Netstack()
    seen = spy_driver(net)
    ns, dev = h1_eth0(net)
    dev.tso, dev.gso = tso, gso
    ns.taps[dev.ifindex] = {99: ETH_P_ALL}                 # a capture on h1's eth0 sees what the driver gets
    data = bulk(net)
    assert {segs for n, segs in seen if n == "h1"} == {0}
    captured = [Ether(s.data) for s in net.up if s.sk == 99 and s.pkt_type == 4 and TCP in Ether(s.data)]
    assert max(len(p) for p in captured) == 1514
    assert sum(len(p[TCP].payload) for p in {(p[TCP].seq, bytes(p[TCP].payload)): p
                                             for p in captured}.values()) == len(data)


def test_a_capture_with_tso_on_shows_the_large_packets_as_tcpdump_does():
    net = Netstack()
    ns, dev = h1_eth0(net)
    ns.taps[dev.ifindex] = {99: ETH_P_ALL}
    bulk(net)
    sizes = [len(s.data) for s in net.up if s.sk == 99 and s.pkt_type == 4]
    assert max(sizes) > 10 * 1514 and max(sizes) <= 65535 + 14


def test_tso_packets_obey_the_window_and_cwnd_and_tso_autosize():
    net = Netstack()
    seen = spy_driver(net)
    bulk(net, 100_000)
    # the first flight: the initial cwnd of 10 segments, in one packet
    first = next(segs for ns, segs in seen if ns == "h1" and segs)
    assert first == 10
    assert max(segs for ns, segs in seen if ns == "h1") <= 65536 // 1448
