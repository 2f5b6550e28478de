"""Task console output, in chunks: a task's log can hold hundreds of thousands of
lines, far beyond one 400 KB item.

Items of TaskOutputTable are keyed (`task_id`, `start`): `start` is the index of
the chunk's first line. The task row keeps the counters (`output_count`, ...), so
`?line=N` reads only the chunks covering the lines it returns, and the poller
appends new lines in the same transaction that records how many node lines it
has consumed: each node line is stored exactly once.

Lines are what WebODM shows: the node's lines, each followed by a newline, with
the whole text right-stripped and split on "\\n" (WebODM's task output view).
"""
from __future__ import annotations

from typing import Callable, Iterator

from .dynamo import Table, serialize_value

_table = Table("task_output_table")
CHUNK_LINES = 1000
CHUNK_BYTES = 300_000
MAX_LINE_BYTES = 100_000
MAX_CHUNKS_PER_WRITE = 8


def _pieces(node_lines: list[str]) -> list[str]:
    pieces: list[str] = []
    for line in node_lines:
        for piece in str(line).split("\n"):
            if len(piece.encode()) > MAX_LINE_BYTES:
                piece = piece.encode()[:MAX_LINE_BYTES].decode("utf-8", "ignore") + "…"
            pieces.append(piece)
    return pieces


def counters(task: dict) -> dict:
    return {"stored": int(task.get("output_count") or 0),
            "blank_tail": int(task.get("output_blank_tail") or 0),
            "tail_start": task.get("output_tail_start"),
            "tail_lines": int(task.get("output_tail_lines") or 0),
            "tail_bytes": int(task.get("output_tail_bytes") or 0),
            "node_lines": int(task.get("node_output_lines") or 0)}


def reset_fields() -> dict:
    """Task fields for an empty console."""
    return {"output_count": 0, "output_blank_tail": 0, "output_tail_start": None,
            "output_tail_lines": 0, "output_tail_bytes": 0, "node_output_lines": 0}


def select(count: int, line: int, limit: int) -> tuple[int, int]:
    """WebODM's slicing of `lines` by `line` and `limit` as a [start, end) range."""
    start = min(max(0, line), count)
    if limit > 0:
        return start, min(start + limit, count)
    if limit < 0:
        return max(start, count - abs(limit)), count
    return start, count


def read(task: dict, line: int = 0, limit: int = 0, budget: int | None = None,
         cost: Callable[[str], int] = len) -> tuple[list[str], int]:
    """(selected lines, total count), reading only the chunks that hold them.

    With a `budget`, the lines stop at a line boundary once their summed `cost` would
    pass it (never fewer than one line): the leading lines of the selection, or for a
    negative `limit` (the end of the console) its trailing lines. A reader that asks
    again from `line` + the lines it got loses nothing.
    """
    c = counters(task)
    visible = c["stored"] - c["blank_tail"]
    count = max(1, visible)
    start, end = select(count, line, limit)
    if visible <= 0:
        return ([""] if start < end else []), count
    if start >= end:
        return [], count
    spent = 0
    lines: list[str] = []

    def take(index: int, piece: str) -> bool:
        nonlocal spent
        text = piece.rstrip() if index == visible - 1 else piece
        if budget is not None:
            spent += cost(text)
            if spent > budget and lines:
                return False
        lines.append(text)
        return True

    if limit < 0:
        for chunk in _chunks_back(task["id"], end - 1):
            first = chunk["start"]
            for offset in range(len(chunk["lines"]) - 1, -1, -1):
                index = first + offset
                if index >= end:
                    continue
                if index < start or not take(index, chunk["lines"][offset]):
                    lines.reverse()
                    return lines, count
            if first <= start:
                break
        lines.reverse()
        return lines, count
    for chunk in _chunks_forward(task["id"], start, end - 1):
        first = chunk["start"]
        for offset, piece in enumerate(chunk["lines"]):
            index = first + offset
            if index < start:
                continue
            if index >= end or not take(index, piece):
                return lines, count
    return lines, count


_KEY_NAMES = {"#t": "task_id", "#s": "start"}


def _chunks_back(task_id: str, last: int) -> Iterator[dict]:
    """Chunks from the one holding line `last` backwards (lazily: one Query page at a time)."""
    return _table.query("#t = :t AND #s <= :last", names=_KEY_NAMES,
                        values={":t": task_id, ":last": last}, forward=False, consistent=True)


def _chunks_forward(task_id: str, first: int, last: int) -> Iterator[dict]:
    """Chunks from the one holding line `first` to the one holding line `last`, in order.
    Chunks hold a varying number of lines, so the one holding `first` is found first
    (the last chunk starting at or before it); line 0 always starts chunk 0."""
    after = -1
    if first > 0:
        for chunk in _table.query("#t = :t AND #s <= :first", names=_KEY_NAMES,
                                  values={":t": task_id, ":first": first}, forward=False,
                                  consistent=True, limit=1):
            yield chunk
            after = chunk["start"]
            if after + len(chunk["lines"]) > last:
                return
    if after + 1 <= last:
        yield from _table.query("#t = :t AND #s BETWEEN :a AND :last", names=_KEY_NAMES,
                                values={":t": task_id, ":a": after + 1, ":last": last},
                                consistent=True)


def append_plan(task: dict, node_lines: list[str]) -> tuple[list[tuple[str, dict]], dict, int]:
    """Transaction parts that append node lines, the task changes that go with them,
    and how many node lines they cover (a bounded batch; the rest comes next time)."""
    c = counters(task)
    ops: list[tuple[str, dict]] = []
    stored, tail_start, tail_lines, tail_bytes = c["stored"], c["tail_start"], c["tail_lines"], c["tail_bytes"]
    blank_tail = c["blank_tail"]
    consumed = 0
    pending_tail: list[str] = []
    new_chunks: list[tuple[int, list[str], int]] = []

    for line in node_lines:
        pieces = _pieces([line])
        size = sum(len(p.encode()) for p in pieces)
        if tail_start is None or tail_lines + len(pieces) > CHUNK_LINES or tail_bytes + size > CHUNK_BYTES:
            if len(new_chunks) >= MAX_CHUNKS_PER_WRITE:
                break
            new_chunks.append((stored, [], 0))
            tail_start, tail_lines, tail_bytes = stored, 0, 0
        if new_chunks and new_chunks[-1][0] == tail_start:
            begin, lines, nbytes = new_chunks[-1]
            new_chunks[-1] = (begin, lines + pieces, nbytes + size)
        else:
            pending_tail.extend(pieces)
        tail_lines += len(pieces)
        tail_bytes += size
        stored += len(pieces)
        for piece in pieces:
            blank_tail = blank_tail + 1 if not piece.strip() else 0
        consumed += 1

    if pending_tail:
        ops.append(("Update", {
            "TableName": _table.name,
            "Key": {"task_id": {"S": task["id"]}, "start": serialize_value(c["tail_start"])},
            "UpdateExpression": "SET #l = list_append(#l, :new), #n = #n + :k, #b = #b + :bytes",
            "ConditionExpression": "#n = :expected",
            "ExpressionAttributeNames": {"#l": "lines", "#n": "n", "#b": "bytes"},
            "ExpressionAttributeValues": {
                ":new": serialize_value(pending_tail), ":k": serialize_value(len(pending_tail)),
                ":bytes": serialize_value(sum(len(p.encode()) for p in pending_tail)),
                ":expected": serialize_value(c["tail_lines"])},
        }))
    for begin, lines, nbytes in new_chunks:
        ops.append(("Put", _table.put_request(
            {"task_id": task["id"], "start": begin, "lines": lines, "n": len(lines), "bytes": nbytes},
            condition="attribute_not_exists(#s)", names={"#s": "start"})))
    changes = {"output_count": stored, "output_blank_tail": blank_tail, "output_tail_start": tail_start,
               "output_tail_lines": tail_lines, "output_tail_bytes": tail_bytes,
               "node_output_lines": c["node_lines"] + consumed}
    return ops, changes, consumed


def clear(task_id: str) -> None:
    """Delete every chunk of a task (before its counters are reset)."""
    keys = [{"task_id": task_id, "start": item["start"]}
            for item in _table.query("#t = :t", names={"#t": "task_id", "#s": "start"},
                                     values={":t": task_id}, consistent=True, projection="#t, #s")]
    _table.batch_delete(keys)


def copy(source_task_id: str, target_task_id: str) -> int:
    """Copy every chunk of a task's console to another task (a duplicate), one chunk in memory
    at a time; the target task's row carries the same counters. Idempotent: a chunk written
    again is the same item. Returns how many chunks were copied."""
    copied = 0
    for chunk in _table.query("#t = :t", names={"#t": "task_id"}, values={":t": source_task_id}, consistent=True):
        _table.put({**chunk, "task_id": target_task_id})
        copied += 1
    return copied


def lines(task: dict) -> Iterator[str]:
    """Every console line WebODM shows, in order, one chunk in memory at a time (a backup's
    `data/console_output.txt`)."""
    visible = counters(task)["stored"] - counters(task)["blank_tail"]
    if visible <= 0:
        return
    for chunk in _chunks_forward(task["id"], 0, visible - 1):
        for offset, piece in enumerate(chunk["lines"]):
            index = chunk["start"] + offset
            if index >= visible:
                return
            yield piece.rstrip() if index == visible - 1 else piece
