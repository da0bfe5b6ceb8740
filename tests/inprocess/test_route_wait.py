"""Transport's route cache: a call that needs a route ip has not given yet
waits (AskRoute) while other sockets go on; the answer resumes exactly the
calls that waited, in order. No gRPC: the cores driven by hand."""
import errno

from pktflow.services.common import topology
from pktflow.services.common.actions import AskRoute, Down, Up
from pktflow.services.ip.stack import Ip
from pktflow.services.transport.stack import Transport
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall, Skb

H2, R1 = ipv4.aton("10.0.2.10"), ipv4.aton("10.0.1.1")
NOWHERE = ipv4.aton("203.0.113.9")          # r1 has no route there
NOW = 1_000_000_000


class Stack:
    def __init__(self, netns: str = "h1"):
        topo = topology.load()
        self.netns = netns
        self.tr, self.ip = Transport(topo), Ip(topo)
        self.req = 0

    def call(self, sk: int, op, **fields) -> list:
        self.req += 1
        data = fields.pop("data", b"")
        call = ProtoCall(op=op, req=self.req, **fields)
        return self.tr.from_socket(Skb(netns=self.netns, sk=sk, data=data, call=call), NOW)

    def send(self, sk: int, daddr: int, data: bytes) -> list:
        self.req += 1
        call = ProtoCall(op=ProtoCall.SENDMSG, req=self.req, addr=daddr, port=9, last=True)
        return self.tr.from_socket(Skb(netns=self.netns, sk=sk, data=data, call=call), NOW)

    def answer(self, ask: AskRoute) -> list:
        return self.tr.route_answer(ask.netns, ask.daddr, ask.saddr,
                                    self.ip.route_output(ask.netns, ask.daddr, ask.saddr), NOW)


def udp(st: Stack, sk: int) -> int:
    [done] = st.call(sk, ProtoCall.CREATE, type=2, protocol=17)
    assert done.skb.event.err == 0
    return sk


def sent(actions) -> list[bytes]:
    return [a.skb.data[8:] for a in actions if type(a) is Down]


def completions(actions) -> list[tuple[int, int]]:
    return [(a.skb.event.req, a.skb.event.err) for a in actions
            if type(a) is Up and a.skb.event.kind == a.skb.event.COMPLETE]


def test_a_call_waits_for_its_route_and_other_sockets_go_on():
    st = Stack()
    a, b = udp(st, 1), udp(st, 2)
    [ask] = st.send(a, H2, b"a1")
    assert ask == AskRoute("h1", H2, 0)
    assert st.send(a, H2, b"a2") == []                 # behind a1, in order, no second question
    assert st.send(b, H2, b"b1") == []                 # same route: waits for the same answer
    answered = st.answer(ask)
    assert sent(answered) == [b"a1", b"a2", b"b1"]
    assert [err for _, err in completions(answered)] == [0, 0, 0]
    assert sent(st.send(b, H2, b"b2")) == [b"b2"]      # cached now: no question


def test_only_the_waiting_socket_waits():
    st = Stack()
    a, b = udp(st, 1), udp(st, 2)
    st.answer(st.send(b, R1, b"warm")[0])              # b's route is known
    [ask] = st.send(a, H2, b"a1")
    assert sent(st.send(b, R1, b"b1")) == [b"b1"]      # b is not held behind a
    assert sent(st.answer(ask)) == [b"a1"]


def test_an_error_route_is_asked_again_for_each_send():
    """Linux looks up the route on every send to an unroutable address, and
    counts IpOutNoRoutes each time; a cached error would hide the second."""
    st = Stack("r1")                                    # r1 has no default route
    a = udp(st, 1)
    for _ in range(2):
        [ask] = st.send(a, NOWHERE, b"x")
        [(_, err)] = completions(st.answer(ask))
        assert err == errno.ENETUNREACH
    assert st.ip.netns["r1"].mib["IpOutNoRoutes"] == 2


def test_a_call_that_fails_before_routing_asks_nothing():
    st = Stack()
    [done] = st.call(5, ProtoCall.CREATE, type=1, protocol=0)             # TCP
    assert completions(st.call(5, ProtoCall.CONNECT, addr=H2, port=0)) == [(st.req, errno.EINVAL)]
    a = udp(st, 1)
    assert completions(st.call(a, ProtoCall.SENDMSG, data=b"x", last=True)) == [(st.req, errno.EDESTADDRREQ)]


def test_a_tcp_connect_resumes_with_its_syn():
    st = Stack()
    st.call(5, ProtoCall.CREATE, type=1, protocol=0)
    [ask] = st.call(5, ProtoCall.CONNECT, addr=H2, port=80)
    out = st.answer(ask)
    [syn] = [a for a in out if type(a) is Down]
    assert syn.fn == "tcp_connect" and completions(out) == [(st.req, errno.EINPROGRESS)]


def test_a_sockets_cached_route_spares_ip_a_second_lookup_until_the_fib_changes():
    """sk_dst_cache: a datagram carries the route its socket looked up; ip's
    ip_queue_xmit() uses it while the namespace's FIB generation is the one
    it came from (__sk_dst_check()), and routes again once it is not."""
    st = Stack()
    a = udp(st, 1)
    [ask] = st.send(a, H2, b"x")
    [down] = [act for act in st.answer(ask) if type(act) is Down]
    ns = st.ip.netns["h1"]
    dst = down.skb.dst
    assert (dst.oif, dst.nexthop, dst.genid) == (2, R1, ns.fib.genid)
    # a dst that says something else than the FIB: ip believes it while it is current ...
    down.skb.dst.nexthop = ipv4.aton("10.0.1.99")
    [out] = st.ip.from_transport(Skb.FromString(down.skb.SerializeToString()), NOW)
    assert (out.skb.ifindex, out.skb.nexthop) == (2, ipv4.aton("10.0.1.99"))
    # ... and routes again when the FIB has changed since
    ns.fib.genid += 1
    [out] = st.ip.from_transport(Skb.FromString(down.skb.SerializeToString()), NOW)
    assert (out.skb.ifindex, out.skb.nexthop) == (2, R1)
