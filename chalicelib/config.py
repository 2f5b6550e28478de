"""Settings from environment variables.

Read lazily (never at import: the Chalice test client and Lambda cold starts both
want imports free of side effects) and cached; `reset()` clears the cache for tests.
Table and bucket names arrive as environment variables set by CloudFormation
(infra/resources.json) or by the local stack, which reads the same file.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

LOCAL_STAGE = "local"
# Shared by every local stack so tokens work across stacks on one endpoint.
LOCAL_JWT_SECRET = "aloft-local-development-secret-not-for-production"


class ConfigError(RuntimeError):
    """A deployment is missing a required setting; refuse to serve."""


@dataclass(frozen=True)
class Settings:
    stage: str
    users_table: str
    projects_table: str
    tasks_table: str
    task_output_table: str
    nodes_table: str
    counters_table: str
    work_table: str
    presets_table: str
    shares_table: str
    groups_table: str
    api_keys_table: str
    webhooks_table: str
    webhook_deliveries_table: str
    bucket: str
    jwt_secret: str | None
    jwt_secret_arn: str | None
    jwt_ttl_seconds: int
    password_iterations: int
    node_offline_seconds: int
    presign_seconds: int
    poll_workers: int
    lease_seconds: int
    work_queue: str
    follow_seconds: int
    upload_concurrency: int
    partial_task_hours: float
    backup_inline_bytes: int
    backup_inline_files: int
    backup_wait_seconds: float
    copy_multipart_bytes: int
    duplicate_route_seconds: float
    import_allow_private: bool
    presigned_uploads: bool
    webhook_allow_private: bool
    webhook_retry_seconds: tuple[float, ...]
    webhook_disable_seconds: float


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


WEBHOOK_RETRY_SECONDS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h


def _seconds_list(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if not all(0 <= v < float("inf") for v in values):
        raise ConfigError(f"{name} must be comma-separated seconds, got {raw!r}")
    return values


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    env = os.environ.get
    stage = env("ALOFT_STAGE", LOCAL_STAGE)
    secret = env("ALOFT_JWT_SECRET") or None
    secret_arn = env("ALOFT_JWT_SECRET_ARN") or None
    if stage == LOCAL_STAGE and not secret and not secret_arn:
        secret = LOCAL_JWT_SECRET
    if not secret and not secret_arn:
        raise ConfigError(
            f"Stage {stage!r} needs ALOFT_JWT_SECRET or ALOFT_JWT_SECRET_ARN; refusing to start.")
    return Settings(
        stage=stage,
        users_table=env("ALOFT_USERS_TABLE", "aloft-users"),
        projects_table=env("ALOFT_PROJECTS_TABLE", "aloft-projects"),
        tasks_table=env("ALOFT_TASKS_TABLE", "aloft-tasks"),
        task_output_table=env("ALOFT_TASK_OUTPUT_TABLE", "aloft-task-output"),
        nodes_table=env("ALOFT_NODES_TABLE", "aloft-processing-nodes"),
        counters_table=env("ALOFT_COUNTERS_TABLE", "aloft-counters"),
        work_table=env("ALOFT_WORK_TABLE", "aloft-work"),
        presets_table=env("ALOFT_PRESETS_TABLE", "aloft-presets"),
        shares_table=env("ALOFT_SHARES_TABLE", "aloft-shares"),
        groups_table=env("ALOFT_GROUPS_TABLE", "aloft-groups"),
        api_keys_table=env("ALOFT_API_KEYS_TABLE", "aloft-api-keys"),
        webhooks_table=env("ALOFT_WEBHOOKS_TABLE", "aloft-webhooks"),
        webhook_deliveries_table=env("ALOFT_WEBHOOK_DELIVERIES_TABLE", "aloft-webhook-deliveries"),
        bucket=env("ALOFT_BUCKET", "aloft-data"),
        jwt_secret=secret,
        jwt_secret_arn=secret_arn,
        jwt_ttl_seconds=_int("ALOFT_JWT_TTL_SECONDS", 6 * 3600),
        password_iterations=_int("ALOFT_PASSWORD_ITERATIONS", 600_000),
        node_offline_seconds=_int("ALOFT_NODE_OFFLINE_SECONDS", 300),
        presign_seconds=_int("ALOFT_PRESIGN_SECONDS", 900),
        poll_workers=_int("ALOFT_POLL_WORKERS", 16),
        lease_seconds=_int("ALOFT_LEASE_SECONDS", 60),
        work_queue=env("ALOFT_WORK_QUEUE", "aloft-work"),
        follow_seconds=max(0, min(900, _int("ALOFT_FOLLOW_SECONDS", 5))),
        upload_concurrency=max(1, min(32, _int("ALOFT_UPLOAD_CONCURRENCY", 4))),
        partial_task_hours=_float("ALOFT_PARTIAL_TASK_HOURS", 72.0),  # WebODM's CLEANUP_PARTIAL_TASKS
        backup_inline_bytes=max(0, _int("ALOFT_BACKUP_INLINE_BYTES", 64 * 1024 * 1024)),
        backup_inline_files=max(0, _int("ALOFT_BACKUP_INLINE_FILES", 200)),
        backup_wait_seconds=max(0.0, min(25.0, float(_int("ALOFT_BACKUP_WAIT_SECONDS", 20)))),
        # S3's CopyObject takes at most 5 GB; above, UploadPartCopy (lowered by tests only)
        copy_multipart_bytes=max(5 * 1024 * 1024, min(5 * 1024**3, _int("ALOFT_COPY_MULTIPART_BYTES", 5 * 1024**3))),
        duplicate_route_seconds=max(0.0, min(20.0, float(_int("ALOFT_DUPLICATE_ROUTE_SECONDS", 10)))),
        # url imports may reach private/loopback addresses: a lab's default, never a deployment's
        import_allow_private=_bool("ALOFT_IMPORT_ALLOW_PRIVATE", stage == LOCAL_STAGE),
        # 0: `presign/` answers 404 as on a WebODM server, which has no such route (clients
        # such as `aloft process` then fall back to WebODM's `upload/`).
        presigned_uploads=_bool("ALOFT_PRESIGNED_UPLOADS", True),
        # webhook targets may be http and private/loopback: a lab's default, never a deployment's
        webhook_allow_private=_bool("ALOFT_WEBHOOK_ALLOW_PRIVATE", stage == LOCAL_STAGE),
        # the waits before each retry (Standard Webhooks' schedule); tests shorten them
        webhook_retry_seconds=_seconds_list("ALOFT_WEBHOOK_RETRY_SECONDS", WEBHOOK_RETRY_SECONDS),
        # a hook whose deliveries failed without a success for this long is disabled
        webhook_disable_seconds=_float("ALOFT_WEBHOOK_DISABLE_SECONDS", 24 * 3600.0),
    )


def reset() -> None:
    settings.cache_clear()
