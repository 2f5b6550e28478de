"""chalicelib.nodeodm.NodeClient against tests.fake_nodeodm.FakeNodeODM, over real HTTP."""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import time

import pytest

from chalicelib import nodeodm
from chalicelib.nodeodm import (CALLS, NodeClient, NodeConnectionError, NodeError, NodeInfo,
                                NodeResponseError, NodeServerError)
from tests.fake_nodeodm import AUTH_ERROR, FakeNodeODM
from tests.sample_data import fake_image

TOKEN = "s3cret"


@pytest.fixture
def node():
    with FakeNodeODM(processing_seconds=0.15, output_lines=20) as fake:
        yield fake


@pytest.fixture
def client(node):
    return NodeClient(node.hostname, node.port, timeout=5)


class OnlyRead:
    """A stream with nothing but read(n), like a botocore StreamingBody; records read sizes."""

    def __init__(self, data: bytes):
        self._buf = io.BytesIO(data)
        self.sizes: list[int] = []

    def read(self, n: int = -1) -> bytes:
        self.sizes.append(n)
        return self._buf.read(n)


def wait_for(client: NodeClient, uuid: str, statuses: set[int], timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        info = client.task_info(uuid)
        if info.status in statuses or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


def make_task(client: NodeClient, images: int = 2, name: str = "t",
              options: list | None = None) -> str:
    uuid = client.init_task(name, options or [])
    for i in range(images):
        client.upload(uuid, f"img{i}.jpg", io.BytesIO(fake_image(i, 2000)))
    assert client.commit(uuid) == uuid
    return uuid


# -- URL building ---------------------------------------------------------------------------

def test_base_url_by_port():
    assert NodeClient("node.example", 443).base_url == "https://node.example"
    assert NodeClient("node.example", 80).base_url == "http://node.example"
    assert NodeClient("node.example", 3000).base_url == "http://node.example:3000"
    assert NodeClient("::1", 3000).base_url == "http://[::1]:3000"


def test_port_443_uses_https_with_token_and_redacts_it():
    # Nothing listens on 127.0.0.1:443: the refused connection's message shows the URL used.
    client = NodeClient("127.0.0.1", 443, token=TOKEN, timeout=2)
    with pytest.raises(NodeConnectionError) as err:
        client.info()
    message = str(err.value)
    assert "HTTPSConnectionPool" in message and "port=443" in message
    assert "/info?token=***" in message
    assert TOKEN not in message


# -- /info and /options ---------------------------------------------------------------------

def test_info_defaults(client, node):
    info = client.info()
    assert (info.version, info.engine, info.engine_version) == ("2.2.4", "odm", "?")
    assert info.task_queue_count == 0
    assert info.max_images is None
    assert info.raw["maxParallelTasks"] == 1


def test_info_counts_queue_and_max_images(client, node):
    node.max_images = 7
    node.processing_seconds = 5
    make_task(client)
    make_task(client)
    info = client.info()
    assert info.task_queue_count == 2  # one running + one queued
    assert info.max_images == 7


@pytest.mark.parametrize("value, expected", [
    (None, None), ("lots", None), ([3], None), (True, None), (-3, 0), (12, 12), ("5", 5),
])
def test_info_max_images_parsing(client, node, value, expected):
    node.info_overrides["maxImages"] = value
    assert client.info().max_images == expected


def test_info_missing_fields_and_engine_fallback(client, node):
    node.info_overrides.update({"engineVersion": ..., "engine": ..., "odmVersion": "0.9.1",
                                "version": ..., "taskQueueCount": ...})
    info = client.info()
    assert (info.engine, info.engine_version) == ("odm", "0.9.1")
    assert (info.version, info.task_queue_count) == ("?", 0)
    node.info_overrides["odmVersion"] = ...
    info = client.info()
    assert (info.engine, info.engine_version) == ("?", "?")
    node.info_overrides.update({"engine": "micmac", "engineVersion": "1.2"})
    assert (client.info().engine, client.info().engine_version) == ("micmac", "1.2")


def test_node_info_from_json_directly():
    info = NodeInfo.from_json({"odmVersion": "0.6", "maxImages": 2.0, "taskQueueCount": "3"})
    assert (info.engine, info.engine_version, info.max_images, info.task_queue_count) == \
        ("odm", "0.6", 2, 3)


def test_options(client, node):
    options = client.options()
    by_name = {o["name"]: o for o in options}
    assert len(options) >= 6
    assert by_name["orthophoto-resolution"]["type"] == "float"
    assert by_name["orthophoto-resolution"]["value"] == "5"
    assert by_name["dsm"] == {**by_name["dsm"], "type": "bool", "value": "false"}
    assert by_name["mesh-size"]["type"] == "int"
    assert by_name["rerun-from"]["type"] == "enum"
    assert "odm_orthophoto" in by_name["rerun-from"]["domain"]
    assert by_name["end-with"]["type"] == "enum" and by_name["fast-orthophoto"]["type"] == "bool"
    assert all(isinstance(o["value"], str) for o in options)


# -- the task flow ------------------------------------------------------------------------------

def test_full_flow_streams_upload_and_download(client, node):
    big = fake_image(1, 3_000_000)
    uuid = client.init_task("flight 1", [{"name": "dsm", "value": True},
                                         {"name": "orthophoto-resolution", "value": "2"},
                                         {"name": "not-an-option", "value": "1"}])
    assert node.task_creations == 1
    stream = OnlyRead(big)
    client.upload(uuid, "big.jpg", stream, size=len(big))          # Content-Length
    assert max(stream.sizes) <= 1 << 20 and len(stream.sizes) > 3   # read piecewise
    small = OnlyRead(fake_image(2, 5000))
    client.upload(uuid, "big.jpg", small)                            # unknown size: chunked
    client.upload(uuid, "geo.txt", io.BytesIO(b"EPSG:4326\n"))       # seekable, size found
    task = node.tasks[uuid]
    assert list(task.images) == ["big.jpg", "big_.jpg", "geo.txt"]
    assert hashlib.sha256(task.images["big.jpg"]).digest() == hashlib.sha256(big).digest()
    assert task.images["big_.jpg"] == fake_image(2, 5000)
    assert task.images["geo.txt"] == b"EPSG:4326\n"

    with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
        client.task_info(uuid)  # not committed yet
    assert client.commit(uuid) == uuid

    info = client.task_info(uuid, with_output=0)
    assert info.uuid == uuid and info.name == "flight 1"
    assert info.status in (10, 20) and 0 <= info.progress < 100
    assert info.images_count == 2  # geo.txt is not an image
    assert info.options == [{"name": "orthophoto-resolution", "value": 2},  # the node's /options order
                            {"name": "dsm", "value": True},
                            {"name": "pc-ept", "value": True}, {"name": "cog", "value": True},
                            {"name": "gltf", "value": True}]
    assert info.date_created and abs(info.date_created / 1000 - time.time()) < 60

    done = wait_for(client, uuid, {40})
    assert (done.status, done.progress, done.error_message) == (40, 100.0, "")
    assert 150 <= done.processing_time < 1000
    assert done.output == []  # no with_output
    assert client.task_info(uuid, with_output=-2).output == ["[INFO] step 19 of 20",
                                                             "[INFO] step 20 of 20"]
    assert len(client.task_info(uuid, with_output=0).output) == 20
    assert client.task_info(uuid, with_output=18).output == ["[INFO] step 19 of 20",
                                                             "[INFO] step 20 of 20"]
    assert client.task_info(uuid, with_output=99).output == []

    with client.download_all_zip(uuid) as (zip_stream, length):
        chunks = []
        while chunk := zip_stream.read(100_000):
            chunks.append(chunk)
    data = b"".join(chunks)
    assert length == len(node.all_zip) and data == node.all_zip
    assert data[:2] == b"PK"
    assert node.calls["download"] == 1 and node.calls["upload"] == 3


def test_output_lines_grow_while_running(client, node):
    node.processing_seconds = 0.6
    uuid = make_task(client)
    time.sleep(0.3)
    info = client.task_info(uuid, with_output=0)
    assert info.status == 20
    assert 20 <= info.progress <= 90
    assert 3 <= len(info.output) <= 18
    assert info.output[0] == "[INFO] step 1 of 20"
    assert info.processing_time >= 250


def test_task_without_name(client, node):
    uuid = client.init_task(None, [])
    client.upload(uuid, "a.jpg", io.BytesIO(b"x"))
    client.commit(uuid)
    assert "name" not in node.tasks[uuid].info_json(time.monotonic())
    assert client.task_info(uuid).name is None


def test_invalid_options_are_node_errors(client, node):
    with pytest.raises(NodeResponseError) as err:
        client.init_task("x", [{"name": "mesh-size", "value": "-1"}])
    assert json.loads(str(err.value)) == [{"name": "mesh-size",
                                           "error": "Invalid value -1 (out of range)"}]
    with pytest.raises(NodeResponseError, match="not in enum"):
        client.init_task("x", {"feature-quality": "super"})
    assert node.task_creations == 0


def test_queue_and_parallel_tasks(client, node):
    node.processing_seconds = 0.2
    first, second = make_task(client), make_task(client)
    assert client.task_info(first).status == 20
    queued = client.task_info(second)
    assert (queued.status, queued.processing_time, queued.progress) == (10, -1, 0.0)
    assert wait_for(client, second, {40}).status == 40
    assert client.task_info(first).status == 40


def test_max_images_fails_task_at_commit(client, node):
    node.max_images = 1
    uuid = make_task(client, images=3)
    info = client.task_info(uuid)
    assert info.status == 30
    assert info.error_message == "3 images uploaded, but this node can only process up to 1."


def test_failed_tasks_and_asset_not_ready(client, node):
    node.fail_tasks = True
    uuid = make_task(client)
    with pytest.raises(NodeResponseError, match="^Asset not ready$"):
        with client.download_all_zip(uuid):
            pass
    info = wait_for(client, uuid, {30})
    assert (info.status, info.error_message, info.progress) == (30, "", 100.0)
    with pytest.raises(NodeResponseError, match="^Asset not ready$"):
        with client.download_all_zip(uuid):
            pass
    node.fail_tasks, node.fail_message = False, "Not enough memory"
    info = wait_for(client, make_task(client), {30})
    assert (info.status, info.error_message) == (30, "Not enough memory")


# -- tokens -------------------------------------------------------------------------------------

def test_right_token_works(node):
    node.token = TOKEN
    client = NodeClient(node.hostname, node.port, token=TOKEN, timeout=5)
    assert client.info().version == "2.2.4"
    uuid = make_task(client)
    assert wait_for(client, uuid, {40}).status == 40
    with client.download_all_zip(uuid) as (stream, _):
        assert stream.read(2) == b"PK"
    client.restart(uuid)
    client.cancel(uuid)
    client.remove(uuid)


@pytest.mark.parametrize("token", ["", "wrong"])
def test_wrong_or_missing_token_fails_every_call(node, token):
    node.token = TOKEN
    good = NodeClient(node.hostname, node.port, token=TOKEN, timeout=5)
    uuid = make_task(good)
    init_uuid = good.init_task("pending", [])
    good.info()  # a tokened client must not leak its token to another one (pyodm's fault)
    bad = NodeClient(node.hostname, node.port, token=token, timeout=5)
    calls = [
        bad.info, bad.options, lambda: bad.init_task("x", []),
        lambda: bad.upload(init_uuid, "a.jpg", io.BytesIO(b"abc")),
        lambda: bad.commit(init_uuid), lambda: bad.task_info(uuid, with_output=0),
        lambda: bad.download_all_zip(uuid).__enter__(), lambda: bad.cancel(uuid),
        lambda: bad.remove(uuid), lambda: bad.restart(uuid),
    ]
    for call in calls:
        with pytest.raises(NodeResponseError) as err:
            call()
        assert str(err.value) == AUTH_ERROR
    assert node.task_creations == 2 and not node.tasks[init_uuid].images
    assert uuid in node.tasks and good.task_info(uuid).uuid == uuid


# -- transport failures -------------------------------------------------------------------------

def test_connection_refused_then_back_online(client, node):
    assert client.info().version == "2.2.4"   # leaves a keep-alive connection in the pool
    port = node.port
    node.go_offline()
    start = time.monotonic()
    with pytest.raises(NodeConnectionError):
        client.info()
    with pytest.raises(NodeConnectionError):
        client.upload("x", "a.jpg", io.BytesIO(b"abc"))
    assert time.monotonic() - start < 2
    node.go_online()
    assert node.port == port
    assert client.info().version == "2.2.4"


def test_latency_above_timeout_is_connection_error(node):
    node.token = TOKEN
    node.latency = 0.3
    client = NodeClient(node.hostname, node.port, token=TOKEN, timeout=0.1)
    start = time.monotonic()
    with pytest.raises(NodeConnectionError, match="timed out") as err:
        client.info()
    assert time.monotonic() - start < 0.25
    assert TOKEN not in str(err.value)
    patient = NodeClient(node.hostname, node.port, token=TOKEN, timeout=2)
    assert patient.info().version == "2.2.4"


def test_upload_refused_is_server_error(client, node):
    uuid = client.init_task("x", [])
    node.refuse_uploads = True
    start = time.monotonic()
    with pytest.raises(NodeServerError, match="^Unexpected status code: 500$") as err:
        client.upload(uuid, "a.jpg", io.BytesIO(fake_image(1, 200_000)))
    assert err.value.status_code == 500
    assert time.monotonic() - start < 2
    node.refuse_uploads = False
    client.upload(uuid, "a.jpg", io.BytesIO(b"ok"))
    assert list(node.tasks[uuid].images) == ["a.jpg"]


def test_upload_source_failures_are_not_node_errors(client, node):
    uuid = client.init_task("x", [])
    with pytest.raises(EOFError, match="ended after 3 of 10 bytes"):
        client.upload(uuid, "short.jpg", OnlyRead(b"abc"), size=10)

    class Broken:
        def read(self, n=-1):
            raise ValueError("S3 went away")

    with pytest.raises(ValueError, match="S3 went away"):
        client.upload(uuid, "broken.jpg", Broken(), size=100)
    with pytest.raises(ValueError, match="S3 went away"):
        client.upload(uuid, "broken.jpg", Broken())  # chunked path
    client.upload(uuid, "fine.jpg", io.BytesIO(b"fine"))
    assert node.tasks[uuid].images == {"fine.jpg": b"fine"}


def test_unexpected_status_and_invalid_json(client, node):
    node.force_status = 401
    with pytest.raises(NodeResponseError, match="^Unauthorized. Do you need to set a token\\?$"):
        client.info()
    node.force_status = 502
    with pytest.raises(NodeServerError, match="^Unexpected status code: 502$"):
        client.task_info("abc")
    node.force_status = 200  # 200 with an HTML body
    with pytest.raises(NodeServerError, match="Invalid JSON"):
        client.options()


def test_unknown_route_is_404_server_error(client, node):
    with pytest.raises(NodeServerError, match="^Unexpected status code: 404$") as err:
        client.task_info("")  # "/task//info" matches no route
    assert err.value.status_code == 404
    assert node.calls["not_found"] == 1


# -- unknown uuids and forgetting ------------------------------------------------------------

def test_unknown_uuid(client, node):
    uuid = "0b5fb6e6-5d0e-4e5c-9f6e-2a4f4b7d1c2e"
    with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
        client.task_info(uuid)
    with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
        with client.download_all_zip(uuid):
            pass
    for action in (client.cancel, client.remove, client.restart):
        with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
            action(uuid)
    with pytest.raises(NodeResponseError, match=r"^Invalid uuid \(not found\)$"):
        client.upload(uuid, "a.jpg", io.BytesIO(b"abc"))
    with pytest.raises(NodeResponseError, match=r"^Invalid uuid \(not found\)$"):
        client.commit(uuid)


def test_forget_all_tasks(client, node):
    uuid = make_task(client)
    pending = client.init_task("pending", [])
    node.forget_all_tasks()
    with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
        client.task_info(uuid)
    with pytest.raises(NodeResponseError, match=r"^Invalid uuid \(not found\)$"):
        client.upload(pending, "a.jpg", io.BytesIO(b"abc"))
    assert node.tasks == {}


# -- cancel / remove / restart -------------------------------------------------------------------

def test_cancel_restart_remove(client, node):
    node.processing_seconds = 5
    uuid = make_task(client, options=[{"name": "dsm", "value": True}])
    assert client.task_info(uuid).status == 20
    with pytest.raises(NodeResponseError, match="^Task cannot be restarted$"):
        client.restart(uuid)

    client.cancel(uuid)
    canceled = client.task_info(uuid)
    assert (canceled.status, canceled.processing_time) == (50, -1)
    assert client.info().task_queue_count == 0
    client.cancel(uuid)  # cancelling again succeeds
    assert client.task_info(uuid).status == 50

    blocker = make_task(client)  # holds the only slot, so the restarted task stays QUEUED
    with pytest.raises(NodeResponseError, match="out of range"):
        client.restart(uuid, [{"name": "mesh-size", "value": "-1"}])
    assert client.task_info(uuid).status == 50  # unchanged by the invalid restart
    client.restart(uuid, [{"name": "mesh-size", "value": "1000"},
                          {"name": "dsm", "value": "false"}])
    restarted = client.task_info(uuid, with_output=0)
    assert (restarted.status, restarted.progress, restarted.output) == (10, 0.0, [])
    assert restarted.processing_time == -1
    assert restarted.options == [{"name": "dsm", "value": False},
                                 {"name": "mesh-size", "value": 1000},
                                 {"name": "pc-ept", "value": True},
                                 {"name": "cog", "value": True}, {"name": "gltf", "value": True}]
    assert node.calls["restart"] == 3

    client.remove(blocker)  # frees the slot: the restarted task runs
    assert client.task_info(uuid).status == 20
    client.remove(uuid)
    with pytest.raises(NodeResponseError, match=f"^{uuid} not found$"):
        client.task_info(uuid)
    assert uuid not in node.tasks and node.calls["remove"] == 2


def test_restart_completed_task_keeps_options_when_none_given(client, node):
    uuid = make_task(client, options=[{"name": "fast-orthophoto", "value": True}])
    wait_for(client, uuid, {40})
    before = client.task_info(uuid)
    client.restart(uuid)
    after = client.task_info(uuid)
    assert after.status in (10, 20) and after.options == before.options
    assert wait_for(client, uuid, {40}).status == 40


# -- counting and concurrency --------------------------------------------------------------------

def test_calls_counter_counts_every_request_across_threads(client, node):
    CALLS.reset()
    client.info()
    with pytest.raises(NodeResponseError):
        client.task_info("nope")
    node.go_offline()
    with pytest.raises(NodeConnectionError):
        client.info()
    node.go_online()
    assert CALLS.count == 3
    assert CALLS.reset() == 3 and CALLS.count == 0

    node.latency = 0.02
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        infos = list(pool.map(lambda _: client.info(), range(64)))
    assert CALLS.count == 64 and node.calls["info"] == 65
    assert all(i.version == "2.2.4" for i in infos)


def test_errors_are_typed():
    assert issubclass(NodeConnectionError, NodeError) and issubclass(NodeServerError, NodeError)
    err = NodeResponseError("boom", no_retry=True)
    assert (str(err), err.no_retry) == ("boom", True)
    assert NodeResponseError("x").no_retry is False
    assert nodeodm.NodeServerError("Unexpected status code: 500").status_code is None


def test_download_interrupted_midway_is_connection_error(client, node):
    node.all_zip = b"PK" + bytes(40_000_000)  # larger than the loopback socket buffers
    uuid = make_task(client)
    wait_for(client, uuid, {40})
    with pytest.raises(NodeConnectionError):
        with client.download_all_zip(uuid) as (stream, length):
            assert length == 40_000_002
            assert stream.read(65536)[:2] == b"PK"
            node.go_offline()
            while stream.read(1 << 20):
                pass
    assert stream.bytes_read < length


# -- the fake itself: protocol details the client does not exercise -----------------------------

def test_fake_protocol_details(node):
    import requests

    url = node.url
    page = requests.get(f"{url}/nope", timeout=5)
    assert page.status_code == 404 and "Cannot GET /nope" in page.text
    assert requests.get(f"{url}/task/abc/download", timeout=5).status_code == 404

    images = [("images", (f"i{i}.jpg", fake_image(i, 100), "image/jpeg")) for i in range(3)]
    one_shot = requests.post(f"{url}/task/new", files=images + [("name", (None, "oneshot"))],
                             timeout=5).json()
    uuid = one_shot["uuid"]
    assert requests.get(f"{url}/task/list", timeout=5).json() == [{"uuid": uuid}]
    assert requests.post(f"{url}/task/new", files=[("name", (None, "x"))], timeout=5).json() == \
        {"error": "Need at least 1 file or a zip file url."}
    node.max_images = 2
    assert requests.post(f"{url}/task/new", files=images, timeout=5).json() == \
        {"error": "3 images uploaded, but this node can only process up to 2."}
    assert node.task_creations == 1

    init = requests.post(f"{url}/task/new/init", files=[("name", (None, ""))], timeout=5).json()
    assert requests.post(f"{url}/task/new/upload/{init['uuid']}", files=[("x", (None, "1"))],
                         timeout=5).json() == {"error": "Need at least 1 file.", "noRetry": True}
    assert node.tasks[init["uuid"]].name.startswith("Task of ")
    assert requests.post(f"{url}/task/new/init", headers={"set-uuid": "abc"},
                         timeout=5).json() == {"error": "Invalid set-uuid: abc"}
    chosen = "6f1c7a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert requests.post(f"{url}/task/new/init", headers={"set-uuid": chosen},
                         timeout=5).json() == {"uuid": chosen}
    v7 = "0190f1c7-a2e3-7b4d-8e5f-8a9b0c1d2e3f"  # NodeODM takes UUID versions 1 to 5 only
    assert requests.post(f"{url}/task/new/init", headers={"set-uuid": v7},
                         timeout=5).json() == {"error": f"Invalid set-uuid: {v7}"}
    # Seen on a real NodeODM: a commit with nothing uploaded drops the upload session.
    assert requests.post(f"{url}/task/new/commit/{chosen}", timeout=5).json() == \
        {"error": "Need at least 1 file."}
    assert requests.post(f"{url}/task/new/commit/{chosen}", timeout=5).json() == \
        {"error": "Invalid uuid (not found)"}
    # Options as a real NodeODM filters them: booleans from strings only, the first of a name
    # given twice, the node's /options order, and JSON that is not a list counts as none.
    bad_bool = json.dumps([{"name": "dsm", "value": 1}])
    assert requests.post(f"{url}/task/new/init", files=[("options", (None, bad_bool))], timeout=5).json() == \
        {"error": '[{"name":"dsm","error":"Cannot convert 1 to boolean"}]'}
    twice = json.dumps([{"name": "crop", "value": 1}, {"name": "dsm", "value": "true"}, {"name": "crop", "value": 2}])
    kept = requests.post(f"{url}/task/new/init", files=[("options", (None, twice))], timeout=5).json()["uuid"]
    assert node.tasks[kept].options[:2] == [{"name": "dsm", "value": True}, {"name": "crop", "value": 1}]
    not_a_list = requests.post(f"{url}/task/new/init", files=[("options", (None, '{"dsm": true}'))],
                               timeout=5).json()["uuid"]
    assert [o["name"] for o in node.tasks[not_a_list].options] == ["pc-ept", "cog", "gltf"]
    # A restart checks its options before it looks the task up.
    assert requests.post(f"{url}/task/restart", data={"uuid": chosen, "options": bad_bool}, timeout=5).json() == \
        {"error": '[{"name":"dsm","error":"Cannot convert 1 to boolean"}]'}

    node.processing_seconds = 0
    assert requests.get(f"{url}/task/{uuid}/info", timeout=5).json()["status"] == {"code": 40}
    assert requests.get(f"{url}/task/{uuid}/output", params={"line": -3}, timeout=5).json() == \
        [f"[INFO] step {k} of 20" for k in (18, 19, 20)]
    assert requests.get(f"{url}/task/{uuid}/download/orthophoto.tif", timeout=5).json() == \
        {"error": "Invalid asset"}
    zipped = requests.get(f"{url}/task/{uuid}/download/all.zip", timeout=5)
    assert zipped.headers["Content-Type"] == "application/zip"
    assert zipped.headers["Content-Disposition"] == "attachment; filename=all.zip"

    assert requests.post(f"{url}/task/cancel", files=[("uuid", (None, uuid))],
                         timeout=5).json() == {"error": "uuid param missing."}
    assert requests.post(f"{url}/task/cancel", json={"uuid": uuid}, timeout=5).json() == \
        {"success": True}
    assert requests.get(f"{url}/task/{uuid}/info", timeout=5).json()["status"] == {"code": 50}
    assert requests.post(f"{url}/task/restart", json={"uuid": uuid, "options": [
        {"name": "dsm", "value": "maybe"}]}, timeout=5).json() == \
        {"error": '[{"name":"dsm","error":"Cannot convert maybe to boolean"}]'}

    node.token = TOKEN
    assert requests.get(f"{url}/task/list", params={"token": "no"}, timeout=5).json() == \
        {"error": AUTH_ERROR}
    assert requests.get(f"{url}/task/list", params={"token": TOKEN}, timeout=5).json() == \
        [{"uuid": uuid}]
    assert requests.post(f"{url}/task/remove", data={"uuid": uuid, "token": TOKEN},
                         timeout=5).json() == {"error": AUTH_ERROR}  # token only in the query
