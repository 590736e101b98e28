"""Account pages: sign up / in / out, password change, the account page (teams and API tokens), team pages.

Views parse the form, call one service, and answer with a redirect and a flash message. A team the user
does not belong to is a 404, exactly like a team that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from webapp.core.errors import DomainError

from . import selectors, services
from .auth import SignInThrottle
from .forms import InviteForm, RoleForm, SignupForm, TeamDeleteForm, TeamForm, TokenForm
from .models import Membership, Team


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    throttle_scope = "sign_in"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        throttle = SignInThrottle()
        if not throttle.allow_request(request, self):
            form = self.get_form()
            wait = int(throttle.wait() or 60)
            form.add_error(None, f"Too many sign-in attempts from your address. Try again in {wait} seconds.")
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):  # type: ignore[type-arg]
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:teams")
    success_message = "Your password was changed. Other browsers you were signed in on are now signed out."


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except DomainError as exc:
            _form_errors(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            teams = [m.team.name for m in user.memberships.select_related("team")]
            welcome = f"Welcome to ARPO Studio, {user.username}."
            if teams:
                welcome += " You joined " + ", ".join(teams) + " from the invitations waiting for you."
            messages.success(request, welcome)
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


def _form_errors(form: Any, exc: DomainError) -> None:
    placed = False
    for field, errors in exc.fields.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def _account(request: HttpRequest, **extra: Any) -> HttpResponse:
    context = {
        "teams": selectors.teams_with_role(user=request.user),
        "tokens": selectors.tokens_for(user=request.user),
        "team_form": TeamForm(),
        "token_form": TokenForm(),
        **extra,
    }
    return render(request, "accounts/account.html", context, status=400 if extra.get("invalid") else 200)


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    """The account page: profile, teams and API tokens."""
    return _account(request)


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.team_create(user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
        except DomainError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Team {team.name} created. You are its owner.")
            return redirect("accounts:team", slug=team.slug)
    return _account(request, team_form=form, invalid=True)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, secret = services.token_create(
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                expires_in_days=form.expires_in_days(),
            )
        except DomainError as exc:
            _form_errors(form, exc)
        else:
            # Rendered in this response only (not stored in the session for a redirect): it is never shown again.
            response = _account(request, new_token=token, new_secret=secret)
            response["Cache-Control"] = "no-store"
            return response
    return _account(request, token_form=form, invalid=True)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_key: str) -> HttpResponse:
    try:
        services.token_revoke(user=request.user, token_key=token_key)  # type: ignore[arg-type]
    except DomainError:
        raise Http404 from None
    messages.success(request, "Token revoked. Clients using it are refused from now on.")
    return redirect("accounts:teams")


def _team_or_404(request: HttpRequest, slug: str) -> Team:
    try:
        return selectors.team_get(user=request.user, team=slug)
    except DomainError:
        raise Http404 from None


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = _team_or_404(request, slug)
    mine = selectors.membership_get(user=request.user, team=team)
    is_owner = mine is not None and mine.role == Membership.Role.OWNER
    context = {
        "team": team,
        "my_membership": mine,
        "is_owner": is_owner,
        "members": selectors.team_members(team=team),
        "invitations": selectors.team_invitations(team=team) if is_owner else [],
        "invite_form": InviteForm(),
        "roles": Membership.Role.choices,
    }
    return render(request, "accounts/team_detail.html", context)


def _team_action(request: HttpRequest, slug: str, action: Callable[[Team], str], *, then: str = "team") -> HttpResponse:
    """Run one service for a team page form: a flash message either way, 404 for what may not be seen."""
    team = _team_or_404(request, slug)
    try:
        done = action(team)
    except DomainError as exc:
        if exc.status == 404:
            raise Http404 from None
        messages.error(request, exc.message)
        return redirect("accounts:team", slug=team.slug)
    messages.success(request, done)
    return redirect("accounts:teams") if then == "account" else redirect("accounts:team", slug=team.slug)


@login_required
@require_POST
def team_invite(request: HttpRequest, slug: str) -> HttpResponse:
    form = InviteForm(request.POST)

    def invite(team: Team) -> str:
        if not form.is_valid():
            raise DomainError("Give a username or an e-mail address, and a role.")
        result = services.team_invite(
            actor=request.user,
            team=team,
            role=form.cleaned_data["role"],
            **form.target(),  # type: ignore[arg-type]
        )
        if isinstance(result, Membership):
            return f"{result.user.username} joined {team.name} as {result.get_role_display().lower()}."
        return f"Invitation for {result.email} saved: it is claimed when they sign up with that address."

    return _team_action(request, slug, invite)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    form = RoleForm(request.POST)

    def set_role(team: Team) -> str:
        if not form.is_valid():
            raise DomainError("Choose owner or member.")
        membership = services.membership_set_role(
            actor=request.user,
            team=team,
            user=user_id,
            role=form.cleaned_data["role"],  # type: ignore[arg-type]
        )
        return f"{membership.user.username} is now {membership.get_role_display().lower()}."

    return _team_action(request, slug, set_role)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    if user_id == request.user.pk:
        return team_leave(request, slug)

    def remove(team: Team) -> str:
        services.membership_remove(actor=request.user, team=team, user=user_id)  # type: ignore[arg-type]
        return f"Removed from {team.name}."

    return _team_action(request, slug, remove)


@login_required
@require_POST
def invitation_cancel(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    def cancel(team: Team) -> str:
        services.invitation_cancel(actor=request.user, team=team, invitation_id=invitation_id)  # type: ignore[arg-type]
        return "Invitation cancelled."

    return _team_action(request, slug, cancel)


@login_required
@require_POST
def team_leave(request: HttpRequest, slug: str) -> HttpResponse:
    def leave(team: Team) -> str:
        services.team_leave(actor=request.user, team=team)  # type: ignore[arg-type]
        return f"You left {team.name}."

    return _team_action(request, slug, leave, then="account")


@login_required
def team_delete(request: HttpRequest, slug: str) -> HttpResponse:
    team = _team_or_404(request, slug)
    mine = selectors.membership_get(user=request.user, team=team)
    if mine is None or mine.role != Membership.Role.OWNER:
        messages.error(request, "Only team owners can delete the team.")
        return redirect("accounts:team", slug=team.slug)
    form = TeamDeleteForm(request.POST or None, slug=team.slug)
    if request.method == "POST" and form.is_valid():

        def delete(team: Team) -> str:
            services.team_delete(actor=request.user, team=team)  # type: ignore[arg-type]
            return f"Team {team.name} and everything it owned were deleted."

        return _team_action(request, slug, delete, then="account")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/team_delete.html", {"team": team, "form": form}, status=status)
