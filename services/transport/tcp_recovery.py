"""Loss detection and undo (net/ipv4/tcp_recovery.c and the parts of
tcp_input.c that feed it): RACK (RFC 8985: a segment is lost when one sent
after it was delivered more than an RTT plus a reordering window ago), the
tail loss probe's outcome, reordering detection, D-SACK (RFC 2883) and the
undo of reductions that proved spurious (D-SACK, timestamps, F-RTO)."""
from . import tcp_cong
from .tcp_output import current_mss, tsval, xmit_retransmit_queue
from .tcp import (CA_CWR, CA_DISORDER, CA_LOSS, CA_OPEN, CA_RECOVERY, MASK, S, TCP_ECN_OK, TCP_ECN_QUEUE_CWR,
                  TCP_INFINITE_SSTHRESH, TCP_MAX_REORDERING, TCP_RACK_RECOVERY_THRESH, TCP_TIMEOUT_MIN, sent_after)

TCP_RACK_LOSS_DETECTION = 0x1      # net.ipv4.tcp_recovery bits
TCP_RACK_STATIC_REO_WND = 0x2
TCP_RACK_NO_DUPTHRESH = 0x4


def is_rack(ns) -> bool:
    return bool(ns.sysctl["net.ipv4.tcp_recovery"] & TCP_RACK_LOSS_DETECTION)


def min_rtt(sk) -> int:
    """tcp_min_rtt() in ns (tcp_rate.update_rtt_min() keeps it, in us)."""
    return sk.rtt_min * 1000


def rack_advance(sk, seg, now: int):
    """tcp_rack_advance(): remember the most recently sent segment that was
    delivered. A retransmission's ACK that came sooner than the minimum RTT
    probably acknowledged the original: it says nothing."""
    rtt = now - seg.sent
    if seg.retrans and rtt < min_rtt(sk):
        return
    sk.rack_advanced = True
    sk.rack_rtt = rtt
    # Linux breaks a tie of send times by end sequence; here a batch shares one clock
    # reading, so transmission order breaks it (also right for a retransmission)
    if sent_after(seg.sent, sk.rack_mstamp, seg.order, sk.rack_order):
        sk.rack_mstamp, sk.rack_order = seg.sent, seg.order


def reo_wnd(ns, sk) -> int:
    """tcp_rack_reo_wnd(): no reordering seen yet, so be aggressive in recovery
    and once DupThresh segments are SACKed; otherwise min_rtt/4 a step, at most srtt."""
    if not sk.reord_seen:
        if sk.ca_state >= CA_RECOVERY:
            return 0
        if sk.sacked_out >= sk.reordering and not ns.sysctl["net.ipv4.tcp_recovery"] & TCP_RACK_NO_DUPTHRESH:
            return 0
    return min((min_rtt(sk) >> 2) * sk.reo_wnd_steps, sk.srtt)


def mark_lost(ns, sk, seg):
    """tcp_mark_skb_lost(): a lost retransmission leaves retrans_out to go again."""
    if seg.sacked:
        return
    if seg.lost:
        if seg.in_rtx:
            seg.in_rtx = False
            sk.retrans_out -= 1
            ns.mib["TCPLostRetransmit"] += 1
    else:
        seg.lost = True
        sk.lost_out += 1
        sk.lost += 1


def rack_mark_lost(ns, sk, now: int) -> int:
    """tcp_rack_mark_lost() + tcp_rack_detect_loss(): marks what RACK deems
    lost; returns how long until the next one could be (0: none), for the
    reordering timer."""
    if not sk.rack_advanced:
        return 0
    sk.rack_advanced = False
    window = reo_wnd(ns, sk)
    wait = 0
    for seg in sk.rtx:
        if seg.sacked or (seg.lost and not seg.in_rtx):
            continue
        if not sent_after(sk.rack_mstamp, seg.sent, sk.rack_order, seg.order):
            if not sk.retrans_out:
                break                   # first sends go in sequence order: none later was sent earlier
            continue
        remaining = sk.rack_rtt + window - (now - seg.sent)
        if remaining <= 0:
            mark_lost(ns, sk, seg)
        else:
            wait = max(wait, remaining)
    return wait + TCP_TIMEOUT_MIN if wait else 0


def arm_reo_timer(sk, wait: int, now: int):
    """inet_csk_reset_xmit_timer(ICSK_TIME_REO_TIMEOUT): not later than the RTO."""
    sk.t_reo = min(now + wait, sk.t_rto) if sk.t_rto is not None else now + wait


def note_reordering(ns, sk, low_seq: int, fack: int):
    """tcp_check_sack_reordering(): an original transmission below the highest
    SACKed sequence arrived late: the path reorders. tcp_reordering grows to
    the distance seen (in segments), and RACK widens its window from now on."""
    if low_seq >= fack:
        return
    mss = sk.mss_cache
    metric = fack - low_seq
    if mss and metric > sk.reordering * mss:
        sk.reordering = min(ns.sysctl["net.ipv4.tcp_max_reordering"], -(-metric // mss), TCP_MAX_REORDERING)
    sk.reord_seen += 1
    ns.mib["TCPSACKReorder"] += 1


def update_reo_wnd(sk):
    """tcp_rack_update_reo_wnd(), once a recovery: a D-SACK after reordering
    widens the window a step (held for 16 recoveries), else it falls back to one."""
    if sk.rack_dsack_seen:
        sk.reo_wnd_steps = min(0xFF, sk.reo_wnd_steps + 1)
        sk.rack_dsack_seen = False
        sk.reo_wnd_persist = TCP_RACK_RECOVERY_THRESH
    elif sk.reo_wnd_persist:
        sk.reo_wnd_persist -= 1
    else:
        sk.reo_wnd_steps = 1


def check_dsack(ns, sk, blocks: list, ack: int, prior_una: int) -> tuple[bool, bool]:
    """tcp_check_dsack(): the first block is a D-SACK when it lies below the
    cumulative ACK, or inside the second block. Returns (is a D-SACK, it
    answers the tail loss probe)."""
    start, end = blocks[0]
    if start < ack:
        ns.mib["TCPDSACKRecv"] += 1
    elif len(blocks) > 1 and blocks[1][0] <= start and end <= blocks[1][1]:
        ns.mib["TCPDSACKOfoRecv"] += 1
    else:
        return False, False
    # tcp_dsack_seen()
    length = end - start
    if length <= 0 or length > sk.max_window:
        ns.mib["TCPDSACKIgnoredDubious"] += 1
        return False, False
    dup_segs, tlp = 1, False
    if length > sk.mss_cache:
        dup_segs = -(-length // sk.mss_cache)
    elif sk.tlp_high_seq and sk.tlp_high_seq == end:
        tlp = True
    sk.dsack_dups += dup_segs
    if sk.dsack_dups > sk.total_retrans:        # we never sent those twice: not ours to believe
        ns.mib["TCPDSACKIgnoredDubious"] += 1
        return False, False
    if sk.reord_seen and not tlp:
        sk.rack_dsack_seen = True
    ns.mib["TCPDSACKRecvSegs"] += dup_segs
    if sk.undo_marker and sk.undo_retrans > 0 and end <= prior_una and end > sk.undo_marker:
        sk.undo_retrans = max(0, sk.undo_retrans - dup_segs)
    return True, tlp


def dsack_in_queue(sk, start: int, end: int):
    """tcp_sacktag_one() with dup_sack: a D-SACK of a retransmitted segment
    still in flight makes one retransmission less undoable."""
    for seg in sk.rtx:
        if seg.seq >= end:
            break
        if seg.retrans and seg.seq >= start and seg.end <= end and sk.undo_marker and sk.undo_retrans > 0 \
                and seg.end > sk.undo_marker:
            sk.undo_retrans = max(0, sk.undo_retrans - 1)


# -- undo (tcp_input.c) ------------------------------------------------------

def init_undo(sk):
    """tcp_init_undo(): from here, retransmissions may prove spurious."""
    sk.undo_marker = sk.snd_una
    sk.undo_retrans = sk.retrans_out or -1


def packet_delayed(sk, tsecr) -> bool:
    """tcp_packet_delayed(): the ACK echoes a timestamp from before our first
    retransmission, so the original got there (Eifel, RFC 3522)."""
    if not (sk.retrans_stamp and sk.ts_ok and tsecr):
        return False
    return 0 < (tsval(sk, sk.retrans_stamp) - tsecr) & MASK < 0x80000000


def may_undo(sk, tsecr) -> bool:
    return bool(sk.undo_marker) and (not sk.undo_retrans or packet_delayed(sk, tsecr))


def undo_cwnd_reduction(sk, unmark_loss: bool):
    """tcp_undo_cwnd_reduction(): the window and threshold go back to what they were."""
    if unmark_loss:
        for seg in sk.rtx:
            if seg.lost:
                seg.lost = False
        sk.lost_out = 0
    if sk.prior_ssthresh:
        sk.cwnd = max(sk.cwnd, sk.ca.undo_cwnd(sk))
        if sk.prior_ssthresh > sk.ssthresh:
            sk.ssthresh = sk.prior_ssthresh
    sk.undo_marker = 0
    sk.rack_advanced = True                 # RACK looks at the losses again


def try_undo_dsack(ns, sk) -> bool:
    """tcp_try_undo_dsack(): every retransmission was D-SACKed: there was no loss."""
    if sk.undo_marker and not sk.undo_retrans:
        sk.reo_wnd_persist = min(TCP_RACK_RECOVERY_THRESH, sk.reo_wnd_persist + 1)
        undo_cwnd_reduction(sk, False)
        ns.mib["TCPDSACKUndo"] += 1
        return True
    return False


def try_undo_recovery(ns, sk, tsecr) -> bool:
    """tcp_try_undo_recovery(): recovery is over; undo it if it was needless."""
    if may_undo(sk, tsecr):
        undo_cwnd_reduction(sk, False)
        ns.mib["TCPFullUndo" if sk.ca_state != CA_LOSS else "TCPLossUndo"] += 1
    sk.ca_state = CA_OPEN
    return False


def try_undo_loss(ns, sk, tsecr, frto_undo: bool) -> bool:
    """tcp_try_undo_loss(): the RTO was spurious (F-RTO, RFC 5682, or the echoed
    timestamp shows the original arrived): undo it and leave Loss."""
    if frto_undo or may_undo(sk, tsecr):
        undo_cwnd_reduction(sk, True)
        ns.mib["TCPLossUndo"] += 1
        if frto_undo:
            ns.mib["TCPSpuriousRTOs"] += 1
        sk.retransmits = 0
        if frto_undo or sk.sack_ok:
            sk.ca_state = CA_OPEN
        return True
    return False


def process_tlp_ack(ns, sk, ack: int, st):
    """tcp_process_tlp_ack(): what the tail loss probe found. An ACK beyond it
    after a retransmitted probe means the tail was lost and the probe repaired
    it: reduce the window once (CWR) and count TCPLossProbeRecovery."""
    if ack < sk.tlp_high_seq:
        return
    if not sk.tlp_retrans or st.dsack_tlp:
        sk.tlp_high_seq = 0
    elif ack > sk.tlp_high_seq:
        init_cwnd_reduction(sk)                # clears tlp_high_seq
        sk.ca_state = CA_CWR
        end_cwnd_reduction(sk)
        try_keep_open(sk)
        ns.mib["TCPLossProbeRecovery"] += 1
    elif not (st.una_advanced or st.not_dup or st.sacked):
        sk.tlp_high_seq = 0                    # a pure duplicate ACK: original and probe both arrived


# -- the recovery state machine (tcp_fastretrans_alert and friends) ----------

class AckState:
    """What one ACK did, as the kernel's FLAG_* bits and sacktag state."""
    __slots__ = ("una_advanced", "ece", "tsecr", "sacked", "dsack", "dsack_tlp", "orig_sack_acked", "dupack",
                 "not_dup", "newly_lost", "rexmit_new")

    def __init__(self, una_advanced: bool = False, ece: bool = False, tsecr: int = 0):
        self.una_advanced, self.ece, self.tsecr = una_advanced, ece, tsecr
        self.sacked = 0                        # segments newly SACKed
        self.dsack = self.dsack_tlp = self.orig_sack_acked = self.dupack = self.not_dup = False
        self.newly_lost = 0
        self.rexmit_new = False                # REXMIT_NEW: F-RTO sends new data before retransmitting


def in_cwnd_reduction(sk) -> bool:
    return sk.ca_state in (CA_CWR, CA_RECOVERY)


def init_cwnd_reduction(sk):
    """tcp_init_cwnd_reduction(): PRR starts from here (RFC 6937)."""
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = 0
    sk.snd_cwnd_cnt = 0
    sk.prior_cwnd = sk.cwnd
    sk.prr_delivered = sk.prr_out = 0
    sk.ssthresh = sk.ca.ssthresh(sk)
    if sk.ecn_flags & TCP_ECN_OK:
        sk.ecn_flags |= TCP_ECN_QUEUE_CWR          # tcp_ecn_queue_cwr(): tell the receiver we reacted


def end_cwnd_reduction(sk):
    """tcp_end_cwnd_reduction(): cwnd lands on ssthresh, unless undone."""
    if sk.ssthresh < TCP_INFINITE_SSTHRESH and (sk.ca_state == CA_CWR or sk.undo_marker):
        sk.cwnd = sk.ssthresh


def cwnd_reduction(sk, newly_acked_sacked: int, newly_lost: int, una_advanced: bool):
    """tcp_cwnd_reduction(): Proportional Rate Reduction (RFC 6937), PRR-SSRB
    as Linux runs it: while the pipe is above ssthresh send in proportion to
    what is delivered, below it grow back toward ssthresh at most as fast as
    slow start; and send at least the fast retransmit."""
    if newly_acked_sacked <= 0 or not sk.prior_cwnd:
        return
    delta = sk.ssthresh - sk.in_flight()
    sk.prr_delivered += newly_acked_sacked
    if delta < 0:
        sndcnt = -(-sk.ssthresh * sk.prr_delivered // sk.prior_cwnd) - sk.prr_out
    else:
        sndcnt = max(sk.prr_delivered - sk.prr_out, newly_acked_sacked)
        if una_advanced and not newly_lost:
            sndcnt += 1
        sndcnt = min(delta, sndcnt)
    sndcnt = max(sndcnt, 0 if sk.prr_out else 1)
    sk.cwnd = sk.in_flight() + sndcnt


def enter_cwr(sk):
    """tcp_enter_cwr(): an ECN echo; reduce once, without retransmitting."""
    sk.prior_ssthresh = 0
    if sk.ca_state < CA_CWR:
        sk.undo_marker = 0
        init_cwnd_reduction(sk)
        sk.ca_state = CA_CWR


def try_keep_open(sk):
    """tcp_try_keep_open(): Disorder while anything is SACKed, lost or retransmitted."""
    state = CA_DISORDER if sk.sacked_out or sk.lost_out or sk.retrans_out or sk.undo_marker else CA_OPEN
    if sk.ca_state != state:
        sk.ca_state = state
        sk.high_seq = sk.snd_nxt


def try_to_open(sk, st):
    """tcp_try_to_open()."""
    if not sk.retrans_out:
        sk.retrans_stamp = 0
    if st.ece:
        enter_cwr(sk)
    if sk.ca_state != CA_CWR:
        try_keep_open(sk)


def enter_recovery(ns, sk, ece: bool):
    """tcp_enter_recovery(): fast recovery begins (the window shrinks by PRR, not at once)."""
    ns.mib["TCPSackRecovery" if sk.sack_ok else "TCPRenoRecovery"] += 1
    update_reo_wnd(sk)
    sk.prior_ssthresh = 0
    init_undo(sk)
    if not in_cwnd_reduction(sk):
        if not ece:
            sk.prior_ssthresh = tcp_cong.current_ssthresh(sk)
        init_cwnd_reduction(sk)
    sk.ca_state = CA_RECOVERY


def enter_loss(ns, sk, now: int):
    """tcp_enter_loss(): the RTO fired. Everything not SACKed is presumed lost,
    cwnd is one segment, and F-RTO (RFC 5682) will tell if the timeout was spurious."""
    new_recovery = sk.ca_state < CA_RECOVERY
    for seg in sk.rtx:                              # tcp_timeout_mark_lost()
        seg.in_rtx = False
        if not seg.sacked and not seg.lost:
            seg.lost = True
            sk.lost_out += 1
            sk.lost += 1
    sk.retrans_out = 0
    if sk.ca_state <= CA_DISORDER or sk.high_seq <= sk.snd_una or (sk.ca_state == CA_LOSS and not sk.retransmits):
        sk.prior_ssthresh = tcp_cong.current_ssthresh(sk)
        sk.prior_cwnd = sk.cwnd
        sk.ssthresh = sk.ca.ssthresh(sk)
        sk.ca.on_loss(sk, now)
        init_undo(sk)
    sk.cwnd = sk.in_flight() + 1
    sk.snd_cwnd_cnt = 0
    reordering = ns.sysctl["net.ipv4.tcp_reordering"]
    if sk.ca_state <= CA_DISORDER and sk.sacked_out >= reordering:
        sk.reordering = min(sk.reordering, reordering)
    tcp_cong.set_ca_state(sk, CA_LOSS, now)          # the CA hears of it (cubic: bictcp_reset)
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = 0
    sk.t_tlp = sk.t_reo = None
    if sk.ecn_flags & TCP_ECN_OK:
        sk.ecn_flags |= TCP_ECN_QUEUE_CWR
    sk.frto = bool(ns.sysctl["net.ipv4.tcp_frto"]) and (new_recovery or bool(sk.retransmits))


def identify_packet_loss(ns, sk, st, now: int):
    """tcp_identify_packet_loss(): RACK for SACK connections (a reordering
    timer for the ones not yet due), NewReno's head-of-queue rule otherwise,
    or with RACK off (tcp_recovery=0) RFC 6675's DupThresh SACKed above a hole."""
    if not sk.rtx:
        return
    if not sk.sack_ok:
        if (sk.ca_state < CA_RECOVERY and sk.dupacks >= sk.reordering) or \
                (sk.ca_state == CA_RECOVERY and st.una_advanced):
            mark_lost(ns, sk, sk.rtx[0])
    elif is_rack(ns):
        wait = rack_mark_lost(ns, sk, now)
        if wait:
            arm_reo_timer(sk, wait, now)
    elif sk.sacked_out:
        above = 0
        for seg in reversed(sk.rtx):
            if seg.sacked:
                above += 1
            elif above >= sk.reordering and not seg.lost:
                mark_lost(ns, sk, seg)


def process_loss(ns, sk, st) -> bool:
    """tcp_process_loss(): in Loss after an RTO. Returns True when done with this ACK."""
    recovered = sk.snd_una >= sk.high_seq
    if st.una_advanced and try_undo_loss(ns, sk, st.tsecr, False):
        return True
    if sk.frto:
        if st.orig_sack_acked and try_undo_loss(ns, sk, st.tsecr, True):
            return True                       # never-retransmitted data arrived: the RTO was spurious
        if sk.snd_nxt > sk.high_seq:
            if st.sacked or st.dupack:
                sk.frto = False               # step 3.a: the loss was real
        elif st.una_advanced and not recovered:
            sk.high_seq = sk.snd_nxt          # step 2.b: new data next, to see what the ACKs say
            if sk.sendq_bytes and sk.snd_una + sk.snd_wnd > sk.snd_nxt:
                st.rexmit_new = True
                return True
            sk.frto = False
    if recovered:
        try_undo_recovery(ns, sk, st.tsecr)
        return True
    return False


def fastretrans_alert(ns, sk, prior_una: int, st, now: int):
    """tcp_fastretrans_alert(): the recovery state machine, on a dubious ACK
    (a duplicate, SACK or D-SACK news, an ECN echo, or not in Open)."""
    if sk.ca_state == CA_OPEN:
        sk.retrans_stamp = 0 if not sk.retrans_out else sk.retrans_stamp
    elif sk.snd_una >= sk.high_seq:                   # exit conditions: high_seq is acknowledged
        if sk.ca_state == CA_CWR:
            if sk.snd_una != sk.high_seq:
                end_cwnd_reduction(sk)
                sk.ca_state = CA_OPEN
        elif sk.ca_state == CA_RECOVERY:
            sk.dupacks = 0
            try_undo_recovery(ns, sk, st.tsecr)
            end_cwnd_reduction(sk)
    if sk.ca_state == CA_RECOVERY:
        if try_undo_dsack(ns, sk):
            try_to_open(sk, st)
        identify_packet_loss(ns, sk, st, now)
        if sk.ca_state != CA_RECOVERY and sk.lost_out:
            enter_recovery(ns, sk, st.ece)        # undone, but loss is evident: recover again
        return
    if sk.ca_state == CA_LOSS:
        if process_loss(ns, sk, st):
            return
        identify_packet_loss(ns, sk, st, now)
        if sk.ca_state != CA_OPEN:
            return
    if sk.ca_state <= CA_DISORDER:
        try_undo_dsack(ns, sk)
    identify_packet_loss(ns, sk, st, now)
    if not sk.lost_out:                               # tcp_time_to_recover()
        try_to_open(sk, st)
        return
    enter_recovery(ns, sk, st.ece)


def cong_control(ns, sk, acked_sacked: int, st, now: int):
    """tcp_cong_control(): PRR while reducing, else the congestion control
    grows the window (in Loss too: slow start from one segment); then the
    pacing rate. A CA with its own cong_control (BBR) does all of it."""
    ca = sk.ca
    if ca.cong_control is not None:
        return                                      # tcp_cong.cong_control() runs BBR's model
    if in_cwnd_reduction(sk):
        cwnd_reduction(sk, acked_sacked, st.newly_lost, st.una_advanced)
    elif (st.una_advanced or (sk.reordering > ns.sysctl["net.ipv4.tcp_reordering"] and acked_sacked)) \
            and sk.cwnd_limited:
        ca.cong_avoid(sk, acked_sacked, now)        # tcp_may_raise_cwnd() and tcp_is_cwnd_limited()
    update_pacing_rate(ns, sk)


def update_pacing_rate(ns, sk):
    """tcp_update_pacing_rate(): 200% of cwnd x mss / srtt in slow start
    (tcp_pacing_ss_ratio), 120% after (tcp_pacing_ca_ratio), in bytes/s."""
    ratio = ns.sysctl["net.ipv4.tcp_pacing_ss_ratio" if sk.cwnd < sk.ssthresh // 2
                      else "net.ipv4.tcp_pacing_ca_ratio"]
    rate = sk.mss_cache * ratio * max(sk.cwnd, len(sk.rtx)) * S // 100
    if sk.srtt:
        rate //= sk.srtt
    sk.pacing_rate = min(rate, sk.max_pacing_rate)


def simple_retransmit(tr, ns, sk, now: int, out: list):
    """tcp_simple_retransmit(): the path MTU shrank, so every segment in flight
    larger than the new MSS is lost; they go again, cut to size. The window is
    not reduced (the network lost nothing; the units changed), but recovery
    starts over in Loss state."""
    mss = current_mss(sk)
    for seg in sk.rtx:
        if len(seg.data) > mss:
            mark_lost(ns, sk, seg)
    if not sk.lost_out:
        return
    if sk.ca_state != CA_LOSS:
        sk.high_seq = sk.snd_nxt
        sk.ssthresh = tcp_cong.current_ssthresh(sk)
        sk.prior_ssthresh = 0
        sk.undo_marker = 0
        tcp_cong.set_ca_state(sk, CA_LOSS, now)
    xmit_retransmit_queue(tr, ns, sk, now, out)
