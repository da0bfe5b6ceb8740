"""The SDK's connection to the socket service, and gRPC failures turned into
the OSError a program expects (never a gRPC stack trace)."""
import errno
import json
import os
import secrets
import threading
import time

import grpc

from . import _poll
from .services.common.config import LAYERS, MAX_MESSAGE, dial
from .v1 import admin_pb2, admin_pb2_grpc, socket_pb2, socket_pb2_grpc

_lock = threading.Lock()
_channel = None
_endpoint = None
# This process's session: the socket service keeps a file table per session and
# closes its sockets when the Session stream (held open below) ends.
_session = secrets.token_hex(16)


def _new_process():
    """A forked child is another process: its own session, channels and descriptors."""
    global _session, _channel, _nic
    _session, _channel, _nic = secrets.token_hex(16), None, (None, None)
    _poll.forget_all()


def session() -> str:
    return _session


os.register_at_fork(after_in_child=_new_process)


class _SessionMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Every call says which session (process) it comes from."""

    def _with_session(self, details):
        return details._replace(metadata=list(details.metadata or ()) + [("pktflow-session", _session)])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_session(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_session(details), request)


def _hold_session(ch: grpc.Channel):
    """Keeps the Session stream open while this process and its channel live."""
    stub = socket_pb2_grpc.SocketStub(ch)
    while _channel is ch:
        try:
            for ev in stub.Session(socket_pb2.SessionRequest()):
                for r in ev.ready:            # the polled sockets' readiness (_poll)
                    _poll.apply(_session, r)
        except grpc.RpcError:
            pass
        time.sleep(1.0)


def endpoint() -> str:
    return os.environ.get("PKTFLOW_ENDPOINT", "localhost:50051")


def channel() -> grpc.Channel:
    global _channel, _endpoint
    ep = endpoint()
    with _lock:
        if _channel is None or _endpoint != ep:
            raw = dial(ep, options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                                     ("grpc.max_send_message_length", MAX_MESSAGE),
                                                     # a restarted stack is found again within a second
                                                     ("grpc.initial_reconnect_backoff_ms", 100),
                                                     ("grpc.min_reconnect_backoff_ms", 100),
                                                     ("grpc.max_reconnect_backoff_ms", 1000)])
            _channel = grpc.intercept_channel(raw, _SessionMetadata())
            _endpoint = ep
            threading.Thread(target=_hold_session, args=(_channel,), daemon=True, name="pktflow-session").start()
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


def ready(status) -> None:
    """A reply's readiness of a polled socket, onto its descriptor (_poll)."""
    if status.ready.fd:
        _poll.apply(_session, status.ready)


def check(status) -> None:
    """Raises the errno a reply carries as the matching OSError subclass
    (after noting the socket's readiness it carries)."""
    ready(status)
    if status.err:
        msg = os.strerror(status.err)
        if status.detail:
            msg = f"{msg} ({status.detail})"
        raise OSError(status.err, msg)


def call(method, request, timeout=None):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE or not _ready(2.0):
            raise unreachable(e) from None
    try:                    # the call never left (no connection yet): once more, now that there is one
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise unreachable(e) from None


def _ready(timeout: float) -> bool:
    """Whether the socket service's channel connects within `timeout` (a stack
    that restarted on the same address: the channel may be between retries)."""
    try:
        grpc.channel_ready_future(channel()).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False


_nic = (None, None)           # (endpoint, channel) of the nic service, for AF_XDP sockets


def nic_endpoint(netns: str) -> str:
    """Where the nic service is: PKTFLOW_NIC_ENDPOINT, else what the socket
    service dials it at (as the SDK learns the stack's layout from it)."""
    ep = os.environ.get("PKTFLOW_NIC_ENDPOINT")
    if ep:
        return ep
    reply = query("socket", netns, "endpoints")
    check(reply)
    return json.loads(reply.json)["nic"]


def nic_endpoint_in_use() -> str:
    return _nic[0] or "?"


def nic_channel(netns: str) -> grpc.Channel:
    """A channel to the nic service (mutual TLS when PKTFLOW_TLS_* is set), shared by the process."""
    global _nic
    ep = nic_endpoint(netns)
    with _lock:
        if _nic[0] != ep:
            _nic = (ep, dial(ep, options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                          ("grpc.max_send_message_length", MAX_MESSAGE)]))
        return _nic[1]


def query(layer: str, netns: str, command: str, *args: str, **typed) -> admin_pb2.AdminReply:
    """An Admin query for `layer`, sent to the socket service and passed down; the
    reply as it came, error or not. `typed`: a command's typed request (tc_qdisc=...)."""
    return call(admin_pb2_grpc.AdminStub(channel()).Query,
                admin_pb2.AdminRequest(layer=layer, netns=netns, command=command, args=list(args), **typed),
                timeout=15)


def each_layer(netns: str, command: str, *args: str):
    """(layer, its JSON answer) from each of the five layers that answers
    `command` (one that is down or refuses is left out: it shows when it is back)."""
    for layer in LAYERS:
        reply = query(layer, netns, command, *args)
        if not reply.err:
            yield layer, json.loads(reply.json or "null")


def watch(events: list[str], netns: str = "", predicate: str = ""):
    """Tracepoint events as the layers see them, filtered there (_watch.Watch):
    iterate it for (time_ns, netns, layer, tracepoint, fields); close it when done."""
    from ._watch import Watch
    return Watch(events, netns, predicate)


def admin(layer: str, netns: str, command: str, *args: str) -> admin_pb2.AdminReply:
    """query(), with an error reply raised as the OSError of its errno."""
    reply = query(layer, netns, command, *args)
    if reply.err:
        raise OSError(reply.err, reply.detail or os.strerror(reply.err))
    return reply
