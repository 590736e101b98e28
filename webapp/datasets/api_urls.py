"""REST API routes of the datasets app, mounted under /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("datasets/", api.DatasetListCreate.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", api.DatasetDetail.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/preview/", api.DatasetPreview.as_view(), name="api-dataset-preview"),
]
