"""Presets: saved sets of task options (WebODM's `PresetViewSet` and `Preset` model).

Who sees what, as WebODM: a user sees their own presets and every system preset
(`system: true`), superusers included; anything else is a 404. Writes follow WebODM
except where WebODM is broken:
- a system preset is read-only for normal users (WebODM lets anyone PUT/PATCH it, as its
  view has no object-level check): 403, as DRF answers a write on an object one may see;
  superusers may edit it (WebODM's admin does), never delete it (403, as WebODM);
- deleting an id that does not exist is a 404 (WebODM's `destroy` answers 500);
- creating needs a `name` (WebODM stores a nameless preset, as it creates the row before
  validating the body as a partial update).

The system presets come from one definition file, chalicelib/system_presets.json: WebODM
seeds them at every boot with `update_or_create` by name. Aloft has no boot, so
`ensure_system_presets` does it when a request finds the system partition seeded from
another definition (or not at all): the check rides on a read the request makes anyway
(the list's Query of the system partition, a detail's BatchGetItem), so it costs nothing
once seeded. The local stack and the tests seed at table creation (aloft_local/resources.py).

Every answer fits: a user's presets, and the system presets, weigh at most
PARTITION_BUDGET bytes each as they travel in the answer, so the list is two Query pages
and at most 1.4 MB.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Annotated

from pydantic import BaseModel, BeforeValidator, StringConstraints, ValidationError

from .api.payload import escaped, render
from .errors import InvalidInput, NotFound, PermissionDenied, drf_errors
from .models import Options, Request, utcnow
from .store import presets as store
from .store.presets import SYSTEM_OWNER, ConditionFailed

DEFINITION_FILE = Path(__file__).resolve().parent / "system_presets.json"
# What one owner's presets may weigh, each counted as it travels in the list's answer
# (`cost`). DynamoDB sizes an item at most 4/3 of that (a list of empty lists is the worst
# case), so a partition stays under 1 MB: one Query page. Two partitions make an answer
# of at most 1.4 MB, far inside the 4 MiB response budget. About 140 presets of 5 KB
# (every ODM option set), or 10 with a 64 KB boundary polygon.
PARTITION_BUDGET = 700_000
WRITABLE = ("name", "options")
_RETRIES = 3


def _char_field(value: Any) -> Any:
    """DRF's CharField: a number becomes text, text is trimmed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else value


PresetName = Annotated[str, StringConstraints(min_length=1, max_length=255), BeforeValidator(_char_field)]


class PresetWrite(Request):
    """Writable preset fields; `owner`, `system`, `created_at` and `id` are ignored, as
    WebODM's serializer makes them read-only."""
    name: PresetName
    options: Options = []


class PresetOut(BaseModel):
    id: int
    name: str
    options: list[Any]
    created_at: str
    system: bool


# ---------------------------------------------------------------- representation

def out(item: dict) -> dict:
    """The preset as WebODM's serializer renders it (no `owner`), in its field order."""
    return {"id": item["id"], "name": item["name"], "options": item.get("options") or [],
            "created_at": item["created_at"], "system": bool(item.get("system"))}


def cost(item: dict) -> int:
    """What the preset takes in a list answer, as it travels (chalicelib/api/payload.py)."""
    return escaped(render(out(item))) + 1


def _sorted(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda item: item["id"])


# ---------------------------------------------------------------- validation

def _validated(data: dict) -> PresetWrite:
    try:
        return PresetWrite.model_validate(data)
    except ValidationError as exc:
        body = drf_errors(exc)
        # A malformed option (no name, not an object) is WebODM's "Invalid options"
        # (`validate_task_options`); size and depth limits keep their own message.
        if any(err["loc"][:1] == ("options",) and len(err["loc"]) > 1 and err["type"] != "value_error"
               for err in exc.errors()):
            body["options"] = ["Invalid options"]
        raise InvalidInput(body) from None


def _written(current: dict | None, fields: dict, partial: bool) -> dict:
    """The preset's name and options after a create (current None), PUT or PATCH. As DRF's
    update, a field PUT leaves out keeps its value, but PUT, like a create, needs `name`."""
    given = {k: fields[k] for k in WRITABLE if k in fields}
    if current is None:
        return _validated(given).model_dump(mode="json")
    if not partial and "name" not in given:
        _validated(given)  # the required field's error, with any other
    base = {"name": current["name"], "options": current.get("options") or []}
    return _validated({**base, **given}).model_dump(mode="json")


def _over_budget(owner: int) -> InvalidInput:
    whose = "The system presets" if owner == SYSTEM_OWNER else "A user's presets"
    return InvalidInput(f"{whose} may weigh at most {PARTITION_BUDGET} bytes")


# ---------------------------------------------------------------- system presets

@functools.lru_cache(maxsize=1)
def _definition() -> tuple[tuple[dict, ...], str]:
    """The system presets of DEFINITION_FILE as WebODM stores them, and their hash."""
    raw = json.loads(DEFINITION_FILE.read_text())
    presets = tuple({"name": p["name"], "options": [{"name": k, "value": v} for k, v in p["options"].items()]}
                    for p in raw["presets"])
    if len({p["name"] for p in presets}) != len(presets) or len(presets) > 99:
        raise ValueError(f"{DEFINITION_FILE.name}: names must be unique, at most 99 presets")
    digest = hashlib.sha256(json.dumps(presets, sort_keys=True).encode()).hexdigest()
    return presets, digest


def definitions() -> list[dict]:
    return [dict(p) for p in _definition()[0]]


def ensure_system_presets(system: list[dict] | None = None, tally: dict | None = None) -> list[dict]:
    """The system presets, seeded first if they come from another definition (or none).

    As WebODM's boot: a preset of each defined name gets the defined options (created if
    missing), other system presets are left alone. Idempotent and safe under concurrency
    (one transaction, conditional on the recorded definition hash). Returns the system
    presets as stored."""
    if system is None or tally is None:
        system, tally = store.read_partition(SYSTEM_OWNER)
    wanted, digest = _definition()
    for _ in range(_RETRIES):
        if tally.get("seed_hash") == digest:
            return system
        by_name: dict[str, dict] = {}
        for item in _sorted(system):
            by_name.setdefault(item["name"], item)
        writes, replaced = [], []
        for definition in wanted:
            existing = by_name.get(definition["name"])
            if existing is None:
                item = {"owner": SYSTEM_OWNER, "id": store.new_id(), "name": definition["name"],
                        "options": definition["options"], "created_at": utcnow(), "system": True}
            elif existing.get("options") == definition["options"]:
                continue
            else:
                item = {**existing, "options": definition["options"]}
                replaced.append(existing)
            writes.append({**item, "size": cost(item)})
        try:
            store.seed(writes, replaced, tally, digest)
        except ConditionFailed:
            pass  # another request seeded (or a superuser edited) meanwhile: look again
        system, tally = store.read_partition(SYSTEM_OWNER)
    return system


# ---------------------------------------------------------------- what the routes do

def list_for(user: dict) -> list[dict]:
    """The user's own presets and the system presets, by id (WebODM's queryset)."""
    own, _ = store.read_partition(user["id"])
    system, tally = store.read_partition(SYSTEM_OWNER)
    system = ensure_system_presets(system, tally)
    return [out(item) for item in _sorted(own + system)]


def _visible(user: dict, preset_id: int) -> dict:
    item, tally = store.get_visible(user["id"], preset_id)
    if tally.get("seed_hash") != _definition()[1]:
        ensure_system_presets()
        item, _ = store.get_visible(user["id"], preset_id)
    if item is None:
        raise NotFound()
    return item


def get_for(user: dict, preset_id: int) -> dict:
    return out(_visible(user, preset_id))


def create_for(user: dict, fields: dict) -> dict:
    """A new preset of the user's; `system` is always false and `owner` the caller."""
    data = _written(None, fields, partial=False)
    item = {"owner": user["id"], "id": store.new_id(), "name": data["name"], "options": data["options"],
            "created_at": utcnow(), "system": False}
    item["size"] = cost(item)
    try:
        store.create(item, PARTITION_BUDGET)
    except ConditionFailed:
        raise _over_budget(user["id"]) from None  # the id is new: only the budget can refuse
    return out(item)


def _check_change(user: dict, item: dict) -> None:
    if item.get("system") and not user.get("is_superuser"):
        raise PermissionDenied()


def update_for(user: dict, preset_id: int, fields: dict, partial: bool) -> dict:
    """PUT (name required) or PATCH (any of name, options) of a preset the user may change."""
    item = _visible(user, preset_id)
    for _ in range(_RETRIES):
        _check_change(user, item)
        data = _written(item, fields, partial)
        new = {**item, **data}
        new["size"] = cost(new)
        try:
            store.replace(item, new, PARTITION_BUDGET)
            return out(new)
        except ConditionFailed:
            current = _visible(user, preset_id)
            if current.get("size") == item.get("size") and new["size"] > item["size"]:
                raise _over_budget(item["owner"]) from None
            item = current  # changed meanwhile: apply the request to what is there now
    raise _over_budget(item["owner"])


def delete_for(user: dict, preset_id: int) -> None:
    """WebODM's `destroy`: someone else's preset is a 404 (superusers included); a system
    preset is a 404 for a normal user and a 403 for a superuser."""
    item = _visible(user, preset_id)
    for _ in range(_RETRIES):
        if item.get("system"):
            if not user.get("is_superuser"):
                raise NotFound()
            raise PermissionDenied()
        try:
            store.delete(item)
            return
        except ConditionFailed:
            item = _visible(user, preset_id)  # gone: 404; changed: delete what is there
    raise NotFound()
