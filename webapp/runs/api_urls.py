"""REST API routes of the runs app, mounted under /api/v1/."""

from django.urls import path, re_path

from . import api, api_checkpoints, api_execution, api_preflight, api_usage

urlpatterns = [
    path("runs/", api.RunListCreate.as_view(), name="api-runs"),
    re_path(r"^runs/import/?$", api.RunImport.as_view(), name="api-runs-import"),
    path("runs/<int:pk>/", api.RunDetail.as_view(), name="api-run"),
    path("runs/<int:pk>/clone/", api.RunClone.as_view(), name="api-run-clone"),
    path("runs/<int:pk>/config.yaml", api.RunConfigYaml.as_view(), name="api-run-config-yaml"),
    path("runs/<int:pk>/launch/", api_execution.RunLaunch.as_view(), name="api-run-launch"),
    path("runs/<int:pk>/cancel/", api_execution.RunCancel.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/resume/", api_execution.RunResume.as_view(), name="api-run-resume"),
    path("runs/<int:pk>/state/", api_execution.RunState.as_view(), name="api-run-state"),
    path("runs/<int:pk>/events/", api_execution.RunEvents.as_view(), name="api-run-events"),
    path("runs/<int:pk>/metrics/", api_execution.RunMetrics.as_view(), name="api-run-metrics"),
    path("runs/<int:pk>/rollouts/", api_execution.RunRollouts.as_view(), name="api-run-rollouts"),
    path("runs/<int:pk>/checkpoints/", api_checkpoints.RunCheckpoints.as_view(), name="api-run-checkpoints"),
    path(
        "runs/<int:pk>/checkpoints/<str:ref>/download",
        api_checkpoints.RunCheckpointDownload.as_view(),
        name="api-run-checkpoint-download",
    ),
    path("runs/<int:pk>/preflight/", api_preflight.RunPreflightStart.as_view(), name="api-run-preflight"),
    path(
        "runs/<int:pk>/preflight/<int:preflight_id>/",
        api_preflight.RunPreflightDetail.as_view(),
        name="api-run-preflight-detail",
    ),
    path("runs/<int:pk>/grpo-twin/", api_preflight.RunGrpoTwin.as_view(), name="api-run-grpo-twin"),
    path("usage/", api_usage.Usage.as_view(), name="api-usage"),
    path("base-models/", api.BaseModelList.as_view(), name="api-base-models"),
    path("presets/", api.PresetList.as_view(), name="api-presets"),
    path("config-schema/", api.ConfigSchema.as_view(), name="api-config-schema"),
]
