"""Qdiscs in the stack: a tbf on r1's eth1 lets a burst through and then holds
the rate (the frames leave at the watchdog's times), and its counters say so;
a bfifo too small drops with QDISC_DROP; replacing a qdisc frees what it held."""
from pktflow.services.common import uapi
from pktflow.services.iproute2 import tc_qdisc
from pktflow.services.link import sch_api
from pktflow.services.netstack import Netstack
from pktflow.v1.skb_pb2 import ProtoCall


def tc(k, *words):
    def kernel(req):
        try:
            qdiscs, actions = sch_api.tc_qdisc(k.link.netns["r1"], req)
        except sch_api.QdiscError as e:
            return e.err, e.extack, []
        k._run("link", actions)
        return 0, "", qdiscs
    return tc_qdisc.tc_qdisc(list(words), kernel)


def pair(k):
    """A UDP receiver on h2 and a sender on h1 that has resolved its neighbours."""
    srv = k.socket("h2", uapi.SOCK_DGRAM)
    srv.bind("10.0.2.10", 7000)
    cli = k.socket("h1", uapi.SOCK_DGRAM)
    cli.connect("10.0.2.10", 7000)
    send(k, cli, 1)
    k.advance(0.01)                                  # ARP, and the frame over a slow cable
    assert arrivals(srv) == 1
    return srv, cli


def send(k, cli, n: int, size: int = 1000):
    for i in range(n):
        cli.call(ProtoCall.SENDMSG, data=bytes(size), index=i, last=i == n - 1)
    k.pump()


def arrivals(srv) -> int:
    got, _ = srv.s.dequeue(len(srv.s.rcvq))
    return len(got)


def test_tbf_holds_the_rate_after_its_burst():
    k = Netstack()
    srv, cli = pair(k)
    tc(k, "add", "dev", "eth1", "root", "tbf", "rate", "1mbit", "burst", "3kb", "latency", "1s")
    send(k, cli, 10)
    assert arrivals(srv) == 2                        # 3 KiB of bucket: two 1042-byte frames at once
    k.advance(0.0084)                                # 1042 bytes at 1 mbit/s: 8.3 ms a frame
    assert arrivals(srv) == 1
    k.advance(0.0834 * 7)
    assert arrivals(srv) == 7
    [_, sent, _] = tc(k, "-s", "show", "dev", "eth1")
    assert sent.startswith(" Sent 10420 bytes 10 pkt (dropped 0, overlimits ")


def test_a_full_bfifo_drops_with_qdisc_drop():
    k = Netstack()
    srv, cli = pair(k)
    tc(k, "add", "dev", "eth1", "root", "tbf", "rate", "1mbit", "burst", "2kb", "limit", "3000")
    send(k, cli, 10)
    drops = [d for d in k.drops if d[3].netns == "r1"]
    # one sent on the bucket, two queued (2,084 bytes of 3,000), seven dropped
    assert {d[2] for d in drops} == {"QDISC_DROP"} and len(drops) == 7
    tc(k, "del", "dev", "eth1", "root")
    assert [d[2] for d in k.drops if d[3].netns == "r1"].count("QUEUE_PURGE") == 2


def test_netem_under_tbf_delays_then_holds_the_rate():
    """The usual pairing: tbf shapes, netem under it adds the delay; the frames
    arrive 50 ms late and then at 1 mbit/s."""
    k = Netstack()
    srv, cli = pair(k)
    tc(k, "add", "dev", "eth1", "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "2kb", "latency", "1s")
    tc(k, "add", "dev", "eth1", "parent", "1:1", "handle", "10:", "netem", "delay", "50ms")
    send(k, cli, 4)
    assert arrivals(srv) == 0
    k.advance(0.0499)
    assert arrivals(srv) == 0
    k.advance(0.0002)
    assert arrivals(srv) == 1                        # the bucket holds one 1042-byte frame's worth
    k.advance(0.0084 * 3)
    assert arrivals(srv) == 3
    lines = tc(k, "-s", "show", "dev", "eth1")
    assert lines[3].startswith("qdisc netem 10: parent 1:1 limit 1000 delay 50ms")


def slow_r1(default_qdisc: str = "") -> Netstack:
    """examples/topologies/bufferbloat.yaml: r1's eth1 at 10 mbit/s (and r1's
    net.core.default_qdisc, if given)."""
    from pathlib import Path

    from pktflow.services.common import topology
    text = (Path(__file__).parents[2] / "examples" / "topologies" / "bufferbloat.yaml").read_text()
    if default_qdisc:
        text = text.replace("net.ipv4.ip_forward: 1", f"net.ipv4.ip_forward: 1\n      net.core.default_qdisc: "
                                                      f"{default_qdisc}")
    return Netstack(topology.loads(text))


def test_a_line_rate_spaces_frames_by_their_serialization_time():
    """10 mbit/s on r1's eth1: a 1042-byte frame is 1066 bytes on the cable (FCS,
    preamble, gap), 852.8 us; a burst leaves one frame per 852.8 us, the rest
    waiting in the default pfifo_fast."""
    k = slow_r1()
    srv, cli = pair(k)
    send(k, cli, 10)
    assert arrivals(srv) == 0
    k.advance(0.000852)
    assert arrivals(srv) == 0
    k.advance(0.000002)
    assert arrivals(srv) == 1
    k.advance(0.000853 * 9)
    assert arrivals(srv) == 9
    [line, sent, _] = tc(k, "-s", "show", "dev", "eth1")
    # the counters include the ARP request and pair()'s first datagram: 42 + 11 x 1042 bytes
    assert line.startswith("qdisc pfifo_fast 0: root refcnt 2") and sent.startswith(" Sent 11504 bytes 12 pkt")


def test_a_saturated_link_fills_the_default_queue_then_drops():
    """1,300 datagrams at once into 10 mbit/s: the ring takes BQL's share (three
    frames: 3,028 bytes, two full frames' worth), pfifo_fast its 1,000, the other
    297 are dropped with QDISC_DROP; the 1,003 reach h2 (whose socket buffer,
    unread, keeps what fits)."""
    k = slow_r1()
    srv, cli = pair(k)
    send(k, cli, 1300)
    drops = [d for d in k.drops if d[3].netns == "r1"]
    assert {d[2] for d in drops} == {"QDISC_DROP"} and len(drops) == 297
    k.advance(2)
    at_h2 = [d for d in k.drops if d[3].netns == "h2"]
    assert arrivals(srv) + len(at_h2) == 1003
    assert tc(k, "-s", "show", "dev", "eth1")[1].endswith("(dropped 297, overlimits 0 requeues 0) ")


def ping_rtt_under_load(root: list[str]) -> float:
    """h1 saturates r1's 10 mbit/s eth1 with a UDP burst, then pings h2: the ms
    until the reply, in the emulator's time (1 ms steps)."""
    k = slow_r1()
    if root:
        tc(k, "add", "dev", "eth1", "root", *root)
    srv, cli = pair(k)
    send(k, cli, 900)
    ping = k.socket("h1", uapi.SOCK_DGRAM, uapi.IPPROTO_ICMP)
    ping.connect("10.0.2.10", 0)
    ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"rtt?", last=True)
    for ms in range(1, 3000):
        k.advance(0.001)
        if ping.recv():
            return ms
    raise AssertionError("no echo reply in 3 s")


def test_bufferbloat_pfifo_fast_queues_the_ping_fq_codel_does_not():
    """The bufferbloat picture: behind 900 queued frames of 0.85 ms each, the
    default pfifo_fast makes the ping wait for all of them; fq_codel gives the
    ping's flow its turn at once."""
    fifo = ping_rtt_under_load([])
    fq = ping_rtt_under_load(["fq_codel"])
    assert 700 <= fifo <= 800 and fq <= 5, (fifo, fq)


def ping_rtt_under_tcp(root: list[str], seconds: float = 4.0) -> tuple[int, int]:
    """(idle ping RTT, ping RTT after `seconds` of a TCP bulk transfer h1 -> h2
    saturating r1's 10 mbit/s eth1), in ms of the emulator's time."""
    k = slow_r1()
    if root:
        tc(k, "add", "dev", "eth1", "root", *root)
    srv = k.socket("h2")
    srv.bind("10.0.2.10", 5001)
    srv.listen()
    cli = k.socket("h1")
    cli.connect("10.0.2.10", 5001)
    k.advance(0.05)
    child = srv.accept()
    ping = k.socket("h1", uapi.SOCK_DGRAM, uapi.IPPROTO_ICMP)
    ping.connect("10.0.2.10", 0)

    def rtt(busy: bool) -> int:
        ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"rtt?", last=True)
        for ms in range(1, 3000):
            while busy and cli.send(bytes(65536)) > 0:
                pass
            k.advance(0.001)
            child.recv()
            if ping.recv():
                return ms
        raise AssertionError("no echo reply in 3 s")
    idle = rtt(False)
    for _ in range(int(seconds * 1000)):                  # the sender's buffer kept full, h2 reading
        while cli.send(bytes(65536)) > 0:
            pass
        k.advance(0.001)
        child.recv()
    return idle, rtt(True)


def test_bufferbloat_with_a_tcp_bulk_transfer():
    """The issue's picture with TCP: the bulk transfer fills pfifo_fast and the
    ping waits behind it; fq_codel keeps the ping near the idle RTT."""
    idle, fifo = ping_rtt_under_tcp([])
    _, fq = ping_rtt_under_tcp(["fq_codel"])
    assert idle <= 2 and fifo >= 50 * idle and fq <= 3 * idle, (idle, fifo, fq)


def test_net_core_default_qdisc_fq_codel_is_what_most_distributions_set():
    """net.core.default_qdisc = fq_codel (systemd's default): every device gets it
    with no tc at all, shown with handle 0:, and the bufferbloat is gone."""
    k = slow_r1("fq_codel")
    assert tc(k, "show", "dev", "eth1") == ["qdisc fq_codel 0: root refcnt 2 limit 10240p flows 1024 quantum 1514 "
                                            "target 5ms interval 100ms memory_limit 32Mb ecn drop_batch 64 "]
    srv, cli = pair(k)
    send(k, cli, 900)
    ping = k.socket("h1", uapi.SOCK_DGRAM, uapi.IPPROTO_ICMP)
    ping.connect("10.0.2.10", 0)
    ping.call(ProtoCall.SENDMSG, data=bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"rtt?", last=True)
    k.advance(0.005)
    assert ping.recv()


def test_a_deleted_root_qdisc_gives_way_to_the_default_of_the_moment():
    k = slow_r1("pfifo")
    assert tc(k, "show", "dev", "eth1") == ["qdisc pfifo 0: root refcnt 2 limit 1000p"]
    k.link.netns["r1"].sysctl["net.core.default_qdisc"] = "fq_codel"          # sysctl -w, then
    tc(k, "add", "dev", "eth1", "root", "tbf", "rate", "1mbit", "burst", "2kb", "latency", "10ms")
    tc(k, "del", "dev", "eth1", "root")                                       # a fresh default
    assert tc(k, "show", "dev", "eth1")[0].startswith("qdisc fq_codel 0: root refcnt 2 limit 10240p")
