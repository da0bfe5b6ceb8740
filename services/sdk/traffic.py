"""`pktflow traffic`: a gentle, endless mix of traffic between two hosts, so a
freshly started stack has packet journeys to look at (the compose file runs it).

Each round: one ping, one UDP datagram echoed back, one TCP connection that
sends a request and reads a reply, then a pause. A stack that is not up yet, or
a layer restarting, costs a failed round, never the generator."""
import contextlib
import time

from . import _socket as so
from ._ping import ping

UDP_PORT = 7000
TCP_PORT = 8080


def _ping(src: str, dst: str, addr: str, n: int, timeout: float):
    if not ping(addr, netns=src, count=1, timeout=timeout).received:
        raise TimeoutError("no echo reply")


def _udp(src: str, dst: str, addr: str, n: int, timeout: float):
    with so.socket(so.AF_INET, so.SOCK_DGRAM, netns=dst) as srv, so.socket(so.AF_INET, so.SOCK_DGRAM, netns=src) as cli:
        srv.settimeout(timeout)
        cli.settimeout(timeout)
        srv.bind((addr, UDP_PORT))
        cli.sendto(b"pktflow traffic %d" % n, (addr, UDP_PORT))
        data, peer = srv.recvfrom(2048)
        srv.sendto(data.upper(), peer)
        if cli.recv(2048) != data.upper():
            raise OSError("udp: the echo came back different")


def _tcp(src: str, dst: str, addr: str, n: int, timeout: float):
    with contextlib.ExitStack() as socks:
        lst = socks.enter_context(so.socket(so.AF_INET, so.SOCK_STREAM, netns=dst))
        lst.settimeout(timeout)
        lst.setsockopt(so.SOL_SOCKET, so.SO_REUSEADDR, 1)
        lst.bind((addr, TCP_PORT))
        lst.listen(4)
        cli = socks.enter_context(so.socket(so.AF_INET, so.SOCK_STREAM, netns=src))
        cli.settimeout(timeout)
        cli.connect((addr, TCP_PORT))
        conn, _ = lst.accept()
        conn = socks.enter_context(conn)
        conn.settimeout(timeout)
        request = b"GET /%d HTTP/1.0\r\n\r\n" % n
        cli.sendall(request)
        got = b""
        while len(got) < len(request):
            chunk = conn.recv(4096)
            if not chunk:
                raise OSError("tcp: the connection closed early")
            got += chunk
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.shutdown(so.SHUT_WR)
        reply = b""
        while chunk := cli.recv(4096):
            reply += chunk
        if not reply.endswith(b"ok"):
            raise OSError("tcp: a short reply")


def run(src: str = "h1", dst: str = "h2", addr: str = "10.0.2.10", interval: float = 1.0, rounds: int = 0,
        timeout: float = 3.0, log=print) -> dict:
    """Runs `rounds` rounds (0: until interrupted); returns the count of good and failed steps."""
    stats = {"ok": 0, "failed": 0}
    n = 0
    while not rounds or n < rounds:
        n += 1
        results = []
        for name, step in (("ping", _ping), ("udp", _udp), ("tcp", _tcp)):
            try:
                step(src, dst, addr, n, timeout)
                results.append(f"{name} ok")
                stats["ok"] += 1
            except OSError as e:
                results.append(f"{name} failed ({e.strerror or e})")
                stats["failed"] += 1
        log(f"round {n}: {src} -> {dst} {addr}: {', '.join(results)}")
        if not rounds or n < rounds:
            time.sleep(interval)
    return stats
