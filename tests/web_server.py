"""`sitewatch serve`'s app run for real, for the browser tests (tests/test_web_browser.py).

:func:`serve` starts uvicorn in a background thread on 127.0.0.1 over a socket bound to a
free port (bound before the server starts, so no other process can take the port between
choosing and listening), and stops it on exit.  :func:`missing_browser` says why a real
Chromium cannot be driven here (Playwright for Python and Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]

#: How long to wait for the server to start before failing (a bound, not a measurement).
START_TIMEOUT_S = 30.0


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return "uvicorn is not installed (pip install -e '.[web]')"
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        return f"Chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    return None


def chromium_path() -> str:
    return CHROMIUM if Path(CHROMIUM).is_file() else (shutil.which("chromium") or CHROMIUM)


@dataclass
class Served:
    """A running server: its base URL, home and write token."""

    url: str
    home: Path
    token: str

    def get_json(self, path: str) -> Any:
        """A GET of the API as a client other than the page would make it."""
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return json.load(resp)

    def send(self, method: str, path: str, body: Any, token: str | None = "") -> Any:
        """A write with the token (``token=None``: without one); returns (status, JSON)."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        tok = self.token if token == "" else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


@contextmanager
def serve(home: Path, *, read_only: bool = False) -> Iterator[Served]:
    """The web app over ``home`` served on 127.0.0.1 (a free port) until the block ends
    (``read_only``: as ``sitewatch serve --read-only``)."""
    import uvicorn

    from sitewatch.web.app import create_app
    from sitewatch.web.auth import load_or_create_token

    token, _ = load_or_create_token(home)
    app = create_app(home, read_only=read_only)
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="sitewatch-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        server.should_exit = True
        raise RuntimeError(f"the web server did not start within {START_TIMEOUT_S} s")
    try:
        yield Served(f"http://127.0.0.1:{port}", home, token)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


__all__ = ["CHROMIUM_ARGS", "Served", "chromium_path", "missing_browser", "serve"]
