"""The one place that decides who may see or change a project (and so its tasks).

Aloft's model is WebODM's default: the owner holds every permission on their
projects and a superuser on all projects. Anything a user may not see is a 404,
never a 403, so ids of other people's projects do not leak.
"""
from __future__ import annotations

from .errors import NotFound
from .store import projects

ALL_PERMISSIONS = ["add", "change", "delete", "view"]


def permissions_on(user: dict | None, project: dict) -> list[str]:
    if user is None:
        return []
    if user.get("is_superuser") or project.get("owner") == user["id"]:
        return list(ALL_PERMISSIONS)
    return []


def is_owned(user: dict | None, project: dict) -> bool:
    return bool(user) and (bool(user.get("is_superuser")) or project.get("owner") == user["id"])


def can_change(user: dict | None, project: dict) -> bool:
    return "change" in permissions_on(user, project)


def can_read_task(user: dict | None, project: dict, task: dict) -> bool:
    """Task detail and files: project viewers, or anyone when the task or project is public."""
    return bool(task.get("public") or project.get("public")) or "view" in permissions_on(user, project)


def project_for(user: dict, project_id: int, need: str = "view") -> dict:
    """The project if `user` holds `need` on it, else NotFound (never a hint it exists)."""
    project = projects.get(project_id)
    if project is None or need not in permissions_on(user, project):
        raise NotFound()
    return project
