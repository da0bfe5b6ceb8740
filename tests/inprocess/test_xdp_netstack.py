"""XDP through every core (services/netstack): a program that passes TCP leaves
a transfer intact; XDP_DROP ends a datagram in h2's driver (no ICMP error comes
back); XDP_TX bounces a datagram to r1 until r1 expires its TTL; a redirect at
r1 sends frames out its other cable past its ip layer; an AF_XDP socket's ring
gets what is redirected to it."""
import random

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from pktflow.services.common import uapi
from pktflow.services.iproute2 import iplink_xdp
from pktflow.services.netstack import Netstack
from pktflow.services.nic import xdp, xsk
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall
from conftest import needs_libpcap
from test_tcp import connected_pair, transfer


def attach(net, netns, ifname, *words):
    req, rest = iplink_xdp.xdp_parse(["xdp", *words], ifname)
    assert rest == []
    return xdp.dev_change_xdp(net.nic, netns, req)


def dev(net, netns, ifname="eth0"):
    return net.nic.device(netns, net.topo.hosts[netns].interfaces[ifname].ifindex)


def sendto(sock, addr: str, port: int, data: bytes):
    return sock.call(ProtoCall.SENDMSG, addr=ipv4.aton(addr), port=port, data=data, last=True).err


@needs_libpcap
def test_a_tcp_transfer_crosses_a_program_that_passes_it():
    net = Netstack()
    attach(net, "h2", "eth0", "drop", "filter", "udp port 9")
    data = random.Random(3).randbytes(200_000)
    _, cli, child = connected_pair(net)
    assert transfer(net, cli, child, data) == data
    h2 = dev(net, "h2")
    v = h2.xdp_prog.describe()["verdicts"]
    assert v["XDP_DROP"] == 0 and v["XDP_PASS"] == h2.stats["rx_queue_0_xdp_packets"] == h2.stats["rx_packets"]


@needs_libpcap
def test_drop_ends_a_datagram_in_h2s_driver():
    net = Netstack()
    attach(net, "h2", "eth0", "drop", "filter", "udp port 9")
    s = net.socket("h1", uapi.SOCK_DGRAM)
    assert sendto(s, "10.0.2.10", 9, b"to a closed port") == 0
    assert sendto(s, "10.0.2.10", 10, b"to another") == 0
    net.pump()
    xdp_drops = [(layer, reason) for layer, fn, reason, _ in net.drops if reason == "XDP"]
    assert xdp_drops == [("nic", "XDP")]
    assert net.counters("h2")["UdpNoPorts"] == 1                         # only port 10 reached udp_rcv
    assert net.counters("h1")["IcmpInDestUnreachs"] == 1


@needs_libpcap
def test_tx_bounces_a_datagram_until_r1_expires_its_ttl():
    net = Netstack()
    attach(net, "h2", "eth0", "tx", "filter", "udp")               # not ARP: r1 must learn h2's address
    s = net.socket("h1", uapi.SOCK_DGRAM)
    assert sendto(s, "10.0.2.10", 7000, b"boing") == 0
    net.pump()
    assert dev(net, "h2").stats["tx_queue_0_xdp_tx"] == 63              # TTL 64, r1 forwards while it is > 1
    assert net.counters("r1")["IcmpOutTimeExcds"] == 1 and net.counters("h1")["IcmpInTimeExcds"] == 1
    assert net.counters("h2")["IpInReceives"] == 0


@needs_libpcap
def test_a_redirect_at_r1_skips_its_ip_layer():
    """The frame leaves by r1's eth1 as it came (no program rewrites its MACs):
    h2 gets a frame addressed to r1's eth0, and drops it as another host's."""
    net = Netstack()
    attach(net, "r1", "eth0", "redirect", "eth1", "filter", "udp")
    attach(net, "r1", "eth1", "pass")                                    # ndo_xdp_xmit() needs a program
    s = net.socket("h1", uapi.SOCK_DGRAM)
    assert sendto(s, "10.0.2.10", 7000, b"redirected") == 0
    net.pump()
    assert net.counters("r1")["IpForwDatagrams"] == 0 and dev(net, "r1", "eth1").stats["tx_queue_0_xdp_tx"] == 1
    [frame] = [f for ns, i, f in net.frames if ns == "r1" and UDP in Ether(f)]
    assert Ether(frame).dst == "02:00:00:00:01:01" and Ether(frame)[UDP].payload.load == b"redirected"
    assert [reason for layer, _, reason, skb in net.drops if skb.netns == "h2"] == ["OTHERHOST"]


@needs_libpcap
def test_an_xsk_ring_gets_what_is_redirected_to_it():
    net = Netstack()
    attach(net, "h2", "eth0", "redirect", "xsk", "filter", "udp port 9000")
    s = xsk.xsk_bind(net.nic, "h2", "eth0", 0, 0, "t", rx_size=4)
    c = net.socket("h1", uapi.SOCK_DGRAM)
    for i in range(6):
        assert sendto(c, "10.0.2.10", 9000, b"%d" % i) == 0
    net.pump()
    assert [Ether(f)[UDP].payload.load for f, _ in s.take(10)] == [b"0", b"1", b"2", b"3"]
    assert s.statistics()["rx_ring_full"] == 2 and net.counters("h2")["UdpNoPorts"] == 0
    xsk.xsk_release(net.nic, s)
    assert sendto(c, "10.0.2.10", 9000, b"no socket") == 0             # none bound: passed, to udp_rcv
    net.pump()
    assert net.counters("h2")["UdpNoPorts"] == 1


@pytest.mark.parametrize("words", [("drop",), ("pass",)])
def test_generic_mode_sees_what_gro_handed_up(words):
    net = Netstack()
    req, _ = iplink_xdp.xdp_parse(["xdpgeneric", *words], "eth0")
    xdp.dev_change_xdp(net.nic, "h2", req)
    s = net.socket("h1", uapi.SOCK_DGRAM)
    assert sendto(s, "10.0.2.10", 7000, b"x") == 0
    net.pump()
    assert net.counters("h2")["UdpNoPorts"] == (words == ("pass",))
    assert "rx_queue_0_xdp_packets" not in dev(net, "h2").stats
