"""What CPython's socket.py builds on the primitive calls, over pktflow's
sockets: SocketIO (makefile()'s raw I/O), create_connection(), create_server()."""
import io
import socket as _pysocket

from ._socket import AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY, SO_REUSEADDR, SO_REUSEPORT, SOCK_STREAM, \
    SOL_SOCKET, socket


class SocketIO(io.RawIOBase):
    """CPython's socket.SocketIO: raw I/O over a socket's recv_into and send."""

    def __init__(self, sock, mode):
        if mode not in ("r", "w", "rw", "rb", "wb", "rwb"):
            raise ValueError(f"invalid mode: {mode!r}")
        super().__init__()
        self._sock, self._mode = sock, mode.replace("b", "")
        self._reading, self._writing = "r" in mode, "w" in mode
        self._timeout_occurred = False

    def readinto(self, b):
        self._checkClosed()
        self._checkReadable()
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        try:
            return self._sock.recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except BlockingIOError:
            return None

    def write(self, b):
        self._checkClosed()
        self._checkWritable()
        try:
            return self._sock.send(b)
        except BlockingIOError:
            return None

    def readable(self):
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._reading

    def writable(self):
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._writing

    def seekable(self):
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return False

    def fileno(self):
        self._checkClosed()
        return self._sock.fileno()

    @property
    def name(self):
        return self.fileno() if not self.closed else -1

    @property
    def mode(self):
        return self._mode

    def close(self):
        if self.closed:
            return
        io.RawIOBase.close(self)
        self._sock._decref_socketios()
        self._sock = None


_GLOBAL_DEFAULT_TIMEOUT = _pysocket._GLOBAL_DEFAULT_TIMEOUT


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT, source_address=None, *, netns: str,
                      all_errors: bool = False):
    """socket.create_connection() on host `netns`: each getaddrinfo() result in order."""
    from . import _netdb
    host, port = address
    errors = []
    for family, type_, proto, _canon, sa in _netdb.getaddrinfo(host, port, 0, SOCK_STREAM, netns=netns):
        sock = None
        try:
            sock = socket(family, type_, proto, netns=netns)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            errors.clear()
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
    if errors:
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)
        raise errors[0]
    raise OSError("getaddrinfo returns an empty list")


def has_dualstack_ipv6() -> bool:
    return True


def create_server(address, *, family=AF_INET, backlog=None, reuse_port=False, dualstack_ipv6=False,
                  netns: str):
    """socket.create_server() on host `netns`: SO_REUSEADDR, bound, listening; with
    dualstack_ipv6 an AF_INET6 socket with IPV6_V6ONLY off takes IPv4 clients too."""
    if dualstack_ipv6 and family != AF_INET6:
        raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, SOCK_STREAM, netns=netns)
    try:
        sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1)
        if family == AF_INET6:
            sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror} (while attempting to bind on address {address!r})") from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except OSError:
        sock.close()
        raise
