"""A user-written reward function run in the python sandbox (ARPO_SPEC.md §3, "user-supplied Python").

The user uploads source defining `score(response: str, answers: list[str]) -> float | (float, str)`.
Each call builds one program: the response and answers as JSON (zlib + base64, so no quoting can
break out of the string literal and long responses stay under the sandbox's argv cap), the user
source as a string literal, and a small runner that execs the source with stdout captured, calls
`score`, and prints one marker-prefixed JSON line. Anything that goes wrong — syntax, an exception,
a timeout, a missing or malformed result — becomes `on_error` with a reason, never an exception.
"""

from __future__ import annotations

import ast
import base64
import json
import math
import secrets
import zlib
from collections.abc import Collection, Sequence
from typing import Any

from arpo_engine.rewards.base import RewardResult, as_answer_list
from arpo_engine.tools.base import Tool

# Inside the sandbox; `_PAYLOAD`, `_SOURCE` and `_MARKER` are prepended as literals. Prints from the
# user code are captured so they cannot push the result line past the sandbox's output cap.
_RUNNER = r'''
import base64 as _b64, contextlib as _cl, io as _io, json as _json, sys as _sys, traceback as _tb, zlib as _zl


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)  # numpy scalars, fractions
    except Exception:
        return repr(value)[:200]


def _main():
    out = _sys.stdout
    captured = _io.StringIO()
    try:
        payload = _json.loads(_zl.decompress(_b64.b64decode(_PAYLOAD)).decode("utf-8"))
        namespace = {"__name__": "user_scorer"}
        with _cl.redirect_stdout(captured):
            exec(compile(_SOURCE, "scorer.py", "exec"), namespace)
            fn = namespace.get("score")
            if not callable(fn):
                raise NameError("the scorer defines no score(response, answers) function")
            value = fn(payload["response"], payload["answers"])
        result = {"ok": True, "value": _plain(value)}
    except BaseException as exc:
        frames = _tb.format_exception(type(exc), exc, exc.__traceback__)
        error = f"{type(exc).__name__}: {exc}"[:300]
        result = {"ok": False, "error": error, "traceback": "".join(frames)[-1500:]}
    result["stdout"] = captured.getvalue()[-500:]
    out.write(_MARKER + _json.dumps(result) + "\n")
    out.flush()


_main()
'''


def _binds_score(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == "score":
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (alias.asname or alias.name) == "score" for alias in node.names
        ):
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "score" for t in targets):
                return True
    return False


def check_scorer_source(source: str) -> None:
    """Raise ValueError unless `source` parses and defines `score` at top level (run-config check)."""
    try:
        tree = ast.parse(source, "scorer.py")
    except SyntaxError as exc:
        raise ValueError(f"python scorer: syntax error on line {exc.lineno}: {exc.msg}") from None
    if not _binds_score(tree):
        raise ValueError("python scorer: the source must define score(response, answers)")


class PythonScorer:
    """Runs user source in the sandboxed python tool; see the module docstring."""

    def __init__(
        self,
        source: str,
        *,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
        on_error: float = 0.0,
        tool: Tool | None = None,
    ) -> None:
        """`timeout_s`/`memory_mb`: sandbox limits per call; `on_error`: the score when the scorer
        fails; `tool`: a ready python tool to run in (built from the limits when None)."""
        check_scorer_source(source)
        self.source = source
        self.on_error = on_error
        if tool is None:
            from arpo_engine.tools.python_sandbox import PythonTool, SandboxLimits

            tool = PythonTool("reward_scorer", limits=SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb))
        self.tool = tool

    def program(self, response_text: str, answers: Sequence[str], marker: str) -> str:
        """The complete program sent to the sandbox."""
        payload = json.dumps({"response": response_text, "answers": as_answer_list(answers)})
        packed = base64.b64encode(zlib.compress(payload.encode("utf-8"))).decode("ascii")
        return f"_PAYLOAD = {packed!r}\n_SOURCE = {self.source!r}\n_MARKER = {marker!r}\n{_RUNNER}"

    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        # A fresh marker per call: nothing the user code prints by accident can pass for the result.
        marker = f"@@reward-{secrets.token_hex(8)}@@"
        try:
            result = self.tool.run({"code": self.program(response_text, answers, marker)})
        except Exception as exc:  # tools must not raise, but a reward must never take a run down
            return self._failed(f"sandbox raised {type(exc).__name__}: {exc}")
        lines = [line for line in result.output.splitlines() if line.startswith(marker)]
        if not lines:
            if result.error == "timeout":
                return self._failed("scorer timed out", output=result.output)
            why = f"sandbox error {result.error}" if result.error else "no result line"
            return self._failed(f"scorer printed no result ({why})", output=result.output)
        try:
            reply = json.loads(lines[-1][len(marker) :])
        except json.JSONDecodeError:
            return self._failed("scorer result is not JSON", output=result.output)
        if not isinstance(reply, dict):
            return self._failed("scorer result is not a JSON object", output=result.output)
        if not reply.get("ok"):
            return self._failed(f"scorer raised {reply.get('error')}", traceback=reply.get("traceback"))
        return self._accept(reply.get("value"), stdout=str(reply.get("stdout", "")))

    def _accept(self, value: Any, *, stdout: str) -> RewardResult:
        reason = "python scorer"
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
            value, reason = value[0], value[1][:300]
        # bool is accepted on purpose: `return response == answers[0]` is a natural scorer.
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return self._failed(
                f"score() returned {value!r:.60}; expected a finite number or (number, reason)"
            )
        score = float(value)
        return RewardResult(score, reason, {"correct": score >= 1.0, "prediction": None, "stdout": stdout})

    def _failed(self, why: str, **facts: Any) -> RewardResult:
        details: dict[str, Any] = {"correct": False, "prediction": None, "error": why}
        details.update({k: (v[-1500:] if isinstance(v, str) else v) for k, v in facts.items()})
        return RewardResult(self.on_error, f"{why} -> {self.on_error:g}", details)
