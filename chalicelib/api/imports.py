"""Task import: WebODM's `POST .../tasks/import` and the external three-step import.

Routes only record what arrived and create the task (status 20, pending action IMPORT 5,
no node); the worker fetches, unpacks and completes it (chalicelib/steps/imports.py). A `url`
is never opened here: the worker downloads it under the SSRF guard (chalicelib/netguard.py).
Staging and claims: chalicelib/imports.py.
"""
from __future__ import annotations

import uuid as uuid_lib

from chalice import Blueprint

from .. import imports, permissions, queue, uploads
from ..apidoc import INVALID, doc
from ..errors import bad_request, field_error, validate
from ..models import (ExternalCommit, ExternalInit, ExternalUploaded, ExternalUploadForm, ImportForm,
                      ImportPresignRequest, ImportPresignResponse, PendingAction, StatusCode, TaskOut,
                      TaskWrite, Uploaded)
from ..store import tasks
from .common import BODY_CONTENT_TYPES, Body, int_id, optional_user, parse_body, respond
from .tasks import check_room, insert_task, new_task, task_json

bp = Blueprint(__name__)
IMPORT = "/api/projects/{project_id}/tasks/import"
EXTERNAL = IMPORT + "/external"


def _project(project_id) -> dict:
    """WebODM's `get_and_check_project(..., ('change_project',))`: 404 for anyone else,
    anonymous callers included."""
    return permissions.project_for(optional_user(bp.current_request), int_id(project_id), need="change")


def _text(body: Body, name: str) -> str | None:
    value = body.fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise field_error(name, "Not a valid string.")
    return value


def _name(body: Body, default: str | None) -> str | None:
    name = _text(body, "name")
    if name is None:
        return default
    return validate(TaskWrite, {"name": name}).name


def _create(project: dict, name: str | None, import_url: str, source: dict | None = None,
            task_id: str | None = None) -> dict:
    """The import task, workable at once (WebODM: status RUNNING, pending action IMPORT)."""
    check_room(project)
    task = new_task(project["id"], TaskWrite(name=name, auto_processing_node=False), partial=False)
    if task_id:
        task["id"] = task_id
    task.update({"status": int(StatusCode.RUNNING), "pending_action": int(PendingAction.IMPORT),
                 "import_url": import_url, **queue.wake_fields()})
    if source:
        task["import_source"] = source
    insert_task(project, task)
    queue.send(task)
    return task


def _claimed(project: dict, staging: str, create) -> dict:
    """Create the task a staging object becomes, once; a repeated request gets the same task."""
    task_id = str(uuid_lib.uuid4())
    owner = imports.claim(staging, task_id)
    if owner != task_id:
        existing = tasks.get(project["id"], owner)
        if existing is None or tasks.is_hidden(existing):
            raise bad_request("This upload was already imported")
        return existing
    return create(task_id)


@bp.route(IMPORT, methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Import a processed task (all.zip or a WebODM backup) from a file, chunks, a presigned upload or a URL",
     {201: TaskOut, 200: Uploaded, 400: INVALID, 403: "Detail", 404: "Detail"}, body=ImportForm, files="file", auth="optional",
     tags=("import",),
     description=("WebODM's `TaskAssetsImport`: exactly one file (any field name), or `url` (http/https), or "
                  "`upload` (the id from `import/presign`, for zips over what one request carries); optional "
                  "`name` (default \"Imported Task\"). Dropzone chunks (`dzuuid`, `dzchunkindex`, "
                  "`dztotalchunkcount`, `dzchunkbyteoffset`): each chunk but the last answers 200 "
                  "`{\"uploaded\": true}`, the last one creates the task. The task answers 201 with "
                  "status 20 and pending action 5; the worker downloads a `url` (public addresses only, "
                  "unless ALOFT_IMPORT_ALLOW_PRIVATE), unpacks a backup zip and completes it (status 40), "
                  "or fails it (30) with `last_error` (\"Invalid zip file\"). Needs change rights on the "
                  "project (404 otherwise, anonymous callers too)."))
def import_task(project_id):
    project = _project(project_id)
    body = parse_body(bp.current_request)
    url = _text(body, "url")
    upload = _text(body, "upload")
    files = body.files
    if not url and not upload and len(files) != 1:
        raise bad_request(imports.NEED_ONE_FILE)
    if (url or upload) and files or url and upload:
        raise bad_request(imports.URL_OR_FILE)
    name = _name(body, imports.DEFAULT_NAME)
    if url:
        if not imports.URL_PATTERN.match(url):
            raise bad_request(imports.invalid_url(url))
        return respond(task_json(_create(project, name, url)), status=201)
    if upload:
        return _from_presigned(project, name, upload)
    check_room(project)
    chunk = uploads.dropzone_chunk(body)
    item = files[0]
    if chunk is None:
        task_id = str(uuid_lib.uuid4())
        imports.store_zip(task_id, item.stream, item.size)
        return respond(task_json(_create(project, name, imports.FILE_IMPORT_URL, task_id=task_id)), status=201)
    from .. import storage

    storage.store_chunk(imports.chunk_namespace(project["id"]), chunk.upload_id, chunk.offset, item.stream,
                        item.size, item.filename)
    if chunk.index < chunk.total - 1:
        return respond({"uploaded": True})
    prefix = imports.chunks_prefix(project["id"], chunk.upload_id)
    if not imports.chunks_complete(prefix, chunk.total):
        raise bad_request("Some chunks are missing; send them, then the last chunk again")
    source = {"kind": "chunks", "prefix": prefix, "total": chunk.total}
    task = _claimed(project, prefix, lambda task_id: _create(project, name, imports.FILE_IMPORT_URL, source,
                                                             task_id=task_id))
    return respond(task_json(task), status=201)


def _from_presigned(project: dict, name: str | None, upload: str):
    from .. import storage

    if not imports.valid_upload_id(upload):
        raise field_error("upload", "Invalid upload id")
    key = imports.presigned_key(project["id"], upload)
    if storage.object_size(key) is None:
        raise field_error("upload", "Nothing was uploaded with this id (PUT the zip to its URL first)")
    source = {"kind": "presigned", "key": key}
    task = _claimed(project, key, lambda task_id: _create(project, name, imports.FILE_IMPORT_URL, source,
                                                          task_id=task_id))
    return respond(task_json(task), status=201)


@bp.route(IMPORT + "/presign", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("A presigned S3 PUT for a large zip to import", {200: ImportPresignResponse, 404: "Detail"},
     body=ImportPresignRequest, tags=("import",),
     description=("For a zip larger than one API request carries (API Gateway: 10 MB, a Lambda event: about "
                  "4.7 MB of file): give its exact `size` (at most 5 GB), PUT the bytes to `url` with "
                  "`headers`, then `POST .../tasks/import` with `upload` set to the answer's `upload` id "
                  "(and optional `name`). The bytes go straight to S3; the worker copies them server-side. "
                  "An upload becomes one task: sending the same id again answers that task."))
def presign_import(project_id):
    project = _project(project_id)
    spec = validate(ImportPresignRequest, parse_body(bp.current_request).fields)
    presigned = imports.presign(project["id"], spec.size)
    return respond(ImportPresignResponse(**presigned.__dict__).model_dump(mode="json"))


# ------------------------------------------------------------------ external import

@bp.route(EXTERNAL + "/init", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("External import, step 1: a temporary folder", {200: ExternalInit, 403: "Detail", 404: "Detail"}, auth="optional",
     tags=("import",), description="WebODM's external import: answers the `uuid` of a new temporary folder.")
def external_init(project_id):
    project = _project(project_id)
    return respond({"uuid": imports.external_init(project["id"])})


@bp.route(EXTERNAL + "/upload", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("External import, step 2: one asset file", {200: ExternalUploaded, 400: INVALID, 403: "Detail", 404: "Detail"},
     body=ExternalUploadForm, files="orthophoto", auth="optional", tags=("import",),
     description=("Fields: `uuid` (from `init`) and one file whose field name is the asset type: `orthophoto`, "
                  "`dsm`, `dtm` (.tif/.tiff), `pointcloud` (.laz/.las) or `texturedmodel` (.glb). Dropzone "
                  "chunks with the `dz*` fields: the last one answers `done: true`. Errors: \"Invalid uuid\", "
                  "\"Invalid file type\", \"Invalid file type (extension mismatch)\"."))
def external_upload(project_id):
    project = _project(project_id)
    body = parse_body(bp.current_request)
    prefix = imports.external_folder(project["id"], body.fields.get("uuid"))  # InvalidInput: a 400
    if len(body.files) != 1:
        raise bad_request(imports.NEED_ONE_FILE)
    item = body.files[0]
    name = imports.external_asset_name(item.field, item.filename)
    chunk = uploads.dropzone_chunk(body)
    if chunk is None:
        imports.external_store(prefix, name, item.stream, item.size)
        return respond({"uploaded": True, "done": True, "asset": name})
    from .. import storage

    storage.store_chunk(imports.external_chunk_namespace(prefix, item.field), chunk.upload_id, chunk.offset,
                        item.stream, item.size, item.filename)
    if chunk.index < chunk.total - 1:
        return respond({"uploaded": True, "done": False, "asset": None})
    if not imports.external_chunks_done(prefix, item.field, chunk.upload_id, chunk.total, name):
        raise bad_request("Some chunks are missing; send them, then the last chunk again")
    return respond({"uploaded": True, "done": True, "asset": name})


@bp.route(EXTERNAL + "/commit", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("External import, step 3: the task", {201: TaskOut, 400: INVALID, 403: "Detail", 404: "Detail"}, body=ExternalCommit,
     auth="optional", tags=("import",),
     description=("Checks the uploaded assets (GeoTIFFs have a CRS, DSM/DTM at most 2 bands, point clouds start "
                  "with `LASF`, GLB with `glTF`, at least one asset) and creates the task: `import_url` "
                  "\"file://external\", status 20, pending action 5; the worker completes it. The temporary "
                  "folder is gone afterwards, also after a refusal (a new `init` is needed)."))
def external_commit(project_id):
    project = _project(project_id)
    body = parse_body(bp.current_request)
    prefix = imports.external_folder(project["id"], body.fields.get("uuid"))  # InvalidInput: a 400
    name = _name(body, imports.DEFAULT_NAME)
    problems = imports.external_check(prefix)
    if problems:
        imports.delete_prefix(prefix)
        raise bad_request(problems if len(problems) > 1 else problems[0])
    imports.forget_marker(prefix)  # the uuid is spent; the files stay for the worker
    task = _create(project, name, imports.EXTERNAL_IMPORT_URL, {"kind": "external", "prefix": prefix})
    return respond(task_json(task), status=201)
