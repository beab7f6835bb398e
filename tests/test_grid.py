from datetime import UTC, datetime

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from conftest import rng_image, write_tif
from sitewatch.errors import GridError, SceneError
from sitewatch.imagery.discover import discover
from sitewatch.imagery.grid import _src_window, load_scene, pixel_grid, site_grid
from sitewatch.imagery.masks import Quality, quality_from_mask
from sitewatch.imagery.scenes import read_scene
from sitewatch.sites.site import builtin_site


def scene_of(path, **kw):
    return read_scene(discover([path])[0], **kw)


def centres(grid):
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x, y = grid.transform @ (cols + 0.5, rows + 0.5)
    return x, y


@pytest.fixture
def site():
    return builtin_site("sohae-sim")


def test_site_grid_is_aligned_utm_and_covers_the_site(site):
    g = site_grid(site, 10.0, margin_m=100)
    assert g.rio_crs.to_epsg() == 32651
    assert g.transform.c % 10 == 0 and g.transform.f % 10 == 0
    from sitewatch.imagery.geo import to_crs

    b = to_crs(site.boundary, "EPSG:4326", g.crs).bounds
    left, bottom, right, _top = g.bounds
    assert left <= b[0] - 100 and right >= b[2] + 100 and bottom <= b[1] - 100
    assert right - (b[2] + 100) < 10  # no more than one extra pixel
    g3 = site_grid(site, 3.0)
    assert g3.resolution == 3 and g3.width > 3 * g.width - 50
    with pytest.raises(GridError):
        site_grid(site, 0)


def test_pixels_land_where_their_coordinates_say(tmp_path, site):
    """A 5 m UTM source whose bands hold each pixel's own x and y, on a shifted origin."""
    grid = site_grid(site, 10.0)
    left, bottom, right, top = grid.bounds
    t = Affine(5, 0, left - 137.5, 0, -5, top + 92.5)  # not aligned to the grid
    w, h = int((right - left + 300) / 5), int((top - bottom + 200) / 5)
    rows, cols = np.mgrid[0:h, 0:w]
    x, y = t @ (cols + 0.5, rows + 0.5)
    p = write_tif(tmp_path / "coords.tif", np.stack([x, y]).astype(np.float64), transform=t,
                  tags={"ACQUISITION_TIME": "2024-01-01"}, descriptions=["b1", "b2"])
    img = load_scene(scene_of(p), grid, bands=None)
    gx, gy = centres(grid)
    assert img.valid.all()
    # float32 holds 6e5 to ~0.06 m: the values are the grid's own centres.
    assert np.abs(img.data[0] - gx).max() < 0.2
    assert np.abs(img.data[1] - gy).max() < 0.2


def test_geographic_source_reprojects(tmp_path, site):
    """An EPSG:4326 source holding lon/lat lands on the UTM grid at the right places."""
    grid = site_grid(site, 10.0, margin_m=0)
    lon0, lat0, lon1, lat1 = site.boundary.bounds
    res = 5e-5
    t = Affine(res, 0, lon0 - 0.005, 0, -res, lat1 + 0.005)
    w, h = int((lon1 - lon0 + 0.01) / res), int((lat1 - lat0 + 0.01) / res)
    rows, cols = np.mgrid[0:h, 0:w]
    lon, lat = t @ (cols + 0.5, rows + 0.5)
    # Offsets from the corner: float32 keeps ~1e-8 degree there (not at 124.7 degrees).
    p = write_tif(tmp_path / "ll.tif", np.stack([lon - lon0, lat - lat0]), crs="EPSG:4326",
                  transform=t,
                  tags={"ACQUISITION_TIME": "2024-01-01"})
    img = load_scene(scene_of(p), grid, bands=None)
    gx, gy = centres(grid)
    elon, elat = Transformer.from_crs(32651, 4326, always_xy=True).transform(gx, gy)
    # GDAL's approximate transformer is allowed 0.125 source pixel (6.25e-6 degree here).
    tol = 0.125 * res
    assert np.abs(img.data[0] - (elon - lon0)).max() < tol
    assert np.abs(img.data[1] - (elat - lat0)).max() < tol


def test_only_the_needed_window_is_read(tmp_path, site):
    grid = site_grid(site, 10.0)
    left, _bottom, _right, top = grid.bounds
    t = Affine(10, 0, left - 20_000, 0, -10, top + 20_000)  # a 60 km square image
    with rasterio.open(tmp_path / "big.tif", "w", driver="GTiff", width=6000, height=6000,
                       count=1, dtype="uint8", crs="EPSG:32651", transform=t, tiled=True,
                       sparse_ok=True) as ds:
        win = _src_window(ds, grid)
    assert win.width <= grid.width + 5 and win.height <= grid.height + 5
    assert (win.col_off, win.row_off) == (1998, 1998)


def test_nodata_and_provider_masks(tmp_path, site):
    grid = site_grid(site, 10.0, margin_m=0)
    left, _, _, top = grid.bounds
    t = Affine(10, 0, left, 0, -10, top)
    data = rng_image(1, 3, grid.width).astype(np.int16)[:, : grid.height, :]
    data[:, :10, :] = -9999  # nodata strip
    fmask = np.zeros(data.shape[1:], np.uint8)
    fmask[20:30, :] = 4  # cloud
    fmask[40:45, :] = 2  # shadow
    d = tmp_path / "LE70350322008118EDC00"
    for i, b in enumerate(("b3", "b4", "b5")):
        write_tif(d / f"LE70350322008118EDC00_{b}.tif", data[i], transform=t, nodata=-9999)
    write_tif(d / "LE70350322008118EDC00_fmask.tif", fmask, transform=t)
    img = load_scene(scene_of(d), grid, bands=["red", "nir", "swir1"])
    assert img.bands == ("red", "nir", "swir16")
    q = img.quality
    assert (q[:10] == Quality.NODATA).all() and (q[20:30] == Quality.CLOUD).all()
    assert (q[40:45] == Quality.SHADOW).all() and (q[50:] == Quality.VALID).all()
    assert np.isnan(img.data[:, 20:30]).all() and np.isfinite(img.data[:, 50:]).all()
    # Values are scaled to reflectance (ESPA surface reflectance x 1e-4).
    assert np.nanmax(img.data) < 1.0
    with pytest.raises(SceneError, match="has no band 'blue'"):
        load_scene(scene_of(d), grid, bands=["blue"])


def test_quality_codes_for_each_provider():
    assert quality_from_mask("fmask", np.array([0, 1, 2, 3, 4, 255])).tolist() == [
        0, 0, Quality.SHADOW, Quality.SNOW, Quality.CLOUD, Quality.NODATA]
    qa = np.array([0b0, 0b1, 0b1000, 0b10000, 0b100000, 0b100])
    assert quality_from_mask("qa_pixel", qa).tolist() == [
        0, Quality.NODATA, Quality.CLOUD, Quality.SHADOW, Quality.SNOW, Quality.CIRRUS]
    scl = np.array([0, 1, 3, 4, 5, 8, 9, 10, 11])
    assert quality_from_mask("scl", scl).tolist() == [
        Quality.NODATA, Quality.DEFECTIVE, Quality.SHADOW, 0, 0, Quality.CLOUD, Quality.CLOUD,
        Quality.CIRRUS, Quality.SNOW]


def test_pixel_grid_scene(make_tif):
    p = make_tif("plain.png", rng_image(3, 3).astype(np.uint8), crs=None, driver="PNG")
    sc = scene_of(p, time=datetime(2024, 1, 1, tzinfo=UTC))
    img = load_scene(sc, pixel_grid(sc), bands=None)
    assert img.data.shape == (3, 100, 100) and img.valid.all()
    with pytest.raises(GridError, match="no georeferencing"):
        load_scene(sc, site_grid(builtin_site("sohae-sim"), 10.0), bands=None)


def test_part_masks(site):
    g = site_grid(site, 10.0)
    masks = g.part_masks(site)
    assert set(masks) == {p.name for p in site.placed_parts()}
    pad = masks["launch_pad"].sum() * 100
    assert pad == pytest.approx(120 * 140, rel=0.1)  # the pad is 120 m x 140 m


def test_grid_in_phase_with_landsat_reads_pixels_unchanged(tmp_path, site):
    """Landsat pixel edges sit at odd multiples of 15 m: the grid follows, no half-pixel blur."""
    from sitewatch.imagery.grid import grid_for_scenes

    g0 = site_grid(site, 30.0)
    left, _, _, top = g0.bounds
    t = Affine(30, 0, left - 15 - 300, 0, -30, top + 15 + 300)
    data = (np.arange(100 * 100).reshape(100, 100) % 97).astype(np.int16)
    d = tmp_path / "LE71190382000077EDC00"
    write_tif(d / "LE71190382000077EDC00_b4.tif", data, transform=t, nodata=-9999)
    sc = scene_of(d)
    grid = grid_for_scenes(site, [sc])
    assert grid.resolution == 30 and grid.transform.c % 30 == pytest.approx((left - 15) % 30)
    img = load_scene(sc, grid, ["nir"])
    # Every grid pixel is exactly one source pixel (scaled by 1e-4): no averaging.
    col0, row0 = ~t @ (grid.transform.c, grid.transform.f)
    c0, r0 = round(col0), round(row0)
    expect = data[r0 : r0 + grid.height, c0 : c0 + grid.width] * 1e-4
    assert np.allclose(img.band("nir"), expect, atol=1e-6)


def test_masked_pixels_and_south_up_and_shift_window(tmp_path, site):
    grid = site_grid(site, 10.0, margin_m=0)
    left, bottom, _, top = grid.bounds
    # An internal (per-dataset) mask and no nodata value: masked pixels are not observed.
    t = Affine(10, 0, left - 200, 0, -10, top + 200)
    h, w = grid.height + 40, grid.width + 40
    data = np.full((h, w), 500, np.uint16)
    p = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
            p, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint16",
            crs="EPSG:32651", transform=t) as ds:
        ds.write(data, 1)
        m = np.full((h, w), 255, np.uint8)
        m[:, : w // 2] = 0
        ds.write_mask(m)
    ds_scene = scene_of(p, time=datetime(2024, 1, 1, tzinfo=UTC))
    img = load_scene(ds_scene, grid, bands=None)
    assert img.quality[:, :5].min() == Quality.NODATA and img.valid[:, -5:].all()
    # A large shift still finds source pixels beyond the unshifted window.
    from sitewatch.imagery.coregister import Shift

    img = load_scene(ds_scene, grid, bands=None, shift=Shift(-15, 12))
    assert img.valid[:, -5:].all()
    # South-up rasters load instead of failing.
    su = Affine(10, 0, left - 200, 0, 10, bottom - 200)
    q = write_tif(tmp_path / "southup.tif", np.ones((h, w), np.float32), transform=su,
                  tags={"ACQUISITION_TIME": "2024-01-01"})
    assert load_scene(scene_of(q), grid, bands=None).valid.all()


def test_cloud_is_resampled_conservatively(tmp_path, site):
    """3 m cloud blobs on a 10 m grid: no grid pixel touched by cloud stays valid."""
    grid = site_grid(site, 10.0, margin_m=0)
    left, _, _, top = grid.bounds
    t = Affine(3, 0, left, 0, -3, top)
    h, w = grid.height * 10 // 3, grid.width * 10 // 3
    rng = np.random.default_rng(0)
    fmask = np.zeros((h, w), np.uint8)
    for y, x in rng.integers(0, min(h, w) - 2, size=(300, 2)):
        fmask[y : y + 2, x : x + 2] = 4
    refl = np.where(fmask == 4, 9000, 1000).astype(np.int16)
    d = tmp_path / "LE71190382000077EDC00"
    write_tif(d / "LE71190382000077EDC00_b4.tif", refl, transform=t, nodata=-9999)
    write_tif(d / "LE71190382000077EDC00_fmask.tif", fmask, transform=t)
    img = load_scene(scene_of(d), grid, ["nir"])
    assert np.nanmax(img.band("nir")[img.valid]) == pytest.approx(0.1, abs=1e-4)
    assert (img.quality == Quality.CLOUD).mean() > (fmask == 4).mean()


def test_landsat_collection1_pixel_qa():
    # 66 = clear + fill-free (bits 1, 6), 322 = clear (+ bits 6, 8), 80 = snow, 72 = shadow,
    # 96 = cloud (+ bit 6), 1 = fill.
    v = np.array([66, 322, 80, 72, 96, 1])
    assert quality_from_mask("pixel_qa", v).tolist() == [
        0, 0, Quality.SNOW, Quality.SHADOW, Quality.CLOUD, Quality.NODATA]
