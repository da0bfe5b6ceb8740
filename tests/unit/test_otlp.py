"""Unit tests of the direct OTLP encoder (services/common/otlp.py): its output
is parsed with the official opentelemetry-proto classes and every field checked."""
import math
import random

import pytest
from google.protobuf.internal.decoder import _DecodeVarint
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pktflow.services.common import otlp

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")
PARENT = bytes.fromhex("00f067aa0ba902b7")
START, END = 1_795_555_741_563_155_123, 1_795_555_741_563_169_456


def rec(name="ip_rcv", attrs=(), drop=None, links=(), trace=TRACE, span=SPAN, parent=PARENT, start=START, end=END):
    return (trace, span, parent, name, start, end, tuple(attrs), drop, tuple(links))


def decode(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def spans_of(req: ExportTraceServiceRequest):
    assert len(req.resource_spans) == 1
    assert len(req.resource_spans[0].scope_spans) == 1
    return list(req.resource_spans[0].scope_spans[0].spans)


def one_span(records_or_rec, encoder=None) -> Span:
    enc = encoder or otlp.SpanEncoder({"service.name": "pktflow-ip"})
    spans = spans_of(decode(enc.request([records_or_rec])))
    assert len(spans) == 1
    return spans[0]


def typed(v: AnyValue):
    """(kind, value) of an AnyValue, so that 1, True and 1.0 are told apart."""
    kind = v.WhichOneof("value")
    return kind, getattr(v, kind) if kind else None


def attr_map(kvs) -> dict:
    return {kv.key: typed(kv.value) for kv in kvs}


def expected_kind(value):
    if isinstance(value, bool):
        return "bool_value"
    if isinstance(value, int):
        return "int_value"
    if isinstance(value, float):
        return "double_value"
    return "string_value"


def official_any(value) -> AnyValue:
    return AnyValue(**{expected_kind(value): value})


def official_span(r) -> Span:
    """The span the official classes build for record `r`, for message equality."""
    trace_id, span_id, parent_id, name, start, end, attrs, drop, links = r
    s = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent_id, name=name, kind=Span.SPAN_KIND_INTERNAL,
             start_time_unix_nano=start, end_time_unix_nano=end)
    for k, v in attrs:
        s.attributes.append(KeyValue(key=k, value=official_any(v)))
    if drop:
        s.attributes.append(KeyValue(key="pktflow.drop_reason", value=AnyValue(string_value=drop)))
        ev = s.events.add(time_unix_nano=end, name="kfree_skb")
        ev.attributes.append(KeyValue(key="reason", value=AnyValue(string_value=drop)))
        s.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=drop))
    for ltid, lsid in links:
        s.links.add(trace_id=ltid, span_id=lsid)
    return s


# ---------------------------------------------------------------- varint

def ref_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


VARINT_VALUES = [0, 1, 2, 127, 128, 129, 255, 256, 300, 16383, 16384, 16385, 2**21 - 1, 2**21, 2**28 - 1, 2**28,
                 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**35, 2**42, 2**49, 2**56 - 1, 2**56, 2**63 - 1, 2**63,
                 2**64 - 1]


@pytest.mark.parametrize("n", VARINT_VALUES)
def test_varint_matches_reference_and_protobuf(n):
    assert otlp.varint(n) == ref_varint(n) == _VarintBytes(n)
    assert _DecodeVarint(otlp.varint(n), 0) == (n, len(otlp.varint(n)))


def test_varint_random_values_match_protobuf():
    rng = random.Random(1)
    for _ in range(2000):
        n = rng.getrandbits(rng.randrange(1, 65))
        assert otlp.varint(n) == _VarintBytes(n)


def test_varint_lengths_at_boundaries():
    for k in range(1, 10):
        assert len(otlp.varint(2 ** (7 * k) - 1)) == k
        assert len(otlp.varint(2 ** (7 * k))) == k + 1


# ---------------------------------------------------------------- resource and scope

def test_resource_attributes_are_typed():
    res = {"service.name": "pktflow-ip", "service.instance.id": "h1", "pktflow.netns": "h1", "process.pid": 4242,
           "pktflow.tracing": True, "pktflow.sample": 0.25}
    req = decode(otlp.SpanEncoder(res).request([rec()]))
    got = req.resource_spans[0].resource.attributes
    assert [kv.key for kv in got] == list(res)
    assert attr_map(got) == {"service.name": ("string_value", "pktflow-ip"),
                             "service.instance.id": ("string_value", "h1"),
                             "pktflow.netns": ("string_value", "h1"),
                             "process.pid": ("int_value", 4242),
                             "pktflow.tracing": ("bool_value", True),
                             "pktflow.sample": ("double_value", 0.25)}


def test_empty_resource():
    req = decode(otlp.SpanEncoder({}).request([rec()]))
    assert len(req.resource_spans[0].resource.attributes) == 0
    assert len(spans_of(req)) == 1


def test_scope_name_default_and_custom():
    req = decode(otlp.SpanEncoder({"service.name": "x"}).request([rec()]))
    assert req.resource_spans[0].scope_spans[0].scope.name == "pktflow"
    req = decode(otlp.SpanEncoder({"service.name": "x"}, scope="pktflow.link").request([rec()]))
    assert req.resource_spans[0].scope_spans[0].scope.name == "pktflow.link"


def test_no_records_is_a_valid_request_with_no_spans():
    req = decode(otlp.SpanEncoder({"service.name": "x"}).request([]))
    assert req.resource_spans[0].scope_spans[0].scope.name == "pktflow"
    assert spans_of(req) == []


def test_request_accepts_any_iterable():
    req = decode(otlp.SpanEncoder({}).request(iter([rec(name="a"), rec(name="b")])))
    assert [s.name for s in spans_of(req)] == ["a", "b"]


# ---------------------------------------------------------------- one span

def test_span_ids_name_kind_and_times():
    s = one_span(rec())
    assert s.trace_id == TRACE
    assert s.span_id == SPAN
    assert s.parent_span_id == PARENT
    assert s.name == "ip_rcv"
    assert s.kind == Span.SPAN_KIND_INTERNAL == 1
    assert s.start_time_unix_nano == START
    assert s.end_time_unix_nano == END


def test_span_without_drop_has_no_status_events_or_links():
    s = one_span(rec(attrs=(("pktflow.len", 98),)))
    assert s.status.code == Status.STATUS_CODE_UNSET and s.status.message == ""
    assert len(s.events) == 0 and len(s.links) == 0
    assert [kv.key for kv in s.attributes] == ["pktflow.len"]
    assert s.trace_state == "" and s.flags == 0
    assert s.dropped_attributes_count == s.dropped_events_count == s.dropped_links_count == 0


def test_root_span_has_no_parent():
    data = otlp.SpanEncoder({}).request([rec(parent=b"")])
    s = spans_of(decode(data))[0]
    assert s.parent_span_id == b""
    assert s.span_id == SPAN and s.trace_id == TRACE
    assert not s.HasField("status")


def test_ids_with_zero_and_high_bytes():
    trace = b"\x00" * 15 + b"\x01"
    span = b"\xff" * 8
    parent = b"\x00\x80" * 4
    s = one_span(rec(trace=trace, span=span, parent=parent))
    assert (s.trace_id, s.span_id, s.parent_span_id) == (trace, span, parent)


@pytest.mark.parametrize("start,end", [(0, 0), (1, 2), (START, START), (2**63 - 1, 2**63), (2**64 - 2, 2**64 - 1)])
def test_span_times_are_fixed64(start, end):
    s = one_span(rec(start=start, end=end))
    assert (s.start_time_unix_nano, s.end_time_unix_nano) == (start, end)


@pytest.mark.parametrize("name", ["ip_rcv", "", "udp_queue_rcv_skb", "ñämé ✓ 名前 🚀", "x" * 300])
def test_span_names(name):
    assert one_span(rec(name=name)).name == name


ATTR_VALUES = [
    0, 1, -1, 42, 127, 128, -128, 65535, 2**31 - 1, -2**31, 2**32, 2**40 + 7, -2**40, 2**62, 2**63 - 1, -2**63,
    True, False,
    0.0, 1.5, -0.25, 3.141592653589793, 1e-300, 1e300, float("inf"), float("-inf"),
    "", "eth0", "10.0.1.10", "héllo wörld", "ネットワーク", "🚀📦", "a\x00b", "x" * 200,
]


@pytest.mark.parametrize("value", ATTR_VALUES, ids=repr)
def test_attribute_typed_value(value):
    s = one_span(rec(attrs=(("k", value),)))
    assert len(s.attributes) == 1 and s.attributes[0].key == "k"
    assert typed(s.attributes[0].value) == (expected_kind(value), value)


def test_attribute_float_nan():
    s = one_span(rec(attrs=(("k", float("nan")),)))
    kind, v = typed(s.attributes[0].value)
    assert kind == "double_value" and math.isnan(v)


def test_many_attributes_keep_order_and_types():
    attrs = tuple((f"pktflow.attr{i}", v) for i, v in enumerate(ATTR_VALUES))
    s = one_span(rec(attrs=attrs))
    assert [kv.key for kv in s.attributes] == [k for k, _ in attrs]
    assert [typed(kv.value) for kv in s.attributes] == [(expected_kind(v), v) for _, v in attrs]


def test_unicode_attribute_key():
    s = one_span(rec(attrs=(("clé.ü", "v"),)))
    assert s.attributes[0].key == "clé.ü"


def test_span_equals_the_one_built_with_official_classes():
    r = rec(attrs=(("pktflow.dev", "eth0"), ("pktflow.len", 98), ("pktflow.gso", False), ("pktflow.ratio", 0.5)))
    assert one_span(r) == official_span(r)


# ---------------------------------------------------------------- drops and links

def test_drop_sets_attribute_status_and_kfree_skb_event():
    s = one_span(rec(name="ip_rcv_core", attrs=(("pktflow.len", 60),), drop="IP_CSUM"))
    assert [kv.key for kv in s.attributes] == ["pktflow.len", "pktflow.drop_reason"]
    assert attr_map(s.attributes)["pktflow.drop_reason"] == ("string_value", "IP_CSUM")
    assert s.status.code == Status.STATUS_CODE_ERROR == 2
    assert s.status.message == "IP_CSUM"
    assert len(s.events) == 1
    ev = s.events[0]
    assert ev.name == "kfree_skb"
    assert ev.time_unix_nano == END
    assert attr_map(ev.attributes) == {"reason": ("string_value", "IP_CSUM")}
    assert len(s.links) == 0


def test_drop_with_no_other_attributes():
    s = one_span(rec(drop="NO_SOCKET"))
    assert attr_map(s.attributes) == {"pktflow.drop_reason": ("string_value", "NO_SOCKET")}
    assert s.status.message == "NO_SOCKET"


def test_drop_span_equals_the_one_built_with_official_classes():
    r = rec(attrs=(("pktflow.dev", "eth0"),), drop="PKT_TOO_SMALL")
    assert one_span(r) == official_span(r)


def test_links():
    links = ((bytes(range(16)), bytes(range(8))), (b"\xff" * 16, b"\x01" * 8), (TRACE, PARENT))
    s = one_span(rec(links=links))
    assert [(ln.trace_id, ln.span_id) for ln in s.links] == list(links)
    assert all(len(ln.attributes) == 0 and ln.trace_state == "" for ln in s.links)
    assert s.status.code == Status.STATUS_CODE_UNSET and len(s.events) == 0


def test_drop_and_links_together():
    links = ((TRACE, PARENT),)
    r = rec(attrs=(("a", 1),), drop="IP_INHDR", links=links)
    s = one_span(r)
    assert [(ln.trace_id, ln.span_id) for ln in s.links] == list(links)
    assert s.status.code == 2 and s.status.message == "IP_INHDR"
    assert [e.name for e in s.events] == ["kfree_skb"]
    assert s == official_span(r)


def test_root_span_with_drop_and_links():
    r = rec(parent=b"", drop="OTHERHOST", links=((TRACE, SPAN),))
    s = one_span(r)
    assert s.parent_span_id == b""
    assert s == official_span(r)


# ---------------------------------------------------------------- typed values and the encoder's caches

@pytest.mark.parametrize("first,second", [(1, True), (True, 1), (0, False), (False, 0), (1, 1.0), (1.0, 1),
                                          (0, 0.0), (False, 0.0), (True, 1.0)], ids=repr)
def test_equal_values_of_different_types_keep_their_own_type(first, second):
    # 1 == True == 1.0 in Python, but they are different OTLP AnyValues.
    enc = otlp.SpanEncoder({})
    s1 = one_span(rec(attrs=(("k", first),)), enc)
    s2 = one_span(rec(attrs=(("k", second),)), enc)
    assert typed(s1.attributes[0].value) == (expected_kind(first), first)
    assert typed(s2.attributes[0].value) == (expected_kind(second), second)


def test_equal_values_of_different_types_in_one_request():
    enc = otlp.SpanEncoder({})
    spans = spans_of(decode(enc.request([rec(attrs=(("k", 1), ("j", 2))), rec(attrs=(("k", True), ("j", 2.0)))])))
    assert [typed(kv.value) for kv in spans[0].attributes] == [("int_value", 1), ("int_value", 2)]
    assert [typed(kv.value) for kv in spans[1].attributes] == [("bool_value", True), ("double_value", 2.0)]


def test_same_value_repeated_across_spans_uses_cache_correctly():
    enc = otlp.SpanEncoder({})
    attrs = (("pktflow.dev", "eth0"), ("pktflow.len", 98))
    spans = spans_of(decode(enc.request([rec(attrs=attrs), rec(attrs=attrs), rec(attrs=attrs[::-1])])))
    for s, a in zip(spans, (attrs, attrs, attrs[::-1])):
        assert [(kv.key, typed(kv.value)) for kv in s.attributes] == [(k, (expected_kind(v), v)) for k, v in a]


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_small_cache_limit_still_encodes_everything(limit):
    enc = otlp.SpanEncoder({"service.name": "x"}, cache_limit=limit)
    records = [rec(name=f"n{i % 4}", attrs=(("i", i), ("s", str(i % 3)))) for i in range(20)]
    spans = spans_of(decode(enc.request(records)))
    assert [s.name for s in spans] == [f"n{i % 4}" for i in range(20)]
    assert [attr_map(s.attributes) for s in spans] == [{"i": ("int_value", i), "s": ("string_value", str(i % 3))}
                                                       for i in range(20)]


def test_encoder_is_reusable_across_requests():
    enc = otlp.SpanEncoder({"service.name": "pktflow-ip"})
    a = decode(enc.request([rec(name="a", drop="X")]))
    b = decode(enc.request([rec(name="b")]))
    assert spans_of(a)[0].name == "a" and spans_of(b)[0].name == "b"
    assert len(spans_of(b)[0].events) == 0
    assert b.resource_spans[0].resource == a.resource_spans[0].resource


# ---------------------------------------------------------------- sizes and many spans

def _record_of_body_size(n: int, **kw):
    """A record whose Span message (as the official classes size it) is
    exactly n bytes, found by varying the name's length and a padding attribute."""
    for name_len in range(1, 64):
        r = rec(name="x" * name_len, **kw)
        if official_span(r).ByteSize() == n:
            return r
    for name_len in range(1, 4):
        pad0 = max(0, n - 100)
        overhead = official_span(rec(name="x" * name_len, attrs=(("pad", "p" * pad0),), **kw)).ByteSize() - pad0
        for pad in range(max(0, n - overhead - 4), max(0, n - overhead + 5)):
            r = rec(name="x" * name_len, attrs=(("pad", "p" * pad),), **kw)
            if official_span(r).ByteSize() == n:
                return r
    raise AssertionError(f"no record of size {n}")


@pytest.mark.parametrize("size", [100, 126, 127, 128, 129, 255, 256, 16382, 16383, 16384, 16385, 2**21 - 1, 2**21])
def test_span_of_size_across_varint_length_boundaries(size):
    r = _record_of_body_size(size)
    enc = otlp.SpanEncoder({"service.name": "x"})
    encoded = enc.span(r)
    prefix = b"\x12" + _VarintBytes(size)
    assert encoded[:len(prefix)] == prefix and len(encoded) == len(prefix) + size
    req = decode(enc.request([r, rec(name="after")]))
    spans = spans_of(req)
    assert spans[0] == official_span(r)
    assert spans[1].name == "after"


@pytest.mark.parametrize("size,kw", [
    (127, {"parent": b"", "drop": "X"}), (128, {"parent": b"", "drop": "X"}),
    (16383, {"drop": "IP_CSUM", "links": ((TRACE, SPAN),)}), (16384, {"drop": "IP_CSUM", "links": ((TRACE, SPAN),)}),
])
def test_drop_span_of_size_across_varint_length_boundaries(size, kw):
    # the same boundaries when the size includes the drop extras (and a link)
    r = _record_of_body_size(size, **kw)
    enc = otlp.SpanEncoder({})
    encoded = enc.span(r)
    assert encoded[:1 + len(_VarintBytes(size))] == b"\x12" + _VarintBytes(size)
    assert len(encoded) == 1 + len(_VarintBytes(size)) + size
    assert spans_of(decode(enc.request([r])))[0] == official_span(r)


def test_many_spans_in_one_request():
    rng = random.Random(2)
    enc = otlp.SpanEncoder({"service.name": "pktflow-transport", "service.instance.id": "h2"})
    records = []
    for i in range(3000):
        records.append(rec(trace=rng.randbytes(16), span=rng.randbytes(8),
                           parent=rng.randbytes(8) if i % 5 else b"", name=rng.choice(["ip_rcv", "udp_rcv", "xmit"]),
                           start=START + i * 1000, end=START + i * 1000 + rng.randrange(10**6),
                           attrs=(("pktflow.len", rng.randrange(60, 1515)), ("pktflow.dev", rng.choice(["eth0", "lo"])),
                                  ("pktflow.ok", bool(i % 2))),
                           drop=rng.choice([None, None, None, "NO_SOCKET", "IP_CSUM"]),
                           links=((rng.randbytes(16), rng.randbytes(8)),) if i % 7 == 0 else ()))
    data = enc.request(records)
    assert len(data) > 2**21 // 8            # the outer lengths need 3-byte varints
    spans = spans_of(decode(data))
    assert len(spans) == len(records)
    for s, r in zip(spans, records):
        assert s == official_span(r)


def test_request_equals_the_one_built_with_official_classes():
    res = {"service.name": "pktflow-ip", "pktflow.pid": 7}
    records = [rec(name="a"), rec(name="b", parent=b"", drop="X"), rec(name="c", links=((TRACE, SPAN),))]
    expected = ExportTraceServiceRequest()
    rs = expected.resource_spans.add()
    for k, v in res.items():
        rs.resource.attributes.append(KeyValue(key=k, value=official_any(v)))
    ss = rs.scope_spans.add()
    ss.scope.name = "pktflow"
    for r in records:
        ss.spans.append(official_span(r))
    assert decode(otlp.SpanEncoder(res).request(records)) == expected
