"""TCP over IPv4 (net/ipv4/tcp_ipv4.c): struct proto tcp_prot, the socket
layer's calls (with tcp.c's tcp_sendmsg(), tcp_recvmsg(), tcp_shutdown() and
tcp_close() they lead to; do_tcp_setsockopt() is in tcp_info.py), tcp_v4_connect(),
tcp_v4_rcv() demultiplexing arriving segments to a connection, a listener's
SYN queue (tcp_conn_request()) or an RST, and tcp_v4_err(). Addresses are ints
of either width: the same code is tcp_v6_rcv() for an IPv6 segment. The rest
of TcpProto lives in mixins along the kernel's files: inet_connection_sock.py
(bind, listen, ports), tcp_minisocks.py (request children, TIME-WAIT),
syncookies.py, tcp_diag.py (what `ss` shows), tcp_ipv6.py (what AF_INET6
sockets do their own way: bind, tcp_v6_connect(), tcp_v6_err())."""
import errno

from pktflow.v1.layers_pb2 import RTN_BROADCAST
from pktflow.v1.skb_pb2 import (CHECKSUM_COMPLETE, CHECKSUM_NONE, PACKET_HOST, PACKET_LOOPBACK, ProtoCall, Skb,
                                SockEvent)

from ..common.actions import Arm, Cancel, Down, Drop, Stop, Up
from ..common.uapi import (AF_INET, AF_INET6, IP_PMTUDISC_DONT, MSG_MORE, SHUT_RD, SHUT_RDWR, SHUT_WR,
                           SO_KEEPALIVE, TCP_KEEPIDLE)
from ..wire import Malformed, ipv4, tcp as wire
from ..wire.ethernet import ETH_P_IPV6
from ..wire.icmp import ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED
from . import af_inet6, secure_seq, tcp_cong, tcp_info, tcp_input, tcp_output as xmit, tcp_rate, tcp_recovery, tcp_timer
from .inet_connection_sock import InetConnectionSock, TcpNetns
from .sock import path_mtu_after, pmtu_update
from .syncookies import SynCookies
from .tcp_diag import TcpDiag
from .tcp_ipv6 import TcpV6
from .tcp_minisocks import TcpMinisocks
from .tcp import (MASK, CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, LAST_ACK, LISTEN, S, SYN_RECV, SYN_SENT,
                  TCP_ECN_OK, TCP_TIMEOUT_INIT, TIME_WAIT, Seg, TcpSock, TraceRef, set_state)

CHILD_ID_BASE = 1 << 40          # sockets transport creates (accepted connections) are numbered from here


def call_more(skb) -> bool:
    """MSG_MORE on a SENDMSG: the same write continues in the next call."""
    return bool(skb.call.flags & MSG_MORE)


class TcpProto(InetConnectionSock, TcpMinisocks, SynCookies, TcpDiag, TcpV6):
    """struct proto tcp_prot for every namespace of the transport layer."""

    def __init__(self, transport, rng):
        self.transport = transport
        self.rng = rng
        self.next_child = CHILD_ID_BASE
        self.socks: dict[int, TcpSock] = {}            # every TCP socket by id, children and orphans too

    def tables(self, ns) -> TcpNetns:
        t = getattr(ns, "tcp", None)
        if t is None:
            t = ns.tcp = TcpNetns(ns, self.rng)
        return t

    # -- socket calls ------------------------------------------------------
    def create(self, ns, skb) -> TcpSock:
        sk = TcpSock(skb.sk, ns.name, skb.call.family or AF_INET, ns.sysctl["net.ipv6.bindv6only"])
        self.init_sock(ns, sk)
        self.socks[sk.sk] = sk
        return sk

    def init_sock(self, ns, sk: TcpSock):
        """tcp_init_sock(): buffers, congestion control, the window scale we offer."""
        rmem, wmem = ns.sysctl["net.ipv4.tcp_rmem"], ns.sysctl["net.ipv4.tcp_wmem"]
        sk.rcvbuf = sk.rcvbuf_user or rmem[1]
        sk.sndbuf = sk.sndbuf_user or wmem[1]
        tcp_cong.assign(ns, sk, sk.ca_name or ns.sysctl["net.ipv4.tcp_congestion_control"])
        # tcp_select_initial_window(): the scale that fits the largest receive buffer
        space, wscale = max(rmem[2], sk.rcvbuf), 0
        while space > 0xFFFF and wscale < 14:
            space >>= 1
            wscale += 1
        sk.rcv_wscale = wscale if ns.sysctl["net.ipv4.tcp_window_scaling"] else 0

    def call(self, ns, sk: TcpSock, skb, now: int) -> list:
        """A ProtoCall on a TCP socket: returns verdicts (a COMPLETE among them)."""
        call = skb.call
        op = call.op
        out: list = []
        if sk.family == AF_INET6:
            done = self.call6(ns, sk, skb, now)
            if done is not None:
                return done
        if op == ProtoCall.BIND:
            err = self.bind(ns, sk, call.addr, call.port)
            return self.complete(skb, err, sk)
        if op == ProtoCall.LISTEN:
            return self.complete(skb, self.listen(ns, sk, call.backlog), sk)
        if op == ProtoCall.CONNECT:
            err = self.connect(ns, sk, call.addr, call.port, skb, now, out)
            return out + self.complete(skb, err, sk)
        if op == ProtoCall.SENDMSG:
            return self.sendmsg(ns, sk, skb, now)
        if op == ProtoCall.RECVMSG:
            self.recvmsg(ns, sk, call.consumed, now, out)
            return out
        if op == ProtoCall.ACCEPT:
            child = self.socks.get(call.child)
            if child is not None and child in sk.accept_queue:
                sk.accept_queue.remove(child)
                child.parent = None
            return []
        if op == ProtoCall.SHUTDOWN:
            err = self.shutdown(ns, sk, call.how, now, out)
            return out + self.complete(skb, err, sk)
        if op == ProtoCall.SETSOCKOPT:
            err = tcp_info.setsockopt(ns, sk, call.level, call.optname, call.optval, call.optbytes, now)
            if sk.keepalive and call.optname in (SO_KEEPALIVE, TCP_KEEPIDLE) and sk.state == ESTABLISHED:
                tcp_timer.arm_keepalive(ns, sk, max(sk.last_rcv, sk.last_snd))   # the new idle time counts
                self.arm(sk, now, out)
            return out + self.complete(skb, err)
        if op == ProtoCall.RELEASE:
            self.close(ns, sk, now, out)
            return out + self.complete(skb, 0)
        if op == ProtoCall.GETSOCKOPT:
            err, value = tcp_info.getsockopt(sk, call.level, call.optname, call.optlen, now)
            done = self.complete(skb, err)
            done[0].skb.event.optval = value
            return done
        return self.complete(skb, errno.EOPNOTSUPP)

    def complete(self, skb, err: int, sk: TcpSock | None = None, sent: int = 0) -> list:
        ev = SockEvent(kind=SockEvent.COMPLETE, req=skb.call.req, err=err, sent=sent)
        if sk is not None:
            af_inet6.set_event_addrs(ev, sk, sk.laddr, sk.raddr)
            ev.port, ev.peer_port, ev.state = sk.lport, sk.rport, sk.state
        return [Up(Skb(netns=skb.netns, sk=skb.sk, event=ev), "complete")]

    def route_key(self, sk: TcpSock, call) -> tuple[int, int] | None:
        """The route (daddr, saddr) a call will look up, or None: what the call
        checks before its lookup decides, so no route is asked for a call that
        fails first (ip counts IpOutNoRoutes per lookup, as Linux does)."""
        if sk.family == AF_INET6:
            return self.route_key6(sk, call)
        if call.op == ProtoCall.CONNECT:
            return None if self.connect_error(sk, call.addr, call.port) else (call.addr, sk.laddr)
        if call.op == ProtoCall.BIND and call.addr and not sk.lport and sk.state == CLOSE:
            return call.addr, 0
        return None

    @staticmethod
    def connect_error(sk: TcpSock, daddr: int, dport: int) -> int:
        """What tcp_v4_connect() refuses before it routes."""
        if sk.state in (LISTEN, ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, LAST_ACK):
            return errno.EISCONN
        if sk.state == SYN_SENT:
            return errno.EALREADY
        if dport == 0 or ipv4.is_multicast(daddr) or daddr == ipv4.INADDR_BROADCAST:
            return errno.ENETUNREACH if daddr == ipv4.INADDR_BROADCAST else errno.EINVAL
        return 0

    def connect(self, ns, sk: TcpSock, daddr: int, dport: int, cause, now: int, out: list,
                ipv6: bool = False) -> int:
        """tcp_v4_connect() (tcp_v6_connect() for `ipv6`, its checks made) +
        tcp_connect(): route, source port, ISN, SYN."""
        err = 0 if ipv6 else self.connect_error(sk, daddr, dport)
        if err:
            return err
        r = self.transport.route6(ns, daddr, sk.laddr, sk.bound_dev_if) if ipv6 else \
            self.transport.route(ns, daddr, sk.laddr)
        if r.err:
            return r.err
        if r.type == RTN_BROADCAST and not ipv6:
            return errno.ENETUNREACH
        saddr, mtu = r.saddr, r.mtu
        sk.dst, sk.pmtu_cookie = r.dst, mtu
        t = self.tables(ns)
        if not sk.laddr:
            sk.laddr = saddr
        if not sk.lport:
            err = self.pick_port(t, sk, daddr, dport)
            if err:
                return err
        elif af_inet6.ehash_key(ipv6, sk.laddr, sk.lport, daddr, dport) in t.ehash:
            return errno.EADDRNOTAVAIL
        sk.raddr, sk.rport = daddr, dport
        hdrs = af_inet6.net_header_len(ipv6) + wire.TCP_HLEN       # advmss: 1460 over IPv4, 1440 over IPv6
        sk.advmss = min(mtu - hdrs, 0xFFFF) if mtu else 1500 - hdrs
        sk.mss_cache = min(sk.advmss, 536)
        self.start_connection(ns, sk, now)
        set_state(ns, sk, SYN_SENT)
        t.ehash[sk.key()] = sk
        ns.mib["TcpActiveOpens"] += 1
        syn = Seg(sk.iss, sk.iss + 1, wire.SYN, b"", TraceRef.of(cause))
        syn.sent = now
        sk.rtx.append(syn)
        sk.snd_nxt = sk.iss + 1
        down = xmit.send_syn(self, ns, sk, now, cause=cause)
        out.append(down)
        syn.skb = down.skb
        sk.t_rto = now + sk.rto
        self.arm(sk, now, out)
        return errno.EINPROGRESS

    def start_connection(self, ns, sk: TcpSock, now: int):
        """ISN (RFC 6528, secure_tcp_seq()), timestamp offset (secure_tcp_ts_off()),
        IP ID, initial sequence state. The addresses and ports are set."""
        t = self.tables(ns)
        sk.iss = secure_seq.secure_tcp_seq(t.net_secret, sk.laddr, sk.raddr, sk.lport, sk.rport, now)
        sk.snd_una = sk.snd_nxt = sk.iss
        sk.write_seq = sk.iss + 1                 # data starts after the SYN
        sk.ts_offset = secure_seq.secure_tcp_ts_off(t.ts_secret, sk.laddr, sk.raddr)
        sk.inet_id = self.rng.getrandbits(16)
        sk.rto = TCP_TIMEOUT_INIT

    def sendmsg(self, ns, sk: TcpSock, skb, now: int) -> list:
        """tcp_sendmsg(): queue what fits in the send buffer, push what can go."""
        out: list = []
        if sk.err:
            err, sk.err = sk.err, 0
            return self.complete(skb, err)
        if sk.state in (SYN_SENT, SYN_RECV):
            return self.complete(skb, errno.EAGAIN)     # the socket layer waits for the handshake
        if sk.state not in (ESTABLISHED, CLOSE_WAIT) or sk.fin_queued:
            return self.complete(skb, errno.EPIPE)           # sk_stream_wait_connect(): EPIPE, even unconnected
        tcp_rate.check_app_limited(sk)                      # is sending application-limited?
        self.expand_sndbuf(ns, sk)
        room = max(0, tcp_input.sndbuf_free(sk))
        data = skb.data
        n = min(len(data), room)
        if n:
            tcp_cong.slow_start_after_idle_check(ns, sk, now)     # tcp_skb_entail()
            sk.sendq.append([data[:n] if n < len(data) else data, 0, TraceRef.of(skb)])
            sk.sendq_bytes += n
            sk.write_seq += n
            # tcp_sendmsg() copies a whole write before tcp_push(): mid-write only
            # full-sized segments leave. A piece with more of the same write to
            # come (MSG_MORE from the socket layer, or what did not fit here)
            # keeps its partial tail queued for the rest, whatever Nagle says.
            tail = sk.sendq_bytes % xmit.current_mss(sk) if call_more(skb) or n < len(data) else 0
            sk.sendq_bytes -= tail        # write_xmit() cuts from sendq_bytes; the tail stays in sendq
            try:
                xmit.write_xmit(self, ns, sk, now, out)
            finally:
                sk.sendq_bytes += tail
            if sk.sendq_bytes and sk.snd_wnd == 0 and not sk.rtx and sk.t_persist is None:
                sk.t_persist = now + sk.rto
            self.arm(sk, now, out)
        if n < len(data):
            sk.write_blocked = True
        verdict = [Stop(skb, "tcp_sendmsg")] if skb.trace_id else []
        return out + verdict + self.complete(skb, 0, sk, sent=n)

    def expand_sndbuf(self, ns, sk: TcpSock):
        """tcp_sndbuf_expand(): room for two windows of data, up to tcp_wmem[2]."""
        if sk.sndbuf_user:
            return
        want = sk.ca.sndbuf_expand * max(sk.cwnd, 10) * (sk.mss_cache + 240)
        sk.sndbuf = min(max(sk.sndbuf, want), ns.sysctl["net.ipv4.tcp_wmem"][2])

    def recvmsg(self, ns, sk: TcpSock, consumed: int, now: int, out: list):
        """tcp_cleanup_rbuf(): the application read. ACK now if a delayed ACK
        holds more than one full segment, or if the window can at least double."""
        before = max(0, sk.rcv_wup + sk.rcv_wnd - sk.rcv_nxt)
        sk.rcv_queued = max(0, sk.rcv_queued - consumed)
        self.rcv_space_adjust(ns, sk, consumed, now)
        if sk.state not in (ESTABLISHED, FIN_WAIT1, FIN_WAIT2) or not consumed:
            return
        time_to_ack = sk.ack_pending and sk.unacked_rcv > sk.rcv_mss
        if not time_to_ack and 2 * before <= sk.rcvbuf:
            new = xmit.new_window(sk)
            time_to_ack = new and new >= 2 * before
        if time_to_ack:
            xmit.send_ack(self, ns, sk, now, out, fn="tcp_cleanup_rbuf")
            self.arm(sk, now, out)

    def rcv_space_adjust(self, ns, sk: TcpSock, consumed: int, now: int):
        """tcp_rcv_space_adjust(), receive buffer autotuning: once an RTT, if the
        application read more than the buffer's last measure, make room for
        twice that (up to tcp_rmem[2]), so the window never limits a reader
        that keeps up. An SO_RCVBUF set by the application turns it off."""
        sk.rcvq_copied += consumed
        rtt = sk.rcv_rtt or sk.srtt
        if sk.rcvbuf_user or not rtt or now - sk.rcvq_time < rtt:
            return
        if sk.rcvq_copied > sk.rcvq_space:
            sk.rcvq_space = sk.rcvq_copied
            sk.rcvbuf = min(max(sk.rcvbuf, 4 * sk.rcvq_copied), ns.sysctl["net.ipv4.tcp_rmem"][2])
        sk.rcvq_copied, sk.rcvq_time = 0, now

    def shutdown(self, ns, sk: TcpSock, how: int, now: int, out: list) -> int:
        """inet_shutdown()/tcp_shutdown(): SHUT_WR sends FIN after the data."""
        if sk.state in (CLOSE, SYN_SENT, LISTEN) and how != SHUT_RD:
            return errno.ENOTCONN
        if how in (SHUT_RD, SHUT_RDWR):
            sk.shut_rd = True
        if how in (SHUT_WR, SHUT_RDWR):
            self.send_fin(ns, sk, now, out)
        return 0

    def send_fin(self, ns, sk: TcpSock, now: int, out: list):
        """tcp_close_state() + tcp_send_fin()."""
        if sk.fin_queued:
            return
        if sk.state == ESTABLISHED:
            set_state(ns, sk, FIN_WAIT1)
        elif sk.state == CLOSE_WAIT:
            set_state(ns, sk, LAST_ACK)
        elif sk.state == SYN_RECV:
            set_state(ns, sk, FIN_WAIT1)
        else:
            return
        sk.fin_queued = True
        xmit.write_xmit(self, ns, sk, now, out)
        if sk.snd_nxt == sk.write_seq and sk.snd_wnd == 0:
            sk.t_persist = sk.t_persist or now + sk.rto
        self.arm(sk, now, out)

    def close(self, ns, sk: TcpSock, now: int, out: list):
        """tcp_close(): unread data or SO_LINGER 0 abort with RST; otherwise the
        connection closes gracefully on its own, orphaned."""
        t = self.tables(ns)
        sk.close_after = True
        if sk.state == LISTEN:
            t.listeners[sk.lport].remove(sk)
            if not t.listeners[sk.lport]:
                del t.listeners[sk.lport]
            for child in list(sk.syn_queue.values()) + list(sk.accept_queue):
                xmit.send_reset(self, ns, child, now, out)
                self.tcp_done(ns, child, now, out, 0)
            sk.syn_queue.clear()
            sk.accept_queue.clear()
            self.destroy(ns, sk)
            return
        if sk.state in (CLOSE, SYN_SENT):
            self.tcp_done(ns, sk, now, out, 0)
            return
        if sk.rcv_queued or sk.ofo_bytes or sk.linger == 0:
            # RFC 2525 2.17 / tcp_close(): data the application never read
            ns.mib["TCPAbortOnClose" if sk.linger != 0 else "TCPAbortOnLinger"] += 1
            xmit.send_reset(self, ns, sk, now, out)
            self.tcp_done(ns, sk, now, out, 0)
            return
        self.send_fin(ns, sk, now, out)
        if sk.state == FIN_WAIT2:
            sk.t_finwait2 = now + ns.sysctl["net.ipv4.tcp_fin_timeout"] * S

    # -- arriving segments -------------------------------------------------
    def rcv(self, ns, skb, now: int) -> list:
        """tcp_v4_rcv() and tcp_v6_rcv(): checks, demultiplexing, and the state
        machine; an IPv6 segment's checksum covers IPv6's pseudo-header."""
        data, th_off = skb.data, skb.transport_header
        ipv6, saddr, daddr = af_inet6.pkt_addrs(skb)
        fn = "tcp_v6_rcv" if ipv6 else "tcp_v4_rcv"
        ns.mib["TcpInSegs"] += 1
        try:
            # a GRO packet's segments were checked as they arrived, a local GSO one
            # never left the host (skb_csum_unnecessary())
            th = wire.parse(data, th_off, len(data), saddr, daddr, pseudo_sum=af_inet6.pseudo(ipv6),
                            check=skb.ip_summed in (CHECKSUM_NONE, CHECKSUM_COMPLETE))
        except Malformed as e:
            ns.mib["TcpInErrs"] += 1
            if e.reason == "TCP_CSUM":
                ns.mib["TcpInCsumErrors"] += 1
            return [Drop(skb, fn, e.reason)]
        skb.head = th_off + th.doff
        if skb.pkt_type not in (PACKET_HOST, PACKET_LOOPBACK):    # TCP is unicast only
            return [Drop(skb, fn, "OTHERHOST")]
        t = self.tables(ns)
        sk = t.ehash.get(af_inet6.ehash_key(ipv6, daddr, th.dport, saddr, th.sport))
        if sk is not None:
            if sk.state == TIME_WAIT:
                return self.timewait_process(ns, t, sk, skb, th, saddr, daddr, now)
            una, dupacks = sk.snd_una, sk.dupacks
            out = tcp_input.rcv_state_process(self, ns, sk, skb, th, now)
            if sk.snd_una > una or sk.dupacks > dupacks:
                self.dst_confirm(sk, out)
            return out
        lsk = self.lookup_listener(t, daddr, th.dport, ipv6)
        if lsk is not None:
            return self.listen_process(ns, lsk, skb, th, saddr, daddr, now)
        return self.no_socket(ns, skb, th, saddr, daddr, now)

    def dst_confirm(self, sk: TcpSock, out: list):
        """sk_dst_confirm() from tcp_ack() (FLAG_FORWARD_PROGRESS, or a pure
        duplicate ACK): the peer is reachable. The first segment sent after the
        ACK carries the confirmation to the neighbour layer, which keeps the entry
        REACHABLE (no unicast ARP probe while the flow makes progress)."""
        for act in out:
            if type(act) is Down and act.skb.sk == sk.sk:
                act.skb.dst_pending_confirm = True
                return
        sk.dst_pending_confirm = True            # rides on the next segment (tcp_output.segment())

    def no_socket(self, ns, skb, th, saddr: int, daddr: int, now: int) -> list:
        """Nobody owns it: RST (unless it is one), drop with NO_SOCKET."""
        out = []
        if not th.flags & wire.RST:
            out.append(xmit.reset_for(ns, skb, th, saddr, daddr, now))
        return out + [Drop(skb, "tcp_v6_rcv" if skb.protocol == ETH_P_IPV6 else "tcp_v4_rcv", "NO_SOCKET")]

    def listen_process(self, ns, lsk: TcpSock, skb, th, saddr: int, daddr: int, now: int) -> list:
        """A segment for a listener: a SYN starts a handshake, an ACK may carry a cookie."""
        flags = th.flags
        if flags & wire.RST:
            return [Drop(skb, "tcp_v4_do_rcv", "TCP_RESET")]
        if flags & wire.ACK:
            if not flags & wire.SYN and ns.sysctl["net.ipv4.tcp_syncookies"]:
                child = self.cookie_check(ns, lsk, skb, th, saddr, daddr, now)
                if child is not None:
                    out: list = []
                    if not self.child_established(ns, child, skb, th, now, out):
                        # no room in the accept queue: the child is freed (tcp_get_cookie_sock() gets
                        # NULL); kept, every such ACK of a flood would leave one behind
                        self.destroy(ns, child)
                        return out + [Drop(skb, "cookie_v4_check", "TCP_LISTEN_OVERFLOW")]
                    return out + tcp_input.rcv_state_process(self, ns, child, skb, th, now)
            return self.no_socket(ns, skb, th, saddr, daddr, now)
        if not flags & wire.SYN:
            return [Drop(skb, "tcp_v4_do_rcv", "TCP_FLAGS")]
        return self.conn_request(ns, lsk, skb, th, saddr, daddr, now)

    def conn_request(self, ns, lsk: TcpSock, skb, th, saddr: int, daddr: int, now: int) -> list:
        """tcp_conn_request(): a SYN. A request socket in the SYN queue answers
        it, or a SYN cookie when the queue is full (RFC 4987)."""
        t = self.tables(ns)
        out: list = []
        syncookies = ns.sysctl["net.ipv4.tcp_syncookies"]
        qlen = len(lsk.syn_queue)
        want_cookie = False
        if syncookies == 2 or qlen > lsk.backlog:        # inet_csk_reqsk_queue_is_full() uses >
            if not syncookies:                           # tcp_syn_flood_action()
                ns.mib["TCPReqQFullDrop"] += 1
                ns.mib["ListenDrops"] += 1
                return [Drop(skb, "tcp_conn_request", "TCP_LISTEN_OVERFLOW")]
            ns.mib["TCPReqQFullDoCookies"] += 1
            want_cookie = True
        if len(lsk.accept_queue) > lsk.backlog:          # sk_acceptq_is_full(): backlog + 1 fit
            ns.mib["ListenOverflows"] += 1
            ns.mib["ListenDrops"] += 1
            return [Drop(skb, "tcp_conn_request", "TCP_LISTEN_OVERFLOW")]
        if want_cookie:
            ns.mib["SyncookiesSent"] += 1
            out.append(self.cookie_synack(ns, lsk, skb, th, saddr, daddr, now))
            return out + [Stop(skb, "tcp_conn_request")]
        max_syn_backlog = ns.sysctl["net.ipv4.tcp_max_syn_backlog"]
        if not syncookies and max_syn_backlog - qlen < max_syn_backlog >> 2:
            # Without cookies the last quarter of tcp_max_syn_backlog is kept for
            # peers proven alive (tcp_peer_is_proven(): tcp_metrics, which pktflow
            # does not keep, so no peer is proven). With cookies it does not apply.
            ns.mib["ListenDrops"] += 1
            return [Drop(skb, "tcp_conn_request", "TCP_LISTEN_OVERFLOW")]
        req = self.new_child(ns, lsk, daddr, th.dport, saddr, th.sport, now, skb.protocol == ETH_P_IPV6,
                             skb.ifindex)
        tcp_input.apply_options(req, th.options, syn=True, sysctl=ns.sysctl)
        if req.ts_ok:
            req.ts_recent, req.ts_recent_stamp = th.options.ts[0], now
        req.irs = th.seq
        req.rcv_nxt = req.rcv_wup = th.seq + 1
        req.snd_wnd = th.window
        if th.flags & wire.ECE and th.flags & wire.CWR and ns.sysctl["net.ipv4.tcp_ecn"] and \
                not af_inet6.dsfield(skb) & ipv4.INET_ECN_MASK:
            req.ecn_flags = TCP_ECN_OK                 # tcp_ecn_create_request(): an ECN-setup SYN (RFC 3168 6.1.1)
        set_state(ns, req, SYN_RECV)
        t.ehash[req.key()] = req
        lsk.syn_queue[req.key()] = req
        seg = Seg(req.iss, req.iss + 1, wire.SYN, b"", TraceRef.of(skb))
        seg.sent = now
        req.rtx.append(seg)
        req.snd_nxt = req.iss + 1
        down = xmit.send_syn(self, ns, req, now, synack=True, cause=skb)
        out.append(down)
        seg.skb = down.skb
        req.t_rto = now + req.rto
        self.arm(req, now, out)
        return out + [Stop(skb, "tcp_conn_request")]

    # -- endings and timers ------------------------------------------------
    def tcp_done(self, ns, sk: TcpSock, now: int, out: list, err: int):
        """tcp_done(): CLOSED. The socket layer hears the error, if any."""
        was = sk.state
        set_state(ns, sk, CLOSE)
        tcp_timer.clear(sk)
        t = self.tables(ns)
        if t.ehash.get(sk.key()) is sk:
            del t.ehash[sk.key()]
        if sk.parent is not None:
            sk.parent.syn_queue.pop(sk.key(), None)
            if sk in sk.parent.accept_queue:
                sk.parent.accept_queue.remove(sk)
        if err:
            sk.err = err
            tcp_input.event(sk, SockEvent.ERROR_REPORT, out, err=err, state=CLOSE)
        elif not sk.close_after and was not in (CLOSE, TIME_WAIT):
            tcp_input.event(sk, SockEvent.STATE_CHANGE, out, state=CLOSE)
        if sk.close_after or sk.parent is not None and was == SYN_RECV:
            self.destroy(ns, sk)
        out.append(Cancel(("tcp", sk.sk)))
        sk.timer_at = None

    def destroy(self, ns, sk: TcpSock):
        """The socket is gone from every table."""
        t = self.tables(ns)
        t.ports.unhash(sk)
        if t.ehash.get(sk.key()) is sk:
            del t.ehash[sk.key()]
        self.socks.pop(sk.sk, None)

    def release_owner(self, ns, sk: TcpSock):
        """The socket layer forgot the socket (its owner restarted): abort quietly."""
        sk.close_after = True
        if sk.state in (CLOSE, LISTEN) or sk.state == SYN_SENT:
            out: list = []
            self.close(ns, sk, 0, out)

    def arm(self, sk: TcpSock, now: int, out: list):
        """One timer a connection, armed for its earliest deadline; moving a
        deadline later leaves the timer alone (it re-arms when it fires)."""
        nxt = tcp_timer.next_deadline(sk)
        if nxt is not None and (sk.timer_at is None or nxt < sk.timer_at):
            sk.timer_at = nxt
            out.append(Arm(("tcp", sk.sk), nxt))

    def timer(self, sk_id: int, now: int) -> list:
        sk = self.socks.get(sk_id)
        if sk is None:
            return []
        sk.timer_at = None
        ns = self.transport.netns[sk.netns]
        out: list = []
        tcp_timer.expire(self, ns, sk, now, out)
        self.arm(sk, now, out)
        return out

    def mtu_reduced(self, ns, sk: TcpSock, info: int, cause, now: int, out: list):
        """tcp_v4_mtu_reduced(): ip learns the path MTU (inet_csk_update_pmtu());
        when it is below the one the MSS was cut for, the MSS shrinks
        (tcp_sync_mss()) and what is in flight and too big goes again
        (tcp_simple_retransmit())."""
        if sk.state in (LISTEN, CLOSE):
            return
        out.append(pmtu_update(ns, sk.raddr, info, cause, sk.ipv6))
        mtu = path_mtu_after(ns, sk.pmtu_cookie, info, sk.ipv6)
        if (sk.pmtudisc6 if sk.ipv6 else sk.pmtudisc) == IP_PMTUDISC_DONT or sk.pmtu_cookie <= mtu:
            return
        xmit.sync_mss(sk, mtu)
        tcp_recovery.simple_retransmit(self.transport, ns, sk, now, out)
        self.arm(sk, now, out)

    def err(self, ns, skb, now: int) -> list:
        """tcp_v4_err(): an ICMP error about one of our segments. Hard errors end
        a connection still in its handshake; later they are soft (ignored)."""
        from .udp import icmp_to_errno
        if skb.icmp_error.quoted.daddr6:
            return self.err6(ns, skb, now)
        e = skb.icmp_error
        q = e.quoted
        sk = self.tables(ns).ehash.get((q.saddr, q.sport, q.daddr, q.dport))
        out: list = []
        if sk is not None and sk.state != SYN_RECV:
            qp = e.quoted_payload
            seq = int.from_bytes(skb.data[qp + 4:qp + 8], "big")
            if (seq - sk.snd_una) & MASK > sk.snd_nxt - sk.snd_una:      # !between(seq, snd_una, snd_nxt)
                ns.mib["OutOfWindowIcmps"] += 1
                return [Drop(skb, "tcp_v4_err", "TCP_INVALID_SEQUENCE")]
        if sk is not None and e.type == ICMP_DEST_UNREACH and e.code == ICMP_FRAG_NEEDED:
            self.mtu_reduced(ns, sk, e.info, skb, now, out)
        elif sk is not None and sk.state in (SYN_SENT, SYN_RECV):
            err, hard = icmp_to_errno(e.type, e.code)
            if hard or sk.state == SYN_SENT and e.type == 3:
                ns.mib["TcpAttemptFails"] += 1
                self.tcp_done(ns, sk, now, out, err)
        return out + [Stop(skb, "tcp_v4_err")]
