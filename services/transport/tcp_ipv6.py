"""TCP over IPv6 (net/ipv6/tcp_ipv6.c): what an AF_INET6 socket does its own
way: __inet6_bind() for a stream socket, tcp_v6_connect()'s checks (a
v4-mapped destination goes through tcp_v4_connect(), as the ipv6_mapped
af_ops make Linux do, and the connection is IPv4 on the wire), tcp_v6_err().
The rest (tcp_v6_rcv()'s demultiplexing, the SYN queue, the state machine,
RSTs, SYN cookies, the Tcp counters) is tcp_ipv4.py's on addresses of either
width: the segments carry the IPv6 pseudo-header's checksum and the MSS is the
path MTU less 60 (IPv6's 40 and TCP's 20). A mixin of TcpProto."""
import errno

from pktflow.v1.skb_pb2 import ProtoCall

from ..common.actions import Drop, Stop
from ..common.uapi import IP_PMTUDISC_INTERFACE, IP_PMTUDISC_OMIT
from ..wire import icmpv6, ipv6
from . import af_inet6
from .af_inet6 import MAPPED_MASK, from16, needs_scope_id
from .tcp import CLOSE, LISTEN, MASK, SYN_RECV, SYN_SENT, TIME_WAIT, TcpSock
from .udp import icmpv6_err_convert


class TcpV6:
    """The AF_INET6 side of struct proto tcpv6_prot."""

    def call6(self, ns, sk: TcpSock, skb, now: int) -> list | None:
        """The calls an AF_INET6 stream socket answers its own way; None for the others."""
        call = skb.call
        if call.op == ProtoCall.BIND:
            return self.complete(skb, self.bind6(ns, sk, call), sk)
        if call.op == ProtoCall.CONNECT:
            out: list = []
            err = self.connect6(ns, sk, call, skb, now, out)
            return out + self.complete(skb, err, sk)
        return None

    def route_key6(self, sk: TcpSock, call) -> tuple | None:
        """The route a call of an AF_INET6 socket asks, or None when it fails first."""
        if call.op == ProtoCall.BIND and not sk.lport and sk.state == CLOSE:
            return af_inet6.bind_key(sk, call, stream=True)
        if call.op != ProtoCall.CONNECT or self.connect_error(sk, 0, 1):
            return None
        err, daddr, mapped, _ = self.connect6_target(sk, call)
        if err:
            return None
        if mapped:
            return None if self.connect_error(sk, daddr, call.port) else (daddr, 0)
        return None if not sk.ipv6 else (af_inet6.a16(daddr), af_inet6.a16(sk.laddr))

    def bind6(self, ns, sk: TcpSock, call) -> int:
        """inet6_bind() for a stream socket (multicast: EINVAL)."""
        if sk.lport or sk.state != CLOSE:
            return errno.EINVAL
        err, addr, ipv6_addr, scope = af_inet6.bind_check(self.transport, ns, sk, call, stream=True)
        if err:
            return err
        saved = sk.v6only
        af_inet6.bound(sk, addr, ipv6_addr, scope)
        err = self.bind(ns, sk, addr, call.port, ipv6_addr, checked=True)
        if err:
            sk.v6only, sk.addr_bound, sk.bound_dev_if = saved, False, 0
        return err

    @staticmethod
    def connect6_target(sk: TcpSock, call) -> tuple[int, int, bool, int]:
        """tcp_v6_connect()'s checks before its route: (errno, the destination, is it
        v4-mapped, the interface a link-local one is scoped to)."""
        daddr = from16(call.addr6)
        if daddr == 0:                         # connect to :: is to self
            daddr = ipv6.v4mapped(0x7F000001) if not sk.ipv6 else ipv6.IN6ADDR_LOOPBACK
        if ipv6.is_multicast(daddr):
            return errno.ENETUNREACH, 0, False, 0
        oif = sk.bound_dev_if
        if needs_scope_id(daddr):
            if call.scope_id:
                if sk.bound_dev_if and sk.bound_dev_if != call.scope_id:
                    return errno.EINVAL, 0, False, 0
                oif = call.scope_id
            if not oif:                        # connect to link-local address requires an interface
                return errno.EINVAL, 0, False, 0
        if ipv6.is_v4mapped(daddr):
            if sk.v6only:
                return errno.ENETUNREACH, 0, True, 0
            return 0, daddr & MAPPED_MASK, True, 0
        return 0, daddr, False, oif

    def connect6(self, ns, sk: TcpSock, call, cause, now: int, out: list) -> int:
        """tcp_v6_connect(): IPv6, or IPv4 for a v4-mapped peer."""
        err = self.connect_error(sk, 0, 1)                 # EISCONN, EALREADY first (inet_stream_connect())
        if err:
            return err
        err, daddr, mapped, oif = self.connect6_target(sk, call)
        if err:
            return err
        if mapped:
            was = sk.ipv6
            sk.ipv6 = False                                # icsk_af_ops = &ipv6_mapped
            err = self.connect(ns, sk, daddr, call.port, cause, now, out)
            if err != errno.EINPROGRESS:
                sk.ipv6 = was
            return err
        if not sk.ipv6:
            return errno.EAFNOSUPPORT                      # a v4-mapped source: ip6_dst_lookup_tail()
        sk.bound_dev_if = oif if needs_scope_id(daddr) else sk.bound_dev_if
        return self.connect(ns, sk, daddr, call.port, cause, now, out, ipv6=True)

    def err6(self, ns, skb, now: int) -> list:
        """tcp_v6_err(): an ICMPv6 error about one of our segments. Packet too big
        cuts the MSS (tcp_v6_mtu_reduced(), not below IPv6's 1280); during the
        handshake any error ends the connection attempt (a request socket only
        for a fatal one: tcp_req_err()); later the errors are soft (ignored)."""
        e = skb.icmp_error
        q = e.quoted
        sk = self.tables(ns).ehash.get((from16(q.saddr6), q.sport, from16(q.daddr6), q.dport, 6))
        if sk is None or sk.state == TIME_WAIT:
            return [Stop(skb, "tcp_v6_err")]
        qp = e.quoted_payload
        seq = int.from_bytes(skb.data[qp + 4:qp + 8], "big")
        out: list = []
        if sk.state == SYN_RECV and sk.parent is not None:
            err, fatal = icmpv6_err_convert(e.type, e.code)
            if seq != sk.iss & MASK:
                ns.mib["OutOfWindowIcmps"] += 1
            elif fatal:
                self.tcp_done(ns, sk, now, out, 0)
                ns.mib["ListenDrops"] += 1
            return out + [Stop(skb, "tcp_v6_err")]
        if sk.state != LISTEN and (seq - sk.snd_una) & MASK > sk.snd_nxt - sk.snd_una:
            ns.mib["OutOfWindowIcmps"] += 1
            return [Drop(skb, "tcp_v6_err", "TCP_INVALID_SEQUENCE")]
        if e.type == icmpv6.ICMPV6_PKT_TOOBIG:
            if sk.state != LISTEN and sk.pmtudisc6 not in (IP_PMTUDISC_INTERFACE, IP_PMTUDISC_OMIT) and \
                    e.info >= ipv6.IPV6_MIN_MTU:
                self.mtu_reduced(ns, sk, e.info, skb, now, out)
            return out + [Stop(skb, "tcp_v6_err")]
        err, _ = icmpv6_err_convert(e.type, e.code)
        if sk.state in (SYN_SENT, SYN_RECV):
            ns.mib["TcpAttemptFails"] += 1
            self.tcp_done(ns, sk, now, out, err)
        return out + [Stop(skb, "tcp_v6_err")]
