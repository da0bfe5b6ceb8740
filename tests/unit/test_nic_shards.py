"""Cables between shards in the nic room (services/nic/netdev.py, server.py): the default
topology in two shards, h1 on shard 0, r1 and h2 on shard 1, so h1:eth0 -- r1:eth0 runs
between the shards' nics. The core queues what a device sends onto such a cable for the
shell (to_shard), takes what comes from the other shard into the RX ring (cable_rx), and
the device has carrier while the shell's stream to that shard is up."""
import types

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from conftest import sharded_default
from pktflow.services.common import config, topology
from pktflow.services.common.actions import Drop, Stop, Up
from pktflow.services.common.tracing import Tracer
from pktflow.services.nic.netdev import RX_RING_SIZE, Nic, eth_pad, fcs
from pktflow.services.nic.server import NicShell
from pktflow.v1.skb_pb2 import CHECKSUM_PARTIAL, Skb

H1_MAC, R1_MAC = "02:00:00:00:01:0a", "02:00:00:00:01:01"
TRACE, SPAN = bytes(range(16)), b"\x11" * 8


@pytest.fixture(scope="module")
def topo():
    return topology.loads(sharded_default(2, h1=0, r1=1, h2=1))


@pytest.fixture
def nics(topo):
    return Nic(topo.shard_view(0)), Nic(topo.shard_view(1))


def dev(nic, netns, ifname="eth0"):
    return next(d for d in nic.devices.values() if (d.netns, d.name) == (netns, ifname))


def udp(payload: bytes, src=H1_MAC, dst=R1_MAC, saddr="10.0.1.10", daddr="10.0.2.10") -> bytes:
    return bytes(Ether(src=src, dst=dst) / IP(src=saddr, dst=daddr) / UDP(sport=5000, dport=7000) / payload)


def xmit(nic, netns, data, flags=1, **kw) -> list:
    d = dev(nic, netns)
    return nic.ndo_start_xmit(Skb(netns=netns, ifindex=d.ifindex, data=data, trace_id=TRACE, span_id=SPAN,
                                  trace_flags=flags, **kw), 0)


def test_a_device_whose_cable_ends_on_another_shard_has_the_far_end_as_a_remote_peer(nics):
    zero, one = nics
    h1, r1, r1b = dev(zero, "h1"), dev(one, "r1"), dev(one, "r1", "eth1")
    assert (h1.peers, h1.remote) == ([], [(1, "r1", r1.ifindex)])
    assert (r1.peers, r1.remote) == ([], [(0, "h1", h1.ifindex)])
    assert r1b.peers == [dev(one, "h2")] and r1b.remote == []          # the cable inside shard 1
    assert h1.cable == r1.cable == "h1-eth0--r1-eth0"                 # one name at both ends
    assert (zero.remote_shards, one.remote_shards) == ([1], [0])
    assert zero.remote_sender(1, Skb(netns="r1", ifindex=r1.ifindex)) is h1
    assert [sorted(d.netns for d in n.devices.values()) for n in nics] == [["h1"] * 2, ["h2"] * 2 + ["r1"] * 3]


def test_unsharded_nothing_is_remote_and_nothing_goes_to_a_shard():
    nic = Nic(topology.load())
    assert nic.remote_shards == [] and nic.far_ends == {}
    assert all(d.remote == [] and not d.remote_up for d in nic.devices.values())
    assert xmit(nic, "h1", udp(b"x"))[0].__class__ is Stop
    assert nic.transmit(0, 5) == [] and nic.to_shard == []
    assert len(dev(nic, "r1").rx_ring) == 1


def test_without_the_stream_the_cable_has_no_carrier_and_what_is_sent_is_dropped(nics):
    zero, _ = nics
    h1 = dev(zero, "h1")
    assert not h1.carrier
    [drop] = xmit(zero, "h1", udp(b"lost"))
    assert type(drop) is Drop and (drop.fn, drop.reason) == ("ndo_start_xmit", "DEV_READY")
    assert (h1.stats["tx_carrier_errors"], h1.stats["tx_errors"], h1.stats["tx_packets"]) == (1, 1, 0)
    assert zero.transmit(0, 5) == [] and zero.to_shard == []
    assert [d["carrier"] for d in zero.link_stats("h1")] == [True, False]      # lo, eth0: NO-CARRIER
    h1.remote_up = True                                                         # the stream came up
    assert h1.carrier and [d["carrier"] for d in zero.link_stats("h1")] == [True, True]
    h1.up = False                                                               # ip link set eth0 down
    assert not h1.carrier


def test_what_a_device_sends_is_queued_for_the_shell_in_order_with_fcs_trace_and_time(nics):
    zero, _ = nics
    h1 = dev(zero, "h1")
    h1.remote_up = True
    frames = [udp(b"%d" % i * (i * 40)) for i in range(4)]          # the first two shorter than 60 bytes
    assert len(frames[0]) < 60
    for f in frames:
        [stop] = xmit(zero, "h1", f)
        assert type(stop) is Stop
    assert zero.transmit(0, 123) == []                               # nothing for this shard's rings
    assert [(s, d) for s, d, _ in zero.to_shard] == [(1, h1)] * 4
    sent = [skb for _, _, skb in zero.to_shard]
    assert [skb.data for skb in sent] == [eth_pad(f) + fcs(eth_pad(f)) for f in frames]
    for skb in sent:
        assert (skb.netns, skb.ifindex, skb.tstamp) == ("r1", 2, 123)
        assert (skb.trace_id, skb.span_id, skb.trace_flags) == (TRACE, SPAN, 1)
        assert skb.gso_size == skb.gso_segs == 0
    assert (h1.stats["tx_packets"], h1.stats["tx_bytes"]) == (4, sum(map(len, frames)))


def test_frames_from_the_other_shard_go_into_the_rx_ring_and_up_in_their_journey(nics):
    zero, one = nics
    dev(zero, "h1").remote_up = True
    frames = [udp(b"a" * n) for n in (1, 100, 1400)]
    for f in frames:
        xmit(zero, "h1", f)
    zero.transmit(0, 77)
    r1 = dev(one, "r1")
    for _, _, skb in zero.to_shard:                  # what the shell carries to shard 1
        assert one.cable_rx(skb, 0) == []
    assert len(r1.rx_ring) == 3 and one.rx_pending                   # NAPI scheduled, as for any frame
    ups = one.net_rx_action(0)
    assert [type(a) for a in ups] == [Up] * 3
    assert [a.skb.data for a in ups] == [eth_pad(f) for f in frames]  # FCS checked and taken off
    for a in ups:
        assert (a.skb.netns, a.skb.ifindex, a.skb.tstamp) == ("r1", r1.ifindex, 77)
        assert (a.skb.trace_id, a.skb.span_id, a.skb.trace_flags) == (TRACE, SPAN, 1)
    assert (r1.stats["rx_packets"], r1.stats["rx_bytes"]) == (3, sum(len(eth_pad(f)) for f in frames))
    assert one.rx_pending == {}


def test_only_the_device_whose_cable_goes_to_that_shard_takes_a_frame(topo):
    three = topology.loads(sharded_default(3, h1=0, r1=1, h2=2))
    one = Nic(three.shard_view(1))
    r1, r1b = dev(one, "r1"), dev(one, "r1", "eth1")
    frame = eth_pad(udp(b"x")) + fcs(eth_pad(udp(b"x")))
    assert r1.remote == [(0, "h1", 2)] and r1b.remote == [(2, "h2", 2)]
    for skb, shard in ((Skb(netns="r1", ifindex=r1.ifindex, data=frame), 2),     # eth0's cable goes to 0
                       (Skb(netns="r1", ifindex=r1b.ifindex, data=frame), 0),    # eth1's to 2
                       (Skb(netns="r1", ifindex=9, data=frame), 0),              # no such device
                       (Skb(netns="h1", ifindex=2, data=frame), 0)):             # not a host of this shard
        [drop] = one.cable_rx(skb, shard)
        assert type(drop) is Drop and (drop.fn, drop.reason) == ("netif_receive_skb", "DEV_READY")
    assert not r1.rx_ring and not r1b.rx_ring and one.rx_pending == {}
    assert one.cable_rx(Skb(netns="r1", ifindex=r1b.ifindex, data=frame), 2) == [] and len(r1b.rx_ring) == 1


def test_a_frame_off_another_shard_is_counted_as_any_frame_crc_errors_and_a_full_ring(nics):
    _, one = nics
    r1 = dev(one, "r1")
    good = eth_pad(udp(b"x")) + fcs(eth_pad(udp(b"x")))
    bad = good[:20] + bytes([good[20] ^ 1]) + good[21:]
    assert one.cable_rx(Skb(netns="r1", ifindex=r1.ifindex, data=bad), 0) == []
    [drop] = one.net_rx_action(0)
    assert type(drop) is Drop and drop.reason == "DEV_HDR" and r1.stats["rx_crc_errors"] == 1
    for _ in range(RX_RING_SIZE):
        assert one.cable_rx(Skb(netns="r1", ifindex=r1.ifindex, data=good), 0) == []
    [full] = one.cable_rx(Skb(netns="r1", ifindex=r1.ifindex, data=good), 0)
    assert full.reason == "FULL_RING" and (r1.stats["rx_missed_errors"], r1.stats["rx_dropped"]) == (1, 1)


def tso_packet(n: int, mss: int = 1448) -> bytes:
    payload = bytes(range(256)) * (n * mss // 256 + 1)
    return bytes(Ether(src=H1_MAC, dst=R1_MAC) / IP(src="10.0.1.10", dst="10.0.2.10", flags="DF") /
                 TCP(sport=40000, dport=8080, seq=1000, ack=1, flags="PA") / payload[:n * mss])


def test_a_gso_packet_crosses_whole_and_a_wire_recording_sees_its_frames(nics):
    """As on a cable inside a shard (a veth passes a GSO skb): one message on the stream,
    its segments' size kept; what a tap on the wire records is the frames TSO would cut."""
    zero, one = nics
    dev(zero, "h1").remote_up = True
    zero.wire_log = []
    big = tso_packet(5)
    [stop] = xmit(zero, "h1", big, gso_size=1448, gso_segs=5, ip_summed=CHECKSUM_PARTIAL)
    assert type(stop) is Stop
    zero.transmit(0, 5)
    [(_, _, skb)] = zero.to_shard
    assert (skb.data, skb.gso_size, skb.gso_segs, skb.ip_summed) == (big + fcs(big), 1448, 5, CHECKSUM_PARTIAL)
    assert [len(f) for _, f, _ in zero.wire_log] == [14 + 20 + 20 + 1448] * 5
    assert one.cable_rx(skb, 0) == []
    [up] = one.net_rx_action(0)
    assert (up.skb.data, up.skb.gso_size, up.skb.gso_segs) == (big, 1448, 5)
    # a GSO packet too big for the MTU once cut is refused as on any cable
    [drop] = xmit(zero, "h1", tso_packet(2, 1600), gso_size=1600, gso_segs=2)
    assert drop.reason == "PKT_TOO_BIG"


def test_frames_go_both_ways_between_two_cores(nics):
    """h1 -> r1 and back, each core handing what it sent to the other as the shells would."""
    zero, one = nics
    dev(zero, "h1").remote_up = dev(one, "r1").remote_up = True
    xmit(zero, "h1", udp(b"ping"))
    zero.transmit(0, 1)
    for s, _, skb in zero.to_shard:
        assert s == 1 and one.cable_rx(skb, 0) == []
    [up] = one.net_rx_action(0)
    assert up.skb.data == eth_pad(udp(b"ping"))
    xmit(one, "r1", udp(b"pong", src=R1_MAC, dst=H1_MAC, saddr="10.0.2.10", daddr="10.0.1.10"))
    one.transmit(0, 2)
    [(s, sender, skb)] = one.to_shard
    assert (s, sender, skb.netns, skb.ifindex) == (0, dev(one, "r1"), "h1", 2)
    assert zero.cable_rx(skb, 1) == []
    [back] = zero.net_rx_action(0)
    assert back.skb.data == eth_pad(udp(b"pong", src=R1_MAC, dst=H1_MAC, saddr="10.0.2.10", daddr="10.0.1.10"))
    assert dev(zero, "h1").stats["rx_packets"] == dev(one, "r1").stats["rx_packets"] == 1


# -- the shell: its streams to other shards, carrier, losses, the recording

class FakeLink:
    """A Downlink to another shard's nic, as the shell uses it."""

    def __init__(self, connected=True, refuse=None):
        self.connected, self.refuse, self.sent = connected, refuse, []

    def put(self, skb):
        if self.refuse:
            return self.refuse
        self.sent.append(skb)
        return None


@pytest.fixture
def shell(topo, monkeypatch):
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "127.0.0.1:1,127.0.0.1:2")
    monkeypatch.delenv("PKTFLOW_WIRE_PCAP", raising=False)
    sh = NicShell(topo.shard_view(0), Tracer("nic", export=False))
    sh.shard_links = {1: FakeLink()}
    return sh


def test_a_nic_refuses_to_start_when_the_shard_nics_lack_a_shard_its_cables_go_to(topo, monkeypatch):
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "127.0.0.1:1")
    with pytest.raises(config.ConfigError) as e:
        NicShell(topo.shard_view(0), Tracer("nic", export=False))
    assert "cables go to shard 1" in str(e.value) and "PKTFLOW_SHARD_NICS" in str(e.value)
    monkeypatch.delenv("PKTFLOW_SHARD_NICS")
    with pytest.raises(config.ConfigError):
        NicShell(topo.shard_view(1), Tracer("nic", export=False))
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "127.0.0.1:1,127.0.0.1:2")
    assert NicShell(topo.shard_view(1), Tracer("nic", export=False)).shard_addrs[0] == "127.0.0.1:1"
    monkeypatch.delenv("PKTFLOW_SHARD_NICS")
    NicShell(topology.load(), Tracer("nic", export=False))             # unsharded: nothing to find


def test_the_shell_takes_streams_only_from_the_shards_its_cables_go_to(shell, topo):
    assert shell.upper_layers() == ("link", "nic1")
    assert NicShell(topology.load(), Tracer("nic", export=False)).upper_layers() == ("link",)


def test_carrier_follows_the_stream_to_the_other_shard(shell):
    h1 = dev(shell.nic, "h1")
    link = shell.shard_links[1]
    link.connected = True
    shell.shard_cable(1, True)
    assert h1.carrier and not dev(shell.nic, "h1", "lo").remote_up
    link.connected = False
    shell.shard_cable(1, False)
    assert not h1.carrier
    assert xmit(shell.nic, "h1", udp(b"x"))[0].reason == "DEV_READY"
    assert h1.stats["tx_carrier_errors"] == 1
    link.connected = True
    shell.shard_cable(1, True)
    assert h1.carrier


def test_the_shell_sends_what_the_core_queued_on_the_stream_of_its_shard(shell):
    dev(shell.nic, "h1").remote_up = True
    for i in range(3):
        xmit(shell.nic, "h1", udp(b"%d" % i))
    shell.cable()
    assert [skb.data[:-4] for skb in shell.shard_links[1].sent] == [eth_pad(udp(b"%d" % i)) for i in range(3)]
    assert shell.nic.to_shard == []


def test_what_a_stream_cannot_carry_is_a_drop_on_the_host_that_sent_it(shell):
    """Queued when the stream broke (Downlink's on_lost) or refused by it (put):
    counted on h1, whose device sent it, not on r1, the far end it was for."""
    dev(shell.nic, "h1").remote_up = True
    shell.shard_links[1] = FakeLink(refuse="CPU_BACKLOG")
    xmit(shell.nic, "h1", udp(b"x"), flags=0)                  # unsampled: the shell's tracer exports nothing
    shell.cable()
    shell.shard_lost(1, [Skb(netns="r1", ifindex=2, trace_id=TRACE, span_id=SPAN)], "LAYER_UNAVAILABLE")
    assert shell.drop_sites_of(None) == [["h1", "CPU_BACKLOG", "nic_xmit", 1],
                                         ["h1", "LAYER_UNAVAILABLE", "nic_xmit", 1]]


def test_frames_from_the_other_shards_nic_go_up_to_link(topo, monkeypatch):
    monkeypatch.setenv("PKTFLOW_SHARD_NICS", "127.0.0.1:1,127.0.0.1:2")
    one = NicShell(topo.shard_view(1), Tracer("nic", export=False))
    got = []
    one.uplinks = types.SimpleNamespace(put=lambda layer, skb: got.append((layer, skb)))
    frame = eth_pad(udp(b"in")) + fcs(eth_pad(udp(b"in")))
    batch = types.SimpleNamespace(skbs=[Skb(netns="r1", ifindex=2, data=frame, tstamp=9, trace_id=TRACE,
                                            span_id=SPAN)])
    one.shard_rx(batch, 0)
    [(layer, skb)] = got
    assert (layer, skb.netns, skb.data, skb.tstamp, skb.trace_id) == ("link", "r1", frame[:-4], 9, TRACE)
    one.shard_rx(types.SimpleNamespace(skbs=[Skb(netns="r1", ifindex=3, data=frame)]), 0)   # eth1: not its cable
    assert len(got) == 1 and ["r1", "DEV_READY", "netif_receive_skb", 1] in one.drop_sites_of("r1")


def test_a_cable_between_shards_is_recorded_at_each_end_what_that_end_sent(shell, tmp_path):
    shell.wire_dir, shell.nic.wire_log = str(tmp_path), []
    dev(shell.nic, "h1").remote_up = True
    xmit(shell.nic, "h1", udp(b"recorded"))
    shell.cable()
    [pkt] = rdpcap(str(tmp_path / "h1-eth0--r1-eth0.shard0.pcap"))
    assert bytes(pkt) == eth_pad(udp(b"recorded"))
