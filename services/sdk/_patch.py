"""Python's socket module routed to an emulated host, for programs that were
written for the real one (what `ip netns exec` does for a process, inside it):

    pktflow.patch("h1")                  # this process, from now on
    with pktflow.netns("h1"): ...        # for the block, then as before

While patched, socket.socket(AF_INET | AF_INET6 | AF_PACKET, ...) makes a
pktflow socket on that host (with Python's defaults: AF_INET, SOCK_STREAM;
SOCK_NONBLOCK and SOCK_CLOEXEC taken as Linux takes them), and the resolver
(getaddrinfo, gethostbyname(_ex), gethostbyaddr, getnameinfo) answers with the
stack's names. Everything built on them in the standard library
(create_connection, create_server, http.client, urllib, socketserver,
http.server, asyncio, selectors) follows unchanged. What is not networking
stays the process's own, as in a network namespace: AF_UNIX sockets,
socketpair(), descriptors from elsewhere (socket(fileno=n) of a real socket).
TLS works both ways: ssl.SSLContext.wrap_socket() on a pktflow socket runs
over the socket's calls (_ssl), as asyncio's TLS does.

The routing is process-wide (every thread, asyncio's executors), as a network
namespace is per process; netns() blocks nest."""
import contextlib
import errno
import os
import socket as _std
import threading

from . import _netdb, _poll, _socket
from .services.common.uapi import AF_INET, AF_INET6, AF_PACKET, SOCK_STREAM

_EMULATED = (AF_INET, AF_INET6, AF_PACKET)
_RESOLVER = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")
_ORIGINAL = {name: getattr(_std, name) for name in ("socket", "SocketType", "socketpair") + _RESOLVER}
_lock = threading.RLock()
_hosts: list[str] = []             # the patch's stack: the innermost netns() last


def current() -> str | None:
    """The emulated host this process's socket module is routed to (None: not routed)."""
    return _hosts[-1] if _hosts else None


class _SocketType(type):
    """isinstance(s, socket.socket) holds for every socket of the process: pktflow's
    (accept() and dup() make them too) and the real ones (AF_UNIX, asyncio's self-pipe)."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, (_socket.socket, _ORIGINAL["socket"]))

    def __subclasscheck__(cls, sub):
        return issubclass(sub, (_socket.socket, _ORIGINAL["socket"]))


class socket(_socket.socket, metaclass=_SocketType):
    """socket.socket while patched: Python's signature, a pktflow socket on the current host."""

    def __new__(cls, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is not None:
            if _poll.lookup(fileno) is None:           # a descriptor of the process's own
                return _ORIGINAL["socket"](family, type, proto, fileno)
        elif family not in (-1, *_EMULATED):
            return _ORIGINAL["socket"](family, type, proto)
        return object.__new__(cls)

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        netns = current()
        if netns is None:
            raise OSError(errno.ENETDOWN, "pktflow: the socket module is no longer routed to an emulated host")
        if fileno is not None:
            d = _poll.lookup(fileno)
            super().__init__(netns=netns, fileno=d.fd)
            if fileno != d.fd:                   # socket.fromfd()'s dup: the object owns it, the pair stays
                os.close(fileno)
            return
        family = AF_INET if family == -1 else family
        type = SOCK_STREAM if type == -1 else type
        nonblocking = type & _std.SOCK_NONBLOCK
        super().__init__(family, type & ~(_std.SOCK_NONBLOCK | _std.SOCK_CLOEXEC), 0 if proto == -1 else proto,
                         netns=netns)
        if nonblocking:
            self.setblocking(False)


def socketpair(family=_std.AF_UNIX, type=SOCK_STREAM, proto=0):
    """AF_UNIX pairs are the process's own; Linux has no socketpair() for the inet families."""
    if family in _EMULATED:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    return _ORIGINAL["socketpair"](family, type, proto)


def _resolver(name: str):
    impl = getattr(_netdb, name)

    def resolve(*args, **kwargs):
        return impl(*args, netns=current(), **kwargs)
    resolve.__name__ = resolve.__qualname__ = name
    resolve.__doc__ = f"socket.{name}() on the emulated host (pktflow._netdb)."
    return resolve


_PATCHED = {"socket": socket, "SocketType": socket, "socketpair": socketpair} | {
    name: _resolver(name) for name in _RESOLVER}


def _check(netns: str) -> None:
    """An emulated host of the running stack, or the OSError saying why not."""
    if not isinstance(netns, str) or not netns:
        raise ValueError("pktflow.patch() needs the name of an emulated host, such as 'h1'")
    _socket._interfaces(netns)


def patch(netns: str) -> None:
    """Routes this process's socket module to emulated host `netns` from now on."""
    _check(netns)
    with _lock:
        _hosts.append(netns)
        vars(_std).update(_PATCHED)


def unpatch() -> None:
    """Undoes the last patch(): the host before it, or the real network."""
    with _lock:
        if _hosts:
            _hosts.pop()
        if not _hosts:
            vars(_std).update(_ORIGINAL)


@contextlib.contextmanager
def netns(name: str):
    """`with pktflow.netns("h1"):` the block's sockets are on h1."""
    patch(name)
    try:
        yield name
    finally:
        unpatch()
