"""REST API routes of the accounts app, mounted under /api/v1/."""

from django.urls import path

from . import api

urlpatterns = [
    path("auth/login/", api.LoginView.as_view(), name="api-login"),
    path("auth/logout/", api.LogoutView.as_view(), name="api-logout"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("tokens/", api.TokenListCreateView.as_view(), name="api-tokens"),
    path("tokens/<str:token_key>/", api.TokenDetailView.as_view(), name="api-token"),
    path("teams/", api.TeamListCreateView.as_view(), name="api-teams"),
    path("teams/<slug:slug>/", api.TeamDetailView.as_view(), name="api-team"),
    path("teams/<slug:slug>/leave/", api.TeamLeaveView.as_view(), name="api-team-leave"),
    path("teams/<slug:slug>/members/", api.MemberListCreateView.as_view(), name="api-team-members"),
    path("teams/<slug:slug>/members/<str:username>/", api.MemberDetailView.as_view(), name="api-team-member"),
    path("teams/<slug:slug>/invitations/", api.InvitationListView.as_view(), name="api-team-invitations"),
    path(
        "teams/<slug:slug>/invitations/<int:invitation_id>/",
        api.InvitationDetailView.as_view(),
        name="api-team-invitation",
    ),
]
