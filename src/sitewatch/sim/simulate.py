"""SIMULATED imagery: a synthetic multi-date, multiband image series of a launch site.

Everything this module writes is **simulated**.  It shows no real place and no real event:
it exists for sitewatch's demo, its tests and the evaluation of its change detection.  Every
file says so (GeoTIFF tag ``SIMULATED=true``, ``"simulated": true`` in the ground truth, the
README of the scenario folder).

:func:`simulate_scenario` renders a truth scene of a site (by default the built-in
``sohae-sim`` layout) on a fine 1 m grid, then, for every acquisition date, degrades it to a
3 m or a 10 m sensor grid by exact area averaging, with what real optical data has:

* hilly terrain (FFT fractal elevation, hill shading), mixed vegetation and bare soil whose
  greenness follows an annual cycle (low in winter, peak in July), roads and a railway;
* the site's parts drawn by kind (concrete pads, roofs, rails, a gantry tower and its shadow,
  bunkers, engine test stands with flame trenches);
* per-scene multiplicative band gains and offsets, an additive haze field strongest in blue,
  Gaussian sensor noise;
* clouds (smooth fractal fields, bright and white) and their shadows offset along the sun
  direction, marked in an Fmask band with slightly imperfect edges; many clear scenes, some
  partly cloudy and, when there are three or more 10 m dates, one almost fully cloudy;
* sub-pixel misregistration of the content (the georeference stays nominal), a random origin
  offset of the 3 m grids, and one 10 m scene cut by a swath edge;
* scripted events with dates derived from the span of the series (see :func:`_script_events`).

Output folder layout::

    out_dir/site.geojson                        the site (Site.dumps())
    out_dir/scenes/SIM10_YYYYMMDDTHHMMSS.tif    10 m scenes
    out_dir/scenes/SIM3_YYYYMMDDTHHMMSS.tif     3 m scenes
    out_dir/ground_truth.json                   events and per-scene parameters
    out_dir/README.txt                          a plain statement of what this is

Each GeoTIFF is uint16 with 5 bands: reflectance x 10000 in bands 1-4 (descriptions
``blue``, ``green``, ``red``, ``nir``; scale 1e-4; tag ``wavelength`` in micrometres) and
Fmask codes in band 5 (``fmask``: 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud,
255 fill).  Fill pixels hold 65535 (the dataset nodata) in the reflectance bands.  Output is
byte-for-byte deterministic for a given seed and set of arguments.

Examples
--------
>>> scenario = simulate_scenario("/tmp/sim", seed=1, n_dates_10m=6, n_dates_3m=2)  # doctest: +SKIP
>>> [e.kind for e in scenario.events]  # doctest: +SKIP
['construction', 'razing', 'transfer_structure_moved', 'vehicles_gathered', 'burn_scar']
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import scipy.fft
import shapely
from rasterio.crs import CRS as RioCRS
from rasterio.transform import Affine
from scipy import ndimage, sparse
from shapely import affinity
from shapely.geometry import Point, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from sitewatch import __version__
from sitewatch.errors import SiteError, SitewatchError
from sitewatch.imagery.geo import local_utm_crs, to_crs
from sitewatch.sites.site import Site, builtin_site, plain_json

logger = logging.getLogger(__name__)

__all__ = [
    "BAND_NAMES",
    "EVENT_KINDS",
    "FMASK_CLEAR",
    "FMASK_CLOUD",
    "FMASK_FILL",
    "FMASK_SHADOW",
    "FMASK_SNOW",
    "FMASK_WATER",
    "NODATA",
    "REQUIRED_PARTS",
    "WAVELENGTHS_UM",
    "Scenario",
    "SimEvent",
    "SimScene",
    "SimulationError",
    "load_ground_truth",
    "load_scenario",
    "simulate_scenario",
]

#: Band descriptions of the reflectance bands, in band order (bands 1-4).
BAND_NAMES: tuple[str, ...] = ("blue", "green", "red", "nir")
#: Centre wavelengths of bands 1-4 in micrometres.
WAVELENGTHS_UM: tuple[float, ...] = (0.490, 0.560, 0.665, 0.842)
#: Fmask codes of band 5.
FMASK_CLEAR, FMASK_WATER, FMASK_SHADOW, FMASK_SNOW, FMASK_CLOUD, FMASK_FILL = 0, 1, 2, 3, 4, 255
#: Nodata value of the reflectance bands (fill pixels).
NODATA = 65535
#: Parts the scripted events need, with the event that needs each.
REQUIRED_PARTS: dict[str, str] = {
    "construction_compound": "E1 construction",
    "support_compound": "E2 razing",
    "transfer_structure": "E3 transfer structure moved (its parked spot)",
    "pad_rail": "E3 transfer structure moved (the rail it runs on)",
    "gantry_tower": "E3 transfer structure moved (where it arrives)",
    "launch_pad": "E4 vehicles gathered",
    "vertical_engine_test_stand": "E5 burn scar",
}
#: Kinds of the scripted events.
EVENT_KINDS: tuple[str, ...] = (
    "construction",
    "razing",
    "transfer_structure_moved",
    "vehicles_gathered",
    "burn_scar",
)

_SENSORS: dict[str, dict[str, Any]] = {
    # key: resolution, file prefix, nominal UTC acquisition time, noise sigma, band response
    "sim-10m": {"res": 10.0, "prefix": "SIM10", "hour": 2.22, "jitter_min": 6.0,
                "noise": 0.005, "response": (1.0, 1.0, 1.0, 1.0)},
    "sim-3m": {"res": 3.0, "prefix": "SIM3", "hour": 2.3, "jitter_min": 40.0,
               "noise": 0.008, "response": (0.97, 1.0, 1.03, 0.96)},
}
_FINE = 1.0  # metres: resolution of the truth scene (1.5 m for sites over _FINE_MAX_M)
_FINE_MAX_M = 2600.0  # widest truth frame rendered at 1 m
_MAX_SITE_M = 6000.0  # widest site boundary the simulator accepts
_MARGIN = 250.0  # metres of imagery around the site boundary
_PAD = 40.0  # extra metres of truth beyond the margin (for shifts and grid offsets)
_SUN_AZ0, _SUN_EL0 = 155.0, 40.0  # fixed sun of the truth scene's shadows and hill shading
_SHADE = 0.45  # reflectance factor in shadows
_GANTRY_SIZE = 12.0  # metres: side of the tower structure inside the gantry_tower part

# Reflectance spectra (blue, green, red, nir).
_SPECTRA: dict[str, tuple[float, float, float, float]] = {
    "soil": (0.085, 0.125, 0.165, 0.225),
    "veg_dormant": (0.050, 0.070, 0.090, 0.190),
    "veg_peak": (0.030, 0.075, 0.040, 0.400),
    "conifer": (0.030, 0.050, 0.035, 0.230),
    "water": (0.060, 0.060, 0.040, 0.020),
    "concrete": (0.260, 0.290, 0.310, 0.330),
    "asphalt": (0.100, 0.110, 0.120, 0.140),
    "gravel": (0.170, 0.200, 0.230, 0.270),
    "ballast": (0.070, 0.080, 0.090, 0.110),
    "roof_gray": (0.300, 0.310, 0.320, 0.340),
    "roof_blue": (0.220, 0.180, 0.120, 0.200),
    "roof_green": (0.070, 0.120, 0.080, 0.140),
    "roof_red": (0.090, 0.100, 0.180, 0.220),
    "white": (0.450, 0.460, 0.460, 0.460),
    "trench": (0.040, 0.045, 0.050, 0.060),
    "fresh_soil": (0.130, 0.170, 0.220, 0.260),
    "rubble": (0.160, 0.180, 0.210, 0.250),
    "scorched": (0.030, 0.030, 0.035, 0.040),
    "vehicle_dark": (0.050, 0.070, 0.060, 0.130),
    "vehicle_bright": (0.400, 0.420, 0.420, 0.430),
}
# Materials of the static truth raster: 0 natural ground, 1 meadow (forced vegetation),
# then fixed spectra.
_NATURAL, _MEADOW = 0, 1
_MATERIALS: tuple[str, ...] = (
    "natural", "meadow", "water", "concrete", "asphalt", "gravel", "ballast", "roof_gray",
    "roof_blue", "roof_green", "roof_red", "white", "trench",
)
_MAT = {name: i for i, name in enumerate(_MATERIALS)}
_ROOFS_BY_KIND = {
    "assembly_building": "roof_gray",
    "rail_terminal": "roof_blue",
    "command_center": "roof_green",
    "observation_building": "roof_red",
}
_HEIGHTS_BY_KIND = {
    "assembly_building": 25.0,
    "rail_terminal": 12.0,
    "command_center": 10.0,
    "observation_building": 8.0,
    "radar": 15.0,
}
_FILE_RE = re.compile(r"^SIM(10|3)_\d{8}T\d{6}\.tif$")


class SimulationError(SitewatchError, ValueError):
    """The simulator cannot run with these arguments or cannot write where asked."""


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SimScene:
    """One simulated acquisition.

    Attributes
    ----------
    path : Path
        The GeoTIFF written.
    acquired : datetime
        Acquisition time, timezone-aware UTC.
    sensor : str
        ``"sim-10m"`` or ``"sim-3m"``.
    resolution : float
        Pixel size in metres.
    cloud_fraction : float
        Fraction (0..1) of the imaged (non-fill) part of the site boundary under cloud
        (cloud opacity of at least 0.3).
    shift_px : tuple of float
        ``(dy, dx)`` misregistration of the content in this sensor's pixels; ``+dy`` moves
        content south (down), ``+dx`` east (right).  The georeference stays nominal.
    """

    path: Path
    acquired: datetime
    sensor: str
    resolution: float
    cloud_fraction: float
    shift_px: tuple[float, float]


@dataclass(frozen=True)
class SimEvent:
    """A scripted change on the ground.

    Attributes
    ----------
    id : str
        ``"E1"``, ``"E2"``...
    kind : str
        One of :data:`EVENT_KINDS`.
    part : str
        The site part where it happens.
    start : date
        First date it is on the ground.
    end : date or None
        Last date it is on the ground; ``None`` when it persists.
    description : str
        What happens, in words.
    geometry : BaseGeometry
        Lon/lat (EPSG:4326) polygon(s) of the changed area (footprints; shadows excluded).
    parts : tuple of str
        Every part whose area the change touches.
    stages : tuple of (date, str)
        Dates where the look of the event changes while it is on the ground (the first is
        ``start``), e.g. a cleared plot becoming a roofed building.
    """

    id: str
    kind: str
    part: str
    start: date
    end: date | None
    description: str
    geometry: BaseGeometry
    parts: tuple[str, ...]
    stages: tuple[tuple[date, str], ...] = ()

    def on_ground(self, when: date | datetime) -> bool:
        """True when the event is visible on the ground at ``when``."""
        d = _as_date(when)
        return self.start <= d and (self.end is None or d <= self.end)

    def change_dates(self) -> tuple[date, ...]:
        """Dates where the ground changes: start, later stages and the day after ``end``."""
        dates = {self.start, *(d for d, _ in self.stages)}
        if self.end is not None:
            dates.add(self.end + timedelta(days=1))
        return tuple(sorted(dates))


@dataclass(frozen=True)
class Scenario:
    """A simulated scenario: where it was written, its scenes and its events."""

    out_dir: Path
    site: Site
    scenes: tuple[SimScene, ...]
    events: tuple[SimEvent, ...]
    ground_truth_path: Path
    seed: int = 0

    def events_between(
        self, t0: date | datetime, t1: date | datetime
    ) -> list[SimEvent]:
        """Events whose ground changes in ``(t0, t1]``.

        An event counts when its start, one of its later stages or the start of its
        disappearance (the day after ``end``) falls in the interval.  Datetimes are compared
        by their UTC date, so two scenes see a difference from an event exactly when the
        event is returned for the pair of their acquisition times.

        Parameters
        ----------
        t0, t1 : date or datetime
            The interval; ``t0`` excluded, ``t1`` included.

        Returns
        -------
        list of SimEvent
            In id order.
        """
        d0, d1 = _as_date(t0), _as_date(t1)
        return [e for e in self.events if any(d0 < c <= d1 for c in e.change_dates())]

    def scene(self, name: str) -> SimScene:
        """The scene whose file name is ``name``."""
        for s in self.scenes:
            if s.path.name == name:
                return s
        raise KeyError(name)


# --------------------------------------------------------------------------- small helpers


def _as_date(t: date | datetime) -> date:
    if isinstance(t, datetime):
        if t.tzinfo is not None:
            t = t.astimezone(UTC)
        return t.date()
    return t


def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float,
             fmin: float = 0.0) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian field with power spectrum ~ 1 / f**beta."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(nx).astype(np.float32)[None, :]
    amp = fy * fy + fx * fx + np.float32(fmin * fmin)
    amp[0, 0] = np.inf
    np.power(amp, np.float32(-beta / 4.0), out=amp)
    spec = np.empty(amp.shape, np.complex64)
    spec.real = rng.standard_normal(amp.shape, dtype=np.float32)
    spec.imag = rng.standard_normal(amp.shape, dtype=np.float32)
    spec *= amp
    del amp
    out = scipy.fft.irfft2(spec, s=(ny, nx), workers=1)
    del spec
    out = out.astype(np.float32, copy=False)
    out -= out.mean(dtype=np.float64)
    sd = float(out.std(dtype=np.float64))
    if sd > 0:
        out /= np.float32(sd)
    return out


def _upsample(field_lr: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a low-resolution field, cropped to ``shape``."""
    up = ndimage.zoom(field_lr, factor, order=1, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(up[: shape[0], : shape[1]], dtype=np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _season(d: date) -> float:
    """Greenness phase 0 (mid-January) .. 1 (mid-July)."""
    doy = d.timetuple().tm_yday
    s = 0.5 * (1.0 - math.cos(2.0 * math.pi * (doy - 20) / 365.25))
    return s**1.3


def _sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate sun (elevation, azimuth) in degrees; azimuth clockwise from north."""
    doy = when.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0 + lon / 15.0
    h = math.radians(15.0 * (hours - 12.0))
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(h)
    el = math.asin(max(-1.0, min(1.0, sin_el)))
    az = math.atan2(math.sin(h), math.cos(h) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    return math.degrees(el), (math.degrees(az) + 180.0) % 360.0


def _shadow(geom: BaseGeometry, height: float, az: float = _SUN_AZ0,
            el: float = _SUN_EL0) -> BaseGeometry:
    """The ground shadow of a prism of ``height`` metres standing on ``geom``."""
    length = height / math.tan(math.radians(el))
    a = math.radians(az + 180.0)
    moved = affinity.translate(geom, length * math.sin(a), length * math.cos(a))
    return shapely.union(geom, moved).convex_hull.difference(geom)


def _rect(cx: float, cy: float, w: float, h: float) -> Polygon:
    return box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _fan(apex: tuple[float, float], direction: float, radius: float,
         half_angle: float = 40.0, n: int = 24) -> Polygon:
    """A circular sector with its apex at ``apex`` opening towards ``direction`` (deg from N)."""
    pts = [apex]
    for a in np.linspace(direction - half_angle, direction + half_angle, n):
        r = math.radians(a)
        pts.append((apex[0] + radius * math.sin(r), apex[1] + radius * math.cos(r)))
    return Polygon(pts)


def _lonlat(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    return shapely.set_precision(to_crs(geom, crs, "EPSG:4326"), 1e-7)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the fine grid


class _Grid:
    """The fine truth grid (north-up, in the site's UTM CRS)."""

    def __init__(self, left: float, top: float, nx: int, ny: int, res: float):
        self.left, self.top, self.nx, self.ny, self.res = left, top, nx, ny, res
        self.transform = Affine(res, 0.0, left, 0.0, -res, top)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    def rasterize(self, shapes: Iterable[tuple[BaseGeometry, int]]) -> np.ndarray:
        items = [(mapping(g), v) for g, v in shapes if g is not None and not g.is_empty]
        if not items:
            return np.zeros(self.shape, np.uint8)
        return rasterio.features.rasterize(
            items, out_shape=self.shape, transform=self.transform, fill=0, dtype="uint8"
        )

    def window_mask(self, geom: BaseGeometry) -> tuple[slice, slice, np.ndarray] | None:
        """Row/column slices around ``geom`` and its boolean mask there (None when outside)."""
        if geom.is_empty:
            return None
        x0, y0, x1, y1 = geom.bounds
        c0 = max(0, math.floor((x0 - self.left) / self.res) - 1)
        c1 = min(self.nx, math.ceil((x1 - self.left) / self.res) + 1)
        r0 = max(0, math.floor((self.top - y1) / self.res) - 1)
        r1 = min(self.ny, math.ceil((self.top - y0) / self.res) + 1)
        if c1 <= c0 or r1 <= r0:
            return None
        tr = Affine(self.res, 0.0, self.left + c0 * self.res, 0.0, -self.res,
                    self.top - r0 * self.res)
        m = rasterio.features.rasterize(
            [(mapping(geom), 1)], out_shape=(r1 - r0, c1 - c0), transform=tr, fill=0,
            dtype="uint8",
        ).astype(bool)
        if not m.any():
            return None
        return slice(r0, r1), slice(c0, c1), m

    def centers(self, rs: slice, cs: slice) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (x row vector, y column vector) of pixel centres in a window."""
        xs = self.left + (np.arange(cs.start, cs.stop) + 0.5) * self.res
        ys = self.top - (np.arange(rs.start, rs.stop) + 0.5) * self.res
        return xs[None, :], ys[:, None]


def _area_weights(n_out: int, start: float, step: float, n_fine: int) -> sparse.csr_matrix:
    """Sparse (n_out, n_fine) matrix averaging fine cells over output cells.

    Output cell ``i`` covers fine coordinates ``[start + i*step, start + (i+1)*step]``
    (fine cell ``k`` covers ``[k, k+1]``); weights are the overlap lengths over ``step``.
    """
    a = start + step * np.arange(n_out, dtype=np.float64)
    b = a + step
    k0 = np.floor(a).astype(np.int64)
    m = math.ceil(step) + 2
    cols = k0[:, None] + np.arange(m)[None, :]
    w = np.minimum(b[:, None], cols + 1) - np.maximum(a[:, None], cols)
    w = np.clip(w, 0.0, None) / step
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    keep = w > 1e-12
    if cols[keep].min() < 0 or cols[keep].max() >= n_fine:
        raise AssertionError("sensor grid reaches beyond the truth grid")  # a bug, not input
    return sparse.csr_matrix(
        (w[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_out, n_fine)
    )


# --------------------------------------------------------------------------- events


@dataclass
class _Plan:
    """UTM geometry of what the events paint (private)."""

    e1_clearing: Polygon
    e1_building: Polygon
    e2_building: Polygon
    e3_parked: Polygon
    e3_arrival: Polygon
    e3_rail_strip: Polygon
    e4_slots: list[Polygon]
    e4_bright: list[bool]
    e4_area: Polygon
    e5_fan: Polygon
    e5_apex: tuple[float, float]
    e5_radius: float
    stand_layout: dict[str, Any]
    e1_roof_date: date


def _require_parts(site: Site) -> None:
    missing = []
    for name, why in REQUIRED_PARTS.items():
        try:
            p = site.part(name)
        except SiteError:
            missing.append(f"{name!r} (for {why})")
            continue
        if not p.placed:
            missing.append(f"{name!r} (unplaced; needed for {why})")
    if missing:
        raise SiteError(
            f"site {site.id!r} cannot be simulated: it lacks part(s) "
            + ", ".join(missing)
            + " that the scripted events use"
        )


def _stand_layout(fp: BaseGeometry, horizontal: bool) -> dict[str, Any]:
    """Concrete pad, stand structure, flame trench and exhaust direction of a test stand."""
    x0, y0, x1, y1 = fp.bounds
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if horizontal:  # exhaust to the east
        pad = box(x0 + 0.05 * w, cy - 0.25 * h, x0 + 0.45 * w, cy + 0.25 * h)
        pc = pad.centroid
        structure = _rect(pc.x, pc.y, 0.12 * min(w, h), 0.25 * h)
        trench = box(pc.x, cy - 3.5, x0 + 0.6 * w, cy + 3.5)
        apex, direction = (x0 + 0.6 * w, cy), 90.0
    else:  # vertical stand, flame trench exiting south
        pad = box(cx - 0.25 * w, y1 - 0.45 * h, cx + 0.25 * w, y1 - 0.05 * h)
        pc = pad.centroid
        structure = _rect(pc.x, pc.y, 0.15 * min(w, h), 0.15 * min(w, h))
        trench = box(cx - 4.0, y1 - 0.55 * h, cx + 4.0, pc.y)
        apex, direction = (cx, y1 - 0.55 * h), 180.0
    return {"pad": pad.intersection(fp), "structure": structure, "trench": trench,
            "apex": apex, "direction": direction}


def _script_events(site: Site, crs: Any, first: date, span_days: int,
                   rng: np.random.Generator) -> tuple[list[SimEvent], _Plan]:
    """The five scripted events, dated by fractions of the series span.

    E1 construction (clearing at 15 % of the span, roof at 40 %, persistent), E2 razing
    (85 %, persistent), E3 transfer structure at the tower (55 % to 72 %), E4 vehicles on
    the pad (50 % to 76 %), E5 burn scar (30 %, fading over 60 days).  Every start is at
    least one day after ``first``.
    """
    def at(frac: float) -> date:
        return first + timedelta(days=max(1, round(frac * span_days)))

    fp = {n: site.part(n).footprint(crs) for n in REQUIRED_PARTS}

    # E1: a 60 x 40 m building on a cleared 70 x 50 m plot in the construction compound.
    c = fp["construction_compound"].centroid
    e1_building = _rect(c.x, c.y, 60.0, 40.0)
    e1_clearing = _rect(c.x, c.y, 70.0, 50.0)
    e1_start = at(0.15)
    e1_roof = max(at(0.40), e1_start + timedelta(days=1))

    # E2: a 50 x 40 m building in the support compound, razed.
    c = fp["support_compound"].centroid
    e2_building = _rect(c.x, c.y, 50.0, 40.0)
    e2_start = at(0.85)

    # E3: the transfer structure rolls along the rail from its parked spot to the tower.
    parked = fp["transfer_structure"]
    pc, tc = parked.centroid, fp["gantry_tower"].centroid
    vx, vy = tc.x - pc.x, tc.y - pc.y
    dist = math.hypot(vx, vy) or 1.0
    ux, uy = vx / dist, vy / dist
    # Length of the structure along the move: its extent projected on the direction.
    pxs = np.asarray(parked.exterior.coords) if parked.geom_type == "Polygon" else np.asarray(
        parked.envelope.exterior.coords)
    proj = (pxs[:, 0] - pc.x) * ux + (pxs[:, 1] - pc.y) * uy
    length = float(proj.max() - proj.min())
    travel = dist - length / 2.0  # its leading edge reaches the tower's centre
    arrival = affinity.translate(parked, ux * travel, uy * travel)
    rail = fp["pad_rail"]
    rx0, ry0, rx1, ry1 = rail.bounds
    rail_width = max(4.0, min(rx1 - rx0, ry1 - ry0))
    strip = shapely.LineString(
        [(pc.x - ux * length, pc.y - uy * length), (pc.x + ux * length, pc.y + uy * length)]
    ).buffer(rail_width / 2.0, cap_style="flat").intersection(parked)
    e3_start, e3_end = at(0.55), at(0.72)
    if e3_end <= e3_start:
        e3_end = e3_start + timedelta(days=1)

    # E4: up to 20 vehicles (3 x 8 m) parked in rows on the south-west of the pad.
    px0, py0 = fp["launch_pad"].bounds[:2]
    slots, bright = [], []
    for row in range(4):
        for col in range(5):
            jx, jy = rng.uniform(-0.4, 0.4, 2)
            x = px0 + 8.0 + col * 4.5 + 1.5 + jx
            y = py0 + 8.0 + row * 10.0 + 4.0 + jy
            slots.append(_rect(x, y, 3.0, 8.0))
            bright.append(bool(rng.random() < 0.2))
    e4_area = box(px0 + 7.0, py0 + 7.0, px0 + 9.0 + 4 * 4.5 + 3.0, py0 + 9.0 + 4 * 10.0)
    e4_area = e4_area.intersection(fp["launch_pad"])
    e4_start, e4_end = at(0.50), at(0.76)
    if e4_end <= e4_start:
        e4_end = e4_start + timedelta(days=1)

    # E5: a fan of scorched ground below the vertical test stand's flame trench.
    layout = _stand_layout(fp["vertical_engine_test_stand"], horizontal=False)
    sy0, sy1 = fp["vertical_engine_test_stand"].bounds[1::2]
    radius = float(np.clip(0.55 * (sy1 - sy0), 40.0, 70.0))
    fan = _fan(layout["apex"], layout["direction"], radius, half_angle=42.0)
    e5_start = at(0.30)
    e5_end = e5_start + timedelta(days=60)

    plan = _Plan(e1_clearing, e1_building, e2_building, parked, arrival, strip, slots, bright,
                 e4_area, fan, layout["apex"], radius, layout, e1_roof)

    def touched(geom: BaseGeometry, main: str) -> tuple[str, ...]:
        names = [main]
        for p in site.placed_parts():
            if p.name == main:
                continue
            inter = p.footprint(crs).intersection(geom).area
            if inter > max(1.0, 0.001 * geom.area):
                names.append(p.name)
        return tuple(names)

    e3_geom = shapely.union(parked, arrival)
    events = [
        SimEvent(
            "E1", "construction", "construction_compound", e1_start, None,
            "SIMULATED: a 70 x 50 m plot in the construction compound is cleared to bare soil; "
            f"from {e1_roof.isoformat()} a new roofed building (60 x 40 m) stands on it.",
            _lonlat(e1_clearing, crs), touched(e1_clearing, "construction_compound"),
            ((e1_start, "plot cleared to bare soil"), (e1_roof, "roofed building stands")),
        ),
        SimEvent(
            "E2", "razing", "support_compound", e2_start, None,
            "SIMULATED: a 50 x 40 m building in the support compound is razed; rubble and bare "
            "soil remain.",
            _lonlat(e2_building, crs), touched(e2_building, "support_compound"),
            ((e2_start, "razed"),),
        ),
        SimEvent(
            "E3", "transfer_structure_moved", "transfer_structure", e3_start, e3_end,
            "SIMULATED: the rail-mounted transfer structure rolls along the pad rail from its "
            "parked spot to the gantry tower and later returns.",
            _lonlat(e3_geom, crs), touched(e3_geom, "transfer_structure"),
            ((e3_start, "at the gantry tower"),),
        ),
        SimEvent(
            "E4", "vehicles_gathered", "launch_pad", e4_start, e4_end,
            "SIMULATED: vehicles (3 x 8 m) gather in a growing cluster on the launch pad "
            "around the transfer structure's move, then leave.",
            _lonlat(e4_area, crs), touched(e4_area, "launch_pad"),
            ((e4_start, "first vehicles"),),
        ),
        SimEvent(
            "E5", "burn_scar", "vertical_engine_test_stand", e5_start, e5_end,
            "SIMULATED: an engine test scorches a fan of vegetation below the vertical test "
            "stand's flame trench (dark, low NIR); the scar fades over about two months.",
            _lonlat(fan, crs), touched(fan, "vertical_engine_test_stand"),
            ((e5_start, "fresh burn scar"),),
        ),
    ]
    return events, plan


# --------------------------------------------------------------------------- the truth scene


@dataclass
class _Truth:
    grid: _Grid
    a: np.ndarray  # (4, ny, nx) reflectance that does not follow the season
    g: np.ndarray  # (ny, nx) seasonal amplitude; reflectance = a + season * g * _VEG_DELTA
    water: np.ndarray  # (ny, nx) float32 0/1
    tex: np.ndarray  # (ny, nx) unit-variance texture


_VEG_DELTA = np.array(_SPECTRA["veg_peak"], np.float32) - np.array(_SPECTRA["veg_dormant"],
                                                                      np.float32)


def _roads(site: Site, crs: Any, frame: tuple[float, float, float, float],
           rng: np.random.Generator) -> list[BaseGeometry]:
    """Road centre lines: a spanning tree over the parts' gates plus an entry road."""
    hubs = [p for p in site.placed_parts()
            if p.kind in ("assembly_building", "rail_terminal", "support_area",
                          "engine_test_stand", "fuel_storage", "command_center",
                          "storage_area", "launch_pad", "observation_building", "radar")]
    centre = to_crs(site.boundary, "EPSG:4326", crs).centroid
    gates = []
    for p in hubs:
        fp = p.footprint(crs)
        gates.append(nearest_points(fp.exterior if fp.geom_type == "Polygon"
                                                else fp.boundary, centre)[0])
    lines: list[BaseGeometry] = []

    def wiggly(p0: Point, p1: Point) -> BaseGeometry:
        n = 12
        t = np.linspace(0.0, 1.0, n)
        dx, dy = p1.x - p0.x, p1.y - p0.y
        d = math.hypot(dx, dy) or 1.0
        amp = 0.06 * d * rng.uniform(-1.0, 1.0)
        off = amp * np.sin(np.pi * t)
        xs = p0.x + dx * t - dy / d * off
        ys = p0.y + dy * t + dx / d * off
        return shapely.LineString(np.column_stack([xs, ys]))

    if gates:
        # Prim's minimum spanning tree over the gates.
        done, todo = [0], list(range(1, len(gates)))
        while todo:
            best = min((gates[i].distance(gates[j]), i, j) for i in done for j in todo)
            _, i, j = best
            lines.append(wiggly(gates[i], gates[j]))
            done.append(j)
            todo.remove(j)
        south = min(range(len(gates)), key=lambda k: gates[k].y)
        x = gates[south].x + rng.uniform(-150.0, 150.0)
        lines.append(wiggly(Point(x, frame[1] - 10.0), gates[south]))
    # A second, through road across the frame.
    y = centre.y + rng.uniform(-300.0, 300.0)
    lines.append(wiggly(Point(frame[0] - 10.0, y), Point(frame[2] + 10.0,
                                                         y + rng.uniform(-200.0, 200.0))))
    return lines


def _render_truth(site: Site, crs: Any, grid: _Grid, plan: _Plan, seed: int) -> _Truth:
    """Render the static truth scene (everything but the events' changing objects)."""
    rng = np.random.default_rng([seed, 1])
    ny, nx = grid.shape
    frame = (grid.left, grid.top - ny * grid.res, grid.left + nx * grid.res, grid.top)
    boundary = to_crs(site.boundary, "EPSG:4326", crs)
    _, by0, bx1, by1 = boundary.bounds

    shapes: list[tuple[BaseGeometry, int]] = []
    shadows: list[BaseGeometry] = []
    # Water: a reservoir in the south-east margin.
    pond = Point(bx1 + 0.55 * _MARGIN, by0 + 0.3 * (by1 - by0)).buffer(1.0, quad_segs=32)
    pond = affinity.rotate(affinity.scale(pond, 70.0, 140.0), rng.uniform(-30.0, 30.0))
    shapes.append((pond, _MAT["water"]))
    # Roads and the railway to the rail terminal.
    for line in _roads(site, crs, frame, rng):
        shapes.append((line.buffer(3.5), _MAT["asphalt"]))
    parts = {p.name: p for p in site.placed_parts()}
    fps = {n: p.footprint(crs) for n, p in parts.items()}
    terminals = [n for n, p in parts.items() if p.kind == "rail_terminal"]
    for n in terminals:
        t = fps[n]
        tx0, ty0, tx1, ty1 = t.bounds
        tyc = (ty0 + ty1) / 2
        rail = shapely.LineString([(frame[0] - 20.0, tyc - 180.0), (tx0 - 200.0, tyc - 40.0),
                                   (tx0 - 60.0, tyc), (tx1 + 10.0, tyc)])
        shapes.append((rail.buffer(4.0), _MAT["ballast"]))
        asm = [m for m, p in parts.items() if p.kind == "assembly_building"]
        if asm:
            a_pt = nearest_points(fps[asm[0]], Point(tx1, tyc))[0]
            spur = shapely.LineString([(tx1, tyc), ((tx1 + a_pt.x) / 2, tyc),
                                       (a_pt.x, a_pt.y)])
            shapes.append((spur.buffer(4.0), _MAT["ballast"]))

    order = ["support_area", "storage_area", "road", "launch_pad", "fuel_storage",
             "engine_test_stand", "helipad", "rail_line", "transfer_structure",
             "assembly_building", "rail_terminal", "command_center", "observation_building",
             "radar", "other", "gantry_tower"]
    ranked = sorted(parts.values(),
                    key=lambda p: (order.index(p.kind) if p.kind in order else 99, p.name))
    for p in ranked:
        fp = fps[p.name]
        x0, y0, x1, y1 = fp.bounds
        w, h = x1 - x0, y1 - y0
        if p.kind == "support_area":
            ring = fp.difference(fp.buffer(-6.0))
            shapes.append((ring, _MAT["gravel"]))
            for cx, cy in ((x0 + 18, y0 + 18), (x1 - 18, y1 - 18), (x0 + 18, y1 - 18)):
                shed = _rect(cx, cy, 10.0, 15.0).intersection(fp)
                shapes.append((shed, _MAT["roof_red" if cx < x1 - 18 else "roof_blue"]))
                shadows.append(_shadow(shed, 5.0))
        elif p.kind in ("storage_area", "helipad"):
            shapes.append((fp, _MAT["gravel" if p.kind == "storage_area" else "concrete"]))
        elif p.kind == "road":
            shapes.append((fp, _MAT["asphalt"]))
        elif p.kind == "launch_pad":
            shapes.append((fp, _MAT["concrete"]))
        elif p.kind == "fuel_storage":
            shapes.append((fp, _MAT["gravel"]))
            for k in range(3):
                if h >= w:
                    b = _rect((x0 + x1) / 2, y0 + h * (k + 0.5) / 3, 0.6 * w, 0.18 * h)
                else:
                    b = _rect(x0 + w * (k + 0.5) / 3, (y0 + y1) / 2, 0.18 * w, 0.6 * h)
                shapes.append((b, _MAT["concrete"]))
                shadows.append(_shadow(b, 4.0))
        elif p.kind == "engine_test_stand":
            lay = (plan.stand_layout if p.name == "vertical_engine_test_stand"
                   else _stand_layout(fp, horizontal="horizontal" in p.name))
            shapes.append((lay["pad"], _MAT["concrete"]))
            shapes.append((lay["trench"], _MAT["trench"]))
            shapes.append((lay["structure"], _MAT["white"]))
            shadows.append(_shadow(lay["structure"], 30.0))
        elif p.kind == "rail_line":
            shapes.append((fp, _MAT["ballast"]))
        elif p.kind == "transfer_structure":
            # The structure itself is drawn per scene; its ground is a concrete apron + rail.
            shapes.append((fp, _MAT["concrete"]))
            if p.name == "transfer_structure":
                shapes.append((plan.e3_rail_strip, _MAT["ballast"]))
        elif p.kind == "gantry_tower":
            shapes.append((fp, _MAT["concrete"]))
            c = fp.centroid
            tower = _rect(c.x, c.y, _GANTRY_SIZE, _GANTRY_SIZE)
            shapes.append((tower, _MAT["white"]))
            shadows.append(_shadow(tower, 50.0))
        else:  # buildings and anything else: a roof with its shadow
            roof = _ROOFS_BY_KIND.get(p.kind, "roof_gray")
            shapes.append((fp, _MAT[roof]))
            shadows.append(_shadow(fp, _HEIGHTS_BY_KIND.get(p.kind, 8.0)))
    # Ground under the events' objects: meadow before E1's clearing and E5's scar, a gravel
    # yard under E2's building.
    # The meadows are rounded and larger than the events' areas, so as not to outline them.
    compound = fps.get("construction_compound")
    e1_meadow = plan.e1_clearing.buffer(15.0)
    if compound is not None:
        e1_meadow = e1_meadow.intersection(compound.buffer(-6.0)).union(plan.e1_clearing)
    shapes.append((e1_meadow, _MEADOW))
    shapes.append((plan.e2_building.buffer(4.0), _MAT["gravel"]))
    fan_c = plan.e5_fan.centroid
    e5_meadow = shapely.union(fan_c.buffer(0.9 * plan.e5_radius), plan.e5_fan.buffer(8.0))
    shapes.append((e5_meadow.difference(plan.stand_layout["pad"])
                   .difference(plan.stand_layout["trench"]), _MEADOW))

    mat = grid.rasterize(shapes)
    shade = grid.rasterize((s, 1) for s in shadows)

    # Natural ground: low-frequency fields at 4 m, upsampled.
    k = 4
    lr = (math.ceil(ny / k) + 1, math.ceil(nx / k) + 1)
    elev = 25.0 * _fractal(rng, lr, 4.0, fmin=1.0 / 400.0)
    gy, gx = np.gradient(elev, k * grid.res)
    az, el = math.radians(_SUN_AZ0), math.radians(_SUN_EL0)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    # rows run south: d(elev)/d(north) = -gy
    hs = (-gx * sx + gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1.0) / sz
    hs = np.clip(hs, 0.35, 1.6).astype(np.float32)
    veg = _sigmoid(1.8 * _fractal(rng, lr, 3.0) + 0.8 - 0.01 * elev)
    ever = _sigmoid(2.0 * _fractal(rng, lr, 3.0) - 1.0)
    soilb = 1.0 + 0.12 * _fractal(rng, lr, 2.4)
    btr = Affine(k * grid.res, 0.0, grid.left, 0.0, -k * grid.res, grid.top)
    grid_inside = rasterio.features.rasterize([(mapping(boundary), 1)], out_shape=lr,
                                              transform=btr, fill=0, dtype="uint8")
    inside = ndimage.gaussian_filter(grid_inside.astype(np.float32), 25.0 / k)
    ever *= 1.0 - 0.8 * inside
    veg *= 1.0 - 0.25 * inside
    hs_f = _upsample(hs, k, grid.shape)
    veg_f = _upsample(veg, k, grid.shape)
    ever_f = _upsample(ever, k, grid.shape)
    soil_f = _upsample(soilb, k, grid.shape)
    del elev, gx, gy, hs, veg, ever, soilb, inside

    tex = _fractal(rng, grid.shape, 1.6)
    meadow = mat == _MEADOW
    veg_f[meadow] = np.maximum(veg_f[meadow], 0.75)
    ever_f[meadow] *= 0.2
    natural = (mat == _NATURAL) | meadow
    del meadow
    # Per-pixel weights of the natural ground's three spectra (zero on built surfaces), in
    # place to keep the memory modest: reflectance = soil*w_soil + conifer*w_con + dormant*g
    # (+ season * g * (peak - dormant)).
    ntex = hs_f
    ntex *= 1.0 + 0.10 * tex
    ntex *= natural
    shade_f = np.where(shade > 0, np.float32(_SHADE), np.float32(1.0))
    ntex *= shade_f
    w_soil = 1.0 - veg_f
    w_soil *= soil_f
    w_soil *= ntex
    del soil_f
    w_con = veg_f * ever_f
    w_con *= ntex
    g = veg_f  # veg * (1 - ever) * ntex, reusing veg_f's memory
    g *= ntex
    g -= w_con
    del ever_f, ntex, veg_f
    built_tex = 1.0 + 0.03 * tex
    built_tex *= ~natural
    built_tex *= shade_f
    del shade_f, natural
    lut = np.array([_SPECTRA.get(m, (0.0, 0.0, 0.0, 0.0)) for m in _MATERIALS], np.float32)
    a = np.empty((4, *grid.shape), np.float32)
    for b in range(4):
        ab = a[b]
        np.take(lut[:, b], mat, out=ab)
        ab *= built_tex
        ab += w_soil * _SPECTRA["soil"][b]
        ab += w_con * _SPECTRA["conifer"][b]
        ab += g * _SPECTRA["veg_dormant"][b]
    del w_soil, w_con, built_tex
    water = (mat == _MAT["water"]).astype(np.float32)
    return _Truth(grid, a, g, water, tex)


# --------------------------------------------------------------------------- per-scene ops


@dataclass
class _Op:
    """A paint operation on a window of the fine grid (private)."""

    rs: slice
    cs: slice
    mask: np.ndarray  # bool, or float alpha for "blend"
    kind: str  # "set", "blend" or "shade"
    spec: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    factor: float = 1.0


class _Painter:
    """Builds, per date, the paint operations of the events on the ground (private)."""

    def __init__(self, grid: _Grid, plan: _Plan, events: list[SimEvent], tex: np.ndarray):
        self.grid, self.plan, self.tex = grid, plan, tex
        self.events = {e.id: e for e in events}
        wm = grid.window_mask
        self.m_e1_clear = wm(plan.e1_clearing)
        self.m_e1_bld = wm(plan.e1_building)
        self.m_e1_shadow = wm(_shadow(plan.e1_building, 10.0))
        self.m_e2_bld = wm(plan.e2_building)
        self.m_e2_shadow = wm(_shadow(plan.e2_building, 9.0))
        self.m_e3_parked = wm(plan.e3_parked)
        self.m_e3_parked_shadow = wm(_shadow(plan.e3_parked, 30.0))
        self.m_e3_arrival = wm(plan.e3_arrival)
        self.m_e3_arrival_shadow = wm(_shadow(plan.e3_arrival, 30.0))
        self.m_e4 = [wm(s) for s in plan.e4_slots]
        self.m_e4_shadow = [wm(_shadow(s, 3.0)) for s in plan.e4_slots]
        fan = wm(plan.e5_fan)
        self.e5_alpha: tuple[slice, slice, np.ndarray] | None = None
        if fan is not None:
            rs, cs, m = fan
            xs, ys = grid.centers(rs, cs)
            r = np.hypot(xs - plan.e5_apex[0], ys - plan.e5_apex[1]) / plan.e5_radius
            soft = ndimage.gaussian_filter(m.astype(np.float32), 1.0)
            alpha = soft * np.clip(1.2 - 0.3 * r, 0.85, 1.0) * (1.0 + 0.05 * tex[rs, cs])
            self.e5_alpha = (rs, cs, np.clip(alpha, 0.0, 1.0).astype(np.float32))

    @staticmethod
    def _set(m: tuple[slice, slice, np.ndarray] | None, name: str) -> list[_Op]:
        return [] if m is None else [_Op(m[0], m[1], m[2], "set", _SPECTRA[name])]

    @staticmethod
    def _shade(m: tuple[slice, slice, np.ndarray] | None) -> list[_Op]:
        return [] if m is None else [_Op(m[0], m[1], m[2], "shade", factor=_SHADE)]

    def ops(self, d: date) -> list[_Op]:
        """Paint operations for the ground on date ``d``, in painting order."""
        ev, plan = self.events, self.plan
        ground: list[_Op] = []
        roofs: list[_Op] = []
        shades: list[_Op] = []
        # E5 burn scar (ground level, fading).
        e5 = ev["E5"]
        if e5.on_ground(d) and self.e5_alpha is not None:
            assert e5.end is not None
            frac = (d - e5.start).days / max(1, (e5.end - e5.start).days)
            rs, cs, alpha = self.e5_alpha
            # Dark for weeks, then fading as the vegetation grows back.
            ground.append(_Op(rs, cs, alpha * (1.0 - 0.85 * frac**3), "blend",
                              _SPECTRA["scorched"]))
        # E1 construction.
        e1 = ev["E1"]
        if e1.on_ground(d):
            ground += self._set(self.m_e1_clear, "fresh_soil")
            if d >= plan.e1_roof_date:
                roofs += self._set(self.m_e1_bld, "roof_gray")
                shades += self._shade(self.m_e1_shadow)
        # E2 razing.
        if ev["E2"].on_ground(d):
            ground += self._set(self.m_e2_bld, "rubble")
        else:
            roofs += self._set(self.m_e2_bld, "roof_green")
            shades += self._shade(self.m_e2_shadow)
        # E4 vehicles: a cluster that grows to its full size by the middle of the event.
        e4 = ev["E4"]
        if e4.on_ground(d):
            assert e4.end is not None
            frac = (d - e4.start).days / max(1, (e4.end - e4.start).days)
            n = min(len(self.m_e4), 6 + round((len(self.m_e4) - 6) * min(1.0, frac / 0.5)))
            for k in range(n):
                ground += self._set(self.m_e4[k], "vehicle_bright" if plan.e4_bright[k]
                                    else "vehicle_dark")
                shades += self._shade(self.m_e4_shadow[k])
        # E3 transfer structure: at the tower or parked.
        if ev["E3"].on_ground(d):
            roofs += self._set(self.m_e3_arrival, "roof_blue")
            shades += self._shade(self.m_e3_arrival_shadow)
        else:
            roofs += self._set(self.m_e3_parked, "roof_blue")
            shades += self._shade(self.m_e3_parked_shadow)
        return ground + roofs + shades

    def apply(self, band: np.ndarray, b: int, ops: list[_Op]) -> None:
        """Apply ``ops`` to one band of the fine scene, in place."""
        for op in ops:
            win = band[op.rs, op.cs]
            if op.kind == "set":
                t = self.tex[op.rs, op.cs][op.mask]
                win[op.mask] = op.spec[b] * (1.0 + 0.03 * t)
            elif op.kind == "blend":
                win *= 1.0 - op.mask
                win += op.mask * op.spec[b]
            else:
                win[op.mask] *= op.factor


# --------------------------------------------------------------------------- scenes


@dataclass
class _SceneSpec:
    sensor: str
    acquired: datetime
    index: int  # index among the scenes of its sensor
    cloud_target: float = 0.0
    swath: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def _plan_scenes(start: date, n10: int, n3: int, interval: int, seed: int) -> list[_SceneSpec]:
    rng = np.random.default_rng([seed, 2])
    span = (n10 - 1) * interval
    specs: list[_SceneSpec] = []
    for i in range(n10):
        cfg = _SENSORS["sim-10m"]
        minutes = cfg["hour"] * 60 + rng.uniform(-cfg["jitter_min"], cfg["jitter_min"])
        t = datetime.combine(start + timedelta(days=i * interval), time(0), UTC)
        specs.append(_SceneSpec("sim-10m", t + timedelta(seconds=round(minutes * 60)), i))
    used: set[date] = set()
    for j in range(n3):
        cfg = _SENSORS["sim-3m"]
        day = round((j + 0.5) * span / n3 + rng.uniform(-0.25, 0.25) * span / n3)
        day = min(max(day, 1), max(span, 1))
        d = start + timedelta(days=day)
        while d in used:
            d += timedelta(days=1)
        used.add(d)
        minutes = cfg["hour"] * 60 + rng.uniform(-cfg["jitter_min"], cfg["jitter_min"])
        t = datetime.combine(d, time(0), UTC) + timedelta(seconds=round(minutes * 60))
        specs.append(_SceneSpec("sim-3m", t, j))
    # Clouds: many clear, some partly cloudy, one 10 m scene almost fully cloudy.  The first
    # 10 m scene is clear: every event has a clear "before".
    tens = [s for s in specs if s.sensor == "sim-10m"]
    full = int(rng.integers(1, n10 - 1)) if n10 >= 3 else -1
    swath_choices = [i for i in range(1, n10) if i != full]
    swath = swath_choices[int(rng.integers(len(swath_choices)))] if swath_choices else -1
    for s in specs:
        u = rng.random()
        if s.sensor == "sim-10m" and s.index == 0:
            s.cloud_target = 0.0
        elif s.sensor == "sim-10m" and s.index == full:
            s.cloud_target = float(rng.uniform(0.93, 0.99))
        elif u < 0.6:
            s.cloud_target = float(rng.uniform(0.0, 0.03)) if u < 0.2 else 0.0
        else:
            s.cloud_target = float(rng.uniform(0.10, 0.40))
    if swath >= 0:
        tens[swath].swath = True
    specs.sort(key=lambda s: (s.acquired, s.sensor))
    return specs


def _render_scene(truth: _Truth, painter: _Painter, spec: _SceneSpec,
                  boundary_utm: BaseGeometry, seed: int, center: tuple[float, float]
                  ) -> tuple[np.ndarray, Affine, dict[str, Any]]:
    """Render one scene: (5, ny, nx) uint16 data, its transform and its parameters."""
    cfg = _SENSORS[spec.sensor]
    res = float(cfg["res"])
    sid = 10 if spec.sensor == "sim-10m" else 3
    rng = np.random.default_rng([seed, 3, sid, spec.index])
    grid = truth.grid
    bx0, by0, bx1, by1 = boundary_utm.bounds

    # Sensor grid: 10 m snapped to multiples of 10 m, 3 m with a random sub-pixel origin.
    if spec.sensor == "sim-10m":
        ox = oy = 0.0
    else:
        ox, oy = (round(float(v), 3) for v in rng.uniform(0.1, 2.9, 2))
    left = math.floor((bx0 - _MARGIN) / res) * res - ox
    top = math.ceil((by1 + _MARGIN) / res) * res + oy
    nx = math.ceil((bx1 + _MARGIN - left) / res)
    ny = math.ceil((top - (by0 - _MARGIN)) / res)
    transform = Affine(res, 0.0, left, 0.0, -res, top)

    # Scene parameters (rounded first, so that what is recorded is what is applied).
    dy, dx = (round(float(v), 3) for v in rng.uniform(-1.5, 1.5, 2))
    g0 = rng.uniform(0.9, 1.1)
    gains = [round(float(np.clip(g0 * r * rng.uniform(0.97, 1.03), 0.85, 1.15)), 4)
             for r in cfg["response"]]
    offsets = [round(float(v), 4) for v in rng.uniform(-0.004, 0.004, 4)]
    haze = round(float(rng.uniform(0.0, 0.05) if rng.random() < 0.7 else rng.uniform(0.05,
                                                                                  0.09)), 4)
    sigma = float(cfg["noise"])
    el, az = _sun_position(spec.acquired, *center)
    d = spec.acquired.date()
    season = _season(d)

    # Area-average the fine truth (with the content shifted) onto the sensor grid.
    step = res / grid.res
    wy = _area_weights(ny, (grid.top - top - dy * res) / grid.res, step, grid.ny)
    wx = _area_weights(nx, (left - dx * res - grid.left) / grid.res, step, grid.nx)
    wxt = wx.T.tocsr()
    ops = painter.ops(d)
    refl = np.empty((4, ny, nx), np.float32)
    for b in range(4):
        band = truth.a[b] + np.float32(season * _VEG_DELTA[b]) * truth.g
        painter.apply(band, b, ops)
        refl[b] = np.asarray((wy @ band) @ wxt)
    water = np.asarray((wy @ truth.water) @ wxt)

    # Boundary mask and swath fill on the sensor grid.
    inside = rasterio.features.rasterize([(mapping(boundary_utm), 1)], out_shape=(ny, nx),
                                         transform=transform, fill=0, dtype="uint8") > 0
    xs = left + (np.arange(nx) + 0.5) * res
    ys = top - (np.arange(ny) + 0.5) * res
    fill = np.zeros((ny, nx), bool)
    if spec.swath:
        tilt = math.radians(rng.uniform(8.0, 14.0))
        x_edge = bx1 - rng.uniform(0.3, 0.45) * (bx1 - bx0)
        yc = (by0 + by1) / 2
        fill = (xs[None, :] - x_edge) > (ys[:, None] - yc) * math.tan(tilt)
    valid_in = inside & ~fill

    # Clouds and their shadows.
    cloud_alpha = np.zeros((ny, nx), np.float32)
    shadow_alpha = np.zeros((ny, nx), np.float32)
    cloud_mask = np.zeros((ny, nx), bool)
    shadow_mask = np.zeros((ny, nx), bool)
    cloud_height = round(float(rng.uniform(500.0, 1500.0)), 1)
    if spec.cloud_target > 0:
        offset = min(500.0, cloud_height / math.tan(math.radians(max(el, 10.0))))
        a = math.radians(az + 180.0)
        sh_x, sh_y = offset * math.sin(a), offset * math.cos(a)  # shadow = cloud + (sh_x, sh_y)
        p = math.ceil(offset / res) + 2
        beta = 3.6 if spec.cloud_target > 0.5 else 3.2
        ext = _fractal(rng, (ny + 2 * p, nx + 2 * p), beta, fmin=res / 3000.0)
        pert = 0.12 * _fractal(rng, (ny, nx), 1.8)
        c = ext[p:p + ny, p:p + nx]
        vals = c[valid_in] if valid_in.any() else c.ravel()
        width = 0.5
        # "Under cloud" means an opacity of at least 0.3: the target fraction is set on it.
        thr = float(np.quantile(vals, 1.0 - spec.cloud_target)) - 0.3 * width
        cloud_alpha = np.clip((c - thr) / width, 0.0, 1.0)
        # Shadow at pixel P comes from the cloud at P - (sh_x, sh_y): rows grow southwards.
        r_off = round(sh_y / res)
        c_off = round(-sh_x / res)
        cs = ext[p + r_off:p + r_off + ny, p + c_off:p + c_off + nx]
        shadow_alpha = np.clip((cs - thr) / width, 0.0, 1.0) * (1.0 - cloud_alpha)
        cloud_mask = (c + pert) > thr + 0.3 * width
        shadow_mask = ((cs + pert) > thr + 0.4 * width) & ~cloud_mask
    cloud_fraction = float((cloud_alpha[valid_in] >= 0.3).mean()) if valid_in.any() else 0.0
    cloud_fraction = round(cloud_fraction, 4)
    coverage = round(float(valid_in.sum() / max(1, inside.sum())), 4)

    haze_field = 0.6 + 0.8 * _sigmoid(1.5 * _fractal(rng, (ny, nx), 3.5))
    ctex = 1.0 + 0.08 * _fractal(rng, (ny, nx), 2.5)
    haze_k = (1.0, 0.7, 0.45, 0.25)
    cloud_spec = (1.03, 1.0, 0.98, 0.95)
    cloud_level = float(rng.uniform(0.55, 0.75))
    out = np.empty((5, ny, nx), np.uint16)
    for b in range(4):
        v = refl[b] * (1.0 - (1.0 - _SHADE) * shadow_alpha)
        v = v * (1.0 - cloud_alpha) + cloud_alpha * (cloud_level * cloud_spec[b] * ctex)
        v = v + haze * haze_k[b] * haze_field
        v = v * gains[b] + offsets[b]
        v = v + rng.normal(0.0, sigma, (ny, nx)).astype(np.float32)
        q = np.clip(np.rint(v * 10000.0), 0, NODATA - 1).astype(np.uint16)
        q[fill] = NODATA
        out[b] = q
    fmask = np.full((ny, nx), FMASK_CLEAR, np.uint8)
    fmask[water > 0.5] = FMASK_WATER
    fmask[shadow_mask] = FMASK_SHADOW
    fmask[cloud_mask] = FMASK_CLOUD
    fmask[fill] = FMASK_FILL
    out[4] = fmask

    params = {
        "sensor": spec.sensor,
        "resolution": res,
        "cloud_fraction": cloud_fraction,
        "shift_px": [dy, dx],
        "gain": gains,
        "offset": offsets,
        "haze": haze,
        "noise_sigma": sigma,
        "coverage": coverage,
        "grid_origin_offset_m": [ox, oy],
        "sun_elevation": round(el, 2),
        "sun_azimuth": round(az, 2),
        "cloud_height_m": cloud_height if spec.cloud_target > 0 else None,
        "season_phase": round(season, 4),
    }
    return out, transform, params


def _write_tif(path: Path, data: np.ndarray, transform: Affine, crs: Any,
               tags: dict[str, str]) -> None:
    _, ny, nx = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": nx, "height": ny, "count": 5, "dtype": "uint16",
        "crs": crs, "transform": transform, "nodata": NODATA, "compress": "deflate",
        "predictor": 2, "interleave": "pixel",
    }
    if min(nx, ny) >= 128:
        block = 256 if min(nx, ny) >= 512 else 128
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, name in enumerate((*BAND_NAMES, "fmask"), start=1):
            ds.set_band_description(i, name)
        ds.scales = (1e-4, 1e-4, 1e-4, 1e-4, 1.0)
        ds.update_tags(**tags)
        for i, wl in enumerate(WAVELENGTHS_UM, start=1):
            ds.update_tags(i, wavelength=f"{wl:.3f}")
        ds.update_tags(5, codes="0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill")


# --------------------------------------------------------------------------- output folder


def _prepare_out_dir(out_dir: Path) -> None:
    """Refuse a foreign non-empty folder; clear a previous scenario's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SimulationError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        gt = out_dir / "ground_truth.json"
        try:
            ok = json.loads(gt.read_text(encoding="utf-8")).get("simulated") is True
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise SimulationError(
                f"{out_dir}: folder is not empty and holds no scenario written by sitewatch's "
                "simulator (no ground_truth.json with \"simulated\": true); refusing to write "
                "there. Choose an empty or new folder."
            )
        scenes = out_dir / "scenes"
        if scenes.is_dir():
            for f in scenes.iterdir():
                if f.is_file() and _FILE_RE.match(f.name):
                    f.unlink()
        for name in ("ground_truth.json", "site.geojson", "README.txt"):
            (out_dir / name).unlink(missing_ok=True)
    (out_dir / "scenes").mkdir(parents=True, exist_ok=True)


def _event_json(e: SimEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "part": e.part,
        "parts": list(e.parts),
        "start": e.start.isoformat(),
        "end": e.end.isoformat() if e.end else None,
        "description": e.description,
        "stages": [{"date": d.isoformat(), "state": s} for d, s in e.stages],
        "geometry": plain_json(mapping(e.geometry)),
    }


def _readme(site: Site, seed: int, events: list[SimEvent], scenes: list[SimScene]) -> str:
    lines = [
        "SIMULATED DATA - NOT REAL IMAGERY",
        "",
        f"This folder was made by sitewatch {__version__} (sitewatch.sim.simulate) with seed"
        f" {seed}.",
        f"Every image of site {site.id!r} in scenes/ is synthetic: it shows no real place and",
        "no real event.  It exists for sitewatch's demo, tests and evaluation.",
        "",
        f"Scenes: {len(scenes)} ({sum(s.sensor == 'sim-10m' for s in scenes)} at 10 m, "
        f"{sum(s.sensor == 'sim-3m' for s in scenes)} at 3 m), "
        f"{scenes[0].acquired.date()} to {scenes[-1].acquired.date()}.",
        "GeoTIFF bands: 1 blue, 2 green, 3 red, 4 nir (reflectance x 10000), 5 fmask",
        "(0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill); nodata 65535.",
        "",
        "Scripted events (ground truth in ground_truth.json):",
    ]
    for e in events:
        end = e.end.isoformat() if e.end else "persists"
        lines.append(f"  {e.id} {e.kind} at {e.part}: {e.start.isoformat()} .. {end}")
        lines.append(f"     {e.description}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main entry


def simulate_scenario(
    out_dir: str | Path,
    *,
    site: Site | None = None,
    seed: int = 0,
    start: date = date(2024, 1, 10),
    n_dates_10m: int = 24,
    n_dates_3m: int = 8,
    interval_days: int = 15,
    progress: Callable[[int, int], None] | None = None,
) -> Scenario:
    """Write a SIMULATED image series of a site with scripted events and its ground truth.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write.  It must be new, empty, or a previous scenario folder (which is
        overwritten); anything else raises :class:`SimulationError`.
    site : Site, optional
        The site; default the built-in ``sohae-sim``.  It must have the parts of
        :data:`REQUIRED_PARTS`.
    seed : int
        Seed (>= 0); the output is byte-for-byte the same for the same arguments.
    start : date
        Date of the first 10 m acquisition.
    n_dates_10m : int
        Number of 10 m scenes (>= 2), one every ``interval_days``.
    n_dates_3m : int
        Number of 3 m scenes (>= 0), spread over the same span.
    interval_days : int
        Days between 10 m scenes (>= 1).
    progress : callable, optional
        Called as ``progress(done, total)`` after each scene is written.

    Returns
    -------
    Scenario
        The folder, site, scenes (sorted by time), events and ground-truth path.

    Raises
    ------
    SiteError
        When the site lacks a part the scripted events need.
    SimulationError
        On bad arguments or an ``out_dir`` that is not the simulator's to write.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if n_dates_10m < 2:
        raise SimulationError(f"n_dates_10m must be at least 2, got {n_dates_10m}")
    if n_dates_3m < 0:
        raise SimulationError(f"n_dates_3m must be >= 0, got {n_dates_3m}")
    if interval_days < 1:
        raise SimulationError(f"interval_days must be at least 1, got {interval_days}")
    if isinstance(start, datetime):
        start = _as_date(start)
    site = site if site is not None else builtin_site("sohae-sim")
    _require_parts(site)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)

    lon, lat = site.center
    pcrs = local_utm_crs(lon, lat)
    epsg = pcrs.to_epsg()
    rcrs = RioCRS.from_epsg(epsg) if epsg else RioCRS.from_wkt(pcrs.to_wkt())
    boundary = to_crs(site.boundary, "EPSG:4326", pcrs)
    bx0, by0, bx1, by1 = boundary.bounds
    widest = max(bx1 - bx0, by1 - by0)
    if widest > _MAX_SITE_M:
        raise SimulationError(
            f"site {site.id!r} is {widest / 1000:.1f} km across; the simulator renders sites up "
            f"to {_MAX_SITE_M / 1000:.0f} km"
        )
    ext = _MARGIN + _PAD
    fine = _FINE if widest + 2 * ext <= _FINE_MAX_M else 1.5
    gl = math.floor(bx0 - ext)
    gt = math.ceil(by1 + ext)
    grid = _Grid(gl, gt, math.ceil((bx1 + ext - gl) / fine), math.ceil((gt - by0 + ext) / fine),
                 fine)

    span = (n_dates_10m - 1) * interval_days
    events, plan = _script_events(site, pcrs, start, span, np.random.default_rng([seed, 0]))
    logger.info("simulating %s (seed %d): %d x 10 m + %d x 3 m scenes, truth grid %dx%d",
                site.id, seed, n_dates_10m, n_dates_3m, grid.nx, grid.ny)
    truth = _render_truth(site, pcrs, grid, plan, seed)
    painter = _Painter(grid, plan, events, truth.tex)
    specs = _plan_scenes(start, n_dates_10m, n_dates_3m, interval_days, seed)

    scenes: list[SimScene] = []
    scene_json: list[dict[str, Any]] = []
    total = len(specs)
    for k, spec in enumerate(specs):
        data, transform, params = _render_scene(truth, painter, spec, boundary, seed,
                                                (lon, lat))
        prefix = _SENSORS[spec.sensor]["prefix"]
        name = f"{prefix}_{spec.acquired.strftime('%Y%m%dT%H%M%S')}.tif"
        path = out_dir / "scenes" / name
        tags = {
            "ACQUISITION_TIME": _iso(spec.acquired),
            "TIFFTAG_DATETIME": spec.acquired.strftime("%Y:%m:%d %H:%M:%S"),
            "SENSOR": spec.sensor,
            "PLATFORM": "SITEWATCH-SIM",
            "SIMULATED": "true",
            "SITE": site.id,
            "SEED": str(seed),
            "TIFFTAG_IMAGEDESCRIPTION": "SIMULATED image made by sitewatch; not real imagery",
            "TIFFTAG_SOFTWARE": f"sitewatch {__version__} simulate",
        }
        _write_tif(path, data, transform, rcrs, tags)
        scene = SimScene(path, spec.acquired, spec.sensor, params["resolution"],
                         params["cloud_fraction"], (params["shift_px"][0], params["shift_px"][1]))
        scenes.append(scene)
        on_ground = [e.id for e in events if e.on_ground(spec.acquired)]
        scene_json.append({"file": f"scenes/{name}", "acquired": _iso(spec.acquired),
                           **params, "swath_edge": spec.swath, "events_on_ground": on_ground})
        logger.debug("wrote %s (cloud %.2f, shift %s)", path, params["cloud_fraction"],
                     params["shift_px"])
        if progress is not None:
            progress(k + 1, total)

    (out_dir / "site.geojson").write_text(site.dumps(), encoding="utf-8")
    gt_path = out_dir / "ground_truth.json"
    doc = {
        "simulated": True,
        "note": "SIMULATED data made by sitewatch's simulator (sitewatch.sim.simulate). The scenes "
                "show no real place and no real event; they exist for sitewatch's demo, tests "
                "and evaluation.",
        "generator": f"sitewatch {__version__}",
        "site": site.id,
        "seed": seed,
        "crs": f"EPSG:{epsg}" if epsg else pcrs.to_wkt(),
        "start": start.isoformat(),
        "interval_days": interval_days,
        "events": [_event_json(e) for e in events],
        "scenes": scene_json,
    }
    gt_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "README.txt").write_text(_readme(site, seed, events, scenes), encoding="utf-8")
    logger.info("simulated scenario written to %s", out_dir)
    return Scenario(out_dir, site, tuple(scenes), tuple(events), gt_path, seed)


# --------------------------------------------------------------------------- reading back


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read a scenario's ``ground_truth.json`` (give the file or the scenario folder).

    Returns
    -------
    dict
        The JSON document as written (dates as ISO strings, geometries as GeoJSON).

    Raises
    ------
    SimulationError
        When the file is missing, unreadable or not the simulator's ground truth.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "ground_truth.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimulationError(f"{p}: no such ground-truth file") from None
    except (OSError, ValueError) as exc:
        raise SimulationError(f"{p}: cannot read ground truth: {exc}") from None
    if not isinstance(doc, dict) or doc.get("simulated") is not True:
        raise SimulationError(f"{p}: not a ground-truth file of sitewatch's simulator")
    return doc


def load_scenario(out_dir: str | Path) -> Scenario:
    """Rebuild a :class:`Scenario` from a folder written by :func:`simulate_scenario`."""
    from sitewatch.sites.site import load_site

    out = Path(out_dir)
    doc = load_ground_truth(out)
    site = load_site(out / "site.geojson")
    events = tuple(
        SimEvent(
            e["id"], e["kind"], e["part"], date.fromisoformat(e["start"]),
            date.fromisoformat(e["end"]) if e.get("end") else None, e["description"],
            shape(e["geometry"]), tuple(e["parts"]),
            tuple((date.fromisoformat(s["date"]), s["state"]) for s in e.get("stages", [])),
        )
        for e in doc["events"]
    )
    scenes = tuple(
        SimScene(
            out / s["file"],
            datetime.strptime(s["acquired"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
            s["sensor"], float(s["resolution"]), float(s["cloud_fraction"]),
            (float(s["shift_px"][0]), float(s["shift_px"][1])),
        )
        for s in doc["scenes"]
    )
    return Scenario(out, site, scenes, events, out / "ground_truth.json", int(doc["seed"]))
