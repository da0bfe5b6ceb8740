"""TLS on emulated sockets: ssl.SSLContext.wrap_socket() given a pktflow socket.

The ssl module's own SSLSocket does TLS on its descriptor, in C; a pktflow
socket's descriptor is the readiness end of a socketpair (_poll), so TLS would
talk to nobody. Here the TLS state machine is an ssl.SSLObject over two memory
BIOs (as asyncio's TLS is), and its records travel through the socket's own
send and recv: every byte of the handshake and of the data crosses the emulated
network, traced and captured like any other. The object has ssl.SSLSocket's
methods, errors and defaults, so http.client, urllib, requests (urllib3) and
http.server with a TLS context work unchanged.

Installed for the process when pktflow is imported (ssl.SSLContext.wrap_socket
hands any other socket to the ssl module as before)."""
import errno
import ssl

from . import _socket
from .services.common.uapi import SOCK_STREAM

_RECORD = 16384 + 2048            # a TLS record's plaintext limit and its overhead: one read's worth
_wrap_socket = ssl.SSLContext.wrap_socket


class SSLSocket(_socket.socket):
    """ssl.SSLSocket over an emulated stream socket."""

    @classmethod
    def _create(cls, sock, context, server_side=False, do_handshake_on_connect=True,
                suppress_ragged_eofs=True, server_hostname=None, session=None):
        """What SSLContext.wrap_socket() makes: takes `sock` over (it is closed for
        use, as the ssl module detaches it) and shakes hands now if it is connected."""
        if sock.type != SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side and server_hostname:
            raise ValueError("server_hostname can only be specified in client mode")
        if session is not None and server_side:
            raise ValueError("session can only be specified in client mode")
        if context.check_hostname and not server_hostname and not server_side:
            raise ValueError("check_hostname requires server_hostname")
        sock._fdcheck()
        self = cls.__new__(cls, sock.family)
        super().__init__(self, sock.family, sock.type, sock.proto, netns=sock.netns, _fd=sock._fd,
                         _refs=sock._refs)
        self._stub, self._timeout = sock._stub, sock._timeout
        sock._closed = sock._user_closed = True          # detached: this object holds the service socket now
        self._context, self.server_side, self.server_hostname = context, server_side, server_hostname
        self.do_handshake_on_connect, self.suppress_ragged_eofs = do_handshake_on_connect, suppress_ragged_eofs
        self._incoming, self._outgoing, self._unsent = ssl.MemoryBIO(), ssl.MemoryBIO(), b""
        self._sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side, server_hostname,
                                        session=session)
        try:
            self.getpeername()
            self._connected = True
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
            self._connected = False
        if self._connected and do_handshake_on_connect:
            if self._timeout == 0.0:
                raise ValueError("do_handshake_on_connect should not be specified for non-blocking sockets")
            try:
                self.do_handshake()
            except BaseException:
                self.close()
                raise
        return self

    # -- the records between the TLS object and the socket
    def _tls(self, op, *args):
        """Runs an SSLObject call to its end: what it has to send goes out, what
        it waits for is read from the socket (SSLWantReadError/WantWriteError
        when the socket is non-blocking and cannot go on)."""
        while True:
            self._flush()
            try:
                result = op(*args)
            except ssl.SSLWantReadError:
                self._flush()
                try:
                    data = super().recv(_RECORD)
                except BlockingIOError:
                    raise ssl.SSLWantReadError("The operation did not complete (read)") from None
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._flush()
            return result

    def _flush(self):
        """The TLS object's records onto the socket (what a non-blocking send could
        not take waits for the next call)."""
        self._unsent += self._outgoing.read()
        while self._unsent:
            try:
                n = super().send(self._unsent)
            except BlockingIOError:
                raise ssl.SSLWantWriteError("The operation did not complete (write)") from None
            self._unsent = self._unsent[n:]

    def _checked(self):
        self._fdcheck()
        if self._sslobj is None:
            raise ValueError("No SSL wrapper around " + repr(self))
        return self._sslobj

    # -- ssl.SSLSocket's interface
    @property
    def context(self):
        return self._context

    @property
    def session(self):
        return self._sslobj.session if self._sslobj else None

    @property
    def session_reused(self):
        return self._sslobj.session_reused if self._sslobj else None

    def do_handshake(self, block=False):
        self._tls(self._checked().do_handshake)

    def read(self, len=1024, buffer=None):
        obj = self._checked()
        try:
            return self._tls(obj.read, len, buffer) if buffer is not None else self._tls(obj.read, len)
        except ssl.SSLEOFError:
            if self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data):
        return self._tls(self._checked().write, data)

    def recv(self, buflen=1024, flags=0):
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
        return self.read(buflen)

    def recv_into(self, buffer, nbytes=None, flags=0):
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv_into() on {type(self)}")
        if not nbytes:
            nbytes = len(buffer) if buffer else 1024
        return self.read(nbytes, buffer)

    def send(self, data, flags=0):
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self.write(data)

    def sendall(self, data, flags=0):
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to sendall() on {type(self)}")
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                sent += self.write(octets[sent:])

    def pending(self):
        return self._sslobj.pending() if self._sslobj else 0

    def getpeercert(self, binary_form=False):
        return self._checked().getpeercert(binary_form)

    def cipher(self):
        return self._sslobj.cipher() if self._sslobj else None

    def shared_ciphers(self):
        return self._sslobj.shared_ciphers() if self._sslobj else None

    def compression(self):
        return self._sslobj.compression() if self._sslobj else None

    def version(self):
        return self._sslobj.version() if self._sslobj else None

    def selected_alpn_protocol(self):
        return self._sslobj.selected_alpn_protocol() if self._sslobj else None

    def get_channel_binding(self, cb_type="tls-unique"):
        return self._checked().get_channel_binding(cb_type)

    def verify_client_post_handshake(self):
        return self._checked().verify_client_post_handshake()

    def connect(self, address):
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        super().connect(address)
        self._connected = True
        if self.do_handshake_on_connect:
            self.do_handshake()

    def accept(self):
        """The connection, wrapped server-side with this socket's context (the handshake
        done now, unless do_handshake_on_connect is off), and the peer's address."""
        conn, address = super().accept()
        return self._context.wrap_socket(conn, do_handshake_on_connect=self.do_handshake_on_connect,
                                         suppress_ragged_eofs=self.suppress_ragged_eofs, server_side=True), address

    def unwrap(self):
        """The TLS shutdown (close_notify both ways); the plain socket goes on."""
        self._tls(self._checked().unwrap)
        self._sslobj = None
        plain = _socket.socket(self.family, self.type, self.proto, netns=self.netns, _fd=self._fd, _refs=self._refs)
        plain._stub, plain._timeout = self._stub, self._timeout
        self._closed = self._user_closed = True
        return plain

    def shutdown(self, how):
        self._sslobj = None
        super().shutdown(how)

    def dup(self):
        raise NotImplementedError(f"Can't dup() {type(self).__name__} instances")

    def __repr__(self):
        return "<pktflow." + super().__repr__()[len("<pktflow."):].replace("socket", "SSLSocket", 1)


def _refused(name, error):
    def refuse(self, *args, **kwargs):
        raise error(f"{name} not allowed on instances of {type(self)}")
    refuse.__name__ = name
    return refuse


for _name, _error in (("recvfrom", ValueError), ("recvfrom_into", ValueError), ("sendto", ValueError),
                      ("recvmsg", NotImplementedError), ("recvmsg_into", NotImplementedError),
                      ("sendmsg", NotImplementedError), ("recvmmsg", NotImplementedError),
                      ("sendmmsg", NotImplementedError)):
    setattr(SSLSocket, _name, _refused(_name, _error))


def wrap_socket(context, sock, *args, **kwargs):
    """SSLContext.wrap_socket(): SSLSocket for a pktflow socket, the ssl module's for any other."""
    if isinstance(sock, _socket.socket):
        return SSLSocket._create(sock, context, *args, **kwargs)
    return _wrap_socket(context, sock, *args, **kwargs)


ssl.SSLContext.wrap_socket = wrap_socket
