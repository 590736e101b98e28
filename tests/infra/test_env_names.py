"""The environment the deployment files set is the environment the service reads: no misspelt name is
silently ignored, and every variable production settings require is provided to every app container."""

import ast
import re
from pathlib import Path

import dockerfile
import pytest

from tests.infra.manifests import ENTRYPOINT, INFRA, REPO, compose, find, pod_specs

# Names read by someone else than this repository's code, with who reads them.
THIRD_PARTY = {
    "DJANGO_SETTINGS_MODULE": "Django",
    "POSTGRES_PASSWORD": "the postgres image",
    "POSTGRES_USER": "the postgres image",
    "POSTGRES_DB": "the postgres image",
    "RAY_AUTH_MODE": "Ray (token authentication)",
    "RAY_AUTH_TOKEN": "Ray (token authentication)",
    "HF_HOME": "huggingface_hub (the model cache)",
    "TOKENIZERS_PARALLELISM": "tokenizers",
    "NVIDIA_DRIVER_CAPABILITIES": "the NVIDIA container toolkit",
    "PYTHONUNBUFFERED": "Python",
    "VIRTUAL_ENV": "Python's venv",
    "PATH": "the shell",
    "PIP_NO_CACHE_DIR": "pip",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip",
}
ENV_HELPERS = {"env_str", "env_int", "env_bool", "env_list"}


def python_reads() -> set[str]:
    """Names the service's Python code reads from the environment (settings helpers, os.environ, getenv)."""
    names: set[str] = set()
    for package in ("webapp", "worker", "arpo_engine"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    func = node.func
                    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if called in ENV_HELPERS | {"getenv"} or (called == "get" and _is_environ(func)):
                        names.add(str(node.args[0].value))
                elif isinstance(node, ast.Subscript) and _is_environ(node) and isinstance(node.slice, ast.Constant):
                    names.add(str(node.slice.value))
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    # MAX_CONCURRENT_ENV = "ARPO_SANDBOX_MAX_CONCURRENT" and the like
                    targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                    if any(t.endswith("_ENV") for t in targets) and isinstance(node.value.value, str):
                        names.add(node.value.value)
    return names


def _is_environ(node: ast.AST) -> bool:
    value = getattr(node, "value", None)
    return isinstance(value, ast.Attribute) and value.attr == "environ"


def entrypoint_reads() -> set[str]:
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", ENTRYPOINT.read_text()))


def required_by_prod() -> set[str]:
    """Variables production settings read without a default: start-up fails without them."""
    required = set()
    for name in ("base.py", "prod.py"):
        tree = ast.parse((REPO / "webapp" / "settings" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ENV_HELPERS and len(node.args) == 1:
                required.add(node.args[0].value)  # type: ignore[attr-defined]
    return required


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (INFRA / "env.example").read_text().splitlines() if "=" in line]
    return {k: v for k, v in pairs if not k.startswith("#")}


def k8s_provided() -> dict[str, str]:
    provided = dict(find("ConfigMap", "arpo-config")["data"])
    provided.update(find("Secret", "arpo-secrets")["stringData"])
    return provided


def known_names() -> set[str]:
    return python_reads() | entrypoint_reads() | set(THIRD_PARTY)


def test_the_name_scan_sees_the_settings() -> None:
    reads = python_reads()
    assert {"SECRET_KEY", "DATABASE_URL", "RAY_ADDRESS", "ARPO_RUN_NUM_GPUS", "ARPO_SANDBOX_CGROUP"} <= reads
    assert required_by_prod() == {"SECRET_KEY", "ALLOWED_HOSTS", "ARPO_SECRETS_KEY", "DATABASE_URL", "REDIS_URL"}


def dockerfile_env() -> set[str]:
    """Names set by the Dockerfile's ENV instructions, as Docker's parser reads them."""
    commands = dockerfile.parse_file(str(INFRA / "docker" / "Dockerfile"))
    return {name for c in commands if c.cmd == "ENV" for name in c.value[::2]}


SETTERS = {
    "infra/env.example": lambda: set(env_example()),
    "compose.yaml environment": lambda: {k for s in compose()["services"].values() for k in s.get("environment", {})},
    "ConfigMap and Secret": lambda: set(k8s_provided()),
    "container env in infra/k8s": lambda: {
        e["name"] for _, p in pod_specs() for c in p["containers"] for e in c.get("env", [])
    },
    "Dockerfile ENV": dockerfile_env,
}


@pytest.mark.parametrize("where", SETTERS)
def test_every_variable_the_deployment_sets_is_read_by_someone(where: str) -> None:
    names = SETTERS[where]()
    assert names, where
    unknown = names - known_names()
    assert not unknown, f"{where} sets variables nothing reads: {sorted(unknown)}"


def test_compose_gives_every_app_container_what_prod_settings_require() -> None:
    assert required_by_prod() <= set(env_example())
    assert env_example()["DJANGO_SETTINGS_MODULE"] == "webapp.settings.prod"


def test_kubernetes_gives_every_app_container_what_prod_settings_require() -> None:
    assert required_by_prod() <= set(k8s_provided())
    for where, pod in pod_specs():
        if where.startswith("RayCluster"):
            continue  # Ray nodes run the engine only: no Django settings
        (container,) = pod["containers"]
        sources = {s.get("configMapRef", s.get("secretRef", {})).get("name") for s in container["envFrom"]}
        assert sources == {"arpo-config", "arpo-secrets"}, where


def test_placeholders_are_placeholders() -> None:
    """The committed examples hold no usable secret: every secret value asks to be changed."""
    secret_names = ("SECRET_KEY", "ARPO_SECRETS_KEY", "POSTGRES_PASSWORD", "RAY_AUTH_TOKEN")
    for name in secret_names:
        assert env_example()[name].startswith("CHANGE-ME"), name
    for name in ("SECRET_KEY", "ARPO_SECRETS_KEY"):
        assert k8s_provided()[name].startswith("CHANGE-ME")
    assert "CHANGE-ME" in env_example()["DATABASE_URL"] and "CHANGE-ME" in k8s_provided()["DATABASE_URL"]
    assert find("Secret", "arpo-ray-auth")["stringData"]["auth_token"].startswith("CHANGE-ME")


def test_env_example_is_listed_in_gitignore_as_its_filled_copy() -> None:
    assert "/infra/arpo.env" in (REPO / ".gitignore").read_text().split()
    assert Path(INFRA / "env.example").is_file()
