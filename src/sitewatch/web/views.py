"""The records the web API answers with, built from the store: plain dicts of JSON values.

Each function is what one route returns; they call the same library functions the CLI does
(``alerts``, ``alert``, ``timeline``, ``assess``, ``collateral add``, ``note``, ``brief``,
``site history``, ``site edit``) and add only what a map needs (lon/lat positions, bounds).
No HTTP here: the routes in :mod:`.api` are one line each over these.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shapely.geometry import mapping

from sitewatch.errors import CollateralError
from sitewatch.fileio import safe_name
from sitewatch.imagery.sensors import kind_of
from sitewatch.sites.site import PART_KINDS, Site
from sitewatch.store import Store
from sitewatch.times import iso, iso_day
from sitewatch.watch.events import season_graded
from sitewatch.watch.records import StoredAlert
from sitewatch.watch.zonal import REST
from sitewatch.web.errors import NotFound, WebError

#: Statuses an alert still asks for attention in.
OPEN_STATUSES = ("new", "seen")
#: Alert actions -> the status they set (as `sitewatch alert ID ACTION`).
ACTIONS = {"seen": "seen", "dismiss": "dismissed", "confirm": "confirmed", "reopen": "new"}
#: A report's text sent to the API (characters).
MAX_REPORT_CHARS = 1_000_000


def site_of(store: Store, site_id: str) -> Site:
    site = store.use_site(site_id)
    if site is None:
        raise NotFound(f"no site {site_id!r} in the catalogue")
    return site


def _bbox(site: Site) -> list[float]:
    return [round(v, 6) for v in site.boundary.bounds]


def _params_hash(store: Store, site_id: str) -> str | None:
    last = store.last_run(site_id)
    return last.params_hash if last else None


def _part_position(site: Site, part: str) -> list[float]:
    names = {p.name: p for p in site.parts}
    p = names.get(part)
    geom = p.geometry if p is not None and p.geometry is not None else None
    pt = geom.representative_point() if geom is not None else site.boundary.centroid
    return [round(pt.x, 7), round(pt.y, 7)]


def _label(site: Site, part: str) -> str:
    if part == REST:
        return "rest of the site"
    names = {p.name: p for p in site.parts}
    return names[part].label if part in names else part


# ------------------------------------------------------------------------------ sites


def site_record(store: Store, site_id: str) -> dict[str, Any]:
    """A site with its parts as GeoJSON (lon/lat) and the current version of each."""
    site = site_of(store, site_id)
    versions = store.current_part_versions(site.id)
    feats = []
    for p in site.parts:
        if p.geometry is None:
            continue
        feats.append({"type": "Feature", "geometry": mapping(p.geometry),
                      "properties": {"name": p.name, "label": p.label, "kind": p.kind,
                                     "placed": True, "version": versions.get(p.name)}})
    lon, lat = site.center
    return {"id": site.id, "name": site.name, "site_type": site.site_type,
            "simulated": site.simulated, "center": [lon, lat], "bbox": _bbox(site),
            "outline": mapping(site.boundary),
            "parts": {"type": "FeatureCollection", "features": feats},
            "unplaced": [{"name": p.name, "label": p.label, "kind": p.kind}
                         for p in site.parts if p.geometry is None],
            "part_kinds": list(PART_KINDS)}


def _assessment_brief(store: Store, site: Site) -> dict[str, Any] | None:
    from sitewatch.warning.record import assess_site

    a = assess_site(store, site, at=default_at(store, site.id))
    return {"at": iso_day(a.at) if a.at else None, "launch": {"level": a.launch.level,
                                            "likelihood": a.launch.likelihood},
            "engine_test": {"level": a.engine_test.level,
                            "likelihood": a.engine_test.likelihood}}


def sites_summary(store: Store) -> list[dict[str, Any]]:
    """Every catalogued site: last image, open alerts by tier, the current assessment."""
    out = []
    for row in store.list_sites():
        site = row.site
        scenes = store.scenes(site.id)
        last = max(scenes, key=lambda s: s.acquired) if scenes else None
        ph = _params_hash(store, site.id)
        alerts = store.alerts(site.id, status=OPEN_STATUSES, params_hash=ph) if ph else []
        tiers: dict[str, int] = {}
        for a in alerts:
            tiers[a.tier] = tiers.get(a.tier, 0) + 1
        out.append({
            "id": site.id, "name": site.name, "site_type": site.site_type,
            "simulated": site.simulated, "scenes": len(scenes), "bbox": _bbox(site),
            "last_image": {"time": iso(last.acquired), "sensor": last.sensor,
                           "scene": last.id} if last else None,
            "open_alerts": len(alerts), "alerts_by_tier": tiers,
            "assessment": _assessment_brief(store, site)})
    return out


# ------------------------------------------------------------------------------ scenes


def scene_list(store: Store, site_id: str) -> list[dict[str, Any]]:
    """Every catalogued scene of the site, oldest first, with what the latest run made of
    it (grid, status, the share of the site observed)."""
    from sitewatch.imagery.sentinel1 import orbit_key
    from sitewatch.watch.grids import grid_key

    site = site_of(store, site_id)
    ph = _params_hash(store, site.id)
    done = store.processed(site.id, ph) if ph else {}
    out = []
    for sc in sorted(store.scenes(site.id), key=lambda s: (s.acquired, s.id)):
        row = done.get(sc.id)
        kind = kind_of(sc.sensor) or "optical"
        observed = row.site_observed if row is not None else math.nan
        out.append({
            "id": sc.id, "time": iso(sc.acquired), "sensor": sc.sensor, "kind": kind,
            "resolution_m": sc.resolution, "grid": row.grid if row else grid_key(sc),
            "status": row.status if row else "not processed",
            "usable": bool(row.usable) if row else False,
            "observed": round(observed, 4) if math.isfinite(observed) else None,
            "orbit": orbit_key(sc.properties) if kind == "sar" else None,
            "previous": row.previous_id if row else None,
            "tiles": f"/tiles/{site.id}/{sc.id}/{{z}}/{{x}}/{{y}}.png"})
    return out


def changes(store: Store, site_id: str, scene_id: str) -> dict[str, Any]:
    """The change objects of the pair that ends at ``scene_id`` (GeoJSON, lon/lat)."""
    from sitewatch.watch.products import change_outlines

    site = site_of(store, site_id)
    if store.get_scene(site.id, scene_id) is None:
        raise NotFound(f"no scene {scene_id!r} at site {site.id!r}")
    ph = _params_hash(store, site.id)
    row = store.processed(site.id, ph).get(scene_id) if ph else None
    products = row.products if row else None
    feats: list[dict[str, Any]] = []
    note = None
    if products is None:
        note = "no change map: the scene was not compared with an earlier date"
    elif not Path(products.change).is_file():
        note = f"the stored change map {products.change} is missing"
    else:
        feats = change_outlines(products.change)
        for f in feats:
            f["properties"]["previous"] = row.previous_id if row else None
    return {"type": "FeatureCollection", "features": feats, "scene": scene_id,
            "previous": row.previous_id if row else None, "note": note}


# ------------------------------------------------------------------------------ alerts


def _alert(site: Site, a: StoredAlert) -> dict[str, Any]:
    rec = a.payload()
    rec["position"] = _part_position(site, a.part)
    rec["label"] = _label(site, a.part)
    # Graded down because its comparison spans seasons and the same season of earlier
    # years does not show it (watch.events.season_graded): the page marks it "season?".
    rec["season"] = a.alert.confidence == "low" and season_graded(a.alert.text)
    return rec


def alert_list(store: Store, site_id: str, statuses: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The site's alerts of the latest run's parameters, oldest first."""
    from sitewatch.store import ALERT_STATUSES

    site = site_of(store, site_id)
    bad = [s for s in statuses if s not in ALERT_STATUSES]
    if bad:
        raise WebError(400, f"status {bad[0]!r} is not one of {', '.join(ALERT_STATUSES)}")
    ph = _params_hash(store, site.id)
    if ph is None:
        return []
    found = store.alerts(site.id, status=tuple(statuses) or None, params_hash=ph)
    return [_alert(site, a) for a in found]


def alert_action(store: Store, site_id: str, alert_id: str, action: str,
                 reason: str | None) -> dict[str, Any]:
    """`sitewatch alert ID ACTION`: the alert updated."""
    site = site_of(store, site_id)
    if action not in ACTIONS:
        raise WebError(400, f"action {action!r} is not one of {', '.join(ACTIONS)}")
    a = store.get_alert(alert_id)
    if a is None or a.site != site.id:
        raise NotFound(f"no alert {alert_id!r} at site {site.id!r}")
    if action == "dismiss" and not (reason or "").strip():
        raise WebError(422, "dismissing an alert needs a reason (it is kept with the alert)")
    updated = store.set_alert_status(a.id, ACTIONS[action], (reason or "").strip() or None)
    return _alert(site, updated)


# ------------------------------------------------------------------------------ timeline


def timeline(store: Store, site_id: str, part: str) -> dict[str, Any]:
    """One part's series per grid (:func:`sitewatch.watch.timeline.part_series`)."""
    from sitewatch.errors import SiteError
    from sitewatch.watch.timeline import part_series

    site = site_of(store, site_id)
    if part != REST:
        try:
            site.part(part)
        except SiteError as exc:
            raise NotFound(str(exc)) from None
    ph = _params_hash(store, site.id)
    series = part_series(store, site.id, ph, part) if ph else []
    note = None
    if not series:
        version = store.current_part_versions(site.id).get(part)
        scored = ph is not None and store.observations(site.id, ph, part=part,
                                                       versions="all")
        if scored and version:
            note = (f"No observations of this part's current geometry (version {version}) "
                    "yet: the next `sitewatch run` scores every date under it.")
        elif ph is None:
            note = "The site has not been run yet: `sitewatch run` scores its parts."
    return {"part": part, "label": _label(site, part), "note": note,
            "series": [s.to_dict() for s in series]}


# ------------------------------------------------------------------------------ warning


def default_at(store: Store, site_id: str) -> date:
    """The date an assessment is shown as of when none is asked for: the latest image,
    report or note of the site, never later than today."""
    days = [s.acquired.date() for s in store.scenes(site_id)]
    days += [r.published for r in store.reports(site_id) if r.published]
    days += [n.date for n in store.notes(site_id)]
    today = datetime.now(UTC).date()
    return min(max(days), today) if days else today


def assessment(store: Store, site_id: str, at: date | None) -> dict[str, Any]:
    """`sitewatch assess SITE --at DATE --json`, with a summary line per event."""
    from sitewatch.warning.assess import summarise
    from sitewatch.warning.record import assess_site

    site = site_of(store, site_id)
    when = at or default_at(store, site.id)
    a = assess_site(store, site, at=when)
    rec = a.to_dict()
    rec["summary"] = [summarise("launch", a.launch), summarise("engine_test", a.engine_test)]
    rec["as_of_default"] = at is None
    return rec


def collateral(store: Store, site_id: str) -> dict[str, Any]:
    """The site's reports (what was read from them, never their text) and notes."""
    site = site_of(store, site_id)
    reports = []
    for r in sorted(store.reports(site.id), key=lambda r: (r.published or date.min, r.id)):
        reports.append({"id": r.id, "title": r.title, "name": Path(r.name).name,
                        "published": iso_day(r.published) if r.published else None,
                        "claims": len(r.reading.claims),
                        "added_at": iso(r.added_at) if r.added_at else None})
    notes = [{"id": n.id, "date": iso_day(n.date), "part": n.part, "author": n.author,
              "text": n.text} for n in sorted(store.notes(site.id), key=lambda n: n.date)]
    return {"reports": reports, "notes": notes}


def add_report_text(store: Store, home: Path, site_id: str, text: str, title: str | None,
                    published: date | None, url: str | None = None) -> dict[str, Any]:
    """`sitewatch collateral add` for a text sent to the API: kept as a file under
    ``<home>/collateral/<site>/`` (named after its title) and read like any report."""
    from sitewatch.warning.record import add_report

    site = site_of(store, site_id)
    if not text.strip():
        raise CollateralError("the report is empty")
    if len(text) > MAX_REPORT_CHARS:
        raise WebError(413, f"the report is {len(text)} characters long; the API takes "
                       f"{MAX_REPORT_CHARS} (add longer ones with `sitewatch collateral add`)")
    body = f"{title.strip()}\n\n{text}" if title and title.strip() else text
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:12]
    folder = home / "collateral" / safe_name(site.id, "site", 60)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(title or 'report', 'report', 60)}-{digest}.txt"
    path.write_text(body, encoding="utf-8")
    try:
        added = add_report(store, site, path, published=published, url=url,
                           require_date=True)
    except CollateralError as exc:
        path.unlink(missing_ok=True)
        if "no publication date" in str(exc):
            raise CollateralError("no publication date found in the report (metadata, a date "
                                  "line, a dateline, a byline or its URL): give its "
                                  "publication date; an undated report is never counted as "
                                  "news of today") from None
        raise
    return {"id": added.report_id, "new": added.new, "title": added.reading.title,
            "published": added.reading.published or None, "claims": len(added.evidence),
            "skipped": added.skipped, "warnings": list(added.reading.warnings)}


def add_note_text(store: Store, site_id: str, text: str, when: date, part: str | None,
                  author: str | None) -> dict[str, Any]:
    """`sitewatch note`: the note's id and the evidence it gave."""
    from sitewatch.warning.record import add_note

    site = site_of(store, site_id)
    nid, made = add_note(store, site, text, when=when, part=part or None, author=author)
    return {"id": nid, "evidence": [e.to_dict() for e in made]}


# ------------------------------------------------------------------------------ brief


def brief_folder(home: Path, site_id: str) -> Path:
    return home / "briefs" / safe_name(site_id, "site", 60)


def brief_info(store: Store, home: Path, site_id: str) -> dict[str, Any]:
    site = site_of(store, site_id)
    page = brief_folder(home, site.id) / "brief.html"
    if not page.is_file():
        return {"url": None, "written": None}
    written = datetime.fromtimestamp(page.stat().st_mtime, UTC)
    return {"url": f"/briefs/{site.id}/brief.html", "written": iso(written)}


def write_site_brief(store: Store, home: Path, site_id: str) -> dict[str, Any]:
    """`sitewatch brief SITE --out <home>/briefs/SITE`."""
    from sitewatch.report.brief import write_brief

    site = site_of(store, site_id)
    b = write_brief(store, site.id, brief_folder(home, site.id))
    return {**brief_info(store, home, site.id), "warnings": list(getattr(b, "warnings", []))}


# ------------------------------------------------------------------------------ parts


def part_history(store: Store, site_id: str, part: str | None) -> list[dict[str, Any]]:
    site = site_of(store, site_id)
    if part is not None:
        from sitewatch.errors import SiteError

        try:
            site.part(part)
        except SiteError:
            if not store.part_versions(site.id, part):
                raise NotFound(f"site {site.id!r} has no part {part!r}") from None
    return [v.to_dict() for v in store.part_versions(site.id, part)]


def save_layout(store: Store, site_id: str, edits: Sequence[Any], note: str | None,
                author: str) -> dict[str, Any]:
    """The parts editor's save: the whole layout as new part versions (`site edit`)."""
    from sitewatch.sites.place import edit_layout

    site = site_of(store, site_id)
    layout = edit_layout(site, list(edits))
    what = store.put_site(layout.site, None, note=note or "edited in the web view",
                          author=author, renamed=layout.renamed or None)
    return {"result": what, "warnings": list(layout.warnings), "removed": list(layout.removed),
            "renamed": layout.renamed, "site": site_record(store, site.id)}


__all__ = ["ACTIONS", "MAX_REPORT_CHARS", "OPEN_STATUSES", "add_note_text", "add_report_text",
           "alert_action", "alert_list", "assessment", "brief_folder", "brief_info", "changes",
           "collateral", "default_at", "part_history", "save_layout", "scene_list",
           "site_of", "site_record", "sites_summary", "timeline", "write_site_brief"]
