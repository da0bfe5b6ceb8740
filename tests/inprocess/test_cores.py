"""The transport and link cores driven directly (services/netstack): no gRPC,
no clock, Linux's answers."""
import errno

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from pktflow.services.common import uapi
from pktflow.services.netstack import Netstack
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall

H2 = ipv4.aton("10.0.2.10")


def udp_sock(k, netns="h1"):
    """A UDP socket made through the socket core; its fd, for calls straight into transport."""
    return k.socket(netns, uapi.SOCK_DGRAM).sk


def test_autobind_picks_an_ephemeral_port():
    k = Netstack()
    sk = udp_sock(k)
    ev = k.call("h1", sk, ProtoCall.SENDMSG, addr=H2, port=9, data=b"x", last=True)
    assert ev.err == 0 and 32768 <= ev.port <= 60999


def test_bind_rules():
    k = Netstack()
    a, b = udp_sock(k), udp_sock(k)
    assert k.call("h1", a, ProtoCall.BIND, addr=ipv4.aton("10.0.2.10"), port=53).err == errno.EADDRNOTAVAIL
    assert k.call("h1", a, ProtoCall.BIND, addr=ipv4.aton("10.0.1.10"), port=53).err == 0
    assert k.call("h1", a, ProtoCall.BIND, addr=0, port=54).err == errno.EINVAL
    assert k.call("h1", b, ProtoCall.BIND, addr=0, port=53).err == errno.EADDRINUSE
    assert k.call("h1", b, ProtoCall.BIND, addr=ipv4.aton("127.0.0.1"), port=53).err == 0   # another address


def test_send_errors():
    k = Netstack()
    sk = udp_sock(k, "r1")
    assert k.call("r1", sk, ProtoCall.SENDMSG, data=b"x", last=True).err == errno.EDESTADDRREQ
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=H2, port=0, data=b"x", last=True).err == errno.EINVAL
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=ipv4.aton("10.9.9.9"), port=9, data=b"x",
                  last=True).err == errno.ENETUNREACH
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=ipv4.aton("10.0.2.255"), port=9, data=b"x",
                  last=True).err == errno.EACCES                     # broadcast needs SO_BROADCAST
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=H2, port=9, data=b"x" * 65508,
                  last=True).err == errno.EMSGSIZE                   # more than an IP packet holds
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=H2, port=9, data=b"x" * 1473,
                  last=True).err == 0                                # over the MTU: fragmented
    k.call("r1", sk, ProtoCall.SETSOCKOPT, level=uapi.IPPROTO_IP, optname=uapi.IP_MTU_DISCOVER,
           optval=uapi.IP_PMTUDISC_DO)
    assert k.call("r1", sk, ProtoCall.SENDMSG, addr=H2, port=9, data=b"x" * 1473,
                  last=True).err == errno.EMSGSIZE                   # ... unless the socket said DO


def test_sent_datagram_is_a_valid_udp_packet():
    k = Netstack()
    k.learn("h1", "eth0", "10.0.1.1", "02:00:00:00:01:01")
    sk = udp_sock(k)
    k.call("h1", sk, ProtoCall.BIND, addr=0, port=4000)
    k.call("h1", sk, ProtoCall.SENDMSG, addr=H2, port=9, data=b"payload", last=True)
    [(_, _, frame)] = k.wire
    p = Ether(frame)
    assert (p[IP].src, p[IP].dst, p[IP].ttl, p[IP].flags.DF, p[IP].id) == ("10.0.1.10", "10.0.2.10", 64, True, 0)
    assert (p[UDP].sport, p[UDP].dport, bytes(p[UDP].payload)) == (4000, 9, b"payload")
    ref = p.copy()
    del ref[IP].chksum, ref[UDP].chksum
    rebuilt = Ether(bytes(ref))
    assert (rebuilt[IP].chksum, rebuilt[UDP].chksum) == (p[IP].chksum, p[UDP].chksum)


def test_connected_socket_uses_its_own_ip_ids():
    k = Netstack()
    k.learn("h1", "eth0", "10.0.1.1", "02:00:00:00:01:01")
    sk = udp_sock(k)
    k.call("h1", sk, ProtoCall.CONNECT, addr=H2, port=9)
    for _ in range(2):
        k.call("h1", sk, ProtoCall.SENDMSG, data=b"x", last=True)
    ids = [Ether(f)[IP].id for _, _, f in k.wire]
    assert ids[1] == (ids[0] + 1) & 0xFFFF                   # inet_id++, as ip_select_ident_segs()


def port_unreachable_for(k, sport: int) -> bytes:
    """h2's ICMP port unreachable about a datagram h1 sent from sport, arriving at h1."""
    inner = IP(src="10.0.1.10", dst="10.0.2.10", ttl=63) / UDP(sport=sport, dport=9) / b"x"
    from scapy.layers.inet import ICMP
    return bytes(Ether(dst="02:00:00:00:01:0a", src="02:00:00:00:01:01") /
                 IP(src="10.0.2.10", dst="10.0.1.10", ttl=63, tos=0xC0) / ICMP(type=3, code=3) / bytes(inner))


def test_port_unreachable_reaches_only_connected_sockets():
    k = Netstack()
    conn, unconn = udp_sock(k), udp_sock(k)
    k.call("h1", conn, ProtoCall.BIND, addr=0, port=5001)
    k.call("h1", conn, ProtoCall.CONNECT, addr=H2, port=9)
    k.call("h1", unconn, ProtoCall.BIND, addr=0, port=5002)
    k.receive("h1", "eth0", port_unreachable_for(k, 5001))
    k.receive("h1", "eth0", port_unreachable_for(k, 5002))
    reports = [(s.sk, s.event.err) for s in k.up if s.event.kind == s.event.ERROR_REPORT]
    assert reports == [(conn, errno.ECONNREFUSED)]


def test_ip_recverr_socket_gets_every_error():
    k = Netstack()
    sk = udp_sock(k)
    k.call("h1", sk, ProtoCall.BIND, addr=0, port=5003)
    k.call("h1", sk, ProtoCall.SETSOCKOPT, level=0, optname=11, optval=1)       # IP_RECVERR
    k.receive("h1", "eth0", port_unreachable_for(k, 5003))
    [ev] = [s.event for s in k.up if s.event.kind == s.event.ERROR_REPORT]
    assert (ev.err, ev.ee.ee_type, ev.ee.ee_code, ipv4.ntoa(ev.ee.offender), ev.errqueue) == \
        (errno.ECONNREFUSED, 3, 3, "10.0.2.10", True)


def test_demux_prefers_the_exact_address_and_the_connected_peer():
    k = Netstack()
    wildcard, exact = udp_sock(k, "h2"), udp_sock(k, "h2")
    for sk in (wildcard, exact):
        k.call("h2", sk, ProtoCall.SETSOCKOPT, level=1, optname=2, optval=1)    # SO_REUSEADDR
    k.call("h2", wildcard, ProtoCall.BIND, addr=0, port=7000)
    k.call("h2", exact, ProtoCall.BIND, addr=H2, port=7000)
    k.receive("h2", "eth0", bytes(Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") /
                                  UDP(sport=1, dport=7000) / b"x"))
    assert [s.sk for s in k.up] == [exact]


def _udp_frame(length: int, payload: bytes) -> bytes:
    """A datagram to h2:7000 whose UDP length field says `length` (checksum 0: none)."""
    return bytes(Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10") /
                 UDP(sport=1, dport=7000, len=length, chksum=0) / payload)


def test_udp_trims_bytes_beyond_its_length_field():
    """__udp4_lib_rcv(): pskb_trim_rcsum(skb, ulen); the IP payload may be longer."""
    k = Netstack()
    sk = udp_sock(k, "h2")
    k.call("h2", sk, ProtoCall.BIND, addr=0, port=7000)
    k.receive("h2", "eth0", _udp_frame(8 + 5, b"hello, and some trailing bytes"))
    [skb] = [s for s in k.up if s.sk == sk]
    assert skb.data[skb.head:] == b"hello"
    k.up.clear()
    k.receive("h2", "eth0", _udp_frame(8 + 40, b"too short for its length"))   # ulen > skb->len: short_packet
    assert not [s for s in k.up if s.sk == sk]
    assert k.drops[-1][2] == "PKT_TOO_SMALL" and k.counters("h2")["UdpInErrors"] == 1


def test_arp_request_for_another_address_is_not_answered():
    k = Netstack()
    req = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:02:01") / ARP(
        op=1, hwsrc="02:00:00:00:02:01", psrc="10.0.2.1", pdst="10.0.2.99")
    k.receive("h2", "eth0", bytes(req))
    assert k.wire == []


def test_arp_is_answered_for_any_local_address():
    k = Netstack()                                    # arp_ignore=0: the weak host model
    req = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:01:0a") / ARP(
        op=1, hwsrc="02:00:00:00:01:0a", psrc="10.0.1.10", pdst="10.0.2.1")
    k.receive("r1", "eth0", bytes(req))
    [(_, ifindex, frame)] = k.wire
    assert ifindex == 2 and Ether(frame)[ARP].psrc == "10.0.2.1" and Ether(frame).src == "02:00:00:00:01:01"


def test_unsolicited_arp_reply_creates_no_entry():
    k = Netstack()
    reply = Ether(dst="02:00:00:00:02:0a", src="02:00:00:00:02:01") / ARP(
        op=2, hwsrc="02:00:00:00:02:01", psrc="10.0.2.1", hwdst="02:00:00:00:02:0a", pdst="10.0.2.10")
    k.receive("h2", "eth0", bytes(reply))
    assert k.link.neighbours("h2") == []             # arp_accept=0


def test_forwarding_off_means_in_addr_errors():
    k = Netstack()
    frame = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.1.1") / UDP(sport=1, dport=9)
    k.receive("h2", "eth0", bytes(frame))
    assert [reason for _, _, reason, _ in k.drops] == ["IP_INADDRERRORS"]
    assert k.counters("h2")["IpInAddrErrors"] == 1 and k.wire == []


def test_martian_source_is_dropped():
    k = Netstack()
    frame = Ether(dst="02:00:00:00:02:0a") / IP(src="127.0.0.1", dst="10.0.2.10") / UDP(sport=1, dport=9)
    k.receive("h2", "eth0", bytes(frame))
    assert [reason for _, _, reason, _ in k.drops] == ["IP_LOCALNET"]


def test_unknown_protocol_is_protocol_unreachable():
    k = Netstack()
    k.learn("h2", "eth0", "10.0.2.1", "02:00:00:00:02:01")
    frame = Ether(dst="02:00:00:00:02:0a") / IP(src="10.0.1.10", dst="10.0.2.10", proto=99) / b"data"
    k.receive("h2", "eth0", bytes(frame))
    assert [reason for _, _, reason, _ in k.drops] == ["IP_NOPROTO"]
    [(_, _, err)] = k.wire
    from scapy.layers.inet import ICMP
    assert (Ether(err)[ICMP].type, Ether(err)[ICMP].code) == (3, 2)
    assert k.counters("h2")["IpInUnknownProtos"] == 1


def test_no_ephemeral_port_left_is_eagain_at_send_and_eaddrinuse_at_bind():
    """inet_autobind() returns EAGAIN when no port is free; bind() to port 0 EADDRINUSE."""
    from pktflow.services.common import topology
    topo = topology.load()
    topo.hosts["h1"].sysctls["net.ipv4.ip_local_port_range"] = (60000, 60001)
    k = Netstack(topo)
    for _ in range(2):
        assert k.call("h1", udp_sock(k), ProtoCall.SENDMSG, addr=H2, port=9, data=b"x", last=True).err == 0
    assert k.call("h1", udp_sock(k), ProtoCall.SENDMSG, addr=H2, port=9, data=b"x", last=True).err == errno.EAGAIN
    assert k.call("h1", udp_sock(k), ProtoCall.BIND, addr=0, port=0).err == errno.EADDRINUSE
