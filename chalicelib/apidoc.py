"""Route metadata for the OpenAPI document (chalicelib/openapi.py builds it).

Each view says, next to its code, what it takes and answers: its body model,
query parameters and responses. The generator walks Chalice's route table, so a
route without this metadata is a build error, not a silent gap in the document.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Special response kinds besides pydantic models.
NO_CONTENT = "no-content"
REDIRECT = "redirect"
TEXT = "text"
JSON_STRING = "json-string"
CONSOLE = "console"
INVALID = "invalid"  # a DRF 400: field errors, a message list or a detail
TILE = "tile"  # a map tile: PNG, JPEG or WEBP bytes
PICTURE = "picture"  # a thumbnail: PNG or WEBP (the task's), JPEG (an input image's)


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict
    description: str = ""


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    responses: dict[int, Any]
    body: Any = None                 # pydantic model accepted as JSON, form or multipart fields
    form_body: Any = None            # a different model for form/multipart bodies, if any
    files: str | None = None         # multipart file field (e.g. "images"); repeated
    query: tuple[Param, ...] = ()
    auth: str = "required"           # "required", "optional" (public objects) or "none"
    tags: tuple[str, ...] = ()
    description: str = ""
    path_types: dict[str, dict] = field(default_factory=dict)
    listed: bool = False             # a list under chalicelib/api/listing.py's rule (a `Link` header)


# Routes API Gateway serves itself through an AWS service integration (infra/resources.json):
# no Chalice view runs them, so their documentation is registered here, beside the code
# that deals with what they store.
GATEWAY_ROUTES: list[tuple[str, str, str, RouteDoc]] = []


def gateway_route(path: str, method: str, operation_id: str, summary: str, responses: dict[int, Any],
                  **details) -> None:
    GATEWAY_ROUTES.append((path, method, operation_id, RouteDoc(summary=summary, responses=responses, **details)))


def doc(summary: str, responses: dict[int, Any], **details) -> Callable:
    """Attach OpenAPI metadata to a view function."""
    def attach(view: Callable) -> Callable:
        view.__apidoc__ = RouteDoc(summary=summary, responses=responses, **details)
        return view
    return attach


INT = {"type": "integer"}
STR = {"type": "string"}
ORDERING = Param("ordering", STR, "Field to order by; prefix with `-` for descending; comma-separated.")
PAGE = Param("page", {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "last"}]},
             "Page number (10 per page) or `last`; switches the answer to a paginated envelope.")

LIST_RULE = ("Without `page`: a plain array of every item when it fits in 4 MiB (measured escaped, as it "
             "travels in Lambda's response); otherwise the leading whole pages of 10 that fit and a "
             "`Link: <...?page=N>; rel=\"next\"` header naming the first page left out. With `page`: the "
             "paginated envelope, 10 items a page, whose `next` leads to the end.")
