"""TCP's minisockets (net/ipv4/tcp_minisocks.c): the child a listener
creates for a connection request (inet_csk_clone_lock(), tcp_check_req() when
the handshake's last ACK comes) and TIME-WAIT (tcp_time_wait(),
tcp_timewait_state_process()). A mixin of TcpProto (tcp_ipv4.py)."""
from pktflow.v1.skb_pb2 import SockEvent

from ..common.actions import Stop
from . import af_inet6, tcp_cong, tcp_input, tcp_output as xmit, tcp_timer
from ..wire import tcp as wire
from ..wire.ethernet import ETH_P_IPV6
from .tcp import ESTABLISHED, LISTEN, S, TIME_WAIT, TcpSock, set_state, unwrap


class TcpMinisocks:
    """Connection requests becoming sockets, and connections in TIME-WAIT."""

    def new_child(self, ns, lsk: TcpSock, laddr: int, lport: int, raddr: int, rport: int, now: int,
                  ipv6: bool = False, ifindex: int = 0) -> TcpSock:
        """inet_csk_clone_lock(): a connection socket that inherits the listener's
        options (its family too: an AF_INET6 listener's child of an IPv4 SYN is
        a v4-mapped AF_INET6 socket, as tcp_v6_syn_recv_sock() makes it)."""
        self.next_child += 1
        sk = TcpSock(self.next_child, ns.name, lsk.family)
        for opt in ("nodelay", "keepalive", "linger", "user_mss", "ttl", "tos", "pmtudisc", "rcvbuf_user",
                    "sndbuf_user", "keepidle", "keepintvl", "keepcnt", "ca_name", "v6only", "bound_dev_if", "hops",
                    "tclass", "pmtudisc6"):
            setattr(sk, opt, getattr(lsk, opt))
        self.init_sock(ns, sk)
        sk.ipv6 = ipv6
        sk.laddr, sk.lport, sk.raddr, sk.rport = laddr, lport, raddr, rport
        sk.parent = lsk
        # The route's MTU gives the MSS we advertise (less the IPv6 header's 40 or
        # IPv4's 20 and TCP's 20); on the receive path nothing may wait for the
        # ip layer, so an uncached route means Ethernet's 1500.
        hdrs = af_inet6.net_header_len(ipv6) + wire.TCP_HLEN
        if ipv6 and not sk.bound_dev_if and af_inet6.needs_scope_id(raddr):
            sk.bound_dev_if = ifindex                # tcp_v6_init_req(): ir_iif, the interface it came in on
            r = self.transport.scoped_route(ns, raddr, laddr, ifindex)
        else:
            r = ns.routes.get(self.transport.conn_key(sk))
        if r is not None and not r.err and r.mtu:
            sk.advmss, sk.dst, sk.pmtu_cookie = r.mtu - hdrs, r.dst, r.mtu
        else:
            sk.advmss, sk.pmtu_cookie = 1500 - hdrs, 1500
        self.start_connection(ns, sk, now)
        self.socks[sk.sk] = sk
        return sk

    def child_established(self, ns, sk: TcpSock, skb, th, now: int, out: list) -> bool:
        """tcp_check_req() -> inet_csk_complete_hashdance(): the handshake's last
        ACK; the new connection waits in the listener's accept queue."""
        lsk = sk.parent
        if lsk is None:                          # a simultaneous open completes (RFC 9293 figure 8)
            set_state(ns, sk, ESTABLISHED)
            self.established(ns, sk, now)
            tcp_input.event(sk, SockEvent.STATE_CHANGE, out, state=ESTABLISHED)
            return True
        if lsk.state != LISTEN:
            return True
        if len(lsk.accept_queue) > lsk.backlog:          # sk_acceptq_is_full() in tcp_v4_syn_recv_sock()
            ns.mib["ListenOverflows"] += 1
            ns.mib["ListenDrops"] += 1
            if ns.sysctl["net.ipv4.tcp_abort_on_overflow"]:
                out.append(xmit.reset_for(ns, skb, th, sk.raddr, sk.laddr, now))
            return False
        lsk.syn_queue.pop(sk.key(), None)
        self.tables(ns).ehash[sk.key()] = sk
        set_state(ns, sk, ESTABLISHED)
        ns.mib["TcpPassiveOpens"] += 1
        lsk.accept_queue.append(sk)
        self.established(ns, sk, now)
        tcp_input.event(sk, SockEvent.STATE_CHANGE, out, state=ESTABLISHED, listener=lsk.sk)
        return True

    def established(self, ns, sk: TcpSock, now: int):
        """tcp_init_transfer(): the first RTT sample sets the RTO; keepalive starts."""
        tcp_cong.init(sk, now)                    # tcp_init_congestion_control(); lsndtime
        self.expand_sndbuf(ns, sk)
        sk.last_rcv = now
        tcp_timer.arm_keepalive(ns, sk, now)

    def time_wait(self, ns, sk: TcpSock, now: int):
        """tcp_time_wait(): hold the 4-tuple for 2 MSL (TCP_TIMEWAIT_LEN, 60 s)."""
        set_state(ns, sk, TIME_WAIT)
        tcp_timer.clear(sk)
        sk.t_timewait = now + ns.sysctl["net.ipv4.tcp_timewait_len"] * S

    def timewait_process(self, ns, t, sk: TcpSock, skb, th, saddr, daddr, now: int) -> list:
        """tcp_timewait_state_process(): die on RST, let a new SYN with a higher
        sequence reuse the pair; a bare in-window ACK restarts the wait and is
        not answered (two TIME-WAITs would ACK each other forever); anything
        else (a retransmitted FIN) gets an ACK, at most one per tcp_invalid_ratelimit."""
        out: list = []
        fn = "tcp_timewait_state_process"
        if th.flags & wire.RST:
            self.tcp_done(ns, sk, now, out, 0)
            return out + [Stop(skb, fn)]
        seq = unwrap(th.seq, sk.rcv_nxt)
        if th.flags & wire.SYN and not th.flags & wire.ACK and seq > sk.rcv_nxt:
            lsk = self.lookup_listener(t, daddr, th.dport, skb.protocol == ETH_P_IPV6)
            if lsk is not None:
                self.tcp_done(ns, sk, now, out, 0)
                return out + self.listen_process(ns, lsk, skb, th, saddr, daddr, now)
        bare = len(skb.data) == skb.head and not th.flags & (wire.SYN | wire.FIN)
        if th.flags & wire.ACK or not bare:
            sk.t_timewait = now + ns.sysctl["net.ipv4.tcp_timewait_len"] * S     # inet_twsk_reschedule()
        if not (bare and seq == sk.rcv_nxt) and \
                not tcp_input.challenge_rate_limited(ns, sk, now, "TCPACKSkippedTimeWait"):
            xmit.send_ack(self, ns, sk, now, out, cause=skb, fn=fn)   # tcp_timewait_check_oow_rate_limit()
        self.arm(sk, now, out)
        return out + [Stop(skb, fn)]
