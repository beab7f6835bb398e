"""Training a change model (the gradient-boosting classifier or the change network) from
labelled image pairs on disk.

Each pair is BEFORE, AFTER (scenes as the catalogue accepts them) and LABEL, a single-band
raster on BEFORE's grid (its finest band) whose pixels equal to ``change_value`` are change.
The pair goes through the same preparation as :func:`sitewatch.change.tiled.detect_scenes`
(AFTER co-registered to BEFORE, both masked, AFTER normalised when the classifier wants it),
so the model sees at training time what it will see when it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.change.base import MethodError, observed_both
from sitewatch.change.normalise import NormalisationError, fit_normalisation
from sitewatch.change.tiled import PairLoader, coregister_pair, open_input, scene_grid, sensor_kind
from sitewatch.errors import SceneError
from sitewatch.imagery.scenes import open_raster
from sitewatch.imagery.sensors import OPTICAL_BANDS, registration_bands, worth_applying


def read_label(path: str | Path, shape: tuple[int, int], change_value: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(change, labelled) boolean maps from a label raster that must match ``shape``."""
    try:
        with open_raster(path) as ds:
            if (ds.height, ds.width) != shape:
                raise SceneError(f"label {path}: {ds.width} x {ds.height} pixels, but BEFORE's "
                                 f"grid is {shape[1]} x {shape[0]}; the label must be on "
                                 "BEFORE's grid at its finest resolution")
            v = ds.read(1)
            labelled = ds.read_masks(1) > 0
    except OSError as exc:
        raise SceneError(f"label {path}: cannot be read ({exc})") from None
    if v.dtype.kind == "f":
        labelled &= np.isfinite(v)
    change = (v == change_value) & labelled
    return change, labelled


def prepare_pair(before: str | Path, after: str | Path, bands: Sequence[str] | None,
                 normalise: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], Any]:
    """Both dates of a pair as arrays on BEFORE's grid, co-registered and masked."""
    sb, sa = open_input(before), open_input(after)
    kind, _ = sensor_kind(sb, None)
    if kind != "optical":
        raise MethodError(f"{before}: the learned classifier is for optical images")
    have = {b.common_name or b.name for b in sb.bands} & {b.common_name or b.name
                                                           for b in sa.bands}
    use = tuple(bands) if bands else tuple(b for b in OPTICAL_BANDS if b in have)
    missing = [b for b in use if b not in have]
    if missing or not use:
        raise MethodError(f"{before} / {after}: band(s) {', '.join(missing) or 'none'} not in "
                          "both images")
    grid = scene_grid(sb)
    loader = PairLoader(sb, sa, grid, use, spectral_clouds=not sb.masks and not sa.masks)
    if grid.crs is not None:
        reg = coregister_pair(loader, registration_bands(use))
        if reg is not None and reg.status != "rejected" and worth_applying(reg.shift):
            loader.shift = reg.shift  # as detect_scenes applies it
    b, a = loader.load(None)
    if normalise:
        with contextlib.suppress(NormalisationError):  # as detection does: go on without
            a = fit_normalisation(b, a).apply(a)
    return b, a, use, grid


MODEL_TYPES = ("cnn", "gbt")


def default_model_type() -> str:
    """The best model type installed: ``gbt`` (the gradient-boosting classifier) when
    scikit-learn and skops are installed, else ``cnn`` (the change network) when PyTorch
    is, else ``gbt`` (whose error names the extra to install).  Best as measured on OSCD
    leave one city out (docs/bench_oscd_cnn.md): the network as built scores well below the
    classifier there, so it is the default only where it is the one installed."""
    from importlib.util import find_spec

    from sitewatch.change.cnn import torch_available

    if find_spec("sklearn") is not None and find_spec("skops") is not None:
        return "gbt"
    return "cnn" if torch_available() else "gbt"


def train_from_files(
    pairs: Sequence[tuple[str | Path, str | Path, str | Path]],
    out_path: str | Path,
    *,
    change_value: float = 1,
    bands: Sequence[str] | None = None,
    model_type: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **train_options: Any,
) -> Any:
    """Train on labelled pairs of files and save the model to ``out_path``; returns it.

    ``model_type`` is ``gbt`` (:func:`sitewatch.change.learned.train`, ``train_options``
    its keywords) or ``cnn`` (:func:`sitewatch.change.cnn.train_cnn`, ``train_options``
    fields of :class:`~sitewatch.change.cnn.TrainOptions`); default
    :func:`default_model_type`.
    """
    from sitewatch.change.learned import LearnedDetector, train

    kind = model_type or default_model_type()
    if kind not in MODEL_TYPES:
        raise MethodError(f"unknown model type {kind!r}; known: {', '.join(MODEL_TYPES)}")
    tick = progress or (lambda *_: None)
    arrays = []
    names: tuple[str, ...] | None = None
    for i, (before, after, label) in enumerate(pairs):
        tick("reading pairs", i, len(pairs))
        b, a, use, grid = prepare_pair(before, after, bands, LearnedDetector.normalise)
        if names is not None and use != names:
            raise MethodError(f"{before}: has bands {', '.join(use)}, the first pair "
                              f"{', '.join(names)}; give --bands to pick common ones")
        names = use
        change, labelled = read_label(label, grid.shape, change_value)
        valid = labelled & observed_both(b, a)
        if not valid.any():
            raise MethodError(f"{label}: no labelled pixel is observed on both dates")
        arrays.append((b, a, change, valid))
    tick("reading pairs", len(pairs), len(pairs))
    if not any(c[v].any() for _, _, c, v in arrays):
        raise MethodError(f"no label pixel equals the change value {change_value:g}; check "
                          "--change-value")
    assert names is not None
    if kind == "cnn":
        from sitewatch.change.cnn import TrainOptions, train_cnn

        prov = {"pairs_used": [{"before": str(b), "after": str(a), "label": str(lab)}
                               for b, a, lab in pairs]}
        model: Any = train_cnn(arrays, names, options=TrainOptions(**train_options),
                               provenance=prov, progress=progress)
    else:
        model = train(arrays, names, progress=progress, **train_options)
    model.save(out_path)
    return model

__all__ = ["MODEL_TYPES", "default_model_type", "prepare_pair", "read_label",
           "train_from_files"]
