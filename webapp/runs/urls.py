"""Pages of the runs app (placeholder until the app is built)."""

from django.urls import path

from . import views

app_name = "runs"
urlpatterns = [path("", views.index, name="list")]
