"""Uploads through the local stack's real HTTP server and moto server (what `make run` runs)."""
from __future__ import annotations

import boto3
import pytest
import requests

from aloft_local.resources import resource_environment
from aloft_local.stack import RESOURCE_PREFIX
from tests.sample_data import fake_image


@pytest.fixture
def stack(stack_process):
    stack = stack_process()
    token = requests.post(f"{stack.url}/api/token-auth/", data={"username": "admin", "password": "admin"}).json()["token"]
    stack.headers = {"Authorization": f"JWT {token}"}
    stack.project = requests.post(f"{stack.url}/api/projects/", headers=stack.headers, data={"name": "up"}).json()
    stack.tasks_url = f"{stack.url}/api/projects/{stack.project['id']}/tasks/"
    stack.s3 = boto3.client("s3", endpoint_url=stack.storage_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    stack.bucket = resource_environment(RESOURCE_PREFIX)["ALOFT_BUCKET"]
    return stack


def s3_image(stack, task_id: str, name: str) -> bytes:
    return stack.s3.get_object(Bucket=stack.bucket, Key=f"tasks/{task_id}/images/{name}")["Body"].read()


def test_multipart_create_of_20_mb(stack):
    images = {f"big{i}.jpg": fake_image(100 + i, 5 * 1024 * 1024) for i in range(4)}
    files = [("images", (name, content, "image/jpeg")) for name, content in images.items()]
    reply = requests.post(stack.tasks_url, headers=stack.headers, files=files,
                          data={"options": '[{"name": "orthophoto-resolution", "value": 24}]'})
    assert reply.status_code == 201, reply.text
    task = reply.json()
    assert sum(len(c) for c in images.values()) >= 20 * 1024 * 1024
    assert task["images_count"] == 4 and task["status"] is None and task["processing_time"] == -1
    for name, content in images.items():
        assert s3_image(stack, task["id"], name) == content


def test_presigned_upload_round_trip(stack):
    task = requests.post(stack.tasks_url, headers=stack.headers, json={"partial": True}).json()
    base = f"{stack.tasks_url}{task['id']}/"
    contents = {"a.jpg": fake_image(1, 70_000), "b.jpg": fake_image(2, 1_000)}
    spec = {"files": [{"name": n, "size": len(c)} for n, c in contents.items()]}
    reply = requests.post(base + "upload/", headers=stack.headers, json=spec)
    assert reply.status_code == 200, reply.text
    for upload in reply.json()["uploads"]:
        put = requests.put(upload["url"], data=contents[upload["name"]], headers=upload["headers"])
        assert put.status_code == 200, put.text
    committed = requests.post(base + "commit/", headers=stack.headers)
    assert committed.status_code == 200 and committed.json()["images_count"] == 2
    assert committed.json()["partial"] is False
    for name, content in contents.items():
        assert s3_image(stack, task["id"], name) == content


def test_partial_and_dropzone_flows_over_http(stack):
    task = requests.post(stack.tasks_url, headers=stack.headers, data={"partial": "true"}).json()
    base = f"{stack.tasks_url}{task['id']}/"
    plain = fake_image(3, 10_000)
    assert requests.post(base + "upload/", headers=stack.headers,
                         files=[("images", ("plain.jpg", plain))]).json()["uploaded"] == {"plain.jpg": len(plain)}
    chunked = fake_image(4, 3 * 1024 * 1024)
    size = 1024 * 1024
    pieces = [chunked[i:i + size] for i in range(0, len(chunked), size)]
    for index, piece in enumerate(pieces):
        reply = requests.post(base + "upload/", headers=stack.headers,
                              files=[("file", ("chunked.jpg", piece))],
                              data={"dzuuid": "dz-1", "dzchunkindex": index, "dztotalchunkcount": len(pieces),
                                    "dzchunkbyteoffset": index * size})
        assert reply.status_code == 200
    assert reply.json()["uploaded"] == {"chunked.jpg": len(chunked)}
    committed = requests.post(base + "commit/", headers=stack.headers).json()
    assert committed["images_count"] == 2
    assert s3_image(stack, task["id"], "plain.jpg") == plain
    assert s3_image(stack, task["id"], "chunked.jpg") == chunked
