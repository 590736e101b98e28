"""Building a run's config from its parts: engine defaults, a preset, the user's overrides, the service's paths.

Overrides come dotted (`rollout.group_size`) or nested, from the form, the API or an imported YAML; they
are checked key by key with the engine's own parser (`RunConfig.from_dict`), so an unknown key or a
wrong type is named by its dotted key. Keys the service fills itself (MANAGED) are refused here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arpo_engine import config_meta
from arpo_engine.config import ConfigError, RunConfig, load_preset, merge, preset_names
from webapp.core.errors import DomainError

PRESET_LABELS = {"arpo_paper": "ARPO (paper)", "grpo_baseline": "GRPO baseline", "aepo": "AEPO"}
DEFAULT_PRESET = "arpo_paper"


def preset_label(name: str) -> str:
    return PRESET_LABELS.get(name, name.replace("_", " ").capitalize())


def preset_choices() -> list[tuple[str, str]]:
    """(name, label), the paper's ARPO first."""
    order = list(PRESET_LABELS)
    names = sorted(preset_names(), key=lambda n: (order.index(n) if n in order else len(order), n))
    return [(n, preset_label(n)) for n in names]


def preset_values(name: str) -> dict[str, Any]:
    """The keys the preset file sets (nested)."""
    if name not in preset_names():
        raise DomainError(
            f"Unknown preset {name!r}.", fields={"preset": [f"Choose one of {', '.join(preset_names())}."]}
        )
    return load_preset(name)


def preset_base(name: str) -> dict[str, Any]:
    """Engine defaults with the preset applied: what a run of this preset starts from."""
    return merge(config_meta.defaults(), preset_values(name))


def _value_error(key: str, value: Any) -> str | None:
    """The engine parser's complaint about one value, or None."""
    try:
        RunConfig.from_dict(config_meta.unflatten({key: value}))
    except ConfigError as exc:
        return str(exc).removeprefix(f"{key}: ")
    return None


def normalize_overrides(overrides: Mapping[str, Any] | None, *, allow_managed: bool = False) -> dict[str, Any]:
    """Dotted or nested overrides -> nested; DomainError naming every bad key (unknown, managed, wrong type)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise DomainError("overrides must be an object of config keys.", fields={"overrides": ["Expected an object."]})
    flat = config_meta.flatten(overrides)
    known = config_meta.field_map()
    errors: dict[str, list[str]] = {}
    for key, value in flat.items():
        meta = known.get(key)
        if meta is None:
            errors[key] = [f"Unknown config key {key!r}."]
        elif meta.managed_by and not allow_managed:
            errors[key] = [_managed_message(key)]
        elif (problem := _value_error(key, value)) is not None:
            errors[key] = [problem]
    if errors:
        first = next(iter(errors))
        raise DomainError(f"{first}: {errors[first][0]}", code="invalid_config", fields=errors)
    return config_meta.unflatten(flat)


def _managed_message(key: str) -> str:
    choice = config_meta.MANAGED[key]
    if choice == "service":
        return f"{key} is set by the service."
    return f"{key} is set by choosing the run's {choice.replace('_', ' ')}, not typed in."


def merge_overrides(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH semantics: `changes` wins; a key set to null drops that override (back to the preset)."""
    flat = config_meta.flatten(current)
    for key, value in config_meta.flatten(changes).items():
        if value is None:
            flat.pop(key, None)
        else:
            flat[key] = value
    return config_meta.unflatten(flat)


def drop_nulls(changes: Mapping[str, Any]) -> dict[str, Any]:
    return config_meta.unflatten({k: v for k, v in config_meta.flatten(changes).items() if v is not None})


def diff_from(values: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The editable keys of `values` that differ from `base` (nested): what a form submission overrides."""
    flat_values = config_meta.flatten(values)
    out: dict[str, Any] = {}
    for meta in config_meta.editable_fields():
        if meta.key in flat_values and flat_values[meta.key] != config_meta.get_path(base, meta.key):
            out[meta.key] = flat_values[meta.key]
    return config_meta.unflatten(out)


def closest_preset(values: Mapping[str, Any]) -> str:
    """The preset an imported config differs from least."""

    def distance(name: str) -> int:
        return len(config_meta.flatten(diff_from(values, preset_base(name))))

    return min(preset_names(), key=lambda n: (distance(n), n != DEFAULT_PRESET))
