"""Hostile input (issue 5, part 3): every case gets a clear, DRF-shaped 4xx and leaves every
stored row and S3 object as it was.

A few inputs are not refused but made harmless, and the tests say so: uploaded file names
are reduced to a safe base name inside the task's own images (as Django's storage does
for WebODM), `line`/`limit` past the console are clamped (WebODM slices a list with them),
and names keep NUL, control characters, bidi overrides and emoji byte for byte (Aloft's
choice, see tests/test_errors.py; DRF would refuse NUL), while every place a name becomes
a file name or a header cleans it there.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import warnings
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pytest
import requests

from tests.helpers import complete_in_s3, image_files, new_project, new_task, s3_keys

NOT_FOUND = {"detail": "Not found."}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
ASSET_MISSING = {"detail": "Asset does not exist"}
INVALID_PAGE = {"detail": "Invalid page."}
TOO_LARGE = {"detail": "Request body too large."}
GATEWAY_TOO_LARGE = b"HTTP content length exceeded 10485760 bytes."

_ZIP: list[bytes] = []


def _all_zip() -> bytes:
    if not _ZIP:
        from tests.sample_data import build_all_zip

        _ZIP.append(build_all_zip(scale=0.05))
    return _ZIP[0]


def snapshot() -> dict:
    """Every stored row and S3 key: what "no stored data changes" compares."""
    from chalicelib.store import nodes, projects, tasks, users

    all_projects = projects.list_all()
    return {"users": sorted(users.list_all(), key=lambda u: u["id"]),
            "projects": sorted(all_projects, key=lambda p: p["id"]),
            "tasks": {p["id"]: sorted(tasks.list_for_project(p["id"]), key=lambda t: t["id"])
                      for p in all_projects},
            "nodes": sorted(nodes.list_all(), key=lambda n: n["id"]),
            "s3": s3_keys("")}


class World:
    """alice's and bob's project with one task each, and a processing node."""

    def __init__(self, api, alice, bob, admin):
        from chalicelib.models import utcnow
        from chalicelib.store import nodes

        self.api, self.alice, self.bob, self.admin = api, alice, bob, admin
        self.node = nodes.create({"hostname": "127.0.0.1", "port": 9, "token": "", "label": "n",
                                  "created_at": utcnow()})
        self.a_project = new_project(api, alice, "Alice's")
        self.a_task = new_task(api, alice, self.a_project, name="alice task")
        self.b_project = new_project(api, bob, "Bob's")
        self.b_task = new_task(api, bob, self.b_project, name="bob task")

    def complete(self) -> "World":
        """Both tasks completed with assets, so downloads can redirect."""
        complete_in_s3(self.a_project["id"], self.a_task["id"], _all_zip())
        complete_in_s3(self.b_project["id"], self.b_task["id"], _all_zip())
        return self

    def task_path(self, project: dict, task: dict) -> str:
        return f"/api/projects/{project['id']}/tasks/{task['id']}/"

    @property
    def a(self) -> str:
        return self.task_path(self.a_project, self.a_task)

    @property
    def b(self) -> str:
        return self.task_path(self.b_project, self.b_task)


@pytest.fixture
def world(api, alice, bob, admin):
    return World(api, alice, bob, admin)


@pytest.fixture
def done(world):
    return world.complete()


@pytest.fixture
def unchanged(world):
    """Asserts, after the test, that nothing stored changed."""
    before = snapshot()
    yield
    assert snapshot() == before


def _raw(live: str, method: str, path: str, headers: dict | None = None,
         body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request with the path sent exactly as given (requests would normalise `..`)."""
    host, port = live.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- oversized bodies

def test_body_over_the_gateway_cap_is_413_before_it_is_read(live, world, unchanged):
    host, port = live.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall((f"POST /api/projects/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Authorization: JWT {world.alice['token']}\r\n"
                      f"Content-Length: {600 * 1024 * 1024}\r\n\r\n").encode() + b'{"name": "')
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert body == GATEWAY_TOO_LARGE  # API Gateway's own text, before any function runs


def test_large_json_bodies_are_413_at_each_layer(live, world, unchanged):
    """Over 10 MB: API Gateway's text; over Lambda's 6 MB event: its JSON; over the
    app's 4 MiB cap for field bodies: a DRF 413."""
    auth = {"Authorization": f"JWT {world.alice['token']}"}
    reply = requests.post(live + "/api/projects/", json={"name": "big", "description": "d" * (10 * 1024 * 1024)},
                          headers=auth)
    assert reply.status_code == 413 and reply.content == GATEWAY_TOO_LARGE
    options = [{"name": f"o{i}", "value": "v" * 1000} for i in range(10_500)]
    reply = requests.patch(live + world.a, json={"options": options}, headers=auth)
    assert reply.status_code == 413 and reply.content == GATEWAY_TOO_LARGE
    # Every body travels base64-encoded in the event (binary media types include */*):
    # 5 MiB of JSON is 7 MB there, over Lambda's cap; 4.5 MB (6 MB in base64) reaches the app.
    reply = requests.post(live + "/api/projects/", json={"name": "big", "description": "d" * (5 * 1024 * 1024)},
                          headers=auth)
    assert reply.status_code == 413 and reply.json() == {"message": "Request Too Long"}
    reply = requests.post(live + "/api/projects/", json={"name": "big", "description": "d" * 4_500_000},
                          headers=auth)
    assert reply.status_code == 413 and reply.json() == TOO_LARGE


def test_large_form_body_is_413(api, world, unchanged):
    reply = api.post("/api/projects/", token=world.alice["token"],
                     data={"name": "big", "description": "d" * 4_500_000})  # 6 MB in the event's base64
    assert reply.status == 413 and reply.json == TOO_LARGE


def test_large_multipart_text_field_is_a_field_error(api, world, unchanged):
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2), data={"name": "n" * (3 * 1024 * 1024)})
    assert reply.status == 400 and reply.json == {"name": ["Ensure this field has no more than 255 characters."]}


# ---------------------------------------------------------------- deeply nested JSON

def _nested(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"k": value}
    return value


def test_deeply_nested_json_bodies(api, world, unchanged):
    token = world.alice["token"]
    reply = api.patch(world.a, token=token, json={"crop": _nested(40)})
    assert reply.status == 400 and reply.json == {"detail": "JSON nested too deeply."}
    body = b'{"options": [{"name": "a", "value": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]}"
    reply = api.patch(world.a, token=token, data=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.json["detail"].startswith("JSON parse error - ")


def test_deeply_nested_values_inside_the_json_depth_limit(api, world, unchanged):
    """30 levels pass the body's limit (32) but not the stored value's (24)."""
    reply = api.patch(world.a, token=world.alice["token"], json={"potree_scene": _nested(29)})
    assert reply.status == 400 and reply.json == {"potree_scene": ["Nested too deeply (more than 24 levels)"]}
    reply = api.patch(world.a, token=world.alice["token"],
                      json={"options": [{"name": "a", "value": _nested(26)}]})
    assert reply.status == 400 and reply.json == {"options": ["Nested too deeply (more than 24 levels)"]}


def test_deeply_nested_options_in_multipart_create(api, world, unchanged):
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2),
                     data={"options": json.dumps([{"name": "a", "value": _nested(30)}])})
    assert reply.status == 400 and reply.json == {"options": ["Nested too deeply (more than 24 levels)"]}
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2), data={"options": "[" * 100_000})
    assert reply.status == 400 and reply.json == {"options": ["Invalid options"]}


# ---------------------------------------------------------------- huge options

def test_ten_thousand_options(api, world, unchanged):
    options = [{"name": f"opt-{i}", "value": i} for i in range(10_000)]
    expected = {"options": ["Ensure this field has no more than 500 elements."]}
    reply = api.patch(world.a, token=world.alice["token"], json={"options": options})
    assert reply.status == 400 and reply.json == expected
    reply = api.patch(world.a, token=world.alice["token"], data={"options": json.dumps(options)})
    assert reply.status == 400 and reply.json == expected
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2), data={"options": json.dumps(options)})
    assert reply.status == 400 and reply.json == expected
    reply = api.patch(world.a, token=world.alice["token"], json={"options": options[:501]})
    assert reply.status == 400 and reply.json == expected


def test_options_over_64_kb(api, world, unchanged):
    options = [{"name": f"o{i}", "value": "v" * 200} for i in range(400)]
    reply = api.patch(world.a, token=world.alice["token"], json={"options": options})
    assert reply.status == 400 and reply.json == {"options": ["Value too large (more than 64000 bytes)"]}


def test_the_largest_valid_task_fits_one_dynamodb_item(api, world):
    """500 options, a 20 KB crop and a 40 KB potree_scene, 50 tags of 100 four-byte characters."""
    options = [{"name": f"o{i:03d}", "value": "v" * 90} for i in range(500)]
    crop = {f"k{i}": "x" * 90 for i in range(190)}
    scene = {f"k{i}": "x" * 90 for i in range(390)}
    assert 19_000 < len(json.dumps(crop)) <= 20_000 and 39_000 < len(json.dumps(scene)) <= 40_000
    tags = ["\U0001F600" * 100 for _ in range(50)]
    reply = api.patch(world.a, token=world.alice["token"],
                      json={"options": options, "crop": crop, "potree_scene": scene, "tags": tags})
    assert reply.status == 200, reply.json
    read = api.get(world.a, token=world.alice["token"]).json
    assert read["options"] == options and read["crop"] == crop and read["potree_scene"] == scene
    assert read["tags"] == tags


# ---------------------------------------------------------------- unicode and control characters

HOSTILE_NAMES = ["\u202eexe.fdp\u202c", "a\x00b\x01\x1b[31mred\x7f", "Ортофото 🛩 \U0001F600",
                 "tab\tnew\nline\rcr", "zero\u200bwidth\u200djoin\ufeff", "\U0001F600" * 255]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_are_kept_exactly(api, world, name):
    token = world.alice["token"]
    reply = api.post("/api/projects/", token=token, json={"name": name, "description": name, "tags": ["t"]})
    assert reply.status == 201 and reply.json["name"] == name and reply.json["description"] == name
    project = api.get(f"/api/projects/{reply.json['id']}/", token=token).json
    assert project["name"] == name and project["description"] == name
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=token, files=image_files(2),
                     data={"name": name})
    assert reply.status == 201 and reply.json["name"] == name
    listed = api.get(f"/api/projects/{project['id']}/tasks/", token=token).json
    assert [t["name"] for t in listed] == [name]


def test_hostile_task_name_never_reaches_a_header_or_path(api, world, done):
    name = '../../x"; filename=evil.exe\r\nSet-Cookie: a=b \u202e'
    assert api.patch(world.a, token=world.alice["token"], json={"name": name}).status == 200
    reply = api.get(world.a + "download/orthophoto.tif", token=world.alice["token"])
    assert reply.status == 302
    query = parse_qs(urlsplit(reply.headers["Location"]).query)
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith('attachment; filename="-x-filenameevilexeSet-Cookie-ab-orthophoto.tif"')
    assert "\r" not in disposition and "\n" not in disposition
    assert urlsplit(reply.headers["Location"]).path.endswith(
        f"tasks/{world.a_task['id']}/assets/odm_orthophoto/odm_orthophoto.tif")


@pytest.mark.parametrize("body, expected", [
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": "n" * 256}, {"name": ["Ensure this field has no more than 255 characters."]}),
    ({"name": 5}, {"name": ["Not a valid string."]}),
    ({"name": None}, {"name": ["This field may not be null."]}),
    ({"name": "x", "tags": [1]}, {"tags": ["Tags must be strings"]}),
])
def test_invalid_names(api, world, unchanged, body, expected):
    reply = api.post("/api/projects/", token=world.alice["token"], json=body)
    assert reply.status == 400 and reply.json == expected


# ---------------------------------------------------------------- file names

def _multipart(parts: list[tuple[str, bytes, bytes]]) -> tuple[bytes, str]:
    """A multipart body with raw (unescaped) file names, NUL bytes included."""
    boundary = "hostile0boundary"
    body = b""
    for field, filename, content in parts:
        body += (f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="' + field.encode()
                 + b'"; filename="' + filename + b'"\r\nContent-Type: image/jpeg\r\n\r\n' + content + b"\r\n")
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _partial_task(live: str, world) -> str:
    reply = requests.post(f"{live}/api/projects/{world.a_project['id']}/tasks/", json={"partial": True},
                          headers={"Authorization": f"JWT {world.alice['token']}"})
    assert reply.status_code == 201
    return f"{live}/api/projects/{world.a_project['id']}/tasks/{reply.json()['id']}/"


def test_upload_names_are_reduced_to_safe_base_names(live, world):
    before = snapshot()
    body, content_type = _multipart([
        ("images", b"../../../etc/passwd", b"1"), ("images", b"/abs/path/x.jpg", b"22"),
        ("images", b"C:\\evil\\..\\y.jpg", b"333"), ("images", b"a\x00b\x01.jpg", b"4444"),
        ("images", b"..", b"5"), ("images", b"\xe2\x80\xaegpj.exe", b"6")])
    task_url = _partial_task(live, world)
    auth = {"Authorization": f"JWT {world.alice['token']}"}
    reply = requests.post(task_url + "upload/", data=body, headers={**auth, "Content-Type": content_type})
    assert reply.status_code == 200 and reply.json() == {"success": True}
    committed = requests.post(task_url + "commit/", headers=auth).json()
    assert committed["images_count"] == 6
    prefix = f"tasks/{committed['id']}/images/"
    after = snapshot()
    added = sorted(set(after["s3"]) - set(before["s3"]))
    assert added == sorted(prefix + n for n in ("passwd", "x.jpg", "y.jpg", "ab.jpg", "file", "gpj.exe"))
    assert after["s3"] == sorted(before["s3"] + added)  # nothing removed or written elsewhere
    assert after["tasks"][world.b_project["id"]] == before["tasks"][world.b_project["id"]]


def test_presigned_upload_names_are_reduced_too(api, world):
    files = [{"name": "../x.jpg", "size": 1}, {"name": "/etc/y.jpg", "size": 1},
             {"name": "a\x00b.jpg", "size": 1}, {"name": "..\\..\\z.jpg", "size": 1}, {"name": "..", "size": 1}]
    reply = api.post(world.a + "presign/", token=world.alice["token"], json={"files": files})
    assert reply.status == 200
    names = [u["name"] for u in reply.json["uploads"]]
    assert names == ["x.jpg", "y.jpg", "ab.jpg", "z.jpg", "file"]
    for upload in reply.json["uploads"]:
        key = unquote(urlsplit(upload["url"]).path)
        assert key.endswith(f"tasks/{world.a_task['id']}/images/{upload['name']}")


@pytest.mark.parametrize("dzuuid", ["../../x", "..", "a/b", "x" * 200, ""])
def test_dropzone_upload_ids_cannot_traverse(live, world, dzuuid):
    """Refused at ingest (API Gateway already answered): nothing is stored anywhere."""
    before = snapshot()["s3"]
    task_url = _partial_task(live, world)
    auth = {"Authorization": f"JWT {world.alice['token']}"}
    reply = requests.post(task_url + "upload/", headers=auth, files=[("images", ("c.jpg", b"x"))],
                          data={"dzuuid": dzuuid, "dzchunkindex": "0", "dztotalchunkcount": "2"})
    assert reply.json() == {"success": True}
    commit = requests.post(task_url + "commit/", headers=auth)
    assert (commit.status_code, commit.json()) == (400, ["You need to upload at least 1 file before commit"])
    assert snapshot()["s3"] == before


# ---------------------------------------------------------------- asset paths

@pytest.mark.parametrize("path", [
    "../../../{bob}/assets/odm_orthophoto/odm_orthophoto.tif",
    "%2e%2e/%2e%2e/%2e%2e/{bob}/assets/odm_orthophoto/odm_orthophoto.tif",
    "odm_orthophoto/%2E%2E/%2E%2E/all.zip",
    "..%2f..%2fall.zip",
    "odm_orthophoto\\..\\..\\all.zip",
    "odm_orthophoto%5c..%5c..%5call.zip",
    "/etc/passwd",
    "odm_orthophoto/./odm_orthophoto.tif",
    "odm_orthophoto//odm_orthophoto.tif",
    "odm_orthophoto/odm_orthophoto.tif%00.png",
    "odm_orthophoto/odm_orthophoto.tif%0d%0aSet-Cookie:%20a",
    "%252e%252e/all.zip",
])
def test_asset_paths_cannot_leave_the_task(live, world, done, unchanged, path):
    path = path.format(bob=world.b_task["id"])
    status, headers, body = _raw(live, "GET", world.a + "assets/" + path,
                                 {"Authorization": f"JWT {world.alice['token']}"})
    assert (status, json.loads(body)) == (404, ASSET_MISSING)
    assert "location" not in headers


def test_a_real_asset_path_still_redirects(live, world, done):
    status, headers, _ = _raw(live, "GET", world.a + "assets/odm_orthophoto/odm_orthophoto.tif",
                              {"Authorization": f"JWT {world.alice['token']}"})
    assert status == 302
    assert unquote(urlsplit(headers["location"]).path).endswith(
        f"tasks/{world.a_task['id']}/assets/odm_orthophoto/odm_orthophoto.tif")


@pytest.mark.parametrize("path, expected", [
    ("download/..%2fall.zip", ASSET_MISSING), ("download/%2e%2e", ASSET_MISSING),
    ("download/all.zip%00", ASSET_MISSING), ("download/../../../{bob}/download/all.zip", NOT_FOUND),
    ("download/..", ASSET_MISSING),
])
def test_download_names_cannot_traverse(live, world, done, unchanged, path, expected):
    status, headers, body = _raw(live, "GET", world.a + path.format(bob=world.b_task["id"]),
                                 {"Authorization": f"JWT {world.alice['token']}"})
    assert (status, json.loads(body)) == (404, expected)


def test_download_filename_parameter_is_a_base_name(api, world, done):
    reply = api.get(world.a + "download/dsm.tif", token=world.alice["token"],
                    params={"filename": "../../etc/passwd\r\nX: y"})
    assert reply.status == 302
    disposition = parse_qs(urlsplit(reply.headers["Location"]).query)["response-content-disposition"][0]
    assert disposition.startswith('attachment; filename="passwdX: y"')


# ---------------------------------------------------------------- tokens

def _encode(payload: dict, key: str, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():  # PyJWT warns that the test key is short for HS384/HS512
        warnings.simplefilter("ignore")
        return jwt.encode(payload, key, algorithm=algorithm)


def _unsigned(payload: dict, alg: str = "none") -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(payload)}."


def _tokens(alice: dict, bob: dict) -> list[tuple[str, str, str]]:
    from chalicelib.auth import _signing_key

    key = _signing_key()
    now = int(time.time())
    good = {"user_id": alice["id"], "username": "alice", "email": "", "exp": now + 600}
    return [
        ("another key", _encode(good, "another-secret-0123456789abcdef-0123"), "Error decoding signature."),
        ("expired", _encode({**good, "exp": now - 5}, key), "Signature has expired."),
        ("alg none", _unsigned(good), "Error decoding signature."),
        ("alg None", _unsigned(good, "None"), "Error decoding signature."),
        ("none signed as HS256 header", _unsigned(good, "HS256"), "Error decoding signature."),
        ("HS512 with the right key", _encode(good, key, "HS512"), "Error decoding signature."),
        ("HS384 with the right key", _encode(good, key, "HS384"), "Error decoding signature."),
        ("no exp", _encode({k: v for k, v in good.items() if k != "exp"}, key), "Error decoding signature."),
        ("exp not a number", _encode({**good, "exp": "soon"}, key), "Error decoding signature."),
        ("garbage", "garbage", "Error decoding signature."),
        ("three empty parts", "..", "Error decoding signature."),
        ("huge", "a" * 20_000, "Error decoding signature."),
        ("bob's name, alice's id", _encode({**good, "username": "bob"}, key), "Invalid signature."),
        ("unknown user", _encode({**good, "username": "mallory", "user_id": 999}, key), "Invalid signature."),
        ("username not a string", _encode({**good, "username": ["alice"]}, key), "Invalid payload."),
    ]


def test_bad_tokens_are_403_in_header_and_query(api, world, unchanged):
    for label, token, detail in _tokens(world.alice, world.bob):
        for kwargs in ({"headers": {"Authorization": f"JWT {token}"}}, {"params": {"jwt": token}}):
            reply = api.get("/api/projects/", **kwargs)
            assert (reply.status, reply.json) == (403, {"detail": detail}), label
            reply = api.post("/api/projects/", json={"name": "nope"}, **kwargs)
            assert (reply.status, reply.json) == (403, {"detail": detail}), label
            reply = api.delete(f"/api/projects/{world.a_project['id']}/", **kwargs)
            assert (reply.status, reply.json) == (403, {"detail": detail}), label


def test_a_valid_hs256_token_still_works(api, world):
    from chalicelib.auth import _signing_key

    token = _encode({"user_id": world.alice["id"], "username": "alice", "exp": int(time.time()) + 60},
                    _signing_key())
    assert api.get("/api/projects/", token=token).status == 200


# ---------------------------------------------------------------- another user's ids in every path

def _task_routes(base: str) -> list[tuple[str, str, dict]]:
    return [("GET", base, {}), ("PUT", base, {"json": {"name": "x", "processing_node": 1}}),
            ("PATCH", base, {"json": {"name": "x"}}), ("DELETE", base, {}),
            ("POST", base + "upload/", {"files": image_files(1)}),
            ("POST", base + "upload/", {"json": {"files": [{"name": "a.jpg", "size": 1}]}}),
            ("POST", base + "presign/", {"json": {"files": [{"name": "a.jpg", "size": 1}]}}),
            ("POST", base + "commit/", {}), ("POST", base + "cancel/", {}), ("POST", base + "restart/", {}),
            ("POST", base + "remove/", {}), ("GET", base + "output/", {}),
            ("GET", base + "download/all.zip", {}), ("GET", base + "download/orthophoto.tif", {}),
            ("GET", base + "assets/odm_orthophoto/odm_orthophoto.tif", {})]  # over `live`: a greedy route,
    # and upload/, which is API Gateway's (its authorizer refuses)


def test_another_users_project_and_task_ids_are_404_everywhere(api, live, world, done, unchanged):
    token = world.alice["token"]
    project = f"/api/projects/{world.b_project['id']}/"
    routes = [("GET", project, {}), ("PUT", project, {"json": {"name": "mine"}}),
              ("PATCH", project, {"json": {"name": "mine"}}), ("DELETE", project, {}),
              ("GET", project + "tasks/", {}), ("POST", project + "tasks/", {"files": image_files(2)}),
              ("POST", project + "tasks/", {"json": {"partial": True}})]
    routes += _task_routes(world.b)
    # Mixed: alice's project with bob's task, bob's project with alice's task.
    routes += _task_routes(world.task_path(world.a_project, world.b_task))
    routes += _task_routes(world.task_path(world.b_project, world.a_task))
    for method, path, kwargs in routes:
        if "/assets/" in path or path.endswith("/upload/"):  # greedy, or not a Lambda route
            reply = requests.request(method, live + path, headers={"Authorization": f"JWT {token}"},
                                     allow_redirects=False, **kwargs)
            assert (reply.status_code, reply.json()) == (404, NOT_FOUND), path
            continue
        reply = api.request(method, path, token=token, **kwargs)
        assert (reply.status, reply.json) == (404, NOT_FOUND), (method, path)


def test_node_writes_are_403_for_a_normal_user(api, world, unchanged):
    token = world.alice["token"]
    node = f"/api/processingnodes/{world.node['id']}/"
    for method, path, kwargs in [("POST", "/api/processingnodes/", {"json": {"hostname": "h", "port": 1}}),
                                 ("PUT", node, {"json": {"hostname": "h", "port": 1}}),
                                 ("PATCH", node, {"json": {"label": "mine"}}), ("DELETE", node, {}),
                                 ("DELETE", "/api/processingnodes/999999/", {})]:
        reply = api.request(method, path, token=token, **kwargs)
        assert (reply.status, reply.json) == (403, NO_PERMISSION), (method, path)
    assert api.get(node, token=token).status == 200  # reading nodes is for every user


def test_admin_user_routes_are_403_for_a_normal_user(api, world, unchanged):
    token = world.alice["token"]
    for user in (world.bob, world.alice, world.admin):
        path = f"/api/admin/users/{user['id']}/"
        for method, kwargs in [("GET", {}), ("PUT", {"json": {"username": "x"}}),
                               ("PATCH", {"json": {"is_superuser": True}}), ("DELETE", {})]:
            reply = api.request(method, path, token=token, **kwargs)
            assert (reply.status, reply.json) == (403, NO_PERMISSION), (method, path)
    for method, kwargs in [("GET", {}), ("POST", {"json": {"username": "evil", "is_superuser": True}})]:
        reply = api.request(method, "/api/admin/users/", token=token, **kwargs)
        assert (reply.status, reply.json) == (403, NO_PERMISSION)


def test_project_field_pointing_at_another_users_project_is_403(api, world, unchanged):
    for method, body in [("PATCH", {"project": world.b_project["id"]}),
                         ("PUT", {"project": world.b_project["id"], "processing_node": world.node["id"]}),
                         ("PATCH", {"project": str(world.b_project["id"]), "name": "moved"}),
                         ("PATCH", {"project": 999_999})]:
        reply = api.request(method, world.a, token=world.alice["token"], json=body)
        assert (reply.status, reply.json) == (403, NO_PERMISSION), body


def test_processing_node_pointing_at_a_missing_node_is_400(api, world, unchanged):
    for value in (999_999, 0, -1):
        reply = api.patch(world.a, token=world.alice["token"], json={"processing_node": value})
        assert reply.status == 400
        assert reply.json == {"processing_node": [f'Invalid pk "{value}" - object does not exist.']}
    for value in ("abc", 1.5, [1]):
        reply = api.patch(world.a, token=world.alice["token"], json={"processing_node": value})
        assert reply.status == 400 and reply.json == {"processing_node": ["A valid integer is required."]}
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2), data={"processing_node": "999999"})
    assert reply.status == 400
    assert reply.json == {"processing_node": ['Invalid pk "999999" - object does not exist.']}


def test_owner_and_id_in_a_project_body_are_ignored(api, world):
    from chalicelib.store import projects

    token = world.alice["token"]
    reply = api.post("/api/projects/", token=token, json={"name": "x", "owner": world.bob["id"],
                                                          "id": world.b_project["id"]})
    assert reply.status == 201 and reply.json["id"] != world.b_project["id"]
    created = reply.json["id"]
    assert projects.get(created)["owner"] == world.alice["id"]
    for method in ("PATCH", "PUT"):
        reply = api.request(method, f"/api/projects/{created}/", token=token,
                            json={"name": "y", "owner": world.bob["id"], "id": world.b_project["id"]})
        assert reply.status == 200 and reply.json["id"] == created
        assert projects.get(created)["owner"] == world.alice["id"]
    assert [p["id"] for p in api.get("/api/projects/", token=world.bob["token"]).json] == [world.b_project["id"]]
    assert projects.get(world.b_project["id"])["name"] == "Bob's"


def test_project_in_a_task_create_body_is_ignored(api, world):
    reply = api.post(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                     files=image_files(2), data={"project": str(world.b_project["id"])})
    assert reply.status == 201 and reply.json["project"] == world.a_project["id"]
    bob_tasks = api.get(f"/api/projects/{world.b_project['id']}/tasks/", token=world.bob["token"]).json
    assert [t["id"] for t in bob_tasks] == [world.b_task["id"]]


# ---------------------------------------------------------------- page, line, limit and other numbers

@pytest.mark.parametrize("page", ["-1", "0", str(10**30), "abc", "1.5", "", "1e3", "last1"])
def test_bad_pages_are_404(api, world, unchanged, page):
    reply = api.get("/api/projects/", token=world.alice["token"], params={"page": page})
    assert (reply.status, reply.json) == (404, INVALID_PAGE)
    reply = api.get("/api/admin/users/", token=world.admin["token"], params={"page": page})
    assert (reply.status, reply.json) == (404, INVALID_PAGE)


def _console(project_id: int, task_id: str, lines: int) -> None:
    """Store console lines as the poller does."""
    from chalicelib.store import output, tasks
    from chalicelib.store.dynamo import transact

    task = tasks.get(project_id, task_id)
    ops, changes, _ = output.append_plan(task, [f"line {i}" for i in range(lines)])
    update, _ = tasks.update_request(task, changes)
    transact(*ops, update)


@pytest.mark.parametrize("params, lines", [
    ({"line": str(10**30)}, []), ({"line": str(-(10**30))}, [f"line {i}" for i in range(5)]),
    ({"limit": str(10**30)}, [f"line {i}" for i in range(5)]),
    ({"limit": str(-(10**30))}, [f"line {i}" for i in range(5)]),
    ({"line": "3", "limit": str(-(10**30))}, ["line 3", "line 4"]),
    ({"line": "-1", "limit": "-1"}, ["line 4"]), ({"line": "", "limit": ""}, [f"line {i}" for i in range(5)]),
])
def test_enormous_line_and_limit_are_clamped(api, world, params, lines):
    _console(world.a_project["id"], world.a_task["id"], 5)
    before = snapshot()
    reply = api.get(world.a + "output/", token=world.alice["token"], params={**params, "f": "json"})
    assert reply.status == 200 and reply.json == {"lines": lines, "count": 5}
    assert snapshot() == before


@pytest.mark.parametrize("params", [{"line": "abc"}, {"line": "1.5"}, {"limit": "1e3"}, {"limit": "0x10"},
                                    {"line": "1", "limit": "--1"}, {"f": "xml"}, {"f": ""}])
def test_non_integer_line_and_limit_are_400(api, world, unchanged, params):
    reply = api.get(world.a + "output/", token=world.alice["token"], params=params)
    assert (reply.status, reply.json) == (400, ["Invalid parameter"])


@pytest.mark.parametrize("value", [str(10**30), "-1", "0", "abc", "1.0", "%20"])
def test_path_ids_out_of_range_are_404(api, world, unchanged, value):
    token, admin = world.alice["token"], world.admin["token"]
    for path, who in [(f"/api/projects/{value}/", token), (f"/api/projects/{value}/tasks/", token),
                      (f"/api/projects/{value}/tasks/{world.a_task['id']}/", token),
                      (f"/api/projects/{world.a_project['id']}/tasks/{value}/", token),
                      (f"/api/processingnodes/{value}/", token), (f"/api/admin/users/{value}/", admin)]:
        reply = api.get(path, token=who)
        assert (reply.status, reply.json) == (404, NOT_FOUND), path
        reply = api.delete(path, token=admin)
        assert reply.status in (404, 405), path
        if reply.status == 404:
            assert reply.json == NOT_FOUND


@pytest.mark.parametrize("params, expected", [
    ({"id": "abc"}, {"id": ["Enter a valid value."]}), ({"id": "1.5"}, {"id": ["Enter a valid value."]}),
])
def test_bad_filters_are_400(api, world, unchanged, params, expected):
    reply = api.get("/api/projects/", token=world.alice["token"], params=params)
    assert (reply.status, reply.json) == (400, expected)
    reply = api.get(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                    params={"status": "abc"})
    assert (reply.status, reply.json) == (400, ["Invalid status parameter"])
    reply = api.get(f"/api/projects/{world.a_project['id']}/tasks/", token=world.alice["token"],
                    params={"status": str(10**30)})
    assert (reply.status, reply.json) == (200, [])
    reply = api.get("/api/processingnodes/", token=world.alice["token"], params={"port": str(10**30)})
    assert (reply.status, reply.json) == (200, [])


@pytest.mark.parametrize("body, expected", [
    ({"resize_to": 10**30}, {"resize_to": ["Ensure this value is less than or equal to 100000."]}),
    ({"resize_to": -(10**30)}, {"resize_to": ["Ensure this value is greater than or equal to -1."]}),
    ({"processing_node": 10**30}, {"processing_node": [f'Invalid pk "{10**30}" - object does not exist.']}),
    ({"crop": {"a": 10**40}}, {"crop": ["Numbers must be finite, with at most 38 digits, "
                                        "between 1e-130 and 1e126 in size"]}),
])
def test_enormous_numbers_in_task_bodies_are_400(api, world, unchanged, body, expected):
    reply = api.patch(world.a, token=world.alice["token"], json=body)
    assert (reply.status, reply.json) == (400, expected)


def test_enormous_dropzone_numbers_store_nothing(live, world):
    before = snapshot()["s3"]
    task_url = _partial_task(live, world)
    auth = {"Authorization": f"JWT {world.alice['token']}"}
    for fields in ({"dzchunkindex": str(10**30), "dztotalchunkcount": "2"},
                   {"dzchunkindex": "0", "dztotalchunkcount": str(10**30)},
                   {"dzchunkindex": "-1", "dztotalchunkcount": "2"},
                   {"dzchunkindex": "0", "dztotalchunkcount": "2", "dzchunkbyteoffset": "-5"}):
        reply = requests.post(task_url + "upload/", headers=auth, files=[("images", ("c.jpg", b"x"))],
                              data={"dzuuid": "0e1f7a5c-1111-4d4e-9a8b-123456789abc", **fields})
        assert reply.json() == {"success": True}, fields
    commit = requests.post(task_url + "commit/", headers=auth)
    assert (commit.status_code, commit.json()) == (400, ["You need to upload at least 1 file before commit"])
    assert snapshot()["s3"] == before


def test_the_largest_valid_project_leaves_room_for_thousands_of_tasks(api, world):
    """A 16,384-character description of four-byte characters and 50 tags of 100: the row
    stays under 100 KB, leaving DynamoDB's 400 KB for about 8,000 task ids (36 B + overhead),
    far more than the 2,000 a project may hold."""
    from chalicelib.store import projects as project_store

    body = {"name": "\U0001F600" * 255, "description": "\U0001F600" * 16_384,
            "tags": ["\U0001F6E9" * 100 for _ in range(50)]}
    reply = api.post("/api/projects/", token=world.alice["token"], json=body)
    assert reply.status == 201, reply.json
    read = api.get(f"/api/projects/{reply.json['id']}/", token=world.alice["token"]).json
    assert {k: read[k] for k in body} == body
    stored = project_store.get(read["id"])
    assert len(json.dumps(stored, default=list, ensure_ascii=False).encode()) < 100_000
    for too_big in ({"description": "x" * 16_385}, {"tags": ["t"] * 51}, {"tags": ["x" * 101]}):
        assert api.post("/api/projects/", token=world.alice["token"], json={"name": "n", **too_big}).status == 400
    task = api.post(f"/api/projects/{read['id']}/tasks/", token=world.alice["token"], json={"partial": True})
    assert task.status == 201
