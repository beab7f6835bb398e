"""Small geometry helpers: CRS choice and reprojection of shapely geometries.

Every transformer uses ``always_xy=True``: (x, y) is (easting, northing) or (lon, lat).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry


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

__all__ = ["as_crs", "local_utm_crs", "raster_mask", "to_crs"]
