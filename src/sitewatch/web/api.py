"""The JSON API under ``/api/`` (and the tiles and brief files the page loads).

One line of work per route: each calls a function of :mod:`.views` (the library's own
functions underneath).  Reads are open; writes depend on :func:`writer` (the bearer token,
and refused on a ``--read-only`` server) and run one at a time in this process.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sitewatch import __version__
from sitewatch.web import views
from sitewatch.web.app import WebState, state_of
from sitewatch.web.auth import check_token
from sitewatch.web.errors import AuthError, NotFound

router = APIRouter()

#: The brief's own pages: its stylesheet is inline, it has no scripts.
BRIEF_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
             "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")

SiteId = Annotated[str, Field(min_length=1, max_length=200)]


def writer(request: Request) -> WebState:
    """Every write: refused on a read-only server (403), else needs the token (401); a
    request from a page of another origin is refused too (403)."""
    st = state_of(request)
    if st.read_only or st.token is None:
        raise AuthError(403, "this server is read-only (started with --read-only): writes "
                        "are off")
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise AuthError(403, f"requests from origin {origin[:100]!r} may not write here")
    if not check_token(request.headers.get("authorization"), st.token):
        raise AuthError(401, "this needs the write token: send 'Authorization: Bearer "
                        "<token>' (sitewatch serve printed it on first start; it is kept in "
                        "<home>/web-token)")
    return st


Reader = Annotated[WebState, Depends(state_of)]
Writer = Annotated[WebState, Depends(writer)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertAction(_Body):
    action: Literal["seen", "dismiss", "confirm", "reopen"]
    reason: str | None = Field(default=None, max_length=2000)


class ReportIn(_Body):
    text: str = Field(min_length=1, max_length=views.MAX_REPORT_CHARS)
    title: str | None = Field(default=None, max_length=300)
    published: date | None = None
    url: str | None = Field(default=None, max_length=2000)


class NoteIn(_Body):
    text: str = Field(min_length=1, max_length=20_000)
    when: date
    part: str | None = Field(default=None, max_length=200)
    author: str | None = Field(default=None, max_length=200)


class PartIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=100)
    geometry: dict[str, Any] | None = None
    was: str | None = Field(default=None, max_length=200)
    label: str | None = Field(default=None, max_length=300)


class LayoutIn(_Body):
    parts: list[PartIn] = Field(max_length=5000)
    note: str | None = Field(default=None, max_length=2000)


# ------------------------------------------------------------------------------ reads


@router.get("/api/health")
def health(st: Reader) -> dict[str, Any]:
    return {"version": __version__, "read_only": st.read_only, "writes_need_token": True}


@router.get("/api/sites")
def sites(st: Reader) -> list[dict[str, Any]]:
    return views.sites_summary(st.store)


@router.get("/api/sites/{site_id}")
def site(st: Reader, site_id: str) -> dict[str, Any]:
    return views.site_record(st.store, site_id)


@router.get("/api/sites/{site_id}/scenes")
def scenes(st: Reader, site_id: str) -> list[dict[str, Any]]:
    return views.scene_list(st.store, site_id)


@router.get("/api/sites/{site_id}/scenes/{scene_id}/changes")
def changes(st: Reader, site_id: str, scene_id: str) -> dict[str, Any]:
    return views.changes(st.store, site_id, scene_id)


@router.get("/api/sites/{site_id}/scenes/{scene_id}/tileinfo")
def tileinfo(st: Reader, site_id: str, scene_id: str) -> dict[str, Any]:
    info: dict[str, Any] = st.tiles.info(site_id, scene_id)
    return info


@router.get("/api/sites/{site_id}/alerts")
def alerts(st: Reader, site_id: str,
           status: Annotated[list[str] | None, Query(max_length=4)] = None
           ) -> list[dict[str, Any]]:
    return views.alert_list(st.store, site_id, status or ())


@router.get("/api/sites/{site_id}/timeline")
def timeline(st: Reader, site_id: str,
             part: Annotated[str, Query(min_length=1, max_length=200)]) -> dict[str, Any]:
    return views.timeline(st.store, site_id, part)


@router.get("/api/sites/{site_id}/assessment")
def assessment(st: Reader, site_id: str, at: date | None = None) -> dict[str, Any]:
    return views.assessment(st.store, site_id, at)


@router.get("/api/sites/{site_id}/collateral")
def collateral(st: Reader, site_id: str) -> dict[str, Any]:
    return views.collateral(st.store, site_id)


@router.get("/api/sites/{site_id}/brief")
def brief(st: Reader, site_id: str) -> dict[str, Any]:
    return views.brief_info(st.store, st.home, site_id)


@router.get("/api/sites/{site_id}/parts/history")
def part_history(st: Reader, site_id: str,
                 part: Annotated[str | None, Query(max_length=200)] = None
                 ) -> list[dict[str, Any]]:
    return views.part_history(st.store, site_id, part)


@router.get("/tiles/{site_id}/{scene_id}/{z}/{x}/{y}.png", include_in_schema=True,
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def tile(st: Reader, site_id: str, scene_id: str, z: int, x: int, y: int) -> Response:
    png: bytes = st.tiles.tile(site_id, scene_id, z, x, y)
    return Response(png, media_type="image/png",
                    headers={"cache-control": "private, max-age=300"})


@router.get("/briefs/{site_id}/{path:path}", include_in_schema=False)
def brief_file(st: Reader, site_id: str, path: str) -> FileResponse:
    root = views.brief_folder(st.home, views.site_of(st.store, site_id).id).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"no file {path!r} in the brief of site {site_id!r}")
    return FileResponse(target, headers={"content-security-policy": BRIEF_CSP,
                                         "cache-control": "no-cache"})


# ------------------------------------------------------------------------------ writes


@router.post("/api/sites/{site_id}/alerts/{alert_id}")
def alert_action(st: Writer, site_id: str, alert_id: str, body: AlertAction
                 ) -> dict[str, Any]:
    with st.write_lock:
        return views.alert_action(st.store, site_id, alert_id, body.action, body.reason)


@router.post("/api/sites/{site_id}/reports", status_code=201)
def add_report(st: Writer, site_id: str, body: ReportIn) -> dict[str, Any]:
    with st.write_lock:
        return views.add_report_text(st.store, st.home, site_id, body.text, body.title,
                                     body.published, body.url)


@router.post("/api/sites/{site_id}/notes", status_code=201)
def add_note(st: Writer, site_id: str, body: NoteIn) -> dict[str, Any]:
    with st.write_lock:
        return views.add_note_text(st.store, site_id, body.text, body.when, body.part,
                                   body.author or "web view")


@router.post("/api/sites/{site_id}/brief")
def write_brief(st: Writer, site_id: str) -> dict[str, Any]:
    with st.write_lock:
        return views.write_site_brief(st.store, st.home, site_id)


@router.put("/api/sites/{site_id}/parts")
def save_parts(st: Writer, site_id: str, body: LayoutIn) -> dict[str, Any]:
    from sitewatch.sites.place import PartEdit

    edits = [PartEdit(p.name, p.kind, p.geometry, p.was, p.label) for p in body.parts]
    with st.write_lock:
        return views.save_layout(st.store, site_id, edits, body.note, "web view")


__all__ = ["BRIEF_CSP", "router", "writer"]
