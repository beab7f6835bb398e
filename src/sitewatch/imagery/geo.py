"""Small geometry helpers: CRS choice and reprojection of shapely geometries.

Every transformer uses ``always_xy=True``: (x, y) is (easting, northing) or (lon, lat).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import shapely
import shapely.affinity
from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from sitewatch.errors import SceneError

#: Points per edge of an image outline (its footprint): bounded whatever the image size.
FOOTPRINT_EDGE_POINTS = 16


def as_crs(crs: Any) -> CRS:
    """Anything pyproj understands (EPSG code, WKT, rasterio CRS) as a pyproj CRS."""
    if isinstance(crs, CRS):
        return crs
    if hasattr(crs, "to_wkt"):  # rasterio.crs.CRS
        return CRS.from_wkt(crs.to_wkt())
    return CRS.from_user_input(crs)


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


def to_crs(geom: BaseGeometry, src: Any, dst: Any) -> BaseGeometry:
    """Reproject ``geom`` from ``src`` to ``dst``."""
    s, d = as_crs(src), as_crs(dst)
    if s == d:
        return geom
    tr = _transformer(s.to_wkt(), d.to_wkt())
    return shapely.transform(geom, lambda xy: _apply(tr, xy))


def _apply(tr: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = tr.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def footprint_lonlat(transform: Any, width: int, height: int, crs: Any,
                     name: str) -> tuple[BaseGeometry, str | None]:
    """The lon/lat outline of a ``width`` x ``height`` image with this affine ``transform``
    in ``crs``, and a note when it crosses the antimeridian (it is then split there into a
    MultiPolygon).  Each edge gets :data:`FOOTPRINT_EDGE_POINTS` points, rotated transforms
    included.  :class:`SceneError` (naming ``name``) when the CRS or the corners cannot be
    converted to lon/lat.

    >>> from affine import Affine
    >>> fp, note = footprint_lonlat(Affine(1, 0, 500000, 0, -1, 4400000), 4, 3_000_000,
    ...                             "EPSG:32651", "tall.tif")
    >>> len(fp.exterior.coords), note
    (65, None)
    """
    import numpy as np

    n = FOOTPRINT_EDGE_POINTS
    t = np.arange(n) / n
    zeros, ones = np.zeros(n), np.ones(n)
    cols = np.concatenate([t, ones, 1 - t, zeros]) * width
    rows = np.concatenate([zeros, t, ones, 1 - t]) * height
    xs = transform.a * cols + transform.b * rows + transform.c
    ys = transform.d * cols + transform.e * rows + transform.f
    try:
        src = as_crs(crs)
        tr = _transformer(src.to_wkt(), CRS.from_epsg(4326).to_wkt())
        lon, lat = tr.transform(xs, ys)
        back_x, back_y = tr.transform(lon, lat, direction="INVERSE")
    except (ProjError, ValueError, TypeError) as exc:
        msg = str(exc).strip().split("\n")[0][:200]
        raise SceneError(f"{name}: its CRS cannot be converted to longitude/latitude "
                         f"({msg})") from None
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()) or np.abs(lat).max() > 90:
        raise SceneError(f"{name}: its corners do not convert to longitude/latitude (outside "
                         "the area its CRS is defined for?)")
    # Corners that do not come back where they were lie outside where the CRS is defined
    # (an image running past a pole, a projection's far side).
    tol = max(math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e), 1e-6)
    off = np.hypot(np.asarray(back_x) - xs, np.asarray(back_y) - ys)
    if not (np.isfinite(off).all() and off.max() <= tol):
        raise SceneError(f"{name}: its extent reaches outside the area where its CRS can be "
                         "converted to longitude/latitude (past a pole, or a projection's far "
                         "side)")
    lon = (lon + 180.0) % 360.0 - 180.0
    jumps = np.abs(np.diff(np.append(lon, lon[0])))
    if jumps.max() <= 180:
        poly = Polygon(np.column_stack([lon, lat]))
        fp = poly if poly.is_valid else shapely.make_valid(poly)
        return shapely.set_precision(fp, 1e-7), None
    # Crosses the antimeridian: unwrap to 0..360, split at 180 and move the east part back.
    poly = Polygon(np.column_stack([np.where(lon < 0, lon + 360.0, lon), lat]))
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    west = poly.intersection(box(0, -90, 180, 90))
    east = shapely.affinity.translate(poly.intersection(box(180, -90, 360, 90)), -360.0)
    pieces = [g for part in (west, east) for g in getattr(part, "geoms", [part])
              if isinstance(g, Polygon) and not g.is_empty]
    fp = MultiPolygon(pieces) if len(pieces) > 1 else pieces[0]
    return (shapely.set_precision(fp, 1e-7),
            "the footprint crosses the antimeridian (180 degrees): split in two there")


def local_utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS for a point (EPSG 326xx north, 327xx south).

    >>> local_utm_crs(124.705, 39.660).to_epsg()
    32651
    """
    zone = int((lon + 180) // 6) % 60 + 1
    # Norway and Svalbard exceptions of the UTM grid.
    if 56 <= lat < 64 and 3 <= lon < 12:
        zone = 32
    elif 72 <= lat < 84 and 0 <= lon < 42:
        zone = 31 if lon < 9 else 33 if lon < 21 else 35 if lon < 33 else 37
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def raster_mask(geoms: Sequence[Any], shape: tuple[int, int], transform: Any, *,
                all_touched: bool = False) -> Any:
    """Boolean (rows, cols) mask of the pixels whose centre falls in any of ``geoms``
    (shapely geometries or GeoJSON-like mappings, in the grid's CRS); with ``all_touched``,
    of every pixel they touch.  The one place sitewatch burns polygons into a grid (site
    boundary, parts, user masks, figure crops).

    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> raster_mask([box(0, -2, 1.4, 0)], (2, 3), Affine(1, 0, 0, 0, -1, 0)).astype(int).tolist()
    [[1, 0, 0], [1, 0, 0]]
    >>> raster_mask([box(0, -2, 1.4, 0)], (2, 3), Affine(1, 0, 0, 0, -1, 0), all_touched=True
    ...             ).astype(int).tolist()
    [[1, 1, 0], [1, 1, 0]]
    """
    import numpy as np
    from rasterio.features import rasterize

    if not geoms:
        return np.zeros(shape, bool)
    return rasterize([(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0,
                     dtype="uint8", all_touched=all_touched).astype(bool)

__all__ = ["FOOTPRINT_EDGE_POINTS", "as_crs", "footprint_lonlat", "local_utm_crs",
           "raster_mask", "to_crs"]
