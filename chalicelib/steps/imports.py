"""Pending action IMPORT (5): WebODM's `Task.handle_import`, in the worker.

Get the zip into the task's `all.zip` key (download a `url` under the SSRF guard, join
Dropzone chunks, copy a presigned upload server-side, or pack an external import's files),
unpack a WebODM backup (images, assets, `data/backup.json`), then the completion every task
shares (`collect_results`: assets, COGs, map fields) and status 40 without a node.

Safe to run again after a crash at any point: a source is deleted only once `all.zip` holds
it, a backup only after the task's final fields are written, and the extraction replaces
whatever an earlier attempt left. A duplicate message never gets here (its token is stale).
"""
from __future__ import annotations

import logging
import time

from .. import assets, imports, netguard, storage
from ..completion import collect_results
from ..store import output
from .context import NOTHING, Outcome, StepContext, failed

log = logging.getLogger(__name__)
DOWNLOAD_WEIGHT = 0.9            # WebODM: running_progress = downloaded fraction x 0.9
PROGRESS_EVERY_SECONDS = 2.0
IMPORTING, DONE = "Importing assets...", "Done!"  # WebODM's console lines of an import


def import_task(ctx: StepContext) -> Outcome:
    task = ctx.task
    task_id = task["id"]
    zip_key = storage.task_prefix(task_id) + "all.zip"
    try:
        _fetch(ctx, zip_key)
        backup = imports.unpack_backup(task_id) if storage.object_size(zip_key) is not None else None
        changes = collect_results(task_id)
    except netguard.RefusedURL as exc:
        return failed("import", f"Cannot import from {task.get('import_url')}: {exc}")
    except (netguard.FetchError, imports.DownloadFailed) as exc:
        return failed("import", f"Cannot download {task.get('import_url')}: {exc}")
    except assets.InvalidZipError as exc:
        log.warning("Task %s: %s (%s)", task_id, exc, exc.detail)
        return failed("import", str(exc))
    changes.update({"processing_node": None, "pending_action": None, "processing_time": 0,
                    "last_error": None, "import_source": None})
    # The console: a backup's own, else WebODM's two lines (replaced, so a re-run adds nothing).
    _replace_console(ctx, imports.backup_console(task_id) if backup is not None
                     else [[IMPORTING, DONE]])
    count = imports.images_json_count(task_id)
    if backup is not None:
        changes.update(imports.restored_fields(backup.fields))
        changes["import_url"] = ""
        changes["images_count"] = count if count is not None else backup.images
    elif count is not None:
        changes["images_count"] = count
    ctx.save(changes)  # the task is complete before its backup copy is let go
    if backup is not None:
        imports.forget_backup(task_id)
    return Outcome("import", {}, NOTHING, note=f"{len(changes['available_assets'])} assets"
                   + (", backup restored" if backup is not None else ""))


def _replace_console(ctx: StepContext, batches) -> None:
    output.clear(ctx.task["id"])
    ctx.save(output.reset_fields())
    for lines in batches:
        while lines:
            ops, fields, consumed = output.append_plan(ctx.task, lines)
            ctx.save(fields, tuple(ops))
            lines = lines[consumed:]


def _fetch(ctx: StepContext, zip_key: str) -> None:
    """The import's zip into `zip_key`, unless an earlier attempt already put it there."""
    task = ctx.task
    source = task.get("import_source") or {}
    kind = source.get("kind")
    if kind == "chunks" and imports.chunks_complete(source["prefix"], int(source["total"])):
        imports.join_chunks(source["prefix"], zip_key)
        imports.delete_prefix(source["prefix"])
    elif kind == "presigned" and storage.object_size(source["key"]) is not None:
        imports.copy_object(source["key"], zip_key)
        imports.delete_prefix(source["key"])
    elif kind == "external" and imports.external_files(source["prefix"]):
        imports.pack_external(source["prefix"], zip_key)
        imports.delete_prefix(source["prefix"])
    elif storage.object_size(zip_key) is None and str(task.get("import_url") or "").lower().startswith(
            ("http://", "https://")):
        _download(ctx, task["import_url"], zip_key)
    if storage.object_size(zip_key) is None:
        raise assets.InvalidZipError("Cannot import task: no zip")


def _download(ctx: StepContext, url: str, zip_key: str) -> None:
    last = time.monotonic()

    def progress(done: int, total: int | None) -> None:
        nonlocal last
        if total and time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
            last = time.monotonic()
            ctx.save({"running_progress": round(min(1.0, done / total) * DOWNLOAD_WEIGHT, 4)})

    imports.download(url, zip_key, progress, has_time=lambda: ctx.seconds_left() > 0)

