"""The tracer: sampling at the journey's root from the standard OTEL_*
variables, hop spans chained through the skb, export in OTLP."""
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pktflow.services.common.tracing import Tracer
from pktflow.v1.skb_pb2 import Skb


class Capture:
    def __init__(self):
        self.requests = []

    def export(self, data):
        self.requests.append(ExportTraceServiceRequest.FromString(data.data))

        class Ok:
            name = "SUCCESS"
        return Ok


def spans(cap):
    return [s for r in cap.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_hops_chain_into_one_trace_and_export(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ip")
    cap = Capture()
    t = Tracer("ip", export=True, exporter=cap)
    skb = Skb(netns="h1")
    assert t.start(skb)
    t.hop(skb, "ip_rcv", 10, 20, (("pktflow.netns", "h1"),))
    t.hop(skb, "ip_forward", 10, 20, b"")
    t.hop(skb, "ip_output", 10, 20, b"", drop="PKT_TOO_BIG")
    t.flush()
    out = spans(cap)
    assert [s.name for s in out] == ["ip_rcv", "ip_forward", "ip_output"]
    assert len({s.trace_id for s in out}) == 1 and out[0].trace_id == skb.trace_id
    assert out[0].parent_span_id == b"" and out[1].parent_span_id == out[0].span_id
    assert out[2].parent_span_id == out[1].span_id and skb.span_id == out[2].span_id
    assert out[2].status.code == 2 and out[2].status.message == "PKT_TOO_BIG"
    attrs = {kv.key: kv.value.string_value for kv in cap.requests[0].resource_spans[0].resource.attributes}
    assert attrs["service.name"] == "ip"


def test_always_off_samples_nothing(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    t = Tracer("ip", export=True, exporter=Capture())
    skb = Skb()
    assert not t.start(skb) and skb.trace_flags == 0 and len(skb.trace_id) == 16
    t.flush()


def test_ratio_sampler(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    t = Tracer("socket", export=True, exporter=Capture())
    n = sum(t.start(Skb()) for _ in range(4000))
    assert 800 < n < 1200
    t.flush()


@pytest.mark.parametrize("var, value", [("OTEL_TRACES_EXPORTER", "none"), ("OTEL_SDK_DISABLED", "true")])
def test_tracing_switched_off(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    t = Tracer("nic")
    assert not t.enabled and not t.start(Skb())


def test_traceparent_joins_the_callers_trace():
    t = Tracer("socket", export=True, exporter=Capture())
    skb = Skb()
    assert t.continue_from(skb, b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert skb.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c" and skb.span_id.hex() == "b7ad6b7169203331"
    assert skb.trace_flags == 1
    assert not t.continue_from(Skb(), b"garbage")
    t.flush()
