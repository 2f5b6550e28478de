"""One ordinary HTTP test per defect that the fuzzer (tests/test_fuzz_api.py) or the
hostile-input work (tests/test_hostile_input.py) found; each failed before its fix."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.helpers import new_project, new_task


NUMBERS = "Numbers must be finite, with at most 38 digits, between 1e-130 and 1e126 in size"


@pytest.fixture
def task(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    return f"/api/projects/{project['id']}/tasks/{task['id']}/"


def _readable(api, alice, path):
    """The task and its project's task list still answer (a bad write can poison the row)."""
    assert api.get(path, token=alice["token"]).status == 200
    assert api.get(path.rsplit("/", 2)[0] + "/", token=alice["token"]).status == 200


# ---------------------------------------------------------------- found by the fuzzer

@pytest.mark.parametrize("path", ["/api/projects/", "/api/admin/users/"])
def test_invalid_page_404_is_documented(api, admin, path):
    """GET /api/projects/?page=52998 answered 404 "Invalid page.", a status the document lacked."""
    reply = api.get(path, token=admin["token"], params={"page": "52998"})
    assert reply.status == 404 and reply.json == {"detail": "Invalid page."}
    document = api.get("/api/openapi.json").json
    assert document["paths"][path]["get"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Detail"}


@pytest.mark.parametrize("field, value", [
    ("potree_scene", {"a": [None, 3658, 7.0967509258656574e+258]}),  # the fuzzer's case: a 500
    ("potree_scene", {"a": 10**40}),
    ("crop", {"type": "Point", "coordinates": [1e-300, 0]}),
    ("options", [{"name": "dsm", "value": 10**39}]),
])
def test_numbers_dynamodb_cannot_hold_are_400(api, alice, task, field, value):
    """Free-form JSON numbers outside DynamoDB's range (38 digits, 1e-130..1e126) were a 500."""
    reply = api.patch(task, token=alice["token"], json={field: value})
    assert reply.status == 400
    assert reply.json == {field: [NUMBERS]}
    _readable(api, alice, task)


@pytest.mark.parametrize("field, value", [("potree_scene", {"": None}),
                                          ("crop", {"a": {"": 1}}),
                                          ("options", [{"name": "x", "value": {"": 1}}])])
def test_empty_object_keys_are_400_and_never_poison_the_task(api, alice, task, field, value):
    """An empty key in potree_scene was stored; every later read of the task, and of its
    project's task list, then failed with a 500."""
    reply = api.patch(task, token=alice["token"], json={field: value})
    assert reply.status == 400 and reply.json == {field: ["Object keys may not be empty"]}
    _readable(api, alice, task)


def test_options_values_nested_beyond_dynamodb_limit_are_400(api, alice, task):
    """A form `options` string is parsed without the JSON body's depth limit; 40 levels
    passed validation although DynamoDB stores at most 32."""
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    reply = api.patch(task, token=alice["token"], data={"options": json.dumps([{"name": "a", "value": deep}])})
    assert reply.status == 400 and reply.json == {"options": ["Nested too deeply (more than 24 levels)"]}


@pytest.mark.parametrize("field", ["options", "tags"])
def test_form_json_strings_nested_past_the_recursion_limit_are_400(api, alice, task, field):
    """`options` (and `tags`) as a form string of 100,000 `[` raised RecursionError: a 500."""
    reply = api.patch(task, token=alice["token"], data={field: "[" * 100_000})
    assert reply.status == 400
    assert reply.json == {field: ["Invalid options" if field == "options" else "Invalid tags"]}


@pytest.mark.parametrize("body", [b'{"name": NaN}', b'{"name": "p", "description": Infinity}',
                                  b'{"name": -Infinity}'])
def test_nan_and_infinity_are_not_json(api, alice, body):
    """Python's json accepts NaN/Infinity; DRF does not (and DynamoDB cannot store them)."""
    reply = api.post("/api/projects/", token=alice["token"], data=body,
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.json == {"detail": "JSON parse error - Out of range float values are not JSON compliant"}
    assert api.get("/api/projects/", token=alice["token"]).json == []


def test_nan_in_options_form_string_is_400(api, alice, task):
    reply = api.patch(task, token=alice["token"], data={"options": '[{"name": "a", "value": NaN}]'})
    assert reply.status == 400 and reply.json == {"options": ["Invalid options"]}


@pytest.mark.parametrize("body", [b'{"potree_scene": {"a": "\\ud800"}}',
                                  b'{"options": [{"name": "a", "value": ["\\udfff"]}]}',
                                  b'{"crop": {"a\\udbdcb": 1}}'])
def test_lone_surrogates_in_json_are_400(api, alice, task, body):
    """JSON escapes can spell lone surrogates, which cannot be encoded for DynamoDB: in
    free-form values (typed text fields already refused them) they were a 500."""
    reply = api.patch(task, token=alice["token"], data=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.json == {"detail": "JSON parse error - invalid unicode (lone surrogate)"}
    _readable(api, alice, task)


def test_lone_surrogates_inside_form_json_strings_are_400(api, alice, task):
    reply = api.patch(task, token=alice["token"], data={"options": '[{"name": "a", "value": "\\ud800"}]'})
    assert reply.status == 400 and reply.json == {"options": ["Invalid unicode (lone surrogate)."]}
    reply = api.patch(task, token=alice["token"], data={"options": '[{"name": "a", "value": {"\\ud800": 1}}]'})
    assert reply.status == 400 and reply.json == {"options": ["Invalid unicode (lone surrogate)."]}
    _readable(api, alice, task)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_other_http_methods_are_drf_405_not_501(live, alice, method):
    """The local gateway answered methods outside its list with http.server's HTML 501."""
    reply = requests.request(method, live + "/api/projects/", headers={"Authorization": f"JWT {alice['token']}"})
    assert reply.status_code == 405
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"detail": f'Method "{method}" not allowed.'}


def test_chunked_request_body_is_read(live, alice):
    """The gateway read only Content-Length bodies: a chunked body was dropped and its
    trailing `0` chunk was parsed as the next request (an HTML 400 on the connection)."""
    def chunks():
        yield b'{"name": '
        yield b'"chunky"}'

    with requests.Session() as session:
        headers = {"Authorization": f"JWT {alice['token']}", "Content-Type": "application/json"}
        reply = session.post(live + "/api/projects/", data=chunks(), headers=headers)
        assert reply.status_code == 201 and reply.json()["name"] == "chunky"
        follow = session.get(live + "/api/projects/", headers=headers)  # same connection
        assert follow.status_code == 200 and [p["name"] for p in follow.json()] == ["chunky"]


def test_malformed_chunked_body_is_400(live):
    host, port = live.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/projects/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/json\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # the gateway closes the connection after it
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 400")
    assert answer.endswith('{"detail": "Malformed chunked body."}')


def test_keep_alive_responses_are_not_held_by_nagle(live):
    """Each response over a kept-alive connection waited ~40 ms (Nagle's algorithm against
    the client's delayed ACK): the fuzzer ran 40x slower than it needed to."""
    with requests.Session() as session:
        session.get(live + "/api/")
        started = time.perf_counter()
        for _ in range(20):
            assert session.get(live + "/api/").status_code == 200
        assert time.perf_counter() - started < 0.6  # 20 x 40 ms = 0.8 s with the delay


# ---------------------------------------------------------------- found with the hostile-input tests

def test_options_too_large_for_one_dynamodb_item_are_400(api, alice, task):
    """500 options of 1 KB each passed validation, and the 500 KB task row DynamoDB refuses
    (400 KB at most) was a 500. Options are now capped at 64 KB in all."""
    options = [{"name": f"o{i}", "value": "v" * 1000} for i in range(500)]
    reply = api.patch(task, token=alice["token"], json={"options": options})
    assert reply.status == 400 and reply.json == {"options": ["Value too large (more than 64000 bytes)"]}
    _readable(api, alice, task)


@pytest.mark.parametrize("value", [10**40, -(10**40)])
def test_enormous_processing_node_is_400_not_500(api, alice, task, value):
    """A processing_node past DynamoDB's 38 digits was looked up as a key: a 500."""
    reply = api.patch(task, token=alice["token"], json={"processing_node": value})
    assert reply.status == 400
    assert reply.json == {"processing_node": [f'Invalid pk "{value}" - object does not exist.']}
    project_id = task.split("/")[3]
    reply = api.post(f"/api/projects/{project_id}/tasks/", token=alice["token"],
                     json={"partial": True, "processing_node": value})
    assert reply.status == 400


@pytest.mark.parametrize("value", [10**40, "1" * 60, 1.5, True])
def test_enormous_or_non_integer_project_on_task_patch_is_403(api, alice, task, value):
    """`project` past 38 digits was a 500; 1.5 and true were read as project 1."""
    reply = api.patch(task, token=alice["token"], json={"project": value})
    assert reply.status == 403
    assert reply.json == {"detail": "You do not have permission to perform this action."}
    assert api.get(task, token=alice["token"]).json["project"] == int(task.split("/")[3])


def test_node_hostname_with_a_label_over_63_characters_is_an_offline_node(api, admin):
    """urllib3's LocationParseError (not a requests error) escaped the node client: a 500 on
    POST and PATCH, and an exception in every poll of such a node."""
    hostname = "a" * 64 + ".example"
    reply = api.post("/api/processingnodes/", token=admin["token"], json={"hostname": hostname, "port": 3000})
    assert reply.status == 201 and reply.json["hostname"] == hostname and reply.json["online"] is False
    node = reply.json["id"]
    reply = api.patch(f"/api/processingnodes/{node}/", token=admin["token"], json={"hostname": "b" * 70})
    assert reply.status == 200 and reply.json["online"] is False
