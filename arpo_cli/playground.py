"""`arpo checkpoints try <run> <step|latest|best> "question"`: the playground from the terminal.

Asks the checkpoint's agent and the run's base model (one REST call), then follows the session's numbered
events (`/playground/<id>/events/?after=<seq>`, what the web page replays) and prints each answer as it
comes: model text as written, tool calls and results on lines of their own, then the final answer. Exit
code: 0 when the session is done, 1 when it failed, 3 when still going after --timeout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from .client import Client
from .execution import EXIT_TIMEOUT, _which, checkpoints_app
from .main import _call, _client, _print_json, err

SIDE_TITLES = {"trained": "trained agent", "base": "base model"}
RESULT_LINES = 6  # lines of a tool result shown; the rest is summarised


@dataclass
class Printer:
    """Turns a session's events into terminal text; `write` gets raw text (model chunks are not lines)."""

    write: Callable[[str], None]
    labels: Mapping[str, str]
    side: str | None = None
    midline: bool = False
    finals: dict[str, str] = field(default_factory=dict)

    def event(self, event: Mapping[str, Any]) -> None:
        side, kind, data = str(event["side"]), event["kind"], event.get("data") or {}
        if side != self.side:
            self._line(f"\n── {SIDE_TITLES.get(side, side)} ({self.labels.get(side, '')}) ──")
            self.side = side
        if kind == "model":
            text = str(data.get("text", ""))
            self.write(text)
            self.midline = not text.endswith("\n")
        elif kind == "status" and data.get("state") == "loading":
            self._line(f"(loading {data.get('model', 'the model')} …)")
        elif kind == "tool_call":
            body = data.get("arguments") or {}
            shown = next(iter(body.values())) if len(body) == 1 else json.dumps(body)
            self._line(f"[tool call {data.get('index')} · {data.get('name')}] {shown}")
        elif kind == "tool_result":
            self._line(f"[result · {data.get('name')} · {float(data.get('latency_ms') or 0):.0f} ms"
                       f"{' · error: ' + str(data['error']) if data.get('error') else ''}]")  # fmt: skip
            lines = str(data.get("output", "")).strip().splitlines() or ["(no output)"]
            for line in lines[:RESULT_LINES]:
                self._line(f"  {line}")
            if len(lines) > RESULT_LINES:
                self._line(f"  … {len(lines) - RESULT_LINES} more lines")
        elif kind == "final":
            answer = data.get("answer")
            self.finals[side] = str(answer) if answer is not None else "(none in the expected format)"
            cost = f"{data.get('tool_calls')} tool calls, {data.get('tokens')} tokens"
            took = float(data.get("seconds") or 0)
            self._line(f"final answer: {self.finals[side]}  ({data.get('finish_reason')}, {cost}, {took:.1f} s)")
        elif kind == "error":
            self.finals[side] = f"(no answer: {data.get('message')})"
            self._line(f"no answer: {data.get('message')}")

    def _line(self, text: str) -> None:
        self.write(("\n" if self.midline else "") + text + "\n")
        self.midline = False


def follow(
    client: Client, session: Mapping[str, Any], printer: Printer, *, poll_s: float, timeout_s: float | None
) -> tuple[str, dict[str, Any]]:
    """Print the session's events until it ends; (status, the session's last state)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    after = 0
    state: dict[str, Any] = dict(session)
    while True:
        events = client.get(f"playground/{session['id']}/events/", after=after, limit=500)
        for event in events:
            printer.event(event)
            after = max(after, int(event["seq"]))
        if len(events) >= 500:
            continue
        if state["status"] in ("done", "failed") and not events:
            return str(state["status"]), state
        if deadline is not None and time.monotonic() > deadline:
            return "timeout", state
        time.sleep(poll_s)
        state = client.get(f"playground/{session['id']}/")


@checkpoints_app.command("try")
def checkpoints_try(
    run_id: int,
    which: Annotated[str, typer.Argument(help="latest, best, or a step number.")],
    question: Annotated[str, typer.Argument(help="What to ask (quote it).")],
    timeout: Annotated[float | None, typer.Option(help="Give up watching after this many seconds (exit 3).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls of the session's events.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the session's JSON at the end, not the text.")] = False,
) -> None:
    """Ask a checkpoint's agent a question, next to the run's base model, and print both answers as they come
    (tool calls and results on lines of their own). Exits 0 when both are answered, 1 if the session failed."""
    ref = _which(which, None)
    client = _client()
    session = _call(lambda: client.post(f"runs/{run_id}/checkpoints/{ref}/try/", json={"question": question}))
    err.print(f"Asked step {session['step']} of run {run_id} and {session['base_model']} (session {session['id']}); "
              f"in the browser: {client.url}{session['page_url']}")  # fmt: skip
    labels = {"trained": f"step {session['step']}", "base": str(session["base_model"])}
    printer = Printer(write=(lambda _: None) if as_json else _write, labels=labels)
    status, state = _call(lambda: follow(client, session, printer, poll_s=poll, timeout_s=timeout))
    if as_json:
        _print_json(state)
    if status == "timeout":
        err.print(f"Still answering after {timeout:g} s; the session goes on: {client.url}{session['page_url']}")
        raise typer.Exit(EXIT_TIMEOUT)
    raise typer.Exit(0 if status == "done" else 1)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
