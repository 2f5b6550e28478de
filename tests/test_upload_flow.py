"""WebODM's partial-task upload flow through the real local gateway, as on AWS.

`POST .../upload/` is API Gateway's S3 integration: the upload authorizer (a Lambda
container) checks the caller, the body lands under `incoming/` unparsed, and
`commit/` (or the poller) ingests it. Every request here goes over HTTP.
"""
from __future__ import annotations

import pytest
import requests

from chalicelib.store import tasks as task_store
from tests.conftest import register_node
from tests.helpers import image_files, s3_bytes, s3_keys
from tests.sample_data import fake_image

SUCCESS = {"success": True}


@pytest.fixture
def flow(live, alice):
    """alice, a project, a partial task and URL helpers, all over the live gateway."""
    class Flow:
        headers = {"Authorization": f"JWT {alice['token']}"}
        url = live

        def __init__(self):
            reply = requests.post(f"{live}/api/projects/", headers=self.headers, json={"name": "uploads"})
            assert reply.status_code == 201, reply.text
            self.project = reply.json()
            self.tasks_url = f"{live}/api/projects/{self.project['id']}/tasks/"
            self.task = self.new_partial()

        def new_partial(self, **fields) -> dict:
            reply = requests.post(self.tasks_url, headers=self.headers, json={"partial": True, **fields})
            assert reply.status_code == 201, reply.text
            return reply.json()

        def task_url(self, suffix: str = "", task: dict | None = None) -> str:
            return f"{self.tasks_url}{(task or self.task)['id']}/{suffix}"

        def upload(self, files, data=None, task=None, headers=None) -> requests.Response:
            return requests.post(self.task_url("upload/", task), headers={**self.headers, **(headers or {})},
                                 files=files, data=data)

        def commit(self, task=None) -> requests.Response:
            return requests.post(self.task_url("commit/", task), headers=self.headers)

    return Flow()


def images(task_id: str) -> list[str]:
    prefix = f"tasks/{task_id}/images/"
    return [key[len(prefix):] for key in s3_keys(prefix)]


def test_upload_is_stored_unparsed_then_commit_ingests_it(flow):
    task_id = flow.task["id"]
    assert flow.commit().json() == ["You need to upload at least 1 file before commit"]
    first = flow.upload(image_files(1))
    assert first.status_code == 200 and first.json() == SUCCESS
    second = flow.upload(image_files(2, start=1))
    assert second.json() == SUCCESS
    assert images(task_id) == [] and len(s3_keys(f"incoming/{task_id}/")) == 2  # not parsed yet
    assert task_store.get(flow.project["id"], task_id).get("active") is None  # never polled while partial
    committed = flow.commit()
    assert committed.status_code == 200, committed.text
    task = committed.json()
    assert task["partial"] is False and task["images_count"] == 3 and task["size"] > 0
    assert images(task_id) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    for i in range(3):
        assert s3_bytes(f"tasks/{task_id}/images/img{i}.jpg") == fake_image(i, 2000)
    assert s3_keys(f"incoming/{task_id}/") == []
    assert task_store.get(flow.project["id"], task_id).get("ingest_pending") is None


def test_dropzone_chunks_are_assembled_in_offset_order(flow):
    content = fake_image(7, 300_000)
    third = len(content) // 3
    pieces = [(0, content[:third]), (third, content[third:2 * third]), (2 * third, content[2 * third:])]
    common = {"dzuuid": "3f2a-chunky", "dztotalchunkcount": "3"}
    # Dropzone may send chunks in parallel: they arrive in any order.
    for index in (1, 0, 2):
        offset, piece = pieces[index]
        name = "2.jpg" if index == 2 else "blob"
        reply = flow.upload([("file", (name, piece))],
                            data={**common, "dzchunkindex": str(index), "dzchunkbyteoffset": str(offset)})
        assert reply.json() == SUCCESS
    committed = flow.commit().json()
    assert committed["images_count"] == 1
    assert s3_bytes(f"tasks/{flow.task['id']}/images/2.jpg") == content
    leftovers = [k for k in s3_keys(f"chunks/{flow.task['id']}/") if not k.endswith("state.json")]
    assert leftovers == []  # the parts are gone once the file is whole


def test_bad_bodies_are_refused_at_ingest_and_commit_says_so(flow):
    """API Gateway already answered these; WebODM would have said 400. They are dropped
    (and logged) at ingest, and commit counts what really arrived."""
    assert flow.upload(None, data=None, headers={"Content-Type": "multipart/form-data; boundary=x"}).json() \
        == SUCCESS                                                       # an empty body
    assert flow.upload([("images", (None, "just a field"))]).json() == SUCCESS  # no file in it
    assert flow.upload(image_files(1), data={"dzuuid": "u1", "dzchunkindex": "zero",
                                             "dztotalchunkcount": "2"}).json() == SUCCESS
    assert flow.upload(image_files(1), data={"dzuuid": "../x", "dzchunkindex": "0",
                                             "dztotalchunkcount": "1"}).json() == SUCCESS
    reply = flow.commit()
    assert reply.status_code == 400 and reply.json() == ["You need to upload at least 1 file before commit"]
    assert s3_keys(f"incoming/{flow.task['id']}/") == [] and images(flow.task["id"]) == []


def test_file_names_are_made_safe_and_never_overwrite(flow):
    files = [("images", ("../../etc/passwd.jpg", b"A" * 10)), ("images", ("..\\win\\evil.jpg", b"B" * 10)),
             ("images", ("ctl\x01\x1f\u202ename.jpg", b"C" * 10)), ("images", ("dup.jpg", b"first")),
             ("images", ("dup.jpg", b"second")), ("images", ("dup.jpg", b"first"))]
    assert flow.upload(files).json() == SUCCESS
    assert flow.upload([("images", ("dup.jpg", b"third"))]).json() == SUCCESS
    assert flow.commit().json()["images_count"] == 6
    task_id = flow.task["id"]
    assert images(task_id) == ["ctlname.jpg", "dup.jpg", "dup_1.jpg", "dup_2.jpg", "evil.jpg", "passwd.jpg"]
    prefix = f"tasks/{task_id}/images/"
    assert s3_bytes(prefix + "dup.jpg") == b"first" and s3_bytes(prefix + "dup_1.jpg") == b"second"
    assert s3_bytes(prefix + "dup_2.jpg") == b"third"


def test_the_authorizer_refuses_as_webodm_does(flow, live, bob):
    files = image_files(1)
    anonymous = requests.post(flow.task_url("upload/"), files=files)
    assert anonymous.status_code == 403
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}
    forged = requests.post(flow.task_url("upload/"), files=files, headers={"Authorization": "JWT abc.def.ghi"})
    assert forged.status_code == 403 and forged.json() == {"detail": "Error decoding signature."}
    not_bobs = requests.post(flow.task_url("upload/"), files=files,
                             headers={"Authorization": f"JWT {bob['token']}"})
    assert not_bobs.status_code == 404 and not_bobs.json() == {"detail": "Not found."}
    missing = requests.post(f"{flow.tasks_url}00000000-0000-4000-8000-000000000000/upload/", files=files,
                            headers=flow.headers)
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    as_json = requests.post(flow.task_url("upload/"), headers=flow.headers,
                            json={"files": [{"name": "a.jpg", "size": 1}]})
    assert as_json.status_code == 403 and "presign/" in as_json.json()["detail"]
    with_query_token = requests.post(flow.task_url("upload/"), params={"jwt": flow.headers["Authorization"][4:]},
                                     files=files)
    assert with_query_token.status_code == 200 and with_query_token.json() == SUCCESS
    wrong_method = requests.get(flow.task_url("upload/"), headers=flow.headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert s3_keys(f"incoming/{flow.task['id']}/") and len(s3_keys(f"incoming/{flow.task['id']}/")) == 1


def test_large_images_reach_the_node_intact(flow, api, admin, fake_node):
    """A 9.5 MB image as one multipart file and a 20 MB one in WebODM's 8,000,000-byte
    Dropzone chunks: over Lambda's payload, under API Gateway's, byte for byte on the node."""
    register_node(api, admin, fake_node)
    single = fake_image(95, 9_500_000)
    big = fake_image(20, 20_000_000)
    assert flow.upload([("images", ("single.jpg", single, "image/jpeg"))]).json() == SUCCESS
    chunk = 8_000_000
    parts = [big[i:i + chunk] for i in range(0, len(big), chunk)]
    for index, piece in enumerate(parts):
        reply = flow.upload([("file", ("big.jpg", piece, "application/octet-stream"))],
                            data={"dzuuid": "b1g", "dzchunkindex": str(index), "dztotalchunkcount": str(len(parts)),
                                  "dzchunkbyteoffset": str(index * chunk)})
        assert reply.status_code == 200, reply.text
    committed = flow.commit().json()
    assert committed["images_count"] == 2 and committed["partial"] is False
    for _ in range(60):
        api.poll()
        task = requests.get(flow.task_url(), headers=flow.headers).json()
        if task["status"] in (30, 40, 50):
            break
    assert task["status"] == 40, task
    on_node = fake_node.tasks[task["uuid"]].images
    assert on_node["single.jpg"] == single and on_node["big.jpg"] == big


def test_commit_leaves_what_does_not_fit_to_the_poller(flow, api, admin, fake_node):
    """A commit whose time runs out before every body is ingested answers at once with the
    task committed; the poller ingests the rest before the task goes to a node."""
    task_id = flow.task["id"]
    for i in range(3):
        assert flow.upload(image_files(1, start=i)).json() == SUCCESS
    # The poller's step and a commit never ingest at once: hold the task's lease as a
    # poller would, so this commit cannot ingest and must hand everything over.
    held = task_store.acquire_lease(task_store.get(flow.project["id"], task_id), "someone-else", 60)
    committed = flow.commit().json()
    assert committed["partial"] is False and committed["images_count"] == 0
    stored = task_store.get(flow.project["id"], task_id)
    assert stored["ingest_pending"] is True and stored.get("active") == "1"
    task_store.release_lease(held, "someone-else")
    register_node(api, admin, fake_node)
    for _ in range(60):
        api.poll()
        task = requests.get(flow.task_url(), headers=flow.headers).json()
        if task["status"] in (30, 40, 50):
            break
    assert task["status"] == 40 and task["images_count"] == 3
    assert sorted(fake_node.tasks[task["uuid"]].images) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert s3_keys(f"incoming/{task_id}/") == []


def test_removing_a_task_removes_its_pending_uploads(flow):
    assert flow.upload(image_files(2)).json() == SUCCESS
    assert requests.post(flow.task_url("remove/"), headers=flow.headers).json() == SUCCESS
    assert s3_keys(f"incoming/{flow.task['id']}/") == []
