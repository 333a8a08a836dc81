"""Deployment files for running at scale (issue 33): disruption budgets, the internal token in docker-compose,
the TLS overlay (deploy/k8s-tls) and the gpu image target — offline, like tests/deploy/test_deploy.py, whose
helpers these tests use."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from designsearch.services.embedder.config import EmbedderSettings
from designsearch.services.segmenter.config import SegmenterSettings
from designsearch.settings import REPO_ROOT
from tests.deploy.test_deploy import (DEPLOY, K8S_VERSIONS, SERVICES, _load_docs, _objects, _pins, _port,  # noqa: F401
                                      compose, unknown_settings)  # noqa: F401 (compose: a fixture)


def test_every_deployment_has_a_disruption_budget():
    """A drain evicts at most one pod of each Deployment at a time, and the budget selects exactly its pods."""
    budgets = _objects("PodDisruptionBudget")
    for name, deployment in _objects("Deployment").items():
        pdb = budgets.get(name)
        assert pdb is not None, f"no PodDisruptionBudget for {name}"
        assert pdb["apiVersion"] == "policy/v1" and pdb["spec"].get("maxUnavailable") == 1, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), name


def test_compose_services_share_one_internal_token(compose):
    """The four services carry the same token expression, so internal calls authenticate (and a token set in the
    shell reaches all of them)."""
    tokens = {str(compose["services"][n]["environment"][f"{cls.model_config['env_prefix']}INTERNAL_TOKEN"])
              for n, (cls, _) in SERVICES.items()}
    assert len(tokens) == 1 and next(iter(tokens)).startswith("${DESIGNSEARCH_INTERNAL_TOKEN"), tokens


# --------------------------------------------------------------------------------------------
# TLS overlay (deploy/k8s-tls)

TLS_DIR = DEPLOY / "k8s-tls"


def _tls_rendered() -> list[dict]:
    """The base manifests with the overlay's JSON patches applied (RFC 6902, the ``jsonpatch`` library): what
    ``kubectl kustomize deploy/k8s-tls`` renders, without kubectl."""
    import jsonpatch

    overlay = yaml.safe_load((TLS_DIR / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../k8s"]
    docs = [copy.deepcopy(d) for _, d in _load_docs()]
    for patch in overlay["patches"]:
        ops = yaml.safe_load((TLS_DIR / patch["path"]).read_text())
        target = patch["target"]
        (i,) = [i for i, d in enumerate(docs) if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
        docs[i] = jsonpatch.apply_patch(docs[i], ops)
    return docs


def test_tls_overlay_serves_and_verifies_tls_everywhere():
    docs = _tls_rendered()
    for version in K8S_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name in [*SERVICES, "web"]:
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        prefix = f"DESIGNSEARCH_{name.upper()}_"
        assert env[f"{prefix}TLS_CERT_FILE"] == "/etc/designsearch/tls/tls.crt", name
        assert env[f"{prefix}TLS_KEY_FILE"] == "/etc/designsearch/tls/tls.key", name
        assert unknown_settings(env) == [], name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
        assert mount["readOnly"] and mount["mountPath"] == "/etc/designsearch/tls"
        assert next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]["secretName"] == "designsearch-tls"
        probes = [container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe") if p in container]
        if name == "web":
            assert all(p["httpGet"]["scheme"] == "HTTPS" for p in probes)
            continue
        port = _port(container, "grpc")
        for probe in probes:  # the kubelet's grpc probe is plaintext: replaced, not kept beside the exec probe
            assert "grpc" not in probe and probe["exec"]["command"] == [
                "grpc-health-check", "--tls-ca", "/etc/designsearch/tls/ca.crt", "--server-name", name,
                f"127.0.0.1:{port}"], name
    # the callers verify: the gateway its backends, the page its gateway
    for name in ("gateway", "web"):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert {e["name"]: e["value"] for e in container["env"] if "value" in e}[
            f"DESIGNSEARCH_{name.upper()}_TLS_CA_FILE"] == "/etc/designsearch/tls/ca.crt"


def test_kubectl_renders_the_tls_overlay_as_the_test_does():
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed; the overlay was checked by applying its patches above")
    result = subprocess.run([binary, "kustomize", str(TLS_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    for doc in _tls_rendered():
        if doc["kind"] == "Deployment":
            got = rendered[("Deployment", doc["metadata"]["name"])]["spec"]["template"]["spec"]["containers"][0]
            assert got.get("env") == doc["spec"]["template"]["spec"]["containers"][0].get("env")
            assert got.get("readinessProbe") == doc["spec"]["template"]["spec"]["containers"][0].get("readinessProbe")


def test_gpu_image_target():
    """``--target gpu`` swaps onnxruntime for its CUDA build of the same version, pinned with the NVIDIA
    libraries; the default target stays the CPU runtime image."""
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)
    assert stages[-1] == ("runtime", "cpu") and ("runtime", "gpu") in stages
    gpu = text.split(" AS gpu")[1].split(" AS cpu")[0]
    assert "pip uninstall -y onnxruntime" in gpu and "--no-deps -r /tmp/requirements-gpu.txt" in gpu
    assert "pip check" in gpu and re.search(r"^USER 10001:10001$", gpu, re.M)
    pins = _pins(DEPLOY / "requirements-gpu.txt")
    assert pins["onnxruntime-gpu"] == _pins(REPO_ROOT / "requirements.lock")["onnxruntime"]
    assert {"nvidia-cudnn-cu13", "nvidia-cublas", "nvidia-cuda-runtime"} <= set(pins)
    # the services that run models ask for CUDA first; without a GPU onnxruntime skips it
    for cls in (SegmenterSettings, EmbedderSettings):
        assert cls().providers[0] == "CUDAExecutionProvider"
