"""Integer ids from an atomic counter (WebODM's projects, users and nodes have integer ids)."""
from __future__ import annotations

from .dynamo import Table

_table = Table("counters_table")


def next_id(name: str) -> int:
    item = _table.update({"name": name}, add={"value": 1})
    return int(item["value"])
