"""The web application: :func:`create_app` over one sitewatch home.

Routes live in :mod:`.api` (JSON) and :mod:`.pages` (HTML); this module adds what every
answer shares: the host check (a page on another site cannot reach this server through DNS
rebinding), the request size limit, the security headers (a Content Security Policy that
allows only this server's own scripts), and errors in one JSON shape (:mod:`.errors`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitewatch import __version__
from sitewatch.errors import SitewatchError
from sitewatch.store import Store
from sitewatch.web.errors import error_body, status_of

log = logging.getLogger(__name__)

#: The largest request body the API reads (parts and reports are small; a report's text is
#: limited separately in :mod:`.api`).
MAX_BODY_BYTES = 2 * 1024 * 1024

#: Sent with every answer.  Scripts, styles and images come from this server only: the page
#: ships its own Leaflet; tiles are same-origin PNGs.  'unsafe-inline' is never allowed, so a
#: string that slips into the markup still cannot run.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass
class WebState:
    """What every request handler shares: the home, its store, the token and the mode."""

    home: Path
    store: Store
    token: str | None
    read_only: bool
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    #: One writer at a time inside this process (alert actions, parts, reports, briefs); the
    #: store's transactions keep other processes safe.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    tiles: Any = None

    @property
    def briefs(self) -> Path:
        """Where the web view writes each site's brief (``<home>/briefs/<site>/``)."""
        return self.home / "briefs"


def _host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    if "*" in allowed:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8000
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in allowed


ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]


class Guard:
    """ASGI middleware: refuses foreign Host headers (421) and bodies over the limit (413),
    and adds :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...],
                 max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any
                       ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}

        async def send_secure(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                hs = list(message.get("headers", []))
                have = {k.decode("latin-1").lower() for k, _ in hs}
                hs.extend((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                          if k not in have)
                message["headers"] = hs
            await send(message)

        host = headers.get("host", "")
        if not _host_allowed(host, self.allowed_hosts):
            await _refuse(send_secure, 421, f"host {host[:100]!r} is not served here (the "
                          "server answers to its own address only; see docs/web.md)")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _refuse(send_secure, 413, f"request body over {self.max_body} bytes")
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send_secure)
            return
        # Read the whole body first (at most max_body bytes): a chunked upload over the
        # limit is refused before any route sees it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_body:
                await _refuse(send_secure, 413, f"request body over {self.max_body} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send_secure)


async def _refuse(send: Any, status: int, message: str) -> None:
    resp = JSONResponse(error_body(status, message), status_code=status)
    await resp({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - responses never read
    return {"type": "http.disconnect"}


def create_app(home: str | Path, *, read_only: bool = False, token: str | None = None,
               allowed_hosts: Iterable[str] = LOCAL_HOSTS, store: Store | None = None
               ) -> FastAPI:
    """The application over ``home`` (its catalogue opened once, shared by all requests).

    ``token`` None with ``read_only`` False reads or creates the home's token
    (:func:`.auth.load_or_create_token`); writes need it.  ``allowed_hosts`` are the host
    names requests may be addressed to (``"*"``: any, for a server behind a proxy).
    """
    from sitewatch.web import api, pages
    from sitewatch.web.auth import load_or_create_token
    from sitewatch.web.tiles import TileSource

    home = Path(home).expanduser()
    if token is None and not read_only:
        token, _ = load_or_create_token(home)
    st = store or Store.open_home(home)
    state = WebState(home, st, token, read_only, tuple(h.lower() for h in allowed_hosts))
    state.tiles = TileSource(home, st)
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if store is None:
            st.close()

    app = FastAPI(title="sitewatch", lifespan=lifespan, version=__version__,
                  description="The sitewatch web view's API (docs/web.md). Reads are open; "
                  "every write needs `Authorization: Bearer <token>` (the token `sitewatch "
                  "serve` printed on first start, kept in <home>/web-token).",
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.state.web = state

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)),
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        msg = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return JSONResponse(error_body(422, msg[:300]), status_code=422)

    @app.exception_handler(SitewatchError)
    async def _ours(_req: Request, exc: SitewatchError) -> JSONResponse:
        status, code = status_of(exc)
        message = " ".join(str(exc).split())[:500]
        return JSONResponse(error_body(status, message, code), status_code=status)

    @app.exception_handler(Exception)
    async def _any(_req: Request, exc: Exception) -> JSONResponse:  # a bug: say nothing more
        log.error("error answering a request", exc_info=exc)
        return JSONResponse(error_body(500, "internal error (logged by the server)"),
                            status_code=500)

    app.include_router(api.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    app.add_middleware(Guard, allowed_hosts=state.allowed_hosts)

    return app


def state_of(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


__all__ = ["LOCAL_HOSTS", "MAX_BODY_BYTES", "SECURITY_HEADERS", "Guard", "WebState",
           "create_app", "state_of"]
