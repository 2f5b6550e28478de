"""Presets table: key (`owner`, `id`); a user's presets under their user id, the system
presets under owner 0.

Why this key: WebODM shows a user their own presets plus every system preset, so the list
is two consistent Queries (the caller's partition and the system one), whatever the number
of users and presets; one preset is a BatchGetItem of the two keys it may have. Ids come
from the `presets` counter, so they are unique across owners, as WebODM's.

Each partition holds a tally item at id 0 (`bytes`: what its presets weigh, see
chalicelib/presets.py `cost`; in the system partition also `seed_hash`, the definition the
system presets were last seeded from). Every preset write goes in one transaction with the
tally's update, conditional on the preset's own `size` as it was read, so the tally stays
exact under concurrent writes and a partition never outgrows one Query page.
"""
from __future__ import annotations

from .. import aws
from . import counters
from .dynamo import ConditionFailed, Table, deserialize, serialize, transact

_table = Table("presets_table")
SYSTEM_OWNER = 0
TALLY_ID = 0
COUNTER = "presets"


def _tally_key(owner: int) -> dict:
    return {"owner": owner, "id": TALLY_ID}


def key(item: dict) -> dict:
    return {"owner": item["owner"], "id": item["id"]}


def read_partition(owner: int) -> tuple[list[dict], dict]:
    """(presets by id, tally) of one owner: one consistent Query (a partition fits one page)."""
    items = list(_table.query("#o = :o", names={"#o": "owner"}, values={":o": owner}, consistent=True))
    tally = next((i for i in items if i["id"] == TALLY_ID), {})
    return [i for i in items if i["id"] != TALLY_ID], tally


def get_visible(user_id: int, preset_id: int) -> tuple[dict | None, dict]:
    """The preset `preset_id` if it is the user's own or a system one, and the system tally:
    one consistent BatchGetItem of the three keys."""
    keys = [{"owner": user_id, "id": preset_id}, {"owner": SYSTEM_OWNER, "id": preset_id},
            _tally_key(SYSTEM_OWNER)]
    pending = {_table.name: {"Keys": [serialize(k) for k in keys], "ConsistentRead": True}}
    found: list[dict] = []
    while pending:
        reply = aws.dynamodb().batch_get_item(RequestItems=pending)
        found.extend(deserialize(raw) for raw in reply.get("Responses", {}).get(_table.name, []))
        pending = reply.get("UnprocessedKeys") or {}
    preset = next((i for i in found if i["id"] == preset_id), None)
    tally = next((i for i in found if i["owner"] == SYSTEM_OWNER and i["id"] == TALLY_ID), {})
    return preset, tally


def new_id() -> int:
    return counters.next_id(COUNTER)


def _tally_request(owner: int, delta: int, budget: int | None, seed_hash: str | None = None,
                   expect_hash: str | None = None) -> tuple[str, dict]:
    """Transaction part: add `delta` to the owner's tally, refused when growing past `budget`;
    with `seed_hash`, also record it, only if the recorded one is still `expect_hash`."""
    conditions: list[str] = []
    names: dict = {}
    values: dict = {}
    if budget is not None and delta > 0:
        conditions.append("(attribute_not_exists(#b) OR #b <= :room)")
        names["#b"], values[":room"] = "bytes", budget - delta
    set_ = None
    if seed_hash is not None:
        set_ = {"seed_hash": seed_hash}
        names["#h"] = "seed_hash"
        if expect_hash is None:
            conditions.append("attribute_not_exists(#h)")
        else:
            conditions.append("#h = :expected")
            values[":expected"] = expect_hash
    return ("Update", _table.update_request(_tally_key(owner), set=set_, add={"bytes": delta},
                                            condition=" AND ".join(conditions) or None,
                                            names=names or None, values=values or None))


def _unchanged(item: dict) -> tuple[str, dict]:
    return "#s = :old_size", {":old_size": item["size"]}


def create(item: dict, budget: int) -> None:
    """Store a new preset (`owner`, `id`, `size`, ...); ConditionFailed if the owner's
    presets would pass `budget`."""
    transact(("Put", _table.put_request(item, condition="attribute_not_exists(id)")),
             _tally_request(item["owner"], item["size"], budget))


def replace(old: dict, new: dict, budget: int) -> None:
    """Overwrite `old` with `new` (same key); ConditionFailed if `old` changed or is gone
    since it was read, or the owner's presets would pass `budget`."""
    condition, values = _unchanged(old)
    transact(("Put", _table.put_request(new, condition=condition, names={"#s": "size"}, values=values)),
             _tally_request(old["owner"], new["size"] - old["size"], budget))


def delete(item: dict) -> None:
    """Delete the preset as it was read; ConditionFailed if it changed or is gone since."""
    condition, values = _unchanged(item)
    transact(("Delete", _table.delete_request(key(item), condition=condition, names={"#s": "size"},
                                              values=values)),
             _tally_request(item["owner"], -item["size"], None))


def seed(writes: list[dict], replaced: list[dict], tally: dict, seed_hash: str) -> None:
    """Write the system presets of a definition and record its hash, in one transaction
    conditional on the tally's previous hash (and each replaced preset being as read):
    of two seeders racing, one wins and the other sees ConditionFailed."""
    old = {i["id"]: i for i in replaced}
    parts = []
    for item in writes:
        if item["id"] in old:
            condition, values = _unchanged(old[item["id"]])
            parts.append(("Put", _table.put_request(item, condition=condition, names={"#s": "size"},
                                                    values=values)))
        else:
            parts.append(("Put", _table.put_request(item, condition="attribute_not_exists(id)")))
    delta = sum(i["size"] for i in writes) - sum(i["size"] for i in replaced)
    parts.append(_tally_request(SYSTEM_OWNER, delta, None, seed_hash=seed_hash,
                                expect_hash=tally.get("seed_hash")))
    transact(*parts)


__all__ = ["SYSTEM_OWNER", "ConditionFailed", "read_partition", "get_visible", "new_id", "create",
           "replace", "delete", "seed", "key"]
