"""Lazily created, cached boto3 clients.

Clients are built on first use, never at import (cold start; moto must be able to
patch them in tests). Low-level clients are thread-safe, which the poller's pool
and the threaded local server need. boto3 itself honours AWS_ENDPOINT_URL,
AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 for the local stack.
"""
from __future__ import annotations

import functools
import os
import threading

_lock = threading.Lock()


def _custom_endpoint(service: str) -> str | None:
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")


@functools.lru_cache(maxsize=None)
def client(service: str):
    import boto3
    from botocore.config import Config

    options: dict = {"retries": {"max_attempts": 4, "mode": "standard"},
                     "connect_timeout": 5, "read_timeout": 30, "max_pool_connections": 50}
    if service == "s3":
        options["signature_version"] = "s3v4"
        # A local endpoint (moto) has no per-bucket DNS names.
        options["s3"] = {"addressing_style": "path" if _custom_endpoint("s3") else "auto"}
    with _lock:  # boto3's default session is not safe to use from many threads at once
        return boto3.session.Session().client(service, config=Config(**options))


def dynamodb():
    return client("dynamodb")


def s3():
    return client("s3")


def reset() -> None:
    client.cache_clear()
