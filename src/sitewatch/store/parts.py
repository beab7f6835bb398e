"""Versioned part geometry: every geometry a site's part has had, with when, who and why.

A version is added whenever a site is stored (:meth:`SceneStore.put_site`) with a part whose
geometry (or line width, or point radius: what the watch measures) differs from the part's
latest version; a part removed or unplaced gets a version without geometry.  Kind, label and
other properties are not versioned: they do not change what is measured.  Numbers start at 1
per part and never go back.

The watch keys every observation by the part's current version (:func:`current_versions`);
the area of the site outside every part (:data:`~sitewatch.watch.zonal.REST`) changes with
any part, so its version is the site's *layout version*, the number of part versions the site
has recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import StoreError
from sitewatch.sites.site import Part, Site, loads_site, plain_json
from sitewatch.store.base import StoreBase, _now, decoded
from sitewatch.store.schema import (
    alerts_table,
    observations_table,
    part_versions_table,
    sites_table,
)
from sitewatch.times import parse_time
from sitewatch.watch.zonal import REST


@dataclass(frozen=True)
class PartVersion:
    """One version of a part's geometry (``geometry`` None: removed or unplaced)."""

    site_id: str
    part: str
    version: int
    kind: str
    geometry: BaseGeometry | None
    key: str
    author: str | None
    note: str | None
    created_at: datetime

    @property
    def placed(self) -> bool:
        return self.geometry is not None

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site_id, "part": self.part, "version": self.version,
                "kind": self.kind,
                "geometry": plain_json(mapping(self.geometry)) if self.geometry else None,
                "author": self.author, "note": self.note,
                "created_at": self.created_at.isoformat()}


def geometry_key(part: Part) -> str:
    """A short hash of what the watch measures of a part: its geometry, line width and point
    radius ("" for an unplaced part)."""
    if part.geometry is None:
        return ""
    what = {"geometry": plain_json(mapping(part.geometry)),
            "width_m": part.properties.get("width_m"), "radius_m": part.properties.get("radius_m")}
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _latest(c: sa.Connection, site_id: str) -> dict[str, tuple[int, str, bool]]:
    """Per part: (latest version, its key, whether it has geometry)."""
    t = part_versions_table
    rows = c.execute(sa.select(t.c.part, t.c.version, t.c.key, t.c.geometry.is_not(None))
                     .where(t.c.site_id == site_id).order_by(t.c.part, t.c.version)).all()
    return {r[0]: (int(r[1]), str(r[2]), bool(r[3])) for r in rows}


def record_versions(c: sa.Connection, site: Site, *, note: str | None = None,
                    author: str | None = None, renamed: Mapping[str, str] | None = None
                    ) -> list[tuple[str, int]]:
    """Add a version for every part of ``site`` whose measured geometry differs from its
    latest version, and a geometry-less one for every part removed or unplaced since; in
    the caller's transaction.  ``renamed`` (old -> new name) carries a part's history to its
    new name first.  Returns the (part, version) pairs added."""
    t = part_versions_table
    for old, new in (renamed or {}).items():
        taken = c.execute(sa.select(sa.func.count()).select_from(t).where(
            (t.c.site_id == site.id) & (t.c.part == new))).scalar()
        if taken:
            raise StoreError(f"site {site.id!r}: the name {new!r} was used by a part before "
                             "(see `sitewatch site history`); pick another name")
        c.execute(t.update().where((t.c.site_id == site.id) & (t.c.part == old))
                  .values(part=new))
    latest = _latest(c, site.id)
    now, rows = _now(), []
    present = set()
    for p in site.parts:
        present.add(p.name)
        have = latest.get(p.name)
        key = geometry_key(p)
        if p.geometry is not None and (have is None or have[1] != key):
            rows.append({"part": p.name, "kind": p.kind, "key": key, "note": note,
                         "version": (have[0] if have else 0) + 1,
                         "geometry": json.dumps(plain_json(mapping(p.geometry)),
                                                sort_keys=True)})
        elif p.geometry is None and have is not None and have[2]:
            rows.append({"part": p.name, "kind": p.kind, "key": "", "version": have[0] + 1,
                         "geometry": None, "note": note or "unplaced"})
    for name, (version, _key, placed) in latest.items():
        if name not in present and placed:
            rows.append({"part": name, "kind": "other", "key": "", "version": version + 1,
                         "geometry": None, "note": note or "removed"})
    if rows:
        c.execute(t.insert(), [{**r, "site_id": site.id, "author": author, "created_at": now}
                               for r in rows])
    return [(str(r["part"]), int(r["version"] or 0)) for r in rows]


def current_versions(c: sa.Connection, site_id: str) -> dict[str, int]:
    """Per placed part, its current version; for :data:`REST`, the site's layout version
    (how many part versions the site has recorded)."""
    t = part_versions_table
    rows = c.execute(sa.select(t.c.part, t.c.version, t.c.geometry.is_not(None))
                     .where(t.c.site_id == site_id).order_by(t.c.part, t.c.version)).all()
    out: dict[str, int] = {}
    for part, version, placed in rows:
        if placed:
            out[part] = int(version)
        else:
            out.pop(part, None)
    out[REST] = len(rows)
    return out


def layout_key(versions: Mapping[str, int]) -> str:
    """A short hash of the parts and their versions: a scene's result whose layout key
    differs is scored again (see :class:`~sitewatch.watch.records.Chain`)."""
    text = json.dumps(sorted(versions.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def backfill_versions(c: sa.Connection) -> None:
    """Schema migration: version 1 for the placed parts of every stored site, and that
    version on the observations and alerts already stored (measured with that geometry)."""
    o, a = observations_table, alerts_table
    for sid, text in c.execute(sa.select(sites_table.c.id, sites_table.c.geojson)).all():
        try:
            site = loads_site(text, f"stored site {sid!r}")
        except Exception:  # a damaged row: left for the commands to report
            continue
        record_versions(c, site, note="geometry as stored when part versions began")
        cur = current_versions(c, sid)
        for part, version in cur.items():
            c.execute(o.update().where((o.c.site_id == sid) & (o.c.part == part)
                                       & (o.c.part_version == 0)).values(part_version=version))
        for aid, rec in c.execute(sa.select(a.c.id, a.c.record).where(a.c.site_id == sid)
                                  ).all():
            try:
                d = json.loads(rec)
            except ValueError:
                continue
            if isinstance(d, dict) and "part_version" not in d:
                d["part_version"] = cur.get(str(d.get("part")))
                c.execute(a.update().where(a.c.id == aid)
                          .values(record=json.dumps(d, sort_keys=True)))


def _version_of(row: Any) -> PartVersion:
    geom = shape(json.loads(row["geometry"])) if row["geometry"] else None
    return PartVersion(row["site_id"], row["part"], int(row["version"]), row["kind"], geom,
                       row["key"], row["author"], row["note"], parse_time(row["created_at"]))


class PartStore(StoreBase):
    """Reading the part versions (they are written with the site: :meth:`put_site`)."""

    def part_versions(self, site_id: str, part: str | None = None) -> list[PartVersion]:
        """Every version of the site's parts (or of one part), by part then version."""
        t = part_versions_table
        cond = t.c.site_id == site_id
        if part is not None:
            cond &= t.c.part == part
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(cond).order_by(t.c.part, t.c.version)
                             ).mappings().all()
        return [decoded("part_versions", f"{r['part']} v{r['version']}", _version_of, r)
                for r in rows]

    def current_part_versions(self, site_id: str) -> dict[str, int]:
        """Per placed part its current version, and the layout version under :data:`REST`."""
        with self.engine.connect() as c:
            return current_versions(c, site_id)


__all__ = ["PartStore", "PartVersion", "backfill_versions", "current_versions",
           "geometry_key", "layout_key", "record_versions"]
