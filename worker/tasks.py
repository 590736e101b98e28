"""Celery tasks: ids in, one call out. Service and engine code is imported inside task bodies."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready

from worker.celery_app import app

# --- tools: "try it" (queue "short") ---------------------------------------------------------------


@app.task(name="worker.tasks.tool_try", ignore_result=True, soft_time_limit=300, time_limit=330)
def tool_try(trial_id: int) -> None:
    """Run one "try it" call of a tool and store its output, error and latency on the trial."""
    from webapp.tools.services import tool_trial_execute

    tool_trial_execute(trial_id=trial_id)


# --- runs: preflight "Check" (queue "short") ------------------------------------------------------


@app.task(name="worker.tasks.run_preflight", ignore_result=True, soft_time_limit=600, time_limit=660)
def run_preflight(preflight_id: int) -> None:
    """Check a draft run: a few rollouts of its starting model (arpo_engine.preflight); store the report."""
    from webapp.runs.preflight import preflight_execute

    preflight_execute(preflight_id=preflight_id)


# --- playground: a question put to a checkpoint's agent and to the base model (queue "short") -------------


@app.task(name="worker.tasks.playground_answer", ignore_result=True, soft_time_limit=900, time_limit=960)
def playground_answer(session_id: int, side: str) -> None:
    """Answer one side of a playground session, streaming its events (webapp/playground/answering.py)."""
    from webapp.playground.answering import playground_answer_execute

    playground_answer_execute(session_id=session_id, side=side)


# --- runs (queue "runs") ---------------------------------------------------------------------------


@app.task(name="worker.tasks.run_execute", bind=True, ignore_result=True, acks_late=True)
def run_execute(self: Any, run_id: int) -> None:
    """Execute a run on Ray and relay its events until it ends (worker/relay.py); safe to deliver twice."""
    from worker.relay import execute

    execute(run_id, task_id=str(self.request.id or ""))


@worker_ready.connect
def _start_run_recovery(sender: Any, **kwargs: Any) -> None:
    from worker import recovery

    recovery.start(sender)
