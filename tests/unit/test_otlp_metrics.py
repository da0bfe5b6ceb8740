"""The layers' metrics over OTLP (services/common/otlp_metrics.py): the families
/metrics serves, as observable counters and gauges, received by an OTLP gRPC
metrics receiver run here (tests/otlp_receiver.py)."""
import asyncio
import threading
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client.parser import text_string_to_metric_families

from otlp_receiver import MetricsReceiver, points
from pktflow.services.common import config, metrics, otlp_metrics, topology
from pktflow.services.ip.server import IpShell
from pktflow.services.link.server import LinkShell
from pktflow.services.nic.server import NicShell
from pktflow.services.socket.server import SocketShell
from pktflow.services.transport.server import TransportShell

CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@pytest.fixture(scope="module")
def topo():
    return topology.load()


@pytest.fixture
def rx():
    with MetricsReceiver() as r:
        yield r


def exporter(rx) -> OTLPMetricExporter:
    return OTLPMetricExporter(endpoint=rx.endpoint, insecure=True)


def attrs(**kw):
    return frozenset(kw.items())


def test_settings_from_the_standard_variables():
    assert otlp_metrics.settings({}) is None                        # default: none (Jaeger takes no metrics)
    assert otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "none"}) is None
    assert otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "prometheus"}) is None     # that is /metrics
    assert otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "otlp"}) == (60000, 30000)
    assert otlp_metrics.settings({"OTEL_METRICS_EXPORTER": " OTLP , prometheus",
                                  "OTEL_METRIC_EXPORT_INTERVAL": "500",
                                  "OTEL_METRIC_EXPORT_TIMEOUT": "2500.5"}) == (500, 2500.5)
    assert otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None
    with pytest.raises(config.ConfigError, match=r"OTEL_METRICS_EXPORTER='otlp,console': 'console' is not"):
        otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "otlp,console"})
    for bad in ("soon", "0", "-5", "inf", "nan"):
        with pytest.raises(config.ConfigError, match="OTEL_METRIC_EXPORT_INTERVAL="):
            otlp_metrics.settings({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": bad})
    # the interval is not looked at when nothing is exported
    assert otlp_metrics.settings({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}) is None


def prometheus(shell) -> dict:
    """{(name, frozenset(labels)): (value, type)} of one /metrics scrape, counters without `_total`."""
    text = metrics.Endpoint(shell.metric_families).scrape().decode()
    return {(s.name.removesuffix("_total") if fam.type == "counter" else s.name, frozenset(s.labels.items())):
            (s.value, fam.type) for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.parametrize("cls", [SocketShell, TransportShell, IpShell, LinkShell, NicShell], ids=lambda c: c.name)
def test_every_family_of_metrics_arrives_over_otlp_with_the_same_numbers(cls, topo, rx):
    sh = cls(topo)
    sh.drop_sites[("h2", "NO_SOCKET", "udp_rcv")] += 2

    async def run():
        m = otlp_metrics.OtlpMetrics(sh.metric_families, sh.name, exporter(rx))
        await m.export()
        await m.close()

    asyncio.run(run())
    scraped = prometheus(sh)
    got = {(name, a): v for (_, name, a), v in rx.latest().items()}
    assert got == {k: v for k, (v, _) in scraped.items()}
    kinds = {name: typ for (name, _), (_, typ) in scraped.items()}
    for _, m in rx.metrics():
        if kinds[m.name] == "counter":
            assert m.WhichOneof("data") == "sum" and m.sum.is_monotonic
            assert m.sum.aggregation_temporality == CUMULATIVE
        else:
            assert m.WhichOneof("data") == "gauge"
    assert got[("pktflow_drops", attrs(layer=sh.name, netns="h2", reason="NO_SOCKET"))] == 2


def test_counters_move_new_families_appear_and_the_core_is_read_on_the_loop_only(topo, rx, monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=pktflow")
    sh = NicShell(topo)
    dev = next(d for d in sh.nic.devices.values() if d.netns == "h2" and d.name == "eth0")
    readers = set()

    def families():
        readers.add(threading.get_ident())
        return sh.metric_families()

    def rx_packets():
        return rx.latest().get(("nic", "pktflow_netdev_rx_packets", attrs(layer="nic", netns="h2", dev="eth0")))

    async def wait_for(cond):
        deadline = time.monotonic() + 10
        while not cond():
            assert time.monotonic() < deadline, "not received"
            await asyncio.sleep(0.02)

    async def run():
        m = otlp_metrics.start(families, "nic", {"OTEL_METRICS_EXPORTER": "otlp",
                                                 "OTEL_METRIC_EXPORT_INTERVAL": "50"}, exporter(rx))
        await wait_for(lambda: rx_packets() == 0)
        dev.stats["rx_packets"] += 5
        dev.stats["rx_crc_errors"] += 1                # a family that was not there before
        await wait_for(lambda: rx_packets() == 5)
        dev.stats["rx_packets"] += 1
        await m.close()                                  # the last numbers, before the interval comes round
        return asyncio.get_running_loop()

    started = time.monotonic()
    loop = asyncio.run(run())
    assert time.monotonic() - started < 10
    assert rx_packets() == 6
    assert rx.latest()[("nic", "pktflow_netdev_rx_crc_errors", attrs(layer="nic", netns="h2", dev="eth0"))] == 1
    assert readers == {threading.get_ident()}, "families() read from a thread, not the loop's"
    assert loop.is_closed()
    res = {a.key: a.value.string_value for a in rx.requests[-1].resource_metrics[0].resource.attributes}
    assert res["service.name"] == "nic" and res["service.namespace"] == "pktflow"
    scope = rx.requests[-1].resource_metrics[0].scope_metrics[0].scope
    assert scope.name == "pktflow"
    # every point carries the host as its netns attribute
    assert all("netns" in {a.key for a in dp.attributes} for _, m in rx.metrics() for dp in points(m))


def test_off_by_default_and_a_failing_read_is_logged_not_fatal(topo, rx, caplog):
    assert otlp_metrics.start(lambda: [], "ip", {}) is None

    def broken():
        raise RuntimeError("core on fire")

    async def run():
        m = otlp_metrics.OtlpMetrics(broken, "ip", exporter(rx))
        await m.export()
        await m.close()

    asyncio.run(run())
    assert "reading the counters failed" in caplog.text and "core on fire" in caplog.text
    assert rx.requests == []


def test_close_is_quick_with_no_collector(topo):
    """Nothing listens: the last export gives up within CLOSE_TIMEOUT_MS, the service still stops."""
    sh = IpShell(topo)

    async def run():
        m = otlp_metrics.OtlpMetrics(sh.metric_families, "ip", OTLPMetricExporter(endpoint="http://127.0.0.1:9",
                                                                                  insecure=True))
        m.start()
        t0 = time.monotonic()
        await m.close()
        return time.monotonic() - t0

    assert asyncio.run(run()) < 2 * otlp_metrics.CLOSE_TIMEOUT_MS / 1e3 + 1


def test_the_shell_exports_when_asked_and_stops_with_the_service(topo, rx, monkeypatch):
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", rx.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)         # the shell's tracer names it after the layer
    sh = IpShell(topo)
    sh.ip.netns["h2"].mib["IpInReceives"] += 7

    async def run():
        await sh.start_metrics(None, "127.0.0.1")       # no /metrics endpoint; OTLP all the same
        assert sh.metrics_export is not None and sh.metrics_endpoint.server is None
        await sh.metrics_export.close()

    asyncio.run(run())
    assert rx.latest()[("ip", "pktflow_nstat", attrs(layer="ip", netns="h2", counter="IpInReceives"))] == 7
