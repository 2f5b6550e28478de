"""Processing nodes table: key `id` (a number from the `processing_nodes` counter).

Nodes are few (a handful per deployment), so listing is a Scan. Every write is
conditional on the node still existing, so a refresh or an edit racing a DELETE
never brings the node back as a partial item.
"""
from __future__ import annotations

from datetime import datetime, timezone

from . import counters
from .dynamo import ConditionFailed, Table

_table = Table("nodes_table")
_EXISTS = "attribute_exists(id)"

# Stored fields and their values before the first successful refresh.
DEFAULTS = {
    "label": "", "token": "", "api_version": None, "last_refreshed": None, "queue_count": 0,
    "max_images": None, "available_options": [], "engine": None, "engine_version": None,
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def get(node_id: int) -> dict | None:
    return _table.get({"id": node_id})


def list_all() -> list[dict]:
    return sorted(_table.scan(), key=lambda node: node["id"])


def create(fields: dict) -> dict:
    """Store a new node (`hostname`, `port`, optional `token`, `label`, ...); returns the record."""
    item = {**DEFAULTS, "created_at": _now(), **fields,
            "id": counters.next_id("processing_nodes")}
    _table.put(item, condition="attribute_not_exists(id)")
    return item


def update(node_id: int, changes: dict) -> dict | None:
    """Apply `changes` and return the new record; None if the node is gone."""
    changes = {k: v for k, v in changes.items() if k != "id"}
    if not changes:
        return get(node_id)
    try:
        return _table.update({"id": node_id}, set=changes, condition=_EXISTS)
    except ConditionFailed:
        return None


def delete(node_id: int) -> bool:
    """True if the node existed and is now gone."""
    try:
        _table.delete({"id": node_id}, condition=_EXISTS)
        return True
    except ConditionFailed:
        return False


def claim(node: dict) -> bool:
    """Count one more task sent to this node since its last refresh, unless another worker
    counted one since `node` was read (then read the nodes again and choose anew). The
    count spreads a burst of new tasks over the nodes before their queues show them."""
    seen = int(node.get("assigned_since_refresh") or 0)
    condition = "attribute_exists(id) AND (" + \
        ("attribute_not_exists(#a) OR " if seen == 0 else "") + "#a = :seen)"
    try:
        _table.update({"id": node["id"]}, add={"assigned_since_refresh": 1}, condition=condition,
                      names={"#a": "assigned_since_refresh"}, values={":seen": seen})
        return True
    except ConditionFailed:
        return False


def record_refresh(node_id: int, fields: dict, *, expect: dict | None = None) -> None:
    """Store the info of a successful refresh (`last_refreshed` defaults to now); the node's
    queue now shows the tasks sent to it, so the count of `claim` starts again at 0.

    Does nothing if the node was deleted meanwhile, or if any attribute named in `expect`
    (e.g. the hostname/port/token the refresh talked to) no longer has that value, so a
    refresh of an old address never overwrites the info of an edited node.
    """
    values = {"last_refreshed": _now(), "assigned_since_refresh": 0, **fields}
    values.pop("id", None)
    condition, names, placeholders = _EXISTS, {}, {}
    for n, (attr, expected) in enumerate((expect or {}).items()):
        names[f"#e{n}"] = attr
        placeholders[f":e{n}"] = expected
        condition += f" AND #e{n} = :e{n}"
    try:
        _table.update({"id": node_id}, set=values, condition=condition,
                      names=names or None, values=placeholders or None)
    except ConditionFailed:
        pass
