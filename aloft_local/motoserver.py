"""moto, one request at a time: as atomic as the services it stands in for.

DynamoDB applies each conditional write and transaction atomically, and S3 each
If-None-Match PUT; moto's backends do not under concurrent requests (a Query
deep-copies items another request is changing, "dictionary changed size during
iteration", and two conditional writes may both pass their condition). Aloft's
guarantees (a lease taken once, a task submitted once, an image never overwritten)
rest on that atomicity, so everything that serves moto here serves it one request
at a time: the local stack's server (persistence.py), the server the tests and
benchmarks start (`python -m aloft_local.motoserver PORT`), and moto's in-process
mock (`serialize_in_process_moto()`). moto's work holds the GIL anyway, so little
concurrency is lost; request bodies are read before the lock is taken.
"""
from __future__ import annotations

import functools
import io
import sys
import threading

_LOCK = threading.RLock()


# Query parameters a plain S3 object read may carry (presigned URLs', response overrides, a part).
_OBJECT_READ_QUERY = {"x-id", "partNumber", "versionId"}


def _object_read(environ) -> bool:
    """An S3 GET or HEAD of one object: it changes nothing and touches one key, so it needs no
    turn (a listing does: it walks the bucket while writes change it)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("HTTP_X_AMZ_TARGET"):
        return False
    if len([part for part in (environ.get("PATH_INFO") or "").split("/") if part]) < 2:
        return False
    from urllib.parse import parse_qsl

    names = {name for name, _ in parse_qsl(environ.get("QUERY_STRING") or "", keep_blank_values=True)}
    return all(name in _OBJECT_READ_QUERY or name.startswith(("X-Amz-", "response-")) for name in names)


class Serialized:
    """WSGI middleware: moto's app handles one request at a time (object reads excepted)."""

    def __init__(self, app, lock: threading.RLock | None = None):
        self.app = app
        self.lock = lock or _LOCK

    def __call__(self, environ, start_response):
        if (environ.get("HTTP_X_AMZ_TARGET") or "").startswith("AmazonSQS.") or _object_read(environ):
            # SQS is not where atomicity matters here, and a long-polling receive must not
            # hold every other request for its wait; object reads (images relayed to nodes,
            # downloads) run side by side, as S3 serves them.
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit():  # a slow client must not hold everyone up
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))
        with self.lock:
            return list(self.app(environ, start_response))


def moto_app():
    """moto's own WSGI app (what its ThreadedMotoServer serves), serialized."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    if not hasattr(backends.list_of_moto_modules, "cache_info"):
        # moto lists its own package folder (a listdir and ~180 stats) on every request to
        # find the service a host names; the list never changes while it runs.
        listed = tuple(backends.list_of_moto_modules())
        backends.list_of_moto_modules = functools.lru_cache(maxsize=1)(lambda: listed)
    return Serialized(DomainDispatcherApplication(create_backend_app))


def make_server(host: str, port: int, app=None):
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, app or moto_app(), threaded=True, request_handler=MotoRequestHandler)


def serialize_in_process_moto() -> None:
    """moto's in-process mock (mock_aws) answering one call at a time, for code that calls
    AWS from several threads (the poller's pool) under it."""
    from moto.core.botocore_stubber import BotocoreStubber

    if getattr(BotocoreStubber.process_request, "serialized", False):
        return
    original = BotocoreStubber.process_request

    def process_request(self, request):
        if "AmazonSQS." in str(request.headers.get("X-Amz-Target") or ""):
            return original(self, request)
        with _LOCK:
            return original(self, request)

    process_request.serialized = True
    BotocoreStubber.process_request = process_request


def main() -> None:
    """`python -m aloft_local.motoserver PORT`: a moto server on 127.0.0.1, until killed."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    make_server("127.0.0.1", int(sys.argv[1])).serve_forever()


if __name__ == "__main__":
    main()
