"""TCP over IPv6 end to end in-process (net/ipv6/tcp_ipv6.c over the shared
TCP machinery): AF_INET6 stream sockets through the socket service, the
segments as Linux 6.18 sends them in the dual-stacked default topology
(tests/data/linux/ipv6/ipv6-tcp-http-get.*.pcap), dual-stack listeners,
RSTs, ICMPv6 errors, and the Tcp counters both families share."""
import errno
import json

from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from conftest import LINUX_CAPTURES
from pktflow import cli
from sockhost import Api, addr, sdk_on

AF_INET, AF_INET6, SOCK_STREAM = 2, 10, 1
IPPROTO_IPV6, IPV6_V6ONLY, IPV6_UNICAST_HOPS = 41, 26, 16
H1, H2 = "2001:db8:1::10", "2001:db8:2::10"


def tcp6(net, netns: str | None = None, link: tuple | None = None) -> list:
    """The TCP/IPv6 segments that crossed a cable (sent from netns, or either
    way on the cable of `link`: ((host, ifindex), (host, ifindex))), as scapy sees them."""
    out = []
    for ns, ifindex, frame in net.frames:
        p = Ether(frame)
        if (netns is None or ns == netns) and (link is None or (ns, ifindex) in link) and IPv6 in p and TCP in p:
            out.append(p)
    return out


H1_R1 = (("h1", 2), ("r1", 2))


def listener(api: Api, netns: str, family: int, host: str, port: int, v6only: bool = False) -> int:
    s = api.fd(netns, family, SOCK_STREAM)
    if v6only:
        api.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert api.bind(s, addr(host, port)).status.err == 0 and api.listen(s) == 0
    return s


def pair(api: Api, port: int = 8080, server: str = "::", client_family: int = AF_INET6, dest: str = H2):
    srv = listener(api, "h2", AF_INET6, server, port)
    cli_ = api.fd("h1", client_family, SOCK_STREAM)
    r = api.connect(cli_, addr(dest, port), timeout=1.0)
    assert r.status.err == 0, r.status
    child = api.accept(srv)
    assert child.status.err == 0
    return srv, cli_, child


def test_a_connection_with_python_s_names():
    api = Api()
    srv, c, child = pair(api)
    name = api.getsockname(c).addr
    assert (name.host, api.getpeername(c).addr.host, api.getpeername(c).addr.port) == (H1, H2, 8080)
    assert (child.addr.host, child.addr.port) == (H1, name.port)
    assert api.getsockname(child.fd).addr.host == H2
    assert api.sendto(c, b"GET / HTTP/1.0\r\n\r\n").sent == 18
    assert api.recv(child.fd).msgs[0].data == b"GET / HTTP/1.0\r\n\r\n"
    body = bytes(range(256)) * 40
    assert api.sendto(child.fd, body).sent == len(body)
    got = b""
    while len(got) < len(body):
        got += api.recv(c).msgs[0].data
    assert got == body
    tr = api.net.tr.netns
    assert tr["h1"].mib["TcpActiveOpens"] == 1 and tr["h2"].mib["TcpPassiveOpens"] == 1   # the Tcp table, shared


def test_the_handshake_as_linux_sends_it_over_ipv6():
    api = Api()
    pair(api)
    linux = [p for p in rdpcap(str(LINUX_CAPTURES / "ipv6" / "ipv6-tcp-http-get.h1.pcap")) if TCP in p]
    ours = tcp6(api.net, link=H1_R1)            # what a capture on h1's eth0 sees
    for mine, theirs, flags in zip(ours[:2], linux[:2], ("S", "SA")):
        assert mine[TCP].flags == theirs[TCP].flags == flags
        assert mine[TCP].window == theirs[TCP].window              # 64800 = 45 x 1440; 64260 = 45 x 1428
        kinds = [(k, v) for k, v in mine[TCP].options if k not in ("Timestamp", "WScale")]
        assert kinds == [(k, v) for k, v in theirs[TCP].options if k not in ("Timestamp", "WScale")]
        assert [k for k, _ in mine[TCP].options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
        assert dict(mine[TCP].options)["MSS"] == 1440                   # the MTU less IPv6's 40 and TCP's 20
        assert mine[IPv6].hlim == theirs[IPv6].hlim
    sk = api.net.tr.tcp.socks
    [conn] = [s for s in sk.values() if s.netns == "h1"]
    assert conn.mss_cache == 1428 and conn.advmss == 1440        # 1440 less the timestamps' 12


def test_data_segments_carry_1428_bytes_as_on_linux():
    api = Api()
    srv, c, child = pair(api)
    api.sendto(child.fd, b"x" * 20000)
    sizes = {len(p[TCP].payload) for p in tcp6(api.net, "h2") if len(p[TCP].payload)}
    assert max(sizes) == 1428
    for p in tcp6(api.net):                       # the checksum over IPv6's pseudo-header, as scapy computes it
        again = IPv6(bytes(p[IPv6]))
        del again[TCP].chksum
        assert IPv6(bytes(again))[TCP].chksum == p[TCP].chksum


def test_a_closed_port_is_refused_with_a_reset():
    api = Api()
    c = api.fd("h1", AF_INET6, SOCK_STREAM)
    assert api.connect(c, addr(H2, 9), timeout=1.0).status.err == errno.ECONNREFUSED
    rst = tcp6(api.net, "h2")[-1]
    assert rst[TCP].flags == "RA" and rst[IPv6].src == H2
    assert api.net.tr.netns["h2"].mib["TcpOutRsts"] == 1
    assert [d[2] for d in api.net.drops if d[1] == "tcp_v6_rcv"] == ["NO_SOCKET"]


def test_a_dual_stack_listener_takes_ipv4_and_a_v6only_one_does_not():
    api = Api()
    srv, c, child = pair(api, client_family=AF_INET, dest="10.0.2.10")
    assert (child.addr.host, api.getsockname(child.fd).addr.host) == ("::ffff:10.0.1.10", "::ffff:10.0.2.10")
    assert not tcp6(api.net)                                  # IPv4 on the wire
    listener(api, "h2", AF_INET6, "::", 8081, v6only=True)
    c4 = api.fd("h1", AF_INET, SOCK_STREAM)
    assert api.connect(c4, addr("10.0.2.10", 8081), timeout=1.0).status.err == errno.ECONNREFUSED
    c6 = api.fd("h1", AF_INET6, SOCK_STREAM)
    assert api.connect(c6, addr(H2, 8081), timeout=1.0).status.err == 0


def test_a_dual_stack_client_connects_over_ipv4_to_a_v4_mapped_address():
    api = Api()
    srv = listener(api, "h2", AF_INET, "", 8080)
    c = api.fd("h1", AF_INET6, SOCK_STREAM)
    r = api.connect(c, addr("::ffff:10.0.2.10", 8080), timeout=1.0)
    assert r.status.err == 0 and r.addr.host == "::ffff:10.0.1.10"
    assert api.accept(srv).addr.host == "10.0.1.10"
    only = api.fd("h1", AF_INET6, SOCK_STREAM)
    api.setsockopt(only, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert api.connect(only, addr("::ffff:10.0.2.10", 8080), timeout=1.0).status.err == errno.ENETUNREACH


def test_one_port_for_both_families():
    api = Api()
    listener(api, "h2", AF_INET, "", 8080)
    six = api.fd("h2", AF_INET6, SOCK_STREAM)
    assert api.bind(six, addr("::", 8080)).status.err == errno.EADDRINUSE
    api.setsockopt(six, IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert api.bind(six, addr("::", 8080)).status.err == 0


def test_connect_errnos():
    api = Api()
    c = api.fd("h1", AF_INET6, SOCK_STREAM)
    assert api.connect(c, addr("ff02::1", 80), timeout=1.0).status.err == errno.ENETUNREACH
    assert api.connect(c, addr("fe80::1", 80), timeout=1.0).status.err == errno.EINVAL
    assert api.connect(c, addr("10.0.2.10", 80), timeout=1.0).status.err == errno.EINVAL   # a sockaddr_in
    m = api.fd("h1", AF_INET6, SOCK_STREAM)
    assert api.bind(m, addr("ff02::1", 0)).status.err == errno.EINVAL
    r = api.fd("r1", AF_INET6, SOCK_STREAM)
    assert api.connect(r, addr("2001:db8:9::1", 80), timeout=1.0).status.err == errno.ENETUNREACH


def test_an_icmpv6_error_ends_the_handshake():
    api = Api()
    c = api.fd("h1", AF_INET6, SOCK_STREAM)
    assert api.connect(c, addr("2001:db8:3::5", 80), timeout=1.0).status.err == errno.ENETUNREACH
    assert api.net.tr.netns["h1"].mib["TcpAttemptFails"] == 1


def test_hop_limit_and_link_local():
    api = Api()
    srv = listener(api, "r1", AF_INET6, "::", 80)
    c = api.fd("h1", AF_INET6, SOCK_STREAM)
    api.setsockopt(c, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9)
    r = api.connect(c, addr("fe80::ff:fe00:101", 80, scope_id=2), timeout=1.0)
    assert r.status.err == 0 and (r.addr.host, r.addr.scope_id) == ("fe80::ff:fe00:10a", 2)
    child = api.accept(srv)
    assert (child.addr.host, child.addr.scope_id) == ("fe80::ff:fe00:10a", 2)
    assert {p[IPv6].hlim for p in tcp6(api.net, "h1")} == {9}


def test_ss_shows_ipv6_sockets_as_ss_does(monkeypatch, capsys):
    api = sdk_on(monkeypatch)
    pair(api, port=5000)
    from pktflow import _client
    from pktflow.v1 import admin_pb2
    socks = api.net.tr.tcp.sockets

    def admin(layer, netns, command, *args):
        if layer == "transport":
            return admin_pb2.AdminReply(json=json.dumps(socks(api.net.tr.netns[netns])))
        return api.shell.admin(admin_pb2.AdminRequest(layer=layer, netns=netns, command=command))
    monkeypatch.setattr(_client, "admin", admin)
    assert cli.main(["ss", "-n", "h2", "-a"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["LISTEN"] == ["LISTEN", "0", "16", "[::]:5000", "[::]:*"]
    assert rows["ESTAB"][:4] == ["ESTAB", "0", "0", "[2001:db8:2::10]:5000"]
    assert rows["ESTAB"][4].startswith("[2001:db8:1::10]:")


def narrowed() -> Api:
    """r1's eth1 at IPv6's minimum MTU, 1280: h1's 1440-byte segments cannot pass it."""
    from pktflow.services.common import topology
    from sockhost import Net
    text = topology.default_path().read_text().replace("2001:db8:2::1/64], mtu: 1500", "2001:db8:2::1/64], mtu: 1280")
    return Api(Net(topo=topology.loads(text)))


def test_packet_too_big_cuts_the_mss_and_the_data_still_arrives():
    api = narrowed()
    srv, c, child = pair(api)
    data = bytes(range(256)) * 80
    assert api.sendto(c, data).sent == len(data)
    got = b""
    for _ in range(50):
        got += b"".join(m.data for m in api.recv(child.fd).msgs) if api.net.fs.socks[child.fd].rbytes else b""
        if len(got) == len(data):
            break
        api.net.advance(0.5)                              # the retransmission timer, if it comes to that
    assert got == data
    [conn] = [s for s in api.net.tr.tcp.socks.values() if s.netns == "h1"]
    assert conn.pmtu_cookie == 1280 and conn.mss_cache == 1280 - 60 - 12      # tcp_v6_mtu_reduced()
    assert max(len(p[TCP].payload) for p in tcp6(api.net, "r1") if p[IPv6].dst == H2) == 1208


def test_packet_too_big_to_a_udp_socket_that_said_pmtudisc_do():
    api = narrowed()
    IPV6_MTU_DISCOVER, IPV6_RECVERR, IPV6_MTU, MSG_ERRQUEUE = 23, 25, 24, 0x2000
    srv = api.fd("h2", AF_INET6, 2)
    api.bind(srv, addr("::", 7000))
    s = api.fd("h1", AF_INET6, 2)
    api.setsockopt(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, 2)            # IPV6_PMTUDISC_DO
    api.setsockopt(s, IPPROTO_IPV6, IPV6_RECVERR, 1)
    api.connect(s, addr(H2, 7000))
    assert api.sendto(s, b"x" * 1400).sent == 1                       # fits h1's 1500
    [e] = api.recv(s, MSG_ERRQUEUE).msgs
    assert (e.ee.ee_errno, e.ee.ee_origin, e.ee.ee_type, e.ee.ee_info) == (errno.EMSGSIZE, 3, 2, 1280)
    assert api.getsockopt(s, IPPROTO_IPV6, IPV6_MTU) == (0, 1280)       # ip learned it
    assert api.sendto(s, b"x" * 1400).status.err == errno.EMSGSIZE
    assert api.sendto(s, b"x" * 1200).sent == 1
    assert len(api.recv(srv).msgs[0].data) == 1200


def test_tcp_over_ipv6_sends_tso_packets_that_reach_the_wire_as_mss_frames():
    """As over IPv4 (test_offloads.py): h1's driver is handed TSO packets of many
    segments, the harness's cables carry the frames tcp6_gso_segment() cuts (the
    MSS with timestamps, 1428 bytes, every checksum right), and 300 KB arrive whole."""
    import random
    api = Api()
    seen, xmit = [], api.net.nic.ndo_start_xmit

    def spy(skb, now):
        seen.append((skb.netns, skb.gso_segs))
        return xmit(skb, now)
    api.net.nic.ndo_start_xmit = spy
    srv, c, child = pair(api)
    data, sent, got = random.Random(6).randbytes(300_000), 0, b""
    for _ in range(20_000):
        if sent < len(data):
            sent += api.sendto(c, data[sent:sent + 65536]).sent
        if api.net.fs.socks[child.fd].rbytes:
            got += b"".join(m.data for m in api.recv(child.fd).msgs)
        if len(got) == len(data):
            break
        api.net.advance(0.005)
    assert got == data
    assert max(segs for ns, segs in seen if ns == "h1") >= 10
    frames = [p for p in tcp6(api.net, "h1") if p[IPv6].dst == H2]
    assert max(len(p[TCP].payload) for p in frames) == 1428
    for p in frames[:200]:
        q = p.copy()
        del q[TCP].chksum, q[IPv6].plen
        assert bytes(Ether(bytes(q))) == bytes(p)
