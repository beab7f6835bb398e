"""Sensor rules (sitewatch.imagery.sensors), and that detection, training, the watch pipeline
and the figures take them from there rather than from rules of their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from sitewatch.change import detect, tiled, training
from sitewatch.imagery import sensors
from sitewatch.imagery.coregister import Shift
from sitewatch.imagery.grid import GridImage, SiteGrid
from sitewatch.imagery.sensors import (
    MIN_APPLIED_SHIFT_PX,
    kind_of,
    registration_bands,
    rgb_bands,
    worth_applying,
)
from sitewatch.report.quicklook import true_colour
from sitewatch.watch import grids, pipeline
from test_change_tiled import scene_pair


@pytest.mark.parametrize(("name", "kind"), [
    ("sentinel-2", "optical"), ("Sentinel-2B", "optical"), ("landsat", "optical"),
    ("sim-10m", "optical"), ("sentinel-1", "sar"), ("S1A", "sar"), ("iceye-sar", "sar"),
    ("camera", None), ("", None),
])
def test_sensor_kinds(name, kind):
    assert kind_of(name) == kind


def test_one_minimum_shift_for_every_use():
    assert MIN_APPLIED_SHIFT_PX == 0.1
    assert not worth_applying(Shift(0.05, 0.05))  # one 0.05 px phase-correlation step
    assert worth_applying(Shift(0.06, 0.08))  # 0.1 px exactly
    assert worth_applying(Shift(-2.0, 0.0))


def test_registration_and_true_colour_bands():
    assert registration_bands(("blue", "green", "red", "nir")) == ["red"]
    assert registration_bands(("nir", "swir16")) == ["nir"]
    assert registration_bands(("vv", "vh")) == ["vv", "vh"]
    assert rgb_bands(("blue", "green", "red", "nir")) == ("red", "green", "blue")
    assert rgb_bands(("b1", "b2", "b3", "b4")) == ("b1", "b2", "b3")
    assert rgb_bands(["green", "red"]) == ("green", "red")


def test_detection_pipeline_and_training_use_these_rules():
    # The same objects, not copies that could drift apart again (issue 13).
    assert tiled.OPTICAL_BANDS is sensors.OPTICAL_BANDS is grids.OPTICAL_BANDS
    assert tiled.registration_bands is sensors.registration_bands is grids.registration_bands
    assert training.registration_bands is sensors.registration_bands
    assert tiled.worth_applying is grids.worth_applying is training.worth_applying
    assert pipeline.WATCH_METHOD is sensors.WATCH_METHOD
    assert detect.DEFAULT_METHOD is sensors.PAIR_METHOD
    assert not hasattr(pipeline, "MIN_APPLIED_SHIFT_PX")


def _image(bands: tuple[str, ...]) -> GridImage:
    data = np.stack([np.full((2, 2), i, np.float32) for i in range(len(bands))])
    return GridImage("s", datetime(2024, 1, 1, tzinfo=UTC), "x", SiteGrid(None, None, 2, 2),
                     bands, data, np.zeros((2, 2), np.uint8))


def test_true_colour_follows_the_rgb_rule():
    img = _image(("blue", "green", "red", "nir"))
    assert true_colour(img)[:, 0, 0].tolist() == [2, 1, 0]  # red, green, blue
    assert true_colour(_image(("a", "b", "c", "d")))[:, 0, 0].tolist() == [0, 1, 2]
    assert true_colour(_image(("vv", "vh")))[:, 0, 0].tolist() == [0, 0, 0]


def test_detect_applies_a_shift_only_above_the_shared_minimum(make_tif, tmp_path, monkeypatch):
    pa, pb, *_ = scene_pair(make_tif, shift_px=2)
    run = detect_scenes_quick(pa, pb, tmp_path / "a")
    assert run.summary["registration_applied"]
    # Raising the one threshold (not a copy in tiled.py) stops the 2 px shift being applied.
    monkeypatch.setattr(sensors, "MIN_APPLIED_SHIFT_PX", 5.0)
    run = detect_scenes_quick(pa, pb, tmp_path / "b")
    assert not run.summary["registration_applied"]
    assert any("not applied" in n for n in run.summary["notes"])
    saved = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert saved["registration_applied"] is False


def detect_scenes_quick(pa, pb, out):
    return tiled.detect_scenes(pa, pb, out, method="cva", window=100, clouds=False)


def test_an_interrupted_detection_keeps_the_previous_outputs(make_tif, tmp_path, monkeypatch):
    pa, pb, *_ = scene_pair(make_tif)
    out = tmp_path / "out"
    detect_scenes_quick(pa, pb, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tiled, "_window_change", boom)
    with pytest.raises(KeyboardInterrupt):
        tiled.detect_scenes(pa, pb, out, method="cva", window=100, clouds=False,
                            overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary files
