"""Delivery rate sampling (net/ipv4/tcp_rate.c), as draft-cheng-iccrg-delivery-rate-estimation
describes it: each segment remembers, when it is sent, how much the connection
had delivered by then and when; the ACK that delivers it turns the difference
into a sample: delivered / max(send phase, ACK phase). Congestion controls that
model the path (BBR) and `ss -i`'s delivery_rate read it.

Times here are microseconds (tp->tcp_mstamp) derived from the `now` (ns) that
the caller passes in; counts are segments.
"""
from .tcp import sent_after

US = 1000                      # ns per us
TCP_MIN_RTT_WLEN = 300         # s: net.ipv4.tcp_min_rtt_wlen, the min-RTT filter's window


class RateSample:
    """struct rate_sample: one ACK's delivery-rate sample."""
    __slots__ = ("prior_mstamp", "prior_delivered", "delivered", "interval_us", "snd_interval_us",
                 "rcv_interval_us", "rtt_us", "losses", "acked_sacked", "prior_in_flight", "last_end_seq",
                 "is_app_limited", "is_retrans", "is_ack_delayed", "prior_lost", "lost_acked",
                 "prior_sacked_out")

    def __init__(self, prior_in_flight: int = 0):
        self.prior_mstamp = 0          # delivered_mstamp of the most recently sent segment this ACK covers
        self.prior_delivered = 0       # delivered count then
        self.delivered = 0             # segments delivered in the interval (-1: no sample)
        self.interval_us = -1          # the interval (-1: no sample)
        self.snd_interval_us = self.rcv_interval_us = 0
        self.rtt_us = -1               # RTT of the newest segment this ACK delivered (-1: none)
        self.losses = 0                # segments newly marked lost by this ACK
        self.acked_sacked = 0          # segments newly ACKed or SACKed
        self.prior_in_flight = prior_in_flight
        self.last_end_seq = 0
        self.is_app_limited = self.is_retrans = self.is_ack_delayed = False
        self.prior_lost = self.lost_acked = self.prior_sacked_out = 0


def mstamp(now: int) -> int:
    return now // US


def skb_sent(sk, seg, now: int):
    """tcp_rate_skb_sent(): snapshot the delivery state into the segment. With
    nothing in flight, a new sampling interval starts now."""
    t = mstamp(now)
    if not sk.rtx:                     # packets_out: called before the segment joins the queue
        sk.first_tx_mstamp = t
        sk.delivered_mstamp = t
    seg.tx_first_tx_mstamp = sk.first_tx_mstamp
    seg.tx_delivered_mstamp = sk.delivered_mstamp
    seg.tx_delivered = sk.delivered
    seg.tx_app_limited = bool(sk.app_limited)


def ack_start(sk, now: int):
    """tcp_ack()'s prologue: a fresh sample for this ACK, with what was in flight before it."""
    rs = RateSample(sk.in_flight())
    rs.prior_delivered = 0
    rs.prior_lost = sk.lost
    rs.prior_sacked_out = sk.sacked_out
    sk.rs = rs
    rs.acked_sacked = sk.delivered        # the count before this ACK; made a difference in rate_gen


def skb_delivered(sk, seg, sacked: bool = False):
    """tcp_rate_skb_delivered() (with tcp_count_delivered()): a segment was
    SACKed or cumulatively ACKed. The most recently sent of them sets the sample."""
    if sacked or not seg.sacked:
        sk.delivered += 1
    rs = sk.rs
    if rs is not None and seg.lost:
        rs.lost_acked += 1
    if rs is None or not seg.tx_delivered_mstamp:
        return
    tx = mstamp(seg.sent)
    if not rs.prior_delivered or sent_after(tx, sk.first_tx_mstamp, seg.end, rs.last_end_seq):
        rs.prior_delivered = seg.tx_delivered
        rs.prior_mstamp = seg.tx_delivered_mstamp
        rs.is_app_limited = seg.tx_app_limited
        rs.is_retrans = seg.retrans > 0
        rs.last_end_seq = seg.end
        sk.first_tx_mstamp = tx
        rs.interval_us = tx - seg.tx_first_tx_mstamp       # the send phase
    if seg.sacked:
        seg.tx_delivered_mstamp = 0        # counted once: not again when cumulatively ACKed


def update_rtt_min(sk, rtt_us: int, now: int):
    """tcp_update_rtt_min(): the least RTT over tcp_min_rtt_wlen (300 s). A plain
    windowed minimum; Linux keeps three candidates (lib/win_minmax.c)."""
    if rtt_us < 0:
        return
    rtt_us = max(rtt_us, 1)
    if not sk.rtt_min or rtt_us <= sk.rtt_min or now - sk.rtt_min_stamp > TCP_MIN_RTT_WLEN * 10**9:
        sk.rtt_min, sk.rtt_min_stamp = rtt_us, now


def rate_gen(sk, now: int) -> RateSample:
    """tcp_rate_gen(): the ACK's sample: delivered over the longer of the send
    and ACK phases; none when the interval is shorter than the min RTT."""
    rs = sk.rs
    delivered = sk.delivered - rs.acked_sacked
    lost = sk.lost - rs.prior_lost              # tcp_mark_skb_lost() counted them (tp->lost)
    t = mstamp(now)
    if sk.app_limited and sk.delivered > sk.app_limited:
        sk.app_limited = 0                     # the app-limited bubble is ACKed and gone
    if delivered:
        sk.delivered_mstamp = t
    rs.acked_sacked = delivered
    rs.losses = lost
    # FLAG_ACK_MAYBE_DELAYED: one segment, the last in flight, ACKed alone
    rs.is_ack_delayed = delivered == 1 and not sk.rtx and not rs.prior_sacked_out
    if not rs.prior_mstamp:
        rs.delivered = rs.interval_us = -1
        return rs
    rs.delivered = sk.delivered - rs.prior_delivered
    snd_us = rs.interval_us
    ack_us = t - rs.prior_mstamp
    rs.interval_us = max(snd_us, ack_us)
    rs.snd_interval_us, rs.rcv_interval_us = snd_us, ack_us
    if rs.interval_us < sk.rtt_min:
        rs.interval_us = -1                    # shorter than a round trip: not a valid sample
        return rs
    if not rs.is_app_limited or rs.delivered * sk.rate_interval_us >= sk.rate_delivered * rs.interval_us:
        sk.rate_delivered = rs.delivered       # the last non-app-limited, or the best app-limited one
        sk.rate_interval_us = rs.interval_us
        sk.rate_app_limited = rs.is_app_limited
    return rs


def check_app_limited(sk):
    """tcp_rate_check_app_limited(), from tcp_sendmsg(): less than a segment
    waiting, the window not full and no lost segment waiting for retransmission:
    samples until what is in flight now is delivered describe the application."""
    if sk.sendq_bytes < sk.mss_cache and sk.in_flight() < sk.cwnd and sk.lost_out <= sk.retrans_out:
        sk.app_limited = (sk.delivered + sk.in_flight()) or 1


def delivery_rate(sk) -> int:
    """tcp_get_info()'s tcpi_delivery_rate: bytes/s of the last recorded sample."""
    if not sk.rate_interval_us:
        return 0
    return sk.rate_delivered * sk.mss_cache * 1_000_000 // sk.rate_interval_us
