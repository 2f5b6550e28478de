"""`make run`: start the local stack on http://localhost:${PORT:-8000} until Ctrl-C."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading


def _print_data_banner(storage) -> None:
    if storage is None:
        print("  data: kept by that endpoint; nothing is stored locally", flush=True)
        return
    restored = storage.restored
    if storage.reset:
        what = "ALOFT_RESET=1: started empty"
    elif restored["items"] or restored["objects"]:
        what = (f"restored {restored['items']} items and {restored['objects']} objects "
                f"({restored['bytes'] / 1e6:.1f} MB) in {restored['seconds']:.1f} s")
    else:
        what = "empty"
    print(f"  data: {storage.folder.path} ({what}; kept across restarts, ALOFT_RESET=1 starts empty)",
          flush=True)
    for warning in storage.warnings:
        print(f"  warning: {warning}", flush=True)


def main() -> int:
    logging.basicConfig(level=os.environ.get("ALOFT_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from .persistence import DataDirError
    from .stack import LocalStack

    stack = LocalStack(port=int(os.environ.get("PORT") or 8000),
                       host=os.environ.get("HOST") or "127.0.0.1",
                       poll_seconds=float(os.environ.get("ALOFT_POLL_SECONDS") or 60),
                       workers=int(os.environ.get("ALOFT_WORKERS") or 4))
    try:
        stack.start()
    except DataDirError as exc:
        print(f"Aloft local stack not started: {exc}", file=sys.stderr, flush=True)
        return 2
    username, password, created = stack.admin
    print(f"Aloft local stack: API on {stack.url}/api/ ({stack.workers} workers on the work queue, "
          f"the schedule every {stack.poll_seconds:g} s)", flush=True)
    print(f"  storage: {stack.endpoint}", flush=True)
    _print_data_banner(stack.storage)
    if created:
        print(f"  superuser: {username} / {password}", flush=True)
    else:
        print(f"  superuser {username!r} already exists (left unchanged)", flush=True)
    print("  Ctrl-C to stop.", flush=True)

    stopped = threading.Event()
    # Both set explicitly: a shell that starts `make run` in the background hands it SIGINT
    # ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    print("Stopping...", flush=True)
    stack.stop()
    if stack.storage:
        print(f"Data kept in {stack.storage.folder.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
