"""Where the command line keeps its state: credentials per server and upload resume files.

The folder is the user's config dir (`click.get_app_dir("aloft")`: `~/.config/aloft` on Linux,
`~/Library/Application Support/aloft` on macOS, `%APPDATA%\\aloft` on Windows), or
`ALOFT_CONFIG_DIR`. Files are written atomically with mode 0600 (the folder 0700): they hold tokens.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def config_dir() -> Path:
    explicit = os.environ.get("ALOFT_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    import click

    return Path(click.get_app_dir("aloft"))


def normalize_url(url: str) -> str:
    """`localhost:8000/` -> `http://localhost:8000`; the key credentials are stored under."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def write_private(path: Path, data: Any) -> None:
    """Write JSON atomically, readable by the owner only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a damaged file is treated as absent


class Credentials:
    """`credentials.json`: {"default": url, "servers": {url: {"token" | "api_key", "username"}}}."""

    def __init__(self, directory: Path | None = None):
        self.path = (directory or config_dir()) / "credentials.json"
        data = read_json(self.path)
        self.data = data if isinstance(data, dict) else {}
        self.data.setdefault("servers", {})

    @property
    def default(self) -> str | None:
        return self.data.get("default")

    def get(self, url: str | None = None) -> tuple[str, dict] | None:
        """(server url, its entry): the one asked for, else the default (last logged in)."""
        url = normalize_url(url) if url else self.default
        if not url or url not in self.data["servers"]:
            return None
        return url, self.data["servers"][url]

    def save(self, url: str, entry: dict) -> None:
        url = normalize_url(url)
        self.data["servers"][url] = entry
        self.data["default"] = url
        write_private(self.path, self.data)

    def remove(self, url: str | None = None) -> str | None:
        found = self.get(url)
        if found is None:
            return None
        del self.data["servers"][found[0]]
        if self.data.get("default") == found[0]:
            self.data["default"] = next(iter(self.data["servers"]), None)
        write_private(self.path, self.data)
        return found[0]
