"""Ingest: turn files and folders into catalogue records of a site.

All files are read and checked before anything is written; then the site (if new) and each
scene are stored, one transaction each.  A failure while reading stores nothing; an
interruption while storing leaves whole scenes only, and running the same ingest again
completes it (scenes already stored are recognised by source and checksum).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import shapely

from sitewatch.errors import SceneError, SiteError, UndatedSceneError
from sitewatch.imagery.discover import SceneSource, discover
from sitewatch.imagery.scenes import Scene, read_scene, source_checksum
from sitewatch.sites.site import Site, bare_site, builtin_site, builtin_site_ids
from sitewatch.store import Store
from sitewatch.times import iso

log = logging.getLogger(__name__)

#: progress(stage, done, total): stage is "read" or "store".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class IngestItem:
    """What happened to one scene."""

    scene_id: str
    source: str
    status: str  # added | updated | unchanged | duplicate
    acquired: str
    sensor: str
    note: str = ""


@dataclass
class IngestReport:
    site_id: str
    site_status: str  # existing | builtin | file | created
    site_note: str = ""
    items: list[IngestItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    def to_dict(self) -> dict[str, object]:
        return {
            "site": self.site_id,
            "site_status": self.site_status,
            "site_note": self.site_note,
            "scenes": [i.__dict__ for i in self.items],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "warnings": self.warnings,
        }


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    site_id: str,
    *,
    time: datetime | None = None,
    sensor: str | None = None,
    site: Site | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Catalogue the scenes under ``paths`` for ``site_id``.

    ``site`` registers that site definition when ``site_id`` is not stored yet (otherwise a
    built-in site of that id is used, or a bare site is made from the scenes' footprints).
    ``time`` dates scenes whose metadata and names carry no time.  Raises
    :class:`SceneError` or :class:`SiteError` with nothing stored.
    """
    tick = progress or (lambda *_: None)
    skipped: list[tuple[str, str]] = []
    sources = discover(paths, skipped)
    scenes: list[Scene] = []
    unchanged: list[IngestItem] = []
    site_known = store.get_site(site_id) is not None
    undated: list[SceneSource] = []
    for i, src in enumerate(sources):
        tick("read", i, len(sources))
        # A source already catalogued with the same content needs no raster work at all.
        known = store.find_scene(site_id, source=src.key) if site_known else None
        if (known is not None and sensor is None and time is None
                and known.checksum == source_checksum(src)):
            unchanged.append(IngestItem(known.id, known.source, "unchanged",
                                        iso(known.acquired), known.sensor))
            continue
        try:
            # --time dates files named on the command line; in folder walks, see below.
            scenes.append(read_scene(src, time=time if src.explicit else None, sensor=sensor))
        except UndatedSceneError:
            if src.explicit:
                raise
            undated.append(src)
    if time is not None and undated and not scenes and not unchanged:
        # A walk that found only undated images: --time was meant for them.
        scenes.extend(read_scene(src, time=time, sensor=sensor) for src in undated)
        undated = []
    skipped.extend((src.key, "no acquisition time in metadata or file name")
                   for src in undated)
    tick("read", len(sources), len(sources))
    if not scenes and not unchanged:
        where = ", ".join(str(p) for p in paths)
        n_undated = len(undated)
        detail = (f" ({n_undated} undated image(s) skipped)" if n_undated == len(skipped)
                  else f" ({len(skipped)} file(s) skipped: {skipped[0][0]}: {skipped[0][1]}"
                       f"{' ...' if len(skipped) > 1 else ''})")
        detail = detail if skipped else ""
        raise SceneError(f"{where}: no scenes found{detail}")

    report = IngestReport(site_id, "existing", items=unchanged, skipped=skipped)
    stored = store.get_site(site_id)
    if stored is None:
        stored, report.site_status, report.site_note = _new_site(site_id, scenes, site)
    _check_overlap(stored, scenes, report)

    # Ids: keep a re-ingested source's id; otherwise make the readable id unique in the site.
    taken = store.scene_ids(site_id)
    planned: list[tuple[Scene, str]] = []
    batch: dict[str, str] = {}  # checksum -> scene id, within this ingest
    for sc in scenes:
        note = ""
        previous = store.find_scene(site_id, source=sc.source)
        if previous is not None:
            sc = replace(sc, id=previous.id, site_id=site_id)
        elif sc.checksum in batch:
            report.items.append(IngestItem(batch[sc.checksum], sc.source, "duplicate",
                                           iso(sc.acquired), sc.sensor,
                                           f"same files as {batch[sc.checksum]} in this ingest"))
            continue
        else:
            dup = store.find_scene(site_id, checksum=sc.checksum)
            if dup is not None and any(Path(f.path).exists() for f in dup.files):
                report.items.append(IngestItem(dup.id, sc.source, "duplicate", iso(sc.acquired),
                                               sc.sensor, f"same files as scene {dup.id}"))
                continue
            if dup is not None:  # same content, old files gone: the data moved
                sc = replace(sc, id=dup.id, site_id=site_id)
                note = f"files moved from {dup.source}"
            else:
                sc = replace(sc, id=_unique(sc.id, taken), site_id=site_id)
                taken.add(sc.id)
        batch[sc.checksum] = sc.id
        planned.append((sc, note))
        report.warnings.extend(f"{sc.id}: {w}" for w in sc.warnings)

    if report.site_status != "existing":
        origin = {"builtin": "builtin", "file": "file"}.get(report.site_status, "bare")
        store.put_site(stored, origin)
    for i, (sc, note) in enumerate(planned):
        tick("store", i, len(planned))
        status = store.put_scene(sc)  # one transaction per scene
        if status == "updated" and not note:
            note = "record changed since the last ingest (files, time or sensor)"
        report.items.append(IngestItem(sc.id, sc.source, status, iso(sc.acquired), sc.sensor, note))
        log.info("scene %s: %s", sc.id, status)
    tick("store", len(planned), len(planned))
    report.items.sort(key=lambda it: (it.acquired, it.scene_id))
    return report


def _new_site(site_id: str, scenes: list[Scene], given: Site | None) -> tuple[Site, str, str]:
    if given is not None:
        if given.id != site_id:
            raise SiteError(f"site file defines site {given.id!r}, not {site_id!r}")
        return given, "file", f"registered site {site_id!r} from its site file"
    if site_id in builtin_site_ids():
        return builtin_site(site_id), "builtin", f"registered built-in site {site_id!r}"
    footprints = [s.footprint for s in scenes if s.footprint is not None]
    if not footprints:
        raise SiteError(
            f"site {site_id!r} does not exist and the images have no georeferencing to make "
            "one from; create it first (sitewatch site init / site add)"
        )
    boundary = shapely.set_precision(shapely.union_all(footprints).envelope, 1e-7)
    if boundary.bounds[2] - boundary.bounds[0] > 180:
        raise SiteError(
            f"site {site_id!r} does not exist and the images' footprints cross the antimeridian "
            "(180 degrees), so no site can be made from them; create it first with a site file"
        )
    note = (
        f"created bare site {site_id!r} (no parts) from the footprint of "
        f"{len(footprints)} scene(s); add parts with a site file"
    )
    return bare_site(site_id, boundary, "made from scene footprints at ingest"), "created", note


def _check_overlap(site: Site, scenes: list[Scene], report: IngestReport) -> None:
    outside = [s for s in scenes if s.footprint is not None and not s.footprint.intersects(
        site.boundary)]
    if outside:
        names = ", ".join(f"{s.source}" for s in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        raise SceneError(
            f"{names}{more}: does not overlap site {site.id!r} (site bounds "
            f"{tuple(round(v, 4) for v in site.boundary.bounds)}, lon/lat)"
        )
    for s in scenes:
        if s.footprint is None:
            report.warnings.append(
                f"{s.id}: not georeferenced; overlap with site {site.id!r} cannot be checked"
            )


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"

__all__ = ["IngestItem", "IngestReport", "Progress", "ingest"]
