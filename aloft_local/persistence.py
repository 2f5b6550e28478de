"""The embedded moto server, and a data folder that keeps its DynamoDB items and S3 objects.

Never deployed: `chalicelib/` and `app.py` know nothing about this. `make run` serves moto's own
WSGI app (what moto's ThreadedMotoServer does) behind a small recorder, and keeps, in the data
folder (`.aloft/`, or ALOFT_DATA_DIR):

    lock          held (flock) by the running stack; a second stack on the folder refuses
    snapshot      the full state: table definitions, every item, buckets, object manifest
    log           what changed since the snapshot, one batch per line
    blobs/xx/...  object bytes, one file per object version kept (never in the snapshot or log)

Both text files are lines of `<crc32 hex> <json>`; the first line names the format, its version
and a generation number (a log belongs to the snapshot of its generation).

How changes are found. After each DynamoDB write request (PutItem, UpdateItem, DeleteItem,
BatchWriteItem, TransactWriteItems) the recorder notes the keys it named; after each S3 write
(PUT or POST on an object, DELETE, POST ?delete; presigned PUTs from clients too), the objects.
A flusher thread, every FLUSH_SECONDS (start to start), reads the *current* state of what was
noted from moto's in-process backends, writes new object bytes to blob files (fsynced together),
then appends one line holding every record of the batch (fsynced). Reading current state rather than requests keeps concurrent writers in order; DynamoDB
writers and the flusher's read exclude each other (a shared/exclusive lock), so a transaction's
items always land in the same line, and DynamoDB is read before S3, so an item never lands
before an object that was written before it. A request that changes anything else (CreateTable,
bucket configuration, PartiQL, moto's reset API, a request the recorder cannot read) asks for a
full snapshot instead.

A snapshot is written to a temporary file, fsynced and renamed, then the log restarts at the new
generation. That happens at start (after the data is loaded into moto), at a clean stop, and
whenever the log outgrows max(ALOFT_COMPACT_BYTES (COMPACT_MIN_BYTES), 2 x the snapshot). An
overwritten or deleted object's old blob is removed only once the record that replaces it is
durable (and moto no longer reads it); blobs that no record names (a kill -9 between a blob and
its record) are removed after the next start.

Objects are never loaded into memory at start: moto's FakeKey reads its bytes through a
BlobBuffer on the blob file, and an object written during the session is switched to its blob
once that is durable. So a restart takes the same time with 10 MB or 10 GB of images, and moto's
memory does not grow with what the folder keeps (this relies on FakeKey's `_value_buffer`, which
moto 5.2.5 has; a moto without it gets the bytes in memory instead).

What a start refuses (the folder is left as it was, the process exits non-zero): an unknown format
or version, a checksum or parse failure anywhere but in the log's last line, a log without a
snapshot (or of a newer generation), a record for a table or bucket the snapshot lacks, a missing
or truncated blob. A last log line that is cut short or fails its checksum is what a kill -9 in the
middle of a write leaves: it is dropped with a warning (at most one batch, FLUSH_SECONDS of writes).

Not kept: object versions other than the latest, object tags and ACLs, bucket configuration other
than CORS, DynamoDB streams' records, backups; and anything of other AWS services.
"""
from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
import weakref
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Iterator
from xml.etree import ElementTree

log = logging.getLogger("aloft.persistence")

FORMAT_VERSION = 1
SNAPSHOT_FORMAT = "aloft-snapshot"
LOG_FORMAT = "aloft-log"
FLUSH_SECONDS = 0.5
COMPACT_MIN_BYTES = 64 * 1024 * 1024
COPY_CHUNK = 8 * 1024 * 1024
BLOB_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}")

# DynamoDB operations that never change data (everything else is either an item write the
# recorder understands, or asks for a full snapshot).
DYNAMODB_READS = frozenset({
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable", "ListTables",
    "DescribeTimeToLive", "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints",
    "DescribeLimits", "ListBackups", "DescribeBackup", "ListGlobalTables", "DescribeGlobalTable",
    "DescribeKinesisStreamingDestination", "DescribeTableReplicaAutoScaling",
    "DescribeContributorInsights", "ListContributorInsights", "ListExports", "DescribeExport",
    "ListImports", "DescribeImport", "GetResourcePolicy", "DescribeGlobalTableSettings"})
DYNAMODB_ITEM_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                                  "TransactWriteItems"})


class DataDirError(Exception):
    """The data folder cannot be used: the stack must not start (the message says why)."""


# ---------------------------------------------------------------------------- record lines
def encode_line(value: Any) -> bytes:
    payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode_line(line: bytes) -> Any:
    """The value of one `<crc32> <json>` line (without its newline); ValueError when damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        raise ValueError("not a record line")
    payload = line[9:]
    try:
        expected = int(line[:8], 16)
    except ValueError:
        raise ValueError("not a record line") from None
    if zlib.crc32(payload) != expected:
        raise ValueError("checksum mismatch")
    return json.loads(payload)


def _header(kind: str, generation: int) -> dict:
    return {"format": kind, "version": FORMAT_VERSION, "generation": generation}


def _check_header(value: Any, kind: str, path: Path) -> int:
    if not isinstance(value, dict) or value.get("format") != kind:
        raise DataDirError(f"{path} is not an Aloft {kind.split('-')[1]} file")
    if value.get("version") != FORMAT_VERSION:
        raise DataDirError(f"{path} has format version {value.get('version')!r}; this Aloft reads "
                           f"version {FORMAT_VERSION} only")
    generation = value.get("generation")
    if not isinstance(generation, int) or generation < 1:
        raise DataDirError(f"{path} has no valid generation number")
    return generation


def read_log(path: Path) -> tuple[int, list[list[dict]], str | None]:
    """(generation, batches, warning): a damaged last line is dropped with a warning (what a
    kill -9 during a write leaves); damage anywhere else raises DataDirError."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is not a complete line
    tail = lines[-1]
    if not complete:
        raise DataDirError(f"{path} has no header line")
    try:
        generation = _check_header(decode_line(complete[0]), LOG_FORMAT, path)
    except ValueError as exc:
        raise DataDirError(f"{path}: damaged header line ({exc})") from None
    batches: list[list[dict]] = []
    warning = None
    body = complete[1:]
    for number, line in enumerate(body, start=2):
        try:
            batch = decode_line(line)
            if not isinstance(batch, list) or not all(isinstance(r, dict) for r in batch):
                raise ValueError("not a batch of records")
        except ValueError as exc:
            if number == len(body) + 1 and not tail:
                warning = (f"{path}: dropped its damaged last line {number} ({exc}): the writes of "
                           f"its last {FLUSH_SECONDS:g} s before a hard stop")
                break
            raise DataDirError(f"{path}: line {number} of {len(body) + 1} is damaged ({exc})") from None
        batches.append(batch)
    if tail:
        warning = (f"{path}: dropped an incomplete last line ({len(tail)} bytes): the writes of its "
                   f"last {FLUSH_SECONDS:g} s before a hard stop")
    return generation, batches, warning


def read_snapshot(path: Path) -> tuple[int, list[dict]]:
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        raise DataDirError(f"{path} is incomplete (no final newline)")
    lines = data[:-1].split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            value = decode_line(line)
        except ValueError as exc:
            raise DataDirError(f"{path}: line {number} of {len(lines)} is damaged ({exc})") from None
        records.append(value)
    generation = _check_header(records[0], SNAPSHOT_FORMAT, path)
    end = records[-1]
    if len(records) < 2 or not isinstance(end, dict) or end.get("t") != "end" \
            or end.get("records") != len(records) - 2:
        raise DataDirError(f"{path} is incomplete (no matching end record)")
    return generation, records[1:-1]


# ---------------------------------------------------------------------------- DynamoDB values
def _value_to_json(type_: str, value: Any) -> Any:
    """moto's in-process attribute value (bytes for binary) -> DynamoDB's JSON wire form."""
    if type_ == "B":
        return base64.b64encode(value).decode("ascii") if isinstance(value, (bytes, bytearray)) else value
    if type_ == "BS":
        return [base64.b64encode(v).decode("ascii") if isinstance(v, (bytes, bytearray)) else v for v in value]
    if type_ == "M":
        return {k: _dynamo_to_json(v) for k, v in value.items()}
    if type_ == "L":
        return [_dynamo_to_json(v) for v in value]
    return value


def _dynamo_to_json(attribute) -> dict:
    """A moto DynamoType -> {"S": "..."} (wire JSON, binary as base64)."""
    return {attribute.type: _value_to_json(attribute.type, attribute.value)}


def item_to_json(item) -> dict:
    return {name: _dynamo_to_json(value) for name, value in list(item.attrs.items())}


def _value_from_json(type_: str, value: Any) -> Any:
    """Wire JSON -> what moto's request parser hands its backend (bytes for binary)."""
    if type_ == "B":
        return base64.b64decode(value) if isinstance(value, str) else value
    if type_ == "BS":
        return [base64.b64decode(v) if isinstance(v, str) else v for v in value]
    if type_ == "M":
        return {k: attribute_from_json(v) for k, v in value.items()}
    if type_ == "L":
        return [attribute_from_json(v) for v in value]
    return value


def attribute_from_json(attribute: dict) -> dict:
    ((type_, value),) = attribute.items()
    return {type_: _value_from_json(type_, value)}


def item_from_json(item: dict) -> dict:
    return {name: attribute_from_json(value) for name, value in item.items()}


def _canonical_scalar(type_: str, value: Any) -> str:
    if type_ == "N":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return str(value)
        return "0" if number == 0 else format(number.normalize(), "f")
    if type_ == "B" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def canonical_key(table, attributes: dict) -> str | None:
    """One string per item of `table`, from the key attributes in `attributes` (wire or moto
    form): DynamoDB's own equality (1 == 1.0) so a key spelled twice is one item."""
    parts = []
    for name in (table.hash_key_attr, table.range_key_attr):
        if not name:
            continue
        value = attributes.get(name)
        if value is None:
            return None
        if hasattr(value, "type"):  # a moto DynamoType
            type_, raw = value.type, value.value
        else:
            ((type_, raw),) = value.items()
        parts.append([type_, _canonical_scalar(type_, raw)])
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _key_types(table, key: str):
    from moto.dynamodb.models.dynamo_type import DynamoType

    values = []
    for type_, text in json.loads(key):
        values.append(DynamoType({type_: base64.b64decode(text) if type_ == "B" else text}))
    return values[0], (values[1] if len(values) > 1 else None)


def table_definition(table) -> dict:
    """What CreateTable needs to make `table` again (moto's Table)."""
    definition: dict[str, Any] = {"KeySchema": table.schema, "AttributeDefinitions": table.attr,
                                  "BillingMode": table.billing_mode}
    throughput = {k: v for k, v in (table.throughput or {}).items()
                  if k in ("ReadCapacityUnits", "WriteCapacityUnits")}
    if any(throughput.values()):
        definition["ProvisionedThroughput"] = throughput
    gsis = []
    for index in table.global_indexes or []:
        gsi = {"IndexName": index.name, "KeySchema": index.schema, "Projection": index.projection}
        index_throughput = {k: v for k, v in (getattr(index, "throughput", None) or {}).items()
                            if k in ("ReadCapacityUnits", "WriteCapacityUnits")}
        if any(index_throughput.values()):
            gsi["ProvisionedThroughput"] = index_throughput
        gsis.append(gsi)
    if gsis:
        definition["GlobalSecondaryIndexes"] = gsis
    lsis = [{"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection}
            for i in table.indexes or []]
    if lsis:
        definition["LocalSecondaryIndexes"] = lsis
    if table.stream_specification and table.stream_specification.get("StreamEnabled"):
        definition["StreamSpecification"] = {k: v for k, v in table.stream_specification.items()
                                             if k in ("StreamEnabled", "StreamViewType")}
    if table.sse_specification:
        definition["SSESpecification"] = dict(table.sse_specification)
    if table.tags:
        definition["Tags"] = list(table.tags)
    if table.ttl and table.ttl.get("TimeToLiveStatus") not in (None, "DISABLED"):
        definition["TimeToLive"] = dict(table.ttl)
    if table.deletion_protection_enabled:
        definition["DeletionProtectionEnabled"] = True
    return json.loads(json.dumps(definition, default=str))


# ---------------------------------------------------------------------------- moto backends
def _dynamodb_backends() -> Iterator[tuple[str, str, Any]]:
    from moto.dynamodb.models import dynamodb_backends

    for account in list(dynamodb_backends.keys()):
        for region, backend in list(dynamodb_backends[account].items()):
            yield account, region, backend


def _s3_backends() -> Iterator[tuple[str, str, Any]]:
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        for partition, backend in list(s3_backends[account].items()):
            yield account, partition, backend


def _find_tables(name: str) -> list[tuple[str, str, Any]]:
    return [(account, region, backend.tables[name]) for account, region, backend in _dynamodb_backends()
            if name in backend.tables]


def _find_bucket(name: str):
    for account, partition, backend in _s3_backends():
        bucket = backend.buckets.get(name)
        if bucket is not None:
            return account, partition, bucket
    return None


def _latest_object(bucket, key: str):
    from moto.s3.models import FakeKey

    versions = dict.get(bucket.keys, key)
    if not versions:
        return None
    latest = versions[-1]
    return latest if isinstance(latest, FakeKey) else None  # a delete marker: no object


def _bucket_objects(bucket) -> Iterator[tuple[str, Any]]:
    from moto.s3.models import FakeKey

    for name, versions in list(dict.items(bucket.keys)):
        if versions and isinstance(versions[-1], FakeKey):
            yield name, versions[-1]


def _bucket_config(bucket) -> dict:
    cors = []
    for rule in bucket.cors or []:
        entry = {"AllowedMethod": list(rule.allowed_methods or []),
                 "AllowedOrigin": list(rule.allowed_origins or [])}
        if rule.allowed_headers:
            entry["AllowedHeader"] = list(rule.allowed_headers)
        if rule.exposed_headers:
            entry["ExposeHeader"] = list(rule.exposed_headers)
        if rule.max_age_seconds is not None:
            entry["MaxAgeSeconds"] = str(rule.max_age_seconds)
        if rule.id_:
            entry["ID"] = str(rule.id_)
        cors.append(entry)
    return {"region": bucket.region_name, "cors": cors}


def _object_signature(fk) -> tuple:
    return (fk._etag, fk.contentsize, fk.last_modified, tuple(sorted(fk._metadata.items())),
            fk.storage_class, fk.encryption, fk.checksum_value, fk.website_redirect_location)


def _object_meta(fk, blob: str) -> dict:
    with fk.lock:  # moto reads the buffer for the MD5 without its lock: keep GETs out meanwhile
        etag = fk.etag.strip('"')
    meta = {"blob": blob, "size": fk.contentsize, "etag": etag,
            "modified": fk.last_modified.isoformat(), "metadata": dict(fk._metadata.items())}
    for name, value in (("storage", fk.storage_class), ("encryption", fk.encryption),
                        ("kms_key_id", fk.kms_key_id), ("checksum_algorithm", fk.checksum_algorithm),
                        ("checksum_value", fk.checksum_value),
                        ("redirect", fk.website_redirect_location)):
        if value is not None and not (name == "storage" and value == "STANDARD"):
            meta[name] = value
    return meta


def _reference(obj):
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


# ---------------------------------------------------------------------------- the folder's state
@dataclass
class ObjectEntry:
    meta: dict
    ref: Any = None  # weak reference to moto's FakeKey this entry was made from
    signature: tuple | None = None

    def matches(self, fk) -> bool:
        return self.ref is not None and self.ref() is fk and self.signature == _object_signature(fk)


@dataclass
class State:
    """Everything the folder holds, as plain JSON values."""
    tables: dict[tuple, dict] = field(default_factory=dict)   # (account, region, name) -> {"def", "items"}
    buckets: dict[tuple, dict] = field(default_factory=dict)  # (account, partition, name) -> {"config", "objects"}

    def apply(self, record: dict, source: str) -> None:
        kind = record.get("t")
        try:
            if kind == "table":
                self.tables[(record["a"], record["r"], record["tb"])] = {"def": record["def"], "items": {}}
            elif kind == "bucket":
                self.buckets[(record["a"], record["p"], record["b"])] = {"config": record["config"], "objects": {}}
            elif kind == "item":
                table = self.tables.get((record["a"], record["r"], record["tb"]))
                if table is None:
                    raise DataDirError(f"{source}: a record for table {record['tb']!r}, which the snapshot "
                                       "does not have")
                if record["i"] is None:
                    table["items"].pop(record["k"], None)
                else:
                    table["items"][record["k"]] = record["i"]
            elif kind == "obj":
                bucket = self.buckets.get((record["a"], record["p"], record["b"]))
                if bucket is None:
                    raise DataDirError(f"{source}: a record for bucket {record['b']!r}, which the snapshot "
                                       "does not have")
                if record["o"] is None:
                    bucket["objects"].pop(record["k"], None)
                else:
                    bucket["objects"][record["k"]] = record["o"]
            else:
                raise DataDirError(f"{source}: unknown record type {kind!r}")
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataDirError(f"{source}: malformed {kind!r} record ({exc!r})") from None

    def counts(self) -> tuple[int, int, int]:
        items = sum(len(t["items"]) for t in self.tables.values())
        objects = sum(len(b["objects"]) for b in self.buckets.values())
        size = sum(o.get("size", 0) for b in self.buckets.values() for o in b["objects"].values())
        return items, objects, size


class DataFolder:
    """The files of a data folder: lock, snapshot, log, blobs."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.snapshot = self.path / "snapshot"
        self.log = self.path / "log"
        self.blobs = self.path / "blobs"
        self.lockfile = self.path / "lock"
        self._lock_fd: int | None = None

    # -- lock
    def lock(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create the data folder {self.path}: {exc}") from None
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DataDirError(
                    f"the data folder {self.path} is in use by another Aloft stack"
                    + (f" (pid {holder})" if holder else "")
                    + ": stop it, or give this one another ALOFT_DATA_DIR") from None
            raise DataDirError(f"cannot lock the data folder {self.path}: {exc}") from None
        self._lock_fd = fd

    def note_owner(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- reset
    def reset(self) -> None:
        for path in (self.snapshot, self.log, self.path / "snapshot.tmp", self.path / "log.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        shutil.rmtree(self.blobs, ignore_errors=True)
        _fsync_dir(self.path)

    # -- reading
    def blob_files(self) -> set[str]:
        if not self.blobs.is_dir():
            return set()
        return {p.relative_to(self.blobs).as_posix() for p in self.blobs.rglob("*") if p.is_file()}

    def load(self) -> tuple[int, State, list[str]]:
        """(generation, state, warnings); DataDirError when the folder must not be used."""
        warnings: list[str] = []
        state = State()
        if not self.snapshot.exists():
            if self.log.exists():
                raise DataDirError(f"{self.log} exists without a snapshot")
            if self.blob_files():
                raise DataDirError(f"{self.blobs} holds files but there is no snapshot")
            return 0, state, warnings
        generation, records = read_snapshot(self.snapshot)
        for record in records:
            state.apply(record, str(self.snapshot))
        if self.log.exists():
            log_generation, batches, warning = read_log(self.log)
            if log_generation > generation:
                raise DataDirError(f"{self.log} (generation {log_generation}) is newer than "
                                   f"{self.snapshot} (generation {generation})")
            if log_generation < generation:
                # A stop between writing a snapshot and restarting the log: the snapshot already
                # holds everything the older log had.
                log.info("ignoring %s of generation %d: snapshot %d supersedes it", self.log,
                         log_generation, generation)
            else:
                if warning:
                    warnings.append(warning)
                for number, batch in enumerate(batches, start=2):
                    for record in batch:
                        state.apply(record, f"{self.log} line {number}")
        for (_, _, bucket_name), bucket in state.buckets.items():
            for key, meta in bucket["objects"].items():
                if not isinstance(meta.get("blob"), str) or not BLOB_NAME.fullmatch(meta["blob"]):
                    raise DataDirError(f"s3://{bucket_name}/{key} names no valid blob ({meta.get('blob')!r})")
                blob = self.blobs / meta["blob"]
                try:
                    size = blob.stat().st_size
                except FileNotFoundError:
                    raise DataDirError(f"the blob {blob} of s3://{bucket_name}/{key} is missing") from None
                if size != meta.get("size"):
                    raise DataDirError(f"the blob {blob} of s3://{bucket_name}/{key} has {size} bytes, "
                                       f"not {meta.get('size')}")
        return generation, state, warnings

    # -- writing
    def new_blob(self) -> tuple[str, Path]:
        name = uuid.uuid4().hex
        relative = f"{name[:2]}/{name}"
        return relative, self.blobs / relative

    def remove_blob(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.blobs / relative).unlink()

    def write_snapshot(self, generation: int, records: Iterable[dict]) -> int:
        """Write and rename the snapshot, then restart the log at its generation; its size."""
        temporary = self.path / "snapshot.tmp"
        count = 0
        with open(temporary, "wb", buffering=1024 * 1024) as out:
            out.write(encode_line(_header(SNAPSHOT_FORMAT, generation)))
            for record in records:
                out.write(encode_line(record))
                count += 1
            out.write(encode_line({"t": "end", "records": count}))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(temporary, self.snapshot)
        _fsync_dir(self.path)
        temporary = self.path / "log.tmp"
        with open(temporary, "wb") as out:
            out.write(encode_line(_header(LOG_FORMAT, generation)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.log)
        _fsync_dir(self.path)
        return size

    def sweep(self, live: set[str]) -> int:
        """Remove blob files no record names and leftover temporary files; how many blobs."""
        removed = 0
        for relative in self.blob_files() - live:
            self.remove_blob(relative)
            removed += 1
        if self.blobs.is_dir():
            for directory in self.blobs.iterdir():
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only empty ones go
        return removed


def _fsync_path(path: Path) -> None:
    """fsync a file's data (written through another descriptor) or a folder's entries."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_fsync_dir = _fsync_path


# ---------------------------------------------------------------------------- blob-backed objects
class BlobBuffer:
    """Stands in for the in-memory file a moto FakeKey keeps its bytes in, reading them from
    their blob file instead (opened per read: no file descriptor is held). Objects restored at
    start, and objects once written to the data folder, are read this way, so moto's memory does
    not grow with what the folder keeps. moto closes the buffer when the object is overwritten
    or deleted (`dispose`); the blob itself is removed once that change is durable."""

    def __init__(self, path: Path, size: int, released=None):
        self.path = path
        self.size = size
        self.closed = False
        self._position = 0
        self._released = released

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._position = {0: 0, 1: self._position, 2: self.size}[whence] + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        with open(self.path, "rb") as blob:
            blob.seek(self._position)
            data = blob.read() if size is None or size < 0 else blob.read(size)
        self._position += len(data)
        return data

    def write(self, data) -> int:
        raise io.UnsupportedOperation("a kept object's bytes are read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a kept object's bytes are read-only")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._released is not None:
                self._released(self)


# ---------------------------------------------------------------------------- the recorder
class _SharedExclusive:
    """Many DynamoDB writers at once, or the flusher alone (writers wait while it waits)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _read_body(environ: dict) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower():
        return None
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _signing_service(environ: dict) -> str | None:
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        return scope[3].lower() if len(scope) >= 5 else None
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING") or "")
    credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
    return credential[3].lower() if len(credential) >= 5 else None


class Recorder:
    """WSGI middleware around moto's app: notes what each write request touched."""

    def __init__(self, app, storage: "PersistentStorage"):
        self.app = app
        self.storage = storage

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        path = environ.get("PATH_INFO") or "/"
        if target.startswith("DynamoDB_20120810."):
            operation = target.split(".", 1)[1]
            if operation in DYNAMODB_READS:
                return self.app(environ, start_response)
            body = _read_body(environ) if operation in DYNAMODB_ITEM_WRITES else None
            with self.storage.writers.shared():
                try:
                    return self.app(environ, start_response)
                finally:  # noted even when moto failed half-way: the flusher reads what is there
                    self.storage.dynamodb_written(operation, body)
        if method in ("GET", "HEAD", "OPTIONS") or target:
            return self.app(environ, start_response)  # reads, or another JSON service
        if path.startswith("/moto-api"):
            try:
                return self.app(environ, start_response)
            finally:
                self.storage.request_full()  # e.g. moto's reset: the snapshot takes whatever is left
        service = _signing_service(environ)
        if service not in (None, "s3"):
            return self.app(environ, start_response)  # another AWS service: not kept
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING") or "", keep_blank_values=True)
        body = _read_body(environ) if method == "POST" and "delete" in query else None
        try:
            return self.app(environ, start_response)
        finally:
            self.storage.s3_written(method, environ, query, body)


# ---------------------------------------------------------------------------- the storage
class PersistentStorage:
    """moto on host:port, its data kept in `data_dir`."""

    def __init__(self, data_dir: Path, reset: bool = False, flush_seconds: float = FLUSH_SECONDS):
        self.folder = DataFolder(data_dir)
        self.reset = reset
        self.flush_seconds = flush_seconds
        self.compact_bytes = int(os.environ.get("ALOFT_COMPACT_BYTES") or COMPACT_MIN_BYTES)
        self.writers = _SharedExclusive()
        self.endpoint: str | None = None
        self.restored: dict[str, Any] = {}
        self.warnings: list[str] = []
        self._mutex = threading.Lock()           # the dirty sets and flags below
        self._dirty_items: dict[tuple, bool] = {}  # (table name, canonical key)
        self._dirty_objects: dict[tuple[str, str], bool] = {}  # (bucket, key) -> a delete was seen
        self._full = False
        self._rescan = False
        self._flush_lock = threading.Lock()      # one flush or snapshot at a time
        self._generation = 0
        self._log_file = None
        self._log_bytes = 0
        self._snapshot_bytes = 0
        self._tables: set[tuple] = set()         # what the current snapshot holds
        self._buckets: dict[tuple, dict] = {}    # (account, partition, name) -> config
        self._manifest: dict[tuple, ObjectEntry] = {}  # (account, partition, bucket, key)
        self._lent: dict[str, BlobBuffer] = {}   # blob -> the buffer moto reads it through
        self._release_later: set[str] = set()    # superseded blobs moto may still read
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._server = None
        self._server_thread: threading.Thread | None = None
        self.failures = 0

    # -------------------------------------------------------------- start / stop
    def start(self, host: str, port: int) -> str:
        self.folder.lock()
        try:
            if self.reset:
                self.folder.reset()
            started = time.perf_counter()
            try:
                generation, state, self.warnings = self.folder.load()
            except DataDirError as exc:
                raise DataDirError(f"{exc}. The data folder {self.folder.path} is left as it is: repair "
                                   "or move it away, or start with ALOFT_RESET=1 to empty it") from None
            self.folder.note_owner()
            read_seconds = time.perf_counter() - started
            import moto.dynamodb.models  # noqa: F401 - moto's import time is not the restore's
            import moto.s3.models  # noqa: F401

            from .motoserver import make_server, moto_app

            started = time.perf_counter()
            self._restore(state)
            self._generation = generation
            items, objects, size = state.counts()
            del state
            self._snapshot_now()
            swept = self.folder.sweep({e.meta["blob"] for e in self._manifest.values()})
            if swept:
                log.info("removed %d blob file(s) that no record names (writes cut by a hard stop)", swept)
            self.restored = {"items": items, "objects": objects, "bytes": size, "read_seconds": read_seconds,
                             "seconds": read_seconds + time.perf_counter() - started}
            self._server = make_server(host, port, Recorder(moto_app(), self))
        except BaseException:
            self._close_log()
            self.folder.unlock()
            raise
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="aloft-moto",
                                               daemon=True)
        self._server_thread.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="aloft-persist", daemon=True)
        self._flusher.start()
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        return self.endpoint

    def stop(self) -> None:
        """Stop serving, write what is left and a fresh snapshot, release the folder."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        try:
            self.flush(compact=True)
            with self._mutex:
                superseded, self._release_later = self._release_later, set()
            for blob in superseded:  # nothing reads them any more
                self.folder.remove_blob(blob)
        finally:
            self._close_log()
            self.folder.unlock()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -------------------------------------------------------------- what requests touched
    def request_full(self) -> None:
        with self._mutex:
            self._full = True

    def dynamodb_written(self, operation: str, body: bytes | None) -> None:
        """Called inside the shared lock, after moto applied `operation` (success or not)."""
        if operation not in DYNAMODB_ITEM_WRITES or body is None:
            self.request_full()
            return
        try:
            request = json.loads(body)
            touched: list[tuple[str, dict]] = []
            if operation == "PutItem":
                touched.append((request["TableName"], request["Item"]))
            elif operation in ("UpdateItem", "DeleteItem"):
                touched.append((request["TableName"], request["Key"]))
            elif operation == "BatchWriteItem":
                for table, writes in request["RequestItems"].items():
                    for write in writes:
                        if "PutRequest" in write:
                            touched.append((table, write["PutRequest"]["Item"]))
                        elif "DeleteRequest" in write:
                            touched.append((table, write["DeleteRequest"]["Key"]))
            else:  # TransactWriteItems
                for entry in request["TransactItems"]:
                    for kind, detail in entry.items():
                        if kind == "Put":
                            touched.append((detail["TableName"], detail["Item"]))
                        elif kind in ("Update", "Delete"):
                            touched.append((detail["TableName"], detail["Key"]))
            dirty = {}
            for table_name, attributes in touched:
                for _, _, table in _find_tables(table_name):
                    key = canonical_key(table, attributes)
                    if key is not None:
                        dirty[(table_name, key)] = True
        except (ValueError, KeyError, TypeError, AttributeError):
            self.request_full()  # not a request we can read: a snapshot takes everything
            return
        with self._mutex:
            self._dirty_items.update(dirty)

    def s3_written(self, method: str, environ: dict, query: dict, body: bytes | None) -> None:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        raw = urllib.parse.urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0]
        bucket_part, _, key_part = raw.lstrip("/").partition("/")
        bucket_name, key = urllib.parse.unquote(bucket_part), urllib.parse.unquote(key_part)
        if not bucket_name or _find_bucket(bucket_name) is None:
            host = (environ.get("HTTP_HOST") or "").split(":")[0]
            label = host.split(".")[0] if "." in host else ""
            if label and _find_bucket(label) is not None:  # virtual-hosted style
                bucket_name, key = label, urllib.parse.unquote(raw.lstrip("/"))
            else:
                self.request_full()  # e.g. a bucket created or deleted
                return
        if not key:
            if method == "POST" and "delete" in query and body is not None:
                try:
                    root = ElementTree.fromstring(body)
                    keys = [e.text or "" for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Key"]
                except ElementTree.ParseError:
                    self.request_full()
                    return
                with self._mutex:
                    self._dirty_objects.update(((bucket_name, k), True) for k in keys)
            else:
                self.request_full()  # bucket configuration
            return
        if "uploadId" in query and method in ("PUT", "DELETE"):
            return  # a part upload or an abort: no object changes
        if method == "POST" and "uploads" in query:
            return  # a multipart upload starts: nothing yet
        with self._mutex:
            location = (bucket_name, key)
            self._dirty_objects[location] = self._dirty_objects.get(location, False) or method == "DELETE"

    # -------------------------------------------------------------- restore
    def _restore(self, state: State) -> None:
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends

        for (account, region, name), table_state in state.tables.items():
            definition = table_state["def"]
            backend = dynamodb_backends[account][region]
            table = backend.create_table(
                name, schema=definition["KeySchema"], throughput=definition.get("ProvisionedThroughput"),
                attr=definition["AttributeDefinitions"],
                global_indexes=definition.get("GlobalSecondaryIndexes") or [],
                indexes=definition.get("LocalSecondaryIndexes") or [],
                streams=definition.get("StreamSpecification"), billing_mode=definition.get("BillingMode"),
                sse_specification=definition.get("SSESpecification"), tags=definition.get("Tags") or [],
                deletion_protection_enabled=definition.get("DeletionProtectionEnabled", False),
                warm_throughput=None)
            if definition.get("TimeToLive"):
                table.ttl = dict(definition["TimeToLive"])
            for item in table_state["items"].values():
                table.put_item(item_from_json(item), overwrite=True)
            self._tables.add((account, region, name))
        for (account, partition, name), bucket_state in state.buckets.items():
            backend = s3_backends[account][partition]
            config = bucket_state["config"]
            backend.create_bucket(name, config["region"])
            if config.get("cors"):
                backend.put_bucket_cors(name, config["cors"])
            self._buckets[(account, partition, name)] = config
            for key, meta in bucket_state["objects"].items():
                fk = backend.put_object(name, key, b"", storage=meta.get("storage"), etag=meta["etag"],
                                        encryption=meta.get("encryption"), kms_key_id=meta.get("kms_key_id"),
                                        checksum_value=meta.get("checksum_value"), disable_notification=True)
                if not self._lend(fk, meta["blob"], meta["size"]):  # another moto: bytes in memory
                    with fk.lock:
                        fk.value = (self.folder.blobs / meta["blob"]).read_bytes()
                fk.set_metadata(dict(meta.get("metadata") or {}))
                fk.last_modified = datetime.fromisoformat(meta["modified"])
                if meta.get("checksum_algorithm"):
                    fk.checksum_algorithm = meta["checksum_algorithm"]
                if meta.get("redirect"):
                    fk.website_redirect_location = meta["redirect"]
                self._manifest[(account, partition, name, key)] = ObjectEntry(
                    meta, _reference(fk), _object_signature(fk))

    # -------------------------------------------------------------- flushing
    def _flush_loop(self) -> None:
        """A flush every flush_seconds, start to start (at once after a flush that took longer)."""
        next_flush = time.monotonic() + self.flush_seconds
        while not self._stop.wait(max(0.0, next_flush - time.monotonic())):
            next_flush = time.monotonic() + self.flush_seconds
            try:
                self.flush()
                if self._log_bytes > max(self.compact_bytes, 2 * self._snapshot_bytes):
                    self.flush(compact=True)
            except Exception:
                self.failures += 1
                log.exception("could not write to the data folder %s; retrying with a full snapshot",
                              self.folder.path)
                self.request_full()

    def flush(self, compact: bool = False) -> None:
        """Write what changed since the last flush: a log line, or (compact, or a change the log
        cannot say) a whole snapshot."""
        with self._flush_lock:
            for _ in range(3):
                if not self._flush_once(compact):
                    return
                compact = True  # a table or bucket the snapshot lacks: take a snapshot now

    def _flush_once(self, compact: bool) -> bool:
        """One flush; True when it found a table or bucket the snapshot lacks."""
        with self.writers.exclusive():
            with self._mutex:
                full = compact or self._full
                self._full = False
                dirty_items, self._dirty_items = self._dirty_items, {}
            if full:
                tables = self._read_all_tables()
            else:
                item_records, unknown = self._read_items(dirty_items)
        with self._mutex:
            dirty_objects, self._dirty_objects = self._dirty_objects, {}
            rescan, self._rescan = self._rescan, False
        if full:
            buckets = {(a, p, name): _bucket_config(bucket) for a, p, backend in _s3_backends()
                       for name, bucket in list(backend.buckets.items())}
            changes = self._scan_all_objects(buckets)
            self._write_blobs(changes)
            self._apply_changes(changes)
            records = self._snapshot_records(tables, buckets)
            self._write_snapshot(records)
            self._tables = {key for key, _ in tables}
            self._buckets = buckets
            self._drop_superseded(changes)
            self._hand_over(changes)
            return False
        changes = self._scan_objects(dirty_objects, rescan)
        unknown_bucket = any(c.location[:3] not in self._buckets for c in changes)
        if unknown or unknown_bucket:
            self.request_full()
            with self._mutex:  # put them back: the snapshot that follows reads them
                for key in dirty_items:
                    self._dirty_items.setdefault(key, True)
                for location, deleted in dirty_objects.items():
                    self._dirty_objects[location] = self._dirty_objects.get(location, False) or deleted
            return True
        if not item_records and not changes:
            return False
        self._write_blobs(changes)
        records = item_records + [c.record() for c in changes]
        self._append(records)
        self._apply_changes(changes)
        self._drop_superseded(changes)
        self._hand_over(changes)
        return False

    # -- DynamoDB side (inside the exclusive lock)
    def _read_items(self, dirty: dict) -> tuple[list[dict], bool]:
        records = []
        unknown = False
        for table_name, key in dirty:
            for account, region, table in _find_tables(table_name):
                if (account, region, table_name) not in self._tables:
                    unknown = True
                    continue
                hash_key, range_key = _key_types(table, key)
                try:
                    item = table.get_item(hash_key, range_key)
                except Exception:  # noqa: BLE001 - a key that does not fit the table: nothing stored
                    continue
                records.append({"t": "item", "a": account, "r": region, "tb": table_name, "k": key,
                                "i": item_to_json(item) if item is not None else None})
        return records, unknown

    def _read_all_tables(self) -> list[tuple[tuple, dict]]:
        tables = []
        for account, region, backend in _dynamodb_backends():
            for name, table in list(backend.tables.items()):
                items = {}
                for item in table.all_items():
                    attributes = dict(item.attrs)
                    items[canonical_key(table, attributes)] = item_to_json(item)
                tables.append(((account, region, name), {"def": table_definition(table), "items": items}))
        return tables

    # -- S3 side
    def _scan_objects(self, dirty: dict[tuple[str, str], bool], rescan: bool) -> list["_Change"]:
        if rescan:
            return self._scan_all_objects(self._buckets)
        changes = []
        for (bucket_name, key), deleted in dirty.items():
            found = _find_bucket(bucket_name)
            if found is None:
                continue
            account, partition, bucket = found
            location = (account, partition, bucket_name, key)
            fk = _latest_object(bucket, key)
            entry = self._manifest.get(location)
            if fk is None:
                if entry is not None:
                    changes.append(_Change(location, None, entry))
                elif not deleted and not self._rescan:
                    # Written, never deleted, yet not there: a key name read differently from
                    # moto (or a write that failed). A rescan of every object settles it.
                    with self._mutex:
                        self._rescan = True
            elif entry is None or not entry.matches(fk):
                changes.append(_Change(location, fk, entry))
        return changes

    def _scan_all_objects(self, buckets: dict) -> list["_Change"]:
        changes = []
        seen = set()
        for account, partition, backend in _s3_backends():
            for name, bucket in list(backend.buckets.items()):
                if (account, partition, name) not in buckets:
                    continue
                for key, fk in _bucket_objects(bucket):
                    location = (account, partition, name, key)
                    seen.add(location)
                    entry = self._manifest.get(location)
                    if entry is None or not entry.matches(fk):
                        changes.append(_Change(location, fk, entry))
        for location, entry in list(self._manifest.items()):
            if location not in seen:
                changes.append(_Change(location, None, entry))
        return changes

    def _write_blobs(self, changes: list["_Change"]) -> None:
        directories = set()
        for change in changes:
            if change.fk is None:
                continue
            for _ in range(5):
                try:
                    change.blob, path = self.folder.new_blob()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    directories.add(path.parent)
                    self._copy_object(change.fk, path)
                    change.meta = _object_meta(change.fk, change.blob)
                    change.signature = _object_signature(change.fk)
                    break
                except ValueError:  # moto disposed of it mid-copy: take the current object
                    self.folder.remove_blob(change.blob)
                    change.blob = None
                    found = _find_bucket(change.location[2])
                    change.fk = _latest_object(found[2], change.location[3]) if found else None
                    if change.fk is None:
                        break
            else:
                raise OSError(f"s3://{change.location[2]}/{change.location[3]} kept changing while copied")
        # fsync the new blobs and their folders concurrently: the disk sees them together.
        paths = [self.folder.blobs / c.blob for c in changes if c.fk is not None and c.blob]
        paths += sorted(directories) + ([self.folder.blobs] if directories else [])
        if len(paths) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(8, len(paths))) as pool:
                list(pool.map(_fsync_path, paths))
        elif paths:
            _fsync_path(paths[0])

    @staticmethod
    def _copy_object(fk, path: Path) -> None:
        size = fk.contentsize
        written = 0
        with open(path, "xb") as out:
            buffer = getattr(fk, "_value_buffer", None)
            if buffer is None:
                out.write(fk.value)
                written = out.tell()
            else:
                while True:
                    with fk.lock:
                        buffer.seek(written)
                        chunk = buffer.read(COPY_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
        if written != size:
            raise ValueError(f"object changed while copied ({written} of {size} bytes)")

    def _apply_changes(self, changes: list["_Change"]) -> None:
        for change in changes:
            if change.fk is None:
                self._manifest.pop(change.location, None)
            else:
                self._manifest[change.location] = ObjectEntry(change.meta, _reference(change.fk),
                                                              change.signature)

    def _drop_superseded(self, changes: list["_Change"]) -> None:
        """Remove the blobs that durable records no longer name (later, for one moto still reads)."""
        for change in changes:
            if change.previous is None:
                continue
            blob = change.previous.meta["blob"]
            with self._mutex:
                buffer = self._lent.get(blob)
                if buffer is not None and not buffer.closed:
                    self._release_later.add(blob)
                    continue
            self.folder.remove_blob(blob)

    def _lend(self, fk, blob: str, size: int) -> bool:
        """Make moto read `fk`'s bytes from `blob` (dropping its own copy); False when this moto's
        FakeKey does not look as expected."""
        if not isinstance(getattr(fk, "_value_buffer", None), (tempfile.SpooledTemporaryFile, io.IOBase)) \
                or not hasattr(fk, "contentsize"):
            return False
        buffer = BlobBuffer(self.folder.blobs / blob, size, self._released)
        buffer.blob = blob
        with fk.lock:
            if fk.disposed or fk.contentsize not in (0, size):
                return False
            with self._mutex:
                self._lent[blob] = buffer
            previous, fk._value_buffer = fk._value_buffer, buffer
            fk.contentsize = size
        previous.close()
        return True

    def _hand_over(self, changes: list["_Change"]) -> None:
        for change in changes:
            if change.fk is not None and change.blob is not None and not change.fk.disposed:
                with change.fk.lock:
                    lent = isinstance(change.fk._value_buffer, BlobBuffer)
                if not lent:
                    self._lend(change.fk, change.blob, change.meta["size"])

    def _released(self, buffer: BlobBuffer) -> None:
        """moto closed a blob-backed object (overwritten, deleted): its blob may go once the
        change is durable (now, if it already is)."""
        with self._mutex:
            self._lent.pop(buffer.blob, None)
            later = buffer.blob in self._release_later
            self._release_later.discard(buffer.blob)
        if later:
            self.folder.remove_blob(buffer.blob)

    # -- files
    def _append(self, records: list[dict]) -> None:
        line = encode_line(records)
        if self._log_file is None:
            self._log_file = open(self.folder.log, "ab")
        self._log_file.write(line)
        self._log_file.flush()
        os.fsync(self._log_file.fileno())
        self._log_bytes += len(line)

    def _snapshot_records(self, tables, buckets) -> Iterator[dict]:
        for (account, region, name), table in tables:
            yield {"t": "table", "a": account, "r": region, "tb": name, "def": table["def"]}
            for key, item in table["items"].items():
                yield {"t": "item", "a": account, "r": region, "tb": name, "k": key, "i": item}
        by_bucket: dict[tuple, list] = {}
        for location, entry in self._manifest.items():
            by_bucket.setdefault(location[:3], []).append((location[3], entry.meta))
        for (account, partition, name), config in buckets.items():
            yield {"t": "bucket", "a": account, "p": partition, "b": name, "config": config}
            for key, meta in by_bucket.get((account, partition, name), []):
                yield {"t": "obj", "a": account, "p": partition, "b": name, "k": key, "o": meta}

    def _write_snapshot(self, records: Iterable[dict]) -> None:
        self._close_log()
        self._generation += 1
        self._snapshot_bytes = self.folder.write_snapshot(self._generation, records)
        self._log_file = open(self.folder.log, "ab")
        self._log_bytes = self._log_file.tell()

    def _snapshot_now(self) -> None:
        with self._flush_lock:
            self._flush_once(compact=True)

    # -------------------------------------------------------------- figures
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.path.rglob("*") if p.is_file())


@dataclass
class _Change:
    location: tuple            # (account, partition, bucket, key)
    fk: Any                    # moto's FakeKey now, or None: deleted
    previous: ObjectEntry | None
    blob: str | None = None
    meta: dict | None = None
    signature: tuple | None = None

    def record(self) -> dict:
        account, partition, bucket, key = self.location
        return {"t": "obj", "a": account, "p": partition, "b": bucket, "k": key,
                "o": self.meta if self.fk is not None else None}


def default_data_dir() -> Path:
    configured = os.environ.get("ALOFT_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / ".aloft"


def reset_requested() -> bool:
    return (os.environ.get("ALOFT_RESET") or "").strip().lower() in ("1", "true", "yes", "on")
