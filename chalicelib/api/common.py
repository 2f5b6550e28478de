"""What every route needs: the caller, query parameters, the parsed body, responses.

Bodies are accepted as JSON, form-urlencoded or multipart, as WebODM's views accept them.
Any malformed input becomes a DRF-style 400 here, never an exception in a view.
"""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from chalice import Response

from ..access import MAX_ID, int_id, task_for
from ..auth import authenticate, require_user
from ..errors import (ApiError, AuthenticationFailed, DomainError, InvalidInput, NotFound, PermissionDenied,
                      bad_request)
from ..forms import UploadedFile, parse_multipart

BODY_CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]
MAX_JSON_DEPTH = 32
# JSON and form bodies carry fields, never files: 4 MiB is far above any valid one
# (1,000 presigned uploads with long names are about 1 MB), so more is refused before parsing.
MAX_FIELDS_BODY_BYTES = 4 * 1024 * 1024
TOO_LARGE = {"detail": "Request body too large."}
INVALID_UNICODE = "JSON parse error - invalid unicode (lone surrogate)"


@dataclass
class Body:
    fields: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    is_json: bool = False


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early once it passes `limit`; strings (keys too) must be
    encodable as UTF-8: JSON's \\u escapes can spell lone surrogates, which no store takes."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
            stack.extend((k, level) for k in item)
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(400, {"detail": INVALID_UNICODE}) from None
    return deepest


def _reject_constant(name: str) -> Any:
    # DRF's JSONParser: NaN and Infinity are not JSON.
    raise ValueError("Out of range float values are not JSON compliant")


def _content_type(request) -> tuple[str, str]:
    raw = request.headers.get("content-type", "") or ""
    return raw.split(";")[0].strip().lower(), raw


def parse_body(request) -> Body:
    kind, raw_type = _content_type(request)
    raw = request.raw_body or b""
    if not raw.strip():
        return Body(is_json=kind == "application/json")
    if kind in ("", "application/json", "application/x-www-form-urlencoded") \
            and len(raw) > MAX_FIELDS_BODY_BYTES:
        raise ApiError(413, TOO_LARGE)
    if kind in ("", "application/json"):
        try:
            data = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(400, {"detail": f"JSON parse error - {str(exc)[:200]}"}) from None
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": [
                f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]})
        if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ApiError(400, {"detail": "JSON nested too deeply."})
        return Body(fields=data, lists={k: v if isinstance(v, list) else [v] for k, v in data.items()},
                    is_json=True)
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=False, max_num_fields=10_000)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, {"detail": "Malformed form data."}) from None
        return _form_body(pairs, [])
    if kind == "multipart/form-data":
        return _parse_multipart(raw_type, raw)
    raise ApiError(415, {"detail": f'Unsupported media type "{kind}" in request.'})


def _form_body(pairs: list[tuple[str, str]], files: list[UploadedFile]) -> Body:
    body = Body(files=files)
    for key, value in pairs:
        body.lists.setdefault(key, []).append(value)
        body.fields[key] = value
    return body


def _parse_multipart(content_type: str, raw: bytes) -> Body:
    form = parse_multipart(content_type, raw)
    return _form_body(form.pairs, form.files)


def query_params(request) -> dict[str, str]:
    """Single-valued query parameters (the last value wins, as in Django)."""
    params = request.query_params or {}
    return {key: params[key] for key in params}


def current_user(request) -> dict:
    return require_user(request.headers, query_params(request))


def optional_user(request) -> dict | None:
    return authenticate(request.headers, query_params(request))


def caller_task(request, project_id, task_id, need: str = "change") -> tuple[dict, dict, dict]:
    """(user, project, task) for the caller of `request` holding `need` on the task's project."""
    user = current_user(request)
    project, task = task_for(user, project_id, task_id, need)
    return user, project, task


def parse_bool(value: Any, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on", "t", "y"):
        return True
    if text in ("false", "0", "no", "off", "f", "n", ""):
        return False
    raise ApiError(400, {field_name: ["Must be a valid boolean."]})


def domain_error_body(error: DomainError) -> tuple[int, Any]:
    """The one place a domain error becomes HTTP: WebODM's status and DRF's body."""
    if isinstance(error, NotFound):
        return 404, {"detail": error.detail}
    if isinstance(error, (PermissionDenied, AuthenticationFailed)):
        return 403, {"detail": error.detail}  # WebODM never answers 401
    if isinstance(error, InvalidInput):
        return 400, [error.body] if isinstance(error.body, str) else error.body
    return 400, {"detail": str(error)}


def respond(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json",
                                                            **(headers or {})})


def no_content() -> Response:
    return Response(body="", status_code=204, headers={"Content-Type": "application/json"})


def absolute_url(request, query: dict[str, Any]) -> str:
    """This request's absolute URL with a different query string (pagination links)."""
    headers = request.headers
    scheme = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
    host = headers.get("host", "localhost")
    path = (request.context or {}).get("path") or request.path
    encoded = urllib.parse.urlencode(query)
    return f"{scheme}://{host}{path}" + (f"?{encoded}" if encoded else "")


__all__ = ["Body", "UploadedFile", "parse_body", "query_params", "current_user", "optional_user",
           "int_id", "MAX_ID", "parse_bool", "respond", "no_content", "absolute_url", "bad_request",
           "BODY_CONTENT_TYPES", "domain_error_body", "caller_task"]
