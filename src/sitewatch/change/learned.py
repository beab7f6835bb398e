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
  (:meth:`ChangeModel.save`, :func:`load_model`) that holds data, not code (below);
* wraps a model as a :class:`~sitewatch.change.base.Detector` (:class:`LearnedDetector`,
  :func:`detector_from_file`) whose score is P(change).

scikit-learn and skops are optional dependencies (``pip install 'sitewatch[learn]'``),
imported only when a model is trained, saved or loaded.

Model files.  A model file is a line ``SITEWATCH-CHANGE-MODEL``, a JSON header line
(:meth:`ChangeModel.header`: bands, feature names, threshold, versions, training summary) and
the fitted classifier as a `skops <https://skops.readthedocs.io>`_ archive: a zip of a JSON
schema and ``.npy`` arrays, loaded by :func:`skops.io.loads` with an explicit list of trusted
types (:data:`TRUSTED_TYPES`, beyond skops' own set of scikit-learn and numpy types), so
loading a file builds only those objects and never runs code from it.  skops was preferred to
writing the trees out as arrays ourselves: it is kept by scikit-learn developers alongside
scikit-learn's private tree layout (which changes between releases), it restores the very
estimator (identical predictions, scikit-learn's fast parallel predictor), and it is small
(pure Python; pulls in only prettytable and wcwidth besides what sitewatch already has).
Sizes are bounded before anything is decompressed or parsed: the file must be under
:data:`MAX_MODEL_BYTES` and its archive, by the sizes its zip directory states, under
:data:`MAX_CONTENT_BYTES`; members are decompressed in reads that stop at the stated size,
and every array must hold the bytes its header claims, so a zip bomb or a lying array header
is refused with memory staying small.

Files of format version 1 (sitewatch before this format) hold a joblib pickle, which can run
any code on loading: :func:`load_model` refuses them unless ``trust_pickle=True`` (the CLI's
``--trust-model``), and :func:`convert_model` (``sitewatch train --convert OLD
--trust-model --out NEW``) re-saves a trusted one in the current format.
"""

from __future__ import annotations

import io
import json
import math
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.change.base import Detector, Fitted, MethodError, observed_both, with_nan
from sitewatch.change.features import (
    HALO,
    feature_names,
    features,
    pair_stats,
)
from sitewatch.fileio import atomic_write

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

#: What the header of a model file says it is, and the layout version (2: skops archive).
FORMAT = "sitewatch-change-model"
FORMAT_VERSION = 2
#: The layout of files written before version 2: a zlib-compressed joblib pickle.
LEGACY_FORMAT_VERSION = 1


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


def _sklearn():
    try:
        import sklearn
    except ImportError:  # pragma: no cover - depends on the environment
        raise MethodError(
            "the learned change detector needs scikit-learn: pip install 'sitewatch[learn]'"
        ) from None
    return sklearn


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
        bands = tuple(bands)
        missing = [b for b in self.bands if b not in bands]
        if missing:
            raise MethodError(f"the change model needs band(s) {', '.join(missing)}; the "
                              f"pair has {', '.join(bands) or 'none'}")
        pick = [bands.index(b) for b in self.bands]
        return (np.asarray(before, dtype=np.float32)[pick],
                np.asarray(after, dtype=np.float32)[pick])

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
        :data:`MAX_MODEL_BYTES`, so every saved model can be loaded again."""
        sio = _skops()
        p = Path(path)
        try:
            payload = sio.dumps(self.estimator, compression=zipfile.ZIP_DEFLATED,
                                compresslevel=6)
            untrusted = sorted(set(sio.get_untrusted_types(data=payload))
                               - set(TRUSTED_TYPES))
        except Exception as exc:  # skops cannot describe this object
            raise MethodError(f"{p}: the estimator cannot be saved as data "
                              f"({type(exc).__name__}: {exc})") from None
        if untrusted:
            raise MethodError(f"{p}: the estimator holds type(s) a model file may not hold: "
                              f"{', '.join(untrusted)}")
        header = json.dumps(self.header(), sort_keys=True).encode()
        data = _MAGIC + b"\n" + header + b"\n" + payload
        if len(data) > MAX_MODEL_BYTES:
            raise MethodError(f"{p}: the model would be {len(data) / 2**20:.0f} MiB, over the "
                              f"{MAX_MODEL_BYTES >> 20} MiB limit of model files")
        p.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(p, data)


_MAGIC = b"SITEWATCH-CHANGE-MODEL"
_MAX_HEADER = 1 << 20

#: Types outside skops' own trusted set that a model file may hold (and nothing else):
#: the fitted trees of the histogram gradient boosting classifier.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

#: The largest model file read or written (a trained model is about 0.2 MiB).
MAX_MODEL_BYTES = 16 << 20
#: The most its archive may hold once decompressed, checked before decompressing.
MAX_CONTENT_BYTES = 64 << 20
_MAX_MEMBERS = 20_000
_MAX_DIRECTORY = 4 << 20


def _skops():
    _sklearn()
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - depends on the environment
        raise MethodError(
            "change model files need skops: pip install 'sitewatch[learn]'"
        ) from None
    return sio


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - depends on the environment
        return None


def _parse_header(p: Path, head: bytes) -> tuple[dict[str, Any], int]:
    """The header of a model file from its first bytes, and where the payload starts."""
    magic, nl, rest = head.partition(b"\n")
    if magic != _MAGIC or not nl:
        raise MethodError(f"{p}: not a sitewatch change model file")
    line, nl, _ = rest.partition(b"\n")
    if not nl:
        raise MethodError(f"{p}: not a readable sitewatch change model (no complete header)")
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise MethodError(f"{p}: not a readable sitewatch change model "
                          f"({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise MethodError(f"{p}: not a sitewatch change model file")
    version = header.get("format_version")
    if type(version) is not int or version not in (FORMAT_VERSION, LEGACY_FORMAT_VERSION):
        raise MethodError(f"{p}: change model format version {repr(version)[:40]}"
                          f" is not supported (this sitewatch reads {FORMAT_VERSION})")
    return header, len(magic) + len(line) + 2


def _check_size(p: Path) -> int:
    if not p.exists():
        raise MethodError(f"{p}: no such change model file")
    if not p.is_file():
        raise MethodError(f"{p}: not a regular file; a change model is one")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MethodError(f"{p}: not a readable sitewatch change model ({exc})") from None
    if size > MAX_MODEL_BYTES:
        raise MethodError(f"{p}: {size / 2**20:.0f} MiB, over the {MAX_MODEL_BYTES >> 20} MiB "
                          "limit of change model files")
    return size


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a model file, read without loading the estimator.

    Raises :class:`MethodError` naming the file when it is missing, over
    :data:`MAX_MODEL_BYTES`, or is not a sitewatch change model of a format version this
    sitewatch reads (:data:`FORMAT_VERSION`, or the legacy pickle format
    :data:`LEGACY_FORMAT_VERSION`, which :func:`load_model` loads only when trusted).
    """
    p = Path(path)
    _check_size(p)
    try:
        with open(p, "rb") as f:
            head = f.read(len(_MAGIC) + 2 + _MAX_HEADER)
    except OSError as exc:
        raise MethodError(f"{p}: not a readable sitewatch change model ({exc})") from None
    return _parse_header(p, head)[0]


def _legacy_message(p: Path) -> str:
    return (f"{p}: a legacy change model (a pickle, which can run any code on loading); "
            "not loaded. If you made it or trust its source, convert it once with "
            f"`sitewatch train --convert {p} --trust-model --out NEW_FILE`, "
            "or give --trust-model")


def _unpack_archive(p: Path, payload: bytes) -> bytes:
    """The skops archive ``payload`` re-packed uncompressed, after checking it.

    The zip directory's own size is bounded before it is parsed; sizes are checked from
    it before anything is decompressed (the sum of the members' sizes against
    :data:`MAX_CONTENT_BYTES`); each member is then
    decompressed in bounded reads that stop at its stated size, and every ``.npy``
    member must hold the bytes its header promises (so loading an array allocates no
    more than the file holds).
    """
    # The end record must close the file (skops writes no comment); the central directory
    # it points to is bounded before zipfile parses it into one object per member.
    end = payload[-22:]
    if len(end) < 22 or end[:4] != b"PK\x05\x06":
        raise MethodError(f"{p}: the change model is truncated or corrupt (no zip end record)")
    (dir_size,) = struct.unpack("<I", end[12:16])
    if dir_size > _MAX_DIRECTORY:
        raise MethodError(f"{p}: the change model archive's directory claims {dir_size} "
                          f"bytes, over the limit of {_MAX_DIRECTORY}; not loaded")
    try:
        zf = zipfile.ZipFile(io.BytesIO(payload))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise MethodError(f"{p}: the change model is truncated or corrupt ({exc})") from None
    if len(infos) > _MAX_MEMBERS:
        raise MethodError(f"{p}: the change model archive has {len(infos)} members, over "
                          f"the limit of {_MAX_MEMBERS}")
    total = sum(i.file_size for i in infos)
    if total > MAX_CONTENT_BYTES:
        raise MethodError(f"{p}: the change model would decompress to {total / 2**20:.0f} MiB"
                          f", over the {MAX_CONTENT_BYTES >> 20} MiB limit; not loaded")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as w:
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (
                    info.flag_bits & 1):
                raise MethodError(f"{p}: the change model archive uses an unsupported "
                                  "compression or encryption")
            try:
                with zf.open(info) as f:
                    data = f.read(info.file_size)  # bounded: never past the stated size
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
                raise MethodError(f"{p}: the change model is truncated or corrupt "
                                  f"({type(exc).__name__}: {exc})") from None
            if len(data) != info.file_size:
                raise MethodError(f"{p}: the change model is truncated or corrupt "
                                  f"(a member holds {len(data)} of {info.file_size} bytes)")
            if info.filename.endswith(".npy"):
                _check_npy(p, data)
            w.writestr(info.filename, data)
    return out.getvalue()


def _check_npy(p: Path, data: bytes) -> None:
    """An ``.npy`` member must be a plain array holding all the bytes its header claims."""
    fmt = np.lib.format
    buf = io.BytesIO(data)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(buf)
        else:
            raise ValueError(f"npy version {version}")
    except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
        raise MethodError(f"{p}: the change model holds an unreadable array "
                          f"({type(exc).__name__})") from None
    need = math.prod(int(n) for n in shape) * dtype.itemsize
    if dtype.hasobject or need > len(data) - buf.tell():
        raise MethodError(f"{p}: the change model holds an array larger than its data "
                          "(corrupt or crafted); not loaded")


def _unpickle_legacy(p: Path, payload: bytes) -> Any:
    """The estimator of a legacy (pickle) model file: RUNS ANY CODE THE FILE HOLDS."""
    import joblib

    d = zlib.decompressobj()
    try:
        raw = d.decompress(payload, MAX_CONTENT_BYTES + 1)  # bounded: a zlib bomb stops here
    except zlib.error as exc:
        raise MethodError(f"{p}: the change model is truncated or corrupt ({exc})") from None
    if len(raw) > MAX_CONTENT_BYTES or d.unconsumed_tail:
        raise MethodError(f"{p}: the change model decompresses to over "
                          f"{MAX_CONTENT_BYTES >> 20} MiB, the limit; not loaded")
    if not d.eof:
        raise MethodError(f"{p}: the change model is truncated or corrupt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's own version warning: ours is clearer
        return joblib.load(io.BytesIO(raw))


def load_model(path: str | Path, *, bands: Sequence[str] | None = None,
               trust_pickle: bool = False) -> ChangeModel:
    """Read a model written by :meth:`ChangeModel.save`.

    Raises :class:`MethodError` naming the file when it is missing, over
    :data:`MAX_MODEL_BYTES` (or its archive over :data:`MAX_CONTENT_BYTES` once
    decompressed: checked before decompressing), unreadable or truncated, not a sitewatch
    change model, of an unknown format version, holds types outside
    :data:`TRUSTED_TYPES` and skops' own trusted set, is built with features this
    sitewatch does not compute, or lacks ``bands`` the caller requires (when given).  A
    model saved with another scikit-learn version loads with a warning: its predictions
    may differ.

    A legacy model file (format version 1: a pickle) is refused unless ``trust_pickle``
    is true.

    .. warning:: ``trust_pickle=True`` unpickles the file, which can run any code it
       holds: only for files you made yourself or otherwise trust.
    """
    p = Path(path)
    sk = _sklearn()
    _check_size(p)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise MethodError(f"{p}: not a readable sitewatch change model ({exc})") from None
    if len(raw) > MAX_MODEL_BYTES:  # grew since it was checked
        raise MethodError(f"{p}: over the {MAX_MODEL_BYTES >> 20} MiB limit of change "
                          "model files")
    header, start = _parse_header(p, raw[:len(_MAGIC) + 2 + _MAX_HEADER])
    legacy = header["format_version"] == LEGACY_FORMAT_VERSION
    if legacy and not trust_pickle:
        raise MethodError(_legacy_message(p))
    model_bands = tuple(header.get("bands") or ())
    names = list(header.get("feature_names") or [])
    if not model_bands or names != feature_names(model_bands):
        raise MethodError(f"{p}: its features do not match this sitewatch's "
                          f"({__name__}); retrain the model")
    if bands is not None:
        missing = [b for b in model_bands if b not in tuple(bands)]
        if missing:
            raise MethodError(f"{p}: the model needs band(s) {', '.join(missing)}; given "
                              f"{', '.join(bands) or 'none'}")
    try:
        threshold = float(header["threshold"])
    except (KeyError, TypeError, ValueError):
        raise MethodError(f"{p}: the change model has no valid threshold") from None
    if header.get("sklearn_version") != sk.__version__:
        warnings.warn(f"{p}: saved with scikit-learn {header.get('sklearn_version')}, "
                      f"running {sk.__version__}; predictions may differ (retrain to be sure)",
                      UserWarning, stacklevel=2)
    payload = raw[start:]
    del raw
    if legacy:
        try:
            est = _unpickle_legacy(p, payload)
        except MethodError:
            raise
        except Exception as exc:  # truncated, corrupt, incompatible pickle...
            raise MethodError(f"{p}: the change model cannot be read "
                              f"({type(exc).__name__}: {exc})") from None
    else:
        est = _load_skops(p, _unpack_archive(p, payload))
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(est, HistGradientBoostingClassifier):
        raise MethodError(f"{p}: the change model file holds no gradient boosting classifier")
    if getattr(est, "n_features_in_", None) != len(names):
        raise MethodError(f"{p}: the classifier takes {getattr(est, 'n_features_in_', None)}"
                          f" features, the header names {len(names)}; corrupt model")
    return ChangeModel(est, model_bands, names, threshold, dict(header.get("training") or {}))


def _load_skops(p: Path, archive: bytes) -> Any:
    sio = _skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's own version warning: ours is clearer
            return sio.loads(archive, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise MethodError(f"{p}: the change model holds types sitewatch does not load "
                          f"({str(exc)[:200]}); not loaded") from None
    except Exception as exc:  # corrupt archive, schema or array; too deep; another version
        raise MethodError(f"{p}: the change model cannot be read "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None


def convert_model(src: str | Path, dst: str | Path, *, trust_pickle: bool = False
                  ) -> ChangeModel:
    """Re-save the model file ``src`` (any format this sitewatch reads; a legacy pickle
    only with ``trust_pickle``: see :func:`load_model`) in the current format at
    ``dst``; returns the model."""
    model = load_model(src, trust_pickle=trust_pickle)
    model.save(dst)
    return model

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


def detector_from_file(path: str | Path, *, trust_pickle: bool = False) -> LearnedDetector:
    """A :class:`LearnedDetector` from a model file (see :func:`load_model`; a legacy
    pickle file only with ``trust_pickle``)."""
    return LearnedDetector(model=load_model(path, trust_pickle=trust_pickle))
