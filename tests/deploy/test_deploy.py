"""Deployment files: Kubernetes manifests (deploy/k8s), docker-compose.yml and the image inputs.

Offline and fast (no cluster, no Docker engine):

* every manifest validates against the Kubernetes OpenAPI schemas shipped by
  ``kubernetes-validate``, in strict mode (unknown fields are errors);
* structural rules the schemas cannot express: gRPC probes, non-root, read-only root filesystem,
  limits, headless Services for gRPC peers, HPA targets, ports that agree everywhere;
* every ``DESIGNSEARCH_*`` variable in the manifests and in docker-compose.yml is a field of the
  settings class of its prefix (the classes are imported, so renaming a setting breaks this test);
* ``docker-compose config -q`` when Debian's docker-compose is installed.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from designsearch.settings import REPO_ROOT
from designsearch.gateway.config import GatewaySettings
from designsearch.web.config import WebSettings
from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.search.config import SearchSettings
from designsearch.services.segmenter.config import SegmenterSettings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = REPO_ROOT / "docker-compose.yml"

#: Kubernetes versions the manifests must be valid for: an older one still in service, and the
#: newest whose schemas kubernetes-validate 1.37.0 ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")

#: service name -> (settings class, python -m module). The prefix comes from the class itself.
SERVICES = {
    "gateway": (GatewaySettings, "designsearch.gateway"),
    "segmenter": (SegmenterSettings, "designsearch.services.segmenter"),
    "embedder": (EmbedderSettings, "designsearch.services.embedder"),
    "search": (SearchSettings, "designsearch.services.search"),
}
PREFIXES = {cls.model_config["env_prefix"]: cls for cls, _ in [*SERVICES.values(), (WebSettings, "designsearch.web")]}
#: Services the gateway calls over gRPC (its *_ADDRESS settings).
PEERS = ("segmenter", "embedder", "search")
#: Services scaled by a HorizontalPodAutoscaler on CPU.
AUTOSCALED = ("embedder", "segmenter", "gateway", "web")
#: Keys of the designsearch-secrets Secret that deploy/README.md tells the operator to create.
SECRET_KEYS = {"api-keys", "postgres-password", "qdrant-api-key", "internal-token"}
#: Wiring every deployment (Kubernetes and compose) must set, per service prefix.
REQUIRED_SETTINGS = {
    "gateway": {"host", "port", "log_json", "metrics_port", "grace_s", "segmenter_address", "embedder_address",
                "search_address", "redis_url", "catalogue_url", "api_keys", "internal_token"},
    "segmenter": {"host", "port", "log_json", "metrics_port", "grace_s", "internal_token"},
    "embedder": {"host", "port", "log_json", "metrics_port", "grace_s", "internal_token"},
    "search": {"host", "port", "log_json", "metrics_port", "grace_s", "url", "api_key", "internal_token"},
}


# --------------------------------------------------------------------------------------------
# helpers


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _load_docs() -> list[tuple[Path, dict]]:
    docs = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


DOCS = _load_docs()


def _objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == kind}


def _settings_name(env: str) -> tuple[str, str] | None:
    """``DESIGNSEARCH_GATEWAY_REDIS_URL`` -> ("DESIGNSEARCH_GATEWAY_", "redis_url"); None if no prefix."""
    for prefix in PREFIXES:
        if env.startswith(prefix):
            return prefix, env[len(prefix):].lower()
    return None


def unknown_settings(names) -> list[str]:
    """The DESIGNSEARCH_* names that are not a field of the settings class of their prefix."""
    bad = []
    for name in names:
        if not name.startswith("DESIGNSEARCH_"):
            continue
        parsed = _settings_name(name)
        if parsed is None or parsed[1] not in PREFIXES[parsed[0]].model_fields:
            bad.append(name)
    return sorted(bad)


def _effective_env(container: dict) -> dict[str, str]:
    """The container's variables: ConfigMaps from envFrom, then env (later wins), as Kubernetes does."""
    configmaps = _objects("ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "<valueFrom>")
    return env


def _designsearch_container(name: str) -> dict:
    deployment = _objects("Deployment")[name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _port(container: dict, port_name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port_name)


def _pod_specs() -> list[tuple[str, dict]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
            for _, d in DOCS if d["kind"] in ("Deployment", "StatefulSet")]


# --------------------------------------------------------------------------------------------
# schema validation


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_strictly(version):
    assert DOCS, "no manifests found in deploy/k8s"
    errors = []
    for path, doc in DOCS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
        except SchemaNotFoundError as exc:
            errors.append(f"{path.name}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_strict_validation_catches_a_misspelt_field():
    """The validator really checks: a misspelt field of a real Deployment is rejected."""
    deployment = copy.deepcopy(_objects("Deployment")["gateway"])
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    security["readOnlyRootFilesytem"] = security.pop("readOnlyRootFilesystem")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in _manifest_files()]
    (image,) = [i for i in kustomization["images"] if i["name"] == "designsearch"]
    tag = image["newTag"]
    for name in SERVICES:
        assert _designsearch_container(name)["image"] == f"designsearch:{tag}", name


# --------------------------------------------------------------------------------------------
# structure


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_deployment(name):
    settings_cls, module = SERVICES[name]
    prefix = settings_cls.model_config["env_prefix"]
    deployment = _objects("Deployment")[name]
    pod = deployment["spec"]["template"]
    container = _designsearch_container(name)
    env = _effective_env(container)

    assert container["command"] == ["python", "-m", module]
    grpc_port = _port(container, "grpc")
    assert env[f"{prefix}PORT"] == str(grpc_port) == str(settings_cls.model_fields["port"].default)
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert env[f"{prefix}LOG_JSON"] == "true"
    # native gRPC probes on the server's port (grpc.health.v1; SERVING only when ready)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, (name, probe)
    # Prometheus scrape annotations agree with the metrics endpoint
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == env[f"{prefix}METRICS_PORT"] == str(_port(container, "metrics"))
    # a ServiceAccount of its own, without an API token
    spec = pod["spec"]
    assert spec["serviceAccountName"] in _objects("ServiceAccount")
    assert spec["automountServiceAccountToken"] is False
    # the image's non-root user (deploy/Dockerfile: USER 10001:10001)
    assert spec["securityContext"]["runAsUser"] == 10001
    # read-only root: /tmp is the only writable path
    tmp_mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp_mounts, f"{name}: no /tmp volume"
    volume = next(v for v in spec["volumes"] if v["name"] == tmp_mounts[0]["name"])
    assert "emptyDir" in volume
    # SIGTERM grace fits in the pod's termination grace period
    assert float(env[f"{prefix}GRACE_S"]) < spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("where,spec", _pod_specs(), ids=[w for w, _ in _pod_specs()])
def test_pods_are_hardened(where, spec):
    assert spec["securityContext"]["runAsNonRoot"] is True, where
    assert spec["securityContext"]["runAsUser"] != 0, where
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
        assert "readinessProbe" in container and "livenessProbe" in container, where


@pytest.mark.parametrize("name", list(SERVICES))
def test_grpc_services_are_headless(name):
    service = _objects("Service")[name]
    pod_labels = _objects("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None", f"{name}: a ClusterIP pins each gRPC client to one pod"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["port"] for p in service["spec"]["ports"]] == [_port(_designsearch_container(name), "grpc")]


def test_web_page_deployment(compose):
    """The web page: HTTP probes (ready = the gateway answers), the gateway reached round-robin through its
    headless Service, published by a Service of its own and in docker-compose.yml."""
    container = _designsearch_container("web")
    env = _effective_env(container)
    assert container["command"] == ["python", "-m", "designsearch.web"]
    assert env["DESIGNSEARCH_WEB_PORT"] == str(_port(container, "http")) == str(WebSettings.model_fields["port"].default)
    assert env["DESIGNSEARCH_WEB_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", env["DESIGNSEARCH_WEB_GATEWAY_ADDRESS"])
    assert match and _objects("Service")[match.group(1)]["spec"]["clusterIP"] == "None"
    assert int(match.group(2)) == _port(_designsearch_container("gateway"), "grpc")
    assert unknown_settings(env) == []
    service = compose["services"]["web"]
    assert service["command"] == container["command"] and service["read_only"] is True
    assert service["environment"]["DESIGNSEARCH_WEB_GATEWAY_ADDRESS"] == env["DESIGNSEARCH_WEB_GATEWAY_ADDRESS"]
    assert service["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert unknown_settings(service["environment"]) == []


def test_gateway_has_an_external_service():
    external = [s for s in _objects("Service").values()
                if s["spec"].get("clusterIP") != "None" and s["spec"]["selector"].get("app.kubernetes.io/name") == "gateway"]
    assert external and external[0]["spec"].get("type", "ClusterIP") in ("ClusterIP", "LoadBalancer")


def test_peer_addresses_point_at_headless_services():
    env = _effective_env(_designsearch_container("gateway"))
    services = _objects("Service")
    for peer in PEERS:
        address = env[f"DESIGNSEARCH_GATEWAY_{peer.upper()}_ADDRESS"]
        match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", address)
        assert match, f"{address}: use dns:///<service>:<port> so round_robin sees every pod"
        host, port = match.group(1), int(match.group(2))
        assert services[host]["spec"]["clusterIP"] == "None"
        assert port in [p["port"] for p in services[host]["spec"]["ports"]]
    # data stores: Redis, PostgreSQL and Qdrant are Services of these manifests
    redis_host = re.match(r"redis://([^:/]+)", env["DESIGNSEARCH_GATEWAY_REDIS_URL"]).group(1)
    catalogue = env["DESIGNSEARCH_GATEWAY_CATALOGUE_URL"]
    assert catalogue.startswith("postgresql+psycopg://")
    pg_host = re.search(r"@([^:/]+)", catalogue).group(1)
    qdrant_host = re.match(r"https?://([^:/]+)", _effective_env(_designsearch_container("search"))["DESIGNSEARCH_SEARCH_URL"]).group(1)
    for host in (redis_host, pg_host, qdrant_host):
        assert host in services, host


@pytest.mark.parametrize("name", AUTOSCALED)
def test_hpa_targets_a_deployment(name):
    hpa = _objects("HorizontalPodAutoscaler")[name]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["name"] in _objects("Deployment")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2
    deployment = _objects("Deployment")[target["name"]]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    # CPU utilisation is measured against the request
    assert "cpu" in _designsearch_container(target["name"])["resources"]["requests"]


def test_data_stores():
    qdrant = _objects("StatefulSet")["qdrant"]
    assert qdrant["spec"]["replicas"] == 3
    (container,) = qdrant["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert not container["image"].endswith(":latest") and ":v" in container["image"]
    headless = _objects("Service")[qdrant["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert "postgres" in _objects("StatefulSet")
    assert "redis" in _objects("Deployment")
    assert _objects("StatefulSet")["postgres"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:15")
    assert _objects("Deployment")["redis"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("redis:7")


def test_secret_references():
    refs = set()
    for _, spec in _pod_specs():
        for container in spec["containers"]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "designsearch-secrets"
                    refs.add(ref["key"])
    assert refs == SECRET_KEYS
    readme = (DEPLOY / "README.md").read_text()
    for key in SECRET_KEYS:
        assert key in readme, f"deploy/README.md does not say how to create secret key {key}"


# --------------------------------------------------------------------------------------------
# environment variable names <-> settings classes


def _k8s_env_names() -> set[str]:
    names = set()
    for _, doc in DOCS:
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
    for _, spec in _pod_specs():
        for container in spec["containers"]:
            names |= {v["name"] for v in container.get("env", [])}
    return names


def test_env_check_can_fail():
    assert unknown_settings(["DESIGNSEARCH_GATEWAY_REDIS_URL", "DESIGNSEARCH_GATEWAY_REDIS_URI",
                             "DESIGNSEARCH_NOSUCH_HOST", "OTHER"]) == ["DESIGNSEARCH_GATEWAY_REDIS_URI",
                                                                       "DESIGNSEARCH_NOSUCH_HOST"]


def test_manifest_env_names_are_settings():
    names = _k8s_env_names()
    assert unknown_settings(names) == []
    for name, required in REQUIRED_SETTINGS.items():
        prefix = SERVICES[name][0].model_config["env_prefix"]
        missing = {f for f in required if f"{prefix}{f.upper()}" not in _effective_env(_designsearch_container(name))}
        assert not missing, f"{name}: {sorted(missing)}"


# --------------------------------------------------------------------------------------------
# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services(compose):
    services = compose["services"]
    assert {"qdrant", "redis", "postgres", *SERVICES} <= set(services)
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", services["qdrant"]["image"])
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:15")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    tag = next(i["newTag"] for i in kustomization["images"] if i["name"] == "designsearch")
    for name, (settings_cls, module) in SERVICES.items():
        service = services[name]
        prefix = settings_cls.model_config["env_prefix"]
        env = service["environment"]
        assert service["image"] == f"designsearch:{tag}", name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"] == ["python", "-m", module]
        assert service["read_only"] is True
        assert str(env[f"{prefix}HOST"]) == "0.0.0.0"
        assert str(env[f"{prefix}LOG_JSON"]) == "true"
        # same port as in Kubernetes, and the health check asks that port
        port = env[f"{prefix}PORT"]
        assert port == str(_port(_designsearch_container(name), "grpc")), name
        assert service["healthcheck"]["test"] == ["CMD", "grpc-health-check", f"127.0.0.1:{port}"]
        missing = {f for f in REQUIRED_SETTINGS[name] if f"{prefix}{f.upper()}" not in env}
        assert not missing, f"compose {name}: {sorted(missing)}"
        assert unknown_settings(env) == [], f"compose {name}"
        # a service only reads its own prefix: another prefix here would be silently ignored
        assert all(not k.startswith("DESIGNSEARCH_") or k.startswith(prefix) for k in env), name
    gateway_env = services["gateway"]["environment"]
    for peer in PEERS:
        address = gateway_env[f"DESIGNSEARCH_GATEWAY_{peer.upper()}_ADDRESS"]
        port = services[peer]["environment"][f"{SERVICES[peer][0].model_config['env_prefix']}PORT"]
        assert address == f"dns:///{peer}:{port}"
        assert services["gateway"]["depends_on"][peer]["condition"] == "service_healthy"
    assert gateway_env["DESIGNSEARCH_GATEWAY_CATALOGUE_URL"].startswith("postgresql+psycopg://")


def test_compose_and_kubernetes_use_the_same_settings(compose):
    compose_names = set()
    for name in SERVICES:
        compose_names |= set(compose["services"][name]["environment"])
    required = {f"{SERVICES[n][0].model_config['env_prefix']}{f.upper()}" for n, fs in REQUIRED_SETTINGS.items() for f in fs}
    assert required <= compose_names
    assert required <= _k8s_env_names()


def test_docker_compose_config():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install -y docker-compose); "
                    "the YAML checks above still ran")
    result = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# image inputs


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return pins


def test_runtime_requirements_follow_the_lock():
    runtime = _pins(DEPLOY / "requirements-runtime.txt")
    lock = _pins(REPO_ROOT / "requirements.lock")
    for name, version in runtime.items():
        assert lock.get(name) == version, f"{name}=={version} differs from requirements.lock ({lock.get(name)})"
    for excluded in ("torch", "onnx", "onnxscript", "albumentations", "efficientnet-lite-pytorch", "pytest",
                     "grpcio-tools"):
        assert excluded not in runtime, excluded
    for needed in ("grpcio", "onnxruntime", "qdrant-client", "redis", "sqlalchemy", "pydantic-settings", "alembic",
                   "psycopg"):
        assert needed in runtime, needed


def test_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    build, _, runtime = text.partition(" AS runtime")
    assert "torch==2.13.0" in build
    runtime_code = "\n".join(line for line in runtime.splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in runtime_code, "torch must stay in the build stage"
    assert "requirements-runtime.txt" in runtime and "pip check" in runtime
    assert re.search(r"^USER 10001(:10001)?$", runtime, re.M)
    assert "designsearch.training.embedder.export" in build
    # every source the Dockerfile copies from the build context is allowed by its .dockerignore
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        if source != ".":
            assert f"!{source}" in ignore, source


def test_network_policies_keep_the_internal_services_behind_the_gateway():
    policies = {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == "NetworkPolicy"}
    internal = policies["internal-services-from-gateway"]["spec"]
    assert set(internal["podSelector"]["matchExpressions"][0]["values"]) == {"segmenter", "embedder", "search"}
    grpc_rule = internal["ingress"][0]
    assert grpc_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert all("from" not in rule for rule in internal["ingress"][1:])  # open rules: metrics port only
    assert {p["port"] for rule in internal["ingress"][1:] for p in rule["ports"]} == {9090}
    stores = policies["stores-from-gateway"]["spec"]["ingress"][0]["from"]
    assert stores == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    qdrant = policies["qdrant-from-search"]["spec"]["ingress"][0]["from"]
    assert qdrant == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "search"}}}]

