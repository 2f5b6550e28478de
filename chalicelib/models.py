"""Pydantic models: request bodies and API representations, plus the enums.

Stored records are plain dicts in DynamoDB; the `*Out` models are the public
representations (the only shape that leaves the API, so secrets such as password
hashes or node tokens can never leak by accident). Request models ignore unknown
keys, as DRF serializers do.
"""
from __future__ import annotations

import json
import math
import uuid as uuid_lib
from datetime import datetime, timezone
from enum import IntEnum
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator


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
            except (ValueError, RecursionError):
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
# Bounded so that a project row (which also holds its task ids) stays far below DynamoDB's
# 400 KB item limit (at most ~86 KB of text), and so that a page of 10 of the largest projects,
# each with MAX_TASKS_PER_PROJECT task ids, fits one API answer (chalicelib/api/listing.py):
# about 386 KB each once escaped as the answer travels, 3.9 MB for ten.
Text = Annotated[str, StringConstraints(max_length=16_384)]
MAX_TASKS_PER_PROJECT = 2000
Tags = Annotated[list[Annotated[str, StringConstraints(max_length=100)]], BeforeValidator(_tags),
                 Field(max_length=50)]


def _check_text(value: Any) -> None:
    """Every string must be storable text: JSON's \\u escapes (also inside form fields that
    carry JSON, such as `options`) can spell lone surrogates, which DynamoDB cannot hold."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("Invalid unicode (lone surrogate).") from None
        elif isinstance(item, BaseModel):
            stack.extend(item.__dict__.values())
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, value: Any) -> Any:
        _check_text(value)
        return value


# ---------------------------------------------------------------- users

Username = Annotated[str, StringConstraints(min_length=1, max_length=150, pattern=r"^[\w.@+-]+$")]


# A group or user id in a request (ids are counters; past 2**53 is no id, nor a DynamoDB key).
RowId = Annotated[int, Field(ge=1, le=2**53)]
GroupIds = Annotated[list[RowId], Field(max_length=1000)]


class UserWrite(Request):
    username: Username
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")] = ""
    first_name: Annotated[str, StringConstraints(max_length=150)] = ""
    last_name: Annotated[str, StringConstraints(max_length=150)] = ""
    is_superuser: bool = False
    is_active: bool = True
    password: Optional[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = None
    groups: Optional[GroupIds] = None


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    is_superuser: bool
    is_active: bool
    date_joined: str
    groups: list[int] = []


class UserName(BaseModel):
    """GET /api/users/: whom to share with; never anyone's e-mail."""
    username: str


# ---------------------------------------------------------------- groups and sharing

class GroupWrite(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=150, strip_whitespace=True)]  # DRF trims
    permissions: Annotated[list[RowId], Field(max_length=1000)] = []
    members: Annotated[list[RowId], Field(max_length=10_000)] = []


class GroupOut(BaseModel):
    """Django's Group (`id`, `name`, model `permissions`, always [] here) and its members' user ids."""
    id: int
    name: str
    permissions: list[int]
    members: list[int]


class GroupPage(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[GroupOut]


class GroupName(BaseModel):
    """GET /api/groups/: a group to share with."""
    name: str
    id: int


class UserShare(BaseModel):
    username: str
    owner: bool
    permissions: list[str]


class GroupShare(BaseModel):
    groupname: str
    permissions: list[str]


class ShareRow(BaseModel):
    """One row of an `edit/` `permissions` list: `username` or `groupname`; rows flagged
    `owner` are skipped."""
    model_config = ConfigDict(extra="allow")
    username: Optional[str] = None
    groupname: Optional[str] = None
    owner: Optional[bool] = None
    permissions: list[str] = []


class ProjectEdit(BaseModel):
    """`edit/`: fields left out keep their value; `permissions`, when given, is the whole
    sharing state."""
    name: Optional[str] = None
    description: Optional[str] = None
    tags: Optional[list[str]] = None
    permissions: Optional[list[ShareRow]] = None


class ErrorMessage(BaseModel):
    error: str


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


# ---------------------------------------------------------------- tasks

MAX_OPTIONS = 500


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _options(value: Any) -> Any:
    """Options arrive as a list, or as a JSON string in multipart/form bodies."""
    if value is None or value == "" or value == {}:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise ValueError("Invalid options") from None
    if not isinstance(value, list):
        raise ValueError("Invalid options")
    if len(value) > MAX_OPTIONS:  # before the size check, so the message says why
        raise ValueError(f"Ensure this field has no more than {MAX_OPTIONS} elements.")
    return value


MAX_VALUE_DEPTH = 24  # DynamoDB nests at most 32 levels, the task row and its options take some


def storable(value: Any) -> Any:
    """Free-form JSON (option values, `crop`, `potree_scene`) as DynamoDB can hold it:
    finite numbers of at most 38 digits between 1e-130 and 1e126, no empty object keys,
    at most MAX_VALUE_DEPTH levels. Anything else would fail (or poison the task row)
    when written, so it is a 400 here."""
    from decimal import Decimal, DecimalException

    from boto3.dynamodb.types import DYNAMODB_CONTEXT

    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if level > MAX_VALUE_DEPTH:
            raise ValueError(f"Nested too deeply (more than {MAX_VALUE_DEPTH} levels)")
        if isinstance(item, (int, float)):
            try:
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(item)
                DYNAMODB_CONTEXT.create_decimal(Decimal(repr(item)) if isinstance(item, float) else item)
            except (DecimalException, ValueError, OverflowError):
                raise ValueError("Numbers must be finite, with at most 38 digits, "
                                 "between 1e-130 and 1e126 in size") from None
        elif isinstance(item, dict):
            if any(not isinstance(k, str) or k == "" for k in item):
                raise ValueError("Object keys may not be empty")
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, level + 1) for v in item)
    return value


def _json_size_limited(limit: int):
    def check(value: Any) -> Any:
        if value is not None and len(json.dumps(value, default=str)) > limit:
            raise ValueError(f"Value too large (more than {limit} bytes)")
        return value
    return check


class TaskOption(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    value: Annotated[Any, BeforeValidator(storable)] = None


# Bounded so that a task with the largest options, crop, potree_scene and tags fits one
# 400 KB DynamoDB item, and a page of 10 of the largest tasks fits one API answer
# (chalicelib/api/listing.py): about 401 KB each once escaped as the answer travels (a JSON
# text doubles at most: every `"` and `\` of it is escaped once more), 4.0 MB for ten.
# (Pydantic runs before-validators last to first.)
MAX_OPTIONS_BYTES = 64_000
MAX_CROP_BYTES = 20_000
MAX_POTREE_SCENE_BYTES = 40_000
Options = Annotated[list[TaskOption], BeforeValidator(_json_size_limited(MAX_OPTIONS_BYTES)),
                    BeforeValidator(_options), Field(max_length=MAX_OPTIONS)]
Crop = Annotated[dict, BeforeValidator(storable), BeforeValidator(_json_size_limited(MAX_CROP_BYTES))]
PotreeScene = Annotated[dict, BeforeValidator(storable),
                        BeforeValidator(_json_size_limited(MAX_POTREE_SCENE_BYTES))]


class TaskWrite(Request):
    """Writable task fields (WebODM's TaskSerializer); progress fields and `uuid` are read-only."""
    name: Optional[Annotated[str, StringConstraints(max_length=255)]] = None
    processing_node: Optional[int] = None
    auto_processing_node: bool = True
    options: Options = []
    resize_to: Annotated[int, Field(ge=-1, le=100_000)] = -1
    public: bool = False
    public_edit: bool = False
    tags: Tags = []
    partial: bool = False
    crop: Optional[Crop] = None
    potree_scene: PotreeScene = {}


class UploadSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    size: Annotated[int, Field(ge=0, le=5 * 1024**3)]


class PresignRequest(Request):
    files: Annotated[list[UploadSpec], Field(min_length=1, max_length=1000)]


class PresignedUpload(BaseModel):
    name: str
    url: str
    method: str
    headers: dict[str, str]
    expires_in: int


class PresignResponse(BaseModel):
    success: bool
    uploads: list[PresignedUpload]


class UploadResponse(BaseModel):
    success: bool
    uploaded: dict[str, int]


class Srs(BaseModel):
    name: str
    units: str


class TaskOut(BaseModel):
    id: str
    project: int
    processing_node: Optional[int]
    processing_node_name: Optional[str]
    images_count: int
    can_rerun_from: list[str]
    statistics: dict
    extent: Optional[list[float]]
    media: int
    tags: list[str]
    crop: Optional[dict]
    srs: Srs
    available_assets: list[str]
    uuid: str
    name: Optional[str]
    processing_time: int
    auto_processing_node: bool
    status: Optional[int]
    last_error: Optional[str]
    options: list[dict]
    created_at: str
    pending_action: Optional[int]
    public: bool
    public_edit: bool
    resize_to: int
    upload_progress: float
    resize_progress: float
    running_progress: float
    import_url: str
    partial: bool
    potree_scene: dict
    epsg: Optional[int]
    wkt: Optional[str]
    orthophoto_bands: list[dict]
    size: float
    compacted: bool


class OutputJson(BaseModel):
    lines: list[str]
    count: int


class ProjectPage(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[ProjectOut]


class UserPage(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[UserOut]


class TaskPage(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[TaskOut]


class DropzoneChunk(Request):
    """Multipart fields of one Dropzone chunk (with exactly one file)."""
    dzuuid: Optional[str] = None
    dzchunkindex: Optional[int] = None
    dztotalchunkcount: Optional[int] = None
    dzchunkbyteoffset: Optional[int] = None


class ImportForm(Request):
    """`tasks/import`: one file (any field name), or `url`, or `upload` (an `import/presign` id);
    Dropzone chunks with the `dz*` fields."""
    url: Optional[str] = None
    name: Optional[str] = None
    upload: Optional[str] = None
    dzuuid: Optional[str] = None
    dzchunkindex: Optional[int] = None
    dztotalchunkcount: Optional[int] = None
    dzchunkbyteoffset: Optional[int] = None


class ImportPresignRequest(Request):
    size: Annotated[int, Field(ge=1, le=5 * 1024**3)]


class ImportPresignResponse(BaseModel):
    upload: str
    url: str
    method: str
    headers: dict[str, str]
    expires_in: int


class Uploaded(BaseModel):
    uploaded: bool


class ExternalInit(BaseModel):
    uuid: str


class ExternalUploadForm(Request):
    """External import upload: `uuid` and ONE file whose field name is the asset type
    (orthophoto, dsm, dtm, pointcloud, texturedmodel); Dropzone chunks with the `dz*` fields."""
    uuid: Optional[str] = None
    dzuuid: Optional[str] = None
    dzchunkindex: Optional[int] = None
    dztotalchunkcount: Optional[int] = None
    dzchunkbyteoffset: Optional[int] = None


class ExternalUploaded(BaseModel):
    uploaded: bool
    done: bool
    asset: Optional[str] = None


class ExternalCommit(Request):
    uuid: Optional[str] = None
    name: Optional[str] = None


class Detail(BaseModel):
    detail: str


class Success(BaseModel):
    success: bool


# ---- processing nodes

def _char_field(strip: bool):
    """DRF's CharField: numbers become text (`"hostname": 10` -> "10"); text is trimmed."""
    def convert(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        return value.strip() if strip and isinstance(value, str) else value
    return BeforeValidator(convert)


Hostname = Annotated[str, StringConstraints(min_length=1, max_length=255), _char_field(strip=True)]


class NodeWrite(Request):
    hostname: Hostname
    port: Annotated[int, Field(ge=0, le=65535)]
    token: Annotated[str, StringConstraints(max_length=1024), _char_field(strip=False)] = ""
    label: Annotated[str, StringConstraints(max_length=255), _char_field(strip=True)] = ""


class NodeOut(BaseModel):
    """A processing node as the API shows it: never its `token`."""
    id: int
    hostname: str
    port: int
    label: str
    api_version: Optional[str]
    last_refreshed: Optional[str]
    queue_count: int
    max_images: Optional[int]
    available_options: list[Any]
    engine: Optional[str]
    engine_version: Optional[str]
    online: bool


class NodePage(BaseModel):
    count: int
    next: Optional[str]
    previous: Optional[str]
    results: list[NodeOut]
