"""struct tcp_info (include/uapi/linux/tcp.h) and TCP's socket options
(net/ipv4/tcp.c): do_tcp_getsockopt() for what reads connection state (TCP_INFO,
filled as tcp_get_info() fills it, TCP_CONGESTION, IP_MTU/IPV6_MTU) and
do_tcp_setsockopt() with the socket, IP and IPv6 options TCP reads. The one
place the struct's bytes are laid out.

The layout is the kernel's on x86-64 (little-endian, natural alignment, no
padding anywhere), 280 bytes as Linux 6.18 returns it (the AccECN counters
after tcpi_total_rto_time included). Fields pktflow does not track read 0:
fackets, last_ack_sent (Linux: "not remembered"), busy/rwnd/sndbuf_limited,
delivered_ce, bytes_sent, bytes_retrans, rcv_ooopack, rehash, total_rto*,
the AccECN counters; pmtu is the route's MTU the MSS came from."""
import errno
import struct

from ..common.uapi import (IP_MTU, IP_MTU_DISCOVER, IP_TOS, IP_TTL, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPV6_MTU,
                           SO_KEEPALIVE, SO_LINGER, SO_MAX_PACING_RATE, SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF, SOL_SOCKET,
                           TCP_CONGESTION, TCP_INFO, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_MAXSEG, TCP_NODELAY,
                           TCP_SYNCNT, linger_seconds)
from . import af_inet6, tcp_cong, tcp_rate
from .tcp import LISTEN, MS, TCP_DELACK_MAX, TCP_ECN_OK, TCP_ECN_SEEN

TCP_CA_NAME_MAX = 16
TCPOLEN_TSTAMP_ALIGNED = 12
# tcpi_options
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE, TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN, TCPI_OPT_SYN_DATA = \
    1, 2, 4, 8, 16, 32
U64_MAX = (1 << 64) - 1

# field name, struct code: in the header's order ("=": standard sizes, no padding,
# which is exact: every field of the kernel's struct sits at its natural alignment)
FIELDS = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"),                      # snd_wscale : 4 (low bits), rcv_wscale : 4
    ("app_limited", "B"),                                   # delivery_rate_app_limited : 1, fastopen_client_fail : 2
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"), ("snd_cwnd", "I"),
    ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"),
    ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"),
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"),
    ("snd_wnd", "I"), ("rcv_wnd", "I"),
    ("rehash", "I"),
    ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"),
    ("received_ce", "I"), ("delivered_e1_bytes", "I"), ("delivered_e0_bytes", "I"), ("delivered_ce_bytes", "I"),
    ("received_e1_bytes", "I"), ("received_e0_bytes", "I"), ("received_ce_bytes", "I"),
    ("accecn_fail_mode", "H"), ("accecn_opt_seen", "H"),
)
STRUCT = struct.Struct("=" + "".join(code for _n, code in FIELDS))
SIZE = STRUCT.size                     # sizeof(struct tcp_info): 280
_INDEX = {name: i for i, (name, _c) in enumerate(FIELDS)}


def _us(ns: int) -> int:
    return max(0, ns) // 1000


def _ms(ns: int) -> int:
    return max(0, ns) // MS


def tcp_get_info(sk, now: int) -> dict:
    """tcp_get_info(): the values, by field name (missing names are 0)."""
    i = {"state": sk.state, "reordering": sk.reordering, "snd_cwnd": sk.cwnd,
         "pacing_rate": sk.pacing_rate, "max_pacing_rate": sk.max_pacing_rate}
    if sk.state == LISTEN:             # listeners alias two fields: the accept queue and its bound
        i["unacked"], i["sacked"] = len(sk.accept_queue), sk.backlog
        return i
    options = 0
    if sk.ts_ok:
        options |= TCPI_OPT_TIMESTAMPS
    if sk.sack_ok:
        options |= TCPI_OPT_SACK
    if sk.wscale_ok:
        options |= TCPI_OPT_WSCALE
        i["wscale"] = (sk.snd_wscale & 0xF) | (sk.rcv_wscale & 0xF) << 4
    if sk.ecn_flags & TCP_ECN_OK:
        options |= TCPI_OPT_ECN
    if sk.ecn_flags & TCP_ECN_SEEN:
        options |= TCPI_OPT_ECN_SEEN
    i.update(
        ca_state=sk.ca_state, retransmits=sk.retransmits, probes=sk.probes_out, backoff=sk.backoff,
        options=options, app_limited=1 if sk.rate_app_limited else 0,
        rto=_us(sk.rto), ato=_us(min(sk.ato, TCP_DELACK_MAX)), snd_mss=sk.mss_cache, rcv_mss=sk.rcv_mss,
        unacked=sk.packets_out, sacked=sk.sacked_out, lost=sk.lost_out, retrans=sk.retrans_out,
        # lsndtime, lrcvtime, rcv_tstamp: pktflow keeps one time per direction
        last_data_sent=_ms(now - sk.last_snd), last_data_recv=_ms(now - sk.last_rcv),
        last_ack_recv=_ms(now - sk.last_rcv),
        pmtu=sk.advmss + 40, rcv_ssthresh=sk.rcv_ssthresh,
        # tp->advmss loses the timestamp option's 12 bytes once they are agreed
        # (tcp_rcv_synsent_state_process(), tcp_create_openreq_child()); pktflow keeps the SYN's
        rtt=_us(sk.srtt), rttvar=_us(sk.rttvar), snd_ssthresh=sk.ssthresh,
        advmss=sk.advmss - (TCPOLEN_TSTAMP_ALIGNED if sk.ts_ok else 0),
        rcv_rtt=_us(sk.rcv_rtt), rcv_space=sk.rcvq_space, total_retrans=sk.total_retrans,
        bytes_acked=sk.bytes_acked, bytes_received=sk.bytes_received, segs_out=sk.segs_out, segs_in=sk.segs_in,
        # min_rtt: tcp_min_rtt() is ~0U before the first sample
        notsent_bytes=max(0, sk.write_seq - sk.snd_nxt), min_rtt=sk.rtt_min or 0xFFFFFFFF,
        data_segs_in=sk.data_segs_in, data_segs_out=sk.data_segs_out,
        delivery_rate=tcp_rate.delivery_rate(sk), delivered=sk.delivered, dsack_dups=sk.dsack_dups,
        reord_seen=sk.reord_seen, snd_wnd=sk.snd_wnd, rcv_wnd=sk.rcv_wnd)
    return i


def pack(info: dict) -> bytes:
    """struct tcp_info's bytes."""
    values = [0] * len(FIELDS)
    for name, v in info.items():
        code = FIELDS[_INDEX[name]][1]
        values[_INDEX[name]] = v & {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": U64_MAX}[code]
    return STRUCT.pack(*values)


def getsockopt(sk, level: int, optname: int, optlen: int, now: int) -> tuple[int, bytes]:
    """do_tcp_getsockopt() for the options that read the connection: (errno,
    bytes). `optlen` is the caller's buffer; Linux copies min(optlen, size)."""
    if optlen < 0:
        return errno.EINVAL, b""
    if (level, optname) in ((IPPROTO_IP, IP_MTU), (IPPROTO_IPV6, IPV6_MTU)):   # dst_mtu(sk_dst_get(sk))
        if not sk.pmtu_cookie or sk.state == LISTEN:
            return errno.ENOTCONN, b""
        return 0, sk.pmtu_cookie.to_bytes(4, "little")[:optlen]
    if level != IPPROTO_TCP:
        return errno.ENOPROTOOPT, b""
    if optname == TCP_INFO:
        return 0, pack(tcp_get_info(sk, now))[:optlen]
    if optname == TCP_CONGESTION:      # icsk_ca_ops->name: char[TCP_CA_NAME_MAX], NUL padded
        name = (sk.ca.name if sk.ca else "").encode()[:TCP_CA_NAME_MAX]
        return 0, name.ljust(TCP_CA_NAME_MAX, b"\0")[:optlen]
    return errno.ENOPROTOOPT, b""


def setsockopt(ns, sk, level: int, name: int, value: int, optbytes: bytes = b"", now: int = 0) -> int:
    """do_tcp_setsockopt() and the socket, IP and IPv6 options TCP itself reads;
    the socket layer validated the values."""
    if level == SOL_SOCKET:
        if name == SO_REUSEADDR:
            sk.reuseaddr = bool(value)
        elif name == SO_KEEPALIVE:
            sk.keepalive = bool(value)
            if not value:
                sk.t_keepalive = None
        elif name == SO_LINGER:
            sk.linger = linger_seconds(optbytes)
        elif name == SO_RCVBUF:
            sk.rcvbuf_user = sk.rcvbuf = value
        elif name == SO_SNDBUF:
            sk.sndbuf_user = sk.sndbuf = value
        elif name == SO_MAX_PACING_RATE:
            # sk_setsockopt(): ~0U is no limit; any other value makes TCP pace itself
            sk.max_pacing_rate = 0xFFFFFFFFFFFFFFFF if value == 0xFFFFFFFF else value
            sk.pacing_needed = sk.pacing_needed or sk.max_pacing_rate != 0xFFFFFFFFFFFFFFFF
            sk.pacing_rate = min(sk.pacing_rate, sk.max_pacing_rate)
    elif level == IPPROTO_IP:
        if name == IP_TTL:
            sk.ttl = 0 if value == -1 else value
        elif name == IP_TOS:
            sk.tos = value & 0xFC | sk.tos & 0x3       # TCP keeps the ECN bits its own
        elif name == IP_MTU_DISCOVER:
            sk.pmtudisc = value
    elif level == IPPROTO_IPV6:
        af_inet6.ipv6_setsockopt(sk, name, value)
    elif level == IPPROTO_TCP:
        if name == TCP_NODELAY:
            sk.nodelay = bool(value)
        elif name == TCP_MAXSEG:
            sk.user_mss = value
        elif name == TCP_KEEPIDLE:
            sk.keepidle = value
        elif name == TCP_KEEPINTVL:
            sk.keepintvl = value
        elif name == TCP_KEEPCNT:
            sk.keepcnt = value
        elif name == TCP_SYNCNT:
            sk.syn_retries = value
        elif name == TCP_CONGESTION:
            algo = tcp_cong.ALGORITHMS.get(optbytes.split(b"\0")[0].decode(errors="replace"))
            if algo is None:
                return errno.ENOENT
            sk.ca_name = algo.name
            tcp_cong.assign(ns, sk, algo.name, now)     # tcp_reinit_congestion_control() when connected
    return 0
