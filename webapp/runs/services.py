"""Writes of runs: create, update, clone, import and delete drafts; each resolves and validates the config.

A run's config is resolved as: engine defaults <- preset <- the user's overrides <- what the service
fills in from the run's choices (base model, datasets, tools, checkpoint folder). It is then checked
(`validation`); a run with problems is still saved, as a draft that is not launchable, with its
problems by key. Inputs that cannot form a config at all (an unknown key, a wrong type, a dataset the
user may not see) raise DomainError with `fields` and nothing is saved.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from django.db import transaction
from django.utils import timezone

from arpo_engine import config_meta
from arpo_engine.config import merge
from webapp.core.errors import DomainError, NotFound
from webapp.core.ownership import Owner, get_visible, owner_for
from webapp.datasets.models import Dataset
from webapp.tools.models import Tool
from webapp.tools.selectors import tool_configs_for

from . import configs, validation
from .models import BaseModel, Run

UNSET: Any = object()
"""Default of run_update's arguments: leave this part as it is."""

IMPORT_MAX_BYTES = 256 * 1024


# --- resolving what the caller named ---------------------------------------------------------------------


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(message, fields={field: [message]})


def _base_model(value: Any) -> BaseModel:
    if isinstance(value, BaseModel):
        return value
    qs = BaseModel.objects.filter(is_active=True)
    found = None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = qs.filter(pk=int(value)).first()
    elif isinstance(value, str):
        found = qs.filter(slug=value).first()
    if found is None:
        raise _invalid("base_model", f"No base model {value!r} in the catalogue.")
    return found


def _same_owner(obj: Any, owner: Owner, field: str, what: str) -> None:
    if owner.team is not None and obj.owner_team_id != owner.team.pk:
        raise _invalid(field, f"A team's run can use only the team's {what}; {obj} belongs elsewhere.")


def _dataset(user: Any, owner: Owner, value: Any, field: str, kind: str) -> Dataset | None:
    if value in (None, ""):
        return None
    try:
        dataset: Dataset = get_visible(Dataset, user, pk=value.pk if isinstance(value, Dataset) else value)
    except NotFound:
        raise _invalid(field, "No such dataset.") from None
    if dataset.kind != kind:
        label = Dataset.Kind(kind).label
        raise _invalid(field, f"{dataset.name} is a {dataset.get_kind_display()} dataset; choose one of {label}.")
    _same_owner(dataset, owner, field, "datasets")
    return dataset


def _tools(user: Any, owner: Owner, values: Sequence[Any]) -> list[Tool]:
    tools = []
    for value in values:
        try:
            tool: Tool = get_visible(Tool, user, pk=value.pk if isinstance(value, Tool) else value)
        except NotFound:
            raise _invalid("tools", f"No such tool: {value}.") from None
        _same_owner(tool, owner, "tools", "tools")
        if tool not in tools:
            tools.append(tool)
    return tools


# --- config ----------------------------------------------------------------------------------------------


def _ordered_tool_ids(run: Run) -> list[int]:
    ids = set(run.tools.values_list("pk", flat=True))
    ordered = [i for i in run.tool_order if i in ids]
    return ordered + sorted(ids - set(ordered))


def resolve_config(run: Run, *, user: Any) -> tuple[dict[str, Any], validation.CheckResult]:
    """The config the engine would get, and its problems."""
    result = validation.CheckResult()
    config = merge(configs.preset_base(run.preset), run.overrides)
    config["name"] = run.name
    config["model"]["path"] = run.base_model.engine_path()
    config["checkpoint"]["dir"] = str(run.checkpoint_dir())
    config["data"]["train_path"] = _path_of(run.dataset, "train_path", "dataset", result)
    if run.eval_dataset is not None:
        eval_path = run.eval_dataset.eval_path() or run.eval_dataset.train_path()
        config["data"]["eval_path"] = str(eval_path) if eval_path else ""
        if not eval_path:
            result.add("eval_dataset", "The eval dataset's file is gone; upload it again.")
    else:
        carved = run.dataset.eval_path() if run.dataset is not None else None
        config["data"]["eval_path"] = str(carved) if carved else ""
    config["sft"]["data_path"] = _path_of(run.sft_dataset, "sft_path", None, result)
    try:
        tool_configs = tool_configs_for(user=user, tool_ids=_ordered_tool_ids(run))
        config["tools"] = [_plain_tool(t) for t in tool_configs]
    except DomainError as exc:
        config["tools"] = []
        result.add("tools", exc.message)
    _check(run, config, result)
    return config, result


def _path_of(dataset: Dataset | None, method: str, required_field: str | None, result: validation.CheckResult) -> str:
    if dataset is None:
        if required_field:
            result.add(required_field, "Choose a prompts dataset.")
        return ""
    path = getattr(dataset, method)()
    if path is None:
        result.add(required_field or "sft_dataset", f"The file of {dataset.name} is gone; upload it again.")
        return ""
    return str(path)


def _plain_tool(tool: Any) -> dict[str, Any]:
    return {"name": tool.name, "kind": tool.kind, "description": tool.description,
            "schema": tool.schema, "options": dict(tool.options)}  # fmt: skip


def _check(run: Run, config: dict[str, Any], result: validation.CheckResult) -> None:
    parsed = validation.check_engine(config, result)
    if parsed is None:
        return
    validation.check_base_model(
        parsed, model_limit=run.base_model.max_model_len, model_name=run.base_model.display_name, result=result
    )
    if "dataset" in result.errors or "tools" in result.errors:
        return
    validation.check_data(parsed, tokenizer_folder=run.base_model.local_folder(), result=result)


def _revalidate(run: Run, *, user: Any) -> None:
    config, result = resolve_config(run, user=user)
    run.config = config
    run.errors = result.errors
    run.warnings = result.warnings
    run.launchable = result.ok
    run.validated_at = timezone.now()
    run.save(update_fields=["config", "errors", "warnings", "launchable", "validated_at", "updated_at"])


def _require_draft(run: Run) -> None:
    if not run.is_draft:
        raise DomainError(f"Run {run.name} is {run.get_status_display().lower()}; only drafts change.",
                          code="not_draft", status=409)  # fmt: skip


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise _invalid("name", "Give the run a name.")
    if len(name) > 200:
        raise _invalid("name", "At most 200 characters.")
    return name


# --- services --------------------------------------------------------------------------------------------


@transaction.atomic
def run_create(
    *,
    user: Any,
    name: str,
    preset: str,
    base_model: Any,
    dataset: Any,
    eval_dataset: Any = None,
    sft_dataset: Any = None,
    tools: Sequence[Any] = (),
    overrides: Mapping[str, Any] | None = None,
    team: Any = None,
    cloned_from: Run | None = None,
) -> Run:
    """A new draft; `launchable` when its resolved config passed every check."""
    owner = owner_for(user, team)
    configs.preset_values(preset)
    run = Run(
        **owner.fields(),
        created_by=user,
        name=_check_name(name),
        preset=preset,
        base_model=_base_model(base_model),
        dataset=_dataset(user, owner, dataset, "dataset", "prompts"),
        eval_dataset=_dataset(user, owner, eval_dataset, "eval_dataset", "prompts"),
        sft_dataset=_dataset(user, owner, sft_dataset, "sft_dataset", "sft"),
        overrides=configs.normalize_overrides(overrides),
        cloned_from=cloned_from,
    )
    chosen_tools = _tools(user, owner, tools)
    run.tool_order = [t.pk for t in chosen_tools]
    run.save()
    run.tools.set(chosen_tools)
    _revalidate(run, user=user)
    return run


@transaction.atomic
def run_update(
    *,
    user: Any,
    run: Run,
    name: Any = UNSET,
    preset: Any = UNSET,
    base_model: Any = UNSET,
    dataset: Any = UNSET,
    eval_dataset: Any = UNSET,
    sft_dataset: Any = UNSET,
    tools: Any = UNSET,
    overrides: Any = UNSET,
    replace_overrides: bool = False,
) -> Run:
    """Change a draft and validate it again. `overrides` merge into the current ones (a null value drops
    one) unless `replace_overrides`, when they replace them (the form sends every knob)."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    _require_draft(run)
    owner = run.owner
    if name is not UNSET:
        run.name = _check_name(name)
    if preset is not UNSET:
        configs.preset_values(preset)
        run.preset = preset
    if base_model is not UNSET:
        run.base_model = _base_model(base_model)
    if dataset is not UNSET:
        run.dataset = _dataset(user, owner, dataset, "dataset", "prompts")
    if eval_dataset is not UNSET:
        run.eval_dataset = _dataset(user, owner, eval_dataset, "eval_dataset", "prompts")
    if sft_dataset is not UNSET:
        run.sft_dataset = _dataset(user, owner, sft_dataset, "sft_dataset", "sft")
    if overrides is not UNSET:
        if replace_overrides:
            run.overrides = configs.normalize_overrides(configs.drop_nulls(overrides or {}))
        else:
            configs.normalize_overrides(configs.drop_nulls(overrides or {}))
            run.overrides = configs.merge_overrides(run.overrides, overrides or {})
    run.save()
    if tools is not UNSET:
        chosen = _tools(user, owner, tools or [])
        run.tool_order = [t.pk for t in chosen]
        run.save(update_fields=["tool_order"])
        run.tools.set(chosen)
    _revalidate(run, user=user)
    return run


def run_clone(*, user: Any, run: Run, name: str | None = None, team: Any = UNSET, **changes: Any) -> Run:
    """A new draft with the run's settings, then `changes` (run_update's arguments) applied to it."""
    with transaction.atomic():
        owner_team = run.owner_team if team is UNSET else team
        clone = run_create(
            user=user,
            name=name or f"{run.name} (copy)",
            preset=run.preset,
            base_model=run.base_model,
            dataset=run.dataset,
            eval_dataset=run.eval_dataset,
            sft_dataset=run.sft_dataset,
            tools=_ordered_tool_ids(run),
            overrides=run.overrides,
            team=owner_team,
            cloned_from=run,
        )
        if changes:
            clone = run_update(user=user, run=clone, **changes)
        return clone


@transaction.atomic
def run_revalidate(*, user: Any, run: Run) -> Run:
    """Check a draft again (after its dataset, tools or the catalogue changed)."""
    _require_draft(run)
    _revalidate(run, user=user)
    return run


@transaction.atomic
def run_delete(*, user: Any, run: Run) -> None:
    _require_draft(run)
    run.delete()


# --- YAML import -----------------------------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_yaml(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        if len(text) > IMPORT_MAX_BYTES:
            raise _invalid("file", f"A run YAML is at most {IMPORT_MAX_BYTES // 1024} KiB.")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("file", "The file is not UTF-8 text.") from None
    if len(text) > IMPORT_MAX_BYTES:
        raise _invalid("file", f"A run YAML is at most {IMPORT_MAX_BYTES // 1024} KiB.")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _invalid("file", f"Not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise _invalid("file", "A run YAML's top level must be a mapping of config keys.")
    return raw


def _dataset_by_path(user: Any, path: Any) -> Dataset | None:
    match = _UUID.search(str(path or ""))
    if match is None:
        return None
    return visible_datasets(user).filter(uid=match.group(0)).first()


def visible_datasets(user: Any) -> Any:
    from webapp.core.ownership import visible_to

    return visible_to(Dataset, user)


def _model_by_path(path: str) -> BaseModel | None:
    for model in BaseModel.objects.filter(is_active=True):
        if path in (model.slug, model.path, model.engine_path()):
            return model
    return None


def import_choices(*, user: Any, raw: Mapping[str, Any], given: Sequence[str] = ()) -> dict[str, Any]:
    """run_create's arguments recovered from a run YAML's paths and tool names; DomainError naming each
    key that maps to nothing the user has."""
    normalized = configs.normalize_overrides(raw, allow_managed=True)
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    model_path = config_meta.get_path(normalized, "model.path", config_meta.field_map()["model.path"].default)
    if model_path and "base_model" not in given:
        out["base_model"] = _model_by_path(str(model_path))
        if out["base_model"] is None:
            errors["model.path"] = [f"No base model in the catalogue is {model_path}; choose a base model."]
    for key, field in (
        ("data.train_path", "dataset"),
        ("data.eval_path", "eval_dataset"),
        ("sft.data_path", "sft_dataset"),
    ):
        path = config_meta.get_path(normalized, key)
        if not path:
            continue
        found = _dataset_by_path(user, path)
        if found is None:
            errors[key] = [
                f"{path} is not a dataset of yours; upload it, then choose it as the {field.replace('_', ' ')}."
            ]
        else:
            out[field] = found
    if out.get("eval_dataset") is not None and out["eval_dataset"] == out.get("dataset"):
        out["eval_dataset"] = None  # the carved-off split of the training dataset
    tool_ids = []
    for index, tool in enumerate(config_meta.get_path(normalized, "tools") or []):
        name = tool.get("name") if isinstance(tool, Mapping) else None
        found_tool = get_visible_tool_by_name(user, name)
        if found_tool is None:
            errors[f"tools[{index}]"] = [f"No tool named {name!r} is yours; define it, then choose it."]
        else:
            tool_ids.append(found_tool.pk)
    out["tools"] = tool_ids
    if errors:
        first = next(iter(errors))
        raise DomainError(f"{first}: {errors[first][0]}", code="import_unmapped", fields=errors)
    return out


def get_visible_tool_by_name(user: Any, name: Any) -> Tool | None:
    from webapp.core.ownership import visible_to

    if not isinstance(name, str):
        return None
    return visible_to(Tool, user).filter(name=name).order_by("-owner_user_id", "id").first()


def run_import(
    *,
    user: Any,
    text: str | bytes,
    name: str | None = None,
    preset: str | None = None,
    team: Any = None,
    choices: Mapping[str, Any] | None = None,
) -> Run:
    """A draft from a run YAML (as `config.yaml` exports, or any file the engine CLI reads). Unknown keys
    are refused by dotted key; paths and tools map back to the user's datasets, base models and tools,
    unless `choices` (run_create's base_model/dataset/... arguments) name them explicitly."""
    raw = parse_yaml(text)
    explicit = {k: v for k, v in (choices or {}).items() if v not in (None, "", [])}
    stripped = copy.deepcopy(raw)
    for key in config_meta.MANAGED:  # explicit choices replace what the file says about them
        field = config_meta.MANAGED[key]
        if field in explicit:
            _drop(stripped, key)
    mapped = import_choices(user=user, raw=stripped, given=list(explicit))
    mapped.update(explicit)
    editable = {k: v for k, v in config_meta.flatten(raw).items() if k not in config_meta.MANAGED}
    values = merge(config_meta.defaults(), config_meta.unflatten(editable))
    chosen_preset = preset or configs.closest_preset(values)
    overrides = configs.diff_from(values, configs.preset_base(chosen_preset))
    if "dataset" not in mapped:
        raise _invalid("data.train_path", "The file names no training data; choose a prompts dataset.")
    return run_create(
        user=user,
        name=name or str(raw.get("name") or "imported run"),
        preset=chosen_preset,
        base_model=mapped["base_model"],
        dataset=mapped["dataset"],
        eval_dataset=mapped.get("eval_dataset"),
        sft_dataset=mapped.get("sft_dataset"),
        tools=mapped.get("tools", []),
        overrides=overrides,
        team=team,
    )


def _drop(nested: dict[str, Any], key: str) -> None:
    parts = key.split(".")
    node: Any = nested
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def export_yaml(run: Run) -> str:
    """The resolved config as YAML that `python -m arpo_engine train` reads as is."""
    header = (
        f"# ARPO Studio run {run.pk}: {run.name} (preset {run.preset})\n"
        "# Resolved config. The server's folders appear by their role (media/..., var/...): importing this file\n"
        "# maps its datasets back by id; to train elsewhere with `python -m arpo_engine train`, point the paths\n"
        "# at your copies of the data.\n"
    )
    return header + yaml.safe_dump(run.public_config, sort_keys=False, allow_unicode=True, width=100)
