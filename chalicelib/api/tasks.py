"""Tasks API: /api/projects/{project_id}/tasks/ (WebODM's `app/api/tasks.py`).

Routes record user intent (new tasks, edits, `pending_action`); the poller owns
status, progress, `uuid` and assets.
"""
from __future__ import annotations

import json
import re
import unicodedata
import uuid as uuid_lib

from chalice import Blueprint, Response

from .. import access, permissions, queue, storage, uploads, webhooks
from ..apidoc import CONSOLE, INT, LIST_RULE, NO_CONTENT, ORDERING, PAGE, REDIRECT, STR, Param, doc
from ..errors import ApiError, bad_request, field_error, forbidden, not_found, validate
from ..models import (MAX_TASKS_PER_PROJECT, OutputJson, PendingAction, StatusCode, Success, TaskOut, TaskPage,
                      TaskWrite, utcnow)
from ..paths import safe_filename, safe_relative_path
from ..removal import remove_task
from ..store import nodes as node_store
from ..store import output, projects, tasks
from ..store.dynamo import ConditionFailed, transact
from . import payload
from ..taskview import nodes_of as _nodes_of, task_json, task_out  # noqa: F401 - api modules import them here
from .common import (BODY_CONTENT_TYPES, MAX_ID, Body, caller_task, current_user, int_id, optional_user,
                     parse_body, query_params, respond)
from .listing import answer, order

bp = Blueprint(__name__)
BASE = "/api/projects/{project_id}/tasks"
ONE = BASE + "/{task_id}"
_WRITABLE = set(TaskWrite.model_fields)
_FALSE_STRINGS = ("", "false", "0")
ASSET_MISSING = "Asset does not exist"


# ------------------------------------------------------------------ helpers

def _load(project_id: str, task_id: str, need: str = "change") -> tuple[dict, dict, dict]:
    """(user, project, task) for a caller who holds `need` on the project, else 404."""
    return caller_task(bp.current_request, project_id, task_id, need)


def _readable(project_id: str, task_id: str) -> dict:
    """A task the caller may read: a project viewer's, or a public one (even anonymously)."""
    return access.readable_task(optional_user(bp.current_request), project_id, task_id)


def _check_node(node_id) -> dict[int, dict]:
    """{id: node} for an existing node (none asked: {}), else a 400 on `processing_node`."""
    if node_id is None:
        return {}
    node = node_store.get(node_id) if 1 <= node_id <= MAX_ID else None  # no key lookup past 2**53
    if node is None:
        raise field_error("processing_node", f'Invalid pk "{node_id}" - object does not exist.')
    return {node_id: node}


def _project_ref(value) -> dict | None:
    """The project a `project` field names (an integer id, or its text), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        project_id = int(value)
    except ValueError:
        return None
    return projects.get(project_id) if 1 <= project_id <= MAX_ID else None


def check_room(project: dict | None) -> None:
    """400 when a project already holds MAX_TASKS_PER_PROJECT tasks (the bound that keeps a
    page of projects within one API answer)."""
    if projects.is_full(project):
        raise bad_request(f"A project holds at most {MAX_TASKS_PER_PROJECT} tasks")


def insert_task(project: dict, task: dict) -> dict:
    """Store a new task and count it on its project in one transaction: a 400 if the project
    filled up meanwhile, a 404 if it went away; the task as stored (version 1)."""
    try:
        transact(tasks.create_request(task), ("Update", projects.add_task_request(project["id"], task["id"])))
    except ConditionFailed:
        check_room(projects.get(project["id"]))
        raise not_found() from None
    task["version"] = 1
    return task


def _writable_fields(body: Body) -> dict:
    return {k: v for k, v in body.fields.items() if k in _WRITABLE}


def new_task(project_id: int, data: TaskWrite, partial: bool) -> dict:
    fields = data.model_dump(mode="json")
    fields.pop("partial", None)
    return {**fields, "project_id": project_id, "id": str(uuid_lib.uuid4()), "created_at": utcnow(),
            "partial": partial, "status": None, "pending_action": None, "last_error": None,
            "uuid": "", "processing_time": -1, "images_count": 0, "size_bytes": 0,
            "upload_progress": 0.0, "resize_progress": 0.0, "running_progress": 0.0,
            "available_assets": [], "statistics": {}, "extent": None, "epsg": None, "wkt": None,
            **output.reset_fields()}


# ------------------------------------------------------------------ list and create

@bp.route(BASE, methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List a project's tasks", {200: ([TaskOut], TaskPage)}, tags=("tasks",),
     query=(Param("status", INT), Param("available_assets", STR, "Comma-separated; all must be present"),
            Param("bbox", STR, "xmin,ymin,xmax,ymax in lon/lat: tasks whose orthophoto, DSM or DTM "
                  "extent intersects it"),
            ORDERING, PAGE), listed=True, description=LIST_RULE)
def list_tasks(project_id):
    """All tasks of a project as a plain array (as WebODM: never paginated, unless it would not
    fit Lambda's answer or `page` is given); `status`, `available_assets`, `bbox`, `ordering`."""
    request = bp.current_request
    user = current_user(request)
    project = permissions.project_for(user, int_id(project_id))
    query = query_params(request)
    items = [t for t in tasks.list_for_project(project["id"]) if not tasks.is_hidden(t)]
    if query.get("status", "") != "":
        try:
            wanted = int(query["status"])
        except ValueError:
            raise bad_request("Invalid status parameter") from None
        items = [t for t in items if t.get("status") == wanted]
    if query.get("available_assets"):
        wanted_assets = [a for a in query["available_assets"].split(",") if a]
        items = [t for t in items if all(a in (t.get("available_assets") or []) for a in wanted_assets)]
    if query.get("bbox"):
        box = _bbox(query["bbox"])
        items = [t for t in items if any(_intersects(box, r["bounds"]) for r in (t.get("rasters") or {}).values())]
    nodes = _nodes_of(items)
    out = [task_out(t, nodes) for t in items]
    return answer(request, order(out, query.get("ordering"), set(TaskOut.model_fields)), query)


def _bbox(text: str) -> tuple[float, float, float, float]:
    """WebODM's `bbox` filter value: four finite numbers, min before max."""
    import math

    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[0] > box[2] or box[1] > box[3]:
        raise bad_request("Invalid bbox parameter")
    return box


def _intersects(box: tuple, bounds: list) -> bool:
    """Two lon/lat rectangles share at least a point (PostGIS `intersects` on envelopes)."""
    return box[0] <= bounds[2] and bounds[0] <= box[2] and box[1] <= bounds[3] and bounds[1] <= box[3]


@bp.route(BASE, methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a task with its images (or a partial task)", {201: TaskOut}, body=TaskWrite, files="images",
     tags=("tasks",),
     description=("The whole request is one Lambda event on AWS: at most 6,291,456 bytes of JSON with the "
                  "multipart body base64-encoded in it, so about 4.7 MB of images (more: 413 "
                  '`{"message": "Request Too Long"}`). For a real dataset create a partial task '
                  "(`partial=true`) and send the images with `presign/` (any size) or `upload/` "
                  "(10 MB per request), then `commit/`."))
def create_task(project_id):
    """Create a task with its images (multipart `images`), or a partial one to upload into."""
    request = bp.current_request
    user = current_user(request)
    project = permissions.project_for(user, int_id(project_id), need="change")
    body = parse_body(request)
    fields = _writable_fields(body)
    partial = str(fields.pop("partial", "")).strip().lower() not in _FALSE_STRINGS
    if fields.get("processing_node") in ("", None):
        fields.pop("processing_node", None)
    data = validate(TaskWrite, fields)
    nodes = _check_node(data.processing_node)
    if not partial and len(body.files) < 2:
        raise bad_request("Cannot create task, you need at least 2 images")
    check_room(project)
    task = insert_task(project, new_task(project["id"], data, partial=True))  # hidden from the poller while uploading
    changes: dict = {} if partial else {"partial": False}
    if "resize_to" in fields:  # WebODM: RESIZE is pending whenever the key was sent
        changes["pending_action"] = int(PendingAction.RESIZE)
    if body.files:
        try:
            _, (count, size) = uploads.store_files(task["id"], body.files)  # a new task: no one else uploads
        except Exception:
            remove_task(task)
            raise
        changes.update(images_count=count, size_bytes=size)
    if not partial:
        changes.update(queue.wake_fields())  # workable now: its worker starts at once
    if changes:
        task = tasks.update(task, changes)
    if not partial:
        queue.send(task)
    return respond(task_out(task, nodes), status=201)


# ------------------------------------------------------------------ one task

@bp.route(ONE, methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a task (public tasks need no login)", {200: TaskOut}, auth="optional", tags=("tasks",))
def get_task(project_id, task_id):
    """A task; public tasks and tasks of public projects are readable without login."""
    return respond(task_json(_readable(project_id, task_id)))


@bp.route(ONE, methods=["PUT", "PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Update a task; `project` moves it", {200: TaskOut, 403: "Detail", 409: "Detail"}, body=TaskWrite,
     tags=("tasks",))
def update_task(project_id, task_id):
    """Change writable fields; `project` moves the task (needs change rights on the target)."""
    request = bp.current_request
    user, project, task = _load(project_id, task_id)
    body = parse_body(request)
    fields = _writable_fields(body)
    if "processing_node" in fields and fields["processing_node"] in (None, ""):
        raise field_error("processing_node", "This field may not be null.")
    if request.method == "PUT" and "processing_node" not in fields:
        raise field_error("processing_node", "This field is required.")
    target = project
    if "project" in body.fields:
        target = _project_ref(body.fields["project"])
        if target is None or not permissions.can_change(user, target):
            raise forbidden()
    if "processing_node" in fields:
        validate(TaskWrite, {"processing_node": fields["processing_node"]})
        _check_node(int(fields["processing_node"]))

    def change(current: dict):
        merged = {k: current.get(k) for k in _WRITABLE if current.get(k) is not None}
        data = validate(TaskWrite, {**merged, **fields}).model_dump(mode="json")
        changed = {k: v for k, v in data.items() if k in fields and current.get(k) != v}
        if changed and tasks.needs_poller({**current, **changed}) and (
                "processing_node" in changed or not current.get("step_token")):
            changed.update(queue.wake_fields())  # a new node (or a task with no step pending) starts now
        return changed

    updated = tasks.mutate(project["id"], task["id"], change)
    if updated is None or tasks.is_hidden(updated):
        raise not_found()
    if updated.get("step_token") != task.get("step_token"):
        queue.send(updated)
    if target["id"] != project["id"]:
        check_room(target)
        try:
            updated = tasks.move(updated, target["id"])
        except ConditionFailed:
            check_room(projects.get(target["id"]))
            raise ApiError(409, {"detail": "The task changed while it was being moved; try again."}) from None
        if tasks.needs_poller(updated):
            queue.send(updated)  # its messages named the old project: they find nothing now
    return respond(task_json(updated))


@bp.route(ONE, methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Remove a task", {204: NO_CONTENT}, tags=("tasks",))
def delete_task(project_id, task_id):
    """Same as POST .../remove/ (WebODM's docs list DELETE)."""
    _, _, task = _load(project_id, task_id, need="delete")
    remove_task(task)
    return Response(body="", status_code=204, headers={"Content-Type": "application/json"})


# ------------------------------------------------------------------ actions

def _set_pending(project: dict, task: dict, action: PendingAction) -> None:
    """Record the action and start its worker at once (a new chain: any step already on
    its way for the task is stale from now on)."""
    def change(current: dict):
        return {"pending_action": int(action), "partial": False, "last_error": None, **queue.wake_fields()}

    updated = tasks.mutate(project["id"], task["id"], change)
    if action == PendingAction.CANCEL and updated is not None and not updated.get("uuid") \
            and not tasks.is_leased(updated):
        # Never sent to a node: the cancel completes at once, with its `task.canceled`.
        updated = tasks.mutate(project["id"], task["id"], lambda current: {
            "status": int(StatusCode.CANCELED), "pending_action": None}
            if current.get("pending_action") == PendingAction.CANCEL and not current.get("uuid") else None,
            writer=webhooks.write_change)
    if updated is not None and tasks.needs_poller(updated):
        queue.send(updated)


@bp.route(ONE + "/cancel", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Cancel a task", {200: Success}, tags=("tasks",))
def cancel_task(project_id, task_id):
    _, project, task = _load(project_id, task_id)
    _set_pending(project, task, PendingAction.CANCEL)
    return respond({"success": True})


@bp.route(ONE + "/restart", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Restart a task", {200: Success}, tags=("tasks",))
def restart_task(project_id, task_id):
    _, project, task = _load(project_id, task_id)
    _set_pending(project, task, PendingAction.RESTART)
    return respond({"success": True})


@bp.route(ONE + "/remove", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Remove a task", {200: Success}, tags=("tasks",))
def remove_task_action(project_id, task_id):
    _, _, task = _load(project_id, task_id, need="delete")
    remove_task(task)
    return respond({"success": True})


# ------------------------------------------------------------------ console output

def _int_param(query: dict, name: str) -> int:
    try:
        return int(query.get(name, 0) or 0)
    except ValueError:
        raise bad_request("Invalid parameter") from None


# How one console line, and the separator after it, appear in each format's body.
_CONSOLE_PIECES = {
    "text": (lambda line: json.dumps(line)[1:-1], "\\n"),  # inside one JSON string
    "json": (json.dumps, ","),                              # items of `lines`
    "raw": (lambda line: line, "\n"),                       # plain text
}
_CONSOLE_ENVELOPE = 256  # `{"lines":[],"count":N}`, the quotes of a JSON string


@bp.route(ONE + "/output", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Console output", {200: CONSOLE}, tags=("tasks",),
     query=(Param("line", INT), Param("limit", INT), Param("f", {"enum": ["text", "json", "raw"]})),
     description="WebODM's console read: lines from `line` (`limit` of them; a negative `limit`: the "
                 "last ones). An answer stops at a line boundary before it would pass 4 MiB (measured "
                 "escaped, as it travels in Lambda's response), keeping the leading lines of the "
                 "selection, or its trailing ones for a negative `limit`; `count` (f=json) stays the "
                 "total. A client reading incrementally (`?line=<lines it has>`) gets every line.")
def task_output(project_id, task_id):
    """Console lines from `line`, `limit` of them (negative: the last ones), as text/json/raw,
    at most payload.BUDGET of them (see the description)."""
    query = query_params(bp.current_request)
    _, _, task = _load(project_id, task_id, need="view")
    line, limit = _int_param(query, "line"), _int_param(query, "limit")
    fmt = query.get("f", "text")
    if fmt not in ("text", "json", "raw"):
        raise bad_request("Invalid parameter")
    piece, separator = _CONSOLE_PIECES[fmt]
    separator_cost = payload.escaped(separator)
    lines, count = output.read(task, line, limit, budget=payload.BUDGET - _CONSOLE_ENVELOPE,
                               cost=lambda text: payload.escaped(piece(text)) + separator_cost)
    if fmt == "json":
        return respond(OutputJson(lines=lines, count=count).model_dump())
    text = "\n".join(lines)
    if fmt == "raw":
        return Response(body=text, status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})
    return respond(json.dumps(text))


# ------------------------------------------------------------------ downloads

def _disposition(kind: str, filename: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode() or "download"
    ascii_name = re.sub(r'["\\\r\n;]', "", ascii_name)
    from urllib.parse import quote

    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _redirect(url: str) -> Response:
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@bp.route(ONE + "/download/{asset}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Download a named asset", {302: REDIRECT}, auth="optional", tags=("downloads",),
     query=(Param("inline", STR, "Present: inline disposition"), Param("filename", STR)))
def download_asset(project_id, task_id, asset):
    """302 to a short-lived presigned S3 URL for one of WebODM's named assets."""
    from ..assets import asset_key, content_type_for, download_filename

    query = query_params(bp.current_request)
    task = _readable(project_id, task_id)
    key = asset_key(storage.task_prefix(task["id"]), asset)
    if key is None or asset not in (task.get("available_assets") or []):
        raise not_found(ASSET_MISSING)
    filename = safe_filename(query["filename"]) if query.get("filename") else \
        download_filename(task.get("name"), asset)
    kind = "inline" if "inline" in query else "attachment"
    return _redirect(storage.presign_get(key, _disposition(kind, filename), content_type_for(asset)))


@bp.route(ONE + "/assets/{asset_path+}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Any file under the task's assets", {302: REDIRECT}, auth="optional", tags=("downloads",))
def raw_asset(project_id, task_id):
    """302 to any file under the task's assets (served inline); traversal is refused."""
    from ..assets import content_type_for

    task = _readable(project_id, task_id)
    path = safe_relative_path((bp.current_request.uri_params or {}).get("asset_path", ""), allow_directory=False)
    key = f"{storage.task_prefix(task['id'])}assets/{path}" if path else None
    if key is None or storage.object_size(key) is None:
        raise not_found(ASSET_MISSING)
    name = path.rsplit("/", 1)[-1]
    return _redirect(storage.presign_get(key, _disposition("inline", name), content_type_for(name)))
