"""Names on an emulated host, as an offline resolver with /etc/hosts gives them:
numeric addresses, `localhost`, and the running stack's host names (a host ->
its interfaces' global addresses, IPv4 then IPv6: Topology.hosts_file(), asked of
the socket service once per endpoint). Anything else is gaierror(EAI_NONAME)."""
import ipaddress
import json
import socket as _pysocket
import threading

from . import _client
from .services.common.uapi import AF_INET, AF_INET6, AF_UNSPEC, SOCK_DGRAM, SOCK_STREAM

_NONAME = (_pysocket.EAI_NONAME, "Name or service not known")
_lock = threading.Lock()
_known: dict[str, dict[str, list[str]]] = {}     # endpoint -> the stack's hosts file


def forget() -> None:
    with _lock:
        _known.clear()


def _hosts() -> dict[str, list[str]]:
    """name -> addresses of the stack the SDK talks to (EAI_AGAIN when it cannot be asked)."""
    ep = _client.endpoint()
    with _lock:
        names = _known.get(ep)
    if names is None:
        try:
            names = json.loads(_client.admin("socket", "", "hosts").json)
        except OSError:
            raise _pysocket.gaierror(_pysocket.EAI_AGAIN, "Temporary failure in name resolution") from None
        with _lock:
            _known[ep] = names
    return names


def _numeric(host: str):
    try:
        return [str(ipaddress.ip_address(host.partition("%")[0]))], host
    except ValueError:
        return None, host


def resolve(host, netns: str | None = None) -> list[str]:
    """The addresses of `host` (numeric, localhost, or a topology host name). `netns`
    is the asking host: every host sees the same names, as with one /etc/hosts."""
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode()
    addrs, _ = _numeric(host)
    if addrs:
        return [host] if "%" in host else addrs
    found = _hosts().get(host.lower().rstrip("."))
    if not found:
        raise _pysocket.gaierror(*_NONAME)
    return list(found)


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0, *, netns: str | None = None):
    """[(family, type, proto, canonname, sockaddr)] as socket.getaddrinfo gives them."""
    if isinstance(port, str):
        port = int(port) if port.isdigit() else _pysocket.getservbyname(port)
    port = port or 0
    if host is None:
        passive = flags & _pysocket.AI_PASSIVE
        addrs = ["::", "0.0.0.0"] if passive else ["::1", "127.0.0.1"]
    else:
        if flags & _pysocket.AI_NUMERICHOST and _numeric(host)[0] is None:
            raise _pysocket.gaierror(*_NONAME)
        addrs = resolve(host, netns)
    types = [type] if type else [SOCK_STREAM, SOCK_DGRAM]
    out = []
    for a in addrs:
        fam = AF_INET6 if ":" in a else AF_INET
        if family not in (0, AF_UNSPEC, fam):
            continue
        for t in types:
            p = proto or (6 if t == SOCK_STREAM else 17)
            sa = (a.partition("%")[0], port, 0, 0) if fam == AF_INET6 else (a, port)
            out.append((_pysocket.AddressFamily(fam), _pysocket.SocketKind(t), p, "", sa))
    if not out:
        raise _pysocket.gaierror(_pysocket.EAI_ADDRFAMILY if hasattr(_pysocket, "EAI_ADDRFAMILY") else -9,
                                 "Address family for hostname not supported")
    return out


def gethostbyname(host, *, netns: str | None = None) -> str:
    return gethostbyname_ex(host, netns=netns)[2][0]


def gethostbyname_ex(host, *, netns: str | None = None):
    v4 = [a for a in resolve(host, netns) if ":" not in a]
    if not v4:
        raise _pysocket.gaierror(*_NONAME)
    return host, [], v4


def gethostbyaddr(host, *, netns: str | None = None):
    """(name, aliases, [address]) for a topology host's address (or name); herror otherwise."""
    addr = resolve(host, netns)[0]
    for name, listed in _hosts().items():
        if addr in listed:
            return name, [], [addr]
    raise _pysocket.herror(1, "Unknown host")


def getnameinfo(sockaddr, flags: int, *, netns: str | None = None):
    """(host, port): the topology's name for the address unless NI_NUMERICHOST."""
    host, port = sockaddr[0], sockaddr[1]
    addrs, _ = _numeric(host)
    if addrs is None:
        raise _pysocket.gaierror(*_NONAME)
    name = addrs[0]
    if not flags & _pysocket.NI_NUMERICHOST:
        for n, listed in _hosts().items():
            if name in listed:
                name = n
                break
        else:
            if flags & _pysocket.NI_NAMEREQD:
                raise _pysocket.gaierror(*_NONAME)
    return name, str(port)
