"""API token authentication: knox (hashed tokens, expiry refused) plus a `last_used_at` stamp.

The stamp is written at most once a minute per token, so a busy client costs one UPDATE a minute, not one
per request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from .models import ApiToken

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class ApiTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes) -> tuple[Any, ApiToken]:
        user, auth_token = super().authenticate_credentials(token)
        now = timezone.now()
        if auth_token.last_used_at is None or now - auth_token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(digest=auth_token.digest).update(last_used_at=now)
            auth_token.last_used_at = now
        return user, auth_token


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI: `Authorization: Token <token>` (drf-spectacular's knox extension matches knox's class only)."""

    target_class = "webapp.accounts.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")


class ScopedThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, reading the rates at each request.

    DRF binds THROTTLE_RATES when its module is imported, so a later settings change (a test's override,
    the test suite switching throttling off) would silently not apply.
    """

    def get_rate(self) -> str | None:
        rate: str | None = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return rate


class SignInThrottle(ScopedThrottle):
    """Sign-in attempts per client address: the API login and the sign-in page share one budget."""

    def get_cache_key(self, request: Any, view: Any) -> str:
        # Per address even when the request carries a session: the budget guards passwords, not accounts.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
