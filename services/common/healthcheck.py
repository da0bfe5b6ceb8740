"""A container health check: asks the gRPC health service of the service in
this container and exits 0 when it answers SERVING, 1 otherwise.

    python -m pktflow.services.common.healthcheck [ADDRESS] [SERVICE]

ADDRESS defaults to localhost and the layer's port (PKTFLOW_PORT); SERVICE to ""
(ready: the streams to the layers below are up). Kubernetes needs no such
program: its probes speak gRPC health themselves."""
import os
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import config



def _statuses(servicer) -> health_pb2.HealthListResponse:
    return health_pb2.HealthListResponse(statuses={
        name: health_pb2.HealthCheckResponse(status=status) for name, status in servicer._server_status.items()})


# grpcio-health-checking leaves Health/List unimplemented: NotImplementedError, a
# traceback in the log for every call. The services' health servicers answer it.
class AioHealth(health.aio.HealthServicer):
    async def List(self, request, context):
        return _statuses(self)


class Health(health.HealthServicer):
    def List(self, request, context):
        return _statuses(self)


def check(address: str, service: str = "", timeout: float = 2.0) -> str:
    """The status name the service reports (SERVING, NOT_SERVING, ...) or why there is none."""
    try:
        with config.dial(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()}"


def main(argv: list[str]) -> int:
    address = argv[0] if argv else f"localhost:{os.environ.get('PKTFLOW_PORT', '50051')}"
    status = check(address, argv[1] if len(argv) > 1 else "")
    print(f"{address}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
