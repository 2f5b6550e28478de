"""Processing nodes API through HTTP, against real fake NodeODM servers (WebODM's processing node API, node selection and liveness)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import config
from chalicelib import nodes as node_service
from chalicelib.store import nodes as node_store
from tests.fake_nodeodm import FakeNodeODM, default_options

NODE_FIELDS = {"id", "hostname", "port", "label", "api_version", "last_refreshed", "queue_count",
               "max_images", "available_options", "engine", "engine_version", "online"}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"detail": "Not found."}


@pytest.fixture
def fake():
    with FakeNodeODM(max_images=25) as node:
        yield node


@pytest.fixture
def dead_port():
    """A port on which nothing listens (connection refused)."""
    node = FakeNodeODM().start()
    port = node.port
    node.go_offline()
    return port


def create(api, user, **body):
    reply = api.post("/api/processingnodes/", token=user["token"], json=body)
    assert reply.status == 201, reply.json
    return reply.json


def ago(**delta) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opt(name: str) -> dict:
    return {"name": name, "type": "bool", "value": "false", "domain": "", "help": name}


def test_create_refreshes_at_once(api, admin, fake):
    node = create(api, admin, hostname=fake.hostname, port=fake.port)
    assert set(node) == NODE_FIELDS
    assert node["online"] is True and node["api_version"] == "2.2.4"
    assert node["max_images"] == 25 and node["queue_count"] == 0
    assert node["engine"] == "odm" and node["engine_version"] == "?"
    assert [o["name"] for o in node["available_options"]] == [o["name"] for o in default_options()]
    assert node["last_refreshed"] and node["label"] == f"127.0.0.1:{fake.port}"
    assert fake.calls["info"] == 1 and fake.calls["options"] == 1
    stored = node_store.get(node["id"])
    assert stored["last_refreshed"] == node["last_refreshed"] and stored["available_options"]
    detail = api.get(f"/api/processingnodes/{node['id']}/", token=admin["token"])
    assert detail.status == 200 and detail.json == node


def test_create_unreachable_node_is_offline(api, admin, dead_port):
    node = create(api, admin, hostname="127.0.0.1", port=dead_port)
    assert node["online"] is False and node["available_options"] == []
    assert node["last_refreshed"] is None and node["api_version"] is None
    assert node_store.get(node["id"])["last_refreshed"] is None


def test_token_is_write_only_but_sent_to_the_node(api, admin, alice):
    with FakeNodeODM(token="s3cret") as guarded:
        wrong = create(api, admin, hostname=guarded.hostname, port=guarded.port, token="nope")
        right = create(api, admin, hostname=guarded.hostname, port=guarded.port, token="s3cret")
        missing = create(api, admin, hostname=guarded.hostname, port=guarded.port)
    assert wrong["online"] is False and missing["online"] is False
    assert right["online"] is True and right["available_options"]
    assert node_store.get(right["id"])["token"] == "s3cret"
    replies = [api.get("/api/processingnodes/", token=user["token"]) for user in (admin, alice)]
    replies += [api.get(f"/api/processingnodes/{right['id']}/", token=alice["token"])]
    replies += [api.patch(f"/api/processingnodes/{right['id']}/", token=admin["token"],
                          json={"label": "guarded"})]
    for reply in replies:
        assert reply.status == 200 and b"s3cret" not in reply.body
        for item in reply.json if isinstance(reply.json, list) else [reply.json]:
            assert set(item) == NODE_FIELDS
    assert len(replies[0].json) == 3
    for item in [wrong, right, missing]:
        assert set(item) == NODE_FIELDS


def test_normal_user_reads_but_cannot_write(api, admin, alice, fake):
    node = create(api, admin, hostname=fake.hostname, port=fake.port, label="main")
    path = f"/api/processingnodes/{node['id']}/"
    listed = api.get("/api/processingnodes/", token=alice["token"])
    assert listed.status == 200 and [n["id"] for n in listed.json] == [node["id"]]
    assert api.get(path, token=alice["token"]).json == listed.json[0]
    options = api.get("/api/processingnodes/options/", token=alice["token"])
    assert options.status == 200 and len(options.json) == len(default_options())
    attempts = [api.post("/api/processingnodes/", token=alice["token"],
                         json={"hostname": "evil", "port": 1}),
                api.patch(path, token=alice["token"], json={"hostname": "evil"}),
                api.put(path, token=alice["token"], json={"hostname": "evil", "port": 1}),
                api.delete(path, token=alice["token"]),
                api.delete("/api/processingnodes/999/", token=alice["token"])]
    for reply in attempts:
        assert reply.status == 403 and reply.json == NO_PERMISSION
    assert [n["hostname"] for n in node_store.list_all()] == [fake.hostname]
    assert node_store.get(node["id"])["label"] == "main"


def test_anonymous_gets_403_everywhere(api, admin, fake):
    node = create(api, admin, hostname=fake.hostname, port=fake.port)
    for reply in (api.get("/api/processingnodes/"), api.get(f"/api/processingnodes/{node['id']}/"),
                  api.get("/api/processingnodes/options/"),
                  api.post("/api/processingnodes/", json={"hostname": "x", "port": 1}),
                  api.delete(f"/api/processingnodes/{node['id']}/")):
        assert reply.status == 403
        assert reply.json == {"detail": "Authentication credentials were not provided."}
    assert node_store.get(node["id"]) is not None and len(node_store.list_all()) == 1


def test_filters_and_has_available_options(api, admin, alice, fake, dead_port):
    live = create(api, admin, hostname=fake.hostname, port=fake.port)
    dead = create(api, admin, hostname="localhost", port=dead_port)

    def ids(**params):
        reply = api.get("/api/processingnodes/", token=alice["token"], params=params)
        assert reply.status == 200, reply.json
        return [n["id"] for n in reply.json]

    assert ids() == [live["id"], dead["id"]]
    assert ids(id=dead["id"]) == [dead["id"]] and ids(id=12345) == []
    assert ids(hostname="localhost") == [dead["id"]]
    assert ids(port=fake.port) == [live["id"]] and ids(port=str(dead_port)) == [dead["id"]]
    assert ids(engine="odm") == [live["id"]]
    for value in ("true", "TRUE", "1", "True"):
        assert ids(has_available_options=value) == [live["id"]]
    for value in ("false", "0", "no", ""):
        assert ids(has_available_options=value) == [dead["id"]]
    bad = api.get("/api/processingnodes/", token=alice["token"], params={"port": "abc"})
    assert bad.status == 400 and "port" in bad.json


def test_ordering(api, admin, alice, dead_port):
    first = create(api, admin, hostname="b-host", port=dead_port, label="zeta")
    second = create(api, admin, hostname="a-host", port=1)
    third = create(api, admin, hostname="c-host", port=80, label="alpha")

    def ids(ordering):
        reply = api.get("/api/processingnodes/", token=alice["token"], params={"ordering": ordering})
        return [n["id"] for n in reply.json]

    assert ids("hostname") == [second["id"], first["id"], third["id"]]
    assert ids("-hostname") == [third["id"], first["id"], second["id"]]
    assert ids("-id") == [third["id"], second["id"], first["id"]]
    assert ids("label") == [second["id"], third["id"], first["id"]]  # "a-host:..." < alpha < zeta
    assert ids("token") == [first["id"], second["id"], third["id"]]  # not a field: ignored


def test_common_options_across_nodes_excludes_offline(api, admin, alice, dead_port):
    with FakeNodeODM() as one, FakeNodeODM() as two, FakeNodeODM() as three:
        one.options_list = [opt("a"), opt("b"), opt("c")]
        two.options_list = [opt("c"), opt("a"), opt("d")]
        three.options_list = [opt("e")]
        ids = [create(api, admin, hostname=n.hostname, port=n.port)["id"] for n in (one, two, three)]
    create(api, admin, hostname="127.0.0.1", port=dead_port)  # never answered: ignored

    def names():
        reply = api.get("/api/processingnodes/options/", token=alice["token"])
        assert reply.status == 200
        return [o["name"] for o in reply.json]

    assert names() == []  # all three online, nothing in common
    node_store.update(ids[2], {"last_refreshed": ago(hours=1)})  # third drops offline
    assert names() == ["a", "c"]  # in the first node's order
    assert api.get("/api/processingnodes/options/", token=alice["token"]).json[0] == opt("a")
    node_store.update(ids[1], {"last_refreshed": ago(hours=1)})
    assert names() == ["a", "b", "c"]
    node_store.update(ids[0], {"last_refreshed": ago(hours=1)})
    assert names() == []


def test_label_defaults_to_address_and_can_be_set(api, admin, dead_port):
    node = create(api, admin, hostname="localhost", port=dead_port)
    assert node["label"] == f"localhost:{dead_port}"
    assert node_store.get(node["id"])["label"] == ""
    path = f"/api/processingnodes/{node['id']}/"
    named = api.patch(path, token=admin["token"], json={"label": "  Big box "})
    assert named.status == 200 and named.json["label"] == "Big box"
    assert api.get(path, token=admin["token"]).json["label"] == "Big box"
    cleared = api.patch(path, token=admin["token"], data={"label": ""})  # form body
    assert cleared.status == 200 and cleared.json["label"] == f"localhost:{dead_port}"
    labelled = create(api, admin, hostname="localhost", port=dead_port, label="Other")
    assert labelled["label"] == "Other"


def test_patch_and_put_address_refresh_at_once(api, admin, fake, dead_port):
    node = create(api, admin, hostname="127.0.0.1", port=dead_port)
    assert node["online"] is False
    path = f"/api/processingnodes/{node['id']}/"
    moved = api.patch(path, token=admin["token"], json={"port": fake.port})
    assert moved.status == 200
    assert moved.json["online"] is True and moved.json["port"] == fake.port
    assert moved.json["api_version"] == "2.2.4" and moved.json["available_options"]
    assert node_store.get(node["id"])["last_refreshed"] == moved.json["last_refreshed"]
    # Back to a dead address: offline at once, not for the next five minutes.
    back = api.put(path, token=admin["token"], json={"hostname": "127.0.0.1", "port": dead_port})
    assert back.status == 200 and back.json["online"] is False and back.json["port"] == dead_port
    assert back.json["hostname"] == "127.0.0.1"
    # A label-only change does not talk to the node.
    calls = fake.calls["info"]
    relabel = api.patch(path, token=admin["token"], json={"label": "x"})
    assert relabel.status == 200 and fake.calls["info"] == calls
    # PUT without hostname or port is a 400; the node is unchanged.
    for body, missing in (({"port": 1}, ["hostname"]), ({"hostname": "h"}, ["port"]), ({}, ["hostname", "port"])):
        reply = api.put(path, token=admin["token"], json=body)
        assert reply.status == 400 and sorted(reply.json) == missing
        assert all(reply.json[f] == ["This field is required."] for f in missing)
    assert node_store.get(node["id"])["port"] == dead_port
    missing_node = api.patch("/api/processingnodes/999/", token=admin["token"], json={"label": "x"})
    assert missing_node.status == 404 and missing_node.json == NOT_FOUND


def test_delete_then_404(api, admin, alice, dead_port):
    node = create(api, admin, hostname="localhost", port=dead_port)
    path = f"/api/processingnodes/{node['id']}/"
    reply = api.delete(path, token=admin["token"])
    assert reply.status == 204 and reply.body == b""
    assert node_store.get(node["id"]) is None
    for reply in (api.get(path, token=alice["token"]), api.delete(path, token=admin["token"]),
                  api.patch(path, token=admin["token"], json={"label": "back"}),
                  api.get("/api/processingnodes/abc/", token=alice["token"])):
        assert reply.status == 404 and reply.json == NOT_FOUND
    assert node_store.get(node["id"]) is None  # the PATCH did not resurrect it
    node_store.record_refresh(node["id"], {"api_version": "2.2.4"})  # neither does a late refresh
    assert node_store.get(node["id"]) is None
    assert api.get("/api/processingnodes/", token=alice["token"]).json == []


@pytest.mark.parametrize("body, errors", [
    ({"port": 3000}, {"hostname": ["This field is required."]}),
    ({"hostname": "   ", "port": 3000}, {"hostname": ["This field may not be blank."]}),
    ({"hostname": "h", "port": "abc"}, {"port": ["A valid integer is required."]}),
    ({"hostname": "h", "port": 70000},
     {"port": ["Ensure this value is less than or equal to 65535."]}),
    ({"hostname": "h", "port": -1}, {"port": ["Ensure this value is greater than or equal to 0."]}),
    ({"hostname": "h" * 256, "port": 1},
     {"hostname": ["Ensure this field has no more than 255 characters."]}),
])
def test_invalid_bodies(api, admin, body, errors):
    reply = api.post("/api/processingnodes/", token=admin["token"], json=body)
    assert reply.status == 400 and reply.json == errors
    assert node_store.list_all() == []


def test_form_body_and_extra_keys(api, admin, dead_port):
    reply = api.post("/api/processingnodes/", token=admin["token"],
                     data={"hostname": "localhost", "port": str(dead_port), "id": "77",
                           "online": "true", "last_refreshed": "2030-01-01T00:00:00Z"})
    assert reply.status == 201 and reply.json["port"] == dead_port
    assert reply.json["id"] != 77 and reply.json["online"] is False
    assert reply.json["last_refreshed"] is None


def test_online_follows_node_offline_seconds(api, admin, alice, fake, monkeypatch):
    node = create(api, admin, hostname=fake.hostname, port=fake.port)
    path = f"/api/processingnodes/{node['id']}/"
    node_store.update(node["id"], {"last_refreshed": ago(seconds=120)})
    assert api.get(path, token=alice["token"]).json["online"] is True  # default 300 s
    # The Chalice test client applies .chalice/config.json (which pins 300) around each request,
    # so the setting is read here, outside a request, and stays cached.
    monkeypatch.setenv("ALOFT_NODE_OFFLINE_SECONDS", "60")
    config.reset()
    assert config.settings().node_offline_seconds == 60
    assert api.get(path, token=alice["token"]).json["online"] is False
    assert api.get("/api/processingnodes/", token=alice["token"]).json[0]["online"] is False
    assert api.get("/api/processingnodes/options/", token=alice["token"]).json == []
    monkeypatch.setenv("ALOFT_NODE_OFFLINE_SECONDS", "3600")
    config.reset()
    assert config.settings().node_offline_seconds == 3600
    assert api.get(path, token=alice["token"]).json["online"] is True


# ---------------------------------------------------------------- service level, via the store

def stored_node(hostname="n", *, refreshed_ago=10, queue=0, max_images=None, options=None):
    node = node_store.create({"hostname": hostname, "port": 3000})
    if refreshed_ago is not None:
        node_store.record_refresh(node["id"], {
            "last_refreshed": ago(seconds=refreshed_ago), "queue_count": queue,
            "max_images": max_images, "available_options": options or []})
    return node_store.get(node["id"])


def test_pick_node(aws_env):
    assert node_service.pick_node([], 1) is None
    stored_node("offline", refreshed_ago=None)
    stored_node("stale", refreshed_ago=3600, queue=0)
    busy = stored_node("busy", queue=3)
    small = stored_node("small", queue=0, max_images=5)
    idle = stored_node("idle", queue=1)
    idle_too = stored_node("idle-too", queue=1)
    everything = node_store.list_all()
    assert node_service.pick_node(everything, 5)["id"] == small["id"]
    assert node_service.pick_node(everything, 6)["id"] == idle["id"]  # tie with idle_too: lowest id
    assert node_service.pick_node([idle_too, idle], 6)["id"] == idle["id"]
    node_store.update(idle["id"], {"queue_count": 2})
    node_store.update(idle_too["id"], {"queue_count": 4})
    assert node_service.pick_node(node_store.list_all(), 100)["id"] == idle["id"]
    node_store.update(idle["id"], {"queue_count": 9})
    assert node_service.pick_node(node_store.list_all(), 100)["id"] == busy["id"]
    assert node_service.pick_node([n for n in node_store.list_all()
                                   if n["hostname"] in ("offline", "stale")], 1) is None


def test_common_options_and_rerun_from(aws_env):
    stored_node("empty-first", options=[])
    stored_node("first", options=[opt("a"), opt("b"), opt("x")])
    stored_node("offline", refreshed_ago=None, options=[opt("z")])
    stored_node("second", options=[opt("b"), opt("a")])
    assert [o["name"] for o in node_service.common_options(node_store.list_all())] == ["a", "b"]
    stored_node("later-empty", options=[])
    assert node_service.common_options(node_store.list_all()) == []
    assert node_service.common_options([]) == []
    with_rerun = stored_node("r", options=default_options())
    assert node_service.rerun_from(with_rerun)[:2] == ["dataset", "split"]
    assert node_service.rerun_from(with_rerun)[-1] == "odm_postprocess"
    assert node_service.rerun_from(node_store.get(1)) == []
    assert node_service.rerun_from(None) == []


def test_refresh_all_in_order_and_stale_refresh_is_dropped(aws_env, fake, dead_port):
    alive = node_store.create({"hostname": fake.hostname, "port": fake.port})
    dead = node_store.create({"hostname": "127.0.0.1", "port": dead_port})
    results = node_service.refresh_all([dead, alive], timeout=2.0)
    assert [n["id"] for n in results] == [dead["id"], alive["id"]]
    assert results[0]["last_refreshed"] is None and results[1]["api_version"] == "2.2.4"
    assert node_service.is_online(node_store.get(alive["id"]))
    assert not node_service.is_online(node_store.get(dead["id"]))
    # A refresh of an address that was edited meanwhile stores nothing.
    node_store.update(alive["id"], {"port": dead_port, "last_refreshed": None})
    node_service.refresh(alive, timeout=2.0)
    assert node_store.get(alive["id"])["last_refreshed"] is None
