"""API plumbing shared by every app: pagination and the one error shape `{"message", "code", "fields"?}`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from .errors import DomainError

log = logging.getLogger(__name__)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def _field_errors(detail: Any) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, inner in enumerate(value):
                walk(f"{prefix}[{index}]", inner)
        else:
            items = value if isinstance(value, list) else [value]
            fields.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in items)

    walk("", detail)
    return fields


def error_body(message: str, code: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "code": code}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "not_found"), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        first = next(iter(fields.items()), ("", ["Invalid input."]))
        message = first[1][0] if first[0] in ("non_field_errors", "") else f"{first[0]}: {first[1][0]}"
        return Response(error_body(message, "invalid", fields), status=exc.status_code)
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail if not isinstance(detail, (dict, list)) else exc.default_detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response = Response(error_body(message, str(code)), status=exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        return response
    log.exception("Unhandled error in %s", context.get("view"))
    return Response(error_body("Something went wrong on our side.", "server_error"), status=500)


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The one error shape, for OpenAPI responses (`@extend_schema(responses={400: ErrorSerializer})`)."""

    message = serializers.CharField()
    code = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


_COMMON_ERRORS = {
    "400": "Invalid input: a query parameter or filter value is not accepted.",
    "401": "Not signed in, or the token is unknown, revoked or expired.",
    "404": "No such page of results (past the last one).",
}


def document_common_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the errors any view can answer, documented on every operation.

    401 wherever a token is required, 404 for a `page` past the end of a paginated list, and 400 where
    query parameters (filters, pagination) are validated. Responses a view documents itself are kept.
    """
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            wanted = []
            security = operation.get("security") or [{}]
            if {} not in security:
                wanted.append("401")
            if "page" in query:
                wanted.append("404")
            if query:
                wanted.append("400")
            for status_code in wanted:
                responses.setdefault(status_code, {"content": error, "description": _COMMON_ERRORS[status_code]})
    return result
