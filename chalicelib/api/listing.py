"""Ordering, exact filters and DRF page-number pagination for list routes."""
from __future__ import annotations

import math
from typing import Any, Callable

from ..errors import ApiError, not_found
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


def paginate(request, items: list[Any], query: dict[str, str]) -> dict:
    """DRF PageNumberPagination: 10 per page, `page=last`, 404 "Invalid page." past the end."""
    count = len(items)
    pages = max(1, math.ceil(count / PAGE_SIZE))
    raw = query.get("page", "1")
    if raw == "last":
        number = pages
    else:
        try:
            number = int(raw)
        except ValueError:
            raise not_found("Invalid page.") from None
    if number < 1 or number > pages:
        raise not_found("Invalid page.")
    start = (number - 1) * PAGE_SIZE

    def link(page: int) -> str:
        params = {k: v for k, v in query.items() if k != "page"}
        if page > 1:
            params["page"] = str(page)
        return absolute_url(request, params)

    return {"count": count,
            "next": link(number + 1) if number < pages else None,
            "previous": link(number - 1) if number > 1 else None,
            "results": items[start:start + PAGE_SIZE]}


def maybe_paginate(request, items: list[Any], query: dict[str, str]) -> Any:
    """A plain array unless `page` is given (WebODM's project list behaviour)."""
    return paginate(request, items, query) if "page" in query else items
