"""getsockopt(TCP_INFO) side by side: the same transfer from a Linux socket
(in the router namespace) and from a pktflow socket (h1, across the TAP), both
to a listener in the far namespace; the same struct format (include/uapi/linux/tcp.h)
unpacks both, and the fields agree in kind."""
import json
import struct
import sys

import pktflow
import pytest

from interop.conftest import FAR_ADDR, wait_port

pytestmark = pytest.mark.integration
PORT = 9310
SIZE = 1_000_000
HEAD = "@8B24I"             # tcpi_state ... tcpi_total_retrans: the struct's first 104 bytes
SINK = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{FAR_ADDR}", {PORT}))
s.listen(4)
while True:
    c, _ = s.accept()
    while c.recv(65536):
        pass
    c.close()
"""
LINUX_CLIENT = f"""
import json, socket, time
s = socket.create_connection(("{FAR_ADDR}", {PORT}))
s.sendall(b"x" * {SIZE})
time.sleep(0.5)
raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
print(json.dumps({{"raw": raw.hex(), "ca": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).hex()}}))
s.close()
"""


def fields(raw: bytes) -> dict:
    f = struct.unpack_from(HEAD, raw)
    return {"len": len(raw), "state": f[0], "options": f[5], "snd_wscale": f[6] & 0xF, "rcv_wscale": f[6] >> 4,
            "snd_mss": f[10], "unacked": f[12], "snd_cwnd": f[26], "advmss": f[27], "rto": f[8], "rtt": f[23]}


def test_tcp_info_agrees_with_linux(linux):
    sink = linux.far.popen(sys.executable, "-c", SINK)
    try:
        wait_port(linux.far, PORT)
        out = linux.run(sys.executable, "-c", LINUX_CLIENT, timeout=60).stdout
        got = json.loads(out)
        theirs = fields(bytes.fromhex(got["raw"]))
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as s:
            s.settimeout(60)
            s.connect((FAR_ADDR, PORT))
            s.sendall(b"x" * SIZE)
            import time
            time.sleep(0.5)
            raw = s.getsockopt(pktflow.IPPROTO_TCP, pktflow.TCP_INFO, 512)
            ca = s.getsockopt(pktflow.IPPROTO_TCP, pktflow.TCP_CONGESTION, 16)
        ours = fields(raw)
    finally:
        sink.kill()
    for side in (theirs, ours):
        assert side["state"] == 1, side                          # TCP_ESTABLISHED
        assert side["options"] & 7 == 7, side                    # TIMESTAMPS | SACK | WSCALE
        assert side["snd_wscale"] > 0 and side["rcv_wscale"] > 0, side
        assert side["snd_mss"] == 1448 and side["advmss"] == 1448, side
        assert side["snd_cwnd"] >= 10 and side["rto"] >= 200_000 and side["rtt"] > 0, side
    assert ours["len"] == 280 and theirs["len"] >= 232           # Linux 6.18 returns 280; older kernels less
    assert len(ca) == len(bytes.fromhex(got["ca"])) == 16 and ca.rstrip(b"\0") in (b"cubic", b"reno", b"bbr")
