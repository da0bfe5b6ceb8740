"""A direct encoder of OTLP trace export requests (opentelemetry/proto/trace/v1).

Building SDK span objects and translating them costs tens of microseconds a
span; a packet makes a dozen hops. Spans here are plain tuples, and this module
writes their protobuf wire form directly, with every repeated piece (names,
attributes, the resource) encoded once and cached. The output parses with the
official opentelemetry-proto classes (see tests/unit/test_otlp.py).
"""
import struct

_Q = struct.Struct("<Q")

SPAN_KIND_INTERNAL = 1
STATUS_ERROR = 2


def varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def any_value(value) -> bytes:
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    return field(1, str(value).encode())          # strings, and ints too big for int64


def key_value(key: str, value) -> bytes:
    return field(1, key.encode()) + field(2, any_value(value))


_IDS = struct.Struct("<2s16s2s8s2s8s")          # trace_id, span_id, parent_span_id
_ROOT_IDS = struct.Struct("<2s16s2s8s")
_TIMES = struct.Struct("<cQcQ")                   # start and end, fixed64
# Span's field tag (ScopeSpans.spans = 2) plus its length, for every length a span can have
_SPAN_PREFIX = [field(2, b"x" * n)[:-n] if n else b"\x12\x00" for n in range(1 << 14)]


class SpanEncoder:
    """Encodes span tuples (see Tracer.hop) for one service's resource."""

    def __init__(self, resource_attrs: dict, scope: str = "pktflow", cache_limit: int = 50000):
        self._resource = field(1, b"".join(field(1, key_value(k, v)) for k, v in resource_attrs.items()))
        self._scope = field(1, field(1, scope.encode()))
        self._attr: dict = {}
        self._name: dict = {}
        self._limit = cache_limit

    def attribute(self, key: str, value) -> bytes:
        """Span.attributes entry (field 9), cached (by type too: 1 == True == 1.0)."""
        k = (key, value, type(value))
        enc = self._attr.get(k)
        if enc is None:
            enc = field(9, key_value(key, value))
            if len(self._attr) < self._limit:
                self._attr[k] = enc
        return enc

    def attributes(self, attrs) -> bytes:
        """A span's attributes: a tuple of (key, value), or bytes encoded before
        by this method (the layers cache the sets their hops repeat)."""
        if attrs.__class__ is bytes:
            return attrs
        return b"".join([self.attribute(k, v) for k, v in attrs])

    def span(self, rec) -> bytes:
        trace_id, span_id, parent_id, name, start, end, attrs, drop, links = rec
        nm = self._name.get(name)
        if nm is None:
            nm = self._name[name] = field(5, name.encode()) + b"\x30" + varint(SPAN_KIND_INTERNAL)
        if parent_id:
            ids = _IDS.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x22\x08", parent_id)
        else:
            ids = _ROOT_IDS.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id)
        body = ids + nm + _TIMES.pack(b"\x39", start, b"\x41", end) + self.attributes(attrs)
        if drop or links:
            body += self._extras(end, drop, links)
        n = len(body)
        return (_SPAN_PREFIX[n] if n < 16384 else varint(0x12) + varint(n)) + body

    def _extras(self, end: int, drop, links) -> bytes:
        parts = []
        if drop:
            parts.append(self.attribute("pktflow.drop_reason", drop))
            # Event "kfree_skb" at the end of the hop, and status ERROR.
            parts.append(field(11, b"\x09" + _Q.pack(end) + field(2, b"kfree_skb") +
                               field(3, key_value("reason", drop))))
            parts.append(field(15, field(2, drop.encode()) + b"\x18" + varint(STATUS_ERROR)))
        for ltid, lsid in links:
            parts.append(field(13, b"\x0a\x10" + ltid + b"\x12\x08" + lsid))
        return b"".join(parts)

    def request(self, records) -> bytes:
        """ExportTraceServiceRequest bytes holding `records`."""
        spans = b"".join(map(self.span, records))
        return field(1, self._resource + field(2, self._scope + spans))
