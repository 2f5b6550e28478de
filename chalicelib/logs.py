"""Log lines a person can read locally, and JSON lines for CloudWatch Logs Insights.

Code logs with the standard library and puts the facts of a line in `extra={"fact": {...}}`
(a request: method, path, status, ms; a step: task, step, outcome, ms). Locally the
message is printed as it is; a deployed function prints one JSON object per line with
the message, the level, the logger and the facts, so Logs Insights can filter and
aggregate on them (`filter step = "submit" | stats avg(ms)`).
"""
from __future__ import annotations

import json
import logging
import time


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        fact = getattr(record, "fact", None)
        if isinstance(fact, dict):
            line.update(fact)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_json(logger: logging.Logger) -> None:
    """Every handler of `logger` (Chalice's app log) and of the root logger writes JSON lines."""
    for handler in list(logger.handlers) + list(logging.getLogger().handlers):
        handler.setFormatter(JsonLines())


def request_fact(method: str, path: str, status: int, started: float) -> dict:
    """An access line's facts: never the query string (tokens travel in `?jwt=`)."""
    return {"method": method, "path": path, "status": status, "ms": round((time.perf_counter() - started) * 1000)}
