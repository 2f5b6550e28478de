"""GDAL's view of S3: the same bucket the API writes, read with HTTP range requests.

Deployed, GDAL signs its requests with the Lambda role's credentials from the environment.
Locally the endpoint is moto's (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3), reached over plain
HTTP with path-style addresses, as boto3 reaches it (`chalicelib/aws.py`).
"""
from __future__ import annotations

import contextlib
import os
from urllib.parse import urlsplit

from ..config import settings

# Cloud-optimized reads: never list the "folder" of a file, read the header in one request,
# merge neighbouring ranges, keep what was read for the next tile of the same container.
_READ_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_TIMEOUT": "20",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 1024 * 1024),
    # rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not MB. 256 here
    # was a 256-byte block cache: every resampled read re-decoded each tile per output line
    # (a 1024 px thumbnail of an 8000 px COG took 100 s instead of 0.2 s).
    "GDAL_CACHEMAX": 256 * 1024 * 1024,
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 1024 * 1024),
}


def s3_options() -> dict[str, str | int]:
    """GDAL configuration options for /vsis3/ in this environment."""
    options = dict(_READ_OPTIONS)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update({"AWS_S3_ENDPOINT": parts.netloc, "AWS_HTTPS": "YES" if parts.scheme == "https" else "NO",
                        "AWS_VIRTUAL_HOSTING": "FALSE"})
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["AWS_REGION"] = region
    return options


def vsis3_path(key: str) -> str:
    """The GDAL path of an object of Aloft's bucket."""
    return f"/vsis3/{settings().bucket}/{key}"


@contextlib.contextmanager
def s3_env():
    """A rasterio environment that reads Aloft's bucket (GDAL options set for this block only)."""
    import rasterio

    with rasterio.Env(**s3_options()):
        yield
