"""A tokenizer for counting prompt tokens in the web process without torch or transformers.

Importing transformers pulls in torch (seconds, hundreds of MB), so the web app reads the model
folder's `tokenizer.json` with the `tokenizers` library and renders its chat template with jinja2 the
way `transformers.apply_chat_template` does (sandboxed, trim_blocks/lstrip_blocks, the special tokens
in scope). It offers the two calls `arpo_engine.rollout.agent.build_prompt_ids` makes, so the engine's
own `check_data` runs on it unchanged. A test checks the token counts against transformers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

_SPECIAL_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


class LightTokenizer:
    def __init__(self, folder: Path) -> None:
        from jinja2.exceptions import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        template_file = folder / "chat_template.jinja"
        template = template_file.read_text() if template_file.is_file() else config.get("chat_template")
        if not isinstance(template, str):
            raise ValueError(f"{folder.name}: the tokenizer has no chat template")
        self.special_tokens = {key: _token_text(config.get(key)) for key in _SPECIAL_KEYS if config.get(key)}

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(
            x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
        ) -> str:
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(template)

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], *, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        if tokenize:
            raise ValueError("LightTokenizer renders text only (tokenize=False)")
        return self._template.render(
            messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **self.special_tokens
        )

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _token_text(value: Any) -> str:
    return str(value.get("content", "")) if isinstance(value, dict) else str(value)


@lru_cache(maxsize=8)
def _cached(folder: str, stamp: float) -> LightTokenizer:
    return LightTokenizer(Path(folder))


def tokenizer_for(folder: Path) -> LightTokenizer:
    """The folder's tokenizer, cached while its tokenizer.json is unchanged."""
    return _cached(str(folder), (folder / "tokenizer.json").stat().st_mtime)
