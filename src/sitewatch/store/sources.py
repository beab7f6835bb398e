"""STAC sources of a site and the Items a sync has settled (catalogued, duplicate, skipped).

A synced scene and its Item row are written in one transaction (:meth:`put_synced_scene`):
a crash leaves both or neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sitewatch.errors import SourceError, StoreError
from sitewatch.imagery.scenes import Scene
from sitewatch.sources.records import Source
from sitewatch.store.base import _now, db_reason, decoded, insert_new
from sitewatch.store.scenes import SceneStore
from sitewatch.store.schema import sources_table, stac_items_table


@dataclass(frozen=True)
class SettledItem:
    """A stored Item row: where it came from and what the sync made of it."""

    api: str
    collection: str
    item_id: str
    source: str
    status: str  # scene | duplicate | skipped
    scene_id: str | None
    platform: str
    acquired: str
    tile: str | None
    geometry: dict[str, Any] | None
    reason: str | None = None


def _source_of(r: Any) -> Source:
    return Source(r.site_id, r.name, r.api, r.collection, json.loads(r.query), r.max_cloud,
                  r.preset, r.header_env, r.created_at)


def _item_of(r: Any) -> SettledItem:
    return SettledItem(r.api, r.collection, r.item_id, r.source, r.status, r.scene_id,
                       r.platform, r.acquired, r.tile,
                       json.loads(r.geometry) if r.geometry else None, r.reason)


class SourceStore(SceneStore):
    """Sources (``sitewatch source add``) and settled Items (``sitewatch sync``)."""

    def add_source(self, src: Source) -> Source:
        """Store a new source; :class:`SourceError` when the site has one of that name."""
        t = sources_table
        now = _now()
        with self.engine.begin() as c:
            added = insert_new(c, t, {
                "site_id": src.site_id, "name": src.name, "api": src.api,
                "collection": src.collection, "query": json.dumps(src.query, sort_keys=True),
                "max_cloud": src.max_cloud, "preset": src.preset,
                "header_env": src.header_env, "created_at": now})
        if not added:
            raise SourceError(f"site {src.site_id!r} already has a source {src.name!r} "
                              "(remove it first, or give another --name)")
        return Source(**{**src.to_dict(), "created_at": now})

    def sources(self, site_id: str | None = None) -> list[Source]:
        """The sources of one site (or of all), by site and name."""
        t = sources_table
        q = sa.select(t).order_by(t.c.site_id, t.c.name)
        if site_id is not None:
            q = q.where(t.c.site_id == site_id)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [decoded("sources", f"{r.site_id}/{r.name}", _source_of, r) for r in rows]

    def remove_source(self, site_id: str, name: str) -> bool:
        """Forget a source (its scenes stay catalogued).  True if it existed."""
        t = sources_table
        with self.engine.begin() as c:
            n = c.execute(t.delete().where((t.c.site_id == site_id) & (t.c.name == name)))
        return bool(n.rowcount)

    # ------------------------------------------------------------------ settled items

    def settled_items(self, site_id: str, api: str, collection: str) -> set[str]:
        """Ids of the Items of (api, collection) a sync has settled for the site."""
        t = stac_items_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.item_id).where(
                (t.c.site_id == site_id) & (t.c.api == api) & (t.c.collection == collection)))
            return {r[0] for r in rows}

    def items_acquired(self, site_id: str, platform: str, acquired: str) -> list[SettledItem]:
        """Settled Items of a platform at one second: candidates for a duplicate."""
        t = stac_items_table
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(
                (t.c.site_id == site_id) & (t.c.platform == platform)
                & (t.c.acquired == acquired)).order_by(t.c.created_at)).all()
        return [decoded("stac_items", r.item_id, _item_of, r) for r in rows]

    def _insert_item(self, c: sa.Connection, site_id: str, it: SettledItem) -> None:
        c.execute(stac_items_table.insert().values(
            site_id=site_id, api=it.api, collection=it.collection, item_id=it.item_id,
            source=it.source, status=it.status, scene_id=it.scene_id, platform=it.platform,
            acquired=it.acquired, tile=it.tile,
            geometry=json.dumps(it.geometry) if it.geometry else None, reason=it.reason,
            created_at=_now()))

    def settle_item(self, site_id: str, it: SettledItem, *, scene: Scene | None = None
                    ) -> None:
        """Record a settled Item, with its scene (a new scene, or the kept scene of a
        duplicate with its provenance updated) in the same transaction."""
        try:
            with self.engine.begin() as c:
                if scene is not None:
                    self.put_scene(scene, conn=c)
                self._insert_item(c, site_id, it)
        except sa.exc.IntegrityError as exc:
            raise StoreError(f"Item {it.item_id!r} of {it.collection!r} could not be "
                             f"recorded for site {site_id!r} ({db_reason(exc)}); another sync may "
                             "be running: nothing was half-written") from None
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"Item {it.item_id!r} could not be recorded ({db_reason(exc)}); "
                             "nothing was half-written, run the sync again") from None


__all__ = ["SettledItem", "SourceStore"]
