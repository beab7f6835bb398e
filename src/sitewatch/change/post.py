"""From a boolean change map to change objects: clean it, then polygonise it.

* :func:`clean` drops specks, fills pin holes and keeps unobserved pixels unchanged.
* :func:`polygons` turns the map into GeoJSON-like features with pixel count, area and
  score statistics, largest first.
* :func:`feature_collection` wraps features as an RFC 7946 FeatureCollection (lon/lat).

>>> import numpy as np
>>> m = np.zeros((6, 6), bool)
>>> m[0, 5] = True          # a speck
>>> m[1:4, 1:4] = True      # a 3 x 3 blob ...
>>> m[2, 2] = False         # ... with a pin hole
>>> c = clean(m, min_pixels=4, max_hole_pixels=1)
>>> int(c.sum()), bool(c[0, 5]), bool(c[2, 2])
(9, False, True)
"""

from __future__ import annotations

import inspect
from typing import Any

import affine
import numpy as np
import rasterio.features
import rasterio.warp
from pyproj import Geod
from rasterio.crs import CRS
from scipy import ndimage
from shapely.geometry import mapping, shape
from shapely.geometry.polygon import orient
from shapely.ops import unary_union
from shapely.validation import make_valid
from skimage.morphology import remove_small_objects

from sitewatch.errors import GridError

__all__ = ["clean", "feature_collection", "polygons"]

# scikit-image 0.26 replaced ``min_size`` (removes objects *smaller than* the value) by
# ``max_size`` (removes objects *smaller than or equal to* it) and warns on the old name.
_NEW_SKIMAGE = "max_size" in inspect.signature(remove_small_objects).parameters

_WGS84 = CRS.from_epsg(4326)
_GEOD = Geod(ellps="WGS84")


def _bool_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise GridError(f"{name} must be a 2-D array, got shape {a.shape}")
    if a.dtype != bool:
        raise GridError(f"{name} must be a boolean array, got dtype {a.dtype}")
    return a


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), "
                         f"got {connectivity!r}")
    return ndimage.generate_binary_structure(2, connectivity)


def _remove_small(mask: np.ndarray, min_pixels: int, connectivity: int) -> np.ndarray:
    """Drop connected components of fewer than ``min_pixels`` pixels."""
    if _NEW_SKIMAGE:
        return remove_small_objects(mask, max_size=min_pixels - 1, connectivity=connectivity)
    return remove_small_objects(mask, min_size=min_pixels, connectivity=connectivity)


def _fill_holes(mask: np.ndarray, max_hole_pixels: int, connectivity: int) -> np.ndarray:
    """Fill enclosed background regions of at most ``max_hole_pixels`` pixels.

    A hole is a background component that does not touch the array border, labelled with
    the connectivity complementary to the objects' (8-connected objects enclose
    4-connected holes).  Unlike :func:`skimage.morphology.remove_small_holes`, small
    background pockets along the border are not holes and stay as they are.
    """
    labels, _ = ndimage.label(~mask, structure=_structure(3 - connectivity))
    sizes = np.bincount(labels.ravel())
    fill = sizes <= max_hole_pixels
    fill[0] = False  # label 0 is the objects themselves
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fill[border] = False
    return mask | fill[labels]


def clean(
    changed: np.ndarray,
    observed: np.ndarray | None = None,
    *,
    min_pixels: int = 4,
    max_hole_pixels: int = 4,
    connectivity: int = 2,
) -> np.ndarray:
    """A cleaned copy of the boolean change map ``changed`` (2-D).

    Connected change components (``connectivity`` 2 = 8-neighbours, 1 = 4-neighbours) of
    fewer than ``min_pixels`` pixels are removed, then holes of at most ``max_hole_pixels``
    pixels enclosed by change are filled.  Nothing is ever marked changed where
    ``observed`` is False (such pixels are cleared first, so they neither count towards a
    component's size nor end up filled).  ``min_pixels <= 1`` and ``max_hole_pixels <= 0``
    turn the respective step off.
    """
    out = _bool_2d(changed, "changed").copy()
    _structure(connectivity)
    if observed is not None:
        observed = _bool_2d(observed, "observed")
        if observed.shape != out.shape:
            raise GridError(f"observed has shape {observed.shape}, changed {out.shape}")
        out &= observed
    if min_pixels > 1:
        out = _remove_small(out, int(min_pixels), connectivity)
    if max_hole_pixels > 0:
        out = _fill_holes(out, int(max_hole_pixels), connectivity)
        if observed is not None:
            out &= observed
    return out


def _polys(geom: Any) -> list[Any]:
    """The polygons in ``geom``, however nested in multi-parts and collections."""
    if geom.geom_type == "Polygon":
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in _polys(g)]


def _area(geom: Any, crs: CRS | None, pixel_area: float) -> tuple[float | None, float | None]:
    """(area in m², area in pixels): one of them is None."""
    if crs is None:
        return None, float(geom.area / pixel_area)
    if crs.is_geographic:
        # pyproj adds hole areas with their sign, so rings must be oriented consistently
        # (exterior counter-clockwise, holes clockwise); polygonize does not promise that.
        area = sum(abs(_GEOD.geometry_area_perimeter(orient(g, 1.0))[0]) for g in _polys(geom))
        return float(area), None
    return float(geom.area * crs.linear_units_factor[1] ** 2), None


def polygons(
    changed: np.ndarray,
    transform: affine.Affine,
    crs: str | None = None,
    *,
    score: np.ndarray | None = None,
    min_pixels: int = 1,
) -> list[dict[str, Any]]:
    """Polygonise the change map: one GeoJSON-like Feature per 8-connected change object.

    Geometries are in the coordinates of ``transform`` (the CRS ``crs``; pixel coordinates
    when ``crs`` is None).  Properties: ``id`` (1-based, after sorting), ``pixels``,
    ``area_m2`` (geodesic on the WGS84 ellipsoid for a geographic CRS, planar times the unit
    factor squared for a projected one; None on a pixel grid, which instead gets
    ``area_px``), and ``mean_score`` / ``max_score`` over the object's finite ``score``
    values (None without scores).  Objects of fewer than ``min_pixels`` pixels are dropped;
    the rest are sorted by area, largest first.
    """
    changed = _bool_2d(changed, "changed")
    if score is not None:
        score = np.asarray(score, dtype=np.float64)
        if score.shape != changed.shape:
            raise GridError(f"score has shape {score.shape}, changed {changed.shape}")
    the_crs = None if crs is None else CRS.from_user_input(crs)
    if not changed.any():
        return []

    labels, n = ndimage.label(changed, structure=np.ones((3, 3), bool))
    labels = labels.astype(np.int32)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)
    mean_score = max_score = count = None
    if score is not None:
        ok = changed & np.isfinite(score)
        lab, val = labels[ok], score[ok]
        count = np.bincount(lab, minlength=n + 1)
        total = np.bincount(lab, weights=val, minlength=n + 1)
        max_score = np.full(n + 1, -np.inf)
        np.maximum.at(max_score, lab, val)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_score = np.where(count > 0, total / count, np.nan)

    # Each 8-connected label becomes (normally exactly) one polygon carrying its label value.
    parts: dict[int, list[Any]] = {}
    for geom, value in rasterio.features.shapes(
        labels, mask=changed, connectivity=8, transform=transform
    ):
        parts.setdefault(int(value), []).append(shape(geom))

    pixel_area = abs(transform.determinant)
    found = []
    for label, geoms in parts.items():
        if pixels[label] < min_pixels:
            continue
        geom = geoms[0] if len(geoms) == 1 else unary_union(geoms)
        if not geom.is_valid:
            geom = make_valid(geom)
        area_m2, area_px = _area(geom, the_crs, pixel_area)
        props: dict[str, Any] = {"pixels": int(pixels[label]), "area_m2": area_m2}
        if area_px is not None:
            props["area_px"] = area_px
        if count is not None and mean_score is not None and max_score is not None \
                and count[label] > 0:
            props["mean_score"] = float(mean_score[label])
            props["max_score"] = float(max_score[label])
        else:
            props["mean_score"] = props["max_score"] = None
        found.append((area_m2 if area_px is None else area_px, label, geom, props))

    found.sort(key=lambda f: (-(f[0] or 0.0), f[1]))
    return [
        {"type": "Feature", "geometry": mapping(geom), "properties": {"id": i, **props}}
        for i, (_, _, geom, props) in enumerate(found, start=1)
    ]


def feature_collection(features: list[dict[str, Any]], crs: str | None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``features`` whose geometries are in ``crs``.

    Geometries are reprojected to WGS84 lon/lat (RFC 7946) unless already in EPSG:4326;
    properties are kept.  With ``crs`` None (a pixel grid) coordinates stay in pixels and
    the collection says so in a ``"sitewatch:coordinates": "pixel"`` member.
    """
    out: list[dict[str, Any]] = []
    the_crs = None if crs is None else CRS.from_user_input(crs)
    for f in features:
        geom = f["geometry"]
        if the_crs is not None and the_crs != _WGS84:
            geom = rasterio.warp.transform_geom(the_crs, _WGS84, geom)
        out.append({**f, "geometry": dict(geom), "properties": dict(f.get("properties", {}))})
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": out}
    if the_crs is None:
        fc["sitewatch:coordinates"] = "pixel"
    return fc
