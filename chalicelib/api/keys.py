"""API keys: /api/keys/ (Aloft's own; WebODM has none). Rules in chalicelib/apikeys.py.

A plain array, never paginated (at most apikeys.MAX_KEYS_PER_USER keys a user). A superuser
lists another user's keys with `?user=<user id>` and may revoke anyone's key; anyone else
sees and revokes only their own (another user's key id is a 404). Creating a key takes a
token (or a password), never a key.
"""
from __future__ import annotations

from chalice import Blueprint

from .. import apikeys
from ..access import MAX_ID
from ..apidoc import INT, INVALID, NO_CONTENT, Param, doc
from ..apikeys import ApiKeyCreated, ApiKeyOut, ApiKeyWrite
from ..auth import uses_api_key
from ..errors import field_error, forbidden
from .common import BODY_CONTENT_TYPES, current_user, no_content, parse_body, query_params, respond

bp = Blueprint(__name__)
# A leaked key must not mint keys that outlive its own revocation: creating one takes a token
# from a password (or the password itself); a key may still list keys and revoke them.
KEY_CANNOT_CREATE = "An API key cannot create API keys: use a token from /api/token-auth/."
_KEY_ID = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
_USER = Param("user", {**INT, "minimum": 1},
              "Superusers: list this user's keys instead (anyone else: their own id or a 403).")
_USE = ("Send a key as a token: `Authorization: JWT <key>`, `Authorization: Bearer <key>` or "
        "`?jwt=<key>`. It carries its user's rights until it expires or is revoked.")


def _user_param(query: dict) -> int | None:
    raw = query.get("user")
    if raw is None:
        return None
    try:
        user_id = int(raw)
    except ValueError:
        raise field_error("user", "A valid integer is required.") from None
    if not 1 <= user_id <= MAX_ID:
        raise field_error("user", "A valid integer is required.")
    return user_id


@bp.route("/api/keys", methods=["GET"], content_types=BODY_CONTENT_TYPES)
@doc("List API keys", {200: [ApiKeyOut], 400: INVALID, 403: "Detail"}, query=(_USER,), tags=("auth",),
     description="The caller's keys, oldest first, without their secret. " + _USE)
def list_keys():
    request = bp.current_request
    user = current_user(request)
    return respond(apikeys.list_for(user, _user_param(query_params(request))))


@bp.route("/api/keys", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Create an API key", {201: ApiKeyCreated, 400: INVALID, 403: "Detail"}, body=ApiKeyWrite, tags=("auth",),
     description="The answer's `key` is the only time the whole key is shown: only its hash is stored. "
                 "The request must authenticate with a token (or a password), not with an API key (403). "
                 "`expires_at`: ISO-8601, in the future (without an offset: UTC), or null for a key that "
                 "never expires. " + _USE)
def create_key():
    request = bp.current_request
    user = current_user(request)
    if uses_api_key(request.headers, query_params(request)):
        raise forbidden(KEY_CANNOT_CREATE)
    return respond(apikeys.create_for(user, parse_body(request).fields), status=201)


@bp.route("/api/keys/{key_id}", methods=["DELETE"], content_types=BODY_CONTENT_TYPES)
@doc("Revoke an API key", {204: NO_CONTENT}, tags=("auth",), path_types={"key_id": _KEY_ID},
     description="At once: the next request with the key is a 403. Own keys; a superuser's, anyone's.")
def revoke_key(key_id):
    user = current_user(bp.current_request)
    apikeys.revoke(user, key_id)
    return no_content()
