"""The receive side's limits through every core (services/netstack): loopback
traffic through the host's backlog (netdev_max_backlog, CPU_BACKLOG)."""
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
