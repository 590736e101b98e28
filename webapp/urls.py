"""URL map: pages per app, the REST API under /api/v1/, the OpenAPI schema and its docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp.core import views as core_views

api_v1 = [
    path("", include("webapp.accounts.api_urls")),
    path("", include("webapp.datasets.api_urls")),
    path("", include("webapp.tools.api_urls")),
    path("", include("webapp.runs.api_urls")),
    path("", include("webapp.playground.api_urls")),
]

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("webapp.accounts.urls")),
    path("datasets/", include("webapp.datasets.urls")),
    path("tools/", include("webapp.tools.urls")),
    path("runs/", include("webapp.runs.urls")),
    path("", include("webapp.playground.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

handler404 = "webapp.core.views.not_found"
handler500 = "webapp.core.views.server_error"
