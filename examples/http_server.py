"""A small HTTP/1.1 server on an emulated host, written with the pktflow SDK
the way one would with Python's socket module.

    python examples/http_server.py --netns h1 --port 8080
    curl http://10.0.1.10:8080/            # from a Linux peer on a TAP link
    curl http://10.0.1.10:8080/bytes/1000000   # a million bytes, for bulk tests
"""
import argparse
import threading

import pktflow

PAGE = b"<!doctype html><title>pktflow</title><h1>Hello from an emulated host</h1>\n"


def respond(conn):
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        method, path, _version = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"method not allowed\n"
        elif path == "/":
            status, body = "200 OK", PAGE
        elif path.startswith("/bytes/") and path[7:].isdigit():
            status, body = "200 OK", bytes(i & 0xFF for i in range(int(path[7:])))
        else:
            status, body = "404 Not Found", b"not found\n"
        ctype = "text/html" if body is PAGE else "application/octet-stream"
        head = (f"HTTP/1.1 {status}\r\nServer: pktflow-example\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        conn.sendall(head + (body if method == "GET" else b""))


def serve(netns: str, address: str, port: int, ready: threading.Event | None = None):
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns=netns)
    srv.setsockopt(pktflow.SOL_SOCKET, pktflow.SO_REUSEADDR, 1)
    srv.bind((address, port))
    srv.listen(32)
    if ready:
        ready.set()
    print(f"serving http://{address or '0.0.0.0'}:{port}/ on {netns}", flush=True)
    while True:
        try:
            conn, _addr = srv.accept()
        except OSError as e:                  # the stack went away
            print(f"http_server: {e.strerror or e}", flush=True)
            return
        threading.Thread(target=respond, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--netns", default="h1")
    p.add_argument("--address", default="")
    p.add_argument("--port", type=int, default=8080)
    a = p.parse_args()
    try:
        serve(a.netns, a.address, a.port)
    except KeyboardInterrupt:
        pass
