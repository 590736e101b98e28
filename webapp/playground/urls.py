"""Pages of the playground: ask a checkpoint (`/runs/<id>/checkpoints/<step|latest|best>/try/`) and watch a
session's two answers (`/playground/<id>/`)."""

from django.urls import path

from . import views

app_name = "playground"
urlpatterns = [
    path("runs/<int:pk>/checkpoints/<str:ref>/try/", views.playground_start, name="start"),
    path("playground/<int:session_id>/", views.playground_session, name="session"),
]
