"""`python -m arpo_engine.tools.sandbox_doctor [--strict]`: can the python sandbox start here, and with cgroups?

The image's entry point runs it before a worker or Ray node starts (infra/docker/entrypoint.sh), so a pod
without the privileges bubblewrap needs says which one is missing in its first log lines. Exit 1 when the
sandbox cannot start; with `--strict`, also when calls would run without a cgroup (rlimits only).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def cgroup_status() -> str:
    """How call groups will be made here (or why not), for the start-up report."""
    from arpo_engine.tools.sandbox_limits import CGROUPS

    version = CGROUPS.version
    if version is None:
        return f"cgroups: none usable ({CGROUPS.reason}); each call falls back to rlimits only"
    return f"cgroups: v{version}, a group per call under {', '.join(str(p) for p in CGROUPS.parents)}"


def main(argv: Sequence[str] = ()) -> int:
    import warnings

    from arpo_engine.tools.python_sandbox import check_sandbox_prerequisites

    strict = "--strict" in argv
    try:
        check_sandbox_prerequisites()
    except RuntimeError as exc:
        print(f"python sandbox: NOT AVAILABLE. {exc}", file=sys.stderr)
        return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the status line below says the same
        status = cgroup_status()
    print(f"python sandbox: ok; {status}")
    return 1 if strict and "none usable" in status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
