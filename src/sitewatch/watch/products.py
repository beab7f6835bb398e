"""Change products on disk: each processed scene's change map and score as Cloud Optimized
GeoTIFFs, so briefs and exports render from stored results without recomputing.

Layout: ``PRODUCTS/SITE/PARAMS_HASH/GRID/SCENE_change.tif`` (uint8: 1 change, 0 no change,
255 not observed) and ``..._score.tif`` (float32, NaN not observed), both on the site grid,
written by GDAL's COG driver (tiled, overviews, deflate) under a temporary name and renamed,
so a reader never sees half a file.

Every name in the layout is a safe name (:mod:`sitewatch.fileio`): the site id, parameter
hash and grid key are checked, a scene id that is not safe (one catalogued before scene ids
were made safe) is replaced by :func:`~sitewatch.fileio.safe_name`, and the paths must
resolve, links followed, inside the products folder; otherwise :class:`OutputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from sitewatch.change.base import ChangeMap
from sitewatch.errors import OutputError
from sitewatch.fileio import atomic_path, check_name, path_under, safe_name
from sitewatch.imagery.grid import SiteGrid

CHANGE_NODATA = 255


def product_paths(root: str | Path, site_id: str, params_hash: str, grid_key: str,
                  scene_id: str) -> dict[str, Path]:
    """Where one scene's change products go, checked to stay inside ``root``."""
    names = (check_name(site_id, "site id"), check_name(params_hash, "parameter hash"),
             check_name(grid_key, "grid key"))
    sid = safe_name(scene_id, "scene")
    return {kind: path_under(root, *names, f"{sid}_{kind}.tif") for kind in ("change", "score")}


def _write_cog(path: Path, data: np.ndarray, grid: SiteGrid, nodata: Any, tags: dict) -> None:
    profile = {"driver": "COG", "width": grid.width, "height": grid.height, "count": 1,
               "dtype": data.dtype.name, "nodata": nodata, "compress": "deflate",
               "blocksize": 256, "overview_resampling": "nearest"}
    if grid.crs is not None:
        profile.update(crs=grid.rio_crs, transform=grid.transform)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
            ds.write(data, 1)
            ds.update_tags(**{k: str(v) for k, v in tags.items()})
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None


def write_change_products(ch: ChangeMap, grid: SiteGrid, paths: dict[str, Path],
                          tags: dict[str, Any]) -> dict[str, str]:
    """Write the change map and the score of one pair; returns the paths written."""
    change = np.where(ch.observed, ch.changed.astype(np.uint8), np.uint8(CHANGE_NODATA))
    score = np.where(ch.observed, ch.score, np.nan).astype(np.float32)
    meta = {**tags, "method": ch.method, "threshold": ch.threshold,
            "threshold_rule": ch.threshold_rule}
    _write_cog(paths["change"], change.astype(np.uint8), grid, CHANGE_NODATA,
               {**meta, "meaning": "1 change, 0 no change, 255 not observed"})
    _write_cog(paths["score"], score, grid, float("nan"),
               {**meta, "meaning": "change score; above threshold is change; NaN not observed"})
    return {k: str(v) for k, v in paths.items()}


def read_change(path: str | Path, window: tuple[slice, slice] | None = None
                ) -> tuple[np.ndarray, Any, Any]:
    """A stored change map, or the rows and columns of ``window`` of it: (uint8 array,
    affine transform of what was read, CRS)."""
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as ds:
            if window is None:
                return ds.read(1), ds.transform, ds.crs
            rows, cols = window
            w = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
            return ds.read(1, window=w), ds.window_transform(w), ds.crs
    except rasterio.errors.RasterioError as exc:
        raise OutputError(f"cannot read change product {path}: {exc}") from None


def change_outlines(path: str | Path, *, max_objects: int = 5000) -> list[dict[str, Any]]:
    """The change objects of a stored change map as GeoJSON features in lon/lat (each a
    connected region of changed pixels, 8-connected as the pipeline counts them), largest
    first, with ``area_m2`` (pixels times pixel area) and ``pixels``.  At most
    ``max_objects`` (the largest)."""
    from rasterio.features import shapes
    from rasterio.warp import transform_geom
    from shapely.geometry import shape

    change, transform, crs = read_change(path)
    sub = (change == 1).astype(np.uint8)
    if not sub.any():
        return []
    pixel_m2 = abs(transform.a * transform.e - transform.b * transform.d)
    found = []
    for geom, val in shapes(sub, mask=sub.astype(bool), connectivity=8, transform=transform):
        if val == 1:
            area = shape(geom).area
            found.append((area, geom))
    found.sort(key=lambda t: -t[0])
    out = []
    for area, geom in found[:max_objects]:
        g = transform_geom(crs, "EPSG:4326", geom) if crs else geom
        out.append({"type": "Feature", "geometry": g,
                    "properties": {"area_m2": round(float(area), 1),
                                   "pixels": round(float(area) / pixel_m2) if pixel_m2 else None}})
    return out


__all__ = ["CHANGE_NODATA", "change_outlines", "product_paths", "read_change",
           "write_change_products"]
