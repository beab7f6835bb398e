"""The site grid, and loading any catalogued scene onto it.

A site's grid is north-up in the local UTM zone, its pixels aligned to multiples of the
resolution (so grids of one site at one resolution always coincide), covering the site
boundary plus a margin.  :func:`load_scene` reads only the window of each band file that
covers the grid, reprojects it, and returns float32 values (reflectance where the scale is
known) with NaN where a pixel is not observed, plus a :mod:`quality <sitewatch.imagery.masks>` map
that says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from rasterio.crs import CRS as RioCRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from sitewatch.errors import GridError, SceneError
from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.geo import local_utm_crs, raster_mask, to_crs
from sitewatch.imagery.masks import Quality, combine, quality_from_mask
from sitewatch.imagery.rasters import reading
from sitewatch.imagery.scenes import BandRef, MaskRef, Scene, open_raster
from sitewatch.sites.site import Site

#: Default margin around the site boundary, metres.
DEFAULT_MARGIN_M = 200.0
#: The most memory one loaded image may take (bands x pixels x 4 bytes).
MAX_LOAD_BYTES = 4 * 2**30
#: Bands loaded when none are asked for.
DEFAULT_BANDS = ("blue", "green", "red", "nir")


@dataclass(frozen=True)
class SiteGrid:
    """A raster grid: CRS (WKT; None for a bare pixel grid), affine transform and shape."""

    crs: str | None
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid CRS."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def rio_crs(self) -> RioCRS | None:
        return RioCRS.from_wkt(self.crs) if self.crs else None

    def to_dict(self) -> dict[str, Any]:
        return {"crs": self.crs, "transform": list(self.transform)[:6],
                "width": self.width, "height": self.height}

    def fingerprint(self) -> str:
        """A short hash of the CRS, transform and shape: results computed on another grid
        (e.g. before a back-filled older scene moved the grid's pixel phase) are stale."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def site_mask(self, site: Site) -> np.ndarray:
        """Pixels whose centre falls inside the site boundary."""
        if self.crs is None:
            raise GridError("a pixel grid without a CRS cannot place the site boundary")
        return self.mask(to_crs(site.boundary, "EPSG:4326", self.crs))

    def mask(self, geom: Any, *, all_touched: bool = False) -> np.ndarray:
        """Pixels whose centre falls in ``geom`` (in the grid CRS); with ``all_touched``,
        every pixel it touches (:func:`~sitewatch.imagery.geo.raster_mask`)."""
        return raster_mask([geom], self.shape, self.transform, all_touched=all_touched)

    def part_masks(self, site: Site) -> dict[str, np.ndarray]:
        """A boolean mask per placed part (pixels whose centre falls in the part)."""
        if self.crs is None:
            raise GridError("a pixel grid without a CRS cannot place site parts")
        out: dict[str, np.ndarray] = {}
        for p in site.placed_parts():
            geom = p.footprint(self.crs)
            if geom is None or geom.is_empty:
                continue
            m = self.mask(geom)
            if not m.any():  # a part smaller than a pixel: take the pixel it falls in
                m = self.mask(geom, all_touched=True)
            out[p.name] = m
        return out


def site_grid(site: Site, resolution: float, *, margin_m: float = DEFAULT_MARGIN_M,
              crs: Any = None, anchor: tuple[float, float] = (0.0, 0.0)) -> SiteGrid:
    """The grid of ``site`` at ``resolution`` metres (local UTM unless ``crs`` is given).

    Pixel edges sit at ``anchor + k * resolution`` (x and y): (0, 0) aligns them to multiples
    of the resolution; Landsat's own grid has edges at odd multiples of 15 m, so
    :func:`grid_for_scenes` takes the phase from the scenes to avoid resampling them by half a
    pixel.

    >>> from sitewatch.sites.site import builtin_site
    >>> g = site_grid(builtin_site("sohae-sim"), 10.0)
    >>> g.resolution, g.width == g.height, g.transform.c % 10 == 0
    (10.0, True, True)
    """
    if not (resolution > 0 and math.isfinite(resolution)):
        raise GridError(f"grid resolution must be a positive number of metres, got {resolution}")
    lon, lat = site.center
    target = crs if crs is not None else local_utm_crs(lon, lat)
    b = to_crs(site.boundary, "EPSG:4326", target).bounds
    r = float(resolution)
    ax, ay = anchor[0] % r, anchor[1] % r
    left = math.floor((b[0] - margin_m - ax) / r) * r + ax
    bottom = math.floor((b[1] - margin_m - ay) / r) * r + ay
    right = math.ceil((b[2] + margin_m - ax) / r) * r + ax
    top = math.ceil((b[3] + margin_m - ay) / r) * r + ay
    width, height = round((right - left) / r), round((top - bottom) / r)
    if width * height > 40_000 * 40_000:
        raise GridError(
            f"site {site.id!r} at {r} m makes a {width} x {height} grid; use a coarser "
            "resolution or a smaller boundary"
        )
    wkt = (target if hasattr(target, "to_wkt") else RioCRS.from_user_input(target)).to_wkt()
    return SiteGrid(wkt, Affine(r, 0, left, 0, -r, top), width, height)


def default_resolution(scenes: Sequence[Scene]) -> float:
    """The grid resolution for these scenes: their sensor's standard GSD (Sentinel-2 10 m,
    Landsat 30 m...) or else the finest native resolution among them."""
    from sitewatch.imagery.bands import DEFAULT_RESOLUTION

    known = [DEFAULT_RESOLUTION[s.sensor] for s in scenes if s.sensor in DEFAULT_RESOLUTION]
    if known:
        return min(known)
    native = [s.resolution for s in scenes if s.resolution]
    if not native:
        raise GridError("no georeferenced scene to choose a grid resolution from")
    return float(min(native))


def grid_for_scenes(site: Site, scenes: Sequence[Scene], resolution: float | None = None,
                    *, margin_m: float = DEFAULT_MARGIN_M) -> SiteGrid:
    """The site grid for these scenes: their sensor's resolution (unless given), in the local
    UTM zone, with pixel edges in phase with the first scene that is already on a grid of that
    CRS and resolution (so it is read without resampling)."""
    res = float(resolution) if resolution is not None else default_resolution(scenes)
    lon, lat = site.center
    utm = RioCRS.from_user_input(local_utm_crs(lon, lat).to_wkt())
    anchor = (0.0, 0.0)
    for sc in scenes:
        if sc.crs and sc.transform and RioCRS.from_wkt(sc.crs) == utm:
            a, _, c, _, e, f = sc.transform
            if abs(abs(a) - res) < 1e-6 and abs(abs(e) - res) < 1e-6:
                anchor = (c % res, f % res)
                break
    return site_grid(site, res, margin_m=margin_m, anchor=anchor)


def write_geotiff(img: GridImage, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a grid image as a GeoTIFF: the bands (float32, NaN = not observed) and a last
    uint8-valued band ``quality`` (see :class:`~sitewatch.imagery.masks.Quality`)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise GridError(f"{p} exists; pass overwrite to replace it")
    if p.suffix.lower() not in (".tif", ".tiff"):
        raise GridError(f"{p}: a GeoTIFF is written; name it .tif")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GridError(f"cannot create {p.parent}: {exc}") from None
    profile = {"driver": "GTiff", "width": img.grid.width, "height": img.grid.height,
               "count": len(img.bands) + 1, "dtype": "float32", "nodata": np.nan,
               "compress": "deflate", "predictor": 3, "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    if img.grid.crs is not None:
        profile.update(crs=img.grid.rio_crs, transform=img.grid.transform)
    try:
        ds = rasterio.open(p, "w", **profile)
    except rasterio.errors.RasterioIOError as exc:
        raise GridError(f"{p}: cannot write ({str(exc).splitlines()[0]})") from None
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), ds:
        ds.write(img.data, indexes=list(range(1, len(img.bands) + 1)))
        ds.write(img.quality.astype("float32"), len(img.bands) + 1)
        for i, name in enumerate((*img.bands, "quality")):
            ds.set_band_description(i + 1, name)
        ds.update_tags(SCENE=img.scene_id, ACQUISITION_TIME=img.acquired.isoformat(),
                       SENSOR=img.sensor)
        if img.shift is not None:
            ds.update_tags(SHIFT_DY=str(img.shift.dy), SHIFT_DX=str(img.shift.dx))
    return p


def pixel_grid(scene: Scene) -> SiteGrid:
    """The scene's own pixel grid (for images without georeferencing)."""
    return SiteGrid(None, Affine.identity(), scene.width, scene.height)


@dataclass
class GridImage:
    """A scene on a grid: ``data`` (bands, rows, cols) float32, NaN where not observed."""

    scene_id: str
    acquired: datetime
    sensor: str
    grid: SiteGrid
    bands: tuple[str, ...]
    data: np.ndarray
    quality: np.ndarray  # uint8 Quality codes
    shift: Shift | None = None  # the content shift undone while loading, if any

    @property
    def valid(self) -> np.ndarray:
        return self.quality == Quality.VALID

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())

    def band(self, name: str) -> np.ndarray:
        from sitewatch.imagery.bands import canonical

        try:
            return self.data[self.bands.index(canonical(name))]
        except ValueError:
            raise SceneError(
                f"{self.scene_id}: band {name!r} not loaded (loaded: {', '.join(self.bands)})"
            ) from None


def _dst_transform(grid: SiteGrid, shift: Shift | None) -> Affine:
    """The warp's destination transform: a content shift (dy, dx) is undone by warping onto
    the grid moved by that much, so output pixel (r, c) takes what the scene shows at
    (r + dy, c + dx).  One resampling, whatever the source CRS."""
    if shift is not None and (shift.dx or shift.dy):
        return grid.transform @ Affine.translation(shift.dx, shift.dy)
    return grid.transform


def _apply(t: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``t`` applied to arrays of x and y (affine's ``@`` is typed for scalars only)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def _src_window(ds: rasterio.io.DatasetReader, grid: SiteGrid,
                dst_transform: Affine | None = None) -> Window | None:
    """The window of ``ds`` covering ``grid`` as warped through ``dst_transform`` (padded by
    2 source pixels), or None if disjoint.  Works for north-up and south-up sources."""
    t = dst_transform or grid.transform
    xs, ys = _apply(t, np.array([0, grid.width, 0, grid.width]),
                    np.array([0, 0, grid.height, grid.height]))
    left, bottom, right, top = transform_bounds(grid.rio_crs, ds.crs, xs.min(), ys.min(),
                                                xs.max(), ys.max(), densify_pts=21)
    cols, rows = _apply(~ds.transform, np.array([left, right, left, right]),
                        np.array([bottom, bottom, top, top]))
    col0 = max(0, math.floor(cols.min()) - 2)
    row0 = max(0, math.floor(rows.min()) - 2)
    col1 = min(ds.width, math.ceil(cols.max()) + 2)
    row1 = min(ds.height, math.ceil(rows.max()) + 2)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _check_pixel_grid(ds: rasterio.io.DatasetReader, path: str, grid: SiteGrid,
                      shift: Shift | None) -> None:
    if ds.crs is not None or (ds.height, ds.width) != grid.shape:
        raise GridError(f"{path}: does not match the pixel grid {grid.shape}")
    if shift is not None and (shift.dx or shift.dy):
        raise GridError(f"{path}: shifts are not applied on a pixel grid (no georeferencing)")


def _aligned_offset(ds: rasterio.io.DatasetReader, grid: SiteGrid,
                    dst_transform: Affine) -> tuple[int, int] | None:
    """(row, col) of the grid's first pixel in ``ds`` when the grid lies on ``ds``'s own pixel
    lattice (same CRS and pixel size, a whole-pixel offset, north-up): the band can then be
    read as it is, without a warp (which would only copy the values, at ~50 ms per Mpx)."""
    st, t = ds.transform, dst_transform
    if (t.b or t.d or st.b or st.d or not math.isclose(t.a, st.a, rel_tol=1e-9)
            or not math.isclose(t.e, st.e, rel_tol=1e-9)):
        return None
    col, row = (t.c - st.c) / st.a, (t.f - st.f) / st.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    if ds.crs != grid.rio_crs:
        return None
    return round(row), round(col)


def _read_valid(ds: rasterio.io.DatasetReader, index: int, win: Window,
                nodata: float | None) -> np.ndarray:
    """A window of one band as float32, NaN where the source has no valid data.  When GDAL's
    mask is only the band's nodata value (the usual GeoTIFF case) it is applied by comparison:
    ``read_masks`` would decode the window a second time."""
    src = ds.read(index, window=win).astype("float32")
    flags = ds.mask_flag_enums[index - 1]
    if MaskFlags.all_valid in flags:
        pass
    elif flags == [MaskFlags.nodata] and ds.nodatavals[index - 1] is not None:
        nd = ds.nodatavals[index - 1]
        if not np.isnan(nd):
            src[src == np.float32(nd)] = np.nan
    else:
        src[ds.read_masks(index, window=win) == 0] = np.nan
    if nodata is not None and not np.isnan(nodata):
        src[src == nodata] = np.nan
    return src


class _Datasets:
    """The files of one scene, each opened once while the scene is loaded: the bands (and
    the mask) of one file are then read through one dataset, whose decoded blocks GDAL
    keeps for the next band; a pixel-interleaved GeoTIFF (GDAL's default, the benchmark's
    scenes) is decoded once instead of once per band (5 times for 4 bands and a mask)."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.open: dict[str, rasterio.io.DatasetReader] = {}

    def get(self, path: str) -> rasterio.io.DatasetReader:
        if path not in self.open:
            self.open[path] = self.stack.enter_context(open_raster(path))
        return self.open[path]


@contextlib.contextmanager
def _dataset(path: str, datasets: _Datasets | None) -> Iterator[rasterio.io.DatasetReader]:
    """``path`` opened for this read, or the scene's dataset of it when one is open."""
    if datasets is not None:
        yield datasets.get(path)
        return
    with open_raster(path) as ds:
        yield ds


def _read_band(path: str, index: int, grid: SiteGrid, resampling: Resampling,
               nodata: float | None, shift: Shift | None,
               datasets: _Datasets | None = None) -> np.ndarray:
    """One band on the grid, float32, NaN where the source has no valid data (its nodata,
    GDAL's mask: internal masks, alpha, nodata) or does not reach.  ``datasets``: the
    scene's files opened once for all its bands (see :class:`_Datasets`)."""
    with _dataset(path, datasets) as ds, reading(path):
        if grid.crs is None:
            _check_pixel_grid(ds, path, grid, shift)
            return _read_valid(ds, index, Window(0, 0, ds.width, ds.height), nodata)
        if ds.crs is None:
            raise GridError(f"{path}: has no georeferencing; it cannot go on a map grid")
        dst_t = _dst_transform(grid, shift)
        dst = np.full(grid.shape, np.nan, dtype="float32")
        off = _aligned_offset(ds, grid, dst_t)
        if off is not None:
            r0, c0 = off
            rr0, cc0 = max(r0, 0), max(c0, 0)
            rr1, cc1 = min(r0 + grid.height, ds.height), min(c0 + grid.width, ds.width)
            if rr1 > rr0 and cc1 > cc0:
                win = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
                dst[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = _read_valid(ds, index, win, nodata)
            return dst
        if resampling == Resampling.bilinear and shift is not None:
            lattice = _aligned_offset(ds, grid, grid.transform)
            if lattice is not None:
                return _translated(ds, index, grid, lattice, shift, nodata)
        win = _src_window(ds, grid, dst_t)
        if win is None:
            return dst
        src = _read_valid(ds, index, win, nodata)
        reproject(source=src, destination=dst, src_transform=ds.window_transform(win),
                  src_crs=ds.crs, src_nodata=np.nan, dst_transform=dst_t,
                  dst_crs=grid.rio_crs, dst_nodata=np.nan, resampling=resampling)
        return dst


def _translated(ds: rasterio.io.DatasetReader, index: int, grid: SiteGrid,
                lattice: tuple[int, int], shift: Shift, nodata: float | None) -> np.ndarray:
    """One band on the grid with a content shift undone, when the grid lies on the band's
    own pixel lattice (the usual case: a site grid on its scenes' UTM grid).  GDAL's
    bilinear warp is then the same 2 x 2 interpolation at one fractional offset for every
    pixel; done here in float32 on a window read as it is, it costs about a tenth of the
    warp (which was on the critical path of a new scene).

    GDAL's rules are kept: output pixel (r, c) samples the source at (r + dy, c + dx) grid
    pixels; it is no data when the source pixel the sample falls in is unobserved or beyond
    the raster; otherwise unobserved neighbours are left out and the others' weights
    renormalised.  The same unobserved pixels as the warp, and its values to within float32
    rounding (tests/test_grid_translate.py)."""
    r0, c0 = lattice
    h, w = grid.shape
    iy, ix = math.floor(shift.dy), math.floor(shift.dx)
    fy, fx = shift.dy - iy, shift.dx - ix
    top, left = r0 + iy, c0 + ix  # the source pixel of output (0, 0)'s upper-left neighbour
    src = np.full((h + 1, w + 1), np.nan, np.float32)
    rr0, cc0 = max(top, 0), max(left, 0)
    rr1, cc1 = min(top + h + 1, ds.height), min(left + w + 1, ds.width)
    if rr1 > rr0 and cc1 > cc0:
        src[rr0 - top:rr1 - top, cc0 - left:cc1 - left] = _read_valid(
            ds, index, Window(cc0, rr0, cc1 - cc0, rr1 - rr0), nodata)
    taps = ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
            (1, 1, fy * fx))
    out = np.zeros((h, w), np.float32)
    for dr, dc, wt in taps:
        if wt != 0.0:
            out += src[dr:dr + h, dc:dc + w] * np.float32(wt)
    # Where a neighbour is unobserved the sum is NaN: those pixels (few: cloud and data
    # edges) are done again, in float64 as GDAL does.  The source pixel the sample falls
    # in is the upper (left) neighbour for a fraction under a half, else the lower (right).
    redo = np.flatnonzero(np.isnan(out))
    if redo.size:
        rows, cols = np.divmod(redo, w)
        inside = np.isfinite(src[rows + int(fy >= 0.5), cols + int(fx >= 0.5)])
        value = np.zeros(redo.size, np.float64)
        weight = np.zeros(redo.size, np.float64)
        for dr, dc, wt in taps:
            if wt != 0.0:
                v = src[rows + dr, cols + dc].astype(np.float64)
                ok = np.isfinite(v)
                value[ok] += v[ok] * wt
                weight[ok] += wt
        good = inside & (weight >= 1e-5)
        fixed = np.full(redo.size, np.nan, np.float32)
        fixed[good] = value[good] / weight[good]
        out.ravel()[redo] = fixed
    return out


def _read_quality(mask: MaskRef, grid: SiteGrid, shift: Shift | None,
                  datasets: _Datasets | None = None) -> np.ndarray:
    """A provider mask as Quality codes on the grid.  Codes are translated at the mask's own
    resolution, then warped with ``max`` (any unusable source pixel makes the grid pixel
    unusable), and cloud-like classes are buffered by one grid pixel, which bilinear
    resampling of the data reaches."""
    with _dataset(mask.path, datasets) as ds, reading(mask.path):
        if grid.crs is None:
            _check_pixel_grid(ds, mask.path, grid, shift)
            win = Window(0, 0, ds.width, ds.height)
        else:
            win = _src_window(ds, grid, _dst_transform(grid, shift))
        if win is None:
            return np.full(grid.shape, Quality.NODATA, dtype=np.uint8)
        q = quality_from_mask(mask.kind, ds.read(mask.index, window=win))
        q[ds.read_masks(mask.index, window=win) == 0] = Quality.NODATA
        if grid.crs is None:
            dst = q
        else:
            dst = np.full(grid.shape, 255, dtype=np.uint8)
            reproject(source=q, destination=dst, src_transform=ds.window_transform(win),
                      src_crs=ds.crs, src_nodata=255, dst_transform=_dst_transform(grid, shift),
                      dst_crs=grid.rio_crs, dst_nodata=255, resampling=Resampling.max)
            dst[dst == 255] = Quality.NODATA
    cloudy = np.where(dst > Quality.NODATA, dst, 0)
    ring = ndimage.maximum_filter(cloudy, size=3)
    return np.where((dst == Quality.VALID) & (ring > 0), ring, dst).astype(np.uint8)


def load_scene(
    scene: Scene,
    grid: SiteGrid,
    bands: Sequence[str] | None = DEFAULT_BANDS,
    *,
    resampling: Resampling = Resampling.bilinear,
    apply_masks: bool = True,
    shift: Shift | None = None,
) -> GridImage:
    """Put ``scene`` on ``grid``: selected ``bands`` (common names; None = all) and quality.

    Values are ``DN * scale + offset`` (reflectance for known sensors); SAR values are
    linear power whatever the file holds (``properties["sar_units"]``: decibels and
    amplitudes are converted after resampling them as stored).  ``shift`` is the
    scene's content displacement from :func:`sitewatch.imagery.coregister.estimate_shift`; it is
    undone in the same warp.  A band that the scene lacks raises :class:`SceneError` naming
    the scene and its bands.
    """
    refs: list[BandRef] = [scene.band(b) for b in bands] if bands else list(scene.bands)
    need = len(refs) * grid.width * grid.height * 4
    if need > MAX_LOAD_BYTES:
        raise GridError(
            f"{scene.id}: {len(refs)} band(s) on a {grid.width} x {grid.height} grid need "
            f"{need / 2**30:.1f} GiB (limit {MAX_LOAD_BYTES / 2**30:.0f} GiB); use a coarser "
            "resolution, fewer bands or a smaller site"
        )
    with contextlib.ExitStack() as stack:
        return _load_scene(scene, grid, refs, resampling, apply_masks, shift,
                           _Datasets(stack))


def _load_scene(scene: Scene, grid: SiteGrid, refs: Sequence[BandRef], resampling: Resampling,
                apply_masks: bool, shift: Shift | None, datasets: _Datasets) -> GridImage:
    data = np.empty((len(refs), *grid.shape), dtype="float32")
    for i, ref in enumerate(refs):
        arr = _read_band(ref.path, ref.index, grid, resampling, ref.nodata, shift, datasets)
        data[i] = arr * ref.scale + ref.offset
    units = scene.properties.get("sar_units")
    if units == "db":  # SAR in decibels: linear power, as the SAR detectors expect
        np.power(np.float32(10.0), data / np.float32(10.0), out=data)
    elif units == "amplitude":
        np.square(data, out=data)
    quality = [np.where(np.isnan(data).any(axis=0), Quality.NODATA, Quality.VALID)
               .astype(np.uint8)]
    if apply_masks:
        quality.extend(_read_quality(m, grid, shift, datasets) for m in scene.masks)
    q = combine(*quality)
    data[:, q != Quality.VALID] = np.nan
    names = tuple(r.common_name or r.name for r in refs)
    return GridImage(scene.id, scene.acquired, scene.sensor, grid, names, data, q, shift)

__all__ = ["DEFAULT_BANDS", "DEFAULT_MARGIN_M", "MAX_LOAD_BYTES", "GridImage", "SiteGrid",
           "default_resolution", "grid_for_scenes", "load_scene", "pixel_grid", "site_grid",
           "write_geotiff"]
