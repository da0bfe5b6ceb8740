"""Segment arrival on a connection (net/ipv4/tcp_input.c): the handshake's
second and third steps, RFC 9293's acceptability tests with the kernel's drop
reasons, ACK processing with SACK (RFC 2018, RFC 6675 loss marking), RTT
(RFC 6298) and congestion control, in-order and out-of-order data, FIN."""
import errno

from pktflow.v1.skb_pb2 import SockEvent, Skb

from ..common.actions import Drop, Stop, Up
from ..wire import ipv4, tcp as wire
from . import af_inet6, tcp_cong, tcp_output as xmit, tcp_rate, tcp_recovery as recovery
from .tcp import (CA_LOSS, CA_OPEN, CA_RECOVERY, CLOSE, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1, FIN_WAIT2,
                  LAST_ACK, MAX_SACK_BLOCKS, MS, S, SYN_RECV, SYN_SENT, TCP_ATO_MIN, TCP_DELACK_MIN,
                  TCP_ECN_DEMAND_CWR, TCP_ECN_OK, TCP_ECN_SEEN, TCP_MAX_QUICKACKS, TCP_RTO_MAX, TCP_RTO_MIN, TIME_WAIT,
                  TraceRef, set_state, trace_probe, unwrap)
from ..common.tracepoints import TCP_PROBE

RCV = "tcp_rcv_established"


def event(sk, kind: int, out: list, err: int = 0, state: int = 0, listener: int = 0, sk_id: int | None = None):
    """A callback into the socket layer (sk_state_change, sk_error_report, ...);
    the skb's ifindex is the socket's sk_bound_dev_if (a link-local peer's
    interface, the sin6_scope_id accept() reports)."""
    ev = SockEvent(kind=kind, err=err, state=state, listener=listener, port=sk.lport, peer_port=sk.rport)
    af_inet6.set_event_addrs(ev, sk, sk.laddr, sk.raddr)
    out.append(Up(Skb(netns=sk.netns, sk=sk.sk if sk_id is None else sk_id, event=ev, ifindex=sk.bound_dev_if),
                  "sk_state_change"))


def rtt_sample(sk, rtt: int, now: int):
    """tcp_rtt_estimator() + tcp_set_rto(): RFC 6298 with Linux's floor on the
    variance (RTO >= srtt + 200 ms)."""
    if rtt <= 0:
        rtt = 1000
    if not sk.srtt:
        sk.srtt, sk.rttvar = rtt, rtt // 2
    else:
        sk.rttvar += (abs(sk.srtt - rtt) - sk.rttvar) // 4
        sk.srtt += (rtt - sk.srtt) // 8
    sk.rto = min(sk.srtt + max(4 * sk.rttvar, TCP_RTO_MIN), TCP_RTO_MAX)


def apply_options(sk, opts, syn: bool, sysctl=None):
    """What the peer's SYN offered: MSS, window scale, SACK, timestamps; an option
    whose sysctl (tcp_window_scaling, tcp_sack, tcp_timestamps) is off is ignored,
    as tcp_parse_options() does on a SYN."""
    if syn:
        if sysctl is not None:
            opts = opts._replace(
                wscale=opts.wscale if sysctl["net.ipv4.tcp_window_scaling"] else None,
                sack_perm=opts.sack_perm and bool(sysctl["net.ipv4.tcp_sack"]),
                ts=opts.ts if sysctl["net.ipv4.tcp_timestamps"] else None)
        sk.peer_mss = opts.mss or 536
        sk.wscale_ok = opts.wscale is not None
        sk.snd_wscale = opts.wscale if opts.wscale is not None else 0
        if not sk.wscale_ok:
            sk.rcv_wscale = 0
        sk.sack_ok = opts.sack_perm
        sk.ts_ok = opts.ts is not None
        mss = min(sk.peer_mss, sk.advmss)
        if sk.user_mss:
            mss = min(mss, sk.user_mss)
        sk.mss_cache = mss - (xmit.TCPOLEN_TSTAMP_ALIGNED if sk.ts_ok else 0)
        sk.rcv_mss = min(sk.advmss, sk.peer_mss)


def update_ts_recent(sk, th, seq: int, now: int):
    """RFC 7323 4.3: TS.Recent from a segment that covers Last.ACK.sent."""
    if sk.ts_ok and th.options.ts is not None and seq <= sk.rcv_wup:
        sk.ts_recent = th.options.ts[0]
        sk.ts_recent_stamp = now


def paws_reject(sk, th) -> bool:
    """tcp_paws_discard(): an older timestamp than TS.Recent (RFC 7323 5)."""
    if not sk.ts_ok or th.options.ts is None or th.flags & wire.RST:
        return False
    return ((th.options.ts[0] - sk.ts_recent) & 0xFFFFFFFF) >= 0x80000000


def synsent(tr, ns, sk, skb, th, now: int, out: list) -> list:
    """tcp_rcv_synsent_state_process()."""
    ack = unwrap(th.ack, sk.snd_nxt)
    if th.flags & wire.ACK and not sk.iss < ack <= sk.snd_nxt:
        if not th.flags & wire.RST:
            out.append(xmit.reset_for(ns, skb, th, sk.raddr, sk.laddr, now))
        return out + [Drop(skb, "tcp_rcv_synsent_state_process", "TCP_ACK_UNSENT_DATA")]
    if th.flags & wire.RST:
        if th.flags & wire.ACK:                       # "connection refused"
            tr.tcp_done(ns, sk, now, out, errno.ECONNREFUSED)
            ns.mib["TcpAttemptFails"] += 1
            return out + [Stop(skb, "tcp_reset")]
        return out + [Drop(skb, "tcp_rcv_synsent_state_process", "TCP_RESET")]
    if not th.flags & wire.SYN:
        return out + [Drop(skb, "tcp_rcv_synsent_state_process", "TCP_FLAGS")]
    sk.irs = th.seq
    sk.rcv_nxt = sk.rcv_wup = sk.irs + 1
    apply_options(sk, th.options, syn=True, sysctl=ns.sysctl)
    if sk.ecn_flags & TCP_ECN_OK and (not th.flags & wire.ECE or th.flags & wire.CWR):
        sk.ecn_flags = 0                              # tcp_ecn_rcv_synack(): the peer did not agree
    if sk.ts_ok:
        sk.ts_recent, sk.ts_recent_stamp = th.options.ts[0], now
    if th.flags & wire.ACK:
        sk.snd_una = ack
        sk.snd_wnd = th.window                      # a SYN's window is never scaled
        sk.max_window = max(sk.max_window, sk.snd_wnd)
        sk.snd_wl1, sk.snd_wl2 = th.seq, ack
        clean_rtx_queue(tr, ns, sk, ack, now, th)
        set_state(ns, sk, ESTABLISHED)
        tr.established(ns, sk, now)
        event(sk, SockEvent.STATE_CHANGE, out, state=ESTABLISHED)
        xmit.send_ack(tr, ns, sk, now, out, cause=skb)
        xmit.write_xmit(tr, ns, sk, now, out)
        return out + [Stop(skb, "tcp_rcv_synsent_state_process")]
    # simultaneous open (RFC 9293 3.5, figure 8): answer with SYN-ACK
    set_state(ns, sk, SYN_RECV)
    sk.snd_wnd = th.window
    out.append(xmit.send_syn(tr, ns, sk, now, synack=True, cause=skb))
    return out + [Stop(skb, "tcp_rcv_synsent_state_process")]


def dsack_set(ns, sk, seq: int, end: int):
    """tcp_dsack_set(): report a duplicate in the next ACK's first SACK block (RFC 2883)."""
    if sk.sack_ok and ns.sysctl["net.ipv4.tcp_dsack"]:
        ns.mib["TCPDSACKOldSent" if seq < sk.rcv_nxt else "TCPDSACKOfoSent"] += 1
        sk.dsack = (seq, end)


def oow_rate_limited(ns, sk, now: int, payload_len: int, th, counter: str) -> bool:
    """tcp_oow_rate_limited(): at most one duplicate ACK per tcp_invalid_ratelimit
    (500 ms) for invalid segments without data, so that two stacks cannot ACK
    each other forever; a segment with data always gets its ACK."""
    if payload_len and not th.flags & wire.SYN:
        return False
    return challenge_rate_limited(ns, sk, now, counter)


def challenge_rate_limited(ns, sk, now: int, counter: str) -> bool:
    """__tcp_oow_rate_limited(): the per-socket limit on ACKs to invalid segments."""
    last = sk.last_oow_ack_time
    if last is not None and 0 <= now - last < ns.sysctl["net.ipv4.tcp_invalid_ratelimit"] * MS:
        ns.mib[counter] += 1
        return True
    sk.last_oow_ack_time = now
    return False


def acceptable(sk, seq: int, end: int) -> bool:
    """tcp_sequence(): the segment overlaps the receive window (RFC 9293 3.10.7.4)."""
    win_end = sk.rcv_wup + sk.rcv_wnd
    if end == seq:
        return sk.rcv_nxt <= seq <= max(win_end, sk.rcv_nxt)
    return end > sk.rcv_nxt and seq < max(win_end, sk.rcv_nxt + 1)


def rcv_state_process(tr, ns, sk, skb, th, now: int) -> list:
    """tcp_rcv_state_process() for every state but LISTEN."""
    out: list = []
    sk.segs_in += 1
    sk.last_rcv = now
    if sk.state == SYN_SENT:
        return synsent(tr, ns, sk, skb, th, now, out)
    payload_len = len(skb.data) - skb.head
    if sk.state == ESTABLISHED and TCP_PROBE in ns.probes.on:
        trace_probe(ns, sk, payload_len)
    seq = unwrap(th.seq, sk.rcv_nxt)
    end = seq + payload_len + (1 if th.flags & wire.SYN else 0) + (1 if th.flags & wire.FIN else 0)
    if paws_reject(sk, th):
        if not oow_rate_limited(ns, sk, now, payload_len, th, "TCPACKSkippedPAWS"):
            xmit.send_ack(tr, ns, sk, now, out, cause=skb)
        ns.mib["PAWSEstab"] += 1
        return out + [Drop(skb, RCV, "TCP_RFC7323_PAWS")]
    if not acceptable(sk, seq, end):
        if th.flags & wire.RST:
            return out + [Drop(skb, RCV, "TCP_RESET")]
        if seq < end <= sk.rcv_nxt:                     # a retransmission of what we have: D-SACK it
            ns.mib["DelayedACKLost"] += 1
            dsack_set(ns, sk, seq, end)
        elif oow_rate_limited(ns, sk, now, payload_len, th, "TCPACKSkippedSeq"):
            return out + [Drop(skb, RCV, "TCP_INVALID_SEQUENCE")]
        xmit.send_ack(tr, ns, sk, now, out, cause=skb)    # RFC 9293: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        reason = "TCP_OLD_DATA" if end <= sk.rcv_nxt else "TCP_INVALID_SEQUENCE"
        return out + [Drop(skb, RCV, reason)]
    if th.flags & wire.RST:
        if seq != sk.rcv_nxt:                         # RFC 5961 3.2: in window but not exact
            send_challenge_ack(tr, ns, sk, skb, now, out)
            return out + [Drop(skb, RCV, "TCP_RESET")]
        tcp_reset(tr, ns, sk, now, out)
        return out + [Stop(skb, "tcp_reset")]
    if th.flags & wire.SYN and sk.state != SYN_RECV:   # RFC 5961 4.2: a SYN in a synchronized state
        send_challenge_ack(tr, ns, sk, skb, now, out)
        return out + [Drop(skb, RCV, "TCP_INVALID_SYN")]
    if not th.flags & wire.ACK:
        return out + [Drop(skb, RCV, "TCP_FLAGS")]
    update_ts_recent(sk, th, seq, now)
    ack = unwrap(th.ack, sk.snd_una)
    if sk.state == SYN_RECV:
        if not sk.snd_una < ack <= sk.snd_nxt:
            out.append(xmit.reset_for(ns, skb, th, sk.raddr, sk.laddr, now))
            return out + [Drop(skb, RCV, "TCP_ACK_UNSENT_DATA")]
        if not tr.child_established(ns, sk, skb, th, now, out):
            return out + [Drop(skb, "tcp_check_req", "TCP_LISTEN_OVERFLOW")]
    if ack > sk.snd_nxt:
        xmit.send_ack(tr, ns, sk, now, out, cause=skb)
        return out + [Drop(skb, RCV, "TCP_ACK_UNSENT_DATA")]
    if ack < sk.snd_una - max(sk.max_window, 1):
        return out + [Drop(skb, RCV, "TCP_TOO_OLD_ACK")]
    tcp_ack(tr, ns, sk, skb, th, seq, ack, payload_len, now, out)
    if sk.state == CLOSE:
        return out + [Stop(skb, RCV)]
    verdict = data_queue(tr, ns, sk, skb, th, seq, payload_len, now, out)
    if sk.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK):
        xmit.write_xmit(tr, ns, sk, now, out)
    if sk.state != CLOSE:
        ack_snd_check(tr, ns, sk, now, out)              # TIME-WAIT too: the FIN that got us there
    tr.arm(sk, now, out)
    return out + [verdict] if verdict else out


def send_challenge_ack(tr, ns, sk, skb, now: int, out: list):
    """tcp_send_challenge_ack(): RFC 5961's answer, at most one per
    tcp_invalid_ratelimit a socket (the host-wide tcp_challenge_ack_limit is
    INT_MAX, off, by default since Linux 6.0)."""
    if challenge_rate_limited(ns, sk, now, "TCPACKSkippedChallenge"):
        return
    ns.mib["TCPChallengeACK"] += 1
    xmit.send_ack(tr, ns, sk, now, out, cause=skb, fn="tcp_send_challenge_ack")


def tcp_reset(tr, ns, sk, now: int, out: list):
    """tcp_reset(): the peer aborted. The errno is the state's (tcp_reset())."""
    err = {SYN_SENT: errno.ECONNREFUSED, CLOSE_WAIT: errno.EPIPE}.get(sk.state, errno.ECONNRESET)
    if sk.state in (ESTABLISHED, CLOSE_WAIT):
        ns.mib["TcpEstabResets"] += 1
    tr.tcp_done(ns, sk, now, out, 0 if sk.state in (CLOSING, LAST_ACK, TIME_WAIT, SYN_RECV) else err)


def tcp_ack(tr, ns, sk, skb, th, seq: int, ack: int, payload_len: int, now: int, out: list):
    """tcp_ack(): the window update, what the ACK acknowledges and SACKs, then
    loss detection and recovery (tcp_fastretrans_alert: RACK, PRR, undo),
    congestion control, the tail loss probe's outcome, and the timers."""
    wnd = th.window << sk.snd_wscale
    tcp_rate.ack_start(sk, now)                        # rate sample: prior delivered and in flight
    win_update = False
    # RFC 9293 3.10.7.4 window update rule
    if sk.snd_wl1 < seq or (sk.snd_wl1 == seq and sk.snd_wl2 <= ack):
        if wnd != sk.snd_wnd:
            win_update = True
            sk.snd_wnd = wnd
            sk.max_window = max(sk.max_window, wnd)
            if wnd and sk.t_persist is not None:
                sk.t_persist = None
                sk.probes_out = 0
        sk.snd_wl1, sk.snd_wl2 = seq, ack
    prior_una, prior_lost = sk.snd_una, sk.lost_out
    tsecr = th.options.ts[1] if sk.ts_ok and th.options.ts is not None else 0
    ack_state = recovery.AckState(una_advanced=ack > prior_una, ece=bool(sk.ecn_flags & TCP_ECN_OK and
                                                                          th.flags & wire.ECE), tsecr=tsecr)
    if th.options.sack and sk.sack_ok:
        sacktag(ns, sk, th.options.sack, ack, prior_una, now, ack_state)
    acked = 0
    if ack_state.una_advanced:
        acked = clean_rtx_queue(tr, ns, sk, ack, now, th, ack_state)
        sk.dupacks = 0
        sk.retransmits = 0
        sk.backoff = 0
        if sk.write_blocked and sndbuf_free(sk) >= sk.sndbuf // 3:
            sk.write_blocked = False
            event(sk, SockEvent.WRITE_SPACE, out)
        ack_fin(tr, ns, sk, now, out)
    elif ack == prior_una and payload_len == 0 and not th.flags & (wire.FIN | wire.SYN) and sk.rtx and \
            not win_update:
        sk.dupacks += 1                                # RFC 5681 duplicate ACK
        ack_state.dupack = True
    ack_state.not_dup = ack_state.una_advanced or win_update or payload_len > 0
    if sk.tlp_high_seq:
        recovery.process_tlp_ack(ns, sk, ack, ack_state)
    if not ack_state.not_dup or ack_state.sacked or ack_state.ece or ack_state.dsack or sk.ca_state != CA_OPEN:
        recovery.fastretrans_alert(ns, sk, prior_una, ack_state, now)   # tcp_ack_is_dubious()
    ack_state.newly_lost = max(0, sk.lost_out - prior_lost)
    recovery.cong_control(ns, sk, acked + ack_state.sacked, ack_state, now)
    tcp_cong.cong_control(sk, now)                     # tcp_rate_gen(); a model-based CA's cong_control
    if sk.rtx:
        if ack_state.rexmit_new:                       # tcp_xmit_recovery(): F-RTO probes with new data
            xmit.write_xmit(tr, ns, sk, now, out)
            if sk.snd_nxt <= sk.high_seq:
                sk.frto = False
                xmit.xmit_retransmit_queue(tr, ns, sk, now, out)
        elif sk.ca_state in (CA_RECOVERY, CA_LOSS):
            xmit.xmit_retransmit_queue(tr, ns, sk, now, out)
        if ack_state.una_advanced or sk.t_rto is None:
            sk.t_rto = now + (sk.rto << sk.backoff)    # tcp_rearm_rto()
            xmit.schedule_loss_probe(ns, sk, now, advancing_rto=True)
    else:
        sk.t_rto = sk.t_tlp = sk.t_reo = None
        sk.retrans_stamp = 0
        if sk.sendq_bytes and sk.snd_wnd == 0 and sk.t_persist is None:
            sk.t_persist = now + sk.rto                 # tcp_check_probe_timer()


def sndbuf_free(sk) -> int:
    return sk.sndbuf - sk.sendq_bytes - sk.rtx_bytes


def sacktag(ns, sk, wire_blocks, ack: int, prior_una: int, now: int, st):
    """tcp_sacktag_write_queue(): a D-SACK first, then the segments inside each
    block are delivered, not in flight; RACK learns from each, and an original
    transmission SACKed below what was SACKed before shows reordering."""
    blocks = [(unwrap(left32, sk.snd_una), unwrap(right32, sk.snd_una)) for left32, right32 in wire_blocks]
    is_dsack, st.dsack_tlp = recovery.check_dsack(ns, sk, blocks, ack, prior_una)
    if is_dsack:
        st.dsack = True
        recovery.dsack_in_queue(sk, *blocks[0])
        blocks = blocks[1:]
    fack = max((seg.end for seg in sk.rtx if seg.sacked), default=sk.snd_una)
    reord = None
    for left, right in blocks:
        if right <= max(sk.snd_una, ack) or right > sk.snd_nxt or left >= right:
            continue                                 # old or bogus
        for seg in sk.rtx:
            if seg.seq >= right:
                break
            if seg.seq >= left and seg.end <= right and not seg.sacked:
                seg.sacked = True
                sk.sacked_out += 1
                st.sacked += 1
                tcp_rate.skb_delivered(sk, seg, sacked=True)      # delivered, and the rate sample
                if seg.lost:
                    seg.lost = False
                    sk.lost_out -= 1
                if seg.in_rtx:
                    seg.in_rtx = False
                    sk.retrans_out -= 1
                if not seg.retrans:
                    if seg.end <= sk.high_seq:
                        st.orig_sack_acked = True
                    if seg.end < fack and (reord is None or seg.seq < reord):
                        reord = seg.seq
                recovery.rack_advance(sk, seg, now)
    if reord is not None:
        recovery.note_reordering(ns, sk, reord, fack)


def clean_rtx_queue(tr, ns, sk, ack: int, now: int, th, st=None) -> int:
    """tcp_clean_rtx_queue(): drop what is acknowledged, take an RTT sample
    (from the oldest segment sent only once, Karn; else the echoed timestamp),
    tell RACK what was delivered, notice an original arriving behind a SACK."""
    st = st or recovery.AckState()
    acked = 0
    first_once = newest_once = None                  # the oldest for srtt, the newest for the CA (ca_rtt)
    rtx = sk.rtx
    fack = max((seg.end for seg in rtx if seg.sacked), default=0) if sk.sacked_out else 0
    reord = None
    while rtx and rtx[0].end <= ack:
        seg = rtx.popleft()
        acked += 1
        if seg.sacked:
            sk.sacked_out -= 1
        else:
            recovery.rack_advance(sk, seg, now)
            if not seg.retrans:
                if reord is None:
                    reord = seg.seq
                if seg.end <= sk.high_seq:
                    st.orig_sack_acked = True
        if seg.lost:
            sk.lost_out -= 1
        if seg.in_rtx:
            sk.retrans_out -= 1
        if not seg.retrans and first_once is None:
            first_once = seg
        if not seg.retrans:
            newest_once = seg
        sk.bytes_acked += len(seg.data)
        sk.rtx_bytes -= len(seg.data)
        tcp_rate.skb_delivered(sk, seg)           # delivered (unless SACKed before), the rate sample
    if rtx and rtx[0].seq < ack:                     # a partially acknowledged segment
        seg = rtx[0]
        cut = ack - seg.seq
        sk.bytes_acked += cut
        sk.rtx_bytes -= cut
        seg.data = seg.data[cut:]
        seg.seq = ack
    sk.snd_una = ack
    if reord is not None and fack:
        recovery.note_reordering(ns, sk, reord, fack)
    if first_once is not None:                       # tcp_ack_update_rtt(): the ACK's timing first
        rtt_sample(sk, now - first_once.sent, now)
    elif acked and sk.ts_ok and th.options.ts is not None and th.options.ts[1]:
        rtt_sample(sk, (xmit.tsval(sk, now) - th.options.ts[1]) % (1 << 32) * MS, now)
    tcp_cong.pkts_acked(sk, acked, newest_once, th, now)    # min RTT; icsk_ca_ops->pkts_acked
    return acked


def ack_fin(tr, ns, sk, now: int, out: list):
    """Our FIN acknowledged: FIN-WAIT-1 -> FIN-WAIT-2, CLOSING -> TIME-WAIT, LAST-ACK -> CLOSED."""
    if sk.snd_una < sk.snd_nxt or not sk.fin_queued or sk.snd_nxt <= sk.write_seq:
        return
    if sk.state == FIN_WAIT1:
        set_state(ns, sk, FIN_WAIT2)
        if sk.close_after:
            sk.t_finwait2 = now + ns.sysctl["net.ipv4.tcp_fin_timeout"] * S
    elif sk.state == CLOSING:
        tr.time_wait(ns, sk, now)
    elif sk.state == LAST_ACK:
        tr.tcp_done(ns, sk, now, out, 0)


def deliver(sk, skb, out: list):
    """sk_data_ready(): in-order bytes to the socket layer's receive queue."""
    skb.sk = sk.sk
    skb.event.kind = SockEvent.DATA_READY
    size = len(skb.data) - skb.head
    skb.event.truesize = size
    sk.rcv_queued += size
    sk.bytes_received += size
    out.append(Up(skb, "tcp_data_queue"))


def data_queue(tr, ns, sk, skb, th, seq: int, payload_len: int, now: int, out: list):
    """tcp_data_queue() and tcp_fin(): returns the verdict for the arriving skb
    (None when its delivery is already among `out`)."""
    fin = bool(th.flags & wire.FIN)
    if sk.ecn_flags & TCP_ECN_OK:
        ecn_rcv(sk, skb, th, payload_len)
    if not payload_len and not fin:
        return Stop(skb, "tcp_ack")
    if sk.state in (CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT):
        return Stop(skb, RCV)                 # after their FIN: nothing more to take
    if sk.close_after and payload_len and seq + payload_len > sk.rcv_nxt:
        # tcp_rcv_state_process(): data for a socket closed by its owner aborts it
        ns.mib["TCPAbortOnData"] += 1
        xmit.send_reset(tr, ns, sk, now, out, cause=skb)
        tr.tcp_done(ns, sk, now, out, 0)
        return Drop(skb, RCV, "TCP_ABORT_ON_DATA")
    sk.data_segs_in += 1 if payload_len else 0
    sk.last_ack_cause = TraceRef.of(skb)
    if payload_len and sk.ts_ok and th.options.ts is not None and th.options.ts[1]:
        # tcp_rcv_rtt_measure_ts(): the receiver's own RTT, for buffer autotuning
        sample = ((xmit.tsval(sk, now) - th.options.ts[1]) & 0xFFFFFFFF) * MS or MS
        sk.rcv_rtt = sample if not sk.rcv_rtt else (7 * sk.rcv_rtt + sample) // 8
    if seq == sk.rcv_nxt and payload_len and sk.rcv_wup + sk.rcv_wnd <= sk.rcv_nxt:
        # tcp_data_queue(): no room was offered, so none is taken
        ns.mib["TCPZeroWindowDrop"] += 1
        sk.quick = max(sk.quick, TCP_MAX_QUICKACKS)
        sk.ack_pending = True
        return Drop(skb, "tcp_data_queue", "TCP_ZEROWINDOW")
    if seq > sk.rcv_nxt:                               # a hole before it: out of order
        if payload_len:
            end = seq + payload_len
            if any(s <= seq and end <= e for s, (e, _d, _f) in sk.ofo.items()):
                dsack_set(ns, sk, seq, end)              # all of it is queued already
            if seq not in sk.ofo or sk.ofo[seq][0] < end:
                if seq in sk.ofo:
                    sk.ofo_bytes -= sk.ofo[seq][0] - seq
                sk.ofo[seq] = (end, skb.data[skb.head:], fin)
                sk.ofo_bytes += payload_len
            sk.sack_recent = [seq] + sk.sack_recent[:MAX_SACK_BLOCKS]   # tcp_sack_new_ofo_skb()
            ns.mib["TCPOFOQueue"] += 1
        elif fin:
            sk.fin_seq = seq
        xmit.send_ack(tr, ns, sk, now, out, cause=skb)   # an immediate duplicate ACK with SACK
        return Stop(skb, "tcp_data_queue_ofo")
    # in order, perhaps partly old: trim what we already have
    old = sk.rcv_nxt - seq
    if old:
        if payload_len > 0:
            dsack_set(ns, sk, seq, sk.rcv_nxt)         # the part we had
        skb.head += old
        payload_len -= old
    verdict = Stop(skb, "tcp_data_queue")
    if payload_len > 0:
        deliver(sk, skb, out)                      # its verdict, in order before what it unblocks
        verdict = None
        sk.rcv_nxt += payload_len
        sk.unacked_rcv += payload_len
        if payload_len >= 128:                     # tcp_event_data_recv()
            xmit.grow_window(sk, payload_len)
        if not sk.ato:
            sk.quick, sk.ato = TCP_MAX_QUICKACKS, TCP_ATO_MIN   # tcp_incr_quickack() on the first data
        out_of_order_fill(sk, out)
    if fin:
        sk.fin_seq = seq + max(payload_len, 0) + old
    if sk.fin_seq is not None and sk.fin_seq == sk.rcv_nxt:
        tcp_fin(tr, ns, sk, now, out)
    sk.ack_pending = True
    if sk.ofo or fin:
        sk.quick = max(sk.quick, 1)
    return verdict


def ecn_rcv(sk, skb, th, payload_len: int):
    """tcp_ecn_accept_cwr() and tcp_ecn_check_ce() (RFC 3168 6.1.3): the sender's
    CWR ends our echo; a CE mark on data starts it (ECE on every ACK until CWR),
    and the ACK goes at once so a sender with a small window learns quickly."""
    if th.flags & wire.CWR:
        sk.ecn_flags &= ~TCP_ECN_DEMAND_CWR
        if payload_len:
            sk.quick = max(sk.quick, 1)
    if not payload_len:
        return
    ecn = af_inet6.dsfield(skb) & ipv4.INET_ECN_MASK
    if ecn == ipv4.INET_ECN_CE:
        if not sk.ecn_flags & TCP_ECN_DEMAND_CWR:
            sk.quick = max(sk.quick, 2)
            sk.ecn_flags |= TCP_ECN_DEMAND_CWR
        sk.ecn_flags |= TCP_ECN_SEEN
    elif ecn == ipv4.INET_ECN_NOT_ECT and sk.ecn_flags & TCP_ECN_SEEN:
        sk.quick = max(sk.quick, 2)                 # CE then not-ECT: likely a lost CE marking; ACK fast
    elif ecn != ipv4.INET_ECN_NOT_ECT:
        sk.ecn_flags |= TCP_ECN_SEEN


def out_of_order_fill(sk, out: list):
    """tcp_ofo_queue(): segments the new data made contiguous go up too."""
    while sk.ofo:
        nxt = min(sk.ofo)
        if nxt > sk.rcv_nxt:
            break
        end, data, fin = sk.ofo.pop(nxt)
        sk.ofo_bytes -= end - nxt
        if end > sk.rcv_nxt:
            piece = data[sk.rcv_nxt - nxt:]
            skb = Skb(netns=sk.netns, data=piece)
            deliver(sk, skb, out)
            sk.rcv_nxt = end
        if fin:
            sk.fin_seq = end


def tcp_fin(tr, ns, sk, now: int, out: list):
    """tcp_fin(): the peer is done sending."""
    sk.rcv_nxt += 1
    sk.fin_seq = None
    sk.quick = max(sk.quick, 1)                         # FIN is acknowledged at once
    if sk.state in (ESTABLISHED, SYN_RECV):
        set_state(ns, sk, CLOSE_WAIT)
    elif sk.state == FIN_WAIT1:
        set_state(ns, sk, CLOSING)                  # simultaneous close
    elif sk.state == FIN_WAIT2:
        tr.time_wait(ns, sk, now)
    event(sk, SockEvent.STATE_CHANGE, out, state=sk.state if sk.state != TIME_WAIT else CLOSE_WAIT)


def ack_snd_check(tr, ns, sk, now: int, out: list):
    """__tcp_ack_snd_check(): ACK now (quickack, more than one full segment
    unacknowledged, out-of-order data) or arm the delayed ACK timer (40 ms, RFC 1122's "SHOULD")."""
    if not sk.ack_pending:
        return
    # more than one full segment unacknowledged and the window's right edge
    # moves on, quickack mode, or out-of-order data
    if sk.quick or (sk.unacked_rcv > sk.rcv_mss and xmit.new_window(sk) >= sk.rcv_wnd) or sk.ofo:
        if sk.quick:
            sk.quick -= 1
        xmit.send_ack(tr, ns, sk, now, out)
    elif sk.t_delack is None:
        sk.t_delack = now + max(TCP_DELACK_MIN, min(sk.ato, sk.srtt or TCP_DELACK_MIN))
