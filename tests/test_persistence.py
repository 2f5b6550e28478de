"""`make run` keeps its data: real stack processes, real HTTP, restarts on the same data folder.

A stopped (SIGINT/SIGTERM) or killed (SIGKILL after a pause) stack starts again with every user,
project, task, node, console line and S3 object; a damaged folder is refused and left as it was;
ALOFT_RESET=1 starts empty; one stack per folder. The log format is also tested on its own.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from aloft_local import persistence
from aloft_local.resources import resource_environment
from aloft_local.stack import RESOURCE_PREFIX
from aloft_local.persistence import DataDirError, encode_line, read_log, read_snapshot
from tests.conftest import ROOT, free_port, stack_environment
from tests.sample_data import fake_image

PAUSE = persistence.FLUSH_SECONDS + 1.5  # what a kill -9 may lose is written by then


# ---------------------------------------------------------------------------- helpers
def login(url: str, username: str = "admin", password: str = "admin") -> dict:
    reply = requests.post(f"{url}/api/token-auth/", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"JWT {reply.json()['token']}"}


def client(stack, service: str):
    return boto3.client(service, endpoint_url=stack.storage_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def s3_state(stack) -> dict:
    """Every object of every bucket: bytes, ETag, Content-Type, user metadata."""
    s3 = client(stack, "s3")
    state = {}
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for entry in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket["Name"], Key=entry["Key"])
                state[(bucket["Name"], entry["Key"])] = (got["Body"].read(), got["ETag"], got["ContentType"],
                                                         got["Metadata"], got["LastModified"])
    return state


def dynamodb_state(stack) -> dict:
    dynamodb = client(stack, "dynamodb")
    state = {}
    for name in dynamodb.list_tables()["TableNames"]:
        items = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            items.extend(page["Items"])
        state[name] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=str))
    return state


def api_state(stack, headers: dict) -> dict:
    """Everything the API shows the admin, node refresh times aside (a new stack refreshes)."""
    def get(path):
        reply = requests.get(stack.url + path, headers=headers)
        assert reply.status_code == 200, (path, reply.text)
        return reply.json()

    state = {"projects": get("/api/projects/"), "users": get("/api/admin/users/"),
             "nodes": [{k: v for k, v in n.items() if k not in ("last_refreshed", "online")}
                       for n in get("/api/processingnodes/")]}
    for project in state["projects"]:
        tasks = get(f"/api/projects/{project['id']}/tasks/")
        state[f"tasks {project['id']}"] = tasks
        for task in tasks:
            base = f"/api/projects/{project['id']}/tasks/{task['id']}"
            state[f"task {task['id']}"] = get(base + "/")
            state[f"output {task['id']}"] = get(base + "/output/")
    return state


def folder_digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "lock"}


def start_refused(data_dir: Path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aloft_local"], cwd=ROOT,
                            env=stack_environment(free_port(), data_dir, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def new_task(stack, headers, project_id: int, images: dict[str, bytes]) -> dict:
    files = [("images", (name, content, "image/jpeg")) for name, content in images.items()]
    reply = requests.post(f"{stack.url}/api/projects/{project_id}/tasks/", headers=headers, files=files)
    assert reply.status_code == 201, reply.text
    return reply.json()


def presigned_task(stack, headers, project_id: int, images: dict[str, bytes]) -> dict:
    base = f"{stack.url}/api/projects/{project_id}/tasks/"
    task = requests.post(base, headers=headers, json={"partial": True}).json()
    spec = {"files": [{"name": n, "size": len(c)} for n, c in images.items()]}
    uploads = requests.post(f"{base}{task['id']}/presign/", headers=headers, json=spec).json()["uploads"]
    for upload in uploads:
        assert requests.put(upload["url"], data=images[upload["name"]], headers=upload["headers"]).ok
    committed = requests.post(f"{base}{task['id']}/commit/", headers=headers)
    assert committed.status_code == 200 and committed.json()["images_count"] == len(images)
    return committed.json()


# ---------------------------------------------------------------------------- restarts
def test_ctrl_c_and_start_again_keeps_everything(stack_process, fake_node):
    first = stack_process()
    assert any("data: " in line and str(first.data_dir) in line for line in first.banner), first.banner
    admin = login(first.url)
    user = requests.post(f"{first.url}/api/admin/users/", headers=admin,
                         json={"username": "carol", "password": "carol-pw", "first_name": "Carol"})
    assert user.status_code == 201, user.text
    node = requests.post(f"{first.url}/api/processingnodes/", headers=admin,
                         json={"hostname": fake_node.hostname, "port": fake_node.port, "label": "fake"})
    assert node.status_code == 201, node.text
    project = requests.post(f"{first.url}/api/projects/", headers=admin,
                            json={"name": "Kept", "description": "über"}).json()
    images = {"DJI_0001.JPG": fake_image(1, 40_000), "DJI_0002.JPG": fake_image(2, 60_000)}
    task = new_task(first, admin, project["id"], images)
    url = f"{first.url}/api/projects/{project['id']}/tasks/{task['id']}/"
    deadline = time.time() + 60
    while (current := requests.get(url, headers=admin).json())["status"] != 40:
        assert current["status"] in (None, 10, 20) and time.time() < deadline, current
        time.sleep(0.2)
    assert current["available_assets"]
    before_api, before_s3 = api_state(first, admin), s3_state(first)
    assert len(before_s3) > len(images)  # the images, all.zip and the assets
    assert len(before_api[f"output {task['id']}"]) > 0

    assert first.interrupt() == 0
    assert any(f"Data kept in {first.data_dir}" in line for line in first.output), first.output

    second = stack_process(data_dir=first.data_dir)
    assert any("already exists" in line for line in second.banner)
    assert any("restored" in line for line in second.banner), second.banner
    assert requests.get(f"{second.url}/api/projects/", headers=admin).status_code == 200  # old token
    assert api_state(second, admin) == before_api
    assert s3_state(second) == before_s3
    bucket = resource_environment(RESOURCE_PREFIX)["ALOFT_BUCKET"]
    for name, content in images.items():
        assert before_s3[(bucket, f"tasks/{task['id']}/images/{name}")][0] == content
    login(second.url, "carol", "carol-pw")
    again = requests.post(f"{second.url}/api/projects/", headers=admin, json={"name": "Next"}).json()
    assert again["id"] == project["id"] + 1  # the counters came back too


def test_kill_9_after_a_pause_loses_nothing(stack_process):
    first = stack_process(ALOFT_POLL_SECONDS="0")
    admin = login(first.url)
    project = requests.post(f"{first.url}/api/projects/", headers=admin, data={"name": "Hard stop"}).json()
    new_task(first, admin, project["id"], {"a.jpg": fake_image(3, 30_000), "b.jpg": fake_image(4, 2_000)})
    presigned_task(first, admin, project["id"], {"c.jpg": fake_image(5, 70_000)})
    requests.post(f"{first.url}/api/admin/users/", headers=admin, json={"username": "dave", "password": "pw"})
    time.sleep(PAUSE)
    before_api, before_s3, before_db = api_state(first, admin), s3_state(first), dynamodb_state(first)
    assert first.kill() == -9

    second = stack_process(data_dir=first.data_dir, ALOFT_POLL_SECONDS="0")
    assert not any("warning" in line for line in second.banner), second.banner
    assert api_state(second, admin) == before_api
    assert s3_state(second) == before_s3
    assert dynamodb_state(second) == before_db
    login(second.url, "dave", "pw")


def test_every_kind_of_write_comes_back(stack_process):
    """Straight to the embedded moto: every DynamoDB write operation, binary and nested values,
    numbers spelled two ways, a new table and bucket, overwrites, deletes, multipart, copies,
    presigned PUTs, awkward key names; after kill -9, then after a clean stop."""
    first = stack_process(ALOFT_POLL_SECONDS="0")
    dynamodb, s3 = client(first, "dynamodb"), client(first, "s3")
    dynamodb.create_table(
        TableName="engine", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    rich = {"pk": {"S": "a"}, "sk": {"N": "1.0"}, "g": {"S": "x"}, "bin": {"B": b"\x00\xff"},
            "bs": {"BS": [b"\x01", b"\x02"]}, "ss": {"SS": ["p", "q"]}, "ns": {"NS": ["1", "2.5"]},
            "nested": {"M": {"b": {"B": b"\x03"}, "l": {"L": [{"N": "1.50"}, {"NULL": True}, {"BOOL": False}]}}}}
    dynamodb.put_item(TableName="engine", Item=rich)
    dynamodb.put_item(TableName="engine", Item={"pk": {"S": "a"}, "sk": {"N": "2"}, "n": {"N": "1"}})
    dynamodb.update_item(TableName="engine", Key={"pk": {"S": "a"}, "sk": {"N": "2"}},
                         UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "41"}})
    dynamodb.batch_write_item(RequestItems={"engine": [
        {"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": str(i)}, "g": {"S": "y"}}}} for i in range(30)]})
    dynamodb.batch_write_item(RequestItems={"engine": [
        {"DeleteRequest": {"Key": {"pk": {"S": "b"}, "sk": {"N": str(i)}}}} for i in range(10)]})
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "engine", "Item": {"pk": {"S": "c"}, "sk": {"N": "1"}}}},
        {"Update": {"TableName": "engine", "Key": {"pk": {"S": "b"}, "sk": {"N": "20"}},
                    "UpdateExpression": "SET touched = :t", "ExpressionAttributeValues": {":t": {"BOOL": True}}}},
        {"Delete": {"TableName": "engine", "Key": {"pk": {"S": "b"}, "sk": {"N": "29"}}}},
        {"ConditionCheck": {"TableName": "engine", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                            "ConditionExpression": "attribute_exists(pk)"}}])
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):  # rolled back: nothing kept
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "engine", "Item": {"pk": {"S": "d"}, "sk": {"N": "1"}}}},
            {"ConditionCheck": {"TableName": "engine", "Key": {"pk": {"S": "zzz"}, "sk": {"N": "1"}},
                                "ConditionExpression": "attribute_exists(pk)"}}])
    dynamodb.put_item(TableName="engine", Item={"pk": {"S": "n"}, "sk": {"N": "10.00"}})
    dynamodb.delete_item(TableName="engine", Key={"pk": {"S": "n"}, "sk": {"N": "1E+1"}})  # the same item

    s3.create_bucket(Bucket="engine-bucket")
    s3.put_object(Bucket="engine-bucket", Key="k1", Body=b"first", ContentType="text/plain")
    s3.put_object(Bucket="engine-bucket", Key="k1", Body=b"second", ContentType="image/png",
                  Metadata={"owner": "me", "under_score": "1"})
    s3.put_object(Bucket="engine-bucket", Key="k2", Body=b"gone soon")
    s3.delete_object(Bucket="engine-bucket", Key="k2")
    for key in ("k3", "k4", "a b/ü+%2F.txt"):
        s3.put_object(Bucket="engine-bucket", Key=key, Body=key.encode() * 100)
    s3.delete_objects(Bucket="engine-bucket", Delete={"Objects": [{"Key": "k3"}]})
    upload = s3.create_multipart_upload(Bucket="engine-bucket", Key="big", ContentType="application/zip")
    parts = []
    for number, content in ((1, fake_image(10, 5 * 1024 * 1024)), (2, b"tail")):
        reply = s3.upload_part(Bucket="engine-bucket", Key="big", UploadId=upload["UploadId"],
                               PartNumber=number, Body=content)
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
    s3.complete_multipart_upload(Bucket="engine-bucket", Key="big", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
    abandoned = s3.create_multipart_upload(Bucket="engine-bucket", Key="never")
    s3.upload_part(Bucket="engine-bucket", Key="never", UploadId=abandoned["UploadId"], PartNumber=1, Body=b"x")
    s3.copy_object(Bucket="engine-bucket", Key="k5", CopySource={"Bucket": "engine-bucket", "Key": "k1"},
                   MetadataDirective="REPLACE", Metadata={"copied": "yes"}, ContentType="text/csv")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "engine-bucket", "Key": "pre"})
    assert requests.put(url, data=b"presigned bytes").ok
    time.sleep(PAUSE)
    before_db, before_s3 = dynamodb_state(first), s3_state(first)
    assert len(before_db["engine"]) == 2 + 19 + 1 and ("engine-bucket", "k2") not in before_s3
    assert before_s3[("engine-bucket", "k1")][2:4] == ("image/png", {"owner": "me", "under_score": "1"})
    assert before_s3[("engine-bucket", "big")][1].endswith('-2"')  # a multipart ETag
    blobs = [p for p in (first.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == len(before_s3)  # overwritten and deleted objects' blobs are gone
    assert first.kill() == -9

    second = stack_process(data_dir=first.data_dir, ALOFT_POLL_SECONDS="0")
    assert dynamodb_state(second) == before_db and s3_state(second) == before_s3
    description = client(second, "dynamodb").describe_table(TableName="engine")["Table"]
    assert [i["IndexName"] for i in description["GlobalSecondaryIndexes"]] == ["by-g"]
    s3 = client(second, "s3")
    assert s3.get_bucket_cors(Bucket="aloft-local-databucket")["CORSRules"]
    # Restored objects are read from their blob files: ranged reads, copies, overwrites, deletes.
    big = before_s3[("engine-bucket", "big")][0]
    assert s3.get_object(Bucket="engine-bucket", Key="big", Range="bytes=10-19")["Body"].read() == big[10:20]
    s3.copy_object(Bucket="engine-bucket", Key="k6", CopySource={"Bucket": "engine-bucket", "Key": "big"})
    s3.put_object(Bucket="engine-bucket", Key="k1", Body=b"third")
    s3.delete_object(Bucket="engine-bucket", Key="k4")
    time.sleep(PAUSE)
    after_s3 = s3_state(second)
    assert after_s3[("engine-bucket", "k6")][0] == big and after_s3[("engine-bucket", "k1")][0] == b"third"
    assert len([p for p in (first.data_dir / "blobs").rglob("*") if p.is_file()]) == len(after_s3)
    assert second.stop() == 0

    third = stack_process(data_dir=first.data_dir, ALOFT_POLL_SECONDS="0")  # from the snapshot alone
    assert dynamodb_state(third) == before_db and s3_state(third) == after_s3
    assert (first.data_dir / "log").stat().st_size < 100  # the clean stop compacted the log


def test_the_log_is_compacted_while_writes_go_on(stack_process):
    """A console-like item rewritten again and again: snapshots replace the log as it grows
    (ALOFT_COMPACT_BYTES, 64 MiB by default), and a kill -9 in the middle still loses nothing
    written before the pause."""
    stack = stack_process(ALOFT_POLL_SECONDS="0", ALOFT_COMPACT_BYTES="20000")
    dynamodb, s3 = client(stack, "dynamodb"), client(stack, "s3")
    dynamodb.create_table(TableName="churn", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    bucket = resource_environment(RESOURCE_PREFIX)["ALOFT_BUCKET"]
    generations, largest_log = set(), 0
    deadline, number = time.time() + 4, 0
    while time.time() < deadline:
        dynamodb.put_item(TableName="churn", Item={"k": {"S": "console"}, "lines": {"S": f"{number} " + "x" * 30_000}})
        dynamodb.put_item(TableName="churn", Item={"k": {"S": f"row {number}"}})
        if number % 5 == 0:
            s3.put_object(Bucket=bucket, Key=f"churn/{number}", Body=fake_image(number, 5_000))
        header = (stack.data_dir / "snapshot").read_bytes().split(b"\n", 1)[0]
        generations.add(persistence.decode_line(header)["generation"])
        largest_log = max(largest_log, (stack.data_dir / "log").stat().st_size)
        number += 1
        time.sleep(0.01)
    assert len(generations) >= 3, generations
    assert largest_log < 2_000_000, largest_log
    time.sleep(PAUSE)
    before_db, before_s3 = dynamodb_state(stack), s3_state(stack)
    console = next(item for item in before_db["churn"] if item["k"]["S"] == "console")
    assert console["lines"]["S"].startswith(f"{number - 1} ") and len(before_db["churn"]) == number + 1
    stack.kill()
    again = stack_process(data_dir=stack.data_dir, ALOFT_POLL_SECONDS="0")
    assert dynamodb_state(again) == before_db and s3_state(again) == before_s3


# ---------------------------------------------------------------------------- refusals
@pytest.fixture
def kept_folder(stack_process, tmp_path) -> tuple[Path, int]:
    """A data folder left by a kill -9, whose log holds several batches; (folder, projects)."""
    stack = stack_process(ALOFT_POLL_SECONDS="0")
    admin = login(stack.url)
    for name in ("one", "two"):
        requests.post(f"{stack.url}/api/projects/", headers=admin, json={"name": name})
        time.sleep(persistence.FLUSH_SECONDS * 2)
    project = requests.post(f"{stack.url}/api/projects/", headers=admin, json={"name": "three"}).json()
    new_task(stack, admin, project["id"], {"a.jpg": fake_image(7, 10_000), "b.jpg": fake_image(8, 900)})
    time.sleep(PAUSE)
    stack.kill()
    folder = tmp_path / "kept"
    shutil.copytree(stack.data_dir, folder)
    assert len((folder / "log").read_bytes().splitlines()) >= 4
    return folder, 3


def _flip_middle_line(folder: Path) -> None:
    lines = (folder / "log").read_bytes().split(b"\n")
    line = bytearray(lines[1])
    line[len(line) // 2] ^= 0x20
    lines[1] = bytes(line)
    (folder / "log").write_bytes(b"\n".join(lines))


def _rewrite_snapshot_header(folder: Path) -> None:
    lines = (folder / "snapshot").read_bytes().split(b"\n")
    lines[0] = encode_line({"format": "aloft-snapshot", "version": 99, "generation": 1}).rstrip(b"\n")
    (folder / "snapshot").write_bytes(b"\n".join(lines))


def _first_blob(folder: Path) -> Path:
    return next(p for p in sorted((folder / "blobs").rglob("*")) if p.is_file())


DAMAGES = {
    "a flipped byte in the log's middle": (_flip_middle_line, "line 2 of"),
    "a missing blob": (lambda f: _first_blob(f).unlink(), "is missing"),
    "a truncated blob": (lambda f: _first_blob(f).write_bytes(b"short"), "has 5 bytes"),
    "a garbage snapshot": (lambda f: (f / "snapshot").write_bytes(b"\x00garbage\n" * 10), "snapshot: line 1"),
    "an unknown format version": (_rewrite_snapshot_header, "format version 99"),
    "a log without its snapshot": (lambda f: (f / "snapshot").unlink(), "without a snapshot"),
}


def test_a_damaged_folder_is_refused_and_left_alone(kept_folder, tmp_path, stack_process):
    source, projects = kept_folder
    started = {}
    for number, (name, (damage, expected)) in enumerate(DAMAGES.items()):
        folder = tmp_path / f"damaged-{number}"
        shutil.copytree(source, folder)
        damage(folder)
        started[name] = (folder, folder_digest(folder), expected, start_refused(folder))
    for name, (folder, digest, expected, process) in started.items():
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 2, (name, output)
        assert "not started" in output and expected in output and str(folder) in output, (name, output)
        assert "ALOFT_RESET=1" in output, output
        assert folder_digest(folder) == digest, name  # untouched

    # A torn last line is what a kill -9 in the middle of a write leaves: dropped, with a warning.
    torn = tmp_path / "torn"
    shutil.copytree(source, torn)
    with open(torn / "log", "ab") as log_file:
        log_file.write(b'1234abcd [{"t":"item","a":"1')
    stack = stack_process(data_dir=torn, ALOFT_POLL_SECONDS="0")
    assert any("warning" in line and "incomplete last line" in line for line in stack.banner), stack.banner
    listed = requests.get(f"{stack.url}/api/projects/", headers=login(stack.url)).json()
    assert sorted(p["name"] for p in listed) == ["one", "three", "two"] and len(listed) == projects


def test_one_stack_per_folder_and_reset(stack_process):
    first = stack_process(ALOFT_POLL_SECONDS="0")
    admin = login(first.url)
    assert requests.post(f"{first.url}/api/projects/", headers=admin, json={"name": "p"}).status_code == 201
    second = start_refused(first.data_dir)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 2 and "in use by another Aloft stack" in output and str(first.data_dir) in output
    assert first.stop() == 0

    emptied = stack_process(data_dir=first.data_dir, ALOFT_POLL_SECONDS="0", ALOFT_RESET="1")
    assert any("ALOFT_RESET=1: started empty" in line for line in emptied.banner), emptied.banner
    assert any("superuser: admin / admin" in line for line in emptied.banner)
    assert requests.get(f"{emptied.url}/api/projects/", headers=login(emptied.url)).json() == []


# ---------------------------------------------------------------------------- the format itself
def _log(path: Path, *lines: bytes) -> Path:
    path.write_bytes(encode_line({"format": "aloft-log", "version": 1, "generation": 3}) + b"".join(lines))
    return path


def test_log_lines_checksums_and_torn_tails(tmp_path):
    one, two = encode_line([{"t": "item", "n": 1}]), encode_line([{"t": "item", "n": 2}])
    assert read_log(_log(tmp_path / "ok", one, two)) == (3, [[{"t": "item", "n": 1}], [{"t": "item", "n": 2}]], None)

    generation, batches, warning = read_log(_log(tmp_path / "cut", one, two[:-7]))
    assert batches == [[{"t": "item", "n": 1}]] and "incomplete last line" in warning

    damaged = two.replace(b'"n":2', b'"n":3')  # same length, wrong checksum
    generation, batches, warning = read_log(_log(tmp_path / "last", one, damaged))
    assert batches == [[{"t": "item", "n": 1}]] and "damaged last line 3" in warning

    with pytest.raises(DataDirError, match="line 2 of 3 is damaged.*checksum"):
        read_log(_log(tmp_path / "middle", damaged, one))
    with pytest.raises(DataDirError, match="line 2 of 3 is damaged"):
        read_log(_log(tmp_path / "garbage", b"not a record\n", one))
    (tmp_path / "v2").write_bytes(encode_line({"format": "aloft-log", "version": 2, "generation": 1}))
    with pytest.raises(DataDirError, match="format version 2"):
        read_log(tmp_path / "v2")


def test_snapshot_needs_its_end_record(tmp_path):
    header = encode_line({"format": "aloft-snapshot", "version": 1, "generation": 1})
    record = encode_line({"t": "table", "a": "1", "r": "r", "tb": "t", "def": {}})
    (tmp_path / "s").write_bytes(header + record + encode_line({"t": "end", "records": 1}))
    assert read_snapshot(tmp_path / "s") == (1, [json.loads(record[9:])])
    (tmp_path / "s").write_bytes(header + record)
    with pytest.raises(DataDirError, match="incomplete"):
        read_snapshot(tmp_path / "s")


def test_canonical_keys_follow_dynamodb_number_equality():
    class Table:
        hash_key_attr, range_key_attr = "h", "r"

    def key(number):
        return persistence.canonical_key(Table, {"h": {"S": "x"}, "r": {"N": number}})

    assert key("10") == key("10.00") == key("1E+1") == key("1e1")
    assert key("0.5") == key(".50") != key("5")
    assert key("-0") == key("0")
