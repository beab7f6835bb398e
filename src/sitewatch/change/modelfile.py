"""The change model file: its layout, its limits, and reading and writing it.

A model file is a line ``SITEWATCH-CHANGE-MODEL``, a JSON header line
(:meth:`~sitewatch.change.learned.ChangeModel.header`: bands, feature names, threshold,
versions, training summary) and the fitted classifier as a `skops
<https://skops.readthedocs.io>`_ archive: a zip of a JSON schema and ``.npy`` arrays, loaded
by :func:`skops.io.loads` with an explicit list of trusted types (:data:`TRUSTED_TYPES`,
beyond skops' own set of scikit-learn and numpy types), so loading a file builds only those
objects and never runs code from it.  skops was preferred to writing the trees out as arrays
ourselves: it is kept by scikit-learn developers alongside scikit-learn's private tree layout
(which changes between releases), it restores the very estimator (identical predictions,
scikit-learn's fast parallel predictor), and it is small (pure Python; pulls in only
prettytable and wcwidth besides what sitewatch already has).  Sizes are bounded before
anything is decompressed or parsed: the file must be under :data:`MAX_MODEL_BYTES` and its
archive, by the sizes its zip directory states, under :data:`MAX_CONTENT_BYTES`; members are
decompressed in reads that stop at the stated size, and every array must hold the bytes its
header claims, so a zip bomb or a lying array header is refused with memory staying small.

Files of format version 1 (sitewatch before this format) hold a joblib pickle, which can run
any code on loading: :func:`load_model` refuses them unless ``trust_pickle=True`` (the CLI's
``--trust-model``), and :func:`convert_model` (``sitewatch train --convert OLD
--trust-model --out NEW``) re-saves a trusted one in the current format.

The model itself (:class:`~sitewatch.change.learned.ChangeModel`) lives in
:mod:`sitewatch.change.learned`, which re-exports this module's public names.  This module
imports it only inside the functions that build one, so either may be imported first.
scikit-learn and skops are imported only when a model is saved or loaded.

>>> FORMAT, FORMAT_VERSION, LEGACY_FORMAT_VERSION
('sitewatch-change-model', 2, 1)
>>> MAX_MODEL_BYTES >> 20, MAX_CONTENT_BYTES >> 20
(16, 64)
"""

from __future__ import annotations

import io
import json
import math
import struct
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sitewatch.change.base import MethodError
from sitewatch.change.features import feature_names
from sitewatch.fileio import atomic_write

if TYPE_CHECKING:
    from sitewatch.change.cnn import CnnModel
    from sitewatch.change.learned import ChangeModel

__all__ = [
    "CNN_FORMAT_VERSION",
    "FORMAT",
    "FORMAT_VERSION",
    "LEGACY_FORMAT_VERSION",
    "MAX_CONTENT_BYTES",
    "MAX_MODEL_BYTES",
    "TRUSTED_TYPES",
    "convert_model",
    "load_model",
    "read_header",
    "save_cnn",
    "save_model",
]

#: What the header of a model file says it is, and the layout version (2: skops archive).
FORMAT = "sitewatch-change-model"
FORMAT_VERSION = 2
#: The layout of files written before version 2: a zlib-compressed joblib pickle.
LEGACY_FORMAT_VERSION = 1
#: The layout of change network files (:mod:`sitewatch.change.cnn`): the JSON header and an
#: ``.npz`` of the network's weights, read with ``allow_pickle=False``.
CNN_FORMAT_VERSION = 3


def _sklearn():
    try:
        import sklearn
    except ImportError:  # pragma: no cover - depends on the environment
        raise MethodError(
            "the learned change detector needs scikit-learn: pip install 'sitewatch[learn]'"
        ) from None
    return sklearn


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
    if type(version) is not int or version not in (FORMAT_VERSION, LEGACY_FORMAT_VERSION,
                                                    CNN_FORMAT_VERSION):
        raise MethodError(f"{p}: change model format version {repr(version)[:40]}"
                          f" is not supported (this sitewatch reads {FORMAT_VERSION} and "
                          f"{CNN_FORMAT_VERSION})")
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


def _check_bands(p: Path, needed: Sequence[str], bands: Sequence[str] | None) -> None:
    """A :class:`MethodError` naming the model file when ``bands`` (if given) lack one the
    model needs."""
    if bands is None:
        return
    missing = [b for b in needed if b not in tuple(bands)]
    if missing:
        raise MethodError(f"{p}: the model needs band(s) {', '.join(missing)}; given "
                          f"{', '.join(bands) or 'none'}")


def load_model(path: str | Path, *, bands: Sequence[str] | None = None,
               trust_pickle: bool = False) -> ChangeModel | CnnModel:
    """Read a model written by :meth:`~sitewatch.change.learned.ChangeModel.save`
    (:func:`save_model`).

    Raises :class:`MethodError` naming the file when it is missing, over
    :data:`MAX_MODEL_BYTES` (or its archive over :data:`MAX_CONTENT_BYTES` once
    decompressed: checked before decompressing), unreadable or truncated, not a sitewatch
    change model, of an unknown format version, holds types outside
    :data:`TRUSTED_TYPES` and skops' own trusted set, is built with features this
    sitewatch does not compute, or lacks ``bands`` the caller requires (when given).  A
    model saved with another scikit-learn version loads with a warning: its predictions
    may differ.

    A legacy model file (format version 1: a pickle) is refused unless ``trust_pickle``
    is true.  A change network file (format version :data:`CNN_FORMAT_VERSION`) gives a
    :class:`~sitewatch.change.cnn.CnnModel` (:func:`load_cnn`).

    .. warning:: ``trust_pickle=True`` unpickles the file, which can run any code it
       holds: only for files you made yourself or otherwise trust.
    """
    p = Path(path)
    raw = _read_file(p)
    header, start = _parse_header(p, raw[:len(_MAGIC) + 2 + _MAX_HEADER])
    if header["format_version"] == CNN_FORMAT_VERSION:
        return _load_cnn(p, header, raw[start:], bands)
    sk = _sklearn()
    legacy = header["format_version"] == LEGACY_FORMAT_VERSION
    if legacy and not trust_pickle:
        raise MethodError(_legacy_message(p))
    model_bands = tuple(header.get("bands") or ())
    names = list(header.get("feature_names") or [])
    if not model_bands or names != feature_names(model_bands):
        raise MethodError(f"{p}: its features do not match this sitewatch's "
                          "(sitewatch.change.learned); retrain the model")
    _check_bands(p, model_bands, bands)
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

    from sitewatch.change.learned import ChangeModel  # here: learned imports this module

    if not isinstance(est, HistGradientBoostingClassifier):
        raise MethodError(f"{p}: the change model file holds no gradient boosting classifier")
    if getattr(est, "n_features_in_", None) != len(names):
        raise MethodError(f"{p}: the classifier takes {getattr(est, 'n_features_in_', None)}"
                          f" features, the header names {len(names)}; corrupt model")
    return ChangeModel(est, model_bands, names, threshold, dict(header.get("training") or {}))


def _read_file(p: Path) -> bytes:
    _check_size(p)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise MethodError(f"{p}: not a readable sitewatch change model ({exc})") from None
    if len(raw) > MAX_MODEL_BYTES:  # grew since it was checked
        raise MethodError(f"{p}: over the {MAX_MODEL_BYTES >> 20} MiB limit of change "
                          "model files")
    return raw


def _load_cnn(p: Path, header: dict[str, Any], payload: bytes,
              bands: Sequence[str] | None) -> CnnModel:
    """A change network from its header and ``.npz`` payload, checked against the
    architecture the header names before anything is built (numpy only, no pickle)."""
    from sitewatch.change.cnn import ARCH, CnnModel, expected_shapes

    arch = header.get("architecture")
    model_bands = header.get("bands")
    norm = header.get("normalisation")
    if not isinstance(arch, dict) or arch.get("name") != ARCH:
        raise MethodError(f"{p}: not a change network this sitewatch knows (architecture "
                          f"{str(arch.get('name') if isinstance(arch, dict) else arch)[:40]})")
    try:
        widths = tuple(int(w) for w in arch["widths"])
        names = tuple(str(b) for b in model_bands)  # type: ignore[union-attr]
        mean = np.asarray(norm["mean"], np.float32)  # type: ignore[index]
        std = np.asarray(norm["std"], np.float32)  # type: ignore[index]
        threshold = float(header["threshold"])
    except (KeyError, TypeError, ValueError):
        raise MethodError(f"{p}: the change network's header is incomplete or corrupt "
                          "(architecture, bands, normalisation, threshold)") from None
    if (not names or len(widths) != 4 or not all(0 < w <= 1024 for w in widths)
            or mean.shape != (len(names),) or std.shape != (len(names),)
            or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all())
            or not math.isfinite(threshold)):
        raise MethodError(f"{p}: the change network's header is inconsistent (widths, "
                          "bands or normalisation)")
    _check_bands(p, names, bands)
    archive = _unpack_archive(p, payload)
    try:
        with np.load(io.BytesIO(archive), allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise MethodError(f"{p}: the change network's weights cannot be read "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    want = expected_shapes(len(names), widths)
    if set(weights) != set(want):
        raise MethodError(f"{p}: the change network's weights do not match its architecture "
                          f"({len(weights)} arrays, {len(want)} expected); corrupt model")
    for k, shape in want.items():
        w = weights[k]
        if w.shape != shape or w.dtype.kind not in "fi" or (
                w.dtype.kind == "f" and not np.isfinite(w).all()):
            raise MethodError(f"{p}: the change network's array {k} is {w.dtype}{w.shape}, "
                              f"expected {shape} of finite numbers; corrupt model")
    mode = norm.get("mode", "global")  # type: ignore[union-attr]
    if mode not in ("global", "scene"):
        raise MethodError(f"{p}: the change network's input normalisation "
                          f"{str(mode)[:40]!r} is not one this sitewatch knows")
    return CnnModel(names, weights, mean, std, threshold, widths,
                    dict(header.get("training") or {}), input_norm=mode)


def save_cnn(model: CnnModel, path: str | Path) -> Path:
    """Write a change network: the magic line, its JSON header line
    (:meth:`~sitewatch.change.cnn.CnnModel.header`) and an ``.npz`` of its weights."""
    p = Path(path)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in model.weights.items()}
    np.savez_compressed(buf, **arrays)
    header = json.dumps(model.header(), sort_keys=True).encode()
    data = _MAGIC + b"\n" + header + b"\n" + buf.getvalue()
    if len(data) > MAX_MODEL_BYTES:
        raise MethodError(f"{p}: the model would be {len(data) / 2**20:.0f} MiB, over the "
                          f"{MAX_MODEL_BYTES >> 20} MiB limit of model files")
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(p, data)


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


def save_model(model: ChangeModel, path: str | Path) -> Path:
    """Write ``model`` to ``path``: one file holding a JSON header line
    (:meth:`~sitewatch.change.learned.ChangeModel.header`) and the estimator as a skops
    archive (a zip of JSON and ``.npy`` arrays: data, not code).  Raises
    :class:`MethodError` if the estimator holds a type :func:`load_model` would not trust,
    or the file would be over :data:`MAX_MODEL_BYTES`, so every saved model can be loaded
    again."""
    sio = _skops()
    p = Path(path)
    try:
        payload = sio.dumps(model.estimator, compression=zipfile.ZIP_DEFLATED,
                            compresslevel=6)
        untrusted = sorted(set(sio.get_untrusted_types(data=payload))
                           - set(TRUSTED_TYPES))
    except Exception as exc:  # skops cannot describe this object
        raise MethodError(f"{p}: the estimator cannot be saved as data "
                          f"({type(exc).__name__}: {exc})") from None
    if untrusted:
        raise MethodError(f"{p}: the estimator holds type(s) a model file may not hold: "
                          f"{', '.join(untrusted)}")
    header = json.dumps(model.header(), sort_keys=True).encode()
    data = _MAGIC + b"\n" + header + b"\n" + payload
    if len(data) > MAX_MODEL_BYTES:
        raise MethodError(f"{p}: the model would be {len(data) / 2**20:.0f} MiB, over the "
                          f"{MAX_MODEL_BYTES >> 20} MiB limit of model files")
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(p, data)


def convert_model(src: str | Path, dst: str | Path, *, trust_pickle: bool = False
                  ) -> ChangeModel | CnnModel:
    """Re-save the model file ``src`` (any format this sitewatch reads; a legacy pickle
    only with ``trust_pickle``: see :func:`load_model`) in the current format at
    ``dst``; returns the model."""
    model = load_model(src, trust_pickle=trust_pickle)
    model.save(dst)
    return model
