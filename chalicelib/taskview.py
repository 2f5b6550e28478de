"""A task as the API shows it (WebODM's TaskSerializer): what `GET .../tasks/{id}/` answers.

Domain code that needs that view (webhook payloads, chalicelib/webhooks.py) imports it from
here; the routes (chalicelib/api/tasks.py) use the same functions.
"""
from __future__ import annotations

from .models import PendingAction, StatusCode, TaskOut
from .nodes import display_name, rerun_from
from .store import nodes as node_store


def nodes_of(items: list[dict]) -> dict[int, dict]:
    ids = {t["processing_node"] for t in items if t.get("processing_node") is not None}
    found = {}
    for node_id in ids:
        node = node_store.get(node_id)
        if node is not None:
            found[node_id] = node
    return found


def task_out(task: dict, nodes: dict[int, dict]) -> dict:
    node = nodes.get(task.get("processing_node"))
    if task.get("copying"):  # a duplicate whose files are being copied: shown as WebODM shows an import
        task = {**task, "status": int(StatusCode.RUNNING), "pending_action": int(PendingAction.IMPORT),
                "available_assets": [], "running_progress": 0.0}
    return TaskOut(
        id=task["id"], project=task["project_id"],
        processing_node=node["id"] if node else None,
        processing_node_name=display_name(node) if node else None,
        images_count=task.get("images_count", 0),
        can_rerun_from=rerun_from(node) if node else [],
        statistics=task.get("statistics") or {}, extent=task.get("extent"), media=0,
        tags=task.get("tags") or [], crop=task.get("crop"), srs=task.get("srs") or {"name": "", "units": "m"},
        available_assets=task.get("available_assets") or [], uuid=task.get("uuid") or "",
        name=task.get("name"), processing_time=task.get("processing_time", -1),
        auto_processing_node=bool(task.get("auto_processing_node")), status=task.get("status"),
        last_error=task.get("last_error"), options=task.get("options") or [],
        created_at=task["created_at"], pending_action=task.get("pending_action"),
        public=bool(task.get("public")), public_edit=bool(task.get("public_edit")),
        resize_to=task.get("resize_to", -1), upload_progress=task.get("upload_progress", 0.0),
        resize_progress=task.get("resize_progress", 0.0),
        running_progress=task.get("running_progress", 0.0), import_url=task.get("import_url") or "",
        partial=bool(task.get("partial")), potree_scene=task.get("potree_scene") or {},
        epsg=task.get("epsg"), wkt=task.get("wkt"), orthophoto_bands=task.get("orthophoto_bands") or [],
        size=round(task.get("size_bytes", 0) / 1024 / 1024, 6), compacted=False,
    ).model_dump(mode="json")


def task_json(task: dict) -> dict:
    return task_out(task, nodes_of([task]))
