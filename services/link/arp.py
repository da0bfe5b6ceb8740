"""ARP (net/ipv4/arp.c): arp_rcv()/arp_process() and arp_solicit().

arp_ignore=0 and arp_announce=0, Linux's defaults: a request for any address of
the host is answered on whichever interface it came in; a probe's sender address
is the waiting packet's source when that is local to the device."""
from pktflow.v1.skb_pb2 import PACKET_HOST

from ..common.actions import Drop, Stop
from ..common.skbuff import new_skb
from ..wire import Malformed, arp, ethernet, ipv4
from . import neighbour as nd


def arp_send(netns, dev, op: int, dst_mac: bytes, target_ip: int, target_mac: bytes, sender_ip: int, cause):
    """arp_create() + arp_xmit(): a new frame, its own journey linked to `cause`."""
    body = arp.emit(arp.ArpRepr(op, dev.mac, sender_ip, target_mac, target_ip))
    frame = ethernet.header(dst_mac, dev.mac, ethernet.ETH_P_ARP) + body
    return new_skb(netns.name, frame, cause, ifindex=dev.ifindex, protocol=ethernet.ETH_P_ARP)


def solicit(netns, n: nd.Neighbour, cause, dst_mac: bytes | None) -> list:
    """arp_solicit(): who-has n.ip, broadcast while INCOMPLETE, unicast in PROBE."""
    dev = netns.devices[n.ifindex]
    saddr = 0
    if cause is not None and cause.saddr in dev.local:     # ip_hdr(skb)->saddr, as ip_queue_xmit set it
        saddr = cause.saddr
    if not saddr:
        saddr = netns.select_addr(dev, n.ip)
    skb = arp_send(netns, dev, arp.ARPOP_REQUEST, dst_mac or ethernet.BROADCAST, n.ip,
                   dst_mac or ethernet.ZERO, saddr, cause)
    netns.mib["ArpOutRequests"] += 1
    return netns.xmit(dev, skb, "arp_solicit")


def arp_rcv(netns, dev, skb, now: int) -> list:
    """An ARP frame from __netif_receive_skb_core()."""
    try:
        a = arp.parse(skb.data, skb.head)
    except Malformed as e:
        return [Drop(skb, "arp_rcv", e.reason)]
    if skb.pkt_type in (3, 5):              # PACKET_OTHERHOST, PACKET_LOOPBACK: consumed
        netns.mib["ArpInConsumed"] += 1
        return [Stop(skb, "arp_rcv")]
    if ipv4.is_multicast(a.tpa) or ipv4.is_loopback(a.tpa) or ipv4.is_multicast(a.spa):
        return [Drop(skb, "arp_rcv", "INVALID_PROTO")]
    # every ARP frame not dropped is consumed here (consume_skb(), not a drop): counted, so that
    # what a device received adds up (bench/fuzz.py)
    netns.mib["ArpInConsumed"] += 1
    out = [Stop(skb, "arp_rcv")]
    if a.op == arp.ARPOP_REQUEST and a.tpa in netns.local:
        netns.mib["ArpInRequests"] += 1
        if a.spa:                            # not a duplicate-address probe
            out += netns.neigh_update(dev, a.spa, a.sha, nd.NUD_STALE, now, create=True, weak=True)
        reply = arp_send(netns, dev, arp.ARPOP_REPLY, a.sha, a.spa, a.sha, a.tpa, skb)
        netns.mib["ArpOutReplies"] += 1
        return out + netns.xmit(dev, reply, "arp_send")
    if a.op == arp.ARPOP_REPLY:
        netns.mib["ArpInReplies"] += 1
    # Known senders are refreshed; a reply to us confirms reachability.
    state = nd.NUD_REACHABLE if a.op == arp.ARPOP_REPLY and skb.pkt_type == PACKET_HOST else nd.NUD_STALE
    out += netns.neigh_update(dev, a.spa, a.sha, state, now, create=False)
    return out
