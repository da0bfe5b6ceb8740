"""The container health check (compose) and the liveness name (Kubernetes' livenessProbe)."""
import pytest
from pktflow.services.common import healthcheck

pytestmark = pytest.mark.integration


def test_every_layer_is_ready_and_alive(stack):
    for layer, port in stack.ports.items():
        address = f"{stack.host}:{port}"
        assert healthcheck.check(address) == "SERVING", layer
        assert healthcheck.check(address, "pktflow.liveness") == "SERVING", layer
        assert healthcheck.main([address]) == 0


def test_nothing_listening_is_unhealthy():
    assert healthcheck.check("127.0.0.1:9", timeout=0.5).startswith("UNAVAILABLE")
    assert healthcheck.main(["127.0.0.1:9"]) == 1
