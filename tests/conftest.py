"""Shared fixtures: one pktflow stack (five service processes and the trace
store) for the integration tests, started once and stopped at the end."""
import os
import time
from collections import Counter

import pytest

PORT_BASE = int(os.environ.get("PKTFLOW_TEST_PORT_BASE", "52050"))


@pytest.fixture(scope="session")
def stack():
    from pktflow.up import Stack
    s = Stack(port_base=PORT_BASE, otlp_port=PORT_BASE + 17, query_port=PORT_BASE + 18, trace_store=True)
    s.start()
    os.environ["PKTFLOW_ENDPOINT"] = s.endpoint
    os.environ["PKTFLOW_QUERY_ENDPOINT"] = s.query_url
    yield s
    s.stop()
    assert not s.procs


def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Polls `check` until it returns a true value (for effects that have no
    event to wait on: a counter moving, a span reaching the store)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s: {check}")
        time.sleep(interval)


def counters(netns: str) -> Counter:
    """nstat's view of a host: the ip, transport and link layers' counters (missing ones read 0)."""
    from pktflow import _client
    out = Counter()
    for layer in ("ip", "transport", "link"):
        out.update({c.name: c.value for c in _client.admin(layer, netns, "counters").counters})
    return out


def link_stats(netns: str, layer: str = "nic") -> dict:
    import json
    from pktflow import _client
    return {d["ifname"]: d["stats"] for d in json.loads(_client.admin(layer, netns, "link").json)}
