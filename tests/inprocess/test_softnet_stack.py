"""The receive side's limits through every core (services/netstack): loopback
traffic through the host's backlog (netdev_max_backlog, CPU_BACKLOG), and
short frames padded to ETH_ZLEN on the cable yet delivered as sent."""
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from pktflow.services.common import uapi
from pktflow.services.netstack import Netstack
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall


def sendto(sock, addr: str, port: int, data: bytes):
    return sock.call(ProtoCall.SENDMSG, addr=ipv4.aton(addr), port=port, data=data, last=True).err


def test_loopback_goes_through_the_backlog_and_a_full_one_drops_with_cpu_backlog():
    k = Netstack()
    srv, cli = k.socket("h1", uapi.SOCK_DGRAM), k.socket("h1", uapi.SOCK_DGRAM)
    assert srv.bind("127.0.0.1", 7000) == 0
    assert sendto(cli, "127.0.0.1", 7000, b"one") == 0
    assert srv.recv() == b"one"
    sd, lo = k.nic.softnet["h1"], k.nic.device("h1", 1)
    assert (sd.processed, sd.dropped) == (1, 0)
    assert lo.stats["rx_bytes"] == lo.stats["tx_bytes"] == 20 + 8 + 3     # without the Ethernet header

    sd.sysctl["net.core.netdev_max_backlog"] = -1                        # nothing fits
    assert sendto(cli, "127.0.0.1", 7000, b"two") == 0                 # sent: the drop is on the receive side
    assert srv.recv() == b""
    assert [(layer, fn, reason) for layer, fn, reason, _ in k.drops] == [("nic", "netif_rx", "CPU_BACKLOG")]
    assert (sd.processed, sd.dropped, lo.stats["rx_dropped"]) == (1, 1, 1)


def test_a_short_frame_crosses_padded_and_arrives_whole():
    """A 1-byte datagram is a 43-byte frame: the cable carries 60, h2's NIC
    counts 60, IP trims the padding (pskb_trim_rcsum()) and the socket gets one
    byte. The frames recorded are as the sender built them (tcpdump on h1)."""
    k = Netstack()
    srv, cli = k.socket("h2", uapi.SOCK_DGRAM), k.socket("h1", uapi.SOCK_DGRAM)
    assert srv.bind("0.0.0.0", 7001) == 0
    assert sendto(cli, "10.0.2.10", 7001, b"x") == 0
    assert srv.recv() == b"x"
    [sent] = [f for ns, _, f in k.frames if ns == "h1" and UDP in Ether(f)]
    assert len(sent) == 14 + 20 + 8 + 1
    h2 = k.nic.device("h2", k.topo.hosts["h2"].interfaces["eth0"].ifindex)
    to_h2 = [f for ns, i, f in k.frames if (ns, i) == ("r1", k.topo.hosts["r1"].interfaces["eth1"].ifindex)]
    assert [len(f) for f in to_h2] == [42, 43]                   # r1's ARP request, the datagram
    assert h2.stats["rx_bytes"] == 60 + 60
