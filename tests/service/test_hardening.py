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


# Codes a well-formed refusal may carry; UNKNOWN or INTERNAL means a handler raised.
CLEAN = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}


def _random_message(cls, rng, depth: int = 0):
    """A message of type `cls` with every field at a random, often extreme, value."""
    from google.protobuf.descriptor import FieldDescriptor as F
    from google.protobuf.message_factory import GetMessageClass
    msg = cls()
    for f in cls.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        n = rng.randint(1, 3) if f.is_repeated else 1
        for _ in range(n):
            if f.type == F.TYPE_MESSAGE:
                if depth > 2:
                    continue
                value = _random_message(GetMessageClass(f.message_type), rng, depth + 1)
            elif f.type == F.TYPE_ENUM:
                value = rng.choice([v.number for v in f.enum_type.values])
            elif f.type in (F.TYPE_STRING,):
                value = rng.choice(["", "h1", "h2", "r1", "eth0", "10.0.2.10", "::1", "\x00", "é" * 300,
                                    "255.255.255.255", "-1", "1e999"])
            elif f.type == F.TYPE_BYTES:
                value = rng.randbytes(rng.choice([0, 1, 3, 16, 70000]))
            elif f.type == F.TYPE_BOOL:
                value = rng.random() < 0.5
            elif f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
                value = rng.choice([0.0, -1.0, 0.001, 1e308, float("inf"), float("nan")])
            else:
                bits = 64 if f.type in (F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_SINT64, F.TYPE_FIXED64,
                                        F.TYPE_SFIXED64) else 32
                unsigned = f.type in (F.TYPE_UINT32, F.TYPE_UINT64, F.TYPE_FIXED32, F.TYPE_FIXED64)
                lo, hi = (0, 2 ** bits - 1) if unsigned else (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
                value = rng.choice([lo, hi, 0, 1, 2, 65535, 65536, rng.randint(lo, hi)])
            if f.is_repeated:
                getattr(msg, f.name).append(value) if f.type != F.TYPE_MESSAGE else \
                    getattr(msg, f.name).add().CopyFrom(value)
            elif f.type == F.TYPE_MESSAGE:
                getattr(msg, f.name).CopyFrom(value)
            else:
                setattr(msg, f.name, value)
    return msg


def test_garbage_on_every_rpc_gets_a_clear_answer_and_breaks_nothing(stack):
    """Every method of every layer's services, called with random bytes and with
    messages whose fields hold random and extreme values (on a real socket of
    ours, and on none): each answer is a reply or a clean refusal, never
    UNKNOWN or INTERNAL; the stack still works after, and at the end of the
    session no service has logged a traceback (tests/conftest.py)."""
    import contextlib
    import random
    from google.protobuf.message_factory import GetMessageClass
    from grpc_health.v1 import health_pb2
    from pktflow import _client
    from pktflow.v1 import admin_pb2, layers_pb2, socket_pb2, xsk_pb2
    rng = random.Random(15)
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    stubs = [(layer, f"{stack.host}:{port}") for layer, port in stack.ports.items()]
    stubs.append(("tracestore", f"{stack.host}:{stack.otlp_port}"))
    admin, health = ("pktflow.v1.Admin", admin_pb2), ("grpc.health.v1.Health", health_pb2)
    served = {"socket": [admin, health, ("pktflow.v1.Socket", socket_pb2)], "ip": [admin, health, ("pktflow.v1.Ip",
              layers_pb2)], "nic": [admin, health, ("pktflow.v1.Xsk", xsk_pb2)],
              "tracestore": [health, ("opentelemetry.proto.collector.trace.v1.TraceService", trace_service_pb2)]}
    mine = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1")
    calls = 0
    try:
        for layer, address in stubs:
            # the socket service through the SDK's channel: calls come from our session, as a client's do
            with contextlib.nullcontext(_client.channel()) if layer == "socket" else grpc.insecure_channel(address) \
                    as ch:
                for name, module in served.get(layer, [admin, health]):
                    desc = module.DESCRIPTOR.services_by_name[name.rsplit(".", 1)[1]]
                    for m in desc.methods:
                        path = f"/{name}/{m.name}"
                        call = (ch.unary_stream if m.server_streaming else ch.unary_unary)(path)
                        for i in range(24):
                            if i < 8:
                                body = rng.randbytes(rng.randint(1, 64))
                            else:
                                req = _random_message(GetMessageClass(m.input_type), rng)
                                if hasattr(req, "fd") and i % 2:
                                    req.fd = mine._fd          # the service's number for it
                                if name == "pktflow.v1.Admin" and getattr(req, "command", "") == "tc":
                                    req.netns = "nowhere"          # not a qdisc on the shared stack's cables
                                body = req.SerializeToString()
                            calls += 1
                            try:
                                r = call(body, timeout=1)
                                if m.server_streaming:
                                    next(iter(r), None)
                            except grpc.RpcError as e:
                                assert e.code() in CLEAN, (layer, path, body[:80], e.code(), e.details())
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['ip']}") as ch:
            md = (("pktflow-layer", "transport"), ("pktflow-secret", stack.env["PKTFLOW_SECRET"]))
            exchange = ch.stream_stream("/pktflow.v1.Layer/Exchange")
            with pytest.raises(grpc.RpcError) as e:
                for _ in exchange(iter([b"\xff\xff\xff"]), metadata=md, timeout=5):
                    pass
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        mine.close()
    assert calls > 500
    from conftest import eventually
    assert eventually(lambda: pktflow.ping("10.0.2.10", netns="h1", timeout=0.3).received, timeout=10)


def test_a_message_over_the_limit_is_resource_exhausted(stack):
    from pktflow.services.common.config import MAX_MESSAGE
    with grpc.insecure_channel(stack.endpoint, options=[("grpc.max_send_message_length", -1)]) as ch:
        call = ch.unary_unary("/pktflow.v1.Socket/SendMsg")
        with pytest.raises(grpc.RpcError) as e:
            call(b"\x0a" + b"\xff" * 4 + b"\x1f" + bytes(MAX_MESSAGE), timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert pktflow.ping("10.0.2.10", netns="h1").received == 1
