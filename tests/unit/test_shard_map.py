"""The SDK addresses hosts, not shards (_client): it asks the socket service at
PKTFLOW_ENDPOINT for the shard map once, then sends each call to the socket
service of the host it names. Here the socket services are fake channels that
record what reaches them; every stub and interceptor in between is the SDK's own."""
import errno
import json
import threading

import grpc
import pytest

from pktflow import _client, dropwatch, socket as psocket, AF_INET, SOCK_DGRAM
from pktflow.services.common.config import LAYERS
from pktflow.v1 import admin_pb2, socket_pb2

A, B, OTHER = "shard0:50051", "shard1:50151", "elsewhere:50051"
SHARDED = {"shard": 0, "placement": {"h1": 0, "r1": 1, "h2": 1}, "sockets": [A, B]}
UNSHARDED = {"shard": 0, "placement": {"h1": 0, "r1": 0, "h2": 0}, "sockets": []}


class Down(grpc.RpcError, grpc.Call):
    """What a call to a socket service that is not up raises."""

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection refused"

    def result(self, timeout=None):
        raise self

    def __getattr__(self, name):            # the rest of grpc.Call: not asked for here
        raise AttributeError(name)


class Method:
    """One method of a fake socket service: records (endpoint, method, request, metadata)."""

    def __init__(self, svc, name, deserialize):
        self.svc, self.name, self.deserialize = svc, name, deserialize

    def __call__(self, request, timeout=None, metadata=None, **_):
        self.svc.calls.append((self.svc.ep, self.name, request, dict(metadata or ())))
        if self.svc.down:
            raise Down()
        answer = self.svc.answers.get(self.name)
        return answer(self.svc.ep, request) if answer else self.deserialize(b"")

    def with_call(self, request, **kw):
        return self(request, **kw), None


class Service(grpc.Channel):
    """A channel to one fake socket service (`down`: every call fails UNAVAILABLE)."""

    def __init__(self, ep, answers, down=False):
        self.ep, self.answers, self.down, self.calls = ep, answers, down, []
        self.gone = threading.Event()

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, *_, **__):
        return Method(self, method.rsplit("/", 1)[-1], response_deserializer)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, *_, **__):
        name = method.rsplit("/", 1)[-1]

        def stream(request, timeout=None, metadata=None, **_):
            self.calls.append((self.ep, name, request, dict(metadata or ())))
            return Stream(self, name)
        return stream

    def stream_unary(self, *a, **kw):
        raise NotImplementedError

    stream_stream = stream_unary

    def subscribe(self, *a, **kw):
        pass

    def unsubscribe(self, *a, **kw):
        pass

    def close(self):
        self.gone.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Stream:
    """A server stream: Watch says at once that it watches; Session stays open."""

    def __init__(self, svc, name):
        self.svc, self.name, self.cancelled = svc, name, threading.Event()

    def __iter__(self):
        if self.name == "Watch":
            yield admin_pb2.TraceEvents()
        while not (self.cancelled.wait(0.05) or self.svc.gone.is_set()):
            pass

    def cancel(self):
        self.cancelled.set()


def admin_answer(maps):
    """Query: 'shards' from the map of that endpoint (none: an error reply, as an
    old socket service would give), the rest a JSON naming who answered."""
    def answer(ep, req):
        if req.command == "shards":
            m = maps.get(ep)
            return admin_pb2.AdminReply(json=json.dumps(m)) if m is not None else \
                admin_pb2.AdminReply(err=errno.EINVAL, detail="unknown command")
        if req.netns and req.netns not in ("h1", "r1", "h2"):
            return admin_pb2.AdminReply(err=errno.ENOENT, detail=f"no host {req.netns!r}")
        if req.command == "dropwatch":      # each shard's layers know their own hosts' drops
            return admin_pb2.AdminReply(json=json.dumps([[ns, "NO_SOCKET", f"{req.layer}_rcv", 1]
                                                         for ns, k in SHARDED["placement"].items()
                                                         if SHARDED["sockets"][k] == ep]))
        return admin_pb2.AdminReply(json=json.dumps({"ep": ep, "layer": req.layer}))
    return answer


def create_answer(ep, req):
    if req.netns not in ("h1", "r1", "h2"):
        return socket_pb2.FdReply(status=socket_pb2.Status(err=errno.ENOENT, detail=f"no host {req.netns!r}"))
    return socket_pb2.FdReply(fd=3 + (1 << 48 if ep == B else 0))


@pytest.fixture
def net(monkeypatch):
    """Three fake socket services (two shards of one stack, and another stack);
    the SDK's channels and maps as a new process has them."""
    maps = {A: SHARDED, B: SHARDED, OTHER: UNSHARDED}
    answers = {"Query": admin_answer(maps), "Create": create_answer}
    services = {ep: Service(ep, answers) for ep in (A, B, OTHER)}
    monkeypatch.setattr(_client, "_channels", {})
    monkeypatch.setattr(_client, "_maps", {})
    monkeypatch.setattr(_client, "dial", lambda ep, options=(): services[ep])
    monkeypatch.setenv("PKTFLOW_ENDPOINT", A)
    services["maps"] = maps
    yield services
    for svc in (services[ep] for ep in (A, B, OTHER)):
        svc.close()                                   # the session threads end


def sent(svc, name):
    return [req for _, method, req, _ in svc.calls if method == name]


def shard_queries(svc):
    return [r for r in sent(svc, "Query") if r.command == "shards"]


def test_a_socket_is_made_by_its_hosts_shard_and_keeps_using_it(net):
    s = psocket(AF_INET, SOCK_DGRAM, netns="h2")
    assert [r.netns for r in sent(net[B], "Create")] == ["h2"] and not sent(net[A], "Create")
    assert s._fd >> 48 == 1                          # shard 1's numbers
    s.bind(("10.0.2.10", 7))
    s.close()
    assert [r.fd for r in sent(net[B], "Bind")] == [s._fd] and [r.fd for r in sent(net[B], "Close")] == [s._fd]
    with psocket(AF_INET, SOCK_DGRAM, netns="h1") as t:
        t.bind(("10.0.1.10", 7))
    assert [r.netns for r in sent(net[A], "Create")] == ["h1"] and len(sent(net[A], "Bind")) == 1
    assert len(sent(net[B], "Bind")) == 1


def test_the_map_is_asked_once_of_the_endpoint(net):
    for host in ("h1", "h2", "r1", "h2"):
        _client.stub(host)
        _client.query("ip", host, "counters")
    assert len(shard_queries(net[A])) == 1 and not shard_queries(net[B])
    assert [r.netns for r in sent(net[B], "Query")] == ["h2", "r1", "h2"]
    assert [r.netns for r in sent(net[A], "Query") if r.command != "shards"] == ["h1"]


def test_an_unknown_host_is_still_file_not_found(net):
    """A host the map does not name goes to PKTFLOW_ENDPOINT's service, which says ENOENT."""
    with pytest.raises(FileNotFoundError):
        psocket(AF_INET, SOCK_DGRAM, netns="h9")
    with pytest.raises(FileNotFoundError):
        _client.admin("ip", "h9", "counters")
    assert [r.netns for r in sent(net[A], "Create")] == ["h9"] and not net[B].calls


def test_every_shard_holds_a_session_stream_with_the_process_session(net):
    psocket(AF_INET, SOCK_DGRAM, netns="h1").close()
    psocket(AF_INET, SOCK_DGRAM, netns="h2").close()
    for svc in (net[A], net[B]):
        sessions = [md for _, method, _, md in svc.calls if method == "Session"]
        for _ in range(100):
            if sessions:
                break
            threading.Event().wait(0.02)
            sessions = [md for _, method, _, md in svc.calls if method == "Session"]
        assert [md["pktflow-session"] for md in sessions] == [_client.session()]
        assert {md["pktflow-session"] for _, _, _, md in svc.calls} == {_client.session()}


def test_an_unsharded_stack_gets_everything_at_one_lookup(net, monkeypatch):
    monkeypatch.setenv("PKTFLOW_ENDPOINT", OTHER)
    for host in ("h1", "h2", "nowhere", ""):
        _client.stub(host)
        _client.query("ip", host, "counters")
    assert _client.endpoints() == [OTHER]
    assert len(shard_queries(net[OTHER])) == 1 and not net[A].calls and not net[B].calls


def test_a_socket_service_without_the_query_is_one_shard(net, monkeypatch):
    """An older socket service refuses 'shards': every host is there, asked once."""
    net["maps"].pop(OTHER)
    monkeypatch.setenv("PKTFLOW_ENDPOINT", OTHER)
    _client.query("ip", "h2", "counters")
    _client.query("ip", "h1", "counters")
    assert _client.endpoints() == [OTHER] and len(shard_queries(net[OTHER])) == 1


def test_a_stack_not_up_is_asked_again_later(net, monkeypatch):
    monkeypatch.setattr(_client, "_ready", lambda timeout, at: False)  # no connection comes: no retry
    net[A].down = True
    with pytest.raises(OSError) as e:
        _client.query("ip", "h2", "counters")
    assert e.value.errno == errno.ENETDOWN
    net[A].down = False
    assert json.loads(_client.admin("ip", "h2", "counters").json)["ep"] == B
    assert len(shard_queries(net[A])) == 2


def test_a_shard_that_is_down_is_waited_for_and_named(net, monkeypatch):
    """A call to shard 1's host waits for shard 1's connection (not PKTFLOW_ENDPOINT's)
    before its one retry, and the error names shard 1's address."""
    waited = []
    monkeypatch.setattr(_client, "_ready", lambda timeout, at: waited.append(at))      # falsy: no retry
    s = psocket(AF_INET, SOCK_DGRAM, netns="h2")
    net[B].down = True
    with pytest.raises(OSError) as e:
        s.bind(("10.0.2.10", 7))
    assert e.value.errno == errno.ENETDOWN and f"socket service at {B} " in str(e.value)
    with pytest.raises(OSError) as e:
        _client.query("ip", "r1", "counters")
    assert f"socket service at {B} " in str(e.value) and waited == [B, B]


def test_each_endpoint_has_its_own_map(net, monkeypatch):
    _client.query("ip", "h2", "counters")
    monkeypatch.setenv("PKTFLOW_ENDPOINT", OTHER)
    _client.query("ip", "h2", "counters")
    assert [r.netns for r in sent(net[B], "Query")] == ["h2"]
    assert [r.netns for r in sent(net[OTHER], "Query") if r.command != "shards"] == ["h2"]


def test_every_host_asks_every_shards_layers(net):
    answers = list(_client.each_layer("", "perf", "stop"))
    assert [(a["ep"], layer) for layer, a in answers] == [(ep, layer) for ep in (A, B) for layer in LAYERS]
    assert [a["ep"] for _, a in _client.each_layer("h2", "perf", "stop")] == [B] * len(LAYERS)
    drops = dropwatch.snapshot("")
    assert {ns for ns, *_ in drops} == {"h1", "r1", "h2"} and len(drops) == 3 * len(LAYERS)


def test_a_watch_opens_the_layers_of_the_hosts_shard_or_of_every_shard(net):
    with _client.watch(["skb:kfree_skb"], "h2"):
        pass
    assert [r.layer for r in sent(net[B], "Watch")] == list(LAYERS) and not sent(net[A], "Watch")
    with _client.watch(["skb:kfree_skb"]):
        pass
    assert [r.layer for r in sent(net[A], "Watch")] == list(LAYERS)
    assert [r.layer for r in sent(net[B], "Watch")] == list(LAYERS) * 2
