"""The RESIZE pending action: smaller copies of the images before they go to a node
(WebODM's `Task.resize_images`; the image rules are in chalicelib/resize.py).

Resumable: images with a copy under `resized/` are done, so a step that runs out of time,
or a worker killed half way, carries on where it stopped. `resize_progress` moves from 0 to 1
(written every 2 s, as WebODM); the GCP file is rescaled last, from the ratios stored with
each copy.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .. import resize as images
from .. import storage
from .context import NOW, Outcome, StepContext

log = logging.getLogger(__name__)
PROGRESS_WRITE_SECONDS = 2.0
THREADS = 2  # WebODM's WORKERS_MAX_THREADS; the worker has about one vCPU
RESERVE_SECONDS = 20.0  # an image in flight finishes within this


def resize(ctx: StepContext) -> Outcome:
    task = ctx.task
    longest = int(task.get("resize_to") or -1)
    if longest <= 0:
        return Outcome("resize", {"pending_action": None}, NOW, quiet=True)
    originals = storage.list_images(task["id"])
    candidates = [i for i in originals if images.can_resize(i.name)]
    done = {o.name.removesuffix(".unchanged") for o in storage.list_resized(task["id"])}
    todo = [i for i in candidates if i.name not in done]
    finished = len(candidates) - len(todo)
    last_write = time.monotonic()
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="resize") as pool:
        pending: set = set()
        queue = iter(todo)
        while True:
            while len(pending) < THREADS and ctx.seconds_left() > RESERVE_SECONDS:
                image = next(queue, None)
                if image is None:
                    break
                pending.add(pool.submit(_resize_one, task["id"], image.name, longest))
            if not pending:
                break
            completed, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in completed:
                future.result()
                finished += 1
            if time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS:
                ctx.save({"resize_progress": round(finished / max(1, len(candidates)), 4)})
                last_write = time.monotonic()
    if finished < len(candidates):
        return Outcome("resize", {"resize_progress": round(finished / len(candidates), 4)}, NOW,
                       note=f"paused at {finished} of {len(candidates)} images (time)")
    _rescale_gcp(task["id"], originals)
    return Outcome("resize", {"pending_action": None, "resize_progress": 1.0}, NOW,
                   note=f"{len(candidates)} images to {longest} px")


def _resize_one(task_id: str, name: str, longest: int) -> None:
    """Write the smaller copy (ratio in its metadata); an image that stays as it is gets an
    empty marker with ratio 1, so a resumed step does not look at it again."""
    result = images.resize_image(name, storage.read_object(storage.image_key(task_id, name)), longest)
    key = storage.resized_prefix(task_id) + name
    if result is None:
        storage.put_bytes(key + ".unchanged", b"", {images.RATIO_METADATA: "1"})
        return
    data, ratio = result
    storage.put_bytes(key, data, {images.RATIO_METADATA: repr(ratio)})


def _rescale_gcp(task_id: str, originals: list) -> None:
    gcp_files = [i for i in originals if images.is_gcp_file(i.name)]
    if len(gcp_files) != 1:
        return
    ratios: dict[str, float] = {}
    for copy in storage.list_resized(task_id):
        if copy.name.endswith(".unchanged") or images.is_gcp_file(copy.name):
            continue
        meta = storage.object_metadata(copy.key) or {}
        try:
            ratios[copy.name] = float(meta.get(images.RATIO_METADATA, "1"))
        except ValueError:
            continue
    gcp = gcp_files[0]
    text = storage.read_object(storage.image_key(task_id, gcp.name)).decode("utf-8", "replace")
    storage.put_bytes(storage.resized_prefix(task_id) + gcp.name, images.rescale_gcp(text, ratios).encode())
