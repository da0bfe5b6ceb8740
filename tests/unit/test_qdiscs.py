"""The qdisc cores against a fake clock: pfifo_fast's bands and limit, pfifo and
bfifo limits, tbf's tokens (the rate held, the burst let through, the watchdog
time), fq_codel's round robin and CoDel's drop schedule (interval/sqrt(count)),
ECN marking instead of dropping, and the fattest flow paying when full."""
import math

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pktflow.services.common.actions import Drop
from pktflow.services.common.skbuff import new_skb
from pktflow.services.link.sch_fq_codel import MS, FqCodel, control_law
from pktflow.services.link.sch_generic import Fifo, PfifoFast
from pktflow.services.link.sch_tbf import Tbf

S = 1_000_000_000


def frame(size: int = 1000, sport: int = 1000, priority: int = 0, tos: int = 0):
    f = bytes(Ether() / IP(src="10.0.1.10", dst="10.0.2.10", tos=tos) / UDP(sport=sport, dport=9))
    skb = new_skb("r1", f + bytes(size - len(f)), priority=priority)
    skb.protocol = 0x0800
    return skb


def test_pfifo_fast_serves_band_0_first_and_holds_txqueuelen():
    q = PfifoFast(limit=3)
    bulk, best, interactive = frame(priority=1), frame(priority=0), frame(priority=6)   # bands 2, 1, 0
    for skb in (bulk, best, interactive):
        q.enqueue(skb, 0)
    assert type(q.enqueue(frame(), 0)[0]) is Drop and q.stats["drops"] == 1
    out, wake = q.dequeue(0)
    assert out == [interactive, best, bulk] and wake is None
    assert (q.stats["packets"], q.stats["bytes"], q.stats["backlog"]) == (3, 3000, 0)


def test_pfifo_and_bfifo_limits():
    p, b = Fifo(2), Fifo(2500, in_bytes=True)
    assert [type(p.enqueue(frame(), 0)[0]).__name__ for _ in range(3)] == ["Stop", "Stop", "Drop"]
    assert [type(b.enqueue(frame(), 0)[0]).__name__ for _ in range(3)] == ["Stop", "Stop", "Drop"]
    assert (p.kind, b.kind, b.stats["backlog"]) == ("pfifo", "bfifo", 2000)


def test_tbf_lets_a_burst_through_then_holds_the_rate():
    rate = 125_000                                       # 1 mbit/s in bytes/s
    q = Tbf(rate=rate, burst=3000, limit=100_000)
    for _ in range(10):
        q.enqueue(frame(1000), 0)
    out, wake = q.dequeue(0)
    assert len(out) == 3 and wake == 8 * S // 1000      # the bucket's 3000 bytes, then 1000 bytes' time
    assert q.stats["overlimits"] == 1
    sent, now = 3, wake
    while sent < 10:
        out, wake = q.dequeue(now)
        sent += len(out)
        now = wake if wake is not None else now
    assert now == 7 * 8 * S // 1000                      # 7 more frames at 8 ms each: the rate, exactly
    assert q.stats["packets"] == 10 and q.stats["bytes"] == 10_000
    assert type(q.enqueue(frame(4000), now)[0]) is Drop  # larger than the bucket: never fits


def test_fq_codel_round_robin_gives_a_thin_flow_its_turn():
    q = FqCodel()
    for _ in range(20):
        q.enqueue(frame(1500, sport=1), 0)               # a fat flow
    q.enqueue(frame(100, sport=2), 0)                    # a thin one behind it
    first = [q.dequeue_one(0, []) for _ in range(3)]
    sports = [int.from_bytes(s.data[34:36], "big") for s in first]
    assert 2 in sports[:3]                               # not after all twenty


def test_codel_drops_at_interval_over_sqrt_count():
    """A standing queue: one frame a ms, dequeued 20 ms after it came. CoDel waits
    one interval (100 ms) above target, then drops with gaps interval/sqrt(n),
    1/sqrt(n) as the kernel computes it: one Newton step per drop from the last
    value (so the second gap is 50 ms, not 70.7, as in Linux)."""
    q = FqCodel(ecn=False)
    drops_at, now = [], 0
    for ms in range(600):
        now = ms * MS
        q.enqueue(frame(1000), now)
        if ms >= 20:
            dropped = []
            q.dequeue_one(now, dropped)
            if dropped:
                drops_at.append(ms)
    assert drops_at and 120 <= drops_at[0] <= 125        # target exceeded from the start: an interval later
    gaps = [b - a for a, b in zip(drops_at, drops_at[1:])]
    x, expect = 1.0, [100.0]
    for n in range(2, len(gaps) + 1):
        x = x * (3 - n * x * x) / 2
        expect.append(100 * x)
    assert len(gaps) >= 8 and all(abs(g - e) <= 1.5 for g, e in zip(gaps, expect)), (gaps, expect)
    assert abs(expect[7] - 100 / math.sqrt(8)) < 2                # converging on interval/sqrt(count)


def test_codel_marks_ect_packets_instead_of_dropping():
    q = FqCodel()
    for ms in range(300):
        q.enqueue(frame(1000, tos=0x02), ms * MS)        # ECT(0)
        if ms >= 20:
            q.dequeue_one(ms * MS, dropped := [])
            assert dropped == []
    assert q.xstats["ecn_mark"] > 0


def test_a_full_fq_codel_drops_from_the_fattest_flow():
    q = FqCodel(limit=10)
    for _ in range(10):
        q.enqueue(frame(1000, sport=1), 0)
    out = q.enqueue(frame(100, sport=2), 0)
    assert [type(a).__name__ for a in out] == ["Drop"] * 5 + ["Stop"]    # half the fat flow's backlog
    assert q.qlen == 6 and q.xstats["drop_overlimit"] == 5


def test_control_law_is_the_kernels_fixed_point():
    interval = (100 * MS) >> 10
    assert control_law(0, interval, 0xFFFF) in range(interval - 2, interval + 1)   # count 1: one interval


# -- tc's words through the link layer's kernel side (outputs captured with iproute2 6.1 here)
def tc(ns, *words):
    from pktflow.services.iproute2 import tc_qdisc
    from pktflow.services.link import sch_api

    def kernel(req):
        try:
            return 0, "", sch_api.tc_qdisc(ns, req)[0]
        except sch_api.QdiscError as e:
            return e.err, e.extack, []
    return tc_qdisc.tc_qdisc(list(words), kernel)


def r1_link():
    import random

    from pktflow.services.common import topology
    from pktflow.services.link.dev import Link
    return Link(topology.load(), random.Random(1)).netns["r1"]


def test_tc_adds_and_shows_tbf_and_the_fifos_as_tc_prints_them():
    ns = r1_link()
    tc(ns, "add", "dev", "eth1", "root", "tbf", "rate", "10mbit", "burst", "32kbit", "latency", "400ms")
    assert tc(ns, "show", "dev", "eth1") == ["qdisc tbf 8001: root refcnt 2 rate 10Mbit burst 4Kb lat 400ms "]
    tc(ns, "replace", "dev", "eth1", "root", "tbf", "rate", "1mbit", "burst", "4kb", "limit", "20000")
    assert tc(ns, "show", "dev", "eth1") == ["qdisc tbf 8001: root refcnt 2 rate 1Mbit burst 4Kb lat 127ms "]
    for words, line in ((["pfifo", "limit", "50"], "qdisc pfifo 8002: root refcnt 2 limit 50p"),
                        (["bfifo"], "qdisc bfifo 8003: root refcnt 2 limit 1514000b"),
                        (["pfifo"], "qdisc pfifo 8004: root refcnt 2 limit 1000p"),
                        (["pfifo_fast"], "qdisc pfifo_fast 8005: root refcnt 2 bands 3 priomap "
                                         "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1")):
        tc(ns, "replace", "dev", "eth1", "root", *words)
        assert tc(ns, "show", "dev", "eth1") == [line]
    tc(ns, "replace", "dev", "eth1", "root", "fq_codel", "target", "2ms", "interval", "50ms", "noecn")
    assert tc(ns, "show", "dev", "eth1") == ["qdisc fq_codel 8006: root refcnt 2 limit 10240p flows 1024 quantum 1514 "
                                             "target 2ms interval 50ms memory_limit 32Mb drop_batch 64 "]
    assert tc(ns, "-s", "show", "dev", "eth1")[3:] == ["  maxpacket 0 drop_overlimit 0 new_flow_count 0 ecn_mark 0",
                                                       "  new_flows_len 0 old_flows_len 0"]


def test_tc_refuses_tbf_as_tc_does():
    import pytest

    from pktflow.services.iproute2.q_sched import TBF_USAGE
    from pktflow.services.iproute2.tc_qdisc import TcError
    ns = r1_link()
    for words, message in (
            (["rate", "1mbit"], 'tbf: the "burst" parameter is mandatory.\n'
                                'tbf: either "limit" or "latency" is required.\n' + TBF_USAGE),
            (["burst", "10kb", "latency", "10ms"], 'tbf: the "rate" parameter is mandatory.\n' + TBF_USAGE),
            (["rate", "1mbit", "burst", "10kb", "latency", "10ms", "limit", "300"],
             'tbf: specifying both "latency" and "limit" is not allowed')):
        with pytest.raises(TcError) as e:
            tc(ns, "add", "dev", "eth1", "root", "tbf", *words)
        assert (str(e.value), e.value.exit_code) == (message, 1)


def test_a_qdisc_on_tbfs_class_as_tc_shows_it():
    """Captured with iproute2 6.1 on this machine's kernel (refcnt aside)."""
    import pytest

    from pktflow.services.iproute2.tc_qdisc import TcError
    ns = r1_link()
    tc(ns, "add", "dev", "eth1", "root", "handle", "1:", "tbf", "rate", "10mbit", "burst", "32kbit", "latency",
       "400ms")
    tc(ns, "add", "dev", "eth1", "parent", "1:1", "handle", "10:", "pfifo", "limit", "100")
    assert tc(ns, "show", "dev", "eth1") == ["qdisc tbf 1: root refcnt 2 rate 10Mbit burst 4Kb lat 400ms ",
                                             "qdisc pfifo 10: parent 1:1 limit 100p"]
    for words, message in ((["parent", "1:2", "handle", "20:", "pfifo"], "Error: NLM_F_REPLACE needed to override."),
                           (["parent", "5:1", "handle", "20:", "pfifo"], "Error: Failed to find specified qdisc.")):
        with pytest.raises(TcError) as e:
            tc(ns, "add", "dev", "eth1", *words)
        assert (str(e.value), e.value.exit_code) == (message, 2)
    tc(ns, "replace", "dev", "eth1", "parent", "1:1", "handle", "11:", "bfifo", "limit", "3000")
    assert tc(ns, "show", "dev", "eth1")[1] == "qdisc bfifo 11: parent 1:1 limit 3000b"
    tc(ns, "del", "dev", "eth1", "parent", "1:1")
    assert len(tc(ns, "show", "dev", "eth1")) == 1                 # tbf's own bfifo again, not shown
    tc(ns, "add", "dev", "eth1", "parent", "1:1", "netem", "delay", "100ms")
    assert tc(ns, "show", "dev", "eth1")[1].startswith("qdisc netem 8001: parent 1:1 limit 1000 delay 100ms")
    tc(ns, "replace", "dev", "eth1", "root", "handle", "2:", "pfifo")
    with pytest.raises(TcError) as e:
        tc(ns, "add", "dev", "eth1", "parent", "2:1", "handle", "10:", "pfifo")
    assert str(e.value) == "Error: Parent qdisc is not classful."
