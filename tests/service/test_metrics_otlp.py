"""The layers' metrics over OTLP (OTEL_METRICS_EXPORTER=otlp), from a stack of
its own to an OTLP metrics receiver run here: the counters traffic moved arrive
with the host and layer as attributes, from every service."""
import os
import subprocess
import sys

import pktflow
from conftest import PORT_BASE, assert_no_tracebacks, eventually
from otlp_receiver import MetricsReceiver
from test_cli import sdk_endpoint
from pktflow.services.common import config

BASE = PORT_BASE + 2800
RECEIVER = BASE + 40
H2 = "10.0.2.10"


def test_a_stack_sends_its_counters_to_an_otlp_receiver(tmp_path):
    from pktflow.up import Stack
    with MetricsReceiver(RECEIVER) as rx:
        s = Stack(port_base=BASE, trace_store=False, log_dir=str(tmp_path),
                  extra_env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp",
                             "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": rx.endpoint,
                             "OTEL_METRIC_EXPORT_INTERVAL": "300"})
        s.start()
        try:
            def h2(service, name, **labels):
                return rx.latest().get((service, name, frozenset((labels | {"netns": "h2"}).items())), 0)

            # every layer sends, though no /metrics endpoint listens (a Stack has none by default)
            eventually(lambda: {svc for svc, _ in rx.metrics()} == set(config.LAYERS), timeout=20)
            ip_in = h2("ip", "pktflow_nstat", layer="ip", counter="IpInReceives")
            with sdk_endpoint(s.endpoint), pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv:
                srv.bind((H2, 45401))
                srv.settimeout(5)
                with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
                    c.connect((H2, 45401))
                    for n in range(3):
                        c.send(b"%d" % n)
                    assert sorted(srv.recv(100) for _ in range(3)) == [b"0", b"1", b"2"]
                    c.connect((H2, 45402))
                    c.send(b"nobody")                               # a closed port: NO_SOCKET in h2
                eventually(lambda: h2("socket", "pktflow_sockets", family="inet", type="dgram") == 1)

            eventually(lambda: h2("ip", "pktflow_nstat", layer="ip", counter="IpInReceives") >= ip_in + 4
                       and h2("transport", "pktflow_drops", layer="transport", reason="NO_SOCKET") >= 1
                       and h2("transport", "pktflow_nstat", layer="transport", counter="UdpInDatagrams") >= 3
                       and h2("nic", "pktflow_netdev_rx_packets", layer="nic", dev="eth0") >= 4, timeout=20)
            eventually(lambda: h2("socket", "pktflow_sockets", family="inet", type="dgram") == 0)
            kinds = {m.name: m.WhichOneof("data") for _, m in rx.metrics()}
            assert kinds["pktflow_nstat"] == kinds["pktflow_drops"] == "sum"
            assert kinds["pktflow_nstat_value"] == kinds["pktflow_qdisc_backlog_bytes"] == "gauge"
        finally:
            s.stop()
    assert_no_tracebacks(tmp_path)


def test_an_unknown_metrics_exporter_is_refused_at_start():
    env = os.environ | {"OTEL_METRICS_EXPORTER": "otlp,console", "PKTFLOW_PORT": str(BASE + 41)}
    r = subprocess.run([sys.executable, "-m", "pktflow.services.ip"], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 2
    assert "pktflow ip: OTEL_METRICS_EXPORTER='otlp,console': 'console' is not an exporter" in r.stderr
