"""Spectral cloud test, temporal check and user exclusion masks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from scipy.ndimage import binary_dilation

from sitewatch.errors import SceneError
from sitewatch.imagery.masks import (
    Quality,
    apply_user_mask,
    cloud_from_reflectance,
    temporal_cloud_check,
    user_mask,
)

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
CLOUD = (0.45, 0.44, 0.43, 0.45, 0.35, 0.25)
PAD = (0.26, 0.28, 0.30, 0.32, 0.36, 0.30)
BRIGHT_PAD = (0.36, 0.38, 0.40, 0.42, 0.46, 0.40)  # the top of the 0.25-0.4 range
VEGETATION = (0.04, 0.07, 0.05, 0.35, 0.18, 0.09)
WATER = (0.08, 0.06, 0.04, 0.02, 0.01, 0.005)
SNOW = (0.80, 0.80, 0.78, 0.70, 0.08, 0.05)
SAND = (0.20, 0.27, 0.35, 0.40, 0.48, 0.42)


def pixels(*spectra: tuple[float, ...], names: tuple[str, ...] = BANDS) -> dict[str, np.ndarray]:
    """One pixel per spectrum, in a 1 x n image."""
    arr = np.array(spectra, dtype=np.float32).T  # bands x pixels
    return {k: arr[i][None, :] for i, k in enumerate(names)}


# --- cloud_from_reflectance -------------------------------------------------------------------


@pytest.mark.parametrize(("spectrum", "expected"), [
    (CLOUD, Quality.CLOUD),
    (PAD, Quality.VALID),
    (BRIGHT_PAD, Quality.VALID),
    (VEGETATION, Quality.VALID),
    (WATER, Quality.VALID),
    (SAND, Quality.VALID),
])
def test_cloud_from_reflectance_classes(spectrum, expected):
    q = cloud_from_reflectance(pixels(spectrum))
    assert q.dtype == np.uint8 and q.shape == (1, 1)
    assert q[0, 0] == expected


def test_snow_is_not_cloud():
    assert cloud_from_reflectance(pixels(SNOW))[0, 0] != Quality.CLOUD


def test_cloud_without_swir_bands():
    names = ("blue", "green", "red", "nir")
    q = cloud_from_reflectance(pixels(CLOUD[:4], PAD[:4], VEGETATION[:4], names=names))
    assert q.tolist() == [[Quality.CLOUD, Quality.VALID, Quality.VALID]]


def test_dark_swir22_is_not_cloud():
    dark = (*CLOUD[:5], 0.02)  # Fmask's basic test: clouds are not dark at 2.2 um
    assert cloud_from_reflectance(pixels(dark))[0, 0] == Quality.VALID


def test_cirrus_band():
    b = pixels(PAD, PAD, CLOUD)
    b["cirrus"] = np.array([[0.02, 0.005, 0.03]], dtype=np.float32)
    q = cloud_from_reflectance(b)
    assert q.tolist() == [[Quality.CIRRUS, Quality.VALID, Quality.CLOUD]]


def test_nan_pixels_stay_valid_without_warnings():
    b = pixels(CLOUD, CLOUD, (0.0,) * 6)
    for k in b:
        b[k][0, 1] = np.nan
    b["cirrus"] = np.array([[0.0, np.nan, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = cloud_from_reflectance(b)
    assert q.tolist() == [[Quality.CLOUD, Quality.VALID, Quality.VALID]]


def test_cloud_image_shape_and_missing_band():
    rng = np.random.default_rng(0)
    b = {k: rng.uniform(0, 0.2, (3, 4)).astype(np.float32) for k in BANDS}
    for k, v in zip(BANDS, CLOUD, strict=True):
        b[k][1, 2] = v
    q = cloud_from_reflectance(b)
    assert q.shape == (3, 4)
    assert np.argwhere(q == Quality.CLOUD).tolist() == [[1, 2]]
    with pytest.raises(SceneError, match="nir"):
        cloud_from_reflectance({k: b[k] for k in ("blue", "green", "red")})


# --- temporal_cloud_check ---------------------------------------------------------------------


def test_temporal_check_clears_stable_bright_surface_only():
    # date A: a white roof (flagged: flat, bright, bluish) and a real cloud over a pad.
    roof = (0.50, 0.50, 0.49, 0.55, 0.45, 0.35)
    a = pixels(roof, CLOUD, CLOUD)
    b = pixels(roof, PAD, (np.nan,) * 6)
    qa = cloud_from_reflectance(a)
    assert qa.tolist() == [[Quality.CLOUD] * 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = temporal_cloud_check(qa, a, b)
    assert out.tolist() == [[Quality.VALID, Quality.CLOUD, Quality.CLOUD]]  # NaN: kept
    assert qa.tolist() == [[Quality.CLOUD] * 3]  # input untouched


def test_temporal_check_tolerance_and_other_codes():
    a = pixels(CLOUD, CLOUD, CLOUD, CLOUD)
    b = pixels(CLOUD, tuple(v - 0.05 for v in CLOUD), tuple(v - 0.12 for v in CLOUD), CLOUD)
    q = np.array([[Quality.CIRRUS, Quality.CLOUD, Quality.CLOUD, Quality.SHADOW]], np.uint8)
    out = temporal_cloud_check(q, a, b)
    assert out.tolist() == [[Quality.VALID, Quality.VALID, Quality.CLOUD, Quality.SHADOW]]
    assert temporal_cloud_check(q, a, b, tolerance=0.02)[0, 1] == Quality.CLOUD


# --- apply_user_mask --------------------------------------------------------------------------


def test_apply_user_mask_keeps_other_reasons():
    q = np.array([[0, 0, 1, 2]], np.uint8)
    out = apply_user_mask(q, np.array([[True, False, True, True]]))
    assert out.tolist() == [[Quality.MASKED, Quality.VALID, Quality.NODATA, Quality.CLOUD]]
    assert q.tolist() == [[0, 0, 1, 2]]
    with pytest.raises(ValueError, match="shape"):
        apply_user_mask(q, np.zeros((2, 2), bool))


# --- user_mask --------------------------------------------------------------------------------

GRID_CRS = CRS.from_epsg(32651).to_wkt()
GRID_TRANSFORM = Affine(10, 0, 645_800, 0, -10, 4_391_600)  # near 124.7E 39.66N
GRID_SHAPE = (20, 24)
TO_LONLAT = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True)
ROWS, COLS = slice(5, 10), slice(4, 12)  # the block the test polygons cover


def block() -> np.ndarray:
    m = np.zeros(GRID_SHAPE, bool)
    m[ROWS, COLS] = True
    return m


def block_ring(inset: float) -> list[tuple[float, float]]:
    """The UTM corners of the block, moved ``inset`` metres inwards (closed ring)."""
    t = GRID_TRANSFORM
    x0, y0 = t @ (COLS.start, ROWS.start)
    x1, y1 = t @ (COLS.stop, ROWS.stop)
    x0, x1, y0, y1 = x0 + inset, x1 - inset, y0 - inset, y1 + inset
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def polygon(ring: list[tuple[float, float]]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(xy) for xy in ring]]}


def lonlat(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [TO_LONLAT.transform(x, y) for x, y in ring]


def test_geojson_lonlat_polygon_masks_block(tmp_path):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": polygon(lonlat(block_ring(1.0)))},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                           "coordinates": [124.7, 39.66]}},
    ]}
    m = user_mask(write_json(tmp_path / "m.geojson", fc), GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
    assert m.dtype == bool and m.shape == GRID_SHAPE
    np.testing.assert_array_equal(m, block())


def test_geojson_exact_pixel_edges_within_one_pixel(tmp_path):
    geom = polygon(lonlat(block_ring(0.0)))  # bare geometry, edges on pixel boundaries
    m = user_mask(write_json(tmp_path / "m.json", geom), GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
    assert m[block()].all()
    assert not m[~binary_dilation(block())].any()


@pytest.mark.parametrize("name", ["EPSG:32651", "urn:ogc:def:crs:EPSG::32651"])
def test_geojson_legacy_crs_member(tmp_path, name):
    feature = {"type": "Feature", "properties": None, "geometry": polygon(block_ring(1.0)),
               "crs": {"type": "name", "properties": {"name": name}}}
    m = user_mask(write_json(tmp_path / "m.geojson", feature), GRID_CRS, GRID_TRANSFORM,
                  GRID_SHAPE)
    np.testing.assert_array_equal(m, block())


def test_geojson_pixel_grid(tmp_path):
    ring = [(4.2, 5.2), (11.8, 5.2), (11.8, 9.8), (4.2, 9.8), (4.2, 5.2)]  # col, row
    path = write_json(tmp_path / "m.geojson", polygon(ring))
    m = user_mask(path, None, Affine.identity(), GRID_SHAPE)
    np.testing.assert_array_equal(m, block())


def write_mask_tif(path: Path, data: np.ndarray, crs: str | None, transform: Affine,
                   nodata: float | None = None) -> Path:
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "nodata": nodata}
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


def test_raster_mask_same_crs_finer_resolution(tmp_path):
    # 5 m mask starting 100 m west and north of the grid; the block in 5 m pixels
    t = Affine(5, 0, 645_700, 0, -5, 4_391_700)
    data = np.zeros((80, 80), np.uint8)
    data[20 + 2 * ROWS.start: 20 + 2 * ROWS.stop, 20 + 2 * COLS.start: 20 + 2 * COLS.stop] = 3
    data[0, 0] = 255  # nodata: not excluded (and outside the grid anyway)
    path = write_mask_tif(tmp_path / "m.tif", data, "EPSG:32651", t, nodata=255)
    m = user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
    np.testing.assert_array_equal(m, block())


def test_raster_mask_lonlat_reprojected(tmp_path):
    # A lon/lat raster: ones in its western half.  Expected: grid pixels whose centre, in
    # lon/lat, falls in a west-half source pixel (nearest-neighbour resampling).
    west, north, step = 124.6860, 39.6680, 0.0001  # boundary at 124.701E
    t = Affine(step, 0, west, 0, -step, north)
    data = np.zeros((200, 300), np.float32)
    data[:, :150] = 1.0
    data[60:80, 150:170] = np.nan  # NaN is not excluded (east of the boundary, on the grid)
    path = write_mask_tif(tmp_path / "m.tif", data, "EPSG:4326", t)
    m = user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
    rows, cols = np.mgrid[0:GRID_SHAPE[0], 0:GRID_SHAPE[1]]
    x, y = GRID_TRANSFORM @ (cols + 0.5, rows + 0.5)
    lon, lat = TO_LONLAT.transform(x, y)
    src_col = np.floor((lon - west) / step).astype(int)
    assert ((lat < north) & (lat > north - 200 * step)).all()  # the grid lies inside the mask
    expected = src_col < 150
    assert 0 < expected.sum() < expected.size  # the boundary crosses the grid
    assert (m != expected).sum() <= GRID_SHAPE[0]  # at most a pixel per row on the boundary


def test_raster_mask_partial_overlap(tmp_path):
    # all ones, but it only reaches 5 pixels into the grid: the rest stays unmasked
    t = Affine(10, 0, 645_750, 0, -10, 4_391_600)
    path = write_mask_tif(tmp_path / "m.tif", np.ones((20, 10), np.uint8), "EPSG:32651", t)
    m = user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
    assert m[:, :5].all() and not m[:, 5:].any()


def test_raster_mask_pixel_grid(tmp_path):
    data = block().astype(np.uint8)
    path = write_mask_tif(tmp_path / "m.tif", data, None, Affine.identity())
    m = user_mask(path, None, Affine.identity(), GRID_SHAPE)
    np.testing.assert_array_equal(m, block())


def test_raster_all_zero_but_overlapping_is_fine(tmp_path):
    path = write_mask_tif(tmp_path / "m.tif", np.zeros((20, 24), np.uint8), "EPSG:32651",
                          GRID_TRANSFORM)
    assert not user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE).any()


# --- user_mask errors -------------------------------------------------------------------------


def test_user_mask_missing_file(tmp_path):
    with pytest.raises(SceneError, match="nope.geojson.*no such file"):
        user_mask(tmp_path / "nope.geojson", GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)


def test_user_mask_malformed_json_names_file(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(SceneError, match=r"broken\.geojson.*not valid JSON"):
        user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)


def test_user_mask_not_geojson_and_no_polygons(tmp_path):
    with pytest.raises(SceneError, match="not GeoJSON"):
        user_mask(write_json(tmp_path / "a.json", [1, 2]), GRID_CRS, GRID_TRANSFORM,
                  GRID_SHAPE)
    point = {"type": "Point", "coordinates": [124.7, 39.66]}
    with pytest.raises(SceneError, match=r"b\.json.*no polygons"):
        user_mask(write_json(tmp_path / "b.json", point), GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)


def test_user_mask_polygon_outside_grid(tmp_path):
    ring = [(x + 0.05, y) for x, y in lonlat(block_ring(1.0))]  # ~4 km east
    with pytest.raises(SceneError, match=r"far\.geojson.*do not overlap"):
        user_mask(write_json(tmp_path / "far.geojson", polygon(ring)), GRID_CRS,
                  GRID_TRANSFORM, GRID_SHAPE)


def test_user_mask_bad_crs_member(tmp_path):
    feature = {"type": "Feature", "geometry": polygon(block_ring(1.0)),
               "crs": {"type": "name", "properties": {"name": "EPSG:nope"}}}
    with pytest.raises(SceneError, match="unknown CRS"):
        user_mask(write_json(tmp_path / "m.geojson", feature), GRID_CRS, GRID_TRANSFORM,
                  GRID_SHAPE)


def test_raster_mask_outside_grid(tmp_path):
    t = GRID_TRANSFORM @ Affine.translation(1000, 0)  # 10 km east
    path = write_mask_tif(tmp_path / "far.tif", np.ones((20, 24), np.uint8), "EPSG:32651", t)
    with pytest.raises(SceneError, match=r"far\.tif.*does not overlap"):
        user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)


def test_raster_mask_wrong_shape_on_pixel_grid(tmp_path):
    path = write_mask_tif(tmp_path / "small.tif", np.ones((10, 10), np.uint8), None,
                          Affine.identity())
    with pytest.raises(SceneError, match=r"small\.tif.*10 x 10.*20 x 24"):
        user_mask(path, None, Affine.identity(), GRID_SHAPE)


def test_raster_mask_without_crs_on_georeferenced_grid(tmp_path):
    path = write_mask_tif(tmp_path / "bare.tif", np.ones((20, 24), np.uint8), None,
                          Affine.identity())
    with pytest.raises(SceneError, match=r"bare\.tif.*no CRS"):
        user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)


def test_corrupt_raster(tmp_path):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(SceneError, match=r"junk\.tif.*cannot read"):
        user_mask(path, GRID_CRS, GRID_TRANSFORM, GRID_SHAPE)
