"""Processing nodes API: /api/processingnodes/ (WebODM's `app/api/processingnodes.py`).

Every logged-in user may list and read nodes; only superusers add, edit or remove them.
Unlike WebODM, the node `token` is write-only (it never appears in a response) and
`label` can be set.
"""
from __future__ import annotations

from chalice import Blueprint

from .. import nodes
from ..errors import forbidden, not_found, validate
from ..apidoc import INT, LIST_RULE, NO_CONTENT, ORDERING, PAGE, STR, Param, doc
from ..models import NodeOut, NodePage, NodeWrite, utcnow
from ..store import nodes as node_store
from .common import (BODY_CONTENT_TYPES, current_user, int_id, no_content, parse_body,
                     query_params, respond)
from .listing import answer, exact_filter, order

bp = Blueprint(__name__)
_WRITABLE = set(NodeWrite.model_fields)
_FILTERS = {"id": int, "hostname": str, "port": int, "api_version": str, "queue_count": int,
            "max_images": int, "engine": str, "engine_version": str}


def _superuser() -> dict:
    user = current_user(bp.current_request)
    if not user.get("is_superuser"):
        raise forbidden()
    return user


def _node(node_id: str) -> dict:
    node = node_store.get(int_id(node_id))
    if node is None:
        raise not_found()
    return node


def _has_options(value: str) -> bool:
    return value.strip().lower() in ("true", "1")


@bp.route("/api/processingnodes", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List processing nodes", {200: ([NodeOut], NodePage)}, tags=("processingnodes",),
     query=(Param("id", INT), Param("hostname", STR), Param("port", INT), Param("api_version", STR),
            Param("queue_count", INT), Param("max_images", INT), Param("engine", STR),
            Param("engine_version", STR),
            Param("has_available_options", STR, "`true`/`1`: nodes with options; anything else: without"),
            ORDERING, PAGE),
     listed=True, description=LIST_RULE)
def list_nodes():
    """Every node, as a plain array; exact filters, `has_available_options`, `ordering`."""
    current_user(bp.current_request)
    query = query_params(bp.current_request)
    items = [nodes.node_out(n) for n in node_store.list_all()]
    items = exact_filter(items, query, _FILTERS)
    if "has_available_options" in query:
        wanted = _has_options(query["has_available_options"])
        items = [n for n in items if bool(n["available_options"]) == wanted]
    items = order(items, query.get("ordering"), set(NodeOut.model_fields))
    return answer(bp.current_request, items, query)


@bp.route("/api/processingnodes/options", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Options common to the online nodes", {200: [dict]}, tags=("processingnodes",))
def node_options():
    """The options every online node supports (WebODM's ProcessingNodeViewSet options action)."""
    current_user(bp.current_request)
    return respond(nodes.common_options(node_store.list_all()))


@bp.route("/api/processingnodes", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Register a processing node (superuser); refreshed at once", {201: NodeOut}, body=NodeWrite,
     tags=("processingnodes",))
def create_node():
    """Add a node and ask it for its info at once; an unreachable node is added offline."""
    _superuser()
    data = validate(NodeWrite, parse_body(bp.current_request).fields)
    node = node_store.create({**data.model_dump(), "created_at": utcnow()})
    return respond(nodes.node_out(nodes.refresh(node, timeout=nodes.REFRESH_TIMEOUT)), status=201)


@bp.route("/api/processingnodes/{node_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a processing node", {200: NodeOut}, tags=("processingnodes",))
def get_node(node_id):
    current_user(bp.current_request)
    return respond(nodes.node_out(_node(node_id)))


@bp.route("/api/processingnodes/{node_id}", methods=["PUT", "PATCH"],
          content_types=BODY_CONTENT_TYPES)
@doc("Update a processing node (superuser)", {200: NodeOut}, body=NodeWrite, tags=("processingnodes",))
def update_node(node_id):
    """PATCH changes the given fields; PUT requires `hostname` and `port`.

    A new hostname, port or token makes the node offline until it answers at that
    address, which it is asked at once.
    """
    _superuser()
    request = bp.current_request
    node = _node(node_id)
    body = {k: v for k, v in parse_body(request).fields.items() if k in _WRITABLE}
    if request.method == "PUT":
        validate(NodeWrite, body)  # required fields and every given value
    current = {k: node.get(k) for k in _WRITABLE if node.get(k) is not None}
    data = validate(NodeWrite, {**current, **body}).model_dump()
    changes = {k: v for k, v in data.items() if node.get(k) != v}
    moved = any(k in changes for k in nodes.ADDRESS_FIELDS)
    if moved:
        changes["last_refreshed"] = None
    updated = node_store.update(node["id"], changes)
    if updated is None:
        raise not_found()
    if moved:
        updated = nodes.refresh(updated, timeout=nodes.REFRESH_TIMEOUT)
    return respond(nodes.node_out(updated))


@bp.route("/api/processingnodes/{node_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete a processing node (superuser); its tasks keep no node", {204: NO_CONTENT},
     tags=("processingnodes",))
def delete_node(node_id):
    """Remove the node; tasks that used it then show `processing_node: null`."""
    _superuser()
    if not node_store.delete(int_id(node_id)):
        raise not_found()
    return no_content()
