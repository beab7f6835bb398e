"""The learned change detector: a gradient-boosted classifier of per-pixel features.

Unsupervised detectors flag every spectral change; a labelled set of pairs (such as OSCD,
whose labels mark urban change only) can teach a classifier *which* changes matter.  This
module

* turns a pair of co-registered (bands, rows, cols) arrays into per-pixel features
  (:func:`features`, names from :func:`feature_names`): both dates' bands, their differences
  and log-ratios, spectral indices (NDVI, NDBI, NBR, NDWI where the bands exist) of both
  dates and their change, visible brightness, and local texture of the change magnitude and
  of each date's brightness over 3 x 3 and 7 x 7 windows.  Nothing depends on scene-wide
  statistics, so a window with a halo of :data:`HALO` pixels scores exactly as the whole
  scene would;
* trains a :class:`sklearn.ensemble.HistGradientBoostingClassifier` on balanced samples of
  change / no-change pixels of several labelled pairs (:func:`train`) and picks the
  threshold on P(change) that maximises F1 on pixels the model did not learn from (out of
  fold, pair by pair, when there are several pairs);
* keeps model, bands, feature names, threshold and a training summary in one file
  (:meth:`ChangeModel.save`, :func:`load_model`) that holds data, not code (see
  :mod:`~sitewatch.change.modelfile`);
* wraps a model as a :class:`~sitewatch.change.base.Detector` (:class:`LearnedDetector`,
  :func:`detector_from_file`) whose score is P(change).

scikit-learn and skops are optional dependencies (``pip install 'sitewatch[learn]'``),
imported only when a model is trained, saved or loaded.

The model file's format (a JSON header and a skops archive: data, not code), its size
limits, why skops and why loading is safe are in :mod:`sitewatch.change.modelfile`, whose
public names (:func:`load_model`, :func:`convert_model`, :func:`read_header`,
:data:`FORMAT`, :data:`FORMAT_VERSION`, ...) this module re-exports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.change.base import Detector, Fitted, MethodError, observed_both, pick_bands, with_nan
from sitewatch.change.features import (
    HALO,
    feature_names,
    features,
    pair_stats,
)
from sitewatch.change.modelfile import (
    FORMAT,
    FORMAT_VERSION,
    LEGACY_FORMAT_VERSION,
    MAX_CONTENT_BYTES,
    MAX_MODEL_BYTES,
    TRUSTED_TYPES,
    _sklearn,
    _version,
    convert_model,
    load_model,
    read_header,
    save_model,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LEGACY_FORMAT_VERSION",
    "MAX_CONTENT_BYTES",
    "MAX_MODEL_BYTES",
    "TRUSTED_TYPES",
    "ChangeModel",
    "LearnedDetector",
    "PairSample",
    "convert_model",
    "detector_from_file",
    "fit_samples",
    "load_model",
    "read_header",
    "sample_pair",
    "train",
]

#: Hyper-parameters of the classifier (fixed; chosen on OSCD leave-one-city-out runs).
HGB_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 100,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
    "early_stopping": False,
}

ProgressFn = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- features


def _table(f: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_features, rows, cols) -> (n_pixels, n_features) of the pixels under ``mask``."""
    return np.ascontiguousarray(f[:, mask].T)


# --------------------------------------------------------------------------- the model


@dataclass
class ChangeModel:
    """A trained classifier with what is needed to use it again.

    ``estimator`` is the fitted scikit-learn classifier; ``threshold`` the P(change) above
    which a pixel is change; ``summary`` says how it was trained.
    """

    estimator: Any
    bands: tuple[str, ...]
    feature_names: list[str]
    threshold: float
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def halo(self) -> int:
        return HALO

    def header(self) -> dict[str, Any]:
        """The JSON-able description stored in front of the estimator."""
        from sitewatch import __version__

        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "sitewatch_version": __version__,
                "sklearn_version": _sklearn().__version__,
                "bands": list(self.bands), "feature_names": list(self.feature_names),
                "threshold": float(self.threshold), "halo": HALO,
                "training": self.summary,
                "payload": "skops", "skops_version": _version("skops")}

    def _pick(self, before: np.ndarray, after: np.ndarray, bands: Sequence[str]
              ) -> tuple[np.ndarray, np.ndarray]:
        return pick_bands(before, after, bands, self.bands, "the change model")

    def scene_stats(self, before: np.ndarray, after: np.ndarray,
                    bands: Sequence[str]) -> dict[str, Any]:
        """The scene statistics (:func:`pair_stats`) of a pair, or of a sample of a scene."""
        b, a = self._pick(before, after, bands)
        return pair_stats(b, a, self.bands)

    def predict_proba(self, before: np.ndarray, after: np.ndarray, bands: Sequence[str],
                      stats: dict[str, Any] | None = None) -> np.ndarray:
        """P(change) of every pixel of a pair: float32 (rows, cols), NaN where not
        observed on both dates.  ``bands`` must include the model's bands (extra bands are
        ignored, order does not matter); ``stats`` are the scene statistics
        (:meth:`scene_stats`; default: of this pair)."""
        before, after = self._pick(before, after, bands)
        obs = observed_both(before, after)
        out = np.full(obs.shape, np.nan, dtype=np.float32)
        if obs.any():
            x = _table(features(before, after, self.bands, stats), obs)
            out[obs] = self.estimator.predict_proba(x)[:, 1]
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path``: one file holding a JSON header line
        (:meth:`header`) and the estimator as a skops archive (a zip of JSON and
        ``.npy`` arrays: data, not code).  Raises :class:`MethodError` if the estimator
        holds a type :func:`load_model` would not trust, or the file would be over
        :data:`MAX_MODEL_BYTES`, so every saved model can be loaded again
        (:func:`~sitewatch.change.modelfile.save_model`)."""
        return save_model(self, path)


# --------------------------------------------------------------------------- training

Pair = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _classifier(seed: int):
    _sklearn()
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed, **HGB_PARAMS)


def _sample(label: np.ndarray, valid: np.ndarray, per_class: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of up to ``per_class`` change and as many no-change valid pixels."""
    flat_l, flat_v = label.ravel(), valid.ravel()
    pos = np.flatnonzero(flat_l & flat_v)
    neg = np.flatnonzero(~flat_l & flat_v)
    if len(pos) > per_class:
        pos = rng.choice(pos, per_class, replace=False)
    if len(neg) > per_class:
        neg = rng.choice(neg, per_class, replace=False)
    return pos, neg


def best_f1_threshold(prob: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """The threshold on ``prob`` maximising F1 of ``label`` (and that F1).

    >>> best_f1_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1], bool))
    (0.5, 1.0)
    """
    prob = np.asarray(prob, dtype=np.float64)
    label = np.asarray(label, dtype=bool)
    if not label.any():
        return 0.5, 0.0
    order = np.argsort(-prob, kind="stable")
    p, lab = prob[order], label[order]
    tp = np.cumsum(lab)
    k = np.arange(1, len(p) + 1)
    f1 = 2 * tp / (k + lab.sum())
    # Only cut between distinct values: a cut inside a run of ties is not realisable.
    last = np.r_[p[1:] != p[:-1], True]
    f1 = np.where(last, f1, -1.0)
    i = int(np.argmax(f1))
    nxt = p[i + 1] if i + 1 < len(p) else max(p[i] - 1e-3, 0.0)
    return round(float(0.5 * (p[i] + nxt)), 6), float(f1[i])


@dataclass
class PairSample:
    """Pixels drawn from one labelled pair for training (see :func:`sample_pair`).

    ``x``/``y``: balanced change / no-change pixels to fit on (n, n_features) and (n,);
    ``hold_x``/``hold_y``: other pixels of the pair, at its natural change rate, for
    choosing the threshold; ``change_pixels`` / ``labelled_pixels``: the pair's totals.
    """

    x: np.ndarray
    y: np.ndarray
    hold_x: np.ndarray
    hold_y: np.ndarray
    change_pixels: int
    labelled_pixels: int


def sample_pair(before: np.ndarray, after: np.ndarray, label: np.ndarray, valid: np.ndarray,
                bands: Sequence[str], *, per_class: int = 5_000, holdout: int = 20_000,
                seed: int | np.random.Generator = 0) -> PairSample:
    """Features of one labelled pair, sampled for :func:`fit_samples`.

    ``before``/``after`` are (bands, rows, cols) arrays on one grid (NaN = not observed),
    ``label`` True = change and ``valid`` True = labelled, both (rows, cols).  ``holdout``
    random labelled pixels (at most a fifth of them) are set aside first; then up to
    ``per_class`` change and as many no-change pixels are drawn from the rest.  Scene
    statistics (:func:`pair_stats`) come from the whole pair.
    """
    bands = tuple(bands)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    if before.shape != after.shape or before.ndim != 3 or before.shape[0] != len(bands):
        raise MethodError(f"training pairs must be two (bands, rows, cols) arrays of one "
                          f"shape with {len(bands)} band(s); got {before.shape} and "
                          f"{after.shape}")
    label = np.asarray(label, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if label.shape != before.shape[1:] or valid.shape != label.shape:
        raise MethodError(f"label and valid must be {before.shape[1:]} boolean maps; got "
                          f"{label.shape} and {valid.shape}")
    valid = valid & observed_both(before, after)
    f = features(before, after, bands).reshape(len(feature_names(bands)), -1)
    flat_l = label.ravel()
    cand = np.flatnonzero(valid.ravel())
    h = np.sort(rng.choice(cand, min(holdout, len(cand) // 5), replace=False))
    usable = valid.copy()
    usable.flat[h] = False
    pos, neg = _sample(label, usable, per_class, rng)
    idx = np.concatenate([pos, neg])
    return PairSample(np.ascontiguousarray(f[:, idx].T), flat_l[idx],
                      np.ascontiguousarray(f[:, h].T), flat_l[h],
                      int((label & valid).sum()), int(valid.sum()))


def fit_samples(samples: Sequence[PairSample], bands: Sequence[str], *, folds: int = 3,
                seed: int = 0, progress: ProgressFn | None = None) -> ChangeModel:
    """Fit the classifier on samples of labelled pairs and choose its threshold.

    The threshold on P(change) maximises F1 on held-out pixels the model did not learn
    from, at their natural change rate.  With several pairs (and ``folds`` >= 2) models are
    fitted on ``folds`` groups of pairs in turn and each predicts the held-out pixels of the
    pairs it left out, so the threshold allows for a new scene being unlike the training
    scenes; with one pair, the model predicts that pair's held-out pixels.  The final model
    is then fitted on all the samples.  ``progress(stage, done, total)`` reports the fits.
    """
    bands = tuple(bands)
    if not samples:
        raise MethodError("train: no labelled pairs given")
    x = np.concatenate([s.x for s in samples])
    y = np.concatenate([s.y for s in samples])
    if y.all() or not y.any():
        raise MethodError("train: the labels need both change and no-change pixels")
    k = min(folds, len(samples)) if folds >= 2 else 1
    total = k + 1 if k > 1 else 1
    oof_p, oof_y = [], []
    if k > 1:
        fold_of = np.arange(len(samples)) % k
        for j in range(k):
            if progress:
                progress("fit", j, total)
            tr = [s for s, f in zip(samples, fold_of, strict=True) if f != j]
            ytr = np.concatenate([s.y for s in tr])
            if ytr.all() or not ytr.any():
                continue
            est_j = _classifier(seed).fit(np.concatenate([s.x for s in tr]), ytr)
            for s, f in zip(samples, fold_of, strict=True):
                if f == j and len(s.hold_y):
                    oof_p.append(est_j.predict_proba(s.hold_x)[:, 1])
                    oof_y.append(s.hold_y)
    if progress:
        progress("fit", total - 1, total)
    est = _classifier(seed).fit(x, y)
    if not oof_p:  # one pair (or one fold): the final model on the held-out pixels
        k = 1
        oof_p = [est.predict_proba(s.hold_x)[:, 1] for s in samples if len(s.hold_y)]
        oof_y = [s.hold_y for s in samples if len(s.hold_y)]
    if not oof_p:
        raise MethodError("train: no held-out pixels to choose the threshold on")
    t, f1 = best_f1_threshold(np.concatenate(oof_p), np.concatenate(oof_y))
    n_hold = sum(map(len, oof_y))
    how = (f"max F1 out of fold ({k} folds of pairs, {n_hold} held-out pixels)" if k > 1
           else f"max F1 on {n_hold} held-out pixels of the training pair(s)")
    if progress:
        progress("fit", total, total)
    summary = {"pairs": len(samples), "samples": len(y), "change_samples": int(y.sum()),
               "labelled_pixels": sum(s.labelled_pixels for s in samples),
               "change_pixels": sum(s.change_pixels for s in samples),
               "threshold_rule": how, "threshold_f1": round(f1, 4), "seed": seed,
               "classifier": "HistGradientBoostingClassifier",
               "params": {k: est.get_params()[k] for k in HGB_PARAMS}}
    return ChangeModel(est, bands, feature_names(bands), t, summary)


def train(
    pairs: Sequence[Pair],
    bands: Sequence[str],
    *,
    max_samples: int = 100_000,
    holdout_samples: int = 200_000,
    folds: int = 3,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> ChangeModel:
    """Train a change classifier on labelled pairs.

    ``pairs`` are ``(before, after, label, valid)``: two (bands, rows, cols) float arrays on
    one grid (NaN = not observed) and two boolean (rows, cols) maps, ``label`` True = change,
    ``valid`` True = labelled.  Up to ``max_samples`` pixels in all are drawn for fitting,
    half change and half no change, split evenly between the pairs (a pair with fewer
    change pixels gives all it has), so every scene weighs the same; ``holdout_samples``
    other pixels (split likewise) choose the threshold (see :func:`fit_samples`).
    ``progress(stage, done, total)`` is called as work proceeds.
    """
    bands = tuple(bands)
    if not pairs:
        raise MethodError("train: no labelled pairs given")
    rng = np.random.default_rng(seed)
    per_class = max(1, max_samples // (2 * len(pairs)))
    per_hold = max(1, holdout_samples // len(pairs))
    samples = []
    for i, (before, after, label, valid) in enumerate(pairs):
        if progress:
            progress("features", i, len(pairs))
        try:
            samples.append(sample_pair(before, after, label, valid, bands,
                                       per_class=per_class, holdout=per_hold, seed=rng))
        except MethodError as exc:
            raise MethodError(f"train: pair {i}: {exc}") from None
    if progress:
        progress("features", len(pairs), len(pairs))
    return fit_samples(samples, bands, folds=folds, seed=seed, progress=progress)


# --------------------------------------------------------------------------- detector


class LearnedDetector(Detector):
    """A trained :class:`ChangeModel` as a detector: score = P(change).

    Not registered by name (it needs a model file): build it with
    ``LearnedDetector(model=load_model(path))`` or :func:`detector_from_file`.
    """

    name = "learned"
    sensor = "optical"
    summary = ("Gradient-boosted classifier of per-pixel spectral, index and texture "
               "features trained on labelled pairs; score = P(change).")
    reference = "Ke et al. 2017 (LightGBM-style histogram gradient boosting), scikit-learn"
    # Trained on raw (L1C or L2A) reflectance of both dates; the model learns the
    # radiometric differences it must ignore, and IR-MAD normalisation did not help it.
    normalise = False

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"model": None}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        model = self.options["model"]
        if isinstance(model, (str, Path)):
            model = load_model(model)
        if not isinstance(model, ChangeModel):
            raise MethodError("method 'learned' needs a trained model: "
                              "LearnedDetector(model=load_model(path))")
        self.model = model
        self.options["model"] = model
        self.default_threshold = f"{model.threshold:.6g}"  # type: ignore[misc]
        self.needs = tuple(model.bands)  # type: ignore[misc]
        self.halo = model.halo  # type: ignore[misc]

    def fit(self, before, after, bands) -> Fitted:
        self.check_bands(tuple(bands))
        return {"scene_stats": self.model.scene_stats(before, after, bands)}

    def score(self, before, after, bands, fitted) -> np.ndarray:
        self.check_bands(tuple(bands))
        p = self.model.predict_proba(before, after, bands, fitted.get("scene_stats"))
        return with_nan(p, observed_both(np.asarray(before), np.asarray(after)) & np.isfinite(p))


def detector_from_file(path: str | Path, *, trust_pickle: bool = False) -> Detector:
    """The detector of a model file (see :func:`load_model`; a legacy pickle file only
    with ``trust_pickle``): a :class:`LearnedDetector` for a gradient-boosting model, a
    :class:`~sitewatch.change.cnn.CnnDetector` for a change network."""
    model = load_model(path, trust_pickle=trust_pickle)
    if isinstance(model, ChangeModel):
        return LearnedDetector(model=model)
    from sitewatch.change.cnn import CnnDetector

    return CnnDetector(model=model)
