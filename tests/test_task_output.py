"""Console output: WebODM's `?line=` / `limit` / `f` semantics over chunked storage."""
from __future__ import annotations

import pytest

from chalicelib.store import output, tasks as task_store
from chalicelib.store.dynamo import transact
from tests.helpers import new_project, new_task


def append(project_id: int, task_id: str, node_lines: list[str]) -> None:
    """Append as the poller does: chunk writes and task counters in one transaction."""
    while node_lines:
        task = task_store.get(project_id, task_id)
        ops, changes, consumed = output.append_plan(task, node_lines)
        update, _ = task_store.update_request(task, changes)
        transact(update, *ops)
        node_lines = node_lines[consumed:]


@pytest.fixture
def console(api, alice):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    url = f"/api/projects/{project['id']}/tasks/{task['id']}/output/"

    def get(**params):
        reply = api.get(url, token=alice["token"], params=params)
        return reply

    return project, task, get


def test_fresh_task_has_empty_text(console):
    _, _, get = console
    assert get().json == ""
    assert get(f="json").json == {"lines": [""], "count": 1}


def test_webodm_examples(console):
    project, task, get = console
    append(project["id"], task["id"], ["line1", "line2", "line3"])
    assert get().json == "line1\nline2\nline3"
    assert get(line=2).json == "line3"
    assert get(line=3).json == ""
    assert get(line=-1).json == "line1\nline2\nline3"
    assert get(line=0, limit=2).json == "line1\nline2"
    assert get(limit=-2).json == "line2\nline3"
    assert get(line=2, limit=-5).json == "line3"
    assert get(f="json", limit=-2).json == {"lines": ["line2", "line3"], "count": 3}
    raw = get(f="raw")
    assert raw.body == b"line1\nline2\nline3" and raw.headers["Content-Type"].startswith("text/plain")
    for bad in ({"line": "x"}, {"limit": "1.5"}, {"f": "xml"}):
        reply = get(**bad)
        assert reply.status == 400 and reply.json == ["Invalid parameter"]


def test_node_lines_with_newlines_and_trailing_blank_lines(console):
    project, task, get = console
    append(project["id"], task["id"], ["a  ", "Compressing all.zip\n", "   ", ""])
    # WebODM: text = each line + "\n", then right-stripped and split on "\n"
    expected = ("a  \nCompressing all.zip\n\n   \n\n").rstrip().split("\n")
    assert get(f="json").json == {"lines": expected, "count": len(expected)}
    append(project["id"], task["id"], ["tail"])
    expected = ("a  \nCompressing all.zip\n\n   \n\ntail\n").rstrip().split("\n")
    assert get(f="json").json == {"lines": expected, "count": len(expected)}


def test_many_lines_across_chunks_read_only_what_is_needed(console):
    project, task, get = console
    lines = [f"line {i}" for i in range(2500)]
    append(project["id"], task["id"], lines[:1200])
    append(project["id"], task["id"], lines[1200:])
    assert get(f="json", line=0, limit=1).json == {"lines": ["line 0"], "count": 2500}
    assert get(f="json", line=999, limit=3).json["lines"] == ["line 999", "line 1000", "line 1001"]
    assert get(f="json", limit=-2).json["lines"] == ["line 2498", "line 2499"]
    assert get(line=2499).json == "line 2499"
    assert get().json == "\n".join(lines)
    stored = task_store.get(project["id"], task["id"])
    assert stored["output_count"] == 2500 and stored["node_output_lines"] == 2500


def test_each_node_line_is_stored_exactly_once(console):
    project, task, get = console
    task_before = task_store.get(project["id"], task["id"])
    ops, changes, _ = output.append_plan(task_before, ["x", "y"])
    update, _ = task_store.update_request(task_before, changes)
    transact(update, *ops)
    with pytest.raises(Exception):  # a second poller holding the same stale view loses
        transact(update, *ops)
    assert get(f="json").json == {"lines": ["x", "y"], "count": 2}


def test_huge_line_and_limit_values(console):
    project, task, get = console
    append(project["id"], task["id"], ["a", "b"])
    assert get(line=10**30).json == ""
    assert get(line=-(10**30), limit=10**30).json == "a\nb"
    assert get(limit=-(10**30)).json == "a\nb"


# ---------------------------------------------------------------- a console far above 6 MB

def _huge_console() -> list[str]:
    """Lines whose escaping is as costly as it gets: control characters (1 byte, 7 in the
    proxy result), emoji (4 bytes, 14), quotes and backslashes (1 byte, 4), plus ordinary
    and empty lines. About 8.1 MB stored."""
    lines = []
    for i in range(40):
        lines += ["\x01\x1b" * 50_000, f"step {i}", ""]
    for i in range(20):
        lines += ["\U0001F600" * 25_000, '"\\' * 50_000]
    lines += [f"line {i}: {'x' * 20}" for i in range(3_000)]
    lines.append("done")
    return lines


@pytest.fixture
def huge(console):
    project, task, get = console
    lines = _huge_console()
    assert sum(len(line.encode()) + 1 for line in lines) > 8_000_000
    append(project["id"], task["id"], lines)
    return lines, get


@pytest.mark.parametrize("fmt", ["text", "json", "raw"])
def test_a_console_far_above_the_cap_is_read_incrementally_in_every_format(huge, fmt):
    from chalicelib.limits import LAMBDA_MAX_RESPONSE_BYTES
    from tests.helpers import proxy_size

    lines, get = huge
    got: list[str] = []
    answers = 0
    while len(got) < len(lines):
        reply = get(line=len(got), f=fmt)
        assert reply.status == 200 and proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES
        answers += 1
        if fmt == "json":
            assert reply.json["count"] == len(lines)
            new = reply.json["lines"]
        else:
            text = reply.json if fmt == "text" else reply.body.decode("utf-8")
            new = text.split("\n") if text else []
        assert new, f"no progress at line {len(got)}"
        got += new
    assert got == lines  # every line exactly once, in order
    assert answers > 3
    assert get(line=len(lines), f=fmt).status == 200


@pytest.mark.parametrize("fmt", ["text", "json", "raw"])
def test_whole_and_tail_reads_of_a_huge_console_stay_under_the_cap(huge, fmt):
    from chalicelib.limits import LAMBDA_MAX_RESPONSE_BYTES
    from tests.helpers import proxy_size

    lines, get = huge

    def read(**params) -> list[str]:
        reply = get(f=fmt, **params)
        assert reply.status == 200 and proxy_size(reply) < LAMBDA_MAX_RESPONSE_BYTES, params
        if fmt == "json":
            return reply.json["lines"]
        text = reply.json if fmt == "text" else reply.body.decode("utf-8")
        return text.split("\n")

    head = read()
    assert 0 < len(head) < len(lines) and head == lines[:len(head)]
    tail = read(limit=-10**9)  # the end of the console: its trailing lines that fit
    assert 0 < len(tail) < len(lines) and tail == lines[-len(tail):]
    assert read(limit=-3) == lines[-3:]
    window = read(line=100, limit=10**9)
    assert window == lines[100:100 + len(window)]
    assert read(line=-1, limit=2) == lines[:2]


def test_reading_the_end_of_a_huge_console_reads_one_chunk(huge, api):
    """`?line=N` near the end queries only the chunk holding line N."""
    from chalicelib import aws

    lines, get = huge
    calls = []
    client = aws.dynamodb()
    record = lambda model=None, **_: calls.append(model.name)  # noqa: E731
    client.meta.events.register("before-call.dynamodb.Query", record)
    try:
        reply = get(line=len(lines) - 2, f="json")
    finally:
        client.meta.events.unregister("before-call.dynamodb.Query", record)
    assert reply.json["lines"] == lines[-2:]
    assert calls == ["Query"]
