"""Sentinel-1 scenes: polarisations, orbit direction, relative orbit and the units of the data.

The watch compares a SAR scene only with scenes of the same relative orbit and direction
(the same viewing geometry: other orbits see the site from another side and angle, and their
backscatter differs for that reason alone), so every Sentinel-1 scene records
``properties["polarisations"]`` (``["VV", "VH"]``), ``properties["orbit_direction"]``
(``ascending`` / ``descending``) and ``properties["relative_orbit"]`` (an int), the same keys
the STAC sources set from ``sar:polarizations``, ``sat:orbit_state`` and
``sat:relative_orbit``.  Where they come from, best first:

* a ``manifest.safe`` beside the files (a ``.SAFE`` folder): ``s1:pass``,
  ``safe:relativeOrbitNumber``, ``safe:orbitNumber``, ``safe:startTime``;
* raster tags (``ORBIT_DIRECTION``/``PASS``/``ORBIT_STATE``, ``RELATIVE_ORBIT``/``TRACK``);
* the absolute orbit in the product name: relative orbit = (absolute - 73) mod 175 + 1 for
  Sentinel-1A and (absolute - 27) mod 175 + 1 for Sentinel-1B (175 orbits in a 12-day
  repeat cycle; the offsets as used by ESA's and ASF's tools); no such offset is assumed for
  the later units, whose orbit must come from metadata;
* the direction, failing all else, from the local solar time of the acquisition:
  Sentinel-1 flies a dawn-dusk orbit (ascending node at 18:00 local solar time), so
  ascending passes are near 18:00 and descending ones near 06:00.  The scene's warnings say
  so when this was used.

``properties["sar_units"]`` says what the pixel values are, so that :func:`~sitewatch.
imagery.grid.load_scene` can hand every consumer linear power: ``power`` (RTC/GRD COGs of
gamma0 or sigma0), ``db`` (10 log10 of power: metadata says so, or a real share of the
values is negative, which power never is) or ``amplitude`` (the uint16 digital numbers of a
GRD ``.SAFE``, not calibrated: squared to a power proportional to sigma0; comparable within
one orbit, which is all the watch does).
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling

from sitewatch.errors import SceneError
from sitewatch.times import parse_time

log = logging.getLogger(__name__)

#: Orbits in Sentinel-1's 12-day repeat cycle.
ORBITS_PER_CYCLE = 175
#: Absolute-to-relative orbit offsets (relative = (absolute - offset) mod 175 + 1).
ORBIT_OFFSET = {"S1A": 73, "S1B": 27}
#: What a manifest.safe may weigh (real ones are 20-60 KB).
MAX_MANIFEST_BYTES = 4 * 2**20
#: SAR pixel units sitewatch tells apart.
UNITS = ("power", "db", "amplitude")
#: A sample with more than this share of negative values is in decibels.
NEGATIVE_SHARE_DB = 0.01
_DIRECTIONS = {"ascending": "ascending", "asc": "ascending", "a": "ascending",
               "descending": "descending", "desc": "descending", "d": "descending"}


def relative_orbit(platform: str | None, absolute: int | None) -> int | None:
    """The relative orbit (track) of Sentinel-1A/B absolute orbit ``absolute``; None for
    other units (no offset is assumed for them) or without an orbit.

    >>> relative_orbit("S1A", 46629), relative_orbit("S1B", 11036), relative_orbit("S1C", 5)
    (7, 160, None)
    """
    if absolute is None or platform is None:
        return None
    off = ORBIT_OFFSET.get(platform.upper())
    return None if off is None else (int(absolute) - off) % ORBITS_PER_CYCLE + 1


def direction_from_solar_time(acquired: datetime, lon: float) -> str:
    """``ascending`` or ``descending`` from the local solar time of a Sentinel-1 pass
    (dawn-dusk orbit: ascending near 18:00, descending near 06:00).

    >>> from datetime import datetime, UTC
    >>> direction_from_solar_time(datetime(2023, 1, 5, 9, 30, tzinfo=UTC), 125.0)
    'ascending'
    >>> direction_from_solar_time(datetime(2023, 1, 5, 21, 10, tzinfo=UTC), 125.0)
    'descending'
    """
    hours = (acquired.hour + acquired.minute / 60 + lon / 15.0) % 24
    return "ascending" if 12.0 <= hours < 24.0 else "descending"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def find_manifest(files: Iterable[Path]) -> Path | None:
    """The ``manifest.safe`` of a ``.SAFE`` folder holding ``files`` (beside them, or one
    folder up, as for ``measurement/*.tiff``)."""
    for f in files:
        for d in (f.parent, f.parent.parent):
            cand = d / "manifest.safe"
            if cand.is_file():
                return cand
    return None


def read_manifest(path: Path) -> dict[str, Any]:
    """What a Sentinel-1 ``manifest.safe`` says: ``platform`` (``S1A``), ``start``
    (datetime), ``absolute_orbit``, ``relative_orbit``, ``orbit_direction``,
    ``polarisations`` (as listed), ``product_type``; keys it lacks are absent.  Raises
    :class:`SceneError` naming the file when it is not XML."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise SceneError(f"{path}: {size:,} bytes, too large for a manifest.safe")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SceneError(f"{path}: not a readable manifest.safe ({exc})") from None
    out: dict[str, Any] = {}
    family = number = None
    pols: list[str] = []
    for el in root.iter():
        name, text = _local(el.tag), (el.text or "").strip()
        if not text:
            continue
        kind = el.get("type", "start")
        if name == "familyName" and text.upper().startswith("SENTINEL-1"):
            family = "S1"
        elif name == "number" and family and number is None:
            number = text.upper()
        elif name == "orbitNumber" and kind == "start":
            out["absolute_orbit"] = int(text)
        elif name == "relativeOrbitNumber" and kind == "start":
            out["relative_orbit"] = int(text)
        elif name == "pass":
            d = _DIRECTIONS.get(text.lower())
            if d:
                out["orbit_direction"] = d
        elif name == "startTime" and "start" not in out:
            out["start"] = parse_time(text, f"{path}: startTime", SceneError)
        elif name == "transmitterReceiverPolarisation" and text.upper() not in pols:
            pols.append(text.upper())
        elif name == "productType":
            out["product_type"] = text.upper()
    if family and number:
        out["platform"] = f"S1{number}"
    if pols:
        out["polarisations"] = pols
    return out


def _tag(tags: Mapping[str, str], *keys: str) -> str | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for k in keys:
        v = upper.get(k)
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def units_of(datasets: Sequence[Any], band_index: Sequence[tuple[Any, int]],
             product: str | None, names: Sequence[str]) -> tuple[str, str]:
    """The units of the SAR values (:data:`UNITS`) and why.  ``band_index``: (dataset,
    band) of each SAR band."""
    words = " ".join(names).lower()
    for ds, i in band_index:
        meta = [ds.tags().get("UNITS"), ds.tags(i).get("UNITS"), ds.tags(i).get("units"),
                (ds.units[i - 1] if ds.units else None), ds.descriptions[i - 1]]
        said = " ".join(str(m) for m in meta if m).lower()
        if re.search(r"\bdb\b|decibel", said):
            return "db", "its metadata says decibels"
        if "amplitude" in said:
            return "amplitude", "its metadata says amplitude"
    if re.search(r"(?:^|[_\-.])db(?:[_\-.]|$)", words):
        return "db", "its file name says dB"
    ds, i = band_index[0]
    h, w = max(1, min(ds.height, 256)), max(1, min(ds.width, 256))
    sample = ds.read(i, out_shape=(h, w), resampling=Resampling.nearest,
                     masked=True).astype(np.float64)
    vals = sample.compressed()
    vals = vals[np.isfinite(vals)]
    if vals.size and float(np.mean(vals < 0)) > NEGATIVE_SHARE_DB:
        return "db", (f"{np.mean(vals < 0):.0%} of its values are negative, which power "
                      "never is")
    if product in ("GRD", "GRDH", "GRDM", "GRDF", "GRD_") and ds.dtypes[i - 1].startswith("uint"):
        return "amplitude", ("GRD digital numbers (amplitude, not calibrated to sigma0): "
                             "compared within one relative orbit only")
    return "power", "linear power (gamma0/sigma0) assumed: no metadata says otherwise"


def describe(*, platform: str | None, acquired: datetime, absolute_orbit: int | None,
             band_names: Sequence[str], tags: Mapping[str, str],
             manifest: Mapping[str, Any] | None, lon: float | None,
             warn: list[str]) -> dict[str, Any]:
    """The Sentinel-1 properties of a scene (see the module docstring), adding to ``warn``
    what had to be derived."""
    man = dict(manifest or {})
    props: dict[str, Any] = {}
    pols = [b.upper() for b in band_names if b.lower() in ("vv", "vh", "hh", "hv")]
    props["polarisations"] = pols or list(man.get("polarisations") or [])
    plat = man.get("platform") or platform
    absolute = man.get("absolute_orbit") or absolute_orbit
    tag_orbit = _tag(tags, "RELATIVE_ORBIT", "RELATIVEORBITNUMBER", "TRACK",
                     "SAT_RELATIVE_ORBIT")
    rel: int | None = man.get("relative_orbit")
    if rel is None and tag_orbit is not None and tag_orbit.isdigit():
        rel = int(tag_orbit)
    if rel is None:
        rel = relative_orbit(plat, absolute)
        if rel is not None:
            warn.append(f"relative orbit {rel} from absolute orbit {absolute} ({plat})")
    if rel is not None and not 1 <= rel <= ORBITS_PER_CYCLE:
        raise SceneError(f"relative orbit {rel} is outside 1-{ORBITS_PER_CYCLE}")
    direction = man.get("orbit_direction")
    if direction is None:
        t = _tag(tags, "ORBIT_DIRECTION", "ORBITDIRECTION", "PASS", "ORBIT_STATE",
                 "SAT_ORBIT_STATE")
        direction = _DIRECTIONS.get(t.lower()) if t else None
    if direction is None and lon is not None and math.isfinite(lon):
        direction = direction_from_solar_time(acquired, lon)
        warn.append(f"orbit direction {direction} from the local solar time of the "
                    "acquisition (Sentinel-1's dawn-dusk orbit); no metadata gave it")
    if rel is None:
        warn.append("relative orbit unknown (no manifest.safe, tag or Sentinel-1A/B product "
                    "name): the watch compares it only with other scenes of unknown orbit")
    if direction:
        props["orbit_direction"] = direction
    if rel is not None:
        props["relative_orbit"] = int(rel)
    if absolute is not None:
        props["absolute_orbit"] = int(absolute)
    return props


def orbit_key(props: Mapping[str, Any]) -> str:
    """The series a SAR scene belongs to: ``rel047-asc``, ``rel047``, ``asc`` or
    ``orbit-unknown``.

    >>> orbit_key({"relative_orbit": 47, "orbit_direction": "ascending"})
    'rel047-asc'
    >>> orbit_key({})
    'orbit-unknown'
    """
    rel = props.get("relative_orbit")
    d = {"ascending": "asc", "descending": "desc"}.get(str(props.get("orbit_direction")))
    parts = ([f"rel{int(rel):03d}"] if isinstance(rel, int) and not isinstance(rel, bool)
             else []) + ([d] if d else [])
    return "-".join(parts) or "orbit-unknown"


__all__ = ["MAX_MANIFEST_BYTES", "NEGATIVE_SHARE_DB", "ORBITS_PER_CYCLE", "ORBIT_OFFSET",
           "UNITS", "describe", "direction_from_solar_time", "find_manifest", "orbit_key",
           "read_manifest", "relative_orbit", "units_of"]
