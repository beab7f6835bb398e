"""The learned change detector on synthetic pairs: new bright roofs are change; a global gain
and a seasonal vegetation shift are not."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sitewatch.change import learned, modelfile
from sitewatch.change.base import MethodError
from sitewatch.change.detect import detect_arrays
from sitewatch.change.features import HALO, feature_names, features, pair_stats
from sitewatch.change.learned import (
    LearnedDetector,
    detector_from_file,
    load_model,
    read_header,
    train,
)

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
#: Reflectance of each cover type in BANDS.
SPECTRA = {
    "soil": (0.10, 0.13, 0.17, 0.24, 0.30, 0.25),
    "veg": (0.04, 0.07, 0.04, 0.40, 0.20, 0.10),
    "town": (0.09, 0.10, 0.11, 0.16, 0.19, 0.17),
    "water": (0.06, 0.05, 0.03, 0.02, 0.01, 0.01),
    "roof": (0.20, 0.21, 0.22, 0.24, 0.25, 0.24),
}
SIZE = 96


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    """These fits are tiny: one thread is fastest, and spares a busy machine the cost of
    OpenMP threads waiting on each other (10 x slower on a loaded 2-core box)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def synthetic_pair(seed: int, gain: float = 1.1):
    """(before, after, label, nuisance) on a SIZE x SIZE grid.

    Blocks of soil, vegetation, town and water; on the second date every band is scaled by
    ``gain`` (haze/sun), vegetation turns autumnal (NIR down, red up), a third of the
    fields are harvested (vegetation to bare soil: a large spectral change) and a few soil
    or vegetation blocks become bright roofs: only the roofs are change.
    """
    rng = np.random.default_rng(seed)
    block = 8
    n = SIZE // block
    kinds = rng.choice(["soil", "veg", "town", "water"], size=(n, n), p=[0.3, 0.4, 0.2, 0.1])
    cover = np.repeat(np.repeat(kinds, block, axis=0), block, axis=1)
    before = np.zeros((len(BANDS), SIZE, SIZE), np.float32)
    for k, spec in SPECTRA.items():
        before[:, cover == k] = np.asarray(spec, np.float32)[:, None]
    before *= rng.uniform(0.85, 1.15, size=(1, SIZE, SIZE)).astype(np.float32)
    after = before.copy()
    veg = cover == "veg"
    after[3, veg] *= 0.6   # NIR drop in autumn
    after[2, veg] *= 1.8   # red up
    after[4, veg] *= 1.3
    harvest = np.repeat(np.repeat((kinds == "veg") & (rng.random((n, n)) < 0.35), block,
                                  axis=0), block, axis=1)
    after[:, harvest] = (np.asarray(SPECTRA["soil"], np.float32)[:, None]
                         * rng.uniform(0.85, 1.15, size=harvest.sum()).astype(np.float32))
    label = np.zeros((SIZE, SIZE), bool)
    cand = np.argwhere((kinds == "soil") | (kinds == "veg"))
    for i, j in cand[rng.choice(len(cand), size=max(3, len(cand) // 8), replace=False)]:
        r, c = i * block + 1, j * block + 1
        size = block - 2
        label[r:r + size, c:c + size] = True
    after[:, label] = (np.asarray(SPECTRA["roof"], np.float32)[:, None]
                       * rng.uniform(0.9, 1.1, size=label.sum()).astype(np.float32))
    after = after * gain + 0.005
    before += rng.normal(0, 0.004, before.shape).astype(np.float32)
    after += rng.normal(0, 0.004, after.shape).astype(np.float32)
    nuisance = veg & ~label
    return before, after, label, nuisance


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int((pred & truth).sum())
    return 2 * tp / max(int(pred.sum()) + int(truth.sum()), 1)


@pytest.fixture(scope="module")
def model():
    pairs = []
    for seed, gain in ((1, 1.0), (2, 1.15)):
        b, a, lab, _ = synthetic_pair(seed, gain)
        pairs.append((b, a, lab, np.ones(lab.shape, bool)))
    return train(pairs, BANDS, max_samples=20_000, holdout_samples=8_000, seed=0)


@pytest.fixture(scope="module")
def test_pair():
    return synthetic_pair(3, gain=0.9)


def test_feature_names_match_features():
    b, a, _, _ = synthetic_pair(5)
    f = features(b, a, BANDS)
    assert f.shape == (len(feature_names(BANDS)), SIZE, SIZE)
    assert f.dtype == np.float32
    # Fewer bands, fewer features: indices need their bands.
    assert "ndbi_diff" not in feature_names(("blue", "green", "red", "nir"))
    assert "ndvi_diff" in feature_names(("blue", "green", "red", "nir"))


def test_unobserved_pixels_are_nan():
    b, a, _, _ = synthetic_pair(5)
    a[:, 10, 10] = np.nan
    f = features(b, a, BANDS)
    assert np.isnan(f[:, 10, 10]).all()
    assert np.isfinite(f[:, 20, 20]).all()


def test_window_with_halo_matches_whole_scene():
    b, a, _, _ = synthetic_pair(6)
    stats = pair_stats(b, a, BANDS)
    whole = features(b, a, BANDS, stats)
    r0, r1, c0, c1 = 30, 60, 20, 50
    win = features(b[:, r0 - HALO:r1 + HALO, c0 - HALO:c1 + HALO],
                   a[:, r0 - HALO:r1 + HALO, c0 - HALO:c1 + HALO], BANDS, stats)
    np.testing.assert_allclose(win[:, HALO:-HALO, HALO:-HALO], whole[:, r0:r1, c0:c1],
                               rtol=1e-4, atol=1e-5)


def test_learns_roofs_and_ignores_seasons(model, test_pair):
    b, a, lab, nuisance = test_pair
    p = model.predict_proba(b, a, BANDS)
    assert p.dtype == np.float32 and p.shape == lab.shape
    pred = p > model.threshold
    assert _f1(pred, lab) > 0.8
    assert pred[nuisance].mean() < 0.05
    assert 0.0 < model.threshold < 1.0
    assert model.summary["pairs"] == 2


def test_detect_arrays_with_learned_detector(model, test_pair):
    b, a, lab, nuisance = test_pair
    det = LearnedDetector(model=model)
    assert det.default_threshold == f"{model.threshold:.6g}"
    assert det.halo == HALO
    cm = detect_arrays(b, a, BANDS, method=det)
    assert cm.method == "learned"
    assert cm.threshold == pytest.approx(model.threshold, rel=1e-5)
    assert _f1(cm.changed, lab) > 0.8
    assert cm.changed[nuisance].mean() < 0.05
    # Extra bands in another order are fine: the model picks its own.
    order = [5, 0, 3, 1, 4, 2]
    cm2 = detect_arrays(b[order], a[order], [BANDS[i] for i in order], method=det)
    np.testing.assert_array_equal(cm2.changed, cm.changed)


def test_save_load_round_trip(model, test_pair, tmp_path):
    b, a, _, _ = test_pair
    path = model.save(tmp_path / "m.swmodel")
    header = read_header(path)
    assert header["bands"] == list(BANDS)
    assert header["threshold"] == model.threshold
    assert header["feature_names"] == feature_names(BANDS)
    json.dumps(header)
    again = load_model(path)
    np.testing.assert_array_equal(again.predict_proba(b, a, BANDS),
                                  model.predict_proba(b, a, BANDS))
    det = detector_from_file(path)
    assert det.default_threshold == f"{model.threshold:.6g}"
    assert det.model.summary == model.summary


def test_bad_files_name_the_file(model, tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 not a model at all")
    with pytest.raises(MethodError, match="garbage.bin"):
        load_model(garbage)
    with pytest.raises(MethodError, match="nothere"):
        load_model(tmp_path / "nothere.swmodel")
    good = model.save(tmp_path / "good.swmodel")
    cut = tmp_path / "cut.swmodel"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(MethodError, match="cut.swmodel"):
        load_model(cut)
    with pytest.raises(MethodError, match=r"good\.swmodel.*swir22"):
        load_model(good, bands=("blue", "green", "red", "nir", "swir16"))


def test_foreign_version_and_features(model, tmp_path):
    path = model.save(tmp_path / "m.swmodel")
    raw = path.read_bytes()
    magic, header, payload = raw.split(b"\n", 2)
    h = json.loads(header)

    def write(name, **changes):
        p = tmp_path / name
        p.write_bytes(magic + b"\n" + json.dumps({**h, **changes}).encode() + b"\n" + payload)
        return p

    with pytest.raises(MethodError, match="v9.swmodel.*version"):
        load_model(write("v9.swmodel", format_version=9))
    with pytest.raises(MethodError, match="feat.swmodel"):
        load_model(write("feat.swmodel", feature_names=["x"]))
    with pytest.raises(MethodError, match="other.swmodel"):
        load_model(write("other.swmodel", format="something-else"))
    with pytest.warns(UserWarning, match="old.swmodel.*0.1"):
        load_model(write("old.swmodel", sklearn_version="0.1"))


def test_detector_needs_a_model_and_its_bands(model, test_pair):
    with pytest.raises(MethodError, match="trained model"):
        LearnedDetector()
    with pytest.raises(MethodError, match="no parameter"):
        LearnedDetector(model=model, alpha=1)
    b, a, _, _ = test_pair
    with pytest.raises(MethodError, match="swir22"):
        detect_arrays(b[:5], a[:5], BANDS[:5], method=LearnedDetector(model=model))


def test_train_rejects_bad_input():
    b, a, lab, _ = synthetic_pair(7)
    with pytest.raises(MethodError, match="no labelled pairs"):
        train([], BANDS)
    with pytest.raises(MethodError, match="both change and no-change"):
        train([(b, a, np.zeros_like(lab), np.ones_like(lab))], BANDS)
    with pytest.raises(MethodError, match="pair 0"):
        train([(b[:3], a[:3], lab, np.ones_like(lab))], BANDS)


def test_best_f1_threshold():
    p = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    y = np.array([0, 0, 1, 1, 1], bool)
    t, f1 = learned.best_f1_threshold(p, y)
    assert 0.2 < t < 0.3 and f1 == 1.0


# --------------------------------------------------------------------------- model files:
# data, not code; sizes bounded before decompressing (issue 14, item 2)


def _legacy_bytes(model, payload: bytes | None = None) -> bytes:
    """A model file as sitewatch wrote them before format 2: header + zlib(joblib pickle)."""
    import io
    import zlib

    import joblib

    header = {k: v for k, v in model.header().items()
              if k not in ("payload", "skops_version")}
    header["format_version"] = learned.LEGACY_FORMAT_VERSION
    if payload is None:
        buf = io.BytesIO()
        joblib.dump(model.estimator, buf)
        payload = zlib.compress(buf.getvalue(), 6)
    return (b"SITEWATCH-CHANGE-MODEL\n" + json.dumps(header).encode() + b"\n" + payload)


class _WritesMarker:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _zeros_stream(gib: int, wbits: int) -> bytes:
    """A deflate stream (zlib for wbits 15, raw for -15) of ``gib`` GiB of zeros, built
    from one repeated fully flushed block: a few MB made in milliseconds (its trailing
    checksum is wrong, which only a complete decompression would notice)."""
    import zlib

    mib = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * ((gib << 10) - 1) + c.flush()


def _zip_one(name: str, data: bytes, *, stated_size: int, crc: int = 0,
             method: int = 8) -> bytes:
    """A zip archive of one member written by hand, stating ``stated_size`` as its size."""
    import struct

    n = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data),
                        stated_size, len(n), 0) + n
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                          len(data), stated_size, len(n), 0, 0, 0, 0, 0, 0) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    return local + data + central + end


def _with_payload(good: bytes, payload: bytes) -> bytes:
    magic, header, _ = good.split(b"\n", 2)
    return magic + b"\n" + header + b"\n" + payload


def _cli(*args):
    from click.testing import CliRunner

    from sitewatch.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(res, name: str) -> str:
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in res.output, res.output
    return lines[0]


def test_model_file_is_data_not_a_pickle(model, tmp_path):
    path = model.save(tmp_path / "m.swmodel")
    raw = path.read_bytes()
    assert read_header(path)["format_version"] == learned.FORMAT_VERSION == 2
    payload = raw.split(b"\n", 2)[2]
    assert payload[:4] == b"PK\x03\x04"  # a zip of JSON and .npy arrays
    assert b"\x80\x04\x95" not in raw and b"cjoblib" not in raw  # no pickle stream


def test_crafted_pickle_model_runs_no_code(model, tmp_path):
    marker = tmp_path / "marker.txt"
    import pickle
    import zlib

    evil = tmp_path / "evil.swmodel"
    evil.write_bytes(_legacy_bytes(model, zlib.compress(pickle.dumps(_WritesMarker(marker)))))
    res = _cli("detect", evil, evil, "--model", evil, "--out", tmp_path / "out")
    line = _one_line_error(res, "evil.swmodel")
    assert "legacy" in line and "--trust-model" in line and "--convert" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    # Converting it without the flag refuses too, and runs nothing.
    res = _cli("train", "--convert", evil, "--out", tmp_path / "new.swmodel")
    _one_line_error(res, "evil.swmodel")
    assert not marker.exists() and not (tmp_path / "new.swmodel").exists()
    with pytest.raises(MethodError, match="evil.swmodel.*legacy"):
        load_model(evil)
    assert not marker.exists()


def test_trusted_legacy_model_loads_and_converts(model, test_pair, make_tif, tmp_path):
    b, a, _, _ = test_pair
    old = tmp_path / "old.joblib"
    old.write_bytes(_legacy_bytes(model))
    again = load_model(old, trust_pickle=True)
    np.testing.assert_array_equal(again.predict_proba(b, a, BANDS),
                                  model.predict_proba(b, a, BANDS))
    assert "--trust-model" in _cli("detect", "--help").output
    assert "ANY CODE" in " ".join(_cli("detect", "--help").output.split())
    # detect --model OLD --trust-model runs; without the flag it refused (test above).
    pb = make_tif("b.tif", (b * 1e4).astype(np.uint16), descriptions=BANDS,
                  scales=[1e-4] * len(BANDS))
    pa = make_tif("a.tif", (a * 1e4).astype(np.uint16), descriptions=BANDS,
                  scales=[1e-4] * len(BANDS))
    res = _cli("detect", pb, pa, "--model", old, "--trust-model", "--out", tmp_path / "o",
               "--json")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "change.tif").exists()
    # Convert once; the new file needs no trust and predicts identically.
    new = tmp_path / "new.swmodel"
    res = _cli("train", "--convert", old, "--trust-model", "--out", new)
    assert res.exit_code == 0, res.output
    assert read_header(new)["format_version"] == learned.FORMAT_VERSION
    conv = load_model(new)
    np.testing.assert_array_equal(conv.predict_proba(b, a, BANDS),
                                  model.predict_proba(b, a, BANDS))
    assert conv.threshold == model.threshold and conv.summary == model.summary
    res = _cli("train", "--out", tmp_path / "x.swmodel")
    assert res.exit_code == 2 and "--convert" in res.output


def test_truncated_or_corrupt_model_is_one_line(model, tmp_path):
    good = model.save(tmp_path / "good.swmodel").read_bytes()
    for name, data in [("cut.swmodel", good[:len(good) // 2]),
                       ("head.swmodel", good[:30]),
                       ("flip.swmodel", good[:-300] + bytes(300)),
                       ("nested.swmodel", b"SITEWATCH-CHANGE-MODEL\n" + b"[" * 200_000
                        + b"\n")]:
        bad = tmp_path / name
        bad.write_bytes(data)
        _one_line_error(_cli("detect", bad, bad, "--model", bad, "--out", tmp_path / "o"),
                        name)
        with pytest.raises(MethodError, match=name):
            load_model(bad)


def test_model_over_the_size_limits_is_refused_before_reading(model, tmp_path, monkeypatch):
    good = model.save(tmp_path / "good.swmodel")
    # (skops names members by object id, so two saves may differ by a few bytes)
    monkeypatch.setattr(modelfile, "MAX_MODEL_BYTES", good.stat().st_size // 2)
    with pytest.raises(MethodError, match=r"good\.swmodel.*limit"):
        load_model(good)
    with pytest.raises(MethodError, match=r"big\.swmodel.*limit"):
        model.save(tmp_path / "big.swmodel")
    assert not (tmp_path / "big.swmodel").exists()


def test_archive_stating_a_huge_size_is_refused_before_decompressing(model, tmp_path):
    good = model.save(tmp_path / "good.swmodel").read_bytes()
    bomb = tmp_path / "claims.swmodel"
    bomb.write_bytes(_with_payload(good, _zip_one("schema.json", b"\x03\x00",
                                                  stated_size=0xFFFF_FFF0)))
    with pytest.raises(MethodError, match=r"claims\.swmodel.*decompress to 4096 MiB.*limit"):
        load_model(bomb)


def test_archive_member_lying_about_its_size_stops_at_the_stated_size(model, tmp_path):
    """A member stating 1 MiB whose deflate stream holds 4 GiB is read no further than
    1 MiB (and refused: its checksum fails)."""
    good = model.save(tmp_path / "good.swmodel").read_bytes()
    bomb = tmp_path / "lies.swmodel"
    bomb.write_bytes(_with_payload(good, _zip_one("schema.json", _zeros_stream(4, -15),
                                                  stated_size=1 << 20)))
    with pytest.raises(MethodError, match=r"lies\.swmodel.*(truncated|corrupt)"):
        load_model(bomb)


def test_array_claiming_more_than_it_holds_is_refused(model, tmp_path):
    import io
    import zipfile

    good = model.save(tmp_path / "good.swmodel").read_bytes()
    zin = zipfile.ZipFile(io.BytesIO(good.split(b"\n", 2)[2]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".npy") and len(data) > 200:
                data = data.replace(b"'shape': (", b"'shape': (1000000000, ", 1)
            zout.writestr(info.filename, data)
    bad = tmp_path / "shape.swmodel"
    bad.write_bytes(_with_payload(good, out.getvalue()))
    with pytest.raises(MethodError, match=r"shape\.swmodel.*array"):
        load_model(bad)


def test_untrusted_types_in_a_model_archive_are_not_loaded(model, tmp_path):
    import io
    import zipfile

    good = model.save(tmp_path / "good.swmodel").read_bytes()
    zin = zipfile.ZipFile(io.BytesIO(good.split(b"\n", 2)[2]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "schema.json":
                data = data.replace(b'"TreePredictor"', b'"Popen"', 1).replace(
                    b'"sklearn.ensemble._hist_gradient_boosting.predictor"', b'"subprocess"', 1)
            zout.writestr(info.filename, data)
    bad = tmp_path / "types.swmodel"
    bad.write_bytes(_with_payload(good, out.getvalue()))
    with pytest.raises(MethodError, match=r"types\.swmodel.*(subprocess|not load|cannot)"):
        load_model(bad)


_BOUNDED_CLI = """
import resource, sys
limit = 1536 << 20  # 1.5 GiB of address space: far less than the bombs decompress to
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from sitewatch.cli.main import main
sys.argv = ["sitewatch", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("trust", [False, True])
def test_compressed_bomb_is_refused_in_bounded_memory(model, tmp_path, trust):
    """A 4 MB legacy model decompressing to 4 GiB, through the CLI in a process limited to
    1.5 GiB: refused with one line naming the file, by the limit, not by running out."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bomb = tmp_path / "bomb.swmodel"
    bomb.write_bytes(_legacy_bytes(model, _zeros_stream(4, 15)))
    assert bomb.stat().st_size < 8 << 20
    src = Path(learned.__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
           "SITEWATCH_HOME": str(tmp_path / "home")}
    args = ["detect", bomb, bomb, "--model", bomb, "--out", tmp_path / "o"]
    if trust:
        args.append("--trust-model")
    r = subprocess.run([sys.executable, "-c", _BOUNDED_CLI, *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=300)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 1, out
    assert len(out.splitlines()) == 1 and "bomb.swmodel" in out, out
    assert ("limit" in out) if trust else ("legacy" in out), out


def test_archive_directory_is_bounded_before_parsing(model, tmp_path):
    good = model.save(tmp_path / "good.swmodel").read_bytes()
    bad = tmp_path / "dir.swmodel"
    bad.write_bytes(good[:-10] + (0x7FFF_FFFF).to_bytes(4, "little") + good[-6:])
    with pytest.raises(MethodError, match=r"dir\.swmodel.*directory claims"):
        load_model(bad)
    bad.write_bytes(good + b"trailing")
    with pytest.raises(MethodError, match=r"dir\.swmodel.*no zip end record"):
        load_model(bad)
