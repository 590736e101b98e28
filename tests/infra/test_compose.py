"""infra/compose.yaml against the published compose-spec schema, and what the one-GPU-box set-up promises."""

import copy

import jsonschema
import pytest

from tests.infra.manifests import IMAGE_MOUNT, compose, validate_compose

APP_SERVICES = ("migrate", "web", "worker", "ray-head", "ray-gpu-worker")


def test_compose_file_fits_the_compose_spec_schema() -> None:
    validate_compose(compose())


def test_a_broken_compose_file_is_refused() -> None:
    data = compose()
    no_capabilities = copy.deepcopy(data)
    del no_capabilities["services"]["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0][
        "capabilities"
    ]
    bad_condition = copy.deepcopy(data)
    bad_condition["services"]["web"]["depends_on"]["migrate"]["condition"] = "service_finished"
    typo = copy.deepcopy(data)
    typo["services"]["worker"]["cap_ad"] = ["SYS_ADMIN"]
    for broken in (no_capabilities, bad_condition, typo):
        with pytest.raises(jsonschema.ValidationError):
            validate_compose(broken)


def test_the_stack_has_its_services() -> None:
    assert set(compose()["services"]) == {"postgres", "redis", *APP_SERVICES}


def test_the_gpu_worker_reserves_nvidia_gpus() -> None:
    service = compose()["services"]["ray-gpu-worker"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert service["image"].endswith(":gpu") and service["build"]["args"]["VARIANT"] == "gpu"


def test_services_start_in_order_of_what_they_need() -> None:
    services = compose()["services"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert services["ray-gpu-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, name


def test_every_app_service_mounts_the_shared_volumes_and_reads_the_env_file() -> None:
    data = compose()
    for name in APP_SERVICES:
        service = data["services"][name]
        mounts = dict(v.split(":")[::-1] for v in service["volumes"])
        assert mounts[IMAGE_MOUNT] == "data" and mounts[f"{IMAGE_MOUNT}/media/runs"] == "checkpoints", name
        assert service["env_file"] == [{"path": "arpo.env", "required": True}], name
    assert {"data", "checkpoints"} <= set(data["volumes"])


@pytest.mark.parametrize("name", ["worker", "ray-gpu-worker"])
def test_services_that_run_the_python_tool_get_what_the_sandbox_needs(name: str) -> None:
    service = compose()["services"][name]
    assert service["user"] == "root"
    assert set(service["cap_add"]) == {"SYS_ADMIN", "NET_ADMIN"}
    assert set(service["security_opt"]) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert service["cgroup"] == "private"


def test_web_and_the_one_shot_jobs_run_as_the_images_user() -> None:
    services = compose()["services"]
    for name in ("web", "migrate", "ray-head"):
        assert "user" not in services[name] and "cap_add" not in services[name], name
