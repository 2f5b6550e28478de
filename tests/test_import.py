"""Task import (WebODM's `test_api_task_import.py` and `test_api_task_external_import.py`), through
HTTP: an all.zip made by the fake node imported by file, by Dropzone chunks, by presigned PUT and by
URL gives the same assets and fields as the processed original; a WebODM backup zip restores its
task; url imports refuse private addresses when ALOFT_IMPORT_ALLOW_PRIVATE is off; a redelivered
import message imports once; the external three-step import."""
from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import aws, config, imports, queue
from chalicelib.store import tasks as task_store
from tests import rasters
from tests.conftest import register_node
from tests.helpers import image_files, new_project, s3_bytes, s3_keys
from tests.sample_data import pseudo_random_bytes
from tests.test_poller import finished, poll_until
from tests.test_rasters_completion import is_cog_in_s3

RASTERS = ("odm_orthophoto/odm_orthophoto.tif", "odm_dem/dsm.tif", "odm_dem/dtm.tif")
FIELDS = ("available_assets", "extent", "epsg", "wkt", "srs", "orthophoto_bands", "statistics", "status",
          "running_progress")


def node_zip(extra: dict | None = None) -> bytes:
    """The fake node's all.zip: real rasters, WebODM's images.json with one image (as in its test)."""
    source = zipfile.ZipFile(io.BytesIO(rasters.raster_zip()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for info in source.infolist():
            if info.filename != "images.json":
                zf.writestr(info, source.read(info))
        zf.writestr("images.json", json.dumps([{"filename": "img0.jpg"}]))
        for name, content in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return out.getvalue()


def base(project) -> str:
    return f"/api/projects/{project['id']}/tasks/"


def get_task(api, user, project, task) -> dict:
    return api.get(f"{base(project)}{task['id']}/", token=user["token"]).json


def run(api, user, project, task) -> dict:
    return poll_until(api, user, project, task, finished)


def asset_keys(task_id: str) -> list[str]:
    prefix = f"tasks/{task_id}/assets/"
    return [k[len(prefix):] for k in s3_keys(prefix)]


@pytest.fixture
def project(api, admin, alice, fake_node):
    register_node(api, admin, fake_node)
    return new_project(api, alice)


@pytest.fixture
def original(api, alice, project, fake_node):
    """A task processed by the fake node, and its all.zip as the download gives it."""
    fake_node.all_zip = node_zip()
    task = api.post(base(project), token=alice["token"], files=image_files(2)).json
    done = run(api, alice, project, task)
    assert done["status"] == 40
    download = api.get(f"{base(project)}{done['id']}/download/all.zip", token=alice["token"])
    assert download.status == 302  # WebODM: 200 with the stream; here a presigned S3 URL
    return done, s3_bytes(f"tasks/{done['id']}/all.zip")


def assert_same_result(original: dict, imported: dict) -> None:
    for field in FIELDS:
        assert imported[field] == original[field], field
    assert imported["status"] == 40 and imported["size"] > 0
    assert imported["processing_node"] is None and imported["auto_processing_node"] is False
    assert imported["pending_action"] is None
    assert asset_keys(imported["id"]) == asset_keys(original["id"])
    for key in asset_keys(original["id"]):
        if key not in RASTERS:
            assert s3_bytes(f"tasks/{imported['id']}/assets/{key}") == \
                s3_bytes(f"tasks/{original['id']}/assets/{key}"), key
    for member in RASTERS:  # WebODM's test: the imported TIFFs are valid COGs
        assert is_cog_in_s3(imported["id"], member), member
    assert s3_keys(f"tasks/{imported['id']}/zips/") == [
        k.replace(original["id"], imported["id"]) for k in s3_keys(f"tasks/{original['id']}/zips/")]


class Serve:
    """A small HTTP server on 127.0.0.1 serving fixed bodies, counting requests per path."""

    def __init__(self, routes: dict[str, bytes]):
        self.routes = routes
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                body = outer.routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    made = []

    def start(routes):
        server = Serve(routes)
        made.append(server)
        return server

    yield start
    for server in made:
        server.close()


# ------------------------------------------------------------------ permissions and validation

def test_import_needs_change_rights_on_the_project(api, alice, bob, project):
    zip_file = [("file", ("all.zip", node_zip()))]
    url = base(project) + "import"
    assert api.post(url, token=bob["token"], files=zip_file).status == 404
    assert api.post(url, files=zip_file).status == 404  # anonymous: 404 as well, never 403
    assert api.post(url, token=bob["token"], data={"url": "http://example.com/all.zip"}).status == 404
    for suffix in ("/presign", "/external/init", "/external/upload", "/external/commit"):
        assert api.post(url + suffix, token=bob["token"], json={"size": 10}).status == 404, suffix
        assert api.post(url + suffix, json={"size": 10}).status == 404, suffix
    assert api.post("/api/projects/999999/tasks/import", token=alice["token"], files=zip_file).status == 404
    assert api.post(url, token=alice["token"], files=zip_file).status == 201
    assert api.post(url + "/", token=alice["token"], files=zip_file).status == 201  # with a slash too
    edit = f"/api/projects/{project['id']}/edit/"
    share = {"permissions": [{"username": "bob", "permissions": ["view"]}]}
    assert api.post(edit, token=alice["token"], json=share).status == 200
    assert api.post(url, token=bob["token"], files=zip_file).status == 404  # view only: WebODM's 404
    share["permissions"][0]["permissions"] = ["view", "change"]
    assert api.post(edit, token=alice["token"], json=share).status == 200
    assert api.post(url, token=bob["token"], files=zip_file).status == 201
    assert api.post(url + "/external/init", token=bob["token"]).status == 200


def test_webodm_validation_messages(api, alice, project):
    url = base(project) + "import"
    token = alice["token"]
    assert api.post(url, token=token).json == [imports.NEED_ONE_FILE]
    two = [("file", ("a.zip", b"PK")), ("other", ("b.zip", b"PK"))]
    reply = api.post(url, token=token, files=two)
    assert reply.status == 400 and reply.json == ["Cannot create task, you need to upload 1 file"]
    reply = api.post(url, token=token, data={"url": "http://example.com/all.zip"},
                     files=[("file", ("a.zip", b"PK"))])
    assert reply.status == 400 and reply.json == ["Cannot create task, either specify a URL or upload 1 file."]
    reply = api.post(url, token=token, data={"url": "javascript:void(0)"})
    assert reply.status == 400 and reply.json == ["Invalid URL. Did you mean http://javascript:void(0) ?"]
    reply = api.post(url, token=token, json={"url": "ftp://example.com/all.zip"})
    assert reply.status == 400 and reply.json == ["Invalid URL. Did you mean http://ftp://example.com/all.zip ?"]
    assert api.post(url, token=token, json={"url": 5}).json == {"url": ["Not a valid string."]}
    assert api.post(url, token=token, data={"name": "x" * 256}, files=[("f", ("a.zip", b"PK"))]).status == 400
    assert task_store.list_for_project(project["id"]) == []  # nothing was created by a refusal


# ------------------------------------------------------------------ the four ways in

def test_file_import_gives_the_processed_result(api, alice, project, original):
    done, zip_bytes = original
    reply = api.post(base(project) + "import", token=alice["token"], files=[("file", ("all.zip", zip_bytes))])
    assert reply.status == 201
    created = reply.json
    assert created["import_url"] == "file://all.zip" and created["name"] == "Imported Task"
    assert created["status"] == 20 and created["pending_action"] == 5
    assert created["auto_processing_node"] is False and created["processing_node"] is None
    imported = run(api, alice, project, created)
    assert imported["import_url"] == "file://all.zip" and imported["images_count"] == 1
    assert_same_result(done, imported)
    console = api.get(f"{base(project)}{imported['id']}/output/", token=alice["token"]).json
    assert console == "Importing assets...\nDone!"
    reply = api.get(f"{base(project)}{imported['id']}/download/orthophoto.tif", token=alice["token"])
    assert reply.status == 302 and f"tasks/{imported['id']}/assets/odm_orthophoto/" in reply.headers["Location"]
    assert api.get(f"{base(project)}{imported['id']}/orthophoto/tiles.json", token=alice["token"]).status == 200


def test_chunked_import(api, alice, project, original):
    done, zip_bytes = original
    half = len(zip_bytes) // 2
    url = base(project) + "import"
    first = api.post(url, token=alice["token"], files=[("file", ("blob", zip_bytes[:half]))],
                     data={"dzuuid": "abc-test", "dzchunkindex": 0, "dztotalchunkcount": 2,
                           "dzchunkbyteoffset": 0, "name": "chunked"})
    assert first.status == 200 and first.json == {"uploaded": True}
    assert task_store.list_for_project(project["id"]) == [task_store.get(project["id"], done["id"])]
    last_fields = {"dzuuid": "abc-test", "dzchunkindex": 1, "dztotalchunkcount": 2, "dzchunkbyteoffset": half,
                   "name": "chunked"}
    last = api.post(url, token=alice["token"], files=[("file", ("blob", zip_bytes[half:]))], data=last_fields)
    assert last.status == 201 and last.json["name"] == "chunked" and last.json["import_url"] == "file://all.zip"
    again = api.post(url, token=alice["token"], files=[("file", ("blob", zip_bytes[half:]))], data=last_fields)
    assert again.status == 201 and again.json["id"] == last.json["id"]  # a retried last chunk: the same task
    imported = run(api, alice, project, last.json)
    assert imported["images_count"] == 1
    assert_same_result(done, imported)
    assert s3_keys(imports.chunks_prefix(project["id"], "abc-test")) == []  # chunks joined, then deleted


def test_last_chunk_before_the_others_is_refused(api, alice, project):
    reply = api.post(base(project) + "import", token=alice["token"], files=[("file", ("blob", b"PK-end"))],
                     data={"dzuuid": "early", "dzchunkindex": 2, "dztotalchunkcount": 3, "dzchunkbyteoffset": 100})
    assert reply.status == 400 and "missing" in reply.json[0]
    assert len(task_store.list_for_project(project["id"])) == 0


def test_presigned_import_takes_a_zip_larger_than_an_api_request(api, alice, project, original):
    import requests

    done, _ = original
    big = node_zip({"odm_report/big.bin": pseudo_random_bytes("big", 11 * 1024 * 1024)})
    assert len(big) > 10_485_760
    url = base(project) + "import"
    too_big = api.post(url, token=alice["token"], files=[("file", ("all.zip", big))])
    assert too_big.status == 413  # API Gateway's quota: the route can never take it
    assert api.post(url + "/presign", token=alice["token"], json={"size": 0}).status == 400
    assert api.post(url + "/presign", token=alice["token"], json={"size": 6 * 1024**3}).status == 400
    presigned = api.post(url + "/presign", token=alice["token"], json={"size": len(big)})
    assert presigned.status == 200
    answer = presigned.json
    assert answer["method"] == "PUT" and answer["headers"] == {"Content-Length": str(len(big))}
    early = api.post(url, token=alice["token"], data={"upload": answer["upload"]})
    assert early.status == 400 and "upload" in early.json  # nothing PUT yet
    put = requests.put(answer["url"], data=big, headers=answer["headers"], timeout=60)
    assert put.status_code == 200
    created = api.post(url, token=alice["token"], data={"upload": answer["upload"], "name": "big one"})
    assert created.status == 201 and created.json["name"] == "big one"
    again = api.post(url, token=alice["token"], json={"upload": answer["upload"]})
    assert again.status == 201 and again.json["id"] == created.json["id"]  # one upload, one task
    assert api.post(url, token=alice["token"], data={"upload": "nope"}).json == {"upload": ["Invalid upload id"]}
    both = api.post(url, token=alice["token"], data={"upload": answer["upload"], "url": "http://a.example/x"})
    assert both.json == ["Cannot create task, either specify a URL or upload 1 file."]
    imported = run(api, alice, project, created.json)
    assert imported["images_count"] == 1
    assert s3_bytes(f"tasks/{imported['id']}/all.zip") == big
    assert s3_bytes(f"tasks/{imported['id']}/assets/odm_report/big.bin") == \
        pseudo_random_bytes("big", 11 * 1024 * 1024)
    assert s3_keys(imports.presigned_key(project["id"], answer["upload"])) == []  # the staging copy is gone
    for field in ("extent", "epsg", "srs", "orthophoto_bands"):
        assert imported[field] == done[field]


def test_url_import_from_the_node(api, alice, project, original, fake_node):
    done, _ = original
    url = f"http://{fake_node.hostname}:{fake_node.port}/task/{done['uuid']}/download/all.zip"
    created = api.post(base(project) + "import", token=alice["token"], data={"url": url})
    assert created.status == 201 and created.json["import_url"] == url
    imported = run(api, alice, project, created.json)
    assert imported["import_url"] == url and imported["images_count"] == 1
    assert_same_result(done, imported)


def test_url_import_of_something_else_than_a_zip_fails(api, alice, project, serve):
    server = serve({"/orthophoto.tif": rasters.orthophoto_bytes()})
    created = api.post(base(project) + "import", token=alice["token"], data={"url": server.url("/orthophoto.tif")})
    assert created.status == 201
    failed = run(api, alice, project, created.json)
    assert failed["status"] == 30 and "Invalid" in failed["last_error"]
    assert failed["pending_action"] is None


def test_url_import_of_a_missing_file_fails_with_the_status(api, alice, project, serve):
    server = serve({})
    created = api.post(base(project) + "import", token=alice["token"], data={"url": server.url("/none.zip")})
    failed = run(api, alice, project, created.json)
    assert failed["status"] == 30 and "404" in failed["last_error"]


def test_url_import_of_a_crs_without_epsg_code_gets_its_wkt(api, alice, project, serve):
    """WebODM's `test_task_wkt.py`: a dataset in a CRS with no EPSG code."""
    feet = rasters.raster_zip(orthophoto=rasters.orthophoto_bytes(crs=rasters.US_FEET_WKT),
                              dsm=rasters.dem_bytes(crs=rasters.US_FEET_WKT),
                              dtm=rasters.dem_bytes(crs=rasters.US_FEET_WKT))
    server = serve({"/feet.zip": feet})
    created = api.post(base(project) + "import", token=alice["token"], data={"url": server.url("/feet.zip")}).json
    done = run(api, alice, project, created)
    assert done["status"] == 40 and done["epsg"] is None
    assert done["wkt"] and "Transverse_Mercator" in done["wkt"]
    assert done["srs"]["units"] != "m"
    reply = api.get(f"{base(project)}{done['id']}/orthophoto/tiles.json", token=alice["token"])
    assert reply.status == 200 and len(reply.json["bounds"]) == 4
    assert api.get(f"{base(project)}{done['id']}/download/orthophoto.tif", token=alice["token"]).status == 302


# ------------------------------------------------------------------ SSRF

@pytest.fixture
def private_refused(settings_env):
    settings_env(ALOFT_IMPORT_ALLOW_PRIVATE="0")


def test_url_imports_refuse_private_addresses(api, alice, project, serve, private_refused):
    server = serve({"/all.zip": node_zip()})
    targets = [server.url("/all.zip"), "http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.7/all.zip",
               server.url("/all.zip", host="localhost"), "http://[::1]/all.zip", "http://[::ffff:127.0.0.1]/x"]
    created = [api.post(base(project) + "import", token=alice["token"], data={"url": u}).json for u in targets]
    for target, task in zip(targets, created):
        failed = run(api, alice, project, task)
        assert failed["status"] == 30, target
        assert "is not a public address" in failed["last_error"] and target in failed["last_error"], failed
        assert failed["available_assets"] == []
    assert server.hits == {}  # not one request reached the loopback server


def test_a_stage_other_than_local_refuses_private_by_default(monkeypatch, settings_env):
    monkeypatch.delenv("ALOFT_IMPORT_ALLOW_PRIVATE", raising=False)
    settings_env(ALOFT_STAGE="prod")
    assert config.settings().import_allow_private is False
    settings_env(ALOFT_IMPORT_ALLOW_PRIVATE="1")
    assert config.settings().import_allow_private is True
    settings_env(ALOFT_IMPORT_ALLOW_PRIVATE="maybe")
    with pytest.raises(config.ConfigError):
        config.settings()
    settings_env.undo()
    assert config.settings().import_allow_private is True  # the local stage (tests)


# ------------------------------------------------------------------ redelivery

def test_a_redelivered_import_message_imports_once(api, alice, project, serve):
    server = serve({"/all.zip": node_zip()})
    created = api.post(base(project) + "import", token=alice["token"], data={"url": server.url("/all.zip")}).json
    stored = task_store.get(project["id"], created["id"])
    queue.send(stored)  # the same message twice (SQS delivers at least once)
    api.work()
    first = get_task(api, alice, project, created)
    assert first["status"] == 40 and server.hits == {"/all.zip": 1}
    keys = s3_keys(f"tasks/{created['id']}/")
    api.work()
    assert server.hits == {"/all.zip": 1} and s3_keys(f"tasks/{created['id']}/") == keys

    # A worker killed after the download, before its final write: the task is as it was then
    # (pending IMPORT, all.zip stored); the step runs again from the stored zip.
    task_store.mutate(project["id"], created["id"], lambda t: {
        "status": 20, "pending_action": 5, "available_assets": [], **queue.wake_fields()})
    queue.send(task_store.get(project["id"], created["id"]))
    again = run(api, alice, project, created)
    assert again["status"] == 40 and server.hits == {"/all.zip": 1}
    assert s3_keys(f"tasks/{created['id']}/") == keys
    assert again["available_assets"] == first["available_assets"]
    console = api.get(f"{base(project)}{created['id']}/output/", token=alice["token"]).json
    assert console == "Importing assets...\nDone!"  # replaced, not appended twice


# ------------------------------------------------------------------ backup

def backup_zip(task: dict, all_zip: bytes, fields: dict, console: str | None = None) -> bytes:
    """WebODM's backup layout (and the `backup` branch's writer): input images at the root,
    assets/<all.zip's layout>, data/backup.json, data/console_output.txt."""
    source = zipfile.ZipFile(io.BytesIO(all_zip))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in s3_keys(f"tasks/{task['id']}/images/"):
            zf.writestr(key.rsplit("/", 1)[1], s3_bytes(key))
        for info in source.infolist():
            zf.writestr("assets/" + info.filename, source.read(info))
        zf.writestr("data/backup.json", json.dumps(fields))
        if console is not None:
            zf.writestr("data/console_output.txt", console)
    return out.getvalue()


CROP = {"type": "Polygon", "coordinates": [[[-91.995, 46.842], [-91.994, 46.842], [-91.994, 46.843],
                                            [-91.995, 46.842]]]}


def test_backup_zip_restores_the_task(api, alice, project, original):
    done, zip_bytes = original
    # WebODM's write_backup_file fields: created_at in epoch seconds, tags as one text.
    fields = {"name": "Backup test", "potree_scene": {"saved": True}, "public": True,
              "options": [{"name": "dsm", "value": True}], "tags": "a b", "resize_to": 2048,
              "processing_time": 12345, "created_at": 1700000000.5, "crop": CROP}
    console = "line one\nline two\n\nlast line\n"
    backup = backup_zip(done, zip_bytes, fields, console)
    created = api.post(base(project) + "import", token=alice["token"], files=[("file", ("backup.zip", backup))])
    assert created.status == 201
    imported = run(api, alice, project, created.json)
    assert imported["import_url"] == "" and imported["images_count"] == 1
    assert imported["processing_node"] is None and imported["auto_processing_node"] is False
    assert imported["name"] == "Backup test" and imported["potree_scene"] == {"saved": True}
    assert imported["public"] is True and imported["tags"] == ["a", "b"]
    assert imported["options"] == [{"name": "dsm", "value": True}] and imported["resize_to"] == 2048
    assert imported["processing_time"] == 12345 and imported["crop"] == CROP
    assert imported["created_at"] == "2023-11-14T22:13:20.500000Z"
    assert_same_result(done, imported)
    images = [k.rsplit("/", 1)[1] for k in s3_keys(f"tasks/{imported['id']}/images/")]
    assert images == ["img0.jpg", "img1.jpg"]
    for name in images:
        assert s3_bytes(f"tasks/{imported['id']}/images/{name}") == s3_bytes(f"tasks/{done['id']}/images/{name}")
    assert s3_keys(f"tasks/{imported['id']}/import/") == []  # the backup copy is let go
    lines = api.get(f"{base(project)}{imported['id']}/output/", token=alice["token"], params={"f": "json"}).json
    assert lines["lines"] == ["line one", "line two", "", "last line"]
    # Public: readable without login, as the original's backup said.
    assert api.get(f"{base(project)}{imported['id']}/").status == 200


def test_backup_with_invalid_fields_keeps_the_valid_ones(api, alice, project, original):
    done, zip_bytes = original
    backup = backup_zip(done, zip_bytes, {"name": "ok", "options": "not a list", "public": "maybe",
                                          "potree_scene": [1]})
    created = api.post(base(project) + "import", token=alice["token"], files=[("file", ("b.zip", backup))]).json
    imported = run(api, alice, project, created)
    assert imported["status"] == 40 and imported["name"] == "ok"
    assert imported["options"] == [] and imported["public"] is False and imported["potree_scene"] == {}


# ------------------------------------------------------------------ external import

def external(project, step: str) -> str:
    return f"{base(project)}import/external/{step}"


def dsm_three_bands() -> bytes:
    import numpy as np
    from rasterio.transform import from_origin

    data = np.ones((3, 20, 20), dtype="float32")
    return rasters._write({"driver": "GTiff", "width": 20, "height": 20, "count": 3, "dtype": "float32",
                           "crs": "EPSG:32615", "transform": from_origin(500000, 5000000, 1, 1)}, data, None, None)


def no_crs_tiff() -> bytes:
    import numpy as np

    return rasters._write({"driver": "GTiff", "width": 20, "height": 20, "count": 1, "dtype": "uint8"},
                          np.ones((1, 20, 20), dtype="uint8"), None, None)


def test_external_import_validation(api, alice, project):
    token = alice["token"]
    init = api.post(external(project, "init"), token=token)
    assert init.status == 200
    temp = init.json["uuid"]
    assert str(uuid.UUID(temp)) == temp
    upload = external(project, "upload")
    ortho = rasters.orthophoto_bytes()
    reply = api.post(upload, token=token, data={"uuid": temp}, files=[("file", ("o.tif", ortho))])
    assert reply.status == 400 and reply.json == ["Invalid file type"]
    for bad in ("invalid", str(uuid.uuid4()), ""):
        reply = api.post(upload, token=token, data={"uuid": bad}, files=[("orthophoto", ("o.tif", ortho))])
        assert reply.status == 400 and reply.json == ["Invalid uuid"], bad
        reply = api.post(external(project, "commit"), token=token, data={"uuid": bad})
        assert reply.status == 400 and reply.json == ["Invalid uuid"], bad
    reply = api.post(upload, token=token, data={"uuid": temp}, files=[("orthophoto", ("o.laz", ortho))])
    assert reply.status == 400 and reply.json == ["Invalid file type (extension mismatch)"]
    # A swapped field name with a matching extension uploads, and fails at commit.
    reply = api.post(upload, token=token, data={"uuid": temp},
                     files=[("texturedmodel", ("model.glb", b"LASF" + bytes(300)))])
    assert reply.status == 200 and reply.json == {"uploaded": True, "done": True, "asset": "textured_model.glb"}
    reply = api.post(external(project, "commit"), token=token, data={"uuid": temp})
    assert reply.status == 400 and "textured_model.glb" in reply.json[0]
    # The temporary folder is gone after a failed commit too: the uuid is spent.
    assert s3_keys(imports.external_prefix(project["id"], temp)) == []
    reply = api.post(external(project, "commit"), token=token, data={"uuid": temp})
    assert reply.json == ["Invalid uuid"]
    # Commit with nothing uploaded.
    empty = api.post(external(project, "init"), token=token).json["uuid"]
    reply = api.post(external(project, "commit"), token=token, data={"uuid": empty})
    assert reply.status == 400
    # GeoTIFF checks: a CRS; DSM/DTM at most 2 bands; point clouds LASF.
    for field, name, content in (("orthophoto", "o.tiff", no_crs_tiff()), ("dsm", "d.tif", dsm_three_bands()),
                                 ("pointcloud", "p.laz", b"glTF" + bytes(100)), ("dtm", "t.tif", b"II*\x00junk")):
        temp = api.post(external(project, "init"), token=token).json["uuid"]
        reply = api.post(upload, token=token, data={"uuid": temp}, files=[(field, (name, content))])
        assert reply.status == 200, (field, reply.json)
        reply = api.post(external(project, "commit"), token=token, data={"uuid": temp})
        assert reply.status == 400, field
    assert len(task_store.list_for_project(project["id"])) == 0


def test_external_import_completes_with_its_assets(api, alice, project):
    token = alice["token"]
    temp = api.post(external(project, "init"), token=token).json["uuid"]
    upload = external(project, "upload")
    ortho = rasters.orthophoto_bytes()
    reply = api.post(upload, token=token, data={"uuid": temp}, files=[("orthophoto", ("ortho.TIFF", ortho))])
    assert reply.json == {"uploaded": True, "done": True, "asset": "orthophoto.tif"}
    dsm = rasters.dem_bytes()
    third = len(dsm) // 3
    for index, (start, end) in enumerate(((0, third), (third, 2 * third), (2 * third, len(dsm)))):
        reply = api.post(upload, token=token, files=[("dsm", ("dsm.tif", dsm[start:end]))],
                         data={"uuid": temp, "dzuuid": "dsm-1", "dzchunkindex": index, "dztotalchunkcount": 3,
                               "dzchunkbyteoffset": start})
        assert reply.status == 200
        assert reply.json["done"] is (index == 2)
    assert reply.json == {"uploaded": True, "done": True, "asset": "dsm.tif"}
    glb = b"glTF" + pseudo_random_bytes("glb", 3000)
    assert api.post(upload, token=token, data={"uuid": temp},
                    files=[("texturedmodel", ("m.glb", glb))]).json["asset"] == "textured_model.glb"
    committed = api.post(external(project, "commit"), token=token, data={"uuid": temp, "name": "ext"})
    assert committed.status == 201
    task = committed.json
    assert task["import_url"] == "file://external" and task["status"] == 20 and task["pending_action"] == 5
    assert task["name"] == "ext"
    assert api.post(external(project, "commit"), token=token, data={"uuid": temp}).json == ["Invalid uuid"]
    done = run(api, alice, project, task)
    assert done["status"] == 40 and done["pending_action"] is None and done["import_url"] == "file://external"
    assert done["available_assets"] == ["all.zip", "orthophoto.tif", "textured_model.glb", "dsm.tif"]
    assert done["epsg"] == rasters.EPSG and len(done["extent"]) == 4
    assert [b["name"] for b in done["orthophoto_bands"]] == ["red", "green", "blue", "alpha"]
    for member in ("odm_orthophoto/odm_orthophoto.tif", "odm_dem/dsm.tif"):
        assert is_cog_in_s3(done["id"], member)
    assert s3_bytes(f"tasks/{done['id']}/assets/odm_texturing/odm_textured_model_geo.glb") == glb
    assert api.get(f"{base(project)}{done['id']}/dsm/tiles.json", token=token).status == 200
    assert s3_keys(imports.external_prefix(project["id"], temp)) == []  # the temporary folder is gone
    assert s3_keys(f"chunks/external-{project['id']}/") == []


# ------------------------------------------------------------------ through the local gateway

def test_through_the_gateway_presigned_import_serves_tiles_and_a_thumbnail(live, api, alice):
    """API Gateway's and Lambda's limits for real: a zip over one event is refused by the route and
    gets in by presigned PUT; the imported task's map routes read its COGs."""
    import requests

    project = new_project(api, alice)
    headers = {"Authorization": f"JWT {alice['token']}"}
    url = f"{live}{base(project)}import"
    zip_bytes = node_zip({"odm_report/pad.bin": pseudo_random_bytes("pad", 6 * 1024 * 1024)})
    refused = requests.post(url, headers=headers, files=[("file", ("all.zip", zip_bytes))], timeout=60)
    assert refused.status_code == 413 and refused.json() == {"message": "Request Too Long"}
    presigned = requests.post(url + "/presign", headers=headers, json={"size": len(zip_bytes)}, timeout=30).json()
    assert requests.put(presigned["url"], data=zip_bytes, headers=presigned["headers"], timeout=60).ok
    created = requests.post(url + "/", headers=headers, data={"upload": presigned["upload"]}, timeout=30)
    assert created.status_code == 201, created.text
    done = run(api, alice, project, created.json())
    assert done["status"] == 40 and done["images_count"] == 1
    task_url = f"{live}{base(project)}{done['id']}/"
    thumbnail = requests.get(task_url + "thumbnail", params={"size": 64}, headers=headers, timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/png"
    tiles = requests.get(task_url + "orthophoto/tiles.json", headers=headers, timeout=30).json()
    west, south, east, north = tiles["bounds"]
    import math

    zoom = tiles["maxzoom"]
    lon, lat = (west + east) / 2, (south + north) / 2
    x = int((lon + 180) / 360 * 2**zoom)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**zoom)
    tile = requests.get(task_url + f"orthophoto/tiles/{zoom}/{x}/{y}.png", headers=headers, timeout=30)
    assert tile.status_code == 200 and tile.headers["Content-Type"] == "image/png"
    raw = requests.get(task_url + "assets/odm_orthophoto/odm_orthophoto.tif", headers=headers, timeout=30)
    assert raw.status_code == 200 and raw.content[:2] == b"II"  # followed to S3: the COG
