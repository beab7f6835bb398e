"""Map tiles of catalogued scenes: 256 px Web-Mercator (EPSG:3857) PNGs on the site grid.

A tile shows a scene as the pipeline saw it: on the grid of the site the scene was processed
on (the latest run's stored change map; for a scene never processed, the grid the pipeline
would give it), with the co-registration shift the run applied, and with the pipeline's
masks.  Every pixel of the grid that is not observed (cloud, shadow, no data, saturated, a
user mask: any :class:`~sitewatch.imagery.masks.Quality` but VALID) is drawn as diagonal
stripes, never as black, so that "nothing seen here" cannot be read as "dark ground"; outside
the grid a tile is transparent.

Each scene is rendered once per (site, scene file, grid, shift, bands) into a *display
image*: red, green, blue (already stretched to bytes), an inside-the-grid band and a masked
band, written as a small deflate-compressed Cloud-Optimised GeoTIFF with averaged overviews
under ``<home>/cache/web/<site>/`` (atomically; it survives restarts, and one that cannot be
read is rebuilt).  A tile is then a nearest-neighbour warp of the overview level matching the
tile's resolution, the hatch, and a PNG: a few milliseconds.  Zoomed out (an overview
level), a display pixel is hatched when at least half of the grid pixels it averages are
masked, so specks of cloud smaller than that show at closer zooms only; masked pixels take
the colour of the nearest clear one before averaging, so clouds leave no dark or bright halo.

Stretches (:func:`display_bands`, said in :meth:`TileSource.info`):

* optical: true colour at a fixed reflectance range (0-0.3, gamma 1.25), the same for every
  date so dates compare; values that are clearly not reflectance fall back to a 2-98 %
  stretch of the scene's clear pixels;
* SAR: VV backscatter in dB, -25 dB black to 0 dB white, the same for every date.

Thread-safe (FastAPI calls it from its threadpool): the first requests for a new scene build
its display image once (a lock per display image), the others wait for it.  No HTTP here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from scipy import ndimage

from sitewatch.errors import OutputError
from sitewatch.fileio import atomic_path, path_under, safe_name
from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.grid import GridImage, SiteGrid, grid_for_scenes, load_scene
from sitewatch.imagery.masks import Quality
from sitewatch.imagery.scenes import Scene
from sitewatch.imagery.sensors import ASSUMED_KIND, kind_of, rgb_bands
from sitewatch.sites.site import Site
from sitewatch.store import Store
from sitewatch.watch.records import ProcessedScene
from sitewatch.web.errors import NotFound, WebError

log = logging.getLogger(__name__)

#: Tile size in pixels.
TILE = 256
#: The deepest zoom a tile is served at (about 1 cm pixels: far past any imagery).
MAX_ZOOM = 24
#: Half the width of the Web-Mercator world, metres.
ORIGIN = 20037508.342789244
WEB_MERCATOR = CRS.from_epsg(3857)
#: Bumped whenever the display image changes for the same inputs (stretch, bands, layout):
#: cached display images of another version are rebuilt.
RENDER_VERSION = 1

#: Optical: the reflectance shown black and white, and the gamma between.
REFLECTANCE_RANGE = (0.0, 0.3)
GAMMA = 1.25
#: SAR: the VV backscatter shown black and white, dB.
SAR_DB_RANGE = (-25.0, 0.0)
#: The hatch of masked pixels: stripe width (px, along x + y) and its two colours (RGBA).
HATCH_WIDTH = 4
HATCH_COLOURS = ((255, 0, 255, 190), (215, 215, 215, 190))
#: How long the store's state for a site (runs, processed scenes, catalogue) is reused
#: before it is read again: a map view asks for dozens of tiles a second.
SITE_TTL_S = 5.0
#: The most tile bytes kept in memory.
TILE_CACHE_BYTES = 64 * 2**20

_QUALITY_WORDS = {Quality.NODATA: "no data", Quality.CLOUD: "cloud",
                  Quality.SHADOW: "cloud shadow", Quality.SNOW: "snow",
                  Quality.CIRRUS: "cirrus", Quality.DEFECTIVE: "saturated or defective",
                  Quality.MASKED: "masked"}


# --------------------------------------------------------------------------- web mercator

def check_tile(z: int, x: int, y: int) -> None:
    """:class:`WebError` 400 unless (z, x, y) is a tile of the XYZ scheme up to MAX_ZOOM."""
    for name, v in (("z", z), ("x", x), ("y", y)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise WebError(400, f"tile {name}={v!r} is not a whole number")
    if not 0 <= z <= MAX_ZOOM:
        raise WebError(400, f"zoom {z} is out of range (0 to {MAX_ZOOM})")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise WebError(400, f"tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from "
                       f"0 to {n - 1}")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of an XYZ tile in EPSG:3857 metres.

    >>> tile_bounds(0, 0, 0) == (-ORIGIN, -ORIGIN, ORIGIN, ORIGIN)
    True
    """
    size = 2 * ORIGIN / (1 << z)
    left, top = -ORIGIN + x * size, ORIGIN - y * size
    return left, top - size, left + size, top


def tile_transform(z: int, x: int, y: int) -> Affine:
    left, _bottom, right, top = tile_bounds(z, x, y)
    return Affine((right - left) / TILE, 0, left, 0, -(right - left) / TILE, top)


def ground_resolution(z: int, lat: float) -> float:
    """Metres on the ground per tile pixel at zoom ``z`` and latitude ``lat``."""
    return 2 * ORIGIN / (TILE << z) * math.cos(math.radians(lat))


def hatch(z: int, x: int, y: int) -> np.ndarray:
    """(256, 256) bool: which pixels of tile (z, x, y) take the first hatch colour.  Stripes
    run diagonally in *global* pixel coordinates, so they continue across tile borders."""
    del z  # the stripes are in screen pixels at every zoom
    period = 2 * HATCH_WIDTH
    offset = (TILE * (x + y)) % period
    idx = np.arange(TILE)
    return ((idx[:, None] + idx[None, :] + offset) % period) < HATCH_WIDTH


def _css(rgba: tuple[int, int, int, int]) -> str:
    """``rgba(r, g, b, a)`` for CSS (the page's legend draws the same hatch)."""
    r, g, b, a = rgba
    return f"rgba({r}, {g}, {b}, {a / 255:.2f})"


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


_TRANSPARENT = _png(np.zeros((TILE, TILE, 4), np.uint8))


def transparent_tile() -> bytes:
    """A fully transparent 256 px PNG (the same bytes every time)."""
    return _TRANSPARENT


# --------------------------------------------------------------------------- display images

@dataclass(frozen=True)
class Display:
    """A scene's display image on its grid: uint8 red, green, blue (stretched), ``inside``
    (the grid) and ``masked`` (not observed), and the words :meth:`TileSource.info` gives."""

    rgb: np.ndarray  # (3, rows, cols) uint8
    masked: np.ndarray  # (rows, cols) bool
    stretch: str
    legend: list[dict[str, str]]


#: Steps of the lookup table that maps stretched values to bytes (finer than 256 so the
#: gamma's dark end keeps every byte value).
_LUT_STEPS = 4096
#: Percentiles are taken on at most about this many clear pixels (a regular sample).
_SAMPLE = 250_000


def _scaled(x: np.ndarray, lo: float, hi: float, gamma: float = 1.0) -> np.ndarray:
    """``x`` from ``lo`` (0) to ``hi`` (255) as bytes, clipped, NaN 0, through ``gamma``;
    a lookup table, so a 2000 px grid takes a fraction of a second."""
    lut = np.round(255.0 * np.linspace(0.0, 1.0, _LUT_STEPS) ** (1.0 / gamma)).astype(np.uint8)
    span = float(hi) - float(lo) if hi > lo else 1.0
    t = (x - np.float32(lo)) * np.float32((_LUT_STEPS - 1) / span)
    t += np.float32(0.5)
    np.clip(t, 0.0, _LUT_STEPS - 1, out=t)
    np.nan_to_num(t, copy=False, nan=0.0)
    out: np.ndarray = lut[t.astype(np.intp)]
    return out


def _sample(values: np.ndarray) -> np.ndarray:
    """A regular sample of the last axis, at most about :data:`_SAMPLE` long."""
    step = max(1, values.shape[-1] // _SAMPLE)
    return values[..., ::step]


def _hatch_legend(img: GridImage) -> dict[str, str]:
    """The hatch's legend entry, with the share of the grid each reason masks."""
    n = img.quality.size
    counts = np.bincount(img.quality.ravel(), minlength=max(_QUALITY_WORDS) + 1)
    parts = [f"{word} {counts[q] / n:.0%}" for q, word in _QUALITY_WORDS.items()
             if q < len(counts) and counts[q]]
    label = ("not observed, left out by the pipeline's masks: "
             + (", ".join(parts) + " of the grid" if parts else "none in this scene"))
    return {"label": label, "swatch": "hatch"}


def display_optical(img: GridImage, names: Sequence[str]) -> Display:
    """True colour (or grey from one band): a fixed reflectance stretch when the clear
    pixels look like reflectance, else a 2-98 % stretch of this scene's clear pixels."""
    use = list(names) if len(names) >= 3 else [names[0]] * 3
    bands = [img.band(b) for b in use]
    valid = img.valid
    at = _sample(np.flatnonzero(valid))
    clear = np.stack([b.ravel()[at] for b in bands])
    lo_v, hi_v = ((float(np.percentile(clear, 1)), float(np.percentile(clear, 99)))
                  if clear.size else (0.0, 0.0))
    what = "true colour (red, green, blue)" if len(names) >= 3 else f"{names[0]} (grey)"
    if lo_v >= -0.2 and hi_v <= 1.5:
        lo, hi = REFLECTANCE_RANGE
        rgb = np.stack([_scaled(b, lo, hi, GAMMA) for b in bands])
        stretch = (f"{what}, reflectance {lo:g} (black) to {hi:g} (white) with gamma "
                   f"{GAMMA:g}, the same for every date")
        ends = [{"label": f"reflectance {lo:g}", "swatch": "#000000"},
                {"label": f"reflectance {hi:g} or more", "swatch": "#ffffff"}]
    else:
        los = np.array([np.percentile(b, 2) if b.size else 0.0 for b in clear])
        his = np.array([np.percentile(b, 98) if b.size else 1.0 for b in clear])
        rgb = np.stack([_scaled(b, lo_b, hi_b) for b, lo_b, hi_b in zip(bands, los, his,
                                                                            strict=True)])
        stretch = (f"{what}; the values are not reflectance (1-99 % of the clear pixels: "
                   f"{lo_v:g} to {hi_v:g}), so each band is stretched from its 2 % to its 98 % "
                   "point over this scene's clear pixels: brightness is not comparable "
                   "between dates")
        ends = [{"label": "2 % point of the scene", "swatch": "#000000"},
                {"label": "98 % point of the scene", "swatch": "#ffffff"}]
    return Display(rgb, ~valid, stretch, [*ends, _hatch_legend(img)])


def display_sar(img: GridImage, band: str) -> Display:
    """SAR backscatter (linear power after :func:`load_scene`) in dB, grey, fixed range."""
    lo, hi = SAR_DB_RANGE
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(img.band(band))
    g = _scaled(db, lo, hi)  # 0 power is -inf dB: black
    stretch = (f"{band.upper()} backscatter in dB, {lo:g} dB (black) to {hi:g} dB (white), "
               "grey, the same for every date")
    legend = [{"label": f"{band.upper()} {lo:g} dB or less", "swatch": "#000000"},
              {"label": f"{band.upper()} {hi:g} dB or more", "swatch": "#ffffff"},
              _hatch_legend(img)]
    return Display(np.stack([g, g, g]), ~img.valid, stretch, legend)


def display_bands(scene: Scene, kind: str) -> tuple[str, ...]:
    """The bands a scene is drawn from: VV (else its first band) for SAR, true colour
    (:func:`~sitewatch.imagery.sensors.rgb_bands`) for optical."""
    names = scene.band_names
    if kind == "sar":
        return ("vv",) if "vv" in names else tuple(names[:1])
    return rgb_bands(names)


def render_display(img: GridImage, kind: str, shown: Sequence[str]) -> Display:
    """The display image of a loaded scene (``shown``: :func:`display_bands`)."""
    if kind == "sar":
        return display_sar(img, shown[0])
    return display_optical(img, shown)


def _fill_masked(rgb: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Masked pixels take the colour of the nearest clear one (they are hatched anyway): the
    averaged overviews then do not darken imagery next to clouds."""
    if not masked.any() or masked.all():
        return rgb
    idx = ndimage.distance_transform_edt(masked, return_distances=False, return_indices=True)
    return rgb[:, idx[0], idx[1]]


def write_display(d: Display, grid: SiteGrid, path: Path, tags: dict[str, str]) -> None:
    """Write a display image as a COG (5 bytes bands: R, G, B, inside, masked; averaged
    overviews), atomically."""
    rgb = _fill_masked(d.rgb, d.masked)
    data = np.concatenate([rgb, np.full((1, *grid.shape), 255, np.uint8),
                           (d.masked.astype(np.uint8) * 255)[None]])
    profile = {"driver": "COG", "width": grid.width, "height": grid.height, "count": 5,
               "dtype": "uint8", "crs": grid.rio_crs, "transform": grid.transform,
               "compress": "deflate", "level": 1, "predictor": 2, "blocksize": TILE,
               "overview_resampling": "average", "num_threads": 2}
    path.parent.mkdir(parents=True, exist_ok=True)
    with (atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"),
          rasterio.open(tmp, "w", **profile) as ds):
        ds.write(data)
        ds.update_tags(**tags)


# --------------------------------------------------------------------------- plans

@dataclass(frozen=True)
class _Plan:
    """What a scene's tiles are drawn from: its grid, shift and bands, and where its display
    image is kept (``key``: a hash of all that, in the file name)."""

    site_id: str
    scene: Scene
    kind: str
    grid: SiteGrid
    shift: Shift | None
    bands: tuple[str, ...]  # loaded: the pipeline's (for its NODATA mask) and the shown ones
    shown: tuple[str, ...]
    key: str
    path: Path
    merc: tuple[float, float, float, float]  # the grid's bounds in EPSG:3857
    lonlat: tuple[float, float, float, float]  # and in lon/lat
    lat: float  # the grid centre's latitude


@dataclass
class _SiteState:
    """The store's state for one site, read once per :data:`SITE_TTL_S`."""

    at: float
    site: Site
    scenes: dict[str, Scene]
    processed: dict[str, ProcessedScene]
    params_hash: str | None
    plans: dict[str, _Plan]


@dataclass
class _Entry:
    """A display image known to be readable: its file, levels and words."""

    path: Path
    levels: list[float]  # resolution (m) of level 0 (full), 1, 2...
    stretch: str
    legend: list[dict[str, str]]


def _shift_key(shift: Shift | None) -> list[float] | None:
    return [round(shift.dy, 6), round(shift.dx, 6)] if shift is not None else None


# --------------------------------------------------------------------------- the source

class TileSource:
    """Renders 256 px Web-Mercator PNG tiles of a catalogued scene on its site grid.

    ``cache_dir``: where display images are kept (default ``<home>/cache/web``).
    """

    def __init__(self, home: Path, store: Store, *, cache_dir: Path | None = None):
        self.home = Path(home)
        self.store = store
        self.cache_dir = Path(cache_dir) if cache_dir is not None else \
            self.home / "cache" / "web"
        self._lock = threading.Lock()  # guards the dictionaries below
        self._site_locks: dict[str, threading.Lock] = {}
        self._build_locks: dict[str, threading.Lock] = {}
        self._sites: dict[str, _SiteState] = {}
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tiles: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._tile_bytes = 0
        #: How many display images this source built (for tests and benchmarks).
        self.builds = 0

    # -- public --------------------------------------------------------------------------

    def tile(self, site_id: str, scene_id: str, z: int, x: int, y: int) -> bytes:
        """The PNG of tile (z, x, y) of a scene: 256 x 256 RGBA, transparent outside the
        site grid, hatched where the scene is masked, opaque imagery where clear."""
        check_tile(z, x, y)
        plan = self._plan(site_id, scene_id)
        tb = tile_bounds(z, x, y)
        m = plan.merc
        if tb[0] >= m[2] or tb[2] <= m[0] or tb[1] >= m[3] or tb[3] <= m[1]:
            return _TRANSPARENT
        ck = (plan.key, z, x, y)
        with self._lock:
            hit = self._tiles.get(ck)
            if hit is not None:
                self._tiles.move_to_end(ck)
                return hit
        entry = self._entry(plan)
        try:
            png = self._render(entry, plan, z, x, y)
        except rasterio.errors.RasterioError as exc:
            log.warning("display image %s unreadable (%s): rebuilding it", entry.path, exc)
            entry = self._entry(plan, bad=entry)
            png = self._render(entry, plan, z, x, y)
        self._remember_tile(ck, png)
        return png

    def info(self, site_id: str, scene_id: str) -> dict[str, Any]:
        """``bbox`` (lon/lat of the grid), ``minzoom`` (the grid about 64 px wide),
        ``maxzoom`` (native resolution + 2), the ``stretch`` in words, the ``legend``
        (``swatch``: a CSS colour or ``"hatch"``), and also ``resolution_m``, ``kind``
        (optical or sar) and ``hatch`` (the stripes' two CSS colours, for the legend).
        Builds the scene's display image if it is not built yet."""
        plan = self._plan(site_id, scene_id)
        entry = self._entry(plan)
        native = math.log2(2 * ORIGIN * math.cos(math.radians(plan.lat))
                           / (TILE * plan.grid.resolution))
        span = max(plan.grid.width, plan.grid.height)
        return {"bbox": [round(v, 7) for v in plan.lonlat],
                "minzoom": max(0, math.floor(native - math.log2(max(span / 64, 1.0)))),
                "maxzoom": min(MAX_ZOOM, math.ceil(native) + 2),
                "stretch": entry.stretch,
                "legend": [dict(e) for e in entry.legend],
                "resolution_m": plan.grid.resolution,
                "kind": plan.kind,
                "hatch": [_css(c) for c in HATCH_COLOURS]}

    # -- the store -----------------------------------------------------------------------

    def _site_state(self, site_id: str, *, max_age: float | None = None) -> _SiteState:
        """The site's state from the store, read again when older than ``max_age`` s
        (default :data:`SITE_TTL_S`); the plans are made again from it, so a scene processed
        since gets its run's grid and shift."""
        if max_age is None:
            max_age = SITE_TTL_S
        with self._lock:
            lock = self._site_locks.setdefault(site_id, threading.Lock())
        with lock:
            st = self._sites.get(site_id)
            if st is not None and time.monotonic() - st.at < max_age:
                return st
            site = self.store.get_site(site_id)
            if site is None:
                raise NotFound(f"no site {site_id!r} in the catalogue")
            run = self.store.last_run(site_id, finished=True) or self.store.last_run(site_id)
            ph = run.params_hash if run else None
            processed = self.store.processed(site_id, ph) if ph else {}
            scenes = {s.id: s for s in self.store.scenes(site_id)}
            fresh = _SiteState(time.monotonic(), site, scenes, processed, ph, {})
            with self._lock:
                self._sites[site_id] = fresh
            return fresh

    def _plan(self, site_id: str, scene_id: str) -> _Plan:
        st = self._site_state(site_id)
        plan = st.plans.get(scene_id)
        if plan is None:
            if scene_id not in st.scenes:  # catalogued since? (read again at most 1/s)
                st = self._site_state(site_id, max_age=1.0)
            scene = st.scenes.get(scene_id)
            if scene is None:
                raise NotFound(f"no scene {scene_id!r} at site {site_id!r}")
            plan = self._make_plan(st, scene)
            st.plans[scene_id] = plan
        return plan

    def _make_plan(self, st: _SiteState, scene: Scene) -> _Plan:
        from sitewatch.report.brief import _grid_of, _shift
        from sitewatch.watch.grids import grid_key, load_bands

        kind = kind_of(scene.sensor) or ASSUMED_KIND
        done = st.processed.get(scene.id)
        if done is not None:  # as the brief: the grid and shift of the latest run
            same = [st.scenes[s] for s, r in st.processed.items()
                    if r.grid == done.grid and s in st.scenes]
            grid = _grid_of(done, st.site, same or [scene])
            shift = _shift(done)
            pipeline_bands: Sequence[str] = done.bands
        else:  # as the pipeline would: the grid of the scenes of its grid key, no shift
            key = grid_key(scene)
            same = [s for s in st.scenes.values() if grid_key(s) == key]
            grid = grid_for_scenes(st.site, same)
            shift = None
            pipeline_bands = load_bands(same, kind)
        shown = display_bands(scene, kind)
        has = set(scene.band_names) | {b.common_name for b in scene.bands if b.common_name}
        bands = tuple(dict.fromkeys([*shown, *(b for b in pipeline_bands if b in has)]))
        ident = json.dumps({"v": RENDER_VERSION, "scene": scene.id, "checksum": scene.checksum,
                            "grid": grid.fingerprint(), "shift": _shift_key(shift),
                            "bands": bands, "shown": shown, "kind": kind}, sort_keys=True)
        key = hashlib.sha256(ident.encode()).hexdigest()[:16]
        site_dir = path_under(self.cache_dir, safe_name(st.site.id))
        path = site_dir / f"{safe_name(scene.id, max_len=100)}-{key}.tif"
        crs = grid.rio_crs
        merc = transform_bounds(crs, WEB_MERCATOR, *grid.bounds, densify_pts=21)
        lonlat = transform_bounds(crs, "EPSG:4326", *grid.bounds, densify_pts=21)
        return _Plan(st.site.id, scene, kind, grid, shift, bands, shown, key, path,
                     tuple(merc), tuple(lonlat), (lonlat[1] + lonlat[3]) / 2)

    # -- display images ------------------------------------------------------------------

    def _entry(self, plan: _Plan, *, bad: _Entry | None = None) -> _Entry:
        """The plan's display image: from memory, else its file when readable, else built
        (once: concurrent callers wait on the build lock).  ``bad``: an entry whose file
        was found unreadable, built again unless another thread already did."""
        with self._lock:
            entry = self._entries.get(plan.key)
            if entry is not None and bad is None:
                self._entries.move_to_end(plan.key)
                return entry
            lock = self._build_locks.setdefault(plan.key, threading.Lock())
        with lock:
            with self._lock:
                entry = self._entries.get(plan.key)
                if entry is not None and entry is not bad:
                    return entry
                self._entries.pop(plan.key, None)
                self._forget_tiles(plan.key)
            entry = _open_entry(plan.path, plan.key) if bad is None else None
            if entry is None:
                entry = self._build(plan)
            with self._lock:
                self._entries[plan.key] = entry
                while len(self._entries) > 256:
                    self._entries.popitem(last=False)
            return entry

    def _build(self, plan: _Plan) -> _Entry:
        t0 = time.perf_counter()
        img = load_scene(plan.scene, plan.grid, plan.bands, shift=plan.shift)
        d = render_display(img, plan.kind, plan.shown)
        del img
        tags = {"SITEWATCH_TILES": plan.key, "STRETCH": d.stretch,
                "LEGEND": json.dumps(d.legend), "SCENE": plan.scene.id, "SITE": plan.site_id}
        try:
            write_display(d, plan.grid, plan.path, tags)
        except (OSError, rasterio.errors.RasterioError) as exc:
            raise OutputError(f"cannot write the display image of scene {plan.scene.id!r} "
                              f"to {plan.path}: {exc}") from None
        _remove_stale(plan.path)
        self.builds += 1
        log.info("display image of %s/%s built in %.2f s: %s", plan.site_id, plan.scene.id,
                 time.perf_counter() - t0, plan.path)
        entry = _open_entry(plan.path, plan.key)
        if entry is None:
            raise OutputError(f"the display image {plan.path} cannot be read back")
        return entry

    # -- tiles ---------------------------------------------------------------------------

    def _render(self, entry: _Entry, plan: _Plan, z: int, x: int, y: int) -> bytes:
        level = _level_for(entry.levels, ground_resolution(z, plan.lat))
        arr = np.zeros((5, TILE, TILE), np.uint8)
        opts = {"overview_level": level - 1} if level else {}
        with rasterio.open(entry.path, **opts) as ds:
            reproject(source=rasterio.band(ds, [1, 2, 3, 4, 5]), destination=arr,
                      src_transform=ds.transform, src_crs=ds.crs,
                      dst_transform=tile_transform(z, x, y), dst_crs=WEB_MERCATOR,
                      resampling=Resampling.nearest, num_threads=1)
        return _compose(arr, z, x, y)

    def _remember_tile(self, ck: tuple[str, int, int, int], png: bytes) -> None:
        with self._lock:
            if ck not in self._tiles:
                self._tiles[ck] = png
                self._tile_bytes += len(png)
            while self._tile_bytes > TILE_CACHE_BYTES and self._tiles:
                _, old = self._tiles.popitem(last=False)
                self._tile_bytes -= len(old)

    def _forget_tiles(self, key: str) -> None:  # under self._lock
        for ck in [k for k in self._tiles if k[0] == key]:
            self._tile_bytes -= len(self._tiles.pop(ck))


def _compose(arr: np.ndarray, z: int, x: int, y: int) -> bytes:
    """RGBA of a warped (R, G, B, inside, masked) tile: imagery where clear, the hatch where
    masked, transparent outside the grid."""
    inside = arr[3] >= 128
    if not inside.any():
        return _TRANSPARENT
    masked = inside & (arr[4] >= 128)
    out = np.zeros((TILE, TILE, 4), np.uint8)
    out[..., :3] = arr[:3].transpose(1, 2, 0)
    out[..., 3] = np.where(inside, 255, 0)
    if masked.any():
        first = hatch(z, x, y)
        a, b = (np.array(c, np.uint8) for c in HATCH_COLOURS)
        out[masked & first] = a
        out[masked & ~first] = b
    out[~inside] = 0
    return _png(out)


def _level_for(levels: Sequence[float], want_m: float) -> int:
    """The coarsest level whose pixels are no larger than the tile's (``want_m``)."""
    best = 0
    for i, r in enumerate(levels):
        if r <= want_m * 1.0001:
            best = i
    return best


_STALE = re.compile(r"-[0-9a-f]{16}\.tif")


def _remove_stale(path: Path) -> None:
    """Remove other display images of the same scene (another grid, shift or version)."""
    stem = path.name[: -len("-0123456789abcdef.tif")]
    for p in path.parent.glob(f"{stem}-*.tif"):
        if p != path and _STALE.fullmatch(p.name[len(stem):]):
            p.unlink(missing_ok=True)


def _open_entry(path: Path, key: str) -> _Entry | None:
    """The display image at ``path`` when it is complete and of this ``key``; None (to be
    rebuilt) when it is missing, of another key, or cannot be read to its last block."""
    if not path.is_file():
        return None
    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
            if ds.count != 5 or tags.get("SITEWATCH_TILES") != key:
                raise ValueError("not this display image")
            # A COG keeps full-resolution blocks last: reading the last one finds truncation.
            bh, bw = ds.block_shapes[0]
            row0 = (ds.height - 1) // bh * bh
            col0 = (ds.width - 1) // bw * bw
            ds.read(window=((row0, ds.height), (col0, ds.width)))
            res = abs(ds.transform.a)
            levels = [res] + [res * f for f in ds.overviews(1)]
            return _Entry(path, levels, tags.get("STRETCH", ""),
                          list(json.loads(tags.get("LEGEND", "[]"))))
    except (rasterio.errors.RasterioError, ValueError, OSError) as exc:
        log.warning("display image %s is unusable (%s): it is rebuilt", path, exc)
        return None


__all__ = ["GAMMA", "HATCH_COLOURS", "HATCH_WIDTH", "MAX_ZOOM", "REFLECTANCE_RANGE",
           "SAR_DB_RANGE", "TILE", "Display", "TileSource", "check_tile", "display_bands",
           "ground_resolution", "hatch", "render_display", "tile_bounds", "transparent_tile"]

