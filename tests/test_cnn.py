"""The change network (sitewatch.change.cnn) on synthetic pairs with planted squares: it
learns, saves and loads as data, refuses broken files, scores tiles as the whole scene, and
runs through `sitewatch train --model-type cnn` and `detect --model`."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from click.testing import CliRunner

from sitewatch.change import cnn, modelfile
from sitewatch.change.base import MethodError
from sitewatch.change.cnn import CnnDetector, CnnModel, TrainOptions, train_cnn
from sitewatch.change.detect import detect_arrays
from sitewatch.change.learned import detector_from_file, load_model, read_header
from sitewatch.cli.main import cli

BANDS = ("blue", "green", "red", "nir")
SIZE = 96


def planted_pair(seed: int, size: int = SIZE):
    """Textured reflectance, a small gain and noise on date 2, and bright 10 x 10 squares
    (new roofs) at random places: only the squares are change."""
    rng = np.random.default_rng(seed)
    before = rng.uniform(0.05, 0.3, (4, size, size)).astype(np.float32)
    after = (before * 1.05 + rng.normal(0, 0.01, before.shape)).astype(np.float32)
    label = np.zeros((size, size), bool)
    for _ in range(6):
        r, c = rng.integers(0, size - 10, 2)
        label[r:r + 10, c:c + 10] = True
    after[:, label] = 0.55 + rng.normal(0, 0.02, (4, int(label.sum()))).astype(np.float32)
    return before, after, label, np.ones((size, size), bool)


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (pred & truth).sum() / max(1, pred.sum() + truth.sum()))


@pytest.fixture(scope="module")
def trained() -> CnnModel:
    pairs = [planted_pair(s) for s in range(3)]
    return train_cnn(pairs, BANDS, options=TrainOptions(epochs=8, patch=32, batch=8, lr=1e-2,
                                                        threads=1, seed=3),
                     provenance={"pairs_used": ["a", "b", "c"]})


def test_training_lowers_the_loss_and_finds_the_squares(trained):
    losses = trained.summary["loss_by_epoch"]
    assert len(losses) == 8 and losses[-1] < 0.6 * losses[0]
    b, a, label, _ = planted_pair(11)
    cm = detect_arrays(b, a, BANDS, CnnDetector(model=trained))
    assert cm.threshold == pytest.approx(trained.threshold, abs=1e-5)
    assert _f1(cm.changed, label) > 0.8
    s = trained.summary
    assert s["seed"] == 3 and s["epochs"] == 8 and s["pairs_used"] == ["a", "b", "c"]
    assert "flips" in s["augmentations"] and s["threshold_rule"] == cnn.THRESHOLD_RULE


def test_same_seed_same_model():
    pairs = [planted_pair(0, size=64)]
    opts = TrainOptions(epochs=1, patch=32, batch=4, threads=1, seed=5, holdout=0)
    m1, m2 = (train_cnn(pairs, BANDS, options=opts) for _ in range(2))
    assert all(np.array_equal(m1.weights[k], m2.weights[k]) for k in m1.weights)


def test_save_load_round_trip_gives_identical_predictions(trained, tmp_path):
    path = trained.save(tmp_path / "m.swmodel")
    assert path.read_bytes().startswith(b"SITEWATCH-CHANGE-MODEL\n")
    header = read_header(path)
    assert header["model_type"] == "cnn" and header["format_version"] == 3
    assert header["architecture"]["name"] == "fc-siam-diff" and header["bands"] == list(BANDS)
    assert header["training"]["epochs"] == 8 and len(header["normalisation"]["mean"]) == 4
    loaded = load_model(path)
    assert isinstance(loaded, CnnModel) and loaded.threshold == trained.threshold
    b, a, _, _ = planted_pair(12)
    assert np.array_equal(loaded.predict_proba(b, a, BANDS), trained.predict_proba(b, a, BANDS))
    assert isinstance(detector_from_file(path), CnnDetector)


def test_corrupt_or_truncated_model_files_are_refused_naming_the_file(trained, tmp_path):
    good = trained.save(tmp_path / "good.swmodel").read_bytes()
    head, _, rest = good.partition(b"\n")
    header, _, payload = rest.partition(b"\n")
    cases = {
        "truncated": good[: len(good) - 200],
        "flipped": good[:-300] + bytes(b ^ 0xFF for b in good[-300:-250]) + good[-250:],
        "no_weights": head + b"\n" + header + b"\n",
    }
    h = json.loads(header)
    h["architecture"]["widths"] = [8, 16, 32, 32]  # arrays no longer match the architecture
    cases["wrong_arch"] = head + b"\n" + json.dumps(h).encode() + b"\n" + payload
    for name, data in cases.items():
        p = tmp_path / f"{name}.swmodel"
        p.write_bytes(data)
        with pytest.raises(MethodError, match=str(p).replace(".", r"\.")):
            load_model(p)


def test_tiled_inference_equals_the_whole_scene(trained):
    b, a, _, _ = planted_pair(13, size=120)
    whole = trained.predict_proba(b, a, BANDS, tile=1024)
    tiled = trained.predict_proba(b, a, BANDS, tile=64)  # 4 tiles of 64 px + halo
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    b[:, :5, :5] = np.nan  # not observed: NaN out, the rest scored
    p = trained.predict_proba(b, a, BANDS, tile=64)
    assert np.isnan(p[:5, :5]).all() and np.isfinite(p[5:, 5:]).all()


def test_missing_torch_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r"sitewatch\[cnn\]"):
        cnn._build(4)


def test_cli_train_model_type_cnn_then_detect(make_tif, tmp_path):
    from test_change_tiled import NAMES, OBJ, T, scene_pair

    pa, pb, *_ = scene_pair(make_tif)
    label = np.ones((200, 200), np.uint8)
    label[OBJ] = 2
    pl = make_tif("label.tif", label, transform=T)
    runner = CliRunner()
    model = tmp_path / "m.swmodel"
    res = runner.invoke(cli, ["train", "--pair", str(pa), str(pb), str(pl), "--change-value",
                              "2", "--model-type", "cnn", "--epochs", "1", "--seed", "4",
                              "--out", str(model), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["model_type"] == "cnn" and info["bands"] == list(NAMES)
    assert info["training"]["epochs"] == 1 and info["training"]["seed"] == 4
    assert info["training"]["pairs_used"][0]["label"] == str(pl)
    res = runner.invoke(cli, ["detect", str(pa), str(pb), "--model", str(model), "--out",
                              str(tmp_path / "o"), "--window", "64", "--json"])  # 16 windows
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["method"] == "cnn"
    assert summary["threshold"] == pytest.approx(read_header(model)["threshold"], abs=1e-5)
    assert (tmp_path / "o" / "change.tif").exists()
    res = runner.invoke(cli, ["train", "--pair", str(pa), str(pb), str(pl), "--model-type",
                              "gbt", "--epochs", "2", "--out", str(tmp_path / "g")])
    assert res.exit_code != 0 and "--epochs is for --model-type cnn" in res.output
    assert modelfile.CNN_FORMAT_VERSION == 3
