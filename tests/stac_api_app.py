"""The STAC API app the test server runs: stac-fastapi-pgstac, with a server-side page cap.

Run by ``tests/stac_server.py`` as ``uvicorn stac_api_app:create_app --factory`` in a
subprocess.  stac-fastapi-pgstac itself honours any ``limit`` up to 10,000; public catalogues
cap the page size (Planetary Computer at 1,000), so clients must follow ``next`` links.  To
make paging happen with a few dozen Items, this wrapper clamps ``limit`` (GET query or POST
body, absent meaning the server's default of 10) to the number stored in the file named by
``SITEWATCH_STAC_PAGE_CAP_FILE`` (read per request, so tests can change it while the server
runs).  Everything else is the unmodified server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: stac-fastapi's default page size when a request gives no limit.
SERVER_DEFAULT_LIMIT = 10
PAGED_PATHS = ("/search", "/items")


def _cap() -> int | None:
    path = os.environ.get("SITEWATCH_STAC_PAGE_CAP_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text else None


def _clamp(limit: Any, cap: int) -> Any:
    try:
        n = int(limit) if limit is not None else SERVER_DEFAULT_LIMIT
    except (TypeError, ValueError):
        return limit  # let the server answer 400 as it would
    return min(n, cap) if n > 0 else limit


class PageCap:
    """ASGI middleware: clamp ``limit`` on item listings to the cap file's number."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = _cap() if scope["type"] == "http" else None
        if cap is None or not scope["path"].endswith(PAGED_PATHS):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
            query["limit"] = str(_clamp(query.get("limit"), cap))
            scope = dict(scope, query_string=urlencode(query).encode("latin-1"))
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            doc["limit"] = _clamp(doc.get("limit"), cap)
            body = json.dumps(doc).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = dict(scope, headers=headers)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app() -> ASGIApp:
    """stac-fastapi-pgstac's app (settings from the environment) behind the page cap."""
    from stac_fastapi.pgstac.app import create_app as pgstac_app

    return PageCap(pgstac_app())
