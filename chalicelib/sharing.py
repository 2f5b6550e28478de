"""The sharing dialog's two operations: who holds what on a project (WebODM's
`ProjectViewSet.permissions`) and replacing that list (`ProjectViewSet.edit`).

Who may call them is permissions.py's rule (`change`); what they read and write are the
project's share rows (store/shares.py). Refusals are WebODM's 400 `{"error": "..."}`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import InvalidInput
from .permissions import ALL_PERMISSIONS
from .store import groups, projects, shares, users
from .store.dynamo import transact

INVALID_USER = "Invalid user in permissions list"
INVALID_GROUP = "Invalid group in permissions list"
INVALID_PERMISSIONS = "Invalid permissions"
# One dialog lists every grantee; names are resolved concurrently, so this bounds the work
# of one request (and of one `edit/`) far inside a route's time.
MAX_GRANTEES = 1000
TOO_MANY = f"A project is shared with at most {MAX_GRANTEES} users and groups"
_LOOKUPS_AT_ONCE = 16
_PART = 99  # share writes per transaction: DynamoDB's 100 items, one of them the project's


def _refuse(message: str) -> InvalidInput:
    return InvalidInput({"error": message})


def _usernames(user_ids: list[int]) -> dict[int, str]:
    """id -> username of the users that still exist (one by-id lookup each, concurrently)."""
    if not user_ids:
        return {}
    with ThreadPoolExecutor(max_workers=min(_LOOKUPS_AT_ONCE, len(user_ids))) as pool:
        found = pool.map(users.get_by_id, user_ids)
    return {u["id"]: u["username"] for u in found if u is not None}


def rows(project: dict) -> list[dict]:
    """The dialog's list: the owner's row first, then users, then groups (by name)."""
    stored = shares.for_project(project["id"])
    user_ids, group_ids = [], []
    for row in stored:
        kind, number = shares.parse_grantee(row["grantee"])
        (user_ids if kind == shares.USER else group_ids).append(number)
    names = _usernames(sorted({project["owner"], *user_ids}))
    group_names = {g["id"]: g["name"] for g in groups.list_all()} if group_ids else {}
    owner = [{"username": names[project["owner"]], "owner": True, "permissions": list(ALL_PERMISSIONS)}] \
        if project["owner"] in names else []
    user_rows, group_rows = [], []
    for row in stored:
        kind, number = shares.parse_grantee(row["grantee"])
        perms = [p for p in ALL_PERMISSIONS if p in (row.get("perms") or ())]
        if kind == shares.USER and number in names and number != project["owner"]:
            user_rows.append({"username": names[number], "owner": False, "permissions": perms})
        elif kind == shares.GROUP and number in group_names:
            group_rows.append({"groupname": group_names[number], "permissions": perms})
    return owner + sorted(user_rows, key=lambda r: r["username"]) + sorted(group_rows, key=lambda r: r["groupname"])


def group_count() -> int:
    """WebODM's `X-Groups-Count`: how many groups exist."""
    return groups.count()


def _parse(value: Any) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The `permissions` list as ({username: perms}, {groupname: perms}); rows flagged `owner`
    and rows naming nobody are skipped, unknown permission names ignored (as WebODM)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise _refuse(INVALID_PERMISSIONS) from None
    if not isinstance(value, list):
        raise _refuse(INVALID_PERMISSIONS)
    by_user: dict[str, set[str]] = {}
    by_group: dict[str, set[str]] = {}
    for row in value:
        if not isinstance(row, dict) or not isinstance(row.get("permissions", []), list):
            raise _refuse(INVALID_PERMISSIONS)
        perms = {p for p in row.get("permissions", []) if isinstance(p, str) and p in ALL_PERMISSIONS}
        if row.get("groupname"):
            if not isinstance(row["groupname"], str):
                raise _refuse(INVALID_GROUP)
            by_group[row["groupname"]] = perms
        elif row.get("owner") or not row.get("username"):
            continue
        elif not isinstance(row["username"], str):
            raise _refuse(INVALID_USER)
        else:
            by_user[row["username"]] = perms
    if len(by_user) + len(by_group) > MAX_GRANTEES:
        raise _refuse(TOO_MANY)
    return by_user, by_group


def _wanted(project: dict, value: Any) -> dict[str, set[str]]:
    """grantee key -> perms the list asks for (the owner excluded: their rights never change)."""
    by_user, by_group = _parse(value)
    found_users = {u["username"]: u for u in users.get_many(list(by_user))} if by_user else {}
    if set(by_user) - set(found_users):
        raise _refuse(INVALID_USER)
    found_groups = {g["name"]: g for g in groups.get_many(list(by_group))} if by_group else {}
    if set(by_group) - set(found_groups):
        raise _refuse(INVALID_GROUP)
    wanted = {}
    for username, perms in by_user.items():
        user = found_users[username]
        if user["id"] != project["owner"] and perms:
            wanted[shares.user_grantee(user["id"])] = perms
    for name, perms in by_group.items():
        if perms:
            wanted[shares.group_grantee(found_groups[name]["id"])] = perms
    return wanted


def edit(project: dict, changes: dict, permissions: Any = None) -> None:
    """Apply `changes` (project fields) and, unless `permissions` is None, make that list the
    project's whole sharing state: grantees left out lose everything. One transaction (in
    parts of 100 writes when more change at once, each checking the project still exists)."""
    writes: list[tuple[str, dict]] = []
    if permissions is not None:
        wanted = _wanted(project, permissions)
        current = {row["grantee"]: set(row.get("perms") or ()) for row in shares.for_project(project["id"])}
        for grantee, perms in wanted.items():
            if current.get(grantee) != perms:
                writes.append(shares.put_request(project["id"], grantee, perms))
        writes.extend(shares.delete_request(project["id"], g) for g in current if g not in wanted)
    if not writes and not changes:
        return
    still_there = ("ConditionCheck", projects.visible_check_request(project["id"]))
    first = ("Update", projects.update_request(project["id"], changes)) if changes else still_there
    for start in range(0, max(1, len(writes)), _PART):
        transact(first if start == 0 else still_there, *writes[start:start + _PART])


def leave(user: dict, project: dict) -> None:
    """A sharee's DELETE: their own permissions on the project go (their groups' stay), as
    WebODM's `ProjectViewSet.destroy` does for anyone but the owner."""
    shares.delete(project["id"], shares.user_grantee(user["id"]))
