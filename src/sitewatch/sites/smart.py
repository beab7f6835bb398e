"""IARPA SMART site models: a site and its per-date observations, as GeoWATCH and RD-WATCH
read and write them.

A site model is a GeoJSON FeatureCollection whose first feature has ``type: "site"`` (the
site outline, a Polygon, with ``site_id``, ``region_id``, ``version``, ``mgrs``, ``status``,
``start_date``/``end_date``, ``model_content``, ``originator``, ``score``) followed by
``type: "observation"`` features, one per date (``observation_date``, ``source``,
``sensor_name``, ``current_phase``, ``is_occluded``, ``is_site_boundary``, ``score``), each a
MultiPolygon whose polygons carry their phase in the same order as the comma list
``current_phase`` (and ``is_occluded``).

sitewatch maps its parts to the polygons of every observation (a part that is a
MultiPolygon gives several) and names them in ``misc_info.sitewatch.parts`` (SMART has no
names for polygons).  A part's phase on a date: ``Active Construction`` when an alert (not
dismissed) of the part has a finding that date, ``No Activity`` when the part was seen and
compared with the previous usable date, else ``Unknown`` (``is_occluded`` says when it was
not seen); the observation's score is the largest share of a part that changed.

Importing reads the outline and, from the latest dated observation, the parts (named as
``misc_info.sitewatch.parts`` names them, else ``part_01``, ``part_02``...).  The file's
per-date observations are not evidence sitewatch measured: they are kept as provenance in
the site's ``smart`` property (file name, checksum, ids, and each date's source, sensor,
phases and score), never as analyst notes, and a site with no run of its own exports them
again.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SiteError
from sitewatch.sites.site import (
    MAX_JSON_DEPTH,
    PART_KINDS,
    Site,
    _json_depth,
    _parse_geometry,
    _parse_name,
    plain_json,
    site_from_geojson,
)

if TYPE_CHECKING:
    from sitewatch.store import Store
    from sitewatch.watch.records import Observation

#: The site-model version written (the SMART site-model specification's ``version``).
SMART_VERSION = "2.0.1"
#: Phases of the SMART specification.
PHASES = ("No Activity", "Site Preparation", "Active Construction", "Post Construction",
          "Unknown")
#: Largest site-model file read, and most observations kept as provenance.
MAX_FILE_BYTES = 100 * 2**20
MAX_OBSERVATIONS = 10_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SENSORS = (("sentinel-2", "Sentinel-2"), ("sentinel-1", "Sentinel-1"),
            ("landsat-9", "Landsat 9"), ("landsat-8", "Landsat 8"), ("landsat", "Landsat 8"),
            ("worldview", "WorldView"), ("planet", "PlanetScope"))


@dataclass(frozen=True)
class SmartDate:
    """One date of a site model: per part (in site order) its phase and whether it was
    occluded, and the observation's score, source and sensor."""

    date: str  # YYYY-MM-DD
    source: str | None
    sensor_name: str | None
    phases: Mapping[str, str]
    occluded: Mapping[str, bool]
    score: float


# --------------------------------------------------------------------------- MGRS


def mgrs_square(lon: float, lat: float) -> str:
    """The MGRS 100 km square holding (lon, lat): UTM zone, latitude band, column and row
    letters (the ``mgrs`` property of SMART models).

    >>> mgrs_square(124.705, 39.660)
    '51SXD'
    """
    from shapely import Point

    from sitewatch.imagery.geo import local_utm_crs, to_crs

    crs = local_utm_crs(lon, lat)
    zone = int(crs.to_epsg() or 0) % 100
    band = "CDEFGHJKLMNPQRSTUVWXX"[min(max(int((lat + 80) // 8), 0), 20)]
    p = to_crs(Point(lon, lat), "EPSG:4326", crs)
    cols = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3]
    col = cols[int(p.x // 100_000) - 1]
    row_idx = int((p.y if lat >= 0 else p.y + 10_000_000) // 100_000) % 20
    if zone % 2 == 0:
        row_idx = (row_idx + 5) % 20
    return f"{zone:02d}{band}{col}{'ABCDEFGHJKLMNPQRSTUV'[row_idx]}"


# --------------------------------------------------------------------------- export


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    return list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]


def _part_polygons(site: Site) -> list[tuple[str, Polygon]]:
    """Each placed part's polygons in lon/lat (lines and points as the area the watch
    measures), with the part's name."""
    from sitewatch.imagery.geo import local_utm_crs, to_crs

    utm = local_utm_crs(*site.center)
    out: list[tuple[str, Polygon]] = []
    for p in site.placed_parts():
        g = p.geometry
        assert g is not None
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            fp = p.footprint(utm)
            assert fp is not None
            g = to_crs(fp, utm, "EPSG:4326")
        out += [(p.name, poly) for poly in _polygons(g)]
    return out


def sensor_name(sensor: str) -> str:
    """SMART's sensor name for a sitewatch sensor (``sentinel-2b`` -> ``Sentinel-2``)."""
    s = sensor.lower().replace("_", "-")
    return next((name for key, name in _SENSORS if s.startswith(key)), sensor)


def smart_dates(store: Store, site: Site) -> list[SmartDate]:
    """The site's usable dates from its latest finished run, each part's phase from its
    current-version observations and the alerts (see the module's notes)."""
    run = store.last_run(site.id, finished=True)
    if run is None:
        return []
    ph = run.params_hash
    scenes = {s.id: s for s in store.scenes(site.id)}
    rows: dict[str, dict[str, Observation]] = {}
    for o in store.observations(site.id, ph):
        if o.reference in ("previous", "none"):
            got = rows.setdefault(o.scene_id, {})
            if o.reference == "previous" or o.part not in got:
                got[o.part] = o
    alerted: set[tuple[str, str]] = set()
    for a in store.alerts(site.id, params_hash=ph):
        if a.status != "dismissed":
            alerted.update((a.part, t[:10]) for t in a.finding_times())
            alerted.add((a.part, a.time.date().isoformat()))
    parts = [p.name for p in site.placed_parts()]
    out = []
    for sid, res in sorted(store.processed(site.id, ph).items(),
                           key=lambda kv: (kv[1].acquired, kv[0])):
        if not res.usable:
            continue
        day = res.acquired.date().isoformat()
        phases: dict[str, str] = {}
        occluded: dict[str, bool] = {}
        score = 0.0
        for name in parts:
            ob = rows.get(sid, {}).get(name)
            seen = bool(ob is not None and ob.observed)
            occluded[name] = not seen
            if (name, day) in alerted:
                phases[name] = "Active Construction"
            elif seen and ob is not None and math.isfinite(ob.changed_fraction):
                phases[name] = "No Activity"
            else:
                phases[name] = "Unknown"
            if seen and ob is not None and math.isfinite(ob.changed_fraction):
                score = max(score, float(ob.changed_fraction))
        sc = scenes.get(sid)
        out.append(SmartDate(day, sid, sensor_name(sc.sensor) if sc else None, phases,
                             occluded, round(score, 4)))
    return out


def _provenance_dates(site: Site) -> list[SmartDate]:
    """The dates an imported site model carried (its ``smart`` property)."""
    prov = site.properties.get("smart")
    if not isinstance(prov, Mapping):
        return []
    out = []
    for ob in prov.get("observations") or ():
        names = [n for n in ob.get("parts") or () if isinstance(n, str)]
        phases = [x for x in str(ob.get("current_phase") or "").split(", ") if x]
        if len(phases) == 1:
            phases *= max(len(names), 1)
        out.append(SmartDate(str(ob.get("date")), ob.get("source"), ob.get("sensor_name"),
                             dict(zip(names, phases, strict=False)), {},
                             float(ob.get("score") or 0.0)))
    return out


def site_model(site: Site, dates: Sequence[SmartDate], *, region_id: str | None = None,
               number: int = 1, versions: Mapping[str, int] | None = None,
               layout_date: str | None = None) -> dict[str, Any]:
    """The SMART site model of ``site`` with ``dates`` (with none, the dates an imported
    model carried; with none of those, one observation of the layout on ``layout_date``)."""
    dates = list(dates) or _provenance_dates(site)
    proposed = bool(dates) and site.properties.get("smart") is None
    if not dates:
        day = layout_date or date.today().isoformat()
        dates = [SmartDate(day, "sitewatch-layout", None, {}, {}, 1.0)]
    cc = str(site.properties.get("country") or "ZZ").upper()[:2]
    region = region_id or f"{cc}_C000"
    lon, lat = site.center
    outline = site.boundary if site.boundary.geom_type == "Polygon" else \
        site.boundary.convex_hull
    polys = _part_polygons(site)
    names = [n for n, _ in polys]
    versions = versions or {}
    parts_info = [{"name": p.name, "kind": p.kind, "label": p.label, "placed": p.placed,
                   "version": versions.get(p.name) if p.placed else None}
                  for p in site.parts]
    header = {
        "type": "site", "site_id": f"{region}_{number:04d}", "region_id": region,
        "version": SMART_VERSION, "mgrs": mgrs_square(lon, lat),
        "status": "system_proposed" if proposed else "positive_annotated",
        "model_content": "proposed" if proposed else "annotation",
        "originator": "sitewatch",
        "score": max((d.score for d in dates), default=1.0) if proposed else 1.0,
        "start_date": dates[0].date, "end_date": dates[-1].date, "validated": "False",
        "misc_info": {"sitewatch": {"site_id": site.id, "name": site.name,
                                    "site_type": site.site_type,
                                    "country": site.properties.get("country"),
                                    "parts": parts_info}},
    }
    features = [{"type": "Feature", "properties": header, "geometry": mapping(outline)}]
    for d in dates:
        if polys:
            geom = MultiPolygon([p for _, p in polys])
            phase = [d.phases.get(n, "Unknown") for n in names]
            occl = [d.occluded.get(n, False) for n in names]
            boundary = ["False"] * len(names)
        else:
            geom = MultiPolygon(_polygons(outline))
            phase = ["Unknown"] * len(geom.geoms)
            occl = [False] * len(geom.geoms)
            boundary = ["True"] * len(geom.geoms)
        features.append({"type": "Feature", "geometry": mapping(geom), "properties": {
            "type": "observation", "observation_date": d.date, "source": d.source,
            "sensor_name": d.sensor_name, "current_phase": ", ".join(phase),
            "is_occluded": ", ".join(str(x) for x in occl),
            "is_site_boundary": ", ".join(boundary), "score": d.score,
            "misc_info": {"sitewatch": {"parts": names}}}})
    return {"type": "FeatureCollection", "features": plain_json(features)}


def write_site_model(model: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write a site model as ``OUT_DIR/<site_id>.geojson``; returns the path."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{model['features'][0]['properties']['site_id']}.geojson"
        path.write_text(json.dumps(model, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SiteError(f"{folder}: cannot write the site model: {exc}") from None
    return path


# --------------------------------------------------------------------------- import


def _props(feat: Any, where: str) -> dict[str, Any]:
    if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
        raise SiteError(f"{where}: not a GeoJSON Feature")
    props = feat.get("properties")
    if not isinstance(props, Mapping):
        raise SiteError(f"{where}: field 'properties' must be an object")
    return dict(props)


def _observation_polygons(raw: Any, where: str) -> list[Polygon]:
    """An observation's polygons, each checked on its own: the polygons of a SMART
    observation are separate things (parts) and may overlap, which one MultiPolygon may
    not."""
    if not isinstance(raw, Mapping) or raw.get("type") not in ("MultiPolygon", "Polygon"):
        got = raw.get("type") if isinstance(raw, Mapping) else raw
        raise SiteError(f"{where}: field 'geometry' must be a MultiPolygon (or Polygon), got "
                        f"{_text(got, 40)!r}")
    coords = raw.get("coordinates")
    if raw["type"] == "Polygon":
        coords = [coords]
    if not isinstance(coords, list) or not coords:
        raise SiteError(f"{where}: field 'geometry.coordinates' must be a non-empty array")
    out = []
    for k, c in enumerate(coords):
        g = _parse_geometry({"type": "Polygon", "coordinates": c}, f"{where} polygon {k}",
                            ("Polygon",))
        assert isinstance(g, Polygon)
        out.append(g)
    return out


def _text(v: Any, limit: int = 200) -> str | None:
    return None if v is None else str(v)[:limit]


def read_site_model(path: str | Path, as_id: str | None = None) -> Site:
    """A :class:`Site` from a SMART site-model file (see the module's notes).  Every problem
    is a one-line :class:`SiteError` naming the file (and the feature)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise SiteError(f"{p}: larger than {MAX_FILE_BYTES // 2**20} MiB; not read")
        raw = p.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SiteError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteError(f"{p}: cannot read it: {exc}") from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise SiteError(f"{p}: its JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SiteError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise SiteError(f"{p}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection" \
            or not isinstance(data.get("features"), list):
        raise SiteError(f"{p}: not a SMART site model (a GeoJSON FeatureCollection)")
    site_feats, observations = [], []
    for i, feat in enumerate(data["features"]):
        where = f"{p}: feature {i}"
        props = _props(feat, where)
        kind = props.get("type")
        if kind == "site":
            site_feats.append((i, feat, props))
        elif kind == "observation":
            observations.append((i, feat, props))
        else:
            raise SiteError(f"{where}: properties.type is {_text(kind, 40)!r}; a site model "
                            "holds 'site' and 'observation' features (a region model is not "
                            "a site model)")
    if len(site_feats) != 1:
        raise SiteError(f"{p}: {len(site_feats)} 'site' features; a site model has exactly "
                        "one")
    if len(observations) > MAX_OBSERVATIONS:
        raise SiteError(f"{p}: {len(observations)} observations, more than "
                        f"{MAX_OBSERVATIONS} are not read")
    i, feat, props = site_feats[0]
    where = f"{p}: feature {i} (site)"
    outline = _parse_geometry(feat.get("geometry"), where, ("Polygon", "MultiPolygon"))
    if outline is None:
        raise SiteError(f"{where}: the site outline (geometry) is missing")
    misc = props.get("misc_info")
    ours = misc.get("sitewatch") if isinstance(misc, Mapping) else None
    ours = ours if isinstance(ours, Mapping) else {}
    smart_id = props.get("site_id")
    if not isinstance(smart_id, str) or not smart_id.strip():
        raise SiteError(f"{where}: properties.site_id must be a non-empty string")
    site_id = as_id or ours.get("site_id") or re.sub(r"[^a-z0-9_-]", "_", smart_id.lower())
    _parse_name(site_id, f"{where} (give another id with --as)", "site_id")
    known = {str(d.get("name")): d for d in ours.get("parts") or () if isinstance(d, Mapping)}

    dated = []
    for i, ofeat, oprops in observations:
        owhere = f"{p}: feature {i} (observation)"
        day = oprops.get("observation_date")
        if day is None:
            continue  # undated observations are skipped, as RD-WATCH does
        if not isinstance(day, str) or not _DATE.match(day):
            raise SiteError(f"{owhere}: observation_date {_text(day, 40)!r} is not YYYY-MM-DD")
        try:
            date.fromisoformat(day[:10])
        except ValueError:
            raise SiteError(f"{owhere}: observation_date {day!r} is not a date") from None
        polys = _observation_polygons(ofeat.get("geometry"), owhere)
        phase = oprops.get("current_phase")
        phases = [x.strip() for x in phase.split(",")] if isinstance(phase, str) else []
        if phases and len(phases) not in (1, len(polys)):
            raise SiteError(f"{owhere}: current_phase lists {len(phases)} phases for "
                            f"{len(polys)} polygons")
        omisc = oprops.get("misc_info")
        oours = omisc.get("sitewatch") if isinstance(omisc, Mapping) else None
        names = oours.get("parts") if isinstance(oours, Mapping) else None
        if not (isinstance(names, list) and len(names) == len(polys)):
            names = [f"part_{k + 1:02d}" for k in range(len(polys))]
        boundary = str(oprops.get("is_site_boundary") or "")
        dated.append((day, i, polys, [str(n) for n in names], oprops, phases,
                      boundary.startswith("True")))
    dated.sort(key=lambda d: (d[0], d[1]))
    features: list[dict[str, Any]] = [{"type": "Feature", "geometry": mapping(outline),
                                       "properties": {"role": "site", "id": site_id,
                                                      "name": str(ours.get("name") or
                                                                  smart_id)[:200],
                                                      "site_type": str(ours.get("site_type")
                                                                       or "facility")[:64]}}]
    if dated and not dated[-1][6]:
        _day, _i, polys, names, *_ = dated[-1]
        grouped: dict[str, list[Polygon]] = {}
        for n, poly in zip(names, polys, strict=True):
            grouped.setdefault(n, []).append(poly)
        for n, ps in grouped.items():
            g = ps[0] if len(ps) == 1 else MultiPolygon(ps)
            info = known.get(n, {})
            kind, label = info.get("kind"), info.get("label")
            props = {"role": "part", "name": n, "kind": kind if kind in PART_KINDS else "other"}
            if isinstance(label, str) and label and label != n:
                props["label"] = label[:200]
            features.append({"type": "Feature", "geometry": mapping(g), "properties": props})
    placed = {f["properties"]["name"] for f in features[1:]}
    for n, info in known.items():  # parts the exporting sitewatch knew but had not placed
        if n not in placed and info.get("placed") is False:
            kind, label = info.get("kind"), info.get("label")
            props = {"role": "part", "name": n, "kind": kind if kind in PART_KINDS else "other"}
            if isinstance(label, str) and label and label != n:
                props["label"] = label[:200]
            features.append({"type": "Feature", "geometry": None, "properties": props})
    if isinstance(ours.get("country"), str):
        features[0]["properties"]["country"] = ours["country"][:8]
    prov = {
        "file": p.name, "sha256": hashlib.sha256(raw).hexdigest(),
        "site_id": smart_id[:200], "region_id": _text(props.get("region_id")),
        "originator": _text(props.get("originator")),
        "model_content": _text(props.get("model_content")),
        "status": _text(props.get("status")),
        "observations": [{"date": d[0], "source": _text(d[4].get("source")),
                          "sensor_name": _text(d[4].get("sensor_name")),
                          "current_phase": ", ".join(d[5])[:2000],
                          "score": d[4].get("score") if isinstance(d[4].get("score"),
                                                                   int | float) else None,
                          "parts": d[3]} for d in dated],
    }
    features[0]["properties"]["smart"] = prov
    return site_from_geojson(plain_json({"type": "FeatureCollection", "features": features}),
                             str(p))


__all__ = ["MAX_FILE_BYTES", "MAX_OBSERVATIONS", "PHASES", "SMART_VERSION", "SmartDate",
           "mgrs_square", "read_site_model", "sensor_name", "site_model", "smart_dates",
           "write_site_model"]
