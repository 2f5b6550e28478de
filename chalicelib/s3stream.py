"""Streaming access to S3 objects with bounded memory.

- `S3RangeReader`: a seekable, read-only file over one S3 object, fetched with ranged
  GETs in blocks (small LRU cache, plus read-ahead of the next block when reading
  sequentially). `zipfile.ZipFile(S3RangeReader(...))` reads the central directory with
  one GET (the tail block) and then streams members without re-fetching.
- `S3MultipartWriter`: a write-only, non-seekable stream into one S3 object. Parts are
  uploaded from a small bounded thread pool while the caller keeps writing; objects
  smaller than one part become a single `put_object`. Nothing is ever committed unless
  `close()` is reached normally: an exception inside `with`, `abort()`, or garbage
  collection of an unclosed writer aborts the multipart upload.
- `copy_stream_to_s3`: stream any `.read(n)` object (an HTTP response) into S3.

Memory: a reader holds at most `cache_blocks` + 1 (read-ahead) blocks; a writer at most
`max_workers` parts in flight plus the one being filled.
"""
from __future__ import annotations

import collections
import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor

MiB = 1024 * 1024
S3_MIN_PART_SIZE = 5 * MiB          # S3's minimum for every part but the last
S3_MAX_PARTS = 10_000
COPY_CHUNK = 1 * MiB

_BODY_READ_ATTEMPTS = 3


def _body_errors() -> tuple[type[BaseException], ...]:
    """Errors that can happen while reading a response body (not retried by botocore)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore import exceptions as bexc
        for name in ("ReadTimeoutError", "ResponseStreamingError", "IncompleteReadError",
                     "ConnectionClosedError"):
            if hasattr(bexc, name):
                errors.append(getattr(bexc, name))
    except ImportError:  # pragma: no cover - botocore is always there in practice
        pass
    try:
        from urllib3.exceptions import ProtocolError, ReadTimeoutError
        errors += [ProtocolError, ReadTimeoutError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class S3RangeReader(io.RawIOBase):
    """Seekable read-only view of `s3://bucket/key` through ranged GETs.

    Blocks are aligned on `block_size`, except that a miss in the last `block_size`
    bytes of the object fetches the whole tail (so a zip's end records and central
    directory usually cost a single GET). `requests` counts the GETs made (including
    read-ahead and retries). When the object's ETag is known (from `head_object` or
    the `etag` argument) every GET carries `IfMatch`, so a concurrent overwrite of the
    object fails loudly instead of mixing two versions.
    """

    def __init__(self, s3_client, bucket: str, key: str, size: int | None = None,
                 block_size: int = 8 * MiB, *, cache_blocks: int = 2,
                 readahead: bool = True, etag: str | None = None):
        super().__init__()
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self._s3 = s3_client
        self.bucket = bucket
        self.key = key
        self.block_size = int(block_size)
        self._cache_blocks = max(1, int(cache_blocks))
        if size is None:
            head = s3_client.head_object(Bucket=bucket, Key=key)
            size = int(head["ContentLength"])
            etag = etag or head.get("ETag")
        self.size = int(size)
        self.etag = etag
        self.requests = 0
        self._pos = 0
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._readahead = readahead
        self._prefetch_pool: ThreadPoolExecutor | None = None
        self._pending: dict[int, Future] = {}
        self._last_block: int | None = None

    # -- io.RawIOBase protocol -------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer) -> int:
        self._check_open()
        out = memoryview(buffer).cast("B")
        n = self._copy_into(out, len(out))
        return n

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if size is None or size < 0:
            size = max(0, self.size - self._pos)
        size = min(size, max(0, self.size - self._pos))
        if size == 0:
            return b""
        out = bytearray(size)
        n = self._copy_into(memoryview(out), size)
        if n != size:  # cannot happen: size is clamped to the object
            del out[n:]
        return bytes(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            pool, self._prefetch_pool = self._prefetch_pool, None
            if pool is not None:
                for fut in self._pending.values():
                    fut.cancel()
                pool.shutdown(wait=True)
            self._pending.clear()
            self._cache.clear()
        super().close()

    # -- internals ---------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def _copy_into(self, out: memoryview, want: int) -> int:
        done = 0
        want = min(want, max(0, self.size - self._pos))
        while done < want:
            start, data = self._segment(self._pos)
            off = self._pos - start
            take = min(len(data) - off, want - done)
            out[done:done + take] = memoryview(data)[off:off + take]
            done += take
            self._pos += take
        return done

    def _segment(self, pos: int) -> tuple[int, bytes]:
        """A cached (start, data) segment holding `pos`, fetching one if needed."""
        for start, data in self._cache.items():
            if start <= pos < start + len(data):
                self._cache.move_to_end(start)
                return start, data
        bs = self.block_size
        block: int | None = None
        data: bytes | None = None
        for start, fut in list(self._pending.items()):
            if start <= pos < min(self.size, start + bs):  # the read-ahead is what we need
                del self._pending[start]
                block, data = start // bs, fut.result()
                break
        if data is None:
            tail_start = max(0, self.size - bs)
            if pos >= tail_start and tail_start % bs != 0:
                # Near the end: fetch the whole tail (end records + central directory).
                start = tail_start
                data = self._fetch(tail_start, self.size)
            else:
                block = pos // bs
                start = block * bs
                data = self._fetch(start, min(self.size, start + bs))
        self._cache[start] = data
        while len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        if block is not None:
            if self._readahead and self._last_block == block - 1:
                self._prefetch(block + 1)
            self._last_block = block
        return start, data

    def _prefetch(self, block: int) -> None:
        start = block * self.block_size
        if start >= self.size or start in self._pending or start in self._cache:
            return
        end = min(self.size, start + self.block_size)
        if self._prefetch_pool is None:
            self._prefetch_pool = ThreadPoolExecutor(1, thread_name_prefix="s3-readahead")
        # Only one read-ahead at a time: drop stale ones (bounded memory).
        for stale_start in [s for s in self._pending if s != start]:
            self._pending.pop(stale_start).cancel()
        self._pending[start] = self._prefetch_pool.submit(self._fetch, start, end)

    def _fetch(self, start: int, end: int) -> bytes:
        """GET bytes [start, end) with a few retries of a broken body read."""
        want = end - start
        if want <= 0:
            return b""
        kwargs = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.etag:
            kwargs["IfMatch"] = self.etag
        retryable = _body_errors()
        for attempt in range(_BODY_READ_ATTEMPTS):
            with self._lock:
                self.requests += 1
            resp = self._s3.get_object(**kwargs)
            try:
                data = resp["Body"].read()
            except retryable:
                if attempt + 1 == _BODY_READ_ATTEMPTS:
                    raise
                continue
            finally:
                resp["Body"].close()
            if len(data) != want:
                if attempt + 1 == _BODY_READ_ATTEMPTS:
                    raise OSError(f"short read from s3://{self.bucket}/{self.key} "
                                  f"[{start}, {end}): got {len(data)} bytes")
                continue
            return data
        raise AssertionError("unreachable")  # pragma: no cover


class S3MultipartWriter(io.RawIOBase):
    """Write-only stream into `s3://bucket/key` (multipart for anything >= one part).

    Usable as `zipfile.ZipFile(writer, "w")`: it is not seekable and `tell()` reports
    the bytes written, so zipfile writes data descriptors. Use it as a context manager:
    leaving the block normally completes the object; leaving it with an exception
    aborts the multipart upload (no object, no orphaned parts).
    """

    def __init__(self, s3_client, bucket: str, key: str, content_type: str | None = None,
                 part_size: int = 8 * MiB, *, max_workers: int = 2,
                 extra_args: dict | None = None):
        super().__init__()
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {S3_MIN_PART_SIZE} bytes (S3 minimum)")
        self._s3 = s3_client
        self.bucket = bucket
        self.key = key
        self.content_type = content_type
        self.part_size = int(part_size)
        self._max_workers = max(1, int(max_workers))
        self._extra = dict(extra_args or {})
        if content_type:
            self._extra["ContentType"] = content_type
        self._buf = bytearray()
        self._pos = 0
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self._max_workers)
        self._futures: list[Future] = []
        self._next_part = 1
        self._aborted = False
        self._completed = False
        self._error: BaseException | None = None
        self._count_lock = threading.Lock()
        self.parts_uploaded = 0
        self.requests = 0

    # -- io protocol ---------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        if self.closed or self._aborted:
            raise ValueError("write to a closed or aborted S3MultipartWriter")
        mv = memoryview(data).cast("B")
        n = len(mv)
        while len(mv):
            room = self.part_size - len(self._buf)
            self._buf += mv[:room]
            mv = mv[room:]
            if len(self._buf) >= self.part_size:
                part, self._buf = self._buf, bytearray()
                self._submit_part(part)
        self._pos += n
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._aborted:
                self._finish()
        except BaseException:
            self.abort()
            raise
        finally:
            super().close()

    def abort(self) -> None:
        """Drop everything written so far; no object is created or changed."""
        if self._aborted or self._completed:
            return
        self._aborted = True
        self._buf = bytearray()
        for fut in self._futures:
            fut.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._upload_id is not None:
            try:
                self._call("abort_multipart_upload", Bucket=self.bucket, Key=self.key,
                           UploadId=self._upload_id)
            except Exception:  # best effort; a bucket lifecycle rule cleans the rest
                pass
        if not self.closed:
            super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False

    def __del__(self):
        # Never commit half-written data from the garbage collector.
        try:
            if not self.closed and not self._completed:
                self.abort()
        except Exception:
            pass

    # -- internals -------------------------------------------------------------------
    def _call(self, op: str, **kwargs):
        with self._count_lock:
            self.requests += 1
        return getattr(self._s3, op)(**kwargs)

    def _raise_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _part_done(self, fut: Future) -> None:
        self._slots.release()
        if not fut.cancelled() and fut.exception() is not None and self._error is None:
            self._error = fut.exception()

    def _submit_part(self, part: bytearray) -> None:
        self._raise_failed()
        if self._upload_id is None:
            resp = self._call("create_multipart_upload", Bucket=self.bucket, Key=self.key,
                              ChecksumAlgorithm="CRC32", **self._extra)
            self._upload_id = resp["UploadId"]
            self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="s3-part")
        number = self._next_part
        if number > S3_MAX_PARTS:
            raise OSError(f"more than {S3_MAX_PARTS} parts: raise part_size for {self.key}")
        self._next_part += 1
        self._slots.acquire()  # bounds the parts held in memory
        try:
            fut = self._pool.submit(self._upload_part, number, part)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(self._part_done)
        self._futures.append(fut)

    def _upload_part(self, number: int, part: bytearray) -> dict:
        resp = self._call("upload_part", Bucket=self.bucket, Key=self.key,
                          UploadId=self._upload_id, PartNumber=number,
                          Body=part, ChecksumAlgorithm="CRC32")
        with self._count_lock:
            self.parts_uploaded += 1
        done = {"PartNumber": number, "ETag": resp["ETag"]}
        if resp.get("ChecksumCRC32"):
            done["ChecksumCRC32"] = resp["ChecksumCRC32"]
        return done

    def _finish(self) -> None:
        if self._upload_id is None:
            self._call("put_object", Bucket=self.bucket, Key=self.key, Body=bytes(self._buf),
                       **self._extra)
            self._buf = bytearray()
            self._completed = True
            return
        if self._buf:
            part, self._buf = self._buf, bytearray()
            self._submit_part(part)
        parts = [fut.result() for fut in self._futures]  # re-raises a failed part
        self._pool.shutdown(wait=True)
        self._pool = None
        self._call("complete_multipart_upload", Bucket=self.bucket, Key=self.key,
                   UploadId=self._upload_id, MultipartUpload={"Parts": parts})
        self._completed = True


def copy_stream_to_s3(s3_client, fileobj, bucket: str, key: str,
                      content_type: str | None = None, *, part_size: int = 8 * MiB,
                      chunk_size: int = COPY_CHUNK) -> int:
    """Stream `fileobj` (anything with `.read(n)`) into one S3 object; bytes written.

    Memory stays around (upload threads + 1) x part_size whatever the stream's length.
    On any error (from the stream or from S3) the partial upload is aborted.
    """
    with S3MultipartWriter(s3_client, bucket, key, content_type, part_size) as writer:
        while True:
            chunk = fileobj.read(chunk_size)
            if not chunk:
                break
            writer.write(chunk)
    return writer.tell()


def iter_objects(s3_client, bucket: str, prefix: str):
    """Every object under `prefix` (ListObjectsV2 pages of 1,000), in key order."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", ())


def delete_keys(s3_client, bucket: str, keys) -> int:
    """Delete these keys, 1,000 per request; returns how many. Raises OSError naming the
    first key S3 could not delete."""
    deleted = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal deleted
        reply = s3_client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                "Quiet": True})
        errors = reply.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(f"could not delete {len(errors)} object(s), e.g. "
                          f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
        deleted += len(batch)
        batch.clear()

    for key in keys:
        batch.append(key)
        if len(batch) == 1000:
            flush()
    if batch:
        flush()
    return deleted
