"""Run the deployed `poller` handler locally, as EventBridge does every minute on AWS.

`python -m aloft_local.scheduler` runs one cycle against the local stack's storage
(set AWS_ENDPOINT_URL to it), which is also how tests run extra, racing pollers.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone


class _Context:
    """The Lambda context parts the poller uses: its deadline."""

    def __init__(self, timeout_seconds: float):
        self._deadline = time.monotonic() + timeout_seconds
        self.function_name = "poller"
        self.aws_request_id = "local"
        self.memory_limit_in_mb = 1769

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def scheduled_event() -> dict:
    return {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:000000000000:rule/local"],
            "detail": {}}


def run_poller_once(timeout_seconds: float = 120.0):
    """Invoke app.py's scheduled `poller` with a real CloudWatch event and a deadline."""
    from app import poller

    return poller(scheduled_event(), _Context(timeout_seconds))


def main() -> None:
    from .resources import resource_environment
    from .stack import RESOURCE_PREFIX

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("ALOFT_STAGE", "local")
    for name, value in resource_environment(RESOURCE_PREFIX).items():
        os.environ.setdefault(name, value)
    print(json.dumps(run_poller_once(float(os.environ.get("ALOFT_POLL_TIMEOUT", 120)))))


if __name__ == "__main__":
    main()
