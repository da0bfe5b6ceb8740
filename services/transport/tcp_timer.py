"""TCP's timers (net/ipv4/tcp_timer.c): retransmission (RFC 6298 with
exponential backoff; SYN retries), delayed ACK, zero-window probes (persist),
keepalive, FIN-WAIT-2 and TIME-WAIT. Each connection has one kernel-style
timer armed for its earliest deadline."""
import errno

from . import tcp_output as xmit, tcp_recovery as recovery
from .tcp import CA_LOSS, CA_RECOVERY, ESTABLISHED, FIN_WAIT2, S, SYN_RECV, SYN_SENT, TCP_RTO_MAX

DEADLINES = ("t_rto", "t_delack", "t_persist", "t_keepalive", "t_timewait", "t_finwait2", "t_tlp", "t_reo",
             "t_pace")


def next_deadline(sk):
    ds = [d for d in (sk.t_rto, sk.t_delack, sk.t_persist, sk.t_keepalive, sk.t_timewait, sk.t_finwait2, sk.t_tlp,
                      sk.t_reo, sk.t_pace) if d is not None]
    return min(ds) if ds else None


def clear(sk):
    """inet_csk_clear_xmit_timers(): every deadline off."""
    for name in DEADLINES:
        setattr(sk, name, None)


def expire(tr, ns, sk, now: int, out: list):
    """Runs whatever is due, in the kernel's order."""
    if sk.t_timewait is not None and now >= sk.t_timewait:
        sk.t_timewait = None
        tr.tcp_done(ns, sk, now, out, 0)
        return
    if sk.t_finwait2 is not None and now >= sk.t_finwait2:
        sk.t_finwait2 = None
        if sk.state == FIN_WAIT2:
            tr.tcp_done(ns, sk, now, out, 0)          # tcp_fin_timeout passed: the orphan expires quietly
            return
    if sk.t_delack is not None and now >= sk.t_delack:
        sk.t_delack = None
        if sk.ack_pending:
            ns.mib["DelayedACKs"] += 1
            xmit.send_ack(tr, ns, sk, now, out, fn="tcp_delack_timer")
    if sk.t_reo is not None and now >= sk.t_reo:
        sk.t_reo = None
        reo_timeout(tr, ns, sk, now, out)
    if sk.t_tlp is not None and now >= sk.t_tlp:
        sk.t_tlp = None
        xmit.send_loss_probe(tr, ns, sk, now, out)
    if sk.t_rto is not None and now >= sk.t_rto:
        sk.t_rto = None
        sk.t_tlp = sk.t_reo = None
        retransmit_timer(tr, ns, sk, now, out)
    if sk.t_pace is not None and now >= sk.t_pace:
        sk.t_pace = None
        xmit.write_xmit(tr, ns, sk, now, out)          # tcp_pace_kick()
    if sk.t_persist is not None and now >= sk.t_persist:
        sk.t_persist = None
        probe_timer(tr, ns, sk, now, out)
    if sk.t_keepalive is not None and now >= sk.t_keepalive:
        sk.t_keepalive = None
        keepalive_timer(tr, ns, sk, now, out)


def retransmit_timer(tr, ns, sk, now: int, out: list):
    """tcp_retransmit_timer(): RTO expired. Give up after the retries, else
    enter Loss (cwnd 1, everything in flight presumed lost), resend the first
    segment and double the RTO."""
    if not sk.rtx:
        return
    if sk.state in (SYN_SENT, SYN_RECV):
        limit = sk.syn_retries or ns.sysctl["net.ipv4.tcp_syn_retries" if sk.state == SYN_SENT
                                            else "net.ipv4.tcp_synack_retries"]
    else:
        limit = ns.sysctl["net.ipv4.tcp_retries2"]
    if sk.retransmits >= limit:
        ns.mib["TCPTimeouts"] += 1
        if sk.state == SYN_SENT:
            ns.mib["TcpAttemptFails"] += 1
        tr.tcp_done(ns, sk, now, out, errno.ETIMEDOUT)
        return
    ns.mib["TCPTimeouts"] += 1
    if sk.state not in (SYN_SENT, SYN_RECV):
        recovery.enter_loss(ns, sk, now)
    first = sk.rtx[0]
    xmit.retransmit(tr, ns, sk, first, now, out, fn="tcp_retransmit_timer", index=0)
    sk.retransmits += 1
    sk.backoff = min(sk.backoff + 1, 15)
    sk.t_rto = now + min(sk.rto << sk.backoff, TCP_RTO_MAX)


def reo_timeout(tr, ns, sk, now: int, out: list):
    """tcp_rack_reo_timeout(): the reordering window has passed for segments
    RACK was waiting on: they are lost; recover them."""
    if not sk.rtx:
        return
    lost = sk.lost_out
    sk.rack_advanced = True
    wait = recovery.rack_mark_lost(ns, sk, now)
    if sk.lost_out > lost:
        if sk.ca_state not in (CA_RECOVERY, CA_LOSS):
            recovery.enter_recovery(ns, sk, False)
            if not hasattr(sk.ca, "cong_control"):
                recovery.cwnd_reduction(sk, 1, sk.lost_out - lost, False)
        xmit.xmit_retransmit_queue(tr, ns, sk, now, out)
    if wait:
        recovery.arm_reo_timer(sk, wait, now)


def probe_timer(tr, ns, sk, now: int, out: list):
    """tcp_probe_timer() / tcp_send_probe0(): the peer's window is zero; ask
    again with an ACK one below SND.UNA, backing off as the RTO does."""
    if not sk.sendq_bytes or sk.snd_wnd:
        sk.probes_out = 0
        return
    if sk.probes_out >= ns.sysctl["net.ipv4.tcp_retries2"]:
        tr.tcp_done(ns, sk, now, out, errno.ETIMEDOUT)
        return
    xmit.send_ack(tr, ns, sk, now, out, fn="tcp_send_probe0", seq=sk.snd_una - 1)
    sk.probes_out += 1
    sk.t_persist = now + min(sk.rto << sk.probes_out, TCP_RTO_MAX)


def keepalive_timer(tr, ns, sk, now: int, out: list):
    """tcp_keepalive_timer(): after tcp_keepalive_time idle, probes every
    tcp_keepalive_intvl; tcp_keepalive_probes unanswered ones end the connection."""
    if not sk.keepalive or sk.state not in (ESTABLISHED,):
        return
    idle = sk.keepidle * S if sk.keepidle else ns.sysctl["net.ipv4.tcp_keepalive_time"] * S
    intvl = sk.keepintvl * S if sk.keepintvl else ns.sysctl["net.ipv4.tcp_keepalive_intvl"] * S
    probes = sk.keepcnt or ns.sysctl["net.ipv4.tcp_keepalive_probes"]
    quiet = now - sk.last_rcv
    if sk.rtx or sk.sendq_bytes:                  # data in flight: the RTO watches the peer, not keepalive
        sk.t_keepalive = now + idle
        return
    if quiet < idle:
        sk.t_keepalive = sk.last_rcv + idle
        sk.probes_out = 0
        return
    if sk.probes_out >= probes:
        tr.tcp_done(ns, sk, now, out, errno.ETIMEDOUT)
        return
    xmit.send_ack(tr, ns, sk, now, out, fn="tcp_keepalive_timer", seq=sk.snd_una - 1)
    sk.probes_out += 1
    sk.t_keepalive = now + intvl


def arm_keepalive(ns, sk, now: int):
    if sk.keepalive and sk.state == ESTABLISHED:
        idle = sk.keepidle * S if sk.keepidle else ns.sysctl["net.ipv4.tcp_keepalive_time"] * S
        sk.t_keepalive = now + idle
    else:
        sk.t_keepalive = None
