"""Progress on stderr: Rich bars when stderr is a terminal, plain log lines otherwise (CI logs)."""
from __future__ import annotations

import sys
import threading
import time

from aloft_sdk.client import COMPLETED, stage_of, status_name
from aloft_sdk.uploads import LocalFile, Progress


def interactive() -> bool:
    return sys.stderr.isatty()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


def _console():
    from rich.console import Console

    return Console(stderr=True)


class UploadDisplay(Progress):
    """One bar for the bytes and the files of an upload."""

    def __init__(self):
        self.tty = interactive()
        self._lock = threading.Lock()
        self._bar = None
        self._files = self._done_files = self._total = self._done = 0
        self._next_percent = 0
        self._last_log = 0.0

    def start(self, files: int, total_bytes: int, done_files: int, done_bytes: int, mode: str) -> None:
        self._files, self._done_files, self._total, self._done = files, done_files, total_bytes, done_bytes
        how = "presigned PUTs to S3" if mode == "presign" else "WebODM upload/"
        left = files - done_files
        if done_files:
            log(f"{done_files} of {files} files already uploaded: sending the {left} left ({how})")
        else:
            log(f"uploading {files} files, {human_bytes(total_bytes)} ({how})")
        if self.tty and left:
            from rich.progress import (BarColumn, DownloadColumn, Progress as Bars, TaskProgressColumn,
                                       TextColumn, TimeRemainingColumn, TransferSpeedColumn)

            self._bar = Bars(TextColumn("Uploading"), BarColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[files]}"), DownloadColumn(), TransferSpeedColumn(),
                             TimeRemainingColumn(), console=_console(), transient=False)
            self._id = self._bar.add_task("upload", total=total_bytes, completed=done_bytes,
                                          files=self._files_text())
            self._bar.start()

    def _files_text(self) -> str:
        return f"{self._done_files}/{self._files} files"

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes
            if self._bar is not None:
                self._bar.update(self._id, advance=nbytes)

    def file_done(self, file: LocalFile) -> None:
        with self._lock:
            self._done_files += 1
            if self._bar is not None:
                self._bar.update(self._id, files=self._files_text())
                return
            percent = 100 * self._done // max(1, self._total)
            now = time.monotonic()
            if percent >= self._next_percent or now - self._last_log > 10 or self._done_files == self._files:
                self._next_percent = percent - percent % 10 + 10
                self._last_log = now
                log(f"upload {percent}%: {human_bytes(self._done)} of {human_bytes(self._total)} sent, "
                    f"{self._files_text()} done")

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            log(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class WaitDisplay:
    """The task's status, stage and progress, with its last console line."""

    def __init__(self, ref: str):
        self.ref = ref
        self.tty = interactive()
        self.stage: str | None = None
        self.last_line = ""
        self._said: tuple | None = None
        self._next_percent = 0
        self._live = None
        if self.tty:
            from rich.console import Group
            from rich.live import Live
            from rich.progress import BarColumn, Progress as Bars, TaskProgressColumn, TextColumn, TimeElapsedColumn
            from rich.text import Text

            self._bars = Bars(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                              TimeElapsedColumn(), console=_console())
            self._id = self._bars.add_task("Waiting", total=100)
            self._text = Text("", no_wrap=True, overflow="ellipsis", style="dim")
            self._live = Live(Group(self._bars, self._text), console=self._bars.console,
                              refresh_per_second=8, transient=False)
            self._live.start()

    def update(self, task: dict, lines: list[str]) -> None:
        self.stage = stage_of(lines, self.stage)
        if lines:
            self.last_line = next((line for line in reversed(lines) if line.strip()), self.last_line)
        status = status_name(task.get("status"))
        progress = float(task.get("running_progress") or 0) * 100
        if task.get("status") == COMPLETED:
            progress = 100.0
        label = status.capitalize() + (f" · {self.stage}" if self.stage and status == "RUNNING" else "")
        if self._live is not None:
            self._bars.update(self._id, description=label, completed=progress)
            self._text.plain = "  " + self.last_line.strip()
            return
        said = (status, self.stage)
        if said != self._said or progress >= self._next_percent:
            self._said = said
            self._next_percent = int(progress) - int(progress) % 10 + 10
            tail = f" | {self.last_line.strip()}" if self.last_line.strip() else ""
            log(f"task {self.ref}: {label} {progress:.0f}%{tail}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class DownloadDisplay:
    """A byte bar per downloaded asset."""

    def __init__(self):
        self.tty = interactive()
        self._bar = None

    def start(self, asset: str, size: int | None) -> None:
        self.asset, self.size, self.done = asset, size, 0
        if self.tty:
            from rich.progress import BarColumn, DownloadColumn, Progress as Bars, TextColumn, TransferSpeedColumn

            self._bar = Bars(TextColumn(f"Downloading {asset}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), console=_console())
            self._id = self._bar.add_task(asset, total=size)
            self._bar.start()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self._bar is not None:
            self._bar.update(self._id, advance=nbytes)

    def finish(self, path) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        log(f"downloaded {path} ({human_bytes(self.done)})")
