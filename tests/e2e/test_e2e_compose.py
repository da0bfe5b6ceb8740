"""pktflow in Docker, on a real engine: `docker compose up --build` of compose.yaml,
with Jaeger replaced by the embedded trace store (compose.offline.yaml: there is
no registry here), driven from the host with the docker SDK and the pktflow SDK.

One compose project per session, with a unique name and free host ports, taken
down (`down -v --remove-orphans`) at the end whatever happens. Skipped, saying
why, where no Docker engine, Compose v2 or Python base image is at hand; run
../shared/tools/docker-engine-up and export the PYTHON_IMAGE it prints."""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pktflow
import pytest
from conftest import Bulk, environ, eventually, make_pki
from pktflow import _client
from pktflow import tracequery as tq
from pktflow.services.common import metrics
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# compose.tls.yaml: every gRPC connection of the stack (layers, health checks, the host's SDK) is mutual TLS
COMPOSE_FILES = [ROOT / "compose.yaml", ROOT / "tests" / "e2e" / "compose.offline.yaml", ROOT / "compose.tls.yaml"]
LAYERS = ["ip", "link", "nic", "socket", "transport"]
LONG_RUNNING = LAYERS + ["jaeger", "traffic"]
H2 = "10.0.2.10"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _engine():
    """The docker SDK client, or pytest.skip with the reason there is none."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine (run ../shared/tools/docker-engine-up)")
    try:
        import docker
    except ImportError:
        pytest.skip("the docker Python SDK is not installed (pip install '.[test]')")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, OSError) as e:
        pytest.skip(f"no Docker engine answers ({e}); run ../shared/tools/docker-engine-up")
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("Docker Compose v2 (`docker compose`) is not installed")
    base = os.environ.get("PYTHON_IMAGE", "python:3.12-slim")
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(base)
        except docker.errors.APIError as e:
            pytest.skip(f"no Python base image {base!r} here and none can be pulled ({e.explanation}); "
                        "run ../shared/tools/docker-engine-up and export the PYTHON_IMAGE it prints")
    return client


class Stack:
    """The running compose project (of `files`: compose.yaml and overrides, unless told otherwise)."""

    def __init__(self, client, project: str, env: dict, files=COMPOSE_FILES):
        self.client, self.project, self.env, self.files = client, project, env, files
        self.endpoint = f"127.0.0.1:{env['PKTFLOW_SOCKET_PORT']}"
        self.query = f"http://127.0.0.1:{env['PKTFLOW_JAEGER_UI_PORT']}"

    def compose(self, *args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        files = [a for f in self.files for a in ("-f", str(f))]
        r = subprocess.run(["docker", "compose", "-p", self.project, *files, *args], cwd=ROOT, env=self.env,
                           capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode:
            logs = self.compose("logs", "--no-color", "--tail", "40", check=False).stdout
            pytest.fail(f"docker compose {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}\n{logs[-6000:]}")
        return r

    def container(self, service: str):
        found = self.client.containers.list(all=True, filters={
            "label": [f"com.docker.compose.project={self.project}", f"com.docker.compose.service={service}"]})
        assert len(found) == 1, f"{len(found)} containers for {service}"
        return found[0]

    def state(self, service: str) -> dict:
        c = self.container(service)
        c.reload()
        return c.attrs["State"] | {"RestartCount": c.attrs["RestartCount"]}

    def healthy(self, service: str) -> bool:
        s = self.state(service)
        return s["Running"] and s.get("Health", {}).get("Status", "healthy") == "healthy"

    def wait_healthy(self, services=LAYERS, timeout: float = 90):
        eventually(lambda: all(self.healthy(s) for s in services), timeout=timeout, interval=0.5)


@pytest.fixture(scope="module")
def compose_stack(request, tmp_path_factory):
    client = _engine()
    pytest.importorskip("cryptography", reason="the stack's certificates are made with cryptography")
    pki = tmp_path_factory.mktemp("pki")
    tls = make_pki(pki, LAYERS + ["localhost", "127.0.0.1"])
    for f in [pki, *pki.iterdir()]:
        f.chmod(0o755 if f.is_dir() else 0o644)           # the containers' user reads them
    env = os.environ | {"PKTFLOW_SOCKET_PORT": str(_free_port()), "PKTFLOW_NIC_PORT": str(_free_port()),
                        "PKTFLOW_JAEGER_UI_PORT": str(_free_port()),
                        "PKTFLOW_OTLP_PORT": str(_free_port()), "PKTFLOW_TLS_DIR": str(pki),
                        "PKTFLOW_SECRET": uuid.uuid4().hex}      # the layers' streams authenticated
    s = Stack(client, f"pktflow-e2e-{uuid.uuid4().hex[:8]}", env)
    request.addfinalizer(lambda: s.compose("down", "-v", "--remove-orphans", "--timeout", "5", timeout=120,
                                           check=False))
    s.compose("up", "--build", "--detach", "--wait", "--wait-timeout", "240", timeout=900)
    with environ(PKTFLOW_ENDPOINT=s.endpoint, PKTFLOW_QUERY_ENDPOINT=s.query, **tls):     # the SDK, over TLS
        yield s


def _udp_once(port: int, payload: bytes, timeout: float = 1.0) -> bool:
    """One datagram h1 -> h2 through the router; True when it arrived."""
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h2") as srv, \
            pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as cli:
        srv.bind((H2, port))
        srv.settimeout(timeout)
        cli.sendto(payload, (H2, port))
        try:
            return srv.recvfrom(2048)[0] == payload
        except TimeoutError:
            return False


def _udp_arrives(port: int) -> bool:
    try:
        return _udp_once(port, b"after")
    except OSError:                   # ENETDOWN and the like while a layer is coming back
        return False


def _ping_answers() -> bool:
    try:
        return pktflow.ping(H2, netns="h1", count=1, timeout=1).received == 1
    except OSError:
        return False


def _complete_trace(port: int, spans: int):
    for tr in tq.find(service="transport", operation="udp_rcv", tags={"destination.port": port}):
        if len(tr["spans"]) >= spans:
            return tr


def test_compose_up_becomes_healthy_with_one_image_non_root_and_loopback_ports(compose_stack):
    for service in LONG_RUNNING:
        assert compose_stack.state(service)["Running"], service
    assert all(compose_stack.healthy(s) for s in LAYERS + ["jaeger"])
    images = {compose_stack.container(s).image.id for s in LONG_RUNNING}
    assert len(images) == 1, "one image for every layer (and, offline, the trace store)"
    for service in LONG_RUNNING:
        c = compose_stack.container(service)
        assert c.attrs["Config"]["User"] == "10001:10001"
        published = [b for bindings in c.attrs["NetworkSettings"]["Ports"].values() if bindings for b in bindings]
        assert all(b["HostIp"] == "127.0.0.1" for b in published), published
    # the traffic generator's journeys reach the trace store from all five layers
    eventually(lambda: sorted(tq.services()) == LAYERS, timeout=60, interval=0.5)
    eventually(lambda: "tcp ok" in compose_stack.container("traffic").logs(tail=20).decode(), timeout=60, interval=0.5)


def test_the_stack_takes_only_mutual_tls_with_its_own_certificates(compose_stack):
    """compose.tls.yaml: the layers found each other and answer their health
    checks over TLS (the stack is healthy), the host's SDK works with the
    stack's certificate, and a client without one gets no connection."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    assert pktflow.ping(H2, netns="h1", timeout=5).received == 1
    with grpc.insecure_channel(compose_stack.endpoint) as ch, pytest.raises(grpc.RpcError) as e:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_sdk_traffic_from_the_host_is_one_trace_through_five_containers(compose_stack):
    pktflow.ping(H2, netns="h1", count=1, timeout=2)          # ARP resolved: the datagram takes the plain path
    assert _udp_once(41700, b"from the host", timeout=5)
    tr = eventually(lambda: _complete_trace(41700, 19), timeout=30, interval=0.3)
    spans = tq.journey(tr)
    assert sorted(p["serviceName"] for p in tr["processes"].values()) == LAYERS
    assert {s["service"] for s in spans} == set(LAYERS)
    fwd = [s for s in spans if s["operationName"] == "ip_forward"]
    assert len(fwd) == 1 and tq.tag(fwd[0], "pktflow.netns") == "r1"
    assert tq.tag(fwd[0], "source.address") == "10.0.1.10" and tq.tag(fwd[0], "destination.address") == H2
    assert [tq.tag(s, "pktflow.netns") for s in (spans[0], spans[-1])] == ["h1", "h2"]


def _scrape(stack, layer: str) -> dict:
    """{(name, frozenset(labels)): value} of the layer's /metrics, read inside its container (the
    port is not published), on the layer's default metrics port."""
    url = f"http://127.0.0.1:{metrics.port(layer, {})}/metrics"
    get = f"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    r = stack.container(layer).exec_run(["python", "-c", get], demux=True)
    out, err = (x.decode() if x else "" for x in r.output)
    assert r.exit_code == 0, f"{layer}: GET {url}: {err[-2000:]}"
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(out) for s in fam.samples}


_SELECTOR = re.compile(r"(pktflow_\w+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|=)\s*"([^"]*)"')


def _dashboard_selectors():
    """(query, metric name, [(label, op, value)]) for every series the Grafana dashboard's
    panels and variables ask for (matchers on the dashboard's own $variables left out)."""
    dash = json.loads((ROOT / "observability" / "grafana" / "dashboards" / "pktflow.json").read_text())
    queries = [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]
    queries += [v["definition"] for v in dash.get("templating", {}).get("list", ()) if v.get("definition")]
    for q in queries:
        for name, matchers in _SELECTOR.findall(q):
            yield q, name, [m for m in _MATCHER.findall(matchers) if "$" not in m[2]]


def _matches(labels: frozenset, matchers) -> bool:
    d = dict(labels)
    return all(k in d and (re.fullmatch(v, d[k]) if op == "=~" else d[k] == v) for k, op, v in matchers)


def test_every_container_serves_metrics_and_the_dashboard_finds_its_series(compose_stack):
    """What Prometheus (docker compose --profile observability) would scrape: every layer's
    /metrics, with the counters traffic moved; every query of the provisioned dashboard finds
    series among them."""
    assert _udp_once(41704, b"counted", timeout=5)
    with pktflow.socket(pktflow.AF_INET, pktflow.SOCK_DGRAM, netns="h1") as c:
        c.sendto(b"nobody", (H2, 41705))                    # a closed port: NO_SOCKET in h2's transport

    def h2(scraped, service, name, **labels):
        return scraped[service].get((name, frozenset((labels | {"netns": "h2"}).items())), 0)

    def moved():
        scraped = {layer: _scrape(compose_stack, layer) for layer in LAYERS}
        ok = (h2(scraped, "ip", "pktflow_nstat_total", layer="ip", counter="IpInReceives") > 0
              and h2(scraped, "transport", "pktflow_nstat_total", layer="transport", counter="UdpInDatagrams") > 0
              and h2(scraped, "transport", "pktflow_drops_total", layer="transport", reason="NO_SOCKET") >= 1
              and h2(scraped, "nic", "pktflow_netdev_rx_packets_total", layer="nic", dev="eth0") > 0
              and h2(scraped, "nic", "pktflow_softnet_processed_total") > 0
              and h2(scraped, "link", "pktflow_qdisc_packets_total", dev="eth0", kind="pfifo_fast", handle="0:",
                     parent="root") > 0)
        return ok and scraped

    scraped = eventually(moved, timeout=30, interval=0.5)
    assert ("pktflow_sockets", frozenset({"netns": "h2", "family": "inet", "type": "dgram"}.items())) \
        in scraped["socket"]
    served = [key for layer in LAYERS for key in scraped[layer]]
    asked = list(_dashboard_selectors())
    assert len(asked) >= 10
    for query, name, matchers in asked:
        assert any(n == name and _matches(labels, matchers) for n, labels in served), \
            f"the dashboard asks for {name}{matchers} ({query}): no such series on any layer's /metrics"


def test_ip_restart_while_traffic_flows_recovers_and_tcp_completes_byte_identical(compose_stack):
    others = {s: compose_stack.state(s)["StartedAt"] for s in LONG_RUNNING if s != "ip"}
    bulk = Bulk(42800)
    time.sleep(1.0)
    ip = compose_stack.container("ip")
    ip.stop(timeout=15)                                         # SIGTERM: drain, flush, exit
    assert 0 < len(bulk.got) < len(bulk.data), "the transfer spans the restart"
    assert compose_stack.state("ip")["ExitCode"] == 0, "SIGTERM is a graceful shutdown"
    assert "shutting down" in ip.logs(tail=50).decode()

    # With ip gone, transport keeps running, counts and traces what it cannot hand down.
    assert not _udp_once(41701, b"while ip is down")
    drops = {c.name: c.value for c in _client.admin("transport", "h1", "counters").counters}
    assert drops.get("DropLAYER_UNAVAILABLE", 0) > 0, drops
    eventually(lambda: tq.find(service="transport", tags={"pktflow.drop_reason": "LAYER_UNAVAILABLE"}),
               timeout=30, interval=0.5)
    # ... not ready (its stream below is down) but alive: Kubernetes would not restart it.
    check = ["python", "-m", "pktflow.services.common.healthcheck", "localhost:50052"]
    transport = compose_stack.container("transport")
    assert transport.exec_run(check).exit_code == 1
    assert transport.exec_run(check + ["pktflow.liveness"]).exit_code == 0

    ip.start()
    compose_stack.wait_healthy()
    eventually(lambda: _udp_arrives(41702), timeout=60, interval=0.2)
    assert bulk.finish(timeout=180), f"the transfer did not finish: {len(bulk.got)} of {len(bulk.data)} bytes"
    assert not bulk.errors, bulk.errors
    assert hashlib.sha256(bulk.got).digest() == hashlib.sha256(bulk.data).digest()
    assert len(bulk.got) == len(bulk.data)
    for service, started in others.items():            # no other layer exited because ip restarted
        st = compose_stack.state(service)
        assert st["Running"] and st["StartedAt"] == started and st["RestartCount"] == 0, (service, st)


def _sigkill(stack, service: str):
    """SIGKILL to the container's process, as a crash would (`docker kill` counts as a
    manual stop, which the restart policy respects). Sent from a helper in the
    engine's PID namespace, so it works whatever machine the engine is on."""
    c = stack.container(service)
    kill = ["python", "-c", "import os, sys; os.kill(int(sys.argv[1]), 9)", str(c.attrs["State"]["Pid"])]
    stack.client.containers.run(c.image.id, kill, pid_mode="host", user="0", network_mode="none", remove=True)


def test_sigkilled_container_is_restarted_by_its_policy_and_rejoins(compose_stack):
    before = compose_stack.state("link")
    _sigkill(compose_stack, "link")

    def restarted():
        now = compose_stack.state("link")
        return (now["RestartCount"] > before["RestartCount"] and now["Running"]
                and now["StartedAt"] != before["StartedAt"])

    eventually(restarted, timeout=30, interval=0.2)
    compose_stack.wait_healthy()
    eventually(_ping_answers, timeout=60, interval=0.2)
    eventually(lambda: _udp_arrives(41703), timeout=30, interval=0.2)
    assert all(compose_stack.state(s)["Running"] for s in LONG_RUNNING)


def test_compose_down_leaves_nothing_behind(compose_stack):
    compose_stack.compose("down", "-v", "--remove-orphans", "--timeout", "5")
    label = {"label": f"com.docker.compose.project={compose_stack.project}"}
    assert compose_stack.client.containers.list(all=True, filters=label) == []
    assert compose_stack.client.networks.list(filters=label) == []
    assert compose_stack.client.volumes.list(filters=label) == []
