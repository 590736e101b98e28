"""`arpo runs launch|cancel|resume|watch` and `arpo checkpoints list|download`: a run's execution from the
terminal, over the REST API only.

`watch` follows the run's event stream (`/runs/<id>/events/?after=<seq>`, the same numbered events the
web page replays), prints one line per step with a progress bar, and ends when the run does, with an
exit code a script can test: 0 succeeded, 1 failed, 2 cancelled, 3 still going after --timeout.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import ApiError, Client
from .main import _call, _client, _fail, _print_json, _table, app, err, out, runs_app

checkpoints_app = typer.Typer(help="List and download a run's checkpoints.", no_args_is_help=True)
app.add_typer(checkpoints_app, name="checkpoints")

TERMINAL = ("succeeded", "failed", "cancelled")
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
EXIT_TIMEOUT = 3
BAR_WIDTH = 20
# What a step line shows, when the step has it: (metric, label).
STEP_METRICS = (
    ("reward/mean", "reward"), ("accuracy", "acc"), ("tools/calls_per_traj", "calls"),
    ("entropy/token_mean", "entropy"), ("loss/policy", "loss"),
)  # fmt: skip


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = min(width, round(width * done / total)) if total > 0 else 0
    percent = min(100, round(100 * done / total)) if total > 0 else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"


def step_line(step: int, total: int, values: Mapping[str, Any], seconds: float | None) -> str:
    shown = [f"{label} {float(values[key]):.3f}" for key, label in STEP_METRICS if values.get(key) is not None]
    timing = f"  {seconds:.1f} s" if seconds is not None else ""
    width = len(str(total))
    return f"step {step:>{width}}/{total} {progress_bar(step, total)}  " + "  ".join(shown) + timing


@dataclass
class Watcher:
    """Follows one run's events and state; `echo` prints a line (stdout), `note` a side remark (stderr)."""

    client: Client
    run_id: int
    echo: Callable[[str], None]
    note: Callable[[str], None]
    logs: bool = False
    poll_s: float = 1.0
    after: int = 0
    total: int = 0
    status: str = ""
    position: int | None = None
    reason: str = ""
    _last_step_at: float | None = field(default=None, repr=False)

    def run(self, timeout_s: float | None = None) -> int:
        detail = self.client.get(f"runs/{self.run_id}/")
        self.total = int((detail.get("config") or {}).get("train", {}).get("steps") or 0)
        self.note(f"Watching run {self.run_id}: {detail.get('name', '')} ({self.total} steps). Ctrl-C stops watching, "
                  "not the run.")  # fmt: skip
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self._drain():
                continue  # a full page: there may be more right away
            state = self.client.get(f"runs/{self.run_id}/state/")
            self._state(state)
            if self.status in TERMINAL:
                self._drain()  # the events recorded with the final status
                return self._finish()
            if self.status == "draft":
                raise ApiError(f"Run {self.run_id} is a draft: launch it first (arpo runs launch {self.run_id}).")
            if deadline is not None and time.monotonic() > deadline:
                self.note(f"Still {self.status} after {timeout_s:.0f} s; watch again with --after {self.after}.")
                return EXIT_TIMEOUT
            time.sleep(self.poll_s)

    def _drain(self, limit: int = 500) -> bool:
        events = self.client.get(f"runs/{self.run_id}/events/", after=self.after, limit=limit)
        for event in events:
            self._event(event)
            self.after = max(self.after, int(event["seq"]))
        return len(events) >= limit

    def _event(self, event: Mapping[str, Any]) -> None:
        kind, data, step = event["kind"], event.get("data") or {}, event.get("step")
        if kind == "metrics" and step is not None:
            # The time between steps as the engine emitted them (so a replayed history shows it too).
            at = _timestamp(event.get("emitted_at"))
            seconds = at - self._last_step_at if at is not None and self._last_step_at is not None else None
            self._last_step_at = at
            self.echo(step_line(int(step), self.total or int(step), data, seconds))
        elif kind == "eval" and step is not None:
            shown = "  ".join(f"{k.removeprefix('eval/')} {float(v):.3f}" for k, v in sorted(data.items()))
            self.echo(f"eval at step {step}: {shown}")
        elif kind == "checkpoint" and step is not None:
            self.echo(f"checkpoint saved: step {step} ({_size(int(data.get('size_bytes') or 0))})")
        elif kind == "status":
            self._status(str(data.get("status", "")), str(data.get("reason") or ""))
        elif kind == "phase":
            self.note(f"phase: {data.get('phase', '')}")
        elif kind == "log" and self.logs:
            self.note(str(data.get("line", "")).rstrip())

    def _state(self, state: Mapping[str, Any]) -> None:
        position = state.get("queue_position")
        if state["status"] == "queued" and position != self.position:
            self.position = position
            self.echo(f"queued, position {position}" if position else "queued")
        self._status(str(state["status"]), str(state.get("status_reason") or ""))

    def _status(self, status: str, reason: str) -> None:
        if reason:
            self.reason = reason
        if status and status != self.status:
            self.status = status
            if status != "queued":
                self.echo(f"status: {status}")

    def _finish(self) -> int:
        if self.reason and self.status != "succeeded":
            self.echo(f"reason: {self.reason}")
        return EXIT_CODES[self.status]


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def _watch(run_id: int, *, logs: bool, after: int, poll: float, timeout: float | None) -> None:
    watcher = Watcher(_client(), run_id, typer.echo, lambda line: err.print(line, markup=False, highlight=False),
                      logs=logs, poll_s=poll, after=after)  # fmt: skip
    try:
        code = watcher.run(timeout)
    except ApiError as error:
        _fail(error)
    except KeyboardInterrupt:
        err.print(f"Stopped watching; the run goes on. Resume with: arpo runs watch {run_id} --after {watcher.after}")
        code = 130
    raise typer.Exit(code)


LogsOpt = Annotated[bool, typer.Option("--logs", help="Also print the run's log lines and phases (stderr).")]
PollOpt = Annotated[float, typer.Option(help="Seconds between polls when nothing new came.")]
TimeoutOpt = Annotated[float | None, typer.Option(help="Stop watching after this many seconds (exit code 3).")]


def _transition(run_id: int, action: str, as_json: bool) -> dict[str, Any]:
    state: dict[str, Any] = _call(lambda: _client().post(f"runs/{run_id}/{action}/"))
    if as_json:
        _print_json(state)
    else:
        position = f", position {state['queue_position']}" if state.get("queue_position") else ""
        out.print(f"Run {run_id}: [bold]{state['status']}[/]{position}")
    return state


@runs_app.command("launch")
def runs_launch(
    run_id: int,
    watch: Annotated[bool, typer.Option("--watch", help="Then follow it until it ends (as `runs watch`).")] = False,
    logs: LogsOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's state as JSON.")] = False,
) -> None:
    """Launch a draft run: it is checked once more and queued for the workers."""
    _transition(run_id, "launch", as_json)
    if watch:
        _watch(run_id, logs=logs, after=0, poll=1.0, timeout=None)


@runs_app.command("cancel")
def runs_cancel(
    run_id: int, as_json: Annotated[bool, typer.Option("--json", help="Print the run's state as JSON.")] = False
) -> None:
    """Cancel a run: it stops after its current phase and keeps its last checkpoint."""
    _transition(run_id, "cancel", as_json)


@runs_app.command("resume")
def runs_resume(
    run_id: int,
    watch: Annotated[bool, typer.Option("--watch", help="Then follow it until it ends.")] = False,
    logs: LogsOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's state as JSON.")] = False,
) -> None:
    """Resume a cancelled or failed run from its last checkpoint, under the same id."""
    _transition(run_id, "resume", as_json)
    if watch:
        _watch(run_id, logs=logs, after=0, poll=1.0, timeout=None)


@runs_app.command("watch")
def runs_watch(
    run_id: int,
    logs: LogsOpt = False,
    after: Annotated[int, typer.Option(help="Start after this event number (continue an earlier watch).")] = 0,
    poll: PollOpt = 1.0,
    timeout: TimeoutOpt = None,
) -> None:
    """Follow a run: one line per step with a progress bar, evaluations, checkpoints, status changes.

    Exits when the run ends: 0 succeeded, 1 failed, 2 cancelled (3: still going after --timeout).
    """
    _watch(run_id, logs=logs, after=after, poll=poll, timeout=timeout)


# --- checkpoints ---

CHECKPOINT_COLUMNS = ["step", "latest", "best", "eval", "size_bytes", "available", "created_at"]


@checkpoints_app.command("list")
def checkpoints_list(
    run_id: int, as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False
) -> None:
    """List a run's checkpoints: step, eval metrics, size, and which are `latest` and `best`."""
    items = _call(lambda: _client().get(f"runs/{run_id}/checkpoints/"))
    _print_json(items) if as_json else _table(items, CHECKPOINT_COLUMNS, "Checkpoints")


def _which(which: str, step: int | None) -> str:
    if step is not None:
        return str(step)
    if which not in ("latest", "best") and not which.isdigit():
        raise typer.BadParameter("write latest, best or a step number (or --step N)", param_hint="WHICH")
    return which


def _extract(archive: Path, into: Path) -> Path:
    """Unpack a checkpoint archive into `into`; returns its one top folder. Refuses names outside it."""
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        tops = {name.split("/")[0] for name in names}
        target = into.resolve()
        for name in names:
            if name.startswith("/") or ".." in Path(name).parts:
                raise ApiError(f"The archive holds an unsafe name ({name!r}); nothing was extracted.")
        if len(tops) != 1:
            raise ApiError("The archive is not one checkpoint folder; nothing was extracted.")
        folder = target / tops.pop()
        if folder.exists():
            raise ApiError(f"{folder} exists already; remove it or choose another -o.")
        z.extractall(target)
    return folder


@checkpoints_app.command("download")
def checkpoints_download(
    run_id: int,
    which: Annotated[str, typer.Argument(help="latest, best, or a step number.")] = "latest",
    step: Annotated[int | None, typer.Option("--step", help="This step (instead of WHICH).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to put the checkpoint folder in.")] = Path(),
    keep_zip: Annotated[bool, typer.Option("--zip", help="Keep the ZIP archive instead of extracting it.")] = False,
) -> None:
    """Download a checkpoint (streamed to disk) and extract it: a folder that loads with
    `AutoModelForCausalLM.from_pretrained` and vLLM, with run.json, agent.json and a model card."""
    ref = _which(which, step)
    client = _client()
    output.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(prefix=".arpo-download-", suffix=".zip", dir=output)[1])
    try:
        with out.status(f"Downloading run {run_id}, checkpoint {ref}…") as status:

            def progress(done: int, total: int | None) -> None:
                shown = f"{_size(done)} of {_size(total)}" if total else _size(done)
                status.update(f"Downloading run {run_id}, checkpoint {ref}: {shown}")

            size = _call(lambda: client.download(f"runs/{run_id}/checkpoints/{ref}/download", tmp, progress))
        if keep_zip:
            with zipfile.ZipFile(tmp) as z:
                name = z.namelist()[0].split("/")[0] + ".zip"
            final = output / name
            shutil.move(tmp, final)
            out.print(f"Saved {final} ({_size(size)})")
            return
        folder = _call(lambda: _extract(tmp, output))
        out.print(f"Saved {folder} ({_size(size)})")
    finally:
        tmp.unlink(missing_ok=True)
