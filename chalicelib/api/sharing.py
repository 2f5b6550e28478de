"""Sharing routes: a project's `permissions/` and `edit/` (WebODM's `ProjectViewSet`
actions), and the two look-ups its share dialog makes, `/api/users/` and `/api/groups/`.

The rules (who may, what a share grants) are permissions.py's; the reads and writes of
the dialog are chalicelib/sharing.py's.
"""
from __future__ import annotations

from chalice import Blueprint

from .. import permissions, sharing
from ..apidoc import INT, STR, Param, doc
from ..errors import bad_request, not_found, validate
from ..models import ErrorMessage, GroupName, GroupShare, ProjectEdit, ProjectWrite, Success, UserName, UserShare
from ..store import groups, users
from ..store.dynamo import ConditionFailed
from .common import BODY_CONTENT_TYPES, current_user, int_id, parse_body, query_params, respond

bp = Blueprint(__name__)
_EDITABLE = ("name", "description", "tags")
_SEARCH = (Param("search", STR, "Case-insensitive prefix of the name"),
           Param("limit", INT, "At most this many (its absolute value)"))


@bp.route("/api/projects/{project_id}/permissions", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Who holds which permissions on a project (its `change` permission needed)",
     {200: [(UserShare, GroupShare)]}, tags=("sharing",),
     description="The owner's row first, then users, then groups. The `X-Groups-Count` header holds "
                 "the number of groups that exist (as WebODM).")
def project_permissions(project_id):
    user = current_user(bp.current_request)
    project = permissions.project_for(user, int_id(project_id), need="change")
    return respond(sharing.rows(project), headers={"X-Groups-Count": str(sharing.group_count())})


@bp.route("/api/projects/{project_id}/edit", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Edit a project's name, description, tags and sharing (its `change` permission needed)",
     {200: Success, 400: (ErrorMessage, "FieldErrors", "ErrorList", "Detail")}, body=ProjectEdit,
     tags=("sharing",),
     description="`permissions`, when given, becomes the whole sharing state: users and groups left "
                 "out lose their permissions; the owner's never change and rows flagged `owner` are "
                 "skipped. Unknown users or groups: 400 `{\"error\": \"Invalid user in permissions "
                 "list\"}` (or `group`). Fields left out keep their value (WebODM blanks them).")
def edit_project(project_id):
    """WebODM's `ProjectViewSet.edit`: project fields and the sharing list, in one transaction."""
    request = bp.current_request
    user = current_user(request)
    project = permissions.project_for(user, int_id(project_id), need="change")
    body = parse_body(request).fields
    given = {k: body[k] for k in _EDITABLE if k in body}
    current = {k: project.get(k) for k in set(ProjectWrite.model_fields) if project.get(k) is not None}
    data = validate(ProjectWrite, {**current, **given}).model_dump(mode="json")
    changes = {k: data[k] for k in given if data[k] != project.get(k)}
    try:
        sharing.edit(project, changes, body.get("permissions"))  # null: as if left out
    except ConditionFailed:
        raise not_found() from None  # deleted meanwhile
    return respond({"success": True})


def _limit(query: dict) -> int | None:
    """WebODM's `limit`: its absolute value; not a number: 400."""
    if query.get("limit") is None:
        return None
    try:
        return abs(int(query["limit"]))
    except ValueError:
        raise bad_request("Invalid query parameters") from None


def _matching(names: list[str], query: dict) -> list[int]:
    """Positions of the names starting with `search` (any case), at most `limit` of them."""
    limit = _limit(query)
    prefix = query.get("search")
    found = [i for i, name in enumerate(names) if prefix is None or name.lower().startswith(prefix.lower())]
    return found if limit is None else found[:limit]


@bp.route("/api/users", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Find users to share with (usernames only)", {200: [UserName]}, query=_SEARCH, tags=("sharing",),
     description="WebODM's share dialog look-up. Only usernames are returned and only usernames are "
                 "searched: no one's e-mail is shown or can be probed.")
def search_users():
    current_user(bp.current_request)
    query = query_params(bp.current_request)
    names = [u["username"] for u in users.list_all()]
    return respond([{"username": names[i]} for i in _matching(names, query)])


@bp.route("/api/groups", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Find groups to share with", {200: [GroupName]}, query=_SEARCH, tags=("sharing",))
def search_groups():
    """Groups by name, as WebODM's `GroupsList`."""
    current_user(bp.current_request)
    query = query_params(bp.current_request)
    found = groups.list_all()
    return respond([{"name": found[i]["name"], "id": found[i]["id"]}
                    for i in _matching([g["name"] for g in found], query)])
