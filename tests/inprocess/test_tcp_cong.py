"""Congestion control as Linux 6.x does it by default: CUBIC's HyStart, cnt
cap and reset on RTO, restart after idle, delivery-rate sampling (tcp_rate.c)
and BBR v1's model and state machine. All on a fake clock: a modeled path
drives the real hooks (tcp_rate + tcp_cong) where a whole stack is not needed,
the in-process Netstack where it is."""
import heapq
import random
from collections import Counter
from types import SimpleNamespace

import pytest

from pktflow.services.netstack import Netstack
from test_tcp import connected_pair, transfer

from pktflow.services.common import sysctl as sysctl_mod
from pktflow.services.transport import tcp_bbr, tcp_cong, tcp_cubic, tcp_rate
from pktflow.services.transport.tcp import CA_LOSS, ESTABLISHED, MS, S, TCP_INFINITE_SSTHRESH, Seg, TcpSock
from pktflow.services.transport.tcp_input import rtt_sample

T0 = 10 * S


def new_sock(ca: str, cwnd: int = 10, mss: int = 1448, now: int = T0):
    """A connected TcpSock with `ca` initialised as at tcp_init_transfer()."""
    sk = TcpSock(1, "h1")
    sk.state = ESTABLISHED
    sk.mss_cache = mss
    sk.cwnd = cwnd
    ns = SimpleNamespace(mib=Counter(), sysctl={"net.ipv4.tcp_slow_start_after_idle": 1})
    tcp_cong.assign(ns, sk, ca, now)
    return sk, ns


class Path:
    """A sender over a modeled path: one bottleneck of `rate` segments/s with
    a FIFO of `limit` segments (tail drop past it, None: unbounded), `rtt` s
    of propagation; the receiver ACKs every segment at once. The sender always
    has data, keeps in flight <= cwnd and paces at sk.pacing_rate when set (as
    tcp_output's pacing does). Every send and ACK goes through the hooks that
    tcp_output and tcp_input call."""

    def __init__(self, ca: str, rate: float, rtt: float, limit=None, mss: int = 1448):
        self.sk, self.ns = new_sock(ca, mss=mss)
        self.rate, self.rtt, self.limit = rate, int(rtt * S), limit
        self.now = self.next_send = self.busy = T0
        self.acks: list = []
        self.dropped = 0
        self.queued: set = set()
        self.modes: list = []                     # BBR: the mode after each ACK, when it changed

    def send(self, t: int):
        sk = self.sk
        seg = Seg(sk.snd_nxt, sk.snd_nxt + sk.mss_cache, 0, b"x", None)
        seg.sent = t
        tcp_cong.data_sent(sk, seg, t)
        sk.rtx.append(seg)
        sk.snd_nxt = seg.end
        queued = max(0, self.busy - t) * self.rate / S
        if self.limit is not None and queued >= self.limit:
            self.dropped += 1                     # the sender finds out when a later ACK skips it
        else:
            self.busy = max(t, self.busy) + int(S / self.rate)
            heapq.heappush(self.acks, (self.busy + self.rtt, seg.seq, seg))
            self.queued.add(seg.seq)
        if sk.pacing_rate:
            self.next_send = t + sk.mss_cache * S // sk.pacing_rate

    def ack(self, t: int, seg):
        sk = self.sk
        tcp_rate.ack_start(sk, t)
        acked = 0
        while sk.rtx and sk.rtx[0].seq <= seg.seq:       # cumulative; lost ones are given up on
            s = sk.rtx.popleft()
            if s.seq != seg.seq and s.seq not in self.queued:
                continue                          # dropped at the bottleneck
            self.queued.discard(s.seq)
            tcp_rate.skb_delivered(sk, s)
            acked += 1
        sk.snd_una = seg.end
        rtt_sample(sk, t - seg.sent, t)
        tcp_cong.pkts_acked(sk, acked, seg, None, t)
        sk.ca.cong_avoid(sk, acked, t)
        tcp_cong.cong_control(sk, t)
        mode = getattr(sk.ca, "mode", None)
        if mode is not None and (not self.modes or self.modes[-1][1] != tcp_bbr.MODE_NAMES[mode]):
            self.modes.append((t, tcp_bbr.MODE_NAMES[mode]))

    def run(self, seconds: float, until=None):
        end = self.now + int(seconds * S)
        while self.now < end:
            sk = self.sk
            t_send = max(self.now, self.next_send) if sk.in_flight() < sk.cwnd else None
            t_ack = self.acks[0][0] if self.acks else None
            if t_ack is not None and (t_send is None or t_ack <= t_send):
                self.now = t_ack
                _, _, seg = heapq.heappop(self.acks)
                self.ack(t_ack, seg)
            elif t_send is not None:
                self.now = t_send
                self.send(t_send)
            else:
                break
            if until is not None and until(self):
                return


# -- delivery rate sampling -------------------------------------------------

def test_rate_sample_of_one_flight_then_the_next():
    """Four segments sent 1 ms apart from an empty pipe, ACKed 100 ms later:
    each sample is what was delivered since the first send over the longer of
    the send and the ACK phase; a flight from an empty pipe starts afresh."""
    sk, _ns = new_sock("reno")
    segs = []
    for i in range(4):
        seg = Seg(i * 1000, (i + 1) * 1000, 0, b"x", None)
        seg.sent = T0 + i * MS
        tcp_cong.data_sent(sk, seg, seg.sent)
        sk.rtx.append(seg)
        segs.append(seg)
    assert [s.tx_delivered for s in segs] == [0, 0, 0, 0]
    assert {s.tx_first_tx_mstamp for s in segs} == {T0 // 1000}
    samples = []
    for i, seg in enumerate(segs):
        now = T0 + 100 * MS + i * MS
        tcp_rate.ack_start(sk, now)
        sk.rtx.popleft()
        tcp_rate.skb_delivered(sk, seg)
        tcp_cong.pkts_acked(sk, 1, seg, None, now)
        rs = tcp_rate.rate_gen(sk, now)
        samples.append((rs.delivered, rs.interval_us, rs.snd_interval_us, rs.rcv_interval_us))
        sk.rs = None
    # the ACK phase (from the flight's start, 0 ACKs yet) is the longer one
    assert samples == [(1, 100_000, 0, 100_000), (2, 101_000, 1000, 101_000),
                       (3, 102_000, 2000, 102_000), (4, 103_000, 3000, 103_000)]
    assert sk.delivered == 4 and sk.rtt_min == 100_000
    assert tcp_rate.delivery_rate(sk) == 4 * 1448 * 1_000_000 // 103_000
    # the pipe is empty: the next flight's interval starts at its own send
    seg = Seg(4000, 5000, 0, b"x", None)
    seg.sent = T0 + 110 * MS
    tcp_cong.data_sent(sk, seg, seg.sent)
    sk.rtx.append(seg)
    assert (seg.tx_delivered, seg.tx_delivered_mstamp, seg.tx_first_tx_mstamp) == (4, seg.sent // 1000,
                                                                                 seg.sent // 1000)
    now = T0 + 210 * MS
    tcp_rate.ack_start(sk, now)
    sk.rtx.popleft()
    tcp_rate.skb_delivered(sk, seg)
    rs = tcp_rate.rate_gen(sk, now)
    assert (rs.delivered, rs.interval_us, rs.is_app_limited) == (1, 100_000, False)


def test_app_limited_samples_are_marked_until_the_bubble_is_delivered():
    sk, _ns = new_sock("reno")
    sk.delivered = 50
    tcp_rate.check_app_limited(sk)           # nothing queued, window open
    assert sk.app_limited == 50
    seg = Seg(0, 1000, 0, b"x", None)
    seg.sent = T0
    tcp_cong.data_sent(sk, seg, T0)
    sk.rtx.append(seg)
    assert seg.tx_app_limited
    now = T0 + 50 * MS
    tcp_rate.ack_start(sk, now)
    sk.rtx.popleft()
    tcp_rate.skb_delivered(sk, seg)
    rs = tcp_rate.rate_gen(sk, now)
    assert rs.is_app_limited and sk.app_limited == 0       # 51 delivered > 50: the bubble is gone
    sk.sendq_bytes = 10 * sk.mss_cache                     # a full queue is not app-limited
    tcp_rate.check_app_limited(sk)
    assert sk.app_limited == 0


def test_sacked_segment_is_delivered_once():
    sk, _ns = new_sock("reno")
    segs = []
    for i in range(3):
        seg = Seg(i * 1000, (i + 1) * 1000, 0, b"x", None)
        seg.sent = T0
        tcp_cong.data_sent(sk, seg, T0)
        sk.rtx.append(seg)
        segs.append(seg)
    tcp_rate.ack_start(sk, T0 + 30 * MS)
    segs[2].sacked = True
    tcp_rate.skb_delivered(sk, segs[2], sacked=True)
    rs = tcp_rate.rate_gen(sk, T0 + 30 * MS)
    assert sk.delivered == 1 and rs.delivered == 1 and segs[2].tx_delivered_mstamp == 0
    tcp_rate.ack_start(sk, T0 + 31 * MS)
    for seg in list(sk.rtx):
        sk.rtx.popleft()
        tcp_rate.skb_delivered(sk, seg)
    rs = tcp_rate.rate_gen(sk, T0 + 31 * MS)
    assert sk.delivered == 3 and rs.acked_sacked == 2


# -- CUBIC ----------------------------------------------------------------------

def cubic_in_slow_start(cwnd: int = 20):
    sk, ns = new_sock("cubic", cwnd=cwnd)
    sk.snd_una, sk.snd_nxt = 0, 100_000
    sk.ca.hystart_reset(sk, T0)
    return sk, ns


@pytest.mark.parametrize("delay_min, below, above", [
    (50_000, 56_000, 57_000),      # 50 ms / 8 = 6.25 ms
    (20_000, 24_000, 24_001),      # 2.5 ms, clamped up to 4 ms
    (200_000, 216_000, 216_001),   # 25 ms, clamped down to 16 ms
])
def test_hystart_delay_detect_leaves_slow_start_on_an_rtt_rise(delay_min, below, above):
    """A round whose least RTT (after 8 samples) exceeds delay_min by
    clamp(delay_min / 8, 4 ms, 16 ms) ends slow start: ssthresh = cwnd."""
    sk, ns = cubic_in_slow_start()
    ca = sk.ca
    t = T0
    for _ in range(9):                        # round 1: the base RTT; ACKs 5 ms apart (no train)
        t += 5 * MS
        ca.pkts_acked(sk, 1, delay_min, t)
    assert ca.delay_min == delay_min and not ca.found
    sk.snd_una = 100_001                      # round 2 begins: at the threshold, nothing happens
    sk.snd_nxt = 200_000
    for _ in range(9):
        t += 5 * MS
        ca.pkts_acked(sk, 1, below, t)
    assert not ca.found and sk.ssthresh == TCP_INFINITE_SSTHRESH
    sk.snd_una = 200_001                      # round 3: just above it
    sk.snd_nxt = 300_000
    for i in range(9):
        t += 5 * MS
        sk.cwnd += 1
        ca.pkts_acked(sk, 1, above, t)
        if i < 8:
            assert not ca.found               # 8 samples first
    assert ca.found and sk.cwnd == 29 and sk.ssthresh == 29
    assert (ns.mib["TCPHystartDelayDetect"], ns.mib["TCPHystartDelayCwnd"]) == (1, 29)
    assert ns.mib["TCPHystartTrainDetect"] == 0


def test_hystart_ack_train_leaves_slow_start():
    """delay_min 10 ms: unpaced, the train threshold is 5 ms; ACKs 1 ms apart
    from the round's start end slow start on the first one past 5 ms."""
    sk, ns = cubic_in_slow_start(cwnd=32)
    ca = sk.ca
    ca.delay_min = 10_000
    for i in range(1, 6):
        ca.pkts_acked(sk, 1, 10_000, T0 + i * MS)
    assert not ca.found                       # 5 ms is not more than 5 ms
    ca.pkts_acked(sk, 1, 10_000, T0 + 6 * MS)
    assert ca.found and sk.ssthresh == 32
    assert (ns.mib["TCPHystartTrainDetect"], ns.mib["TCPHystartTrainCwnd"]) == (1, 32)
    assert ns.mib["TCPHystartDelayDetect"] == 0


def test_hystart_train_broken_by_a_gap_and_not_below_low_window():
    sk, ns = cubic_in_slow_start(cwnd=32)
    ca = sk.ca
    ca.delay_min = 10_000
    for t_ms in (1, 2, 5, 8, 11, 14):         # gaps of 3 ms > hystart_ack_delta_us (2 ms)
        ca.pkts_acked(sk, 1, 10_000, T0 + t_ms * MS)
    assert not ca.found
    sk2, ns2 = cubic_in_slow_start(cwnd=15)   # below hystart_low_window (16)
    sk2.ca.delay_min = 10_000
    for i in range(1, 20):
        sk2.ca.pkts_acked(sk2, 1, 10_000, T0 + i * MS)
    assert not sk2.ca.found and not ns2.mib


def test_cubic_over_a_bottleneck_exits_slow_start_by_hystart_before_any_loss():
    """10 Mbit/s-ish (1000 segments/s), 40 ms, a 100-segment drop-tail queue:
    HyStart ends slow start before the queue overflows, so nothing is lost."""
    path = Path("cubic", rate=1000, rtt=0.040, limit=100)
    path.run(2.0, until=lambda p: p.sk.ca.found)
    sk, mib = path.sk, path.ns.mib
    # the ACK trains break at each round's gap; the RTT rose 13 ms over 41 ms first
    assert (mib["TCPHystartDelayDetect"], mib["TCPHystartDelayCwnd"], mib["TCPHystartTrainDetect"]) == (1, 72, 0)
    assert sk.ssthresh == 72 and path.dropped == 0 and path.now - T0 == 155 * MS
    assert sk.ca.delay_min == 41_000                   # 40 ms + one segment's 1 ms serialization


def test_cubic_cnt_is_capped_at_20_before_the_first_loss():
    """last_max_cwnd == 0 (no loss yet): at least 5% growth an RTT, cnt <= 20."""
    sk, _ns = new_sock("cubic", cwnd=100)
    sk.ssthresh = 50                           # congestion avoidance, HyStart's exit
    ca = sk.ca
    ca.delay_min = 100_000
    ca.update(100, 1, T0)
    assert ca.last_max_cwnd == 0 and ca.bic_K == 0 and ca.cnt == 20
    ca2 = tcp_cubic.Cubic(sk)                  # after a loss at 120: W_max = 120, K > 0
    ca2.last_max_cwnd = 120
    ca2.delay_min = 100_000
    ca2.update(84, 1, T0)
    # K = cbrt(2^40 / 410 * 36) >> in 2^-10 s: the time to climb back to 120
    assert ca2.bic_K == tcp_cubic.cubic_root(tcp_cubic.CUBE_FACTOR * 36) == 4587
    assert ca2.cnt > 20                        # concave region: slower than 5% an RTT


def test_cubic_ssthresh_beta_and_fast_convergence():
    sk, _ns = new_sock("cubic", cwnd=100)
    assert sk.ca.ssthresh(sk) == 70 and sk.ca.last_max_cwnd == 100      # 100 * 717 / 1024
    sk.cwnd = 80                                                          # below W_max: release
    assert sk.ca.ssthresh(sk) == 56 and sk.ca.last_max_cwnd == 80 * (1024 + 717) // 2048


def test_cubic_resets_on_rto_and_hystart_starts_over():
    """bictcp_reset on entering TCP_CA_Loss: W_max, K, delay_min and HyStart's
    `found` are forgotten (the RTO's cwnd of 1 slow-starts again)."""
    sk, _ns = new_sock("cubic", cwnd=50)
    ca = sk.ca
    ca.delay_min, ca.found = 30_000, True
    sk.ssthresh = ca.ssthresh(sk)
    ca.update(sk.ssthresh, 1, T0)
    assert ca.last_max_cwnd == 50 and ca.epoch_start and ca.bic_K
    sk.snd_nxt = 777
    tcp_cong.set_ca_state(sk, CA_LOSS, T0 + S)
    assert (ca.last_max_cwnd, ca.epoch_start, ca.bic_K, ca.delay_min, ca.found, ca.cnt) == (0, 0, 0, 0, False, 0)
    assert ca.end_seq == 777 and ca.round_start == (T0 + S) // 1000 and sk.ca_state == CA_LOSS


def test_cubic_epoch_shifts_over_an_application_pause():
    """CA_EVENT_TX_START (data leaving an empty pipe) after 300 ms without data
    sent: the epoch moves 300 ms later, so the cubic curve resumes where it was."""
    sk, _ns = new_sock("cubic", cwnd=40)
    ca = sk.ca
    ca.epoch_start = jiffy = (T0 // MS)
    sk.lsndtime = T0 + 100 * MS
    seg = Seg(0, 1000, 0, b"x", None)
    tcp_cong.data_sent(sk, seg, T0 + 400 * MS)
    assert ca.epoch_start == jiffy + 300 and sk.lsndtime == T0 + 400 * MS
    sk.rtx.append(seg)
    tcp_cong.data_sent(sk, Seg(1000, 2000, 0, b"x", None), T0 + 900 * MS)    # not from an empty pipe
    assert ca.epoch_start == jiffy + 300


def test_rto_in_a_connection_resets_cubic():
    net = Netstack()
    _srv, cli, child = connected_pair(net)
    data = random.Random(3).randbytes(150_000)
    transfer(net, cli, child, data)
    ca = cli.info().ca
    ca.last_max_cwnd = 99                      # as if it had seen a loss
    net.loss = lambda ns, ifi, f: ns == "h1" and len(f) > 1000
    cli.send(data[:20_000])
    net.advance(1.5)                          # the RTO fires
    assert net.counters("h1")["TCPTimeouts"] >= 1
    assert ca.last_max_cwnd == 0 and ca.epoch_start == 0 and cli.info().ca_state == CA_LOSS


# -- restart after idle ----------------------------------------------------------

@pytest.mark.parametrize("enabled", [1, 0])
def test_restart_after_idle(enabled):
    """tcp_slow_start_after_idle=1: after an idle longer than the RTO, cwnd
    halves per RTO idle down to the initial window, ssthresh keeps 3/4 of the
    old cwnd (tcp_cwnd_restart); with 0 the window survives the idle."""
    net = Netstack()
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_slow_start_after_idle"] = enabled
    _srv, cli, child = connected_pair(net)
    data = random.Random(5).randbytes(400_000)
    assert transfer(net, cli, child, data) == data
    net.advance(0.25)                         # the last (delayed) ACK comes back
    sk = cli.info()
    cwnd, ssthresh, rto = sk.cwnd, sk.ssthresh, sk.rto
    assert cwnd > 20 and not sk.rtx
    net.advance((sk.lsndtime + int(2.5 * rto) - net.now) / S)     # idle for 2.5 RTOs since data last went
    cli.send(b"y" * 1000)
    if enabled:
        # 2.5 RTOs: delta - rto = 1.5 RTO > 0, then 0.5 RTO > 0: two halvings
        assert sk.cwnd == cwnd >> 2
        assert sk.ssthresh == max(ssthresh, (cwnd >> 1) + (cwnd >> 2))   # tcp_current_ssthresh()
    else:
        assert sk.cwnd == cwnd and sk.ssthresh == ssthresh


def test_cwnd_restart_arithmetic():
    sk, ns = new_sock("reno", cwnd=80)
    sk.rto = 300 * MS
    sk.ssthresh = 20
    tcp_cong.cwnd_restart(sk, 1000, T0)       # 1000 ms idle, RTO 300 ms: 700, 400, 100 > 0 -> three halvings
    assert sk.cwnd == 10 and sk.ssthresh == 60
    sk.cwnd, sk.ssthresh = 80, TCP_INFINITE_SSTHRESH
    tcp_cong.cwnd_restart(sk, 500, T0)        # 200 > 0, then -100: one halving
    assert sk.cwnd == 40


def test_bbr_is_not_restarted_after_idle():
    sk, ns = new_sock("bbr", cwnd=80)
    sk.lsndtime = T0
    tcp_cong.slow_start_after_idle_check(ns, sk, T0 + 10 * S)
    assert sk.cwnd == 80


# -- BBR ------------------------------------------------------------------------

def test_bbr_state_sequence_and_model_on_a_bottleneck():
    """1000 segments/s, 20 ms: STARTUP -> DRAIN -> PROBE_BW; with no RTT below
    its min for 10 s, PROBE_RTT (cwnd 4 for 200 ms and a round), then back to
    PROBE_BW with the cwnd it had."""
    path = Path("bbr", rate=1000, rtt=0.020)
    sk, bbr = path.sk, path.sk.ca
    assert sk.pacing_rate == bbr.rate_bytes_per_sec(sk, 10 * tcp_bbr.BW_UNIT // 1000, tcp_bbr.HIGH_GAIN)
    path.run(3.0)
    assert [m for _t, m in path.modes] == ["STARTUP", "DRAIN", "PROBE_BW"]
    assert bbr.full_bw_reached and bbr.min_rtt_us == 21_000         # 20 ms + 1 ms serialization
    bw = bbr.max_bw() * 1_000_000 / tcp_bbr.BW_UNIT                   # segments/s
    assert 990 <= bw <= 1030
    # pacing_rate = pacing_gain * bw * mss, 1% under (bbr_pacing_margin_percent)
    gain = bbr.pacing_gain / 256
    assert sk.pacing_rate == pytest.approx(bw * sk.mss_cache * gain * 0.99, rel=0.001)
    # cwnd: 2 * BDP (21 segments) plus the quanta (3 * 2 TSO segments, +2 in the 5/4 phase)
    bdp = bw * 0.021
    assert 2 * bdp <= sk.cwnd <= 2 * bdp + 8 + bbr.ack_aggregation_cwnd() + 1
    cwnd_before = sk.cwnd
    info = bbr.info(sk)
    assert info["min_rtt"] == 21_000 and info["cwnd_gain"] == 512
    path.run(8.5, until=lambda p: p.modes[-1][1] == "PROBE_RTT")
    t_probe = path.modes[-1][0]
    assert path.modes[-1][1] == "PROBE_RTT"
    assert 10 * S < t_probe - path.modes[0][0] < 11 * S                 # the 10 s min_rtt window
    path.run(0.1)
    assert sk.cwnd == 4 and sk.in_flight() <= 4
    path.run(1.0)
    t_back, mode = path.modes[-1]
    assert mode == "PROBE_BW" and 200 * MS < t_back - t_probe < 300 * MS
    assert sk.cwnd >= cwnd_before - 2 and [m for _t, m in path.modes[-3:]] == ["PROBE_BW", "PROBE_RTT", "PROBE_BW"]


def test_bbr_full_pipe_after_three_rounds_without_25_percent_growth():
    sk, _ns = new_sock("bbr")
    bbr = sk.ca
    rs = tcp_rate.RateSample()
    bbr.round_start = True

    def round_with(bw):
        bbr.bw.running_max(tcp_bbr.BW_RTTS, bbr.rtt_cnt, bw)
        bbr.rtt_cnt += 1
        bbr.check_full_bw_reached(sk, rs)
        return bbr.full_bw_cnt, bbr.full_bw_reached
    assert round_with(1000) == (0, False)
    assert round_with(1240) == (1, False)          # +24%: not significant
    assert round_with(1250) == (0, False)          # +25% over 1000: growth, start over
    assert [round_with(1250) for _ in range(3)] == [(1, False), (2, False), (3, True)]


def test_bbr_probe_bw_cycles_its_gains():
    path = Path("bbr", rate=1000, rtt=0.020)
    path.run(2.0)
    bbr = path.sk.ca
    seen = []
    for _ in range(400):
        path.run(0.005)
        if not seen or seen[-1] != bbr.pacing_gain:
            seen.append(bbr.pacing_gain)
    # 5/4 is always followed by 3/4, then 1.0 (six phases of one min RTT each)
    i = seen.index(320)
    assert seen[i:i + 3] == [320, 192, 256]
    assert set(seen) == {320, 192, 256}


def test_bbr_through_the_stack_and_ss_fields():
    net = DelayNetwork(delay=0.005, rate=10_000_000)      # time on the cables: rate samples need it
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_congestion_control"] = "bbr"
    cli, child = delayed_pair(net)
    data = random.Random(9).randbytes(300_000)
    assert transfer(net, cli, child, data) == data
    row = [r for r in net.tr.tcp.sockets(net.tr.netns["h1"]) if r["sk"] == cli.sk][0]
    assert row["ca"] == "bbr" and set(row["bbr"]) >= {"bw", "min_rtt", "pacing_gain", "cwnd_gain"}
    assert row["pacing_rate"] == cli.info().pacing_rate > 0 and row["delivery_rate"] > 0


def test_available_and_sysctls():
    assert tcp_cong.available() == "reno cubic bbr"
    assert sysctl_mod.KNOBS["net.ipv4.tcp_available_congestion_control"].default == tcp_cong.available()
    assert sysctl_mod.KNOBS["net.ipv4.tcp_slow_start_after_idle"].default == 1
    assert sysctl_mod.KNOBS["net.ipv4.tcp_congestion_control"].default == "cubic"
    with pytest.raises(ValueError):
        sysctl_mod.parse("net.ipv4.tcp_available_congestion_control", "reno", set())
    assert sysctl_mod.parse("net.ipv4.tcp_congestion_control", "bbr", set())[1] == "bbr"


def test_tcp_congestion_bbr_per_socket():
    net = Netstack()
    cli = net.socket("h1")
    from pktflow.v1.skb_pb2 import ProtoCall
    ev = cli.call(ProtoCall.SETSOCKOPT, level=6, optname=13, optbytes=b"bbr")
    assert ev.err == 0 and cli.info().ca.name == "bbr"


def test_ss_prints_bbr_as_iproute2_does(monkeypatch):
    import io
    import json
    from contextlib import redirect_stdout

    from pktflow import _client, cli
    net = DelayNetwork(delay=0.005, rate=10_000_000)
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_congestion_control"] = "bbr"
    cli_sock, child = delayed_pair(net)
    transfer(net, cli_sock, child, random.Random(9).randbytes(100_000))
    rows = net.tr.tcp.sockets(net.tr.netns["h1"])
    monkeypatch.setattr(_client, "admin", lambda *a: SimpleNamespace(json=json.dumps(rows)))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["ss", "-n", "h1", "-i"]) == 0
    info = out.getvalue().splitlines()[2]
    bbr = cli_sock.info().ca
    bw_bits = bbr.info(cli_sock.info())["bw"] * 8.0
    assert f" bbr:(bw:{cli.sprint_bw(bw_bits)}bps,mrtt:{bbr.min_rtt_us / 1000:g},pacing_gain:2.88672," \
           f"cwnd_gain:2.88672) " in info
    assert " pacing_rate " in info and " delivery_rate " in info
    assert [cli.sprint_bw(x) for x in (999.0, 1500.0, 2.5e6, 3e9)] == ["999", "1.5K", "2.5M", "3.0G"]


# -- through the whole stack, with time on the cables ------------------------------

class DelayNetwork(Netstack):
    """The in-process Netstack with time on its cables: every frame takes
    `delay` s to cross one, and frames leaving `bottleneck` (netns, ifname)
    are serialized at `rate` bit/s behind each other (an unbounded FIFO)."""

    def __init__(self, delay: float, rate: int, bottleneck=("r1", "eth1"), **kw):
        super().__init__(**kw)
        self.delay, self.rate = int(delay * S), rate
        self.bottleneck = (bottleneck[0], self.topo.hosts[bottleneck[0]].interfaces[bottleneck[1]].ifindex)
        self.busy = 0
        self.flight: list = []
        self.n = 0

    def pump(self):
        while self.wire:
            netns, ifindex, frame = self.wire.pop(0)
            t = self.now
            if (netns, ifindex) == self.bottleneck:
                self.busy = max(self.busy, t) + len(frame) * 8 * S // self.rate
                t = self.busy
            self.n += 1
            heapq.heappush(self.flight, (t + self.delay, self.n, netns, ifindex, frame))

    def advance(self, seconds: float):
        end = self.now + int(seconds * 1e9)
        while True:
            t_frame = self.flight[0][0] if self.flight else None
            key = min(self.timers, key=self.timers.get) if self.timers else None
            t_timer = self.timers[key] if key else None
            if (t_frame is None or t_frame > end) and (t_timer is None or t_timer > end):
                break
            if t_frame is not None and (t_timer is None or t_frame <= t_timer):
                _, _, netns, ifindex, frame = heapq.heappop(self.flight)
                self.now = max(self.now, t_frame)
                self.cross(netns, ifindex, frame)
            else:
                self.fire_timer(*key, t_timer)
            self.pump()
        self.now = end


def delayed_pair(net, port=80):
    srv = net.socket("h2")
    assert srv.bind("10.0.2.10", port) == 0 and srv.listen() == 0
    cli = net.socket("h1")
    cli.connect("10.0.2.10", port)
    net.advance(0.5)
    child = srv.accept()
    assert child is not None and cli.info().state == ESTABLISHED
    return cli, child


def test_cubic_through_the_stack_leaves_slow_start_by_hystart():
    """10 Mbit/s from r1 to h2, 5 ms a cable (20 ms RTT): the RTT samples that
    tcp_clean_rtx_queue() hands cubic end slow start before anything is lost;
    the exit shows in h1's counters as nstat names them."""
    net = DelayNetwork(delay=0.005, rate=10_000_000)
    cli, child = delayed_pair(net)
    data = random.Random(2).randbytes(1_000_000)
    assert transfer(net, cli, child, data) == data
    c, sk = net.counters("h1"), cli.info()
    exits = c["TCPHystartTrainDetect"] + c["TCPHystartDelayDetect"]
    assert exits == 1 and c["TcpRetransSegs"] == 0
    assert 20_000 < sk.ca.delay_min < 23_000                     # 20 ms and a segment's 1.2 ms
    assert sk.rtt_min == sk.ca.delay_min and sk.ssthresh == c["TCPHystartTrainCwnd"] + c["TCPHystartDelayCwnd"]


def test_bbr_through_the_stack_paces_itself_into_probe_bw():
    """BBR asks TCP to pace (SK_PACING_NEEDED) and tcp_write_xmit() does: over a
    10 Mbit/s, 20 ms path STARTUP fills the pipe, DRAIN's 0.35 gain empties the
    queue it built, and PROBE_BW cycles, its bandwidth estimate near the link's."""
    from pktflow.services.transport import tcp_bbr
    net = DelayNetwork(delay=0.005, rate=10_000_000)
    net.tr.netns["h1"].sysctl["net.ipv4.tcp_congestion_control"] = "bbr"
    cli, child = delayed_pair(net)
    sk = cli.info()
    modes = []
    real = sk.ca.cong_control

    def watch(sk_, rs, now):
        real(sk_, rs, now)
        if not modes or modes[-1] != sk_.ca.mode:
            modes.append(sk_.ca.mode)
    sk.ca.cong_control = watch
    data = random.Random(3).randbytes(3_000_000)
    assert transfer(net, cli, child, data) == data
    assert sk.pacing_needed and modes[:3] == [tcp_bbr.STARTUP, tcp_bbr.DRAIN, tcp_bbr.PROBE_BW]
    bw_bps = sk.ca.info(sk)["bw"] * 8
    assert 0.8 * 10_000_000 < bw_bps < 1.1 * 10_000_000
