"""Bad input never produces a 500, and the one middleware shapes every error like DRF."""
from __future__ import annotations

import requests

from chalicelib import aws, config


def test_malformed_json(api, alice):
    reply = api.post("/api/projects/", token=alice["token"], data=b'{"name": ',
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.json["detail"].startswith("JSON parse error")


def test_json_that_is_not_an_object(api, alice):
    reply = api.post("/api/projects/", token=alice["token"], json=["name"])
    assert reply.status == 400 and "non_field_errors" in reply.json


def test_deeply_nested_json(api, alice):
    body = "[" * 100_000 + "]" * 100_000
    reply = api.post("/api/projects/", token=alice["token"], data=('{"name": ' + body + "}").encode(),
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400
    reply = api.post("/api/projects/", token=alice["token"],
                     data=('{"name": "x", "tags": ' + "[" * 50 + "]" * 50 + "}").encode(),
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert api.get("/api/projects/", token=alice["token"]).json == []


def test_unsupported_media_type(api, alice):
    reply = api.post("/api/projects/", token=alice["token"], data=b"name=x",
                     headers={"Content-Type": "text/plain"})
    assert reply.status == 415 and "detail" in reply.json


def test_unknown_route_and_method(live, alice):
    for path in ("/api/does-not-exist/", "/nothing", "/api/projects/1/whatever/deeper/"):
        reply = requests.get(live + path, headers={"Authorization": f"JWT {alice['token']}"})
        assert reply.status_code == 404 and reply.json() == {"detail": "Not found."}, path
    reply = requests.delete(live + "/api/token-auth/")
    assert reply.status_code == 405 and reply.json() == {"detail": 'Method "DELETE" not allowed.'}


def test_unexpected_failure_is_a_clean_logged_500(api, alice, caplog):
    aws.dynamodb().delete_table(TableName=config.settings().projects_table)
    reply = api.get("/api/projects/", token=alice["token"])
    assert reply.status == 500
    assert reply.json == {"detail": "Internal server error"}
    assert b"Traceback" not in reply.body
    assert any("ResourceNotFound" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_strings_with_unicode_and_control_characters(api, alice):
    reply = api.post("/api/projects/", token=alice["token"], json={"name": "Ортофото 🛩 \u0000\u001f"})
    assert reply.status == 201
    assert api.get(f"/api/projects/{reply.json['id']}/", token=alice["token"]).json["name"] == \
        "Ортофото 🛩 \u0000\u001f"
