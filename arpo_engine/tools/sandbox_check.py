"""Why the python sandbox cannot start on this host, named precisely, with the fix for Docker and Kubernetes.

A default container lacks what bubblewrap needs when it runs as root without a user namespace (the
python tool's choice, see `python_sandbox`): CAP_SYS_ADMIN for the new mount, pid, ipc and uts
namespaces and for mounting /proc and the tmpfs; CAP_NET_ADMIN to bring up the loopback device of the
new network namespace; a seccomp profile and an AppArmor profile that let those calls through. bwrap
reports each refusal in one line on stderr; `diagnose` turns that line, together with what this process
can see about itself (`HostFacts`: capabilities, seccomp mode, AppArmor profile, the user-namespace
sysctls), into a message that says which requirement failed and how to grant it.

`probe` runs the real command line once (python_sandbox.check_sandbox_prerequisites) so that a worker
started without these privileges fails when the tool is built, not on every call; `sandbox_doctor`
prints the verdict at a container's start-up.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Capability numbers (linux/capability.h).
CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_NET_ADMIN, CAP_SYS_CHROOT, CAP_SYS_ADMIN = 6, 7, 8, 12, 18, 21

K8S_DOC = "infra/k8s/worker.yaml and docs/deploy.md, 'The sandbox in a container'"
PRIVILEGED_FALLBACK = (
    "If the runtime refuses these settings, run the container privileged (Docker `privileged: true`, "
    "Kubernetes `securityContext.privileged: true`) as a last resort."
)


@dataclass(frozen=True)
class HostFacts:
    """What this process can learn about its own privileges, from /proc."""

    euid: int
    cap_eff: int | None = None
    """Effective capability mask (CapEff in /proc/self/status); None when unreadable."""
    seccomp_mode: int | None = None
    """0 none, 1 strict, 2 a filter (a container runtime's profile)."""
    apparmor: str | None = None
    """This process's AppArmor label, e.g. "unconfined" or "docker-default (enforce)"; None without AppArmor."""
    userns_clone: str | None = None
    """kernel.unprivileged_userns_clone (Debian and Ubuntu kernels only)."""
    max_user_namespaces: str | None = None
    """user.max_user_namespaces."""

    def has_cap(self, cap: int) -> bool | None:
        return None if self.cap_eff is None else bool(self.cap_eff >> cap & 1)

    @property
    def apparmor_confined(self) -> bool:
        return self.apparmor is not None and not self.apparmor.startswith("unconfined")


def host_facts(proc: Path = Path("/proc")) -> HostFacts:
    status = _read(proc / "self" / "status") or ""
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    cap_eff = _parse(fields.get("CapEff"), 16)
    seccomp = _parse(fields.get("Seccomp"), 10)
    apparmor = _read(proc / "self" / "attr" / "apparmor" / "current") or _read(proc / "self" / "attr" / "current")
    return HostFacts(
        euid=os.geteuid(),
        cap_eff=cap_eff,
        seccomp_mode=seccomp,
        apparmor=apparmor.strip("\x00\n ") if apparmor else None,
        userns_clone=_read(proc / "sys" / "kernel" / "unprivileged_userns_clone"),
        max_user_namespaces=_read(proc / "sys" / "user" / "max_user_namespaces"),
    )


def diagnose(stderr: str, facts: HostFacts) -> str:
    """One message for a failed bwrap start: the requirement that failed, the evidence, and the fix."""
    text = stderr.strip()
    lowered = text.lower()
    last = text.splitlines()[-1] if text else "(no message)"
    said = f"It said: {last!r}."
    if any(k in lowered for k in ("no permissions to creat", "uid map", "user namespace", "userns")):
        return _user_namespaces(facts, said)
    if "loopback" in lowered or "rtm_newaddr" in lowered:
        return (
            "The python sandbox cannot set up its network namespace: the container lacks CAP_NET_ADMIN "
            f"(bwrap brings up the sandbox's own loopback device). {said} Fix: Kubernetes "
            "`securityContext.capabilities.add: [NET_ADMIN]`; Docker `cap_add: [NET_ADMIN]`."
        )
    if lowered.startswith("setpriv") or "\nsetpriv" in lowered:
        return _setpriv(facts, said)
    if lowered.startswith("prlimit") or "\nprlimit" in lowered:
        return (
            "The python sandbox cannot set its resource limits: a limit it asks for is above the container's "
            f"hard limit. {said} Fix: raise the container's limits (Docker `ulimits:`; Kubernetes: the "
            "runtime's defaults), or lower the python tool's options (max_open_files, memory_mb)."
        )
    if "seccomp" in lowered and ("prctl" in lowered or "invalid argument" in lowered):
        return (
            "The python sandbox cannot install its seccomp filter: this kernel or the container refuses "
            f"PR_SET_SECCOMP. {said} Fix: a kernel built with CONFIG_SECCOMP_FILTER, and a container "
            "seccomp profile of `Unconfined` (Kubernetes `seccompProfile: {type: Unconfined}`; Docker "
            "`security_opt: [seccomp=unconfined]`)."
        )
    if "creating new namespace" in lowered or "unshare" in lowered or "clone" in lowered:
        return _namespaces(facts, said)
    if "chroot" in lowered and facts.has_cap(CAP_SYS_CHROOT) is False:
        return (
            f"The python sandbox cannot enter its new root: the container lacks CAP_SYS_CHROOT. {said} Fix: "
            "keep SYS_CHROOT in the container's capabilities (it is in Docker's and Kubernetes' defaults; "
            "do not `drop: [ALL]` for this container)."
        )
    if any(k in lowered for k in ("mount", "pivot_root", "make / slave", "remount", "can't create file")):
        return _mounts(lowered, facts, said)
    return (
        f"The python sandbox failed to start. {said} It needs, in a container: root (uid 0), capabilities "
        "SYS_ADMIN and NET_ADMIN, and seccomp and AppArmor profiles `Unconfined` "
        f"(see {K8S_DOC}). {PRIVILEGED_FALLBACK}"
    )


def _user_namespaces(facts: HostFacts, said: str) -> str:
    settings = []
    if facts.userns_clone is not None:
        settings.append(f"kernel.unprivileged_userns_clone = {facts.userns_clone}")
    if facts.max_user_namespaces is not None:
        settings.append(f"user.max_user_namespaces = {facts.max_user_namespaces}")
    disabled = [s for s in settings if s.endswith("= 0")]
    where = f" ({', '.join(disabled or settings)})" if settings else ""
    return (
        f"The python sandbox cannot create a user namespace: unprivileged user namespaces are disabled{where}. "
        f"{said} The sandbox needs none when it starts as root, which is how it is meant to run: Kubernetes "
        "`runAsUser: 0`, Docker `user: root` (it drops to an unprivileged uid per call). Otherwise enable them "
        "on the node: `sysctl -w kernel.unprivileged_userns_clone=1` and `sysctl -w user.max_user_namespaces=15000`."
    )


def _namespaces(facts: HostFacts, said: str) -> str:
    if facts.has_cap(CAP_SYS_ADMIN) is False:
        return (
            "The python sandbox cannot create its namespaces: the container lacks CAP_SYS_ADMIN. "
            f"{said} Fix: Kubernetes `securityContext.capabilities.add: [SYS_ADMIN]`; Docker "
            "`cap_add: [SYS_ADMIN]`."
        )
    if facts.seccomp_mode == 2:
        return (
            "The python sandbox cannot create its namespaces: the container's seccomp profile refuses "
            f"unshare/clone with namespace flags (this process runs under a seccomp filter). {said} Fix: "
            "Kubernetes `securityContext.seccompProfile: {type: Unconfined}`; Docker "
            "`security_opt: [seccomp=unconfined]`. The sandbox installs its own, stricter filter inside."
        )
    return f"The python sandbox cannot create its namespaces. {said} {PRIVILEGED_FALLBACK}"


def _mounts(lowered: str, facts: HostFacts, said: str) -> str:
    if facts.has_cap(CAP_SYS_ADMIN) is False:
        return (
            "The python sandbox cannot mount its root filesystem: the container lacks CAP_SYS_ADMIN. "
            f"{said} Fix: Kubernetes `securityContext.capabilities.add: [SYS_ADMIN]`; Docker `cap_add: [SYS_ADMIN]`."
        )
    if facts.apparmor_confined or "permission denied" in lowered:
        profile = f" ({facts.apparmor})" if facts.apparmor else ""
        return (
            f"The python sandbox's mounts are denied by the container's AppArmor profile{profile}: "
            f"runtime default profiles forbid mount. {said} Fix: Kubernetes "
            "`securityContext.appArmorProfile: {type: Unconfined}` (before 1.30 the annotation "
            "`container.apparmor.security.beta.kubernetes.io/<container>: unconfined`); Docker "
            "`security_opt: [apparmor=unconfined]`."
        )
    if "proc" in lowered:
        return (
            "The python sandbox cannot mount a fresh /proc: the container's /proc is masked and the pod runs "
            f"in a user namespace (the kernel then refuses a new proc mount). {said} Fix: Kubernetes "
            "`hostUsers: true` (the default) for this pod, or `securityContext.procMount: Unmasked`; "
            "Docker: no user-namespace remapping for this container (`userns_mode: host`)."
        )
    if facts.seccomp_mode == 2:
        return (
            f"The python sandbox's mounts are refused by the container's seccomp profile. {said} Fix: "
            "Kubernetes `seccompProfile: {type: Unconfined}`; Docker `security_opt: [seccomp=unconfined]`."
        )
    return f"The python sandbox cannot mount its root filesystem. {said} {PRIVILEGED_FALLBACK}"


def _setpriv(facts: HostFacts, said: str) -> str:
    missing = [
        name
        for cap, name in ((CAP_SETUID, "SETUID"), (CAP_SETGID, "SETGID"), (CAP_SETPCAP, "SETPCAP"))
        if facts.has_cap(cap) is False
    ]
    which = ", ".join(missing) if missing else "SETUID, SETGID and SETPCAP"
    return (
        f"The python sandbox cannot drop to its unprivileged uid: the container lacks {which} "
        f"(setpriv changes uid and empties the capability bounding set). {said} Fix: keep these "
        "capabilities (they are in Docker's and Kubernetes' defaults; do not `drop: [ALL]` for this container)."
    )


def probe(argv: Sequence[str], *, pass_fds: Sequence[int] = (), timeout_s: float = 60.0) -> str | None:
    """Run the sandbox's own command line once; None when it works, else the diagnosis of why not."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            pass_fds=tuple(pass_fds),
            env={"PATH": "/usr/bin:/bin"},
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return f"The python sandbox's start-up check did not finish within {timeout_s:.0f} s."
    except OSError as exc:
        return f"The python sandbox could not run {argv[0]}: {exc}."
    if done.returncode == 0:
        return None
    return diagnose(done.stderr.decode(errors="replace"), host_facts())


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _parse(raw: str | None, base: int) -> int | None:
    try:
        return int(raw.strip(), base) if raw is not None else None
    except ValueError:
        return None
