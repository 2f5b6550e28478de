"""NodeODM client used by the poller.

NodeODM answers almost every error as HTTP 200 with ``{"error": ...}`` (``{"success": false,
"error": ...}`` for cancel/remove/restart), so the JSON body, not the status code, decides success.
Errors are typed so the poller can tell "node unreachable, retry later" (NodeConnectionError) from
"the node refused" (NodeResponseError) and "the node misbehaved" (NodeServerError).

Unlike pyodm: the token is built into each request's own query (no shared mutable default that
leaks it to other nodes), uploads are one file per request with a timeout and no worker queue
that can hang, and a task without a ``name`` does not crash the parser.
The protocol is NodeODM's REST API (its `docs/index.adoc` and `libs/` routes), as PyODM speaks it.
"""
from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import threading
import uuid as uuid_lib
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

__all__ = [
    "CALLS", "DownloadStream", "NodeClient", "NodeConnectionError", "NodeError", "NodeInfo",
    "NodeResponseError", "NodeServerError", "TaskInfo",
]


# What Aloft keeps of a node's answers, so a task or node row (and the API answers that show
# it) stays bounded whatever a node sends: an error message is cut, an over-long uuid or an
# oversized options list is a misbehaving node.
MAX_ERROR_MESSAGE_CHARS = 4000
MAX_UUID_CHARS = 128
MAX_OPTIONS_JSON_BYTES = 100_000


# ---------------------------------------------------------------------------------------------
# Errors

class NodeError(Exception):
    """Base of every error raised by this client; ``str(e)`` is a message fit for ``last_error``."""


class NodeConnectionError(NodeError):
    """The node could not be reached or did not answer in time (refused, reset, DNS, timeout)."""


class NodeResponseError(NodeError):
    """The node answered with an error of its own (``{"error": ...}``, or HTTP 401).

    ``no_retry`` mirrors NodeODM's ``noRetry`` flag: sending the same request again is pointless.
    """

    def __init__(self, message: str, *, no_retry: bool = False):
        super().__init__(message)
        self.no_retry = no_retry


class NodeServerError(NodeError):
    """The node answered something NodeODM never sends on success: unexpected HTTP status,
    invalid JSON or a reply of the wrong shape. ``status_code`` is the HTTP status when known."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


# ---------------------------------------------------------------------------------------------
# Call counter and per-thread sessions

class _CallCounter:
    """Thread-safe count of HTTP requests sent; benchmarks report it per poll cycle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def increment(self) -> None:
        with self._lock:
            self._count += 1

    def reset(self) -> int:
        """Zero the counter and return the value it had."""
        with self._lock:
            previous, self._count = self._count, 0
            return previous


CALLS = _CallCounter()

_local = threading.local()


def _session() -> requests.Session:
    """One Session per thread: keep-alive pooling without sharing a Session across threads.

    ``trust_env`` is off so node traffic never picks up a proxy, a ``.netrc`` Authorization
    header or per-request environment lookups by accident.
    """
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=8, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


_TOKEN_RE = re.compile(r"(token=)[^&\s'\")]*")


def _redact(message: str) -> str:
    """requests puts the full URL (with ``?token=``) in its messages; keep the token out of
    task errors and logs."""
    return _TOKEN_RE.sub(r"\1***", message)


# ---------------------------------------------------------------------------------------------
# Parsed replies

def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default


def _as_float(value: Any, default: float) -> float:
    if isinstance(value, bool) or value is None:
        return default
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return default if result != result else result  # NaN


@dataclass(frozen=True)
class NodeInfo:
    """``GET /info``, tolerant of missing fields (old nodes, ClusterODM)."""

    version: str
    task_queue_count: int
    max_images: int | None
    engine: str
    engine_version: str
    raw: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "NodeInfo":
        max_images = data.get("maxImages")
        if isinstance(max_images, bool):
            max_images = None
        else:
            try:
                max_images = max(0, int(float(max_images)))  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):
                max_images = None
        engine = data.get("engine")
        if "engineVersion" in data:
            engine_version = data["engineVersion"]
        elif "odmVersion" in data:
            # Nodes older than engineVersion only ran ODM and reported odmVersion.
            engine_version = data["odmVersion"]
            engine = engine if engine is not None else "odm"
        else:
            engine_version = None
        return cls(
            version=str(data.get("version") if data.get("version") is not None else "?"),
            task_queue_count=_as_int(data.get("taskQueueCount"), 0),
            max_images=max_images,
            engine=str(engine) if engine is not None else "?",
            engine_version=str(engine_version) if engine_version is not None else "?",
            raw=data,
        )


@dataclass(frozen=True)
class TaskInfo:
    """``GET /task/{uuid}/info``; ``name`` may be absent on the node, so it is optional here."""

    uuid: str
    name: str | None
    status: int | None
    error_message: str
    processing_time: int
    progress: float
    images_count: int
    options: list
    output: list[str]
    date_created: int | None = None  # epoch ms
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict, uuid: str = "", with_output: bool = False) -> "TaskInfo":
        status = data.get("status")
        if isinstance(status, dict):
            code = status.get("code")
            error_message = status.get("errorMessage")
        else:
            code, error_message = status, None
        code = None if code is None or isinstance(code, bool) else _as_int(code, 0)
        output = data.get("output") if with_output else None
        name = data.get("name")
        options = data.get("options")
        date_created = data.get("dateCreated")
        return cls(
            uuid=str(data.get("uuid") or uuid),
            name=str(name) if name is not None else None,
            status=code,
            error_message=str(error_message)[:MAX_ERROR_MESSAGE_CHARS] if error_message else "",
            processing_time=_as_int(data.get("processingTime"), -1),
            progress=min(100.0, max(0.0, _as_float(data.get("progress"), 0.0))),
            images_count=_as_int(data.get("imagesCount"), 0),
            options=list(options) if isinstance(options, list) else [],
            output=[str(line) for line in output] if isinstance(output, list) else [],
            date_created=None if date_created is None else _as_int(date_created, 0),
            raw=data,
        )


# ---------------------------------------------------------------------------------------------
# Upload and download streams

class _UploadSource:
    """Feeds exactly ``size`` bytes of an upload from any ``.read(n)`` object, chunk by chunk.

    Exposes ``len`` (bytes left) for requests_toolbelt. A short stream raises EOFError instead of
    spinning forever, and a failure of the source is kept in ``error`` so that it is reported as
    itself rather than as a node connection error.
    """

    CHUNK = 1 << 16

    def __init__(self, fileobj: Any, size: int | None, filename: str):
        self._fileobj = fileobj
        self._left = size
        self._filename = filename
        self.sent = 0
        self.error: BaseException | None = None

    @property
    def len(self) -> int:
        return self._left if self._left is not None else 0

    def read(self, n: int | None = -1) -> bytes:
        if self.error is not None:
            raise self.error
        if n is None or n < 0:
            n = self.CHUNK
        if self._left is not None:
            if self._left <= 0:
                return b""
            n = min(n, self._left)
        try:
            data = self._fileobj.read(n)
        except Exception as exc:
            self.error = exc
            raise
        if data is None:
            data = b""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            self.error = TypeError(f"upload source for {self._filename} is not a binary stream")
            raise self.error
        data = bytes(data)
        if self._left is not None:
            if not data:
                self.error = EOFError(
                    f"upload source for {self._filename} ended after {self.sent} of "
                    f"{self.sent + self._left} bytes")
                raise self.error
            if len(data) > self._left:
                data = data[:self._left]
            self._left -= len(data)
        self.sent += len(data)
        return data


def _stream_size(fileobj: Any) -> int | None:
    """Bytes left in ``fileobj`` when that can be known without reading it."""
    try:
        return len(fileobj)
    except TypeError:
        pass
    length = getattr(fileobj, "len", None)
    if isinstance(length, int):
        return length
    try:
        if fileobj.seekable():
            pos = fileobj.tell()
            end = fileobj.seek(0, os.SEEK_END)
            fileobj.seek(pos)
            return max(0, end - pos)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        stat = os.fstat(fileobj.fileno())
        return max(0, stat.st_size - fileobj.tell())
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _quote_param(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _chunked_multipart(boundary: str, filename: str, content_type: str,
                       source: _UploadSource) -> Iterator[bytes]:
    """Multipart body of unknown length, sent with chunked transfer encoding."""
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; "
           f"filename=\"{_quote_param(filename)}\"\r\nContent-Type: {content_type}\r\n\r\n"
           ).encode("utf-8")
    while True:
        data = source.read(_UploadSource.CHUNK)
        if not data:
            break
        yield data
    yield f"\r\n--{boundary}--\r\n".encode()


class DownloadStream:
    """Read-only view of a download: ``read(n)`` from urllib3 with content decoding, with
    transport failures turned into NodeConnectionError. ``bytes_read`` counts what was returned."""

    def __init__(self, raw: Any):
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        try:
            data = self._raw.read(None if n is None or n < 0 else n, decode_content=True)
        except urllib3.exceptions.DecodeError as exc:
            raise NodeServerError(f"Cannot decode download: {_redact(str(exc))}") from None
        except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
            raise NodeConnectionError(f"Download interrupted: {_redact(str(exc))}") from None
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._raw.close()


# ---------------------------------------------------------------------------------------------
# Client

def _is_uuid(body: Any) -> bool:
    """A reply carrying the node's task uuid (any non-empty string of sane length)."""
    return isinstance(body, dict) and isinstance(body.get("uuid"), str) \
        and 0 < len(body["uuid"]) <= MAX_UUID_CHARS


def _options_json(options: Any) -> str:
    """NodeODM wants a JSON string of ``[{"name", "value"}]``; a plain dict is accepted too."""
    if options is None:
        options = []
    if isinstance(options, dict):
        options = [{"name": k, "value": v} for k, v in options.items()]
    return json.dumps([{"name": o["name"], "value": o.get("value")} for o in options])


class NodeClient:
    """Talks to one NodeODM node. Cheap to create; safe to share between threads."""

    def __init__(self, hostname: str, port: int, token: str = "",
                 timeout: float | tuple[float, float] = 30.0):
        self.hostname = hostname
        self.port = int(port)
        self.token = token or ""
        self.timeout = timeout
        host = hostname.strip()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        if self.port == 443:
            self.base_url = f"https://{host}"
        elif self.port == 80:
            self.base_url = f"http://{host}"
        else:
            self.base_url = f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"NodeClient({self.base_url!r}, token={'set' if self.token else 'none'})"

    # -- transport --------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: dict | None = None,
              stream: bool = False, **kwargs: Any) -> requests.Response:
        """One HTTP request with the token, the timeout and transport errors typed."""
        query = dict(params or {})
        if self.token:
            query["token"] = self.token
        CALLS.increment()
        try:
            return _session().request(
                method, self.base_url + path, params=query or None, timeout=self.timeout,
                stream=stream, allow_redirects=(method == "GET"), **kwargs)
        except requests.exceptions.ContentDecodingError as exc:
            raise NodeServerError(_redact(str(exc))) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # ConnectionError, Timeout, ChunkedEncodingError, and URL errors (bad hostname;
            # urllib3's LocationParseError for a label over 63 characters escapes requests).
            raise NodeConnectionError(_redact(str(exc)) or type(exc).__name__) from None

    @staticmethod
    def _content(resp: requests.Response) -> bytes:
        try:
            return resp.content
        except requests.exceptions.ContentDecodingError as exc:
            raise NodeServerError(_redact(str(exc))) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise NodeConnectionError(_redact(str(exc)) or type(exc).__name__) from None

    def _parse(self, resp: requests.Response) -> Any:
        """JSON body of a reply, or the typed error it stands for."""
        code = resp.status_code
        if code == 401:
            resp.close()
            raise NodeResponseError("Unauthorized. Do you need to set a token?")
        if code not in (200, 403):
            resp.close()
            raise NodeServerError(f"Unexpected status code: {code}", status_code=code)
        content = self._content(resp)
        try:
            body = json.loads(content)
        except ValueError:
            if code != 200:
                raise NodeServerError(f"Unexpected status code: {code}", status_code=code) from None
            snippet = content[:120].decode("utf-8", "replace")
            raise NodeServerError(f"Invalid JSON response: {snippet!r}", status_code=code) from None
        if isinstance(body, dict) and body.get("error") is not None:
            error = body["error"]
            raise NodeResponseError(error if isinstance(error, str) else json.dumps(error),
                                    no_retry=bool(body.get("noRetry")))
        if code != 200:
            raise NodeServerError(f"Unexpected status code: {code}", status_code=code)
        return body

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._parse(self._send(method, path, **kwargs))

    @staticmethod
    def _task_path(uuid: str, suffix: str = "") -> str:
        return f"/task/{quote(str(uuid), safe='')}{suffix}"

    @staticmethod
    def _shape(what: str, body: Any) -> NodeServerError:
        return NodeServerError(f"Unexpected {what} reply: {json.dumps(body)[:200]}")

    # -- node -------------------------------------------------------------------------------

    def info(self) -> NodeInfo:
        body = self._call("GET", "/info")
        if not isinstance(body, dict):
            raise self._shape("info", body)
        return NodeInfo.from_json(body)

    def options(self) -> list[dict]:
        body = self._call("GET", "/options")
        if not isinstance(body, list):
            raise self._shape("options", body)
        options = [o for o in body if isinstance(o, dict)]
        if len(json.dumps(options)) > MAX_OPTIONS_JSON_BYTES:
            raise NodeServerError(f"Options reply larger than {MAX_OPTIONS_JSON_BYTES} bytes")
        return options

    # -- task creation ----------------------------------------------------------------------

    def init_task(self, name: str, options: list[dict]) -> str:
        """``POST /task/new/init``; returns the node's uuid. Options errors are raised here."""
        fields = [("options", (None, _options_json(options)))]
        if name is not None:
            fields.insert(0, ("name", (None, str(name))))
        body = self._call("POST", "/task/new/init", files=fields)
        if not _is_uuid(body):
            raise self._shape("init", body)
        return body["uuid"]

    def upload(self, uuid: str, filename: str, fileobj: Any, size: int | None = None) -> None:
        """Send one file (field ``images``) streamed from ``fileobj``.

        Pass ``size`` for streams that cannot tell their length (a botocore StreamingBody): the
        body then has a Content-Length; otherwise it goes out with chunked transfer encoding.
        A source that fails or ends early raises its own error (EOFError for a short stream),
        never a NodeError, so a broken source is not blamed on the node.
        """
        if size is None:
            size = _stream_size(fileobj)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        source = _UploadSource(fileobj, size, filename)
        if size is not None:
            from requests_toolbelt.multipart.encoder import MultipartEncoder
            encoder = MultipartEncoder(fields=[("images", (filename, source, content_type))])
            data: Any = encoder
            headers = {"Content-Type": encoder.content_type}
        else:
            boundary = uuid_lib.uuid4().hex
            data = _chunked_multipart(boundary, filename, content_type, source)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        try:
            body = self._call("POST", f"/task/new/upload/{quote(str(uuid), safe='')}",
                              data=data, headers=headers)
        except NodeError:
            if source.error is not None:
                raise source.error from None
            raise
        if source.error is not None:
            raise source.error
        if not (isinstance(body, dict) and body.get("success") is True):
            raise self._shape("upload", body)

    def upload_bytes(self, uuid: str, filename: str, content: bytes) -> None:
        """Send one file held in memory (field ``images``) as a single request body: the whole
        multipart body goes out in one write, not a piece at a time through an encoder."""
        from urllib3 import encode_multipart_formdata

        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        body, form_type = encode_multipart_formdata([("images", (filename, content, content_type))])
        reply = self._call("POST", f"/task/new/upload/{quote(str(uuid), safe='')}", data=body,
                           headers={"Content-Type": form_type})
        if not (isinstance(reply, dict) and reply.get("success") is True):
            raise self._shape("upload", reply)

    def commit(self, uuid: str) -> str:
        """``POST /task/new/commit/{uuid}``; the task starts. Returns the uuid the node gives."""
        body = self._call("POST", f"/task/new/commit/{quote(str(uuid), safe='')}")
        if not _is_uuid(body):
            raise self._shape("commit", body)
        return body["uuid"]

    # -- task state -------------------------------------------------------------------------

    def task_info(self, uuid: str, with_output: int | None = None) -> TaskInfo:
        """``with_output=N`` adds the console lines from index N (negative: the last -N)."""
        params = {"with_output": int(with_output)} if with_output is not None else None
        body = self._call("GET", self._task_path(uuid, "/info"), params=params)
        if not isinstance(body, dict):
            raise self._shape("task info", body)
        return TaskInfo.from_json(body, uuid=uuid, with_output=with_output is not None)

    @contextlib.contextmanager
    def download_all_zip(self, uuid: str) -> Iterator[tuple[DownloadStream, int | None]]:
        """Yield ``(stream, content_length_or_None)`` for the task's all.zip; closed on exit.

        NodeODM answers a missing asset with JSON (``Asset not ready``, ``<uuid> not found``):
        that is raised as NodeResponseError before anything is yielded.
        """
        resp = self._send("GET", self._task_path(uuid, "/download/all.zip"), stream=True,
                          headers={"Accept-Encoding": "identity"})
        try:
            content_type = resp.headers.get("Content-Type", "").lower()
            if resp.status_code != 200 or "json" in content_type:
                body = self._parse(resp)
                raise self._shape("download", body)
            length: int | None = None
            encoding = resp.headers.get("Content-Encoding", "identity").lower()
            if encoding in ("", "identity"):
                try:
                    length = int(resp.headers["Content-Length"])
                except (KeyError, ValueError):
                    length = None
            resp.raw.decode_content = True
            yield DownloadStream(resp.raw), length
        finally:
            resp.close()

    # -- task actions -----------------------------------------------------------------------

    def _action(self, action: str, data: dict) -> None:
        body = self._call("POST", f"/task/{action}", data=data)
        if isinstance(body, dict) and body.get("success") is True:
            return
        if isinstance(body, dict) and body.get("success") is False:
            raise NodeResponseError(f"Cannot {action} task")
        raise self._shape(action, body)

    def cancel(self, uuid: str) -> None:
        self._action("cancel", {"uuid": uuid})

    def remove(self, uuid: str) -> None:
        self._action("remove", {"uuid": uuid})

    def restart(self, uuid: str, options: list[dict] | None = None) -> None:
        """Re-run a finished, failed or canceled task; ``options`` replace the previous ones."""
        data = {"uuid": uuid}
        if options is not None:
            data["options"] = _options_json(options)
        self._action("restart", data)
