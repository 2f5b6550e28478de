"""Errors: the domain's own, and the API layer's DRF-shaped ones.

Below the API layer (auth, permissions, access, uploads, ingest) code raises
`DomainError`s that say what went wrong, not which HTTP status it is; app.py's
middleware turns them into DRF bodies (chalicelib/api/common.py `domain_error_body`),
and the upload authorizer turns them into its own verdicts. Views may also raise
`ApiError` (a status and a body). Both subclass ChaliceUnhandledError only so that
Chalice hands them to the middleware instead of answering a 500 itself. Everything
else unexpected becomes a logged 500 `{"detail": "Internal server error"}`.
"""
from __future__ import annotations

from typing import Any

from chalice import ChaliceUnhandledError

NOT_FOUND = "Not found."
NO_PERMISSION = "You do not have permission to perform this action."
NOT_AUTHENTICATED = "Authentication credentials were not provided."


class DomainError(ChaliceUnhandledError):
    """What went wrong, in the domain's words (never an HTTP status)."""


class NotFound(DomainError):
    """The object does not exist, or the caller may not know it does."""

    def __init__(self, detail: str = NOT_FOUND):
        super().__init__(detail)
        self.detail = detail


class PermissionDenied(DomainError):
    """The caller may see the object but not do this to it."""

    def __init__(self, detail: str = NO_PERMISSION):
        super().__init__(detail)
        self.detail = detail


class AuthenticationFailed(DomainError):
    """Credentials are missing or wrong (WebODM answers these with 403, never 401)."""

    def __init__(self, detail: str = NOT_AUTHENTICATED):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """Input the domain refuses: a message (DRF's ValidationError("text")) or field errors."""

    def __init__(self, body: str | dict[str, list[str]]):
        super().__init__(str(body))
        self.body = body


class ApiError(ChaliceUnhandledError):
    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found(detail: str = NOT_FOUND) -> ApiError:
    return ApiError(404, {"detail": detail})


def forbidden(detail: str = NO_PERMISSION) -> ApiError:
    return ApiError(403, {"detail": detail})


def bad_request(body: Any) -> ApiError:
    """400 with a field dict, a `detail`, or (as DRF's ValidationError("text")) a list."""
    if isinstance(body, str):
        body = [body]
    return ApiError(400, body)


def field_error(field: str, message: str) -> ApiError:
    return ApiError(400, {field: [message]})


# pydantic error type -> DRF's wording for the same problem.
_DRF_MESSAGES = {
    "missing": "This field is required.",
    "string_too_short": "This field may not be blank.",
    "string_too_long": "Ensure this field has no more than {max_length} characters.",
    "bool_parsing": "Must be a valid boolean.",
    "bool_type": "Must be a valid boolean.",
    "int_parsing": "A valid integer is required.",
    "int_type": "A valid integer is required.",
    "int_from_float": "A valid integer is required.",
    "float_parsing": "A valid number is required.",
    "float_type": "A valid number is required.",
    "finite_number": "A valid number is required.",
    "string_type": "Not a valid string.",
    "string_unicode": "Invalid unicode (lone surrogate).",
    "uuid_parsing": "Must be a valid UUID.",
    "uuid_type": "Must be a valid UUID.",
    "list_type": "Expected a list of items.",
    "dict_type": "Expected a dictionary of items.",
    "greater_than_equal": "Ensure this value is greater than or equal to {ge}.",
    "less_than_equal": "Ensure this value is less than or equal to {le}.",
    "too_long": "Ensure this field has no more than {max_length} elements.",
    "email": "Enter a valid email address.",
    "value_error": "{error}",
}


def drf_errors(exc) -> dict[str, list[str]]:
    """pydantic.ValidationError -> {"field": ["message", ...]}."""
    body: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else "non_field_errors"
        if err.get("input") is None and err["type"] not in ("missing",) and loc:
            message = "This field may not be null."
        else:
            template = _DRF_MESSAGES.get(err["type"])
            ctx = dict(err.get("ctx") or {})
            if err["type"] == "value_error":
                ctx["error"] = str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
            try:
                message = template.format(**ctx) if template else err["msg"]
            except (KeyError, IndexError):
                message = err["msg"]
        messages = body.setdefault(field, [])
        if message not in messages:
            messages.append(message)
    return body


def validate(model, data: dict):
    """Validate `data` with a pydantic model, turning failures into a DRF 400."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, drf_errors(exc)) from None
