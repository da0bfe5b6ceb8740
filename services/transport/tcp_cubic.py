"""CUBIC (RFC 9438) with HyStart, as net/ipv4/tcp_cubic.c computes it in
Linux 6.x: fixed-point arithmetic (cwnd in segments, time in jiffies at HZ=1000
scaled to 2^10 units), beta 717/1024, C = bic_scale 41/1024 * 10, fast
convergence, the Reno-friendly region, and hybrid slow start (hystart=1,
hystart_detect=3: ACK trains and delay increase, from cwnd 16 up).

One difference: K is an exact integer cube root where Linux uses a table and
one Newton step (within 0.2%)."""
from .tcp_cong import CA_EVENT_TX_START, Reno, cong_avoid_ai, jiffies, slow_start
from .tcp import CA_LOSS

HZ = 1000
BICTCP_BETA_SCALE = 1024
BICTCP_HZ = 10                                  # 2^10 time units a second

# module parameters, Linux's defaults
FAST_CONVERGENCE = 1
BETA = 717                                      # / 1024
BIC_SCALE = 41
TCP_FRIENDLINESS = 1
HYSTART = 1
HYSTART_ACK_TRAIN, HYSTART_DELAY = 0x1, 0x2
HYSTART_DETECT = HYSTART_ACK_TRAIN | HYSTART_DELAY
HYSTART_LOW_WINDOW = 16
HYSTART_ACK_DELTA_US = 2000
HYSTART_MIN_SAMPLES = 8
HYSTART_DELAY_MIN, HYSTART_DELAY_MAX = 4000, 16000     # us
GSO_MAX_SIZE = 65536                            # sk_gso_max_size (GSO_LEGACY_MAX_SIZE)

# cubictcp_register()'s precomputed scales
BETA_SCALE = 8 * (BICTCP_BETA_SCALE + BETA) // 3 // (BICTCP_BETA_SCALE - BETA)
CUBE_RTT_SCALE = BIC_SCALE * 10
CUBE_FACTOR = (1 << (10 + 3 * BICTCP_HZ)) // (BIC_SCALE * 10)
U32 = 0xFFFFFFFF


def cubic_root(a: int) -> int:
    """The integer cube root of a (floor)."""
    if a <= 0:
        return 0
    x = 1 << ((a.bit_length() + 2) // 3)     # >= the root
    while True:
        y = (2 * x + a // (x * x)) // 3
        if y >= x:
            break
        x = y
    while x ** 3 > a:
        x -= 1
    while (x + 1) ** 3 <= a:
        x += 1
    return x


def delay_thresh(x: int) -> int:
    """HYSTART_DELAY_THRESH(): clamp(x, 4 ms, 16 ms)."""
    return min(max(x, HYSTART_DELAY_MIN), HYSTART_DELAY_MAX)


def usecs_to_jiffies(us: int) -> int:
    return (us + 999) // 1000


class Cubic(Reno):
    name = "cubic"

    def __init__(self, sk):
        super().__init__(sk)
        self.reset()
        self.round_start = self.last_ack = self.end_seq = 0
        self.curr_rtt = U32
        self.sample_cnt = 0

    def reset(self):
        """bictcp_reset()."""
        self.cnt = 0                   # cwnd grows by one after cnt ACKed segments
        self.last_max_cwnd = 0         # W_max: cwnd before the last reduction
        self.last_cwnd = 0
        self.last_time = 0
        self.bic_origin_point = 0
        self.bic_K = 0                 # time to reach W_max, in 2^-10 s
        self.delay_min = 0             # the least RTT seen (us)
        self.epoch_start = 0           # jiffies; 0: no epoch
        self.ack_cnt = 0
        self.tcp_cwnd = 0              # the Reno-friendly estimate
        self.found = False             # HyStart found the exit point

    def hystart_reset(self, sk, now: int):
        """bictcp_hystart_reset(): a new round of HyStart measurement."""
        self.round_start = self.last_ack = now // 1000
        self.end_seq = sk.snd_nxt
        self.curr_rtt = U32
        self.sample_cnt = 0

    def init(self, sk, now: int):
        """cubictcp_init() (initial_ssthresh 0: ssthresh stays infinite)."""
        self.reset()
        if HYSTART:
            self.hystart_reset(sk, now)

    def cwnd_event(self, sk, event: int, now: int):
        """cubictcp_cwnd_event(): after an application-limited idle, shift the
        epoch so the cubic curve continues where it was."""
        if event != CA_EVENT_TX_START:
            return
        t = jiffies(now)
        delta = t - jiffies(sk.lsndtime)
        if self.epoch_start and delta > 0:
            self.epoch_start += delta
            if self.epoch_start > t:
                self.epoch_start = t

    def ssthresh(self, sk) -> int:
        """cubictcp_recalc_ssthresh(): W_max with fast convergence, cwnd * beta."""
        self.epoch_start = 0
        cwnd = sk.cwnd
        if cwnd < self.last_max_cwnd and FAST_CONVERGENCE:
            self.last_max_cwnd = cwnd * (BICTCP_BETA_SCALE + BETA) // (2 * BICTCP_BETA_SCALE)
        else:
            self.last_max_cwnd = cwnd
        return max(cwnd * BETA // BICTCP_BETA_SCALE, 2)

    def set_state(self, sk, state: int, now: int):
        """cubictcp_state(): an RTO forgets everything (bictcp_reset) and HyStart starts over."""
        if state == CA_LOSS:
            self.reset()
            self.hystart_reset(sk, now)

    def cong_avoid(self, sk, acked: int, now: int):
        """cubictcp_cong_avoid() (the caller checked tcp_is_cwnd_limited())."""
        if sk.cwnd < sk.ssthresh:
            acked = slow_start(sk, acked)
            if not acked:
                return
        self.update(sk.cwnd, acked, now)
        cong_avoid_ai(sk, self.cnt, acked)

    def update(self, cwnd: int, acked: int, now: int):
        """bictcp_update(): how many ACKed segments buy one more segment of cwnd."""
        t_now = jiffies(now)
        self.ack_cnt += acked
        if self.last_cwnd == cwnd and t_now - self.last_time <= HZ // 32:
            return
        if not (self.epoch_start and t_now == self.last_time):   # at most once a jiffy
            self.last_cwnd = cwnd
            self.last_time = t_now
            if self.epoch_start == 0:
                self.epoch_start = t_now
                self.ack_cnt = acked
                self.tcp_cwnd = cwnd
                if self.last_max_cwnd <= cwnd:
                    self.bic_K = 0
                    self.bic_origin_point = cwnd
                else:
                    self.bic_K = cubic_root(CUBE_FACTOR * (self.last_max_cwnd - cwnd))
                    self.bic_origin_point = self.last_max_cwnd
            # t: time since the epoch began, one min RTT ahead, in 2^-10 s
            t = t_now - self.epoch_start + usecs_to_jiffies(self.delay_min)
            t = (t << BICTCP_HZ) // HZ
            offs = self.bic_K - t if t < self.bic_K else t - self.bic_K
            delta = (CUBE_RTT_SCALE * offs * offs * offs) >> (10 + 3 * BICTCP_HZ)
            target = self.bic_origin_point - delta if t < self.bic_K else self.bic_origin_point + delta
            self.cnt = cwnd // (target - cwnd) if target > cwnd else 100 * cwnd
            if self.last_max_cwnd == 0 and self.cnt > 20:
                self.cnt = 20          # no loss yet: grow at least 5% an RTT
        if TCP_FRIENDLINESS:
            delta = (cwnd * BETA_SCALE) >> 3
            while self.ack_cnt > delta:
                self.ack_cnt -= delta
                self.tcp_cwnd += 1
            if self.tcp_cwnd > cwnd:
                self.cnt = min(self.cnt, cwnd // (self.tcp_cwnd - cwnd))
        self.cnt = max(self.cnt, 2)    # at most 1.5x an RTT

    # -- HyStart ------------------------------------------------------------
    def pkts_acked(self, sk, acked: int, rtt_us: int, now: int):
        """cubictcp_acked(): delay_min, and HyStart while in slow start."""
        if rtt_us < 0:
            return
        if self.epoch_start and jiffies(now) - self.epoch_start < HZ:
            return                     # samples right after a reduction are discarded
        delay = rtt_us or 1
        if self.delay_min == 0 or self.delay_min > delay:
            self.delay_min = delay
        if not self.found and sk.cwnd < sk.ssthresh and HYSTART and sk.cwnd >= HYSTART_LOW_WINDOW:
            self.hystart_update(sk, delay, now)

    def ack_delay(self, sk) -> int:
        """hystart_ack_delay(): room for TSO/GRO batching at this pacing rate, at most 1 ms."""
        if not sk.pacing_rate:
            return 0
        return min(1000, GSO_MAX_SIZE * 4 * 1_000_000 // sk.pacing_rate)

    def hystart_update(self, sk, delay: int, now: int):
        """hystart_update(): leave slow start (ssthresh = cwnd) when a round's
        ACK train lasts longer than half the min RTT, or its least RTT rose by
        delay_min/8 (clamped to 4..16 ms) over the least ever."""
        if sk.snd_una > self.end_seq:
            self.hystart_reset(sk, now)
        if HYSTART_DETECT & HYSTART_ACK_TRAIN:
            t = now // 1000
            if t - self.last_ack <= HYSTART_ACK_DELTA_US:
                self.last_ack = t
                threshold = self.delay_min + self.ack_delay(sk)
                threshold >>= 1        # SK_PACING_NONE: no fq pacing delays the train
                if t - self.round_start > threshold:
                    self.found = True
                    self.mib["TCPHystartTrainDetect"] += 1
                    self.mib["TCPHystartTrainCwnd"] += sk.cwnd
                    sk.ssthresh = sk.cwnd
        if HYSTART_DETECT & HYSTART_DELAY:
            if self.curr_rtt > delay:
                self.curr_rtt = delay
            if self.sample_cnt < HYSTART_MIN_SAMPLES:
                self.sample_cnt += 1
            elif self.curr_rtt > self.delay_min + delay_thresh(self.delay_min >> 3):
                self.found = True
                self.mib["TCPHystartDelayDetect"] += 1
                self.mib["TCPHystartDelayCwnd"] += sk.cwnd
                sk.ssthresh = sk.cwnd
