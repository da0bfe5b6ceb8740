"""The trace store's two faces: OTLP/gRPC on 4317 (what the layers export to)
and the Jaeger query API on 16686 (/api/services, /api/services/<s>/operations,
/api/traces?service=..., /api/traces/<id>)."""
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ..common import healthcheck, rpc_guard
from ..common.config import MAX_MESSAGE, OTLP_PORT, QUERY_PORT
from .store import TraceStore, jaeger_trace

log = logging.getLogger("pktflow.tracestore")

_UNITS = {"us": 1, "µs": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}


def _duration_us(text: str) -> int:
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[:-len(unit)]) * _UNITS[unit])
    return int(text)


def otlp_handler(store: TraceStore) -> grpc.GenericRpcHandler:
    """TraceService/Export, taking the request as raw bytes (the store indexes
    it without parsing it)."""
    def export(raw: bytes, context):
        store.add_raw(raw)
        return trace_service_pb2.ExportTraceServiceResponse()

    return grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {
        "Export": grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)})


def make_handler(store: TraceStore):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def _json(self, obj, status=200):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            try:
                if parts == ["api", "services"]:
                    services = sorted(store.services)
                    return self._json({"data": services, "total": len(services), "limit": 0, "offset": 0,
                                       "errors": None})
                if len(parts) == 4 and parts[:2] == ["api", "services"] and parts[3] == "operations":
                    ops = store.operations(parts[2])
                    return self._json({"data": ops, "total": len(ops), "limit": 0, "offset": 0, "errors": None})
                if len(parts) == 3 and parts[:2] == ["api", "traces"]:
                    spans = store.get(bytes.fromhex(parts[2].rjust(32, "0")))
                    if not spans:
                        return self._json({"data": None, "total": 0, "limit": 0, "offset": 0,
                                           "errors": [{"code": 404, "msg": "trace not found"}]}, 404)
                    return self._json({"data": [jaeger_trace(spans)], "total": 1, "limit": 0, "offset": 0,
                                       "errors": None})
                if parts == ["api", "traces"]:
                    now_us = time.time_ns() // 1000
                    end = int(q.get("end", 0) or 0)
                    start = int(q.get("start", 0) or 0)
                    if not start and q.get("lookback") and q["lookback"] != "custom":
                        start = (end or now_us) - _duration_us(q["lookback"])
                    tags = json.loads(q["tags"]) if q.get("tags") else None
                    found = store.find(q.get("service"), q.get("operation"), tags, start, end,
                                       _duration_us(q["minDuration"]) if q.get("minDuration") else 0,
                                       int(q.get("limit", 20) or 20))
                    data = [jaeger_trace(t) for t in found]
                    return self._json({"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})
            except (ValueError, KeyError) as e:
                return self._json({"data": None, "errors": [{"code": 400, "msg": str(e)}]}, 400)
            self._json({"data": None, "errors": [{"code": 404, "msg": "not found"}]}, 404)

    return Handler


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def serve(otlp_address: str, http_host: str, http_port: int):
    # The stop signals are blocked in every thread (this one first, before any
    # other starts) and taken with sigwait(): a handler that sets an Event can
    # interrupt Event.wait() holding the same lock, and deadlock the shutdown.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    store = TraceStore(int(os.environ.get("PKTFLOW_TRACESTORE_MAX_SPANS", 1_000_000)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE)],
                         interceptors=[rpc_guard.RejectUndecodableSync()])
    server.add_generic_rpc_handlers((otlp_handler(store),))
    health_servicer = healthcheck.Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(otlp_address) == 0:
        raise SystemExit(f"pktflow tracestore: cannot listen on {otlp_address}")
    try:
        httpd = ThreadingHTTPServer((http_host, http_port), make_handler(store))
    except OSError as e:
        raise SystemExit(f"pktflow tracestore: cannot listen on {http_host}:{http_port}: {e.strerror}")
    httpd.daemon_threads = True
    server.start()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("trace store: OTLP on %s, query API on http://%s:%d", otlp_address, http_host, http_port)
    signal.sigwait(STOP_SIGNALS)
    httpd.shutdown()
    server.stop(1).wait()


def main():
    from ..common.shell import die_with_supervisor, tune_gc
    tune_gc()
    die_with_supervisor()
    logging.basicConfig(level=os.environ.get("PKTFLOW_LOG_LEVEL", "INFO"),
                        format="%(asctime)s tracestore: %(message)s", stream=sys.stderr)
    host = os.environ.get("PKTFLOW_LISTEN", "0.0.0.0")
    serve(f"{host}:{os.environ.get('PKTFLOW_OTLP_PORT', OTLP_PORT)}", host,
          int(os.environ.get("PKTFLOW_QUERY_PORT", QUERY_PORT)))
