"""A report's figure as SVG or PNG, drawn by kaleido in Debian's (or any) Chromium.

Each image is drawn in a child process (``python -m backend.services.figure_images FORMAT``, the figure
as JSON on stdin, the image on stdout) with a deadline: a browser that hangs or crashes takes its
process group with it, never the server, and the server never waits on it past ``TIMEOUT_SECONDS``.
At most ``RENDERS`` draw at once; the others wait up to the same deadline. MathJax stays off (kaleido
would fetch it from a CDN) and Plotly comes from the installed package, so nothing is fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

from backend.reports.figures import HEIGHT, WIDTH
from backend.services.errors import Unavailable

ImageFormat = Literal["svg", "png"]
MEDIA_TYPES: dict[str, str] = {"svg": "image/svg+xml", "png": "image/png"}
TIMEOUT_SECONDS = 60.0
RENDERS = 2
PNG_SCALE = 2  # 1280 x 800 pixels: sharp in print at a column's width
# The headless build first: it draws the same images as the desktop browser with less CPU and fewer packages.
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
_turns = threading.BoundedSemaphore(RENDERS)


def browser_path() -> str:
    """The browser kaleido drives: ``BROWSER_PATH`` (choreographer's own variable) or the first one found."""
    given = os.environ.get("BROWSER_PATH")
    if given:
        if not Path(given).is_file():
            raise Unavailable(f"figure export needs Chromium: BROWSER_PATH names {given!r}, which is no file")
        return given
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise Unavailable(
        "figure export needs Chromium and none was found: install Debian's chromium-headless-shell package "
        "(apt-get install chromium-headless-shell) or set BROWSER_PATH to a Chrome or Chromium"
    )


def render(figure: dict[str, Any], image_format: ImageFormat, *, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """``figure`` drawn as an image; Unavailable (a 503) when no browser can draw it in time."""
    browser = browser_path()
    if not _turns.acquire(timeout=timeout):
        raise Unavailable(f"the server is drawing {RENDERS} figures already; try again shortly")
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "backend.services.figure_images", image_format],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "BROWSER_PATH": browser},
            start_new_session=True,  # its own process group: the browser goes with it on a timeout
        )
        try:
            image, errors = child.communicate(json.dumps(figure).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise Unavailable(f"drawing the figure took longer than {timeout:g} s; try again") from None
    finally:
        _turns.release()
    if child.returncode != 0 or not image:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"the browser could not draw the figure: {last[0][:300]}")
    return image


def _draw(image_format: str) -> None:
    """The child's side: the figure from stdin, drawn by kaleido, to stdout."""
    import asyncio

    import kaleido

    from backend.reports.document import PLOTLY_BUNDLE

    figure = json.load(sys.stdin)
    options = {"format": image_format, "width": WIDTH, "height": figure["layout"].get("height", HEIGHT)}
    if image_format == "png":
        options["scale"] = PNG_SCALE

    async def draw() -> bytes:
        browser = os.environ["BROWSER_PATH"]
        # mathjax=False: kaleido would otherwise load MathJax from a CDN.
        renderer = kaleido.Kaleido(n=1, timeout=TIMEOUT_SECONDS, mathjax=False, plotlyjs=PLOTLY_BUNDLE, path=browser)
        async with renderer:
            return await renderer.calc_fig(figure, opts=options)

    sys.stdout.buffer.write(asyncio.run(draw()))


if __name__ == "__main__":
    _draw(sys.argv[1])
