"""Sites and their named parts: the site file format, validation and the built-in catalogue.

A site file is a GeoJSON FeatureCollection (RFC 7946: longitude, latitude, WGS 84) holding

* exactly one feature whose ``properties.role`` is ``"site"``: the site boundary (Polygon or
  MultiPolygon) and the site's own properties (``id``, ``name``, ``site_type``, ...);
* any number of part features (``properties.role`` is ``"part"`` or absent), each with a
  unique ``name``, a ``kind`` from :data:`PART_KINDS` and free properties.  A part whose
  position is not known has ``"geometry": null`` and is reported as *unplaced*: sitewatch
  never guesses where it is.  Parts may be Polygons, MultiPolygons, LineStrings (a rail line;
  ``width_m`` gives its width, default 10 m) or Points (``radius_m``, default 25 m).

Validation errors name the file, the feature (index and name) and the field that is wrong.

Examples
--------
>>> site = builtin_site("sohae")
>>> site.id, len(site.parts) > 5, site.placed_parts()
('sohae', True, [])
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from sitewatch.errors import SiteError

#: Kinds of site parts.  The launch-site vocabulary follows what analysts name in reports.
PART_KINDS: dict[str, str] = {
    "launch_pad": "Launch pad (concrete apron around the tower)",
    "gantry_tower": "Gantry / umbilical tower",
    "transfer_structure": "Rail-mounted transfer / assembly structure",
    "fuel_storage": "Fuel and oxidizer storage bunkers",
    "engine_test_stand": "Rocket engine test stand",
    "assembly_building": "Horizontal assembly / processing building",
    "rail_terminal": "Covered rail station or terminal",
    "rail_line": "Railway line or spur",
    "road": "Road",
    "command_center": "Command and control centre",
    "observation_building": "VIP / observation building",
    "support_area": "Construction or support compound",
    "storage_area": "Open storage area",
    "radar": "Radar or tracking station",
    "helipad": "Helipad",
    "other": "Any other part",
}

#: Kinds of sites sitewatch knows indicators for (others are accepted as free text).
SITE_TYPES = ("launch_site", "engine_test_site", "missile_base", "facility")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DEFAULT_LINE_WIDTH_M = 10.0
_DEFAULT_POINT_RADIUS_M = 25.0


@dataclass(frozen=True)
class Part:
    """A named part of a site.  ``geometry`` is lon/lat (WGS 84) or ``None`` when unplaced."""

    name: str
    kind: str
    geometry: BaseGeometry | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def placed(self) -> bool:
        """True when the part's position is known."""
        return self.geometry is not None

    @property
    def label(self) -> str:
        """A human-readable label (``properties.label`` or the name)."""
        return str(self.properties.get("label") or self.name)

    def footprint(self, crs: Any) -> BaseGeometry | None:
        """The part's area in a projected ``crs`` (metres): lines and points are buffered.

        Returns ``None`` for an unplaced part.
        """
        if self.geometry is None:
            return None
        from sitewatch.imagery.geo import (
            to_crs,  # local: keeps this module light for plain validation
        )

        geom = to_crs(self.geometry, "EPSG:4326", crs)
        if geom.geom_type in ("LineString", "MultiLineString"):
            return geom.buffer(float(self.properties.get("width_m", _DEFAULT_LINE_WIDTH_M)) / 2)
        if geom.geom_type in ("Point", "MultiPoint"):
            return geom.buffer(float(self.properties.get("radius_m", _DEFAULT_POINT_RADIUS_M)))
        return geom


@dataclass(frozen=True)
class Site:
    """A watched site: its boundary (lon/lat), its parts and free properties."""

    id: str
    name: str
    boundary: BaseGeometry
    parts: tuple[Part, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def site_type(self) -> str:
        return str(self.properties.get("site_type", "facility"))

    @property
    def simulated(self) -> bool:
        """True for sites that exist only in sitewatch's simulator."""
        return bool(self.properties.get("simulated", False))

    @property
    def center(self) -> tuple[float, float]:
        """(lon, lat) of the boundary's representative point."""
        c = self.boundary.centroid
        return (c.x, c.y)

    @cached_property
    def _parts_by_name(self) -> dict[str, Part]:
        return {p.name: p for p in self.parts}

    def part(self, name: str) -> Part:
        """The part called ``name`` (a dict lookup: callers look up every part of sites with
        tens of thousands); :class:`SiteError` names the known parts otherwise."""
        found = self._parts_by_name.get(name)
        if found is not None:
            return found
        names = [p.name for p in self.parts]
        known = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50
                                         else "") if names else "none"
        raise SiteError(f"site {self.id!r} has no part {name!r} (parts: {known})")

    def placed_parts(self) -> list[Part]:
        return [p for p in self.parts if p.placed]

    def unplaced_parts(self) -> list[Part]:
        return [p for p in self.parts if not p.placed]

    def to_geojson(self) -> dict[str, Any]:
        """The site as an RFC 7946 FeatureCollection (the site file format)."""
        site_props = {"role": "site", "id": self.id, "name": self.name, **dict(self.properties)}
        features = [
            {"type": "Feature", "geometry": mapping(self.boundary), "properties": site_props}
        ]
        for p in self.parts:
            props = {"role": "part", "name": p.name, "kind": p.kind, **dict(p.properties)}
            geom = mapping(p.geometry) if p.geometry is not None else None
            features.append({"type": "Feature", "geometry": geom, "properties": props})
        return {"type": "FeatureCollection", "features": plain_json(features)}

    def dumps(self) -> str:
        """The site file as text (stable key order, 2-space indent)."""
        return json.dumps(self.to_geojson(), indent=2, ensure_ascii=False) + "\n"


def plain_json(obj: Any) -> Any:
    """Tuples (as shapely's ``mapping`` returns) to lists, recursively, for stable JSON."""
    if isinstance(obj, dict):
        return {k: plain_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain_json(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- validation


def _where(source: str, index: int | None = None, name: str | None = None) -> str:
    if index is None:
        return source
    who = f"feature {index}"
    if name:
        who += f" ({name!r})"
    return f"{source}: {who}"


def _number(c: Any) -> bool:
    return type(c) in (int, float)  # not bool, which is an int to Python


def _fast_positions(coords: list[Any]) -> bool:
    """True when ``coords`` is a list of plain in-range [lon, lat] / [lon, lat, z] positions
    (the common case, checked in one loop; anything else takes the slow path and its
    message)."""
    for c in coords:
        if type(c) is not list or not 2 <= len(c) <= 3:
            return False
        lon, lat = c[0], c[1]
        if type(lon) is not float and type(lon) is not int:
            return False
        if type(lat) is not float and type(lat) is not int:
            return False
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):  # NaN fails too
            return False
        if len(c) == 3 and type(c[2]) is not float and type(c[2]) is not int:
            return False
    return True


def _check_positions(coords: Any, where: str, depth: int = 0) -> None:
    """Each position is [lon, lat(, z)] with lon in [-180, 180] and lat in [-90, 90]."""
    if depth > 6:
        raise SiteError(f"{where}: field 'geometry.coordinates' is nested too deeply")
    if type(coords) is list and coords and type(coords[0]) is list and coords[0] \
            and type(coords[0][0]) is not list and _fast_positions(coords):
        return
    if isinstance(coords, list | tuple) and coords and not isinstance(coords[0], list | tuple):
        if len(coords) < 2 or len(coords) > 3 or not all(_number(c) for c in coords):
            raise SiteError(
                f"{where}: field 'geometry.coordinates': bad position {str(coords)[:80]} "
                "(expected [longitude, latitude] numbers)"
            )
        try:
            lon, lat = float(coords[0]), float(coords[1])
        except OverflowError:
            raise SiteError(f"{where}: field 'geometry.coordinates': number too large") from None
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise SiteError(f"{where}: field 'geometry.coordinates': non-finite {coords!r}")
        if abs(lat) > 90 or abs(lon) > 180:
            hint = (
                " (RFC 7946 order is [longitude, latitude]: are they swapped?)"
                if abs(lat) > 90 and abs(lon) <= 90
                else " (coordinates must be WGS 84 degrees, not projected metres)"
            )
            raise SiteError(
                f"{where}: field 'geometry.coordinates': position {list(coords)!r} is out of "
                f"range{hint}"
            )
        return
    if not isinstance(coords, list | tuple):
        raise SiteError(f"{where}: field 'geometry.coordinates' is not an array")
    for c in coords:
        _check_positions(c, where, depth + 1)


def _check_ring(ring: Any, where: str, which: str) -> None:
    """A GeoJSON linear ring: at least 4 positions, the last the same as the first (RFC 7946
    3.1.6).  shapely would close an open ring silently; an open ring is usually a truncated
    or hand-edited file, so it is refused rather than guessed at."""
    if not isinstance(ring, list) or len(ring) < 4:
        n = len(ring) if isinstance(ring, list) else 0
        raise SiteError(f"{where}: field 'geometry': the {which} has {n} position(s); a "
                        "polygon ring needs at least 4 (3 corners and the first again)")
    if list(ring[0]) != list(ring[-1]):
        raise SiteError(f"{where}: field 'geometry': the {which} is not closed (its last "
                        f"position {list(ring[-1])!r} differs from its first "
                        f"{list(ring[0])!r})")


def _parse_geometry(raw: Any, where: str, allowed: Iterable[str]) -> BaseGeometry | None:
    if raw is None:
        return None
    allowed = tuple(allowed)
    if not isinstance(raw, Mapping):
        raise SiteError(f"{where}: field 'geometry' must be a GeoJSON geometry object or null")
    gtype = raw.get("type")
    if gtype not in allowed:
        raise SiteError(
            f"{where}: field 'geometry.type' is {gtype!r}; expected one of {', '.join(allowed)}"
        )
    if "coordinates" not in raw:
        raise SiteError(f"{where}: field 'geometry.coordinates' is missing")
    _check_positions(raw["coordinates"], where)
    if gtype in ("Polygon", "MultiPolygon"):
        polys = [raw["coordinates"]] if gtype == "Polygon" else raw["coordinates"]
        for poly in polys if isinstance(polys, list) else ():
            for k, ring in enumerate(poly if isinstance(poly, list) else ()):
                _check_ring(ring, where, "exterior ring" if k == 0 else f"hole {k}")
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several types for malformed rings
        raise SiteError(f"{where}: field 'geometry' is malformed: {exc}") from None
    if geom.is_empty:
        raise SiteError(f"{where}: field 'geometry' is empty")
    if not geom.is_valid:
        raise SiteError(f"{where}: field 'geometry' is invalid: {explain_validity(geom)}")
    return geom


def _parse_name(value: Any, where: str, field_name: str) -> str:
    # fullmatch: ``$`` would let a trailing newline through ("pad\n"), and site ids and part
    # names become file names (sitewatch.fileio's safe-name rule, of which this is a subset).
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "..."
        raise SiteError(
            f"{where}: field {field_name!r} is {shown!r}; use 1-64 lower-case letters, "
            "digits, '_' or '-', starting with a letter or digit (no spaces, newlines or "
            "control characters)"
        )
    return value


def site_from_geojson(data: Any, source: str = "<site>") -> Site:
    """Validate a parsed site file and build a :class:`Site`.

    Raises :class:`SiteError` naming ``source``, the feature and the field at fault.
    """
    if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection":
        raise SiteError(f"{source}: a site file must be a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise SiteError(f"{source}: field 'features' must be a non-empty array")

    site_feature: tuple[int, Mapping[str, Any]] | None = None
    part_features: list[tuple[int, Mapping[str, Any]]] = []
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            raise SiteError(f"{_where(source, i)}: not a GeoJSON Feature")
        props = feat.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, Mapping):
            raise SiteError(f"{_where(source, i)}: field 'properties' must be an object")
        role = props.get("role", "part")
        if role == "site":
            if site_feature is not None:
                raise SiteError(
                    f"{_where(source, i)}: a second feature with role 'site' (the first is "
                    f"feature {site_feature[0]}); a site file holds exactly one boundary"
                )
            site_feature = (i, feat)
        elif role == "part":
            part_features.append((i, feat))
        else:
            raise SiteError(
                f"{_where(source, i)}: field 'properties.role' is {role!r}; expected 'site' "
                "or 'part'"
            )
    if site_feature is None:
        raise SiteError(
            f"{source}: no feature with properties.role = 'site' (the site boundary)"
        )

    i, feat = site_feature
    props = dict(feat.get("properties") or {})
    where = _where(source, i, props.get("id"))
    site_id = _parse_name(props.pop("id", None), where, "properties.id")
    name = props.pop("name", site_id)
    if not isinstance(name, str) or not name.strip():
        raise SiteError(f"{where}: field 'properties.name' must be a non-empty string")
    props.pop("role", None)
    if feat.get("geometry") is None:
        raise SiteError(f"{where}: field 'geometry': the site boundary is required")
    boundary = _parse_geometry(feat.get("geometry"), where, ("Polygon", "MultiPolygon"))
    assert boundary is not None
    lon0, _, lon1, _ = boundary.bounds
    if lon1 - lon0 > 180:
        raise SiteError(
            f"{where}: field 'geometry' spans {lon1 - lon0:.0f} degrees of longitude: sites "
            "that cross the antimeridian (180 degrees) are not supported yet"
        )

    parts: list[Part] = []
    seen: dict[str, int] = {}
    for i, feat in part_features:
        pprops = dict(feat.get("properties") or {})
        where = _where(source, i, pprops.get("name"))
        pname = _parse_name(pprops.pop("name", None), where, "properties.name")
        if pname in seen:
            raise SiteError(
                f"{where}: duplicate part name {pname!r} (also feature {seen[pname]})"
            )
        seen[pname] = i
        kind = pprops.pop("kind", None)
        if kind not in PART_KINDS:
            close = difflib.get_close_matches(str(kind), PART_KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SiteError(
                f"{where}: field 'properties.kind' is {kind!r}, not a known part kind{hint} "
                f"(known: {', '.join(PART_KINDS)})"
            )
        pprops.pop("role", None)
        geom = _parse_geometry(
            feat.get("geometry"),
            where,
            ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint"),
        )
        for key in ("width_m", "radius_m"):
            if key in pprops and not (_number(pprops[key]) and 0 < pprops[key] < 1e5):
                raise SiteError(
                    f"{where}: field 'properties.{key}' is {pprops[key]!r}; expected a "
                    "positive number of metres"
                )
        if geom is not None and not geom.intersects(boundary):
            raise SiteError(
                f"{where}: field 'geometry' lies wholly outside the site boundary (are the "
                "coordinates in [longitude, latitude] order, like the boundary's?)"
            )
        parts.append(Part(pname, kind, geom, pprops))

    return Site(site_id, name.strip(), boundary, tuple(parts), props)


def loads_site(text: str, source: str = "<site>") -> Site:
    """Parse and validate site-file text."""
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise SiteError(f"{source}: not a site file: its JSON is nested more than "
                        f"{MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SiteError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise SiteError(f"{source}: not a site file: its JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise SiteError(f"{source}: not a site file: {str(exc).splitlines()[0]}") from None
    return site_from_geojson(data, source)


#: A site file's JSON is at most this deep (a MultiPolygon's positions are 7 levels down in
#: the file); deeper files are refused before anything recurses through them.
MAX_JSON_DEPTH = 64


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth(text: str) -> int:
    """How deep JSON ``text`` nests arrays and objects, from its brackets outside strings
    (linear, no recursion; malformed text is left to the parser)."""
    steps = (1 if b in "[{" else -1 for b in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)))
    return max(itertools.accumulate(steps), default=0)


def load_site(path: str | Path) -> Site:
    """Read and validate a site file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteError(f"{path}: no such site file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteError(f"{path}: cannot read site file: {exc}") from None
    return loads_site(text, str(path))


# --------------------------------------------------------------------------- catalogue


def builtin_site_ids() -> list[str]:
    """Ids of the sites shipped with sitewatch."""
    files = resources.files("sitewatch.sites.builtin").iterdir()
    return sorted(f.name.removesuffix(".geojson") for f in files if f.name.endswith(".geojson"))


def builtin_site(site_id: str) -> Site:
    """A site from the built-in catalogue (``sohae``, ``sohae-sim``...)."""
    ref = resources.files("sitewatch.sites.builtin") / f"{site_id}.geojson"
    if not _ID_RE.fullmatch(site_id) or not ref.is_file():  # never a path ("../x")
        raise SiteError(
            f"no built-in site {site_id!r} (built-in: {', '.join(builtin_site_ids())})"
        )
    return loads_site(ref.read_text(encoding="utf-8"), f"built-in site {site_id!r}")


#: Part templates per site type: names and kinds, unplaced until a user places them.
TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "launch_site": [
        ("launch_pad", "launch_pad"),
        ("gantry_tower", "gantry_tower"),
        ("transfer_structure", "transfer_structure"),
        ("fuel_storage", "fuel_storage"),
        ("assembly_building", "assembly_building"),
        ("engine_test_stand", "engine_test_stand"),
        ("rail_terminal", "rail_terminal"),
        ("rail_line", "rail_line"),
        ("command_center", "command_center"),
        ("support_area", "support_area"),
    ],
    "engine_test_site": [
        ("engine_test_stand", "engine_test_stand"),
        ("fuel_storage", "fuel_storage"),
        ("support_area", "support_area"),
    ],
}


def square_boundary(lon: float, lat: float, half_size_m: float) -> BaseGeometry:
    """A lon/lat polygon of a square ``2 * half_size_m`` wide centred on (lon, lat)."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise SiteError(f"centre ({lon}, {lat}) is not a WGS 84 longitude, latitude")
    if not 0 < half_size_m <= 100_000:
        raise SiteError(f"site size must be between 0 and 200 km, got {2 * half_size_m:g} m")
    from sitewatch.imagery.geo import local_utm_crs, to_crs

    utm = local_utm_crs(lon, lat)
    c = to_crs(shapely.Point(lon, lat), "EPSG:4326", utm)
    sq = box(c.x - half_size_m, c.y - half_size_m, c.x + half_size_m, c.y + half_size_m)
    out = shapely.set_precision(to_crs(sq, utm, "EPSG:4326"), 1e-7)
    if out.bounds[2] - out.bounds[0] > 180:
        raise SiteError(f"a site around ({lon}, {lat}) would cross the antimeridian: not "
                        "supported yet")
    return out


def new_site(
    site_id: str,
    lon: float,
    lat: float,
    *,
    half_size_m: float = 1500.0,
    name: str | None = None,
    site_type: str = "launch_site",
) -> Site:
    """A new site around (lon, lat) with its type's part template, every part unplaced."""
    _parse_name(site_id, "site", "id")
    parts = tuple(
        Part(n, k, None, {"label": PART_KINDS[k]}) for n, k in TEMPLATES.get(site_type, [])
    )
    props = {"site_type": site_type}
    return Site(site_id, name or site_id, square_boundary(lon, lat, half_size_m), parts, props)


def bare_site(site_id: str, boundary: BaseGeometry, note: str) -> Site:
    """A site with a boundary and no parts, e.g. made from the footprint of ingested scenes."""
    _parse_name(site_id, "site", "id")
    return Site(site_id, site_id, boundary, (), {"site_type": "facility", "note": note})

def with_properties(site: Site, *, site_type: str | None = None, name: str | None = None
                    ) -> Site:
    """``site`` with another type and/or name (None: kept); the type is checked against
    :data:`SITE_TYPES`, the name must be printable text."""
    props = dict(site.properties)
    if site_type is not None:
        if site_type not in SITE_TYPES:
            raise SiteError(f"site type {site_type!r} is not one of {', '.join(SITE_TYPES)}")
        props["site_type"] = site_type
    new_name = site.name
    if name is not None:
        new_name = " ".join(name.split())
        if not new_name or len(new_name) > 200 or not new_name.isprintable():
            raise SiteError(f"site {site.id!r}: name {name!r} must be 1-200 printable "
                            "characters")
    return replace(site, name=new_name, properties=props)


__all__ = [
    "MAX_JSON_DEPTH",
    "PART_KINDS",
    "SITE_TYPES",
    "TEMPLATES",
    "Part",
    "Site",
    "bare_site",
    "builtin_site",
    "builtin_site_ids",
    "load_site",
    "loads_site",
    "new_site",
    "plain_json",
    "site_from_geojson",
    "square_boundary",
    "with_properties",
]
