"""Admin groups API: /api/admin/groups/ (WebODM's admin `GroupViewSet`; superusers only,
everyone else gets 403).

A group is Django's: `id`, `name` (unique) and model-level `permissions` (Aloft has none:
always [], and any id is unknown). `members` (user ids) is Aloft's addition, the other
side of each user's `groups`: memberships can be set from either. Deleting a group takes
its shares and memberships with it (chalicelib/removal.py; the poller finishes).
"""
from __future__ import annotations

from chalice import Blueprint

from ..apidoc import LIST_RULE, NO_CONTENT, ORDERING, PAGE, STR, Param, doc
from ..errors import bad_request, field_error, forbidden, not_found, validate
from ..models import GroupOut, GroupPage, GroupWrite
from ..store import groups, users
from ..store.dynamo import ConditionFailed
from .common import BODY_CONTENT_TYPES, current_user, int_id, no_content, parse_body, query_params, respond
from .listing import answer, order

bp = Blueprint(__name__)
_DUPLICATE = {"name": ["group with this name already exists."]}


def _superuser() -> dict:
    user = current_user(bp.current_request)
    if not user.get("is_superuser"):
        raise forbidden()
    return user


def _members_by_group(all_users: list[dict]) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for user in all_users:
        for group_id in user.get("groups") or ():
            members.setdefault(group_id, []).append(user["id"])
    return members


def group_out(group: dict, members: list[int]) -> dict:
    return GroupOut(id=group["id"], name=group["name"], permissions=[],
                    members=sorted(members)).model_dump(mode="json")


def _target(group_id: str) -> dict:
    group = groups.get_by_id(int_id(group_id))
    if group is None:
        raise not_found()
    return group


def _validated(body: dict) -> GroupWrite:
    data = validate(GroupWrite, body)
    if data.permissions:  # no model permissions exist here, so every id is unknown
        raise field_error("permissions", f'Invalid pk "{data.permissions[0]}" - object does not exist.')
    return data


def _check_members(wanted: set[int], all_users: list[dict]) -> None:
    """400 on a member id that is no user (before anything is written)."""
    missing = sorted(wanted - {u["id"] for u in all_users})
    if missing:
        raise field_error("members", f'Invalid pk "{missing[0]}" - object does not exist.')


def _set_members(group_id: int, wanted: set[int], all_users: list[dict]) -> list[int]:
    """Make exactly these (existing) users the group's members."""
    for user in all_users:
        inside = group_id in (user.get("groups") or ())
        if user["id"] in wanted and not inside:
            users.join_group(user, group_id)
        elif user["id"] not in wanted and inside:
            users.leave_group(user, group_id)
    return sorted(wanted)


@bp.route("/api/admin/groups", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List groups (superuser)", {200: ([GroupOut], GroupPage)}, tags=("admin",),
     query=(Param("name", STR, "Exact name"), ORDERING, PAGE), listed=True, description=LIST_RULE)
def list_groups():
    _superuser()
    query = query_params(bp.current_request)
    members = _members_by_group(users.list_all())
    found = groups.list_all()
    if query.get("name") is not None:
        found = [g for g in found if g["name"] == query["name"]]
    items = [group_out(g, members.get(g["id"], [])) for g in sorted(found, key=lambda g: g["id"])]
    items = order(items, query.get("ordering"), set(GroupOut.model_fields))
    return answer(bp.current_request, items, query)


@bp.route("/api/admin/groups", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a group (superuser)", {201: GroupOut}, body=GroupWrite, tags=("admin",))
def create_group():
    _superuser()
    data = _validated(parse_body(bp.current_request).fields)
    all_users = users.list_all() if data.members else []
    _check_members(set(data.members), all_users)
    try:
        group = groups.create(data.name)
    except groups.DuplicateName:
        raise bad_request(_DUPLICATE) from None
    members = _set_members(group["id"], set(data.members), all_users) if data.members else []
    return respond(group_out(group, members), status=201)


@bp.route("/api/admin/groups/{group_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a group (superuser)", {200: GroupOut}, tags=("admin",))
def get_group(group_id):
    _superuser()
    group = _target(group_id)
    return respond(group_out(group, _members_by_group(users.list_all()).get(group["id"], [])))


@bp.route("/api/admin/groups/{group_id}", methods=["PUT", "PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Update a group: its name and members (superuser)", {200: GroupOut}, body=GroupWrite, tags=("admin",))
def update_group(group_id):
    """PATCH changes the given fields; PUT also requires `name`. `members` replaces the members."""
    _superuser()
    request = bp.current_request
    group = _target(group_id)
    body = parse_body(request).fields
    all_users = users.list_all()
    current_members = _members_by_group(all_users).get(group["id"], [])
    if request.method == "PUT" and "name" not in body:
        raise bad_request({"name": ["This field is required."]})
    current = {"name": group["name"], "members": current_members}
    data = _validated({**current, **{k: v for k, v in body.items() if k in GroupWrite.model_fields}})
    _check_members(set(data.members), all_users)
    try:
        group = groups.rename(group, data.name)
    except groups.DuplicateName:
        raise bad_request(_DUPLICATE) from None
    except ConditionFailed:
        raise not_found() from None  # deleted meanwhile
    members = current_members
    if "members" in body:
        members = _set_members(group["id"], set(data.members), all_users)
    return respond(group_out(group, members))


@bp.route("/api/admin/groups/{group_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete a group, its shares and memberships (superuser)", {204: NO_CONTENT}, tags=("admin",),
     description="The group is gone at once; its shares and memberships go within a short budget, the "
                 "scheduled poller removes the rest.")
def delete_group(group_id):
    from .. import removal

    _superuser()
    group = _target(group_id)
    try:
        removal.delete_group(group, bp.lambda_context)
    except ConditionFailed:
        raise not_found() from None  # deleted (or renamed) meanwhile
    return no_content()
