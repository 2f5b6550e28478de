"""Webhooks: signed HTTP callbacks when a task starts running, ends or is removed.

WebODM has none (a script polls the task). An Aloft hook names a `url`, the `events` it wants
(EVENTS) and optionally one `project`; without one it hears about every project its user
owns. A hook on a project shared with its user hears about it while the user may view it.

Deliveries follow the Standard Webhooks specification (standardwebhooks.com): a POST of
`{"type", "timestamp", "data"}` (`data`: the task as `GET .../tasks/{id}/` shows it) with the
headers `webhook-id` (the same on every retry of one event: receivers drop duplicates by
it), `webhook-timestamp` (this attempt, epoch seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the base64-decoded part
of the hook's `whsec_...` secret, shown once when the hook is created).

How an event travels:
1. The write that changes a task's status (the worker's step, chalicelib/steps/context.py,
   or an immediate cancel) or removes it (chalicelib/removal.py) carries, in the same
   DynamoDB transaction, one message item per hook it concerns (store/webhooks.py). The
   event exists exactly when the change does: a step killed before its write sends nothing,
   one killed after it leaves the messages, which the schedule sends.
2. After the write, one `webhook` job message per hook goes to the work queue: the worker
   sends it within seconds.
3. An attempt is taken with a conditional write (attempt number and a lease), so two workers
   never send the same attempt; a 2xx ends the message. Anything else (another status, a
   connection error, the 10 s timeout, a refused address) is recorded and retried after
   5 s, 5 min, 30 min, 2 h, 5 h and 10 h (`ALOFT_WEBHOOK_RETRY_SECONDS`). SQS delays a
   message by at most 900 s: a shorter wait is a delayed job message, a longer one only
   sets the message's `due_at` in the sparse `due` index, which the minute schedule Queries
   (`send_due`) and sends once the attempt is due within the minute. The same Query repairs
   a lost job message (an attempt overdue by a minute).
4. A hook whose deliveries have failed without one success for 24 h
   (`ALOFT_WEBHOOK_DISABLE_SECONDS`) is disabled (`active` false, `disabled_reason`); its
   pending messages are dropped. PATCH `{"active": true}` enables it again.

Targets: `https` on a public address, checked at create/PATCH and again at every attempt
through chalicelib/netguard.py (the address is resolved once and the connection goes to
it: no DNS rebinding; no redirects followed). `http` and private or loopback addresses only
with `ALOFT_WEBHOOK_ALLOW_PRIVATE=1`, the default only in the local stage.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, StringConstraints, ValidationError, field_validator

from . import netguard, permissions, queue
from .access import MAX_ID
from .config import settings
from .errors import InvalidInput, NotFound, PermissionDenied, drf_errors
from .models import Request, StatusCode, utcnow
from .store import projects, tasks, users
from .store import webhooks as store
from .store.dynamo import transact
from .taskview import task_json

log = logging.getLogger(__name__)

EVENTS = ("task.completed", "task.failed", "task.canceled", "task.removed", "task.running")
STATUS_EVENTS = {int(StatusCode.RUNNING): "task.running", int(StatusCode.COMPLETED): "task.completed",
                 int(StatusCode.FAILED): "task.failed", int(StatusCode.CANCELED): "task.canceled"}
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 60.0          # longer than one attempt (connect + read timeouts)
OVERDUE_SECONDS = 60.0        # a due attempt no message took for this long: the schedule sends it
MAX_HOOKS_PER_USER = 20       # an event's transaction holds one item per hook (DynamoDB: 100)
MAX_URL_LENGTH = 2000
DELIVERY_DAYS = 30
DELIVERIES_PAGE = 100
JOB_KIND = "webhook"


# ---------------------------------------------------------------- request and answers

def _url(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _events(value: Any) -> Any:
    if isinstance(value, str):  # a form field: comma-separated
        value = [part.strip() for part in value.split(",") if part.strip()]
    return value


Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH), BeforeValidator(_url)]


class _Events(Request):
    @field_validator("events", check_fields=False)
    @classmethod
    def _known(cls, value):
        if value is None:
            return value
        unknown = [e for e in value if e not in EVENTS]
        if unknown:
            raise ValueError(f'"{unknown[0]}" is not a valid choice.')
        if not value:
            raise ValueError("This list may not be empty.")
        return sorted(set(value))


class WebhookWrite(_Events):
    """A new hook: where to POST, which events, and optionally one project."""
    url: Url
    events: Annotated[list[str], BeforeValidator(_events)]
    project: Optional[int] = None


class WebhookPatch(_Events):
    """Any of a hook's fields; `active: true` enables a disabled hook again."""
    url: Optional[Url] = None
    events: Annotated[Optional[list[str]], BeforeValidator(_events)] = None
    project: Optional[int] = None
    active: Optional[bool] = None


class WebhookOut(BaseModel):
    """A hook as GET shows it: never its secret."""
    id: str
    url: str
    events: list[str]
    project: Optional[int]
    user: int
    active: bool
    disabled_reason: Optional[str]
    created_at: str
    failing_since: Optional[str]


class WebhookCreated(WebhookOut):
    """The create answer: the only place the `secret` is ever shown."""
    secret: str


class DeliveryOut(BaseModel):
    """One attempt to deliver an event."""
    webhook_id: str
    event: str
    attempt: int
    status_code: Optional[int]
    duration_ms: int
    error: Optional[str]
    delivered: bool
    at: str


def out(item: dict) -> dict:
    failing = item.get("failing_since")
    return {"id": item["id"], "url": item["url"], "events": list(item["events"]), "project": item.get("project"),
            "user": item["user_id"], "active": bool(item.get("active", True)),
            "disabled_reason": item.get("disabled_reason"), "created_at": item["created_at"],
            "failing_since": _iso(failing) if failing else None}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- validation

def check_url(url: str) -> None:
    """InvalidInput on `url` unless the address policy allows it (resolved here, once)."""
    allow = settings().webhook_allow_private
    try:
        scheme = netguard.parse(url)[0]
        if scheme != "https" and not allow:
            raise netguard.RefusedURL("Webhook URLs must use https")
        netguard.Fetcher(allow).target(url)
    except (netguard.RefusedURL, netguard.FetchError) as exc:
        raise InvalidInput({"url": [str(exc)[:300]]}) from None


def _validate(model, fields: dict):
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(drf_errors(exc)) from None


def _check_project(user: dict, project_id: int | None) -> None:
    if project_id is None:
        return
    try:
        if not 1 <= project_id <= MAX_ID:
            raise NotFound()
        permissions.project_for(user, project_id, "view")
    except NotFound:
        raise InvalidInput({"project": [f'Invalid pk "{project_id}" - object does not exist.']}) from None


def _scope(user_id: int, project_id: int | None) -> str:
    return store.project_scope(project_id) if project_id is not None else store.owner_scope(user_id)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# ---------------------------------------------------------------- routes' operations

def create_for(user: dict, fields: dict) -> dict:
    data = _validate(WebhookWrite, fields)
    _check_project(user, data.project)
    check_url(data.url)
    if store.count_for_user(user["id"]) >= MAX_HOOKS_PER_USER:
        raise InvalidInput({"detail": f"A user may have at most {MAX_HOOKS_PER_USER} webhooks: delete one first."})
    item = {"id": secrets.token_hex(8), "user_id": user["id"], "url": data.url, "events": data.events,
            "scope": _scope(user["id"], data.project), "active": True, "created_at": utcnow(),
            "secret": new_secret()}
    if data.project is not None:
        item["project"] = data.project
    store.create(item)
    return {**out(item), "secret": item["secret"]}


def list_for(caller: dict, user_id: int | None) -> list[dict]:
    if user_id is not None and user_id != caller["id"]:
        if not caller.get("is_superuser"):
            raise PermissionDenied()
        return [out(i) for i in store.list_for_user(user_id)]
    return [out(i) for i in store.list_for_user(caller["id"])]


def _hook_of(caller: dict, hook_id: str, superuser_may: bool) -> dict:
    item = store.get(hook_id) if isinstance(hook_id, str) and len(hook_id) == 16 else None
    if item is None or (item["user_id"] != caller["id"] and not (superuser_may and caller.get("is_superuser"))):
        raise NotFound()
    return item


def get_for(caller: dict, hook_id: str) -> dict:
    return out(_hook_of(caller, hook_id, superuser_may=True))


def patch_for(caller: dict, hook_id: str, fields: dict) -> dict:
    item = _hook_of(caller, hook_id, superuser_may=False)
    data = _validate(WebhookPatch, fields)
    sent = data.model_fields_set
    changes: dict = {}
    remove: list[str] = []
    if "url" in sent and data.url is not None:
        check_url(data.url)
        changes["url"] = data.url
    if "events" in sent and data.events is not None:
        changes["events"] = data.events
    if "project" in sent:
        _check_project(caller, data.project)
        changes["scope"] = _scope(item["user_id"], data.project)
        if data.project is None:
            remove.append("project")
        else:
            changes["project"] = data.project
    if "active" in sent and data.active is not None:
        changes["active"] = data.active
        if data.active:
            remove += ["disabled_reason", "failing_since"]
    if not changes and not remove:
        return out(item)
    written = store.update(hook_id, changes, tuple(remove))
    if written is None:
        raise NotFound()
    return out(written)


def delete_for(caller: dict, hook_id: str) -> None:
    owner = None if caller.get("is_superuser") else caller["id"]
    if not (isinstance(hook_id, str) and len(hook_id) == 16) or not store.delete(hook_id, owner):
        raise NotFound()


def deliveries_for(caller: dict, hook_id: str) -> list[dict]:
    item = _hook_of(caller, hook_id, superuser_may=True)
    return [{"webhook_id": a["webhook_id"], "event": a["event"], "attempt": a["attempt"],
             "status_code": a.get("status_code"), "duration_ms": a.get("duration_ms", 0),
             "error": a.get("error"), "delivered": bool(a.get("delivered")), "at": a["at"]}
            for a in store.attempts(item["id"], DELIVERIES_PAGE)]


# ---------------------------------------------------------------- events

class Pending:
    """Message items to write with a task's change (`ops`), and their job messages to send
    once the write succeeded (`send()`)."""

    def __init__(self, ops: tuple = (), jobs: tuple = ()):
        self.ops = ops
        self.jobs = jobs

    def send(self) -> None:
        for job in self.jobs:
            queue.send_job(JOB_KIND, job)


NONE = Pending()


def event_of(before: dict | None, after: dict | None) -> str | None:
    """The event a change of a task makes: a status newly RUNNING/COMPLETED/FAILED/CANCELED,
    or its removal (`after` None)."""
    if before is not None and after is None:
        return "task.removed"
    if after is None:
        return None
    status = after.get("status")
    if status == (before or {}).get("status"):
        return None
    return STATUS_EVENTS.get(status)


def for_change(before: dict | None, after: dict | None, hooks: list[dict] | None = None) -> Pending:
    """The messages a task's change makes (nothing when no hook wants it). `hooks`: the
    project's hooks when the caller looked them up already (project_hooks), for many tasks of
    one project. Never raises: a failure to look hooks up loses the event rather than the
    task's change."""
    event = event_of(before, after)
    if event is None:
        return NONE
    try:
        return _messages(event, after if after is not None else before, hooks)
    except Exception:  # noqa: BLE001
        log.exception("Could not prepare the %s webhooks of task %s", event, (after or before)["id"])
        return NONE


def _messages(event: str, task: dict, hooks: list[dict] | None) -> Pending:
    if hooks is None:
        hooks = project_hooks(task["project_id"])
    hooks = [hook for hook in hooks if event in hook.get("events", ())][:MAX_HOOKS_PER_USER * 4]
    if not hooks:
        return NONE
    now = time.time()
    data = task_json(task)
    ops, jobs = [], []
    for hook in hooks:
        message_id = "msg_" + secrets.token_hex(12)
        body = json.dumps({"type": event, "timestamp": _iso(now), "data": data}, separators=(",", ":"))
        ops.append(store.message_put_request({
            **store.message_key(hook["id"], message_id), "webhook_id": message_id, "event": event, "body": body,
            "attempts": 0, "state": "pending", "due_part": store.DUE, "due_at": round(now, 3),
            "created_at": utcnow(), "expires": int(now + DELIVERY_DAYS * 86400)}))
        jobs.append(_job(hook["id"], message_id, 1))
    return Pending(tuple(ops), tuple(jobs))


def project_hooks(project_id: int) -> list[dict]:
    """The active hooks that hear of this project's tasks, whatever the event: its owner's,
    and the project's own while their user may view it (1 GetItem + 2 Queries, + 1 GetItem
    per hook of a user the project is shared with)."""
    project = projects.get(project_id, include_deleting=True)
    found = store.in_scope(store.project_scope(project_id))
    if project is not None:
        found += store.in_scope(store.owner_scope(project["owner"]))
    chosen = []
    for hook in found:
        if not hook.get("active", True):
            continue
        if hook.get("project") is not None and (project is None or hook["user_id"] != project.get("owner")):
            user = users.get_by_id(hook["user_id"])  # a shared project: only while its user may view it
            if user is None or project is None or "view" not in permissions.permissions_on(user, project):
                continue
        chosen.append(hook)
    return chosen


def write_change(update: tuple[str, dict], before: dict, after: dict, ops: tuple = ()) -> None:
    """Write a prepared task update, `ops` and the messages it makes in one transaction (or
    the update alone when there are none), then send their jobs: an event is recorded with
    its change or not at all, so a function killed after the write loses no event.
    ConditionFailed when the task changed since `before` was read."""
    events = for_change(before, after)
    every = (*ops, *events.ops)
    transact(update, *every) if every else tasks.write(update)
    events.send()


# ---------------------------------------------------------------- delivery

def _job(hook_id: str, message_id: str, attempt: int) -> str:
    return f"{hook_id}/{message_id}/{attempt}"


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def run_job(job: str, context=None) -> str:
    """Make the attempt a `webhook` job message names; a word for the log."""
    try:
        hook_id, message_id, raw_attempt = job.split("/")
        attempt = int(raw_attempt)
    except ValueError:
        return "malformed"
    message = store.get_message(hook_id, message_id)
    if message is None or message.get("state") != "pending" or message.get("attempts") != attempt - 1:
        return "stale"
    now = time.time()
    due = float(message.get("due_at") or now)
    if due > now + 1:
        if due - now <= queue.MAX_DELAY_SECONDS:
            queue.send_job(JOB_KIND, job, due - now)
        return "early"
    lease = round(now + LEASE_SECONDS, 3)
    if store.claim(hook_id, message_id, attempt - 1, now, lease) is None:
        return "busy"
    hook = store.get(hook_id)
    if hook is None or not hook.get("active", True):
        store.finish_attempt(hook_id, message_id, attempt - 1, lease, {"state": "dropped"},
                             ("due_part", "due_at", "by_schedule"))
        return "dropped"
    status, error, millis = _post(hook, message)
    delivered = status is not None and 200 <= status < 300
    at = utcnow()
    store.put_attempt({"hook_id": hook_id, "sk": f"a#{at}#{message_id}#{attempt:02d}", "webhook_id": message_id,
                       "event": message["event"], "attempt": attempt, "status_code": status,
                       "duration_ms": millis, "error": error, "delivered": delivered, "at": at,
                       "expires": int(now + DELIVERY_DAYS * 86400)})
    retries = settings().webhook_retry_seconds
    delay = None
    if delivered:
        changes, remove = {"state": "delivered"}, ("due_part", "due_at", "by_schedule")
    elif attempt <= len(retries):
        delay = retries[attempt - 1]
        changes = {"due_at": round(time.time() + delay, 3), "due_part": store.DUE,
                   "by_schedule": delay > queue.MAX_DELAY_SECONDS}
        remove = ()
    else:
        changes, remove = {"state": "failed"}, ("due_part", "due_at", "by_schedule")
    if not store.finish_attempt(hook_id, message_id, attempt - 1, lease, changes, remove):
        return "lease lost"
    if delay is not None and delay <= queue.MAX_DELAY_SECONDS:
        queue.send_job(JOB_KIND, _job(hook_id, message_id, attempt + 1), delay)
    _track_health(hook, delivered)
    return f"attempt {attempt}: " + ("delivered" if delivered else (f"status {status}" if status else "error"))


def _post(hook: dict, message: dict) -> tuple[int | None, str | None, int]:
    body = message["body"]
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "webhook-id": message["webhook_id"],
               "webhook-timestamp": str(timestamp),
               "webhook-signature": signature(hook["secret"], message["webhook_id"], timestamp, body)}
    started = time.monotonic()
    allow = settings().webhook_allow_private
    try:
        if netguard.parse(hook["url"])[0] != "https" and not allow:
            raise netguard.RefusedURL("Webhook URLs must use https")
        fetcher = netguard.Fetcher(allow, connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS,
                                   max_redirects=0)
        with fetcher.request("POST", hook["url"], body=body.encode(), headers=headers) as answer:
            status = answer.status
            answer.read(64 * 1024)
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return status, error, round((time.monotonic() - started) * 1000)
    except (netguard.RefusedURL, netguard.FetchError) as exc:
        return None, str(exc)[:500], round((time.monotonic() - started) * 1000)


def _track_health(hook: dict, delivered: bool) -> None:
    """Failures without a success for the disable window turn the hook off."""
    now = time.time()
    if delivered:
        if hook.get("failing_since") is not None:
            store.update(hook["id"], {}, ("failing_since",))
        return
    since = hook.get("failing_since")
    if since is None:
        store.update(hook["id"], {"failing_since": round(now, 3)}, condition="attribute_not_exists(failing_since)")
        since = now
    window = settings().webhook_disable_seconds
    if now - since >= window and hook.get("active", True):
        hours = window / 3600
        reason = (f"Disabled on {utcnow()}: every delivery failed for {hours:g} hours "
                  f"(since {_iso(since)}). PATCH {{\"active\": true}} to enable it again.")
        store.update(hook["id"], {"active": False, "disabled_reason": reason}, condition="#act = :t",
                     names={"#act": "active"}, values={":t": True})
        log.info("webhook %s disabled after %g hours of failed deliveries", hook["id"], hours)


def send_due(has_time=lambda: True) -> int:
    """The schedule's part: send the attempts due within the minute that wait for it (longer
    than SQS can delay), and those overdue (a lost job message). Duplicates are harmless."""
    now = time.time()
    sent = 0
    for item in store.due_before(now + 60):
        if not has_time():
            break
        due = float(item["due_at"])
        if item.get("lease_until", 0) > now:
            continue
        if not item.get("by_schedule") and due > now - OVERDUE_SECONDS:
            continue  # its own delayed job message is on the way
        message_id = item["sk"][2:]
        if queue.send_job(JOB_KIND, _job(item["hook_id"], message_id, int(item.get("attempts", 0)) + 1),
                          max(0.0, due - now)):
            sent += 1
    return sent
