"""The socket object and module functions that code written for Python's socket
module needs (makefile, create_connection, create_server, dup, sendfile, names),
through the five real services: http.client fetching from a server on h2."""
import contextlib
import http.client
import io
import itertools
import threading

import pytest

import pktflow
from conftest import eventually

pytestmark = pytest.mark.integration
_ports = itertools.count(31500)


@contextlib.contextmanager
def serving(handler, *, host="10.0.2.10", family=pktflow.AF_INET, dualstack=False):
    """create_server() on h2 running `handler(conn)` for each connection in a thread;
    yields the port, and at the end closes the listener and raises what a handler raised."""
    port = next(_ports)
    srv = pktflow.create_server((host, port), family=family, dualstack_ipv6=dualstack, netns="h2")
    errors = []

    def one(conn):
        with conn:
            conn.settimeout(30)
            try:
                handler(conn)
            except Exception as e:
                errors.append(e)

    def accepting():
        with contextlib.suppress(OSError):
            while srv.fileno() >= 0:
                threading.Thread(target=one, args=(srv.accept()[0],), daemon=True).start()
    threading.Thread(target=accepting, daemon=True).start()
    try:
        yield port
    finally:
        srv.close()
    assert not errors, errors


def http_handler(conn):
    """A tiny HTTP/1.1 server over makefile('rb') and makefile('wb')."""
    rfile, wfile = conn.makefile("rb"), conn.makefile("wb")
    request = rfile.readline()
    while rfile.readline() not in (b"\r\n", b""):
        pass
    body = b"hello from h2: " + request.split()[1]
    wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    wfile.flush()
    rfile.close()
    wfile.close()


def test_http_client_over_create_connection(stack):
    with serving(http_handler) as port:
        fetch(port)


def fetch(port):
    conn = http.client.HTTPConnection("h2", port, timeout=30)
    conn.sock = pktflow.create_connection(("h2", port), timeout=30, netns="h1")
    assert conn.sock.family == pktflow.AF_INET          # h2's first address is 10.0.2.10
    conn.request("GET", "/index.txt")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"hello from h2: /index.txt"
    conn.close()


def test_makefile_readline_text_and_close_order(stack):
    def lines(conn):
        with conn.makefile("w", encoding="utf-8", newline="\n") as f:
            f.write("one\ntwo\nthree")
    with serving(lines) as port, pktflow.create_connection(("10.0.2.10", port), 30, netns="h1") as c:
        f = c.makefile("r", encoding="utf-8")
        c.close()                                     # the file keeps the socket open, as in CPython
        assert f.readline() == "one\n" and f.readline() == "two\n" and f.read() == "three"
        f.close()
        assert c.fileno() == -1


def test_dup_sendfile_recv_into(stack):
    got = []

    def reader(conn):
        buf = bytearray(1 << 16)
        data = b""
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            data += buf[:n]
        got.append(data)
    payload = bytes(range(256)) * 100
    with serving(reader) as port:
        c = pktflow.create_connection(("h2", port), 30, netns="h1")
        twin = c.dup()
        c.close()                                      # the dup keeps the connection
        assert twin.sendfile(io.BytesIO(payload), 10, 5000) == 5000
        twin.close()
        eventually(lambda: got, timeout=30)
    assert got == [payload[10:5010]]


def test_create_server_dualstack_takes_both_families(stack):
    peers = []

    def who(conn):
        peers.append(conn.getpeername()[0])
        conn.sendall(b"ok")
    with serving(who, host="", family=pktflow.AF_INET6, dualstack=True) as port:
        for host in ("10.0.2.10", "2001:db8:2::10"):
            with pktflow.create_connection((host, port), 30, netns="h1") as c:
                assert c.makefile("rb").read() == b"ok"
    assert sorted(peers) == ["2001:db8:1::10", "::ffff:10.0.1.10"]


def test_names(stack):
    infos = pktflow.getaddrinfo("h2", 80, type=pktflow.SOCK_STREAM, netns="h1")
    assert [sa[0] for *_, sa in infos] == ["10.0.2.10", "2001:db8:2::10"]
    assert pktflow.gethostbyname("h2", netns="h1") == "10.0.2.10"
    assert {sa[0] for *_, sa in pktflow.getaddrinfo("localhost", 0, netns="h1")} == {"127.0.0.1", "::1"}
    assert pktflow.getnameinfo(("2001:db8:2::10", 80), 0, netns="h1") == ("h2", "80")
    with pytest.raises(pktflow.gaierror) as e:
        pktflow.getaddrinfo("www.example.com", 80, netns="h1")
    assert e.value.errno == pktflow.EAI_NONAME
    with pytest.raises(pktflow.gaierror):
        pktflow.create_connection(("nowhere", 80), 5, netns="h1")
