"""struct tcp_sock: one TCP connection's state (RFC 9293), the names and
defaults Linux uses. Sequence numbers inside are unbounded integers counted
from the ISN (no wrap-around arithmetic anywhere); `unwrap()` maps a 32-bit
sequence number from the wire to the integer nearest a reference, and `& MASK`
maps back.

The modules beside this one do the work, named as in net/ipv4:
tcp_ipv4 (demultiplexing, listen, connect, SYN cookies, the socket calls),
tcp_input (segment arrival), tcp_output (transmission), tcp_timer, tcp_cong.
"""
from collections import deque

from ..common.tracepoints import INET_SOCK_SET_STATE, TCP_PROBE
from ..common.uapi import AF_INET, AF_INET6
from ..wire.ipv4 import ntoa
from . import af_inet6

MASK = 0xFFFFFFFF

# enum tcp_state (include/net/tcp_states.h), the numbers ss uses
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING = \
    range(1, 12)
STATE_NAMES = {ESTABLISHED: "ESTAB", SYN_SENT: "SYN-SENT", SYN_RECV: "SYN-RECV", FIN_WAIT1: "FIN-WAIT-1",
               FIN_WAIT2: "FIN-WAIT-2", TIME_WAIT: "TIME-WAIT", CLOSE: "UNCONN", CLOSE_WAIT: "CLOSE-WAIT",
               LAST_ACK: "LAST-ACK", LISTEN: "LISTEN", CLOSING: "CLOSING"}
RFC_NAMES = {ESTABLISHED: "ESTABLISHED", SYN_SENT: "SYN-SENT", SYN_RECV: "SYN-RECEIVED", FIN_WAIT1: "FIN-WAIT-1",
             FIN_WAIT2: "FIN-WAIT-2", TIME_WAIT: "TIME-WAIT", CLOSE: "CLOSED", CLOSE_WAIT: "CLOSE-WAIT",
             LAST_ACK: "LAST-ACK", LISTEN: "LISTEN", CLOSING: "CLOSING"}
# as the tracepoints print them (tcp:*, sock:inet_sock_set_state)
TRACE_NAMES = {ESTABLISHED: "TCP_ESTABLISHED", SYN_SENT: "TCP_SYN_SENT", SYN_RECV: "TCP_SYN_RECV",
               FIN_WAIT1: "TCP_FIN_WAIT1", FIN_WAIT2: "TCP_FIN_WAIT2", TIME_WAIT: "TCP_TIME_WAIT", CLOSE: "TCP_CLOSE",
               CLOSE_WAIT: "TCP_CLOSE_WAIT", LAST_ACK: "TCP_LAST_ACK", LISTEN: "TCP_LISTEN", CLOSING: "TCP_CLOSING"}

# enum tcp_ca_state
CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = range(5)

MS = 1_000_000
S = 1_000_000_000
TCP_TIMEOUT_INIT = 1 * S           # RFC 6298 initial RTO
TCP_RTO_MIN = 200 * MS             # Linux's floor (RFC 6298 says 1 s)
TCP_RTO_MAX = 120 * S
TCP_DELACK_MIN = 40 * MS
TCP_DELACK_MAX = 200 * MS
TCP_ATO_MIN = 40 * MS
TCP_MAX_QUICKACKS = 16
TCP_INIT_CWND = 10                 # RFC 6928, Linux's default
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
TCP_MSS_DEFAULT = 536              # RFC 1122 / 9293 default when the peer sends no MSS
TCP_MIN_MSS = 88
TCP_TIMEOUT_FALLBACK = 3 * S
MAX_SACK_BLOCKS = 3                # 4 without timestamps; Linux sends at most 4 (3 with TS)
TCP_FASTRETRANS_THRESH = 3         # tcp_reordering default, RFC 6675 DupThresh
TCP_MAX_REORDERING = 300           # net.ipv4.tcp_max_reordering
TCP_TIMEOUT_MIN = 2 * MS           # 2 jiffies at HZ=1000: the TLP's slack with several segments out
TCP_RACK_RECOVERY_THRESH = 16      # recoveries without a D-SACK before RACK's window steps reset

# ecn_flags (include/net/tcp.h)
TCP_ECN_OK, TCP_ECN_QUEUE_CWR, TCP_ECN_DEMAND_CWR, TCP_ECN_SEEN = 1, 2, 4, 8


def set_state(ns, sk, state: int):
    """tcp_set_state(): TcpCurrEstab counts the ESTABLISHED and CLOSE-WAIT ones."""
    old = sk.state
    if state in (ESTABLISHED, CLOSE_WAIT) and old not in (ESTABLISHED, CLOSE_WAIT):
        ns.mib["TcpCurrEstab"] += 1
    elif old in (ESTABLISHED, CLOSE_WAIT) and state not in (ESTABLISHED, CLOSE_WAIT):
        ns.mib["TcpCurrEstab"] -= 1
    probes = ns.probes
    if INET_SOCK_SET_STATE in probes.on:          # trace_inet_sock_set_state(), from tcp_set_state()
        probes.emit(INET_SOCK_SET_STATE, ns.name, {**trace_fields(sk), "protocol": "IPPROTO_TCP",
                                                   "oldstate": TRACE_NAMES[old], "newstate": TRACE_NAMES[state]})
    sk.state = state


def trace_fields(sk) -> dict:
    """The socket's fields in the tcp and sock tracepoints: an AF_INET6 socket's
    addresses also in saddr_v6/daddr_v6 (TP_STORE_ADDRS(): its IPv4 ones v4-mapped
    there; saddr/daddr keep IPv4's view, 0.0.0.0 for an IPv6 connection)."""
    if sk.family != AF_INET6:
        return {"skaddr": sk.sk, "family": "AF_INET", "sport": sk.lport, "dport": sk.rport,
                "saddr": ntoa(sk.laddr), "daddr": ntoa(sk.raddr)}
    v4 = (0, 0) if sk.ipv6 else (sk.laddr, sk.raddr)
    return {"skaddr": sk.sk, "family": "AF_INET6", "sport": sk.lport, "dport": sk.rport,
            "saddr": ntoa(v4[0]), "daddr": ntoa(v4[1]), "saddr_v6": af_inet6.sk_ntoa(sk, sk.laddr),
            "daddr_v6": af_inet6.sk_ntoa(sk, sk.raddr)}


def trace_probe(ns, sk, data_len: int):
    """trace_tcp_probe() at the start of tcp_rcv_established(): the connection as a segment finds it
    (its addresses as %pISpc prints a sockaddr: [2001:db8::1]:80 for IPv6)."""
    f = trace_fields(sk)
    if sk.family == AF_INET6:
        src, dst = f"[{f['saddr_v6']}]:{sk.lport}", f"[{f['daddr_v6']}]:{sk.rport}"
    else:
        src, dst = f"{f['saddr']}:{sk.lport}", f"{f['daddr']}:{sk.rport}"
    ns.probes.emit(TCP_PROBE, ns.name, {
        **f, "saddr": src, "daddr": dst, "mark": 0,
        "data_len": data_len, "snd_nxt": sk.snd_nxt & MASK, "snd_una": sk.snd_una & MASK, "snd_cwnd": sk.cwnd,
        "ssthresh": sk.ssthresh, "snd_wnd": sk.snd_wnd, "srtt": sk.srtt // 1000, "rcv_wnd": sk.rcv_wnd})


def sent_after(t1: int, t2: int, tie1: int, tie2: int) -> bool:
    """tcp_skb_sent_after(): sent later, or at the same time and later by the tie-break."""
    return t1 > t2 or (t1 == t2 and tie1 > tie2)


def unwrap(seq32: int, ref: int) -> int:
    """The integer sequence number nearest `ref` whose low 32 bits are seq32."""
    d = (seq32 - ref) & MASK
    return ref + d - (1 << 32) if d & 0x80000000 else ref + d


class TraceRef:
    """The trace context of a packet, kept to link later packets to it."""
    __slots__ = ("trace_id", "span_id", "trace_flags")

    def __init__(self, trace_id=b"", span_id=b"", trace_flags=0):
        self.trace_id, self.span_id, self.trace_flags = trace_id, span_id, trace_flags

    @classmethod
    def of(cls, skb):
        return cls(skb.trace_id, skb.span_id, skb.trace_flags & 1) if skb is not None and skb.trace_id else None


class Seg:
    """A segment in flight (the retransmission queue, tcp_rtx_queue)."""
    __slots__ = ("seq", "end", "flags", "data", "sent", "order", "retrans", "in_rtx", "sacked", "lost", "cause",
                 "skb",
                 # struct tcp_skb_cb's tx: the connection's delivery state when it was sent (tcp_rate.c)
                 "tx_delivered", "tx_delivered_mstamp", "tx_first_tx_mstamp", "tx_app_limited")

    def __init__(self, seq: int, end: int, flags: int, data: bytes, cause):
        self.seq, self.end, self.flags, self.data = seq, end, flags, data
        self.sent = 0                # when it was last sent (ns)
        self.order = 0               # segs_out then: orders transmissions that share a clock reading
        self.retrans = 0             # times retransmitted (Karn: no RTT sample from it)
        self.in_rtx = False          # a retransmission of it is in flight (counted in retrans_out)
        self.sacked = self.lost = False
        self.cause = cause           # what this data came from (the application's send)
        self.skb = None              # its first transmission: retransmissions link to it
        self.tx_delivered = 0        # sk.delivered when it was (last) sent
        self.tx_delivered_mstamp = 0  # sk.delivered_mstamp then (us); 0: already counted (SACKed)
        self.tx_first_tx_mstamp = 0  # sk.first_tx_mstamp then (us): start of its send phase
        self.tx_app_limited = False  # sent while the application was the limit

    def origin(self):
        """The trace a retransmission links to: the first send, else the cause."""
        return TraceRef.of(self.skb) or self.cause


class TcpSock:
    __slots__ = (
        "sk", "netns", "state", "laddr", "lport", "raddr", "rport", "parent", "child_id", "dst",
        # options the application set
        "nodelay", "keepalive", "linger", "user_mss", "reuseaddr", "ttl", "tos", "pmtudisc", "rcvbuf_user",
        "sndbuf_user", "keepidle", "keepintvl", "keepcnt", "syn_retries", "ca_name",
        # sending
        "iss", "snd_una", "snd_nxt", "snd_wnd", "snd_wl1", "snd_wl2", "max_window", "write_seq", "sendq",
        "sendq_bytes", "rtx", "rtx_bytes", "fin_queued", "sndbuf", "write_blocked", "inet_id", "mss_cache", "advmss",
        "peer_mss", "pmtu_cookie",
        # receiving
        "irs", "rcv_nxt", "rcv_wnd", "rcv_wup", "rcvbuf", "rcv_queued", "ofo", "ofo_bytes", "fin_seq",
        "shut_rd", "rcv_mss", "rcv_rtt", "rcvq_space", "rcvq_copied", "rcvq_time",
        # options negotiated
        "sack_ok", "ts_ok", "wscale_ok", "snd_wscale", "rcv_wscale", "ts_recent", "ts_recent_stamp", "ts_offset",
        # RTT and retransmission
        "srtt", "rttvar", "rto", "backoff", "retransmits", "retrans_stamp", "total_retrans", "lost_out",
        "sacked_out", "retrans_out", "dupacks",
        # congestion control
        "cwnd", "ssthresh", "ca", "ca_state", "high_seq", "prior_cwnd", "snd_cwnd_cnt", "cwnd_limited", "bytes_acked",
        "bytes_received", "segs_out", "segs_in", "data_segs_out", "data_segs_in", "delivered",
        "lost", "lsndtime", "rtt_min", "rtt_min_stamp",
        # delivery rate sampling (tcp_rate.c); times in us, as tp->tcp_mstamp
        "delivered_mstamp", "first_tx_mstamp", "app_limited", "rate_delivered", "rate_interval_us",
        "rate_app_limited", "rs",
        # loss recovery: RACK (RFC 8985), tail loss probes, PRR (RFC 6937), undo (D-SACK, timestamps)
        "rack_mstamp", "rack_order", "rack_rtt", "rack_advanced", "reo_wnd_steps", "reo_wnd_persist",
        "rack_dsack_seen", "reord_seen", "reordering", "tlp_high_seq", "tlp_retrans",
        "prr_delivered", "prr_out", "prior_ssthresh", "undo_marker", "undo_retrans", "frto", "dsack", "dsack_dups",
        "snd_sml", "last_oow_ack_time", "rcv_ssthresh", "ecn_flags", "sack_recent",
        # pacing (sk_pacing_rate, bytes/s; enforced when a CA or SO_MAX_PACING_RATE asks for it)
        "pacing_rate", "max_pacing_rate", "pacing_needed", "wstamp",
        # delayed ACK
        "ack_pending", "quick", "ato", "unacked_rcv", "last_ack_cause",
        # timers (monotonic ns deadlines, None when off) and what is armed
        "t_rto", "t_delack", "t_keepalive", "t_timewait", "t_persist", "t_finwait2", "t_tlp", "t_reo", "t_pace",
        "timer_at",
        "last_rcv", "last_snd", "probes_out",
        # listening
        "backlog", "syn_queue", "accept_queue", "err", "sk_err_pending", "close_after",
        # sk->sk_dst_pending_confirm: the next segment confirms the neighbour (sk_dst_confirm())
        "dst_pending_confirm",
        # AF_INET6 (af_inet6.py): the family, whether the addresses are IPv6 ones, IPV6_V6ONLY, the
        # scope of a link-local address, SOCK_BINDADDR_LOCK; IPV6_UNICAST_HOPS, IPV6_TCLASS, IPV6_MTU_DISCOVER
        "family", "ipv6", "v6only", "bound_dev_if", "addr_bound", "hops", "tclass", "recverr6", "pmtudisc6",
    )

    def __init__(self, sk: int, netns: str, family: int = AF_INET, bindv6only: int = 0):
        self.sk, self.netns = sk, netns
        af_inet6.init(self, family, bindv6only)
        self.addr_bound = self.recverr6 = False
        self.hops = self.tclass = 0
        self.pmtudisc6 = 1               # IPV6_PMTUDISC_WANT
        self.state = CLOSE
        self.laddr = self.lport = self.raddr = self.rport = 0
        self.parent = None
        self.child_id = 0
        self.nodelay = self.keepalive = self.reuseaddr = False
        self.linger = None               # None, or seconds (0: abort with RST on close)
        self.dst = None                  # sk_dst_cache: the route connect() looked up (a Dst), put on each segment
        self.user_mss = 0
        self.ttl = self.tos = 0
        self.rcvbuf_user = self.sndbuf_user = 0
        self.keepidle = self.keepintvl = self.keepcnt = 0
        self.syn_retries = 0
        self.ca_name = None
        self.iss = self.snd_una = self.snd_nxt = self.snd_wl1 = self.snd_wl2 = self.write_seq = 0
        self.snd_wnd = self.max_window = 0
        self.sendq: deque = deque()      # [data, offset, cause] not yet sent
        self.sendq_bytes = 0
        self.rtx: deque = deque()        # Seg in flight, in sequence order
        self.rtx_bytes = 0
        self.fin_queued = False
        self.sndbuf = 0
        self.write_blocked = False
        self.inet_id = 0
        self.mss_cache = self.advmss = self.peer_mss = TCP_MSS_DEFAULT
        self.pmtu_cookie = 0             # icsk_pmtu_cookie: the path MTU mss_cache was cut for
        self.pmtudisc = 1                # IP_PMTUDISC_WANT
        self.irs = self.rcv_nxt = self.rcv_wnd = self.rcv_wup = 0
        self.rcvbuf = 0
        self.rcv_queued = 0
        self.ofo: dict[int, tuple] = {}   # seq -> (end, data, skb) received beyond rcv_nxt
        self.ofo_bytes = 0
        self.fin_seq = None
        self.shut_rd = False
        self.rcv_mss = TCP_MSS_DEFAULT
        self.rcv_rtt = 0                  # the receiver's RTT estimate (tcp_rcv_rtt_measure_ts)
        self.rcvq_space = self.rcvq_copied = self.rcvq_time = 0
        self.sack_ok = self.ts_ok = self.wscale_ok = False
        self.snd_wscale = self.rcv_wscale = 0
        self.ts_recent = self.ts_recent_stamp = self.ts_offset = 0
        self.srtt = 0                     # ns; 0: no sample yet
        self.rttvar = 0
        self.rto = TCP_TIMEOUT_INIT
        self.backoff = self.retransmits = 0
        self.retrans_stamp = 0
        self.total_retrans = self.lost_out = self.sacked_out = self.retrans_out = self.dupacks = 0
        self.cwnd = TCP_INIT_CWND
        self.ssthresh = TCP_INFINITE_SSTHRESH
        self.ca = None
        self.ca_state = CA_OPEN
        self.high_seq = 0
        self.prior_cwnd = 0
        self.snd_cwnd_cnt = 0
        self.cwnd_limited = False
        self.bytes_acked = self.bytes_received = self.segs_out = self.segs_in = 0
        self.data_segs_out = self.data_segs_in = self.delivered = 0
        self.lost = 0                     # segments ever marked lost (tp->lost)
        self.lsndtime = 0                 # when data was last sent (ns), for restart after idle
        self.rtt_min = 0                  # tcp_min_rtt(): the least RTT seen (us; 0: none yet)
        self.rtt_min_stamp = 0
        self.delivered_mstamp = self.first_tx_mstamp = 0
        self.app_limited = 0              # tp->app_limited: delivered count ending the app-limited bubble
        self.rate_delivered = self.rate_interval_us = 0
        self.rate_app_limited = False
        self.rs = None                    # the rate sample of the ACK being processed
        self.rack_mstamp = self.rack_order = self.rack_rtt = 0     # the newest delivered segment's send, order, RTT
        self.rack_advanced = False
        self.reo_wnd_steps, self.reo_wnd_persist = 1, 0
        self.rack_dsack_seen = False
        self.reord_seen = 0
        self.reordering = TCP_FASTRETRANS_THRESH
        self.tlp_high_seq = 0                             # snd_nxt when a tail loss probe went; 0: none out
        self.tlp_retrans = False
        self.prr_delivered = self.prr_out = 0
        self.prior_ssthresh = 0
        self.undo_marker = 0                               # snd_una when recovery began; 0: nothing to undo
        self.undo_retrans = -1                             # retransmissions not yet shown spurious by D-SACK
        self.frto = False
        self.dsack = None                                  # a D-SACK block to send: (start, end)
        self.dsack_dups = 0
        self.snd_sml = 0                                   # end of the last small segment sent (Minshall)
        self.last_oow_ack_time = None
        self.rcv_ssthresh = 0
        self.ecn_flags = 0
        self.sack_recent: list = []                        # out-of-order arrivals, newest first (RFC 2018 4)
        self.pacing_rate = 0                               # bytes/s (sk_pacing_rate); 0: unpaced
        self.max_pacing_rate = 0xFFFFFFFFFFFFFFFF          # ~0UL: unlimited
        self.pacing_needed = False
        self.wstamp = 0                                    # tcp_wstamp_ns: when the next paced segment may go
        self.ack_pending = False
        self.quick = 0
        self.ato = 0
        self.unacked_rcv = 0
        self.last_ack_cause = None
        self.t_rto = self.t_delack = self.t_keepalive = self.t_timewait = self.t_persist = None
        self.t_finwait2 = self.t_tlp = self.t_reo = self.t_pace = None
        self.timer_at = None
        self.last_rcv = self.last_snd = 0
        self.probes_out = 0
        self.backlog = 0
        self.syn_queue: dict = {}
        self.accept_queue: deque = deque()
        self.err = 0
        self.sk_err_pending = 0
        self.close_after = False
        self.dst_pending_confirm = False

    @property
    def packets_out(self) -> int:
        return len(self.rtx)

    def in_flight(self) -> int:
        """RFC 6675 pipe, tcp_packets_in_flight(): out - (sacked + lost) + retransmitted."""
        return len(self.rtx) - self.sacked_out - self.lost_out + self.retrans_out

    def key(self) -> tuple:
        """Its key in the established table (af_inet6.ehash_key())."""
        if self.ipv6:
            return self.laddr, self.lport, self.raddr, self.rport, 6
        return self.laddr, self.lport, self.raddr, self.rport
