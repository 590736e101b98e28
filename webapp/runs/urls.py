"""Pages of the runs app."""

from django.urls import path

from . import views, views_checkpoints, views_execution, views_live, views_preflight, views_usage

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="create"),
    path("import/", views.run_import, name="import"),
    path("compare/", views_live.run_compare, name="compare"),
    path("usage/", views_usage.usage_page, name="usage"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/head/", views.run_head, name="head"),
    path("<int:pk>/edit/", views.run_edit, name="edit"),
    path("<int:pk>/config.yaml", views.run_export, name="export"),
    path("<int:pk>/clone/", views.run_clone, name="clone"),
    path("<int:pk>/delete/", views.run_delete, name="delete"),
    path("<int:pk>/launch/", views_execution.run_launch, name="launch"),
    path("<int:pk>/cancel/", views_execution.run_cancel, name="cancel"),
    path("<int:pk>/resume/", views_execution.run_resume, name="resume"),
    path("<int:pk>/checkpoints/", views_checkpoints.run_checkpoints, name="checkpoints"),
    path("<int:pk>/checkpoints/<str:ref>/download", views_checkpoints.checkpoint_download, name="checkpoint_download"),
    path("<int:pk>/check/", views_preflight.run_check, name="check"),
    path("<int:pk>/grpo-twin/", views_preflight.run_grpo_twin, name="grpo_twin"),
]
