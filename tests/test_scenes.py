from datetime import UTC, datetime

import numpy as np
import pytest
from affine import Affine

from conftest import SOHAE_UTM, rng_image, write_tif
from sitewatch.errors import SceneError
from sitewatch.imagery.discover import discover
from sitewatch.imagery.scenes import read_scene


def read_one(path, **kw):
    srcs = discover([path])
    assert len(srcs) == 1
    return read_scene(srcs[0], **kw)


def test_multiband_geotiff_with_time_tag(make_tif):
    p = make_tif("scene.tif", rng_image(1), tags={"ACQUISITION_TIME": "2024-03-01T02:30:00Z"},
                 descriptions=["blue", "green", "red", "nir"], nodata=0)
    s = read_one(p)
    assert s.acquired == datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    assert s.time_source == "tag ACQUISITION_TIME"
    assert s.band_names == ["blue", "green", "red", "nir"]
    assert s.resolution == 10 and (s.width, s.height) == (100, 100)
    assert s.georeferenced and s.footprint.contains(s.footprint.centroid)
    lon, lat = s.footprint.centroid.x, s.footprint.centroid.y
    assert abs(lon - 124.705) < 0.01 and abs(lat - 39.66) < 0.01
    assert len(s.checksum) == 64 and s.files[0].size == p.stat().st_size
    assert s.bands[0].nodata == 0


def test_band_names_from_wavelength_tags(make_tif):
    p = make_tif("w.tif", rng_image(2, 3), tags={"ACQUISITION_TIME": "2024-03-01"},
                 band_tags=[{"wavelength": "0.665"}, {"wavelength": "0.842"},
                            {"wavelength": "1.61"}])
    assert read_one(p).band_names == ["red", "nir", "swir16"]


def test_sentinel2_band_set(tmp_path):
    d = tmp_path / "S2"
    img = rng_image(3, 1, 100)[0]
    for b in ("B02", "B03", "B04", "B08"):
        write_tif(d / f"T51SUJ_20240301T021601_{b}.tif", img)
    t20 = Affine(20, 0, SOHAE_UTM[0] - 500, 0, -20, SOHAE_UTM[1] + 500)
    write_tif(d / "T51SUJ_20240301T021601_B11.tif", img[::2, ::2], transform=t20)
    write_tif(d / "T51SUJ_20240301T021601_SCL.tif", np.zeros((50, 50), np.uint8), transform=t20)
    s = read_one(d)
    assert s.band_names == ["blue", "green", "red", "nir", "swir16"]
    assert s.sensor == "sentinel-2" and s.resolution == 10
    assert s.band("swir1").resolution == 20 and s.band("red").scale == pytest.approx(1e-4)
    assert [m.kind for m in s.masks] == ["scl"]
    assert s.id == "S2_20240301_T51SUJ"
    # Naming one band file brings its siblings along.
    assert read_one(d / "T51SUJ_20240301T021601_B04.tif").band_names == s.band_names


def test_landsat_band_set_with_fmask(tmp_path):
    d = tmp_path / "LE70350322008118EDC00"
    for b in ("b3", "b4", "b5"):
        write_tif(d / f"LE70350322008118EDC00_{b}.tif", rng_image(4, 1).astype(np.int16),
                  nodata=-9999)
    write_tif(d / "LE70350322008118EDC00_fmask.tif", np.zeros((100, 100), np.uint8))
    s = read_one(d)
    assert s.platform == "LE07" and s.acquired.date().isoformat() == "2008-04-27"
    assert s.band_names == ["red", "nir", "swir16"]
    assert s.masks[0].kind == "fmask" and s.band("red").scale == pytest.approx(1e-4)


def test_envi_with_header(tmp_path):
    data = rng_image(5, 2).astype(np.uint8)
    (tmp_path / "img").write_bytes(data.tobytes())
    (tmp_path / "img.hdr").write_text(
        "ENVI\nsamples = 100\nlines = 100\nbands = 2\nheader offset = 0\n"
        "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\nbyte order = 0\n"
        "map info = {UTM, 1.000, 1.000, 646000.0, 4392000.0, 3.0e+001, 3.0e+001, 51, North, "
        "WGS-84, units=Meters}\nwavelength units = Micrometers\n"
        "wavelength = {0.66, 0.84}\nacquisition time = 2001-05-06T02:00:00Z\n"
    )
    s = read_one(tmp_path)
    assert s.band_names == ["red", "nir"] and s.resolution == 30
    assert s.acquired.date().isoformat() == "2001-05-06"
    assert {f.path.rsplit("/", 1)[-1] for f in s.files} == {"img", "img.hdr"}


def test_plain_png_needs_time_and_is_pixel_grid(make_tif):
    p = make_tif("photo.png", rng_image(6, 3).astype(np.uint8), crs=None, driver="PNG")
    with pytest.raises(SceneError, match=r"photo.png: acquisition time unknown.*--time"):
        read_one(p)
    s = read_one(p, time=datetime(2020, 1, 2, tzinfo=UTC))
    assert not s.georeferenced and s.footprint is None and s.time_source == "given"
    assert any("pixel grid only" in w for w in s.warnings)


def test_text_file_named_tif(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("this is not an image")
    with pytest.raises(SceneError, match=r"notes.tif: not a readable raster image"):
        read_one(p)


def test_truncated_geotiff(make_tif, tmp_path):
    p = make_tif("full.tif", rng_image(7, 4, 300), tags={"ACQUISITION_TIME": "2024-01-01"})
    raw = p.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SceneError, match=r"cut.tif: .*(corrupt or truncated|not a readable)"):
        read_one(cut)


def test_band_set_with_mixed_crs(tmp_path):
    d = tmp_path / "mix"
    img = rng_image(8, 1)[0]
    write_tif(d / "T51SUJ_20240301T021601_B02.tif", img)
    write_tif(d / "T51SUJ_20240301T021601_B03.tif", img, crs="EPSG:32652")
    with pytest.raises(SceneError, match="differs"):
        read_one(d)


def test_missing_path():
    with pytest.raises(SceneError, match="no such file or folder"):
        discover(["/nonexistent/x.tif"])


def test_product_layouts_make_one_scene_each(tmp_path):
    """Auxiliary layers of standard products are not scenes, bands or masks."""
    img = rng_image(9, 1)[0]
    c2 = tmp_path / "c2"
    stem = "LC08_L2SP_118032_20200101_20200113_02_T1"
    for b in ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "QA_PIXEL", "QA_RADSAT", "SR_QA_AEROSOL",
              "ST_B10", "ST_QA", "ST_TRAD"):
        write_tif(c2 / f"{stem}_{b}.TIF", img)
    (srcs,) = [discover([c2])]
    assert len(srcs) == 1
    s = read_scene(srcs[0])
    assert s.band_names == ["blue", "green", "red", "nir"] and [m.kind for m in s.masks] == [
        "qa_pixel"]
    # Collection 2 L2 surface reflectance scale.
    assert (s.band("red").scale, s.band("red").offset) == (2.75e-5, -0.2)

    espa = tmp_path / "espa"
    for b in ("sr_band3", "sr_band4", "pixel_qa", "radsat_qa", "sr_cloud_qa"):
        write_tif(espa / f"LC08_L1TP_035032_20200101_20200113_01_T1_{b}.tif",
                  img.astype(np.int16))
    (src,) = discover([espa])
    s = read_scene(src)
    assert s.band_names == ["green", "red"] and s.masks[0].kind == "pixel_qa"  # OLI numbering

    safe = tmp_path / "s2"
    for b in ("B02", "B03", "B04", "B08", "TCI", "AOT", "WVP"):
        write_tif(safe / f"T51SUJ_20240301T021601_{b}_10m.jp2.tif", img)
    assert len(discover([safe])) == 1
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "._T51SUJ_20240301T021601_B02.tif").write_text("macOS junk")
    write_tif(tmp_path / "hidden" / "T51SUJ_20240301T021601_B02.tif", img)
    assert len(discover([tmp_path / "hidden"])) == 1


def test_sentinel2_scale_follows_processing_baseline(tmp_path):
    img = rng_image(10, 1)[0]
    old = "S2B_MSIL2A_20190601T021609_N0212_R003_T51SUJ_20190601T050000"
    new = "S2B_MSIL2A_20190601T021609_N0500_R003_T51SUJ_20230101T050000"
    for stem, offset in ((old, 0.0), (new, -0.1)):
        d = tmp_path / stem
        write_tif(d / f"{stem}_B04.tif", img)
        s = read_one(d)
        assert s.band("red").offset == offset and s.band("red").scale == pytest.approx(1e-4)
        assert s.band("red").nodata == 0  # DN 0 is Sentinel-2's fill, declared or not


def test_undeclared_sentinel2_fill_is_not_observed(tmp_path):
    from sitewatch.imagery.grid import load_scene, site_grid
    from sitewatch.sites.site import builtin_site

    grid = site_grid(builtin_site("sohae-sim"), 10.0, margin_m=0)
    left, _, _, top = grid.bounds
    t = Affine(10, 0, left, 0, -10, top)
    img = np.full((grid.height, grid.width), 1500, np.uint16)
    img[:, :50] = 0  # swath edge: DN 0, no nodata declared in the file
    d = tmp_path / "S2"
    write_tif(d / "T51SUJ_20240301T021601_B04.tif", img, transform=t)
    g = load_scene(read_one(d), grid, ["red"])
    assert not g.valid[:, :49].any() and g.valid[:, 51:].all()
    assert np.nanmin(g.band("red")) == pytest.approx(0.05)  # (1500 - 1000) / 10000


def test_naive_times_are_utc(make_tif, monkeypatch):
    import time as _time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    _time.tzset()
    try:
        p = make_tif("x.png", rng_image(6, 3).astype(np.uint8), crs=None, driver="PNG")
        s = read_one(p, time=datetime(2020, 1, 1))
        assert s.acquired == datetime(2020, 1, 1, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()


def test_sentinel2_safe_resolution_folders_make_one_scene(tmp_path):
    img = rng_image(11, 1)[0]
    t20 = Affine(20, 0, SOHAE_UTM[0] - 500, 0, -20, SOHAE_UTM[1] + 500)
    granule = tmp_path / "S2B.SAFE" / "GRANULE" / "L2A_T51SUJ" / "IMG_DATA"
    stem = "T51SUJ_20240301T021601"
    for b in ("B02", "B03", "B04", "B08", "TCI"):
        write_tif(granule / "R10m" / f"{stem}_{b}_10m.tif", img)
    for b in ("B02", "B11", "SCL", "AOT"):
        write_tif(granule / "R20m" / f"{stem}_{b}_20m.tif", img[::2, ::2], transform=t20)
    (src,) = discover([tmp_path / "S2B.SAFE"])
    s = read_scene(src)
    assert s.band_names == ["blue", "green", "red", "nir", "swir16"]
    assert s.band("blue").resolution == 10 and [m.kind for m in s.masks] == ["scl"]
