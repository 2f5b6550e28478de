"""Run the deployed `poller` (the schedule) once, as EventBridge does every minute on AWS.

`python -m aloft_local.scheduler` runs one tick in this process against the local stack's
storage (set AWS_ENDPOINT_URL to it): nodes refreshed, jobs carried on, overdue steps
sent again. `make run` invokes the same function in a container every ALOFT_POLL_SECONDS.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone


def scheduled_event() -> dict:
    return {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:000000000000:rule/local"],
            "detail": {}}


def run_poller_once(timeout_seconds: float = 120.0):
    """Invoke app.py's scheduled `poller` with a real CloudWatch event and a deadline."""
    from chalice.local import LambdaContext

    from app import poller

    return poller(scheduled_event(), LambdaContext("poller", 1769, max_runtime_ms=int(timeout_seconds * 1000)))


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
