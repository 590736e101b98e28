"""Pages of the tools app."""

from django.urls import path

from . import views

app_name = "tools"
urlpatterns = [
    path("", views.tool_list, name="list"),
    path("new/", views.tool_create, name="create"),
    path("<int:pk>/", views.tool_detail, name="detail"),
    path("<int:pk>/edit/", views.tool_edit, name="edit"),
    path("<int:pk>/try/", views.tool_try, name="try"),
    path("<int:pk>/delete/", views.tool_delete, name="delete"),
]
