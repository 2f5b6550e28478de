"""Small helpers shared by the task tests."""
from __future__ import annotations

from chalicelib import aws, config


def s3_bytes(key: str) -> bytes:
    return aws.s3().get_object(Bucket=config.settings().bucket, Key=key)["Body"].read()


def s3_keys(prefix: str) -> list[str]:
    reply = aws.s3().list_objects_v2(Bucket=config.settings().bucket, Prefix=prefix)
    return sorted(o["Key"] for o in reply.get("Contents", []))


def image_files(count: int, size: int = 2000, start: int = 0) -> list[tuple[str, tuple[str, bytes]]]:
    from tests.sample_data import fake_image

    return [("images", (f"img{i}.jpg", fake_image(i, size))) for i in range(start, start + count)]


def new_project(api, user, name: str = "P") -> dict:
    reply = api.post("/api/projects/", token=user["token"], json={"name": name})
    assert reply.status == 201
    return reply.json


def new_task(api, user, project: dict, count: int = 2, **data) -> dict:
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"],
                     files=image_files(count), data=data)
    assert reply.status == 201, reply.json
    return reply.json


def complete_in_s3(project_id: int, task_id: str, zip_bytes: bytes) -> dict:
    """Put a node's all.zip in S3 and finish the task as the worker's completion step does."""
    from chalicelib.completion import collect_results
    from chalicelib.store import tasks

    aws.s3().put_object(Bucket=config.settings().bucket, Key=f"tasks/{task_id}/all.zip", Body=zip_bytes)
    changes = collect_results(task_id)
    return tasks.mutate(project_id, task_id, lambda t: changes)


def proxy_size(reply) -> int:
    """Bytes of the Lambda proxy result a reply travelled in: status, headers and body as
    JSON with ASCII escapes (what limits.LAMBDA_MAX_RESPONSE_BYTES caps)."""
    import json

    return len(json.dumps({"statusCode": reply.status, "headers": reply.headers,
                           "multiValueHeaders": {}, "body": reply.body.decode("utf-8"),
                           "isBase64Encoded": False}))
