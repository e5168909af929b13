"""The study app served by ``streamlit run`` on a free localhost port, for a real browser
(the browser test, the flip benchmark)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from study_app.studies import ROOT_ENV

APP = Path(__file__).resolve().parents[1] / "study_app" / "app.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Return once Streamlit answers its health check; raise if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("streamlit did not start") from None
            time.sleep(0.5)


@contextlib.contextmanager
def serve(root: Path, env: dict[str, str] | None = None, timeout_s: float = 90) -> Iterator[str]:
    """Serve the studies under ``root`` with environment ``env`` (default: this process's);
    yields the base URL and stops the server's whole process group afterwards."""
    port = free_port()
    env = {**(os.environ if env is None else env), ROOT_ENV: str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=APP.parents[1], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_healthy(url, proc, timeout_s)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group started here
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
