"""One domain error type: a message a person can act on, a stable code, and optional field errors.

Services raise it; the API renders it as `{"message", "code", "fields"?}` and pages show the message
(and field errors next to their fields). Clients never see a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        fields: Mapping[str, Sequence[str]] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = {key: list(value) for key, value in (fields or {}).items()}
        if status is not None:
            self.status = status

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"message": self.message, "code": self.code}
        if self.fields:
            body["fields"] = self.fields
        return body


class NotFound(DomainError):
    """Raised for objects that do not exist *or* that the caller may not see: the two look the same."""

    status = 404

    def __init__(self, what: str = "object") -> None:
        super().__init__(f"No such {what}.", code="not_found")


class PermissionDenied(DomainError):
    """The caller may see the object but not do this to it (e.g. a member removing the team owner)."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__(message, code="permission_denied")
