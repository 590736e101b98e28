"""Runs and the catalogue of base models the service offers.

`BaseModel` rows are managed by admins (Django admin); a GPU deployment adds its own. `path` is what
`arpo_engine.config.ModelConfig.path` takes: a bundled model name, or a Hugging Face folder — relative
paths resolve against the service's var/ folder, so no machine path is stored in the database.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    display_name = models.CharField(max_length=120)
    path = models.CharField(max_length=500, help_text="A bundled model name, or a model folder (relative to var/).")
    description = models.TextField(blank=True)
    parameters_m = models.PositiveIntegerField(default=0, help_text="Size in millions of parameters.")
    max_model_len = models.PositiveIntegerField(default=8192)
    needs_gpu = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "display_name"]

    def __str__(self) -> str:
        return self.display_name

    def engine_path(self) -> str:
        """The value for `model.path` in a resolved run config."""
        from arpo_engine.models import BUNDLED

        if self.path in BUNDLED or Path(self.path).is_absolute():
            return self.path
        return str(Path(settings.VAR_DIR) / self.path)

    def local_folder(self) -> Path | None:
        """The prepared Hugging Face folder on this machine, if there is one (tokenizer, chat template)."""
        from arpo_engine.models import BUNDLED, model_dir

        folder = model_dir(self.path) if self.path in BUNDLED else Path(self.engine_path())
        return folder if (folder / "config.json").is_file() else None
