"""Worker side of the playground: one side of a session answered by the engine, its events stored and sent.

`playground_answer_execute` runs in worker.tasks.playground_answer on the `short` queue. It loads the model
(the checkpoint's folder for the trained side; the run's configured model for the base side) into the
transformers sampler, keeping the last ARPO_PLAYGROUND_MODELS loaded per worker process, builds the run's
tools as training did (the python tool in its sandbox, search over the run's corpus, http with the
owner's secrets) and runs arpo_engine.playground with the system prompt and tool protocol of the
checkpoint's agent.json, the run's response and tool-call limits and the wall-clock cap.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

from webapp.runs.checkpoints import checkpoint_folder
from webapp.runs.recording import scrub

from . import services
from .models import PlaygroundSession

log = logging.getLogger(__name__)

_cache: Any = None


def sampler_cache() -> Any:
    """This process's SamplerCache (arpo_engine.playground), made on first use."""
    global _cache
    if _cache is None:
        from arpo_engine.playground import SamplerCache

        _cache = SamplerCache(settings.ARPO_PLAYGROUND_MODELS)
    return _cache


class AnswerError(Exception):
    """A reason the answer cannot be given, for a person to read."""


def playground_answer_execute(*, session_id: int, side: str) -> None:
    """Answer one side of a session; never raises for a problem of the run or the model. A side that has
    ended already is left alone (a redelivered message)."""
    if not services.side_begin(session_id=session_id, side=side):
        return
    session = PlaygroundSession.objects.select_related("run", "run__base_model", "checkpoint").get(pk=session_id)

    def emit(kind: str, data: Mapping[str, Any]) -> None:
        services.event_record(session_id=session_id, side=side, kind=kind, data=_clean(kind, data))

    ok = False
    try:
        ok = _answer(session, side, emit)
    except Exception as exc:  # whatever stopped it, the person reads why, never a traceback
        log.warning("playground session %s (%s) failed", session_id, side, exc_info=True)
        emit("error", {"code": "failed", "message": explain(exc)})
    finally:
        services.side_end(session_id=session_id, side=side, ok=ok)


def _answer(session: PlaygroundSession, side: str, emit: Callable[[str, Mapping[str, Any]], None]) -> bool:
    from arpo_engine.config import RunConfig
    from arpo_engine.models import resolve_model_path
    from arpo_engine.playground import Limits, answer_question
    from arpo_engine.tools.registry import build_tools
    from webapp.tools.selectors import tool_secrets_by_name

    run = session.run
    config = RunConfig.from_dict(run.config)
    folder = checkpoint_folder(session.checkpoint)
    if folder is None:
        raise AnswerError(f"The files of step {session.checkpoint.step} are gone (pruned to keep disk use bounded): "
                          "try a newer checkpoint.")  # fmt: skip
    if side == "trained":
        model, label = folder, f"step {session.checkpoint.step} of {run.name}"
    else:
        model, label = Path(resolve_model_path(config.model.path)), run.base_model.display_name
    emit("status", {"state": "loading", "model": label})
    torch_threads()
    started = time.perf_counter()
    sampler, loaded = sampler_cache().get(model, dtype=config.model.dtype, device=config.optim.device)
    load_s = round(time.perf_counter() - started, 2)
    emit("status", {"state": "answering", "model": label, "load_s": load_s, "cached": not loaded})
    secrets = tool_secrets_by_name(tool_ids=list(run.tools.values_list("pk", flat=True)))
    tools = build_tools(config.tools, secrets=secrets or None)
    limits = Limits(
        max_response_tokens=config.rollout.max_response_tokens,
        max_tool_calls=config.rollout.max_tool_calls,
        wall_s=settings.ARPO_PLAYGROUND_WALL_S,
    )
    spec = agent_spec(folder, config, tools, sampler.tokenizer)
    final = answer_question(session.question, sampler=sampler, spec=spec, tools=tools, limits=limits, emit=emit)
    return final is not None


def torch_threads() -> int:
    """Set this process's torch threads for an answer (ARPO_PLAYGROUND_THREADS, else half the CPUs)."""
    import torch

    threads = settings.ARPO_PLAYGROUND_THREADS or max(1, (os.cpu_count() or 1) // 2)
    torch.set_num_threads(threads)
    return threads


def agent_spec(folder: Path, config: Any, tools: Mapping[str, Any], tokenizer: Any) -> dict[str, Any]:
    """The checkpoint's agent.json (what it was trained with); the run's config rebuilds it for older folders."""
    from arpo_engine.agent_spec import AGENT_FILE, build_agent_spec, read_agent_spec
    from arpo_engine.rollout.formats import get_format

    if (folder / AGENT_FILE).is_file():
        return read_agent_spec(folder)
    return build_agent_spec(config, tools, get_format(config.rollout.call_format, tokenizer))


def _clean(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """No path of the server in what people read: tool output and messages are scrubbed."""
    out = dict(data)
    for key in ("output", "message", "error"):
        if isinstance(out.get(key), str):
            out[key] = scrub(out[key])
    return out


def explain(exc: BaseException) -> str:
    """A reason a person can act on."""
    text = scrub(" ".join(str(exc).split()))[:600]
    if isinstance(exc, AnswerError):
        return text
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "Out of memory while loading the model: the worker is busy; try again in a while."
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return "The worker stopped this answer: loading and answering took too long. Try again when it is less busy."
    if isinstance(exc, ValueError) and "max_prompt_tokens" in text:
        return "The question and the agent's instructions do not fit in the model's context window: shorten it."
    if isinstance(exc, FileNotFoundError):
        return f"A file the answer needs is gone ({text})."
    return f"The answer failed: {type(exc).__name__}: {text}"
