"""Loading and validating the deployment files (infra/) against their published schemas, without a cluster.

- Kubernetes' own kinds: the JSON schemas the PyPI package `kubernetes-validate` bundles per Kubernetes
  release, in their strict form (an unknown field fails, as `kubectl apply` refuses one).
- RayCluster: the openAPIV3Schema of KubeRay's CRD (vendored in schemas/, see schemas/README.md), made
  strict the same way, except where the CRD itself keeps unknown fields.
- compose.yaml: the compose-spec JSON schema (vendored in schemas/).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
ENTRYPOINT = INFRA / "docker" / "entrypoint.sh"
# The oldest release these manifests are for (securityContext.appArmorProfile is GA from 1.30) and the newest
# whose schemas the pinned kubernetes-validate bundles.
K8S_VERSIONS = ("1.30.0", "1.37.0")
KUBERAY_CRD = SCHEMAS / "ray.io_rayclusters.yaml"
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
IMAGE_MOUNT = "/srv/arpo/data"


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def all_k8s_documents() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in k8s_documents(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    for doc in all_k8s_documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"no {kind} {name} in infra/k8s")


def compose() -> dict[str, Any]:
    data = yaml.safe_load((INFRA / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


# --- validation ---------------------------------------------------------------------------------------------


def validate_k8s(doc: dict[str, Any], version: str) -> None:
    """Raise jsonschema.ValidationError when `doc` does not fit its kind's schema at Kubernetes `version`."""
    if doc.get("apiVersion") == "ray.io/v1" and doc.get("kind") == "RayCluster":
        errors = sorted(_raycluster_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise errors[0]
        return
    kubernetes_validate.validate(doc, version, strict=True)


def validate_compose(data: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(_compose_schema()).validate(data)


@functools.cache
def _compose_schema() -> dict[str, Any]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


@functools.cache
def raycluster_schema() -> dict[str, Any]:
    crd = yaml.load(KUBERAY_CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"] and version["storage"]
    return version["schema"]["openAPIV3Schema"]


@functools.cache
def _raycluster_validator() -> jsonschema.Validator:
    # The API server drops and, under kubectl's strict field validation, refuses fields a structural schema
    # does not name: `additionalProperties: false` on every object with properties says the same to jsonschema.
    schema = strict_openapi(copy.deepcopy(raycluster_schema()))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def strict_openapi(node: Any) -> Any:
    if isinstance(node, dict):
        for value in node.values():
            strict_openapi(value)
        keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
            node["additionalProperties"] = False
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
    elif isinstance(node, list):
        for value in node:
            strict_openapi(value)
    return node


# --- what the files run -------------------------------------------------------------------------------------


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod the manifests make, RayCluster groups included."""
    for doc in all_k8s_documents():
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "Job"):
            yield name, spec["template"]["spec"]
        elif doc["kind"] == "RayCluster":
            yield f"{name}/head", spec["headGroupSpec"]["template"]["spec"]
            for group in spec.get("workerGroupSpecs", []):
                yield f"{name}/{group['groupName']}", group["template"]["spec"]


def entrypoint_commands() -> set[str]:
    """The roles `entrypoint.sh help` lists."""
    import subprocess

    done = subprocess.run(["bash", str(ENTRYPOINT), "help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("commands:", 1)[1].split(";", 1)[0]
    return set(listed.split())
