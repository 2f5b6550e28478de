"""A task's results, made ready: the step that turns a node's all.zip into status 40.

WebODM's `Task.extract_assets_and_complete`: extract the assets (chalicelib/assets.py), make
the orthophoto, DSM and DTM Cloud-Optimized GeoTIFFs and derive the map fields from them
(chalicelib/rasters/completion.py). The worker's completion step and a task import share it.
"""
from __future__ import annotations

from . import assets, aws, storage
from .config import settings
from .models import StatusCode


def collect_results(task_id: str) -> dict:
    """The task changes of a completed task whose all.zip is in S3 (WebODM also clears `crop`
    and `potree_scene` at completion). Raises
    assets.InvalidZipError when the zip cannot be used."""
    from .rasters.completion import finish_rasters

    result = assets.extract_assets(aws.s3(), settings().bucket, storage.task_prefix(task_id))
    rasters = finish_rasters(task_id, result.available_assets)
    size_bytes = max(0, result.size_bytes + rasters.pop("size_delta"))
    return {"status": int(StatusCode.COMPLETED), "running_progress": 1.0,
            "available_assets": result.available_assets, "size_bytes": size_bytes,
            "statistics": result.statistics, "crop": None, "potree_scene": {}, **rasters}
