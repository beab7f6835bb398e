"""Real test services: PostgreSQL + PostGIS + pgstac, a STAC API, a static file server, a proxy.

Nothing here is a fake: a private PostgreSQL 15 cluster (Debian's binaries) with PostGIS and
the pgstac schema (``pypgstac migrate``, SQL shipped in the wheel), stac-fastapi-pgstac under
uvicorn in a subprocess, Starlette's StaticFiles (HTTP Range) under uvicorn in a thread that
logs every request and the body bytes it sent, and a fault-injecting proxy
(``tests/fault_proxy.py``) in front of both.  ``scripts/install-test-services.sh`` installs
what they need; docs/testing.md describes them.

The conftest fixtures ``stac_services`` (session) and ``stac`` (function: emptied catalogue,
log and fault plan) hand out a :class:`StacServices`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fault_proxy import FaultProxy
from pg_server import PG_BIN, PgCluster, ServiceUnavailable, free_port

__all__ = ["FileServer", "PgCluster", "PgstacCluster", "ServedRequest", "ServiceUnavailable",
           "StacApiServer", "StacServices", "missing_services", "start_services"]

TESTS = Path(__file__).resolve().parent
DEFAULT_PAGE_CAP = 10


def missing_services() -> str | None:
    """Why the services cannot start here, or None when everything is installed."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)"
    ext = Path(subprocess.run([str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True,
                              text=True).stdout.strip() or "/usr/share/postgresql/15")
    if not (ext / "extension" / "postgis.control").exists():
        return "PostGIS is not installed for PostgreSQL 15 (postgresql-15-postgis-3)"
    for mod in ("pypgstac", "stac_fastapi.pgstac", "uvicorn", "starlette", "psycopg",
                "pystac_client"):
        try:
            __import__(mod)
        except ImportError:
            return f"Python package {mod} is missing (pip install -e '.[test]')"
    return None


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, log: Path,
               timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with {proc.returncode}: "
                                     f"{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"{what} did not listen on port {port} within {timeout:.0f} s")


class PgstacCluster(PgCluster):
    """A :class:`PgCluster` that can hold the pgstac schema (PostGIS + ``pypgstac migrate``)."""

    def install_pgstac(self) -> None:
        self.sql("CREATE EXTENSION IF NOT EXISTS postgis")
        r = subprocess.run([sys.executable, "-m", "pypgstac.pypgstac", "migrate", "--dsn",
                            self.dsn], capture_output=True, text=True)
        if r.returncode != 0:
            raise ServiceUnavailable(f"pypgstac migrate failed: {r.stderr[-2000:]}")


class StacApiServer:
    """stac-fastapi-pgstac under uvicorn, in a subprocess that tests may stop and start.

    The port stays the same across restarts, so URLs handed out stay valid; while stopped the
    port refuses connections (a catalogue that is down).
    """

    def __init__(self, db: PgstacCluster, workdir: Path,
                 page_cap: int = DEFAULT_PAGE_CAP) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cap_file = workdir / "page_cap"
        self._log = workdir / "stac-api.log"
        self.page_cap = page_cap
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def page_cap(self) -> int:
        """The most Items the server puts in one page (clients must follow ``next``)."""
        return int(self._cap_file.read_text())

    @page_cap.setter
    def page_cap(self, n: int) -> None:
        self._cap_file.write_text(str(int(n)))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        env = dict(os.environ, PGUSER=self.db.user, PGPASSWORD="unused", PGHOST="127.0.0.1",
                   PGPORT=str(self.db.port), PGDATABASE=self.db.database,
                   ENABLE_TRANSACTIONS_EXTENSIONS="false", DB_MIN_CONN_SIZE="1",
                   DB_MAX_CONN_SIZE="4", SITEWATCH_STAC_PAGE_CAP_FILE=str(self._cap_file),
                   STAC_FASTAPI_TITLE="sitewatch test catalogue")
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "stac_api_app:create_app", "--factory",
                 "--app-dir", str(TESTS), "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning", "--no-access-log"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _wait_port(self.port, self._proc, "stac-fastapi-pgstac", self._log)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); its port then refuses."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    close = stop


@dataclass(frozen=True)
class ServedRequest:
    """One request the file server answered: body bytes actually sent."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


class FileServer:
    """Starlette StaticFiles (HTTP Range) under uvicorn in a thread, logging every request."""

    def __init__(self, root: Path) -> None:
        import uvicorn
        from starlette.staticfiles import StaticFiles

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._records: list[ServedRequest] = []
        self._lock = threading.Lock()
        static = StaticFiles(directory=str(root))

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await static(scope, receive, send)
                return
            state = {"status": 0, "bytes": 0}

            async def counting_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    state["bytes"] += len(message.get("body", b""))
                await send(message)

            try:
                await static(scope, receive, counting_send)
            finally:
                headers = dict(scope["headers"])
                rng = headers.get(b"range")
                self._log(ServedRequest(scope["method"], scope["path"],
                                        rng.decode("latin-1") if rng else None,
                                        state["status"], state["bytes"]))

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="file-server",
                                        daemon=True)
        self._thread.start()
        _wait_port(self.port, None, "file server", root)

    def _log(self, record: ServedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def url_for(self, rel: str | Path) -> str:
        """The direct URL (no proxy) of a file under ``root``."""
        return f"{self.url}/{Path(rel).as_posix().lstrip('/')}"

    @property
    def requests(self) -> list[ServedRequest]:
        with self._lock:
            return list(self._records)

    def bytes_served(self, path: str | Path | None = None) -> int:
        """Body bytes sent in total, or for one file (``rel`` path or URL path)."""
        want = None if path is None else "/" + Path(path).as_posix().lstrip("/")
        return sum(r.bytes_sent for r in self.requests if want is None or r.path == want)

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return json.loads(json.dumps(obj))
    return obj.to_dict(include_self_link=False, transform_hrefs=False)  # pystac objects


class StacServices:
    """The running services: ``db``, ``api``, ``files``, ``proxy`` and the loading helpers.

    ``api_url`` is the catalogue root a client is given (through the proxy, so the fault plan
    applies); ``asset_href(rel)`` is an asset URL through the proxy.  ``api.url`` and
    ``files.url_for(rel)`` bypass the proxy.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = PgstacCluster()
        self.api: StacApiServer | None = None
        self.files: FileServer | None = None
        self.proxy: FaultProxy | None = None

    def start(self) -> None:
        self.db.start()
        self.db.install_pgstac()
        self.api = StacApiServer(self.db, self.workdir)
        self.api.start()
        self.files = FileServer(self.workdir / "files")
        self.proxy = FaultProxy(self.api.url, self.files.url)

    # -- URLs -------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    def asset_href(self, rel: str | Path) -> str:
        assert self.proxy is not None
        return self.proxy.file_url_for(Path(rel).as_posix())

    # -- catalogue --------------------------------------------------------------------------
    def add_collection(self, collection_id: str, *, title: str | None = None,
                       description: str | None = None,
                       bbox: tuple[float, float, float, float] = (-180, -90, 180, 90),
                       interval: tuple[str | None, str | None] = ("1970-01-01T00:00:00Z", None),
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create (or replace) a collection; returns its JSON."""
        doc: dict[str, Any] = {
            "type": "Collection", "stac_version": "1.0.0", "id": collection_id,
            "title": title or collection_id,
            "description": description or f"test collection {collection_id}",
            "license": "proprietary", "links": [],
            "extent": {"spatial": {"bbox": [list(bbox)]},
                       "temporal": {"interval": [list(interval)]}},
        }
        doc.update(extra or {})
        self.db.sql("SELECT pgstac.upsert_collection(%s::jsonb)", [json.dumps(doc)])
        return doc

    def add_items(self, collection_id: str, items: Iterable[Any]) -> int:
        """Upsert Items (pystac Items or dicts) into a collection; returns how many."""
        docs = []
        for item in items:
            doc = _as_dict(item)
            doc["collection"] = collection_id
            doc["links"] = [link for link in doc.get("links", [])
                            if link.get("rel") not in ("self", "parent", "root", "collection")]
            docs.append(doc)
        if docs:
            self.db.sql("SELECT pgstac.upsert_items(%s::jsonb)", [json.dumps(docs)])
        return len(docs)

    def delete_item(self, collection_id: str, item_id: str) -> None:
        self.db.sql("SELECT pgstac.delete_item(%s, %s)", [item_id, collection_id])

    def reset(self) -> None:
        """Empty the catalogue, clear the fault plan and both request logs, restart a stopped
        API, and set the page cap back to its default."""
        assert self.api is not None and self.files is not None and self.proxy is not None
        self.proxy.reset()
        self.files.reset_log()
        self.api.page_cap = DEFAULT_PAGE_CAP
        if not self.api.running:
            self.api.start()
        for (cid,) in self.db.sql("SELECT id FROM pgstac.collections"):
            self.db.sql("SELECT pgstac.delete_collection(%s)", [cid])

    def close(self) -> None:
        for part in (self.proxy, self.files, self.api):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.db.close()


def start_services(workdir: Path) -> StacServices:
    """Start every service (a few seconds); the caller must ``close()`` the result."""
    why = missing_services()
    if why:
        raise ServiceUnavailable(why)
    services = StacServices(workdir)
    try:
        services.start()
    except BaseException:
        services.close()
        raise
    return services
