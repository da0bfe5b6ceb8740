"""`pktflow exec -n h1 -- python3 ...` against the real Linux kernel across the
TAP: an unmodified `python3 -m http.server`, its socket module routed to h1 (the
emulated host that faces the TAP), serves Linux's curl; and an unmodified
urllib client on h1 downloads from Linux's own `python3 -m http.server`."""
import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest
from conftest import eventually
from pktflow import _client

from interop.conftest import EMU_ADDR, LINUX_ADDR, wait_port

pytestmark = pytest.mark.integration
# ports of their own: the package's other tests leave daemon servers on h1 (8080) and use 8000 on Linux
SERVE_PORT, FETCH_PORT = 8481, 8482
BLOB_SIZE = 200_000                    # some 140 full-sized segments: several windows of TCP flow


def pktflow_cli() -> list[str]:
    """The `pktflow` console script of the Python running the tests."""
    script = os.path.join(os.path.dirname(sys.executable), "pktflow")
    return [script] if os.path.exists(script) else [shutil.which("pktflow") or pytest.skip("no pktflow script")]


def exec_env(linux) -> dict:
    """The test's environment, the SDK pointed at the TAP stack (as _sdk_on_the_tap_stack does in-process)."""
    return dict(os.environ, PKTFLOW_ENDPOINT=linux.stack.endpoint, PKTFLOW_QUERY_ENDPOINT=linux.stack.query_url)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def served_blob(tmp_path, seed: int):
    """A directory for an http.server holding blob.bin, BLOB_SIZE random bytes; (dir, bytes)."""
    root = tmp_path / "www"
    root.mkdir()
    blob = random.Random(seed).randbytes(BLOB_SIZE)
    (root / "blob.bin").write_bytes(blob)
    return root, blob


def listening(netns: str, addr: str, port: int) -> bool:
    """Whether emulated host `netns`'s socket table has a TCP listener on (addr, port)."""
    rows = json.loads(_client.admin("transport", netns, "sockets").json)
    return any(r["state"] == "LISTEN" and r["local"][1] == port and r["local"][0] in (addr, "0.0.0.0", "::")
               for r in rows)


def test_curl_fetches_from_python_http_server_run_by_pktflow_exec(linux, tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    root, blob = served_blob(tmp_path, 31)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([*pktflow_cli(), "exec", "-n", "h1", "--", "python3", "-m", "http.server",
                                   str(SERVE_PORT), "--bind", EMU_ADDR, "--directory", str(root)],
                                  env=exec_env(linux), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        def up():
            assert server.poll() is None, f"the server exited ({server.returncode}): {log.read_text()!r}"
            return listening("h1", EMU_ADDR, SERVE_PORT)
        eventually(up, timeout=30, interval=0.05)
        r = linux.run("curl", "-sS", "-m", "60", "-o", "-", "-w", "%{stderr}%{http_code}",
                      f"http://{EMU_ADDR}:{SERVE_PORT}/blob.bin", text=False)
        assert r.stderr == b"200"
        assert len(r.stdout) == len(blob) and r.stdout == blob
        # http.server logs after it has answered: Linux's address, the request, 200
        line = re.compile(re.escape(LINUX_ADDR) + r' - - \[[^]]+\] "GET /blob\.bin HTTP/1\.1" 200 -')
        eventually(lambda: line.search(log.read_text()), timeout=10)
    finally:
        stop(server)


URLLIB_CLIENT = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as reply:
    assert reply.status == 200, reply.status
    body = reply.read()
sys.stdout.buffer.write(body)
"""


def test_urllib_under_pktflow_exec_downloads_from_linux_http_server(linux, tmp_path):
    root, blob = served_blob(tmp_path, 32)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = linux.popen("python3", "-m", "http.server", str(FETCH_PORT), "--bind", LINUX_ADDR,
                             "--directory", str(root), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_port(linux, FETCH_PORT)
        r = subprocess.run([*pktflow_cli(), "exec", "-n", "h1", "--", "python3", "-c", URLLIB_CLIENT,
                            f"http://{LINUX_ADDR}:{FETCH_PORT}/blob.bin"],
                           env=exec_env(linux), capture_output=True, timeout=90, check=False)
        assert r.returncode == 0, f"the client failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
        assert len(r.stdout) == len(blob) and r.stdout == blob
        # Linux saw the request come from h1's address, across the TAP
        line = re.compile(re.escape(EMU_ADDR) + r' - - \[[^]]+\] "GET /blob\.bin HTTP/1\.1" 200 -')
        eventually(lambda: line.search(log.read_text()), timeout=10)
    finally:
        stop(server)
