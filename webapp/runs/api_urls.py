"""REST API routes of the runs app, mounted under /api/v1/."""

from django.urls import path, re_path

from . import api

urlpatterns = [
    path("runs/", api.RunListCreate.as_view(), name="api-runs"),
    re_path(r"^runs/import/?$", api.RunImport.as_view(), name="api-runs-import"),
    path("runs/<int:pk>/", api.RunDetail.as_view(), name="api-run"),
    path("runs/<int:pk>/clone/", api.RunClone.as_view(), name="api-run-clone"),
    path("runs/<int:pk>/config.yaml", api.RunConfigYaml.as_view(), name="api-run-config-yaml"),
    path("base-models/", api.BaseModelList.as_view(), name="api-base-models"),
    path("presets/", api.PresetList.as_view(), name="api-presets"),
    path("config-schema/", api.ConfigSchema.as_view(), name="api-config-schema"),
]
