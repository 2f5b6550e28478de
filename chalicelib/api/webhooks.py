"""Webhooks: /api/webhooks/ (Aloft's own; WebODM has none). Rules in chalicelib/webhooks.py.

Plain arrays, never paginated (at most webhooks.MAX_HOOKS_PER_USER hooks a user; the newest
webhooks.DELIVERIES_PAGE attempts). Anyone sees and changes only their own hooks (another
user's hook id is a 404); a superuser may also list (`?user=`), read and delete anyone's,
but a hook's `secret` is shown to nobody after its create answer.
"""
from __future__ import annotations

from chalice import Blueprint

from .. import webhooks
from ..apidoc import INVALID, NO_CONTENT, doc
from ..webhooks import DeliveryOut, WebhookCreated, WebhookOut, WebhookPatch, WebhookWrite
from .common import BODY_CONTENT_TYPES, current_user, no_content, parse_body, query_params, respond
from .keys import _USER, _user_param

bp = Blueprint(__name__)
_HOOK_ID = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
_SIGNED = ("Deliveries follow the Standard Webhooks specification: a POST of `{\"type\", \"timestamp\", "
           "\"data\"}` (`data`: the task as GET shows it) with `webhook-id`, `webhook-timestamp` and "
           "`webhook-signature` (`v1,<base64 HMAC-SHA256>`, keyed with the hook's secret).")


@bp.route("/api/webhooks", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List webhooks", {200: [WebhookOut], 400: INVALID, 403: "Detail"}, query=(_USER,), tags=("webhooks",),
     description="The caller's hooks, oldest first, without their secret.")
def list_hooks():
    request = bp.current_request
    user = current_user(request)
    return respond(webhooks.list_for(user, _user_param(query_params(request))))


@bp.route("/api/webhooks", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create a webhook", {201: WebhookCreated, 400: INVALID}, body=WebhookWrite, tags=("webhooks",),
     description="`events`: any of task.running, task.completed, task.failed, task.canceled, task.removed. "
                 "`project`: only that project's tasks (one the caller may view); without it, the tasks of "
                 "every project the caller owns. `url`: https on a public address (http and private "
                 "addresses only where the server allows them). The answer's `secret` (`whsec_...`) is "
                 "the only time it is shown. " + _SIGNED)
def create_hook():
    request = bp.current_request
    user = current_user(request)
    return respond(webhooks.create_for(user, parse_body(request).fields), status=201)


@bp.route("/api/webhooks/{hook_id}", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("Get a webhook", {200: WebhookOut}, tags=("webhooks",), path_types={"hook_id": _HOOK_ID},
     description="`active` false with a `disabled_reason` once deliveries failed for a day.")
def get_hook(hook_id):
    return respond(webhooks.get_for(current_user(bp.current_request), hook_id))


@bp.route("/api/webhooks/{hook_id}", methods=["PATCH"], content_types=BODY_CONTENT_TYPES)
@doc("Change a webhook", {200: WebhookOut, 400: INVALID}, body=WebhookPatch, tags=("webhooks",),
     path_types={"hook_id": _HOOK_ID},
     description="The given fields only (own hooks). `active: true` enables a disabled hook again; "
                 "`project: null` widens it to every project the caller owns.")
def patch_hook(hook_id):
    request = bp.current_request
    return respond(webhooks.patch_for(current_user(request), hook_id, parse_body(request).fields))


@bp.route("/api/webhooks/{hook_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Delete a webhook", {204: NO_CONTENT}, tags=("webhooks",), path_types={"hook_id": _HOOK_ID},
     description="At once: no further deliveries. Own hooks; a superuser's, anyone's.")
def delete_hook(hook_id):
    webhooks.delete_for(current_user(bp.current_request), hook_id)
    return no_content()


@bp.route("/api/webhooks/{hook_id}/deliveries", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List a webhook's delivery attempts", {200: [DeliveryOut]}, tags=("webhooks",),
     path_types={"hook_id": _HOOK_ID},
     description=f"The newest {webhooks.DELIVERIES_PAGE} attempts first: the event, its `webhook_id` (the "
                 "same on each retry), the attempt number, the receiver's status code (null when none "
                 "answered), the duration and the error.")
def list_deliveries(hook_id):
    return respond(webhooks.deliveries_for(current_user(bp.current_request), hook_id))
