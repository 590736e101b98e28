"""REST API routes of the playground, mounted under /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("runs/<int:pk>/checkpoints/<str:ref>/try/", api.PlaygroundStart.as_view(), name="api-playground-start"),
    path("playground/<int:session_id>/", api.PlaygroundDetail.as_view(), name="api-playground"),
    path("playground/<int:session_id>/events/", api.PlaygroundEvents.as_view(), name="api-playground-events"),
]
