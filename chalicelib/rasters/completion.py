"""The raster part of a task's completion (WebODM's `Task.extract_assets_and_complete`, step 2
and `update_georef_fields` / `update_orthophoto_bands_field`).

For the orthophoto, DSM and DTM in that order: fetch to local scratch space (the worker's
ephemeral storage), rewrite as a COG when it is not one and put it back under the same key,
then describe it. A raster GDAL cannot read is logged and skipped: the task still completes,
with that raster's fields empty, never failed.
"""
from __future__ import annotations

import logging
import os
import tempfile
import uuid

from .. import assets, aws, storage
from ..config import settings
from . import describe as describing

log = logging.getLogger(__name__)

ASSET_OF = {"orthophoto": "orthophoto.tif", "dsm": "dsm.tif", "dtm": "dtm.tif"}


def empty_fields() -> dict:
    """A task without rasters: what WebODM shows before processing."""
    return {"rasters": {}, "extent": None, "epsg": None, "wkt": None, "srs": dict(describing.NO_SRS),
            "orthophoto_bands": []}


def finish_rasters(task_id: str, available_assets: list[str]) -> dict:
    """COGs in place and the task fields they give; `size_delta` is how much the rewritten
    files grew (negative when they shrank)."""
    fields = empty_fields()
    codes: list[tuple[int | None, str | None]] = []
    size_delta = 0
    version = uuid.uuid4().hex  # this processing's rasters (readers drop what they cached of older ones)
    prefix = storage.task_prefix(task_id)
    with tempfile.TemporaryDirectory(prefix="aloft-rasters-") as scratch:
        for kind in describing.RASTER_TYPES:
            asset = ASSET_OF[kind]
            if asset not in available_assets:
                continue
            key = assets.asset_key(prefix, asset)
            path = os.path.join(scratch, asset)
            try:
                size_delta += _make_cog(key, path)
                summary = describing.describe(path)
                if summary is not None:
                    summary["version"] = version
                    _keep_metadata(task_id, kind, {"key": key, **summary}, path)
                codes.append(describing.crs_codes(path))
                if kind == "orthophoto":
                    fields["orthophoto_bands"] = describing.orthophoto_bands(path)
            except Exception as exc:  # noqa: BLE001 - GDAL's errors are many; none may fail the task
                log.warning("Task %s: %s is not a raster GDAL can read (%s); its fields stay empty",
                            task_id, asset, exc)
                continue
            finally:
                if os.path.exists(path):
                    os.unlink(path)
            if summary is not None:
                fields["rasters"][kind] = {"key": key, **summary}
                if fields["extent"] is None:
                    fields["extent"] = list(summary["bounds"])
    fields.update(describing.georef_fields(codes))
    fields["srs"] = describing.srs_of(fields["epsg"], fields["wkt"])
    fields["size_delta"] = size_delta
    return fields


def _keep_metadata(task_id: str, kind: str, raster: dict, path: str) -> None:
    """The metadata route's parameterless answer, computed from the local copy while it is
    here (the route computes it itself, once, if this fails)."""
    from . import metadata

    try:
        metadata.store(task_id, kind, metadata.compute(raster, kind, path=path), raster.get("version"))
    except Exception as exc:  # noqa: BLE001 - never fails the task
        log.warning("Task %s: metadata of %s not kept (%s)", task_id, kind, exc)


def _make_cog(key: str, path: str) -> int:
    """Fetch, convert when needed, put back. The size change in bytes."""
    from . import cog

    s3, bucket = aws.s3(), settings().bucket
    s3.download_file(bucket, key, path)
    before = os.path.getsize(path)
    if not cog.ensure_cog(path):
        return 0
    s3.upload_file(path, bucket, key, ExtraArgs={"ContentType": "image/tiff"})
    return os.path.getsize(path) - before
