"""One local Lambda container: a child process that runs one event at a time.

The local gateway and scheduler start `python -m aloft_local.lambda_runtime APP
READ_FD WRITE_FD` for a function and send it events over a pipe, as Lambda's
runtime API does: the event arrives as JSON bytes, the handler's result leaves as
JSON bytes, and nothing else is shared with other requests. A container that
outlives its timeout is killed by its parent, as Lambda kills a timed-out
sandbox. stdout and stderr are the function's log (CloudWatch's place).

Frames are `<4-byte big-endian length><bytes>`: a request is a JSON header
(`function`, `timeout_ms`, `request_id`) then the event; a reply is a JSON header
(`status`: ok | error, `errorType`, `errorMessage`) then the payload.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import sys
import traceback

_LENGTH = struct.Struct(">I")


def write_frame(stream, payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)


def read_frame(stream) -> bytes | None:
    """The next frame, or None at end of stream."""
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    body = _read_exactly(stream, length)
    if body is None:
        raise EOFError("truncated frame")
    return body


def _read_exactly(stream, size: int) -> bytes | None:
    parts, missing = [], size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            if missing == size:
                return None
            raise EOFError("truncated frame")
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def load_app(spec: str):
    """`module:attribute`, e.g. `app:app`."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


def _handler(app, function: str):
    if function == "api_handler":
        return app
    return app.handler_map[function]


def serve(app_spec: str, requests, replies) -> None:
    from chalice.local import LambdaContext

    app = load_app(app_spec)
    while True:
        raw_header = read_frame(requests)
        if raw_header is None:
            return
        header = json.loads(raw_header)
        event = json.loads(read_frame(requests) or b"null")
        context = LambdaContext(header["function"], int(header.get("memory_mb", 1024)),
                                max_runtime_ms=int(header["timeout_ms"]))
        context.aws_request_id = header.get("request_id", "")
        try:
            result = _handler(app, header["function"])(event, context)
            payload = json.dumps(result, separators=(",", ":")).encode()
            reply = {"status": "ok"}
        except Exception as error:  # what Lambda reports as a function error
            traceback.print_exc()
            reply = {"status": "error", "errorType": type(error).__name__, "errorMessage": str(error)}
            payload = b""
        write_frame(replies, json.dumps(reply).encode())
        write_frame(replies, payload)
        replies.flush()


def main() -> None:
    # Ctrl-C in `make run`'s terminal reaches the whole process group: the stack stops its
    # containers itself (a container also ends when its pipe closes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    app_spec, read_fd, write_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.path.insert(0, os.getcwd())
    with os.fdopen(read_fd, "rb", buffering=0) as requests, os.fdopen(write_fd, "wb") as replies:
        serve(app_spec, requests, replies)


if __name__ == "__main__":
    main()
