"""POST /api/token-auth/ (WebODM's djangorestframework-jwt `obtain_jwt_token`)."""
from __future__ import annotations

from chalice import Blueprint

from ..apidoc import INVALID, doc
from ..auth import issue_token, login
from ..errors import ApiError, validate
from ..models import TokenOut, TokenRequest
from .common import BODY_CONTENT_TYPES, parse_body, respond

bp = Blueprint(__name__)


@bp.route("/api/token-auth", methods=["POST"], content_types=BODY_CONTENT_TYPES)
@doc("Obtain a JWT", {200: TokenOut, 400: INVALID}, body=TokenRequest, auth="none", tags=("auth",))
def obtain_token():
    """Exchange username and password for a JWT (use as `Authorization: JWT <token>`)."""
    credentials = validate(TokenRequest, parse_body(bp.current_request).fields)
    user = login(credentials.username, credentials.password)
    if user is None:
        raise ApiError(400, {"non_field_errors": ["Unable to login with provided credentials."]})
    if not user.get("is_active", True):
        raise ApiError(400, {"non_field_errors": ["User account is disabled."]})
    return respond({"token": issue_token(user)})
