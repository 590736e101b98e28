"""Seed the catalogue with the bundled SmolLM2-135M-Instruct and the demo's SFT cold start of it."""

from django.db import migrations

SEED = [
    {
        "slug": "smollm2-135m",
        "display_name": "SmolLM2-135M-Instruct",
        "path": "smollm2-135m",
        "description": "Bundled with the service; runs on CPU. Never calls a tool until it gets an SFT cold start.",
        "parameters_m": 135,
        "max_model_len": 8192,
        "position": 10,
    },
    {
        "slug": "smollm2-135m-demo-sft",
        "display_name": "SmolLM2-135M demo SFT",
        "path": "models/smollm2-135m-demo-sft",
        "description": "SmolLM2-135M after the SFT cold start on the demo task's tool-use demonstrations.",
        "parameters_m": 135,
        "max_model_len": 8192,
        "position": 20,
    },
]


def seed(apps, schema_editor):
    BaseModel = apps.get_model("runs", "BaseModel")
    for row in SEED:
        BaseModel.objects.update_or_create(slug=row["slug"], defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("runs", "BaseModel").objects.filter(slug__in=[r["slug"] for r in SEED]).delete()


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
