"""Reading only a site's window of a remote Cloud Optimized GeoTIFF, and keeping it.

:func:`cache_window` opens an asset over HTTP (GDAL's ``/vsicurl/``: HTTP range requests for
the header and the tiles that cover the window, no directory listing, no sidecar probing),
reads the window that covers the site's outline plus a margin, in the asset's own CRS and
pixel grid (no resampling: the cached pixels are the provider's), and writes it as a COG under
the home (``<home>/cache/<site>/<scene>/<band>.tif``) atomically, with its SHA-256.  The scene
record then points at these files, so ``sitewatch run`` reads them as any local scene, offline.

Why rasterio windowed reads and not odc-stac: odc-stac loads Items into an xarray (pulling
dask and xarray) on a grid of its own, resampling to it; sitewatch already has the site grid
(:mod:`sitewatch.imagery.grid`) and needs only a crop of each asset kept as a file, which one
``rasterio`` window read per asset gives with the dependencies sitewatch has.

Remote reads do not go through :func:`~sitewatch.imagery.rasters.open_raster` (which refuses
network paths on purpose and stays so): they have their own checks here (GeoTIFF driver only,
the pixel-count bound, a projection that can place pixels, the Item's own ``proj:`` code),
and the cached file is then validated like any input by the caller.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.io import DatasetReader
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SceneError
from sitewatch.fileio import atomic_path
from sitewatch.imagery.geo import to_crs
from sitewatch.imagery.rasters import MAX_IMAGE_PIXELS, check_transform
from sitewatch.imagery.scenes import sha256_file

log = logging.getLogger(__name__)

#: Margin around the site outline that is cached, metres: the site grid's own margin
#: (:data:`sitewatch.imagery.grid.DEFAULT_MARGIN_M`, 200 m) plus room for co-registration
#: shifts and the resampling pad.
CACHE_MARGIN_M = 400.0


class NoOverlapError(SceneError):
    """An asset whose pixels do not cover any of the site."""


@dataclass(frozen=True)
class CachedAsset:
    """One asset's window as kept in the cache."""

    path: Path
    size: int
    sha256: str
    width: int
    height: int
    transform: tuple[float, ...]
    crs_wkt: str
    resolution: float  # in the CRS's units (metres for projected CRSs)
    window: tuple[int, int, int, int]  # col_off, row_off, width, height in the asset


def _open(url: str) -> DatasetReader:
    path = f"/vsicurl/{url}" if url.lower().startswith(("http://", "https://")) else url
    return DatasetReader(path, driver=["GTiff"])


def _window(ds: DatasetReader, geometry: BaseGeometry, margin_m: float) -> Window | None:
    """The whole-pixel window of ``ds`` covering ``geometry`` (lon/lat) plus the margin."""
    geom = to_crs(geometry, "EPSG:4326", ds.crs)
    margin = margin_m / 111_320.0 if ds.crs.is_geographic else margin_m
    left, bottom, right, top = geom.buffer(margin).bounds
    inv = ~ds.transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((left, bottom), (left, top),
                                                (right, bottom), (right, top))), strict=True)
    if not all(math.isfinite(v) for v in (*cols, *rows)):
        return None
    c0, r0 = max(0, math.floor(min(cols))), max(0, math.floor(min(rows)))
    c1, r1 = min(ds.width, math.ceil(max(cols))), min(ds.height, math.ceil(max(rows)))
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _epsg(code: Any) -> int | None:
    """An EPSG number from an Item's ``proj:epsg`` (int) or ``proj:code`` (``EPSG:32652``)."""
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    m = re.fullmatch(r"(?i)epsg:(\d+)", str(code or "").strip())
    return int(m.group(1)) if m else None


def _one_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "previous exception" in str(exc):
        exc = cause
    return " ".join(str(exc).split())[:240]


def cache_window(url: str, geometry: BaseGeometry, dest: Path, *, name: str,
                 env: dict[str, Any], expect_epsg: Any = None,
                 margin_m: float = CACHE_MARGIN_M) -> CachedAsset:
    """Read the window of the COG at ``url`` (an http(s) URL or a local path) covering
    ``geometry`` (lon/lat) plus ``margin_m`` and write it to ``dest`` as a COG, atomically.

    ``name`` is how messages name the asset (a redacted URL); ``env`` the GDAL settings;
    ``expect_epsg`` the Item's ``proj:epsg``/``proj:code``, checked against the file.
    :class:`NoOverlapError` when the asset does not cover the site; :class:`SceneError` (one
    line naming the asset) for an unreachable, truncated or corrupt file, or a missing or
    wrong projection.
    """
    try:
        with rasterio.Env(**env), _open(url) as ds:
            return _read_and_write(ds, geometry, dest, name, expect_epsg, margin_m)
    except rasterio.errors.RasterioIOError as exc:
        text = _one_line(exc)
        if re.search(r"\b404\b|not found|does not exist|No such file", text, re.I):
            raise SceneError(f"{name}: not found (HTTP 404)") from None
        raise SceneError(f"{name}: cannot be read ({text})") from None
    except rasterio.errors.RasterioError as exc:
        raise SceneError(f"{name}: cannot be read ({_one_line(exc)})") from None


def _read_and_write(ds: DatasetReader, geometry: BaseGeometry, dest: Path, name: str,
                    expect_epsg: Any, margin_m: float) -> CachedAsset:
    if ds.width * ds.height > MAX_IMAGE_PIXELS:
        raise SceneError(f"{name}: the header claims {ds.width} x {ds.height} pixels, more "
                         f"than the {MAX_IMAGE_PIXELS:,} sitewatch reads per band; refused")
    if ds.crs is None:
        gcps = " (it has ground control points only: use georeferenced assets, e.g. RTC)" \
            if ds.gcps and ds.gcps[0] else ""
        raise SceneError(f"{name}: the asset has no projection (CRS){gcps}")
    want = _epsg(expect_epsg)
    if want is not None and ds.crs.to_epsg() != want:
        raise SceneError(f"{name}: the asset's projection ({ds.crs.to_string()}) is not the "
                         f"Item's proj:epsg {want}; refused (wrong projection metadata)")
    check_transform(ds, name)
    win = _window(ds, geometry, margin_m)
    if win is None:
        raise NoOverlapError(f"{name}: the asset does not cover the site")
    try:
        data = ds.read(1, window=win)
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
        raise SceneError(f"{name}: image data is truncated or corrupt in the site's window "
                         f"({_one_line(exc)})") from None
    nodata = ds.nodata
    transform = ds.window_transform(win)
    profile: dict[str, Any] = {
        "driver": "COG", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": data.dtype.name, "crs": ds.crs, "transform": transform,
        "compress": "deflate", "blocksize": 256, "overviews": "NONE",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if np.issubdtype(data.dtype, np.floating):
        profile["predictor"] = 3
    elif data.dtype.itemsize > 1:
        profile["predictor"] = 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tmp, "w", **profile) as out:
            out.write(data, 1)
            if ds.descriptions and ds.descriptions[0]:
                out.set_band_description(1, ds.descriptions[0])
        os.chmod(tmp, 0o644)
    t = transform
    return CachedAsset(dest, dest.stat().st_size, sha256_file(dest), data.shape[1],
                       data.shape[0], tuple(t)[:6], ds.crs.to_wkt(),
                       float((math.hypot(t.a, t.d) + math.hypot(t.b, t.e)) / 2),
                       (int(win.col_off), int(win.row_off), int(win.width), int(win.height)))


_PART = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.part$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_partials(root: Path) -> int:
    """Remove the temporary files a killed sync left under ``root`` (``.name.PID-xx.part``
    of processes no longer running).  Returns how many went."""
    if not root.is_dir():
        return 0
    n = 0
    for p in root.rglob(".*.part"):
        m = _PART.match(p.name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n


__all__ = ["CACHE_MARGIN_M", "CachedAsset", "NoOverlapError", "cache_window", "clean_partials"]
