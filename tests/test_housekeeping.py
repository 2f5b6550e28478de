"""The schedule's hourly clean-up: abandoned partial tasks (WebODM's `cleanup_tasks`, 72 h by
default) and upload bodies nobody ingested."""
from __future__ import annotations

import time

import pytest

from chalicelib import aws, config
from tests.helpers import image_files, new_project, s3_keys


@pytest.fixture
def one_second_expiry(monkeypatch, aws_env):
    monkeypatch.setenv("ALOFT_PARTIAL_TASK_HOURS", str(1 / 3600))
    config.reset()
    yield
    config.reset()


def put_incoming(task_id: str, name: str) -> str:
    key = f"incoming/{task_id}/1764750000000/{name}"
    aws.s3().put_object(Bucket=config.settings().bucket, Key=key, Body=b"--body--")
    return key


def partial_task(api, user, project) -> dict:
    reply = api.post(f"/api/projects/{project['id']}/tasks/", token=user["token"], files=image_files(1),
                     data={"partial": "true"})
    assert reply.status == 201 and reply.json["partial"] is True
    return reply.json


def test_abandoned_partial_tasks_and_stale_bodies_go(api, alice, one_second_expiry):
    project = new_project(api, alice)
    url = f"/api/projects/{project['id']}/tasks/"
    old = partial_task(api, alice, project)
    put_incoming(old["id"], "req-old")
    orphan = put_incoming("00000000-0000-4000-8000-000000000000", "req-orphan")
    committed = api.post(url, token=alice["token"], files=image_files(2)).json
    time.sleep(2.3)  # past the 1 s expiry and the second of grace for S3's whole-second LastModified
    young = partial_task(api, alice, project)
    fresh = put_incoming(young["id"], "req-young")
    assert s3_keys(f"tasks/{old['id']}/")

    stats = api.poll()
    assert stats["partial_expired"] == 1 and stats["incoming_deleted"] == 1  # the task took its own
    assert api.get(url + f"{old['id']}/", token=alice["token"]).status == 404
    assert s3_keys(f"tasks/{old['id']}/") == [] and s3_keys(f"incoming/{old['id']}/") == []
    assert s3_keys("incoming/00000000") == [], orphan
    assert api.get(url + f"{young['id']}/", token=alice["token"]).json["partial"] is True
    assert s3_keys(f"incoming/{young['id']}/") == [fresh]
    assert api.get(url + f"{committed['id']}/", token=alice["token"]).status == 200

    # Once an hour: the next ticks leave the young task alone even once it is old enough.
    time.sleep(1.3)
    assert "partial_expired" not in api.poll()
    assert api.get(url + f"{young['id']}/", token=alice["token"]).status == 200


def test_partial_expiry_setting_must_be_a_positive_number(monkeypatch):
    for bad in ("abc", "0", "-1", "inf"):
        monkeypatch.setenv("ALOFT_PARTIAL_TASK_HOURS", bad)
        config.reset()
        with pytest.raises(config.ConfigError):
            config.settings()
    monkeypatch.delenv("ALOFT_PARTIAL_TASK_HOURS")
    config.reset()
    assert config.settings().partial_task_hours == 72.0
