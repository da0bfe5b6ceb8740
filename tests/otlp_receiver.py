"""An OTLP metrics receiver for the tests: opentelemetry-proto's MetricsService
on a localhost gRPC port, keeping every export request it is sent."""
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    """`with MetricsReceiver(port) as rx:` (0: any free port), `rx.endpoint` for the exporter."""

    def __init__(self, port: int = 0):
        self.requests: list = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        assert self.port, f"cannot listen on 127.0.0.1:{port}"
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):
        with self._lock:
            self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def metrics(self):
        """(service.name, metric) for each metric received, in order."""
        with self._lock:
            requests = list(self.requests)
        for req in requests:
            for rm in req.resource_metrics:
                res = {a.key: a.value.string_value for a in rm.resource.attributes}
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        yield res.get("service.name"), m

    def latest(self) -> dict:
        """{(service, name, frozenset(attributes)): value}, the last value each point was sent with."""
        out = {}
        for service, m in self.metrics():
            for dp in points(m):
                attrs = frozenset((a.key, a.value.string_value) for a in dp.attributes)
                out[service, m.name, attrs] = getattr(dp, dp.WhichOneof("value"))
        return out

    def close(self):
        self.server.stop(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def points(metric) -> list:
    """The number data points of a Sum or a Gauge."""
    kind = metric.WhichOneof("data")
    assert kind in ("sum", "gauge"), kind
    return list(getattr(metric, kind).data_points)
