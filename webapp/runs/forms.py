"""The run form, generated from `arpo_engine.config_meta`: one form field per editable knob, named by its
dotted key, with the engine docstring as help. Nothing here lists a knob by hand, so a field added to
the engine's dataclasses appears in the form (a test walks them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from arpo_engine import config_meta
from arpo_engine.config import merge
from arpo_engine.config_meta import FieldMeta
from webapp.accounts.selectors import teams_for
from webapp.core.ownership import visible_to
from webapp.datasets.models import Dataset
from webapp.tools.models import Tool

from . import configs
from .models import BaseModel


class ListField(forms.CharField):
    """A list of names typed comma-separated."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()]


def knob_field(meta: FieldMeta) -> forms.Field:
    """The form field for one config knob."""
    common: dict[str, Any] = {"label": meta.name.replace("_", " "), "help_text": meta.help}
    if meta.type == "bool":
        return forms.BooleanField(required=False, **common)
    if meta.type == "int":
        return forms.IntegerField(**common)
    if meta.type == "float":
        return forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}), **common)
    if meta.type == "choice":
        return forms.ChoiceField(choices=[(c, c) for c in meta.choices], **common)
    if meta.type == "list":
        return ListField(required=False, **common)
    if meta.type == "text":
        return forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}), **common)
    return forms.CharField(required=False, **common)


@dataclass
class KnobRow:
    meta: FieldMeta
    field: forms.BoundField
    errors: list[str]


@dataclass
class KnobGroup:
    key: str
    label: str
    rows: list[KnobRow]
    folded: list[KnobRow]

    @property
    def has_errors(self) -> bool:
        return any(r.errors for r in self.rows + self.folded)


CHOICE_FIELDS = ("name", "team", "preset", "base_model", "dataset", "eval_dataset", "sft_dataset", "tools")


class RunForm(forms.Form):
    name = forms.CharField(max_length=200)
    team = forms.ChoiceField(required=False, help_text="Who owns the run: you, or one of your teams.")
    preset = forms.ChoiceField(help_text="The algorithm the knobs start from; your changes are kept over it.")
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.none(), empty_label=None)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), help_text="RL prompts (kind: prompts).")
    eval_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        required=False,
        empty_label="The dataset's own eval split",
        help_text="Held-out prompts; by default the eval file or share of the training dataset.",
    )
    sft_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        required=False,
        empty_label="None: no SFT cold start",
        help_text="Demonstrations for the SFT cold start, run before RL.",
    )
    tools = forms.ModelMultipleChoiceField(
        queryset=Tool.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, user: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        datasets = visible_to(Dataset, user)
        self.fields["team"].choices = [("", "Personal")] + [(t.slug, t.name) for t in teams_for(user=user)]
        if editing:
            del self.fields["team"]  # the owner is fixed; clone the run to move it
        self.fields["preset"].choices = configs.preset_choices()
        self.fields["base_model"].queryset = BaseModel.objects.filter(is_active=True)  # type: ignore[attr-defined]
        self.fields["dataset"].queryset = datasets.filter(kind=Dataset.Kind.PROMPTS)  # type: ignore[attr-defined]
        self.fields["eval_dataset"].queryset = datasets.filter(kind=Dataset.Kind.PROMPTS)  # type: ignore[attr-defined]
        self.fields["sft_dataset"].queryset = datasets.filter(kind=Dataset.Kind.SFT)  # type: ignore[attr-defined]
        self.fields["tools"].queryset = visible_to(Tool, user)  # type: ignore[attr-defined]
        for meta in config_meta.editable_fields():
            self.fields[meta.key] = knob_field(meta)

    @staticmethod
    def initial_for(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Initial knob values: the preset's config with the overrides over it."""
        values = merge(configs.preset_base(preset), overrides or {})
        return {meta.key: config_meta.get_path(values, meta.key) for meta in config_meta.editable_fields()}

    def knob_values(self) -> dict[str, Any]:
        """The submitted knobs as a nested config mapping."""
        return config_meta.unflatten({m.key: self.cleaned_data[m.key] for m in config_meta.editable_fields()})

    def overrides(self) -> dict[str, Any]:
        """What differs from the chosen preset: the run's overrides."""
        return configs.diff_from(self.knob_values(), configs.preset_base(self.cleaned_data["preset"]))

    def choices(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "preset": data["preset"],
            "base_model": data["base_model"],
            "dataset": data["dataset"],
            "eval_dataset": data.get("eval_dataset"),
            "sft_dataset": data.get("sft_dataset"),
            "tools": list(data.get("tools") or []),
        }

    def add_domain_errors(self, fields: dict[str, list[str]]) -> None:
        for key, messages in fields.items():
            target = key if key in self.fields else None
            for message in messages:
                self.add_error(target, message if target else f"{key}: {message}")

    def knob_groups(self, stored_errors: dict[str, list[str]] | None = None) -> list[KnobGroup]:
        """The knobs by group, each with its errors (this submission's and the run's stored ones)."""
        stored = stored_errors or {}
        groups = []
        for key, label, metas in config_meta.grouped(editable_only=True):
            rows = []
            for meta in metas:
                bound = self[meta.key]
                errors = list(bound.errors) + [e for e in stored.get(meta.key, []) if e not in bound.errors]
                rows.append(KnobRow(meta, bound, errors))
            groups.append(
                KnobGroup(
                    key,
                    label,
                    [r for r in rows if not r.meta.advanced or r.errors],
                    [r for r in rows if r.meta.advanced and not r.errors],
                )
            )
        return groups


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A run YAML: as a run's export writes it, or any file the engine CLI reads.")
    name = forms.CharField(max_length=200, required=False, help_text="Default: the file's `name`.")
    team = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "Personal")] + [(t.slug, t.name) for t in teams_for(user=user)]
