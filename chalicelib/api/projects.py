"""Projects API: /api/projects/ (WebODM's `app/api/projects.py`)."""
from __future__ import annotations

import uuid

from chalice import Blueprint

from .. import permissions
from ..apidoc import INT, LIST_RULE, NO_CONTENT, ORDERING, PAGE, STR, Param, doc
from ..errors import bad_request, not_found, validate
from ..models import ProjectOut, ProjectPage, ProjectWrite, utcnow
from ..store import projects
from .common import (BODY_CONTENT_TYPES, current_user, int_id, no_content, parse_body,
                     query_params, respond)
from .listing import answer, exact_filter, order

bp = Blueprint(__name__)
_WRITABLE = set(ProjectWrite.model_fields)
_FILTERS = {"id": int, "name": str, "description": str, "created_at": str}


def project_out(user: dict, project: dict) -> dict:
    return ProjectOut(
        id=project["id"], tasks=sorted(project.get("tasks") or ()),
        owned=permissions.is_owned(user, project), created_at=project["created_at"],
        permissions=permissions.permissions_on(user, project), tags=project.get("tags") or [],
        name=project["name"], description=project.get("description", ""),
        public=bool(project.get("public")), public_edit=bool(project.get("public_edit")),
        public_id=project.get("public_id"),
    ).model_dump(mode="json")


def _stored_fields(data: ProjectWrite) -> dict:
    fields = data.model_dump(mode="json")
    if fields["public"] and not fields["public_id"]:
        fields["public_id"] = str(uuid.uuid4())
    return fields


def _search(items: list[dict], search: str) -> list[dict]:
    """Words must all appear in the name; `#tag` (or `:tag`) must be a project tag."""
    for term in search.replace(":", "#").split():
        if term.startswith("#") and term.strip("#"):
            tag = term.strip("#").lower()
            items = [p for p in items if tag in [t.lower() for t in p["tags"]]]
        elif not term.startswith("#"):
            word = term.lower()
            items = [p for p in items if word in p["name"].lower()]
    return items


@bp.route("/api/projects", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List projects", {200: ([ProjectOut], ProjectPage)}, tags=("projects",),
     query=(Param("id", INT), Param("name", STR), Param("description", STR), Param("created_at", STR),
            Param("search", STR, "Words that must appear in the name; `#tag` for a project tag."),
            ORDERING, PAGE),
     listed=True, description=LIST_RULE)
def list_projects():
    """The projects the caller may view (own and shared), newest first; an envelope when
    `page` is given."""
    request = bp.current_request
    user = current_user(request)
    query = query_params(request)
    stored = permissions.visible_projects(user)  # own and shared (a superuser: all)
    items = [project_out(user, p) for p in stored]
    items = exact_filter(items, query, _FILTERS)
    if query.get("search"):
        items = _search(items, query["search"])
    items = order(items, query.get("ordering"), set(ProjectOut.model_fields))
    return answer(request, items, query)


@bp.route("/api/projects", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a project", {201: ProjectOut}, body=ProjectWrite, tags=("projects",))
def create_project():
    """Create a project owned by the caller (an `owner` in the body is ignored)."""
    user = current_user(bp.current_request)
    data = validate(ProjectWrite, parse_body(bp.current_request).fields)
    project = projects.create(user["id"], _stored_fields(data), utcnow())
    return respond(project_out(user, project), status=201)


@bp.route("/api/projects/{project_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a project", {200: ProjectOut}, tags=("projects",))
def get_project(project_id):
    user = current_user(bp.current_request)
    return respond(project_out(user, permissions.project_for(user, int_id(project_id))))


@bp.route("/api/projects/{project_id}", methods=["PUT", "PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Update a project (PATCH: given fields; PUT: `name` required)", {200: ProjectOut},
     body=ProjectWrite, tags=("projects",))
def update_project(project_id):
    """PATCH changes the given fields; PUT requires `name`. The owner never changes. A caller
    who can view the project but not change it gets 403 (DRF's object permissions)."""
    request = bp.current_request
    user = current_user(request)
    project = permissions.project_to_write(user, int_id(project_id), need="change")
    body = parse_body(request).fields
    if request.method == "PUT" and "name" not in body:
        raise bad_request({"name": ["This field is required."]})
    current = {k: project.get(k) for k in _WRITABLE if project.get(k) is not None}
    data = validate(ProjectWrite, {**current, **{k: v for k, v in body.items() if k in _WRITABLE}})
    updated = projects.update(project["id"], _stored_fields(data))
    if updated is None:
        raise not_found()
    return respond(project_out(user, updated))


@bp.route("/api/projects/{project_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete a project and its tasks (its owner or a superuser); anyone else leaves it", {204: NO_CONTENT},
     tags=("projects",),
     description="By the owner or a superuser: the project disappears at once. Its tasks are removed within a "
                 "short budget, and the scheduled poller removes the rest (and the project row) in the "
                 "background. By anyone else it is shared with (as WebODM): the project stays, the caller's "
                 "own permissions on it go.")
def delete_project(project_id):
    """Hide the project at once; its tasks are removed (what takes longer by the poller),
    then the row goes. A sharee only unshares it from themselves."""
    from .. import removal, sharing

    user = current_user(bp.current_request)
    project = permissions.project_for(user, int_id(project_id))
    if permissions.deletes_project(user, project):
        removal.delete_project(project, bp.lambda_context)
    else:
        sharing.leave(user, project)
    return no_content()
