"""REST API routes of the tools app, mounted under /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("tools/", api.ToolListCreate.as_view(), name="api-tools"),
    path("tools/<int:pk>/", api.ToolDetail.as_view(), name="api-tool"),
    path("tools/<int:pk>/try/", api.ToolTry.as_view(), name="api-tool-try"),
    path("tools/<int:pk>/trials/<int:trial_id>/", api.ToolTrialDetail.as_view(), name="api-tool-trial"),
]
