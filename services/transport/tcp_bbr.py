"""BBR v1 (net/ipv4/tcp_bbr.c as in mainline Linux 6.x): a model of the path
from delivery-rate samples (tcp_rate) instead of a reaction to loss.

    bw      = windowed max of delivered/interval over 10 round trips
    min_rtt = windowed min of RTT samples over 10 s
    pacing_rate = pacing_gain * bw;  cwnd = cwnd_gain * bw * min_rtt + quanta

Modes: STARTUP (gain 2/ln2 = 2.885) until the bandwidth stops growing by 25%
for 3 rounds; DRAIN (1/2.885) until in flight <= BDP; PROBE_BW cycling pacing
gains 5/4, 3/4, 1 x6, a phase per min RTT; PROBE_RTT (cwnd 4 for 200 ms and a
round) when min_rtt was not refreshed for 10 s. Also the long-term bandwidth
estimate used when a token-bucket policer is detected, ACK-aggregation
allowance, and packet conservation in the first round of recovery.

Fixed point as in Linux: bandwidth in segments per us << 24, gains << 8; time
in us (tcp_mstamp) and jiffies (ms)."""
from .tcp_cong import CA_EVENT_TX_START, Reno, jiffies
from .tcp import CA_LOSS, CA_RECOVERY, TCP_INFINITE_SSTHRESH, TCP_INIT_CWND

BW_SCALE = 24
BW_UNIT = 1 << BW_SCALE
BBR_SCALE = 8
BBR_UNIT = 1 << BBR_SCALE
U32 = 0xFFFFFFFF
USEC_PER_SEC = 1_000_000
USEC_PER_MSEC = 1000
HZ = 1000

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = range(4)
MODE_NAMES = ("STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT")

CYCLE_LEN = 8
BW_RTTS = CYCLE_LEN + 2                 # bw filter window, in rounds
MIN_RTT_WIN_SEC = 10
PROBE_RTT_MODE_MS = 200
MIN_TSO_RATE = 1200000                  # bits/s
PACING_MARGIN_PERCENT = 1
HIGH_GAIN = BBR_UNIT * 2885 // 1000 + 1  # 2/ln(2)
DRAIN_GAIN = BBR_UNIT * 1000 // 2885
CWND_GAIN = BBR_UNIT * 2
PACING_GAIN = (BBR_UNIT * 5 // 4, BBR_UNIT * 3 // 4) + (BBR_UNIT,) * 6
CYCLE_RAND = 7
CWND_MIN_TARGET = 4
FULL_BW_THRESH = BBR_UNIT * 5 // 4
FULL_BW_CNT = 3
LT_INTVL_MIN_RTTS = 4
LT_LOSS_THRESH = 50                     # / 256: 20% lost
LT_BW_RATIO = BBR_UNIT // 8
LT_BW_DIFF = 4000 // 8                  # bytes/s
LT_BW_MAX_RTTS = 48
EXTRA_ACKED_GAIN = BBR_UNIT
EXTRA_ACKED_WIN_RTTS = 5
ACK_EPOCH_ACKED_RESET_THRESH = 1 << 20
EXTRA_ACKED_MAX_US = 100 * 1000
GSO_MAX_SIZE, MAX_TCP_HEADER = 65536, 320
SK_PACING_SHIFT = 10


class MinMax:
    """lib/win_minmax.c: a windowed running maximum kept as the best, second
    and third best (time, value) samples in the window."""

    def __init__(self):
        self.s = [(0, 0)] * 3

    def get(self) -> int:
        return self.s[0][1]

    def reset(self, t: int, v: int) -> int:
        self.s = [(t, v)] * 3
        return v

    def running_max(self, win: int, t: int, v: int) -> int:
        s = self.s
        if v >= s[0][1] or t - s[2][0] > win:
            return self.reset(t, v)            # a new maximum, or nothing left in the window
        if v >= s[1][1]:
            s[1] = s[2] = (t, v)
        elif v >= s[2][1]:
            s[2] = (t, v)
        return self._subwin_update(win, (t, v))

    def _subwin_update(self, win: int, new) -> int:
        s = self.s
        dt = new[0] - s[0][0]
        if dt > win:
            s[0], s[1], s[2] = s[1], s[2], new     # the best expired: promote the others
            if new[0] - s[0][0] > win:
                s[0], s[1], s[2] = s[1], s[2], new
        elif s[1][0] == s[0][0] and dt > win // 4:
            s[1] = s[2] = new                      # a quarter of the window passed: a new second best
        elif s[2][0] == s[1][0] and dt > win // 2:
            s[2] = new
        return s[0][1]


class Bbr(Reno):
    name = "bbr"
    sndbuf_expand = 3                   # BBR may slow start even in recovery

    def __init__(self, sk):
        super().__init__(sk)
        self.rng_state = (sk.sk * 2654435761) & U32 or 1
        self.init(sk, 0)

    def _random_below(self, n: int) -> int:
        """get_random_u32_below(): a deterministic generator per socket, so runs repeat."""
        self.rng_state = (self.rng_state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.rng_state % n

    # -- tcp_congestion_ops -------------------------------------------------
    def init(self, sk, now: int):
        """bbr_init()."""
        self.prior_cwnd = 0
        sk.ssthresh = TCP_INFINITE_SSTHRESH
        self.rtt_cnt = 0
        self.next_rtt_delivered = sk.delivered
        self.prev_ca_state = 0
        self.packet_conservation = False
        self.probe_rtt_done_stamp = 0
        self.probe_rtt_round_done = False
        self.min_rtt_us = sk.rtt_min or U32
        self.min_rtt_stamp = jiffies(now)
        self.bw = MinMax()
        self.has_seen_rtt = False
        self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        self.init_pacing_rate_from_rtt(sk)
        self.round_start = False
        self.idle_restart = False
        self.full_bw_reached = False
        self.full_bw = 0
        self.full_bw_cnt = 0
        self.cycle_mstamp = 0
        self.cycle_idx = 0
        self.reset_lt_bw_sampling(sk)
        self.mode = STARTUP
        self.ack_epoch_mstamp = now // 1000
        self.ack_epoch_acked = 0
        self.extra_acked_win_rtts = 0
        self.extra_acked_win_idx = 0
        self.extra_acked = [0, 0]
        sk.pacing_needed = True         # cmpxchg(sk_pacing_status, NONE, NEEDED): TCP paces itself (no fq)

    def ssthresh(self, sk) -> int:
        """bbr_ssthresh(): entering recovery only saves cwnd; ssthresh is not BBR's tool."""
        self.save_cwnd(sk)
        return sk.ssthresh

    def cong_avoid(self, sk, acked: int, now: int):
        pass                            # cong_control replaces it

    def undo_cwnd(self, sk) -> int:
        """bbr_undo_cwnd(): a spurious loss restarts full-pipe detection; cwnd stays as BBR set it."""
        self.full_bw = 0
        self.full_bw_cnt = 0
        self.reset_lt_bw_sampling(sk)
        return sk.cwnd

    def set_state(self, sk, state: int, now: int):
        """bbr_set_state(): an RTO ends a round and counts as a loss for policer detection."""
        if state == CA_LOSS:
            from .tcp_rate import RateSample
            rs = RateSample()
            rs.losses = 1
            self.prev_ca_state = CA_LOSS
            self.full_bw = 0
            self.round_start = True
            self.lt_bw_sampling(sk, rs)

    def cwnd_event(self, sk, event: int, now: int):
        """bbr_cwnd_event(): restarting from idle while app-limited."""
        if event == CA_EVENT_TX_START and sk.app_limited:
            self.idle_restart = True
            self.ack_epoch_mstamp = now // 1000
            self.ack_epoch_acked = 0
            if self.mode == PROBE_BW:
                self.set_pacing_rate(sk, self.bw_est(), BBR_UNIT)
            elif self.mode == PROBE_RTT:
                self.check_probe_rtt_done(sk, now)

    def cong_control(self, sk, rs, now: int):
        """bbr_main(): update the model, then pace and size cwnd from it."""
        self.update_model(sk, rs, now)
        bw = self.bw_est()
        self.set_pacing_rate(sk, bw, self.pacing_gain)
        self.set_cwnd(sk, rs, rs.acked_sacked, bw, self.cwnd_gain)

    def info(self, sk) -> dict:
        """bbr_get_info() (INET_DIAG_BBRINFO): what `ss -i` prints as bbr:(...)."""
        return {"bw": self.bw_est() * sk.mss_cache * USEC_PER_SEC >> BW_SCALE, "min_rtt": self.min_rtt_us,
                "pacing_gain": self.pacing_gain, "cwnd_gain": self.cwnd_gain, "mode": MODE_NAMES[self.mode]}

    # -- the model ------------------------------------------------------------
    def max_bw(self) -> int:
        return self.bw.get()

    def bw_est(self) -> int:
        """bbr_bw(): the long-term (policed) rate when in use, else the max filter."""
        return self.lt_bw if self.lt_use_bw else self.max_bw()

    def extra_acked_max(self) -> int:
        return max(self.extra_acked)

    def rate_bytes_per_sec(self, sk, rate: int, gain: int) -> int:
        rate *= sk.mss_cache
        rate *= gain
        rate >>= BBR_SCALE
        rate *= USEC_PER_SEC // 100 * (100 - PACING_MARGIN_PERCENT)
        return rate >> BW_SCALE

    def init_pacing_rate_from_rtt(self, sk):
        """high_gain * cwnd / srtt (1 ms before any sample)."""
        if sk.srtt:
            rtt_us = max(sk.srtt // 1000, 1)
            self.has_seen_rtt = True
        else:
            rtt_us = USEC_PER_MSEC
        bw = sk.cwnd * BW_UNIT // rtt_us
        sk.pacing_rate = self.rate_bytes_per_sec(sk, bw, HIGH_GAIN)

    def set_pacing_rate(self, sk, bw: int, gain: int):
        """bbr_set_pacing_rate(): never slower than before until the pipe is full."""
        rate = self.rate_bytes_per_sec(sk, bw, gain)
        if not self.has_seen_rtt and sk.srtt:
            self.init_pacing_rate_from_rtt(sk)
        if self.full_bw_reached or rate > sk.pacing_rate:
            sk.pacing_rate = rate

    def tso_segs_goal(self, sk) -> int:
        """bbr_tso_segs_goal(): about 1 ms of data at the pacing rate, 64 KB at most."""
        min_segs = 1 if sk.pacing_rate < (MIN_TSO_RATE >> 3) else 2
        size = min(sk.pacing_rate >> SK_PACING_SHIFT, GSO_MAX_SIZE - 1 - MAX_TCP_HEADER)
        return min(max(size // sk.mss_cache, min_segs), 0x7F)

    def save_cwnd(self, sk):
        if self.prev_ca_state < CA_RECOVERY and self.mode != PROBE_RTT:
            self.prior_cwnd = sk.cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, sk.cwnd)

    def bdp(self, bw: int, gain: int) -> int:
        """bbr_bdp(): ceil(bw * min_rtt * gain); the initial window before any RTT sample."""
        if self.min_rtt_us == U32:
            return TCP_INIT_CWND
        w = bw * self.min_rtt_us
        return ((w * gain >> BBR_SCALE) + BW_UNIT - 1) // BW_UNIT

    def quantization_budget(self, sk, cwnd: int) -> int:
        """Three TSO bursts' worth (qdisc, TSO engine, receiver's GRO), even, +2 in the 5/4 phase."""
        cwnd += 3 * self.tso_segs_goal(sk)
        cwnd = (cwnd + 1) & ~1
        if self.mode == PROBE_BW and self.cycle_idx == 0:
            cwnd += 2
        return cwnd

    def inflight(self, sk, bw: int, gain: int) -> int:
        return self.quantization_budget(sk, self.bdp(bw, gain))

    def packets_in_net_at_edt(self, sk, inflight_now: int) -> int:
        """bbr_packets_in_net_at_edt(): no departure is scheduled ahead of now
        here (EDT = now), so only the next burst counts when probing up."""
        if self.pacing_gain > BBR_UNIT:
            inflight_now += self.tso_segs_goal(sk)
        return inflight_now

    def ack_aggregation_cwnd(self) -> int:
        if EXTRA_ACKED_GAIN and self.full_bw_reached:
            max_aggr = self.bw_est() * EXTRA_ACKED_MAX_US // BW_UNIT
            return min(EXTRA_ACKED_GAIN * self.extra_acked_max() >> BBR_SCALE, max_aggr)
        return 0

    def set_cwnd_to_recover_or_restore(self, sk, rs, acked: int):
        """Packet conservation in recovery's first round; the saved cwnd when it ends.
        Returns (cwnd, conserving)."""
        prev, state = self.prev_ca_state, sk.ca_state
        cwnd = sk.cwnd
        if rs.losses > 0:
            cwnd = max(cwnd - rs.losses, 1)
        if state == CA_RECOVERY and prev != CA_RECOVERY:
            self.packet_conservation = True
            self.next_rtt_delivered = sk.delivered       # a round starts now
            cwnd = sk.in_flight() + acked
        elif prev >= CA_RECOVERY and state < CA_RECOVERY:
            cwnd = max(cwnd, self.prior_cwnd)
            self.packet_conservation = False
        self.prev_ca_state = state
        if self.packet_conservation:
            return max(cwnd, sk.in_flight() + acked), True
        return cwnd, False

    def set_cwnd(self, sk, rs, acked: int, bw: int, gain: int):
        """bbr_set_cwnd(): toward gain * BDP (+ aggregation, + quanta), slow-starting up to it."""
        cwnd = sk.cwnd
        if acked:
            cwnd, conserving = self.set_cwnd_to_recover_or_restore(sk, rs, acked)
            if not conserving:
                target = self.bdp(bw, gain)
                target += self.ack_aggregation_cwnd()
                target = self.quantization_budget(sk, target)
                if self.full_bw_reached:
                    cwnd = min(cwnd + acked, target)
                elif cwnd < target or sk.delivered < TCP_INIT_CWND:
                    cwnd = cwnd + acked
                cwnd = max(cwnd, CWND_MIN_TARGET)
        sk.cwnd = cwnd
        if self.mode == PROBE_RTT:
            sk.cwnd = min(sk.cwnd, CWND_MIN_TARGET)

    # -- PROBE_BW's gain cycle ----------------------------------------------
    def is_next_cycle_phase(self, sk, rs) -> bool:
        is_full_length = sk.delivered_mstamp - self.cycle_mstamp > self.min_rtt_us
        if self.pacing_gain == BBR_UNIT:
            return is_full_length
        inflight = self.packets_in_net_at_edt(sk, rs.prior_in_flight)
        bw = self.max_bw()
        if self.pacing_gain > BBR_UNIT:
            return is_full_length and (rs.losses > 0 or inflight >= self.inflight(sk, bw, self.pacing_gain))
        return is_full_length or inflight <= self.inflight(sk, bw, BBR_UNIT)

    def advance_cycle_phase(self, sk):
        self.cycle_idx = (self.cycle_idx + 1) & (CYCLE_LEN - 1)
        self.cycle_mstamp = sk.delivered_mstamp

    def update_cycle_phase(self, sk, rs):
        if self.mode == PROBE_BW and self.is_next_cycle_phase(sk, rs):
            self.advance_cycle_phase(sk)

    def reset_probe_bw_mode(self, sk):
        """Enter PROBE_BW at a random phase other than the 3/4 one."""
        self.mode = PROBE_BW
        self.cycle_idx = CYCLE_LEN - 1 - self._random_below(CYCLE_RAND)
        self.advance_cycle_phase(sk)

    def reset_mode(self, sk):
        if not self.full_bw_reached:
            self.mode = STARTUP
        else:
            self.reset_probe_bw_mode(sk)

    # -- long-term bandwidth (policer detection) ------------------------------
    def reset_lt_bw_sampling_interval(self, sk):
        self.lt_last_stamp = sk.delivered_mstamp // USEC_PER_MSEC
        self.lt_last_delivered = sk.delivered
        self.lt_last_lost = sk.lost
        self.lt_rtt_cnt = 0

    def reset_lt_bw_sampling(self, sk):
        self.lt_bw = 0
        self.lt_use_bw = False
        self.lt_is_sampling = False
        self.reset_lt_bw_sampling_interval(sk)

    def lt_bw_interval_done(self, sk, bw: int):
        if self.lt_bw:
            diff = abs(bw - self.lt_bw)
            if diff * BBR_UNIT <= LT_BW_RATIO * self.lt_bw or \
                    self.rate_bytes_per_sec(sk, diff, BBR_UNIT) <= LT_BW_DIFF:
                self.lt_bw = (bw + self.lt_bw) >> 1      # two consistent lossy intervals: policed
                self.lt_use_bw = True
                self.pacing_gain = BBR_UNIT
                self.lt_rtt_cnt = 0
                return
        self.lt_bw = bw
        self.reset_lt_bw_sampling_interval(sk)

    def lt_bw_sampling(self, sk, rs):
        """bbr_lt_bw_sampling(): two intervals of 4+ rounds with 20% loss and the same rate."""
        if self.lt_use_bw:
            if self.mode == PROBE_BW and self.round_start:
                self.lt_rtt_cnt += 1
                if self.lt_rtt_cnt >= LT_BW_MAX_RTTS:
                    self.reset_lt_bw_sampling(sk)
                    self.reset_probe_bw_mode(sk)
            return
        if not self.lt_is_sampling:
            if not rs.losses:
                return
            self.reset_lt_bw_sampling_interval(sk)
            self.lt_is_sampling = True
        if rs.is_app_limited:
            self.reset_lt_bw_sampling(sk)
            return
        if self.round_start:
            self.lt_rtt_cnt += 1
        if self.lt_rtt_cnt < LT_INTVL_MIN_RTTS:
            return
        if self.lt_rtt_cnt > 4 * LT_INTVL_MIN_RTTS:
            self.reset_lt_bw_sampling(sk)
            return
        if not rs.losses:
            return
        lost = sk.lost - self.lt_last_lost
        delivered = sk.delivered - self.lt_last_delivered
        if not delivered or (lost << BBR_SCALE) < LT_LOSS_THRESH * delivered:
            return
        t = sk.delivered_mstamp // USEC_PER_MSEC - self.lt_last_stamp
        if t < 1:
            return
        self.lt_bw_interval_done(sk, delivered * BW_UNIT // (t * USEC_PER_MSEC))

    # -- per-ACK model update -------------------------------------------------
    def update_bw(self, sk, rs):
        """bbr_update_bw(): rounds, and the sample into the 10-round max filter."""
        self.round_start = False
        if rs.delivered < 0 or rs.interval_us <= 0:
            return
        if rs.prior_delivered >= self.next_rtt_delivered:
            self.next_rtt_delivered = sk.delivered
            self.rtt_cnt += 1
            self.round_start = True
            self.packet_conservation = False
        self.lt_bw_sampling(sk, rs)
        bw = rs.delivered * BW_UNIT // rs.interval_us
        if not rs.is_app_limited or bw >= self.max_bw():
            self.bw.running_max(BW_RTTS, self.rtt_cnt, bw)

    def update_ack_aggregation(self, sk, rs):
        """bbr_update_ack_aggregation(): the most data ACKed beyond bw * time in an epoch."""
        if not EXTRA_ACKED_GAIN or rs.acked_sacked <= 0 or rs.delivered < 0 or rs.interval_us <= 0:
            return
        if self.round_start:
            self.extra_acked_win_rtts = min(0x1F, self.extra_acked_win_rtts + 1)
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS:
                self.extra_acked_win_rtts = 0
                self.extra_acked_win_idx ^= 1
                self.extra_acked[self.extra_acked_win_idx] = 0
        epoch_us = sk.delivered_mstamp - self.ack_epoch_mstamp
        expected = self.bw_est() * epoch_us // BW_UNIT
        if self.ack_epoch_acked <= expected or \
                self.ack_epoch_acked + rs.acked_sacked >= ACK_EPOCH_ACKED_RESET_THRESH:
            self.ack_epoch_acked = 0
            self.ack_epoch_mstamp = sk.delivered_mstamp
            expected = 0
        self.ack_epoch_acked = min(0xFFFFF, self.ack_epoch_acked + rs.acked_sacked)
        extra = min(self.ack_epoch_acked - expected, sk.cwnd)
        if extra > self.extra_acked[self.extra_acked_win_idx]:
            self.extra_acked[self.extra_acked_win_idx] = extra

    def check_full_bw_reached(self, sk, rs):
        """The pipe is full after 3 rounds without 25% more bandwidth."""
        if self.full_bw_reached or not self.round_start or rs.is_app_limited:
            return
        if self.max_bw() >= self.full_bw * FULL_BW_THRESH >> BBR_SCALE:
            self.full_bw = self.max_bw()
            self.full_bw_cnt = 0
            return
        self.full_bw_cnt += 1
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_CNT

    def check_drain(self, sk, rs):
        if self.mode == STARTUP and self.full_bw_reached:
            self.mode = DRAIN
            sk.ssthresh = self.inflight(sk, self.max_bw(), BBR_UNIT)
        if self.mode == DRAIN and \
                self.packets_in_net_at_edt(sk, sk.in_flight()) <= self.inflight(sk, self.max_bw(), BBR_UNIT):
            self.reset_probe_bw_mode(sk)      # the queue is drained

    def check_probe_rtt_done(self, sk, now: int):
        if not (self.probe_rtt_done_stamp and jiffies(now) > self.probe_rtt_done_stamp):
            return
        self.min_rtt_stamp = jiffies(now)     # the next PROBE_RTT is 10 s away
        sk.cwnd = max(sk.cwnd, self.prior_cwnd)
        self.reset_mode(sk)

    def update_min_rtt(self, sk, rs, now: int):
        """The 10 s min-RTT filter; PROBE_RTT when it expires."""
        t = jiffies(now)
        expired = t > self.min_rtt_stamp + MIN_RTT_WIN_SEC * HZ
        if rs.rtt_us >= 0 and (rs.rtt_us < self.min_rtt_us or (expired and not rs.is_ack_delayed)):
            self.min_rtt_us = rs.rtt_us
            self.min_rtt_stamp = t
        if PROBE_RTT_MODE_MS > 0 and expired and not self.idle_restart and self.mode != PROBE_RTT:
            self.mode = PROBE_RTT
            self.save_cwnd(sk)
            self.probe_rtt_done_stamp = 0
        if self.mode == PROBE_RTT:
            sk.app_limited = (sk.delivered + sk.in_flight()) or 1    # ignore low-rate samples
            if not self.probe_rtt_done_stamp and sk.in_flight() <= CWND_MIN_TARGET:
                self.probe_rtt_done_stamp = t + PROBE_RTT_MODE_MS
                self.probe_rtt_round_done = False
                self.next_rtt_delivered = sk.delivered
            elif self.probe_rtt_done_stamp:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done:
                    self.check_probe_rtt_done(sk, now)
        if rs.delivered > 0:
            self.idle_restart = False

    def update_gains(self):
        if self.mode == STARTUP:
            self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        elif self.mode == DRAIN:
            self.pacing_gain, self.cwnd_gain = DRAIN_GAIN, HIGH_GAIN
        elif self.mode == PROBE_BW:
            self.pacing_gain = BBR_UNIT if self.lt_use_bw else PACING_GAIN[self.cycle_idx]
            self.cwnd_gain = CWND_GAIN
        else:
            self.pacing_gain = self.cwnd_gain = BBR_UNIT

    def update_model(self, sk, rs, now: int):
        self.update_bw(sk, rs)
        self.update_ack_aggregation(sk, rs)
        self.update_cycle_phase(sk, rs)
        self.check_full_bw_reached(sk, rs)
        self.check_drain(sk, rs)
        self.update_min_rtt(sk, rs, now)
        self.update_gains()
