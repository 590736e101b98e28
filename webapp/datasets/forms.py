"""Forms of the dataset pages (validation of the files themselves is the service's job)."""

from __future__ import annotations

from typing import Any

from django import forms

from webapp.accounts.selectors import teams_for

from .models import Dataset


class UploadForm(forms.Form):
    team = forms.ChoiceField(label="Owner", required=False)
    kind = forms.ChoiceField(
        choices=Dataset.Kind.choices,
        initial=Dataset.Kind.PROMPTS,
        help_text="Prompts with answers for RL; full tool-use trajectories for the SFT cold start; or documents "
        "for a search tool.",
    )
    file = forms.FileField(help_text="JSONL, CSV or parquet (the verl/ARPO schema too); .gz is accepted.")
    name = forms.CharField(required=False, max_length=200, help_text="Default: the file name.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    eval_file = forms.FileField(required=False, label="Eval file", help_text="Prompts only: a separate eval file.")
    eval_percent = forms.IntegerField(
        required=False, min_value=0, max_value=50, label="Or carve off eval (%)",
        help_text="Prompts only: this share of the rows becomes the eval split, the same rows for the same seed.",
    )  # fmt: skip
    split_seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1, initial=0, label="Split seed")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", f"Me ({user.username})")] + [
            (t.slug, f"Team {t.name}") for t in teams_for(user=user)
        ]


class RenameForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
