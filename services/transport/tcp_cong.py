"""Congestion control, pluggable by name as net/ipv4/tcp_cong.c makes it:
`reno` (RFC 5681) and `cubic` (RFC 9438, Linux's default). cwnd counts
packets (segments), as in Linux."""
from .tcp import S


class Reno:
    name = "reno"

    def __init__(self, sk):
        pass

    def ssthresh(self, sk) -> int:
        """tcp_reno_ssthresh(): half the window, at least two segments."""
        return max(sk.cwnd >> 1, 2)

    def cong_avoid(self, sk, acked: int, now: int):
        """tcp_reno_cong_avoid(): slow start below ssthresh, then one segment an RTT."""
        if sk.cwnd < sk.ssthresh:
            acked = slow_start(sk, acked)
            if not acked:
                return
        cong_avoid_ai(sk, sk.cwnd, acked)

    def on_loss(self, sk, now: int):
        pass

    def undo_cwnd(self, sk) -> int:
        """tcp_reno_undo_cwnd(): the window before the reduction that proved needless."""
        return max(sk.cwnd, sk.prior_cwnd)

    def on_idle_restart(self, sk, now: int):
        pass


def slow_start(sk, acked: int) -> int:
    """tcp_slow_start(): cwnd grows by what was acked, up to ssthresh; returns the rest."""
    cwnd = min(sk.cwnd + acked, sk.ssthresh)
    acked -= cwnd - sk.cwnd
    sk.cwnd = cwnd
    return acked


def cong_avoid_ai(sk, w: int, acked: int):
    """tcp_cong_avoid_ai(): one more segment for every w acknowledged."""
    if sk.snd_cwnd_cnt >= w:
        sk.snd_cwnd_cnt = 0
        sk.cwnd += 1
    sk.snd_cwnd_cnt += acked
    if sk.snd_cwnd_cnt >= w:
        delta = sk.snd_cwnd_cnt // w
        sk.snd_cwnd_cnt -= delta * w
        sk.cwnd += delta


class Cubic(Reno):
    """RFC 9438: W_cubic(t) = C (t - K)^3 + W_max, beta 0.7, C 0.4, with fast
    convergence and the Reno-friendly region, as tcp_cubic.c computes them."""
    name = "cubic"
    BETA = 717 / 1024
    C = 0.4

    def __init__(self, sk):
        self.w_max = 0.0          # last_max_cwnd
        self.epoch = None         # start of the current congestion-avoidance epoch (ns)
        self.k = 0.0
        self.origin = 0.0
        self.w_est = 0.0
        self.ack_cnt = 0

    def ssthresh(self, sk) -> int:
        self.epoch = None
        cwnd = sk.cwnd
        # fast convergence: release bandwidth when the window shrank since the last loss
        self.w_max = cwnd * (1 + self.BETA) / 2 if cwnd < self.w_max else float(cwnd)
        return max(int(cwnd * self.BETA), 2)

    def on_loss(self, sk, now: int):
        self.epoch = None

    def on_idle_restart(self, sk, now: int):
        self.epoch = None

    def cong_avoid(self, sk, acked: int, now: int):
        if sk.cwnd < sk.ssthresh:
            acked = slow_start(sk, acked)
            if not acked:
                return
        cnt = self.update(sk, acked, now)
        cong_avoid_ai(sk, cnt, acked)

    def update(self, sk, acked: int, now: int) -> int:
        """bictcp_update(): how many acked segments buy one more segment of cwnd."""
        cwnd = sk.cwnd
        self.ack_cnt += acked
        if self.epoch is None:
            self.epoch = now
            self.ack_cnt = acked
            self.w_est = cwnd
            if self.w_max <= cwnd:
                self.k = 0.0
                self.origin = float(cwnd)
            else:
                self.k = ((self.w_max - cwnd) / self.C) ** (1 / 3)
                self.origin = self.w_max
        rtt = (sk.srtt or 100_000_000) / S
        t = (now - self.epoch) / S + rtt           # Linux looks one RTT ahead
        target = self.origin + self.C * (t - self.k) ** 3
        if target > cwnd:
            cnt = cwnd / (target - cwnd)
        else:
            cnt = 100 * cwnd                        # in the concave plateau: barely grow
        # the Reno-friendly region (RFC 9438 4.3)
        alpha = 3 * (1 - self.BETA) / (1 + self.BETA)
        self.w_est += alpha * self.ack_cnt / cwnd
        self.ack_cnt = 0
        if self.w_est > cwnd:
            cnt = min(cnt, cwnd / (self.w_est - cwnd))
        return max(int(cnt), 2)


ALGORITHMS = {"reno": Reno, "cubic": Cubic}


def available() -> str:
    return " ".join(ALGORITHMS)
