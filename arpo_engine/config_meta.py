"""Field metadata of the run config, read from `arpo_engine.config` itself: one source for form, API and CLI.

Every knob of `RunConfig` (walked through its nested dataclasses) becomes a `FieldMeta` with its dotted
key, type, choices, engine default, help text (the field's attribute docstring), unit and paper default
(parsed from the docstring's "(paper: …)" / "(official: …)" note). What this module adds by hand is
presentation only: which group a section belongs to, which fields are folded as advanced, and which
ones the service fills itself (paths, the model, the tools). Imports nothing heavier than the stdlib.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union

from arpo_engine import config as config_module
from arpo_engine.config import RunConfig, ToolConfig

GROUPS: tuple[tuple[str, str], ...] = (
    ("model", "Model"),
    ("data", "Data"),
    ("tools", "Tools"),
    ("rollout", "Rollout"),
    ("branching", "Branching"),
    ("algorithm", "Algorithm"),
    ("optimiser", "Optimiser"),
    ("sft", "SFT cold start"),
    ("training", "Training"),
    ("checkpoints", "Checkpoints"),
    ("scale", "Scale-out"),
)
"""Form groups in page order: (key, label)."""

_SECTION_GROUP = {
    "model": "model",
    "data": "data",
    "rollout": "rollout",
    "branching": "branching",
    "reward": "algorithm",
    "algorithm": "algorithm",
    "optim": "optimiser",
    "sft": "sft",
    "train": "training",
    "checkpoint": "checkpoints",
    "distributed": "scale",
}
_TOP_LEVEL_GROUP = {"name": "training", "seed": "training", "tools": "tools", "system_prompt": "data"}

MANAGED: dict[str, str] = {
    "name": "name",
    "model.path": "base_model",
    "data.train_path": "dataset",
    "data.eval_path": "eval_dataset",
    "sft.data_path": "sft_dataset",
    "tools": "tools",
    "checkpoint.dir": "service",
}
"""Keys the service fills from what the user chooses (a base model, datasets, tools), never typed in:
the value is what the run's choice is called (`service`: the service decides it alone)."""

ADVANCED: frozenset[str] = frozenset(
    {
        "model.dtype",
        "data.shuffle",
        "rollout.entropy_top_k",
        "rollout.tool_result_max_chars",
        "rollout.tool_concurrency",
        "rollout.memory_fraction",
        "rollout.enable_prefix_caching",
        "rollout.max_batch_size",
        "rollout.top_p",
        "branching.window_reduce",
        "branching.tau",
        "branching.entropy_window",
        "reward.python_source",
        "reward.timeout_s",
        "algorithm.dual_clip",
        "algorithm.kl_type",
        "algorithm.clip_low",
        "algorithm.clip_high",
        "optim.weight_decay",
        "optim.grad_clip",
        "optim.ppo_epochs",
        "optim.micro_batch_tokens",
        "optim.tree_attention",
        "optim.lora_alpha",
        "optim.lora_target_modules",
        "sft.max_examples",
        "sft.max_tokens",
        "checkpoint.keep_last",
        "train.eval_at_start",
        "distributed.sampler_cpus",
        "distributed.sampler_gpus",
        "distributed.learner_cpus",
        "distributed.learner_gpus",
        "distributed.max_restarts",
        "distributed.weight_sync",
    }
)
"""Rarely changed: folded in the form."""

_CHOICES_BY_HAND: dict[str, tuple[str, ...]] = {
    "optim.precision": config_module.PRECISIONS,
    "optim.tree_attention": config_module.TREE_ATTENTIONS,
}
"""String fields whose allowed values `RunConfig.validate` checks rather than the type (a Literal)."""

_UNITS: dict[str, str] = {
    "rollout.group_size": "paths",
    "rollout.initial_samples": "paths",
    "rollout.max_tool_calls": "calls",
    "rollout.tool_concurrency": "calls",
    "rollout.entropy_top_k": "log-probs",
    "rollout.memory_fraction": "fraction",
    "branching.entropy_window": "tokens",
    "branching.beam_width": "paths",
    "optim.trainable_layers": "blocks",
    "optim.train_batch_prompts": "prompts",
    "optim.mini_batch_prompts": "prompts",
    "sft.batch_size": "demonstrations",
    "sft.max_examples": "demonstrations",
    "train.eval_prompts": "prompts",
    "distributed.samplers": "actors",
    "distributed.sampler_cpus": "CPUs",
    "distributed.learner_cpus": "CPUs",
    "distributed.sampler_gpus": "GPUs",
    "distributed.learner_gpus": "GPUs",
    "distributed.max_restarts": "restarts",
}
_UNIT_SUFFIXES = (
    ("_tokens", "tokens"),
    ("_len", "tokens"),
    ("_s", "s"),
    ("_mb", "MB"),
    ("_chars", "characters"),
    ("_steps", "steps"),
    ("steps", "steps"),
    ("_every", "steps"),
    ("epochs", "epochs"),
)

_PAPER_NOTE = re.compile(r"\((?:paper|official)(?: code)?(?::\s*([^;),]*)|\s+default)")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:e-?\d+)?$")


@dataclass(frozen=True)
class FieldMeta:
    key: str
    """Dotted key, e.g. `rollout.group_size` (the form field name, the API's `overrides` key)."""
    section: str
    """The RunConfig attribute it lives under (`rollout`), or `` for top-level fields."""
    name: str
    type: str
    """`int`, `float`, `bool`, `str`, `text` (multi-line str), `choice`, `list`, `tools`."""
    default: Any
    """The engine's default (JSON-ready)."""
    help: str
    unit: str | None = None
    paper_default: Any = None
    choices: tuple[Any, ...] = ()
    group: str = ""
    advanced: bool = False
    managed_by: str | None = None
    """Set by the service from this choice (see MANAGED); None for a knob the user sets."""
    item_fields: tuple[FieldMeta, ...] = ()
    """For `tools`: the fields of one ToolConfig."""

    @property
    def editable(self) -> bool:
        return self.managed_by is None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "section": self.section,
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "unit": self.unit,
            "paper_default": self.paper_default,
            "choices": list(self.choices),
            "group": self.group,
            "advanced": self.advanced,
            "managed_by": self.managed_by,
        }
        if self.item_fields:
            out["item_fields"] = [f.as_dict() for f in self.item_fields]
        return out


@cache
def _attribute_docs() -> dict[str, dict[str, str]]:
    """{class name: {field: docstring}} from the string literal that follows each annotated attribute."""
    tree = ast.parse(Path(inspect.getfile(config_module)).read_text())
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        body = node.body
        for stmt, nxt in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                fields[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
        docs[node.name] = fields
    return docs


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return _plain(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _plain(f.default_factory())
    return None


def _type_of(hint: Any, key: str) -> tuple[str, tuple[Any, ...]]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _type_of(rest[0], key)
    if origin is Literal:
        return "choice", tuple(args)
    if key in _CHOICES_BY_HAND:
        return "choice", _CHOICES_BY_HAND[key]
    if key == "reward.scorer":
        from arpo_engine.rewards import SCORERS  # a registry of plain functions; no torch

        return "choice", tuple(SCORERS)
    if origin is tuple:
        return ("tools" if args and args[0] is ToolConfig else "list"), ()
    if origin in (Mapping, dict) or hint is dict:
        return "mapping", ()
    if hint in (bool, int, float):
        return hint.__name__, ()
    if key in ("system_prompt", "reward.python_source"):
        return "text", ()
    return "str", ()


def _unit(key: str, help_text: str) -> str | None:
    if key in _UNITS:
        return _UNITS[key]
    if "in tokens" in help_text:
        return "tokens"
    name = key.rsplit(".", 1)[-1]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return None


def _paper_default(help_text: str, kind: str, default: Any) -> Any:
    match = _PAPER_NOTE.search(help_text)
    if match is None:
        return None
    if match.group(1) is None:  # "(paper default)": the engine default is the paper's
        return default
    text = match.group(1).strip()
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if kind == "int" or (kind != "float" and number.is_integer() and "." not in text) else number
    return text if text.isidentifier() else None


def _walk(cls: type, prefix: str, section: str) -> Iterator[FieldMeta]:
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs().get(cls.__name__, {})
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            yield from _walk(hint, f"{key}.", f.name)  # type: ignore[arg-type]
            continue
        yield _meta(f, hint, key, section, docs.get(f.name, ""))


def _meta(f: dataclasses.Field[Any], hint: Any, key: str, section: str, help_text: str) -> FieldMeta:
    kind, choices = _type_of(hint, key)
    default = _default(f)
    items: tuple[FieldMeta, ...] = ()
    if kind == "tools":
        items = tuple(_walk_items(ToolConfig))
    return FieldMeta(
        key=key,
        section=section,
        name=f.name,
        type=kind,
        default=default,
        help=help_text,
        unit=_unit(key, help_text),
        paper_default=_paper_default(help_text, kind, default),
        choices=choices,
        group=_SECTION_GROUP[section] if section else _TOP_LEVEL_GROUP.get(f.name, "training"),
        advanced=key in ADVANCED,
        managed_by=MANAGED.get(key),
        item_fields=items,
    )


def _walk_items(cls: type) -> Iterator[FieldMeta]:
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs().get(cls.__name__, {})
    for f in dataclasses.fields(cls):
        kind, choices = _type_of(hints[f.name], f.name)
        help_text = docs.get(f.name, "")
        yield FieldMeta(f.name, "tools", f.name, kind, _default(f), help_text, choices=choices, group="tools")


@cache
def fields() -> tuple[FieldMeta, ...]:
    """Every leaf knob of RunConfig, in declaration order."""
    return tuple(_walk(RunConfig, "", ""))


@cache
def field_map() -> dict[str, FieldMeta]:
    return {f.key: f for f in fields()}


def editable_fields() -> tuple[FieldMeta, ...]:
    return tuple(f for f in fields() if f.editable)


def grouped(*, editable_only: bool = False) -> list[tuple[str, str, list[FieldMeta]]]:
    """[(group key, label, fields)] in page order."""
    chosen = editable_fields() if editable_only else fields()
    return [(key, label, [f for f in chosen if f.group == key]) for key, label in GROUPS]


def schema() -> dict[str, Any]:
    """The JSON the API serves at /config-schema/: groups with their fields."""
    return {
        "groups": [
            {"key": key, "label": label, "fields": [f.as_dict() for f in group]} for key, label, group in grouped()
        ]
    }


# --- nested <-> dotted ------------------------------------------------------------------------------------


def defaults() -> dict[str, Any]:
    """The engine's defaults as a nested plain mapping."""
    return RunConfig().to_dict()


def get_path(nested: Mapping[str, Any], key: str, default: Any = None) -> Any:
    node: Any = nested
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(nested: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = nested
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[parts[-1]] = value


def flatten(nested: Mapping[str, Any]) -> dict[str, Any]:
    """{dotted key: value} for the leaf knobs present in `nested`; other keys keep their dotted path."""
    out: dict[str, Any] = {}
    known = field_map()

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key not in known and isinstance(v, Mapping):
                walk(f"{key}.", v)
            else:
                out[key] = v

    walk("", nested)
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys (and nested mappings, mixed freely) to one nested mapping."""
    out: dict[str, Any] = {}
    for key, value in flatten(flat).items():
        set_path(out, key, value)
    return out
