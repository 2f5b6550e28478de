"""A task's backup (WebODM's `TaskBackup.get`, `Task.get_task_backup_stream`, `write_backup_file`;
the backup lines of `test_api_task_import.py`): the zip's members and their bytes, `data/backup.json`'s
fields, the 302 and its download, one build per version of the task, the worker's job for a large
one (202, `workers/check`, `workers/get`), who may ask, and removal with the task."""
from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from chalicelib import aws, config
from chalicelib.store import tasks as task_store
from tests.helpers import complete_in_s3, new_project, s3_bytes, s3_keys
from tests.sample_data import build_all_zip, sample_files
from tests.test_task_output import append as append_console

IMAGES = {"DJI_0001.JPG": b"\xff\xd8first image" * 300, "DJI_0002.JPG": b"\xff\xd8second" * 500,
          "gcp_list.txt": b"EPSG:4326\n1 2 3 a.jpg 10 20\n"}
CONSOLE = ["[INFO] running", "  indented line", "", "[INFO] done"]
CROP = {"type": "Polygon", "coordinates": [[[-91.99, 46.84], [-91.98, 46.84], [-91.98, 46.85], [-91.99, 46.84]]]}




def make_task(api, user, project, name="My Task", public=False) -> dict:
    files = [("images", (n, data)) for n, data in IMAGES.items()]
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"], files=files,
                     data={"partial": "true", "name": name, "tags": "alpha beta",
                           "options": json.dumps([{"name": "orthophoto-resolution", "value": 5}])})
    assert reply.status == 201, reply.json
    task = reply.json
    complete_in_s3(project["id"], task["id"], build_all_zip())
    task_store.mutate(project["id"], task["id"], lambda t: {
        "processing_time": 12345, "crop": CROP, "potree_scene": {"view": {"position": [1, 2, 3]}},
        "public": public, "resize_to": 2048})
    append_console(project["id"], task["id"], list(CONSOLE))
    return task_store.get(project["id"], task["id"])


def url(task: dict) -> str:
    return f"/api/projects/{task['project_id']}/tasks/{task['id']}/backup"


def redirected_key(reply) -> tuple[str, dict]:
    assert reply.status == 302, (reply.status, reply.body[:300])
    location = urlsplit(reply.headers["Location"])
    bucket = config.settings().bucket
    path = unquote(location.path)
    key = path.split(f"/{bucket}/", 1)[1] if f"/{bucket}/" in path else path.lstrip("/")
    return key, {k: v[0] for k, v in parse_qs(location.query).items()}


@pytest.fixture
def project(api, alice):
    return new_project(api, alice)


@pytest.fixture
def task(api, alice, project):
    return make_task(api, alice, project)


def test_backup_zip_holds_images_assets_and_the_fields(api, alice, task):
    reply = api.get(url(task), token=alice["token"])
    key, query = redirected_key(reply)
    assert key == f"tasks/{task['id']}/backup/v{task['version']}.zip"
    assert query["response-content-disposition"] == "attachment; filename=My-Task-backup.zip"
    assert query["response-content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(s3_bytes(key)))
    assert archive.testzip() is None
    names = archive.namelist()
    assets = {f"assets/{path}": data for path, data in sample_files().items()}
    assert sorted(names) == sorted([*IMAGES, *assets, "data/backup.json", "data/console_output.txt"])
    for name, data in {**IMAGES, **assets}.items():
        assert archive.read(name) == data, name
    for name in assets:  # byte-equal to the task's objects
        assert archive.read(name) == s3_bytes(f"tasks/{task['id']}/{name}"), name
    for name, data in IMAGES.items():
        assert archive.read(name) == s3_bytes(f"tasks/{task['id']}/images/{name}")
    # already-compressed formats are stored, the rest deflated
    assert archive.getinfo("DJI_0001.JPG").compress_type == zipfile.ZIP_STORED
    assert archive.getinfo("gcp_list.txt").compress_type == zipfile.ZIP_DEFLATED
    fields = json.loads(archive.read("data/backup.json"))
    assert set(fields) == {"name", "processing_time", "options", "created_at", "public", "resize_to",
                           "potree_scene", "tags", "crop"}
    assert fields["name"] == "My Task" and fields["processing_time"] == 12345
    assert fields["options"] == [{"name": "orthophoto-resolution", "value": 5}]
    assert fields["public"] is False and fields["resize_to"] == 2048
    assert fields["potree_scene"] == {"view": {"position": [1, 2, 3]}}
    assert fields["tags"] == "alpha beta" and fields["crop"] == CROP
    from datetime import datetime, timezone

    created = datetime.fromisoformat(task["created_at"].replace("Z", "+00:00"))
    assert abs(fields["created_at"] - created.astimezone(timezone.utc).timestamp()) < 1e-3
    assert archive.read("data/console_output.txt").decode() == "\n".join(CONSOLE) + "\n"


def test_filename_parameter(api, alice, task):
    reply = api.get(url(task), token=alice["token"], params={"filename": "mine.zip"})
    assert redirected_key(reply)[1]["response-content-disposition"] == "attachment; filename=mine.zip"


def test_the_same_backup_is_built_once_per_version(api, alice, task):
    first, _ = redirected_key(api.get(url(task), token=alice["token"]))
    head = aws.s3().head_object(Bucket=config.settings().bucket, Key=first)
    again, _ = redirected_key(api.get(url(task), token=alice["token"]))
    assert again == first
    assert aws.s3().head_object(Bucket=config.settings().bucket, Key=first)["LastModified"] == head["LastModified"]
    # a change to the task makes a new backup, and the old one goes
    assert api.patch(url(task)[:-len("backup")], token=alice["token"], json={"name": "Renamed"}).status == 200
    newer, query = redirected_key(api.get(url(task), token=alice["token"]))
    assert newer != first
    assert s3_keys(f"tasks/{task['id']}/backup/") == [newer]
    assert query["response-content-disposition"] == "attachment; filename=Renamed-backup.zip"
    archive = zipfile.ZipFile(io.BytesIO(s3_bytes(newer)))
    assert json.loads(archive.read("data/backup.json"))["name"] == "Renamed"


def test_who_may_ask(api, alice, bob, project, task):
    assert api.get(url(task), token=bob["token"]).status == 404
    assert api.get(url(task)).status == 404
    other = new_project(api, bob)
    assert api.get(f"/api/projects/{other['id']}/tasks/{task['id']}/backup", token=bob["token"]).status == 404
    # view is enough (WebODM's TaskNestedView), and a public task needs no login
    share = api.post(f"/api/projects/{project['id']}/edit/", token=alice["token"],
                     json={"permissions": [{"username": "bob", "permissions": ["view"]}]})
    assert share.status == 200, share.json
    assert api.get(url(task), token=bob["token"]).status == 302
    public = make_task(api, alice, project, name="Open", public=True)
    assert api.get(url(public)).status == 302


def test_a_large_backup_is_a_worker_job(api, alice, task, monkeypatch):
    monkeypatch.setenv("ALOFT_BACKUP_INLINE_FILES", "3")  # the task holds more files than that
    monkeypatch.setenv("ALOFT_BACKUP_WAIT_SECONDS", "1")  # no worker runs here: wait briefly, not 20 s
    config.reset()
    reply = api.get(url(task), token=alice["token"])
    assert reply.status == 202, reply.json
    assert reply.json["filename"] == "My-Task-backup.zip"
    job_id = reply.json["celery_task_id"]
    assert api.get(f"/api/workers/check/{job_id}", token=alice["token"]).json == {"ready": False}
    assert api.get(f"/api/workers/get/{job_id}", token=alice["token"]).json == {"error": "Task not ready"}
    again = api.get(url(task), token=alice["token"])  # asked again while it is pending: the same job
    assert again.status == 202 and again.json["celery_task_id"] == job_id
    assert s3_keys(f"tasks/{task['id']}/backup/") == []
    while api.work():
        pass
    assert api.get(f"/api/workers/check/{job_id}", token=alice["token"]).json == {"ready": True}
    assert api.get(f"/api/workers/check/{job_id}").json == {"ready": False}  # not for whoever cannot read it
    key, _ = redirected_key(api.get(f"/api/workers/get/{job_id}", token=alice["token"]))
    assert redirected_key(api.get(url(task), token=alice["token"]))[0] == key
    archive = zipfile.ZipFile(io.BytesIO(s3_bytes(key)))
    for name, data in IMAGES.items():
        assert archive.read(name) == data
    assert "assets/odm_orthophoto/odm_orthophoto.tif" in archive.namelist()


def test_removing_the_task_removes_its_backup(api, alice, task):
    key, _ = redirected_key(api.get(url(task), token=alice["token"]))
    assert s3_keys(key) == [key]
    assert api.delete(url(task)[:-len("backup")], token=alice["token"]).status == 204
    assert s3_keys(f"tasks/{task['id']}/") == []


def test_backup_downloads_through_the_gateway(live, api, alice, project):
    task = make_task(api, alice, project)
    reply = requests.get(live + url(task), headers={"Authorization": f"JWT {alice['token']}"},
                         allow_redirects=False, timeout=60)
    assert reply.status_code == 302
    download = requests.get(reply.headers["Location"], timeout=60)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == "attachment; filename=My-Task-backup.zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    for name, data in IMAGES.items():
        assert archive.read(name) == data
    assert json.loads(archive.read("data/backup.json"))["name"] == "My Task"


def test_backup_then_import_into_another_project_gives_the_same_task(api, alice, task):
    """WebODM's round trip (`test_api_task_import.py`): this writer's zip, imported by the
    importer into another project, restores the task: fields, console, images and assets."""
    from tests.test_poller import finished, poll_until

    key, _ = redirected_key(api.get(url(task), token=alice["token"]))
    other = new_project(api, alice, "Elsewhere")
    created = api.post(f"/api/projects/{other['id']}/tasks/import", token=alice["token"],
                       files=[("file", ("My-Task-backup.zip", s3_bytes(key)))])
    assert created.status == 201, created.json
    restored = poll_until(api, alice, other, created.json, finished)
    assert restored["status"] == 40, restored
    original = api.get(url(task)[:-len("backup")], token=alice["token"]).json
    for field in ("name", "options", "public", "potree_scene", "tags", "processing_time", "crop"):
        assert restored[field] == original[field], field
    assert restored["import_url"] == "" and restored["processing_node"] is None
    assert restored["auto_processing_node"] is False and restored["images_count"] == len(IMAGES)
    assert sorted(restored["available_assets"]) == sorted(original["available_assets"])
    lines = api.get(f"/api/projects/{other['id']}/tasks/{restored['id']}/output/", token=alice["token"],
                    params={"f": "json"}).json
    assert lines["lines"][:len(CONSOLE)] == CONSOLE
    for name, data in IMAGES.items():
        reply = api.get(f"/api/projects/{other['id']}/tasks/{restored['id']}/images/download/{name}",
                        token=alice["token"])
        got, _ = redirected_key(reply) if reply.status == 302 else (None, None)
        assert (s3_bytes(got) if got else reply.body) == data, name
    for asset in original["available_assets"]:
        first = api.get(f"/api/projects/{task['project_id']}/tasks/{task['id']}/download/{asset}",
                        token=alice["token"])
        again = api.get(f"/api/projects/{other['id']}/tasks/{restored['id']}/download/{asset}",
                        token=alice["token"])
        assert again.status == first.status == 302, asset
        before, after = s3_bytes(redirected_key(first)[0]), s3_bytes(redirected_key(again)[0])
        if asset.endswith(".zip"):  # archives are rebuilt from assets/: the same members, new dates
            old_zip, new_zip = zipfile.ZipFile(io.BytesIO(before)), zipfile.ZipFile(io.BytesIO(after))
            assert sorted(new_zip.namelist()) == sorted(old_zip.namelist()), asset
            assert all(new_zip.read(n) == old_zip.read(n) for n in old_zip.namelist()), asset
        else:
            assert after == before, asset
