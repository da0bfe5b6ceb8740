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
from .services.common.config import LAYERS, MAX_MESSAGE, TLS_VARS, dial
from .v1 import admin_pb2, admin_pb2_grpc, socket_pb2, socket_pb2_grpc

_lock = threading.Lock()
_channels: dict[tuple, grpc.Channel] = {}    # (socket service address, TLS settings) -> its channel
_maps: dict[str, dict] = {}                  # PKTFLOW_ENDPOINT -> the shard map it gave
# This process's session: the socket service keeps a file table per session and
# closes its sockets when the Session stream (held open below) ends.
_session = secrets.token_hex(16)


def _new_process():
    """A forked child is another process: its own session, channels and descriptors."""
    global _session, _nic
    _session, _nic = secrets.token_hex(16), (None, None)
    _channels.clear()
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


def _hold_session(key: tuple, ch: grpc.Channel):
    """Keeps the Session stream open while this process and its channel live."""
    stub = socket_pb2_grpc.SocketStub(ch)
    while _channels.get(key) is ch:
        try:
            for ev in stub.Session(socket_pb2.SessionRequest()):
                for r in ev.ready:            # the polled sockets' readiness (_poll)
                    _poll.apply(_session, r)
        except grpc.RpcError:
            pass
        time.sleep(1.0)


def endpoint() -> str:
    return os.environ.get("PKTFLOW_ENDPOINT", "localhost:50051")


def _dial(ep: str) -> grpc.Channel:
    """The channel to one socket service, with this process's session stream on it
    (one per address and TLS settings: a test may point the SDK at a TLS stack next)."""
    key = (ep,) + tuple(os.environ.get(v, "") for v in TLS_VARS)
    with _lock:
        ch = _channels.get(key)
        if ch is None:
            raw = dial(ep, options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                    ("grpc.max_send_message_length", MAX_MESSAGE),
                                    # a restarted stack is found again within a second
                                    ("grpc.initial_reconnect_backoff_ms", 100),
                                    ("grpc.min_reconnect_backoff_ms", 100),
                                    ("grpc.max_reconnect_backoff_ms", 1000)])
            ch = _channels[key] = grpc.intercept_channel(raw, _SessionMetadata())
            threading.Thread(target=_hold_session, args=(key, ch), daemon=True, name="pktflow-session").start()
        return ch


def shard_map() -> dict:
    """Which socket service serves each host: {"placement": {host: shard}, "sockets":
    [every shard's address]}, asked once of the one at PKTFLOW_ENDPOINT (an unsharded
    stack, or one that cannot say: every host there)."""
    ep = endpoint()
    found = _maps.get(ep)
    if found is None:
        try:
            reply = admin_pb2_grpc.AdminStub(_dial(ep)).Query(
                admin_pb2.AdminRequest(layer="socket", command="shards"), timeout=15)
            found = json.loads(reply.json) if not reply.err else {}
        except grpc.RpcError:
            return {}                 # not up (yet): asked again next time
        _maps[ep] = found
    return found


def forget_stack() -> None:
    """What was learnt of the stack (its shard map, its names): asked again, as the
    stack behind an address may have restarted as another."""
    _maps.clear()
    from . import _netdb
    _netdb.forget()


def endpoint_of(netns: str | None) -> str:
    """The socket service that serves host `netns` (the SDK addresses hosts, not shards)."""
    ep = endpoint()
    if netns:
        m = _maps.get(ep)
        if m is None:
            m = shard_map()
        if m.get("sockets"):
            shard = m["placement"].get(netns)
            if shard is not None and shard < len(m["sockets"]):
                return m["sockets"][shard]
    return ep


def endpoints() -> list[str]:
    """Every shard's socket service (one for an unsharded stack)."""
    return shard_map().get("sockets") or [endpoint()]


def channel(netns: str | None = None) -> grpc.Channel:
    return _dial(endpoint_of(netns))


def stub(netns: str | None = None) -> socket_pb2_grpc.SocketStub:
    """The Socket stub of the host's socket service; its `endpoint` says which."""
    ep = endpoint_of(netns)
    s = socket_pb2_grpc.SocketStub(_dial(ep))
    s.endpoint = ep
    return s


def unreachable(e: grpc.RpcError, at: str | None = None) -> OSError:
    """The OSError for a failed call to the socket service at `at` (PKTFLOW_ENDPOINT's by default)."""
    code = e.code() if hasattr(e, "code") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return OSError(errno.ENETDOWN, f"pktflow: cannot reach the socket service at {at or endpoint()} "
                                       "(is `pktflow up` running? set PKTFLOW_ENDPOINT to point elsewhere)")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimeoutError("timed out")
    return OSError(errno.EIO, f"pktflow: the socket service failed: {code.name if code else e}")


def ready(status) -> None:
    """A reply's readiness of a polled socket, onto its descriptor (_poll)."""
    if type(status) is socket_pb2.Status and status.ready.fd:
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


def call(method, request, timeout=None, at: str | None = None):
    """`method` (of a stub on the channel to `at`, PKTFLOW_ENDPOINT's socket service
    by default) with errors as OSErrors; once more if the call never left."""
    at = at or endpoint()
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            forget_stack()
        if e.code() != grpc.StatusCode.UNAVAILABLE or not _ready(2.0, at):
            raise unreachable(e, at) from None
    try:                    # the call never left (no connection yet): once more, now that there is one
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise unreachable(e, at) from None


def _ready(timeout: float, at: str) -> bool:
    """Whether the channel to the socket service at `at` connects within `timeout`
    (a stack that restarted on the same address: the channel may be between retries)."""
    try:
        grpc.channel_ready_future(_dial(at)).result(timeout=timeout)
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
    """An Admin query for `layer`, sent to the socket service of the host's shard and
    passed down; the reply as it came, error or not. `typed`: a command's typed request
    (tc_qdisc=...). netns "": the first shard's (each_layer() asks every shard)."""
    return _query(endpoint_of(netns), layer, netns, command, *args, **typed)


def _query(at: str, layer: str, netns: str, command: str, *args: str, **typed) -> admin_pb2.AdminReply:
    return call(admin_pb2_grpc.AdminStub(_dial(at)).Query,
                admin_pb2.AdminRequest(layer=layer, netns=netns, command=command, args=list(args), **typed),
                timeout=15, at=at)


def each_layer(netns: str, command: str, *args: str):
    """(layer, its JSON answer) from each of the five layers that answers
    `command` (one that is down or refuses is left out: it shows when it is back);
    for every host (netns ""), each shard's five in turn (answers that name hosts)."""
    for at in [endpoint_of(netns)] if netns else endpoints():
        for layer in LAYERS:
            reply = _query(at, layer, netns, command, *args)
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
