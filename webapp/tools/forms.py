"""Page forms for tools: kind-specific fields, prefilled with the engine's defaults for the kind."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from webapp.accounts.selectors import teams_for
from webapp.core.ownership import visible_to

from . import validation
from .models import Tool

KIND_FIELDS = {
    "python": ["timeout_s", "memory_mb", "max_output_bytes"],
    "search": ["corpus", "top_k"],
    "calculator": [],
    "http": ["url", "allowed_hosts", "timeout_s", "max_output_bytes", "secret_headers", "clear_secrets"],
}
_TEXTAREA = {"rows": 12, "class": "mono", "spellcheck": "false"}


class SecretTextarea(forms.Textarea):
    """Never renders a value: secrets typed in are not sent back, not even when the form has errors."""

    def format_value(self, value: Any) -> str | None:
        return None


class ToolForm(forms.Form):
    team = forms.ChoiceField(label="Owner", required=False)
    name = forms.CharField(max_length=64, help_text="Letters, digits and underscores; the model calls the tool by it.")
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Shown to the model; optional."
    )
    schema = forms.CharField(
        label="Function schema (JSON)", widget=forms.Textarea(attrs=_TEXTAREA),
        help_text='OpenAI function tool: {"type": "function", "function": {name, description, parameters}}.',
    )  # fmt: skip
    timeout_s = forms.FloatField(label="Timeout (s)", required=False, min_value=0.1)
    memory_mb = forms.IntegerField(label="Memory per process (MiB)", required=False, min_value=16)
    max_output_bytes = forms.IntegerField(label="Output cap (bytes)", required=False, min_value=1)
    top_k = forms.IntegerField(label="Passages returned (top k)", required=False, min_value=1, max_value=50)
    corpus = forms.TypedChoiceField(label="Search corpus", required=False, coerce=int, empty_value=None)
    url = forms.URLField(label="Endpoint URL", required=False, help_text="The arguments are POSTed here as JSON.")
    allowed_hosts = forms.CharField(
        label="Allowed hosts", required=False, help_text="One per line or comma-separated; empty: the URL's host."
    )
    secret_headers = forms.CharField(
        label="Secret headers", required=False,
        widget=SecretTextarea(attrs={"rows": 3, "class": "mono", "autocomplete": "off"}),
        help_text="One 'Name: value' per line, e.g. Authorization: Bearer …. Stored encrypted, never shown again. "
        "Leave empty to keep the headers already set.",
    )  # fmt: skip
    clear_secrets = forms.BooleanField(label="Remove the secret headers", required=False)

    def __init__(self, *args: Any, user: Any, kind: str, tool: Tool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        wanted = {"name", "description", "schema", *KIND_FIELDS[kind]}
        if tool is None:
            wanted.add("team")
            self.fields["team"].choices = [("", f"Me ({user.username})")] + [
                (t.slug, f"Team {t.name}") for t in teams_for(user=user)
            ]
        elif not tool.has_secrets:
            wanted.discard("clear_secrets")
        for name in list(self.fields):
            if name not in wanted:
                del self.fields[name]
        if "corpus" in self.fields:
            from webapp.datasets.models import Dataset

            corpora = visible_to(Dataset, user).filter(kind=Dataset.Kind.CORPUS).order_by("name")
            self.fields["corpus"].choices = [("", "Choose a corpus")] + [(d.pk, d.name) for d in corpora]

    @classmethod
    def initial_for(cls, kind: str, tool: Tool | None = None) -> dict[str, Any]:
        if tool is None:
            name = {"python": "python", "search": "search", "calculator": "calculator", "http": "web"}[kind]
            return {"name": name, "schema": json.dumps(validation.default_schema(kind, name), indent=2),
                    **validation.default_limits(kind)}  # fmt: skip
        return {
            "name": tool.name, "description": tool.description, "schema": json.dumps(tool.schema, indent=2),
            "timeout_s": tool.timeout_s, "memory_mb": tool.memory_mb, "max_output_bytes": tool.max_output_bytes,
            "top_k": tool.top_k, "corpus": tool.corpus_id, "url": tool.url,
            "allowed_hosts": "\n".join(tool.allowed_hosts),
        }  # fmt: skip

    def clean_schema(self) -> Any:
        try:
            return json.loads(self.cleaned_data["schema"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean_allowed_hosts(self) -> list[str]:
        return [h for h in re.split(r"[\s,]+", self.cleaned_data.get("allowed_hosts", "")) if h]

    def clean_secret_headers(self) -> dict[str, str] | None:
        raw = self.cleaned_data.get("secret_headers", "")
        headers: dict[str, str] = {}
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise forms.ValidationError(f"Line {number}: write Name: value.")  # never echo the value
            headers[name.strip()] = value.strip()
        return headers or None

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        if data.pop("clear_secrets", False) and not data.get("secret_headers"):
            data["secret_headers"] = {}
        if data.get("secret_headers") is None:
            data.pop("secret_headers", None)
        return data


class TryForm(forms.Form):
    arguments = forms.CharField(
        label="Arguments (JSON)", widget=forms.Textarea(attrs={**_TEXTAREA, "rows": 6}),
        help_text="An object with the tool's parameters.",
    )  # fmt: skip

    @staticmethod
    def initial_for(tool: Tool) -> str:
        examples = {"code": "print(2 + 2)", "expression": "(3 + 4) * 2 ** 10", "query": "capital of France"}
        properties = tool.schema.get("function", {}).get("parameters", {}).get("properties", {})
        values: dict[str, Any] = {}
        for key, spec in properties.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            values[key] = examples.get(key, "") if kind in ("string", None) else {
                "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(kind, "")  # fmt: skip
        return json.dumps(values, indent=2)

    def clean_arguments(self) -> Any:
        try:
            value = json.loads(self.cleaned_data["arguments"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object, e.g. {\"code\": \"print(2 + 2)\"}.")
        return value
