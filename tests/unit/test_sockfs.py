"""Unit tests of the socket room's core (services/socket/sockfs.py): the fd
table, __sock_create()'s errnos, and what each event from transport does to a
socket, as actions (Answer, Wake, Stop, Drop) the shell carries out."""
import errno

import pytest
from pktflow.services.common import topology, uapi
from pktflow.services.common.actions import Drop, Stop
from pktflow.services.socket.sockfs import (TCP_CLOSE_WAIT, TCP_ESTABLISHED, Answer, SockFs, Wake)
from pktflow.services.wire import ipv4
from pktflow.v1.skb_pb2 import ProtoCall, Skb, SockEvent

A = ipv4.aton


@pytest.fixture
def fs():
    return SockFs(topology.load())


def event(sk: int, **fields) -> Skb:
    return Skb(netns="h1", sk=sk, event=SockEvent(**fields))


@pytest.mark.parametrize("netns, family, type_, proto, err", [
    ("nowhere", uapi.AF_INET, uapi.SOCK_DGRAM, 0, errno.ENOENT),
    ("h1", 3, uapi.SOCK_DGRAM, 0, errno.EAFNOSUPPORT),                   # AF_AX25
    ("h1", uapi.AF_INET6, uapi.SOCK_DGRAM, uapi.IPPROTO_ICMP, errno.EPROTONOSUPPORT),
    ("h1", uapi.AF_INET, uapi.SOCK_DGRAM, uapi.IPPROTO_ICMPV6, errno.EPROTONOSUPPORT),
    ("h1", uapi.AF_INET, uapi.SOCK_DGRAM, uapi.IPPROTO_TCP, errno.EPROTONOSUPPORT),
    ("h1", uapi.AF_INET, uapi.SOCK_STREAM, uapi.IPPROTO_UDP, errno.EPROTONOSUPPORT),
    ("h1", uapi.AF_INET, 5, 0, errno.ESOCKTNOSUPPORT),                    # SOCK_SEQPACKET
    ("h1", uapi.AF_PACKET, uapi.SOCK_DGRAM, 0, errno.ESOCKTNOSUPPORT),
])
def test_create_refuses_what_linux_refuses(fs, netns, family, type_, proto, err):
    assert fs.create(netns, family, type_, proto)[0] == err
    assert fs.socks == {}


def test_create_numbers_fds_from_3_and_defaults_the_protocol(fs):
    _, _, udp = fs.create("h1", uapi.AF_INET, uapi.SOCK_DGRAM, 0)
    _, _, tcp = fs.create("h1", uapi.AF_INET, uapi.SOCK_STREAM, 0)
    assert (udp.fd, udp.proto, tcp.fd, tcp.proto, tcp.stream) == (3, uapi.IPPROTO_UDP, 4, uapi.IPPROTO_TCP, True)
    assert fs.socks == {3: udp, 4: tcp}


def test_call_numbers_requests_and_complete_answers_them_with_the_bound_address(fs):
    _, _, s = fs.create("h1", uapi.AF_INET, uapi.SOCK_DGRAM, 0)
    first, second = fs.call(s, ProtoCall.BIND), fs.call(s, ProtoCall.CONNECT)
    assert (first.sk, first.call.op, second.call.req) == (s.fd, ProtoCall.BIND, first.call.req + 1)
    done = event(s.fd, kind=SockEvent.COMPLETE, req=first.call.req, addr=A("10.0.0.1"), port=4242)
    [answer] = fs.ingress(done, 0)
    assert answer == Answer(first.call.req, done.event)
    assert (s.laddr, s.lport, s.bound) == (A("10.0.0.1"), 4242, True)


def test_datagram_is_queued_and_wakes_its_socket(fs):
    _, _, s = fs.create("h1", uapi.AF_INET, uapi.SOCK_DGRAM, 0)
    skb = event(s.fd, kind=SockEvent.DATA_READY, truesize=768)
    assert fs.ingress(skb, 7) == [Stop(skb, "sock_queue_rcv_skb"), Wake(s.fd)]
    assert list(s.rcvq) == [(skb, 7)]


def test_data_for_a_closed_socket_is_dropped_with_the_kernels_reason(fs):
    skb = event(99, kind=SockEvent.DATA_READY)
    assert fs.ingress(skb, 0) == [Drop(skb, "sock_queue_rcv_skb", "SOCKET_CLOSE")]


def test_error_report_sets_sk_err_and_fills_the_error_queue_only_when_asked(fs):
    _, _, s = fs.create("h1", uapi.AF_INET, uapi.SOCK_DGRAM, 0)
    plain = event(s.fd, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED)
    queued = event(s.fd, kind=SockEvent.ERROR_REPORT, err=errno.EHOSTUNREACH, errqueue=True)
    assert fs.ingress(plain, 0) == [Stop(plain, "sk_error_report"), Wake(s.fd)]
    assert (s.sk_err, list(s.errq)) == (errno.ECONNREFUSED, [])
    fs.ingress(queued, 0)
    assert (s.sk_err, list(s.errq)) == (errno.EHOSTUNREACH, [queued])


def test_established_connection_lands_on_the_listeners_accept_queue(fs):
    _, _, parent = fs.create("h1", uapi.AF_INET, uapi.SOCK_STREAM, 0)
    parent.listening = True
    parent.opts[(uapi.SOL_SOCKET, uapi.SO_KEEPALIVE)] = 1
    new = event(40, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, listener=parent.fd,
                addr=A("10.0.0.1"), port=80, peer_addr=A("10.0.0.2"), peer_port=5555)
    assert fs.ingress(new, 0) == [Wake(parent.fd)]
    [child] = parent.accept_q
    assert (child.fd, child.connected, child.rport) == (40, True, 5555)
    assert child.opt(uapi.SOL_SOCKET, uapi.SO_KEEPALIVE) == 1          # inherited, as sk_clone_lock() does
    assert fs.socks[40] is child


def test_connection_for_a_listener_that_is_gone_makes_no_socket(fs):
    new = event(40, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, listener=3)
    assert fs.ingress(new, 0) == []
    assert 40 not in fs.socks


def test_stream_state_changes_connect_and_end_a_socket(fs):
    _, _, s = fs.create("h1", uapi.AF_INET, uapi.SOCK_STREAM, 0)
    s.connecting = True
    fs.ingress(event(s.fd, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, peer_port=80), 0)
    assert (s.connecting, s.connected, s.rport, s.eof) == (False, True, 80, False)
    fs.ingress(event(s.fd, kind=SockEvent.STATE_CHANGE, state=TCP_CLOSE_WAIT), 0)
    assert s.eof
    fs.ingress(event(s.fd, kind=SockEvent.ERROR_REPORT, err=errno.ECONNRESET), 0)
    assert s.sk_err == errno.ECONNRESET


def test_write_space_is_counted_per_stream_socket(fs):
    _, _, s = fs.create("h1", uapi.AF_INET, uapi.SOCK_STREAM, 0)
    assert fs.ingress(event(s.fd, kind=SockEvent.WRITE_SPACE), 0) == [Wake(s.fd)]
    fs.ingress(event(s.fd, kind=SockEvent.WRITE_SPACE), 0)
    assert fs.write_space[s.fd] == 2


def test_close_forgets_the_socket_and_its_unaccepted_children_and_wakes_their_waiters(fs):
    _, _, parent = fs.create("h1", uapi.AF_INET, uapi.SOCK_STREAM, 0)
    parent.listening = True
    fs.ingress(event(40, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, listener=parent.fd), 0)
    actions, release = fs.close(parent)
    assert actions == [Wake(parent.fd), Wake(40)]
    assert (release.sk, release.call.op) == (parent.fd, ProtoCall.RELEASE)
    assert fs.socks == {}
