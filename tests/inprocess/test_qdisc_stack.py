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
    arrivals(srv)
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
