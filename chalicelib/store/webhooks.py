"""Webhooks and their deliveries (chalicelib/webhooks.py has the rules).

Webhooks table: key `id`; GSI `by-user` (`user_id`, `created_at`) for a user's list, GSI
`by-scope` (`scope`, `id`) for the hooks a task's event goes to: `scope` is `project#<id>`
for a hook on one project, `owner#<user id>` for a hook on every project its user owns. So
an event costs two Queries, never a Scan.

Deliveries table: key `hook_id` + `sk`, two kinds of items:
- a message, `sk` = `m#<webhook-id>`: the event (`event`, the signed `body`), `attempts` made,
  `state` (pending, delivered, failed, dropped), and while an attempt is due `due_part` =
  "due" + `due_at` (epoch seconds): the sparse GSI `due` the minute schedule Queries for
  retries later than SQS can delay a message (and for sends that were lost);
- an attempt, `sk` = `a#<time>#<webhook-id>#<n>`: what one attempt got. A hook's newest
  attempts are one Query of `a#` backwards.
Both expire (`expires`, DynamoDB TTL) after DELIVERY_DAYS.
"""
from __future__ import annotations

from typing import Iterator

from .dynamo import ConditionFailed, Table

_hooks = Table("webhooks_table")
_deliveries = Table("webhook_deliveries_table")
USER_INDEX = "by-user"
SCOPE_INDEX = "by-scope"
DUE_INDEX = "due"
DUE = "due"


def project_scope(project_id: int) -> str:
    return f"project#{project_id}"


def owner_scope(user_id: int) -> str:
    return f"owner#{user_id}"


# ---------------------------------------------------------------- hooks

def get(hook_id: str) -> dict | None:
    return _hooks.get({"id": hook_id})


def create(item: dict) -> None:
    _hooks.put(item, condition="attribute_not_exists(id)")


def list_for_user(user_id: int) -> list[dict]:
    return list(_hooks.query("#u = :u", names={"#u": "user_id"}, values={":u": user_id}, index=USER_INDEX))


def count_for_user(user_id: int) -> int:
    return _hooks.count("#u = :u", names={"#u": "user_id"}, values={":u": user_id}, index=USER_INDEX)


def in_scope(scope: str) -> list[dict]:
    return list(_hooks.query("#s = :s", names={"#s": "scope"}, values={":s": scope}, index=SCOPE_INDEX))


def update(hook_id: str, changes: dict, remove: tuple[str, ...] = (), condition: str | None = None,
           names: dict | None = None, values: dict | None = None) -> dict | None:
    """The hook as written; None when it is gone or `condition` failed."""
    cond = "attribute_exists(id)" + (f" AND ({condition})" if condition else "")
    try:
        return _hooks.update({"id": hook_id}, set=changes or None, remove=remove, condition=cond,
                             names=names, values=values)
    except ConditionFailed:
        return None


def delete(hook_id: str, user_id: int | None = None) -> bool:
    """Delete the hook (only if it belongs to `user_id`, when given); False when there was none."""
    return _hooks.delete_owned({"id": hook_id}, user_id)


def delete_for_user(user_id: int, has_time) -> bool:
    """Forget every hook of a deleted user while `has_time()`; True when none is left. (Their
    messages expire with the deliveries table's TTL; an attempt for a missing hook is dropped.)"""
    for item in list_for_user(user_id):
        if not has_time():
            return False
        delete(item["id"], user_id)
    return True


# ---------------------------------------------------------------- deliveries

def message_key(hook_id: str, message_id: str) -> dict:
    return {"hook_id": hook_id, "sk": "m#" + message_id}


def message_put_request(item: dict) -> tuple[str, dict]:
    """A new message, for a transaction with the status change that caused it."""
    return ("Put", _deliveries.put_request(item, condition="attribute_not_exists(sk)"))


def write(operation: tuple[str, dict]) -> None:
    """Perform one prepared ("Put", request) outside a transaction."""
    Table._write(Table._client().put_item, operation[1])


def get_message(hook_id: str, message_id: str) -> dict | None:
    return _deliveries.get(message_key(hook_id, message_id))


def claim(hook_id: str, message_id: str, attempts_done: int, now: float, lease_until: float) -> dict | None:
    """Take the message for attempt `attempts_done + 1`: one worker of several wins."""
    try:
        return _deliveries.update(
            message_key(hook_id, message_id), set={"lease_until": lease_until},
            condition="#st = :pending AND #a = :a AND (attribute_not_exists(#l) OR #l < :now)",
            names={"#st": "state", "#a": "attempts", "#l": "lease_until"},
            values={":pending": "pending", ":a": attempts_done, ":now": now})
    except ConditionFailed:
        return None


def finish_attempt(hook_id: str, message_id: str, attempts_done: int, lease_until: float,
                   changes: dict, remove: tuple[str, ...]) -> bool:
    """Record attempt `attempts_done + 1` on the message, if this worker still holds it."""
    try:
        _deliveries.update(message_key(hook_id, message_id), set={**changes, "attempts": attempts_done + 1},
                           remove=("lease_until", *remove),
                           condition="#a = :a AND #l = :l",
                           names={"#a": "attempts", "#l": "lease_until"},
                           values={":a": attempts_done, ":l": lease_until})
    except ConditionFailed:
        return False
    return True


def put_attempt(item: dict) -> None:
    _deliveries.put(item)


def attempts(hook_id: str, limit: int) -> list[dict]:
    """A hook's newest attempts first."""
    return list(_deliveries.query("#h = :h AND begins_with(#s, :a)", names={"#h": "hook_id", "#s": "sk"},
                                  values={":h": hook_id, ":a": "a#"}, forward=False, limit=limit))


def due_before(moment: float) -> Iterator[dict]:
    """Messages with an attempt due before `moment` (the sparse `due` index)."""
    return _deliveries.query("#p = :p AND #d <= :t", names={"#p": "due_part", "#d": "due_at"},
                             values={":p": DUE, ":t": moment}, index=DUE_INDEX)
