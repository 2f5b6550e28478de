"""API keys (/api/keys/): created once with their secret shown, used wherever a token is
(JWT header, Bearer, ?jwt=, the upload/ authorizer of a live stack), revoked at once,
expiring, per user, hashed at rest, touched at most once a minute, never logged."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
import requests

from chalicelib import aws, config
from tests.conftest import ROOT
from tests.helpers import new_project
from tests.sample_data import fake_image

FIELDS = {"id", "name", "prefix", "user", "created_at", "expires_at", "last_used_at"}
KEY_SHAPE = re.compile(r"aloft_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def secret_of(key: str) -> str:
    """The 43 characters after `aloft_<id>_` (base64url: they may hold `_` themselves)."""
    return key[len("aloft_") + 16 + 1:]


def create_key(api, user, **body) -> dict:
    reply = api.post("/api/keys/", token=user["token"], json={"name": "script", **body})
    assert reply.status == 201, reply.json
    return reply.json


def table_items() -> list[dict]:
    """Every item of the keys table as DynamoDB holds it (raw attribute values)."""
    name = config.settings().api_keys_table
    return list(aws.dynamodb().get_paginator("scan").paginate(TableName=name).search("Items[]"))


def iso_in(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


@contextlib.contextmanager
def dynamodb_calls():
    """The DynamoDB operations this process makes meanwhile, as (operation, table) pairs."""
    calls: list[tuple[str, str]] = []

    def record(params, model, **_):
        calls.append((model.name, params.get("TableName", "")))

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.*", record)
    try:
        yield calls
    finally:
        events.unregister("provide-client-params.dynamodb.*", record)


def test_create_shows_the_key_once_and_the_list_never(api, alice):
    created = create_key(api, alice, name="  nightly  ")
    assert set(created) == FIELDS | {"key"}
    assert KEY_SHAPE.fullmatch(created["key"])
    assert created["key"].startswith(created["prefix"] + "_") and created["prefix"] == "aloft_" + created["id"]
    assert created["name"] == "nightly" and created["user"] == alice["id"]
    assert created["expires_at"] is None and created["last_used_at"] is None
    listed = api.get("/api/keys/", token=alice["token"])
    assert listed.status == 200
    assert listed.json == [{k: v for k, v in created.items() if k != "key"}]
    assert created["key"] not in json.dumps(listed.json)
    second = create_key(api, alice, name="other")
    assert second["key"] != created["key"] and second["id"] != created["id"]
    assert [k["name"] for k in api.get("/api/keys/", token=alice["token"]).json] == ["nightly", "other"]


def test_a_key_works_as_jwt_header_bearer_and_query_with_its_users_rights(api, alice, bob):
    key = create_key(api, alice)["key"]
    own = new_project(api, alice, "mine")
    others = new_project(api, bob, "bobs")
    for kwargs in ({"headers": {"Authorization": f"JWT {key}"}},
                   {"headers": {"Authorization": f"Bearer {key}"}},
                   {"params": {"jwt": key}}):
        listed = api.get("/api/projects/", **kwargs)
        assert listed.status == 200, listed.json
        assert [p["id"] for p in listed.json] == [own["id"]]
        assert api.get(f"/api/projects/{others['id']}/", **kwargs).status == 404
    made = api.post("/api/projects/", headers={"Authorization": f"Bearer {key}"}, json={"name": "by key"})
    assert made.status == 201
    assert api.get(f"/api/projects/{made.json['id']}/", token=alice["token"]).status == 200
    # a key is no superuser's: the admin API stays closed to it
    assert api.get("/api/admin/users/", headers={"Authorization": f"JWT {key}"}).status == 403


def test_revoking_is_immediate_and_bad_keys_get_a_bad_tokens_answer(api, alice):
    created = create_key(api, alice)
    key = created["key"]
    assert api.get("/api/projects/", token=key).status == 200
    revoked = api.delete(f"/api/keys/{created['id']}/", token=alice["token"])
    assert revoked.status == 204
    bad_token = api.get("/api/projects/", token="eyJnot.a.token")
    assert bad_token.status == 403
    for kwargs in ({"token": key}, {"params": {"jwt": key}}, {"headers": {"Authorization": f"Bearer {key}"}}):
        reply = api.get("/api/projects/", **kwargs)
        assert reply.status == 403 and reply.json == bad_token.json == {"detail": "Error decoding signature."}
    assert api.get("/api/keys/", token=alice["token"]).json == []
    assert api.delete(f"/api/keys/{created['id']}/", token=alice["token"]).status == 404
    # a live key with a wrong secret, or a malformed one, is refused the same way
    live = create_key(api, alice)["key"]
    for wrong in (live[:-1] + ("A" if live[-1] != "A" else "B"), live + "x", "aloft_", "aloft_zz_zz"):
        reply = api.get("/api/projects/", token=wrong)
        assert reply.status == 403 and reply.json == {"detail": "Error decoding signature."}


def test_an_expired_key_is_refused(api, alice):
    created = create_key(api, alice, expires_at=iso_in(1.5))
    assert created["expires_at"].endswith("Z")
    assert api.get("/api/projects/", token=created["key"]).status == 200
    time.sleep(1.6)
    reply = api.get("/api/projects/", token=created["key"])
    assert reply.status == 403 and reply.json == {"detail": "Signature has expired."}
    # an offset is converted to UTC
    later = create_key(api, alice, expires_at="2999-01-01T12:00:00+02:00")
    assert later["expires_at"] == "2999-01-01T10:00:00.000000Z"
    assert api.get("/api/projects/", token=later["key"]).status == 200


def test_invalid_input_is_a_drf_400(api, alice):
    cases = [
        ({}, {"name": ["This field is required."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "   "}, {"name": ["This field may not be blank."]}),
        ({"name": "x" * 256}, {"name": ["Ensure this field has no more than 255 characters."]}),
        ({"name": "k", "expires_at": "tomorrow"}, {"expires_at": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]}),
        ({"name": "k", "expires_at": 1_900_000_000}, {"expires_at": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]}),
        ({"name": "k", "expires_at": "2020-01-01T00:00:00Z"}, {"expires_at": ["Must be in the future."]}),
        ({"name": "k", "expires_at": "9999-12-31T23:59:59-14:00"}, {"expires_at": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]}),
    ]
    for body, expected in cases:
        reply = api.post("/api/keys/", token=alice["token"], json=body)
        assert (reply.status, reply.json) == (400, expected), body
    assert api.post("/api/keys/", token=alice["token"], json=[1]).status == 400
    assert api.get("/api/keys/", token=alice["token"]).json == []
    # null and (in a form) an empty field both mean "never expires"
    assert create_key(api, alice, expires_at=None)["expires_at"] is None
    form = api.post("/api/keys/", token=alice["token"], data={"name": "form", "expires_at": ""})
    assert form.status == 201 and form.json["expires_at"] is None
    assert api.post("/api/keys/", json={"name": "anonymous"}).status == 403


def test_another_users_key_is_a_404_and_not_listed(api, alice, bob):
    alices = create_key(api, alice)
    bobs = create_key(api, bob)
    assert api.delete(f"/api/keys/{alices['id']}/", token=bob["token"]).status == 404
    assert [k["id"] for k in api.get("/api/keys/", token=bob["token"]).json] == [bobs["id"]]
    refused = api.get("/api/keys/", token=bob["token"], params={"user": alice["id"]})
    assert refused.status == 403
    assert api.get("/api/keys/", token=bob["token"], params={"user": bob["id"]}).json[0]["id"] == bobs["id"]
    assert api.get("/api/projects/", token=alices["key"]).status == 200  # still alive
    for junk in ("nothex", "0123456789abcdeF", "0" * 17, "x" * 3000):
        assert api.delete(f"/api/keys/{junk}/", token=alice["token"]).status == 404
    for junk in ("abc", "0", "-1", str(2**64)):
        reply = api.get("/api/keys/", token=alice["token"], params={"user": junk})
        assert (reply.status, reply.json) == (400, {"user": ["A valid integer is required."]})


def test_a_superuser_lists_and_revokes_anyones_keys(api, admin, alice, bob):
    alices = create_key(api, alice)
    create_key(api, bob)
    mine = create_key(api, admin)
    listed = api.get("/api/keys/", token=admin["token"], params={"user": alice["id"]})
    assert listed.status == 200 and [k["id"] for k in listed.json] == [alices["id"]]
    assert listed.json[0]["user"] == alice["id"] and "key" not in listed.json[0]
    assert [k["id"] for k in api.get("/api/keys/", token=admin["token"]).json] == [mine["id"]]
    assert api.get("/api/keys/", token=admin["token"], params={"user": 999}).json == []
    assert api.delete(f"/api/keys/{alices['id']}/", token=admin["token"]).status == 204
    assert api.get("/api/projects/", token=alices["key"]).status == 403
    assert api.get("/api/keys/", token=alice["token"]).json == []


def test_keys_are_hashed_at_rest(api, alice):
    created = create_key(api, alice, expires_at=iso_in(3600))
    key = created["key"]
    secret = secret_of(key)
    assert api.get("/api/projects/", token=key).status == 200  # also writes last_used_at
    (item,) = table_items()
    stored = json.dumps(item)
    assert key not in stored and secret not in stored and secret[:16] not in stored
    assert item["hash"] == {"S": hashlib.sha256(key.encode()).hexdigest()}
    assert item["id"] == {"S": created["id"]} and item["user_id"] == {"N": str(alice["id"])}
    assert set(item) == {"id", "user_id", "username", "name", "hash", "created_at", "expires_at", "last_used_at",
                         "expires"}
    # the table's TTL deletes an expired key EXPIRED_KEPT_DAYS after it stopped working
    expiry = datetime.strptime(created["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert int(item["expires"]["N"]) == int(expiry.timestamp()) + 30 * 86400
    # the user index (what lists read) does not even hold the hash
    index = aws.dynamodb().query(TableName=config.settings().api_keys_table, IndexName="by-user",
                                 KeyConditionExpression="user_id = :u",
                                 ExpressionAttributeValues={":u": {"N": str(alice["id"])}})["Items"]
    assert len(index) == 1 and "hash" not in index[0]


def test_a_request_with_a_key_costs_one_getitem_and_last_used_at_is_written_once_a_minute(api, alice):
    created = create_key(api, alice)
    key, table = created["key"], config.settings().api_keys_table
    with dynamodb_calls() as calls:
        assert api.get("/api/projects/", token=key).status == 200
    on_keys = [op for op, name in calls if name == table]
    assert on_keys == ["GetItem", "UpdateItem"]  # first use: last_used_at written
    assert not [op for op, _ in calls if op == "Scan"]
    first = api.get("/api/keys/", token=alice["token"]).json[0]["last_used_at"]
    assert first is not None
    with dynamodb_calls() as calls:
        for _ in range(5):
            assert api.get("/api/projects/", token=key).status == 200
    assert [op for op, name in calls if name == table] == ["GetItem"] * 5  # no write within the minute
    assert api.get("/api/keys/", token=alice["token"]).json[0]["last_used_at"] == first
    # a minute later (the stored time made 61 s older), the next request writes it again
    aged = (datetime.now(timezone.utc) - timedelta(seconds=61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    aws.dynamodb().update_item(TableName=table, Key={"id": {"S": created["id"]}},
                               UpdateExpression="SET last_used_at = :t", ExpressionAttributeValues={":t": {"S": aged}})
    with dynamodb_calls() as calls:
        assert api.get("/api/projects/", token=key).status == 200
    assert [op for op, name in calls if name == table] == ["GetItem", "UpdateItem"]
    again = api.get("/api/keys/", token=alice["token"]).json[0]["last_used_at"]
    assert again > first > aged


def test_a_key_carries_its_users_state(api, admin, alice):
    key = create_key(api, alice)["key"]
    reply = api.patch(f"/api/admin/users/{alice['id']}/", token=admin["token"], json={"is_active": False})
    assert reply.status == 200
    refused = api.get("/api/projects/", token=key)
    assert refused.status == 403 and refused.json == {"detail": "User account is disabled."}
    api.patch(f"/api/admin/users/{alice['id']}/", token=admin["token"], json={"is_active": True, "username": "alicia"})
    assert api.get("/api/projects/", token=key).status == 200  # a rename keeps the key working
    (item,) = table_items()
    assert item["username"] == {"S": "alicia"}  # and the key learnt the new name
    with dynamodb_calls() as calls:
        assert api.get("/api/projects/", token=key).status == 200
    users_table = config.settings().users_table
    assert [op for op, name in calls if name == users_table] == ["GetItem"]  # no index Query now
    assert api.delete(f"/api/admin/users/{alice['id']}/", token=admin["token"]).status == 204
    assert table_items() == []  # a deleted user's keys go with them
    gone = api.get("/api/projects/", token=key)
    assert gone.status == 403 and gone.json == {"detail": "Error decoding signature."}


def test_no_key_text_in_the_logs(api, alice, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aloft")  # the app's own logger says INFO: everything here
    created = create_key(api, alice)
    key = created["key"]
    api.get("/api/projects/", token=key)
    api.get("/api/projects/", params={"jwt": key})
    api.get("/api/projects/", headers={"Authorization": f"Bearer {key}"})
    api.delete(f"/api/keys/{created['id']}/", token=alice["token"])
    api.get("/api/projects/", params={"jwt": key})
    assert caplog.records  # botocore and the app did log, at DEBUG
    assert key not in caplog.text and secret_of(key) not in caplog.text


_DEPLOYED_LOGS = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
from chalice.test import Client
from moto import mock_aws
from aloft_local.resources import create_resources
from chalicelib import aws, config
with mock_aws():
    os.environ.update(create_resources("logs", aws.dynamodb(), aws.s3()))
    config.reset()
    from app import app
    app.log.setLevel(logging.DEBUG)
    from chalicelib.auth import issue_token
    from chalicelib.store import users
    token = issue_token(users.create({"username": "scripter", "is_active": True, "is_superuser": False}))
    with Client(app, stage_name="prod") as client:
        created = client.http.post("/api/keys/", body=b'{"name": "ci"}',
                                   headers={"Authorization": "JWT " + token, "Content-Type": "application/json"})
        key = __import__("json").loads(created.body)["key"]
        sys.stderr.write(key + "\\n")
        client.http.get("/api/projects/", headers={"Authorization": "Bearer " + key})
        client.http.get("/api/projects/?jwt=" + key)
        client.http.get("/api/projects/?jwt=" + key[:-2] + "zz")
        client.http.get("/api/projects/", headers={"Authorization": "JWT " + key + " extra"})
"""


def test_deployed_functions_never_log_a_key():
    """A deployed stage's JSON lines (access lines, botocore at DEBUG) for requests with a key in
    each place it may travel, a wrong one and a malformed header: the key text never appears."""
    env = {**os.environ, "ALOFT_STAGE": "prod", "ALOFT_JWT_SECRET": "s" * 40, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "ALOFT_PASSWORD_ITERATIONS": "1000"}
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run([sys.executable, "-c", _DEPLOYED_LOGS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    key = done.stderr.splitlines()[0]
    assert KEY_SHAPE.fullmatch(key)
    access = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    statuses = [(line["method"], line["status"]) for line in access if line.get("path") == "/api/projects"]
    assert statuses == [("GET", 200), ("GET", 200), ("GET", 403), ("GET", 403)]
    secret = secret_of(key)
    assert secret not in done.stdout and secret not in done.stderr.replace(key, "")


def test_upload_with_a_key_through_the_live_stack(stack_process):
    """`make run`: the upload/ S3 integration's authorizer (a Lambda container of its own)
    takes a key as JWT, Bearer or ?jwt=, refuses it once revoked; the stack logs no key."""
    stack = stack_process()
    token = requests.post(f"{stack.url}/api/token-auth/", data={"username": "admin", "password": "admin"}).json()["token"]
    created = requests.post(f"{stack.url}/api/keys/", headers={"Authorization": f"JWT {token}"},
                            json={"name": "uploader"}).json()
    key = created["key"]
    bearer = {"Authorization": f"Bearer {key}"}
    project = requests.post(f"{stack.url}/api/projects/", headers=bearer, data={"name": "keyed"}).json()
    tasks_url = f"{stack.url}/api/projects/{project['id']}/tasks/"
    task = requests.post(tasks_url, params={"jwt": key}, json={"partial": True}).json()
    upload = f"{tasks_url}{task['id']}/upload/"
    images = {f"k{i}.jpg": fake_image(i, 30_000) for i in range(3)}
    ways = [{"headers": bearer}, {"headers": {"Authorization": f"JWT {key}"}}, {"params": {"jwt": key}}]
    for (name, content), way in zip(images.items(), ways):
        reply = requests.post(upload, files=[("images", (name, content, "image/jpeg"))], **way)
        assert reply.status_code == 200 and reply.json() == {"success": True}, reply.text
    committed = requests.post(f"{tasks_url}{task['id']}/commit/", headers=bearer)
    assert committed.status_code == 200 and committed.json()["images_count"] == 3
    # the stack's own DynamoDB: the key's hash only, and last_used_at written by its use
    from aloft_local.resources import resource_environment
    from aloft_local.stack import RESOURCE_PREFIX

    dynamodb = boto3.client("dynamodb", endpoint_url=stack.storage_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    table = resource_environment(RESOURCE_PREFIX)["ALOFT_API_KEYS_TABLE"]
    (item,) = dynamodb.scan(TableName=table)["Items"]
    assert item["hash"] == {"S": hashlib.sha256(key.encode()).hexdigest()} and "last_used_at" in item
    assert secret_of(key) not in json.dumps(item)
    revoked = requests.delete(f"{stack.url}/api/keys/{created['id']}/", headers={"Authorization": f"JWT {token}"})
    assert revoked.status_code == 204
    task2 = requests.post(tasks_url, headers={"Authorization": f"JWT {token}"}, json={"partial": True}).json()
    refused = requests.post(f"{tasks_url}{task2['id']}/upload/", headers=bearer,
                            files=[("images", ("x.jpg", fake_image(9, 1000), "image/jpeg"))])
    assert refused.status_code == 403 and refused.json() == {"detail": "Error decoding signature."}
    assert dynamodb.scan(TableName=table)["Items"] == []
    stack.stop()
    logged = "\n".join(stack.banner + stack.output)
    assert "/upload" in logged  # the gateway's access lines are there...
    assert key not in logged and secret_of(key) not in logged  # ...and no key


@pytest.mark.parametrize("header", ["JWT", "Bearer"])
def test_a_header_with_extra_words_is_refused_as_for_a_token(api, alice, header):
    key = create_key(api, alice)["key"]
    reply = api.get("/api/projects/", headers={"Authorization": f"{header} {key} more"})
    assert reply.status == 403
    assert reply.json == {"detail": "Invalid Authorization header. Credentials string should not contain spaces."}


def test_a_key_cannot_create_keys_but_may_list_and_revoke(api, alice):
    """A leaked key must not mint keys that outlive its own revocation."""
    created = create_key(api, alice)
    key = created["key"]
    for kwargs in ({"token": key}, {"params": {"jwt": key}}, {"headers": {"Authorization": f"Bearer {key}"}}):
        reply = api.post("/api/keys/", json={"name": "minted"}, **kwargs)
        assert reply.status == 403
        assert reply.json == {"detail": "An API key cannot create API keys: use a token from /api/token-auth/."}
    basic = api.post("/api/keys/", json={"name": "by password"},
                     headers={"Authorization": "Basic " + base64.b64encode(b"alice:alice-pass").decode()})
    assert basic.status == 201
    assert [k["name"] for k in api.get("/api/keys/", token=key).json] == ["script", "by password"]
    assert api.delete(f"/api/keys/{basic.json['id']}/", token=key).status == 204
    assert api.delete(f"/api/keys/{created['id']}/", token=key).status == 204  # even itself
    assert api.get("/api/keys/", token=key).status == 403


def test_a_renamed_users_key_never_becomes_the_key_of_whoever_takes_the_old_name(api, admin, alice):
    key = create_key(api, alice)["key"]
    own = new_project(api, alice, "alices")
    assert api.patch(f"/api/admin/users/{alice['id']}/", token=admin["token"],
                     json={"username": "alicia"}).status == 200
    impostor = api.post("/api/admin/users/", token=admin["token"], json={"username": "alice", "password": "pw"})
    assert impostor.status == 201 and impostor.json["id"] != alice["id"]
    token = api.post("/api/token-auth/", json={"username": "alice", "password": "pw"}).json["token"]
    theirs = api.post("/api/projects/", token=token, json={"name": "impostor's"}).json
    mine = api.get("/api/projects/", token=key)
    assert mine.status == 200 and [p["id"] for p in mine.json] == [own["id"]] != [theirs["id"]]
    (item,) = table_items()
    assert item["username"] == {"S": "alicia"} and item["user_id"] == {"N": str(alice["id"])}


def test_a_key_whose_user_row_is_gone_is_refused(api, alice):
    """Between a user's deletion and the hand-over job that deletes their keys."""
    from chalicelib.store import users

    key = create_key(api, alice)["key"]
    users.delete(alice)
    reply = api.get("/api/projects/", token=key)
    assert reply.status == 403 and reply.json == {"detail": "Invalid signature."}


def test_the_local_gateway_logs_no_query_string_even_for_a_malformed_request(live, caplog):
    """http.server logs a malformed request line whole (at DEBUG): never its `?jwt=`."""
    import logging
    import socket
    from urllib.parse import urlsplit

    caplog.set_level(logging.DEBUG, logger="aloft.gateway")
    key = "aloft_0123456789abcdef_" + "S" * 43
    address = urlsplit(live)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(f"GET /api/projects/?jwt={key} more HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert b"400" in sock.recv(4096)
    requests.get(f"{live}/api/projects/", params={"jwt": key}, timeout=30)
    deadline = time.monotonic() + 10
    while "GET /api/projects/ 403" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)  # the access line is written once the answer is sent
    logged = caplog.text
    assert "Bad request syntax ('GET /api/projects/?..." in logged  # the request line, cut...
    assert "GET /api/projects/ 403" in logged  # ...and the access line of the well-formed one...
    assert key not in logged and "S" * 43 not in logged  # ...without the key
