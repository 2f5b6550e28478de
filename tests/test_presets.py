"""Presets through HTTP: WebODM's `app/tests/test_api_preset.py`, its system presets, and
the quirks Aloft fixes (a normal user editing a system preset, a 500 on a missing id)."""
from __future__ import annotations

import collections
import contextlib
import json
import threading

import pytest
import requests

from chalicelib import aws
from chalicelib.presets import DEFINITION_FILE, PARTITION_BUDGET, cost
from chalicelib.store import presets as preset_store
from tests.conftest import make_user, token_for

NOT_FOUND = {"detail": "Not found."}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
FIELDS = ["id", "name", "options", "created_at", "system"]


@pytest.fixture(autouse=True)
def seeded(aws_env):
    """The system presets there from the start, as `make run` seeds them (the other test
    modules leave them to their first use, as a deployment does)."""
    from chalicelib.presets import ensure_system_presets

    ensure_system_presets()


def _defined() -> list[dict]:
    """The definition file, read as a test reads it: name -> options in WebODM's list form."""
    raw = json.loads(DEFINITION_FILE.read_text())["presets"]
    return [{"name": p["name"], "options": [{"name": k, "value": v} for k, v in p["options"].items()]}
            for p in raw]


def _system_preset(name: str, options: list) -> dict:
    """A system preset that is not in the definition (WebODM's test makes two with the ORM)."""
    item = {"owner": preset_store.SYSTEM_OWNER, "id": preset_store.new_id(), "name": name, "options": options,
            "created_at": "2026-01-01T00:00:00.000000Z", "system": True}
    item["size"] = cost(item)
    preset_store.create(item, PARTITION_BUDGET)
    return item


def _create(api, user, **body) -> dict:
    reply = api.post("/api/presets/", token=user["token"], json=body)
    assert reply.status == 201, reply.json
    return reply.json


def _names(reply) -> list[str]:
    return [p["name"] for p in reply.json]


def _by_name(api, user, name: str) -> dict:
    return next(p for p in api.get("/api/presets/", token=user["token"]).json if p["name"] == name)


@contextlib.contextmanager
def dynamodb_calls():
    """Count the DynamoDB calls made inside the block (as benchmarks/common.py does)."""
    calls: collections.Counter = collections.Counter()

    def count(model=None, **_):
        calls[model.name] += 1

    client = aws.dynamodb()
    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)


# ---------------------------------------------------------------- WebODM's test_preset

def test_webodm_preset_test(api, admin, alice, bob):
    """WebODM's `TestApiPreset.test_preset`, step by step, through HTTP."""
    _system_preset("Global Preset #1", [{"name": "test", "value": True}])
    _system_preset("Global Preset #2", [{"name": "test2", "value": True}])
    _create(api, admin, name="Local Preset #1", options=[{"name": "test3", "value": True}])

    # anonymous: neither list nor create
    assert api.get("/api/presets/").status == 403
    reply = api.post("/api/presets/", data={"name": "test"})
    assert reply.status == 403 and reply.json == NOT_AUTHENTICATED

    _create(api, alice, name="My Local Preset")
    reply = api.get("/api/presets/", token=alice["token"])
    assert reply.status == 200
    # ours and the system presets only: the 10 boot presets, 2 global, 1 own
    assert len(reply.json) == len(_defined()) + 3
    names = _names(reply)
    for name in ("My Local Preset", "High Resolution", "Global Preset #1", "Global Preset #2"):
        assert name in names
    assert "Local Preset #1" not in names
    assert all(list(p) == FIELDS for p in reply.json)  # no `owner`

    # `system` cannot be set: the result is not a system preset
    reply = api.post("/api/presets/", token=alice["token"], data={"name": "test", "system": "true"})
    assert reply.status == 201 and reply.json["system"] is False

    # nor can `owner`: still ours
    reply = api.post("/api/presets/", token=alice["token"], data={"name": "test", "owner": bob["id"]})
    assert reply.status == 201
    preset = reply.json
    assert api.get(f"/api/presets/{preset['id']}/", token=alice["token"]).status == 200
    assert api.get(f"/api/presets/{preset['id']}/", token=bob["token"]).status == 404

    reply = api.patch(f"/api/presets/{preset['id']}/", token=alice["token"],
                      data={"owner": bob["id"], "system": "true"})
    assert reply.status == 200 and reply.json["system"] is False
    assert api.get(f"/api/presets/{preset['id']}/", token=bob["token"]).status == 404
    assert preset["id"] in [p["id"] for p in api.get("/api/presets/", token=alice["token"]).json]

    # name and options can change, options as a JSON string in a form body
    reply = api.patch(f"/api/presets/{preset['id']}/", token=alice["token"],
                      data={"name": "changed", "options": json.dumps([{"name": "optname", "value": "optvalue"}])})
    assert reply.status == 200 and reply.json["name"] == "changed"
    assert reply.json["options"] == [{"name": "optname", "value": "optvalue"}]

    reply = api.patch(f"/api/presets/{preset['id']}/", token=alice["token"],
                      data={"options": json.dumps([{"invalid": "value"}])})
    assert reply.status == 400 and reply.json == {"options": ["Invalid options"]}
    assert api.get(f"/api/presets/{preset['id']}/", token=alice["token"]).json["options"] == [
        {"name": "optname", "value": "optvalue"}]

    reply = api.delete(f"/api/presets/{preset['id']}/", token=alice["token"])
    assert reply.status == 204 and reply.body == b""
    assert api.get(f"/api/presets/{preset['id']}/", token=alice["token"]).json == NOT_FOUND

    # somebody else's preset: 404 for delete and update
    other = _by_name(api, admin, "Local Preset #1")
    assert api.delete(f"/api/presets/{other['id']}/", token=alice["token"]).json == NOT_FOUND
    reply = api.patch(f"/api/presets/{other['id']}/", token=alice["token"], data={"name": "test"})
    assert reply.status == 404 and reply.json == NOT_FOUND
    assert _by_name(api, admin, "Local Preset #1") == other

    # a system preset: 404 for a user's delete, 403 for a superuser's
    system = _by_name(api, alice, "Global Preset #1")
    assert api.delete(f"/api/presets/{system['id']}/", token=alice["token"]).status == 404
    reply = api.delete(f"/api/presets/{system['id']}/", token=admin["token"])
    assert reply.status == 403 and reply.json == NO_PERMISSION
    assert _by_name(api, alice, "Global Preset #1") == system


# ---------------------------------------------------------------- system presets

def test_system_presets_are_webodms_boot_list(api, alice):
    """The definition's names and options, in order, ids 1 to 10 as on a fresh WebODM; the
    names WebODM's test checks among them."""
    presets = api.get("/api/presets/", token=alice["token"]).json
    assert [{"name": p["name"], "options": p["options"]} for p in presets] == _defined()
    assert [p["id"] for p in presets] == list(range(1, len(_defined()) + 1))
    assert all(p["system"] is True for p in presets)
    for name in ("Default", "DSM + DTM", "High Resolution", "Forest", "Buildings", "3D Model",
                 "Multispectral", "Fast Orthophoto", "Volume Analysis", "Field"):
        assert name in [p["name"] for p in presets]
    default = next(p for p in presets if p["name"] == "Default")
    assert default["options"] == [{"name": "auto-boundary", "value": True}, {"name": "dsm", "value": True}]
    detail = api.get(f"/api/presets/{default['id']}/", token=alice["token"])
    assert detail.status == 200 and detail.json == default


def test_system_presets_are_there_at_table_creation(api, alice):
    """The tests' tables, like the local stack's, are seeded when created: the first list
    makes no write and finds them."""
    with dynamodb_calls() as calls:
        reply = api.get("/api/presets/", token=alice["token"])
    assert len(reply.json) == len(_defined())
    assert set(calls) == {"GetItem", "Query"}


def test_a_normal_user_cannot_change_a_system_preset(api, alice, bob):
    """WebODM lets anyone PUT/PATCH a system preset (no object-level check): a 403 here."""
    default = _by_name(api, alice, "Default")
    for method in ("patch", "put"):
        reply = getattr(api, method)(f"/api/presets/{default['id']}/", token=alice["token"],
                                     json={"name": "Mine now", "options": []})
        assert reply.status == 403 and reply.json == NO_PERMISSION
    assert _by_name(api, bob, "Default") == default


def test_a_superuser_may_edit_a_system_preset_but_not_delete_it(api, admin, alice):
    forest = _by_name(api, alice, "Forest")
    options = [{"name": "auto-boundary", "value": True}, {"name": "feature-quality", "value": "high"}]
    reply = api.patch(f"/api/presets/{forest['id']}/", token=admin["token"], json={"options": options})
    assert reply.status == 200 and reply.json == {**forest, "options": options}
    assert _by_name(api, alice, "Forest")["options"] == options
    assert api.delete(f"/api/presets/{forest['id']}/", token=admin["token"]).status == 403
    assert api.delete(f"/api/presets/{forest['id']}/", token=alice["token"]).status == 404


def test_superusers_see_their_own_and_system_presets_only(api, admin, alice):
    """WebODM's queryset does not widen for superusers: another user's preset is a 404 to
    them for every method."""
    mine = _create(api, alice, name="Alice's")
    admins = _create(api, admin, name="Admin's")
    assert _names(api.get("/api/presets/", token=admin["token"]))[-1:] == ["Admin's"]
    assert "Alice's" not in _names(api.get("/api/presets/", token=admin["token"]))
    assert "Admin's" not in _names(api.get("/api/presets/", token=alice["token"]))
    for method in ("get", "patch", "put", "delete"):
        reply = getattr(api, method)(f"/api/presets/{mine['id']}/", token=admin["token"], json={"name": "x"})
        assert reply.status == 404 and reply.json == NOT_FOUND
    assert api.get(f"/api/presets/{mine['id']}/", token=alice["token"]).json == mine
    assert api.get(f"/api/presets/{admins['id']}/", token=admin["token"]).json == admins


def test_a_new_definition_is_applied_by_name_on_first_use(api, admin, alice):
    """What a deployment with another system_presets.json sees (WebODM: the next boot): the
    first presets request seeds again; each defined name gets the defined options back
    (keeping its id), a superuser's edit included; nothing is duplicated."""
    before = api.get("/api/presets/", token=alice["token"]).json
    buildings = next(p for p in before if p["name"] == "Buildings")
    api.patch(f"/api/presets/{buildings['id']}/", token=admin["token"], json={"options": []})
    aws.dynamodb().update_item(TableName=preset_store._table.name, Key={"owner": {"N": "0"}, "id": {"N": "0"}},
                               UpdateExpression="SET seed_hash = :old",
                               ExpressionAttributeValues={":old": {"S": "an older definition"}})
    detail = api.get(f"/api/presets/{buildings['id']}/", token=alice["token"])
    assert detail.status == 200 and detail.json == buildings
    assert api.get("/api/presets/", token=alice["token"]).json == before


def test_first_use_seeds_an_empty_deployment_once_under_concurrency(live, alice):
    """A deployed table starts empty: concurrent first requests, each in its own Lambda
    container, seed the system presets exactly once."""
    client = aws.dynamodb()
    table = preset_store._table.name
    for item in client.query(TableName=table, KeyConditionExpression="#o = :o",
                             ExpressionAttributeNames={"#o": "owner"},
                             ExpressionAttributeValues={":o": {"N": "0"}})["Items"]:
        client.delete_item(TableName=table, Key={"owner": item["owner"], "id": item["id"]})
    headers = {"Authorization": f"JWT {alice['token']}"}
    replies: list = []

    def fetch():
        replies.append(requests.get(live + "/api/presets/", headers=headers, timeout=60))

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in replies] == [200] * 6
    for reply in replies:
        assert [{"name": p["name"], "options": p["options"]} for p in reply.json()] == _defined()
    assert len({tuple(p["id"] for p in r.json()) for r in replies}) == 1  # one seeding won


# ---------------------------------------------------------------- fixed quirks and bad input

@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_missing_and_malformed_ids_are_404(api, alice, method):
    """WebODM's destroy answers 500 for an id that does not exist."""
    for preset_id in ("99999", "abc", "0", "-3", "1.5", "99999999999999999999999"):
        reply = getattr(api, method)(f"/api/presets/{preset_id}/", token=alice["token"], json={"name": "x"})
        assert reply.status == 404 and reply.json == NOT_FOUND, preset_id


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_anonymous_and_bad_tokens_are_403_on_one_preset(api, alice, method):
    preset = _create(api, alice, name="p")
    reply = getattr(api, method)(f"/api/presets/{preset['id']}/", json={"name": "x"})
    assert reply.status == 403 and reply.json == NOT_AUTHENTICATED
    reply = getattr(api, method)(f"/api/presets/{preset['id']}/", json={"name": "x"},
                                 headers={"Authorization": "JWT not.a.token"})
    assert reply.status == 403 and reply.json == {"detail": "Error decoding signature."}
    assert api.get(f"/api/presets/{preset['id']}/", token=alice["token"]).json == preset


@pytest.mark.parametrize("body, errors", [
    ({}, {"name": ["This field is required."]}),
    ({"options": []}, {"name": ["This field is required."]}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": "   "}, {"name": ["This field may not be blank."]}),
    ({"name": None}, {"name": ["This field may not be null."]}),
    ({"name": ["a"]}, {"name": ["Not a valid string."]}),
    ({"name": "x" * 256}, {"name": ["Ensure this field has no more than 255 characters."]}),
    ({"name": "p", "options": 5}, {"options": ["Invalid options"]}),
    ({"name": "p", "options": "not json"}, {"options": ["Invalid options"]}),
    ({"name": "p", "options": [{"value": 1}]}, {"options": ["Invalid options"]}),
    ({"name": "p", "options": [{"name": "", "value": 1}]}, {"options": ["Invalid options"]}),
    ({"name": "p", "options": ["dsm"]}, {"options": ["Invalid options"]}),
    ({"name": "p", "options": [{"name": 3, "value": 1}]}, {"options": ["Invalid options"]}),
    ({"options": [{"a": 1}]}, {"name": ["This field is required."], "options": ["Invalid options"]}),
    ({"name": "p", "options": [{"name": "a", "value": "x" * 70_000}]},
     {"options": ["Value too large (more than 64000 bytes)"]}),
    ({"name": "p", "options": [{"name": "a", "value": {"": 1}}]}, {"options": ["Object keys may not be empty"]}),
])
def test_bad_create_bodies_are_drf_400s(api, alice, body, errors):
    reply = api.post("/api/presets/", token=alice["token"], json=body)
    assert reply.status == 400 and reply.json == errors
    assert len(api.get("/api/presets/", token=alice["token"]).json) == len(_defined())


def test_malformed_bodies_are_400s(api, alice):
    reply = api.post("/api/presets/", token=alice["token"], data=b"{nope",
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.json["detail"].startswith("JSON parse error")
    reply = api.post("/api/presets/", token=alice["token"], data=b"[1, 2]",
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.json == {"non_field_errors": [
        "Invalid data. Expected a dictionary, but got list."]}
    reply = api.post("/api/presets/", token=alice["token"], data=b'{"name": "\\ud800"}',
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400
    preset = _create(api, alice, name="p")
    reply = api.patch(f"/api/presets/{preset['id']}/", token=alice["token"], data=b"{nope",
                      headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert api.get(f"/api/presets/{preset['id']}/", token=alice["token"]).json == preset


def test_create_takes_json_form_and_multipart(api, alice):
    options = [{"name": "dsm", "value": True}, {"name": "orthophoto-resolution", "value": 2.5}]
    by_json = _create(api, alice, name="  json  ", options=options)
    assert by_json["name"] == "json" and by_json["options"] == options and by_json["system"] is False
    assert by_json["created_at"].endswith("Z")
    reply = api.post("/api/presets/", token=alice["token"], data={"name": "form", "options": json.dumps(options)})
    assert reply.status == 201 and reply.json["options"] == options
    reply = api.post("/api/presets/", token=alice["token"], files={"name": (None, "multi"),
                                                                    "options": (None, json.dumps(options))})
    assert reply.status == 201 and reply.json["name"] == "multi" and reply.json["options"] == options
    reply = api.post("/api/presets/", token=alice["token"], json={"name": "no options"})
    assert reply.status == 201 and reply.json["options"] == []
    ids = [p["id"] for p in api.get("/api/presets/", token=alice["token"]).json]
    assert ids == sorted(ids) and len(ids) == len(_defined()) + 4


def test_put_needs_a_name_and_keeps_what_it_leaves_out(api, alice):
    options = [{"name": "dsm", "value": True}]
    preset = _create(api, alice, name="p", options=options)
    url = f"/api/presets/{preset['id']}/"
    reply = api.put(url, token=alice["token"], json={"options": []})
    assert reply.status == 400 and reply.json == {"name": ["This field is required."]}
    reply = api.put(url, token=alice["token"], json={"name": "renamed"})
    assert reply.status == 200 and reply.json == {**preset, "name": "renamed"}
    reply = api.patch(url, token=alice["token"], json={})
    assert reply.status == 200 and reply.json == {**preset, "name": "renamed"}
    reply = api.patch(url, token=alice["token"], json={"name": ""})
    assert reply.status == 400 and reply.json == {"name": ["This field may not be blank."]}
    reply = api.patch(url, token=alice["token"], json={"id": 1, "created_at": "2000-01-01T00:00:00Z",
                                                        "options": []})
    assert reply.status == 200 and reply.json == {**preset, "name": "renamed", "options": []}


def test_ordering_and_ignored_filters(api, alice):
    _create(api, alice, name="b")
    _create(api, alice, name="a")
    everything = api.get("/api/presets/", token=alice["token"]).json
    assert api.get("/api/presets/?ordering=-id", token=alice["token"]).json == everything[::-1]
    by_name = api.get("/api/presets/?ordering=name", token=alice["token"]).json
    assert [p["name"] for p in by_name] == sorted(p["name"] for p in everything)
    mine_first = api.get("/api/presets/?ordering=system,-id", token=alice["token"]).json
    assert [p["name"] for p in mine_first[:2]] == ["a", "b"]
    for query in ("ordering=owner", "ordering=", "name=a", "system=false", "page=2"):
        assert api.get(f"/api/presets/?{query}", token=alice["token"]).json == everything, query


def test_a_users_presets_are_bounded_so_the_list_stays_one_query_page(api, alice, bob):
    """700 KB of presets per user (as they travel in the answer): past it a create or a
    growing update is refused; deleting frees room."""
    big = [{"name": "boundary", "value": "x" * 60_000}]
    made = []
    while True:
        reply = api.post("/api/presets/", token=alice["token"], json={"name": f"big {len(made)}", "options": big})
        if reply.status != 201:
            break
        made.append(reply.json)
    assert len(made) == PARTITION_BUDGET // 60_100
    assert reply.status == 400 and reply.json == [f"A user's presets may weigh at most {PARTITION_BUDGET} bytes"]
    small = _create(api, alice, name="small")
    reply = api.patch(f"/api/presets/{small['id']}/", token=alice["token"], json={"options": big})
    assert reply.status == 400
    assert api.get(f"/api/presets/{small['id']}/", token=alice["token"]).json == small
    _create(api, bob, name="bob's", options=big)  # another user's room is their own
    assert api.delete(f"/api/presets/{made[0]['id']}/", token=alice["token"]).status == 204
    reply = api.patch(f"/api/presets/{small['id']}/", token=alice["token"], json={"options": big})
    assert reply.status == 200
    with dynamodb_calls() as calls:
        listed = api.get("/api/presets/", token=alice["token"]).json
    assert len(listed) == len(_defined()) + len(made) and calls["Query"] == 2  # one deleted, one added


def test_list_costs_the_same_dynamodb_calls_whatever_the_users_and_presets(api, alice):
    """One GetItem (the caller) and two Queries (own and system partitions), with 1 user and
    no preset as with 8 more users of 5 presets each and 15 of the caller's."""
    def measure() -> collections.Counter:
        with dynamodb_calls() as calls:
            assert api.get("/api/presets/", token=alice["token"]).status == 200
        return calls

    alone = measure()
    for n in range(8):
        user = {"token": token_for(make_user(f"user{n}"))}
        for k in range(5):
            _create(api, user, name=f"p{k}", options=[{"name": "dsm", "value": True}])
    for k in range(15):
        _create(api, alice, name=f"mine {k}")
    crowded = measure()
    assert alone == crowded == {"GetItem": 1, "Query": 2}
    with dynamodb_calls() as calls:
        api.get("/api/presets/1/", token=alice["token"])
    assert calls == {"GetItem": 1, "BatchGetItem": 1}


def test_api_root_lists_presets(api):
    assert api.get("/api/").json["presets"] == "/api/presets/"


def test_methods_not_routed_are_405(api, alice):
    reply = api.delete("/api/presets/", token=alice["token"])
    assert reply.status == 405 and reply.json == {"detail": 'Method "DELETE" not allowed.'}
    reply = api.post("/api/presets/1/", token=alice["token"], json={})
    assert reply.status == 405


def test_webodm_ui_ordering_puts_system_presets_first_newest_first(api, alice):
    """WebODM's task form asks `?ordering=-system,-created_at`."""
    first = _create(api, alice, name="older")
    second = _create(api, alice, name="newer")
    listed = api.get("/api/presets/?ordering=-system,-created_at", token=alice["token"]).json
    assert [p["system"] for p in listed] == [True] * len(_defined()) + [False, False]
    assert [p["id"] for p in listed[-2:]] == [second["id"], first["id"]]
