"""The socket service's system calls (services/socket/server.py) over the
in-process netstack: the shell's own methods (Create, Bind, SendMsg, ...)
called as gRPC would call them, its downward stream replaced by the cores,
so what a socket call does is followed through transport, ip, link, the NICs
and the cables, with no process and no port. The clock moves only when told."""
import asyncio

from pktflow.services.common.actions import AskRoute
from pktflow.services.netstack import Netstack
from pktflow.services.socket.server import SocketShell
from pktflow.services.socket.sockfs import Answer, Wake
from pktflow.v1 import socket_pb2


class Net(Netstack):
    """The netstack with the socket service on top: what transport sends up
    goes through the shell's socket core, and its answers and wake-ups to the
    shell's waiters. IPv6 route questions (16-byte addresses) go to ip's
    route_output6(), as the ip service's RouteOutput answers RouteRequest.daddr6."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.shell = SocketShell(self.topo)
        self.fs = self.shell.fs
        self.shell.downs = {"transport": _Down(self), "link": _Down(self)}

    def _run(self, layer: str, actions: list):
        for act in actions:
            if type(act) is AskRoute and isinstance(act.daddr, bytes):
                reply = self.ip.route_output6(act.netns, int.from_bytes(act.daddr, "big"),
                                              int.from_bytes(act.saddr, "big"))
                self._run("transport", self.tr.route_answer(act.netns, act.daddr, act.saddr, reply, self.now))
            elif type(act) in (Answer, Wake):
                self.shell.on_action(act)
            else:
                super()._run(layer, [act])


class _Down:
    """The shell's stream to transport: each skb runs through the cores at once."""

    def __init__(self, net: Net):
        self.net = net

    def put(self, skb):
        self.net._run("transport", self.net.tr.from_socket(skb, self.net.now))
        self.net.pump()
        return None

    async def room(self, netns: str):
        return None


class _Context:
    def invocation_metadata(self):
        return (("pktflow-session", "test"), ("pktflow-pid", "1"))

    async def abort(self, code, detail):
        raise AssertionError(detail)


CTX = _Context()
_LOOP: list = []


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop for every in-process stack of the session (the shell's waits run on it)."""
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
    return _LOOP[0]


def addr(host: str = "", port: int = 0, scope_id: int = 0, flowinfo: int = 0) -> socket_pb2.SockAddr:
    return socket_pb2.SockAddr(host=host, port=port, scope_id=scope_id, flowinfo=flowinfo)


class Api:
    """The calls the SDK makes, on one in-process stack (synchronous here)."""

    def __init__(self, net: Net | None = None):
        self.net = net or Net()
        self.shell = self.net.shell
        self.loop = _loop()
        self.shell.loop = self.loop

    def _do(self, method, request):
        coro = method(request, CTX)
        try:
            return self.loop.run_until_complete(coro)
        except RuntimeError:        # a socket's __del__ while the loop runs a call: it never started
            coro.close()
            raise

    def socket(self, netns: str, family: int, type_: int, proto: int = 0):
        return self._do(self.shell.Create, socket_pb2.CreateRequest(netns=netns, family=family, type=type_,
                                                                    protocol=proto))

    def fd(self, netns: str, family: int, type_: int, proto: int = 0) -> int:
        r = self.socket(netns, family, type_, proto)
        assert r.status.err == 0, r.status
        return r.fd

    def bind(self, fd: int, sa):
        return self._do(self.shell.Bind, socket_pb2.AddrRequest(fd=fd, addr=sa))

    def connect(self, fd: int, sa, timeout: float = 0.0):
        return self._do(self.shell.Connect, socket_pb2.AddrRequest(fd=fd, addr=sa, timeout=timeout))

    def sendto(self, fd: int, data: bytes, sa=None):
        req = socket_pb2.SendRequest(fd=fd)
        m = req.msgs.add(data=data)
        if sa is not None:
            m.addr.CopyFrom(sa)
        return self._do(self.shell.SendMsg, req)

    def recv(self, fd: int, flags: int = 0, bufsize: int = 65536):
        return self._do(self.shell.RecvMsg, socket_pb2.RecvRequest(fd=fd, max=1, bufsize=bufsize, timeout=0.0,
                                                                   flags=flags))

    def setsockopt(self, fd: int, level: int, name: int, value: int):
        return self._do(self.shell.SetSockOpt, socket_pb2.SockOptRequest(fd=fd, level=level, optname=name,
                                                                         value=value)).status.err

    def getsockopt(self, fd: int, level: int, name: int):
        r = self._do(self.shell.GetSockOpt, socket_pb2.SockOptRequest(fd=fd, level=level, optname=name))
        return r.status.err, (int.from_bytes(r.bvalue[:4], "little", signed=True) if r.bvalue else r.value)

    def getsockname(self, fd: int):
        return self._do(self.shell.GetSockName, socket_pb2.FdRequest(fd=fd))

    def getpeername(self, fd: int):
        return self._do(self.shell.GetPeerName, socket_pb2.FdRequest(fd=fd))

    def listen(self, fd: int, backlog: int = 16):
        return self._do(self.shell.Listen, socket_pb2.FdRequest(fd=fd, how=backlog)).err

    def accept(self, fd: int):
        return self._do(self.shell.Accept, socket_pb2.FdRequest(fd=fd, timeout=0.0))

    def close(self, fd: int):
        return self._do(self.shell.Close, socket_pb2.FdRequest(fd=fd)).err


class _Method:
    """A stub method the SDK calls (method(request, timeout=...), method.future(request)),
    answered by the shell's method of that name on the in-process stack."""

    def __init__(self, api: Api, name: str):
        self.api, self.name = api, name

    def __call__(self, request, timeout=None, **_):
        return self.api._do(getattr(self.api.shell, self.name), request)

    def future(self, request, **_):
        result = self(request)

        class Done:
            def result(self, timeout=None):
                return result

            def cancel(self):
                return False
        return Done()


class Stub:
    """pktflow's SocketStub, in-process (the SDK's _client.stub())."""
    endpoint = "in-process"

    def __init__(self, api: Api):
        self.api = api

    def __getattr__(self, name: str):
        return _Method(self.api, name)


def sdk_on(monkeypatch, api: Api | None = None) -> Api:
    """Points the SDK (import pktflow) at an in-process stack: its socket calls
    and the socket service's admin queries."""
    from pktflow import _client
    from pktflow.v1 import admin_pb2
    api = api or Api()
    monkeypatch.setattr(_client, "stub", lambda netns=None: Stub(api))
    monkeypatch.setattr(_client, "admin", lambda layer, netns, command, *args: api.shell.admin(
        admin_pb2.AdminRequest(layer=layer, netns=netns, command=command, args=list(args))))
    return api
