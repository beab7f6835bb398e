"""The scene catalogue: sites, their scenes, each scene's co-registration on a grid and
the reference scene of each grid."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sitewatch.errors import StoreError
from sitewatch.imagery.scenes import Scene
from sitewatch.sites.site import Site, builtin_site, builtin_site_ids, loads_site
from sitewatch.store.base import StoreBase, _finite, _now, db_reason, decoded, insert_new, upsert
from sitewatch.store.parts import record_versions
from sitewatch.store.schema import (
    alerts_table,
    grids_table,
    observations_table,
    processed_table,
    registrations_table,
    scenes_table,
    sites_table,
)
from sitewatch.times import iso, parse_time
from sitewatch.watch.records import LocalWindow, SceneRegistration, num


@dataclass(frozen=True)
class RemovedScene:
    """What :meth:`SceneStore.remove_scene` removed: counts of rows, the change products
    its results named (files for the caller to delete), and the alerts citing the scene
    (kept)."""

    site_id: str
    scene_id: str
    results: int
    observations: int
    registrations: int
    products: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()


def _lenient(text: Any) -> dict[str, Any]:
    """A stored JSON object, or ``{}`` when the row is damaged: removing a scene must work
    on the very rows that cannot be read (that is how a user gets rid of them)."""
    try:
        got = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


def _cites(alert: dict[str, Any], scene_id: str) -> bool:
    """Whether a stored alert (its JSON record) names ``scene_id`` as a scene of a pair."""
    findings = alert.get("findings")
    pairs = [alert, *(findings if isinstance(findings, list) else ())]
    return any(isinstance(f, dict) and scene_id in (f.get("before_scene"), f.get("after_scene"))
               for f in pairs)


@dataclass(frozen=True)
class SiteRow:
    """A stored site with its bookkeeping."""

    site: Site
    origin: str
    created_at: str
    updated_at: str
    n_scenes: int = 0


def registration_of(row: Any) -> SceneRegistration:
    """A stored registration row (columns, and the reason and windows kept in ``detail``;
    a row of version 4 has the same ``detail`` keys)."""
    det = json.loads(row["detail"])
    return SceneRegistration(
        row["site_id"], row["scene_id"], row["grid"], row["reference_id"], float(row["dy"]),
        float(row["dx"]), float(row["reliability"]), num(row["residual_px"]), row["status"],
        str(det.get("reason") or ""), bool(row["applied"]),
        tuple(LocalWindow.from_dict(w) for w in det.get("local") or ()),
        parse_time(row["created_at"]))


def write_registration(c: sa.Connection, reg: SceneRegistration) -> None:
    """Replace a scene's registration on a grid, in the transaction ``c``."""
    t = registrations_table
    values = {
        "reference_id": reg.reference_id, "dy": reg.dy, "dx": reg.dx,
        "reliability": _finite(reg.reliability) or 0.0,
        "residual_px": _finite(reg.residual_px), "status": reg.status, "applied": reg.applied,
        "detail": json.dumps({**reg.to_dict(), "created_at": None}, sort_keys=True),
        "created_at": _now(),
    }
    upsert(c, t, {"site_id": reg.site_id, "scene_id": reg.scene_id, "grid": reg.grid,
                  **values})


class SceneStore(StoreBase):
    """Sites, scenes, registrations and grid references."""

    def put_site(self, site: Site, origin: str | None, conn: sa.Connection | None = None, *,
                 note: str | None = None, author: str | None = None,
                 renamed: Mapping[str, str] | None = None) -> str:
        """Insert or replace a site, and in the same transaction add a version for each part
        whose geometry changed (:mod:`sitewatch.store.parts`; ``note`` and ``author`` say
        why and who; ``renamed`` maps old part names to new ones, whose history follows).
        ``origin`` None keeps the stored site's origin (an edit), ``"file"`` for a new one.
        Returns ``"added"``, ``"updated"`` or ``"unchanged"``."""
        try:
            return self._put_site(site, origin, conn, note, author, renamed)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"site {site.id!r} could not be stored ({db_reason(exc)}); another "
                             "sitewatch may be writing the catalogue: run the command again"
                             ) from None

    def _put_site(self, site: Site, origin: str | None, conn: sa.Connection | None,
                  note: str | None, author: str | None,
                  renamed: Mapping[str, str] | None) -> str:
        text = site.dumps()
        with self._conn(conn) as c:
            now = _now()
            values: dict[str, Any] = {
                "name": site.name, "site_type": site.site_type, "simulated": site.simulated,
                "geojson": text, "updated_at": now,
            }
            if origin is not None:
                values["origin"] = origin
            first = {"origin": "file", **values}
            key = sites_table.c.id == site.id
            if c.execute(sa.select(sites_table.c.id).where(key)).first() is None and insert_new(
                    c, sites_table, {"id": site.id, "created_at": now, **first}):
                record_versions(c, site, note=note or f"{first['origin']} site stored",
                                author=author)
                return "added"
            # The site's row locked (PostgreSQL) while its part versions are counted on.
            row = c.execute(
                sa.select(sites_table.c.geojson).where(key).with_for_update()).one()
            if row[0] == text:
                return "unchanged"
            c.execute(sites_table.update().where(sites_table.c.id == site.id).values(**values))
            record_versions(c, site, note=note, author=author, renamed=renamed)
            return "updated"

    def use_site(self, site_id: str) -> Site | None:
        """The site a command works on: the stored one, else a built-in site (``sitewatch
        site list``), registered on this first use so that every command works on it without
        a ``site add``.  None when there is neither."""
        site = self.get_site(site_id)
        if site is None and site_id in builtin_site_ids():
            site = builtin_site(site_id)
            self.put_site(site, "builtin")
        return site

    def get_site(self, site_id: str) -> Site | None:
        """The stored site (None when not stored; see :meth:`use_site` for built-in ones)."""
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(sites_table.c.geojson).where(sites_table.c.id == site_id)
            ).first()
        if row is None:
            return None
        return decoded("sites", site_id, lambda: loads_site(row[0], f"stored site {site_id!r}"))

    def list_sites(self) -> list[SiteRow]:
        counts = (
            sa.select(scenes_table.c.site_id, sa.func.count().label("n"))
            .group_by(scenes_table.c.site_id)
            .subquery()
        )
        q = (
            sa.select(sites_table, sa.func.coalesce(counts.c.n, 0))
            .select_from(sites_table.outerjoin(counts, counts.c.site_id == sites_table.c.id))
            .order_by(sites_table.c.id)
        )
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return [
            decoded("sites", r.id, _site_row_of, r)
            for r in rows
        ]

    # ------------------------------------------------------------------ scenes

    def put_scene(self, scene: Scene, conn: sa.Connection | None = None) -> str:
        """Insert a scene, or update the stored scene of that id when its record differs.

        Returns ``"added"``, ``"updated"`` (files, time, sensor, source... changed) or
        ``"unchanged"``.  A clash with another writer raises :class:`StoreError`; the
        transaction is rolled back, so nothing is half-written.
        """
        if scene.site_id is None:
            raise StoreError(f"scene {scene.id!r} has no site")
        record = json.dumps(scene.to_dict(), sort_keys=True)
        t = scenes_table
        try:
            with self._conn(conn) as c:
                now = _now()
                values = {
                    "acquired": iso(scene.acquired), "sensor": scene.sensor,
                    "source": scene.source, "checksum": scene.checksum, "record": record,
                    "updated_at": now,
                }
                key = (t.c.site_id == scene.site_id) & (t.c.id == scene.id)
                if c.execute(sa.select(t.c.id).where(key)).first() is None and insert_new(
                        c, t, {"site_id": scene.site_id, "id": scene.id, "ingested_at": now,
                               **values}):
                    return "added"
                row = c.execute(sa.select(t.c.record).where(key).with_for_update()).one()
                if row.record == record:
                    return "unchanged"
                c.execute(t.update().where((t.c.site_id == scene.site_id)
                                           & (t.c.id == scene.id)).values(**values))
                return "updated"
        except sa.exc.DBAPIError as exc:
            raise StoreError(
                f"scene {scene.id!r} of site {scene.site_id!r} could not be stored "
                f"({db_reason(exc)}); another sitewatch may be writing the catalogue: nothing was "
                "half-written, run the command again"
            ) from None

    def put_registration(self, reg: SceneRegistration) -> None:
        """Record (or replace) a scene's co-registration on a grid (e.g. ``"optical-10m"``):
        the one place a registration is kept (:meth:`put_result` stores a processed
        scene's with its result)."""
        with self.engine.begin() as c:
            write_registration(c, reg)

    def registrations(self, site_id: str, grid: str | None = None, *,
                      scene_id: str | None = None) -> list[SceneRegistration]:
        """Recorded co-registrations of a site's scenes (of one grid, of one scene), by
        scene."""
        t = registrations_table
        cond = t.c.site_id == site_id
        if grid is not None:
            cond &= t.c.grid == grid
        if scene_id is not None:
            cond &= t.c.scene_id == scene_id
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(cond).order_by(t.c.scene_id, t.c.grid)
                             ).mappings().all()
        return [decoded("registrations", f"{r['scene_id']} {r['grid']}", registration_of, r)
                for r in rows]

    def delete_scene(self, site_id: str, scene_id: str) -> bool:
        """Remove a scene record and what was computed from it (:meth:`remove_scene`; its
        files are untouched).  True if it existed."""
        return self.remove_scene(site_id, scene_id) is not None

    def remove_scene(self, site_id: str, scene_id: str) -> RemovedScene | None:
        """Remove a scene from the catalogue with everything computed from it, in one
        transaction: its processed results and observations of every parameter set, its
        registrations, the registrations of other scenes to it (as their grid's reference)
        and the grid reference naming it.  The user's files are never touched; the change
        products its results name are returned for the caller to delete.  Results of other
        scenes that rest on it (as previous date, composite member or reference) are left:
        their chain names it, so the next run recomputes them.  Alerts are kept (their
        lifecycle is the analyst's): those citing the scene are returned.  None when the
        site has no such scene."""
        t, r, g = scenes_table, registrations_table, grids_table
        o, pr, al = observations_table, processed_table, alerts_table
        try:
            with self.engine.begin() as c:
                if c.execute(sa.select(t.c.id).where((t.c.site_id == site_id)
                                                     & (t.c.id == scene_id))).first() is None:
                    return None
                products: list[str] = []
                for (detail,) in c.execute(sa.select(pr.c.detail).where(
                        (pr.c.site_id == site_id) & (pr.c.scene_id == scene_id))).all():
                    for comp in (_lenient(detail).get(k) for k in ("previous", "composite")):
                        prod = comp.get("products") if isinstance(comp, dict) else None
                        if isinstance(prod, dict):
                            products += [str(v) for v in prod.values() if v]
                cited = [row.id for row in c.execute(sa.select(al.c.id, al.c.record).where(
                    al.c.site_id == site_id).order_by(al.c.time, al.c.id)).all()
                    if _cites(_lenient(row.record), scene_id)]
                n_obs = c.execute(o.delete().where((o.c.site_id == site_id)
                                                   & (o.c.scene_id == scene_id))).rowcount
                n_res = c.execute(pr.delete().where((pr.c.site_id == site_id)
                                                    & (pr.c.scene_id == scene_id))).rowcount
                n_reg = c.execute(r.delete().where(
                    (r.c.site_id == site_id)
                    & ((r.c.scene_id == scene_id) | (r.c.reference_id == scene_id)))).rowcount
                c.execute(g.delete().where((g.c.site_id == site_id)
                                           & (g.c.reference_id == scene_id)))
                c.execute(t.delete().where((t.c.site_id == site_id) & (t.c.id == scene_id)))
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"scene {scene_id!r} of site {site_id!r} could not be removed "
                             f"({db_reason(exc)}); nothing was removed: run the command again"
                             ) from None
        return RemovedScene(site_id, scene_id, int(n_res or 0), int(n_obs or 0),
                            int(n_reg or 0), tuple(products), tuple(cited))

    def find_scene(self, site_id: str, *, source: str | None = None,
                   checksum: str | None = None) -> Scene | None:
        """The scene of ``site_id`` read from ``source`` or with ``checksum``, if any."""
        t = scenes_table
        cond = t.c.site_id == site_id
        if source is not None:
            cond &= t.c.source == source
        if checksum is not None:
            cond &= t.c.checksum == checksum
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.record, t.c.id).where(cond).limit(1)).first()
        return _scene_of(row) if row else None

    def scene_ids(self, site_id: str) -> set[str]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(scenes_table.c.id).where(scenes_table.c.site_id == site_id)
            ).all()
        return {r[0] for r in rows}

    def get_scene(self, site_id: str, scene_id: str) -> Scene | None:
        t = scenes_table
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(t.c.record, t.c.id)
                .where((t.c.site_id == site_id) & (t.c.id == scene_id))
            ).first()
        return _scene_of(row) if row else None

    def scenes(self, site_id: str, *, sensor: str | None = None,
               start: datetime | None = None, end: datetime | None = None) -> list[Scene]:
        """The site's scenes in time order, optionally of one sensor and in [start, end]."""
        t = scenes_table
        cond = t.c.site_id == site_id
        if sensor:
            cond &= t.c.sensor == sensor
        if start:
            cond &= t.c.acquired >= iso(start)
        if end:
            cond &= t.c.acquired <= iso(end)
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.record, t.c.id).where(cond)
                             .order_by(t.c.acquired, t.c.id))
            return [_scene_of(r) for r in rows]

    def grid_reference(self, site_id: str, grid: str) -> str | None:
        """The scene a site's grid is co-registered to, once chosen."""
        t = grids_table
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.c.reference_id).where(
                (t.c.site_id == site_id) & (t.c.grid == grid))).first()
        return row[0] if row else None

    def set_grid_reference(self, site_id: str, grid: str, scene_id: str) -> None:
        t = grids_table
        with self.engine.begin() as c:
            upsert(c, t, {"site_id": site_id, "grid": grid, "reference_id": scene_id,
                          "created_at": _now()})

def _scene_of(row: Any) -> Scene:
    """A scene from its stored (record, id) row; a damaged row is a one-line StoreError."""
    return decoded("scenes", row[1], lambda: Scene.from_dict(json.loads(row[0])))


def _site_row_of(r: Any) -> SiteRow:
    return SiteRow(loads_site(r.geojson, f"stored site {r.id!r}"), r.origin, r.created_at,
                   r.updated_at, int(r[-1]))

__all__ = ["RemovedScene", "SceneStore", "SiteRow", "registration_of", "write_registration"]
