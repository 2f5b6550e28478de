"""Project shares: SharesTable, key (`project`, `grantee`); GSI `by-grantee` (`grantee`, `project`).

One row per project and user or group holding permissions on it that it does not own:
`grantee` is `u#<user id>` or `g#<group id>` (ids never change, names may), `perms` the
permission names (`add`, `change`, `delete`, `view`). A grantee without permissions has no
row. Why these keys:
- "may this caller do X to project P" is one strongly consistent read of the caller's and
  their groups' rows of P (BatchGetItem), so a revoked share stops working at once;
- "which projects may user U see" is one Query of `by-grantee` for U and one per group of U,
  whatever the number of projects and shares in the table;
- the sharing dialog (`permissions/`, `edit/`) reads one project's rows with one Query.
The owner's permissions are implicit (projects.owner) and never stored here.
"""
from __future__ import annotations

from typing import Callable, Iterable

from .dynamo import Table

_table = Table("shares_table")
USER = "u"
GROUP = "g"


def user_grantee(user_id: int) -> str:
    return f"{USER}#{user_id}"


def group_grantee(group_id: int) -> str:
    return f"{GROUP}#{group_id}"


def parse_grantee(grantee: str) -> tuple[str, int]:
    """("u" or "g", id) of a grantee key."""
    kind, _, number = grantee.partition("#")
    return kind, int(number)


def grants(project_id: int, grantees: list[str]) -> list[dict]:
    """The rows of these grantees on one project (strongly consistent; one call)."""
    if len(grantees) == 1:
        row = _table.get({"project": project_id, "grantee": grantees[0]})
        return [row] if row else []
    return _table.batch_get([{"project": project_id, "grantee": g} for g in grantees], consistent=True)


def for_project(project_id: int) -> list[dict]:
    """Every row of a project (strongly consistent: the sharing dialog edits from it)."""
    return list(_table.query("#p = :p", names={"#p": "project"}, values={":p": project_id}, consistent=True))


def for_grantees(grantees: Iterable[str]) -> list[dict]:
    """Every row of these grantees: one Query of `by-grantee` each (eventually consistent,
    as every index; listing only)."""
    rows: list[dict] = []
    for grantee in grantees:
        rows.extend(_table.query("#g = :g", names={"#g": "grantee"}, values={":g": grantee},
                                 index="by-grantee"))
    return rows


def put_request(project_id: int, grantee: str, perms: Iterable[str]) -> tuple[str, dict]:
    """Transaction part: the grantee's permissions on the project become `perms` (not empty)."""
    return ("Put", _table.put_request({"project": project_id, "grantee": grantee, "perms": sorted(perms)}))


def delete_request(project_id: int, grantee: str) -> tuple[str, dict]:
    """Transaction part: the grantee loses every permission on the project."""
    return ("Delete", _table.delete_request({"project": project_id, "grantee": grantee}))


def delete(project_id: int, grantee: str) -> None:
    _table.delete({"project": project_id, "grantee": grantee})


def _delete_all(rows: Iterable[dict], has_time: Callable[[], bool]) -> bool:
    """Delete rows 25 at a time while `has_time()`; True when none was left."""
    batch: list[dict] = []
    for row in rows:
        batch.append({"project": row["project"], "grantee": row["grantee"]})
        if len(batch) == 25:
            if not has_time():
                return False
            _table.batch_delete(batch)
            batch = []
    if batch:
        if not has_time():
            return False
        _table.batch_delete(batch)
    return True


def remove_project(project_id: int, has_time: Callable[[], bool] = lambda: True) -> bool:
    """Forget every share of a project (it is being deleted); True when none is left."""
    rows = _table.query("#p = :p", names={"#p": "project", "#g": "grantee"}, values={":p": project_id},
                        consistent=True, projection="#p, #g")
    return _delete_all(rows, has_time)


def remove_grantee(grantee: str, has_time: Callable[[], bool] = lambda: True) -> bool:
    """Forget every share of a user or group (deleted); True when none is left."""
    return _delete_all(_table.query("#g = :g", names={"#g": "grantee"}, values={":g": grantee},
                                    index="by-grantee"), has_time)
