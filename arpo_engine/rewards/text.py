"""Answer extraction and SQuAD-style answer comparison (ARPO_SPEC.md §3).

`normalize_answer` and `token_f1` follow the SQuAD evaluation script that the official ARPO scorer
uses: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace; yes/no/noanswer
only ever match themselves. `extract_boxed` finds the last `\\boxed{…}` with balanced braces, so
`\\boxed{\\frac{1}{2}}` yields `\\frac{1}{2}`, not `\\frac{1`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_BOXED = re.compile(r"\\boxed\s*\{")
# Text-mode wrappers carry no meaning for the answer; without unwrapping, `\text{Paris}` normalises
# to "textparis" and scores 0 against "Paris".
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_CLOSED_CLASS = ("yes", "no", "noanswer")


def _balanced_end(text: str, open_at: int) -> int | None:
    """Index just past the brace that closes the `{` at `open_at`; None if it never closes.

    `\\{` and `\\}` are literal braces in LaTeX and do not change the depth.
    """
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last well-formed `\\boxed{…}` in `text` (nested braces kept), or None.

    Scans left to right and skips over each matched box, so a box inside a box is not counted as a
    later one; an unclosed `\\boxed{` is ignored rather than swallowing the rest of the text.
    """
    found: str | None = None
    pos = 0
    while (match := _BOXED.search(text, pos)) is not None:
        brace = match.end() - 1
        end = _balanced_end(text, brace)
        if end is None:
            pos = match.end()
            continue
        found = text[brace + 1 : end - 1]
        pos = end
    return found


def extract_answer_block(text: str) -> str | None:
    """Text inside the last `<answer>…</answer>` block, or None."""
    # rfind, not a lazy regex: linear even on a response full of unclosed <answer> tags.
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end != -1 else -1
    return text[start + len("<answer>") : end] if start != -1 else None


def extract_prediction(text: str) -> str | None:
    """The model's final answer: the last box in the last answer block, else that block's text;
    without an answer block, the last box anywhere."""
    block = extract_answer_block(text)
    if block is not None:
        boxed = extract_boxed(block)
        return boxed if boxed is not None else block.strip()
    return extract_boxed(text)


def strip_latex_text(text: str) -> str:
    """Unwrap `\\text{…}`-style wrappers (repeatedly, for nested ones)."""
    while True:
        unwrapped = _TEXT_WRAPPER.sub(r"\1", text)
        if unwrapped == text:
            return text
        text = unwrapped


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, ground_truth: str) -> float:
    """SQuAD token F1 between two answers (normalised here)."""
    pred = normalize_answer(strip_latex_text(prediction))
    gold = normalize_answer(strip_latex_text(ground_truth))
    # A yes/no question answered with the other word (or with more words) is simply wrong: partial
    # token overlap would otherwise reward "yes it is not" against "no".
    if (pred in _CLOSED_CLASS or gold in _CLOSED_CLASS) and pred != gold:
        return 0.0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, answers: Sequence[str]) -> tuple[float, int | None]:
    """Max token F1 over the ground truths and the index of the best one (None when no answers)."""
    best, best_index = 0.0, None
    for index, answer in enumerate(answers):
        f1 = token_f1(prediction, answer)
        if best_index is None or f1 > best:
            best, best_index = f1, index
    return best, best_index


def exact_match(prediction: str, ground_truth: str) -> bool:
    """Equal after SQuAD normalisation."""
    return normalize_answer(strip_latex_text(prediction)) == normalize_answer(strip_latex_text(ground_truth))
