"""Ordering, exact filters, DRF page-number pagination, and the one rule that keeps
every list answer under Lambda's response cap.

The rule (`answer`), for every list that grows with user data (projects, tasks,
processing nodes, users):

- with `page`: DRF's envelope `{"count", "next", "previous", "results"}`, 10 items a
  page, as WebODM answers its project list with `page` (an Aloft extension on the
  other lists, which WebODM never paginates);
- without `page`: a plain array, as WebODM answers, holding every item when the whole
  array fits in payload.BUDGET; otherwise the leading whole pages of 10 that fit (at
  least one) and a `Link: <...?page=N>; rel="next"` header naming the first page left
  out, from which the envelope's `next` links lead to the end. Following it yields
  every item exactly once (while the list does not change meanwhile).

The model bounds (chalicelib/models.py) make a page of 10 of the largest possible
items fit the budget, so an answer never passes the cap whatever the data.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from chalice import Response

from ..errors import ApiError, not_found
from . import payload
from .common import absolute_url

PAGE_SIZE = 10


def _sort_key(value: Any) -> tuple:
    # None sorts first (as Postgres does ascending with NULLS FIRST for DRF users' expectations
    # is not guaranteed; a stable, total order is what matters here).
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, (list, tuple, set)):
        return (2, tuple(str(v) for v in value))
    if isinstance(value, dict):
        return (2, str(sorted(value.items())))
    return (2, str(value))


def order(items: list[dict], ordering: str | None, fields: set[str]) -> list[dict]:
    """`ordering=a,-b` on any listed field; unknown fields are ignored (DRF's OrderingFilter)."""
    if not ordering:
        return items
    terms = [t.strip() for t in ordering.split(",") if t.strip()]
    valid = [(t.lstrip("-"), t.startswith("-")) for t in terms if t.lstrip("-") in fields]
    for name, descending in reversed(valid):  # stable sorts, least significant first
        items = sorted(items, key=lambda item: _sort_key(item.get(name)), reverse=descending)
    return items


def exact_filter(items: list[dict], query: dict[str, str], fields: dict[str, Callable[[str], Any]]) -> list[dict]:
    """Exact-match filters; a value that cannot be converted is a 400 like django-filter's."""
    for name, convert in fields.items():
        if name not in query or query[name] == "":
            continue
        try:
            wanted = convert(query[name])
        except (TypeError, ValueError):
            raise ApiError(400, {name: ["Enter a valid value."]}) from None
        items = [item for item in items if item.get(name) == wanted]
    return items


def _page_number(raw: str, pages: int) -> int:
    if raw == "last":
        return pages
    try:
        number = int(raw)
    except ValueError:
        raise not_found("Invalid page.") from None
    if number < 1 or number > pages:
        raise not_found("Invalid page.")
    return number


def _page_link(request, query: dict[str, str], page: int) -> str:
    params = {k: v for k, v in query.items() if k != "page"}
    if page > 1:
        params["page"] = str(page)
    return absolute_url(request, params)


def _next_header(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="next"'}


def paginate(request, items: list[Any], query: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """DRF PageNumberPagination: 10 per page, `page=last`, 404 "Invalid page." past the end.
    Returns the envelope and the headers (`Link` to the next page, if any)."""
    count = len(items)
    pages = max(1, math.ceil(count / PAGE_SIZE))
    number = _page_number(query.get("page", "1"), pages)
    start = (number - 1) * PAGE_SIZE
    following = _page_link(request, query, number + 1) if number < pages else None
    envelope = {"count": count, "next": following,
                "previous": _page_link(request, query, number - 1) if number > 1 else None,
                "results": items[start:start + PAGE_SIZE]}
    return envelope, _next_header(following) if following else {}


def leading_pages(items: list[Any], budget: int = payload.BUDGET) -> tuple[str, int | None]:
    """The JSON array of `items` if it fits `budget` (escaped, as it travels), else of its
    leading whole pages that fit (at least one); and the first page left out, if any."""
    parts: list[str] = []
    spent = 2  # [ ]
    for start in range(0, len(items), PAGE_SIZE):
        page = [payload.render(item) for item in items[start:start + PAGE_SIZE]]
        cost = sum(payload.escaped(part) + 1 for part in page)  # each with its comma
        if parts and spent + cost > budget:
            return "[" + ",".join(parts) + "]", start // PAGE_SIZE + 1
        parts += page
        spent += cost
    return "[" + ",".join(parts) + "]", None


def answer(request, items: list[Any], query: dict[str, str]) -> Response:
    """A list route's answer under the rule in this module's docstring."""
    if "page" in query:
        envelope, headers = paginate(request, items, query)
        return Response(body=envelope, status_code=200,
                        headers={"Content-Type": "application/json", **headers})
    body, following = leading_pages(items)
    headers = _next_header(_page_link(request, query, following)) if following else {}
    return Response(body=body, status_code=200, headers={"Content-Type": "application/json", **headers})
