"""The deployment files are valid: `docker compose config` of compose.yaml and
compose.shards.yaml, and `kubectl kustomize` of k8s/ and of the sharded overlay
(k8s/overlays/sharded) checked against the Kubernetes schemas (offline, with
kubernetes-validate). No engine and no cluster needed."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pktflow.services.common import config, metrics, topology

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"socket": 50051, "transport": 50052, "ip": 50053, "link": 50054, "nic": 50055}
DEFAULT_TOPOLOGY = ROOT / "services" / "sdk" / "topologies" / "default.yaml"
SHARDED_TOPOLOGY = ROOT / "k8s" / "overlays" / "sharded" / "topology" / "sharded.yaml"


def test_the_k8s_topology_is_the_default_topology():
    """kustomize reads files only under the kustomization's directory, so the ConfigMap's source is a copy."""
    assert (ROOT / "k8s" / "base" / "topology" / "default.yaml").read_text() == DEFAULT_TOPOLOGY.read_text(), \
        "k8s/base/topology/default.yaml differs from services/sdk/topologies/default.yaml: copy it again"


def _without_shards(doc: dict) -> dict:
    hosts = {name: {k: v for k, v in host.items() if k != "shard"} for name, host in doc["hosts"].items()}
    return {k: v for k, v in doc.items() if k != "shards"} | {"hosts": hosts}


def test_the_sharded_topology_is_the_default_topology_in_two_shards():
    """The overlay's (and compose.shards.yaml's) topology: the default one, plus `shards: 2` and
    each host's `shard:` (h1 on shard 0, r1 and h2 on shard 1: the cable h1 -- r1 crosses)."""
    sharded = yaml.safe_load(SHARDED_TOPOLOGY.read_text())
    assert _without_shards(sharded) == yaml.safe_load(DEFAULT_TOPOLOGY.read_text()), \
        f"{SHARDED_TOPOLOGY.relative_to(ROOT)} is no longer the default topology plus its shard keys"
    topo = topology.loads(SHARDED_TOPOLOGY.read_text(), str(SHARDED_TOPOLOGY))
    assert topo.shards == 2 and topo.placement == {"h1": 0, "r1": 1, "h2": 1}
    assert [topo.cross_shard(link) for link in topo.links] == [True, False]


def _compose_config(file: str, env: dict | None = None) -> dict:
    """`docker compose -f FILE config` (interpolated, merged), as data."""
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                        check=False).returncode:
        pytest.skip("Docker Compose v2 (`docker compose`) is not installed")
    r = subprocess.run(["docker", "compose", "-f", file, "config", "--format", "json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=False,
                       env={k: v for k, v in os.environ.items() if not k.startswith("PKTFLOW_")} | (env or {}))
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_compose_config_is_valid():
    services = _compose_config("compose.yaml")["services"]
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


def test_compose_shards_config_is_valid_two_stacks_of_five_layers_one_jaeger():
    """compose.shards.yaml: the layers of shard k are <layer>-k, with PKTFLOW_SHARD=k, dialling
    shard k's layers (as the services' own configuration code resolves their endpoints), waiting
    for shard k's layers only; every shard's nic, and every shard's socket service at the port it
    is published on, in shard order; the sharded topology; one Jaeger; one image, one build."""
    compose = _compose_config("compose.shards.yaml", {"PKTFLOW_SOCKET_PORT": "41001", "PKTFLOW_SOCKET_1_PORT": "41002"})
    services = compose["services"]
    assert Path(compose["configs"]["topology"]["file"]) == SHARDED_TOPOLOGY
    topo = topology.loads(SHARDED_TOPOLOGY.read_text())
    shards = range(topo.shards)
    assert set(services) == {f"{layer}-{k}" for layer in LAYERS for k in shards} | {"jaeger", "traffic"}
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    assert len({s["image"] for name, s in services.items() if name != "jaeger"}) == 1
    assert [n for n, s in services.items() if "build" in s] == ["nic-0"]
    for name, s in services.items():
        assert s["restart"] == "unless-stopped"
        assert all(p["host_ip"] == "127.0.0.1" for p in s.get("ports", ())), name
    published = [int(services[f"socket-{k}"]["ports"][0]["published"]) for k in shards]
    assert published == [41001, 41002] and [services[f"socket-{k}"]["ports"][0]["target"] for k in shards] == \
        [50051] * len(shards)
    for layer, port in LAYERS.items():
        for k in shards:
            s = services[f"{layer}-{k}"]
            env = s["environment"]
            assert env["PKTFLOW_SHARD"] == str(k) and env["OTEL_SERVICE_NAME"] == layer
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317" and "PKTFLOW_SECRET" in env
            assert s["healthcheck"]["test"][-1] == f"localhost:{port}"
            assert {d.rsplit("-", 1)[-1] for d in s.get("depends_on", {}) if d != "jaeger"} <= {str(k)}, \
                f"{layer}-{k} waits for its own shard's layers only"
            with pytest.MonkeyPatch.context() as mp:
                for var in [v for v in os.environ if v.startswith("PKTFLOW_")]:
                    mp.delenv(var)
                for var, value in env.items():
                    if var.startswith("PKTFLOW_"):
                        mp.setenv(var, value)
                assert config.sharded(topo).shard == k
                assert {other: config.endpoint(other) for other in LAYERS} == \
                    {other: f"{other}-{k}:{other_port}" for other, other_port in LAYERS.items()}
                assert config.shard_endpoints("nic") == [f"nic-{j}:50055" for j in shards]
                assert config.shard_endpoints("socket") == [f"127.0.0.1:{p}" for p in published]
    for lower, uppers in config.UPPERS.items():
        for upper in uppers:
            for k in shards:
                assert services[f"{upper}-{k}"]["depends_on"][f"{lower}-{k}"]["condition"] == "service_healthy"
    # the traffic generator reaches the socket services where the host does (PKTFLOW_SHARD_SOCKETS)
    assert services["traffic"]["network_mode"] == "host"
    assert services["traffic"]["environment"]["PKTFLOW_ENDPOINT"] == "127.0.0.1:41001"


def _rendered(kustomization: str = "k8s") -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders k8s/ with its built-in kustomize)")
    r = subprocess.run([kubectl, "kustomize", str(ROOT / kustomization)], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _validated(kustomization: str = "k8s") -> dict:
    """The rendered kustomization, every document checked against the schemas: {kind: {name: doc}}."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install '.[test]'")
    docs = _rendered(kustomization)
    version = kubernetes_validate.latest_version()
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']} {d['metadata']['name']}: {e.message}")
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return kinds


def test_kustomize_renders_and_validates_against_the_kubernetes_schemas():
    kinds = _validated()
    docs = [d for named in kinds.values() for d in named.values()]
    assert set(kinds["Deployment"]) == set(LAYERS) | {"jaeger", "traffic"}
    assert set(kinds["Service"]) == set(LAYERS) | {"jaeger"}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"pktflow"}
    topo_map = next(c for n, c in kinds["ConfigMap"].items() if n.startswith("pktflow-topology-"))
    assert topo_map["data"]["topology.yaml"] == DEFAULT_TOPOLOGY.read_text()
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
        assert pod["volumes"][0]["configMap"]["name"] == topo_map["metadata"]["name"]
        assert kinds["Service"][layer]["spec"]["ports"][0]["port"] == port
        # Prometheus' pod discovery: the annotations name the container's metrics port, the layer's default
        metrics_port = metrics.port(layer, {})
        assert {"name": "metrics", "containerPort": metrics_port} in c["ports"]
        assert kinds["Deployment"][layer]["spec"]["template"]["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port), "prometheus.io/path": "/metrics"}


def _ingress(docs: list[dict], keys=("app.kubernetes.io/name",)) -> dict:
    """Who may reach whom, as the NetworkPolicies say (after checking there is one default deny):
    {target: [(sources, ports)]}, a target or source named by the first of `keys` its podSelector
    matches on (else by its label's value: "layer" for every layer), sources None for anyone."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"], "a default deny for ingress"

    def name(selector: dict) -> str:
        labels = selector["matchLabels"]
        return next((labels[k] for k in keys if k in labels), None) or " ".join(labels.values())

    allowed = {}
    for p in policies:
        for rule in p["spec"].get("ingress", ()):
            sources = rule.get("from")
            names = None if sources is None else {name(s["podSelector"]) for s in sources}
            allowed.setdefault(name(p["spec"]["podSelector"]), []).append((names, [x["port"] for x in rule["ports"]]))
    return allowed


def test_network_policies_let_only_adjacent_layers_in():
    docs = _rendered()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    allowed = _ingress(docs)            # layer -> the pods that may reach it (None: anyone)
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


SHARDED = "k8s/overlays/sharded"
POD_NAME = "statefulset.kubernetes.io/pod-name"     # the label the StatefulSet controller gives each pod


def _env(kinds: dict, pod: dict) -> dict:
    """A container's environment as the kubelet builds it: its ConfigMaps', then its own."""
    c = pod["containers"][0]
    env = {}
    for source in c.get("envFrom", ()):
        if "configMapRef" in source:
            env |= kinds["ConfigMap"][source["configMapRef"]["name"]]["data"]
    return env | {e["name"]: e["value"] for e in c.get("env", ())}


def _template(kinds: dict, kind: str, name: str) -> dict:
    """A workload's pod template, the generated ConfigMaps named without their hash (it follows their content)."""
    text = yaml.safe_dump(kinds[kind][name]["spec"]["template"])
    for generated in kinds["ConfigMap"]:
        text = text.replace(generated, generated.rsplit("-", 1)[0])
    return yaml.safe_load(text)


def test_sharded_overlay_runs_each_layer_as_a_statefulset_of_one_pod_per_shard():
    """k8s/overlays/sharded renders and validates; each layer is a StatefulSet of the base's pod
    template with one pod per shard of the topology, governed by the layer's headless Service;
    with the environment the overlay gives it, pod <layer>-k serves shard k and dials shard k's
    layers and every shard's nic (checked with the services' own configuration code)."""
    kinds, base = _validated(SHARDED), _validated()
    shards = topology.loads(SHARDED_TOPOLOGY.read_text()).shards
    topo_map = next(c for n, c in kinds["ConfigMap"].items() if n.startswith("pktflow-topology-"))
    assert topo_map["data"]["topology.yaml"] == SHARDED_TOPOLOGY.read_text()
    assert set(kinds["StatefulSet"]) == set(LAYERS) and set(kinds["Deployment"]) == {"jaeger", "traffic"}
    assert set(kinds["Service"]) == set(LAYERS) | {"jaeger"}
    assert {d["metadata"].get("namespace") for named in kinds.values() for d in named.values()
            if d["kind"] != "Namespace"} == {"pktflow"}
    for kind in ("Deployment", "Service"):              # Jaeger as in the base
        assert kinds[kind]["jaeger"] == base[kind]["jaeger"]
    traffic = kinds["Deployment"]["traffic"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert traffic == [{"name": "PKTFLOW_ENDPOINT", "value": "socket-0.socket:50051"}], "shard 0's socket"
    for layer, port in LAYERS.items():
        sts, svc = kinds["StatefulSet"][layer]["spec"], kinds["Service"][layer]["spec"]
        assert sts["replicas"] == shards, f"{layer}: one pod per shard of the topology (shards: {shards})"
        assert sts["serviceName"] == layer and svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"]
        assert svc["selector"].items() <= sts["template"]["metadata"]["labels"].items()
        assert sts["podManagementPolicy"] == "Parallel"
        assert _template(kinds, "StatefulSet", layer) == _template(base, "Deployment", layer), "the base's pod template"
        pod = sts["template"]["spec"]
        assert pod["volumes"][0]["configMap"]["name"] == topo_map["metadata"]["name"]
        env = _env(kinds, pod)
        assert env["PKTFLOW_SHARD"] == "ordinal", layer
        for k in range(shards):
            # the pod as the kubelet starts it: HOSTNAME is the pod's name
            pod_env = {var: v for var, v in env.items() if var.startswith("PKTFLOW_")} | {"HOSTNAME": f"{layer}-{k}"}
            with pytest.MonkeyPatch.context() as mp:
                for var in [v for v in os.environ if v.startswith("PKTFLOW_")]:
                    mp.delenv(var)
                for var, value in pod_env.items():
                    mp.setenv(var, value)
                assert config.shard() == k
                view = config.sharded(topology.loads(topo_map["data"]["topology.yaml"]))
                assert view.shard == k and view.hosts, f"{layer}-{k} serves shard {k}'s hosts"
                for other, other_port in LAYERS.items():   # its neighbours: shard k's pods, by their stable names
                    assert config.endpoint(other) == f"{other}-{k}.{other}:{other_port}"
                assert config.shard_endpoints("nic") == [f"nic-{j}.nic:50055" for j in range(shards)]
                sockets = config.shard_endpoints("socket")
                assert [a.split(".")[:2] for a in sockets] == [[f"socket-{j}", "socket"] for j in range(shards)]
                assert all(a.endswith(".pktflow.svc:50051") for a in sockets), "names valid from any namespace"


def test_sharded_network_policies_let_only_adjacent_layers_of_a_shard_and_the_nics_across_in():
    docs = _rendered(SHARDED)
    shards = topology.loads(SHARDED_TOPOLOGY.read_text()).shards
    allowed = _ingress(docs, keys=(POD_NAME, "app.kubernetes.io/name"))
    expected = {
        "socket": [(None, [50051])],                            # clients, at every shard's socket
        "jaeger": [({"layer"}, [4317]), (None, [16686])],       # spans from the layers; the UI
        "layer": [(None, ["metrics"])],                         # every layer's /metrics
        "nic": [({"nic"}, [50055])],                            # the cables between shards
    }
    for k in range(shards):                                     # pod <layer>-k: from shard k's layers above only
        for layer, uppers in config.UPPERS.items():
            expected[f"{layer}-{k}"] = [({f"{upper}-{k}" for upper in uppers}, [LAYERS[layer]])]
    assert allowed == expected
