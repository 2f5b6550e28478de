"""What can go wrong talking to an Aloft (or WebODM) server, as exceptions a script can catch.

Each carries the exit code the `aloft` command line gives it (0 ok, 1 task failed or canceled,
2 usage, 3 auth, 4 server unreachable)."""
from __future__ import annotations

from typing import Any


class AloftError(Exception):
    """Base class; `exit_code` is what the command line exits with."""

    exit_code = 1


class UsageError(AloftError):
    """The request as given cannot work: a bad value, an unknown project, task or asset."""

    exit_code = 2


class AuthError(AloftError):
    """No credentials, wrong ones, an expired token or a revoked key (WebODM answers 403)."""

    exit_code = 3


class Unreachable(AloftError):
    """The server could not be reached, or kept failing (5xx) after the retries."""

    exit_code = 4


class ApiError(UsageError):
    """The server refused the request (4xx other than auth); `body` is its JSON answer."""

    def __init__(self, status: int, body: Any, message: str | None = None):
        self.status = status
        self.body = body
        super().__init__(message or f"HTTP {status}: {describe(body)}")


class NotFound(ApiError):
    """404: the object does not exist or is not the caller's to see."""


class TaskFailed(AloftError):
    """The task ended FAILED (30) or CANCELED (50)."""

    exit_code = 1

    def __init__(self, task: dict, message: str):
        self.task = task
        super().__init__(message)


def describe(body: Any) -> str:
    """A DRF error body in one line: `{"detail": ...}`, `{"field": ["msg"]}` or `["msg"]`."""
    if isinstance(body, dict):
        if "detail" in body and len(body) == 1:
            return str(body["detail"])
        parts = []
        for key, value in body.items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(text if key == "non_field_errors" else f"{key}: {text}")
        return ", ".join(parts)
    if isinstance(body, list):
        return "; ".join(map(str, body))
    return str(body)[:300]
