"""`arpo`: ARPO Studio from the terminal. Every command is one or two REST API calls with a token.

    arpo login --url http://127.0.0.1:8000
    arpo datasets upload train.jsonl --eval-percent 10
    arpo tools create --file tool.json && arpo tools try 3 --args '{"code": "print(2+2)"}'
    arpo runs create --name first --preset arpo_paper --base-model smollm2-135m-demo-sft --dataset 1 --tool 3
    arpo runs launch 7 --watch && arpo checkpoints download 7 best -o checkpoints/
    arpo checkpoints try 7 latest "How old will Senna Heindkiav be in the year 2054?"
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from .client import ApiError, Client, forget_credentials, load_credentials, save_credentials

app = typer.Typer(help="ARPO Studio from the command line.", no_args_is_help=True, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Upload and inspect datasets.", no_args_is_help=True)
tools_app = typer.Typer(help="Define and try tools.", no_args_is_help=True)
runs_app = typer.Typer(help="Configure runs.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(tools_app, name="tools")
app.add_typer(runs_app, name="runs")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


def _fail(error: ApiError) -> None:
    err.print(f"[bold red]Error:[/] {error.message}")
    for field, messages in error.fields.items():
        for message in messages:
            err.print(f"  [red]{field}[/]: {message}")
    raise typer.Exit(1)


def _client() -> Client:
    try:
        return Client.from_config()
    except ApiError as error:
        _fail(error)
        raise  # unreachable: _fail exits


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ApiError as error:
        _fail(error)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


def _table(items: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> None:
    if not items:
        out.print(f"[dim]No {title.lower()} yet.[/]")
        return
    table = Table(title=title, title_justify="left")
    shown = [c for c in columns if any(c in item for item in items)]
    for column in shown:
        table.add_column(column.replace("_", " "), overflow="fold")
    for item in items:
        table.add_row(*[_cell(item.get(column)) for column in shown])
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return str(value.get("name") or value.get("slug") or value.get("username") or value.get("id") or value)
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _details(item: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in item.items():
        if isinstance(value, (dict, list)) and len(json.dumps(value)) > 80:
            value = json.dumps(value, indent=2)
        table.add_row(key, _cell(value) if not isinstance(value, str) else value)
    out.print(table)


# --- account ---


@app.command()
def login(
    url: Annotated[str | None, typer.Option(help="Service address, e.g. http://127.0.0.1:8000")] = None,
    username: Annotated[str | None, typer.Option(help="Your username (asked if omitted).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Your password (asked, hidden, if omitted).", envvar="ARPO_PASSWORD")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Store an API token made in the web app instead.")] = None,
) -> None:
    """Sign in and store a token for later commands (private file, mode 600)."""
    base = (url or load_credentials()["url"]).rstrip("/")
    if token is None:
        username = username or typer.prompt("Username")
        password = password or typer.prompt("Password", hide_input=True)
        body = _call(lambda: Client(url=base).post("auth/login/", json={"username": username, "password": password}))
        token = body["token"]
    me = _call(lambda: Client(url=base, token=token).get("me/"))
    path = save_credentials(base, token)
    out.print(f"Signed in to {base} as [bold]{me['username']}[/]. Token stored in {path}.")


@app.command()
def logout() -> None:
    """Revoke the stored token on the server and forget it here."""
    client = _client()
    try:
        client.post("auth/logout/")
    except ApiError as error:
        if error.status not in (401, 403):
            _fail(error)
    forget_credentials()
    out.print("Signed out.")


@app.command()
def whoami(as_json: JsonOpt = False) -> None:
    """Show who the stored token belongs to."""
    me = _call(lambda: _client().get("me/"))
    _print_json(me) if as_json else _details(me)


# --- datasets ---

DATASET_COLUMNS = ["id", "name", "kind", "format", "row_count", "eval_row_count", "size_bytes", "owner", "created_at"]


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSONL, CSV or parquet.")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file name).")] = None,
    kind: Annotated[str, typer.Option(help="prompts, sft (demonstrations) or corpus (search documents).")] = "prompts",
    eval_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Held-out prompts.")] = None,
    eval_percent: Annotated[float | None, typer.Option(help="Carve off this % of rows for evaluation.")] = None,
    team: Annotated[str | None, typer.Option(help="Team slug to own it (default: you).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a dataset; it is validated row by row before anything is stored."""
    data: dict[str, Any] = {"name": name or file.stem, "kind": kind}
    if eval_percent is not None:
        data["eval_percent"] = str(eval_percent)
    if team:
        data["team"] = team
    with file.open("rb") as main_f:
        files: dict[str, Any] = {"file": (file.name, main_f)}
        if eval_file is not None:
            files["eval_file"] = (eval_file.name, eval_file.open("rb"))
        created = _call(lambda: _client().post("datasets/", data=data, files=files))
    if as_json:
        _print_json(created)
        return
    out.print(f"[green]Uploaded[/] dataset {created['id']}: {created['name']}")
    _details({k: created[k] for k in DATASET_COLUMNS if k in created})


@datasets_app.command("list")
def datasets_list(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None, as_json: JsonOpt = False
) -> None:
    """List the datasets you can see (yours and your teams')."""
    items = _call(lambda: _client().all_pages("datasets/", kind=kind))
    _print_json(items) if as_json else _table(items, DATASET_COLUMNS, "Datasets")


@datasets_app.command("show")
def datasets_show(dataset_id: int, as_json: JsonOpt = False) -> None:
    """Show one dataset and its preview."""
    item = _call(lambda: _client().get(f"datasets/{dataset_id}/"))
    _print_json(item) if as_json else _details(item)


# --- tools ---

TOOL_COLUMNS = ["id", "name", "kind", "description", "owner", "created_at"]


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


@tools_app.command("create")
def tools_create(
    file: Annotated[
        Path | None, typer.Option("--file", exists=True, dir_okay=False, help="JSON with the tool's fields.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Tool name the model calls.")] = None,
    kind: Annotated[str | None, typer.Option(help="python, search, calculator or http.")] = None,
    schema: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="OpenAI function-tool JSON schema file.")
    ] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="KEY=VALUE (JSON values allowed).")] = None,
    team: Annotated[str | None, typer.Option(help="Team slug to own it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Define a tool from a JSON file and/or options; the schema is validated by the server."""
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    if name:
        body["name"] = name
    if kind:
        body["kind"] = kind
    if schema:
        body["schema"] = json.loads(schema.read_text())
    if team:
        body["team"] = team
    body.update(_parse_options(option or []))
    created = _call(lambda: _client().post("tools/", json=body))
    if as_json:
        _print_json(created)
        return
    out.print(f"[green]Created[/] tool {created['id']}: {created['name']} ({created.get('kind')})")


@tools_app.command("list")
def tools_list(as_json: JsonOpt = False) -> None:
    """List the tools you can see."""
    items = _call(lambda: _client().all_pages("tools/"))
    _print_json(items) if as_json else _table(items, TOOL_COLUMNS, "Tools")


@tools_app.command("try")
def tools_try(
    tool_id: int,
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the tool once on the worker and print its output, error and latency."""
    try:
        arguments = json.loads(args)
    except ValueError as exc:
        raise typer.BadParameter(f"--args is not JSON: {exc}") from None
    client = _client()
    trial = _call(lambda: client.post(f"tools/{tool_id}/try/", json={"arguments": arguments}))
    deadline = time.monotonic() + wait
    with out.status("Running on the worker…"):
        while trial.get("status") not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.3)
            trial = _call(functools.partial(client.get, f"tools/{tool_id}/trials/{trial['id']}/"))
    if as_json:
        _print_json(trial)
    elif trial.get("status") not in ("done", "failed"):
        err.print(f"Still {trial.get('status')} after {wait:.0f} s; check later: trial {trial['id']}.")
        raise typer.Exit(2)
    else:
        colour = "green" if trial["status"] == "done" and not trial.get("error") else "red"
        out.print(f"[{colour}]{trial['status']}[/] in {trial.get('latency_ms', '?')} ms")
        if trial.get("output"):
            out.print(trial["output"], markup=False, highlight=False)
        if trial.get("error"):
            err.print(trial["error"], markup=False, highlight=False)
    if trial.get("status") == "failed":
        raise typer.Exit(1)


# --- runs ---

RUN_COLUMNS = ["id", "name", "status", "preset", "base_model", "dataset", "launchable", "owner", "created_at"]


def _set_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`rollout.group_size=8` -> {"rollout": {"group_size": 8}}."""
    overrides: dict[str, Any] = {}
    for dotted, value in _parse_options(pairs).items():
        node = overrides
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return overrides


@runs_app.command("create")
def runs_create(
    name: Annotated[str, typer.Option(help="Run name.")],
    preset: Annotated[str, typer.Option(help="arpo_paper, grpo_baseline or aepo.")] = "arpo_paper",
    config: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A run YAML (as `runs export` writes).")
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model slug (see the web app).")] = None,
    dataset: Annotated[int | None, typer.Option(help="Prompts dataset id.")] = None,
    eval_dataset: Annotated[int | None, typer.Option(help="Held-out dataset id.")] = None,
    sft_dataset: Annotated[int | None, typer.Option(help="SFT demonstrations dataset id.")] = None,
    tool: Annotated[list[int] | None, typer.Option("--tool", help="Tool id (repeat for several).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: rollout.group_size=8")] = None,
    team: Annotated[str | None, typer.Option(help="Team slug to own it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft run; it is validated against its dataset and tools and marked launchable when valid."""
    client = _client()
    if config is not None:
        with config.open("rb") as f:
            created = _call(lambda: client.post("runs/import/", data={"name": name}, files={"file": (config.name, f)}))
    else:
        body: dict[str, Any] = {"name": name, "preset": preset, "overrides": _set_overrides(set_ or [])}
        for key, value in (
            ("base_model", base_model),
            ("dataset", dataset),
            ("eval_dataset", eval_dataset),
            ("sft_dataset", sft_dataset),
            ("team", team),
        ):
            if value is not None:
                body[key] = value
        body["tools"] = list(tool or [])
        created = _call(lambda: client.post("runs/", json=body))
    if as_json:
        _print_json(created)
        return
    state = "launchable" if created.get("launchable") else "draft with errors"
    out.print(f"[green]Created[/] run {created['id']}: {created['name']} ({state})")
    for field, messages in (created.get("errors") or {}).items():
        for message in messages:
            err.print(f"  [yellow]{field}[/]: {message}")


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None, as_json: JsonOpt = False
) -> None:
    """List the runs you can see."""
    items = _call(lambda: _client().all_pages("runs/", status=status))
    _print_json(items) if as_json else _table(items, RUN_COLUMNS, "Runs")


@runs_app.command("show")
def runs_show(run_id: int, as_json: JsonOpt = False) -> None:
    """Show a run, its resolved config and its validation errors."""
    item = _call(lambda: _client().get(f"runs/{run_id}/"))
    _print_json(item) if as_json else _details(item)


@runs_app.command("export")
def runs_export(
    run_id: int, output: Annotated[Path | None, typer.Option("-o", help="File to write (default: stdout).")] = None
) -> None:
    """Write the run's resolved config as YAML that `python -m arpo_engine train` accepts."""
    text = _call(lambda: _client().get(f"runs/{run_id}/config.yaml"))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"Wrote {output}")


# Registers `runs launch|cancel|resume|watch` and `checkpoints list|download` (a module of their own, for size),
# and `checkpoints try` (the playground).
from . import execution, playground  # noqa: E402, F401

if __name__ == "__main__":
    app()
