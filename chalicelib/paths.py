"""Names that come from outside (uploads, zip members, URL paths) made safe to use as S3
keys and file names: the one place that decides what a name may contain.

- `safe_filename`: reduce any name to a safe base name (uploads; as Django's storage does
  for WebODM), never refuse.
- `safe_relative_path`: accept a relative path as it is, or refuse it (zip members, the
  `assets/{path}` route): no absolute paths, no `.`/`..`/empty parts, no backslashes, no
  control or format characters.
"""
from __future__ import annotations

import os
import unicodedata

MAX_NAME_BYTES = 200


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch)[0] == "C" for ch in text)


def safe_filename(name: str) -> str:
    """A file name that is safe as an S3 key part and on a node: no directories,
    no traversal, no control or format characters, bounded length."""
    name = (name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = unicodedata.normalize("NFC", name).strip().lstrip(".")
    if not name:
        name = "file"
    stem, ext = os.path.splitext(name)
    if len(ext.encode()) > 20:
        stem, ext = name, ""
    while len((stem + ext).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + ext


def safe_relative_path(name: str, allow_directory: bool = True) -> str | None:
    """The path itself when it is a clean relative path, else None. A trailing `/` (a zip
    directory entry) is kept when `allow_directory`."""
    if not name or name.startswith("/") or "\\" in name or _has_control(name):
        return None
    is_directory = allow_directory and name.endswith("/")
    parts = (name[:-1] if is_directory else name).split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts) + ("/" if is_directory else "")
