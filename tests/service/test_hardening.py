"""The stack defends itself: an impostor dialling a layer's Exchange stream
(any local process could) gets UNAUTHENTICATED and the stack keeps working;
fields beyond their range are refused where they enter; a core that fails on
one skb costs that skb, not the stream; a NaN timeout is refused."""
import grpc
import pytest

import pktflow
from pktflow.v1 import layers_pb2_grpc, socket_pb2_grpc

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
def test_an_impostor_layer_is_refused_and_the_stack_keeps_working(stack, secret):
    metadata = (("pktflow-layer", "transport"), ("pktflow-instance", "impostor"))
    if secret:
        metadata += (("pktflow-secret", secret),)
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['ip']}") as ch:
        call = layers_pb2_grpc.LayerStub(ch).Exchange(iter(()), metadata=metadata, timeout=5)
        with pytest.raises(grpc.RpcError) as e:
            next(call)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    r = pktflow.ping("10.0.2.10", netns="h1", count=2, interval=0.05)
    assert r.received == 2                         # the real transport's stream was not replaced


def test_fields_beyond_their_range_are_refused_where_they_enter(stack):
    """A port is 16 bits; the wire's uint32 is not trusted: bind, connect and
    sendto with port 70000 through raw gRPC are EINVAL at the socket service,
    and nothing downstream notices."""
    from pktflow import _client
    from pktflow.v1 import socket_pb2
    st = _client.stub()
    for type_ in (pktflow.SOCK_DGRAM, pktflow.SOCK_STREAM):
        fd = st.Create(socket_pb2.CreateRequest(netns="h1", family=pktflow.AF_INET, type=type_)).fd
        far = socket_pb2.SockAddr(host="10.0.2.10", port=70000)
        assert st.Bind(socket_pb2.AddrRequest(fd=fd, addr=far)).status.err == 22
        assert st.Connect(socket_pb2.AddrRequest(fd=fd, addr=far, timeout=1)).status.err == 22
        if type_ == pktflow.SOCK_DGRAM:
            sent = st.SendMsg(socket_pb2.SendRequest(fd=fd, msgs=[socket_pb2.Datagram(data=b"x", addr=far)]))
            assert sent.status.err == 22
        st.Close(socket_pb2.FdRequest(fd=fd))
    assert pktflow.ping("10.0.2.10", netns="h1").received == 1


def test_a_core_that_fails_on_one_skb_costs_that_skb_only():
    from pktflow.services.common import topology
    from pktflow.services.ip.server import IpShell
    from pktflow.v1 import layers_pb2, skb_pb2
    shell = IpShell(topology.load())
    shell.ip.ip_rcv = lambda skb, now: 1 / 0
    shell.on_ingress_batch(layers_pb2.SkbBatch(skbs=[skb_pb2.Skb(netns="h1", data=b"x")] * 3))
    assert shell.drops[("h1", "NOT_SPECIFIED")] == 3 and shell.core_errors == 3


def test_a_nan_timeout_is_refused_as_pythons_socket_does(stack):
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
        with pytest.raises(ValueError, match="NaN"):
            s.settimeout(float("nan"))


def test_a_replaced_stream_is_noticed_and_dialled_again(stack):
    """A restarted upper layer (here: a stream that shows the secret) takes the
    old stream's place; the lower layer tells the old one so, and the real
    transport dials again: the stack works within a second, not never."""
    from conftest import eventually
    metadata = (("pktflow-layer", "transport"), ("pktflow-instance", "restarted"),
                ("pktflow-secret", stack.env["PKTFLOW_SECRET"]))
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['ip']}") as ch:
        call = layers_pb2_grpc.LayerStub(ch).Exchange(iter(()), metadata=metadata)
        next(call)                                    # the greeting: this stream is now ip's transport
        call.cancel()
    assert eventually(lambda: pktflow.ping("10.0.2.10", netns="h1", timeout=0.3).received, timeout=10)


def test_bad_metadata_is_invalid_argument_not_a_crash(stack):
    from pktflow import _client
    from pktflow.v1 import socket_pb2
    st = _client.stub()
    fd = st.Create(socket_pb2.CreateRequest(netns="h1", family=pktflow.AF_INET, type=pktflow.SOCK_DGRAM)).fd
    request = socket_pb2.SendRequest(fd=fd, msgs=[socket_pb2.Datagram(data=b"x", addr=socket_pb2.SockAddr(
        host="10.0.2.10", port=9))])
    with pytest.raises(grpc.RpcError) as e:
        st.SendMsg(request, metadata=(("pktflow-pid", "abc"),))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st.Close(socket_pb2.FdRequest(fd=fd))


def test_a_socket_belongs_to_the_session_that_made_it(stack):
    """Descriptors are per process: another session's fd is EBADF here."""
    from pktflow import _client
    from pktflow.v1 import socket_pb2
    st = socket_pb2_grpc.SocketStub(grpc.insecure_channel(_client.endpoint()))
    mine, theirs = (("pktflow-session", "a" * 32),), (("pktflow-session", "b" * 32),)
    fd = st.Create(socket_pb2.CreateRequest(netns="h1", family=pktflow.AF_INET, type=pktflow.SOCK_DGRAM),
                   metadata=mine).fd
    assert st.Close(socket_pb2.FdRequest(fd=fd), metadata=theirs).err == 9          # EBADF
    assert st.Close(socket_pb2.FdRequest(fd=fd), metadata=mine).err == 0


def test_a_clients_sockets_close_when_the_client_process_dies(stack):
    """A process that bound a port and was killed: its socket closes (its
    session's stream ended), so the port is free again."""
    import os
    import signal
    import subprocess
    import sys
    from conftest import eventually
    child = subprocess.Popen([sys.executable, "-c", """
import pktflow, sys, time
socks = [pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") for _ in range(50)]
socks[0].bind(("10.0.1.10", 7777))
print("bound", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True, env=os.environ | {"PKTFLOW_ENDPOINT": stack.endpoint})
    try:
        assert child.stdout.readline().strip() == "bound"
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
            with pytest.raises(OSError):
                s.bind(("10.0.1.10", 7777))
        child.send_signal(signal.SIGKILL)
        child.wait(10)

        def free():
            with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as s:
                try:
                    s.bind(("10.0.1.10", 7777))
                    return True
                except OSError:
                    return False
        assert eventually(free, timeout=10)
    finally:
        child.kill()
        child.wait()
