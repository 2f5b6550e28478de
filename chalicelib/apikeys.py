"""API keys: long-lived credentials a script sends where it would send a JWT.

WebODM has none: a script keeps a password to get a token that expires after 6 hours. An
Aloft key works wherever a token does (`Authorization: JWT <key>`, `Authorization: Bearer
<key>`, `?jwt=<key>`, the `upload/` authorizer included, chalicelib/auth.py) and carries its
user's rights: an inactive or deleted user's key fails as their token would.

A key reads `aloft_<id>_<secret>`: the recognisable `aloft_` prefix (secret scanners and
people can tell what it is), a 16-hex-digit public id (64 random bits: the table's key, the
`id` of the API, and with the prefix the `prefix` a list shows), and a 256-bit secret. A
request with a key costs one strongly consistent GetItem of its id (no Scan, no index), a
SHA-256 and a constant-time comparison with the stored hash, and the owner's GetItem as a
token costs. The full key is shown once, in the create answer; only its hash is stored.

Failures answer 403 as a token's do, with djangorestframework-jwt's words: a malformed,
unknown or revoked key, or a wrong secret, gets what a bad token gets ("Error decoding
signature."), so an answer never says whether an id exists; an expired key "Signature has
expired."; an inactive owner's "User account is disabled.".

`last_used_at` is written at most once a minute per key: the request already holds the item,
so it writes nothing unless the stored time is a minute old, and then a conditional
UpdateItem lets one of several concurrent requests write it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, StringConstraints, ValidationError

from .errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied, drf_errors
from .models import Request, utcnow
from .store import keys as store
from .store import users

KEY_PREFIX = "aloft_"
_ID_HEX = 16
_KEY_TEXT = re.compile(r"aloft_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
TOUCH_SECONDS = 60  # `last_used_at` is at most this old while the key is in use
MAX_KEYS_PER_USER = 100  # so a user's list stays one small answer
# An expired key stays listed this long (its owner sees why a script stopped), then the
# table's TTL (`expires`, epoch seconds) deletes it, so dead keys neither pile up nor count
# against MAX_KEYS_PER_USER for ever.
EXPIRED_KEPT_DAYS = 30
BAD_KEY = "Error decoding signature."  # what djangorestframework-jwt answers a bad token
EXPIRED = "Signature has expired."
INACTIVE = "User account is disabled."
NO_USER = "Invalid signature."
DATETIME_FORMAT = ("Datetime has wrong format. Use one of these formats instead: "
                   "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"  # models.utcnow's format: sorts as text


# ---------------------------------------------------------------- request and answers

def _char_field(value: Any) -> Any:
    """DRF's CharField: a number becomes text, text is trimmed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else value


def _future_datetime(value: Any) -> Any:
    """DRF's DateTimeField (ISO-8601; without an offset, UTC), then: later than now. Stored as
    UTC in utcnow's format."""
    if value is None or value == "":  # a form cannot send null: an empty field means never
        return None
    if not isinstance(value, str):
        raise ValueError(DATETIME_FORMAT)
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(DATETIME_FORMAT) from None
    if moment <= datetime.now(timezone.utc):
        raise ValueError("Must be in the future.")
    return moment.strftime(_ISO)


KeyName = Annotated[str, StringConstraints(min_length=1, max_length=255), BeforeValidator(_char_field)]


class ApiKeyWrite(Request):
    """A new key: a `name` to know it by, and when it stops working (`null`: never)."""
    name: KeyName
    expires_at: Annotated[Optional[str], BeforeValidator(_future_datetime)] = None


class ApiKeyOut(BaseModel):
    """A key as lists show it: never its secret nor its hash."""
    id: str
    name: str
    prefix: str
    user: int
    created_at: str
    expires_at: Optional[str]
    last_used_at: Optional[str]


class ApiKeyCreated(ApiKeyOut):
    """The create answer: the only place the whole `key` is ever shown."""
    key: str


def out(item: dict) -> dict:
    return {"id": item["id"], "name": item["name"], "prefix": KEY_PREFIX + item["id"],
            "user": item["user_id"], "created_at": item["created_at"],
            "expires_at": item.get("expires_at"), "last_used_at": item.get("last_used_at")}


# ---------------------------------------------------------------- the secret

def key_hash(text: str) -> str:
    """SHA-256 of the whole key text, hex.

    Why a plain fast hash and not PBKDF2 (which passwords get, chalicelib/auth.py): a slow
    hash protects secrets people choose, which an attacker holding the table could guess a
    few at a time. A key's secret is 256 random bits: no guess list exists, and a hash of
    it cannot be reversed or searched whatever its speed, so stretching would add nothing
    but 100+ ms of CPU to every request a key makes (in the API and in the `upload/`
    authorizer). Nor is it keyed with the JWT secret: rotating that secret must not void
    every key, and the authorizer would need the secret before each lookup.
    """
    return hashlib.sha256(text.encode()).hexdigest()


def is_key(token: str) -> bool:
    """Whether a credential is an API key rather than a JWT (a JWT starts with `eyJ`)."""
    return token.startswith(KEY_PREFIX)


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(_ID_HEX // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


# ---------------------------------------------------------------- routes' operations

def create_for(user: dict, fields: dict) -> dict:
    """Create a key of the caller's: the answer holds the whole key, the table its hash."""
    try:
        data = ApiKeyWrite.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(drf_errors(exc)) from None
    if len(store.list_for_user(user["id"])) >= MAX_KEYS_PER_USER:
        raise InvalidInput({"detail": f"A user may hold at most {MAX_KEYS_PER_USER} API keys: "
                                      "revoke one first."})
    for _ in range(3):
        key_id, text = _new_key()
        item = {"id": key_id, "user_id": user["id"], "username": user["username"], "name": data.name,
                "hash": key_hash(text), "created_at": utcnow()}
        if data.expires_at:
            item["expires_at"] = data.expires_at
            expiry = datetime.strptime(data.expires_at, _ISO).replace(tzinfo=timezone.utc)
            item["expires"] = int((expiry + timedelta(days=EXPIRED_KEPT_DAYS)).timestamp())
        try:
            store.create(item)
        except store.DuplicateKeyId:
            continue
        return {**out(item), "key": text}
    raise RuntimeError("three random key ids were all taken")  # never: 64-bit ids


def list_for(caller: dict, user_id: int | None) -> list[dict]:
    """The caller's keys; a superuser's request may name another user (`user_id`)."""
    if user_id is None or user_id == caller["id"]:
        return [out(item) for item in store.list_for_user(caller["id"])]
    if not caller.get("is_superuser"):
        raise PermissionDenied()
    return [out(item) for item in store.list_for_user(user_id)]


def revoke(caller: dict, key_id: str) -> None:
    """Delete a key at once: the caller's own, or anyone's for a superuser; else 404."""
    if not _KEY_ID.fullmatch(key_id or ""):
        raise NotFound()
    owner = None if caller.get("is_superuser") else caller["id"]
    if not store.delete(key_id, owner):
        raise NotFound()


# ---------------------------------------------------------------- authentication

def user_for_key(text: str) -> dict:
    """The active user a key belongs to, or AuthenticationFailed (never with the key's text)."""
    match = _KEY_TEXT.fullmatch(text)
    item = store.get(match.group(1)) if match else None
    if item is None or not hmac.compare_digest(item.get("hash", ""), key_hash(text)):
        raise AuthenticationFailed(BAD_KEY)
    now = datetime.now(timezone.utc)
    stamp = now.strftime(_ISO)
    if item.get("expires_at") and item["expires_at"] <= stamp:
        raise AuthenticationFailed(EXPIRED)
    user = _owner(item)
    if not user.get("is_active", True):
        raise AuthenticationFailed(INACTIVE)
    stale = (now - timedelta(seconds=TOUCH_SECONDS)).strftime(_ISO)
    if (item.get("last_used_at") or "") <= stale:
        store.touch(item["id"], stamp, stale)
    return user


def _owner(item: dict) -> dict:
    """The key's user: one GetItem by the username the key recorded; after a rename, the id
    index finds them and the key learns the new name (so the next request is one GetItem)."""
    user = users.get(item.get("username", ""))
    if user is not None and user["id"] == item["user_id"]:
        return user
    user = users.get_by_id(item["user_id"])
    if user is None:
        raise AuthenticationFailed(NO_USER)
    store.set_username(item["id"], item["user_id"], user["username"])
    return user
