"""Static export of the figures: PNG and SVG through kaleido, which drives a Chrome or Chromium.

kaleido 1.x finds its browser through ``BROWSER_PATH``; this module points it at the first
browser it finds (``BROWSER_PATH`` when it exists, else ``chromium``/``google-chrome`` on the
PATH, e.g. Debian's ``/usr/bin/chromium``).  Without any browser the figure is written as a
standalone interactive HTML file instead, and a note says so.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import warnings
from pathlib import Path

import kaleido
import plotly.graph_objects as go

from hific.image_io import atomic_write_bytes

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FORMATS = ("png", "svg")


def find_browser() -> str | None:
    """Path of a Chrome/Chromium for kaleido, or ``None``."""
    configured = os.environ.get("BROWSER_PATH")
    if configured and Path(configured).is_file():
        return configured
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@functools.cache
def start_browser(browser: str) -> None:
    """Start kaleido's browser once per process (each export would otherwise launch its own,
    about four times slower) and stop it at exit."""
    os.environ["BROWSER_PATH"] = browser
    kaleido.start_sync_server(silence_warnings=True)
    atexit.register(kaleido.stop_sync_server, silence_warnings=True)


def export_static(fig: go.Figure, directory: str | Path, name: str,
                  formats: tuple[str, ...] = FORMATS) -> tuple[list[Path], list[str]]:
    """Write ``fig`` as ``directory/name.<format>`` for each format (atomically); returns the
    files written and notes (e.g. the HTML fallback when no browser exists)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    browser = find_browser()
    if browser is None:
        path = directory / f"{name}.html"
        atomic_write_bytes(path, fig.to_html(include_plotlyjs=True).encode())
        return [path], [f"no Chrome/Chromium found (set BROWSER_PATH or install chromium): "
                        f"wrote {path.name} instead of {'/'.join(formats)}"]
    start_browser(browser)
    written = []
    for fmt in formats:
        path = directory / f"{name}.{fmt}"
        with warnings.catch_warnings():  # plotly passes options the shared browser already has
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            atomic_write_bytes(path, fig.to_image(format=fmt, width=1100, height=fig.layout.height or 500))
        written.append(path)
    return written, []
