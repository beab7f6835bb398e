"""Quality codes: provider masks, a spectral cloud test, user exclusion masks.

Every loaded image carries a ``quality`` map (uint8) that says, pixel by pixel, why it is or
is not usable.  Provider masks are translated here:

* Fmask / CFmask (Landsat ESPA): 0 clear, 1 water, 2 cloud shadow, 3 snow, 4 cloud, 255 fill;
* Landsat Collection 2 ``QA_PIXEL`` bits: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow;
* Landsat Collection 1 (ESPA) ``pixel_qa`` bits: 0 fill, 1 clear, 2 water, 3 cloud shadow,
  4 snow, 5 cloud;
* Sentinel-2 ``SCL``: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud, 10 cirrus,
  11 snow;
* a generic ``mask`` band: non-zero = not usable.

Images without a provider mask (Sentinel-2 L1C, as in the OSCD data set) get a spectral test
instead, :func:`cloud_from_reflectance`: the Fmask "potential cloud pixel" tests (Zhu &
Woodcock 2012) plus the S2 cirrus band.  Brightness alone still never marks cloud: a pixel
must also be haze-like (blue well above the clear-sky line, not redder than it is blue),
spectrally flat, not vegetation or snow and bright in the short-wave infrared, so bright
concrete pads, roofs and sand stay usable.  The test is deliberately conservative (it misses
thin haze rather than deleting a launch pad), and :func:`temporal_cloud_check` then clears the
remaining false alarms on surfaces that are just as bright on the other date: a cloud is
transient, a pad is not.

A user's own exclusion mask (a GeoJSON or a raster, :func:`user_mask`) marks pixels
``MASKED`` (:func:`apply_user_mask`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import Resampling, reproject, transform_geom
from shapely.geometry import Polygon, mapping
from shapely.geometry import shape as shape_of

from sitewatch.errors import SceneError
from sitewatch.imagery.geo import raster_mask


class Quality(IntEnum):
    """Why a pixel is (not) usable.  0 is usable; anything else is not observed."""

    VALID = 0
    NODATA = 1  # outside the image, fill, nodata value, NaN
    CLOUD = 2
    SHADOW = 3
    SNOW = 4
    CIRRUS = 5
    DEFECTIVE = 6
    MASKED = 7  # a user or generic mask


def _bits(values: np.ndarray) -> Callable[[int], np.ndarray]:
    """``bit(n)``: where bit ``n`` of the QA values is set."""
    b = values.astype(np.uint32)
    return lambda n: ((b >> n) & 1).astype(bool)


def quality_from_mask(kind: str, values: np.ndarray) -> np.ndarray:
    """Translate provider mask ``values`` of ``kind`` to :class:`Quality` codes (uint8).

    >>> quality_from_mask("fmask", np.array([0, 1, 2, 3, 4, 255])).tolist()
    [0, 0, 3, 4, 2, 1]
    """
    v = np.asarray(values)
    q = np.zeros(v.shape, dtype=np.uint8)
    if kind == "fmask":
        q[v == 2] = Quality.SHADOW
        q[v == 3] = Quality.SNOW
        q[v == 4] = Quality.CLOUD
        q[v == 255] = Quality.NODATA
    elif kind == "qa_pixel":
        bit = _bits(v)
        q[bit(5)] = Quality.SNOW
        q[bit(4)] = Quality.SHADOW
        q[bit(2)] = Quality.CIRRUS
        q[bit(1) | bit(3)] = Quality.CLOUD
        q[bit(0)] = Quality.NODATA
    elif kind == "pixel_qa":
        bit = _bits(v)
        q[bit(4)] = Quality.SNOW
        q[bit(3)] = Quality.SHADOW
        q[bit(5)] = Quality.CLOUD
        q[bit(0)] = Quality.NODATA
    elif kind == "scl":
        q[v == 1] = Quality.DEFECTIVE
        q[v == 3] = Quality.SHADOW
        q[np.isin(v, (8, 9))] = Quality.CLOUD
        q[v == 10] = Quality.CIRRUS
        q[v == 11] = Quality.SNOW
        q[v == 0] = Quality.NODATA
    elif kind == "mask":
        q[v != 0] = Quality.MASKED
    else:
        raise ValueError(f"unknown mask kind {kind!r}")
    return q


def combine(*qualities: np.ndarray) -> np.ndarray:
    """Combine quality maps: the first non-valid reason wins, NODATA over everything."""
    out = np.zeros(qualities[0].shape, dtype=np.uint8)
    for q in qualities:
        take = (out == Quality.VALID) & (q != Quality.VALID)
        out[take] = q[take]
    nodata = np.zeros(out.shape, bool)
    for q in qualities:
        nodata |= q == Quality.NODATA
    out[nodata] = Quality.NODATA
    return out


#: Thresholds of :func:`cloud_from_reflectance` (top-of-atmosphere reflectance, 0..1).
#: Fmask's potential-cloud tests (Zhu & Woodcock 2012, eqs. 1-4; thermal test dropped):
FMASK_MAX_NDSI = 0.8  # snow has NDSI > 0.8 with SWIR 1.6 um dark; cloud is bright there
FMASK_MAX_NDVI = 0.8  # dense vegetation
FMASK_MAX_WHITENESS = 0.7  # sum of |band - mean| / mean over blue, green, red: flat spectrum
FMASK_HOT_OFFSET = 0.08  # HOT = blue - 0.5 red - 0.08: the clear-sky line
FMASK_MIN_NIR_SWIR = 0.75  # nir / swir16: bright rock and desert sand are below
FMASK_MIN_SWIR22 = 0.03  # clouds are not dark at 2.2 um (water, shadow are)
#: Added so that brightness alone never marks cloud (see :func:`cloud_from_reflectance`):
CLOUD_MIN_VISIBLE = 0.3  # mean of blue, green, red
CLOUD_MIN_HOT = 0.05  # well above the clear-sky line, not just above it
CLOUD_MIN_BLUE_RED = 0.95  # blue / red: cloud is white to bluish at TOA, pads and sand redden
#: Sentinel-2 B10 (1.375 um, water-vapour absorption: the ground is hidden, high ice is not).
CIRRUS_MIN = 0.012

_VISIBLE = ("blue", "green", "red")


def _band(bands: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    v = bands.get(name)
    return None if v is None else np.asarray(v, dtype=np.float32)


def cloud_from_reflectance(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Cloud and cirrus from top-of-atmosphere reflectance, for images without a cloud mask.

    ``bands`` maps common band names to reflectance arrays of one shape (NaN = not observed;
    such pixels stay ``VALID``, NODATA is decided elsewhere): ``blue, green, red, nir`` are
    required, ``swir16``, ``swir22`` and ``cirrus`` (Sentinel-2 B10) are used when present.
    Returns :class:`Quality` codes (uint8): ``CLOUD``, ``CIRRUS`` or ``VALID``.

    A pixel is ``CLOUD`` when it passes every Fmask potential-cloud test that its bands allow
    (Zhu & Woodcock 2012; no thermal band): NDSI < 0.8, NDVI < 0.8, whiteness (sum over the
    visible bands of ``|band - mean| / mean``) < 0.7, HOT = ``blue - 0.5 red - 0.08`` > 0,
    ``nir / swir16`` > 0.75, ``swir22`` > 0.03 -- *and* three tests added because Fmask's alone
    flag bright man-made ground (concrete, roofs, sand at 0.25-0.4, HOT near 0, flat spectrum):

    * mean visible reflectance > 0.3: thick cloud at TOA is 0.35-0.8, most pads are below;
    * HOT > 0.05 instead of > 0: a pad at 0.3 sits on the clear-sky line (HOT ~ 0.0-0.04),
      cloud is far above it (0.15 for a 0.45 cloud);
    * blue >= 0.95 red: at TOA a cloud is white to bluish (Rayleigh scattering above it),
      concrete, roofs and sand get redder (0.87 for the 0.26/0.30 pad, 0.90 for a 0.36/0.40
      one), which stops pads brighter than 0.3 too.

    ``cirrus`` > 0.012 marks ``CIRRUS`` (thick cloud stays ``CLOUD``).  Without ``swir16`` snow
    cannot be told from cloud and is marked ``CLOUD`` (it is not usable either).

    The test is deliberately conservative: it misses thin haze and thin cloud over bright
    ground rather than deleting a launch pad.  Bright flat surfaces that still pass (a fresh
    white roof) are cleared by :func:`temporal_cloud_check`, which compares with the other date.

    >>> px = lambda **kw: {k: np.array([v]) for k, v in kw.items()}
    >>> cloud_from_reflectance(px(blue=.45, green=.44, red=.43, nir=.45, swir16=.35)).tolist()
    [2]
    >>> cloud_from_reflectance(px(blue=.26, green=.28, red=.30, nir=.32, swir16=.36)).tolist()
    [0]
    """
    missing = [k for k in ("blue", "green", "red", "nir") if k not in bands]
    if missing:
        raise SceneError(f"cloud test needs bands {', '.join(missing)} (got {sorted(bands)})")
    blue, green, red, nir = (np.asarray(bands[k], dtype=np.float32)
                             for k in ("blue", "green", "red", "nir"))
    swir16, swir22, cirrus = (_band(bands, k) for k in ("swir16", "swir22", "cirrus"))
    q = np.zeros(blue.shape, dtype=np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = (blue + green + red) / 3
        whiteness = (np.abs(blue - vis) + np.abs(green - vis) + np.abs(red - vis)) / vis
        hot = blue - 0.5 * red - FMASK_HOT_OFFSET
        cloud = (
            ((nir - red) / (nir + red) < FMASK_MAX_NDVI)
            & (whiteness < FMASK_MAX_WHITENESS)
            & (hot > CLOUD_MIN_HOT)
            & (vis > CLOUD_MIN_VISIBLE)
            & (blue >= CLOUD_MIN_BLUE_RED * red)
        )
        if swir16 is not None:
            cloud &= (green - swir16) / (green + swir16) < FMASK_MAX_NDSI
            cloud &= nir / swir16 > FMASK_MIN_NIR_SWIR
        if swir22 is not None:
            cloud &= swir22 > FMASK_MIN_SWIR22
        if cirrus is not None:
            q[cirrus > CIRRUS_MIN] = Quality.CIRRUS
    q[cloud] = Quality.CLOUD
    return q


def _visible_mean(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    missing = [k for k in _VISIBLE if k not in bands]
    if missing:
        raise SceneError(f"temporal cloud check needs bands {', '.join(missing)}")
    b, g, r = (np.asarray(bands[k], dtype=np.float32) for k in _VISIBLE)
    return (b + g + r) / 3


def temporal_cloud_check(quality: np.ndarray, bands: Mapping[str, np.ndarray],
                         other_bands: Mapping[str, np.ndarray], *,
                         tolerance: float = 0.08) -> np.ndarray:
    """Clear spectral cloud flags on surfaces that are as bright on the other date.

    ``quality`` is :func:`cloud_from_reflectance` of ``bands``; ``other_bands`` is another
    image of the same place on the same grid.  A ``CLOUD`` or ``CIRRUS`` pixel whose mean
    visible reflectance (blue, green, red) on the other date is within ``tolerance`` of this
    date's is a stable bright surface -- a cloud is transient, a concrete pad is there on both
    dates -- and goes back to ``VALID``.  Where the other date is not observed (NaN) the flag
    stays.  Returns a new array.

    Apply it to the spectral flags only, before :func:`combine` with provider masks (provider
    cloud flags are trusted).  It cannot tell a pad from a cloud that covers the pixel on both
    dates with the same brightness; for a change detector that pixel shows no change either way.

    >>> a = {"blue": np.array([.45, .45]), "green": np.array([.44, .44]),
    ...      "red": np.array([.43, .43])}
    >>> b = {"blue": np.array([.44, .08]), "green": np.array([.44, .07]),
    ...      "red": np.array([.45, .06])}
    >>> temporal_cloud_check(np.array([2, 2], np.uint8), a, b).tolist()
    [0, 2]
    """
    q = np.asarray(quality)
    here, there = _visible_mean(bands), _visible_mean(other_bands)
    if not (q.shape == here.shape == there.shape):
        raise ValueError(f"shapes differ: quality {q.shape}, bands {here.shape}, "
                         f"other bands {there.shape}")
    out = q.astype(np.uint8, copy=True)
    with np.errstate(invalid="ignore"):
        stable = np.abs(there - here) <= tolerance
    flagged = (q == Quality.CLOUD) | (q == Quality.CIRRUS)
    out[flagged & stable] = Quality.VALID
    return out


def apply_user_mask(quality: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """A copy of ``quality`` with ``MASKED`` where ``exclude`` and the pixel was ``VALID``.

    >>> apply_user_mask(np.array([0, 0, 2], np.uint8), np.array([True, False, True])).tolist()
    [7, 0, 2]
    """
    q = np.asarray(quality)
    ex = np.asarray(exclude, dtype=bool)
    if q.shape != ex.shape:
        raise ValueError(f"mask shape {ex.shape} differs from quality shape {q.shape}")
    out = q.astype(np.uint8, copy=True)
    out[ex & (q == Quality.VALID)] = Quality.MASKED
    return out


_VECTOR_SUFFIXES = (".geojson", ".json")


def user_mask(path: str | os.PathLike[str], grid_crs: str | None, transform: Affine,
              shape: tuple[int, int]) -> np.ndarray:
    """A user's exclusion mask on the grid (bool, True = exclude).

    ``path`` is either

    * GeoJSON (``.geojson``/``.json``): a FeatureCollection, Feature or bare geometry; polygons
      (and multipolygons) count, other geometries are ignored.  Coordinates are lon/lat
      (RFC 7946) unless a legacy ``"crs": {"type": "name", "properties": {"name": ...}}``
      member names another CRS.  Every pixel a polygon touches is excluded; or
    * a raster (GeoTIFF...): non-zero = exclude (nodata and NaN do not), reprojected onto the
      grid with nearest-neighbour resampling.

    On a bare pixel grid (``grid_crs`` None) GeoJSON coordinates are pixel coordinates
    (col, row; any ``crs`` member is ignored) and a raster must have exactly ``shape``.

    Raises :class:`~sitewatch.errors.SceneError` naming the file for a missing or unreadable
    file, broken JSON, no polygons, a mask entirely outside the grid, an un-georeferenced
    raster on a georeferenced grid or a wrong-shape raster on a pixel grid.
    """
    p = Path(path)
    if not p.is_file():
        raise SceneError(f"user mask {p}: no such file")
    if p.suffix.lower() in _VECTOR_SUFFIXES:
        return _vector_mask(p, grid_crs, transform, shape)
    return _raster_mask(p, grid_crs, transform, shape)


def _polygons(obj: Any, p: Path) -> Iterator[dict[str, Any]]:
    """The Polygon / MultiPolygon geometries in a GeoJSON object."""
    if not isinstance(obj, dict):
        raise SceneError(f"user mask {p}: not GeoJSON (found {type(obj).__name__})")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise SceneError(f"user mask {p}: FeatureCollection without a features list")
        for f in features:
            yield from _polygons(f, p)
    elif kind == "Feature":
        if obj.get("geometry") is not None:
            yield from _polygons(obj["geometry"], p)
    elif kind == "GeometryCollection":
        for g in obj.get("geometries") or []:
            yield from _polygons(g, p)
    elif kind in ("Polygon", "MultiPolygon"):
        yield obj
    elif kind not in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        raise SceneError(f"user mask {p}: not GeoJSON (unknown type {kind!r})")


def _geojson_crs(obj: dict[str, Any], p: Path) -> CRS:
    member = obj.get("crs")
    if member is None:
        return CRS.from_user_input("OGC:CRS84")
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str) or member.get("type", "name") != "name":
        raise SceneError(f"user mask {p}: unsupported crs member {member!r} "
                         "(expected {\"type\": \"name\", \"properties\": {\"name\": ...}})")
    try:
        return CRS.from_user_input(name)
    except (CRSError, ValueError) as e:
        raise SceneError(f"user mask {p}: unknown CRS {name!r} ({e})") from None


def _vector_mask(p: Path, grid_crs: str | None, transform: Affine,
                 shape: tuple[int, int]) -> np.ndarray:
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SceneError(f"user mask {p}: not valid JSON ({e})") from None
    except OSError as e:
        raise SceneError(f"user mask {p}: cannot read it ({e})") from None
    geoms = []
    for g in _polygons(obj, p):
        try:
            geom = shape_of(g)
        except Exception as e:  # shapely raises several kinds on bad coordinates
            raise SceneError(f"user mask {p}: bad {g.get('type')} coordinates ({e})") from None
        if not geom.is_empty:
            geoms.append(mapping(geom))
    if not geoms:
        raise SceneError(f"user mask {p}: no polygons in it")
    if grid_crs is None:
        transform = Affine.identity()
    else:
        src = _geojson_crs(obj, p)
        try:
            geoms = transform_geom(src, grid_crs, geoms)
        except (CRSError, RasterioError, ValueError) as e:
            raise SceneError(f"user mask {p}: cannot reproject its polygons ({e})") from None
    mask = raster_mask(geoms, shape, transform, all_touched=True)
    if not mask.any():
        raise SceneError(f"user mask {p}: its polygons do not overlap the grid")
    return mask


def _footprint(transform: Affine, width: int, height: int) -> Any:
    """The polygon a raster covers, in its own CRS (rotated transforms included)."""
    corners = [transform @ xy for xy in ((0, 0), (width, 0), (width, height), (0, height))]
    return Polygon(corners)


def _raster_mask(p: Path, grid_crs: str | None, transform: Affine,
                 shape: tuple[int, int]) -> np.ndarray:
    from sitewatch.imagery.rasters import open_raster

    try:
        with open_raster(p) as ds:
            data = ds.read(1, masked=True)
            src_crs, src_transform = ds.crs, ds.transform
    except SceneError as e:  # the opener's message names the file already
        why = str(e).removeprefix(f"{p}: ")
        raise SceneError(f"user mask {p}: cannot read it as a raster ({why})") from None
    except RasterioError as e:
        raise SceneError(f"user mask {p}: cannot read it as a raster ({e})") from None
    values = np.ma.filled(data, 0)
    exclude = values != 0
    if np.issubdtype(values.dtype, np.floating):
        exclude &= ~np.isnan(values)
    if grid_crs is None:
        if exclude.shape != tuple(shape):
            raise SceneError(f"user mask {p}: {exclude.shape[0]} x {exclude.shape[1]} pixels, "
                             f"the pixel grid is {shape[0]} x {shape[1]}")
        return exclude
    if src_crs is None:
        raise SceneError(f"user mask {p}: the raster has no CRS, so it cannot be placed on "
                         "the grid")
    rows, cols = exclude.shape
    footprint = _footprint(src_transform, cols, rows)
    footprint = footprint.segmentize(footprint.length / 400)
    try:
        on_grid = shape_of(transform_geom(src_crs, grid_crs, mapping(footprint)))
    except (CRSError, RasterioError, ValueError) as e:
        raise SceneError(f"user mask {p}: cannot reproject its footprint ({e})") from None
    grid_box = _footprint(transform, shape[1], shape[0])
    if not (on_grid.is_valid and on_grid.intersection(grid_box).area > 0):
        raise SceneError(f"user mask {p}: the raster does not overlap the grid")
    out = np.zeros(shape, dtype=np.uint8)
    reproject(exclude.astype(np.uint8), out, src_transform=src_transform, src_crs=src_crs,
              dst_transform=transform, dst_crs=grid_crs, resampling=Resampling.nearest)
    return out.astype(bool)

__all__ = ["CIRRUS_MIN", "CLOUD_MIN_BLUE_RED", "CLOUD_MIN_HOT", "CLOUD_MIN_VISIBLE",
           "FMASK_HOT_OFFSET", "FMASK_MAX_NDSI", "FMASK_MAX_NDVI", "FMASK_MAX_WHITENESS",
           "FMASK_MIN_NIR_SWIR", "FMASK_MIN_SWIR22", "Quality", "apply_user_mask",
           "cloud_from_reflectance", "combine", "quality_from_mask", "temporal_cloud_check",
           "user_mask"]
