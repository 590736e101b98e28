"""Pages of the datasets app (placeholder until the app is built)."""

from django.urls import path

from . import views

app_name = "datasets"
urlpatterns = [path("", views.index, name="list")]
