"""Sending (net/ipv4/tcp_output.c): segments cut from the write queue as the
congestion window, the peer's window and Nagle allow; ACKs, window updates,
FIN, RST and SYN; the options on each. Every segment is a new packet, so a new
journey in the traces, linked to what caused it (the application's send, the
segment being acknowledged, the original of a retransmission)."""

from itertools import islice

from pktflow.v1.skb_pb2 import CHECKSUM_PARTIAL

from ..common.actions import Down
from ..common.skbuff import IP_ID_SET, new_skb
from ..common.tcp_offload import GSO_MAX_SIZE, TSO_KEEP, tcp_with
from ..wire import ipv4, tcp as wire
from ..wire.checksum import pseudo_header_sum, pseudo_header_sum6
from ..wire.ethernet import ETH_P_IPV6
from . import af_inet6, tcp_cong
from .tcp import (CA_CWR, CA_LOSS, CA_OPEN, CA_RECOVERY, MASK, MAX_SACK_BLOCKS, MS, S, SYN_RECV, SYN_SENT,
                  TCP_ECN_DEMAND_CWR, TCP_ECN_OK, TCP_ECN_QUEUE_CWR, TCP_TIMEOUT_INIT, TCP_TIMEOUT_MIN, Seg)

TCPOLEN_TSTAMP_ALIGNED = 12
TCP_MIN_SND_MSS = 48             # the smallest MSS a path MTU can bring (include/net/tcp.h)
TCPOLEN_SACK_BASE_ALIGNED = 4      # two NOPs, kind, length
TCPOLEN_SACK_PERBLOCK = 8


def tsval(sk, now: int) -> int:
    """The timestamp clock: milliseconds, with a random offset per connection."""
    return (now // MS + sk.ts_offset) & MASK


def sack_blocks(sk) -> tuple:
    """SACK blocks for what sits beyond a hole, the one holding the segment that
    arrived last first (RFC 2018 4), after a D-SACK block reporting a duplicate
    (RFC 2883) when there is one."""
    if not sk.sack_ok or not (sk.ofo or sk.dsack):
        return ()
    blocks = [list(sk.dsack)] if sk.dsack else []
    first = len(blocks)
    for seq in sorted(sk.ofo):
        end = sk.ofo[seq][0]
        if len(blocks) > first and seq <= blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], end)
        else:
            blocks.append([seq, end])
    # the block holding the newest arrival first, then the others by recency, then the highest
    recent = sk.sack_recent

    def recency(b):
        return next((i for i, seq in enumerate(recent) if b[0] <= seq < b[1]), len(recent)), -b[0]
    blocks[first:] = sorted(blocks[first:], key=recency)
    return tuple((b[0] & MASK, b[1] & MASK) for b in blocks[:MAX_SACK_BLOCKS if sk.ts_ok else 4])


def current_mss(sk) -> int:
    """tcp_current_mss(): the cached MSS (which already counts the timestamp
    option) less the SACK blocks the next segment will carry, so that a
    segment sent while out-of-order data is held still fits the path MTU."""
    n = len(sack_blocks(sk)) if sk.ofo or sk.dsack else 0
    return sk.mss_cache - (TCPOLEN_SACK_BASE_ALIGNED + TCPOLEN_SACK_PERBLOCK * n if n else 0)


def new_window(sk) -> int:
    """__tcp_select_window(): the window we could offer now: the free receive
    space, zero below one MSS (silly window avoidance), no more than
    rcv_ssthresh (which tcp_grow_window() raises as data arrives), rounded up
    to the window scale's unit so that it is not scaled away."""
    free = sk.rcvbuf - sk.rcv_queued - sk.ofo_bytes
    if free < sk.rcv_mss:
        return 0
    free = min(free, sk.rcv_ssthresh) if sk.rcv_ssthresh else free
    unit = 1 << sk.rcv_wscale
    return (free + unit - 1) & ~(unit - 1)


def select_window(sk) -> int:
    """tcp_select_window(): the window to advertise, never moving the right
    edge left (a shrinking offer keeps the old edge); scaled for the wire."""
    win = new_window(sk)
    cur = max(0, sk.rcv_wup + sk.rcv_wnd - sk.rcv_nxt)
    if win < cur:
        unit = 1 << sk.rcv_wscale
        win = (cur + unit - 1) & ~(unit - 1)
    win = min(win, 0xFFFF << sk.rcv_wscale)
    sk.rcv_wnd, sk.rcv_wup = win, sk.rcv_nxt
    return win >> sk.rcv_wscale


def grow_window(sk, size: int):
    """tcp_grow_window(): in-order data lets the offered window grow by two
    segments (or twice the data) toward the buffer, and is ACKed at once meanwhile."""
    room = sk.rcvbuf - sk.rcv_ssthresh
    if room > 0:
        sk.rcv_ssthresh += min(room, max(2 * sk.advmss, 2 * size))
        sk.quick = max(sk.quick, 1)


def segment(tr, ns, sk, seq: int, flags: int, payload: bytes, now: int, cause, fn: str, ack: bool = True,
            opts: bytes | None = None, window: int | None = None) -> tuple:
    """tcp_transmit_skb(): one segment of this connection, as a Down action."""
    if opts is None:
        opts = wire.options(ts=(tsval(sk, now), sk.ts_recent), sack=sack_blocks(sk)) if sk.ts_ok else \
            wire.options(sack=sack_blocks(sk))
    if window is None:
        window = select_window(sk)
    if ack:
        flags |= wire.ACK
    sk.dsack = None                                   # sent once (tcp_options_write())
    tos = (sk.tclass if sk.ipv6 else sk.tos) & ~ipv4.INET_ECN_MASK
    if sk.ecn_flags & TCP_ECN_OK and not flags & wire.SYN:
        # tcp_ecn_send(): new data is ECN-capable (ECT(0)) and carries CWR once
        # after a reduction; ACKs and retransmissions are not ECT; ECE echoes a CE
        if payload and seq >= sk.snd_nxt:
            tos |= ipv4.INET_ECN_ECT_0
            if sk.ecn_flags & TCP_ECN_QUEUE_CWR:
                sk.ecn_flags &= ~TCP_ECN_QUEUE_CWR
                flags |= wire.CWR
        if sk.ecn_flags & TCP_ECN_DEMAND_CWR:
            flags |= wire.ECE
    if sk.ipv6:                                       # inet6_csk_xmit(): the IPv6 pseudo-header, hop limit
        data = wire.emit(sk.lport, sk.rport, seq, sk.rcv_nxt if ack else 0, flags, window, opts, payload,
                         sk.laddr, sk.raddr, pseudo_sum=pseudo_header_sum6)
        skb = af_inet6.flow_skb(ns.name, data, cause, True, sk.laddr, sk.raddr, ipv4.IPPROTO_TCP, sk=sk.sk,
                                ttl=sk.hops, tos=tos)
    else:
        data = wire.emit(sk.lport, sk.rport, seq, sk.rcv_nxt if ack else 0, flags, window, opts, payload,
                         sk.laddr, sk.raddr)
        skb = new_skb(ns.name, data, cause, sk=sk.sk, saddr=sk.laddr, daddr=sk.raddr, ip_proto=ipv4.IPPROTO_TCP,
                      ttl=sk.ttl, tos=tos, df=True)
    if sk.dst is not None:
        skb.dst.CopyFrom(sk.dst)
    sk.inet_id = (sk.inet_id + 1) & 0xFFFF
    skb.ip_id = IP_ID_SET | sk.inet_id
    if sk.dst_pending_confirm:       # skb_set_dst_pending_confirm(): this segment confirms the neighbour
        skb.dst_pending_confirm, sk.dst_pending_confirm = True, False
    sk.segs_out += 1
    sk.last_snd = now
    ns.mib["TcpOutSegs"] += 1
    if ack:
        sk.ack_pending = False
        sk.t_delack = None
        sk.unacked_rcv = 0
    return Down(skb, fn)


def send_ack(tr, ns, sk, now: int, out: list, cause=None, fn: str = "tcp_send_ack", seq: int | None = None):
    out.append(segment(tr, ns, sk, sk.snd_nxt if seq is None else seq, 0, b"", now,
                       cause or sk.last_ack_cause, fn))


def initial_window(sk, synack: bool) -> int:
    """tcp_select_initial_window(): whole MSSes; a SYN-ACK knows whether
    timestamps will take 12 bytes of each segment (tcp_openreq_init_rwin), a
    SYN does not yet. The window grows from here (tcp_grow_window())."""
    seg = sk.advmss - TCPOLEN_TSTAMP_ALIGNED if synack and sk.ts_ok else sk.advmss
    window = min(sk.rcvbuf - sk.rcv_queued, 0xFFFF) // seg * seg
    sk.rcv_wnd, sk.rcv_wup, sk.rcv_ssthresh = window, sk.rcv_nxt, window
    return window


def send_syn(tr, ns, sk, now: int, synack: bool = False, cause=None, fn: str | None = None,
             again: bool = False):
    """tcp_connect() / tcp_make_synack(): Linux's SYN options in Linux's order
    (MSS, SACK-permitted, timestamps, window scale); a SYN-ACK echoes only what
    the SYN offered. A retransmitted SYN no longer asks for ECN (tcp_ecn_fallback).
    Returns its Down action."""
    offer = not synack
    mss = sk.advmss
    sysctl = ns.sysctl                 # tcp_syn_options(): an option is offered only while its sysctl is on
    opts = wire.options(mss=mss, sack_perm=bool(sysctl["net.ipv4.tcp_sack"]) if offer else sk.sack_ok,
                        ts=(tsval(sk, now), sk.ts_recent) if (sysctl["net.ipv4.tcp_timestamps"] if offer
                                                             else sk.ts_ok) else None,
                        wscale=sk.rcv_wscale if (sysctl["net.ipv4.tcp_window_scaling"] if offer
                                                 else sk.wscale_ok) else None)
    window = initial_window(sk, synack)
    flags = wire.SYN
    if offer and ns.sysctl["net.ipv4.tcp_ecn"] == 1 and not again:
        flags |= wire.ECE | wire.CWR                  # tcp_ecn_send_syn(): ask for ECN (RFC 3168 6.1.1)
        sk.ecn_flags = TCP_ECN_OK
    elif synack and sk.ecn_flags & TCP_ECN_OK:
        flags |= wire.ECE                             # tcp_ecn_make_synack(): agree
    fn = fn or (("tcp_v6_send_synack" if sk.ipv6 else "tcp_v4_send_synack") if synack else "tcp_connect")
    return segment(tr, ns, sk, sk.iss, flags, b"", now, cause, fn, ack=synack, opts=opts, window=window)


def reset_for(ns, skb, th, saddr: int, daddr: int, now: int, fn: str | None = None) -> tuple:
    """tcp_v4_send_reset() / tcp_v6_send_reset(): the RST answering a segment
    that has no connection (RFC 9293 3.10.7.1): seq from its ACK, or an ACK of
    everything it occupied; in the family the segment came in."""
    ipv6 = skb.protocol == ETH_P_IPV6
    data_len = len(skb.data) - skb.head
    if th.flags & wire.ACK:
        seq, ack, flags = th.ack, 0, wire.RST
    else:
        occupied = data_len + (1 if th.flags & wire.SYN else 0) + (1 if th.flags & wire.FIN else 0)
        seq, ack, flags = 0, (th.seq + occupied) & MASK, wire.RST | wire.ACK
    data = wire.emit(th.dport, th.sport, seq, ack, flags, 0, b"", b"", daddr, saddr, pseudo_sum=af_inet6.pseudo(ipv6))
    ns.mib["TcpOutRsts"] += 1
    ns.mib["TcpOutSegs"] += 1
    rst = af_inet6.flow_skb(ns.name, data, skb, ipv6, daddr, saddr, ipv4.IPPROTO_TCP, df=not ipv6)
    return Down(rst, fn or ("tcp_v6_send_reset" if ipv6 else "tcp_v4_send_reset"))


def send_reset(tr, ns, sk, now: int, out: list, cause=None):
    """tcp_send_active_reset(): abort a connection."""
    ns.mib["TcpOutRsts"] += 1
    out.append(segment(tr, ns, sk, sk.snd_nxt, wire.RST, b"", now, cause, "tcp_send_active_reset",
                       opts=b"" if not sk.ts_ok else None))


def nagle_allows(sk, size: int, mss: int) -> bool:
    """tcp_nagle_check() with tcp_minshall_check(): a partial segment waits only
    while an earlier *small* segment is unacknowledged, unless TCP_NODELAY or
    the FIN goes with it (so a 2,000-byte write leaves at once, as on Linux)."""
    if size >= mss or sk.nodelay or not sk.rtx or (sk.fin_queued and size == sk.sendq_bytes):
        return True
    return not sk.snd_una < sk.snd_sml <= sk.snd_nxt


def take(sk, n: int) -> tuple[bytes, object]:
    """Up to n bytes from the write queue, and the cause of the first of them.
    Queue entries are [data, offset, cause]: a segment is cut without copying
    the rest of a large send."""
    parts, cause, got = [], None, 0
    q = sk.sendq
    while q and got < n:
        entry = q[0]
        data, off, c = entry
        if cause is None:
            cause = c
        piece = data[off:off + n - got]
        parts.append(piece)
        got += len(piece)
        if off + len(piece) >= len(data):
            q.popleft()
        else:
            entry[1] = off + len(piece)
    sk.sendq_bytes -= got
    return b"".join(parts) if len(parts) != 1 else parts[0], cause


def write_xmit(tr, ns, sk, now: int, out: list, fn: str = "tcp_write_xmit", probe: bool = False) -> bool:
    """tcp_write_xmit(): send new data while cwnd, the peer's window, Nagle and
    pacing allow; then schedule a tail loss probe. A probe (push_one = 2) sends
    one segment whatever cwnd says. Returns whether anything went."""
    if sk.state in (SYN_SENT, SYN_RECV):
        return False
    sent = False
    mss = current_mss(sk)
    sk.cwnd_limited = False
    first = len(out)
    goal = tso_segs(sk, mss)
    if not probe and tso_should_defer(ns, sk, now, mss, goal):
        return False
    while sk.sendq_bytes or (sk.fin_queued and sk.snd_nxt == sk.write_seq):
        if sk.in_flight() >= sk.cwnd and not probe:
            sk.cwnd_limited = True
            break
        if sk.pacing_needed and sk.wstamp > now + pacing_burst(sk, mss) and not probe:
            sk.t_pace = sk.wstamp                      # tcp_pacing_check(): the pacing timer resumes us
            break
        wnd_end = sk.snd_una + sk.snd_wnd
        room = wnd_end - sk.snd_nxt
        size = min(mss, sk.sendq_bytes)
        if size and room < size:
            # the peer's window: send what fits unless it is a small piece with more coming
            if room <= 0 or (room < mss and room < sk.sendq_bytes and sk.rtx):
                break
            size = room
        if size and not probe and not nagle_allows(sk, size, mss):
            break
        payload, cause = take(sk, size) if size else (b"", None)
        flags = wire.PSH if payload and not sk.sendq_bytes else 0
        if sk.fin_queued and not sk.sendq_bytes:
            flags |= wire.FIN
        end = sk.snd_nxt + len(payload) + (1 if flags & wire.FIN else 0)
        seg = Seg(sk.snd_nxt, end, flags, payload, cause)
        seg.sent = now
        tcp_cong.data_sent(sk, seg, now)              # tcp_rate_skb_sent(), tcp_event_data_sent()
        sk.rtx.append(seg)
        sk.rtx_bytes += len(payload)
        down = segment(tr, ns, sk, sk.snd_nxt, flags, payload, now, cause,
                       "tcp_send_fin" if flags & wire.FIN and not payload else fn)
        out.append(down)
        seg.skb = down.skb
        seg.order = sk.segs_out
        if payload:
            sk.data_segs_out += 1
            if len(payload) < mss:
                sk.snd_sml = end                       # tcp_minshall_update()
            pace_after_send(sk, len(payload), now)
        if sk.ca_state in (CA_CWR, CA_RECOVERY):
            sk.prr_out += 1
        sk.snd_nxt = end
        if sk.t_rto is None:
            sk.t_rto = now + sk.rto
        sent = True
        if flags & wire.FIN or probe:
            break
    if len(out) - first > 1:
        out[first:] = tso_coalesce(sk, out[first:], mss, goal)
    if sent and not probe:
        schedule_loss_probe(ns, sk, now, advancing_rto=False)
    return sent


def tso_segs(sk, mss: int) -> int:
    """tcp_tso_autosize() and tcp_xmit_size_goal(): how many segments one TSO
    packet may carry: about 1 ms of the pacing rate, plus up to 64 KB when the
    path's minimum RTT is short (tcp_tso_rtt_log 9: 64 KB below 512 us, half
    that below 1 ms, ...), at least two, at most half the peer's largest
    window and what fits in one IP packet."""
    size = sk.pacing_rate >> 10
    r = sk.rtt_min >> 9
    if r < 32:
        size += GSO_MAX_SIZE >> r
    limit = GSO_MAX_SIZE - 1 - 320                   # MAX_TCP_HEADER
    if sk.max_window > 536:                          # tcp_bound_to_half_wnd()
        limit = min(limit, max(sk.max_window // 2, 68 - 40))
    return max(min(size, limit) // mss, 2)


def tso_should_defer(ns, sk, now: int, mss: int, goal: int) -> bool:
    """tcp_tso_should_defer(): with more than a segment to send but room for
    less than a full TSO packet, wait for the ACKs that will open the window,
    so TSO packets stay large: unless in recovery, the last send was over
    1 ms ago, 1/tcp_tso_win_divisor of the window can go now, the rest of the
    queue fits, or the oldest segment in flight was sent under half an RTT
    ago (the next ACK would come too late)."""
    if sk.ca_state >= CA_RECOVERY or now - sk.last_snd > MS or sk.sendq_bytes <= mss or not sk.rtx:
        return False
    in_flight = sk.in_flight()
    if sk.cwnd <= in_flight:
        return False
    limit = min(sk.snd_una + sk.snd_wnd - sk.snd_nxt, (sk.cwnd - in_flight) * mss)
    if limit >= goal * mss or (sk.sendq_bytes <= goal * mss and limit >= sk.sendq_bytes):
        return False
    if limit >= min(sk.snd_wnd, sk.cwnd * mss) // ns.sysctl["net.ipv4.tcp_tso_win_divisor"]:
        return False
    if now - sk.rtx[0].sent < sk.srtt // 2:
        return False
    sk.cwnd_limited = limit == (sk.cwnd - in_flight) * mss
    return True


def tso_coalesce(sk, downs: list, mss: int, segs: int) -> list:
    """tcp_write_xmit() builds one TSO packet of as many segments as the
    cwnd, the window and tso_segs() allow: here the segments cut above become
    one packet (gso_size the MSS) where they are full-sized, consecutive and
    alike (ACK, window, options; FIN and PSH only on the last, CWR only on the
    first), and the device cuts it back (GSO/TSO) before the wire. The write
    queue keeps its MSS-sized segments for retransmission."""
    out, run = [], []

    def close():
        if len(run) == 1:
            out.append(run[0])
        elif run:
            head = run[0].skb
            payload = b"".join(d.skb.data[(d.skb.data[12] >> 4) * 4:] for d in run)
            flags = head.data[13] | run[-1].skb.data[13] & TSO_KEEP
            big = Down(head, run[0].fn)
            head.data = tcp_with(head.data, flags, payload, sk.laddr, sk.raddr, partial=True,
                                 pseudo=pseudo_header_sum6 if sk.ipv6 else pseudo_header_sum)
            head.gso_size, head.gso_segs, head.ip_summed = mss, len(run), CHECKSUM_PARTIAL
            merged = {id(d.skb) for d in run[1:]}
            for seg in islice(reversed(sk.rtx), len(downs)):    # retransmissions link to what was sent
                if id(seg.skb) in merged:
                    seg.skb = head
            out.append(big)
        run.clear()

    for d in downs:
        data = d.skb.data
        doff = (data[12] >> 4) * 4
        if run:
            prev, h = run[-1].skb.data, run[0].skb.data
            if (len(prev) - (prev[12] >> 4) * 4 == mss and len(data) > doff and len(run) < segs
                    and data[8:13] == h[8:13] and data[14:16] == h[14:16] and data[20:doff] == h[20:(h[12] >> 4) * 4]
                    and data[13] & ~TSO_KEEP == h[13] & ~(TSO_KEEP | wire.CWR) and not prev[13] & TSO_KEEP):
                run.append(d)
                continue
            close()
        if len(data) > doff and not data[13] & (wire.SYN | wire.RST):
            run.append(d)
        else:
            out.append(d)
    close()
    return out


def pace_after_send(sk, size: int, now: int):
    """tcp_update_skb_after_send(): the next segment may leave size/rate later
    (the first ten are not paced, as sch_fq does not), less credit for idle time."""
    if not sk.pacing_needed or not sk.pacing_rate or sk.data_segs_out < 10:
        return
    prior = sk.wstamp
    sk.wstamp = max(sk.wstamp, now)
    len_ns = size * S // sk.pacing_rate
    len_ns -= min(len_ns // 2, sk.wstamp - prior)
    sk.wstamp += len_ns


def pacing_burst(sk, mss: int) -> int:
    """How far ahead of its pacing schedule a segment may leave (ns): what
    tcp_tso_autosize() would put in one TSO skb, sk_pacing_rate >> 10 (about
    1 ms of data) and at least two segments, so the pacing timer fires once a
    burst rather than once a segment."""
    rate = sk.pacing_rate
    if not rate:
        return 0
    return max(rate >> 10, 2 * mss) * S // rate


def schedule_loss_probe(ns, sk, now: int, advancing_rto: bool) -> bool:
    """tcp_schedule_loss_probe(): RFC 8985's probe timeout, 2 x SRTT (plus the
    delayed-ACK allowance when one segment is out), never later than the RTO;
    for SACK connections in Open or CWR with something in flight."""
    if ns.sysctl["net.ipv4.tcp_early_retrans"] not in (3, 4) or not sk.rtx or not sk.sack_ok or \
            sk.ca_state not in (CA_OPEN, CA_CWR) or sk.state in (SYN_SENT, SYN_RECV):
        return False
    if sk.srtt:
        timeout = 2 * sk.srtt + (ns.sysctl["net.ipv4.tcp_rto_min_us"] * 1000 if len(sk.rtx) == 1
                                 else TCP_TIMEOUT_MIN)
    else:
        timeout = TCP_TIMEOUT_INIT
    rto_delta = sk.rto if advancing_rto else (sk.t_rto - now if sk.t_rto is not None else 0)
    if rto_delta > 0:
        timeout = min(timeout, rto_delta)
    sk.t_tlp = now + timeout
    return True


def send_loss_probe(tr, ns, sk, now: int, out: list):
    """tcp_send_loss_probe(): the probe timer fired with no ACK. Send one new
    segment if the window allows, else the last segment again; remember
    snd_nxt to tell later whether the probe repaired a loss."""
    if sk.tlp_high_seq or not sk.rtx or sk.ca_state not in (CA_OPEN, CA_CWR):
        return
    sk.tlp_retrans = False
    if sk.sendq_bytes and sk.snd_una + sk.snd_wnd >= sk.snd_nxt + min(current_mss(sk), sk.sendq_bytes):
        if not write_xmit(tr, ns, sk, now, out, fn="tcp_send_loss_probe", probe=True):
            return
    else:
        last = sk.rtx[-1]
        mss = current_mss(sk)
        if len(last.data) > mss:
            fragment(sk, last, len(last.data) - mss)  # probe with the last MSS of it
            last = sk.rtx[-1]
        retransmit(tr, ns, sk, last, now, out, fn="tcp_send_loss_probe", index=len(sk.rtx) - 1)
        sk.tlp_retrans = True
    sk.tlp_high_seq = sk.snd_nxt
    ns.mib["TCPLossProbes"] += 1
    sk.t_rto = now + (sk.rto << sk.backoff)           # tcp_rearm_rto() from now


def fragment(sk, seg: Seg, size: int, index: int | None = None) -> Seg:
    """tcp_fragment(): cut a queued segment after `size` bytes. The head keeps
    its place; the tail takes the FIN and PSH and the head's marks (lost,
    retransmitted), as the kernel copies TCP_SKB_CB()->sacked to the new skb."""
    tail = Seg(seg.seq + size, seg.end, seg.flags, seg.data[size:], seg.cause)
    tail.sent, tail.retrans, tail.skb = seg.sent, seg.retrans, seg.skb
    seg.end, seg.data, seg.flags = seg.seq + size, seg.data[:size], seg.flags & ~(wire.FIN | wire.PSH)
    if seg.lost:
        tail.lost = True
        sk.lost_out += 1
    if seg.in_rtx:
        tail.in_rtx = True
        sk.retrans_out += 1
    sk.rtx.insert(sk.rtx.index(seg) + 1 if index is None else index + 1, tail)
    return tail


def retransmit(tr, ns, sk, seg: Seg, now: int, out: list, fn: str = "tcp_retransmit_skb", index: int | None = None):
    """tcp_retransmit_skb(): the same bytes again, a new journey linked to the
    first send; cut to the current MSS first when it has shrunk since (SACK
    blocks to carry now, a smaller path MTU), as __tcp_retransmit_skb() does."""
    mss = current_mss(sk)
    if len(seg.data) > mss:
        fragment(sk, seg, mss, index)
    if seg.flags & wire.SYN:
        out.append(send_syn(tr, ns, sk, now, synack=sk.state == SYN_RECV, cause=seg.origin(), fn=fn, again=True))
    else:
        out.append(segment(tr, ns, sk, seg.seq, seg.flags, seg.data, now, seg.origin(), fn))
    seg.sent, seg.order = now, sk.segs_out
    tcp_cong.data_sent(sk, seg, now)                  # tcp_rate_skb_sent(), tcp_event_data_sent()
    if seg.lost and not seg.in_rtx:
        seg.in_rtx = True
        sk.retrans_out += 1
    seg.retrans += 1
    sk.total_retrans += 1
    ns.mib["TcpRetransSegs"] += 1
    if not sk.retrans_stamp:
        sk.retrans_stamp = now
    sk.undo_retrans = max(sk.undo_retrans, 0) + 1       # undoable until a D-SACK shows it needless


def sync_mss(sk, pmtu: int):
    """tcp_sync_mss(): the MSS for a path MTU: IP and TCP headers off, no more
    than the peer's MSS (and TCP_MAXSEG), at least TCP_MIN_SND_MSS, less the
    options every segment carries."""
    mss = min(pmtu - af_inet6.net_header_len(sk.ipv6) - wire.TCP_HLEN, sk.peer_mss, sk.user_mss or sk.peer_mss)
    sk.pmtu_cookie = pmtu
    sk.mss_cache = max(mss, TCP_MIN_SND_MSS) - (TCPOLEN_TSTAMP_ALIGNED if sk.ts_ok else 0)


def xmit_retransmit_queue(tr, ns, sk, now: int, out: list):
    """tcp_xmit_retransmit_queue(): lost segments first, while the pipe has room (RFC 6675 NextSeg)."""
    i = 0
    while i < len(sk.rtx):                          # by index: a retransmission may cut a segment in two
        if sk.in_flight() >= sk.cwnd:
            return
        seg = sk.rtx[i]
        if seg.lost and not seg.in_rtx and not seg.sacked:
            retransmit(tr, ns, sk, seg, now, out, index=i)
            ns.mib["TCPFastRetrans" if sk.ca_state != CA_LOSS else "TCPSlowStartRetrans"] += 1
            if sk.ca_state in (CA_CWR, CA_RECOVERY):
                sk.prr_out += 1
        i += 1
