"""Helpers for the IPv6 core's tests: the Linux captures of the dual-stacked
default topology (tests/data/linux/ipv6, record6.sh), fed to the ip core as the
link layer hands frames up, and its output compared with what Linux sent."""
import random

from scapy.layers.l2 import Ether  # noqa: F401 (rdpcap reads Ethernet frames)
from scapy.utils import rdpcap

from conftest import LINUX_CAPTURES
from pktflow.services.common import topology
from pktflow.services.common.actions import Down, Drop, Up
from pktflow.services.ip.stack import Ip
from pktflow.v1.skb_pb2 import Skb

A6 = __import__("pktflow.services.wire.ipv6", fromlist=["aton"]).aton
ETH_HLEN = 14


def B(text: str) -> bytes:
    """An address as the skb's 16-byte fields hold it."""
    return A6(text).to_bytes(16, "big")

NOW = 1_000_000_000


def frames(name: str) -> list[bytes]:
    return [bytes(p) for p in rdpcap(str(LINUX_CAPTURES / "ipv6" / f"{name}.pcap"))]


def ip6(frame: bytes) -> bytes:
    """A frame's IPv6 packet (what ip hands to link)."""
    return frame[ETH_HLEN:]


def core(topo=None, seed: int = 1) -> Ip:
    return Ip(topo or topology.load(), random.Random(seed))


def rcv(ip: Ip, netns: str, ifname: str, frame: bytes, pkt_type: int = 0, now: int = NOW) -> list:
    """netif_receive_skb() handing ip an IPv6 frame, as link does (PACKET_HOST unless told)."""
    ifindex = ip.netns[netns].by_name[ifname].ifindex
    skb = Skb(netns=netns, data=frame, ifindex=ifindex, protocol=0x86DD, pkt_type=pkt_type,
              network_header=ETH_HLEN, head=ETH_HLEN)
    return ip.ip_rcv(skb, now)


def downs(actions) -> list:
    return [a.skb for a in actions if type(a) is Down]


def ups(actions) -> list:
    return [a.skb for a in actions if type(a) is Up]


def drops(actions) -> list:
    return [(a.fn, a.reason) for a in actions if type(a) is Drop]


def without_flowlabel(pkt: bytes) -> bytes:
    """The flow label is Linux's hash of the flow with its own boot-time key: it differs."""
    return pkt[:1] + bytes((pkt[1] & 0xF0,)) + b"\0\0" + pkt[4:]


def without_frag_id(pkt: bytes) -> bytes:
    """... and so does a fragment's identification (get_random_u32_above(0))."""
    if pkt[6] != 44:
        return pkt
    return pkt[:44] + b"\0\0\0\0" + pkt[48:]


def same_but_flow(ours: bytes, linux: bytes):
    assert len(ours) == len(linux)
    assert without_frag_id(without_flowlabel(ours)) == without_frag_id(without_flowlabel(linux))
