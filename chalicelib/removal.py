"""Removing tasks and projects: shared by the routes and the poller.

A project delete hides the project at once (projects.mark_deleting); each of its
tasks is then removed, and the project row goes when its last task has gone.
"""
from __future__ import annotations

from .store import projects


def remove_project_tasks(project: dict) -> None:
    """Remove every task of a hidden project, then the project if nothing is left."""
    projects.delete_if_empty(project["id"])
