"""A browser really draws Aloft's tiles: headless Chromium (Debian's package) loads a page of our
own (tests/browser/map.html) from another origin than the API. The page reads tiles.json with
fetch() (the browser's own Accept header, CORS) and draws every tile of one zoom as <img>
elements loaded with CORS (crossorigin), under the browser's own image Accept header (API
Gateway's binary rule). The screenshot must show the orthophoto's four coloured quadrants in
their places, with the page's white where the orthophoto is transparent.

Skipped, with the reason in the summary (`make test` runs pytest with -rs), where Chromium is
absent; `.ci/run` installs it.
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests import rasters
from tests.helpers import complete_in_s3, new_project, new_task

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE_DIR = Path(__file__).resolve().parent / "browser"
ZOOM = 19  # the test orthophoto (66 × 60 m) spans 2–3 tiles of 52 m each way
WINDOW = (1100, 1100)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run installs it): "
                             "the browser test of the map tiles did not run")


class _QuietPages(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def page_origin():
    """The page's own origin: a static file server on another port than the gateway."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietPages, directory=str(PAGE_DIR)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def chromium(url: str, screenshot: Path, profile: Path) -> str:
    """Chromium headless: the page after its network went quiet (virtual time); the DOM it
    printed, and the screenshot written."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
         "--hide-scrollbars", "--virtual-time-budget=30000", "--dump-dom", f"--screenshot={screenshot}", url],
        capture_output=True, text=True, timeout=180)
    assert screenshot.exists(), done.stderr[-3000:]
    return done.stdout


def colour_regions(path: Path) -> dict:
    """For each quadrant colour of the test orthophoto (and black): how many screenshot pixels
    are near it, and their centroid (x, y)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    targets = {**dict(zip(("red", "green", "blue", "yellow"), rasters.QUADRANT_COLOURS)), "black": (0, 0, 0)}
    regions = {}
    for name, colour in targets.items():
        ys, xs = np.nonzero((np.abs(pixels - np.array(colour)) < 40).all(axis=2))
        regions[name] = (len(xs), (float(xs.mean()), float(ys.mean())) if len(xs) else None)
    return regions


def test_headless_chromium_draws_the_orthophoto_tiles_from_another_origin(live, api, alice, page_origin,
                                                                          tmp_path):
    project = new_project(api, alice)
    task = new_task(api, alice, project)
    complete_in_s3(project["id"], task["id"], rasters.raster_zip())
    tilejson = f"{live}/api/projects/{project['id']}/tasks/{task['id']}/orthophoto/tiles.json"
    page = f"{page_origin}/map.html?" + urlencode({"tilejson": tilejson, "zoom": ZOOM, "jwt": alice["token"]})

    dom = chromium(page, tmp_path / "screenshot.png", tmp_path / "profile")

    status = re.search(r'<pre id="status">(.*?)</pre>', dom, re.S)
    assert "<title>drawn</title>" in dom, status[1] if status else dom[-2000:]
    regions = colour_regions(tmp_path / "screenshot.png")
    tile_area = 256 * 256
    for name in ("red", "green", "blue", "yellow"):
        count, _ = regions[name]
        assert count > tile_area // 8, (name, regions)  # each quadrant covers ~27 × 24 m: ~130 × 115 px
    (x_red, y_red), (x_green, y_green) = regions["red"][1], regions["green"][1]
    (x_blue, y_blue), (x_yellow, y_yellow) = regions["blue"][1], regions["yellow"][1]
    # The orthophoto's layout: red top-left, green top-right, blue bottom-left, yellow bottom-right.
    assert x_red < x_green and x_blue < x_yellow and y_red < y_blue and y_green < y_yellow, regions
    # Outside the data the tiles are transparent: the page's white, never black nodata.
    assert regions["black"][0] < tile_area // 100, regions
