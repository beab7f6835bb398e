"""Placing and editing a site's parts: geometry from the forms an analyst has at hand (GeoJSON,
WKT, a lon/lat point with a radius, a bounding box), checked against the site, and the edits
of a site's part list (place, rename, re-kind, add, remove).

Every function returns a new :class:`~sitewatch.sites.site.Site` (or raises
:class:`~sitewatch.errors.SiteError` with a one-line message naming the input): nothing is
half-changed.  The result is validated as a whole, exactly as a site file is.

>>> from sitewatch.sites.site import builtin_site
>>> g = point_geometry(124.705, 39.660, 150)
>>> round(metres_area(g) / 1e4, 1)  # hectares: pi * 150^2 = 7.07 ha
7.1
>>> site = place_part(builtin_site("sohae"), "launch_pad", g)
>>> site.part("launch_pad").placed
True
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import shapely
from pyproj import CRS
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SiteError
from sitewatch.sites.site import (
    MAX_JSON_DEPTH,
    PART_KINDS,
    Part,
    Site,
    _json_depth,
    _parse_geometry,
    _parse_name,
    plain_json,
    site_from_geojson,
)

#: Largest radius (metres) of a part placed as a point: parts are buildings and pads.
MAX_RADIUS_M = 20_000.0
#: Largest GeoJSON text or file read as a part's geometry.
MAX_GEOMETRY_BYTES = 20 * 2**20
#: A part sharing less than this share of its area with the site outline is warned about.
MIN_INSIDE_SHARE = 0.5
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class Placement:
    """A part geometry ready to place, with what it was made from (for the version note) and
    any warnings the checks against the site raised."""

    geometry: BaseGeometry
    source: str
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- geometry forms


def _aeqd(lon: float, lat: float) -> CRS:
    """An azimuthal equidistant projection centred on (lon, lat): distances from the centre
    are true, so a buffer there is a circle on the ground."""
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")


def _lonlat_ok(lon: float, lat: float, what: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise SiteError(f"{what}: longitude and latitude must be finite numbers")
    if abs(lat) > 90 or abs(lon) > 180:
        hint = (" (the order is LON LAT: are they swapped?)" if abs(lat) > 90 and abs(lon) <= 90
                else " (give WGS 84 degrees, not projected metres)")
        raise SiteError(f"{what}: ({lon:g}, {lat:g}) is not a longitude, latitude{hint}")


def point_geometry(lon: float, lat: float, radius_m: float) -> BaseGeometry:
    """A circle of ``radius_m`` metres on the ground around (lon, lat), as a lon/lat polygon
    (buffered in an azimuthal equidistant projection centred on the point, not in degrees)."""
    what = f"--point {lon:g} {lat:g} --radius {radius_m:g}"
    _lonlat_ok(lon, lat, what)
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise SiteError(f"{what}: the radius must be more than 0 and at most "
                        f"{MAX_RADIUS_M:g} m")
    from sitewatch.imagery.geo import to_crs

    local = _aeqd(lon, lat)
    circle = shapely.Point(0.0, 0.0).buffer(radius_m, quad_segs=16)
    return shapely.set_precision(to_crs(circle, local, "EPSG:4326"), 1e-7)


def bbox_geometry(west: float, south: float, east: float, north: float) -> BaseGeometry:
    """The lon/lat box W S E N; south above north or west east of east is refused."""
    what = f"--bbox {west:g} {south:g} {east:g} {north:g}"
    _lonlat_ok(west, south, what)
    _lonlat_ok(east, north, what)
    if south >= north:
        raise SiteError(f"{what}: south ({south:g}) must be less than north ({north:g}); the "
                        "order is W S E N")
    if west >= east:
        raise SiteError(f"{what}: west ({west:g}) must be less than east ({east:g}); the order "
                        "is W S E N (boxes across the antimeridian are not supported)")
    return box(west, south, east, north)


def wkt_geometry(text: str) -> BaseGeometry:
    """A Polygon or MultiPolygon from WKT (lon lat order)."""
    shown = text if len(text) <= 60 else text[:60] + "..."
    try:
        geom = shapely.from_wkt(text)
    except Exception as exc:  # shapely raises GEOSException and others for bad text
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SiteError(f"--wkt {shown!r}: not valid WKT ({first})") from None
    if geom is None:
        raise SiteError(f"--wkt {shown!r}: not valid WKT")
    return _parse_geometry(plain_json(mapping(geom)), f"--wkt {shown!r}", _POLYGONAL) \
        or _empty(f"--wkt {shown!r}")


def _empty(where: str) -> BaseGeometry:
    raise SiteError(f"{where}: the geometry is empty")


def geojson_geometry(value: str) -> BaseGeometry:
    """A Polygon or MultiPolygon from GeoJSON text or a file holding it: a geometry, a
    Feature, or a FeatureCollection of exactly one feature."""
    text, where = value, "--geojson text"
    if not value.lstrip().startswith(("{", "[")):
        p, where = Path(value), f"{value}"
        try:
            if p.stat().st_size > MAX_GEOMETRY_BYTES:
                raise SiteError(f"{p}: larger than {MAX_GEOMETRY_BYTES // 2**20} MiB; a part's "
                                "geometry is not that big")
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SiteError(f"{p}: no such file (give a GeoJSON file or GeoJSON text)"
                            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SiteError(f"{p}: cannot read it: {exc}") from None
    elif len(value) > MAX_GEOMETRY_BYTES:
        raise SiteError(f"{where}: longer than {MAX_GEOMETRY_BYTES // 2**20} MiB")
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise SiteError(f"{where}: its JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SiteError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise SiteError(f"{where}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SiteError(f"{where}: expected a GeoJSON geometry, Feature or FeatureCollection")
    if data.get("type") == "FeatureCollection":
        feats = data.get("features")
        if not isinstance(feats, list) or len(feats) != 1:
            n = len(feats) if isinstance(feats, list) else 0
            raise SiteError(f"{where}: a FeatureCollection of {n} features; give exactly one "
                            "(one part at a time)")
        data = feats[0]
        if not isinstance(data, dict):
            raise SiteError(f"{where}: its feature is not a GeoJSON Feature")
    if data.get("type") == "Feature":
        data = data.get("geometry")
        if data is None:
            raise SiteError(f"{where}: the feature has no geometry")
    geom = _parse_geometry(data, where, _POLYGONAL)
    return geom if geom is not None else _empty(where)


# --------------------------------------------------------------------------- checks


def metres_area(geom: BaseGeometry) -> float:
    """The area of a lon/lat geometry in square metres (in its local UTM zone)."""
    from sitewatch.imagery.geo import local_utm_crs, to_crs

    c = geom.centroid
    return float(to_crs(geom, "EPSG:4326", local_utm_crs(c.x, c.y)).area)


def check_against_site(site: Site, geom: BaseGeometry, what: str) -> tuple[str, ...]:
    """Refuse a part that does not overlap the site outline (naming how far away it is, and
    whether swapping longitude and latitude would put it inside); return warnings for one
    mostly outside the outline or larger than the site."""
    from sitewatch.imagery.geo import local_utm_crs, to_crs

    lon, lat = site.center
    utm = local_utm_crs(lon, lat)
    g_m, b_m = to_crs(geom, "EPSG:4326", utm), to_crs(site.boundary, "EPSG:4326", utm)
    if not g_m.intersects(b_m):
        km = g_m.distance(b_m) / 1000
        swapped = shapely.transform(geom, lambda xy: xy[:, ::-1])
        hint = (" (longitude and latitude look swapped: the order is LON LAT)"
                if swapped.intersects(site.boundary) else "")
        raise SiteError(
            f"{what}: lies {km:,.1f} km outside site {site.id!r} (centre {lon:.4f}, "
            f"{lat:.4f}); a part must overlap the site outline{hint}")
    warnings = []
    inside = g_m.intersection(b_m).area / g_m.area if g_m.area > 0 else 1.0
    if inside < MIN_INSIDE_SHARE:
        warnings.append(f"{what}: only {inside:.0%} of it lies inside site {site.id!r}'s "
                        "outline; pixels outside the site are not scored")
    if g_m.area > b_m.area:
        warnings.append(f"{what}: it is larger than the whole site ({g_m.area / 1e6:.2f} km2 "
                        f"against {b_m.area / 1e6:.2f} km2)")
    return tuple(warnings)


def placement(site: Site, *, geojson: str | None = None, wkt: str | None = None,
              point: tuple[float, float] | None = None, radius_m: float | None = None,
              bbox: tuple[float, float, float, float] | None = None) -> Placement:
    """The geometry given by exactly one of the forms, checked against ``site``."""
    given = [n for n, v in (("--geojson", geojson), ("--wkt", wkt), ("--point", point),
                            ("--bbox", bbox)) if v is not None]
    if len(given) != 1:
        raise SiteError("give exactly one of --geojson, --wkt, --point (with --radius) or "
                        f"--bbox (got {', '.join(given) or 'none'})")
    if radius_m is not None and point is None:
        raise SiteError("--radius goes with --point LON LAT")
    if geojson is not None:
        geom, src = geojson_geometry(geojson), "geojson " + (
            "text" if geojson.lstrip().startswith(("{", "[")) else Path(geojson).name)
    elif wkt is not None:
        geom, src = wkt_geometry(wkt), "wkt"
    elif point is not None:
        if radius_m is None:
            raise SiteError(f"--point {point[0]:g} {point[1]:g}: give --radius METRES too")
        geom = point_geometry(point[0], point[1], radius_m)
        src = f"point {point[0]:g} {point[1]:g} radius {radius_m:g} m"
    else:
        assert bbox is not None
        geom, src = bbox_geometry(*bbox), "bbox " + " ".join(f"{v:g}" for v in bbox)
    what = src if src != "geojson text" else "--geojson text"
    return Placement(geom, src, check_against_site(site, geom, what))


# --------------------------------------------------------------------------- edits


def _validated(site: Site) -> Site:
    """The edited site, validated as a site file is (the same rules, the same messages)."""
    return site_from_geojson(site.to_geojson(), f"site {site.id!r}")


def _kind(kind: str) -> str:
    if kind not in PART_KINDS:
        close = difflib.get_close_matches(kind, PART_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SiteError(f"part kind {kind!r} is not known{hint} (known: "
                        f"{', '.join(PART_KINDS)})")
    return kind


def _with_parts(site: Site, parts: list[Part]) -> Site:
    return _validated(replace(site, parts=tuple(parts)))


def place_part(site: Site, name: str, geom: BaseGeometry) -> Site:
    """``site`` with part ``name`` at ``geom`` (its line width or point radius dropped: a
    placed part is the polygon given)."""
    site.part(name)  # names the known parts when there is none such
    parts = []
    for p in site.parts:
        if p.name == name:
            props = {k: v for k, v in p.properties.items() if k not in ("width_m", "radius_m")}
            p = Part(p.name, p.kind, geom, props)
        parts.append(p)
    return _with_parts(site, parts)


def rename_part(site: Site, old: str, new: str) -> Site:
    site.part(old)
    _parse_name(new, f"new part name for {old!r}", "name")
    if any(p.name == new for p in site.parts):
        raise SiteError(f"site {site.id!r} already has a part {new!r}")
    return _with_parts(site, [replace(p, name=new) if p.name == old else p
                              for p in site.parts])


def set_part_kind(site: Site, name: str, kind: str) -> Site:
    site.part(name)
    _kind(kind)
    return _with_parts(site, [replace(p, kind=kind) if p.name == name else p
                              for p in site.parts])


def add_part(site: Site, name: str, kind: str, geom: BaseGeometry | None = None,
             label: str | None = None) -> Site:
    _parse_name(name, "new part", "name")
    _kind(kind)
    if any(p.name == name for p in site.parts):
        raise SiteError(f"site {site.id!r} already has a part {name!r} (use `site place` to "
                        "move it)")
    props = {"label": label} if label else {}
    return _with_parts(site, [*site.parts, Part(name, kind, geom, props)])


def remove_part(site: Site, name: str) -> Site:
    site.part(name)
    return _with_parts(site, [p for p in site.parts if p.name != name])


@dataclass(frozen=True)
class PartEdit:
    """One part of a whole new layout (the web view's parts editor): ``was`` is the name it
    had (None: a new part); ``geometry`` a GeoJSON Polygon or MultiPolygon mapping in
    lon/lat, or None for a part not placed."""

    name: str
    kind: str
    geometry: dict | None = None
    was: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Layout:
    """What :func:`edit_layout` made: the new site, the renames (old -> new, so each part's
    history follows it) and warnings (parts mostly outside the outline...)."""

    site: Site
    renamed: dict[str, str]
    removed: tuple[str, ...]
    warnings: tuple[str, ...]


def _same(given: object, geom: BaseGeometry) -> bool:
    from shapely.geometry import shape

    try:
        return bool(shape(given).equals_exact(geom, 1e-9))
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.ShapelyError):
        return False


def edit_layout(site: Site, edits: list[PartEdit]) -> Layout:
    """``site`` with exactly the parts in ``edits``, in that order: each existing part
    (``was``) keeps its other properties; a part of ``site`` no edit names is removed.
    Checked whole (names, kinds, geometry against the site) before anything is returned, so
    a refused layout changes nothing."""
    old = {p.name: p for p in site.parts}
    seen_was: set[str] = set()
    names: set[str] = set()
    parts: list[Part] = []
    renamed: dict[str, str] = {}
    warnings: list[str] = []
    for i, e in enumerate(edits):
        what = f"part {i + 1} ({e.name!r})"
        _parse_name(e.name, what, "name")
        if e.name in names:
            raise SiteError(f"{what}: two parts are named {e.name!r}")
        names.add(e.name)
        _kind(e.kind)
        props: dict = {}
        if e.was is not None:
            if e.was not in old:
                raise SiteError(f"{what}: site {site.id!r} has no part {e.was!r} to edit")
            if e.was in seen_was:
                raise SiteError(f"{what}: part {e.was!r} is edited twice")
            seen_was.add(e.was)
            props = {k: v for k, v in old[e.was].properties.items()
                     if k not in ("width_m", "radius_m")}
            if e.was != e.name:
                renamed[e.was] = e.name
        if e.label is not None:
            if e.label.strip():
                props["label"] = e.label.strip()
            else:
                props.pop("label", None)
        geom = None
        before = old[e.was] if e.was is not None else None
        if before is not None and before.geometry is not None and e.geometry is not None \
                and _same(e.geometry, before.geometry):
            # Unmoved: kept as it was (a line or point part keeps its width or radius).
            props = {**props, **{k: v for k, v in before.properties.items()
                                 if k in ("width_m", "radius_m")}}
            geom = before.geometry
        elif e.geometry is not None:
            if not isinstance(e.geometry, dict):
                raise SiteError(f"{what}: its geometry is not a GeoJSON object")
            geom = _parse_geometry(e.geometry, what, _POLYGONAL)
            if geom is None or geom.is_empty:
                raise SiteError(f"{what}: its geometry is empty")
            warnings += check_against_site(site, geom, what)
        parts.append(Part(e.name, e.kind, geom, props))
    clash = set(renamed.values()) & (set(old) - set(renamed))
    if clash - names:
        raise SiteError(f"part name(s) {', '.join(sorted(clash))} already taken")
    removed = tuple(n for n in old if n not in seen_was)
    new = _with_parts(site, parts)
    return Layout(new, renamed, removed, tuple(warnings))


__all__ = ["MAX_RADIUS_M", "MIN_INSIDE_SHARE", "Layout", "PartEdit", "Placement", "add_part",
           "bbox_geometry", "check_against_site", "edit_layout", "geojson_geometry",
           "metres_area", "place_part", "placement", "point_geometry", "remove_part",
           "rename_part", "set_part_kind", "wkt_geometry"]
