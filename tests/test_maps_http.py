"""The binary rule (`*/*` among the API's binary media types) and CORS, through the real
gateway: every request body reaches the app base64-encoded and still parses as JSON, a
form or multipart; JSON answers stay JSON whatever the client's Accept; any origin may
call with credentials, preflights included, as WebODM's django-cors-headers allows."""
from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import make_user, token_for
from tests.helpers import image_files

ORIGIN = "http://maps.example.org:8080"


@pytest.fixture
def user(live):
    made = make_user("carol", "carol-pass")
    return {**made, "token": token_for(made), "auth": {"Authorization": f"JWT {token_for(made)}"}}


def test_binary_media_types_include_everything():
    """What `chalice package` writes into the API's swagger: `*/*` among the binary media
    types, and OPTIONS of every resource run by the API function (no mock integration)."""
    from chalice.deploy.swagger import CFNSwaggerGenerator

    from app import app

    swagger = CFNSwaggerGenerator().generate_swagger(app)
    assert "*/*" in swagger["x-amazon-apigateway-binary-media-types"]
    for path, methods in swagger["paths"].items():
        integration = methods["options"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", path


def test_json_form_and_multipart_bodies_arrive_base64_encoded_and_parse(live, user):
    token = requests.post(f"{live}/api/token-auth/", json={"username": "carol", "password": "carol-pass"})
    assert token.status_code == 200 and token.headers["Content-Type"] == "application/json"
    assert token.json()["token"]
    form = requests.post(f"{live}/api/token-auth/", data={"username": "carol", "password": "carol-pass"})
    assert form.status_code == 200 and form.json()["token"]
    project = requests.post(f"{live}/api/projects/", headers=user["auth"], json={"name": "é ✓ 🌍"})
    assert project.status_code == 201 and project.json()["name"] == "é ✓ 🌍"
    task = requests.post(f"{live}/api/projects/{project.json()['id']}/tasks/", headers=user["auth"],
                         files=image_files(2), data={"name": "two"})
    assert task.status_code == 201, task.text
    assert task.json()["images_count"] == 2 and task.json()["name"] == "two"
    raw = requests.get(f"{live}/api/projects/{project.json()['id']}/tasks/{task.json()['id']}/output/",
                       headers=user["auth"], params={"f": "raw"})
    assert raw.status_code == 200 and raw.headers["Content-Type"].startswith("text/plain")


def test_a_json_body_counts_in_base64_against_lambdas_event_cap(live, user):
    """4,500,000 bytes of JSON reach the app (its own 413 for a fields body over 4 MiB);
    4,800,000 are 6,400,000 bytes of base64 in the event: API Gateway's 413."""
    def body(size: int) -> bytes:
        return json.dumps({"name": "x" * (size - 12)}).encode()

    headers = {**user["auth"], "Content-Type": "application/json"}
    reached = requests.post(f"{live}/api/projects/", headers=headers, data=body(4_500_000))
    assert reached.status_code == 413 and reached.json() == {"detail": "Request body too large."}
    refused = requests.post(f"{live}/api/projects/", headers=headers, data=body(4_800_000))
    assert refused.status_code == 413 and refused.json() == {"message": "Request Too Long"}


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html, */*;q=0.8",
                                    "image/avif,image/webp,*/*"])
def test_json_answers_stay_json_whatever_the_accept(live, user, accept):
    reply = requests.get(f"{live}/api/projects/", headers={**user["auth"], "Accept": accept})
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    assert reply.json() == []
    missing = requests.get(f"{live}/api/projects/999/", headers={**user["auth"], "Accept": accept})
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_any_origin_gets_its_own_origin_back_with_credentials(live, user):
    reply = requests.get(f"{live}/api/projects/", headers={**user["auth"], "Origin": ORIGIN})
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in reply.headers["Vary"]
    error = requests.get(f"{live}/api/projects/", headers={"Origin": "https://other.test"})
    assert error.status_code == 403 and error.headers["Access-Control-Allow-Origin"] == "https://other.test"
    same = requests.get(f"{live}/api/projects/", headers=user["auth"])
    assert "Access-Control-Allow-Origin" not in same.headers  # no Origin, no CORS headers


@pytest.mark.parametrize("path", ["/api/projects/", "/api/projects/1/tasks/2/orthophoto/tiles.json",
                                  "/api/token-auth/", "/api/projects/1/tasks/2/upload/", "/no/such/route"])
def test_preflight_is_answered_for_every_resource(live, path):
    reply = requests.options(live + path, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert "authorization" in reply.headers["Access-Control-Allow-Headers"].split(", ")
    assert set(reply.headers["Access-Control-Allow-Methods"].split(", ")) >= {"GET", "POST", "OPTIONS"}
    assert reply.headers["Access-Control-Max-Age"] == "86400"
    assert reply.content == b""


def test_a_plain_options_names_the_methods(live):
    reply = requests.options(f"{live}/api/projects/")
    assert reply.status_code == 200 and reply.headers["Allow"] == "GET, POST, OPTIONS"
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert requests.options(f"{live}/no/such/route").status_code == 404


def test_chalice_test_client_keeps_working_without_accept(api, alice):
    """The test client sends no Accept: Chalice would refuse every answer under `*/*`."""
    reply = api.get("/api/projects/", token=alice["token"])
    assert reply.status == 200 and reply.json == []
    preflight = api.request("OPTIONS", "/api/projects/", headers={"Origin": ORIGIN,
                                                                  "Access-Control-Request-Method": "POST"})
    assert preflight.status == 200 and preflight.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_upload_answered_by_api_gateway_allows_any_origin(live, user):
    """`upload/` is API Gateway's S3 integration (no function to echo the origin): `*`,
    enough for a browser sending `Authorization` (it is not a credentialed request)."""
    project = requests.post(f"{live}/api/projects/", headers=user["auth"], json={"name": "up"}).json()
    task = requests.post(f"{live}/api/projects/{project['id']}/tasks/", headers=user["auth"],
                         json={"partial": True}).json()
    reply = requests.post(f"{live}/api/projects/{project['id']}/tasks/{task['id']}/upload/",
                          headers={**user["auth"], "Origin": ORIGIN}, files=image_files(1))
    assert reply.status_code == 200 and reply.json() == {"success": True}
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
