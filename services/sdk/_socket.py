"""pktflow.socket: Python's socket interface on an emulated host."""
import errno
import io
import os
import socket as _pysocket
import struct
import time

import grpc

from . import _client, _netdb, _poll
from .services.common.uapi import (  # noqa: F401 (the socket module's names, re-exported)
    AF_INET, AF_INET6, AF_PACKET, AF_UNSPEC, AF_XDP, IP_MTU, IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_PMTUDISC_DONT,
    IP_PMTUDISC_PROBE,
    IP_PMTUDISC_WANT, IP_RECVERR, IP_RECVTOS, IP_RECVTTL, IP_TOS, IP_TTL, IPPROTO_ICMP, IPPROTO_IP,
    IPPROTO_TCP, IPPROTO_UDP, MSG_DONTWAIT, MSG_ERRQUEUE, MSG_MORE, MSG_PEEK, MSG_TRUNC, MSG_WAITALL, SHUT_RD,
    SHUT_RDWR, SHUT_WR, SO_BROADCAST, SO_DEBUG, SO_DOMAIN, SO_DONTROUTE, SO_EE_ORIGIN_ICMP, SO_ERROR, SO_KEEPALIVE,
    SO_ATTACH_FILTER, SO_DETACH_FILTER, SO_LINGER, SO_MARK, SO_MAX_PACING_RATE, SO_OOBINLINE, SO_PRIORITY,
    SO_PROTOCOL, SO_RCVBUF, SO_RCVLOWAT,
    SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF, SO_TIMESTAMP, SO_TYPE, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM, SOL_SOCKET,
    SOMAXCONN, SOL_XDP, TCP_CONGESTION, TCP_INFO, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_MAXSEG, TCP_NODELAY,
    TCP_SYNCNT, XDP_COPY, XDP_OPTIONS, XDP_OPTIONS_ZEROCOPY, XDP_RX_RING, XDP_STATISTICS, XDP_TX_RING,
    XDP_USE_NEED_WAKEUP, XDP_ZEROCOPY, IPPROTO_IPV6, IPPROTO_ICMPV6, IPV6_HOPLIMIT, IPV6_MTU, IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_DO, IPV6_PMTUDISC_DONT, IPV6_PMTUDISC_PROBE, IPV6_PMTUDISC_WANT, IPV6_RECVERR, IPV6_RECVHOPLIMIT,
    IPV6_RECVTCLASS, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY, SO_EE_ORIGIN_ICMP6)
from .v1 import socket_pb2

ETH_P_ALL, ETH_P_IP, ETH_P_ARP = 0x0003, 0x0800, 0x0806
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4

def htons(x: int) -> int:
    return _pysocket.htons(x)


def ntohs(x: int) -> int:
    return _pysocket.ntohs(x)


def getdefaulttimeout():
    """The process's default, Python's own: socket.setdefaulttimeout() sets it too."""
    return _pysocket.getdefaulttimeout()


def setdefaulttimeout(timeout):
    _pysocket.setdefaulttimeout(_check_timeout(timeout))


def _check_timeout(timeout):
    if timeout is None:
        return None
    timeout = float(timeout)
    if timeout != timeout:
        raise ValueError("Invalid value NaN (not a number)")
    if timeout < 0:
        raise ValueError("Timeout value out of range")
    return timeout


EAI_ADDRFAMILY = getattr(_pysocket, "EAI_ADDRFAMILY", -9)


def _host(host: str, netns: str) -> str:
    """The address forms Python's socket module accepts for AF_INET; a name is
    resolved on the emulated host, as setipaddr() calls getaddrinfo()."""
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host in ("", "0.0.0.0"):
        return ""
    if host == "<broadcast>":
        return "255.255.255.255"
    if host == "localhost":
        return "127.0.0.1"
    try:
        _pysocket.inet_pton(_pysocket.AF_INET, host)
    except OSError:
        if _is_ipv6(host):
            raise _pysocket.gaierror(EAI_ADDRFAMILY, "Address family for hostname not supported") from None
        return _netdb.gethostbyname(host, netns=netns)
    return host


def _is_ipv6(text: str) -> bool:
    try:
        _pysocket.inet_pton(_pysocket.AF_INET6, text.partition("%")[0])
        return True
    except (OSError, ValueError):
        return False


def _interfaces(netns: str) -> dict[str, int]:
    import json
    return json.loads(_client.admin("socket", netns, "interfaces").json)


def scope_index(netns: str, scope: str) -> int:
    """if_nametoindex() on the emulated host (a zone index: a name or a number),
    as getaddrinfo() resolves %eth0; gaierror when there is no such interface."""
    if scope.isdigit():
        return int(scope)
    known = _interfaces(netns)
    if scope not in known:
        raise _pysocket.gaierror(_pysocket.EAI_NONAME, "Name or service not known")
    return known[scope]


def scope_name(netns: str, index: int) -> str:
    """if_indextoname() on the emulated host: how getnameinfo() writes a zone (%eth0)."""
    return next((name for name, i in _interfaces(netns).items() if i == index), str(index))


def _host6(host, netns: str) -> str:
    """The address forms Python's socket module accepts for AF_INET6, as RFC
    5952 text. A %zone suffix must name an interface of the host but, as in
    Python, the scope is the tuple's scope_id (the suffix is not used)."""
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode()
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return "::"
    if host in ("localhost", "ip6-localhost"):
        return "::1"
    if host == "<broadcast>":
        raise OSError("address family mismatched")
    text, pct, zone = host.partition("%")
    try:
        packed = _pysocket.inet_pton(_pysocket.AF_INET6, text)
    except OSError:
        try:
            _pysocket.inet_pton(_pysocket.AF_INET, text)
        except OSError:                  # a name: its first IPv6 address on the emulated host
            return _netdb.getaddrinfo(text, None, AF_INET6, netns=netns)[0][4][0]
        raise _pysocket.gaierror(EAI_ADDRFAMILY, "Address family for hostname not supported") from None
    if pct:
        scope_index(netns, zone)
    return _pysocket.inet_ntop(_pysocket.AF_INET6, packed)


def _inet6_addr(address, what: str, netns: str) -> socket_pb2.SockAddr:
    """(host, port[, flowinfo[, scope_id]]), checked as Python checks it."""
    if not isinstance(address, tuple):
        raise TypeError(f"{what}: AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host, port, flowinfo, scope_id = (tuple(address) + (0, 0))[:4]
    for v in (port, flowinfo, scope_id):
        if not isinstance(v, int):
            raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}: port must be 0-65535.")
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{what}: flowinfo must be 0-1048575.")
    return socket_pb2.SockAddr(host=_host6(host, netns), port=port, flowinfo=flowinfo,
                               scope_id=scope_id & 0xFFFFFFFF)


def _inet_addr(address, what: str, netns: str) -> socket_pb2.SockAddr:
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    host, port = address
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}: port must be 0-65535.")
    return socket_pb2.SockAddr(host=_host(host, netns), port=port)


def _packet_addr(address, what: str) -> socket_pb2.SockAddr:
    if not isinstance(address, tuple) or not 2 <= len(address) <= 5:
        raise TypeError("AF_PACKET address must be a tuple of two to five elements")
    ifname, proto, *rest = address
    a = socket_pb2.SockAddr(ifname=ifname, proto=proto)
    if rest:
        a.pkttype = rest[0]
    if len(rest) > 1:
        a.hatype = rest[1]
    if len(rest) > 2:
        a.haddr = bytes(rest[2])
    return a


def _enum(kind, value: int):
    """AF_INET as socket.AddressFamily.AF_INET, SOCK_STREAM as SocketKind.SOCK_STREAM (Python's
    socket.family and .type), a number that is neither as itself."""
    try:
        return kind(value)
    except ValueError:
        return value


def _bytes(data) -> bytes:
    if isinstance(data, str) or not hasattr(data, "__len__"):
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
    return bytes(data)


class _FileLike:
    """What every socket object of the SDK does alike: its timeout (None:
    blocking, 0: non-blocking) and its life as a context manager."""
    _timeout = None

    def settimeout(self, timeout):
        self._timeout = _check_timeout(timeout)

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag: bool):
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class socket(_FileLike):
    """A socket on an emulated host (network namespace `netns`), with the
    methods and errors of Python's socket.socket."""

    def __new__(cls, family: int = AF_INET, *args, **kwargs):
        if family == AF_XDP and cls is socket:       # served by the nic service, not the socket service
            from ._xsk import xdp_socket
            return xdp_socket(family, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, family: int = AF_INET, type: int = SOCK_DGRAM, proto: int = 0, *, netns: str,
                 fileno: int | None = None, _fd: int | None = None, _refs: list | None = None):
        self._stub = _client.stub(netns)            # the socket service of the host's shard
        if fileno is not None:             # a descriptor detach() let go of (or a dup of one)
            d = _poll.lookup(fileno)
            if d is None or d.key[0] != _client.session():
                raise _poll.ebadf()
            _fd = d.key[1]
        if _fd is None:
            reply = self._call(self._stub.Create, socket_pb2.CreateRequest(
                netns=netns, family=family, type=type, protocol=proto, pid=os.getpid()))
            _client.check(reply.status)
            _fd = reply.fd
        self._fd = _fd
        if fileno is not None:             # what the socket is, as Python asks the kernel for a descriptor
            family, type, proto = (self._getopt(o) for o in (SO_DOMAIN, SO_TYPE, SO_PROTOCOL))
        self.family, self.type = _enum(_pysocket.AddressFamily, family), _enum(_pysocket.SocketKind, type)
        self.proto, self.netns = proto, netns
        self._timeout = getdefaulttimeout()
        self._closed = False
        self._user_closed = False          # close() called, the service socket kept for open makefile()s
        self._io_refs = 0
        self._refs = _refs if _refs is not None else [1]   # objects (dup()) sharing the service socket

    def _wait_arg(self, flags: int = 0) -> float:
        """How long the service may block for this call: -1 forever, 0 not at all."""
        if flags & MSG_DONTWAIT or self._timeout == 0:
            return 0.0
        return -1.0 if self._timeout is None else self._timeout

    def _call(self, method, request):
        """A call to the socket service of the socket's shard (_client.call)."""
        return _client.call(method, request, at=self._stub.endpoint)

    def _blocking_call(self, method, request):
        """A call that may block in the service: polled so that Ctrl-C interrupts it."""
        fut = method.future(request)
        try:
            while True:
                try:
                    return fut.result(timeout=0.25)
                except grpc.FutureTimeoutError:
                    continue
        except grpc.RpcError as e:
            raise _client.unreachable(e, self._stub.endpoint) from None
        except BaseException:
            fut.cancel()
            raise

    def _raise_wait(self, status):
        """EAGAIN after waiting is a timeout, as Python's socket reports it."""
        if status.err == errno.EAGAIN and self._timeout:
            _client.ready(status)
            raise TimeoutError("timed out")
        _client.check(status)

    # -- plumbing
    def _addr(self, address, what):
        if self.family == AF_INET6:
            return _inet6_addr(address, what, self.netns)
        return _packet_addr(address, what) if self.family == AF_PACKET else _inet_addr(address, what, self.netns)

    def _fdcheck(self):
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")

    def _name(self, a: socket_pb2.SockAddr):
        if self.family == AF_PACKET:
            return (a.ifname, a.proto, a.pkttype, a.hatype, a.haddr)
        if self.family == AF_INET6:
            return (a.host or "::", a.port, a.flowinfo, a.scope_id)
        return (a.host or "0.0.0.0", a.port)

    # -- the calls
    def bind(self, address):
        self._fdcheck()
        r = self._call(self._stub.Bind, socket_pb2.AddrRequest(fd=self._fd, addr=self._addr(address, "bind()")))
        _client.check(r.status)

    def connect(self, address):
        self._fdcheck()
        if self.family in (AF_INET, AF_INET6) and isinstance(address, tuple) and address and \
                address[0] == AF_UNSPEC:
            addr = socket_pb2.SockAddr(ifname="AF_UNSPEC")
        else:
            addr = self._addr(address, "connect()")
        r = self._blocking_call(self._stub.Connect, socket_pb2.AddrRequest(fd=self._fd, addr=addr,
                                                                           timeout=self._wait_arg()))
        if r.status.err == errno.ETIMEDOUT and r.status.detail == "timed out":
            _client.ready(r.status)
            raise TimeoutError("timed out")
        _client.check(r.status)

    def listen(self, backlog: int = 128):
        self._fdcheck()
        _client.check(self._call(self._stub.Listen, socket_pb2.FdRequest(fd=self._fd, how=backlog)))

    def accept(self):
        """(a new socket for the connection, the peer's address)."""
        self._fdcheck()
        r = self._blocking_call(self._stub.Accept, socket_pb2.FdRequest(fd=self._fd, timeout=self._wait_arg()))
        self._raise_wait(r.status)
        conn = socket(self.family, self.type, self.proto, netns=self.netns, _fd=r.fd)
        conn._stub = self._stub                  # the listener's service holds it
        conn._timeout = getdefaulttimeout()
        return conn, self._name(r.addr)

    def shutdown(self, how: int):
        self._fdcheck()
        _client.check(self._call(self._stub.Shutdown, socket_pb2.FdRequest(fd=self._fd, how=how)))

    def connect_ex(self, address) -> int:
        try:
            self.connect(address)
        except OSError as e:
            if e.errno is None:
                raise
            return e.errno
        return 0

    def sendmmsg(self, msgs, flags: int = 0) -> int:
        """sendmmsg(2): a list of (data, address or None); returns how many were sent."""
        self._fdcheck()
        req = socket_pb2.SendRequest(fd=self._fd, flags=flags)
        for data, address in msgs:
            d = req.msgs.add(data=_bytes(data))
            if address is not None:
                d.addr.CopyFrom(self._addr(address, "sendto()"))
        r = self._call(self._stub.SendMsg, req)
        _client.check(r.status)
        return r.sent

    def send(self, data, flags: int = 0) -> int:
        if self.type == SOCK_STREAM:
            return self._stream_send(data, flags)
        n = len(_bytes(data))
        self.sendmmsg([(data, None)], flags)
        return n

    def _stream_send(self, data, flags: int) -> int:
        self._fdcheck()
        req = socket_pb2.SendRequest(fd=self._fd, flags=flags, timeout=self._wait_arg(flags))
        req.msgs.add(data=_bytes(data))
        r = self._blocking_call(self._stub.SendMsg, req)
        self._raise_wait(r.status)
        return r.sent

    def sendmsg(self, buffers, ancdata=(), flags: int = 0, address=None) -> int:
        """sendmsg(2) without control messages (none is modelled for sending: EINVAL)."""
        if ancdata:
            raise OSError(errno.EINVAL, "pktflow: sendmsg() takes no ancillary data")
        data = b"".join(_bytes(b) for b in buffers)
        return self.send(data, flags) if address is None else self.sendto(data, flags, address)

    def sendto(self, data, flags_or_address, address=None) -> int:
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = flags_or_address
        n = len(_bytes(data))
        self.sendmmsg([(data, address)], flags)
        return n

    def sendall(self, data, flags: int = 0) -> None:
        data = memoryview(_bytes(data))
        if self.type != SOCK_STREAM:
            self.send(data, flags)
            return
        deadline = None if not self._timeout else time.monotonic() + self._timeout
        while len(data):
            # pieces of 4 MiB; all but the last say more follows (MSG_MORE), so the
            # stack cuts segments as from the one write Python's sendall() makes
            n = self._stream_send(data[:1 << 22], flags | (MSG_MORE if len(data) > 1 << 22 else 0))
            data = data[n:]
            if deadline is not None and len(data) and time.monotonic() > deadline:
                raise TimeoutError("timed out")

    def recvmmsg(self, count: int, bufsize: int = 65535, flags: int = 0) -> list:
        """recvmmsg(2) with MSG_WAITFORONE: waits for one datagram (as the
        timeout allows), then takes up to `count` that are queued.
        Returns a list of (data, address)."""
        return [(d.data, self._name(d.addr)) for d in self._recv(count, bufsize, flags)]

    def _recv(self, count: int, bufsize: int, flags: int):
        self._fdcheck()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        timeout = self._timeout
        if flags & MSG_DONTWAIT:
            timeout = 0.0
        req = socket_pb2.RecvRequest(fd=self._fd, max=count, bufsize=bufsize, flags=flags,
                                     timeout=-1.0 if timeout is None else timeout)
        r = self._blocking_call(self._stub.RecvMsg, req)
        if r.status.err == errno.EAGAIN and timeout and not flags & MSG_DONTWAIT:
            _client.ready(r.status)
            raise TimeoutError("timed out")
        _client.check(r.status)
        return r.msgs

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._recv(1, bufsize, flags)[0].data

    def recvfrom(self, bufsize: int, flags: int = 0):
        d = self._recv(1, bufsize, flags)[0]
        return d.data, self._name(d.addr)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer), flags)
        buffer[:len(data)] = data
        return len(data)

    def recvfrom_into(self, buffer, nbytes: int = 0, flags: int = 0):
        data, addr = self.recvfrom(nbytes or len(buffer), flags)
        buffer[:len(data)] = data
        return len(data), addr

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0):
        """recvmsg(2): (data, ancdata, msg_flags, address). Control messages:
        IP_TTL and IP_TOS when IP_RECVTTL/IP_RECVTOS are on (IPV6_HOPLIMIT and
        IPV6_TCLASS with IPV6_RECVHOPLIMIT/IPV6_RECVTCLASS for an IPv6 datagram);
        with MSG_ERRQUEUE, IP_RECVERR (IPV6_RECVERR on an AF_INET6 socket)
        carrying struct sock_extended_err and the offender's sockaddr_in(6)."""
        d = self._recv(1, bufsize, flags)[0]
        anc = []
        msg_flags = MSG_TRUNC if d.truncated else 0
        if flags & MSG_ERRQUEUE:
            ee = d.ee
            head = struct.pack("<IBBBBII", ee.ee_errno, ee.ee_origin, ee.ee_type, ee.ee_code, 0, ee.ee_info, 0)
            if self.family == AF_INET6:
                offender = struct.pack("<HHI16sI", AF_INET6, 0, 0, _pysocket.inet_pton(_pysocket.AF_INET6,
                                                                                      ee.offender), 0)
                anc.append((IPPROTO_IPV6, IPV6_RECVERR, head + offender))
            else:
                offender = struct.pack("<HH4s8x", AF_INET, 0, _pysocket.inet_aton(ee.offender))
                anc.append((IPPROTO_IP, IP_RECVERR, head + offender))
            msg_flags |= MSG_ERRQUEUE
        elif self.family == AF_INET or self.family == AF_INET6 and d.addr.host.startswith("::ffff:") and \
                "." in d.addr.host:
            if self.getsockopt(IPPROTO_IP, IP_RECVTTL):
                anc.append((IPPROTO_IP, IP_TTL, struct.pack("i", d.ttl)))
            if self.getsockopt(IPPROTO_IP, IP_RECVTOS):
                anc.append((IPPROTO_IP, IP_TOS, bytes((d.tos,))))
        elif self.family == AF_INET6:           # ip6_datagram_recv_specific_ctl()
            if self.getsockopt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT):
                anc.append((IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", d.ttl)))
            if self.getsockopt(IPPROTO_IPV6, IPV6_RECVTCLASS):
                anc.append((IPPROTO_IPV6, IPV6_TCLASS, struct.pack("i", d.tos)))
        return d.data, anc, msg_flags, self._name(d.addr)

    def recv_datagrams(self, count: int = 1, bufsize: int = 65535, flags: int = 0):
        """The received datagrams with their metadata (ttl, tos, tstamp, ee)."""
        return list(self._recv(count, bufsize, flags))

    # -- options and names
    def setsockopt(self, level: int, optname: int, value, optlen=None) -> None:
        """An int, or bytes: struct linger for SO_LINGER, a name for TCP_CONGESTION,
        the struct sock_filter array (`tcpdump -dd`'s, packed) for SO_ATTACH_FILTER,
        else the int's four bytes (as Python passes a buffer to setsockopt(2))."""
        self._fdcheck()
        req = socket_pb2.SockOptRequest(fd=self._fd, level=level, optname=optname)
        if isinstance(value, (bytes, bytearray, memoryview)):
            req.bvalue, req.is_bytes = bytes(value), True
            if len(value) >= 4:
                req.value = int.from_bytes(bytes(value)[:4], "little", signed=True)
            elif (level, optname) not in ((IPPROTO_TCP, TCP_CONGESTION),):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        elif isinstance(value, int):
            req.value = int(value)             # a bool too, as Python takes it
        else:
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
        if req.is_bytes and (level, optname) not in ((SOL_SOCKET, SO_LINGER), (IPPROTO_TCP, TCP_CONGESTION),
                                                     (SOL_SOCKET, SO_ATTACH_FILTER)):
            req.is_bytes = False
        r = self._call(self._stub.SetSockOpt, req)
        _client.check(r.status)

    def getsockopt(self, level: int, optname: int, buflen: int = 0):
        self._fdcheck()
        r = self._call(self._stub.GetSockOpt, socket_pb2.SockOptRequest(fd=self._fd, level=level,
                                                                           optname=optname, buflen=buflen))
        _client.check(r.status)
        if r.bvalue:
            return r.bvalue[:buflen] if buflen else int.from_bytes(r.bvalue[:4], "little", signed=True)
        if buflen:
            return r.value.to_bytes(4, "little", signed=True)[:buflen]
        return r.value

    def _getopt(self, optname: int) -> int:
        r = self._call(self._stub.GetSockOpt, socket_pb2.SockOptRequest(fd=self._fd, level=SOL_SOCKET,
                                                                           optname=optname))
        _client.check(r.status)
        return r.value

    def getsockname(self):
        self._fdcheck()
        r = self._call(self._stub.GetSockName, socket_pb2.FdRequest(fd=self._fd))
        _client.check(r.status)
        return self._name(r.addr)

    def getpeername(self):
        self._fdcheck()
        r = self._call(self._stub.GetPeerName, socket_pb2.FdRequest(fd=self._fd))
        _client.check(r.status)
        return self._name(r.addr)

    # -- life cycle
    def fileno(self) -> int:
        """A descriptor of this process that select(), poll(), selectors and asyncio
        can wait on: readable and writable when the socket is (_poll)."""
        if self._closed:
            return -1
        return _poll.descriptor(self._key(), self._poll).fd

    def _key(self) -> tuple:
        return _client.session(), self._fd

    def _poll(self):
        r = self._call(self._stub.Poll, socket_pb2.FdRequest(fd=self._fd))
        if r.err:
            _client.check(r)
        return r.ready

    @property
    def timeout(self):
        return self._timeout

    def close(self):
        """As CPython's: the socket is closed once no makefile() object uses it;
        the service's socket once no dup() of it is open."""
        self._user_closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self):
        if self._closed:
            return
        self._closed = True
        self._refs[0] -= 1
        if self._refs[0] > 0:
            return
        _poll.release(self._key())
        try:
            self._stub.Close(socket_pb2.FdRequest(fd=self._fd), timeout=5)
        except grpc.RpcError:
            pass                       # the service is gone: so is the socket

    def _decref_socketios(self):
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._user_closed:
            self.close()

    def dup(self):
        """Another socket object for the same service socket (as dup(2) gives another
        descriptor for one file): the service's socket closes when the last of them does."""
        self._fdcheck()
        self._refs[0] += 1
        twin = socket(self.family, self.type, self.proto, netns=self.netns, _fd=self._fd, _refs=self._refs)
        twin._timeout = self._timeout
        return twin

    def detach(self) -> int:
        """This object lets go of the socket without closing it and returns its
        descriptor (fileno()), which socket(..., fileno=n) takes up again."""
        if self._closed:
            return -1
        fd = self.fileno()
        self._closed = self._user_closed = True
        self._refs[0] -= 1
        return fd

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        """A file object over the socket, as CPython's socket.makefile(): a SocketIO
        (recv_into/send) under io's BufferedReader/Writer/RWPair and TextIOWrapper."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing, reading, binary = "w" in mode, "r" in mode or "w" not in mode, "b" in mode
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        from ._socketio import SocketIO
        raw = SocketIO(self, rawmode)
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buf = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buf = io.BufferedReader(raw, buffering)
        else:
            buf = io.BufferedWriter(raw, buffering)
        if binary:
            return buf
        text = io.TextIOWrapper(buf, encoding, errors, newline)
        text.mode = mode
        return text

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """Sends the file's bytes with send() (CPython's _sendfile_use_send fallback)."""
        self._fdcheck()
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if self.type != SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None and (not isinstance(count, int) or count <= 0):
            raise ValueError(f"count must be a positive integer (got {count!r})")
        if offset:
            file.seek(offset)
        total = 0
        try:
            while count is None or total < count:
                want = 8192 if count is None else min(8192, count - total)
                data = file.read(want)
                if not data:
                    break
                self.sendall(data)
                total += len(data)
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<pktflow.socket {state}, netns={self.netns!r}, family={self.family}, type={self.type}>"


def wait_ready(timeout: float = 30.0) -> None:
    """Waits until the socket service answers (for scripts started with the stack)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            grpc.channel_ready_future(_client.channel()).result(timeout=max(0.1, deadline - time.monotonic()))
            return
        except grpc.FutureTimeoutError:
            raise OSError(errno.ENETDOWN, f"pktflow: no socket service at {_client.endpoint()}") from None
