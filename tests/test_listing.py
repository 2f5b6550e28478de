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
