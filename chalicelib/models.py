"""Pydantic models: request bodies and API representations, plus the enums.

Stored records are plain dicts in DynamoDB; the `*Out` models are the public
representations (the only shape that leaves the API, so secrets such as password
hashes or node tokens can never leak by accident). Request models ignore unknown
keys, as DRF serializers do.
"""
from __future__ import annotations

import json
import uuid as uuid_lib
from datetime import datetime, timezone
from enum import IntEnum
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints


class StatusCode(IntEnum):
    QUEUED = 10
    RUNNING = 20
    FAILED = 30
    COMPLETED = 40
    CANCELED = 50


class PendingAction(IntEnum):
    CANCEL = 1
    REMOVE = 2
    RESTART = 3
    RESIZE = 4
    IMPORT = 5
    COMPACT = 6


def utcnow() -> str:
    """ISO-8601 UTC with microseconds and `Z`, as DRF renders it; sorts as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tags(value: Any) -> Any:
    """Tags arrive as a list, a JSON list in a string (forms) or space-separated words."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("Invalid tags") from None
        else:
            return text.split()
    if isinstance(value, (list, tuple)):
        tags: list[str] = []
        for tag in value:
            if not isinstance(tag, str):
                raise ValueError("Tags must be strings")
            tags.extend(tag.split())
        return tags
    raise ValueError("Invalid tags")


Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(max_length=65_536)]
Tags = Annotated[list[Annotated[str, StringConstraints(max_length=255)]], BeforeValidator(_tags),
                 Field(max_length=100)]


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- users

Username = Annotated[str, StringConstraints(min_length=1, max_length=150, pattern=r"^[\w.@+-]+$")]


class UserWrite(Request):
    username: Username
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")] = ""
    first_name: Annotated[str, StringConstraints(max_length=150)] = ""
    last_name: Annotated[str, StringConstraints(max_length=150)] = ""
    is_superuser: bool = False
    is_active: bool = True
    password: Optional[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = None


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    is_superuser: bool
    is_active: bool
    date_joined: str


class TokenRequest(Request):
    username: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class TokenOut(BaseModel):
    token: str


# ---------------------------------------------------------------- projects

class ProjectWrite(Request):
    name: Name
    description: Text = ""
    tags: Tags = []
    public: bool = False
    public_edit: bool = False
    public_id: Optional[uuid_lib.UUID] = None


class ProjectOut(BaseModel):
    id: int
    tasks: list[str]
    owned: bool
    created_at: str
    permissions: list[str]
    tags: list[str]
    name: str
    description: str
    public: bool
    public_edit: bool
    public_id: Optional[str]


class Page(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[Any]


class Detail(BaseModel):
    detail: str


class Success(BaseModel):
    success: bool
