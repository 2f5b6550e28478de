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

import io
import sys
import threading

_LOCK = threading.RLock()


class Serialized:
    """WSGI middleware: moto's app handles one request at a time."""

    def __init__(self, app, lock: threading.RLock | None = None):
        self.app = app
        self.lock = lock or _LOCK

    def __call__(self, environ, start_response):
        if (environ.get("HTTP_X_AMZ_TARGET") or "").startswith("AmazonSQS."):
            # SQS is not where atomicity matters here, and a long-polling receive must not
            # hold every other request for its wait.
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit():  # a slow client must not hold everyone up
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))
        with self.lock:
            return list(self.app(environ, start_response))


def moto_app():
    """moto's own WSGI app (what its ThreadedMotoServer serves), serialized."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

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
