"""REST API of accounts: sign-in for a token, the current user, API tokens, teams and their members.

Thin views: parse with a serializer, call one service or selector, serialize. Errors are DomainErrors,
rendered as `{"message", "code", "fields"?}` by webapp.core.api.exception_handler.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, user_logged_in
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer
from webapp.core.errors import DomainError, PermissionDenied

from . import selectors, services
from .auth import SignInThrottle
from .models import ApiToken, Invitation, Membership, Team

# --- serializers -----------------------------------------------------------------------------------


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid input (field errors under `fields`) or a rule was broken.",
        401: "Not signed in, or the token is unknown, revoked or expired.",
        403: "Signed in, but not allowed to do this (e.g. not a team owner).",
        404: "No such object, or not one you may see.",
        429: "Too many requests; retry after the `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=meaning[code]) for code in codes}


EXPIRY_CHOICES = [*services.TOKEN_EXPIRY_DAYS]
EXPIRY_HELP = "Days until the token expires: 7, 30 or 90; null for never."


class UserSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)


class MyTeamSerializer(serializers.Serializer):  # type: ignore[type-arg]
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices, read_only=True, source="my_role")


class MeSerializer(UserSerializer):
    teams = MyTeamSerializer(many=True, read_only=True)


class LoginRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(max_length=80, default="API sign-in", help_text="A name for the new token.")
    expires_in_days = serializers.ChoiceField(
        choices=EXPIRY_CHOICES, allow_null=True, default=30, help_text=EXPIRY_HELP
    )


class LoginResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.CharField(help_text="The API token. Shown this once; only its hash is stored.")
    expiry = serializers.DateTimeField(allow_null=True)
    user = UserSerializer()


class TokenSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    token_key = serializers.CharField(read_only=True, help_text="The token's first characters: its public id.")
    expired = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["token_key", "name", "created", "expiry", "last_used_at", "expired"]
        read_only_fields = fields

    def get_expired(self, token: ApiToken) -> bool:
        from django.utils import timezone

        return token.expiry is not None and token.expiry < timezone.now()


class TokenCreateRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=80)
    expires_in_days = serializers.ChoiceField(
        choices=EXPIRY_CHOICES, allow_null=True, default=30, help_text=EXPIRY_HELP
    )


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.SerializerMethodField(help_text="The token itself. Shown this once; only its hash is stored.")

    class Meta(TokenSerializer.Meta):
        fields = ["token", *TokenSerializer.Meta.fields]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return str(self.context["secret"])


class TeamSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(
        choices=Membership.Role.choices, read_only=True, source="my_role", help_text="Your role in the team."
    )
    member_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Team
        fields = ["slug", "name", "created_at", "role", "member_count"]
        read_only_fields = ["slug", "created_at", "role", "member_count"]


class MemberSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    username = serializers.CharField(source="user.username", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "joined_at"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = fields


class InviteRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    username = serializers.CharField(required=False, allow_blank=True, default="", help_text="An existing user.")
    email = serializers.EmailField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Added at once if someone has this address, else an invitation claimed when they sign up with it.",
    )
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("username")) == bool(attrs.get("email")):
            raise serializers.ValidationError("Give either a username or an e-mail address.")
        return attrs


class InviteResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(
        choices=[("added", "added"), ("invited", "invited")],
        help_text="added: the user is a member now; invited: an invitation waits for that e-mail address.",
    )
    member = MemberSerializer(allow_null=True)
    invitation = InvitationSerializer(allow_null=True)


class RoleRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(choices=Membership.Role.choices)


# --- sign-in and the current user -----------------------------------------------------------------


class LoginView(APIView):
    authentication_classes: list[Any] = []  # credentials are in the body; no CSRF-bound session here
    permission_classes = [AllowAny]
    throttle_classes = [SignInThrottle]
    throttle_scope = "sign_in"

    @extend_schema(
        operation_id="auth_login",
        request=LoginRequestSerializer,
        responses={200: LoginResponseSerializer, **errors(400, 429)},
        auth=[],
        summary="Exchange a username and password for a new API token",
    )
    def post(self, request: Request) -> Response:
        body = LoginRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise DomainError("Wrong username or password.", code="invalid_credentials")
        token, secret = services.token_create(user=user, name=data["name"], expires_in_days=data["expires_in_days"])
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response({"token": secret, "expiry": token.expiry, "user": UserSerializer(user).data})


class LogoutView(APIView):
    @extend_schema(
        operation_id="auth_logout",
        request=None,
        responses={204: OpenApiResponse(description="The token used for this request is revoked."), **errors(400, 401)},
        summary="Revoke the token this request was made with",
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            raise DomainError("This request was not made with an API token.", code="no_token")
        services.token_revoke(user=request.user, token_key=request.auth.token_key)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(operation_id="me", responses={200: MeSerializer, **errors(401)}, summary="The signed-in user")
    def get(self, request: Request) -> Response:
        user: Any = request.user
        teams = selectors.teams_with_role(user=user)
        return Response(
            MeSerializer({"id": user.pk, "username": user.username, "email": user.email, "teams": teams}).data
        )


# --- API tokens ----------------------------------------------------------------------------------------


class TokenListCreateView(generics.ListAPIView):  # type: ignore[type-arg]
    queryset = ApiToken.objects.none()  # for the schema; get_queryset scopes to the caller
    serializer_class = TokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.tokens_for(user=self.request.user)

    @extend_schema(operation_id="tokens_list", responses={200: TokenSerializer(many=True), **errors(401)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="tokens_create",
        request=TokenCreateRequestSerializer,
        responses={201: TokenCreatedSerializer, **errors(400, 401)},
        summary="Create a token; the response is the only time it is shown",
    )
    def post(self, request: Request) -> Response:
        body = TokenCreateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, secret = services.token_create(user=request.user, **body.validated_data)  # type: ignore[arg-type]
        data = TokenCreatedSerializer(token, context={"secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class TokenDetailView(APIView):
    @extend_schema(
        operation_id="tokens_revoke",
        responses={204: OpenApiResponse(description="Revoked."), **errors(401, 404)},
        summary="Revoke one of your tokens",
    )
    def delete(self, request: Request, token_key: str) -> Response:
        services.token_revoke(user=request.user, token_key=token_key)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- teams -----------------------------------------------------------------------------------------------


def _my_team(request: Request, slug: str) -> Team:
    team = selectors.team_get(user=request.user, team=slug)
    return selectors.teams_with_role(user=request.user).get(pk=team.pk)


class TeamListCreateView(generics.ListAPIView):  # type: ignore[type-arg]
    queryset = Team.objects.none()  # for the schema; get_queryset scopes to the caller
    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.teams_with_role(user=self.request.user)

    @extend_schema(operation_id="teams_list", responses={200: TeamSerializer(many=True), **errors(401)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="teams_create",
        request=TeamSerializer,
        responses={201: TeamSerializer, **errors(400, 401)},
        summary="Create a team; you become its owner",
    )
    def post(self, request: Request) -> Response:
        body = TeamSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.team_create(user=request.user, name=body.validated_data["name"])  # type: ignore[arg-type]
        return Response(TeamSerializer(_my_team(request, team.slug)).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    @extend_schema(operation_id="teams_retrieve", responses={200: TeamSerializer, **errors(401, 404)})
    def get(self, request: Request, slug: str) -> Response:
        return Response(TeamSerializer(_my_team(request, slug)).data)

    @extend_schema(
        operation_id="teams_destroy",
        responses={
            204: OpenApiResponse(description="Deleted, with everything the team owned."),
            **errors(401, 403, 404),
        },
        summary="Delete a team and everything it owns (owners only)",
    )
    def delete(self, request: Request, slug: str) -> Response:
        services.team_delete(actor=request.user, team=slug)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamLeaveView(APIView):
    @extend_schema(
        operation_id="teams_leave",
        request=None,
        responses={204: OpenApiResponse(description="You left the team."), **errors(400, 401, 404)},
        summary="Leave a team (the last owner cannot)",
    )
    def post(self, request: Request, slug: str) -> Response:
        services.team_leave(actor=request.user, team=slug)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListCreateView(generics.ListAPIView):  # type: ignore[type-arg]
    queryset = Membership.objects.none()  # for the schema; get_queryset scopes to the caller
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        team = selectors.team_get(user=self.request.user, team=self.kwargs["slug"])
        return selectors.team_members(team=team)

    @extend_schema(operation_id="teams_members_list", responses={200: MemberSerializer(many=True), **errors(401, 404)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="teams_members_invite",
        request=InviteRequestSerializer,
        responses={201: InviteResponseSerializer, **errors(400, 401, 403, 404)},
        summary="Invite by username or e-mail (owners only)",
    )
    def post(self, request: Request, slug: str) -> Response:
        body = InviteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.team_invite(actor=request.user, team=slug, **body.validated_data)  # type: ignore[arg-type]
        if isinstance(result, Membership):
            data = {"status": "added", "member": MemberSerializer(result).data, "invitation": None}
        else:
            data = {"status": "invited", "member": None, "invitation": InvitationSerializer(result).data}
        return Response(data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    @extend_schema(
        operation_id="teams_members_set_role",
        request=RoleRequestSerializer,
        responses={200: MemberSerializer, **errors(400, 401, 403, 404)},
        summary="Change a member's role (owners only; the last owner stays owner)",
    )
    def patch(self, request: Request, slug: str, username: str) -> Response:
        body = RoleRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.membership_set_role(
            actor=request.user,
            team=slug,
            user=username,
            role=body.validated_data["role"],  # type: ignore[arg-type]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="teams_members_remove",
        responses={204: OpenApiResponse(description="Removed."), **errors(400, 401, 403, 404)},
        summary="Remove a member (owners; anyone may remove themselves)",
    )
    def delete(self, request: Request, slug: str, username: str) -> Response:
        services.membership_remove(actor=request.user, team=slug, user=username)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(generics.ListAPIView):  # type: ignore[type-arg]
    queryset = Invitation.objects.none()  # for the schema; get_queryset scopes to the caller
    serializer_class = InvitationSerializer

    def get_queryset(self) -> QuerySet[Invitation]:
        team = selectors.team_get(user=self.request.user, team=self.kwargs["slug"])
        mine = selectors.membership_get(user=self.request.user, team=team)
        if mine is None or mine.role != Membership.Role.OWNER:
            raise PermissionDenied("Only team owners can see pending invitations.")
        return selectors.team_invitations(team=team)

    @extend_schema(
        operation_id="teams_invitations_list", responses={200: InvitationSerializer(many=True), **errors(401, 403, 404)}
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InvitationDetailView(APIView):
    @extend_schema(
        operation_id="teams_invitations_cancel",
        responses={204: OpenApiResponse(description="Cancelled."), **errors(401, 403, 404)},
    )
    def delete(self, request: Request, slug: str, invitation_id: int) -> Response:
        services.invitation_cancel(actor=request.user, team=slug, invitation_id=invitation_id)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
