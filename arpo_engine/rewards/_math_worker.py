"""Child process behind `MathScorer`: one JSON request per stdin line, one JSON reply per stdout line.

It runs in its own main thread, so math-verify's signal-based timeouts work here whatever thread the
caller scores from, and a C-level hang that no signal can interrupt is ended by the parent's kill.
Request: {"prediction": str, "answers": [str], "op_timeout_s": int}.
Reply: {"match": int | None, "parsed": str | None, "error": str | None}.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def _parse(text: str, op_timeout_s: int) -> list[Any]:
    from math_verify import parse

    parsed: list[Any] = parse(text, parsing_timeout=op_timeout_s)
    if not parsed and "$" not in text:
        # Bare LaTeX gold answers ("x^2 + 1") are sometimes only found inside math delimiters.
        parsed = parse(f"${text}$", parsing_timeout=op_timeout_s)
    return parsed


def answer(request: dict[str, Any]) -> dict[str, Any]:
    from math_verify import verify

    op_timeout_s = int(request["op_timeout_s"])
    prediction = _parse(request["prediction"], op_timeout_s)
    # parse() returns [sympy object, matched string]; show the string: str() of a huge sympy
    # expression can itself take forever.
    shown = next((p for p in prediction if isinstance(p, str)), None)
    if not prediction:
        return {"match": None, "parsed": None, "error": "could not parse the prediction"}
    for index, gold_text in enumerate(request["answers"]):
        gold = _parse(gold_text, op_timeout_s)
        if gold and verify(gold, prediction, timeout_seconds=op_timeout_s):
            return {"match": index, "parsed": shown, "error": None}
    return {"match": None, "parsed": shown, "error": None}


def main() -> None:
    # math-verify logs every timeout with the full input at WARNING; the parent reports timeouts.
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401  (import before "ready" so start-up is not billed to a request)

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except Exception as exc:  # one bad request must not kill the worker
            reply = {"match": None, "parsed": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
