"""Bufferbloat on the real services (examples/topologies/bufferbloat.yaml): a TCP
bulk transfer h1 -> h2 saturates r1's eth1 (set to 2 mbit/s); a ping alongside waits
behind the default pfifo_fast's queue, and not behind fq_codel's. The figures
are ratios against the idle RTT measured in the same run, in wall-clock time."""
import statistics
import threading
from pathlib import Path

import pytest

import pktflow
from conftest import PORT_BASE, assert_no_tracebacks
from test_cli import cli, sdk_endpoint

pytestmark = pytest.mark.integration
TOPOLOGY = Path(__file__).parents[2] / "examples" / "topologies" / "bufferbloat.yaml"


def median_rtt(count: int = 5) -> float:
    r = pktflow.ping("10.0.2.10", netns="h1", count=count, interval=0.2, timeout=3.0)
    return statistics.median(x.rtt for x in r.replies if x is not None)


def rtt_under_load(port: int, warmup: float = 5.0) -> float:
    """The ping's median RTT while a bulk transfer keeps r1's eth1 busy."""
    stop = threading.Event()
    srv = pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h2")
    srv.bind(("10.0.2.10", port))
    srv.listen(1)

    def receive():
        conn, _ = srv.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    def send():
        with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_STREAM, netns="h1") as c:
            c.connect(("10.0.2.10", port))
            chunk = bytes(256 * 1024)
            while not stop.is_set():
                c.sendall(chunk)
    threads = [threading.Thread(target=receive), threading.Thread(target=send)]
    for t in threads:
        t.start()
    try:
        stop.wait(warmup)                      # the queue builds
        return median_rtt()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        srv.close()


def test_bufferbloat_pfifo_fast_against_fq_codel_on_the_services(tmp_path):
    from pktflow.up import Stack
    s = Stack(str(TOPOLOGY), port_base=PORT_BASE + 2450, trace_store=False,
              extra_env={"OTEL_TRACES_EXPORTER": "none"}, log_dir=str(tmp_path))
    s.start()
    try:
        with sdk_endpoint(s.endpoint):
            # 2 mbit/s rather than the example's 10: the bulk transfer then loads the
            # link, not the machine's two CPUs, whose queues between the services
            # would otherwise add tens of ms to every packet under load
            assert cli("ethtool", "-n", "r1", "-s", "eth1", "speed", "2").returncode == 0
            idle = median_rtt()
            bloated = rtt_under_load(46001)
            assert cli("tc", "-n", "r1", "qdisc", "replace", "dev", "eth1", "root", "fq_codel").returncode == 0
            fair = rtt_under_load(46002)
            stats = cli("tc", "-s", "-n", "r1", "qdisc", "show", "dev", "eth1").stdout
    finally:
        s.stop()
    assert_no_tracebacks(tmp_path)
    print(f"idle {idle * 1e3:.1f} ms, pfifo_fast {bloated * 1e3:.1f} ms, fq_codel {fair * 1e3:.1f} ms")
    # pfifo_fast: the ping waits behind hundreds of 1.2 ms frames; fq_codel: its flow goes first
    assert bloated > 0.1 and bloated > 10 * idle
    assert fair < bloated / 5
    assert "qdisc fq_codel" in stats and "Sent" in stats
