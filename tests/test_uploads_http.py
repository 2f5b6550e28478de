"""Uploads against `make run` itself (`python -m aloft_local` as a child process): its
gateway refuses what API Gateway and Lambda refuse, and real-sized drone images get in
through WebODM's own flows and reach a processing node byte for byte."""
from __future__ import annotations

import time

import boto3
import pytest
import requests

from aloft_local.resources import resource_environment
from aloft_local.stack import RESOURCE_PREFIX
from tests.sample_data import fake_image

GATEWAY_TOO_LARGE = b"HTTP content length exceeded 10485760 bytes."


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


def test_one_shot_create_fits_one_lambda_event(stack):
    """A create is a Lambda route: its multipart body, base64-encoded in the event, must fit
    6,291,456 bytes. Two 1 MB images fit; two of 2,500,000 bytes do not; 10 MB never reaches it."""
    small = {f"s{i}.jpg": fake_image(i, 1_000_000) for i in range(2)}
    reply = requests.post(stack.tasks_url, headers=stack.headers,
                          files=[("images", (n, c, "image/jpeg")) for n, c in small.items()])
    assert reply.status_code == 201, reply.text
    task = reply.json()
    assert task["images_count"] == 2
    for name, content in small.items():
        assert s3_image(stack, task["id"], name) == content
    big = [("images", (f"b{i}.jpg", fake_image(10 + i, 2_500_000), "image/jpeg")) for i in range(2)]
    reply = requests.post(stack.tasks_url, headers=stack.headers, files=big)
    assert reply.status_code == 413 and reply.json() == {"message": "Request Too Long"}
    over = requests.post(stack.tasks_url, headers={**stack.headers, "Content-Type": "application/octet-stream"},
                         data=b"x" * 10_485_761)
    assert over.status_code == 413 and over.content == GATEWAY_TOO_LARGE
    listed = requests.get(stack.tasks_url, headers=stack.headers).json()
    assert [t["id"] for t in listed] == [task["id"]]  # the refused creates left nothing behind


def test_presigned_upload_round_trip(stack):
    task = requests.post(stack.tasks_url, headers=stack.headers, json={"partial": True}).json()
    base = f"{stack.tasks_url}{task['id']}/"
    contents = {"a.jpg": fake_image(1, 12_000_000), "b.jpg": fake_image(2, 1_000)}
    spec = {"files": [{"name": n, "size": len(c)} for n, c in contents.items()]}
    reply = requests.post(base + "presign/", headers=stack.headers, json=spec)
    assert reply.status_code == 200, reply.text
    for upload in reply.json()["uploads"]:
        put = requests.put(upload["url"], data=contents[upload["name"]], headers=upload["headers"])
        assert put.status_code == 200, put.text
    committed = requests.post(base + "commit/", headers=stack.headers)
    assert committed.status_code == 200 and committed.json()["images_count"] == 2
    assert committed.json()["partial"] is False
    for name, content in contents.items():
        assert s3_image(stack, task["id"], name) == content


def test_real_sized_images_through_webodm_upload_flows_reach_the_node(stack, fake_node):
    """The issue's acceptance run: a 9.5 MB JPEG as one multipart file and a 20 MB one in
    8,000,000-byte Dropzone chunks go through upload/ (never a Lambda payload), commit,
    and arrive intact on the node; an 11 MB upload request is API Gateway's 413."""
    node = requests.post(f"{stack.url}/api/processingnodes/", headers=stack.headers,
                         json={"hostname": fake_node.hostname, "port": fake_node.port})
    assert node.status_code == 201, node.text
    task = requests.post(stack.tasks_url, headers=stack.headers, json={"partial": True, "name": "big"}).json()
    base = f"{stack.tasks_url}{task['id']}/"
    single = fake_image(95, 9_500_000)
    reply = requests.post(base + "upload/", headers=stack.headers,
                          files=[("images", ("DJI_0001.JPG", single, "image/jpeg"))])
    assert reply.status_code == 200 and reply.json() == {"success": True}
    big = fake_image(20, 20_000_000)
    chunk = 8_000_000
    parts = [big[i:i + chunk] for i in range(0, len(big), chunk)]
    for index, piece in enumerate(parts):
        reply = requests.post(base + "upload/", headers=stack.headers,
                              files=[("file", ("DJI_0002.JPG", piece, "application/octet-stream"))],
                              data={"dzuuid": "8f1c2b7e-dz", "dzchunkindex": str(index),
                                    "dztotalchunkcount": str(len(parts)), "dzchunkbyteoffset": str(index * chunk)})
        assert reply.status_code == 200 and reply.json() == {"success": True}, reply.text
    too_big = requests.post(base + "upload/", headers=stack.headers,
                            files=[("images", ("DJI_0003.JPG", fake_image(3, 11_000_000), "image/jpeg"))])
    assert too_big.status_code == 413 and too_big.content == GATEWAY_TOO_LARGE
    committed = requests.post(base + "commit/", headers=stack.headers)
    assert committed.status_code == 200, committed.text
    assert committed.json()["images_count"] == 2 and committed.json()["partial"] is False
    deadline = time.time() + 120
    while time.time() < deadline:
        current = requests.get(base, headers=stack.headers).json()
        if current["status"] in (30, 40, 50):
            break
        time.sleep(0.5)
    assert current["status"] == 40, current
    on_node = fake_node.tasks[current["uuid"]].images
    assert on_node == {"DJI_0001.JPG": single, "DJI_0002.JPG": big}
