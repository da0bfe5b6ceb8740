"""Unmodified Python network programs on emulated hosts (issue 17): the standard
library's own servers and clients (http.server, urllib, asyncio, selectors,
socketserver, select) and a third-party client (requests), run in this process
with the socket module routed by pktflow.netns(), and whole programs run with
`pktflow exec`; their packets are checked where the emulator records them (the
trace store, the counters, the socket table)."""
import asyncio
import contextlib
import errno
import functools
import hashlib
import http.server
import itertools
import json
import os
import select
import selectors
import shutil
import signal
import socket
import socketserver
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import pktflow
from conftest import counters, eventually, issue_certificate
from pktflow import _client
from pktflow import tracequery as tq

pytestmark = pytest.mark.integration
_ports = itertools.count(33700)
H1, H2 = "10.0.1.10", "10.0.2.10"
SHUTDOWN_DEADLINE = 5.0             # serve_forever() polls every 0.5 s: shutdown() returns within one poll
REAL_SOCKET = socket.socket         # the module's own, as imported before any patch


@pytest.fixture(autouse=True)
def _routing_restored(monkeypatch):
    """No proxy from the environment in the way (urllib and requests honour *_proxy), and every test
    leaves the socket module as it found it: the real one."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    yield
    routed = pktflow._patch.current()
    while pktflow._patch.current() is not None:
        pktflow.unpatch()
    assert routed is None, f"a test left the socket module routed to {routed}"
    assert socket.socket is REAL_SOCKET


# -- helpers
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler as shipped, without its access log on stderr; notes each client."""
    peers: list = []

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.peers.append(self.client_address)


def stop_server(srv, thread: threading.Thread) -> float:
    """shutdown() (in a helper thread, so a hang is a failure and not a hung session), then
    server_close(); returns how long shutdown() took."""
    t0 = time.monotonic()
    stopper = threading.Thread(target=srv.shutdown, daemon=True)
    stopper.start()
    stopper.join(SHUTDOWN_DEADLINE)
    took = time.monotonic() - t0
    hung = stopper.is_alive()
    srv.server_close()
    thread.join(SHUTDOWN_DEADLINE)
    assert not hung, f"server.shutdown() did not return in {SHUTDOWN_DEADLINE} s (serve_forever stuck)"
    assert not thread.is_alive()
    return took


@contextlib.contextmanager
def http_server(directory, host: str = "h2", addr: str = H2, tls: ssl.SSLContext | None = None):
    """http.server.ThreadingHTTPServer serving `directory` on an emulated host (over TLS with
    `tls`, as its documentation has it: the listening socket wrapped); yields (port, peers)."""
    port = next(_ports)
    handler = type("Handler", (QuietHandler,), {"peers": []})
    with pktflow.netns(host):
        srv = http.server.ThreadingHTTPServer((addr, port), functools.partial(handler, directory=str(directory)))
        if tls:
            srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, name=f"http.server:{port}", daemon=True)
    thread.start()
    try:
        yield port, handler.peers
    finally:
        stop_server(srv, thread)


def flow_trace(port: int, client_port: int | None, host: str = "h2", op: str = "tcp_data_queue"):
    """A trace whose transport span `op` on `host` belongs to the flow client_port (None: any) -> port
    and which crossed r1 (ip_forward), once every hop reached the store."""
    tags = {"pktflow.netns": host, "destination.port": port} | ({"source.port": client_port} if client_port else {})

    def find():
        for tr in tq.find(service="transport", operation=op, tags=tags):
            spans = tq.journey(tr)
            hops = [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in spans]
            if ("ip", "r1", "ip_forward") in hops and ("transport", host, op) in hops:
                return tr
        return None
    return eventually(find, timeout=20, interval=0.2)


def assert_crossed_router(tr, src: str, dst: str):
    fwd = [s for s in tq.journey(tr) if s["operationName"] == "ip_forward"]
    assert fwd and all(tq.tag(s, "pktflow.netns") == "r1" for s in fwd)
    assert (tq.tag(fwd[0], "source.address"), tq.tag(fwd[0], "destination.address")) == (src, dst)
    assert tq.tag(fwd[0], "network.transport") == "tcp"


def sockets_of(host: str) -> list[dict]:
    return json.loads(_client.admin("socket", host, "sockets").json)


def listening_on(host: str, port: int) -> bool:
    return any(r["local"][1] == port and not r["connected"] and r["proto"] == socket.IPPROTO_TCP
               for r in sockets_of(host))


def pktflow_cli() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "pktflow")
    return [script] if os.path.exists(script) else [shutil.which("pktflow") or pytest.skip("no pktflow script")]


def exec_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    assert env["PKTFLOW_ENDPOINT"]              # the stack fixture's
    return env


def run_exec(host: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(pktflow_cli() + ["exec", "-n", host, "--", *command], env=exec_env(),
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def exec_process(host: str, *command: str):
    """`pktflow exec -n host -- command` in the background, stopped (TERM, then KILL) at the end."""
    proc = subprocess.Popen(pktflow_cli() + ["exec", "-n", host, "--", *command], env=exec_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        stop(proc)
        proc.stdout.close()
        proc.stderr.close()


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """Ends the process (`sig`, then KILL after 10 s) and reaps it; its pipes stay readable."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- http.server and urllib across the router
def test_http_server_and_urllib_across_the_router(stack, tmp_path):
    body = os.urandom(150_000)                     # some hundred segments: several windows
    (tmp_path / "file").write_bytes(body)
    with http_server(tmp_path) as (port, peers):
        with pktflow.netns("h1"):
            with urllib.request.urlopen(f"http://h2:{port}/file", timeout=30) as resp:
                status, length, got = resp.status, resp.headers["Content-Length"], resp.read()
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://h2:{port}/nothing-here", timeout=30)
            missing.value.close()
        assert (status, length, got == body) == (200, str(len(body)), True)
        assert missing.value.code == 404
        assert [p[0] for p in peers] == [H1, H1]      # the server saw h1's address, so it crossed r1
    # the request reached h2 over r1, and the file came back over it, on the flow the server saw
    client_port = peers[0][1]
    assert_crossed_router(flow_trace(port, client_port), H1, H2)
    reply = eventually(lambda: next((t for t in tq.find(service="transport", operation="tcp_data_queue", tags={
        "pktflow.netns": "h1", "source.port": port, "destination.port": client_port}, limit=5)
        if ("ip", "r1", "ip_forward") in [(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"])
                                          for s in tq.journey(t)]), None), timeout=20, interval=0.2)
    assert_crossed_router(reply, H2, H1)


def test_http_server_shutdown_is_prompt_after_serving(stack, tmp_path):
    """serve_forever() waits in a selector on the listener: once it has accepted, a stale
    'readable' would send it into a blocking accept() and shutdown() would never return."""
    (tmp_path / "a").write_bytes(b"a" * 10)
    port = next(_ports)
    with pktflow.netns("h2"):
        srv = http.server.ThreadingHTTPServer((H2, port), functools.partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    try:
        with pktflow.netns("h1"):
            for _ in range(3):
                assert urllib.request.urlopen(f"http://{H2}:{port}/a", timeout=30).read() == b"a" * 10
    finally:
        took = stop_server(srv, thread)
    assert took < 2.0, f"shutdown() took {took:.2f} s"
    assert not listening_on("h2", port)             # server_close() closed the listener in the service


# -- asyncio
def test_asyncio_streams_echo_and_sock_calls(stack):
    port = next(_ports)
    peers = []

    async def echo(reader, writer):
        peers.append(writer.get_extra_info("peername"))
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    async def main():
        loop = asyncio.get_running_loop()
        with pktflow.netns("h2"):
            server = await asyncio.start_server(echo, H2, port)
        async with server:
            with pktflow.netns("h1"):
                reader, writer = await asyncio.open_connection("h2", port)
            assert writer.get_extra_info("sockname")[0] == H1
            for word in (b"one", b"two", b"three"):
                writer.write(word + b"\n")
                await writer.drain()
                assert await reader.readline() == word.upper() + b"\n"
            writer.write_eof()
            assert await reader.read() == b""        # the server closed after our EOF
            writer.close()
            await writer.wait_closed()
            # the loop's own socket calls on a non-blocking socket (SO_ERROR read after the connect)
            with pktflow.netns("h1"):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with s:
                s.setblocking(False)
                await loop.sock_connect(s, (H2, port))
                assert s.getpeername() == (H2, port)
                await loop.sock_sendall(s, b"ping\n")
                got = b""
                while not got.endswith(b"\n"):
                    chunk = await loop.sock_recv(s, 100)
                    assert chunk, f"EOF after {got!r}"
                    got += chunk
                assert got == b"PING\n"
    asyncio.run(asyncio.wait_for(main(), 60))
    assert [p[0] for p in peers] == [H1, H1]
    assert_crossed_router(flow_trace(port, peers[0][1]), H1, H2)


def test_asyncio_streams_move_two_megabytes_under_flow_control(stack):
    """A 2 MiB write is more than the socket takes at once: the transport buffers the rest and
    drain() waits for writability, many times over, until all of it is through."""
    port = next(_ports)
    data = os.urandom(2 << 20)
    before = counters("r1")

    async def sink(reader, writer):
        h, n = hashlib.sha256(), 0
        while chunk := await reader.read(1 << 16):
            h.update(chunk)
            n += len(chunk)
        writer.write(b"%d %s\n" % (n, h.hexdigest().encode()))
        await writer.drain()
        writer.close()

    async def main():
        with pktflow.netns("h2"):
            server = await asyncio.start_server(sink, H2, port)
        async with server:
            with pktflow.netns("h1"):
                reader, writer = await asyncio.open_connection(H2, port)
            pauses = []
            for i in range(0, len(data), 256 << 10):
                writer.write(data[i:i + (256 << 10)])
                pauses.append(writer.transport.get_write_buffer_size())
                await writer.drain()
            writer.write_eof()
            reply = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return reply, pauses
    t0 = time.monotonic()
    reply, pauses = asyncio.run(asyncio.wait_for(main(), 240))
    took = time.monotonic() - t0
    assert reply == b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    print(f"2 MiB through asyncio streams in {took:.1f} s, write buffer after each write: {pauses}")
    assert sum(1 for p in pauses if p > 0) >= len(pauses) // 2, pauses   # most writes waited for room
    # all of it went through r1 (segments aggregated as GRO and TSO do: count bytes, not packets)
    after = counters("r1")
    assert after["IpExtInOctets"] - before["IpExtInOctets"] > len(data)
    assert after["IpForwDatagrams"] - before["IpForwDatagrams"] >= len(data) // 65536


# -- selectors
def test_selector_serves_a_listener_and_three_clients_at_once(stack):
    port = next(_ports)
    sel = selectors.DefaultSelector()
    spurious = []                                # a readiness the socket did not have: stale
    replies, accepted, local = {}, [], {}
    with pktflow.netns("h2"):
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setblocking(False)
    lst.bind((H2, port))
    lst.listen(8)
    sel.register(lst, selectors.EVENT_READ, ("listener", None))
    clients = []
    with pktflow.netns("h1"):
        for i in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            assert c.connect_ex((H2, port)) == errno.EINPROGRESS
            sel.register(c, selectors.EVENT_WRITE, ("connecting", i))
            clients.append(c)
    done = 0
    deadline = time.monotonic() + 30
    try:
        while done < 3 and time.monotonic() < deadline:
            for key, events in sel.select(timeout=1.0):
                role, i = key.data
                s = key.fileobj
                try:
                    if role == "listener":
                        conn, peer = s.accept()
                        conn.setblocking(False)
                        accepted.append((conn, peer))
                        sel.register(conn, selectors.EVENT_READ, ("served", None))
                    elif role == "connecting":
                        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                        local[i] = s.getsockname()
                        s.send(b"hello %d\n" % i)
                        sel.modify(s, selectors.EVENT_READ, ("client", i))
                    elif role == "served":
                        data = s.recv(4096)
                        if data:
                            s.sendall(data.upper())
                        else:
                            sel.unregister(s)
                            s.close()
                    else:
                        data = s.recv(4096)
                        if data:
                            replies[i] = replies.get(i, b"") + data
                            if replies[i].endswith(b"\n"):
                                s.shutdown(socket.SHUT_WR)
                        else:
                            sel.unregister(s)
                            done += 1
                except BlockingIOError as e:
                    spurious.append((role, i, events, e))
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        sel.close()
        for s in [lst, *clients, *(c for c, _ in accepted)]:
            s.close()
    assert replies == {i: b"HELLO %d\n" % i for i in range(3)}
    assert sorted(peer for _, peer in accepted) == sorted(local.values())
    assert all(peer[0] == H1 for _, peer in accepted)
    assert spurious == []


# -- socketserver
class Reverse(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.rstrip(b"\n")[::-1] + b"\n")


def test_socketserver_threading_tcp_server(stack):
    port = next(_ports)
    before = {h: counters(h) for h in ("h1", "h2")}
    with pktflow.netns("h2"):
        srv = socketserver.ThreadingTCPServer((H2, port), Reverse)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with pktflow.netns("h1"):
            conns = [socket.create_connection(("h2", port), timeout=10) for _ in range(2)]
        for n, c in enumerate(conns):
            with c, c.makefile("rwb") as f:
                for word in (b"stressed", b"drawer %d" % n):
                    f.write(word + b"\n")
                    f.flush()
                    assert f.readline() == word[::-1] + b"\n"
    finally:
        took = stop_server(srv, thread)
    assert took < 2.0
    after = {h: counters(h) for h in ("h1", "h2")}
    assert after["h1"]["TcpActiveOpens"] - before["h1"]["TcpActiveOpens"] == 2
    assert after["h2"]["TcpPassiveOpens"] - before["h2"]["TcpPassiveOpens"] == 2


# -- UDP with select()
def test_udp_client_with_select_timeouts_replies_and_refusal(stack):
    port, closed = next(_ports), next(_ports)
    before = counters("h2")
    with pktflow.netns("h2"):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pktflow.netns("h1"):
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        refused = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with srv, cli, refused:
        srv.bind((H2, port))
        srv.settimeout(10)
        cli.connect((H2, port))
        cli.send(b"anyone?")
        request, addr = srv.recvfrom(100)             # it arrived; nobody answers yet
        assert (request, addr[0]) == (b"anyone?", H1)
        t0 = time.monotonic()
        assert select.select([cli], [], [], 0.3) == ([], [], [])
        waited = time.monotonic() - t0
        assert 0.25 <= waited < 2.0, waited
        srv.sendto(b"here", addr)
        t0 = time.monotonic()
        r, w, x = select.select([cli], [], [], 10)
        assert r == [cli] and time.monotonic() - t0 < 5
        assert cli.recv(100) == b"here"
        assert select.select([cli], [], [], 0) == ([], [], [])    # read: not readable any more
        assert select.select([], [cli], [], 0) == ([], [cli], [])  # a UDP socket is always writable
        # a connected UDP socket to a port nobody has: the ICMP error makes it readable, recv raises it
        refused.connect((H2, closed))
        refused.send(b"hello?")
        r, _, _ = select.select([refused], [], [], 10)
        assert r == [refused]
        with pytest.raises(ConnectionRefusedError):
            refused.recv(100)
        assert select.select([refused], [], [], 0) == ([], [], [])
    assert counters("h2")["UdpNoPorts"] - before["UdpNoPorts"] == 1


# -- requests (third party, over urllib3 over http.client over socket)
def test_requests_get_from_an_emulated_http_server(stack, tmp_path):
    requests = pytest.importorskip("requests")
    (tmp_path / "index.html").write_bytes(b"<h1>h2 says hello</h1>")
    with http_server(tmp_path) as (port, peers):
        with pktflow.netns("h1"):
            r = requests.get(f"http://h2:{port}/", timeout=30)
            missing = requests.get(f"http://h2:{port}/absent", timeout=30)
        assert (r.status_code, r.content) == (200, b"<h1>h2 says hello</h1>")
        assert r.headers["Content-Type"] == "text/html"
        assert missing.status_code == 404
        assert [p[0] for p in peers] == [H1, H1]
    assert_crossed_router(flow_trace(port, peers[0][1]), H1, H2)


def test_requests_session_reuses_its_keep_alive_connection(stack, tmp_path):
    """urllib3 checks a pooled connection with a zero-timeout wait for readability before reusing it
    (is_connection_dropped): a descriptor left readable after the response was read would make it
    throw the connection away and open another."""
    requests = pytest.importorskip("requests")
    (tmp_path / "one").write_bytes(b"1" * 5000)
    (tmp_path / "two").write_bytes(b"2" * 7000)
    port = next(_ports)
    handler = type("Handler11", (QuietHandler,), {"peers": [], "protocol_version": "HTTP/1.1"})
    with pktflow.netns("h2"):
        srv = http.server.ThreadingHTTPServer((H2, port), functools.partial(handler, directory=str(tmp_path)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with pktflow.netns("h1"), requests.Session() as session:
            bodies = [session.get(f"http://h2:{port}/{name}", timeout=30).content for name in ("one", "two", "one")]
    finally:
        stop_server(srv, thread)
    assert bodies == [b"1" * 5000, b"2" * 7000, b"1" * 5000]
    assert len(handler.peers) == 1, handler.peers          # one connection carried all three


# -- TLS: ssl.SSLContext.wrap_socket() on emulated sockets
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, h2's certificate (its name and address) and the two ends' contexts."""
    d = tmp_path_factory.mktemp("tls")
    ca = issue_certificate(d, "ca")
    issue_certificate(d, "h2", names=("h2", H2), ca=ca)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "h2.pem", d / "h2.key")
    return {"dir": d, "server": server, "client": ssl.create_default_context(cafile=str(d / "ca.pem"))}


def test_https_with_urllib_and_http_client_to_an_http_server_over_tls(stack, tmp_path, pki):
    import http.client
    (tmp_path / "secret.txt").write_bytes(b"over TLS 1.3" * 1000)
    with http_server(tmp_path, tls=pki["server"]) as (port, peers):
        with pktflow.netns("h1"):
            body = urllib.request.urlopen(f"https://h2:{port}/secret.txt", context=pki["client"], timeout=30).read()
            conn = http.client.HTTPSConnection("h2", port, context=pki["client"], timeout=30)
            conn.request("GET", "/secret.txt")
            version, peer = conn.sock.version(), conn.sock.getpeercert()
            again = conn.getresponse().read()                 # HTTP/1.0: the server closes, so does the client
            conn.close()
        assert body == again == b"over TLS 1.3" * 1000
        assert version == "TLSv1.3" and dict(x[0] for x in peer["subject"]) == {"commonName": "h2"}
        assert [p[0] for p in peers] == [H1, H1]
    assert_crossed_router(flow_trace(port, peers[0][1]), H1, H2)


def test_requests_over_https_checks_the_certificate(stack, tmp_path, pki):
    requests = pytest.importorskip("requests")
    (tmp_path / "index.html").write_bytes(b"<h1>h2, privately</h1>")
    with http_server(tmp_path, tls=pki["server"]) as (port, peers):
        with pktflow.netns("h1"):
            r = requests.get(f"https://h2:{port}/", verify=str(pki["dir"] / "ca.pem"), timeout=30)
            with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
                requests.get(f"https://h2:{port}/", timeout=30)           # the system's CAs: not ours
        assert (r.status_code, r.content) == (200, b"<h1>h2, privately</h1>")


def test_tls_records_cross_the_emulated_network_and_unwrap_leaves_a_plain_socket(stack, pki, tmp_path):
    """A raw TLS exchange: a wrong name refused by the client (ssl.SSLCertVerificationError,
    the server's accept() gets its alert), 1 MiB each way, only TLS records on h1's wire
    (the plaintext's marker never), unwrap() on both ends, then plain bytes on the same
    connection."""
    port = next(_ports)
    with pktflow.netns("h2"):
        lst = pki["server"].wrap_socket(socket.create_server((H2, port)), server_side=True)
    lst.settimeout(30)
    marker = b"PLAINTEXT-MARKER-" * 4
    data = marker + os.urandom(1 << 20)
    served = {}

    def serve():
        try:
            lst.accept()
        except ssl.SSLError as e:
            served["refused"] = e
        conn, _ = lst.accept()
        with conn:
            got = bytearray()
            while len(got) < len(data):
                got += conn.recv(65536)
            conn.sendall(hashlib.sha256(got).digest() + bytes(got))
            plain = conn.unwrap()
            with plain:
                plain.sendall(b"plain " + plain.recv(100))
                served["done"] = True
    t = threading.Thread(target=serve, daemon=True)
    with lst, pktflow.capture(netns="h1", ifname="eth0", path=tmp_path / "tls.pcap", filter=f"tcp port {port}"):
        t.start()
        with pktflow.netns("h1"):
            with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
                pki["client"].wrap_socket(socket.create_connection((H2, port), timeout=30), server_hostname="h3")
            tls = pki["client"].wrap_socket(socket.create_connection((H2, port), timeout=30), server_hostname="h2")
        with tls:
            assert tls.version() == "TLSv1.3" and tls.fileno() >= 0
            tls.sendall(data)
            back = bytearray()
            while len(back) < 32 + len(data):
                back += tls.recv(1 << 16)
            assert bytes(back) == hashlib.sha256(data).digest() + data
            plain = tls.unwrap()
        with plain:
            plain.sendall(b"hello")
            assert plain.recv(100) == b"plain hello"
        t.join(30)
    assert served.keys() == {"refused", "done"}
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap
    payloads = [bytes(p[TCP].payload) for p in rdpcap(str(tmp_path / "tls.pcap")) if TCP in p]
    wire = b"".join(payloads)
    assert len(wire) > 2 * len(data) and marker not in wire
    assert sum(p[:3] == b"\x17\x03\x03" for p in payloads) > 0         # TLS application data records
    assert b"plain hello" in wire                                        # after unwrap(): in the clear


def test_a_non_blocking_tls_client_waits_with_select(stack, pki):
    """do_handshake() and recv() on a non-blocking TLS socket raise SSLWantReadError
    until select() says the descriptor is readable, as with the ssl module's."""
    port = next(_ports)
    with pktflow.netns("h2"):
        lst = pki["server"].wrap_socket(socket.create_server((H2, port)), server_side=True)
    lst.settimeout(30)

    def serve():
        conn, _ = lst.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    waits = 0

    def until_done(op, *args):
        nonlocal waits
        while True:
            try:
                return op(*args)
            except ssl.SSLWantReadError:
                waits += 1
                assert select.select([tls], [], [], 30)[0]
    with lst:
        with pktflow.netns("h1"):
            raw = socket.create_connection((H2, port), timeout=30)
        raw.setblocking(False)
        with pki["client"].wrap_socket(raw, server_hostname="h2", do_handshake_on_connect=False) as tls:
            until_done(tls.do_handshake)
            handshake_waits = waits
            tls.sendall(b"quiet")
            got = until_done(tls.recv, 100)
        t.join(30)
    assert handshake_waits >= 1 and got == b"QUIET" and not t.is_alive()


# -- non-blocking connect, then SO_ERROR
def test_nonblocking_connect_then_so_error(stack):
    port, closed = next(_ports), next(_ports)
    with pktflow.netns("h2"):
        lst = socket.create_server((H2, port))
    with pktflow.netns("h1"):
        ok = socket.socket()
        bad = socket.socket()
    with lst, ok, bad:
        for s in (ok, bad):
            s.setblocking(False)
        assert ok.connect_ex((H2, port)) == errno.EINPROGRESS
        with pytest.raises(BlockingIOError):
            bad.connect((H2, closed))
        bad_port = bad.getsockname()[1]
        _, w, _ = select.select([], [ok], [], 10)
        assert w == [ok]
        assert ok.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert ok.getpeername() == (H2, port)
        _, w, _ = select.select([], [bad], [], 10)
        assert w == [bad]
        assert bad.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        assert bad.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0       # read once, cleared
        lst.settimeout(10)
        conn, peer = lst.accept()
        with conn:
            assert peer == ok.getsockname()
    # the SYN to the closed port: h2's tcp_v4_rcv found no socket (and answered with a RST)
    def hops(tr):
        return {(s["service"], tq.tag(s, "pktflow.netns"), s["operationName"]) for s in tq.journey(tr)}

    def syn_journey():                  # every layer exports on its own clock: wait for the whole journey
        return next((tr for tr in tq.find(service="transport", operation="tcp_v4_rcv", tags={
            "pktflow.netns": "h2", "destination.port": closed, "pktflow.drop_reason": "NO_SOCKET"}, limit=5)
            if {("transport", "h1", "tcp_connect"), ("ip", "r1", "ip_forward")} <= hops(tr)), None)
    tr = eventually(syn_journey, timeout=20, interval=0.2)
    rcv = next(s for s in tq.journey(tr) if s["operationName"] == "tcp_v4_rcv")
    assert tq.tag(rcv, "pktflow.drop_reason") == "NO_SOCKET" and tq.tag(rcv, "source.port") == bad_port


# -- pktflow exec: whole programs
def test_exec_http_server_and_urllib_client(stack, tmp_path):
    port = next(_ports)
    body = "served by an unmodified python3 -m http.server on h2\n"
    (tmp_path / "hello.txt").write_text(body)
    with exec_process("h2", "python3", "-m", "http.server", str(port), "--bind", H2,
                      "--directory", str(tmp_path)) as server:
        eventually(lambda: listening_on("h2", port) or server.poll() is not None, timeout=30, interval=0.1)
        assert server.poll() is None, server.stderr.read()
        fetch = run_exec("h1", "python3", "-c",
                         "import urllib.request, sys; "
                         f"sys.stdout.write(urllib.request.urlopen('http://h2:{port}/hello.txt', timeout=30)"
                         ".read().decode())")
        assert (fetch.returncode, fetch.stdout, fetch.stderr) == (0, body, "")
        stop(server)
        log = server.stderr.read()
    assert server.returncode is not None
    # http.server's access log: the request came from h1's address, so across r1
    assert f'{H1} - - ' in log and '"GET /hello.txt HTTP/1.1" 200' in log, log
    assert_crossed_router(flow_trace(port, None), H1, H2)
    # the server's process is gone: so are its descriptors, the listener among them
    eventually(lambda: not listening_on("h2", port), timeout=15, interval=0.1)


def test_exec_http_server_without_bind_serves_both_families(stack, tmp_path):
    """`python3 -m http.server PORT` with no --bind: Python's DualStackServer on '::' (IPV6_V6ONLY off)."""
    port = next(_ports)
    (tmp_path / "f").write_text("dual\n")
    with exec_process("h2", "python3", "-m", "http.server", str(port), "--directory", str(tmp_path)) as server:
        eventually(lambda: listening_on("h2", port) or server.poll() is not None, timeout=30, interval=0.1)
        assert server.poll() is None, server.stderr.read()
        for url in (f"http://{H2}:{port}/f", f"http://[2001:db8:2::10]:{port}/f"):
            fetch = run_exec("h1", "python3", "-c", "import urllib.request, sys; sys.stdout.write("
                             f"urllib.request.urlopen({url!r}, timeout=30).read().decode())")
            assert (fetch.returncode, fetch.stdout, fetch.stderr) == (0, "dual\n", ""), url
        stop(server)
        log = server.stderr.read()
    assert f"::ffff:{H1} - - " in log and "2001:db8:1::10 - - " in log, log


def test_exec_routes_the_python_programs_an_exec_python_starts(stack, tmp_path):
    """The child is a plain `python3` from PATH, started by the exec'd Python: it connects from h1."""
    (tmp_path / "x").write_bytes(b"child was here")
    child = ("import socket, urllib.request; "
             "print(urllib.request.urlopen('http://h2:{port}/x', timeout=30).read().decode()); "
             "print(type(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)).__module__)")
    with http_server(tmp_path) as (port, peers):
        parent = ("import subprocess, sys; "
                  f"r = subprocess.run(['python3', '-c', {child.format(port=port)!r}], timeout=60); "
                  "sys.exit(r.returncode)")
        run = run_exec("h1", "python3", "-c", parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["child was here", "pktflow._patch"]
    assert [p[0] for p in peers] == [H1]


def test_exec_passes_the_exit_status_through(stack):
    run = run_exec("h1", "python3", "-c", "import socket, sys; socket.socket(); sys.exit(7)")
    assert (run.returncode, run.stderr) == (7, "")
    run = run_exec("h2", "python3", "-c", "import sys; sys.stderr.write('x'); sys.exit(0)")
    assert (run.returncode, run.stderr) == (0, "x")


@pytest.mark.parametrize("program", ["true", "curl"])
def test_exec_refuses_programs_that_are_not_python(stack, program):
    if shutil.which(program) is None:
        pytest.skip(f"no {program} here")
    run = run_exec("h1", program, "--version")
    assert run.returncode != 0
    assert f"{program} is not a Python program" in run.stderr
    assert run.stdout == ""


def test_exec_refuses_a_host_the_stack_does_not_have(stack):
    run = run_exec("h9", "python3", "-c", "print('ran')")
    assert run.returncode != 0 and run.stdout == ""
    assert 'Cannot open network namespace "h9"' in run.stderr


def test_exec_descriptors_close_when_the_process_is_killed(stack):
    """SIGKILL: the program closes nothing itself; the service closes its listener when the process's
    session ends, as the kernel closes a dead process's descriptors."""
    port = next(_ports)
    program = ("import socket, sys, time; s = socket.socket(); s.bind(('10.0.2.10', %d)); s.listen(); "
               "print('listening', flush=True); time.sleep(120)" % port)
    with exec_process("h2", "python3", "-c", program) as proc:
        assert proc.stdout.readline() == "listening\n"
        assert listening_on("h2", port)
        stop(proc, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        eventually(lambda: not listening_on("h2", port), timeout=15, interval=0.1)
    with pktflow.netns("h2"):                       # and the port is free again
        with socket.create_server((H2, port)) as again:
            assert again.getsockname() == (H2, port)


# -- what stays the process's own, and what the module looks like while routed
def test_unix_sockets_and_socketpair_stay_real_while_patched(stack, tmp_path):
    with pktflow.netns("h1"):
        a, b = socket.socketpair()
        with a, b:
            assert type(a) is REAL_SOCKET and a.family == socket.AF_UNIX
            a.sendall(b"local")
            assert b.recv(10) == b"local"
            assert isinstance(a, socket.socket)
        path = str(tmp_path / "u.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as v:
            assert type(u) is REAL_SOCKET
            u.bind(path)
            u.listen()
            v.connect(path)
            w, _ = u.accept()
            with w:
                v.sendall(b"unix")
                assert w.recv(10) == b"unix"
        with pytest.raises(OSError) as e:
            socket.socketpair(socket.AF_INET)
        assert e.value.errno == errno.EOPNOTSUPP
        s = socket.socket()
        with s:
            assert type(s) is not REAL_SOCKET and isinstance(s, socket.socket)
            assert stat.S_ISSOCK(os.fstat(s.fileno()).st_mode)


def test_accepted_sockets_are_socket_instances_of_the_host(stack):
    port = next(_ports)
    with pktflow.netns("h2"):
        lst = socket.create_server((H2, port))
    with pktflow.netns("h1"):
        cli = socket.create_connection((H2, port), timeout=10)
    with lst, cli:
        lst.settimeout(10)
        conn, peer = lst.accept()
        with conn:
            with pktflow.netns("h2"):                  # the module's class, while it is routed
                assert isinstance(conn, socket.socket) and isinstance(lst, socket.socket)
                assert isinstance(conn, socket.SocketType) and issubclass(type(conn), socket.socket)
            assert conn.getsockname() == (H2, port) and peer == cli.getsockname() and peer[0] == H1
            assert conn.family == socket.AF_INET and conn.type == socket.SOCK_STREAM


def test_netns_blocks_nest_and_restore_the_real_module(stack):
    real = {n: getattr(socket, n) for n in ("socket", "SocketType", "socketpair", "getaddrinfo", "gethostbyname")}
    with pktflow.netns("h1"):
        assert pktflow._patch.current() == "h1"
        outer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pktflow.netns("h2") as name:
            assert name == "h2" and pktflow._patch.current() == "h2"
            inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            assert socket.gethostbyname("h2") == H2
        after_inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert pktflow._patch.current() == "h1"
    with outer, inner, after_inner:
        inner.bind((H2, 0))                            # h2's address is h2's socket's own
        outer.bind((H1, 0))
        with pytest.raises(OSError) as e:
            after_inner.bind((H2, 0))                  # back on h1: not an address of this host
        assert e.value.errno == errno.EADDRNOTAVAIL
    assert pktflow._patch.current() is None
    assert {n: getattr(socket, n) for n in real} == real
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # the kernel's own again (nothing sent)
    with plain:
        assert type(plain) is REAL_SOCKET
    with pytest.raises(OSError) as e:                  # patch() of a host the stack lacks changes nothing
        pktflow.patch("h9")
    assert e.value.errno == errno.ENOENT
    assert socket.socket is REAL_SOCKET
    pktflow.patch("h2")                                # the plain call pair
    try:
        assert pktflow._patch.current() == "h2" and socket.socket is not REAL_SOCKET
    finally:
        pktflow.unpatch()
    assert socket.socket is REAL_SOCKET


def test_resolver_while_patched_answers_with_the_stacks_names(stack):
    with pktflow.netns("h1"):
        infos = socket.getaddrinfo("h2", 80)
        assert {i[4][0] for i in infos} == {H2, "2001:db8:2::10"}
        assert all(i[4][1] == 80 for i in infos)
        assert {i[0] for i in infos} == {socket.AF_INET, socket.AF_INET6}
        assert socket.gethostbyname("h1") == H1
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("www.example.com", 80)
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("www.example.com")


def test_socket_calls_resolve_host_names_while_patched(stack):
    """Python's socket.connect(), sendto() and bind() take a host name and resolve it (setipaddr()):
    a program written `s.connect(("h2", port))` must find h2 as create_connection() does."""
    port = next(_ports)
    with pktflow.netns("h2"):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("h2", port))
    with pktflow.netns("h1"):
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with srv, cli:
            srv.settimeout(10)
            cli.sendto(b"by name", ("h2", port))
            assert srv.recvfrom(100)[0] == b"by name"
            cli.connect(("h2", port))
            assert cli.getpeername() == (H2, port)


# -- the service's sock_poll() answer, in the running stack, against Linux's (tests/unit/test_sock_poll.py
#    measures the same states on loopback; these are the values Linux 6.x gives)
IN, OUT, ERR, HUP, RDHUP = select.POLLIN, select.POLLOUT, select.POLLERR, select.POLLHUP, select.POLLRDHUP
COMPARED = IN | OUT | ERR | HUP | RDHUP
SERVICE_STATES = [
    pytest.param("fresh", OUT | HUP, id="fresh"),
    pytest.param("listener", 0, id="listener"),
    pytest.param("listener, connection to accept", IN, id="listener-pending"),
    pytest.param("established", OUT, id="established"),
    pytest.param("data queued", IN | OUT, id="data"),
    pytest.param("FIN received", IN | OUT | RDHUP, id="fin"),
    pytest.param("SHUT_WR", OUT, id="shut-wr"),
    pytest.param("FIN received, then SHUT_WR", IN | OUT | HUP | RDHUP, id="fin-shut-wr"),
    pytest.param("reset", IN | OUT | ERR | HUP | RDHUP, id="reset"),
    pytest.param("refused", IN | OUT | ERR | HUP | RDHUP, id="refused"),
    pytest.param("refused, SO_ERROR read", IN | OUT | HUP | RDHUP, id="refused-soerror"),
    pytest.param("udp", OUT, id="udp"),
    pytest.param("udp, port unreachable", OUT | ERR, id="udp-refused"),
]


def names(mask: int) -> str:
    return "|".join(n for n, b in (("IN", IN), ("OUT", OUT), ("ERR", ERR), ("HUP", HUP), ("RDHUP", RDHUP))
                    if mask & b) or "0"


def revents(s) -> int:
    """What the socket service's Poll answers for the socket (the SDK's descriptor follows it)."""
    return s._poll().revents & COMPARED


def readable(s, timeout: float = 10.0) -> None:
    assert select.select([s], [], [], timeout)[0] == [s], "not readable in time"


@pytest.mark.parametrize("state, linux", SERVICE_STATES)
def test_service_poll_answers_as_linux(stack, state, linux):
    port = next(_ports)
    with contextlib.ExitStack() as stack_:
        def tcp(host):
            return stack_.enter_context(pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns=host))
        if state.startswith("udp"):
            s = stack_.enter_context(pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1"))
            if state == "udp, port unreachable":
                s.connect((H2, port))
                s.send(b"?")
                readable(s)
            assert names(revents(s)) == names(linux)
            return
        s = tcp("h1")
        if state in ("fresh",):
            assert names(revents(s)) == names(linux)
            return
        if state.startswith("refused"):
            s.setblocking(False)
            assert s.connect_ex((H2, port)) == errno.EINPROGRESS
            assert select.select([], [s], [], 10)[1] == [s]
            if state == "refused, SO_ERROR read":
                assert s.getsockopt(pktflow.SOL_SOCKET, pktflow.SO_ERROR) == errno.ECONNREFUSED
            assert names(revents(s)) == names(linux)
            return
        lst = tcp("h2")
        lst.bind((H2, port))
        lst.listen(4)
        if state == "listener":
            assert names(revents(lst)) == names(linux)
            return
        s.settimeout(10)
        s.connect((H2, port))
        if state == "listener, connection to accept":
            readable(lst)
            assert names(revents(lst)) == names(linux)
            return
        lst.settimeout(10)
        conn = stack_.enter_context(lst.accept()[0])
        if state == "data queued":
            conn.sendall(b"x")
            readable(s)
        elif state.startswith("FIN received"):
            conn.shutdown(pktflow.SHUT_WR)
            readable(s)
            if state == "FIN received, then SHUT_WR":
                s.shutdown(pktflow.SHUT_WR)
                readable(conn)                      # our FIN is there: the connection is closed both ways
        elif state == "SHUT_WR":
            s.shutdown(pktflow.SHUT_WR)
        elif state == "reset":
            conn.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()                            # an abortive close: RST
            readable(s)
        assert names(revents(s)) == names(linux)
