"""Sign-up, sign-in, sign-out, password change, teams and API tokens (pages)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/teams/", views.teams, name="teams"),
    path("account/teams/new/", views.team_create, name="team_create"),
    path("account/teams/<slug:slug>/", views.team_detail, name="team"),
    path("account/teams/<slug:slug>/invite/", views.team_invite, name="team_invite"),
    path("account/teams/<slug:slug>/members/<int:user_id>/role/", views.member_role, name="member_role"),
    path("account/teams/<slug:slug>/members/<int:user_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "account/teams/<slug:slug>/invitations/<int:invitation_id>/cancel/",
        views.invitation_cancel,
        name="invitation_cancel",
    ),
    path("account/teams/<slug:slug>/leave/", views.team_leave, name="team_leave"),
    path("account/teams/<slug:slug>/delete/", views.team_delete, name="team_delete"),
    path("account/tokens/new/", views.token_create, name="token_create"),
    path("account/tokens/<str:token_key>/revoke/", views.token_revoke, name="token_revoke"),
]
