"""Unit tests of the NIC core (services/nic/netdev.py): the cable, the RX ring
and the NET_RX softirq's NAPI polls, with the counters `ip -s link` shows."""
import zlib

import pytest
from scapy.layers.l2 import ARP, Ether

from pktflow.services.common import topology
from pktflow.services.common.actions import Drop, Up
from pktflow.services.nic.netdev import NAPI_POLL_WEIGHT, RX_RING_SIZE, Nic, fcs
from pktflow.services.wire.ethernet import ETH_ZLEN
from pktflow.v1.skb_pb2 import Skb


@pytest.fixture
def nic():
    return Nic(topology.load())


def dev(nic, netns):
    return nic.device(netns, topology.load().hosts[netns].interfaces["eth0"].ifindex)


def frame(n: int) -> bytes:
    return bytes(Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:01:0a", type=0x88B5) / n.to_bytes(4, "big"))


def test_a_frame_crosses_its_cable_with_its_fcs_and_goes_up_once_polled(nic):
    h1, r1 = dev(nic, "h1"), dev(nic, "r1")
    big = frame(1) + b"x" * 60
    nic.ndo_start_xmit(Skb(netns="h1", ifindex=h1.ifindex, data=big), 0)
    assert nic.transmit(0, 5) == []
    [rx] = r1.rx_ring
    assert (rx.data, rx.tstamp) == (big + fcs(big), 5)
    [up] = nic.net_rx_action(0)
    assert type(up) is Up and up.skb.data == big and up.skb.netns == "r1"
    assert (h1.stats["tx_packets"], r1.stats["rx_packets"], r1.stats["rx_bytes"]) == (1, 1, len(big))
    assert nic.rx_pending == {}


def test_a_short_frame_goes_on_the_cable_padded_to_eth_zlen_before_its_fcs(nic):
    """As drivers do (eth_skb_pad()) or their hardware: 60 bytes without FCS,
    zeros after the frame, the FCS over all of it; the stack's frame is untouched."""
    h1, r1 = dev(nic, "h1"), dev(nic, "r1")
    nic.wire_log = []
    short = frame(1)                                   # 18 bytes
    skb = Skb(netns="h1", ifindex=h1.ifindex, data=short)
    nic.ndo_start_xmit(skb, 0)
    nic.transmit(0, 5)
    [rx] = r1.rx_ring
    padded = short + bytes(ETH_ZLEN - len(short))
    assert len(rx.data) == ETH_ZLEN + 4 and rx.data[:ETH_ZLEN] == padded
    # the CRC-32 of a frame followed by its FCS is the constant residue: the FCS is right
    assert zlib.crc32(rx.data) == 0x2144DF1C and rx.data[ETH_ZLEN:] == fcs(padded)
    assert skb.data == short and h1.stats["tx_bytes"] == len(short)
    assert [f for _, f, _ in nic.wire_log] == [padded]          # what a tap on the wire sees
    [up] = nic.net_rx_action(0)
    assert up.skb.data == padded and r1.stats["rx_bytes"] == ETH_ZLEN


def test_frames_to_a_tap_device_are_padded_too_and_loopback_frames_not():
    topo = topology.load()
    topo.hosts["h1"].interfaces["eth0"].tap = "pftest0"
    nic = Nic(topo)
    h1 = nic.device("h1", topo.hosts["h1"].interfaces["eth0"].ifindex)
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:01:0a") / ARP(pdst="10.0.1.99"))
    nic.ndo_start_xmit(Skb(netns="h1", ifindex=h1.ifindex, data=arp), 0)
    lo = nic.device("h1", 1)
    loop = bytes(Ether(dst="00:00:00:00:00:00", src="00:00:00:00:00:00", type=0x88B5) / b"x")
    nic.ndo_start_xmit(Skb(netns="h1", ifindex=lo.ifindex, data=loop), 0)
    nic.transmit(0, 5)
    assert [(d.name, f) for d, f in nic.to_tap] == [("eth0", arp + bytes(ETH_ZLEN - len(arp)))]
    [up] = nic.net_rx_action(0)
    assert up.skb.data == loop and up.skb.ifindex == lo.ifindex     # loopback: no padding, no FCS


def test_net_rx_action_polls_devices_round_robin_a_weight_at_a_time(nic):
    """net_rx_action(): one device's flood does not starve another's frames:
    each device of a host (a CPU) is polled once a run, up to NAPI_POLL_WEIGHT;
    the flooded one is polled again in the next run."""
    e0, e1 = (nic.device("r1", topology.load().hosts["r1"].interfaces[i].ifindex) for i in ("eth0", "eth1"))
    for i in range(NAPI_POLL_WEIGHT + 6):
        nic.dma_rx(e0, frame(i) + fcs(frame(i)), Skb(), 0)
    for i in range(3):
        nic.dma_rx(e1, frame(1000 + i) + fcs(frame(1000 + i)), Skb(), 0)

    def order(actions):
        return [(a.skb.ifindex, int.from_bytes(a.skb.data[14:18], "big")) for a in actions]
    assert order(nic.net_rx_action(0)) == ([(e0.ifindex, i) for i in range(NAPI_POLL_WEIGHT)] +
                                           [(e1.ifindex, 1000 + i) for i in range(3)])
    assert list(nic.rx_pending) == [nic.softnet["r1"]]                 # e0 used its whole weight
    assert order(nic.net_rx_action(0)) == [(e0.ifindex, NAPI_POLL_WEIGHT + i) for i in range(6)]
    assert nic.rx_pending == {} and nic.softnet["r1"].time_squeeze == 0 and nic.softnet["r1"].processed == 73


def test_bad_fcs_runt_and_giant_frames_are_dropped_and_counted(nic):
    r1 = dev(nic, "r1")
    good = frame(7)
    nic.dma_rx(r1, good + b"\0\0\0\0", Skb(), 0)
    nic.dma_rx(r1, good[:10] + fcs(good[:10]), Skb(), 0)
    giant = good + b"\0" * (r1.mtu + 4)
    nic.dma_rx(r1, giant + fcs(giant), Skb(), 0)
    got = nic.net_rx_action(0)
    assert [(type(a), a.reason) for a in got] == [(Drop, "DEV_HDR"), (Drop, "PKT_TOO_SMALL"), (Drop, "PKT_TOO_BIG")]
    assert (r1.stats["rx_crc_errors"], r1.stats["rx_length_errors"], r1.stats["rx_errors"]) == (1, 2, 3)


def test_a_full_rx_ring_drops_with_full_ring(nic):
    r1 = dev(nic, "r1")
    for i in range(RX_RING_SIZE):
        assert nic.dma_rx(r1, frame(i) + fcs(frame(i)), Skb(), 0) == []
    [drop] = nic.dma_rx(r1, frame(0) + fcs(frame(0)), Skb(), 0)
    assert drop.reason == "FULL_RING" and r1.stats["rx_missed_errors"] == 1


def test_multicast_and_broadcast_frames_count_as_multicast(nic):
    """rtnl_link_stats64.multicast, what `ip -s link` shows as mcast."""
    r1 = dev(nic, "r1")
    for dst in ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "02:00:00:00:01:01"):
        f = bytes(Ether(dst=dst, src="02:00:00:00:01:0a", type=0x88B5) / (b"x" * 46))
        nic.dma_rx(r1, f + fcs(f), Skb(), 0)
    nic.net_rx_action(0)
    assert (r1.stats["rx_packets"], r1.stats["multicast"]) == (3, 2)
