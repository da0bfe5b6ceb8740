"""Congestion control, pluggable by name as net/ipv4/tcp_cong.c makes it:
`reno` (RFC 5681), `cubic` (RFC 9438 with HyStart, Linux's default; tcp_cubic)
and `bbr` (BBR v1 as in mainline; tcp_bbr). cwnd counts packets (segments), as
in Linux.

A congestion control is an object with struct tcp_congestion_ops' hooks:
init (at tcp_init_transfer), ssthresh, cong_avoid, set_state, cwnd_event,
pkts_acked, and for a model-based one cong_control (which then replaces
cong_avoid and the pacing-rate update). The functions below are the
tcp_input/tcp_output/tcp_ipv4 call sites' side of that contract.
"""
from collections import Counter

from . import tcp_rate
from .tcp import CA_CWR, CA_RECOVERY, CLOSE, LISTEN, MS, SYN_SENT, TCP_INIT_CWND

# enum tcp_ca_event
CA_EVENT_TX_START, CA_EVENT_CWND_RESTART, CA_EVENT_COMPLETE_CWR, CA_EVENT_LOSS = range(4)


class Reno:
    name = "reno"
    cong_control = None          # a model-based CA defines cong_control(sk, rs, now)
    sndbuf_expand = 2            # tcp_sndbuf_expand(): windows of send buffer

    def __init__(self, sk):
        self.mib = Counter()     # the netns's counters, once assign() gave them

    def init(self, sk, now: int):
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
        """tcp_ca_event(CA_EVENT_LOSS), from tcp_enter_loss()."""
        self.cwnd_event(sk, CA_EVENT_LOSS, now)

    def set_state(self, sk, state: int, now: int):
        pass

    def undo_cwnd(self, sk) -> int:
        """tcp_reno_undo_cwnd(): the window before the reduction that proved needless."""
        return max(sk.cwnd, sk.prior_cwnd)

    def cwnd_event(self, sk, event: int, now: int):
        pass

    def pkts_acked(self, sk, acked: int, rtt_us: int, now: int):
        pass

    def info(self, sk) -> dict | None:
        return None


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


def jiffies(now: int) -> int:
    """tcp_jiffies32 at HZ=1000: milliseconds."""
    return now // MS


def algorithms() -> dict:
    """The registered congestion controls by name (tcp_cong_list), registered
    on first use: tcp_cubic and tcp_bbr subclass Reno from here."""
    algos = globals().get("ALGORITHMS")
    if algos is None:
        from .tcp_bbr import Bbr
        from .tcp_cubic import Cubic
        algos = globals()["ALGORITHMS"] = {"reno": Reno, "cubic": Cubic, "bbr": Bbr}
    return algos


def __getattr__(name: str):
    if name == "ALGORITHMS":
        return algorithms()
    if name in ("Cubic", "Bbr"):
        return algorithms()[name.lower()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available() -> str:
    """net.ipv4.tcp_available_congestion_control."""
    return " ".join(algorithms())


# -- the call sites' side ----------------------------------------------------

def assign(ns, sk, name: str, now: int = 0):
    """tcp_assign_congestion_control() / tcp_set_congestion_control(): a CA by
    name; on a connection already past the handshake it starts at once."""
    sk.ca = algorithms()[name](sk)
    sk.ca.mib = ns.mib
    if sk.state not in (CLOSE, LISTEN, SYN_SENT) and now:
        init(sk, now)


def init(sk, now: int):
    """tcp_init_transfer(): tcp_init_congestion_control(), and lsndtime starts."""
    sk.lsndtime = now
    sk.ca.init(sk, now)


def set_ca_state(sk, state: int, now: int):
    """tcp_set_ca_state(): the CA hears of it first."""
    sk.ca.set_state(sk, state, now)
    sk.ca_state = state


def pkts_acked(sk, acked: int, newest_once, th, now: int):
    """The end of tcp_clean_rtx_queue() and tcp_ack_update_rtt() as the CA sees
    them: the RTT of the newest segment ACKed that was sent once (in us; the
    echoed timestamp when there is none), the min-RTT filter, then
    icsk_ca_ops->pkts_acked."""
    rtt_us = -1
    if newest_once is not None:
        rtt_us = max((now - newest_once.sent) // tcp_rate.US, 0)
    elif sk.ts_ok and th is not None and th.options.ts is not None and th.options.ts[1] and acked:
        from .tcp_output import tsval
        rtt_us = max((tsval(sk, now) - th.options.ts[1]) % (1 << 32), 1) * 1000
    if sk.rs is not None:
        sk.rs.rtt_us = rtt_us
    tcp_rate.update_rtt_min(sk, rtt_us, now)
    if acked:
        sk.ca.pkts_acked(sk, acked, rtt_us, now)


def cong_control(sk, now: int):
    """tcp_ack()'s end: tcp_rate_gen(), then a model-based CA's cong_control
    (BBR: cwnd and pacing rate from its model) instead of cong_avoid."""
    if sk.rs is None:
        return
    rs = tcp_rate.rate_gen(sk, now)
    if sk.ca.cong_control is not None:
        sk.ca.cong_control(sk, rs, now)
    sk.rs = None


def data_sent(sk, seg, now: int):
    """A segment goes out (__tcp_transmit_skb()): its rate-sample snapshot, and
    for one carrying data tcp_event_data_sent(). Called before it joins the
    retransmission queue and before retrans_out counts it."""
    tcp_rate.skb_sent(sk, seg, now)
    if seg.data:
        event_data_sent(sk, now)


def event_data_sent(sk, now: int):
    """tcp_event_data_sent(): data leaving an empty pipe starts a transmission
    (CA_EVENT_TX_START, before lsndtime moves)."""
    if sk.in_flight() == 0:
        sk.ca.cwnd_event(sk, CA_EVENT_TX_START, now)
    sk.lsndtime = now


def current_ssthresh(sk) -> int:
    """tcp_current_ssthresh(): in a window reduction, ssthresh; else at least 3/4 cwnd."""
    if sk.ca_state in (CA_CWR, CA_RECOVERY):                 # tcp_in_cwnd_reduction()
        return sk.ssthresh
    return max(sk.ssthresh, (sk.cwnd >> 1) + (sk.cwnd >> 2))


def slow_start_after_idle_check(ns, sk, now: int):
    """tcp_slow_start_after_idle_check() (tcp_skb_entail(): new data queued):
    nothing in flight, net.ipv4.tcp_slow_start_after_idle on, not a model-based
    CA, and idle for longer than the RTO: tcp_cwnd_restart()."""
    if not ns.sysctl["net.ipv4.tcp_slow_start_after_idle"] or sk.rtx or sk.ca.cong_control is not None:
        return
    delta = jiffies(now) - jiffies(sk.lsndtime)
    if delta > jiffies(sk.rto):
        cwnd_restart(sk, delta, now)


def cwnd_restart(sk, delta: int, now: int):
    """tcp_cwnd_restart() (RFC 2861, RFC 5681 4.1): halve cwnd for every RTO
    of idle time, down to the restart window min(initial window, cwnd)."""
    sk.ca.cwnd_event(sk, CA_EVENT_CWND_RESTART, now)
    restart = min(TCP_INIT_CWND, sk.cwnd)
    sk.ssthresh = current_ssthresh(sk)
    cwnd = sk.cwnd
    rto = jiffies(sk.rto)
    delta -= rto
    while delta > 0 and cwnd > restart:
        cwnd >>= 1
        delta -= rto
    sk.cwnd = max(cwnd, restart)
    sk.snd_cwnd_cnt = 0


