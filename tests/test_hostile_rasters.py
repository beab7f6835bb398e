"""Hostile and broken input rasters (issue 14, items 3, 4, 6, 10 and 12): truncated files of
every supported format, corrupt interior tiles, headers that claim huge sizes, VRTs, FIFOs and
odd georeferencing.  Each is refused with one line naming the file, or accepted with the
pixels it really holds."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import MultiPolygon

from conftest import SOHAE_UTM, write_tif
from sitewatch.cli.main import cli
from sitewatch.errors import SceneError, SiteError
from sitewatch.imagery.discover import discover
from sitewatch.imagery.geo import FOOTPRINT_EDGE_POINTS
from sitewatch.imagery.ingest import ingest
from sitewatch.imagery.rasters import MAX_IMAGE_PIXELS, open_raster
from sitewatch.imagery.scenes import read_scene
from sitewatch.store import Store

WHEN = datetime(2024, 1, 5, tzinfo=UTC)
T10 = Affine(10, 0, SOHAE_UTM[0] - 400, 0, -10, SOHAE_UTM[1] + 320)


def _read(path: Path):
    return read_scene(discover([path])[0], time=WHEN)


@pytest.fixture
def run(home):
    runner = CliRunner()

    def _run(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return _run


def _one_line_error(result, name: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert name in lines[0] and "Traceback" not in result.output


def _write(path: Path, driver: str, data: np.ndarray, **kw) -> Path:
    prof = {"driver": driver, "width": data.shape[2], "height": data.shape[1],
            "count": data.shape[0], "dtype": data.dtype.name, **kw}
    if driver not in ("PNG", "JPEG", "BMP"):
        prof.update(crs="EPSG:32651", transform=T10)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
    return path


FORMATS = {
    "tiled.tif": ("GTiff", {"tiled": True, "blockxsize": 16, "blockysize": 16,
                            "compress": "deflate"}),
    "strip.tif": ("GTiff", {}),
    "lzw.tif": ("GTiff", {"compress": "lzw"}),
    "cog.tif": ("COG", {"blocksize": 16}),
    "img.jp2": ("JP2OpenJPEG", {}),
    "img.img": ("ENVI", {}),
    "img.png": ("PNG", {}),
    "img.jpg": ("JPEG", {}),
    "img.bmp": ("BMP", {}),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_truncated_files_are_refused_or_identical(tmp_path, name):
    """Seeded random truncations, and a few just short of the end: none is accepted with
    pixels other than the original's (before, all ENVI and PNG truncations were)."""
    _truncations(tmp_path, name, *FORMATS[name])


def test_large_jp2_without_full_decode_still_refuses_truncation(tmp_path, monkeypatch):
    """Over the JPEG 2000 decode budget only the codestream structure is checked; that alone
    refuses every truncation (tiled, so there are tile-parts to walk)."""
    import sitewatch.imagery.rasters as R

    monkeypatch.setattr(R, "JP2_FULL_DECODE_MAX_PIXELS", 0)
    monkeypatch.setattr(R, "decode_all", lambda *a, **k: pytest.fail("decoded"))
    _truncations(tmp_path, "tiles.jp2", "JP2OpenJPEG", {"blockxsize": 32, "blockysize": 32},
                 refuse_all=True)


def _truncations(tmp_path: Path, name: str, driver: str, kw: dict,
                 refuse_all: bool = False) -> None:
    data = np.random.default_rng(0).integers(0, 255, (3, 48, 64)).astype("uint8")
    orig = _write(tmp_path / name, driver, data, **kw)
    with rasterio.open(orig) as ds:
        want = ds.read()
    raw = orig.read_bytes()
    rng = random.Random(14)
    cuts = sorted({rng.randrange(1, len(raw)) for _ in range(8)}
                  | {len(raw) - rng.randrange(1, 24) for _ in range(3)})
    refused = 0
    for cut in cuts:
        sub = tmp_path / f"cut{cut}"
        sub.mkdir()
        p = sub / name
        p.write_bytes(raw[:cut])
        if driver == "ENVI":
            (sub / "img.hdr").write_bytes((tmp_path / "img.hdr").read_bytes())
        try:
            _read(p)
        except SceneError as exc:
            assert str(p) in str(exc) and "\n" not in str(exc)
            refused += 1
            continue
        with rasterio.open(p) as ds:
            assert np.array_equal(ds.read(), want), f"{name} cut at {cut} accepted, changed"
    assert refused == len(cuts) if refuse_all else refused >= len(cuts) - 4


def test_corrupt_interior_tile_is_refused_naming_the_block(tmp_path):
    """Only the first and last block were read before: a bad middle tile got through."""
    data = np.random.default_rng(1).integers(0, 4000, (2, 64, 64)).astype("uint16")
    p = _write(tmp_path / "tiles.tif", "GTiff", data, tiled=True, blockxsize=16, blockysize=16,
               compress="deflate")
    with rasterio.open(p) as ds:
        off = int(ds.get_tag_item("BLOCK_OFFSET_1_2", "TIFF", bidx=1))
        size = int(ds.get_tag_item("BLOCK_SIZE_1_2", "TIFF", bidx=1))
    raw = bytearray(p.read_bytes())
    raw[off:off + size] = b"\xff" * size
    p.write_bytes(bytes(raw))
    # GDAL's BLOCK_OFFSET_x_y: block column 1, row 2
    with pytest.raises(SceneError, match=r"tiles\.tif: .*corrupt or truncated at band 1, "
                                         r"block row 2, column 1 \(pixel row 32, column 16"):
        _read(p)


def test_corrupt_interior_tile_via_cli(run, tmp_path):
    data = np.random.default_rng(2).integers(0, 4000, (1, 64, 64)).astype("uint16")
    p = _write(tmp_path / "bad.tif", "GTiff", data, tiled=True, blockxsize=16, blockysize=16,
               compress="deflate")
    with rasterio.open(p) as ds:
        off = int(ds.get_tag_item("BLOCK_OFFSET_2_1", "TIFF", bidx=1))
    raw = bytearray(p.read_bytes())
    raw[off:off + 8] = b"\x00" * 8
    p.write_bytes(bytes(raw))
    r = run("ingest", "sohae-sim", p, "--time", "2024-01-05")
    _one_line_error(r, "bad.tif")
    assert "block row 1, column 2" in " ".join(r.output.split())


def _envi(tmp_path: Path, name: str, *, samples: int = 30, lines: int = 20, bands: int = 2,
          data_bytes: int | None = None, map_info: str | None = None) -> Path:
    data = tmp_path / name
    n = samples * lines * bands if data_bytes is None else data_bytes
    data.write_bytes(np.random.default_rng(3).integers(1, 200, n).astype("uint8").tobytes())
    mi = map_info or (f"{{UTM, 1, 1, {SOHAE_UTM[0] - 150}, {SOHAE_UTM[1] + 100}, 10, 10, 51, "
                      "North, WGS-84}")
    (tmp_path / (name.rsplit(".", 1)[0] + ".hdr")).write_text(
        f"ENVI\nsamples = {samples}\nlines = {lines}\nbands = {bands}\nheader offset = 0\n"
        f"data type = 1\ninterleave = bsq\nbyte order = 0\nmap info = {mi}\n"
        "acquisition time = 2024-01-05\n")
    return data


def test_envi_shorter_than_its_header_is_refused(tmp_path, run):
    p = _envi(tmp_path, "short.img", data_bytes=30 * 20 * 2 - 7)
    with pytest.raises(SceneError, match=r"short\.img: 1,193 bytes, shorter than the 1,200"):
        _read(p)
    _one_line_error(run("ingest", "sohae-sim", p), "short.img")


def test_envi_claiming_two_billion_lines_is_refused_up_front(tmp_path, run):
    p = _envi(tmp_path, "tall.img", samples=30, lines=2_000_000_000, data_bytes=1200)
    with pytest.raises(SceneError, match=r"tall\.hdr: the header claims 30 x 2000000000"):
        _read(p)
    p2 = _envi(tmp_path, "long.img", samples=3, lines=2_000_000, data_bytes=1200)
    with pytest.raises(SceneError, match=r"long\.img: 1,200 bytes, shorter than the 12,000,000"):
        _read(p2)
    _one_line_error(run("ingest", "sohae-sim", p), "tall.hdr")


def test_truncated_png_via_cli(run, tmp_path):
    data = np.random.default_rng(4).integers(0, 255, (3, 40, 40)).astype("uint8")
    p = _write(tmp_path / "t.png", "PNG", data)
    p.write_bytes(p.read_bytes()[:-200])
    r = run("ingest", "sohae-sim", p, "--time", "2024-01-05")
    _one_line_error(r, "t.png")
    assert "truncated" in r.output


def test_tiff_header_claiming_huge_size_is_refused_before_reading(tmp_path):
    p = tmp_path / "sparse.tif"
    with rasterio.open(p, "w", driver="GTiff", width=100_000, height=100_000, count=1,
                       dtype="uint8", tiled=True, sparse_ok=True, crs="EPSG:32651",
                       transform=T10):
        pass  # nothing written: a few KB that claim 10 Gpx
    assert p.stat().st_size < 4 * 2**20
    with pytest.raises(SceneError, match=rf"sparse\.tif: .*100000 x 100000 pixels, more than "
                                         rf"the {MAX_IMAGE_PIXELS:,}"):
        open_raster(p)


def _tall(path: Path, *, changed: bool = False) -> Path:
    """The issue's case: 4 x 3,000,000 px, a small compressed GeoTIFF, 1 m pixels running
    north-south through the simulated site."""
    a = np.full((1, 3_000_000, 4), 100, dtype="uint8")
    if changed:
        a[0, 1_500_000:1_500_300] = 200
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
            path, "w", driver="GTiff", width=4, height=3_000_000, count=1, dtype="uint8",
            crs="EPSG:32651", compress="deflate",
            transform=Affine(1, 0, SOHAE_UTM[0], 0, -1, SOHAE_UTM[1] + 1_500_000)) as ds:
        ds.write(a)
        ds.update_tags(ACQUISITION_TIME="2024-01-06" if changed else "2024-01-05")
    return path


def test_tall_image_footprint_is_bounded_and_ingest_finishes(run, tmp_path):
    p = _tall(tmp_path / "tall.tif")
    sc = _read(p)
    assert len(sc.footprint.exterior.coords) == 4 * FOOTPRINT_EDGE_POINTS + 1
    r = run("ingest", "sohae-sim", p)
    assert r.exit_code == 0, r.output
    assert "1 added" in r.output


def test_tall_image_detect_finishes(run, tmp_path):
    before, after = _tall(tmp_path / "a.tif"), _tall(tmp_path / "b.tif", changed=True)
    r = run("detect", before, after, "--out", tmp_path / "out", "-m", "cva")
    assert r.exit_code == 0, r.output
    assert "1200 of 12000000 observed pixels changed" in r.output


def test_vrt_is_refused_and_never_reads_its_target(run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("ncols 2\nnrows 2\nxllcorner 0\nyllcorner 0\ncellsize 1\n1 2\n3 4\n")
    vrt = (f'<VRTDataset rasterXSize="2" rasterYSize="2"><VRTRasterBand dataType="Byte" '
           f'band="1"><SimpleSource><SourceFilename relativeToVRT="0">{secret}'
           '</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
           '</VRTDataset>')
    for name in ("evil.vrt", "evil.tif"):  # the name does not matter, the content does
        (tmp_path / name).write_text(vrt)
        with pytest.raises(SceneError, match="virtual raster"):
            open_raster(tmp_path / name)
        _one_line_error(run("ingest", "sohae-sim", tmp_path / name, "--time",
                            "2024-01-05"), name)
    with pytest.raises(SceneError, match=r"grid\.tif: not a readable raster image in a "
                                         r"supported format"):
        (tmp_path / "grid.tif").write_text(secret.read_text())  # an ASCII grid: not allowed
        open_raster(tmp_path / "grid.tif")


def test_vrt_and_fifo_in_a_folder_are_skipped_with_a_warning(run, tmp_path):
    folder = tmp_path / "imgs"
    write_tif(folder / "good.tif", np.full((4, 20, 20), 1500, np.uint16), transform=T10,
              tags={"ACQUISITION_TIME": "2024-01-05"})
    (folder / "x.vrt").write_text('<VRTDataset rasterXSize="1" rasterYSize="1"/>')
    os.mkfifo(folder / "pipe.tif")
    os.mkfifo(folder / "fake.hdr")
    (folder / "fake.img").write_bytes(b"\0" * 64)
    skipped: list[tuple[str, str]] = []
    srcs = discover([folder], skipped)
    assert [Path(s.key).name for s in srcs] == ["fake.img", "good.tif"]
    assert {Path(p).name for p, _ in skipped} == {"x.vrt", "pipe.tif", "fake.hdr"}
    (folder / "fake.img").unlink()
    r = run("ingest", "sohae-sim", folder)
    assert r.exit_code == 0, r.output
    assert "1 added" in r.output
    out = " ".join(r.output.split())
    assert "skipped" in out and "pipe.tif" in out and "a FIFO" in out and "x.vrt" in out


def test_fifo_named_directly_is_refused(run, tmp_path):
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    with pytest.raises(SceneError, match=r"pipe\.tif: a FIFO"):
        discover([fifo])
    with pytest.raises(SceneError, match=r"pipe\.tif: a FIFO"):
        open_raster(fifo)
    _one_line_error(run("ingest", "sohae-sim", fifo), "pipe.tif")
    _one_line_error(run("detect", fifo, fifo, "--out", tmp_path / "o"), "pipe.tif")


def test_rotated_transform_has_its_true_footprint(tmp_path):
    t = Affine.translation(*SOHAE_UTM) @ Affine.rotation(30) @ Affine.scale(10, -10)
    p = write_tif(tmp_path / "rot.tif", np.full((4, 20, 30), 1500, np.uint16), transform=t,
                  tags={"ACQUISITION_TIME": "2024-01-05"})
    sc = _read(p)
    from sitewatch.imagery.geo import to_crs

    back = to_crs(sc.footprint, "EPSG:4326", "EPSG:32651")
    assert back.area == pytest.approx(300 * 200, rel=1e-3)
    assert sc.resolution == pytest.approx(10)


@pytest.mark.parametrize(("map_info", "expect"), [
    ("{UTM, 1, 1, nan, 4391410, 10, 10, 51, North, WGS-84}", "NaN or infinite"),
    ("{UTM, 1, 1, 646260, 4391410, 0, 0, 51, North, WGS-84}", "zero pixel size"),
    ("{UTM, 1, 1, 646260, 4391410, 10, 10, 99, North, WGS-84}", "longitude/latitude"),
    ("{UTM, 1, 1, 646260, 94391410, 10, 10, 51, North, WGS-84}", "longitude/latitude"),
])
def test_odd_georeferencing_is_one_line(run, tmp_path, map_info, expect):
    p = _envi(tmp_path, "odd.img", map_info=map_info)
    with pytest.raises(SceneError, match=expect):
        _read(p)
    _one_line_error(run("ingest", "sohae-sim", p), "odd.img")
    _one_line_error(run("detect", p, p, "--out", tmp_path / "o"), "odd.img")


def test_crs_without_lon_lat_is_one_line(run, tmp_path):
    p = write_tif(tmp_path / "eng.tif", np.full((4, 20, 20), 1500, np.uint16),
                  crs='LOCAL_CS["arbitrary",UNIT["metre",1]]',
                  transform=Affine(10, 0, 0, 0, -10, 0), tags={"ACQUISITION_TIME": "2024-01-05"})
    with pytest.raises(SceneError, match=r"eng\.tif: its CRS cannot be converted"):
        _read(p)
    _one_line_error(run("ingest", "sohae-sim", p), "eng.tif")


def test_antimeridian_footprint_is_split_with_a_warning(run, tmp_path):
    p = write_tif(tmp_path / "am.tif", np.full((4, 20, 40), 1500, np.uint16), crs="EPSG:4326",
                  transform=Affine(0.01, 0, 179.8, 0, -0.01, 10.0),
                  tags={"ACQUISITION_TIME": "2024-01-05"})
    sc = _read(p)
    assert isinstance(sc.footprint, MultiPolygon)
    assert sc.footprint.bounds[0] == pytest.approx(-180) and sc.footprint.bounds[2] == 180
    assert any("antimeridian" in w for w in sc.warnings)
    with Store.open_path(tmp_path / "h" / "sitewatch.db") as store, \
            pytest.raises(SiteError, match="antimeridian"):
        ingest(store, [p], "far-east")
    _one_line_error(run("ingest", "far-east", p), "far-east")


def test_file_damaged_after_ingest_fails_the_load_with_one_line(tmp_path):
    from sitewatch.change.tiled import scene_grid
    from sitewatch.imagery.grid import load_scene

    data = np.random.default_rng(5).integers(0, 4000, (4, 64, 64)).astype("uint16")
    p = _write(tmp_path / "later.tif", "GTiff", data, tiled=True, blockxsize=16,
               blockysize=16, compress="deflate")
    sc = _read(p)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SceneError, match=r"later\.tif: pixels cannot be read"):
        load_scene(sc, scene_grid(sc), None)


#: Seeded cases per format in the fuzz tests; raise it for a longer run
#: (SITEWATCH_FUZZ_CASES=200 pytest tests/test_hostile_rasters.py).
FUZZ_CASES = int(os.environ.get("SITEWATCH_FUZZ_CASES", "12"))


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_mutated_files_are_read_or_refused_without_traceback(tmp_path, name):
    """Random byte changes anywhere (headers included): a Scene, or a SceneError naming the
    file; never another exception."""
    driver, kw = FORMATS[name]
    data = np.random.default_rng(6).integers(0, 255, (3, 48, 64)).astype("uint8")
    orig = _write(tmp_path / name, driver, data, **kw)
    raw = orig.read_bytes()
    rng = random.Random(1414)
    for case in range(FUZZ_CASES):
        buf = bytearray(raw)
        for _ in range(rng.choice((1, 2, 8))):
            pos = rng.randrange(len(buf)) if rng.random() < 0.7 else rng.randrange(min(600,
                                                                                        len(buf)))
            buf[pos] = rng.randrange(256)
        sub = tmp_path / f"m{case}"
        sub.mkdir()
        p = sub / name
        p.write_bytes(bytes(buf))
        if driver == "ENVI":
            (sub / "img.hdr").write_bytes((tmp_path / "img.hdr").read_bytes())
        try:
            _read(p)
        except SceneError as exc:
            assert str(p) in str(exc) and "\n" not in str(exc)


def test_huge_envi_header_is_refused_without_reading_it(tmp_path):
    from sitewatch.imagery.scenes import MAX_ENVI_HEADER_BYTES

    p = _envi(tmp_path, "big.img")
    with open(tmp_path / "big.hdr", "a") as f:
        f.truncate(MAX_ENVI_HEADER_BYTES + 1)
    with pytest.raises(SceneError, match=r"big\.hdr: .*too large for an ENVI header"):
        _read(p)
