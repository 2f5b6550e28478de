"""Processing nodes as a service: liveness, info refresh, selection and the public shape.

Used by the API (chalicelib/api/nodes.py) and by the poller. WebODM's `nodeodm/models.py` (ProcessingNode) and `app/api/processingnodes.py`:
a node is online while its last successful `/info` + `/options` round trip is younger than
`ALOFT_NODE_OFFLINE_SECONDS` (300 s); a failed refresh stores nothing, so the node simply
ages out.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .config import settings
from .models import NodeOut, utcnow
from .store import nodes as node_store

if TYPE_CHECKING:
    from .nodeodm import NodeClient

log = logging.getLogger(__name__)

REFRESH_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
# The node's own address and credentials: a refresh's result only applies while these hold.
ADDRESS_FIELDS = ("hostname", "port", "token")

__all__ = ["ADDRESS_FIELDS", "REFRESH_TIMEOUT", "client_for", "common_options", "display_name",
           "is_online", "node_out", "pick_node", "refresh", "refresh_all", "rerun_from"]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def is_online(node: dict, now: datetime | None = None) -> bool:
    """True while `last_refreshed` is less than `node_offline_seconds` old."""
    refreshed = _parse_time(node.get("last_refreshed"))
    if refreshed is None:
        return False
    now = now or datetime.now(timezone.utc)
    return (now - refreshed).total_seconds() < settings().node_offline_seconds


def display_name(node: dict) -> str:
    return node.get("label") or f"{node['hostname']}:{node['port']}"


def client_for(node: dict, timeout: float = 30.0) -> NodeClient:
    from .nodeodm import NodeClient  # requests loads on first use, not at cold start

    # A node that does not answer at all costs only the connect timeout (idle Lambda time).
    return NodeClient(node["hostname"], int(node["port"]), token=node.get("token") or "",
                      timeout=(min(CONNECT_TIMEOUT, timeout), timeout))


def refresh(node: dict, timeout: float = REFRESH_TIMEOUT) -> dict:
    """Ask the node for `/info` and `/options` and store the answer; the node, updated.

    On any NodeError nothing is stored and the node comes back unchanged. The write is
    skipped if the node was deleted, or its address or token edited, in the meantime.
    """
    from .nodeodm import NodeError

    client = client_for(node, timeout)
    try:
        info = client.info()
        options = client.options()
    except NodeError as exc:
        log.info("Processing node %s (id %s) did not answer: %s", display_name(node),
                 node.get("id"), exc)
        return node
    fields = {"api_version": info.version, "queue_count": info.task_queue_count,
              "max_images": info.max_images, "engine": info.engine,
              "engine_version": info.engine_version, "available_options": options,
              "last_refreshed": utcnow()}
    node_store.record_refresh(node["id"], fields,
                              expect={k: node.get(k) for k in ADDRESS_FIELDS if k in node})
    return {**node, **fields}


def _refresh_quietly(node: dict, timeout: float) -> dict:
    try:
        return refresh(node, timeout)
    except Exception:  # noqa: BLE001 - one node's storage error must not stop the others
        log.exception("Refreshing processing node %s failed", node.get("id"))
        return node


def refresh_all(nodes: list[dict], timeout: float = REFRESH_TIMEOUT,
                max_workers: int = 16) -> list[dict]:
    """Refresh every node concurrently; the results in input order."""
    nodes = list(nodes)
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(nodes))),
                            thread_name_prefix="node-refresh") as pool:
        return list(pool.map(lambda node: _refresh_quietly(node, timeout), nodes))


def node_out(node: dict, now: datetime | None = None) -> dict:
    """The public representation (WebODM's ProcessingNodeSerializer), without the token."""
    options = node.get("available_options")
    return NodeOut(
        id=node["id"], hostname=node["hostname"], port=node["port"], label=display_name(node),
        api_version=node.get("api_version"), last_refreshed=node.get("last_refreshed"),
        queue_count=node.get("queue_count") or 0, max_images=node.get("max_images"),
        available_options=options if isinstance(options, list) else [],
        engine=node.get("engine"), engine_version=node.get("engine_version"),
        online=is_online(node, now),
    ).model_dump(mode="json")


def _options(node: dict) -> list[dict]:
    options = node.get("available_options")
    return [o for o in options if isinstance(o, dict)] if isinstance(options, list) else []


def common_options(nodes: list[dict], now: datetime | None = None) -> list[dict]:
    """Options every online node has (WebODM's `/api/processingnodes/options/`), as the first such node lists them.

    Starts from the first online node with a non-empty list; every later online node removes
    the options it lacks (an online node with no options at all removes every option).
    """
    now = now or datetime.now(timezone.utc)
    common: list[dict] | None = None
    for node in nodes:
        if not is_online(node, now):
            continue
        options = _options(node)
        if common is None:
            if options:
                common = list(options)
            continue
        names = {o.get("name") for o in options}
        common = [o for o in common if o.get("name") in names]
    return common or []


MAX_RERUN_STAGES = 32
MAX_STAGE_CHARS = 32


def rerun_from(node: dict | None) -> list[str]:
    """The stages a task on this node can be re-run from (the `rerun-from` option's domain).
    ODM has about a dozen short stage names; more, or longer ones, are dropped so a task's
    representation stays bounded (MAX_RERUN_STAGES of at most MAX_STAGE_CHARS)."""
    if not node:
        return []
    for option in _options(node):
        if option.get("name") == "rerun-from":
            domain = option.get("domain")
            if not isinstance(domain, list):
                return []
            stages = [str(stage) for stage in domain if isinstance(stage, (str, int, float))]
            return [s for s in stages if len(s) <= MAX_STAGE_CHARS][:MAX_RERUN_STAGES]
    return []


def _accepts(node: dict, images_count: int) -> bool:
    limit = node.get("max_images")
    return limit is None or limit >= images_count


def load(node: dict) -> int:
    """Tasks on the node's queue at its last refresh, and those sent to it since."""
    return int(node.get("queue_count") or 0) + int(node.get("assigned_since_refresh") or 0)


def pick_node(nodes: list[dict], images_count: int, now: datetime | None = None) -> dict | None:
    """The online node with the shortest queue that takes `images_count` images (ties: lowest id)."""
    now = now or datetime.now(timezone.utc)
    candidates = [n for n in nodes if is_online(n, now) and _accepts(n, images_count)]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (load(n), n["id"]))
