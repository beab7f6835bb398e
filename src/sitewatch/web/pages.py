"""The HTML pages of the web view and the static files they use.

Three pages (docs/web.md): the sites (``/``), one site (``/sites/{site}``) and two dates
of a site compared (``/sites/{site}/compare``).  The templates hold no data: they embed the
site id as an (escaped) ``data-site`` attribute and load the page's ES modules, which read
everything from the JSON API.  A page for an unknown site still renders; its script shows the
API's error message.  No inline script or style anywhere: the Content Security Policy of
:mod:`.app` forbids them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sitewatch import __version__

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)

#: Pages change with the catalogue: the browser must revalidate them every time.
PAGE_HEADERS = {"cache-control": "no-cache"}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                   autoescape=select_autoescape(("html",), default=True),
                   trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context: Any) -> HTMLResponse:
    """The template ``name`` rendered (autoescaped) as a page that is never cached stale."""
    html = _env.get_template(name).render(version=__version__, **context)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/", response_class=HTMLResponse)
def sites_page() -> HTMLResponse:
    """The sites: last image, open alerts and current assessment of each."""
    return render("sites.html")


@router.get("/sites/{site_id}", response_class=HTMLResponse)
def site_page(site_id: str) -> HTMLResponse:
    """One site: map, dates, timeline and the panels (their data comes from the API)."""
    return render("site.html", site_id=site_id)


@router.get("/sites/{site_id}/compare", response_class=HTMLResponse)
def compare_page(site_id: str) -> HTMLResponse:
    """Two dates of a site side by side or with a swipe (the script reads the dates from the
    query string: ``before``, ``after``, ``alert``)."""
    return render("compare.html", site_id=site_id)


def mount_static(app: FastAPI) -> None:
    """Serve ``static/`` (the page's scripts, styles and the vendored Leaflet) at /static."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["PAGE_HEADERS", "STATIC", "TEMPLATES", "mount_static", "render", "router"]
