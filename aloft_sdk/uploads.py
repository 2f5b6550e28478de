"""Getting a folder of images into a partial task, resumably.

Aloft's way: `POST .../presign/` gives one presigned S3 PUT per file (name and exact size);
the bytes go straight to S3, N files at once, each retried with backoff. A server without
`presign/` (WebODM: the route answers 404) gets WebODM's own flow instead: one multipart
`POST .../upload/` per file, Dropzone chunks (`dzuuid`, `dzchunkindex`, ...) for files larger
than the chunk size (WebODM's web UI sends 8,000,000-byte chunks, under API Gateway's 10 MB).

Resume: an `UploadState` file (in the config dir, keyed by server, project and the file set
with sizes and modification times) records the task, the name the server gave each file and
which files are done. Run again after an interruption, the upload continues the same task and
sends only what is missing. A file whose PUT reached S3 just before the process died (so the
state missed it) is recognized without sending it again: presigning its recorded name then
yields a suffixed name (`a.jpg` -> `a_1.jpg`), which only happens when `a.jpg` exists already.
"""
from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import uuid
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import requests

from .client import Client, retrying_session
from .config import config_dir, read_json, write_private
from .errors import AloftError, NotFound, Unreachable, UsageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dng"}
# Files ODM reads beside the images (ground control points, geolocation, groups, masks' lists).
AUX_FILES = {"gcp_list.txt", "geo.txt", "image_groups.txt", "align.las", "align.laz", "align.tif"}
DEFAULT_CHUNK_SIZE = 8_000_000  # WebODM's web UI (Dropzone's chunkSize)
PRESIGN_BATCH = 100             # files per presign/ request (the route takes up to 1,000)
MAX_ATTEMPTS = 6
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return str(self.path)


def collect_files(inputs: Iterable[str | os.PathLike]) -> list[LocalFile]:
    """The files to send: each file named, and a folder's images and ODM side files (not its
    subfolders, nor hidden files). Sorted, without repeats."""
    seen: dict[Path, LocalFile] = {}
    for item in inputs:
        path = Path(item).expanduser().resolve()
        if path.is_dir():
            members = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
                       and (p.suffix.lower() in IMAGE_EXTENSIONS or p.name.lower() in AUX_FILES)]
        elif path.is_file():
            members = [path]
        else:
            raise UsageError(f"{item}: no such file or folder")
        for member in members:
            stat = member.stat()
            seen[member] = LocalFile(member, stat.st_size, stat.st_mtime_ns)
    if not seen:
        raise UsageError("no images to upload")
    return sorted(seen.values(), key=lambda f: f.key)


class UploadState:
    """The resume file: {"task", "mode", "committed", "files": {path: {"name", "done", ...}}}."""

    def __init__(self, server: str, project_id: int, files: list[LocalFile], directory: Path | None = None):
        digest = hashlib.sha256("\n".join(
            [server, str(project_id)] + [f"{f.key}\t{f.size}\t{f.mtime_ns}" for f in files]).encode()).hexdigest()
        self.path = (directory or config_dir()) / "uploads" / f"{digest[:32]}.json"
        self._lock = threading.Lock()
        data = read_json(self.path)
        self.data: dict[str, Any] = data if isinstance(data, dict) and "files" in data else {}
        if not self.data:
            self.reset(server, project_id)

    def reset(self, server: str, project_id: int) -> None:
        self.data = {"server": server, "project": project_id, "task": None, "mode": None,
                     "committed": False, "files": {}}

    @property
    def task_id(self) -> str | None:
        return self.data.get("task")

    def entry(self, file: LocalFile) -> dict:
        return self.data["files"].setdefault(file.key, {})

    def update(self, file: LocalFile | None = None, **changes) -> None:
        """Change a file's entry (or the top level) and write the file, under one lock."""
        with self._lock:
            (self.entry(file) if file is not None else self.data).update(changes)
            write_private(self.path, self.data)

    def save(self) -> None:
        with self._lock:
            write_private(self.path, self.data)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class Progress:
    """What an upload reports; the command line draws it (the default does nothing)."""

    def start(self, files: int, total_bytes: int, done_files: int, done_bytes: int, mode: str) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, file: LocalFile) -> None: ...
    def log(self, message: str) -> None: ...


class _Reader:
    """A file (or a slice of it) as a request body, reporting each piece read."""

    def __init__(self, path: Path, offset: int, length: int, on_read: Callable[[int], None]):
        self._file = open(path, "rb")
        self._file.seek(offset)
        self._left = length
        self._on_read = on_read
        self.sent = 0

    def __len__(self) -> int:
        return self._left  # what is left to read, as requests and requests-toolbelt expect

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(min(size, 1 << 20))
        self._left -= len(data)
        self.sent += len(data)
        self._on_read(len(data))
        return data

    def close(self) -> None:
        self._file.close()


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: up to 0.5, 1, 2, 4 ... seconds (at most `cap`)."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


class Uploader:
    """Send `files` into the partial task of `state` (creating it), then commit."""

    def __init__(self, client: Client, project_id: int, files: list[LocalFile], state: UploadState, *,
                 parallel: int = 8, chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None,
                 task_fields: dict | None = None):
        self.client = client
        self.project_id = project_id
        self.files = files
        self.state = state
        self.parallel = max(1, parallel)
        self.chunk_size = max(1, chunk_size)
        self.progress = progress or Progress()
        self.task_fields = task_fields or {}
        self._local = threading.local()
        self._presign_lock = threading.Lock()
        self._queue: list[tuple[LocalFile, dict]] = []
        self._stop = threading.Event()

    # ------------------------------------------------------------------ the whole job

    def run(self) -> dict:
        """The committed task (resuming the state's task when it still exists)."""
        task = self._resume_or_create()
        if task.get("partial"):
            self._send_all()
            task = self.client.commit(self.project_id, self.state.task_id)
        self.state.update(committed=True)
        return task

    def _resume_or_create(self) -> dict:
        task_id = self.state.task_id
        if task_id:
            try:
                task = self.client.task(self.project_id, task_id)
                self.progress.log(f"resuming task {task_id}")
                return task
            except NotFound:
                self.progress.log(f"task {task_id} is gone: starting a new one")
                self.state.reset(self.state.data["server"], self.project_id)
        task = self.client.create_task(self.project_id, partial=True, **self.task_fields)
        self.state.update(task=task["id"])
        return task

    def _send_all(self) -> None:
        for file in self.files:  # every entry exists before threads write the state
            self.state.entry(file)
        pending = [f for f in self.files if not self.state.entry(f).get("done")]
        done = [f for f in self.files if self.state.entry(f).get("done")]
        mode = self.state.data.get("mode") or self._detect_mode(pending)
        self.progress.start(len(self.files), sum(f.size for f in self.files), len(done),
                            sum(f.size for f in done), mode)
        if not pending:
            return
        workers = min(self.parallel, len(pending))
        self._queue_source = iter(pending)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aloft-upload")
        try:
            if mode == "presign":
                futures = [pool.submit(self._presign_worker) for _ in range(workers)]
            else:
                futures = [pool.submit(self._send_form, f) for f in pending]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in finished if f.exception() is not None]
            if errors:
                raise errors[0]
        except BaseException:
            # Ctrl-C or a failed file: no new file starts; what is done is in the state file.
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _detect_mode(self, pending: list[LocalFile]) -> str:
        """`presign` where the server offers presigned uploads, else WebODM's `upload/`."""
        probe = pending[0] if pending else self.files[0]
        try:
            self.client.presign(self.project_id, self.state.task_id, [(self._wanted_name(probe), probe.size)])
            mode = "presign"  # nothing is created until something is PUT
        except NotFound:
            self.client.task(self.project_id, self.state.task_id)  # the task exists: so presign/ does not
            mode = "upload"
            self.progress.log("the server offers no presigned uploads: using WebODM's upload/")
        self.state.update(mode=mode)
        return mode

    # ------------------------------------------------------------------ presigned PUTs to S3

    def _wanted_name(self, file: LocalFile) -> str:
        return self.state.entry(file).get("name") or file.path.name

    def _next_presigned(self) -> tuple[LocalFile, dict] | None:
        """The next file to PUT with its URL, presigning the next batch when the last is used up.
        Files the server turns out to hold already are marked done here."""
        with self._presign_lock:
            while not self._queue:
                batch = [f for _, f in zip(range(PRESIGN_BATCH), self._queue_source)]
                if not batch:
                    return None
                self._queue.extend(self._presign(batch))
            return self._queue.pop(0)

    def _presign(self, batch: list[LocalFile]) -> list[tuple[LocalFile, dict]]:
        uploads = self.client.presign(self.project_id, self.state.task_id,
                                      [(self._wanted_name(f), f.size) for f in batch])
        ready, unsure, chosen = [], [], set()
        for file, upload in zip(batch, uploads):
            recorded = self.state.entry(file).get("name")
            if recorded is None or upload["name"] == recorded:
                ready.append((file, upload))
            elif recorded in chosen:
                unsure.append(file)  # this batch itself took the name: ask again on its own
            else:
                self._already_there(file)
            chosen.add(upload["name"])
        for file in unsure:
            upload = self.client.presign(self.project_id, self.state.task_id, [(self._wanted_name(file), file.size)])[0]
            if upload["name"] == self.state.entry(file).get("name"):
                ready.append((file, upload))
            else:
                self._already_there(file)
        with self.state._lock:
            for file, upload in ready:
                self.state.entry(file)["name"] = upload["name"]
            write_private(self.state.path, self.state.data)  # names known before any byte is sent
        return ready

    def _already_there(self, file: LocalFile) -> None:
        """A recorded name the server holds already: that PUT finished before an interruption."""
        self.state.update(file, done=True)
        self.progress.advance(file.size)
        self.progress.file_done(file)

    def _presign_worker(self) -> None:
        while not self._stop.is_set():
            item = self._next_presigned()
            if item is None:
                return
            self._put(*item)

    def _s3(self) -> requests.Session:
        session = getattr(self._local, "s3", None)
        if session is None:
            session = self._local.s3 = retrying_session(retries=0)  # retried here, with the body rewound
        return session

    def _put(self, file: LocalFile, upload: dict) -> None:
        for attempt in range(MAX_ATTEMPTS):
            if self._stop.is_set():
                return
            body = _Reader(file.path, 0, file.size, self.progress.advance)
            try:
                reply = self._s3().request(upload.get("method", "PUT"), upload["url"], data=body,
                                           headers=upload.get("headers") or {}, timeout=(15, 300))
                status = reply.status_code
            except (requests.ConnectionError, requests.Timeout) as exc:
                status, reply = None, exc
            finally:
                body.close()
            if status is not None and 200 <= status < 300:
                self.state.update(file, done=True)
                self.progress.file_done(file)
                return
            self.progress.advance(-body.sent)  # those bytes will be sent again
            if status == 403:  # expired URL (or clock skew): a fresh one for the same name
                upload = self.client.presign(self.project_id, self.state.task_id,
                                             [(self.state.entry(file)["name"], file.size)])[0]
                if upload["name"] != self.state.entry(file)["name"]:
                    self._already_there(file)
                    return
            elif status is not None and status not in RETRY_STATUSES:
                raise AloftError(f"{file.path.name}: S3 answered HTTP {status}: {reply.text[:200]}")
            why = f"HTTP {status}" if status is not None else type(reply).__name__
            if attempt + 1 < MAX_ATTEMPTS:
                delay = backoff(attempt)
                self.progress.log(f"{file.path.name}: {why}, retrying in {delay:.1f} s")
                time.sleep(delay)
        raise Unreachable(f"{file.path.name}: upload failed {MAX_ATTEMPTS} times ({why})")

    # ------------------------------------------------------------------ WebODM's upload/

    def _send_form(self, file: LocalFile) -> None:
        if self._stop.is_set():
            return
        url = f"/api/projects/{self.project_id}/tasks/{self.state.task_id}/upload/"
        if file.size <= self.chunk_size:
            self._post_with_retries(url, file, 0, file.size, {})
        else:
            entry = self.state.entry(file)
            if not entry.get("dzuuid"):
                self.state.update(file, dzuuid=str(uuid.uuid4()), chunks_done=0)
            total = -(-file.size // self.chunk_size)
            for index in range(self.state.entry(file).get("chunks_done", 0), total):
                if self._stop.is_set():
                    return
                offset = index * self.chunk_size
                length = min(self.chunk_size, file.size - offset)
                fields = {"dzuuid": self.state.entry(file)["dzuuid"], "dzchunkindex": str(index),
                          "dztotalfilesize": str(file.size), "dzchunksize": str(self.chunk_size),
                          "dztotalchunkcount": str(total), "dzchunkbyteoffset": str(offset)}
                self._post_with_retries(url, file, offset, length, fields)
                self.state.update(file, chunks_done=index + 1)
        self.state.update(file, done=True, name=file.path.name)
        self.progress.file_done(file)

    def _post_with_retries(self, url: str, file: LocalFile, offset: int, length: int, fields: dict) -> None:
        from requests_toolbelt import MultipartEncoder

        for attempt in range(MAX_ATTEMPTS):
            body = _Reader(file.path, offset, length, self.progress.advance)
            encoder = MultipartEncoder(fields=[*fields.items(),
                                               ("images", (file.path.name, body, "application/octet-stream"))])
            try:
                self.client.request("POST", url, data=encoder, headers={"Content-Type": encoder.content_type},
                                    timeout=(15, 300))
                return
            except Unreachable as exc:
                error: Exception = exc
            finally:
                body.close()
            self.progress.advance(-body.sent)
            if attempt + 1 < MAX_ATTEMPTS:
                delay = backoff(attempt)
                self.progress.log(f"{file.path.name}: {error}, retrying in {delay:.1f} s")
                time.sleep(delay)
        raise error


def upload_images(client: Client, project_id: int, inputs: Iterable[str | os.PathLike], *,
                  parallel: int = 8, chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None,
                  state_dir: Path | None = None, **task_fields) -> tuple[dict, UploadState]:
    """Upload images or folders into a new (or the interrupted) partial task and commit it.

    Returns (the committed task, its resume state); remove the state (`state.remove()`) once the
    job is over, so that the same command later starts a new task."""
    files = collect_files(inputs)
    state = UploadState(client.url, project_id, files, state_dir)
    uploader = Uploader(client, project_id, files, state, parallel=parallel, chunk_size=chunk_size,
                        progress=progress, task_fields=task_fields)
    return uploader.run(), state
