"""A fake NodeODM 2.2.4: a real HTTP server on 127.0.0.1 that speaks the protocol described in
NodeODM's REST API (errors as HTTP 200 JSON, ``?token=`` auth, chunked upload flow,
cancel/remove/restart semantics), so the client and the poller are tested over real sockets.

Task state is computed from timestamps when observed (no background threads): a committed task is
QUEUED while ``parallel_tasks`` others run, RUNNING for ``processing_seconds`` with progress and
console lines growing linearly, then COMPLETED (or FAILED, per the knobs).

    with FakeNodeODM(token="s3cret", processing_seconds=0.2) as node:
        client = NodeClient(node.hostname, node.port, token="s3cret")
"""
from __future__ import annotations

import collections
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid as uuid_lib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import python_multipart
from python_multipart.multipart import parse_options_header

QUEUED, RUNNING, FAILED, COMPLETED, CANCELED = 10, 20, 30, 40, 50

AUTH_ERROR = "Invalid authentication token: token does not match."

STAGES = ["dataset", "split", "merge", "opensfm", "openmvs", "odm_filterpoints", "odm_meshing",
          "mvs_texturing", "odm_georeferencing", "odm_dem", "odm_orthophoto", "odm_report",
          "odm_postprocess"]

AUTO_ADDED_OPTIONS = ("pc-ept", "cog", "gltf")

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                      re.IGNORECASE)


def default_options() -> list[dict]:
    """A realistic subset of ODM's options as NodeODM's /options lists them (values are strings)."""
    def opt(name: str, type_: str, value: str, domain: Any, help_: str) -> dict:
        return {"name": name, "type": type_, "value": value, "domain": domain, "help": help_}
    return [
        opt("end-with", "enum", "odm_postprocess", list(STAGES),
            "End processing at this stage. Can be one of: %(choices)s. Default: %(default)s"),
        opt("rerun-from", "enum", "", list(STAGES),
            "Rerun processing from this stage. Can be one of: %(choices)s. Default: %(default)s"),
        opt("orthophoto-resolution", "float", "5", "float > 0.0",
            "Orthophoto resolution in cm / pixel. Default: %(default)s"),
        opt("dem-resolution", "float", "5", "float > 0.0",
            "DSM/DTM resolution in cm / pixel. Default: %(default)s"),
        opt("dsm", "bool", "false", "",
            "Use this tag to build a DSM (Digital Surface Model). Default: %(default)s"),
        opt("dtm", "bool", "false", "",
            "Use this tag to build a DTM (Digital Terrain Model). Default: %(default)s"),
        opt("mesh-size", "int", "200000", "positive integer",
            "The maximum vertex count of the output mesh. Default: %(default)s"),
        opt("fast-orthophoto", "bool", "false", "",
            "Skips dense reconstruction and 3D model generation. Default: %(default)s"),
        opt("feature-quality", "enum", "high", ["ultra", "high", "medium", "low", "lowest"],
            "Set feature extraction quality. Can be one of: %(choices)s. Default: %(default)s"),
        opt("min-num-features", "int", "10000", "integer",
            "Minimum number of features to extract per image. Default: %(default)s"),
        opt("texturing-nadir-weight", "int", "16", "integer: 0 <= x <= 32",
            "Affects orthophotos only. Default: %(default)s"),
        opt("crop", "float", "3", "float >= 0",
            "Crop image outputs by N meters. Use 0 to disable cropping. Default: %(default)s"),
        opt("max-concurrency", "int", "4", "positive integer",
            "The maximum number of processes to use. Default: %(default)s"),
        opt("cameras", "string", "", "json",
            "Use the camera parameters computed from another dataset. Default: %(default)s"),
        opt("pc-ept", "bool", "false", "",
            "Export the point cloud in Entwine Point Tile format. Default: %(default)s"),
        opt("cog", "bool", "false", "",
            "Create Cloud-Optimized GeoTIFFs instead of normal GeoTIFFs. Default: %(default)s"),
        opt("gltf", "bool", "false", "",
            "Generate single file Binary glTF (GLB) textured models. Default: %(default)s"),
    ]


def _js_number(value: float) -> int | float:
    """JSON numbers as JavaScript prints them (2, not 2.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def _js_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(_js_number(value))
    return str(value)


def _parse_int(value: Any) -> int | None:
    """JavaScript parseInt: leading integer of the string, or None (NaN)."""
    match = re.match(r"\s*([+-]?\d+)", _js_str(value))
    return int(match.group(1)) if match else None


def _parse_float(value: Any) -> float | None:
    match = re.match(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", _js_str(value))
    return float(match.group(1)) if match else None


class OptionsError(Exception):
    """Message is what NodeODM puts in ``{"error": ...}``."""


def filter_options(raw: Any, known: list[dict], skip_post_processing: bool) -> list[dict]:
    """NodeODM's odmInfo.filterOptions: parse, convert by type, check domains, drop unknown
    names, append the post-processing options."""
    if raw is None or raw == "":
        raw = "[]"
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            snippet = raw[:20]
            raise OptionsError(f"Unexpected token '{raw[:1]}', \"{snippet}\" is not valid JSON") \
                from None
    if not isinstance(raw, list):
        raw = []  # JSON that is not a list counts as no options
    given: dict[str, Any] = {}
    for item in raw:  # unknown names are dropped silently; of a name given twice, the first counts
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            given.setdefault(item["name"], item.get("value"))
    result: list[dict] = []
    errors: list[dict] = []
    for spec in known:  # in the node's /options order, not the request's
        if spec["name"] not in given:
            continue
        try:
            result.append({"name": spec["name"], "value": _convert(spec, given[spec["name"]])})
        except OptionsError as exc:
            errors.append({"name": spec["name"], "error": str(exc)})
    if errors:
        raise OptionsError(json.dumps(errors, separators=(",", ":")))
    if not skip_post_processing:
        present = {o["name"] for o in result}
        result += [{"name": n, "value": True} for n in AUTO_ADDED_OPTIONS
                   if any(o["name"] == n for o in known) and n not in present]
    return result


def _convert(spec: dict, value: Any) -> Any:
    type_, domain = spec["type"], spec["domain"]
    if type_ == "bool":
        if value is True or value in ("true", "1"):  # strings only: the number 1 is an error
            return True
        if value is False or value in ("false", "0"):
            return False
        raise OptionsError(f"Cannot convert {_js_str(value)} to boolean")
    if type_ in ("int", "float"):
        number = _parse_int(value) if type_ == "int" else _parse_float(value)
        if number is None:
            raise OptionsError(f"Invalid value {_js_str(value)} (not a number)")
        number = _js_number(number)
        if not _in_domain(number, str(domain)):
            raise OptionsError(f"Invalid value {_js_str(number)} (out of range)")
        return number
    if type_ == "enum":
        if isinstance(domain, list) and value not in domain:
            raise OptionsError(f"Invalid value {_js_str(value)} (not in enum)")
        return value
    if domain == "json":
        try:
            json.loads(value)
        except (TypeError, ValueError):
            raise OptionsError(f"Invalid value {_js_str(value)} (not valid JSON)") from None
    return value


def _in_domain(number: float, domain: str) -> bool:
    domain = domain.strip()
    if domain.startswith("positive"):
        return number >= 0
    if domain.startswith("negative"):
        return number <= 0
    if domain == "percent":
        return 0 <= number <= 100
    match = re.match(r"^(?:integer|float)\s*:\s*([-\d.]+)\s*<=\s*x\s*<=\s*([-\d.]+)$", domain)
    if match:
        return float(match.group(1)) <= number <= float(match.group(2))
    match = re.match(r"^(?:integer|float)\s*(>=|<=|>|<)\s*([-\d.]+)$", domain)
    if match:
        op, bound = match.group(1), float(match.group(2))
        return {">": number > bound, ">=": number >= bound, "<": number < bound,
                "<=": number <= bound}[op]
    return True


# -------------------------------------------------------------------------------------------------

@dataclass(eq=False)
class FakeTask:
    """One task on the fake node. ``status``, ``progress``, ``processing_time`` and ``output()``
    are computed when read; ``committed`` is False between init and commit."""

    node: "FakeNodeODM" = field(repr=False)
    uuid: str
    name: str | None
    options: list
    date_created: int                       # epoch ms
    skip_post_processing: bool = False
    webhook: str | None = None
    outputs: list | None = None
    images: dict = field(default_factory=dict)   # file name -> bytes, in upload order
    committed: bool = False
    _state: int | None = None
    error_message: str | None = None
    seq: int = 0                            # FIFO position in the queue
    queued_at: float = 0.0                  # monotonic
    started_at: float = 0.0
    duration: float = 0.0
    lines_total: int = 0
    _end_progress: float = 0.0
    _end_lines: int = 0
    _end_processing_ms: int = -1
    has_zip: bool = False                   # all.zip exists on "disk" (kept across restarts)
    setup_until: float = 0.0                # monotonic: reported RUNNING/-1 while queued before this

    @property
    def status(self) -> int | None:
        with self.node._lock:
            self.node._advance()
            return self._state

    @property
    def progress(self) -> float:
        with self.node._lock:
            return self._view(self.node._advance())[0]

    @property
    def processing_time(self) -> int:
        with self.node._lock:
            return self._view(self.node._advance())[1]

    @property
    def finished_at(self) -> float | None:
        """When the node finished the task (time.time()), once it has."""
        with self.node._lock:
            self.node._advance()
            if self._state not in (COMPLETED, FAILED, CANCELED) or not self.started_at:
                return None
            return time.time() - (time.monotonic() - (self.started_at + self.duration))

    @property
    def images_count(self) -> int:
        return sum(1 for n in self.images if not _is_aux_file(n))

    def _view(self, now: float) -> tuple[float, int, int]:
        """(progress, processing time ms, number of console lines) at ``now``."""
        if self._state == RUNNING:
            elapsed = max(0.0, now - self.started_at)
            fraction = min(1.0, elapsed / self.duration) if self.duration > 0 else 1.0
            return (round(fraction * 100, 2), int(elapsed * 1000),
                    int(self.lines_total * fraction))
        if self._state == QUEUED:
            return 0.0, -1, 0
        return self._end_progress, self._end_processing_ms, self._end_lines

    def output(self) -> list[str]:
        with self.node._lock:
            self.node._advance()
            _, _, lines = self._view(time.monotonic())
            return [f"[INFO] step {k} of {self.lines_total}" for k in range(1, lines + 1)]

    def info_json(self, now: float, with_output: Any = None) -> dict:
        progress, processing_ms, lines = self._view(now)
        code = self._state
        if code == QUEUED and now < self.setup_until:
            code = RUNNING  # NodeODM's new task: RUNNING with processingTime -1 while set up
        status: dict = {"code": code}
        if self.error_message:
            status["errorMessage"] = self.error_message
        data: dict = {"uuid": self.uuid}
        if self.name is not None:
            data["name"] = self.name
        data.update({
            "dateCreated": self.date_created, "processingTime": processing_ms, "status": status,
            "options": self.options, "imagesCount": self.images_count,
            "progress": _js_number(progress),
        })
        if with_output is not None:
            start = _parse_int(with_output) or 0
            data["output"] = [f"[INFO] step {k} of {self.lines_total}"
                              for k in range(1, lines + 1)][start:]
        return data


def _is_aux_file(name: str) -> bool:
    """Files NodeODM moves to gcp/ instead of images/ (not counted in imagesCount)."""
    lower = name.lower()
    return lower.endswith(".txt") or lower.startswith("align.")


class _Server(ThreadingHTTPServer):
    """Tracks open connections so going offline also drops keep-alive sockets."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], fake: "FakeNodeODM"):
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-reply are expected (timeouts, go_offline)


class FakeNodeODM:
    """A NodeODM look-alike with knobs for latency, failures, going offline and forgetting."""

    hostname = "127.0.0.1"

    def __init__(self, *, token: str = "", latency: float = 0.0, processing_seconds: float = 0.3,
                 max_images: int | None = None, parallel_tasks: int = 1,
                 all_zip: bytes | None = None, output_lines: int = 50):
        self._lock = threading.RLock()
        self._clock = time.monotonic()
        self.token = token
        self.latency = latency
        self._processing_seconds = processing_seconds
        self._parallel_tasks = parallel_tasks
        self._fail_tasks = False
        self._fail_message: str | None = None
        self.max_images = max_images
        self.refuse_uploads = False
        self.force_status: int | None = None  # answer everything with this status, text body
        self.output_lines = output_lines
        # A real NodeODM reports a new task RUNNING (processingTime -1) while it moves the
        # images into place, then QUEUED if others are ahead, then RUNNING when it starts:
        # for this long after a commit, a task still waiting for a slot reads RUNNING.
        self.setup_seconds = 0.0
        self._all_zip = all_zip
        self.options_list: list[dict] = default_options()
        self.info_overrides: dict = {}       # merged into /info (a value of ... removes the key)
        # The node's link, shared by every upload at once (None: as fast as loopback goes).
        self.ingress_bytes_per_second: float | None = None
        self._ingress_free_at = 0.0
        self.calls: collections.Counter = collections.Counter()
        self.call_times: dict[str, list[float]] = collections.defaultdict(list)  # route -> time.time()s
        self.tasks: dict[str, FakeTask] = {}
        self.task_creations = 0
        self.port = 0
        self._seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def throttle(self, size: int) -> None:
        """Hold a request body's piece until the node's link has carried it (all uploads share it)."""
        rate = self.ingress_bytes_per_second
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._ingress_free_at = max(now, self._ingress_free_at) + size / rate
            wait = self._ingress_free_at - now
        time.sleep(wait)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "FakeNodeODM":
        self.go_online()
        return self

    def stop(self) -> None:
        self.go_offline()

    def __enter__(self) -> "FakeNodeODM":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def online(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.hostname}:{self.port}"

    def go_online(self) -> None:
        """Listen (again) on the same port."""
        if self._server is not None:
            return
        server = _Server((self.hostname, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"fake-nodeodm-{self.port}", daemon=True)
        self._thread.start()

    def go_offline(self) -> None:
        """Close the listening socket and every open connection: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def forget_all_tasks(self) -> None:
        """Like a node restart that lost its state: every uuid becomes "not found"."""
        with self._lock:
            self.tasks.clear()

    # -- knobs that change the simulation: settle the past before changing them ---------------

    @property
    def processing_seconds(self) -> float:
        return self._processing_seconds

    @processing_seconds.setter
    def processing_seconds(self, value: float) -> None:
        with self._lock:
            now = self._advance()
            self._processing_seconds = value
            for task in self._active():
                if task._state == RUNNING:  # applies to running tasks, never into the past
                    task.duration = max(value, now - task.started_at)

    @property
    def parallel_tasks(self) -> int:
        return self._parallel_tasks

    @parallel_tasks.setter
    def parallel_tasks(self, value: int) -> None:
        with self._lock:
            now = self._advance()
            self._parallel_tasks = value
            self._fill(now)

    @property
    def fail_tasks(self) -> bool:
        return self._fail_tasks

    @fail_tasks.setter
    def fail_tasks(self, value: bool) -> None:
        with self._lock:
            self._advance()
            self._fail_tasks = value

    @property
    def fail_message(self) -> str | None:
        return self._fail_message

    @fail_message.setter
    def fail_message(self, value: str | None) -> None:
        with self._lock:
            self._advance()
            self._fail_message = value

    @property
    def all_zip(self) -> bytes:
        if self._all_zip is None:
            try:
                from tests.sample_data import build_all_zip
            except ImportError:  # imported from inside tests/
                from sample_data import build_all_zip  # type: ignore[no-redef]
            self._all_zip = build_all_zip()
        return self._all_zip

    @all_zip.setter
    def all_zip(self, value: bytes | None) -> None:
        self._all_zip = value

    # -- task simulation (callers hold self._lock) --------------------------------------------

    def _active(self) -> list[FakeTask]:
        return [t for t in self.tasks.values() if t.committed and t._state in (QUEUED, RUNNING)]

    def _advance(self) -> float:
        """Replay finishes (and the starts they allow) in time order up to now."""
        now = max(time.monotonic(), self._clock)
        while True:
            running = [t for t in self._active() if t._state == RUNNING]
            if not running:
                break
            task = min(running, key=lambda t: (t.started_at + t.duration, t.seq))
            end = task.started_at + task.duration
            if end > now:
                break
            self._finish(task, end)
            self._fill(end)
        self._clock = now
        return now

    def _fill(self, at: float) -> None:
        active = self._active()
        running = sum(1 for t in active if t._state == RUNNING)
        queued = sorted((t for t in active if t._state == QUEUED), key=lambda t: t.seq)
        for task in queued[:max(0, self._parallel_tasks - running)]:
            task._state = RUNNING
            task.started_at = at
            task.duration = max(0.0, self._processing_seconds)
            task.lines_total = self.output_lines

    def _finish(self, task: FakeTask, end: float) -> None:
        task._end_processing_ms = int(task.duration * 1000)
        task._end_progress = 100.0
        task._end_lines = task.lines_total
        if self._fail_tasks or self._fail_message:
            task._state = FAILED
            task.error_message = self._fail_message or None
        else:
            task._state = COMPLETED
            task.error_message = None
            task.has_zip = True

    def _enqueue(self, task: FakeTask, now: float) -> None:
        self._seq += 1
        task.seq = self._seq
        task.queued_at = now
        task._state = QUEUED
        task.error_message = None
        task._end_progress, task._end_lines, task._end_processing_ms = 0.0, 0, -1
        self._fill(now)

    def _new_uuid(self, requested: str | None) -> str:
        if requested is None:
            return str(uuid_lib.uuid4())
        if not _UUID_RE.match(requested) or requested in self.tasks:
            raise OptionsError(f"Invalid set-uuid: {requested}")
        return requested

    def _create(self, fields: dict, headers: Any, now_ms: int) -> FakeTask:
        """Common part of /task/new/init and /task/new (raises OptionsError)."""
        skip = fields.get("skipPostProcessing") == "true"
        options = filter_options(fields.get("options"), self.options_list, skip)
        uuid = self._new_uuid(headers.get("set-uuid"))
        name = fields.get("name")
        if name == "":
            name = "Task of " + datetime.now(timezone.utc).isoformat(timespec="milliseconds") \
                .replace("+00:00", "Z")
        outputs = None
        if fields.get("outputs"):
            try:
                outputs = json.loads(fields["outputs"])
            except ValueError:
                raise OptionsError("Invalid outputs") from None
        date_created = _parse_int(fields.get("dateCreated")) if fields.get("dateCreated") else None
        return FakeTask(node=self, uuid=uuid, name=name, options=options,
                        date_created=date_created or now_ms, skip_post_processing=skip,
                        webhook=fields.get("webhook") or None, outputs=outputs)

    def _commit(self, task: FakeTask, now: float) -> None:
        task.committed = True
        task.setup_until = now + self.setup_seconds
        count = task.images_count
        if self.max_images is not None and count > self.max_images:
            self._seq += 1
            task.seq = self._seq
            task._state = FAILED
            task.error_message = (f"{count} images uploaded, but this node can only process "
                                  f"up to {self.max_images}.")
        else:
            self._enqueue(task, now)

    # -- route handlers: each returns (status, body) or raises -------------------------------

    def node_info(self) -> dict:
        with self._lock:
            self._advance()
            queue = len(self._active())
        info = {"version": "2.2.4", "taskQueueCount": queue, "totalMemory": 16 * 1024 ** 3,
                "availableMemory": 12 * 1024 ** 3, "cpuCores": 4, "maxImages": self.max_images,
                "maxParallelTasks": self._parallel_tasks, "engineVersion": "?", "engine": "odm"}
        for key, value in self.info_overrides.items():
            if value is ...:
                info.pop(key, None)
            else:
                info[key] = value
        return info


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeNodeODM/2.2.4"
    disable_nagle_algorithm = True  # else headers and body in two writes cost a 40 ms delayed ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._drain()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- request body -------------------------------------------------------------------------

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body, Content-Length or chunked, in pieces."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed mid-body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while size:
                    data = self.rfile.read(min(size, 1 << 16))
                    if not data:
                        raise ConnectionError("client closed mid-body")
                    size -= len(data)
                    self.server.fake.throttle(len(data))
                    yield data
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, 1 << 16))
                if not data:
                    raise ConnectionError("client closed mid-body")
                left -= len(data)
                self.server.fake.throttle(len(data))
                yield data

    def _drain(self) -> None:
        for _ in self._body_chunks():
            pass

    def _read_form(self) -> tuple[dict, list[tuple[str, str, bytes]], str | None]:
        """(fields, files as (field, filename, bytes), error) from the body, per Content-Type."""
        ctype, params = parse_options_header(self.headers.get("Content-Type", ""))
        if ctype == b"multipart/form-data" and params.get(b"boundary"):
            return self._read_multipart(params[b"boundary"])
        body = b"".join(self._body_chunks())
        if ctype == b"application/json":
            try:
                data = json.loads(body or b"{}")
            except ValueError as exc:
                return {}, [], str(exc)
            return (data if isinstance(data, dict) else {}), [], None
        if ctype == b"application/x-www-form-urlencoded":
            parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            return {k: v[0] for k, v in parsed.items()}, [], None
        return {}, [], None

    def _read_multipart(self, boundary: bytes) -> tuple[dict, list, str | None]:
        fields: dict[str, str] = {}
        files: list[tuple[str, str, bytes]] = []
        state: dict = {}

        def on_part_begin() -> None:
            state.update(headers={}, field=b"", value=b"", data=bytearray())

        def on_header_field(data: bytes, start: int, end: int) -> None:
            state["field"] += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            state["value"] += data[start:end]

        def on_header_end() -> None:
            state["headers"][state["field"].lower()] = state["value"]
            state["field"], state["value"] = b"", b""

        def on_part_data(data: bytes, start: int, end: int) -> None:
            state["data"] += data[start:end]

        def on_part_end() -> None:
            _, disposition = parse_options_header(state["headers"].get(b"content-disposition"))
            name = disposition.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in disposition:
                filename = disposition[b"filename"].decode("utf-8", "replace")
                files.append((name, filename.replace("/", "_").replace("\\", "_"),
                              bytes(state["data"])))
            else:
                fields[name] = bytes(state["data"]).decode("utf-8", "replace")

        parser = python_multipart.MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field,
            "on_header_value": on_header_value, "on_header_end": on_header_end,
            "on_part_data": on_part_data, "on_part_end": on_part_end})
        error = None
        for chunk in self._body_chunks():
            if error is None:
                try:
                    parser.write(chunk)
                except Exception as exc:  # keep draining so the connection stays usable
                    error = f"Multipart: {exc}"
        if error is None:
            try:
                parser.finalize()
            except Exception as exc:
                error = f"Multipart: {exc}"
        return fields, files, error

    # -- responses ----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str,
              extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        view = memoryview(body)
        for offset in range(0, len(body), 1 << 16):
            self.wfile.write(view[offset:offset + (1 << 16)])

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(),
                   "application/json; charset=utf-8")

    def _error(self, message: str, **extra: Any) -> None:
        self._json({"error": message, **extra})

    def _not_found(self, method: str, path: str) -> None:
        html = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>Error</title>\n</head>\n<body>\n<pre>Cannot {method} {path}</pre>\n"
                f"</body>\n</html>\n")
        self._send(404, html.encode(), "text/html; charset=utf-8")

    # -- routing ------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        route, args = _route(method, segments)
        try:
            if route in ("init", "upload", "new"):
                fields, files, form_error = self._read_form()
            elif route in ("cancel", "remove", "restart"):
                fields, files, form_error = self._read_form()
                if self.headers.get("Content-Type", "").startswith("multipart/"):
                    fields = {}  # these routes do not parse multipart
            else:
                self._drain()
                fields, files, form_error = {}, [], None
        except (ConnectionError, OSError, ValueError):
            self.close_connection = True
            return
        with fake._lock:
            fake.calls[route or "not_found"] += 1
            fake.call_times[route or "not_found"].append(time.time())
        if fake.latency > 0:
            time.sleep(fake.latency)
        if fake.force_status is not None:
            status = fake.force_status
            self._send(status, f"{status} {self.responses.get(status, ('',))[0]}".encode(),
                       "text/html; charset=utf-8")
            return
        if route is None:
            self._not_found(method, path)
            return
        if route == "info" and query.get("_debugUnauthorized"):
            self._send(401, b"Unauthorized", "text/plain; charset=utf-8")
            return
        if not route.startswith("auth_") and fake.token and query.get("token") != fake.token:
            self._error(AUTH_ERROR)
            return
        if form_error:
            self._error(form_error)
            return
        try:
            getattr(self, f"_route_{route}")(fake, query, fields, files, *args)
        except OSError:
            raise  # the client went away
        except Exception:  # a bug in the fake: make it loud, not a silent hang-up
            trace = traceback.format_exc()
            sys.stderr.write(trace)
            self.close_connection = True
            self._send(500, trace.encode(), "text/plain; charset=utf-8")

    # -- node routes ----------------------------------------------------------------------------

    def _route_info(self, fake: FakeNodeODM, query: dict, *_: Any) -> None:
        self._json(fake.node_info())

    def _route_options(self, fake: FakeNodeODM, *_: Any) -> None:
        self._json(fake.options_list)

    def _route_auth_info(self, *_: Any) -> None:
        self._json({"message": "Authentication not available on this node", "loginUrl": None,
                    "registerUrl": None})

    def _route_auth_post(self, *_: Any) -> None:
        self._error("Not available")

    def _route_list(self, fake: FakeNodeODM, *_: Any) -> None:
        with fake._lock:
            self._json([{"uuid": u} for u, t in fake.tasks.items() if t.committed])

    # -- task creation ------------------------------------------------------------------------

    def _route_init(self, fake: FakeNodeODM, query: dict, fields: dict, files: list) -> None:
        with fake._lock:
            try:
                task = fake._create(fields, self.headers, int(time.time() * 1000))
            except OptionsError as exc:
                self._error(str(exc))
                return
            fake.tasks[task.uuid] = task
            fake.task_creations += 1
        self._json({"uuid": task.uuid})

    def _route_upload(self, fake: FakeNodeODM, query: dict, fields: dict, files: list,
                      uuid: str) -> None:
        if fake.refuse_uploads:
            self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")
            return
        with fake._lock:
            task = fake.tasks.get(uuid)
            if task is None or task.committed:
                self._error("Invalid uuid (not found)")
                return
            if any(name != "images" for name, _, _ in files):
                self._error("Unexpected field")
                return
            if not files:
                self._error("Need at least 1 file.", noRetry=True)
                return
            for _, filename, data in files:
                task.images[_unique_name(task.images, filename)] = data
        self._json({"success": True})

    def _route_commit(self, fake: FakeNodeODM, query: dict, fields: dict, files: list,
                      uuid: str) -> None:
        with fake._lock:
            now = fake._advance()
            task = fake.tasks.get(uuid)
            if task is None or task.committed:
                self._error("Invalid uuid (not found)")
                return
            if not task.images:  # the upload session is dropped
                del fake.tasks[uuid]
                self._error("Need at least 1 file.")
                return
            fake._commit(task, now)
        self._json({"uuid": uuid})

    def _route_new(self, fake: FakeNodeODM, query: dict, fields: dict, files: list) -> None:
        if any(name != "images" for name, _, _ in files):
            self._error("Unexpected field")
            return
        if not files and not fields.get("zipurl"):
            self._error("Need at least 1 file or a zip file url.")
            return
        images = sum(1 for _, filename, _ in files if not _is_aux_file(filename))
        if fake.max_images is not None and images > fake.max_images:
            self._error(f"{images} images uploaded, but this node can only process up to "
                        f"{fake.max_images}.")
            return
        with fake._lock:
            now = fake._advance()
            try:
                task = fake._create(fields, self.headers, int(time.time() * 1000))
            except OptionsError as exc:
                self._error(str(exc))
                return
            for _, filename, data in files:
                task.images[_unique_name(task.images, filename)] = data
            fake.tasks[task.uuid] = task
            fake.task_creations += 1
            if fields.get("zipurl") and not files:
                task.committed = True
                fake._seq += 1
                task.seq = fake._seq
                task._state = FAILED
                task.error_message = "zipurl is not supported by FakeNodeODM"
            else:
                fake._commit(task, now)
        self._json({"uuid": task.uuid})

    # -- task state -----------------------------------------------------------------------------

    def _committed_task(self, fake: FakeNodeODM, uuid: str) -> FakeTask | None:
        task = fake.tasks.get(uuid)
        return task if task is not None and task.committed else None

    def _route_task_info(self, fake: FakeNodeODM, query: dict, fields: dict, files: list,
                         uuid: str) -> None:
        with fake._lock:
            now = fake._advance()
            task = self._committed_task(fake, uuid)
            if task is None:
                self._error(f"{uuid} not found")
                return
            data = task.info_json(now, query.get("with_output"))
        self._json(data)

    def _route_output(self, fake: FakeNodeODM, query: dict, fields: dict, files: list,
                      uuid: str) -> None:
        with fake._lock:
            now = fake._advance()
            task = self._committed_task(fake, uuid)
            if task is None:
                self._error(f"{uuid} not found")
                return
            lines = task.info_json(now, query.get("line", "0"))["output"]
        self._json(lines)

    def _route_download(self, fake: FakeNodeODM, query: dict, fields: dict, files: list,
                        uuid: str, asset: str) -> None:
        with fake._lock:
            fake._advance()
            task = self._committed_task(fake, uuid)
            if task is None:
                self._error(f"{uuid} not found")
                return
            if asset != "all.zip":
                self._error("Invalid asset")
                return
            ready = task.has_zip
        if not ready:
            self._error("Asset not ready")
            return
        self._send(200, fake.all_zip, "application/zip",
                   {"Content-Disposition": "attachment; filename=all.zip"})

    # -- task actions -------------------------------------------------------------------------

    def _action_task(self, fake: FakeNodeODM, fields: dict) -> FakeTask | None:
        uuid = fields.get("uuid")
        if not uuid:
            self._error("uuid param missing.")
            return None
        task = self._committed_task(fake, str(uuid))
        if task is None:
            self._json({"success": False, "error": f"{uuid} not found"})
        return task

    def _route_cancel(self, fake: FakeNodeODM, query: dict, fields: dict, files: list) -> None:
        with fake._lock:
            now = fake._advance()
            task = self._action_task(fake, fields)
            if task is None:
                return
            if task._state != CANCELED:
                progress, _, lines = task._view(now)
                was_active = task._state in (QUEUED, RUNNING)
                task._state = CANCELED
                task._end_progress, task._end_lines, task._end_processing_ms = progress, lines, -1
                if was_active:
                    fake._fill(now)
        self._json({"success": True})

    def _route_remove(self, fake: FakeNodeODM, query: dict, fields: dict, files: list) -> None:
        with fake._lock:
            now = fake._advance()
            task = self._action_task(fake, fields)
            if task is None:
                return
            del fake.tasks[task.uuid]
            task._state = CANCELED
            fake._fill(now)
        self._json({"success": True})

    def _route_restart(self, fake: FakeNodeODM, query: dict, fields: dict, files: list) -> None:
        with fake._lock:
            now = fake._advance()
            options = None
            if fields.get("uuid") and "options" in fields:  # checked before the task is looked up
                known = fake.tasks.get(str(fields["uuid"]))
                try:
                    options = filter_options(fields["options"], fake.options_list,
                                             bool(known and known.skip_post_processing))
                except OptionsError as exc:
                    self._error(str(exc))
                    return
            task = self._action_task(fake, fields)
            if task is None:
                return
            if task._state not in (CANCELED, FAILED, COMPLETED):
                self._json({"success": False, "error": "Task cannot be restarted"})
                return
            if options is not None:
                task.options = options
            task.date_created = int(time.time() * 1000)
            fake._enqueue(task, now)
        self._json({"success": True})


def _unique_name(existing: dict, filename: str) -> str:
    """NodeODM renames a repeated upload name: img3.jpg -> img3_.jpg (-> img3__.jpg ...)."""
    name = filename
    while name in existing:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}_.{ext}" if dot and stem else f"{name}_"
    return name


def _route(method: str, s: list[str]) -> tuple[str | None, tuple]:
    """Route name and path arguments, or (None, ()) for Express's 404."""
    if any(not segment for segment in s):
        return None, ()  # an empty ":uuid" never matches in Express
    n = len(s)
    if method == "GET":
        if s == ["info"]:
            return "info", ()
        if s == ["options"]:
            return "options", ()
        if s == ["auth", "info"]:
            return "auth_info", ()
        if s == ["task", "list"]:
            return "list", ()
        if n == 3 and s[0] == "task" and s[2] == "info":
            return "task_info", (s[1],)
        if n == 3 and s[0] == "task" and s[2] == "output":
            return "output", (s[1],)
        if n == 4 and s[0] == "task" and s[2] == "download":
            return "download", (s[1], s[3])
    elif method == "POST":
        if s == ["task", "new", "init"]:
            return "init", ()
        if s == ["task", "new"]:
            return "new", ()
        if n == 4 and s[:3] == ["task", "new", "upload"]:
            return "upload", (s[3],)
        if n == 4 and s[:3] == ["task", "new", "commit"]:
            return "commit", (s[3],)
        if n == 2 and s[0] == "task" and s[1] in ("cancel", "remove", "restart"):
            return s[1], ()
        if n == 2 and s[0] == "auth" and s[1] in ("login", "register"):
            return "auth_post", ()
    return None, ()


def main(argv: list[str] | None = None) -> None:
    """Run a fake node by hand: ``python -m tests.fake_nodeodm --port 3000 --token s3cret``."""
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--token", default="")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--processing-seconds", type=float, default=10.0)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--parallel-tasks", type=int, default=1)
    parser.add_argument("--ingress-mbps", type=float, default=None,
                        help="the node's link for uploads, in megabits per second (default: unlimited)")
    args = parser.parse_args(argv)
    fake = FakeNodeODM(token=args.token, latency=args.latency,
                       processing_seconds=args.processing_seconds, max_images=args.max_images,
                       parallel_tasks=args.parallel_tasks)
    if args.ingress_mbps:
        fake.ingress_bytes_per_second = args.ingress_mbps * 1e6 / 8
    fake.port = args.port
    fake.start()
    print(f"fake NodeODM listening on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
