"""Whole-scene detection window by window, and the `sitewatch detect` / `methods` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from conftest import SOHAE_UTM
from sitewatch.change.base import MethodError
from sitewatch.change.detect import detect_arrays
from sitewatch.change.tiled import detect_scenes
from sitewatch.cli.main import cli
from sitewatch.errors import GridError, SceneError
from test_change_detectors import landscape

NAMES = ("blue", "green", "red", "nir")
T = Affine(10, 0, SOHAE_UTM[0] - 1000, 0, -10, SOHAE_UTM[1] + 1000)
OBJ = (slice(60, 70), slice(95, 110))  # crosses the 100-pixel window seam (cols)
OBJ2 = (slice(96, 104), slice(20, 30))  # crosses the row seam at 100


def scene_pair(make_tif, size=200, shift_px=0, **kw):
    a = landscape(1, size=size, bands=4)
    rng = np.random.default_rng(2)
    b = 1.1 * a + 0.01 + rng.normal(scale=0.003, size=a.shape).astype(np.float32)
    b[:, OBJ[0], OBJ[1]] += 0.15
    b[:, OBJ2[0], OBJ2[1]] += 0.15
    if shift_px:
        b = np.roll(b, shift_px, axis=2)
    pa = make_tif("before.tif", (a * 10000).astype(np.uint16), transform=T,
                  descriptions=NAMES, scales=[1e-4] * 4, **kw)
    pb = make_tif("after.tif", (b * 10000).astype(np.uint16), transform=T,
                  descriptions=NAMES, scales=[1e-4] * 4, **kw)
    return pa, pb, a, b


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds


def test_windowed_run_matches_the_in_memory_result(make_tif, tmp_path):
    pa, pb, a, b = scene_pair(make_tif)
    run = detect_scenes(pa, pb, tmp_path / "out", method="irmad", window=100,
                        coregister=False, clouds=False)
    ref = detect_arrays(np.round(a * 1e4) * 1e-4, np.round(b * 1e4) * 1e-4, NAMES, "irmad")
    change, ds = read(run.out_dir / "change.tif")
    assert change.dtype == np.uint8 and change.shape == (200, 200)
    assert ds.crs.to_epsg() == 32651 and ds.transform == T
    agree = (change == 1) == ref.changed  # (float32 reading moves a few borderline pixels)
    assert agree.mean() > 0.995
    assert (change[OBJ] == 1).all() and (change[OBJ2] == 1).all()
    score, _ = read(run.out_dir / "score.tif")
    assert np.median(score / ref.score) == pytest.approx(1, abs=0.02)


def test_objects_cut_by_window_seams_come_back_whole(make_tif, tmp_path):
    pa, pb, *_ = scene_pair(make_tif)
    run = detect_scenes(pa, pb, tmp_path / "out", method="irmad", window=100,
                        coregister=False, clouds=False)
    fc = json.loads((run.out_dir / "changes.geojson").read_text())
    assert fc["type"] == "FeatureCollection"
    big = [f for f in fc["features"] if f["properties"]["pixels"] >= 50]
    assert sorted(f["properties"]["pixels"] for f in big) == [80, 150]
    for f in big:  # one object each, in lon/lat (RFC 7946), area in m2
        assert f["properties"]["area_m2"] == pytest.approx(100 * f["properties"]["pixels"],
                                                           rel=1e-6)
        lon, lat = f["geometry"]["coordinates"][0][0][:2] if f["geometry"]["type"] == \
            "Polygon" else f["geometry"]["coordinates"][0][0][0][:2]
        assert 124 < lon < 125.5 and 39 < lat < 40.5
    ids = [f["properties"]["id"] for f in fc["features"]]
    assert ids == list(range(1, len(ids) + 1))


def test_summary_nodata_and_no_leftovers(make_tif, tmp_path):
    a = landscape(1, size=120, bands=4)
    a_dn = (a * 10000).astype(np.uint16)
    b_dn = a_dn.copy()
    b_dn[:, 50:60, 50:60] += 1500
    b_dn[:, :, :30] = 0  # nodata strip on the after date
    pa = make_tif("b.tif", a_dn, transform=T, descriptions=NAMES, nodata=0)
    pb = make_tif("a.tif", b_dn, transform=T, descriptions=NAMES, nodata=0)
    out = tmp_path / "o"
    run = detect_scenes(pa, pb, out, method="cva", clouds=False)
    change, _ = read(out / "change.tif")
    assert (change[:, :30] == 255).all() and (change[:, 30:] != 255).all()
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "cva" and s["pixels"]["observed"] == 120 * 90
    assert s["before"]["acquired"] is None  # an undated input is fine for detection
    assert sorted(p.name for p in out.iterdir()) == sorted(run.summary["outputs"])
    # A second run refuses to overwrite, and leaves the first results intact.
    before = (out / "summary.json").read_bytes()
    with pytest.raises(SceneError, match="already holds"):
        detect_scenes(pa, pb, out, method="cva")
    assert (out / "summary.json").read_bytes() == before


def test_a_shifted_after_image_is_coregistered(make_tif, tmp_path):
    pa, pb, *_ = scene_pair(make_tif, shift_px=2)
    run = detect_scenes(pa, pb, tmp_path / "out", method="irmad", window=100, clouds=False)
    reg = run.summary["registration"]
    assert reg["status"] == "ok" and run.summary["registration_applied"]
    assert reg["dx"] == pytest.approx(2, abs=0.15) and abs(reg["dy"]) < 0.15
    change, _ = read(run.out_dir / "change.tif")
    beyond = (OBJ[0], slice(OBJ[1].stop, OBJ[1].stop + 2))  # where AFTER had it, unshifted
    # The object is found where BEFORE has it, not smeared over the shift.
    assert (change[OBJ] == 1).mean() > 0.9
    assert run.summary["changed_fraction"] < 0.02
    assert (change[beyond] == 0).mean() > 0.9


def test_bad_inputs_are_named(make_tif, tmp_path):
    pa, pb, *_ = scene_pair(make_tif)
    far = Affine(10, 0, SOHAE_UTM[0] + 50_000, 0, -10, SOHAE_UTM[1])
    pfar = make_tif("far.tif", np.ones((4, 50, 50), np.uint16), transform=far,
                    descriptions=NAMES)
    with pytest.raises(GridError, match="do not overlap"):
        detect_scenes(pa, pfar, tmp_path / "x")
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(SceneError, match="broken.tif"):
        detect_scenes(pa, bad, tmp_path / "y")
    with pytest.raises(SceneError, match="no such file"):
        detect_scenes(pa, tmp_path / "missing.tif", tmp_path / "z")
    with pytest.raises(MethodError, match="for sar images"):
        detect_scenes(pa, pb, tmp_path / "w", method="sar-omnibus")


def test_cli_detect_methods_and_errors(make_tif, tmp_path):
    pa, pb, *_ = scene_pair(make_tif)
    runner = CliRunner()
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--out", str(tmp_path / "o"),
                              "-m", "pca-kmeans", "--param", "block=3", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["method"] == "pca-kmeans" and s["params"]["block"] == 3
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--out", str(tmp_path / "o"),
                              "--overwrite", "-t", "ki"])
    assert (res.exit_code == 0 and "kittler" in res.output.lower()) or "ki" in res.output
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--out", str(tmp_path / "p"),
                              "-m", "nope"])
    assert res.exit_code == 1 and "unknown method 'nope'" in res.output
    res = runner.invoke(cli, ["methods", "--json"])
    listed = json.loads(res.output)
    assert {"irmad", "cva", "sar-log-ratio"} <= {m["name"] for m in listed}
    assert next(m for m in listed if m["name"] == "hacd")["default_for"] == ["optical"]
    res = runner.invoke(cli, ["methods", "--sensor", "sar"])
    assert res.exit_code == 0 and "sar-omnibus" in res.output and "irmad" not in res.output


def _kappa(pred, truth):
    n = pred.size
    tp, tn = (pred & truth).sum(), (~pred & ~truth).sum()
    fp, fn = (pred & ~truth).sum(), (~pred & truth).sum()
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    return (po - pe) / (1 - pe)


def test_cli_detect_on_the_real_ottawa_sar_pair(tmp_path):
    from conftest import need_shared

    d = need_shared("sar", "ottawa")
    res = CliRunner().invoke(cli, ["detect", str(d / "ottawa_1.bmp"), str(d / "ottawa_2.bmp"),
                                   "--sensor", "sar", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    change, _ = read(tmp_path / "o" / "change.tif")
    truth, _ = read(d / "ottawa_gt.bmp")
    assert _kappa(change == 1, truth > 127) > 0.9  # measured 0.908 (sar-pca-kmeans)


def test_detect_on_a_real_oscd_folder_pair_lands_on_the_label_grid(tmp_path):
    from conftest import need_shared

    d = need_shared("oscd", "beihai")
    run = detect_scenes(d / "imgs_1", d / "imgs_2", tmp_path / "o", method="cva")
    change, ds = read(tmp_path / "o" / "change.tif")
    label, _ = read(d / "cm" / "beihai-cm.tif")  # (the label itself has no georeference)
    _, b02 = read(next((d / "imgs_1").glob("*_B02.tif")))
    assert change.shape == label.shape and ds.transform.almost_equals(b02.transform)
    assert run.summary["before"]["acquired"].startswith("2016-12-09")
    assert run.summary["registration"]["status"] in ("ok", "flagged")
    assert 0 < run.summary["changed_fraction"] < 0.5


def test_cli_train_then_detect_with_the_model(make_tif, tmp_path):
    pa, pb, *_ = scene_pair(make_tif)
    label = np.ones((200, 200), np.uint8)
    label[OBJ] = 2
    label[OBJ2] = 2
    pl = make_tif("label.tif", label, transform=T)
    runner = CliRunner()
    model = tmp_path / "m.joblib"
    res = runner.invoke(cli, ["train", "--pair", str(pa), str(pb), str(pl), "--change-value",
                              "2", "--model-type", "gbt", "--out", str(model), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["bands"] == list(NAMES) and model.exists()
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--model", str(model), "--out",
                              str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    change, _ = read(tmp_path / "o" / "change.tif")
    assert (change[OBJ] == 1).mean() > 0.8 and (change == 1).mean() < 0.05
    # Training refuses to clobber a model, and a wrong change value is explained.
    res = runner.invoke(cli, ["train", "--pair", str(pa), str(pb), str(pl), "--model-type",
                              "gbt", "--out", str(model)])
    assert res.exit_code != 0 and "--overwrite" in res.output
    res = runner.invoke(cli, ["train", "--pair", str(pa), str(pb), str(pl), "--change-value",
                              "7", "--out", str(tmp_path / "m2.joblib")])
    assert res.exit_code == 1 and "change value 7" in res.output
