"""pktflow: the Linux kernel's network stack as gRPC services, every packet traced.

The SDK mirrors Python's socket module on emulated hosts:

    import pktflow
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2")
    srv.bind(("10.0.2.10", 7000))
    six = pktflow.socket(pktflow.AF_INET6, pktflow.SOCK_STREAM, netns="h1")   # (host, port, flowinfo, scope_id)

Programs written for Python's own socket module run on an emulated host with
`pktflow exec -n h1 -- python3 prog.py`, or inside a process with
`with pktflow.netns("h1"): ...` (or pktflow.patch("h1")).

It talks to the socket service at PKTFLOW_ENDPOINT (default localhost:50051).
"""
from ._capture import Capture, capture
from ._ping import PingError, PingResult, Reply, ping
from . import _socket
from ._socket import getdefaulttimeout, htons, ntohs, setdefaulttimeout, socket, wait_ready
from ._socketio import SocketIO, create_connection, create_server, has_dualstack_ipv6
from ._netdb import getaddrinfo, gethostbyaddr, gethostbyname, gethostbyname_ex, getnameinfo
from ._patch import netns, patch, unpatch
from . import _ssl  # noqa: F401  (SSLContext.wrap_socket takes pktflow sockets)
from ._xsk import xdp_socket, xsk

# The socket module's constants: AF_INET, SOCK_DGRAM, SO_RCVBUF, IP_TTL, ...
globals().update({k: v for k, v in vars(_socket).items() if k.isupper()})

timeout = TimeoutError
error = OSError
gaierror = _socket._pysocket.gaierror
has_ipv6 = True
# getaddrinfo()'s flags and errors, getnameinfo()'s flags
globals().update({k: v for k, v in vars(_socket._pysocket).items() if k.startswith(('AI_', 'EAI_', 'NI_'))})

__all__ = ["socket", "xsk", "xdp_socket", "ping", "capture", "Capture", "PingResult", "PingError", "Reply",
           "wait_ready", "getdefaulttimeout", "setdefaulttimeout", "htons", "ntohs", "timeout", "error", "gaierror",
           "has_ipv6", "SocketIO", "create_connection", "create_server", "has_dualstack_ipv6", "getaddrinfo",
           "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "netns", "patch", "unpatch"]
