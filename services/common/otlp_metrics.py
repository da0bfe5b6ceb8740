"""A layer's metrics over OTLP: the metric families its `/metrics` serves
(LayerShell.metric_families(), metrics.py) as OpenTelemetry observable
counters and gauges, sent by the SDK's OTLP gRPC metric exporter. One source of
the numbers: no counter is listed here.

Configured with OpenTelemetry's own variables:
- `OTEL_METRICS_EXPORTER`: `otlp` exports; `none` (and unset: the default here,
  not the SDK's `otlp`, because Jaeger, the default OTLP endpoint, takes no
  metrics) does not; `prometheus` is the `/metrics` endpoint, on anyway as
  PKTFLOW_METRICS_PORT says. A comma-separated list; any other value is refused
  at start. `OTEL_SDK_DISABLED=true` turns it off.
- `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` (else
  http://localhost:4317), and the rest of `OTEL_EXPORTER_OTLP_[METRICS_]*`
  (headers, TLS, compression, temporality): read by the exporter itself.
- `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000) and `OTEL_METRIC_EXPORT_TIMEOUT`
  (ms, default 30000); not a number above 0: refused at start.
- The resource as for traces: `OTEL_SERVICE_NAME` (default the layer),
  `OTEL_RESOURCE_ATTRIBUTES`.

Names: a counter family keeps its Prometheus name without `_total`
(`pktflow_nstat`, `pktflow_drops`, `pktflow_netdev_rx_packets`, ...), a gauge its
name (`pktflow_nstat_value`, `pktflow_qdisc_backlog_bytes`, `pktflow_sockets`); the
labels (`layer`, `netns`, `counter`, `reason`, `dev`, ...) are attributes. What
turns OTLP into Prometheus (the Collector's prometheus exporters, Prometheus'
OTLP receiver) adds `_total` to a monotonic sum, so the names come back as
`/metrics` has them and the Grafana dashboard works on either.

Threads: a core is not thread-safe. So the families are read on the service's
event loop, by a task that wakes every interval, into plain numbers; then the
SDK's reader collects in a worker thread (the instruments' callbacks return
those numbers, the exporter sends them) while the loop goes on. The SDK's own
periodic thread is not used (interval math.inf): no thread but the loop's
ever reads a core, and no instrument is created while the SDK collects (a family
that appears later, as `rx_crc_errors` once a device counts one, gets its
instrument on the loop before the next collection).
"""
import asyncio
import functools
import logging
import math
import os

from opentelemetry.metrics import Observation

from . import config

log = logging.getLogger("pktflow")

EXPORTERS = ("otlp", "prometheus", "none")
INTERVAL_MS, TIMEOUT_MS = 60_000.0, 30_000.0          # the SDK's defaults
CLOSE_TIMEOUT_MS = 2_000.0                            # the last export, at SIGTERM


def _millis(env, name: str, default: float) -> float:
    v = env.get(name, "").strip()
    if not v:
        return default
    try:
        ms = float(v)
    except ValueError:
        ms = math.nan
    if not 0 < ms < math.inf:
        raise config.ConfigError(f"{name}={v!r}: milliseconds, a number above 0")
    return ms


def settings(env=None) -> tuple[float, float] | None:
    """(interval, timeout) in ms when OTEL_METRICS_EXPORTER asks for OTLP, None
    when it does not; config.ConfigError naming the variable for a bad value."""
    env = os.environ if env is None else env
    raw = env.get("OTEL_METRICS_EXPORTER", "")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if n not in EXPORTERS]
    if bad:
        raise config.ConfigError(f"OTEL_METRICS_EXPORTER={raw!r}: {bad[0]!r} is not an exporter pktflow has "
                                 f"(otlp, prometheus or none; several with commas)")
    if "otlp" not in names or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return (_millis(env, "OTEL_METRIC_EXPORT_INTERVAL", INTERVAL_MS),
            _millis(env, "OTEL_METRIC_EXPORT_TIMEOUT", TIMEOUT_MS))


def observations(families) -> dict:
    """{name: (kind, description, [(attributes, value), ...])} from prometheus_client
    metric families: a counter under its name without `_total` (its `_total`
    samples), a gauge under its name; families of one name merged."""
    out: dict = {}
    for fam in families:
        if fam.type == "counter":
            kind, sample = "counter", fam.name + "_total"
        elif fam.type in ("gauge", "unknown"):
            kind, sample = "gauge", fam.name
        else:                         # metrics.py builds no histograms or summaries
            continue
        points = out.setdefault(fam.name, (kind, fam.documentation, []))[2]
        points.extend((s.labels, s.value) for s in fam.samples if s.name == sample)
    return out


def _endpoint() -> str:
    return (os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4317")


class OtlpMetrics:
    """Exports `families()` (a list of prometheus_client metric families, read
    on the loop) every `interval_ms`; `exporter` replaces the OTLP exporter
    (tests). start() and close() on the service's loop."""

    def __init__(self, families, service: str, exporter=None, interval_ms: float = INTERVAL_MS,
                 timeout_ms: float = TIMEOUT_MS):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            exporter = OTLPMetricExporter()
        self.families = families
        self.interval, self.timeout_ms = interval_ms / 1e3, timeout_ms
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service}))
        # collected when the loop's task says so: math.inf, no periodic thread of the SDK's
        self.reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
        self.provider = MeterProvider(resource=resource, metric_readers=[self.reader], shutdown_on_exit=False)
        self.meter = self.provider.get_meter("pktflow")
        self.instruments: dict = {}
        self.current: dict = {}            # the numbers of the collection under way, taken on the loop
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except asyncio.TimeoutError:
                await self.export(self.timeout_ms)

    async def export(self, timeout_ms: float | None = None):
        """Reads the families here, on the loop; the SDK collects and sends them
        in a worker thread. Never two at once (the task awaits each)."""
        try:
            self.current = observations(self.families())
        except Exception:
            log.exception("metrics over OTLP: reading the counters failed")
            return
        for name, (kind, description, _) in self.current.items():
            if name not in self.instruments:
                make = (self.meter.create_observable_counter if kind == "counter"
                        else self.meter.create_observable_gauge)
                self.instruments[name] = make(name, callbacks=[functools.partial(self._observe, name)],
                                              description=description)
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        await asyncio.get_running_loop().run_in_executor(None, self._collect, timeout)

    def _observe(self, name: str, options):
        entry = self.current.get(name)
        return [Observation(v, attrs) for attrs, v in entry[2]] if entry else []

    def _collect(self, timeout_ms: float):              # a worker thread: reads self.current only
        try:
            self.reader.collect(timeout_millis=timeout_ms)
        except Exception:
            log.exception("metrics over OTLP: the collection failed")

    async def close(self):
        """The last numbers, then the exporter shut: CLOSE_TIMEOUT_MS at most for
        both, even with the collector gone (the shutdown cuts a send's retries)."""
        self._stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_TIMEOUT_MS / 1e3
        running = {t for t in (self._task,) if t is not None}
        if running:                       # an export under way ends first: never two at once
            await asyncio.wait(running, timeout=CLOSE_TIMEOUT_MS / 1e3)
        if all(t.done() for t in running):
            running.add(loop.create_task(self.export(CLOSE_TIMEOUT_MS)))
            await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
        await loop.run_in_executor(None, functools.partial(self.provider.shutdown, timeout_millis=CLOSE_TIMEOUT_MS))
        await asyncio.gather(*running)


def start(families, service: str, env=None, exporter=None) -> OtlpMetrics | None:
    """On the service's loop: OTLP export of `families()` when
    OTEL_METRICS_EXPORTER asks for it (see settings()), else None."""
    conf = settings(env)
    if conf is None:
        return None
    m = OtlpMetrics(families, service, exporter, *conf)
    m.start()
    log.info("pktflow %s metrics over OTLP to %s every %g s", service, _endpoint(), conf[0] / 1e3)
    return m
