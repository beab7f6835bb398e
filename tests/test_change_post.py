"""Cleaning and polygonising change maps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, shape

from sitewatch.change.post import clean, feature_collection, polygons
from sitewatch.errors import GridError

UTM = "EPSG:32651"
UTM_TRANSFORM = Affine(10, 0, 500000, 0, -10, 4400000)


def blob_map() -> np.ndarray:
    m = np.zeros((12, 12), bool)
    m[1, 10] = True  # a 1-pixel speck
    m[2:4, 2:7] = True  # a 10-pixel blob (2 x 5)
    m[6:10, 2:8] = True  # a 24-pixel blob ...
    m[7, 4:6] = False  # ... with a 2-pixel hole
    return m


# -- clean -----------------------------------------------------------------------------------


def test_clean_removes_specks_keeps_blobs_fills_holes():
    m = blob_map()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation noise from scikit-image either
        c = clean(m, min_pixels=4, max_hole_pixels=4)
    assert c.dtype == bool and c is not m
    assert not c[1, 10]  # speck gone
    assert c[2:4, 2:7].all()  # 10-pixel blob kept
    assert c[6:10, 2:8].all()  # hole filled
    assert int(c.sum()) == 10 + 24
    assert m[1, 10] and not m[7, 4]  # input untouched


def test_clean_size_limits_are_exact():
    m = blob_map()
    # min_pixels is "at least": a 10-pixel blob survives min_pixels=10, not 11.
    assert clean(m, min_pixels=10, max_hole_pixels=0)[2:4, 2:7].all()
    assert not clean(m, min_pixels=11, max_hole_pixels=0)[2:4, 2:7].any()
    # max_hole_pixels is "at most": the 2-pixel hole is filled at 2, not at 1.
    assert clean(m, min_pixels=1, max_hole_pixels=2)[7, 4:6].all()
    assert not clean(m, min_pixels=1, max_hole_pixels=1)[7, 4:6].any()


def test_clean_disabled_steps_are_no_ops():
    m = blob_map()
    c = clean(m, min_pixels=1, max_hole_pixels=0)
    assert np.array_equal(c, m) and c is not m
    assert np.array_equal(clean(m, min_pixels=0, max_hole_pixels=-3), m)


def test_clean_connectivity():
    m = np.zeros((8, 8), bool)
    m[[1, 2, 3, 4], [1, 2, 3, 4]] = True  # a diagonal line of 4 pixels
    assert clean(m, min_pixels=4, connectivity=2).sum() == 4  # one 8-connected object
    assert clean(m, min_pixels=2, connectivity=1).sum() == 0  # four 4-connected specks


def test_clean_never_marks_unobserved_pixels():
    m = blob_map()
    observed = np.ones_like(m)
    observed[7, 4] = False  # one pixel of the hole is unobserved
    observed[2, 2] = False  # one pixel of the small blob is unobserved
    c = clean(m, observed, min_pixels=4, max_hole_pixels=4)
    assert not c[7, 4] and c[7, 5]
    assert not c[2, 2] and c[2, 3:7].all() and c[3, 2:7].all()
    assert not (c & ~observed).any()
    # Unobserved pixels are cleared before sizing: 9 observed pixels < 10.
    assert not clean(m, observed, min_pixels=10, max_hole_pixels=0)[2:4, 2:7].any()


def test_clean_does_not_fill_open_pockets_at_the_border():
    m = np.zeros((6, 6), bool)
    m[:, 1:4] = True
    m[0, 2] = False  # a notch open to the border, not a hole
    m[3, 2] = False  # an enclosed hole
    c = clean(m, min_pixels=1, max_hole_pixels=4)
    assert not c[0, 2] and c[3, 2]
    assert not c[:, 0].any()  # the strip along the left border is background, not a hole


def test_clean_rejects_bad_input():
    with pytest.raises(GridError, match="2-D"):
        clean(np.zeros(5, bool))
    with pytest.raises(GridError, match="boolean"):
        clean(np.zeros((5, 5), np.uint8))
    with pytest.raises(GridError, match="shape"):
        clean(np.zeros((5, 5), bool), np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="connectivity"):
        clean(np.zeros((5, 5), bool), connectivity=3)


# -- polygons --------------------------------------------------------------------------------


def test_single_block_on_projected_grid():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True  # 3 rows x 4 columns
    feats = polygons(m, UTM_TRANSFORM, UTM)
    assert len(feats) == 1
    f = feats[0]
    assert f["type"] == "Feature"
    p = f["properties"]
    assert p["id"] == 1 and p["pixels"] == 12
    assert p["area_m2"] == pytest.approx(1200.0)
    assert p["mean_score"] is None and p["max_score"] is None
    assert "area_px" not in p
    geom = shape(f["geometry"])
    assert geom.bounds == pytest.approx((500030, 4399950, 500070, 4399980))
    assert geom.equals(box(500030, 4399950, 500070, 4399980))


def test_two_blobs_sorted_by_area_with_scores():
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True  # 4 pixels, first in raster order
    m[5:8, 4:9] = True  # 15 pixels
    score = np.arange(100, dtype=float).reshape(10, 10)
    score[5, 4] = np.nan  # ignored in the statistics
    feats = polygons(m, UTM_TRANSFORM, UTM, score=score)
    assert [f["properties"]["id"] for f in feats] == [1, 2]
    big, small = (f["properties"] for f in feats)
    assert big["pixels"] == 15 and big["area_m2"] == pytest.approx(1500)
    assert small["pixels"] == 4 and small["area_m2"] == pytest.approx(400)
    vals = score[5:8, 4:9]
    assert big["mean_score"] == pytest.approx(np.nanmean(vals))
    assert big["max_score"] == pytest.approx(78.0)
    assert small["mean_score"] == pytest.approx((0 + 1 + 10 + 11) / 4)
    assert small["max_score"] == pytest.approx(11.0)
    # Geometry and properties belong to the same object.
    assert shape(feats[0]["geometry"]).bounds == pytest.approx((500040, 4399920, 500090, 4399950))
    # min_pixels drops the small one.
    assert [f["properties"]["pixels"] for f in polygons(m, UTM_TRANSFORM, UTM, min_pixels=5)] \
        == [15]


def test_object_with_only_nan_scores_has_none_stats():
    m = np.zeros((5, 5), bool)
    m[1:3, 1:3] = True
    score = np.full((5, 5), np.nan)
    p = polygons(m, UTM_TRANSFORM, UTM, score=score)[0]["properties"]
    assert p["mean_score"] is None and p["max_score"] is None


def test_diagonal_pixels_are_one_object():
    m = np.zeros((6, 6), bool)
    m[[1, 2, 3], [1, 2, 3]] = True
    feats = polygons(m, UTM_TRANSFORM, UTM)
    assert len(feats) == 1
    assert feats[0]["properties"]["pixels"] == 3
    assert feats[0]["properties"]["area_m2"] == pytest.approx(300)
    assert shape(feats[0]["geometry"]).is_valid


def test_blob_with_hole():
    m = np.zeros((7, 7), bool)
    m[1:6, 1:6] = True
    m[3, 3] = False
    feats = polygons(m, UTM_TRANSFORM, UTM)
    assert len(feats) == 1
    assert feats[0]["properties"]["pixels"] == 24
    assert feats[0]["properties"]["area_m2"] == pytest.approx(2400)
    assert len(shape(feats[0]["geometry"]).interiors) == 1


def test_geographic_area_matches_projected_reference():
    # The same 6 x 8 pixel footprint in UTM 51N, and in lon/lat on a grid through its corner.
    m = np.zeros((10, 10), bool)
    m[2:8, 1:9] = True
    m[4, 4] = False  # a hole, so ring orientation matters
    ref = polygons(m, UTM_TRANSFORM, UTM)[0]["properties"]["area_m2"]
    assert ref == pytest.approx(4700)
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(500000, 4400000)
    lon1, lat1 = to_ll.transform(500010, 4399990)
    geo = Affine(lon1 - lon0, 0, lon0, 0, lat1 - lat0, lat0)
    p = polygons(m, geo, "EPSG:4326")[0]["properties"]
    assert p["pixels"] == 47
    assert p["area_m2"] == pytest.approx(ref, rel=0.01)
    assert "area_px" not in p


def test_pixel_grid_area_in_pixels():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    p = polygons(m, Affine.identity())[0]["properties"]
    assert p["area_px"] == pytest.approx(12) and p["area_m2"] is None and p["pixels"] == 12


def test_polygons_empty_and_bad_input():
    assert polygons(np.zeros((4, 4), bool), UTM_TRANSFORM, UTM) == []
    with pytest.raises(GridError, match="score has shape"):
        polygons(np.ones((4, 4), bool), UTM_TRANSFORM, UTM, score=np.ones((3, 4)))


# -- feature_collection ----------------------------------------------------------------------


def test_feature_collection_reprojects_to_lonlat():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    feats = polygons(m, UTM_TRANSFORM, UTM)
    fc = feature_collection(feats, UTM)
    assert fc["type"] == "FeatureCollection" and "sitewatch:coordinates" not in fc
    f = fc["features"][0]
    assert f["properties"] == feats[0]["properties"]
    ring = np.asarray(f["geometry"]["coordinates"][0])
    lon, lat = ring[:, 0], ring[:, 1]
    assert ((lon > 122) & (lon < 124)).all() and ((lat > 39) & (lat < 41)).all()
    # The block's north-west corner (UTM 500030, 4399980) maps where pyproj says it should.
    exp = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(500030, 4399980)
    assert np.min(np.hypot(lon - exp[0], lat - exp[1])) < 1e-9
    # Input features are untouched.
    assert shape(feats[0]["geometry"]).bounds[0] == pytest.approx(500030)


def test_feature_collection_keeps_wgs84_and_pixel_coordinates():
    m = np.zeros((4, 4), bool)
    m[1:3, 1:3] = True
    geo = Affine(0.001, 0, 123, 0, -0.001, 40)
    feats = polygons(m, geo, "EPSG:4326")
    fc = feature_collection(feats, "EPSG:4326")
    assert fc["features"][0]["geometry"] == feats[0]["geometry"]
    assert "sitewatch:coordinates" not in fc

    px = polygons(m, Affine.identity())
    fc = feature_collection(px, None)
    assert fc["sitewatch:coordinates"] == "pixel"
    assert shape(fc["features"][0]["geometry"]).bounds == (1, 1, 3, 3)
