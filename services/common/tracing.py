"""Per-hop spans, cheap enough to leave on for every packet.

A hop is recorded as a tuple on the hot path (two clock reads were taken by the
caller, one random span id here); a background thread encodes batches of them
straight to OTLP (otlp.py) and hands the bytes to the OpenTelemetry SDK's OTLP
gRPC exporter, which brings the standard OTEL_EXPORTER_OTLP_* configuration,
retries and TLS. Resource and sampler come from the SDK too, so OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER(_ARG) work as usual.

The sampling decision is made once, at a journey's root (`start`), and travels
in the skb's trace flags; an unsampled skb costs one bit test per hop.
"""
import logging
import os
import random
import threading
from collections import deque

from . import config
from .otlp import SpanEncoder

log = logging.getLogger("pktflow.tracing")

SAMPLED = 1
_MAX_PENDING = 200_000


def _sampler_mode(sampler) -> str:
    """'on', 'off' or 'ask': skip the sampler call for the two constant samplers."""
    desc = sampler.get_description()
    if desc in ("AlwaysOnSampler", "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
                "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
                "localParentNotSampled:AlwaysOffSampler}"):
        return "on"
    if desc == "AlwaysOffSampler" or desc.startswith("ParentBased{root:AlwaysOffSampler"):
        return "off"
    return "ask"


class Tracer:
    """Records hop spans for one layer service. With `export=False` (or
    OTEL_SDK_DISABLED=true / OTEL_TRACES_EXPORTER=none) nothing is sampled.
    `exporter` replaces the OTLP exporter (tests)."""

    def __init__(self, layer: str, export: bool | None = None, exporter=None):
        from opentelemetry.sdk.trace import TracerProvider
        os.environ.setdefault("OTEL_SERVICE_NAME", layer)
        provider = TracerProvider()
        self.layer = layer
        self.resource = dict(provider.resource.attributes)
        shard = config.shard()
        if shard is not None:           # which shard ran a hop (a Jaeger process tag): one trace crosses shards
            self.resource["pktflow.shard"] = shard
        self.sampler = provider.sampler
        if export is None:
            export = (os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
                      and os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() != "none")
        self.enabled = export
        self._mode = _sampler_mode(self.sampler) if export else "off"
        self._rand = random.Random(os.urandom(16))
        self._pending: deque = deque()
        self._wake = threading.Event()
        self._stop = False
        self.exported = 0
        self.dropped = 0
        self._thread = None
        self._exporter = None
        if export:
            self._encoder = SpanEncoder(self.resource)
            self._exporter = exporter or _make_exporter()
            self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
            self._thread.start()

    def encode_attributes(self, attrs: tuple) -> bytes:
        """Attributes encoded ahead, for a caller that reuses the same set."""
        return self._encoder.attributes(attrs)

    # -- ids and sampling
    def new_span_id(self) -> bytes:
        return self._rand.getrandbits(64).to_bytes(8, "big") or b"\0\0\0\0\0\0\0\1"

    def start(self, skb, name: str = "packet", cause=None) -> bool:
        """Makes `skb` the root of a new journey: a fresh trace id and the
        sampling decision. `cause` (another skb) becomes a span link. Returns
        whether the new journey is sampled."""
        tid = self._rand.getrandbits(128).to_bytes(16, "big")
        skb.trace_id = tid
        skb.span_id = b""
        mode = self._mode
        if mode == "on":
            sampled = True
        elif mode == "off":
            sampled = False
        else:
            from opentelemetry.sdk.trace.sampling import Decision
            res = self.sampler.should_sample(None, int.from_bytes(tid, "big"), name)
            sampled = res.decision == Decision.RECORD_AND_SAMPLE
        skb.trace_flags = SAMPLED if sampled else 0
        return sampled

    def continue_from(self, skb, traceparent: bytes) -> bool:
        """Joins the caller's trace when the SDK passed a W3C traceparent."""
        try:
            _v, tid, sid, flags = traceparent.decode().split("-")
            skb.trace_id, skb.span_id = bytes.fromhex(tid), bytes.fromhex(sid)
            skb.trace_flags = int(flags, 16) & SAMPLED if self.enabled else 0
            return True
        except ValueError:
            return False

    # -- the hot path
    def hop(self, skb, name: str, start: int, end: int, attrs=(), drop: str | None = None, links=()) -> None:
        """One span for a hop of `skb` through this layer, child of the skb's
        current span; the skb then carries the new span as its parent-to-be."""
        sid = self._rand.getrandbits(64).to_bytes(8, "big")
        rec = (skb.trace_id, sid, skb.span_id, name, start, end, attrs, drop, links)
        skb.span_id = sid
        pending = self._pending
        if len(pending) < _MAX_PENDING:
            pending.append(rec)     # deque.append: safe against the export thread's popleft
            if len(pending) == 4096:
                self._wake.set()
        else:
            self.dropped += 1

    def span(self, trace_id: bytes, parent: bytes, name: str, start: int, end: int, attrs=(), drop=None,
             links=()) -> bytes:
        """A span that is not a packet's hop (e.g. a socket call); returns its id."""
        sid = self._rand.getrandbits(64).to_bytes(8, "big")
        if len(self._pending) < _MAX_PENDING:
            self._pending.append((trace_id, sid, parent, name, start, end, attrs, drop, links))
        return sid

    # -- export
    def _run(self):
        while not self._stop:
            self._wake.wait(0.5)
            self._wake.clear()
            self._export_pending()
        self._export_pending()

    def _export_pending(self):
        pending = self._pending
        while pending:
            pop = pending.popleft
            chunk = [pop() for _ in range(min(len(pending), 4096))]
            try:
                ok = self._exporter.export(_Encoded(self._encoder.request(chunk), len(chunk)))
            except Exception as e:     # an exporter must never take the layer down
                log.warning("span export failed: %s", e)
                ok = None
            if ok is not None and ok.name == "SUCCESS":
                self.exported += len(chunk)
            else:
                self.dropped += len(chunk)

    def flush(self, timeout: float = 5.0):
        """Exports what is pending (graceful shutdown)."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)


class _Encoded:
    """Spans already encoded as an ExportTraceServiceRequest."""

    def __init__(self, data: bytes, count: int):
        self.data, self.count = data, count


class _RawTraceServiceStub:
    """TraceServiceStub that sends an already encoded request as it is."""

    def __init__(self, channel):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
        self.Export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                          request_serializer=None,
                                          response_deserializer=ExportTraceServiceResponse.FromString)


def _make_exporter():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    class EncodedSpanExporter(OTLPSpanExporter):
        """The SDK's OTLP exporter (endpoint, headers, TLS, compression, retries
        from OTEL_EXPORTER_OTLP_*), fed requests we encoded ourselves."""

        def _initialize_channel_and_stub(self):
            super()._initialize_channel_and_stub()
            self._client = _RawTraceServiceStub(self._channel)

        def _translate_data(self, data):
            return data.data

        def _count_data(self, data):
            return data.count

    # The SDK logs every failed export; a missing collector should say so once.
    logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").addFilter(_Once())
    return EncodedSpanExporter()


class _Once(logging.Filter):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        key = record.msg
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

