"""The SDK's connection to the socket service, and gRPC failures turned into
the OSError a program expects (never a gRPC stack trace)."""
import errno
import os
import threading

import grpc

from .v1 import admin_pb2, admin_pb2_grpc, socket_pb2_grpc

_lock = threading.Lock()
_channel = None
_endpoint = None


def endpoint() -> str:
    return os.environ.get("PKTFLOW_ENDPOINT", "localhost:50051")


def channel() -> grpc.Channel:
    global _channel, _endpoint
    ep = endpoint()
    with _lock:
        if _channel is None or _endpoint != ep:
            _channel = grpc.insecure_channel(ep, options=[("grpc.max_receive_message_length", 64 << 20),
                                                          ("grpc.max_send_message_length", 64 << 20)])
            _endpoint = ep
        return _channel


def stub() -> socket_pb2_grpc.SocketStub:
    return socket_pb2_grpc.SocketStub(channel())


def unreachable(e: grpc.RpcError) -> OSError:
    code = e.code() if hasattr(e, "code") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return OSError(errno.ENETDOWN, f"pktflow: cannot reach the socket service at {endpoint()} "
                                       "(is `pktflow up` running? set PKTFLOW_ENDPOINT to point elsewhere)")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimeoutError("timed out")
    return OSError(errno.EIO, f"pktflow: the socket service failed: {code.name if code else e}")


def check(status) -> None:
    """Raises the errno a reply carries as the matching OSError subclass."""
    if status.err:
        msg = os.strerror(status.err)
        if status.detail:
            msg = f"{msg} ({status.detail})"
        raise OSError(status.err, msg)


def call(method, request, timeout=None):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise unreachable(e) from None


def query(layer: str, netns: str, command: str, *args: str, **typed) -> admin_pb2.AdminReply:
    """An Admin query for `layer`, sent to the socket service and passed down; the
    reply as it came, error or not. `typed`: a command's typed request (tc_qdisc=...)."""
    return call(admin_pb2_grpc.AdminStub(channel()).Query,
                admin_pb2.AdminRequest(layer=layer, netns=netns, command=command, args=list(args), **typed),
                timeout=15)


def admin(layer: str, netns: str, command: str, *args: str) -> admin_pb2.AdminReply:
    """query(), with an error reply raised as the OSError of its errno."""
    reply = query(layer, netns, command, *args)
    if reply.err:
        raise OSError(reply.err, reply.detail or os.strerror(reply.err))
    return reply
