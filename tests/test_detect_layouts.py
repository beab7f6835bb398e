"""Whole-scene detection reads each file block once for all its bands, whatever the layout
(issue 19, item 2): per-band GeoTIFFs, pixel- and band-interleaved multiband GeoTIFFs
(striped or tiled), per-band JPEG 2000.  The change map, score and objects are those of the
band-by-band reading that ``load_scene`` does (the reference here), bit for bit."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from conftest import SOHAE_UTM
from sitewatch.change import blockread, tiled
from sitewatch.change.tiled import detect_scenes
from sitewatch.errors import SceneError

H, W = 230, 300  # not a multiple of the windows or blocks
WINDOW = 128
BANDS = (("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir"))
DATES = ("20210605T022549", "20210824T022549")
TILE = "T52SDG"
T = Affine(10, 0, SOHAE_UTM[0] - 1500, 0, -10, SOHAE_UTM[1] + 1200)
#: Layout -> GDAL creation options of the multiband file, or of each band file.
LAYOUTS = {
    "per-band": {"tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate"},
    "pixel": {"interleave": "pixel", "compress": "deflate"},  # GDAL's default: 1-row strips
    "pixel-tiled": {"interleave": "pixel", "tiled": True, "blockxsize": 64, "blockysize": 64},
    "band": {"interleave": "band", "tiled": True, "blockxsize": 64, "blockysize": 64,
             "compress": "deflate"},
    "band-odd-blocks": {"interleave": "band", "tiled": True, "blockxsize": 48,
                        "blockysize": 48},  # 48 does not divide the 128-row strips
    "jp2": {"driver": "JP2OpenJPEG", "QUALITY": 100, "REVERSIBLE": "YES",
            "blockxsize": 64, "blockysize": 64},
}


def reflectance(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured 4-band BEFORE, and AFTER with a gain, noise and planted changes (one
    crossing a window seam), as uint16 DN (reflectance x 10000; 0 = nodata)."""
    rng = np.random.default_rng(seed)
    common = ndimage.gaussian_filter(rng.normal(size=(H, W)), 4)
    own = ndimage.gaussian_filter(rng.normal(size=(4, H, W)), (0, 2, 2))
    x = 0.6 * common / common.std() + 0.4 * own / own.std(axis=(1, 2), keepdims=True)
    a = np.array([0.05, 0.08, 0.1, 0.3], np.float32)[:, None, None] + 0.04 * x
    b = 1.07 * a + 0.004 + rng.normal(scale=0.004, size=a.shape)
    b[:, 120:136, 40:70] += 0.15  # across the row seam at 128
    b[:, 30:38, 200:209] += 0.12
    b[:, 3, 5] += 0.2  # a single pixel: cleaned away
    dn_a = np.clip(np.rint(a * 1e4), 1, 65535).astype(np.uint16)
    dn_b = np.clip(np.rint(b * 1e4), 1, 65535).astype(np.uint16)
    dn_a[:, 200:, :12] = 0  # nodata corner in BEFORE
    dn_b[2, 90:95, 250:262] = 0  # one band missing in AFTER
    return dn_a, dn_b


def write_layout(root: Path, layout: str, seed: int = 3) -> tuple[Path, Path]:
    """BEFORE and AFTER in ``layout`` under ``root``; returns their paths."""
    out = []
    base = {"width": W, "height": H, "dtype": "uint16", "nodata": 0,
            "crs": CRS.from_epsg(32652), "transform": T}
    for data, date, name in zip(reflectance(seed), DATES, ("before", "after"), strict=True):
        folder = root / layout / name
        folder.mkdir(parents=True)
        opts = dict(LAYOUTS[layout])
        if layout in ("per-band", "jp2"):
            driver = opts.pop("driver", "GTiff")
            ext = "jp2" if driver == "JP2OpenJPEG" else "tif"
            for (bid, _), band in zip(BANDS, data, strict=True):
                with rasterio.open(folder / f"{TILE}_{date}_{bid}.{ext}", "w", driver=driver,
                                   count=1, **base, **opts) as ds:
                    ds.write(band, 1)
            out.append(folder)
        else:
            path = folder / f"S2A_MSIL2A_{date}_N0300_R046_{TILE}_{date}.tif"
            with rasterio.open(path, "w", driver="GTiff", count=4, **base, **opts) as ds:
                ds.write(data)
                for i, (_, common) in enumerate(BANDS, 1):
                    ds.set_band_description(i, common)
                ds.scales = (1e-4,) * 4
            out.append(path)
    return out[0], out[1]


def band_by_band(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make detect_scenes read as before: load_scene, band by band, per window."""
    monkeypatch.setattr(tiled.SceneReader, "for_scene", classmethod(lambda *a, **k: None))


def outputs(d: Path) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    with rasterio.open(d / "change.tif") as c, rasterio.open(d / "score.tif") as s:
        change, score = c.read(1), s.read(1)
    return (change, score, json.loads((d / "changes.geojson").read_text()),
            json.loads((d / "summary.json").read_text()))


def assert_same(new: Path, ref: Path) -> None:
    c1, s1, g1, m1 = outputs(new)
    c2, s2, g2, m2 = outputs(ref)
    assert np.array_equal(c1, c2)
    assert np.array_equal(s1, s2, equal_nan=True)
    assert g1 == g2
    for key in ("threshold", "pixels", "objects", "details", "registration"):
        assert m1[key] == m2[key], key


@pytest.mark.parametrize(("layout", "method"), [(lay, "irmad") for lay in LAYOUTS]
                         + [("per-band", "hacd"), ("pixel", "hacd")])
def test_every_layout_gives_the_band_by_band_result(tmp_path, monkeypatch, layout, method):
    before, after = write_layout(tmp_path, layout)
    kw = {"method": method, "window": WINDOW, "sample_pixels": 20_000}
    new = detect_scenes(before, after, tmp_path / "new", **kw)
    assert new.summary["pixels"]["changed"] > 400  # the planted changes were found
    with monkeypatch.context() as m:
        band_by_band(m)
        detect_scenes(before, after, tmp_path / "ref", **kw)
    assert_same(tmp_path / "new", tmp_path / "ref")


def test_all_layouts_agree_with_each_other(tmp_path):
    """The same pixels stored four ways give one change map."""
    maps = []
    for layout in ("per-band", "pixel", "band", "jp2"):
        before, after = write_layout(tmp_path, layout)
        detect_scenes(before, after, tmp_path / f"out-{layout}", window=WINDOW,
                      sample_pixels=20_000)
        maps.append(outputs(tmp_path / f"out-{layout}")[:2])
    for change, score in maps[1:]:
        assert np.array_equal(change, maps[0][0])
        assert np.array_equal(score, maps[0][1], equal_nan=True)


class Reads:
    """Records every read detect_scenes makes through the block reader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: list[tuple[str, int, int, int]] = []  # strips: path, first, end, width
        self.windows: list[tuple[str, rasterio.windows.Window]] = []
        real_rows, real_window = blockread.SceneReader.read_rows, blockread.SceneReader.window
        log = self

        def read_rows(self, r0: int, r1: int) -> blockread.RowChunk:
            log.rows.extend((f.path, r0, r1, self.grid.width) for f in self.files)
            return real_rows(self, r0, r1)

        def window(self, win):  # type: ignore[no-untyped-def]
            log.windows.extend((f.path, win) for f in self.files)
            return real_window(self, win)

        monkeypatch.setattr(blockread.SceneReader, "read_rows", read_rows)
        monkeypatch.setattr(blockread.SceneReader, "window", window)


@pytest.mark.parametrize("layout", ["per-band", "pixel", "band", "jp2"])
def test_each_block_is_read_once_and_strips_are_block_aligned(tmp_path, monkeypatch, layout):
    before, after = write_layout(tmp_path, layout)
    reads = Reads(monkeypatch)
    calls: list[tuple[str, tuple[int, ...] | int]] = []
    real_read = rasterio.io.DatasetReader.read

    def counting_read(self, indexes=None, *a, **k):  # type: ignore[no-untyped-def]
        calls.append((self.name, tuple(indexes) if isinstance(indexes, list) else indexes))
        return real_read(self, indexes, *a, **k)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting_read)
    detect_scenes(before, after, tmp_path / "out", window=WINDOW, sample_pixels=20_000,
                  coregister=False)
    files = sorted({p for p, *_ in reads.rows})
    n_files = 8 if layout in ("per-band", "jp2") else 2
    assert len(files) == n_files
    for path in files:
        strips = sorted((r0, r1) for p, r0, r1, width in reads.rows if p == path)
        assert all(width == W for p, _, _, width in reads.rows)  # full rows: whole blocks
        # Every row exactly once, in strips that start on a block boundary.
        assert strips[0][0] == 0 and strips[-1][1] == H
        assert all(a[1] == b[0] for a, b in itertools.pairwise(strips))
        with rasterio.open(path) as ds:
            block_rows = ds.block_shapes[0][0]
        assert all(r0 % block_rows == 0 for r0, _ in strips)
    # One read per file per strip or sample window for all its bands, never one per band.
    multi = [c for c in calls if isinstance(c[1], tuple)]
    assert multi and all(len(ix) == (1 if n_files == 8 else 4) for _, ix in multi)
    assert not [c for c in calls if isinstance(c[1], int)]  # no band-by-band read
    assert len(calls) == len(reads.rows) + len(reads.windows)


def test_after_on_another_extent_is_warped_and_before_still_streamed(tmp_path, monkeypatch):
    """AFTER covering more ground (whole pixels off BEFORE's grid) goes through load_scene
    per window; the result is still the band-by-band one."""
    before, _ = write_layout(tmp_path, "pixel")
    _, dn_b = reflectance(3)
    big = np.zeros((4, H + 20, W + 10), np.uint16)
    big[:, 20:, 10:] = dn_b
    after = tmp_path / "wide" / f"S2A_MSIL2A_{DATES[1]}_N0300_R046_{TILE}_{DATES[1]}.tif"
    after.parent.mkdir()
    with rasterio.open(after, "w", driver="GTiff", width=W + 10, height=H + 20, count=4,
                       dtype="uint16", nodata=0, crs=CRS.from_epsg(32652),
                       transform=T @ Affine.translation(-10, -20)) as ds:
        ds.write(big)
        for i, (_, common) in enumerate(BANDS, 1):
            ds.set_band_description(i, common)
        ds.scales = (1e-4,) * 4
    reads = Reads(monkeypatch)
    detect_scenes(before, after, tmp_path / "new", window=WINDOW, sample_pixels=20_000)
    assert {p for p, *_ in reads.rows} == {str(before)}
    with monkeypatch.context() as m:
        band_by_band(m)
        detect_scenes(before, after, tmp_path / "ref", window=WINDOW, sample_pixels=20_000)
    assert_same(tmp_path / "new", tmp_path / "ref")


def test_user_mask_and_provider_mask_band_are_applied_as_before(tmp_path, monkeypatch):
    """A multiband file whose fifth band is a Sentinel-2 scene classification (SCL) and a
    user mask: masked pixels are not observed, exactly as with band-by-band reading."""
    dn_a, dn_b = reflectance(5)
    scl = np.full((H, W), 4, np.uint8)  # vegetation
    scl[40:60, 100:140] = 9  # cloud high probability
    paths = []
    for data, date, name in zip((dn_a, dn_b), DATES, ("before", "after"), strict=True):
        p = tmp_path / name / f"S2A_MSIL2A_{date}_N0300_R046_{TILE}_{date}.tif"
        p.parent.mkdir()
        with rasterio.open(p, "w", driver="GTiff", width=W, height=H, count=5, dtype="uint16",
                           crs=CRS.from_epsg(32652), transform=T, interleave="pixel") as ds:
            ds.write(np.concatenate([data, scl[None].astype(np.uint16)]))
            for i, desc in enumerate(["blue", "green", "red", "nir", "scl"], 1):
                ds.set_band_description(i, desc)
            ds.scales = (1e-4,) * 4 + (1.0,)
        paths.append(p)
    mask = tmp_path / "mask.tif"
    with rasterio.open(mask, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint8",
                       crs=CRS.from_epsg(32652), transform=T) as ds:
        m = np.zeros((H, W), np.uint8)
        m[150:170, 150:200] = 1
        ds.write(m, 1)
    kw = {"window": WINDOW, "sample_pixels": 20_000, "mask": mask}
    run = detect_scenes(*paths, tmp_path / "new", **kw)
    change = outputs(tmp_path / "new")[0]
    assert (change[40:60, 100:140] == 255).all() and (change[150:170, 150:200] == 255).all()
    assert run.summary["cloud_test"] == "provider masks"
    with monkeypatch.context() as mp:
        band_by_band(mp)
        detect_scenes(*paths, tmp_path / "ref", **kw)
    assert_same(tmp_path / "new", tmp_path / "ref")


def test_a_corrupt_block_fails_the_run_naming_the_file_and_writes_nothing(tmp_path):
    """The block decode at opening is gone from detect (the pass decodes every block): a
    damaged tile in the middle still fails the run with one line naming the file."""
    before, after = write_layout(tmp_path, "band")
    with rasterio.open(after) as ds:
        off = int(ds.get_tag_item("BLOCK_OFFSET_2_2", "TIFF", bidx=3))
        size = int(ds.get_tag_item("BLOCK_SIZE_2_2", "TIFF", bidx=3))
    raw = bytearray(after.read_bytes())
    raw[off:off + size] = b"\xff" * size
    after.write_bytes(bytes(raw))
    with pytest.raises(SceneError, match=rf"{after.name}: pixels cannot be read") as exc:
        detect_scenes(before, after, tmp_path / "out", window=WINDOW, sample_pixels=20_000,
                      coregister=False)
    assert "\n" not in str(exc.value)
    assert not list((tmp_path / "out").glob("*.tif"))


def test_reads_in_threads_leave_the_unraisable_hook_as_it_was():
    """detect reads in a thread pool: A enters, B enters, A leaves, B leaves.  Each reader
    used to restore the hook it found, so B put A's back and it stayed installed."""
    from sitewatch.imagery.rasters import reading

    original = sys.unraisablehook
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with reading("a.tif"):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with reading("b.tif"):
            b_in.set()
            a_out.wait(5)
            assert sys.unraisablehook is not original  # still inside one reader

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sys.unraisablehook is original
