"""Pages of the tools app (placeholder until the app is built)."""

from django.urls import path

from . import views

app_name = "tools"
urlpatterns = [path("", views.index, name="list")]
