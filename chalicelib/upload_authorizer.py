"""API Gateway's REQUEST authorizer for `POST .../tasks/{task_id}/upload/`.

That route is an S3 integration (infra/resources.json): the request body goes
straight to S3, so the checks a Lambda route would make happen here, on the
request's headers, query and path, before API Gateway stores anything:
- the caller, as every route finds it (`Authorization: JWT ...`, `?jwt=`, Basic);
- change rights on the task's project: the owner's, a superuser's, or a share's to the caller
  or one of their groups (access.task_for and permissions.py, shared with the routes);
- a multipart body (WebODM's upload view takes nothing else).

The verdict is API Gateway's: Allow with the task id in the context (the
integration writes `incoming/<task id>/<epoch ms>/<request id>`); Deny with a `detail`, which
the ACCESS_DENIED gateway response shows as WebODM's 403; or "Unauthorized" when
the task does not exist for this caller, which the UNAUTHORIZED gateway response
shows as WebODM's 404 "Not found.". Caching is off (TTL 0): each request is checked.
"""
from __future__ import annotations

import json

from . import access
from .auth import require_user
from .errors import AuthenticationFailed, NotFound
from .forms import is_multipart


class Unauthorized(Exception):
    """API Gateway's convention: an authorizer raising "Unauthorized" means 401 (here 404)."""

    def __init__(self):
        super().__init__("Unauthorized")


def _policy(event: dict, effect: str, principal: str, context: dict) -> dict:
    return {"principalId": principal,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]},
            "context": context}


def _deny(event: dict, detail: str) -> dict:
    # The gateway response template puts `detail` inside a JSON string: escape it here.
    return _policy(event, "Deny", "anonymous", {"detail": json.dumps(detail)[1:-1]})


def authorize(event: dict) -> dict:
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    query = event.get("queryStringParameters") or {}
    path = event.get("pathParameters") or {}
    try:
        user = require_user(headers, query)
    except AuthenticationFailed as failure:
        return _deny(event, failure.detail)
    try:
        project, task = access.task_for(user, path.get("project_id"), path.get("task_id"), need="change")
    except NotFound:
        raise Unauthorized() from None
    content_type = headers.get("content-type", "")
    if not is_multipart(content_type) or "boundary=" not in content_type.lower():
        kind = content_type.split(";")[0].strip().lower()
        return _deny(event, f'Unsupported media type "{kind}" in request; upload/ takes multipart/form-data '
                            "(presigned uploads: POST .../presign/).")
    return _policy(event, "Allow", str(user["id"]),
                   {"task_id": task["id"], "project_id": str(project["id"]), "user_id": str(user["id"])})
