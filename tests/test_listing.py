"""Lists whose whole answer would pass Lambda's response cap (chalicelib/api/listing.py):
the plain array holds the leading whole pages that fit and a `Link` to the rest."""
from __future__ import annotations

import re

from chalicelib.limits import LAMBDA_MAX_RESPONSE_BYTES
from tests.helpers import new_project, proxy_size

EMOJI = "\U0001F600"  # 4 bytes stored, 14 in the proxy result
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


def follow(api, user, path: str, params: dict | None = None) -> tuple[list, list]:
    """Every item of a list by its documented continuation; (items, answers)."""
    items: list = []
    answers: list = []
    reply = api.get(path, token=user["token"], params=params)
    while True:
        assert reply.status == 200, reply.json
        assert proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES
        answers.append(reply)
        body = reply.json
        items += body if isinstance(body, list) else body["results"]
        link = reply.headers.get("Link") or reply.headers.get("link")
        if isinstance(body, dict):
            assert (link is None) == (body["next"] is None)
        if not link:
            return items, answers
        url = LINK.match(link).group(1)
        assert url.startswith("http://")
        reply = api.get("/" + url.split("://", 1)[1].split("/", 1)[1], token=user["token"])


def _whole_size(items: list) -> int:
    """What the whole list as one array would take in Lambda's answer."""
    from chalicelib.api import payload

    return payload.escaped(payload.render(items))


def test_a_project_list_above_the_cap_continues_by_link(api, alice):
    ids = [api.post("/api/projects/", token=alice["token"],
                    json={"name": f"p{i}", "description": EMOJI * 16_384}).json["id"] for i in range(35)]
    newest_first = list(reversed(ids))
    items, answers = follow(api, alice, "/api/projects/")
    assert [p["id"] for p in items] == newest_first  # every project exactly once, in order
    assert _whole_size(items) > LAMBDA_MAX_RESPONSE_BYTES
    first = answers[0]
    assert isinstance(first.json, list) and len(first.json) % 10 == 0 and len(first.json) < 35
    assert first.headers["Link"].endswith(f'/api/projects/?page={len(first.json) // 10 + 1}>; rel="next"')
    # with `page` from the start: DRF's envelope all the way
    items, answers = follow(api, alice, "/api/projects/", {"page": 1})
    assert [p["id"] for p in items] == newest_first and len(answers) == 4
    # filters and ordering are kept in the links
    items, _ = follow(api, alice, "/api/projects/", {"ordering": "id", "search": "p"})
    assert [p["id"] for p in items] == ids


def test_a_small_list_is_still_one_plain_array_without_link(api, alice):
    project = new_project(api, alice)
    reply = api.get("/api/projects/", token=alice["token"])
    assert reply.json == [project] or [p["id"] for p in reply.json] == [project["id"]]
    assert "Link" not in reply.headers
    tasks = api.get(f"/api/projects/{project['id']}/tasks/", token=alice["token"])
    assert tasks.json == [] and "Link" not in tasks.headers


def test_a_task_list_above_the_cap_continues_by_link(api, alice):
    project = new_project(api, alice)
    heavy = {"partial": True, "name": EMOJI * 255, "tags": [EMOJI * 100] * 50,
             "options": [{"name": "x", "value": "\\" * 31_900}], "crop": {"k": "\\" * 9_990}}
    created = [api.post(f"/api/projects/{project['id']}/tasks/", token=alice["token"], json=heavy).json["id"]
               for _ in range(30)]
    path = f"/api/projects/{project['id']}/tasks/"
    items, answers = follow(api, alice, path, {"ordering": "created_at"})
    assert [t["id"] for t in items] == created
    assert _whole_size(items) > LAMBDA_MAX_RESPONSE_BYTES
    assert isinstance(answers[0].json, list) and len(answers) > 1
    assert answers[0].headers["Link"].endswith(f'page={len(answers[0].json) // 10 + 1}>; rel="next"')
    # `page` on the task list (an Aloft extension): the envelope, 10 a page
    page = api.get(path, token=alice["token"], params={"page": 3, "ordering": "created_at"})
    assert page.json["count"] == 30 and [t["id"] for t in page.json["results"]] == created[20:]
    assert page.json["next"] is None and page.json["previous"].endswith("page=2")
    assert api.get(path, token=alice["token"], params={"page": 4}).status == 404


def test_the_admin_user_list_follows_the_same_rule(api, admin):
    """Users are small (about 7 KB at most, so some 600 fit one answer); the rule is the same:
    `page` gives the envelope, and its `Link` leads on."""
    from chalicelib.models import utcnow
    from chalicelib.store import users

    for i in range(11):
        users.create({"username": f"u{i}", "email": "", "first_name": "", "last_name": "",
                      "is_superuser": False, "is_active": True, "date_joined": utcnow(), "password": "!"})
    items, answers = follow(api, admin, "/api/admin/users/", {"page": 1})
    assert len(items) == 12 and len({u["id"] for u in items}) == 12 and len(answers) == 2
    whole = api.get("/api/admin/users/", token=admin["token"])
    assert [u["id"] for u in whole.json] == [u["id"] for u in items] and "Link" not in whole.headers


# ---------------------------------------------------------------- a page of the largest items fits

def _escaped_body(reply) -> int:
    from chalicelib.api import payload

    return payload.escaped(reply.body.decode("utf-8"))


def test_a_page_of_ten_of_the_largest_projects_fits_the_budget(api, alice):
    """Name, description and tags at their bounds in the costliest characters, and each
    project holding MAX_TASKS_PER_PROJECT task ids."""
    from chalicelib.api.payload import BUDGET
    from chalicelib.models import MAX_TASKS_PER_PROJECT
    from chalicelib import aws, config
    from chalicelib.store import projects as project_store
    from chalicelib.store.dynamo import serialize_value

    body = {"name": EMOJI * 255, "description": EMOJI * 16_384, "tags": [EMOJI * 100] * 50,
            "public": True}
    for _ in range(10):
        created = api.post("/api/projects/", token=alice["token"], json=body)
        assert created.status == 201
        ids = {f"{created.json['id']:08d}-0000-4000-8000-{n:012d}" for n in range(MAX_TASKS_PER_PROJECT)}
        aws.dynamodb().update_item(TableName=config.settings().projects_table,
                                   Key={"id": {"N": str(created.json["id"])}}, UpdateExpression="ADD tasks :t",
                                   ExpressionAttributeValues={":t": serialize_value(ids)})
    assert project_store.is_full(project_store.get(created.json["id"]))
    for params in ({"page": 1}, {}):
        reply = api.get("/api/projects/", token=alice["token"], params=params)
        assert reply.status == 200 and "Link" not in reply.headers
        results = reply.json["results"] if params else reply.json
        assert len(results) == 10 and all(len(p["tasks"]) == MAX_TASKS_PER_PROJECT for p in results)
        assert _escaped_body(reply) <= BUDGET and proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES
    # a full project takes no more tasks, neither new nor moved in
    full = results[0]
    reply = api.post(f"/api/projects/{full['id']}/tasks/", token=alice["token"], json={"partial": True})
    assert reply.status == 400 and reply.json == [f"A project holds at most {MAX_TASKS_PER_PROJECT} tasks"]
    other = new_project(api, alice)
    task = api.post(f"/api/projects/{other['id']}/tasks/", token=alice["token"], json={"partial": True}).json
    moved = api.patch(f"/api/projects/{other['id']}/tasks/{task['id']}/", token=alice["token"],
                      json={"project": full["id"]})
    assert moved.status == 400 and moved.json == reply.json
    assert api.get(f"/api/projects/{other['id']}/tasks/{task['id']}/", token=alice["token"]).status == 200


def test_a_page_of_ten_of_the_largest_tasks_fits_the_budget(api, alice, admin):
    """Every field of a task at its bound, in the costliest characters: what the API takes
    (name, tags, options, crop, potree_scene) and what a node's answers may leave (error
    message, uuid, node label and rerun stages, statistics)."""
    from chalicelib.api.payload import BUDGET
    from chalicelib.assets import MAX_DATE_CHARS
    from chalicelib.models import MAX_CROP_BYTES, MAX_OPTIONS_BYTES, MAX_POTREE_SCENE_BYTES
    from chalicelib.nodeodm import MAX_ERROR_MESSAGE_CHARS, MAX_UUID_CHARS
    from chalicelib.nodes import MAX_RERUN_STAGES, MAX_STAGE_CHARS
    from chalicelib.store import nodes as node_store
    from chalicelib.store import tasks as task_store

    node = api.post("/api/processingnodes/", token=admin["token"],
                    json={"hostname": "127.0.0.1", "port": 1, "label": EMOJI * 255}).json
    node_store.update(node["id"], {"available_options": [
        {"name": "rerun-from", "domain": [EMOJI * MAX_STAGE_CHARS] * MAX_RERUN_STAGES}]})

    def json_of(limit: int, overhead: int) -> str:
        return "\\" * ((limit - overhead) // 2)  # every character escaped twice over

    options = [{"name": "o" * 255, "value": json_of(MAX_OPTIONS_BYTES, 300)}]
    body = {"partial": True, "name": EMOJI * 255, "tags": [EMOJI * 100] * 50,
            "processing_node": node["id"], "options": options,
            "crop": {"k": json_of(MAX_CROP_BYTES, 20)}, "potree_scene": {"k": json_of(MAX_POTREE_SCENE_BYTES, 20)}}
    project = new_project(api, alice)
    base = f"/api/projects/{project['id']}/tasks/"
    for _ in range(10):
        created = api.post(base, token=alice["token"], json=body)
        assert created.status == 201, created.json
        task_store.mutate(project["id"], created.json["id"], lambda t: {
            "last_error": EMOJI * MAX_ERROR_MESSAGE_CHARS, "uuid": EMOJI * MAX_UUID_CHARS,
            "status": 30, "processing_time": 2**53, "images_count": 2**53, "size_bytes": 2**60,
            "available_assets": ["all.zip", "orthophoto.tif", "dsm.tif", "dtm.tif", "report.pdf"],
            "statistics": {"pointcloud": {"points": 10**37}, "gsd": 1.2345678901234567e100,
                           "area": 1.2345678901234567e100, "start_date": EMOJI * MAX_DATE_CHARS,
                           "end_date": EMOJI * MAX_DATE_CHARS, "spatial_refs": ["gps", "gcp", "alignment"]}})
    for params in ({"page": 1}, {}):
        reply = api.get(base, token=alice["token"], params=params)
        assert reply.status == 200 and "Link" not in reply.headers
        results = reply.json["results"] if params else reply.json
        assert len(results) == 10 and all(len(t["can_rerun_from"]) == MAX_RERUN_STAGES for t in results)
        assert _escaped_body(reply) <= BUDGET and proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES
    for too_big in ({"crop": {"k": "x" * MAX_CROP_BYTES}}, {"potree_scene": {"k": "x" * MAX_POTREE_SCENE_BYTES}}):
        assert api.post(base, token=alice["token"], json={"partial": True, **too_big}).status == 400


def test_node_answers_are_bounded_where_they_are_parsed():
    from chalicelib.assets import parse_statistics
    from chalicelib.nodeodm import MAX_ERROR_MESSAGE_CHARS, TaskInfo, _is_uuid
    from chalicelib.nodes import rerun_from

    info = TaskInfo.from_json({"uuid": "u", "status": {"code": 30, "errorMessage": "e" * 10**6}})
    assert info.error_message == "e" * MAX_ERROR_MESSAGE_CHARS
    assert _is_uuid({"uuid": "0e1f7a5c-1111-4d4e-9a8b-123456789abc"})
    assert not _is_uuid({"uuid": "u" * 129}) and not _is_uuid({"uuid": ""})
    stages = ["dataset", "opensfm", "x" * 33] + [f"s{i}" for i in range(40)]
    assert rerun_from({"available_options": [{"name": "rerun-from", "domain": stages}]}) == \
        (["dataset", "opensfm"] + [f"s{i}" for i in range(40)])[:32]
    stats = parse_statistics(b'{"processing_statistics": {"area": 1e999, "start_date": "' + b"d" * 65
                             + b'", "end_date": {"nested": 1}}, "odm_processing_statistics": '
                             b'{"average_gsd": 123456789012345678901234567890123456789012}}')
    assert stats["area"] is None and stats["gsd"] is None
    assert stats["start_date"] is None and stats["end_date"] is None
