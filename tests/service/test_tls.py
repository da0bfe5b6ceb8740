"""Mutual TLS between every party of a stack (PKTFLOW_TLS_CERT/KEY/CA): the
layers' streams, the SDK and the health checks all run over it; a client
without a certificate from the stack's CA gets no connection at all, and one
with a good certificate still shows the stack secret to join a layer's stream."""
import os
import re
import signal
import subprocess
import sys

import grpc
import pytest

import pktflow
from conftest import PORT_BASE, issue_certificate, make_pki

pytestmark = pytest.mark.integration

pytest.importorskip("cryptography")


@pytest.fixture
def pki(tmp_path):
    make_pki(tmp_path, ["localhost", "127.0.0.1"])
    issue_certificate(tmp_path, "rogue", ["localhost", "127.0.0.1"],
                      issue_certificate(tmp_path, "other-ca"))         # the right names, the wrong CA
    return tmp_path


def _tls_env(d, who: str = "stack") -> dict:
    return {"PKTFLOW_TLS_CERT": str(d / f"{who}.pem"), "PKTFLOW_TLS_KEY": str(d / f"{who}.key"),
            "PKTFLOW_TLS_CA": str(d / "ca.pem")}


def test_a_stack_runs_over_mutual_tls_and_lets_in_only_its_own(pki, monkeypatch):
    from pktflow.up import Stack
    from pktflow.v1 import layers_pb2_grpc
    base = PORT_BASE + 1700
    for k, v in (_tls_env(pki) | {"PKTFLOW_ENDPOINT": f"127.0.0.1:{base + 1}"}).items():
        monkeypatch.setenv(k, v)
    s = Stack(port_base=base, trace_store=False, extra_env={"OTEL_TRACES_EXPORTER": "none"})
    s.start()                                   # healthy: pktflow up's checks speak TLS too
    try:
        # h1 -> r1 -> h2 and back: every layer's stream carried it, over TLS
        assert pktflow.ping("10.0.2.10", netns="h1", count=2, interval=0.05).received == 2

        def refused(channel) -> grpc.StatusCode:
            with channel as ch, pytest.raises(grpc.RpcError) as e:
                next(layers_pb2_grpc.LayerStub(ch).Exchange(iter(()), metadata=(("pktflow-layer", "transport"),),
                                                            timeout=3))
            return e.value.code()
        ip = f"127.0.0.1:{base + 3}"
        assert refused(grpc.insecure_channel(ip)) == grpc.StatusCode.UNAVAILABLE       # no TLS: no connection
        rogue = _tls_env(pki, "rogue")
        creds = grpc.ssl_channel_credentials(open(rogue["PKTFLOW_TLS_CA"], "rb").read(),
                                             open(rogue["PKTFLOW_TLS_KEY"], "rb").read(),
                                             open(rogue["PKTFLOW_TLS_CERT"], "rb").read())
        assert refused(grpc.secure_channel(ip, creds)) == grpc.StatusCode.UNAVAILABLE  # a stranger's certificate
        from pktflow.services.common import config
        assert refused(config.dial(ip)) == grpc.StatusCode.UNAUTHENTICATED          # ours, but no secret
        assert pktflow.ping("10.0.2.10", netns="h1").received == 1
    finally:
        s.stop()


@pytest.mark.parametrize("problem, message", [
    ("half", r"pktflow: TLS needs PKTFLOW_TLS_CERT, PKTFLOW_TLS_KEY, PKTFLOW_TLS_CA; PKTFLOW_TLS_CA is not set"),
    ("unreadable", r"pktflow: PKTFLOW_TLS_CA: cannot read /nonexistent/ca.pem: No such file or directory"),
    ("mismatched", r"pktflow: PKTFLOW_TLS_CERT/PKTFLOW_TLS_KEY: not a PEM certificate and its key \(.*\)"),
])
def test_bad_tls_settings_are_refused_before_anything_starts(pki, problem, message):
    env = os.environ | _tls_env(pki)
    if problem == "half":
        del env["PKTFLOW_TLS_CA"]
    elif problem == "unreadable":
        env["PKTFLOW_TLS_CA"] = "/nonexistent/ca.pem"
    else:
        env["PKTFLOW_TLS_KEY"] = str(pki / "rogue.key")
    p = subprocess.Popen([sys.executable, "-m", "pktflow.cli", "up", "--port-base", str(PORT_BASE + 1750)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            p.wait(20)
    assert p.returncode == 1 and "ready" not in out
    assert re.fullmatch(message + "\n", err), err
