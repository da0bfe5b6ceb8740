"""netem without the services: tc's vocabulary, each impairment on a fake clock
with a fixed seed, and `tc qdisc` on the link room's state."""
import errno
import itertools
import random

import pytest
from pktflow.services.common import topology
from pktflow.services.common.actions import Arm, Cancel, Down, Drop, Step, Stop, Up
from pktflow.services.link import sch_api
from pktflow.services.link.dev import Link
from pktflow.services.common.pkt_sched import U32_MAX, Qopt
from pktflow.services.iproute2 import tc_qdisc
from pktflow.services.iproute2.q_netem import format_qopt, parse
from pktflow.services.iproute2.tc_util import sprint_rate, sprint_size, sprint_time64
from pktflow.services.link.sch_netem import Netem
from pktflow.v1.skb_pb2 import Skb

MS = 1_000_000


def pct(p: float) -> int:
    return round(p / 100 * U32_MAX)


def frame(i: int, size: int = 100) -> Skb:
    return Skb(netns="h1", data=i.to_bytes(4, "big") + bytes(size - 4))


def seq(skb) -> int:
    return int.from_bytes(skb.data[:4], "big")


def qdisc(spec: str) -> Netem:
    return Netem(parse(spec), 0x80010000, random.Random(0))


def run(q: Netem, n: int, gap: int = 0, size: int = 100, until: int | None = None):
    """Enqueues n frames `gap` ns apart and dequeues as the kernel would: after
    each enqueue and when the watchdog fires. Returns the verdicts and the
    (time, frame) of everything that left by `until`."""
    verdicts, sent = [], []
    wake = None

    def watchdog(limit):
        nonlocal wake
        while wake is not None and (limit is None or wake <= limit):
            frames, next_wake = q.dequeue(wake)
            sent.extend((wake, s) for s in frames)
            wake = next_wake

    for i in range(n):
        now = i * gap
        watchdog(now)
        verdicts += q.enqueue(frame(i, size), now)
        frames, wake = q.dequeue(now)
        sent.extend((now, s) for s in frames)
    watchdog(until)
    return verdicts, sent


# -- the vocabulary
def test_parse_everything_and_print_it_as_tc_does():
    o = parse("delay 5ms 2ms 25% loss random 3% 10% duplicate 1% reorder 10% 50% gap 5 corrupt 1% "
              "rate 1mbit 20 limit 100 seed 7")
    assert (o.latency, o.jitter, o.delay_corr) == (5 * MS, 2 * MS, pct(25))
    assert (o.loss, o.loss_corr, o.duplicate, o.reorder, o.reorder_corr, o.gap) == \
        (pct(3), pct(10), pct(1), pct(10), pct(50), 5)
    assert (o.corrupt, o.rate, o.packet_overhead, o.limit, o.seed) == (pct(1), 125_000, 20, 100, 7)
    assert format_qopt(o) == ("limit 100 delay 5ms  2ms 25% loss 3% 10% duplicate 1% reorder 10% 50% "
                              "corrupt 1% rate 1Mbit packetoverhead 20 seed 7 gap 5")


def test_defaults_and_abbreviations():
    assert parse("") == Qopt(limit=1000)
    short = ["lat", "1ms", "lim", "10", "dup", "1", "drop", "2", "r", "5", "d", "3ms"]
    assert parse(short) == parse("limit 10 duplicate 1% loss 2% reorder 5% delay 3ms")
    assert parse("delay 10ms reorder 25%").gap == 1          # tc's default gap with reorder
    assert format_qopt(parse("delay 10ms reorder 25%")) == "limit 1000 delay 10ms reorder 25% gap 1"


@pytest.mark.parametrize("text,ns", [("1s", 10 ** 9), ("2sec", 2 * 10 ** 9), ("1.5ms", 1_500_000),
                                     ("10msecs", 10 * MS), ("250us", 250_000), ("100usec", 100_000),
                                     ("100", 100), ("7ns", 7), ("1MS", MS)])
def test_times(text, ns):
    assert parse(f"delay {text}").latency == ns


@pytest.mark.parametrize("text,bytes_per_s", [("1mbit", 125_000), ("1Mbit", 125_000), ("100kbit", 12_500),
                                              ("1gbit", 125_000_000), ("8bit", 1), ("8000", 1000),
                                              ("1mbps", 1_000_000), ("1kbps", 1000), ("1Kibit", 128),
                                              ("1.5mbit", 187_500)])
def test_rates(text, bytes_per_s):
    assert parse(f"rate {text}").rate == bytes_per_s


@pytest.mark.parametrize("text,p", [("5", 5), ("5%", 5), ("0.5%", 0.5), ("100%", 100), ("0", 0)])
def test_percentages(text, p):
    assert parse(f"loss {text}").loss == pct(p)


@pytest.mark.parametrize("spec,message", [
    ("delay 5xs", 'Illegal "latency": "5xs"'),
    ("delay 5ms 2furlongs", 'Illegal "latency": "2furlongs"'),   # a digit first: the jitter
    ("loss 101%", 'Illegal "loss percent": "101%"'),
    ("loss -1", 'Unknown loss parameter: -1'),
    ("loss 5 %", 'What is "%"?'),
    ("duplicate lots", 'Illegal "duplicate": "lots"'),
    ("corrupt 1.5x", 'Illegal "corrupt": "1.5x"'),
    ("rate 1furlong", 'Illegal "rate": "1furlong"'),
    ("limit 1.5", 'Illegal "limit": "1.5"'),
    ("seed -3", 'Illegal "seed": "-3"'),
    ("delay", 'Command line is not complete after "delay"'),
    ("frobnicate 3", 'What is "frobnicate"?'),
    ("reorder 5%", "reordering not possible without specifying some delay"),
    ("delay 1ms gap 2", "gap specified without reorder probability"),
    ("loss 1% loss 2%", 'Illegal "duplicate loss argument"'),
    ("loss state 5%", '"loss state"'),
    ("delay 1ms distribution normal", '"distribution" is not supported'),
])
def test_bad_specs_name_the_token(spec, message):
    with pytest.raises(ValueError) as e:
        parse(spec)
    assert message in str(e.value)


def test_printing_units():
    assert [sprint_time64(t) for t in (5 * MS, 1_234_567, 250_000, 999, 2 * 10 ** 9)] == \
        ["5ms", "1.23ms", "250us", "999ns", "2s"]
    assert [sprint_rate(r) for r in (125_000, 187_500, 125, 12_500_000_000 // 8 * 8)] == \
        ["1Mbit", "1500Kbit", "1Kbit", "100Gbit"]


# -- each impairment
def test_delay_holds_a_frame_until_its_time():
    q = qdisc("delay 10ms")
    [act] = q.enqueue(frame(0), 0)
    assert act == Stop(act.skb, "netem_enqueue")
    skb = act.skb
    assert q.dequeue(0) == ([], 10 * MS)
    assert q.dequeue(10 * MS - 1) == ([], 10 * MS)
    assert q.dequeue(10 * MS) == ([skb], None)
    assert q.stats["packets"] == 1 and q.stats["bytes"] == 100 and q.stats["delayed"] == 1


def test_jitter_spreads_delays_uniformly_and_reorders():
    q = qdisc("delay 10ms 5ms seed 1")
    _, sent = run(q, 2000, gap=MS // 10)
    delays = [t - seq(s) * (MS // 10) for t, s in sent]
    assert len(sent) == 2000
    assert 5 * MS <= min(delays) < 5.1 * MS and 14.9 * MS < max(delays) <= 15 * MS
    assert 9.5 * MS < sum(delays) / len(delays) < 10.5 * MS
    order = [seq(s) for _, s in sent]
    assert order != sorted(order)                    # jitter without rate reorders, as in Linux


def test_loss_drops_with_netem_loss_and_counts():
    q = qdisc("loss 25% seed 3")
    verdicts, sent = run(q, 8000)
    lost = [v for v in verdicts if type(v) is Drop]
    assert all((v.fn, v.reason) == ("netem_enqueue", "NETEM_LOSS") for v in lost)
    assert 1850 < len(lost) < 2150
    assert len(sent) + len(lost) == 8000
    assert q.stats["drops"] == q.stats["dropped"] == len(lost) and q.stats["packets"] == len(sent)


def test_a_seed_repeats_the_same_losses():
    def losses(spec):
        verdicts, _ = run(qdisc(spec), 500)
        return [seq(v.skb) for v in verdicts if type(v) is Drop]
    assert losses("loss 10% seed 42") == losses("loss 10% seed 42")
    assert losses("loss 10% seed 42") != losses("loss 10% seed 43")
    assert losses("loss 100%") == list(range(500)) and losses("loss 0%") == []


def test_loss_correlation_makes_bursts():
    def mean_burst(spec):
        verdicts, _ = run(qdisc(spec), 20000)
        lost = sorted(seq(v.skb) for v in verdicts if type(v) is Drop)
        bursts = 1 + sum(1 for a, b in itertools.pairwise(lost) if b != a + 1)
        return len(lost) / bursts
    assert mean_burst("loss 50% seed 5") < 2.5
    assert mean_burst("loss 50% 90% seed 5") > 5


def test_duplicate_sends_a_copy_that_is_not_copied_again():
    q = qdisc("duplicate 100%")
    verdicts, sent = run(q, 10)
    assert [seq(s) for _, s in sent] == [i for i in range(10) for _ in (0, 1)]
    assert q.stats["duplicated"] == 10 and [type(v) for v in verdicts] == [Stop] * 20
    q = qdisc("duplicate 10% seed 8")
    _, sent = run(q, 5000)
    assert 400 < len(sent) - 5000 == q.stats["duplicated"] < 600


def zeros(q: Netem, n: int) -> list:
    """n all-zero frames through q (no delay): what leaves."""
    out = []
    for _ in range(n):
        q.enqueue(Skb(netns="h1", data=bytes(100)), 0)
        out += q.dequeue(0)[0]
    return out


def test_corrupt_flips_exactly_one_bit():
    q = qdisc("corrupt 100% seed 2")
    sent = zeros(q, 200)
    assert all(len(s.data) == 100 and int.from_bytes(s.data, "big").bit_count() == 1 for s in sent)
    assert len({s.data for s in sent}) > 150 and q.stats["corrupted"] == 200


def test_duplicate_is_cloned_before_the_original_is_corrupted():
    q = qdisc("duplicate 100% corrupt 50% seed 11")
    sent = zeros(q, 400)
    pairs = list(zip(sent[::2], sent[1::2]))          # the copy, then the original
    assert len(pairs) == 400 and 0.4 < q.stats["corrupted"] / 800 < 0.6
    assert sum(a.data == b.data != bytes(100) for a, b in pairs) < 5   # each copy had its own chance


def test_reorder_sends_some_at_once_and_delays_the_rest():
    q = qdisc("delay 10ms reorder 25% seed 4")
    _, sent = run(q, 4000, gap=MS)
    at_once = [s for t, s in sent if t == seq(s) * MS]
    assert all(t in (seq(s) * MS, seq(s) * MS + 10 * MS) for t, s in sent)
    assert 850 < len(at_once) < 1150
    assert q.stats["reordered"] == q.stats["requeues"] == len(at_once)


def test_reorder_gap_sends_every_nth_at_once():
    q = qdisc("delay 10ms reorder 100% gap 5")
    _, sent = run(q, 20, gap=MS)
    assert sorted(seq(s) for t, s in sent if t == seq(s) * MS) == [4, 9, 14, 19]    # the 5th, 10th, ...


def test_rate_spaces_frames_by_their_transmission_time():
    q = qdisc("rate 1mbit")                          # 1000 bytes: 8 ms
    _, sent = run(q, 3, size=1000)
    assert [t for t, _ in sent] == [8 * MS, 16 * MS, 24 * MS]
    q = qdisc("delay 10ms rate 1mbit")               # the delay once, then back to back
    _, sent = run(q, 3, size=1000)
    assert [t for t, _ in sent] == [18 * MS, 26 * MS, 34 * MS]
    assert q.enqueue(frame(9, 1000), 100 * MS) and q.dequeue(100 * MS) == ([], 118 * MS)   # idle link: from now


def test_rate_overhead_and_cells():
    assert run(qdisc("rate 1mbit 24"), 1, size=1000)[1][0][0] == 8_192_000
    assert run(qdisc("rate 1mbit 0 100 10"), 1, size=1000)[1][0][0] == 8_800_000   # 10 cells of 110 bytes
    assert run(qdisc("rate 1mbit 0 300"), 1, size=1000)[1][0][0] == 9_600_000      # 4 cells of 300


def test_limit_drops_over_the_queue_length():
    q = qdisc("delay 1s limit 3")
    verdicts, sent = run(q, 5, until=0)
    assert [(type(v), getattr(v, "reason", None)) for v in verdicts] == [(Stop, None)] * 3 + [(Drop, "QDISC_DROP")] * 2
    assert q.qlen == 3 and q.stats["drops"] == 2 and q.stats["backlog"] == 300 and sent == []
    assert len(q.dequeue(10 ** 9)[0]) == 3 and q.qlen == 0 and q.stats["backlog"] == 0


def test_change_keeps_the_queue_and_the_counters():
    q = qdisc("delay 10ms")
    q.enqueue(frame(0), 0)
    q.change(parse("delay 1ms"))
    q.enqueue(frame(1), 0)
    assert [seq(s) for s in q.dequeue(MS)[0]] == [1] and [seq(s) for s in q.dequeue(10 * MS)[0]] == [0]
    assert q.stats["packets"] == 2


# -- in the device layer
TWO = """\
hosts:
  h1: {interfaces: {eth0: {addresses: [10.0.0.1/24]}}}
  h2: {interfaces: {eth0: {addresses: [10.0.0.2/24]}}}
links:
  - endpoints: [h1:eth0, h2:eth0]
    netem: NETEM
"""


def link_with(netem: str) -> Link:
    return Link(topology.loads(TWO.replace("NETEM", netem), "two.yaml"), random.Random(1))


def raw(ifindex=2) -> Skb:
    return Skb(netns="h1", ifindex=ifindex, data=bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00" + bytes(50))


def test_topology_netem_impairs_both_ends():
    link = link_with("delay 5ms loss 1%")
    for host in ("h1", "h2"):
        q = link.netns[host].devices[2].qdisc
        assert format_qopt(q.opt) == "limit 1000 delay 5ms loss 1%" and q.handle == 0x80010000
        assert link.netns[host].devices[1].qdisc is None


def test_topology_refuses_a_bad_netem_naming_the_line():
    with pytest.raises(topology.TopologyError) as e:
        topology.loads(TWO.replace("NETEM", "delay 5ms lose 3%"), "two.yaml")
    assert str(e.value) == "two.yaml:6: link netem 'delay 5ms lose 3%': What is \"lose\"?"


def test_delayed_frames_leave_on_the_watchdog_and_pass_the_taps_then():
    link = link_with("delay 5ms")
    ns = link.netns["h1"]
    ns.taps[0] = {99: 0x0003}                          # a capture (ETH_P_ALL) on every device
    out = link.packet_xmit(raw(), 1000)
    assert out == [Stop(out[0].skb, ("dev_queue_xmit", "netem_enqueue")), Arm(("qdisc", "h1", 2, 0), 1000 + 5 * MS)]
    out = link.timer(("qdisc", "h1", 2, 0), 1000 + 5 * MS)
    # the frame's span says how long it waited in the qdisc
    assert [(type(v), v.fn) for v in out] == [(Up, "dev_queue_xmit_nit"),
                                              (Down, (Step("netem_dequeue", (("pktflow.qdisc.wait_us", 5000),)),))]
    assert link.timer(("qdisc", "h1", 2, 0), 1000 + 6 * MS) == []


def test_a_lost_frame_is_a_traced_drop():
    link = link_with("loss 100%")
    [act] = link.packet_xmit(raw(), 0)
    assert act == Drop(act.skb, ("dev_queue_xmit", "netem_enqueue"), "NETEM_LOSS")


def test_no_delay_goes_straight_through():
    link = link_with("duplicate 100%")
    out = link.packet_xmit(raw(), 0)
    assert [type(v) for v in out] == [Stop, Stop, Down, Down]


# -- tc qdisc
def tc(ns, *words):
    """`tc qdisc WORDS` as the CLI runs it, with this namespace's link layer as the
    kernel: tc's lines, and the actions of what the kernel changed."""
    actions = []

    def kernel(req):
        try:
            qdiscs, acts = sch_api.tc_qdisc(ns, req)
        except sch_api.QdiscError as e:
            return e.err, e.extack, []
        actions.extend(acts)
        return 0, "", qdiscs
    return tc_qdisc.tc_qdisc(list(words), kernel), actions


def tc_error(ns, *words) -> tuple[int, str]:
    with pytest.raises(tc_qdisc.TcError) as e:
        tc(ns, *words)
    return e.value.exit_code, str(e.value)


def test_tc_qdisc_add_show_change_delete():
    ns = Link(topology.load(), random.Random(2)).netns["r1"]
    prio = "root refcnt 2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"
    assert tc(ns, "show") == (["qdisc noqueue 0: dev lo root refcnt 2 ", f"qdisc pfifo_fast 0: dev eth0 {prio}",
                               f"qdisc pfifo_fast 0: dev eth1 {prio}"], [])
    assert tc(ns, "add", "dev", "eth1", "root", "netem", "delay", "100ms", "10ms", "loss", "1%") == ([], [])
    assert tc(ns, "show", "dev", "eth1")[0] == ["qdisc netem 8001: root refcnt 2 limit 1000 delay 100ms  10ms loss 1%"]
    assert tc_error(ns, "add", "dev", "eth1", "root", "netem") == (2, "Error: Exclusivity flag on, cannot modify.")
    tc(ns, "change", "dev", "eth1", "root", "netem", "rate", "10mbit")
    tc(ns, "replace", "dev", "eth1", "root", "netem", "delay", "1ms", "seed", "5")
    assert tc(ns, "s", "dev", "eth1")[0] == ["qdisc netem 8001: root refcnt 2 limit 1000 delay 1ms seed 5"]
    assert tc(ns, "del", "dev", "eth1", "root") == ([], [])
    assert tc_error(ns, "del", "dev", "eth1", "root") == (2, "Error: Cannot delete qdisc with handle of zero.")
    assert tc_error(ns, "change", "dev", "eth1", "root", "netem", "delay", "1ms") == \
        (2, "Error: Qdisc not found. To create specify NLM_F_CREATE flag.")
    tc(ns, "replace", "dev", "eth1", "root", "handle", "1:", "netem", "loss", "5%")
    assert tc(ns, "show", "dev", "eth1")[0] == ["qdisc netem 1: root refcnt 2 limit 1000 loss 5%"]
    assert tc_error(ns, "add", "dev", "eth1", "root", "handle", "2:", "netem") == \
        (2, "Error: NLM_F_REPLACE needed to override.")
    assert tc_error(ns, "del", "dev", "eth1", "root", "handle", "2:") == (2, "Error: Invalid handle.")
    tc(ns, "del", "dev", "eth1", "root", "handle", "1:", "netem")


def test_tc_qdisc_errors_as_tc_prints_them():
    ns = Link(topology.load(), random.Random(2)).netns["r1"]
    assert tc_error(ns, "add", "dev", "eth9", "root", "netem", "delay", "1ms") == (1, 'Cannot find device "eth9"')
    assert tc_error(ns, "add", "dev", "eth1", "root", "netem", "delay", "1xs") == (1, 'Illegal "latency": "1xs"')
    code, message = tc_error(ns, "add", "dev", "eth1", "root", "netem", "jitter", "1ms")
    assert code == 1 and message.startswith('What is "jitter"?\nUsage: ... netem [ limit PACKETS ]')
    assert tc_error(ns, "add", "dev", "eth1", "root", "tbf", "rate", "1mbit")[0] == 1
    assert tc_error(ns, "del", "dev", "eth1", "root", "netem") == (2, "Error: Invalid qdisc name.")
    assert tc_error(ns, "frob") == (255, 'Command "frob" is unknown, try "tc qdisc help".')


def test_tc_s_shows_the_counters_and_deleting_frees_the_queue():
    link = Link(topology.load(), random.Random(2))
    ns = link.netns["h1"]
    tc(ns, "add", "dev", "eth0", "root", "netem", "delay", "1s", "loss", "50%", "seed", "1")
    for i in range(10):
        link.packet_xmit(Skb(netns="h1", ifindex=2, data=bytes(60)), i)
    q = ns.devices[2].qdisc
    lost = q.stats["drops"]
    assert tc(ns, "-s", "show", "dev", "eth0")[0] == [
        "qdisc netem 8001: root refcnt 2 limit 1000 delay 1s loss 50% seed 1",
        f" Sent 0 bytes 0 pkt (dropped {lost}, overlimits 0 requeues 0) ",
        f" backlog {60 * (10 - lost)}b {10 - lost}p requeues 0",
        f"  delayed {10 - lost} dropped {lost} corrupted 0 duplicated 0 reordered 0 ecn_marked 0"]
    _, verdicts = tc(ns, "del", "dev", "eth0", "root")
    assert verdicts == [Drop(v.skb, "qdisc_reset", "QUEUE_PURGE") for v in verdicts[:-1]] + \
        [Cancel(("qdisc", "h1", 2, 0))] and len(verdicts) == 10 - lost + 1
    assert tc(ns, "-s", "show", "dev", "eth0")[0][1] == " Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) "


def test_sprint_size():
    assert [sprint_size(n) for n in (0, 1514, 2048, 3028, 1 << 20)] == ["0b", "1514b", "2Kb", "3028b", "1Mb"]


def test_ecn_marks_capable_packets_instead_of_dropping_them():
    """netem's `ecn`: a loss event marks CE on an ECN-capable IPv4 packet (the
    checksum fixed, counted as a drop and as ecn_marked) and drops the others."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    assert format_qopt(parse("loss 100% ecn")) == "limit 1000 loss 100% ecn"
    with pytest.raises(ValueError, match="ecn requested without loss model"):
        parse("delay 1ms ecn")
    q = Netem(parse("loss 100% ecn"), 1)
    ect = bytes(Ether() / IP(src="10.0.1.10", dst="10.0.2.10", tos=0x02) / UDP(sport=1, dport=2) / b"x")
    skb = Skb(data=ect, protocol=0x0800)
    assert [type(v) for v in q.enqueue(skb, 0)] == [Stop]
    marked = Ether(skb.data)
    assert marked[IP].tos == 0x03
    del marked[IP].chksum
    assert Ether(bytes(marked))[IP].chksum == Ether(skb.data)[IP].chksum      # scapy's own checksum agrees
    not_ect = Skb(data=bytes(Ether() / IP(src="10.0.1.10", dst="10.0.2.10") / UDP(sport=1, dport=2)),
                  protocol=0x0800)
    assert [type(v) for v in q.enqueue(not_ect, 0)] == [Drop]
    assert q.stats["ecn_marked"] == 1 and q.stats["drops"] == 2


def test_the_link_layer_takes_typed_requests_and_answers_as_the_kernel():
    """What tc sends (TcQdiscRequest) is checked where it enters, with the
    kernel's errnos and extack messages; tc's words never reach the link room."""
    from pktflow.v1.admin_pb2 import TcQdiscRequest as R
    ns = Link(topology.load(), random.Random(2)).netns["r1"]

    def refused(**fields) -> tuple[int, str]:
        with pytest.raises(sch_api.QdiscError) as e:
            sch_api.tc_qdisc(ns, R(**fields))
        return e.value.err, e.value.extack
    assert refused(cmd=R.ADD, dev="eth9", root=True, kind="netem") == (errno.ENODEV, "")
    assert refused(cmd=R.ADD, dev="", root=True, kind="netem") == (errno.ENODEV, "")
    assert refused(cmd=R.ADD, dev="eth1", root=True, kind="sfq") == (errno.ENOENT, "Specified qdisc kind is unknown")
    assert refused(cmd=R.ADD, dev="eth1", root=True, kind="tbf") == (errno.EINVAL, "Missing TBF parameters")
    assert refused(cmd=R.ADD, dev="eth1", kind="netem") == (errno.EINVAL, "Handle cannot be zero")
    [q] = sch_api.tc_qdisc(ns, R(cmd=R.SHOW, dev="eth1"))[0]
    assert (q.dev, q.kind, q.handle) == ("eth1", "pfifo_fast", 0)
    req = R(cmd=R.ADD, dev="eth1", root=True, kind="netem")
    req.netem.limit, req.netem.latency, req.netem.seed = 10, 5_000_000, 0
    assert sch_api.tc_qdisc(ns, req) == ([], [])
    assert ns.devices[3].qdisc.opt == Qopt(limit=10, latency=5_000_000, seed=0)      # seed 0 is a seed


def test_no_layer_room_speaks_tc_words():
    import pathlib
    rooms = pathlib.Path(sch_api.__file__).parents[1]
    for room in ("socket", "transport", "ip", "link", "nic"):
        for f in (rooms / room).glob("*.py"):
            assert "from ..iproute2" not in f.read_text(), f"{f} imports tc's userland"
