"""The sandbox's start-up check names the requirement a container lacks, and the fix (arpo_engine.tools.sandbox_check).

The stderr lines are bubblewrap's and setpriv's own, captured on this machine by taking one capability
away at a time; those failures are also reproduced for real below, where the test runs as root.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arpo_engine.tools.python_sandbox import check_sandbox_prerequisites
from arpo_engine.tools.sandbox_check import CAP_NET_ADMIN, CAP_SYS_ADMIN, HostFacts, diagnose, host_facts
from arpo_engine.tools.sandbox_limits import Cgroups

ALL_CAPS = (1 << 41) - 1
CONTAINER = HostFacts(euid=0, cap_eff=ALL_CAPS, seccomp_mode=0, apparmor="unconfined")
REPO = Path(__file__).resolve().parents[2]


def without(cap: int) -> HostFacts:
    return HostFacts(euid=0, cap_eff=ALL_CAPS & ~(1 << cap), seccomp_mode=0, apparmor="unconfined")


def test_missing_cap_sys_admin_is_named_with_the_capability_to_add() -> None:
    message = diagnose("bwrap: Creating new namespace failed: Operation not permitted\n", without(CAP_SYS_ADMIN))
    assert "lacks CAP_SYS_ADMIN" in message
    assert "capabilities.add: [SYS_ADMIN]" in message and "cap_add: [SYS_ADMIN]" in message


def test_a_seccomp_profile_refusing_namespaces_is_told_apart_from_a_missing_capability() -> None:
    facts = HostFacts(euid=0, cap_eff=ALL_CAPS, seccomp_mode=2, apparmor="unconfined")
    message = diagnose("bwrap: Creating new namespace failed: Operation not permitted\n", facts)
    assert "seccomp profile" in message and "seccompProfile: {type: Unconfined}" in message
    assert "seccomp=unconfined" in message and "CAP_SYS_ADMIN" not in message


def test_missing_net_admin_is_named_for_the_loopback_of_the_network_namespace() -> None:
    message = diagnose("bwrap: loopback: Failed RTM_NEWADDR: No child processes\n", without(CAP_NET_ADMIN))
    assert "lacks CAP_NET_ADMIN" in message and "add: [NET_ADMIN]" in message


def test_an_apparmor_profile_denying_mounts_is_named_with_its_label() -> None:
    facts = HostFacts(euid=0, cap_eff=ALL_CAPS, seccomp_mode=2, apparmor="cri-containerd.apparmor.d (enforce)")
    message = diagnose("bwrap: Failed to make / slave: Permission denied\n", facts)
    assert "AppArmor profile (cri-containerd.apparmor.d (enforce))" in message
    assert "appArmorProfile: {type: Unconfined}" in message and "apparmor=unconfined" in message


def test_a_masked_proc_in_a_user_namespaced_pod_is_named() -> None:
    message = diagnose("bwrap: Can't mount proc on /newroot/proc: Operation not permitted\n", CONTAINER)
    assert "cannot mount a fresh /proc" in message and "hostUsers: true" in message
    assert "procMount: Unmasked" in message


def test_disabled_user_namespaces_name_the_sysctl_that_is_zero() -> None:
    facts = HostFacts(euid=1000, cap_eff=0, userns_clone="0", max_user_namespaces="15000")
    stderr = (
        "bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
        "non-privileged user namespaces. On e.g. debian this can be enabled with "
        "'sysctl kernel.unprivileged_userns_clone=1'.\n"
    )
    message = diagnose(stderr, facts)
    assert "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)" in message
    assert "runAsUser: 0" in message


def test_max_user_namespaces_zero_is_named_when_that_is_the_setting_at_zero() -> None:
    facts = HostFacts(euid=1000, cap_eff=0, userns_clone=None, max_user_namespaces="0")
    message = diagnose("bwrap: setting up uid map: Permission denied\n", facts)
    assert "(user.max_user_namespaces = 0)" in message and "sysctl -w user.max_user_namespaces" in message


def test_setpriv_without_setuid_names_the_missing_capability() -> None:
    message = diagnose("setpriv: setresuid failed: Operation not permitted\n", without(7))
    assert "lacks SETUID" in message and "drop: [ALL]" in message


def test_an_unknown_failure_still_lists_every_requirement_and_the_privileged_fallback() -> None:
    message = diagnose("bwrap: something new\n", CONTAINER)
    assert "'bwrap: something new'" in message
    for needed in ("uid 0", "SYS_ADMIN and NET_ADMIN", "Unconfined", "privileged: true"):
        assert needed in message


def test_host_facts_read_capabilities_seccomp_and_apparmor_from_proc(tmp_path: Path) -> None:
    (tmp_path / "self" / "attr" / "apparmor").mkdir(parents=True)
    (tmp_path / "self" / "status").write_text("Name:\tpython\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n")
    (tmp_path / "self" / "attr" / "apparmor" / "current").write_text("docker-default (enforce)\n")
    (tmp_path / "sys" / "user").mkdir(parents=True)
    (tmp_path / "sys" / "user" / "max_user_namespaces").write_text("0\n")
    facts = host_facts(tmp_path)
    # 0xa80425fb: Docker's default set, which has neither SYS_ADMIN nor NET_ADMIN.
    assert facts.has_cap(CAP_SYS_ADMIN) is False and facts.has_cap(CAP_NET_ADMIN) is False
    assert facts.seccomp_mode == 2 and facts.apparmor_confined and facts.max_user_namespaces == "0"
    assert facts.userns_clone is None


def test_a_bwrap_that_fails_is_diagnosed_by_the_tools_own_start_up_check(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        '#!/bin/sh\necho "bwrap: Can\'t mount proc on /newroot/proc: Operation not permitted" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"cannot mount a fresh /proc.*procMount: Unmasked"):
        check_sandbox_prerequisites(bwrap=str(fake))


@pytest.mark.skipif(os.geteuid() != 0, reason="taking a capability away needs root (CI runs as root)")
@pytest.mark.parametrize(
    ("cap", "expected"), [("sys_admin", "lacks CAP_SYS_ADMIN"), ("net_admin", "lacks CAP_NET_ADMIN")]
)
def test_a_worker_started_without_a_capability_fails_at_start_up_naming_it(cap: str, expected: str) -> None:
    """The real bwrap, in a process whose bounding set lacks `cap` (as in a container without it)."""
    command = ["/usr/bin/setpriv", f"--bounding-set=-{cap}", sys.executable, "-m", "arpo_engine.tools.sandbox_doctor"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert "python sandbox: NOT AVAILABLE" in done.stderr and expected in done.stderr


def test_the_doctor_says_ok_where_the_sandbox_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arpo_engine.tools.sandbox_doctor"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("python sandbox: ok; cgroups: ")


def test_cgroup_v2_sandboxes_go_under_the_delegated_group_the_entry_point_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container the worker's own group holds processes; the entry point delegates from the root instead."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")  # written by the entry point
    (tmp_path / "service").mkdir()
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/service\n")
    monkeypatch.setenv("ARPO_SANDBOX_CGROUP", "/arpo-sandbox")
    groups = Cgroups(root=tmp_path, proc_cgroup=proc)
    assert groups.version == 2 and groups.parents == [tmp_path / "arpo-sandbox"]
    assert (tmp_path / "arpo-sandbox" / "cgroup.subtree_control").read_text() == "+memory +pids"
    group = groups.create(memory_mb=256, max_processes=10)
    assert group is not None and (group.dirs[0] / "pids.max").read_text() == "10"


def test_without_a_usable_cgroup_the_warning_says_why(tmp_path: Path) -> None:
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/\n")
    groups = Cgroups(root=tmp_path / "absent", proc_cgroup=proc)
    with pytest.warns(RuntimeWarning, match="Why: no cgroup v2 hierarchy here; no cgroup v1 hierarchy here"):
        assert groups.version is None
    assert groups.reason == "no cgroup v2 hierarchy here; no cgroup v1 hierarchy here"


def test_a_refused_cgroup_write_is_reported_with_the_path_and_the_meaning(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    own = tmp_path / "worker"
    own.mkdir()
    (own / "cgroup.subtree_control").mkdir()  # writing it fails (EISDIR), as a refused write would
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/worker\n")
    groups = Cgroups(root=tmp_path, proc_cgroup=proc)
    with pytest.warns(RuntimeWarning, match="no writable cgroup"):
        assert groups.version is None
    assert groups.reason.startswith(f"cgroup v2: {own / 'cgroup.subtree_control'}: ")
