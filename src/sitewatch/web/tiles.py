"""Map tiles of stored scenes (placeholder; being built, see docs/web.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitewatch.store import Store


class TileSource:
    """Renders 256 px Web-Mercator PNG tiles of a catalogued scene on its site grid."""

    def __init__(self, home: Path, store: Store):
        self.home = home
        self.store = store

    def tile(self, site_id: str, scene_id: str, z: int, x: int, y: int) -> bytes | None:
        raise NotImplementedError

    def info(self, site_id: str, scene_id: str) -> dict[str, Any]:
        raise NotImplementedError


__all__ = ["TileSource"]
