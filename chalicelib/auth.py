"""Passwords, JWTs and finding the caller of a request.

WebODM semantics (its `app/api/authentication.py` and djangorestframework-jwt settings): `Authorization: JWT <token>` or `?jwt=`,
HS256 tokens carrying user_id/username/email/exp, HTTP Basic as a fallback, and
403 (never 401) with DRF's messages when credentials are missing or bad. Wherever a token
goes, an API key (`aloft_...`, chalicelib/apikeys.py) may go instead; `Bearer` is accepted
as well as `JWT`.
Passwords are PBKDF2-SHA256 with a per-user salt, in Django's string format.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time

from . import apikeys
from .config import settings
from .errors import AuthenticationFailed
from .store import users

_ALGORITHM = "pbkdf2_sha256"


def hash_password(password: str, iterations: int | None = None) -> str:
    iterations = iterations or settings().password_iterations
    salt = secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str | None) -> bool:
    try:
        algorithm, iterations, salt, expected = (encoded or "").split("$", 3)
        if algorithm != _ALGORITHM:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


@functools.lru_cache(maxsize=4)
def _secret_from_arn(arn: str) -> str:
    from . import aws

    return aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


def _signing_key() -> str:
    config = settings()
    return config.jwt_secret or _secret_from_arn(config.jwt_secret_arn)


def issue_token(user: dict) -> str:
    import jwt

    payload = {"user_id": user["id"], "username": user["username"], "email": user.get("email", ""),
               "exp": int(time.time()) + settings().jwt_ttl_seconds}
    return jwt.encode(payload, _signing_key(), algorithm="HS256")


def login(username: str, password: str) -> dict | None:
    """The active user with these credentials, else None (same cost either way)."""
    user = users.get(username)
    if user is None:
        check_password(password, hash_password("timing-equaliser", 1000))
        return None
    if not check_password(password, user.get("password")):
        return None
    return user


def _user_from_token(token: str) -> dict:
    import jwt

    if apikeys.is_key(token):
        return apikeys.user_for_key(token)
    try:
        payload = jwt.decode(token, _signing_key(), algorithms=["HS256"],
                             options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("Signature has expired.") from None
    except jwt.InvalidTokenError:
        raise AuthenticationFailed("Error decoding signature.") from None
    username = payload.get("username")
    if not isinstance(username, str) or not username:
        raise AuthenticationFailed("Invalid payload.")
    user = users.get(username)
    if user is None or ("user_id" in payload and payload["user_id"] != user["id"]):
        raise AuthenticationFailed("Invalid signature.")
    if not user.get("is_active", True):
        raise AuthenticationFailed("User account is disabled.")
    return user


def _user_from_basic(credentials: str) -> dict:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
        username, _, password = decoded.partition(":")
    except (ValueError, UnicodeDecodeError):
        raise AuthenticationFailed("Invalid basic header. Credentials not correctly base64 encoded.") from None
    user = login(username, password)
    if user is None:
        raise AuthenticationFailed("Invalid username/password.")
    if not user.get("is_active", True):
        raise AuthenticationFailed("User inactive or deleted.")
    return user


def _credentials(headers, query: dict | None) -> tuple[str, str] | None:
    """What the request authenticates with: ("token", text) for a JWT or an API key (header
    first, then `?jwt=`), ("basic", text), or None. Raises for a malformed token header."""
    header = headers.get("authorization") or ""
    parts = header.split()
    if parts and parts[0].lower() in ("jwt", "bearer"):
        if len(parts) == 1:
            raise AuthenticationFailed("Invalid Authorization header. No credentials provided.")
        if len(parts) > 2:
            raise AuthenticationFailed("Invalid Authorization header. Credentials string should not contain spaces.")
        return "token", parts[1]
    if parts and parts[0].lower() == "basic" and len(parts) == 2:
        return "basic", parts[1]
    token = (query or {}).get("jwt")
    if token:
        return "token", token
    return None


def authenticate(headers, query: dict | None) -> dict | None:
    """The calling user, None when the request carries no credentials at all.

    Raises AuthenticationFailed for credentials that are present but wrong.
    """
    found = _credentials(headers, query)
    if found is None:
        return None
    kind, text = found
    return _user_from_basic(text) if kind == "basic" else _user_from_token(text)


def uses_api_key(headers, query: dict | None) -> bool:
    """Whether the request authenticates with an API key (rather than a JWT or a password)."""
    found = _credentials(headers, query)
    return found is not None and found[0] == "token" and apikeys.is_key(found[1])


def require_user(headers, query: dict | None) -> dict:
    user = authenticate(headers, query)
    if user is None:
        raise AuthenticationFailed()
    return user
