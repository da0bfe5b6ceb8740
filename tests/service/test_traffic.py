"""`pktflow traffic`, the compose stack's traffic generator, against the shared stack."""
import signal

import pytest
from pktflow import cli

pytestmark = pytest.mark.integration


def test_traffic_rounds_of_ping_udp_and_tcp_all_succeed(stack, capsys):
    sigterm = signal.getsignal(signal.SIGTERM)            # the command makes SIGTERM stop it like Ctrl-C
    try:
        assert cli.main(["traffic", "-c", "2", "-i", "0.1"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"round {n}: h1 -> h2 10.0.2.10: ping ok, udp ok, tcp ok" for n in (1, 2)]


def test_traffic_survives_a_stack_that_is_not_up(monkeypatch):
    from pktflow.traffic import run
    monkeypatch.setenv("PKTFLOW_ENDPOINT", "127.0.0.1:9")      # nothing listens on discard
    lines = []
    assert run(rounds=2, interval=0.01, timeout=0.5, log=lines.append) == {"ok": 0, "failed": 6}
    assert len(lines) == 2 and "ping failed" in lines[0] and "tcp failed" in lines[1]
