"""The HTML pages of the web view and the static files they use (placeholder: the pages
are being built; see docs/web.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["STATIC", "TEMPLATES", "mount_static", "router"]
