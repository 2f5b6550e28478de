"""Integer ids from an atomic counter (WebODM's projects, users and nodes have integer ids)."""
from __future__ import annotations

from .dynamo import ConditionFailed, Table

_table = Table("counters_table")


def next_id(name: str) -> int:
    item = _table.update({"name": name}, add={"value": 1})
    return int(item["value"])


def claim_after(name: str, now: float, next_at: float) -> bool:
    """Set `name`'s next time to `next_at` if it is due (absent or not after `now`): exactly one
    of several concurrent callers wins."""
    try:
        _table.update({"name": name}, set={"next_at": next_at},
                      condition="attribute_not_exists(#n) OR #n <= :now",
                      names={"#n": "next_at"}, values={":now": now})
    except ConditionFailed:
        return False
    return True
