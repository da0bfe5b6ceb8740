"""The trace store: OTLP export requests kept as the bytes they arrived as.

Ingesting must be cheap (a packet makes eighteen spans), so a request is not
parsed when it arrives: a scan in C finds its trace ids (every OTLP encoder
writes a span's trace_id first, `0a 10 <16 bytes>`, then its span_id) and its
service names, which is all the index needs. Requests are parsed when a query
reads them, and a few parsed ones are cached. Oldest requests are evicted
first once the store holds `max_spans`.
"""
import re
import threading
from collections import OrderedDict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_SPAN_IDS = re.compile(rb"\x0a\x10(.{16})\x12\x08", re.S)
_SERVICE = re.compile(rb"\x0a\x0cservice\.name\x12.\x0a(.)", re.S)


def _services(raw: bytes) -> set[str]:
    out = set()
    for m in _SERVICE.finditer(raw):
        n = m.group(1)[0]
        out.add(raw[m.end():m.end() + n].decode(errors="replace"))
    return out or {"unknown_service"}


class TraceStore:
    def __init__(self, max_spans: int = 1_000_000, parsed_cache: int = 256):
        self.max_spans = max_spans
        self.requests: "OrderedDict[int, tuple]" = OrderedDict()   # n -> (raw, trace ids, span count)
        self.index: dict[bytes, list[int]] = {}                     # trace id -> request numbers
        self.order: "OrderedDict[bytes, None]" = OrderedDict()     # trace ids, oldest first
        self.services: set[str] = set()
        self.spans = 0
        self._next = 0
        self._parsed: "OrderedDict[int, list]" = OrderedDict()
        self._parsed_cache = parsed_cache
        self.lock = threading.Lock()

    def add_raw(self, raw: bytes) -> int:
        """Stores one ExportTraceServiceRequest in wire form; returns its span count."""
        ids = _SPAN_IDS.findall(raw)
        tids = set(ids)
        services = _services(raw)
        with self.lock:
            n = self._next
            self._next += 1
            self.requests[n] = (raw, tids, len(ids))
            self.services |= services
            index, order = self.index, self.order
            for tid in tids:
                lst = index.get(tid)
                if lst is None:
                    index[tid] = [n]
                    order[tid] = None
                else:
                    lst.append(n)
            self.spans += len(ids)
            while self.spans > self.max_spans and len(self.requests) > 1:
                self._evict()
        return len(ids)

    def add(self, request) -> int:
        return self.add_raw(request.SerializeToString())

    def _evict(self):
        n, (raw, tids, count) = self.requests.popitem(last=False)
        self._parsed.pop(n, None)
        self.spans -= count
        for tid in tids:
            lst = self.index.get(tid)
            if lst is not None:
                lst.remove(n)
                if not lst:
                    del self.index[tid]
                    self.order.pop(tid, None)

    def _spans_of(self, n: int) -> dict:
        """Request n's spans by trace id, as (service, Span); parsed once, cached."""
        by_trace = self._parsed.get(n)
        if by_trace is None:
            req = ExportTraceServiceRequest.FromString(self.requests[n][0])
            by_trace = {}
            for rs in req.resource_spans:
                service = "unknown_service"
                for kv in rs.resource.attributes:
                    if kv.key == "service.name":
                        service = kv.value.string_value
                service = Process(service)
                service.tags = tuple((kv.key, *_value(kv.value)) for kv in rs.resource.attributes
                                     if kv.key != "service.name")
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        by_trace.setdefault(s.trace_id, []).append((service, s))
            self._parsed[n] = by_trace
            while len(self._parsed) > self._parsed_cache:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(n)
        return by_trace

    def _trace(self, tid: bytes) -> list:
        out = []
        for n in self.index.get(tid, ()):
            out.extend(self._spans_of(n).get(tid, ()))
        return out

    def get(self, trace_id: bytes) -> list:
        with self.lock:
            return self._trace(trace_id)

    def operations(self, service: str) -> list[str]:
        with self.lock:
            names = set()
            for n in list(self.requests)[-self._parsed_cache:]:
                names |= {s.name for spans in self._spans_of(n).values() for svc, s in spans if svc == service}
            return sorted(names)

    def find(self, service: str | None = None, operation: str | None = None, tags: dict | None = None,
             start_us: int = 0, end_us: int = 0, min_duration_us: int = 0, limit: int = 20,
             scan: int = 20000) -> list[list]:
        """The newest traces with a span matching all the criteria (looking at
        the `scan` newest traces at most)."""
        out = []
        with self.lock:
            for i, tid in enumerate(reversed(self.order)):
                if i >= scan:
                    break
                spans = self._trace(tid)
                if any(_matches(svc, s, service, operation, tags, start_us, end_us, min_duration_us)
                       for svc, s in spans):
                    out.append(spans)
                    if len(out) >= limit:
                        break
        return out


def _value(v):
    which = v.WhichOneof("value")
    if which == "string_value":
        return "string", v.string_value
    if which == "bool_value":
        return "bool", v.bool_value
    if which == "int_value":
        return "int64", v.int_value
    if which == "double_value":
        return "float64", v.double_value
    return "string", str(v)


def _matches(svc, span, service, operation, tags, start_us, end_us, min_duration_us) -> bool:
    if service and svc != service:
        return False
    if operation and span.name != operation:
        return False
    start = span.start_time_unix_nano // 1000
    if start_us and start < start_us or end_us and start > end_us:
        return False
    if min_duration_us and (span.end_time_unix_nano - span.start_time_unix_nano) // 1000 < min_duration_us:
        return False
    if tags:
        attrs = {kv.key: str(_value(kv.value)[1]) for kv in span.attributes}
        if span.status.code == trace_pb2.Status.STATUS_CODE_ERROR:
            attrs["error"] = "true"
        for k, v in tags.items():
            if attrs.get(k) != str(v) and not (isinstance(v, bool) and attrs.get(k) == str(v).lower()):
                return False
    return True


class Process(str):
    """A span's service name, with the rest of its resource (Jaeger's process tags:
    service.instance.id, pktflow.shard, ...)."""
    tags: tuple = ()


def jaeger_trace(spans: list) -> dict:
    """A trace in the JSON form of Jaeger's /api/traces: one process per resource."""
    processes, pid_of, out = {}, {}, []
    for service, s in spans:
        key = (str(service), getattr(service, "tags", ()))
        pid = pid_of.get(key)
        if pid is None:
            pid = pid_of[key] = f"p{len(pid_of) + 1}"
            processes[pid] = {"serviceName": key[0],
                              "tags": [{"key": k, "type": t, "value": v} for k, t, v in key[1]]}
        tid = s.trace_id.hex()
        refs = []
        if s.parent_span_id:
            refs.append({"refType": "CHILD_OF", "traceID": tid, "spanID": s.parent_span_id.hex()})
        for link in s.links:
            refs.append({"refType": "FOLLOWS_FROM", "traceID": link.trace_id.hex(), "spanID": link.span_id.hex()})
        tags = [{"key": kv.key, "type": t, "value": v} for kv in s.attributes for t, v in [_value(kv.value)]]
        tags.append({"key": "span.kind", "type": "string", "value": KIND_NAMES.get(s.kind, "internal")})
        if s.status.code == trace_pb2.Status.STATUS_CODE_ERROR:
            tags += [{"key": "error", "type": "bool", "value": True},
                     {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                     {"key": "otel.status_description", "type": "string", "value": s.status.message}]
        logs = [{"timestamp": e.time_unix_nano // 1000,
                 "fields": [{"key": "event", "type": "string", "value": e.name}] +
                           [{"key": kv.key, "type": t, "value": v} for kv in e.attributes
                            for t, v in [_value(kv.value)]]} for e in s.events]
        out.append({"traceID": tid, "spanID": s.span_id.hex(), "flags": 1, "operationName": s.name,
                    "references": refs, "startTime": s.start_time_unix_nano // 1000,
                    "duration": max(0, (s.end_time_unix_nano - s.start_time_unix_nano) // 1000),
                    "tags": tags, "logs": logs, "processID": pid, "warnings": None})
    out.sort(key=lambda x: x["startTime"])
    return {"traceID": out[0]["traceID"] if out else "", "spans": out, "processes": processes, "warnings": None}
