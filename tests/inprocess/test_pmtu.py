"""Path MTU discovery through the in-process stack: r1's link to h2 carries
only 1,400 bytes, so r1 answers h1's full-size DF packets with ICMP
"fragmentation needed" (MTU 1400); h1 keeps that as a route exception that
expires, TCP cuts its segments to it and resends (tcp_v4_mtu_reduced()), UDP
reports EMSGSIZE with the MTU and fragments what no longer fits."""
import errno

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from pktflow.services.common import topology, uapi
from pktflow.services.netstack import Netstack
from pktflow.services.transport import tcp as T
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall

H2 = ipv4.aton("10.0.2.10")


def narrow_path() -> Netstack:
    topo = topology.load()
    topo.hosts["r1"].interfaces["eth1"].mtu = 1400    # h2's side stays 1500: h2 offers MSS 1460
    return Netstack(topo)


def frag_needed(net) -> list:
    return [p for _, _, f in net.frames if ICMP in (p := Ether(f)) and p[ICMP].type == 3 and p[ICMP].code == 4]


def ip_mtu(s) -> tuple[int, int]:
    """getsockopt(IPPROTO_IP, IP_MTU): (errno, the value)."""
    ev = s.call(ProtoCall.GETSOCKOPT, level=uapi.IPPROTO_IP, optname=uapi.IP_MTU, optlen=4)
    return ev.err, int.from_bytes(ev.optval, "little")


def test_tcp_learns_the_path_mtu_and_the_transfer_completes():
    """The stall of issue 11: h2 offers MSS 1460, so h1 sends 1500-byte DF
    segments that r1 cannot forward into its 1400-byte link."""
    net = narrow_path()
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", 80) == 0 and srv.listen() == 0
    cli = net.socket("h1")
    assert cli.connect("10.0.2.10", 80) == errno.EINPROGRESS
    child = srv.accept()
    sk = cli.info()
    assert sk.mss_cache == 1448
    data = bytes(range(256)) * 80             # 20,480 bytes
    sent, got = 0, b""
    while len(got) < len(data):
        if sent < len(data):
            sent += max(0, cli.send(data[sent:]))
        got += child.recv()
        net.advance(0.01)
        assert net.now < 60e9, f"stalled at {len(got)} of {len(data)} bytes"
    assert got == data
    [icmp, *_] = frag_needed(net)
    assert icmp[ICMP].nexthopmtu == 1400 and icmp[IP].src == "10.0.1.1"
    assert sk.pmtu_cookie == 1400 and sk.mss_cache == 1400 - 40 - 12 and ip_mtu(cli) == (0, 1400)
    assert ip_mtu(srv) == (errno.ENOTCONN, 0)                          # a listener has no route
    assert net.ip.route_output("h1", H2).mtu == 1400
    c = net.counters("h1")
    assert c["IcmpInDestUnreachs"] >= 1 and c["TcpRetransSegs"] >= 1
    big = [p for p in (Ether(f) for ns, _, f in net.frames if ns == "h1") if TCP in p and p[IP].len > 1400]
    assert len(big) == len(frag_needed(net))          # every oversized segment drew one error, then no more
    assert sk.state == T.ESTABLISHED


def test_the_learned_mtu_expires_and_min_pmtu_bounds_it():
    net = narrow_path()
    ns = net.ip.netns["h1"]
    from pktflow.services.ip import route
    actions = route.ip_rt_update_pmtu(ns, H2, 1400, net.now)
    assert net.ip.route_output("h1", H2).mtu == 1400
    assert route.ip_rt_update_pmtu(ns, H2, 1450, net.now) == []        # never raised
    net._run("ip", actions)
    assert net.ip.route_get("h1", H2, net.now) == ["10.0.2.10 via 10.0.1.1 dev eth0 src 10.0.1.10 uid 0 ",
                                                   "    cache expires 600sec mtu 1400 "]
    net.advance(599)
    assert net.ip.route_output("h1", H2).mtu == 1400
    net.advance(2)                                                     # net.ipv4.route.mtu_expires: 600 s
    assert net.ip.route_output("h1", H2).mtu == 1500 and not ns.pmtu
    assert net.ip.route_get("h1", H2, net.now)[1] == "    cache "
    route.ip_rt_update_pmtu(ns, H2, 296, net.now)                      # below min_pmtu: 552, locked
    assert net.ip.route_output("h1", H2).mtu == 552 and ns.pmtu[H2].locked
    assert route.ip_rt_update_pmtu(ns, H2, 1000, net.now) == []


def test_udp_reports_emsgsize_with_the_mtu_then_fragments():
    net = narrow_path()
    rx = net.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    tx = net.socket("h1", uapi.SOCK_DGRAM)
    assert tx.setsockopt(uapi.IPPROTO_IP, uapi.IP_RECVERR, 1) == 0
    assert tx.connect("10.0.2.10", 7000) == 0
    assert ip_mtu(tx) == (0, 1500)
    payload = b"u" * 1472                                  # fits h1's link: sent with DF (IP_PMTUDISC_WANT)
    assert tx.call(ProtoCall.SENDMSG, data=payload, last=True).err == 0
    assert rx.recv() == b""
    [err] = [e.event for e in tx.mine() if e.event.kind == e.event.ERROR_REPORT]
    assert (err.err, err.ee.ee_type, err.ee.ee_code, err.ee.ee_info) == (errno.EMSGSIZE, 3, 4, 1400)
    assert err.errqueue and ipv4.ntoa(err.ee.offender) == "10.0.1.1"
    assert ip_mtu(tx) == (0, 1400)
    assert tx.call(ProtoCall.SENDMSG, data=payload, last=True).err == 0     # now too big: fragments
    assert rx.recv() == payload
    assert net.counters("h1")["IpFragCreates"] == 2


def test_ip_pmtudisc_dont_ignores_fragmentation_needed():
    net = narrow_path()
    rx = net.socket("h2", uapi.SOCK_DGRAM)
    assert rx.bind("10.0.2.10", 7000) == 0
    tx = net.socket("h1", uapi.SOCK_DGRAM)
    assert ip_mtu(tx) == (errno.ENOTCONN, 0)
    assert tx.setsockopt(uapi.IPPROTO_IP, uapi.IP_MTU_DISCOVER, uapi.IP_PMTUDISC_DONT) == 0
    assert tx.connect("10.0.2.10", 7000) == 0
    tx.call(ProtoCall.SENDMSG, data=b"u" * 1472, last=True)           # DONT: no DF, r1 fragments it
    assert not frag_needed(net) and net.counters("r1")["IpFragCreates"] == 2
    assert rx.recv() == b"u" * 1472 and not tx.errors()
