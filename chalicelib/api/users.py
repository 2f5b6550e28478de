"""Admin users API: /api/admin/users/ (superusers only; everyone else gets 403).

Deleting a user hands their projects to the superuser who deleted them, so no
project is ever left without an owner who can reach it (chalicelib/removal.py: what
does not fit the route's budget, the poller finishes). `groups` (group ids, as Django's
user serializer shows them) is where memberships live (chalicelib/api/groups.py).
"""
from __future__ import annotations

from chalice import Blueprint

from ..apidoc import INVALID, LIST_RULE, NO_CONTENT, ORDERING, PAGE, doc
from ..auth import hash_password
from ..errors import ApiError, bad_request, forbidden, not_found, validate
from ..models import UserOut, UserPage, UserWrite, utcnow
from ..store import users
from ..store.dynamo import ConditionFailed
from .common import (BODY_CONTENT_TYPES, current_user, int_id, no_content, parse_body,
                     query_params, respond)
from .listing import answer, order

bp = Blueprint(__name__)
_DUPLICATE = {"username": ["A user with that username already exists."]}
_WRITABLE = set(UserWrite.model_fields)


def _superuser():
    user = current_user(bp.current_request)
    if not user.get("is_superuser"):
        raise forbidden()
    return user


def user_out(record: dict) -> dict:
    return UserOut.model_validate({**record, "groups": sorted(record.get("groups") or ())}).model_dump(mode="json")


def _group_ids(data: UserWrite) -> set[int]:
    """The groups named by `groups`, every one existing (else DRF's 400 on `groups`)."""
    from ..store import groups

    wanted = set(data.groups or ())
    if wanted:
        known = {g["id"] for g in groups.list_all()}
        missing = sorted(wanted - known)
        if missing:
            raise bad_request({"groups": [f'Invalid pk "{missing[0]}" - object does not exist.']})
    return wanted


def _target(user_id: str) -> dict:
    record = users.get_by_id(int_id(user_id))
    if record is None:
        raise not_found()
    return record


@bp.route("/api/admin/users", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List users (superuser)", {200: ([UserOut], UserPage)}, query=(ORDERING, PAGE), tags=("admin",),
     listed=True, description=LIST_RULE)
def list_users():
    """All users (superuser only)."""
    _superuser()
    query = query_params(bp.current_request)
    items = [user_out(u) for u in users.list_all()]
    items = order(items, query.get("ordering"), set(UserOut.model_fields))
    return answer(bp.current_request, items, query)


@bp.route("/api/admin/users", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a user (superuser)", {201: UserOut}, body=UserWrite, tags=("admin",))
def create_user():
    """Create a user; `password` is write-only and stored only as a salted slow hash."""
    _superuser()
    data = validate(UserWrite, parse_body(bp.current_request).fields)
    record = data.model_dump(exclude={"password", "groups"})
    record["password"] = hash_password(data.password) if data.password else "!"
    group_ids = _group_ids(data)
    if group_ids:
        record["groups"] = group_ids
    record["date_joined"] = utcnow()
    try:
        created = users.create(record)
    except users.DuplicateUsername:
        raise bad_request(_DUPLICATE) from None
    return respond(user_out(created), status=201)


@bp.route("/api/admin/users/{user_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a user (superuser)", {200: UserOut}, tags=("admin",))
def get_user(user_id):
    _superuser()
    return respond(user_out(_target(user_id)))


@bp.route("/api/admin/users/{user_id}", methods=["PUT", "PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Update a user (superuser)", {200: UserOut}, body=UserWrite, tags=("admin",))
def update_user(user_id):
    """PATCH changes the given fields; PUT also requires `username`."""
    _superuser()
    request = bp.current_request
    record = _target(user_id)
    body = parse_body(request).fields
    if request.method == "PUT" and "username" not in body:
        raise bad_request({"username": ["This field is required."]})
    changes = {k: v for k, v in body.items() if k in _WRITABLE}
    current = {k: record.get(k) for k in _WRITABLE if k not in ("password", "groups")}
    data = validate(UserWrite, {**current, **changes})
    updated = data.model_dump(exclude={"password", "groups"})
    if data.password and "password" in changes:
        updated["password"] = hash_password(data.password)
    if "groups" in changes:  # a number set, absent when empty (DynamoDB holds no empty set)
        record = {k: v for k, v in record.items() if k != "groups"}
        group_ids = _group_ids(data)
        if group_ids:
            updated["groups"] = group_ids
    try:
        saved = users.update(record, updated)
    except users.DuplicateUsername:
        raise bad_request(_DUPLICATE) from None
    return respond(user_out(saved))


@bp.route("/api/admin/users/{user_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete a user; their projects pass to the caller (superuser)", {204: NO_CONTENT, 400: INVALID},
     tags=("admin",), description="The user is gone at once; their projects pass to the caller within a "
                                  "short budget, the scheduled poller hands over the rest.")
def delete_user(user_id):
    """Delete a user; their projects pass to the deleting superuser."""
    from .. import removal

    admin = _superuser()
    record = _target(user_id)
    if record["id"] == admin["id"]:
        raise ApiError(400, {"detail": "You cannot delete your own account."})
    try:
        removal.delete_user(record, admin, bp.lambda_context)
    except ConditionFailed:
        raise not_found() from None  # deleted (or renamed) meanwhile
    return no_content()
