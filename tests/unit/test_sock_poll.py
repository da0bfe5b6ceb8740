"""sock_poll() in the socket room (Sock.poll(): tcp_poll() and datagram_poll())
state by state, each compared with the real Linux kernel: the same state made
with real sockets on 127.0.0.1 in this process and asked with select.poll().
And the SDK's selectable descriptor (services/sdk/_poll.py): what the service
answers is exactly what select() and poll() see on the descriptor."""
import contextlib
import errno
import os
import select
import socket
import struct

import pytest
from pktflow import _poll
from pktflow.services.common import topology, uapi
from pktflow.services.socket.sockfs import TCP_CLOSE, TCP_CLOSE_WAIT, TCP_ESTABLISHED, SockFs
from pktflow.v1.skb_pb2 import Skb, SockEvent

IN, OUT, ERR, HUP, RDHUP = uapi.POLLIN, uapi.POLLOUT, uapi.POLLERR, uapi.POLLHUP, uapi.POLLRDHUP
COMPARED = IN | OUT | ERR | HUP | RDHUP         # the bits both kernels must agree on
LO = "127.0.0.1"
MSG_ERRQUEUE = 0x2000
WAIT_MS = 3000                                   # loopback delivers in the sending call; this only bounds a slow box


def names(mask: int) -> str:
    return "|".join(n for n, b in (("IN", IN), ("OUT", OUT), ("ERR", ERR), ("HUP", HUP), ("RDHUP", RDHUP))
                    if mask & b) or "0"


# -- the emulator: the socket room's core, driven as transport and the shell drive it
def event(sk: int, **fields) -> Skb:
    return Skb(netns="h1", sk=sk, event=SockEvent(**fields))


class Emu:
    """SockFs with one socket brought into a state the way the service does."""

    def __init__(self):
        self.fs = SockFs(topology.load())

    def sock(self, type_=uapi.SOCK_STREAM):
        err, _, s = self.fs.create("h1", uapi.AF_INET, type_, 0)
        assert err == 0
        return s

    def ingress(self, s, **fields):
        self.fs.ingress(event(s.fd, **fields), 0)

    def established(self):
        s = self.sock()
        s.connecting = True                       # stream_connect(): transport answered EINPROGRESS
        self.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, peer_port=80)
        return s

    def data(self, s, payload: bytes):
        self.fs.ingress(Skb(netns="h1", sk=s.fd, data=payload,
                            event=SockEvent(kind=SockEvent.DATA_READY, truesize=len(payload) + 576)), 0)

    def listener(self):
        s = self.sock()
        s.listening = True                        # Listen(): transport's LISTEN completed
        return s


def emu_state(name: str) -> int:
    e = Emu()
    if name == "fresh":
        s = e.sock()
    elif name == "connecting":
        s = e.sock()
        s.connecting = True
    elif name == "established":
        s = e.established()
    elif name == "data queued":
        s = e.established()
        e.data(s, b"x")
    elif name == "data read":
        s = e.established()
        e.data(s, b"xy")
        assert s.read_stream(2) == (b"xy", 2)
    elif name == "FIN received":
        s = e.established()
        e.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_CLOSE_WAIT)
    elif name == "FIN received, data queued":
        s = e.established()
        e.data(s, b"last")
        e.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_CLOSE_WAIT)
    elif name == "FIN received, then SHUT_WR":
        s = e.established()
        e.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_CLOSE_WAIT)
        s.shut_wr = True                          # Shutdown(SHUT_WR): our FIN, LAST_ACK
        e.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_CLOSE)      # its ACK: tcp_done()
    elif name == "SHUT_WR":
        s = e.established()
        s.shut_wr = True
    elif name == "SHUT_RD":
        s = e.established()
        s.shut_rd = True
    elif name == "SHUT_RDWR":
        s = e.established()
        s.shut_rd = s.shut_wr = True
    elif name == "send buffer full":
        s = e.established()
        s.nospace = True                          # stream_send(): a send took less than it was given
    elif name == "send buffer full, then room":
        s = e.established()
        s.nospace = True
        e.ingress(s, kind=SockEvent.WRITE_SPACE)
    elif name == "reset":
        s = e.established()
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNRESET, state=TCP_CLOSE)
    elif name == "reset, SO_ERROR read":
        s = e.established()
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNRESET, state=TCP_CLOSE)
        assert s.getsockopt(uapi.SOL_SOCKET, uapi.SO_ERROR) == (0, errno.ECONNRESET)
    elif name == "refused":
        s = e.sock()
        s.connecting = True
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED, state=TCP_CLOSE)
    elif name == "refused, SO_ERROR read":
        s = e.sock()
        s.connecting = True
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED, state=TCP_CLOSE)
        assert s.getsockopt(uapi.SOL_SOCKET, uapi.SO_ERROR) == (0, errno.ECONNREFUSED)
    elif name == "listener":
        s = e.listener()
    elif name == "listener, connection to accept":
        s = e.listener()
        e.fs.ingress(event(90, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, listener=s.fd, peer_port=5), 0)
        assert len(s.accept_q) == 1
    elif name == "listener, connection accepted":
        s = e.listener()
        e.fs.ingress(event(90, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED, listener=s.fd, peer_port=5), 0)
        s.accept_q.popleft()                      # Accept()
    elif name == "udp":
        s = e.sock(uapi.SOCK_DGRAM)
    elif name == "udp, datagram":
        s = e.sock(uapi.SOCK_DGRAM)
        e.data(s, b"d")
    elif name == "udp, datagram read":
        s = e.sock(uapi.SOCK_DGRAM)
        e.data(s, b"d")
        assert len(s.dequeue(1)[0]) == 1
    elif name == "udp, port unreachable":
        s = e.sock(uapi.SOCK_DGRAM)
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED)
    elif name == "udp, port unreachable, error read":
        s = e.sock(uapi.SOCK_DGRAM)
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED)
        assert s.take_error() == errno.ECONNREFUSED
    elif name == "udp IP_RECVERR, error read, queue not":
        s = e.sock(uapi.SOCK_DGRAM)
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED, errqueue=True)
        assert s.take_error() == errno.ECONNREFUSED
    elif name == "udp IP_RECVERR, error queue read":
        s = e.sock(uapi.SOCK_DGRAM)
        e.ingress(s, kind=SockEvent.ERROR_REPORT, err=errno.ECONNREFUSED, errqueue=True)
        s.take_error()
        s.errq.popleft()                          # recvmsg(MSG_ERRQUEUE)
    else:
        raise AssertionError(name)
    return s.poll()


# -- Linux: the same states on loopback
def linux_mask(s, want: int = 0, events: int = IN | OUT | RDHUP) -> int:
    """poll(2)'s revents for `s`; with `want`, first waits (bounded) until one of those bits is up
    (POLLERR and POLLHUP end the wait too, as poll(2) always reports them)."""
    if want:
        p = select.poll()
        p.register(s, want)
        p.poll(WAIT_MS)
    p = select.poll()
    p.register(s, events)
    got = p.poll(0)
    return got[0][1] if got else 0


class Loopback:
    """Real sockets on 127.0.0.1, all closed at the end."""

    def __init__(self):
        self.socks = []

    def keep(self, *socks):
        self.socks.extend(socks)
        return socks[0]

    def tcp(self):
        return self.keep(socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def udp(self):
        return self.keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    def listener(self, backlog=4):
        s = self.tcp()
        s.bind((LO, 0))
        s.listen(backlog)
        return s

    def pair(self):
        lst = self.listener()
        c = self.keep(socket.create_connection(lst.getsockname(), timeout=5))
        a = self.keep(lst.accept()[0])
        return c, a

    def closed_port(self) -> int:
        """A loopback port nobody listens on (bound without listening: no SYN is answered but with RST)."""
        s = self.tcp()
        s.bind((LO, 0))
        return s.getsockname()[1]

    def close(self):
        for s in self.socks:
            s.close()


def linux_state(name: str, lo: Loopback, events: int = IN | OUT | RDHUP) -> int:
    """The state `name` made on loopback; poll(2)'s answer for the socket in it (asked for `events`)."""
    def mask_of(s, want: int = 0) -> int:
        return linux_mask(s, want, events)

    if name == "fresh":
        return mask_of(lo.tcp())
    if name == "connecting":
        # listen(0) holds one connection; the next SYN is dropped (accept queue full): SYN_SENT stays
        lst = lo.listener(0)
        lo.keep(socket.create_connection(lst.getsockname(), timeout=5))
        c = lo.tcp()
        c.setblocking(False)
        assert c.connect_ex(lst.getsockname()) == errno.EINPROGRESS
        return mask_of(c)
    if name == "established":
        return mask_of(lo.pair()[0])
    if name == "data queued":
        c, a = lo.pair()
        a.sendall(b"x")
        return mask_of(c, IN)
    if name == "data read":
        c, a = lo.pair()
        a.sendall(b"xy")
        assert mask_of(c, IN) & IN and c.recv(2) == b"xy"
        return mask_of(c)
    if name == "FIN received":
        c, a = lo.pair()
        a.shutdown(socket.SHUT_WR)
        return mask_of(c, RDHUP)
    if name == "FIN received, data queued":
        c, a = lo.pair()
        a.sendall(b"last")
        a.shutdown(socket.SHUT_WR)
        return mask_of(c, RDHUP)
    if name == "FIN received, then SHUT_WR":
        c, a = lo.pair()
        a.shutdown(socket.SHUT_WR)
        mask_of(c, RDHUP)
        c.shutdown(socket.SHUT_WR)
        return mask_of(c, HUP)
    if name == "SHUT_WR":
        c, _ = lo.pair()
        c.shutdown(socket.SHUT_WR)
        return mask_of(c)
    if name == "SHUT_RD":
        c, _ = lo.pair()
        c.shutdown(socket.SHUT_RD)
        return mask_of(c)
    if name == "SHUT_RDWR":
        c, _ = lo.pair()
        c.shutdown(socket.SHUT_RDWR)
        return mask_of(c)
    if name in ("send buffer full", "send buffer full, then room"):
        c, a = lo.pair()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            for _ in range(10000):                       # bounded: a few hundred KiB fill it
                sent += c.send(b"\0" * 16384)
        assert sent
        if name == "send buffer full":
            return mask_of(c)
        a.settimeout(5)
        got = 0
        while got < sent:
            got += len(a.recv(1 << 20))
        return mask_of(c, OUT)
    if name in ("reset", "reset, SO_ERROR read"):
        c, a = lo.pair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()                                         # RST
        mask = mask_of(c, ERR)
        if name == "reset":
            return mask
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
        return mask_of(c)
    if name in ("refused", "refused, SO_ERROR read"):
        c = lo.tcp()
        c.setblocking(False)
        assert c.connect_ex((LO, lo.closed_port())) in (errno.EINPROGRESS, errno.ECONNREFUSED)
        mask = mask_of(c, ERR)
        if name == "refused":
            return mask
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        return mask_of(c)
    if name == "listener":
        return mask_of(lo.listener())
    if name in ("listener, connection to accept", "listener, connection accepted"):
        lst = lo.listener()
        lo.keep(socket.create_connection(lst.getsockname(), timeout=5))
        mask = mask_of(lst, IN)
        if name == "listener, connection to accept":
            return mask
        lo.keep(lst.accept()[0])
        return mask_of(lst)
    if name == "udp":
        return mask_of(lo.udp())
    if name in ("udp, datagram", "udp, datagram read"):
        u, v = lo.udp(), lo.udp()
        u.bind((LO, 0))
        v.sendto(b"d", u.getsockname())
        mask = mask_of(u, IN)
        if name == "udp, datagram":
            return mask
        assert u.recv(10) == b"d"
        return mask_of(u)
    if name.startswith("udp"):                        # a connected UDP socket's datagram to a closed port
        u = lo.udp()
        if "IP_RECVERR" in name:
            u.setsockopt(socket.IPPROTO_IP, uapi.IP_RECVERR, 1)     # no socket.IP_RECVERR before 3.12
        s = lo.udp()
        s.bind((LO, 0))
        port = s.getsockname()[1]
        s.close()
        u.connect((LO, port))
        u.send(b"?")
        mask = mask_of(u, ERR)
        if name == "udp, port unreachable":
            return mask
        assert u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        if name == "udp IP_RECVERR, error queue read":
            u.recvmsg(64, 512, MSG_ERRQUEUE)
        return mask_of(u)
    raise AssertionError(name)


# (state, what tcp_poll()/datagram_poll() answer on Linux, as measured on a 6.x kernel: the table documents it,
#  the loopback comparison below is the oracle)
STATES = [
    ("fresh", OUT | HUP),
    ("connecting", 0),
    ("established", OUT),
    ("data queued", IN | OUT),
    ("data read", OUT),
    ("FIN received", IN | OUT | RDHUP),
    ("FIN received, data queued", IN | OUT | RDHUP),
    ("FIN received, then SHUT_WR", IN | OUT | HUP | RDHUP),
    ("SHUT_WR", OUT),
    ("SHUT_RD", IN | OUT | RDHUP),
    ("SHUT_RDWR", IN | OUT | HUP | RDHUP),
    ("send buffer full", 0),
    ("send buffer full, then room", OUT),
    ("reset", IN | OUT | ERR | HUP | RDHUP),
    ("reset, SO_ERROR read", IN | OUT | HUP | RDHUP),
    ("refused", IN | OUT | ERR | HUP | RDHUP),
    ("refused, SO_ERROR read", IN | OUT | HUP | RDHUP),
    ("listener", 0),
    ("listener, connection to accept", IN),
    ("listener, connection accepted", 0),
    ("udp", OUT),
    ("udp, datagram", IN | OUT),
    ("udp, datagram read", OUT),
    ("udp, port unreachable", OUT | ERR),
    ("udp, port unreachable, error read", OUT),
    ("udp IP_RECVERR, error read, queue not", OUT | ERR),
    ("udp IP_RECVERR, error queue read", OUT),
]

@pytest.mark.parametrize("name, expected", [pytest.param(n, m, id=n) for n, m in STATES])
def test_linux_loopback_answers_as_the_table_says(name, expected):
    """The oracle itself: the table is what this machine's kernel answers."""
    lo = Loopback()
    try:
        assert names(linux_state(name, lo) & COMPARED) == names(expected)
    finally:
        lo.close()


@pytest.mark.parametrize("name, expected", [pytest.param(n, m, id=n) for n, m in STATES])
def test_sock_poll_answers_as_linux_on_loopback(name, expected):
    lo = Loopback()
    try:
        linux = linux_state(name, lo) & COMPARED
    finally:
        lo.close()
    assert names(emu_state(name) & COMPARED) == names(linux)


POLLWRBAND, POLLPRI = uapi.POLLWRBAND, uapi.POLLPRI
EVERY_BIT = COMPARED | uapi.POLLRDNORM | uapi.POLLWRNORM | POLLWRBAND | POLLPRI


@pytest.mark.parametrize("name", [
    "established", "data queued", "listener, connection to accept", "FIN received",
    "udp", "udp, datagram"])
def test_sock_poll_band_bits_are_linuxs(name):
    """Every bit, the normal-band ones included (POLLRDNORM with POLLIN, POLLWRNORM with POLLOUT ...)."""
    lo = Loopback()
    try:
        linux = linux_state(name, lo, events=EVERY_BIT)
    finally:
        lo.close()
    assert hex(emu_state(name) & EVERY_BIT) == hex(linux)


def test_connecting_socket_with_data_already_queued_is_not_readable_until_established():
    """tcp_poll(): nothing at all in SYN_SENT, whatever sits in the queues."""
    e = Emu()
    s = e.sock()
    s.connecting = True
    e.data(s, b"early")
    assert s.poll() == 0
    e.ingress(s, kind=SockEvent.STATE_CHANGE, state=TCP_ESTABLISHED)
    assert s.poll() & (IN | OUT) == IN | OUT


def test_shut_wr_socket_is_writable_even_when_the_buffer_was_full():
    """tcp_poll(): with SEND_SHUTDOWN, POLLOUT always (the write fails at once with EPIPE)."""
    e = Emu()
    s = e.established()
    s.nospace = True
    assert not s.poll() & OUT
    s.shut_wr = True
    assert s.poll() & OUT


# -- the SDK's descriptor
def selected(fd: int) -> tuple[bool, bool]:
    r, w, x = select.select([fd], [fd], [fd], 0)
    assert x == []
    return bool(r), bool(w)


def polled(fd: int) -> int:
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    got = p.poll(0)
    return got[0][1] if got else 0


@pytest.fixture
def descriptors():
    made = []

    def make(key=None):
        d = _poll.Descriptor(key or ("unit-session", 1000 + len(made)))
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()


def test_fresh_descriptor_is_writable_and_not_readable(descriptors):
    d = descriptors()
    assert selected(d.fd) == (False, True)
    assert polled(d.fd) == select.POLLOUT


# revents from the service -> (readable, writable) under select(): fs/select.c's POLLIN_SET and POLLOUT_SET
REVENTS = [
    (0, (False, False)),
    (IN, (True, False)),
    (OUT, (False, True)),
    (IN | OUT, (True, True)),
    (HUP, (True, False)),
    (OUT | HUP, (True, True)),
    (ERR, (True, True)),
    (IN | RDHUP, (True, False)),
    (IN | uapi.POLLRDNORM | OUT | uapi.POLLWRNORM, (True, True)),
]


@pytest.mark.parametrize("revents, expected", [pytest.param(m, e, id=names(m)) for m, e in REVENTS])
def test_apply_sets_select_readability_and_writability_exactly(descriptors, revents, expected):
    d = descriptors()
    d.apply(revents, 1)
    assert selected(d.fd) == expected
    assert polled(d.fd) == (select.POLLIN if expected[0] else 0) | (select.POLLOUT if expected[1] else 0)


def test_apply_follows_every_transition_back_and_forth(descriptors):
    """Each pair of states after each other (the near end is filled and drained, the far end writes
    and the near end's byte is read back), several rounds: nothing sticks."""
    d = descriptors()
    seq = 0
    order = [(False, False), (True, True), (False, True), (True, False), (False, False), (True, False),
             (True, True), (False, False), (False, True), (True, True)]
    for _ in range(3):
        for readable, writable in order:
            seq += 1
            d.apply((IN if readable else 0) | (OUT if writable else 0), seq)
            assert selected(d.fd) == (readable, writable), (seq, readable, writable)


def test_stale_and_repeated_answers_are_ignored(descriptors):
    d = descriptors()
    d.apply(IN | OUT, 5)
    d.apply(0, 4)                              # older than the last applied: a reply overtaken by the stream
    assert selected(d.fd) == (True, True)
    d.apply(0, 5)                              # the same sequence number again
    assert selected(d.fd) == (True, True)
    d.apply(0, 6)
    assert selected(d.fd) == (False, False)
    assert d.seq == 6


def test_module_apply_routes_by_session_and_fd_and_ignores_others():
    class Ready:
        def __init__(self, fd, revents, seq):
            self.fd, self.revents, self.seq = fd, revents, seq
    d = _poll.descriptor(("sess-a", 7), lambda: Ready(7, OUT, 1))
    try:
        assert selected(d.fd) == (False, True)
        _poll.apply("sess-b", Ready(7, IN, 2))     # another session's fd 7
        _poll.apply("sess-a", Ready(8, IN, 3))     # another socket
        assert selected(d.fd) == (False, True)
        _poll.apply("sess-a", Ready(7, IN, 4))
        assert selected(d.fd) == (True, False)
        assert _poll.descriptor(("sess-a", 7), lambda: pytest.fail("asked twice")) is d
        assert _poll.lookup(d.fd) is d
        dup = os.dup(d.fd)
        try:
            assert _poll.lookup(dup) is d          # socket.fromfd()'s dup: the same file
        finally:
            os.close(dup)
    finally:
        _poll.release(("sess-a", 7))
    assert ("sess-a", 7) not in _poll._by_sock and d.near is None


def test_descriptor_whose_first_poll_fails_is_not_left_registered():
    def refuse():
        raise OSError(errno.EBADF, "gone")
    with pytest.raises(OSError):
        _poll.descriptor(("sess-c", 9), refuse)
    assert ("sess-c", 9) not in _poll._by_sock


def test_close_unregisters_and_closes_both_ends(descriptors):
    d = descriptors(("sess-d", 3))
    with _poll._lock:
        _poll._by_sock[d.key] = d
        _poll._by_fd[d.fd] = d
    near, far, fd = d.near, d.far, d.fd
    assert _poll.lookup(fd) is d
    d.close()
    assert d.key not in _poll._by_sock and fd not in _poll._by_fd
    assert near.fileno() == -1 and far.fileno() == -1 and d.near is None
    assert _poll.lookup(fd) is not d
    d.apply(IN, 99)                            # an answer after close: nothing to set, no error
    d.close()                                  # twice: nothing


def test_descriptor_survives_a_full_far_end(descriptors):
    """Many not-writable/writable rounds in a row do not accumulate bytes anywhere."""
    d = descriptors()
    for seq in range(1, 201):
        d.apply(OUT if seq % 2 else 0, seq)
    assert selected(d.fd) == (False, False)
    d.apply(OUT, 1000)
    assert selected(d.fd) == (False, True)
    d.far.setblocking(False)
    with pytest.raises(BlockingIOError):
        d.far.recv(1)                          # drained: nothing left behind
