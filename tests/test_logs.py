"""Logs: the deployed functions write JSON lines with the facts of each request and step."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

_SCRIPT = """
import json, logging, os
from chalice.test import Client
from moto import mock_aws
from aloft_local.resources import create_resources
from chalicelib import aws, config
with mock_aws():
    os.environ.update(create_resources("logs", aws.dynamodb(), aws.s3()))
    config.reset()
    from app import app
    with Client(app, stage_name="prod") as client:
        client.http.get("/api/projects/?jwt=secret-token-in-the-query")
        logging.getLogger("aloft.steps").info("task t1 submit: 3 images (12 ms)",
            extra={"fact": {"task": "t1", "step": "submit", "outcome": "3 images", "ms": 12}})
"""


def test_deployed_functions_write_json_lines_without_query_strings():
    env = {**os.environ, "ALOFT_STAGE": "prod", "ALOFT_JWT_SECRET": "s" * 40, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    access = next(line for line in lines if line.get("path") == "/api/projects")  # the route: ids stay {id}
    assert access["method"] == "GET" and access["status"] == 403 and isinstance(access["ms"], int)
    assert "secret-token" not in done.stdout  # the query string (a token in ?jwt=) is never logged
    step = next(line for line in lines if line.get("step") == "submit")
    assert step["task"] == "t1" and step["outcome"] == "3 images" and step["level"] == "INFO"
