"""Presets API: /api/presets/ (WebODM's `app/api/presets.py`). Rules in chalicelib/presets.py.

A plain array, never paginated (WebODM's `pagination_class = None`); `ordering` on any
field, other query parameters ignored, as WebODM's filter backends without fields do.
"""
from __future__ import annotations

from chalice import Blueprint

from .. import presets
from ..apidoc import INVALID, NO_CONTENT, ORDERING, doc
from ..presets import PresetOut, PresetWrite
from .common import (BODY_CONTENT_TYPES, current_user, int_id, no_content, parse_body, query_params,
                     respond)
from .listing import order

bp = Blueprint(__name__)
_FIELDS = set(PresetOut.model_fields)
_SEES = "The caller's own presets and every system preset (`system: true`)."


@bp.route("/api/presets", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List presets", {200: [PresetOut]}, tags=("presets",), query=(ORDERING,),
     description=_SEES + " A plain array, by `id` unless `ordering` says otherwise.")
def list_presets():
    user = current_user(bp.current_request)
    query = query_params(bp.current_request)
    return respond(order(presets.list_for(user), query.get("ordering"), _FIELDS))


@bp.route("/api/presets", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a preset of the caller's (`system` is always false)", {201: PresetOut, 400: INVALID},
     body=PresetWrite, tags=("presets",))
def create_preset():
    user = current_user(bp.current_request)
    return respond(presets.create_for(user, parse_body(bp.current_request).fields), status=201)


@bp.route("/api/presets/{preset_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a preset", {200: PresetOut}, tags=("presets",), description=_SEES)
def get_preset(preset_id):
    user = current_user(bp.current_request)
    return respond(presets.get_for(user, int_id(preset_id)))


@bp.route("/api/presets/{preset_id}", methods=["PUT", "PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Update a preset (PATCH: given fields; PUT: `name` required)",
     {200: PresetOut, 400: INVALID, 403: "Detail"}, body=PresetWrite, tags=("presets",),
     description="Own presets; system presets only as a superuser (403 otherwise).")
def update_preset(preset_id):
    request = bp.current_request
    user = current_user(request)
    fields = parse_body(request).fields
    return respond(presets.update_for(user, int_id(preset_id), fields, partial=request.method == "PATCH"))


@bp.route("/api/presets/{preset_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete one of the caller's presets", {204: NO_CONTENT, 403: "Detail"}, tags=("presets",),
     description="A system preset is a 404 for a normal user and a 403 for a superuser (WebODM's).")
def delete_preset(preset_id):
    user = current_user(bp.current_request)
    presets.delete_for(user, int_id(preset_id))
    return no_content()
