"""infra/k8s/ against the published Kubernetes and KubeRay schemas, and the promises the manifests make."""

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.infra.manifests import (
    IMAGE_MOUNT,
    K8S,
    K8S_VERSIONS,
    REPO,
    all_k8s_documents,
    find,
    k8s_documents,
    k8s_files,
    pod_specs,
    raycluster_schema,
    validate_k8s,
)

SANDBOX_PODS = ("Deployment/arpo-worker", "RayCluster/arpo-ray/gpu")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_every_manifest_fits_the_published_schema_of_its_kind(path: Path, version: str) -> None:
    docs = k8s_documents(path)
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        validate_k8s(doc, version)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in k8s_files()}
    assert listed == on_disk - {"secret.template.yaml"}
    assert kustomization["namespace"] == find("Namespace", "arpo")["metadata"]["name"]


def test_a_broken_manifest_is_refused() -> None:
    """The check above can fail: a misspelt field, a wrong type and a missing required field are each caught."""
    worker = find("Deployment", "arpo-worker")
    typo = copy.deepcopy(worker)
    typo["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["nmae"] = "arpo-config"
    wrong_type = copy.deepcopy(worker)
    wrong_type["spec"]["replicas"] = "two"
    no_selector = copy.deepcopy(worker)
    del no_selector["spec"]["selector"]
    for broken in (typo, wrong_type, no_selector):
        with pytest.raises(jsonschema.ValidationError):
            validate_k8s(broken, K8S_VERSIONS[0])


def test_a_broken_raycluster_is_refused_by_kuberays_schema() -> None:
    cluster = find("RayCluster", "arpo-ray")
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["workerGroupSpec"] = misspelt["spec"].pop("workerGroupSpecs")
    bad_mode = copy.deepcopy(cluster)
    bad_mode["spec"]["authOptions"]["mode"] = "password"
    no_template = copy.deepcopy(cluster)
    del no_template["spec"]["headGroupSpec"]["template"]
    bad_container = copy.deepcopy(cluster)
    bad_container["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["imag"] = "x"
    for broken in (misspelt, bad_mode, no_template, bad_container):
        with pytest.raises(jsonschema.ValidationError):
            validate_k8s(broken, K8S_VERSIONS[0])


def test_the_vendored_crd_schema_is_kuberays_raycluster_v1() -> None:
    schema = raycluster_schema()
    spec = schema["properties"]["spec"]["properties"]
    assert {"headGroupSpec", "workerGroupSpecs", "rayVersion", "authOptions"} <= set(spec)


def test_raycluster_runs_the_ray_version_the_image_installs() -> None:
    pin = re.search(r"^ray==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert pin is not None
    cluster = find("RayCluster", "arpo-ray")
    assert cluster["spec"]["rayVersion"] == pin.group(1)
    # KubeRay refuses token auth below Ray 2.52 (its validation.go).
    assert tuple(int(x) for x in pin.group(1).split(".")[:2]) >= (2, 52)


def test_the_ray_head_schedules_nothing_and_the_gpu_group_requests_gpus() -> None:
    spec = find("RayCluster", "arpo-ray")["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (gpu,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    (container,) = gpu["template"]["spec"]["containers"]
    assert container["image"].endswith(":gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1


def test_the_worker_finds_the_ray_head_and_its_token() -> None:
    config = find("ConfigMap", "arpo-config")["data"]
    cluster = find("RayCluster", "arpo-ray")
    assert config["RAY_ADDRESS"] == f"{cluster['metadata']['name']}-head-svc:6379"
    assert config["RAY_AUTH_MODE"] == cluster["spec"]["authOptions"]["mode"] == "token"
    secret = cluster["spec"]["authOptions"]["secretName"]
    assert "auth_token" in find("Secret", secret)["stringData"]
    (container,) = find("Deployment", "arpo-worker")["spec"]["template"]["spec"]["containers"]
    token = {e["name"]: e for e in container["env"]}["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": secret, "key": "auth_token"}


def test_one_read_write_many_claim_is_mounted_at_the_same_path_in_every_pod() -> None:
    claim = find("PersistentVolumeClaim", "arpo-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for where, pod in pod_specs():
        if where == "Job/arpo-migrate":
            continue  # migrations touch only the database
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = [c for c in pod["containers"]]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts[IMAGE_MOUNT]]["persistentVolumeClaim"]["claimName"] == "arpo-data", where


@pytest.mark.parametrize("where", SANDBOX_PODS)
def test_pods_that_run_the_python_tool_get_what_the_sandbox_needs(where: str) -> None:
    pod = dict(pod_specs())[where]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsUser"] == 0 and context["runAsNonRoot"] is False
    assert set(context["capabilities"]["add"]) == {"SYS_ADMIN", "NET_ADMIN"}
    assert "drop" not in context["capabilities"]  # setpriv needs the default SETUID, SETGID, SETPCAP
    assert context["seccompProfile"] == {"type": "Unconfined"}
    assert context["appArmorProfile"] == {"type": "Unconfined"}


def test_pods_that_never_run_tools_keep_a_restricted_security_context() -> None:
    for where, pod in pod_specs():
        if where in SANDBOX_PODS or where.startswith("RayCluster"):
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        (container,) = pod["containers"]
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


def test_web_probes_ask_as_an_allowed_host_over_forwarded_https() -> None:
    allowed = find("ConfigMap", "arpo-config")["data"]["ALLOWED_HOSTS"].split(",")
    (container,) = find("Deployment", "arpo-web")["spec"]["template"]["spec"]["containers"]
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        headers = {h["name"]: h["value"] for h in probe["httpGet"]["httpHeaders"]}
        assert headers["Host"] == allowed[0].strip()
        assert headers["X-Forwarded-Proto"] == "https"
        assert probe["httpGet"]["path"] == "/healthz"
    ingress = find("Ingress", "arpo-web")
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= {h.strip() for h in allowed}


def test_every_container_uses_the_service_image() -> None:
    images: set[str] = set()
    for _, pod in pod_specs():
        images |= {c["image"] for c in pod["containers"]}
    assert images == {"arpo-studio:cpu", "arpo-studio:gpu"}


def test_documents_name_their_kind_and_labels() -> None:
    for doc in all_k8s_documents():
        labels: dict[str, Any] = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "arpo-studio", doc["metadata"]["name"]
