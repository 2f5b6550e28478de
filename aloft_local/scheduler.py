"""Run the deployed `poller` handler locally, as EventBridge would every minute."""
from __future__ import annotations


def run_poller_once():
    """Invoke app.py's scheduled `poller` with a real CloudWatch event; None if none exists yet."""
    from app import app

    handler = app.handlers.get("poller") if hasattr(app, "handlers") else None
    if handler is None:
        return None
    return handler(_scheduled_event(), _Context())


def _scheduled_event() -> dict:
    from datetime import datetime, timezone

    return {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:000000000000:rule/local"],
            "detail": {}}


class _Context:
    """Lambda context with the poller's deadline (local cycles get 55 s)."""

    def __init__(self, timeout_seconds: float = 55.0):
        import time

        self._deadline = time.monotonic() + timeout_seconds
        self.function_name = "poller"
        self.aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))
