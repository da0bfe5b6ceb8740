"""A real, selectable descriptor per emulated socket, so select(), poll(),
selectors and asyncio's event loops wait on pktflow sockets unchanged.

The descriptor is one end ("near") of an AF_UNIX socketpair of this process;
the other end ("far") is the SDK's. The socket service answers poll(2) for the
socket (sock_poll: tcp_poll/datagram_poll) on every call's reply and on the
session's stream (socket.proto: Poll, Readiness), and the SDK sets the near
end to match:
  readable  (POLLIN, POLLHUP, POLLERR)  a byte waits on it (far sent one);
  writable  (POLLOUT, POLLERR)          its send buffer has room (far drained it);
  neither                               the byte is read back, the buffer filled.
So select()'s read and write sets, poll()'s POLLIN/POLLOUT and epoll see what
they would for the socket itself. The near end is never read or written by
the program: its calls go to the service."""
import _socket
import errno
import os
import threading

from .services.common.uapi import POLLERR, POLLHUP, POLLIN, POLLOUT

_READ = POLLIN | POLLHUP | POLLERR      # select()'s POLLIN_SET (fs/select.c)
_WRITE = POLLOUT | POLLERR              # POLLOUT_SET
_FILL = b"\0" * 65536

_lock = threading.Lock()
_by_fd: dict[int, "Descriptor"] = {}       # the near end's number -> its descriptor
_by_sock: dict[tuple, "Descriptor"] = {}   # (session, service fd) -> its descriptor


class Descriptor:
    """The near/far pair standing for one service socket."""

    def __init__(self, key: tuple):
        self.key = key
        near, far = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        near.setblocking(False)
        far.setblocking(False)
        near.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 1)   # the minimum: a few KiB fill it
        self.near, self.far = near, far
        self.fd = near.fileno()
        self.readable, self.writable, self.seq = False, True, 0

    def apply(self, revents: int, seq: int) -> None:
        """The service's answer `seq` (older ones than the last applied are stale)."""
        with _lock:
            if seq <= self.seq or self.near is None:
                return
            self.seq = seq
            self._set(bool(revents & _READ), bool(revents & _WRITE))

    def _set(self, readable: bool, writable: bool) -> None:
        if readable != self.readable:
            if readable:
                self.far.send(b"r")
            else:
                _drain(self.near)
            self.readable = readable
        if writable != self.writable:
            if writable:
                _drain(self.far)
            else:
                try:
                    while True:
                        self.near.send(_FILL)
                except BlockingIOError:
                    pass
            self.writable = writable

    def close(self) -> None:
        with _lock:
            _by_fd.pop(self.fd, None)
            _by_sock.pop(self.key, None)
            if self.near is not None:
                self.near.close()
                self.far.close()
                self.near = self.far = None


def _drain(sock) -> None:
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass


def descriptor(key: tuple, poll) -> Descriptor:
    """The descriptor for service socket `key`, made on first use; `poll()` asks
    the service to start answering for it and returns the first answer (a Readiness)."""
    with _lock:
        d = _by_sock.get(key)
    if d is not None:
        return d
    d = Descriptor(key)
    with _lock:
        _by_sock[key] = d
        _by_fd[d.fd] = d
    try:
        ready = poll()
    except BaseException:
        d.close()
        raise
    d.apply(ready.revents, ready.seq)
    return d


def release(key: tuple) -> None:
    """The service socket is closed: so is its descriptor."""
    d = _by_sock.get(key)
    if d is not None:
        d.close()


def apply(session: str, ready) -> None:
    """A Readiness from a reply or the session's stream."""
    d = _by_sock.get((session, ready.fd))
    if d is not None:
        d.apply(ready.revents, ready.seq)


def lookup(fd: int) -> Descriptor | None:
    """The descriptor `fd` stands for: its near end, or a dup() of it (same inode)."""
    d = _by_fd.get(fd)
    if d is not None:
        return d
    try:
        ino = os.fstat(fd).st_ino
    except OSError:
        return None
    with _lock:
        return next((d for d in _by_fd.values() if d.near is not None and os.fstat(d.fd).st_ino == ino), None)


def forget_all() -> None:
    """A forked child is another process: the parent's descriptors mean nothing to
    its session (the service closes nothing of the parent's for it)."""
    with _lock:
        _by_fd.clear()
        _by_sock.clear()


def ebadf() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))
