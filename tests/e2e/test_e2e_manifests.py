"""The deployment files are valid: `docker compose config` of compose.yaml, and
`kubectl kustomize k8s/` checked against the Kubernetes schemas (offline, with
kubernetes-validate). No engine and no cluster needed."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pktflow.services.common import metrics

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"socket": 50051, "transport": 50052, "ip": 50053, "link": 50054, "nic": 50055}


def test_the_k8s_topology_is_the_default_topology():
    """kustomize reads files only under k8s/, so the ConfigMap's source is a copy."""
    original = ROOT / "services" / "sdk" / "topologies" / "default.yaml"
    assert (ROOT / "k8s" / "topology" / "default.yaml").read_text() == original.read_text(), \
        "k8s/topology/default.yaml differs from services/sdk/topologies/default.yaml: copy it again"


def test_compose_config_is_valid():
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                        check=False).returncode:
        pytest.skip("Docker Compose v2 (`docker compose`) is not installed")
    r = subprocess.run(["docker", "compose", "-f", "compose.yaml", "config", "--format", "json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    services = yaml.safe_load(r.stdout)["services"]
    assert set(services) == set(LAYERS) | {"jaeger", "traffic"}
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    images = {s["image"] for name, s in services.items() if name != "jaeger"}
    assert len(images) == 1 and [n for n, s in services.items() if "build" in s] == ["nic"]
    for name, s in services.items():
        assert s["restart"] == "unless-stopped"
        assert all(p["host_ip"] == "127.0.0.1" for p in s.get("ports", ())), name
    for layer, port in LAYERS.items():
        s = services[layer]
        assert s["environment"]["OTEL_SERVICE_NAME"] == layer
        assert s["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
        assert s["environment"][f"PKTFLOW_{layer.upper()}_ENDPOINT"] == f"{layer}:{port}"
        assert "PKTFLOW_SECRET" in s["environment"]
        assert s["healthcheck"]["test"][-1] == f"localhost:{port}"
    assert services["socket"]["ports"][0]["target"] == 50051
    assert services["ip"]["depends_on"]["link"]["condition"] == "service_healthy"


def _rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders k8s/ with its built-in kustomize)")
    r = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_kustomize_renders_and_validates_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install '.[test]'")
    docs = _rendered()
    version = kubernetes_validate.latest_version()
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']} {d['metadata']['name']}: {e.message}")
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert set(kinds["Deployment"]) == set(LAYERS) | {"jaeger", "traffic"}
    assert set(kinds["Service"]) == set(LAYERS) | {"jaeger"}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"pktflow"}
    topology = next(c for n, c in kinds["ConfigMap"].items() if n.startswith("pktflow-topology-"))
    assert topology["data"]["topology.yaml"] == (ROOT / "services/sdk/topologies/default.yaml").read_text()
    for layer, port in LAYERS.items():
        pod = kinds["Deployment"][layer]["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["command"] == ["python", "-m", f"pktflow.services.{layer}"]
        assert c["readinessProbe"]["grpc"] == {"port": port}
        assert c["livenessProbe"]["grpc"] == {"port": port, "service": "pktflow.liveness"}
        assert c["resources"]["requests"] and c["resources"]["limits"]
        # the stack secret the layers' streams require, from a Secret the operator creates
        assert {"secretRef": {"name": "pktflow-secret", "optional": True}} in c["envFrom"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["volumes"][0]["configMap"]["name"] == topology["metadata"]["name"]
        assert kinds["Service"][layer]["spec"]["ports"][0]["port"] == port
        # Prometheus' pod discovery: the annotations name the container's metrics port, the layer's default
        metrics_port = metrics.port(layer, {})
        assert {"name": "metrics", "containerPort": metrics_port} in c["ports"]
        assert kinds["Deployment"][layer]["spec"]["template"]["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port), "prometheus.io/path": "/metrics"}


def test_network_policies_let_only_adjacent_layers_in():
    docs = _rendered()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"], "a default deny for ingress"
    allowed = {}                    # layer -> the pods that may reach it (None: anyone)
    for p in policies:
        target = p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for rule in p["spec"].get("ingress", ()):
            sources = rule.get("from")
            names = None if sources is None else {v for s in sources for v in s["podSelector"]["matchLabels"].values()}
            allowed.setdefault(target, []).append((names, [x["port"] for x in rule["ports"]]))
    assert allowed["socket"] == [(None, [50051])]
    assert allowed["transport"] == [({"socket"}, [50052])]
    assert allowed["ip"] == [({"transport"}, [50053])]
    assert allowed["link"] == [({"ip", "socket"}, [50054])]
    assert allowed["nic"] == [({"link"}, [50055])]
    assert allowed["jaeger"] == [({"layer"}, [4317]), (None, [16686])]     # spans from the layers; the UI
    metrics = [p for p in policies if p["spec"]["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/component": "layer"}}]
    assert len(metrics) == 1 and metrics[0]["spec"]["ingress"] == [{"ports": [{"port": "metrics"}]}], \
        "every layer's /metrics reachable by a Prometheus wherever it runs, nothing else"
