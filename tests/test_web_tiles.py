"""Map tiles of catalogued scenes (sitewatch.web.tiles): georeferencing, masks drawn as a
hatch, transparency outside the grid, stretches, errors, and the display-image cache."""

from __future__ import annotations

import io
import math
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rasterio.warp import transform as warp_transform

from conftest import write_tif
from sitewatch.imagery.grid import GridImage, SiteGrid
from sitewatch.imagery.ingest import ingest
from sitewatch.imagery.masks import Quality
from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site
from sitewatch.web import tiles as tiles_mod
from sitewatch.web.errors import NotFound, WebError
from sitewatch.web.tiles import HATCH_COLOURS, TileSource, display_optical, transparent_tile
from test_pipeline import EVENT_AT, PARAMS, SIZE, TRANSFORM, X0, Y0, catalogue, scene, test_site
from test_sar_watch import T0, backscatter, s1_name, s1_scene, sar_site

#: The planted bright block of test_pipeline's scenes from EVENT_AT on: pixel rows/cols 14-20.
BLOCK = (14, 20)
#: A cloud mask planted in the extra scene: pixel rows 50-80, cols 30-60.
CLOUD = (50, 80, 30, 60)
MASKED_SCENE = "masked_08"


def _utm_of(row: float, col: float) -> tuple[float, float]:
    return X0 + 10 * col, Y0 - 10 * row


def _global_px(x_utm: float, y_utm: float, z: int, crs: str = "EPSG:32651"
               ) -> tuple[float, float]:
    """Global Web-Mercator pixel (x, y) of a UTM point at zoom z."""
    (lon,), (lat,) = warp_transform(crs, "EPSG:4326", [x_utm], [y_utm])
    n = 256 * (1 << z)
    gx = (lon + 180) / 360 * n
    gy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return gx, gy


def _decode(png: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(png))
    assert im.size == (256, 256) and im.mode == "RGBA"
    return np.asarray(im)


def _mosaic(ts: TileSource, site: str, sid: str, z: int, gx: float, gy: float
            ) -> tuple[np.ndarray, float, float]:
    """The 3 x 3 tiles around global pixel (gx, gy), and its position in the mosaic."""
    tx, ty = int(gx // 256), int(gy // 256)
    rows = [np.concatenate([_decode(ts.tile(site, sid, z, x, y))
                            for x in range(tx - 1, tx + 2)], axis=1)
            for y in range(ty - 1, ty + 2)]
    return np.concatenate(rows, axis=0), gx - (tx - 1) * 256, gy - (ty - 1) * 256


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """test_pipeline's site: 8 dates run through the pipeline (the bright block from
    EVENT_AT on), then one more date with a cloud mask, catalogued but never processed."""
    tmp = tmp_path_factory.mktemp("tiles")
    home = tmp / "home"
    with Store.open_path(home / "sitewatch.db") as store:
        catalogue(store, tmp / "imgs", range(8))
        run_site(store, "testsite", PARAMS, products=home / "products")
        mask = np.zeros((1, SIZE, SIZE), np.uint16)
        r0, r1, c0, c1 = CLOUD
        mask[0, r0:r1, c0:c1] = 1
        write_tif(tmp / "more" / f"{MASKED_SCENE}.tif", np.concatenate([scene(8), mask]),
                  transform=TRANSFORM,  # no nodata value: the mask's 0 is "clear"
                  tags={"ACQUISITION_TIME": "2024-06-01T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir", "mask"])
        ingest(store, [tmp / "more"], "testsite", site=test_site())
        yield home, store


def test_the_planted_bright_block_lands_on_its_pixels(watched):
    home, store = watched
    ts = TileSource(home, store)
    sid = f"scene_{EVENT_AT:02d}"
    info = ts.info("testsite", sid)
    z = info["maxzoom"]  # tile pixels ~2.5 m here: the 60 m block is ~20 px across
    gx, gy = _global_px(*_utm_of(17, 17), z)  # the block's centre
    m, px, py = _mosaic(ts, "testsite", sid, z, gx, gy)
    # Over the site the imagery is opaque and not blank.
    around = m[int(py) - 60:int(py) + 60, int(px) - 60:int(px) + 60]
    assert (around[..., 3] == 255).all()
    assert around[..., :3].std() > 10
    # The block (4500, above the landscape's 1000-3000) is white; its centroid is where the
    # UTM coordinates put it, within a pixel or two of the grid (10 m).
    bright = (m[..., :3].min(axis=-1) > 250) & (m[..., 3] == 255)
    ys, xs = np.nonzero(bright)
    assert 200 < ys.size < 1200
    metres_per_px = tiles_mod.ground_resolution(z, info["bbox"][1])
    err_m = math.hypot(xs.mean() - px, ys.mean() - py) * metres_per_px
    assert err_m < 15, f"block centroid {err_m:.1f} m from where it was planted"
    # The stretch says why it is not the fixed reflectance stretch (raw DN 1000-4500).
    assert "not reflectance" in info["stretch"] and "2 %" in info["stretch"]
    assert any(e["swatch"] == "hatch" for e in info["legend"])


def test_info_describes_the_grid(watched):
    home, store = watched
    info = TileSource(home, store).info("testsite", "scene_00")
    w, s, e, n = info["bbox"]
    (lon,), (lat,) = warp_transform("EPSG:32651", "EPSG:4326", [X0 + 480], [Y0 - 480])
    assert w < lon < e and s < lat < n
    assert 0.005 < e - w < 0.05  # ~1 km of the site grid plus its margin
    # 10 m pixels at ~40 N: native zoom ~13.6, so maxzoom 16; minzoom shows the grid small.
    assert info["maxzoom"] == 16 and 8 <= info["minzoom"] < 14
    assert info["kind"] == "optical" and info["resolution_m"] == 10
    assert info["hatch"] == ["rgba(255, 0, 255, 0.75)", "rgba(215, 215, 215, 0.75)"]


def test_a_cloud_mask_is_hatched_never_black(watched):
    home, store = watched
    ts = TileSource(home, store)
    z = 16
    r0, r1, c0, c1 = CLOUD
    gx, gy = _global_px(*_utm_of((r0 + r1) / 2, (c0 + c1) / 2), z)
    m, px, py = _mosaic(ts, "testsite", MASKED_SCENE, z, gx, gy)
    inner = m[int(py) - 40:int(py) + 40, int(px) - 40:int(px) + 40]  # well inside the cloud
    colours = {tuple(int(v) for v in p) for p in inner.reshape(-1, 4)}
    assert colours == {HATCH_COLOURS[0], HATCH_COLOURS[1]}
    # Stripes: both colours in every row, diagonal (a pixel's colour repeats one row down
    # and one column left).
    first = (inner == np.array(HATCH_COLOURS[0])).all(axis=-1)
    assert first.any(axis=1).all() and (~first).any(axis=1).all()
    assert (first[1:, :-1] == first[:-1, 1:]).all()
    # Clear imagery beside the cloud (40 px left of its west edge) is opaque.
    wx, _ = _global_px(*_utm_of((r0 + r1) / 2, c0 - 6), z)
    side = m[int(py) - 10:int(py) + 10, int(wx - (gx - px)) - 10:int(wx - (gx - px)) + 10]
    assert (side[..., 3] == 255).all()
    # Nowhere is a masked pixel drawn black: every opaque pixel is imagery.
    opaque = m[m[..., 3] == 255]
    assert opaque.size and (opaque[:, :3].max(axis=-1) > 30).mean() > 0.99
    info = ts.info("testsite", MASKED_SCENE)
    label = next(e["label"] for e in info["legend"] if e["swatch"] == "hatch")
    assert re.search(r"masked [56]%", label), label  # 30 x 30 of the 128 x 129 px grid


def test_a_scene_with_no_data_is_hatched_everywhere_on_the_grid(watched):
    home, store = watched
    ts = TileSource(home, store)
    z = 15
    gx, gy = _global_px(*_utm_of(48, 48), z)
    m, _, _ = _mosaic(ts, "testsite", "scene_03", z, gx, gy)  # test_pipeline's CLOUDY_AT
    inside = m[m[..., 3] > 0]
    assert {tuple(int(v) for v in p) for p in inside} == {HATCH_COLOURS[0], HATCH_COLOURS[1]}


def test_outside_the_grid_is_transparent(watched):
    home, store = watched
    ts = TileSource(home, store)
    z = 16
    gx, gy = _global_px(*_utm_of(48, 48), z)
    far = ts.tile("testsite", "scene_00", z, int(gx // 256) + 40, int(gy // 256))
    assert far == transparent_tile()
    assert (_decode(far)[..., 3] == 0).all()
    # Across the grid's west edge: transparent west of it, drawn east of it (hatched: the
    # scene's 96 px do not reach the grid's 200 m margin, which is no data).
    from sitewatch.web.tiles import TileSource as _TS

    plan = _TS(home, store)._plan("testsite", "scene_00")
    west = plan.grid.bounds[0]
    y_mid = (plan.grid.bounds[1] + plan.grid.bounds[3]) / 2
    ex, ey = _global_px(west, y_mid, z)
    m, px, py = _mosaic(ts, "testsite", "scene_00", z, ex, ey)
    row = m[int(py)]
    assert (row[: int(px) - 2, 3] == 0).all()
    assert (row[int(px) + 2: int(px) + 60, 3] >= HATCH_COLOURS[0][3]).all()


def test_a_processed_scene_is_drawn_on_its_run_grid_with_its_shift(watched):
    home, store = watched
    ph = store.last_run("testsite").params_hash
    done = store.processed("testsite", ph)
    ts = TileSource(home, store)
    for sid, row in done.items():
        plan = ts._plan("testsite", sid)
        assert plan.shift == (row.registration.applied_shift if row.registration else None)
        if row.products:
            import rasterio

            with rasterio.open(row.products.change) as ds:
                assert plan.grid.transform == ds.transform
                assert plan.grid.shape == (ds.height, ds.width)


def test_reflectance_gets_the_fixed_stretch():
    grid = SiteGrid("EPSG:32651", TRANSFORM, 4, 2)
    data = np.array([[[0.0, 0.15, 0.3, 0.6], [0.05, 0.1, 0.2, np.nan]]] * 3, np.float32)
    q = np.zeros((2, 4), np.uint8)
    q[1, 3] = Quality.CLOUD
    img = GridImage("s", datetime(2024, 1, 1, tzinfo=UTC), "sentinel-2", grid,
                    ("red", "green", "blue"), data, q)
    d = display_optical(img, ("red", "green", "blue"))
    expect = np.round(255 * np.clip(np.array([0, 0.5, 1, 2]), 0, 1) ** (1 / 1.25))
    assert d.rgb[0, 0].tolist() == expect.tolist()
    assert d.masked.tolist() == [[False] * 4, [False] * 3 + [True]]
    assert "reflectance 0 (black) to 0.3 (white)" in d.stretch
    assert "cloud 12%" in d.legend[-1]["label"]


def test_sar_is_grey_in_decibels(tmp_path):
    home = tmp_path / "home"
    write_tif(tmp_path / "s1" / f"{s1_name(119 + 175 * 260, T0)}.tif", s1_scene("A", T0, 5),
              transform=TRANSFORM, descriptions=["VV", "VH"], driver="COG")
    with Store.open_path(home / "sitewatch.db") as store:
        ingest(store, [tmp_path / "s1"], "sarsite", site=sar_site())
        (sc,) = store.scenes("sarsite")
        sid = sc.id
        ts = TileSource(home, store)
        info = ts.info("sarsite", sid)
        assert info["kind"] == "sar" and "dB" in info["stretch"]
        z = 16
        # Where test_sar_watch's backscatter is known (fields around -13 dB, a bright
        # building), the grey is its dB on the -25..0 dB scale (speckle moves the median a
        # little).
        mean_vv = backscatter("A")[0]
        for (r0, r1, c0, c1) in ((5, 25, 40, 60), (31, 35, 61, 69)):
            gx, gy = _global_px(*_utm_of((r0 + r1) / 2, (c0 + c1) / 2), z)
            m, px, py = _mosaic(ts, "sarsite", sid, z, gx, gy)
            opaque = m[m[..., 3] == 255]
            assert (opaque[:, 0] == opaque[:, 1]).all() and (opaque[:, 1] == opaque[:, 2]).all()
            hw, hh = (c1 - c0) * 1.5, (r1 - r0) * 1.5  # ~ half the box in tile pixels (z 16)
            grey = m[int(py - hh):int(py + hh), int(px - hw):int(px + hw), 0]
            want = (10 * np.log10(np.median(mean_vv[r0:r1, c0:c1])) + 25) / 25 * 255
            assert abs(np.median(grey) - want) < 25, (np.median(grey), want)
        assert want > 180  # the building is near white


def test_a_scene_catalogued_after_the_first_request_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles_mod, "SITE_TTL_S", 3600.0)  # only the unknown id reads again
    home = tmp_path / "home"
    with Store.open_path(home / "sitewatch.db") as store:
        catalogue(store, tmp_path / "imgs", range(2))
        ts = TileSource(home, store)
        ts.info("testsite", "scene_00")
        catalogue(store, tmp_path / "imgs", [2])
        time.sleep(1.1)  # the store is read again for an unknown id at most once a second
        info = ts.info("testsite", "scene_02")
        assert info["resolution_m"] == 10


def test_unknown_site_or_scene_is_not_found(watched):
    home, store = watched
    ts = TileSource(home, store)
    with pytest.raises(NotFound, match="nosuchsite"):
        ts.tile("nosuchsite", "scene_00", 10, 1, 1)
    with pytest.raises(NotFound, match="nosuchscene"):
        ts.tile("testsite", "nosuchscene", 10, 1, 1)
    with pytest.raises(NotFound, match="nosuchscene"):
        ts.info("testsite", "nosuchscene")


@pytest.mark.parametrize("zxy", [(-1, 0, 0), (25, 0, 0), (3, 8, 0), (3, 0, 8), (3, -1, 0),
                                 (2, 1.5, 0), (True, 0, 0)])
def test_bad_tile_coordinates_are_400(watched, zxy):
    home, store = watched
    with pytest.raises(WebError) as err:
        TileSource(home, store).tile("testsite", "scene_00", *zxy)
    assert err.value.status == 400 and not isinstance(err.value, NotFound)


def _site_tile(ts: TileSource, sid: str) -> tuple[int, int, int]:
    z = 16
    gx, gy = _global_px(*_utm_of(48, 48), z)
    return z, int(gx // 256), int(gy // 256)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_cache_file_is_rebuilt(tmp_path, watched, damage):
    home, store = watched
    cache = tmp_path / "cache"
    first = TileSource(home, store, cache_dir=cache)
    zxy = _site_tile(first, "scene_01")
    want = first.tile("testsite", "scene_01", *zxy)
    (path,) = (cache / "testsite").glob("scene_01-*.tif")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"II*\0" + b"x" * 500)
    # A new server (nothing in memory) finds it unusable and builds it again.
    again = TileSource(home, store, cache_dir=cache)
    assert again.tile("testsite", "scene_01", *zxy) == want
    assert again.builds == 1 and path.read_bytes() != b"II*\0" + b"x" * 500
    # A file damaged while the server runs: the next tile read fails, and it is rebuilt.
    path.write_bytes(b"II*\0" + b"x" * 500)
    z, x, y = zxy
    assert _decode(again.tile("testsite", "scene_01", z, x + 1, y))[..., 3].any()
    assert again.builds == 2
    # A good file is reused by the next server: no build.
    third = TileSource(home, store, cache_dir=cache)
    assert third.tile("testsite", "scene_01", *zxy) == want and third.builds == 0


def test_concurrent_first_requests_build_once(tmp_path, watched, monkeypatch):
    home, store = watched
    calls = []
    real = tiles_mod.load_scene

    def slow_load(*a, **kw):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # both threads arrive while the first build runs
        return real(*a, **kw)

    monkeypatch.setattr(tiles_mod, "load_scene", slow_load)
    ts = TileSource(home, store, cache_dir=tmp_path / "cache")
    zxy = _site_tile(ts, "scene_02")
    barrier = threading.Barrier(3)
    out: list[bytes] = []

    def ask() -> None:
        barrier.wait()
        out.append(ts.tile("testsite", "scene_02", *zxy))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and out[0] == out[1] == out[2]
    assert len(calls) == 1 and ts.builds == 1
    assert len(list((tmp_path / "cache" / "testsite").glob("*.tif"))) == 1


def test_cache_files_stay_under_the_home(watched):
    home, store = watched
    ts = TileSource(home, store)
    ts.info("testsite", "scene_00")
    files = list(Path(home, "cache", "web", "testsite").glob("scene_00-*.tif"))
    assert len(files) == 1
