"""What `ss -ti` shows of TCP sockets (net/ipv4/tcp_diag.c and inet_diag.c:
inet_sk_diag_fill() with tcp_get_info()'s fields and the timer column). A mixin
of TcpProto (tcp_ipv4.py)."""
from . import af_inet6, tcp_rate
from .tcp import LISTEN, STATE_NAMES, TCP_ECN_OK, TCP_ECN_SEEN


class TcpDiag:
    """inet_diag's dump of one namespace's TCP sockets."""

    def sockets(self, ns) -> list[dict]:
        rows = []
        for sk in self.socks.values():
            if sk.netns != ns.name:
                continue
            in_flight = sk.rtx_bytes
            rows.append({
                "state": STATE_NAMES[sk.state], "recv_q": len(sk.accept_queue) if sk.state == LISTEN
                else sk.rcv_queued, "send_q": sk.backlog if sk.state == LISTEN else sk.sendq_bytes + in_flight,
                "local": [af_inet6.sk_ntoa(sk, sk.laddr), sk.lport], "peer": [af_inet6.sk_ntoa(sk, sk.raddr), sk.rport],
                "family": sk.family, "sk": sk.sk,
                "ca": sk.ca.name if sk.ca else "", "wscale": [sk.snd_wscale, sk.rcv_wscale] if sk.wscale_ok else None,
                "rto": sk.rto / 1e6, "rtt": sk.srtt / 1e6, "rttvar": sk.rttvar / 1e6, "mss": sk.mss_cache,
                "cwnd": sk.cwnd, "ssthresh": sk.ssthresh if sk.ssthresh < 0x7FFFFFFF else None,
                "bytes_acked": sk.bytes_acked, "bytes_received": sk.bytes_received, "segs_out": sk.segs_out,
                "segs_in": sk.segs_in, "retrans": [len([s for s in sk.rtx if s.retrans]), sk.total_retrans],
                "lost": sk.lost_out, "sacked": sk.sacked_out, "snd_wnd": sk.snd_wnd, "rcv_wnd": sk.rcv_wnd,
                "backoff": sk.backoff, "ca_state": sk.ca_state, "unacked": len(sk.rtx),
                "timer": _timer_name(sk), "ts": sk.ts_ok, "sack": sk.sack_ok,
                "ecn": bool(sk.ecn_flags & TCP_ECN_OK), "ecnseen": bool(sk.ecn_flags & TCP_ECN_SEEN),
                "data_segs_out": sk.data_segs_out, "data_segs_in": sk.data_segs_in,
                "bbr": sk.ca.info(sk) if sk.ca else None, "pacing_rate": sk.pacing_rate,
                "delivery_rate": tcp_rate.delivery_rate(sk), "delivered": sk.delivered,
                "app_limited": bool(sk.app_limited), "dsack_dups": sk.dsack_dups,
                "reordering": sk.reordering, "reord_seen": sk.reord_seen, "rcv_ssthresh": sk.rcv_ssthresh,
                "minrtt": sk.rtt_min / 1e3})
        return rows


def _timer_name(sk) -> str | None:
    if sk.t_timewait is not None:
        return "timewait"
    if sk.t_rto is not None:
        return "on"
    if sk.t_persist is not None:
        return "persist"
    if sk.t_keepalive is not None:
        return "keepalive"
    return None
