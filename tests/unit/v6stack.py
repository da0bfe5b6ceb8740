"""A transport core with ip's IPv6 answers stubbed: route lookups answered
from the topology (local addresses, on-link prefixes, the default route), and
packets fed in as ip6_input hands them up. What the unit tests of UDP, ping
and TCP over IPv6 drive."""
import errno

from scapy.layers.inet6 import IPv6

from pktflow.services.common import topology
from pktflow.services.common.actions import AskRoute, Down, Up
from pktflow.services.transport.stack import Transport
from pktflow.services.wire import ipv4, ipv6
from pktflow.services.wire.ethernet import ETH_P_IPV6
from pktflow.v1.layers_pb2 import RTN_LOCAL, RTN_UNICAST, RouteReply
from pktflow.v1.skb_pb2 import Dst, ProtoCall, Skb

A6 = ipv6.aton
AF_INET, AF_INET6 = 2, 10
H1, H2, R1_1 = A6("2001:db8:1::10"), A6("2001:db8:2::10"), A6("2001:db8:1::1")
H1_LL = A6("fe80::ff:fe00:10a")
NOW = 1_000_000_000


def b16(addr: int) -> bytes:
    return addr.to_bytes(16, "big")


def route_reply(host, daddr, saddr) -> RouteReply:
    """What ip6_route_output() gives in the default topology (IPv4 asks go to 10.0.0.0/8 routes)."""
    if isinstance(daddr, int):                  # IPv4: a local address, or via the gateway
        local = [a for i in host.interfaces.values() for a, _ in i.addresses]
        if daddr in local:
            return RouteReply(saddr=daddr, mtu=65536, type=RTN_LOCAL, dst=Dst(oif=1, mtu=65536, genid=1))
        src = next(a for a, _ in host.interfaces["eth0"].addresses)
        return RouteReply(saddr=src, mtu=1500, type=RTN_UNICAST, dst=Dst(oif=2, nexthop=daddr, mtu=1500, genid=1))
    d = int.from_bytes(daddr, "big")
    s = int.from_bytes(saddr, "big")
    eth0 = host.interfaces["eth0"]
    mine = [a for i in host.interfaces.values() for a, _ in i.addrs6]
    if s and s not in mine:
        return RouteReply(err=errno.EADDRNOTAVAIL)
    if d in mine:
        return RouteReply(saddr6=b16(d), mtu=65536, type=RTN_LOCAL, dst=Dst(oif=1, mtu=65536, genid=1))
    ll, glob = eth0.addrs6[0][0], eth0.addrs6[-1][0]
    if ipv6.is_linklocal(d):
        return RouteReply(saddr6=b16(s or ll), mtu=eth0.mtu, type=RTN_UNICAST,
                          dst=Dst(oif=eth0.ifindex, nexthop6=daddr, mtu=eth0.mtu, genid=1))
    if not host.routes6:
        return RouteReply(err=errno.ENETUNREACH)
    on_link = d >> 64 == glob >> 64
    hop = d if on_link else host.routes6[0].via
    return RouteReply(saddr6=b16(s or glob), mtu=eth0.mtu, type=RTN_UNICAST,
                      dst=Dst(oif=eth0.ifindex, nexthop6=b16(hop), mtu=eth0.mtu, genid=1))


class V6:
    """One host's transport core; calls go in as the socket layer makes them."""

    def __init__(self, netns: str = "h1", topo=None):
        self.topo = topo or topology.load()
        self.netns = netns
        self.tr = Transport(self.topo)
        self.ns = self.tr.netns[netns]
        self.req = 0
        self.asked = []

    def run(self, actions) -> list:
        """Answers route questions at once, as the shell would."""
        out = []
        for a in actions:
            if type(a) is AskRoute:
                self.asked.append((a.daddr, a.saddr))
                out += self.run(self.tr.route_answer(a.netns, a.daddr, a.saddr,
                                                     route_reply(self.topo.hosts[a.netns], a.daddr, a.saddr), NOW))
            else:
                out.append(a)
        return out

    def call(self, sk: int, op, data: bytes = b"", **fields) -> list:
        self.req += 1
        skb = Skb(netns=self.netns, sk=sk, data=data, call=ProtoCall(op=op, req=self.req, **fields))
        return self.run(self.tr.from_socket(skb, NOW))

    def done(self, actions):
        """The COMPLETE event among the actions."""
        [ev] = [a.skb.event for a in actions if type(a) is Up and a.skb.event.kind == a.skb.event.COMPLETE]
        return ev

    def socket(self, sk: int, type_: int = 2, proto: int = 0, family: int = AF_INET6) -> int:
        assert self.done(self.call(sk, ProtoCall.CREATE, family=family, type=type_, protocol=proto)).err == 0
        return sk

    def bind(self, sk: int, addr: int | None, port: int, scope_id: int = 0, v4: int | None = None):
        if v4 is not None:
            return self.done(self.call(sk, ProtoCall.BIND, addr=v4, port=port))
        return self.done(self.call(sk, ProtoCall.BIND, addr6=b16(addr), port=port, scope_id=scope_id))

    def connect(self, sk: int, addr: int, port: int, scope_id: int = 0):
        return self.done(self.call(sk, ProtoCall.CONNECT, addr6=b16(addr), port=port, scope_id=scope_id))

    def sendto(self, sk: int, data: bytes, addr: int | None, port: int = 0, scope_id: int = 0) -> list:
        if addr is None:
            return self.call(sk, ProtoCall.SENDMSG, data, last=True)
        return self.call(sk, ProtoCall.SENDMSG, data, family=AF_INET6, addr6=b16(addr), port=port,
                         scope_id=scope_id, last=True)

    def setsockopt(self, sk: int, level: int, name: int, value: int):
        return self.done(self.call(sk, ProtoCall.SETSOCKOPT, level=level, optname=name, optval=value)).err

    def rcv(self, pkt, ifindex: int = 2) -> list:
        """An IPv6 packet (scapy) as ip6_input hands it up: the whole packet,
        its headers' offsets, the flow as ip parsed it."""
        data = bytes(pkt)
        ip6 = IPv6(data)
        skb = Skb(netns=self.netns, data=data, protocol=ETH_P_IPV6, ifindex=ifindex, network_header=0,
                  transport_header=40, head=40, saddr6=b16(A6(ip6.src)), daddr6=b16(A6(ip6.dst)),
                  ip_proto=ip6.nh, ttl=ip6.hlim, tos=ip6.tc)
        return self.tr.rcv(skb, NOW)

    def rcv4(self, pkt, ifindex: int = 2) -> list:
        """An IPv4 packet (scapy) as ip_local_deliver() hands it up."""
        data = bytes(pkt)
        skb = Skb(netns=self.netns, data=data, protocol=0x0800, ifindex=ifindex, network_header=0,
                  transport_header=(data[0] & 0xF) * 4, head=(data[0] & 0xF) * 4,
                  saddr=ipv4.aton(pkt.src), daddr=ipv4.aton(pkt.dst), ip_proto=data[9], ttl=data[8])
        return self.tr.rcv(skb, NOW)


def downs(actions) -> list:
    return [a.skb for a in actions if type(a) is Down]


def ups(actions) -> list:
    return [a.skb for a in actions if type(a) is Up and a.skb.event.kind != a.skb.event.COMPLETE]
