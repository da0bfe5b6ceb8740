"""Sending (net/ipv4/tcp_output.c): segments cut from the write queue as the
congestion window, the peer's window and Nagle allow; ACKs, window updates,
FIN, RST and SYN; the options on each. Every segment is a new packet, so a new
journey in the traces, linked to what caused it (the application's send, the
segment being acknowledged, the original of a retransmission)."""

from ..common.skbuff import DOWN, new_skb
from ..wire import ipv4, tcp as wire
from .tcp import MASK, MAX_SACK_BLOCKS, MS, SYN_RECV, SYN_SENT, Seg

IP_ID_SET = 0x10000
TCPOLEN_TSTAMP_ALIGNED = 12


def tsval(sk, now: int) -> int:
    """The timestamp clock: milliseconds, with a random offset per connection."""
    return (now // MS + sk.ts_offset) & MASK


def sack_blocks(sk) -> tuple:
    """SACK blocks for what sits beyond a hole, newest first (RFC 2018 4)."""
    if not sk.sack_ok or not sk.ofo:
        return ()
    blocks = []
    for seq in sorted(sk.ofo):
        end = sk.ofo[seq][0]
        if blocks and seq <= blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], end)
        else:
            blocks.append([seq, end])
    blocks.sort(key=lambda b: -b[0])
    return tuple((b[0] & MASK, b[1] & MASK) for b in blocks[:MAX_SACK_BLOCKS if sk.ts_ok else 4])


def select_window(sk) -> int:
    """tcp_select_window(): the free receive space, zero below one MSS (silly
    window avoidance), never moving the right edge left; scaled for the wire."""
    free = sk.rcvbuf - sk.rcv_queued - sk.ofo_bytes
    win = free if free >= sk.rcv_mss else 0
    win &= ~((1 << sk.rcv_wscale) - 1)
    old_right = sk.rcv_wup + sk.rcv_wnd
    if sk.rcv_nxt + win < old_right:
        win = old_right - sk.rcv_nxt
    win = min(win, 0xFFFF << sk.rcv_wscale)
    sk.rcv_wnd, sk.rcv_wup = win, sk.rcv_nxt
    return win >> sk.rcv_wscale


def segment(tr, ns, sk, seq: int, flags: int, payload: bytes, now: int, cause, fn: str, ack: bool = True,
            opts: bytes | None = None, window: int | None = None) -> tuple:
    """tcp_transmit_skb(): one segment of this connection, as a DOWN verdict."""
    if opts is None:
        opts = wire.options(ts=(tsval(sk, now), sk.ts_recent), sack=sack_blocks(sk)) if sk.ts_ok else \
            wire.options(sack=sack_blocks(sk))
    if window is None:
        window = select_window(sk)
    if ack:
        flags |= wire.ACK
    data = wire.emit(sk.lport, sk.rport, seq, sk.rcv_nxt if ack else 0, flags, window, opts, payload,
                     sk.laddr, sk.raddr)
    skb = new_skb(ns.name, data, cause, sk=sk.sk, saddr=sk.laddr, daddr=sk.raddr, ip_proto=ipv4.IPPROTO_TCP,
                  ttl=sk.ttl, tos=sk.tos, df=True)
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
    return (DOWN, skb, fn, None)


def send_ack(tr, ns, sk, now: int, out: list, cause=None, fn: str = "tcp_send_ack", seq: int | None = None):
    out.append(segment(tr, ns, sk, sk.snd_nxt if seq is None else seq, 0, b"", now,
                       cause or sk.last_ack_cause, fn))


def send_syn(tr, ns, sk, now: int, out: list, synack: bool = False, cause=None, fn: str | None = None):
    """tcp_connect() / tcp_make_synack(): Linux's SYN options in Linux's order
    (MSS, SACK-permitted, timestamps, window scale); a SYN-ACK echoes only what
    the SYN offered."""
    offer = not synack
    mss = sk.advmss
    sysctl = ns.sysctl                 # tcp_syn_options(): an option is offered only while its sysctl is on
    opts = wire.options(mss=mss, sack_perm=bool(sysctl["net.ipv4.tcp_sack"]) if offer else sk.sack_ok,
                        ts=(tsval(sk, now), sk.ts_recent) if (sysctl["net.ipv4.tcp_timestamps"] if offer
                                                             else sk.ts_ok) else None,
                        wscale=sk.rcv_wscale if (sysctl["net.ipv4.tcp_window_scaling"] if offer
                                                 else sk.wscale_ok) else None)
    # tcp_select_initial_window(): whole MSSes; a SYN-ACK knows whether timestamps
    # will take 12 bytes of each segment (tcp_openreq_init_rwin), a SYN does not yet.
    seg = mss - 12 if synack and sk.ts_ok else mss
    window = min(sk.rcvbuf - sk.rcv_queued, 0xFFFF) // seg * seg
    sk.rcv_wnd, sk.rcv_wup = window, sk.rcv_nxt
    fn = fn or ("tcp_v4_send_synack" if synack else "tcp_connect")
    out.append(segment(tr, ns, sk, sk.iss, wire.SYN, b"", now, cause, fn, ack=synack, opts=opts, window=window))


def reset_for(ns, skb, th, saddr: int, daddr: int, now: int, fn: str = "tcp_v4_send_reset") -> tuple:
    """tcp_v4_send_reset(): the RST answering a segment that has no connection
    (RFC 9293 3.10.7.1): seq from its ACK, or an ACK of everything it occupied."""
    data_len = len(skb.data) - skb.head
    if th.flags & wire.ACK:
        seq, ack, flags = th.ack, 0, wire.RST
    else:
        occupied = data_len + (1 if th.flags & wire.SYN else 0) + (1 if th.flags & wire.FIN else 0)
        seq, ack, flags = 0, (th.seq + occupied) & MASK, wire.RST | wire.ACK
    data = wire.emit(th.dport, th.sport, seq, ack, flags, 0, b"", b"", daddr, saddr)
    ns.mib["TcpOutRsts"] += 1
    ns.mib["TcpOutSegs"] += 1
    return (DOWN, new_skb(ns.name, data, skb, saddr=daddr, daddr=saddr, ip_proto=ipv4.IPPROTO_TCP, df=True),
            fn, None)


def send_reset(tr, ns, sk, now: int, out: list, cause=None):
    """tcp_send_active_reset(): abort a connection."""
    ns.mib["TcpOutRsts"] += 1
    out.append(segment(tr, ns, sk, sk.snd_nxt, wire.RST, b"", now, cause, "tcp_send_active_reset",
                       opts=b"" if not sk.ts_ok else None))


def nagle_allows(sk, size: int, mss: int) -> bool:
    """tcp_nagle_check(): a partial segment waits while data is unacknowledged,
    unless TCP_NODELAY or the FIN goes with it."""
    return size >= mss or sk.nodelay or not sk.rtx or (sk.fin_queued and size == sk.sendq_bytes)


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


def write_xmit(tr, ns, sk, now: int, out: list, fn: str = "tcp_write_xmit") -> bool:
    """tcp_write_xmit(): send new data while cwnd and the peer's window allow.
    Returns whether anything went."""
    if sk.state in (SYN_SENT, SYN_RECV):
        return False
    sent = False
    mss = sk.mss_cache
    sk.cwnd_limited = False
    while sk.sendq_bytes or (sk.fin_queued and sk.snd_nxt == sk.write_seq):
        if sk.in_flight() >= sk.cwnd:
            sk.cwnd_limited = True
            break
        wnd_end = sk.snd_una + sk.snd_wnd
        room = wnd_end - sk.snd_nxt
        size = min(mss, sk.sendq_bytes)
        if size and room < size:
            # the peer's window: send what fits unless it is a small piece with more coming
            if room <= 0 or (room < mss and room < sk.sendq_bytes and sk.rtx):
                break
            size = room
        if size and not nagle_allows(sk, size, mss):
            break
        payload, cause = take(sk, size) if size else (b"", None)
        flags = wire.PSH if payload and not sk.sendq_bytes else 0
        if sk.fin_queued and not sk.sendq_bytes:
            flags |= wire.FIN
        end = sk.snd_nxt + len(payload) + (1 if flags & wire.FIN else 0)
        seg = Seg(sk.snd_nxt, end, flags, payload, cause)
        seg.sent = now
        sk.rtx.append(seg)
        sk.rtx_bytes += len(payload)
        out.append(segment(tr, ns, sk, sk.snd_nxt, flags, payload, now, cause,
                           "tcp_send_fin" if flags & wire.FIN and not payload else fn))
        seg.skb = out[-1][1]
        if payload:
            sk.data_segs_out += 1
        sk.snd_nxt = end
        if sk.t_rto is None:
            sk.t_rto = now + sk.rto
        sent = True
        if flags & wire.FIN:
            break
    return sent


def retransmit(tr, ns, sk, seg: Seg, now: int, out: list, fn: str = "tcp_retransmit_skb"):
    """tcp_retransmit_skb(): the same bytes again; a new journey linked to the first send."""
    if seg.flags & wire.SYN:
        send_syn(tr, ns, sk, now, out, synack=sk.state == SYN_RECV, cause=seg.origin(), fn=fn)
    else:
        out.append(segment(tr, ns, sk, seg.seq, seg.flags, seg.data, now, seg.origin(), fn))
    if seg.lost and not seg.in_rtx:
        seg.in_rtx = True
        sk.retrans_out += 1
    seg.retrans += 1
    seg.sent = now
    sk.total_retrans += 1
    ns.mib["TcpRetransSegs"] += 1
    if not sk.retrans_stamp:
        sk.retrans_stamp = now


def xmit_retransmit_queue(tr, ns, sk, now: int, out: list):
    """tcp_xmit_retransmit_queue(): lost segments first, while the pipe has room (RFC 6675 NextSeg)."""
    for seg in sk.rtx:
        if sk.in_flight() >= sk.cwnd:
            return
        if seg.lost and not seg.in_rtx and not seg.sacked:
            retransmit(tr, ns, sk, seg, now, out)
