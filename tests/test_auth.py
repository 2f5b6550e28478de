"""Token auth and how credentials are accepted or refused (WebODM's authentication classes and token endpoint)."""
from __future__ import annotations

import base64
import time

import jwt

from chalicelib.store import users

SECRET = "test-secret-0123456789abcdef-0123456789"


def test_token_from_form_and_json(api, alice):
    form = api.post("/api/token-auth/", data={"username": "alice", "password": "alice-pass"})
    assert form.status == 200
    as_json = api.post("/api/token-auth/", json={"username": "alice", "password": "alice-pass"})
    assert as_json.status == 200
    claims = jwt.decode(as_json.json["token"], SECRET, algorithms=["HS256"])
    assert claims["username"] == "alice" and claims["user_id"] == alice["id"]
    assert 6 * 3600 - 5 <= claims["exp"] - time.time() <= 6 * 3600


def test_wrong_login_is_400_with_webodm_message(api, alice):
    for body in ({"username": "alice", "password": "nope"}, {"username": "ghost", "password": "x"}):
        reply = api.post("/api/token-auth/", data=body)
        assert reply.status == 400
        assert reply.json == {"non_field_errors": ["Unable to login with provided credentials."]}


def test_missing_fields_are_field_errors(api):
    reply = api.post("/api/token-auth/", json={"username": "alice"})
    assert reply.status == 400
    assert reply.json == {"password": ["This field is required."]}


def test_inactive_user_cannot_log_in(api, aws_env):
    from tests.conftest import make_user

    make_user("sleepy", "pw", is_active=False)
    reply = api.post("/api/token-auth/", data={"username": "sleepy", "password": "pw"})
    assert reply.status == 400
    assert reply.json == {"non_field_errors": ["User account is disabled."]}


def test_token_accepted_in_header_and_query(api, alice):
    token = api.post("/api/token-auth/", data={"username": "alice", "password": "alice-pass"}).json["token"]
    assert api.get("/api/projects/", headers={"Authorization": f"JWT {token}"}).status == 200
    assert api.get("/api/projects/", params={"jwt": token}).status == 200


def test_no_credentials_is_403(api, alice):
    reply = api.get("/api/projects/")
    assert reply.status == 403
    assert reply.json == {"detail": "Authentication credentials were not provided."}


def test_expired_token(api, alice):
    expired = jwt.encode({"user_id": alice["id"], "username": "alice", "exp": int(time.time()) - 10},
                         SECRET, algorithm="HS256")
    reply = api.get("/api/projects/", token=expired)
    assert reply.status == 403
    assert reply.json == {"detail": "Signature has expired."}


def test_forged_and_unsigned_tokens(api, alice):
    forged = jwt.encode({"user_id": alice["id"], "username": "alice", "exp": int(time.time()) + 60},
                        "another-secret-0123456789abcdef-01234", algorithm="HS256")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(
        f'{{"user_id":{alice["id"]},"username":"alice","exp":{int(time.time()) + 60}}}'.encode()
    ).rstrip(b"=").decode()
    for token in (forged, f"{header}.{payload}.", "garbage"):
        reply = api.get("/api/projects/", token=token)
        assert reply.status == 403
        assert reply.json == {"detail": "Error decoding signature."}


def test_token_of_deleted_or_disabled_user(api, alice):
    users.update(alice, {"is_active": False})
    reply = api.get("/api/projects/", token=alice["token"])
    assert reply.json == {"detail": "User account is disabled."} and reply.status == 403
    users.delete(alice)
    reply = api.get("/api/projects/", token=alice["token"])
    assert reply.json == {"detail": "Invalid signature."} and reply.status == 403


def test_token_without_username_claim(api, alice):
    token = jwt.encode({"user_id": alice["id"], "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    reply = api.get("/api/projects/", token=token)
    assert reply.status == 403 and reply.json == {"detail": "Invalid payload."}


def test_malformed_authorization_headers(api, alice):
    reply = api.get("/api/projects/", headers={"Authorization": "JWT"})
    assert reply.status == 403
    assert reply.json["detail"].startswith("Invalid Authorization header. No credentials")
    reply = api.get("/api/projects/", headers={"Authorization": "JWT a b"})
    assert reply.status == 403
    assert "should not contain spaces" in reply.json["detail"]


def test_basic_auth(api, alice):
    good = base64.b64encode(b"alice:alice-pass").decode()
    bad = base64.b64encode(b"alice:wrong").decode()
    assert api.get("/api/projects/", headers={"Authorization": f"Basic {good}"}).status == 200
    reply = api.get("/api/projects/", headers={"Authorization": f"Basic {bad}"})
    assert reply.status == 403 and reply.json == {"detail": "Invalid username/password."}


def test_passwords_are_stored_as_salted_slow_hashes(api, admin):
    api.post("/api/admin/users/", token=admin["token"], json={"username": "u1", "password": "same"})
    api.post("/api/admin/users/", token=admin["token"], json={"username": "u2", "password": "same"})
    first, second = users.get("u1")["password"], users.get("u2")["password"]
    assert first.startswith("pbkdf2_sha256$") and "same" not in first
    assert first != second  # salted
    assert api.post("/api/token-auth/", data={"username": "u1", "password": "same"}).status == 200
