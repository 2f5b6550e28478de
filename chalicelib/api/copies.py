"""A task's backup and the duplicates: `GET .../tasks/{tid}/backup` (WebODM's `TaskBackup`),
`POST /api/projects/{id}/duplicate/` (`ProjectViewSet.duplicate`) and
`POST .../tasks/{tid}/duplicate/` (`TaskViewSet.duplicate`). The work is in chalicelib/backup.py
and chalicelib/duplicate.py."""
from __future__ import annotations

from chalice import Blueprint
from pydantic import BaseModel

from .. import access, backup, duplicate, permissions, storage
from ..apidoc import REDIRECT, STR, Param, doc
from ..models import ProjectOut, TaskOut
from ..paths import safe_filename
from .common import BODY_CONTENT_TYPES, caller_task, current_user, int_id, optional_user, query_params, respond
from .exports import ExportJob
from .pictures import disposition, redirect
from .tasks import task_json

bp = Blueprint(__name__)
ONE = "/api/projects/{project_id}/tasks/{task_id}"


class DuplicatedProject(BaseModel):
    success: bool
    project: ProjectOut


class DuplicatedTask(BaseModel):
    success: bool
    task: TaskOut


class DuplicateError(BaseModel):
    error: str


@bp.route(ONE + "/backup", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Download a task's backup zip", {302: REDIRECT, 202: ExportJob}, auth="optional", tags=("downloads",),
     query=(Param("filename", STR, "The download's file name (default `<task name>-backup.zip`)"),),
     description="WebODM's task backup: a zip of the input images (at its root), `assets/` (the task's "
                 "results) and `data/backup.json` (the task's fields; `data/console_output.txt` too), "
                 "which `tasks/import` restores. 302 to a short-lived presigned S3 URL once it is built "
                 "(built once per version of the task). A large one is built by the worker: while it is, "
                 "202 `{\"celery_task_id\", \"filename\"}` (follow it with `GET /api/workers/check/{id}`, "
                 "fetch it with `GET /api/workers/get/{id}`, or ask this route again).")
def task_backup(project_id, task_id):
    request = bp.current_request
    task = access.readable_task(optional_user(request), project_id, task_id)
    state, value = backup.request(task, bp.lambda_context)
    if state == backup.JOB:
        return respond({"celery_task_id": value["job"], "filename": value["filename"]}, status=202,
                       headers={"Retry-After": "5"})
    wanted = query_params(request).get("filename")
    name = safe_filename(wanted) if wanted else backup.filename(task)
    return redirect(storage.presign_get(value, disposition("attachment", name), "application/zip"))


def _project_json(project: dict) -> dict:
    """WebODM serializes the new project without the request: no permissions, not owned."""
    return ProjectOut(
        id=project["id"], tasks=sorted(project.get("tasks") or ()), owned=False,
        created_at=project["created_at"], permissions=[], tags=project.get("tags") or [],
        name=project["name"], description=project.get("description", ""), public=False,
        public_edit=False, public_id=None).model_dump(mode="json")


@bp.route("/api/projects/{project_id}/duplicate", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Duplicate a project with its tasks", {200: (DuplicatedProject, DuplicateError)}, tags=("projects",),
     description="WebODM's project duplicate (needs the change permission, else 404): a new project "
                 "\"Copy of <name>\" owned by the caller, created now, private, holding a copy of every task "
                 "under its own name (files, console, map fields). `project` is serialized as WebODM does, "
                 "without the request (`permissions: []`, `owned: false`). Copies whose files are still "
                 "being copied show status 20 with pending action 5 (as an import) until ready. "
                 "`{\"error\": \"Cannot duplicate project\"}` when it cannot be made.")
def duplicate_project(project_id):
    user = current_user(bp.current_request)
    project = permissions.project_for(user, int_id(project_id), need="change")
    copy = duplicate.duplicate_project(user, project, bp.lambda_context)
    if copy is None:
        return respond({"error": duplicate.PROJECT_FAILED})
    return respond({"success": True, "project": _project_json(copy)})


@bp.route(ONE + "/duplicate", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Duplicate a task", {200: (DuplicatedTask, DuplicateError)}, tags=("tasks",),
     description="WebODM's task duplicate (needs the change permission on its project, else 404): a copy "
                 "named \"Copy of <name>\" in the same project, created now, with the task's files, console "
                 "and map fields. A large task is answered at once and shows status 20 with pending action 5 "
                 "(as an import) until its files are copied. `{\"error\": \"Cannot duplicate task\"}` when "
                 "it cannot be made.")
def duplicate_task(project_id, task_id):
    _, project, task = caller_task(bp.current_request, project_id, task_id, need="change")
    copy = duplicate.duplicate_task(project, task, bp.lambda_context)
    if copy is None:
        return respond({"error": duplicate.TASK_FAILED})
    return respond({"success": True, "task": task_json(copy)})
