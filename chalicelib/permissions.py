"""The one place that decides who may see or change a project (and so its tasks).

WebODM's model (django-guardian object permissions on projects, `app/api/common.py`
`get_and_check_project`, DRF's `DjangoObjectPermissions`):
- the owner holds `add`, `change`, `delete` and `view` on their projects, a superuser on all;
- anyone else holds what the project's shares give them or their groups (store/shares.py),
  the union of their own row and their groups' rows;
- without `view` a project does not exist for the caller (404, never a hint it exists);
- the generic project writes (PUT/PATCH) answer 403 to a caller who can view but lacks the
  permission, as DRF's object permissions do; every other check (tasks, `edit/`,
  `permissions/`, downloads) is `get_and_check_project`'s: 404;
- tasks have no permissions of their own: they follow their project; a public task, or a
  task of a public project, is readable by anyone (anonymous callers too), and a public
  project itself stays 404 to those who cannot view it;
- `public_edit` grants no write through this API (WebODM uses it only for the 3D scene and
  camera views, which Aloft does not serve);
- DELETE by the owner or a superuser deletes the project; anyone else only leaves it
  (their own permissions go, the project stays), as WebODM's `ProjectViewSet.destroy`.

A caller's memberships come with their user row (users' `groups`), so a check costs one
read of the caller's rows on the project, none for the owner or a superuser. What a
request has learnt is kept on its user dict (`_PERMS`), so checking a project and then
showing it reads the shares once.
"""
from __future__ import annotations

from .errors import NotFound, PermissionDenied
from .store import projects, shares

ALL_PERMISSIONS = ["add", "change", "delete", "view"]
_PERMS = "_project_permissions"  # per-request cache on the caller's user dict


def grantees(user: dict) -> list[str]:
    """The share keys that speak for this user: theirs and each of their groups'."""
    return [shares.user_grantee(user["id"])] + [shares.group_grantee(g) for g in sorted(user.get("groups") or ())]


def _union(rows: list[dict]) -> list[str]:
    held = set()
    for row in rows:
        held.update(p for p in row.get("perms") or () if p in ALL_PERMISSIONS)
    return sorted(held)


def is_owned(user: dict | None, project: dict) -> bool:
    """WebODM's `owned`: the caller is the owner, or a superuser."""
    return bool(user) and (bool(user.get("is_superuser")) or project.get("owner") == user["id"])


def permissions_on(user: dict | None, project: dict) -> list[str]:
    """The caller's permissions on a project, sorted (WebODM's `permissions` field)."""
    if user is None:
        return []
    if is_owned(user, project):
        return list(ALL_PERMISSIONS)
    known = user.setdefault(_PERMS, {})
    if project["id"] not in known:
        known[project["id"]] = _union(shares.grants(project["id"], grantees(user)))
    return list(known[project["id"]])


def can_change(user: dict | None, project: dict) -> bool:
    return "change" in permissions_on(user, project)


def can_read_task(user: dict | None, project: dict, task: dict) -> bool:
    """Task detail and files: project viewers, or anyone when the task or project is public."""
    return bool(task.get("public") or project.get("public")) or "view" in permissions_on(user, project)


def deletes_project(user: dict, project: dict) -> bool:
    """DELETE by the owner or a superuser deletes; by anyone else it only unshares."""
    return is_owned(user, project)


def project_for(user: dict | None, project_id: int, need: str = "view") -> dict:
    """The project if the caller holds `view` and `need` on it, else NotFound (WebODM's
    `get_and_check_project`: tasks, actions, `edit/`, `permissions/`)."""
    project = projects.get(project_id)
    if project is None:
        raise NotFound()
    held = permissions_on(user, project)
    if "view" not in held or need not in held:
        raise NotFound()
    return project


def project_to_write(user: dict, project_id: int, need: str) -> dict:
    """The project for a generic write (PUT/PATCH): NotFound without `view`, PermissionDenied
    (403) with `view` but without `need`, as DRF's object permissions answer."""
    project = project_for(user, project_id)
    if need not in permissions_on(user, project):
        raise PermissionDenied()
    return project


def visible_projects(user: dict) -> list[dict]:
    """Every project the caller may view, newest first.

    A constant number of DynamoDB calls whatever the number of projects and shares: one
    Query of the caller's own projects, one Query of `by-grantee` for the caller and one
    per group they belong to, and one BatchGetItem of the projects shared with them (per
    100 of them, DynamoDB's batch size). A superuser's is the one Query of all projects.
    """
    if user.get("is_superuser"):
        return projects.list_all()
    owned = projects.list_for_owner(user["id"])
    owned_ids = {p["id"] for p in owned}
    rows_by_project: dict[int, list[dict]] = {}
    for row in shares.for_grantees(grantees(user)):
        rows_by_project.setdefault(row["project"], []).append(row)
    known = user.setdefault(_PERMS, {})
    wanted = []
    for project_id, rows in rows_by_project.items():
        if project_id in owned_ids:
            continue
        known[project_id] = _union(rows)
        if "view" in known[project_id]:
            wanted.append(project_id)
    shared = projects.get_many(wanted) if wanted else []
    return sorted(owned + shared, key=lambda p: (p["created_at"], p["id"]), reverse=True)
