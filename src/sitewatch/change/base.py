"""One interface for every change detector, and the registry that names them.

A detector works in two steps so that the same code runs on a small in-memory pair and on a
full Sentinel-2 tile processed window by window:

1. :meth:`Detector.fit` gathers the *global* statistics it needs (canonical variates, noise
   scales, cluster centres, the equivalent number of looks...) from a sample of the pair;
2. :meth:`Detector.score` turns any window of the pair into a float change score (higher =
   more change, NaN = not observed on both dates) using only those statistics, so a window's
   score does not depend on where the window lies.

Arrays are ``(bands, rows, cols)`` float32 with NaN where a pixel is not observed.  A
detector that looks at neighbourhoods says how many context pixels (:attr:`Detector.halo`) a
window needs around it.  The threshold that turns a score into a change map is picked
separately (:mod:`sitewatch.change.thresholds`) on the scores of the sample, by the
detector's default rule or the user's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sitewatch.errors import SitewatchError
from sitewatch.imagery.sensors import SENSOR_KINDS

Fitted = dict[str, Any]


class MethodError(SitewatchError, ValueError):
    """An unknown method, a bad parameter, or a pair that a method cannot handle."""


@dataclass(frozen=True)
class ChangeMap:
    """What a detector says about a pair on one grid.

    ``score`` is float32 (NaN where not observed on both dates), ``changed`` the boolean map
    after thresholding and cleaning, ``observed`` where both dates see the ground, and
    ``threshold`` the score above which a pixel is change (``threshold_rule`` says how it was
    chosen).  ``details`` carries method-specific figures (iterations, looks, correlations).
    """

    score: np.ndarray
    changed: np.ndarray
    observed: np.ndarray
    threshold: float
    threshold_rule: str
    method: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_fraction(self) -> float:
        n = int(self.observed.sum())
        return float(self.changed[self.observed].sum() / n) if n else float("nan")


class Detector(ABC):
    """A change detector (see the module docstring)."""

    #: Name used on the command line.
    name: ClassVar[str]
    #: "optical" or "sar".
    sensor: ClassVar[str]
    #: One line on what it does.
    summary: ClassVar[str]
    #: Where the method comes from.
    reference: ClassVar[str] = ""
    #: Threshold rule used when the user gives none (see thresholds.pick).
    default_threshold: ClassVar[str] = "otsu"
    #: Context pixels a window needs on each side.
    halo: ClassVar[int] = 0
    #: Bands (common names) the method needs; empty = any bands.
    needs: ClassVar[tuple[str, ...]] = ()
    #: Whether relative radiometric normalisation (IR-MAD + orthogonal regression) helps it.
    normalise: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.params())
        if unknown:
            raise MethodError(
                f"method {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(self.params()) or 'none'}"
            )
        self.options = {**self.params(), **params}

    @classmethod
    def params(cls) -> dict[str, Any]:
        """Tunable parameters and their defaults."""
        return {}

    def dof(self, n_bands: int) -> int | None:
        """Degrees of freedom of the score's chi-square null distribution, if it has one."""
        return None

    def check_bands(self, bands: tuple[str, ...]) -> None:
        missing = [b for b in self.needs if b not in bands]
        if missing:
            raise MethodError(
                f"method {self.name!r} needs band(s) {', '.join(missing)}; the pair has "
                f"{', '.join(bands) or 'none'}"
            )

    @abstractmethod
    def fit(self, before: np.ndarray, after: np.ndarray, bands: tuple[str, ...]) -> Fitted:
        """Global statistics from a sample of the pair."""

    @abstractmethod
    def score(self, before: np.ndarray, after: np.ndarray, bands: tuple[str, ...],
              fitted: Fitted) -> np.ndarray:
        """Change score of a window, float32 (rows, cols), NaN where not observed."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "sensor": cls.sensor, "summary": cls.summary,
                "reference": cls.reference, "default_threshold": cls.default_threshold,
                "needs_bands": list(cls.needs), "params": cls.params(),
                "normalised": cls.normalise}


_REGISTRY: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector known by its name."""
    if cls.sensor not in SENSOR_KINDS:
        raise ValueError(f"{cls.__name__}: sensor must be one of {SENSOR_KINDS}")
    _REGISTRY[cls.name] = cls
    return cls


def methods(sensor: str | None = None) -> list[type[Detector]]:
    """The known detectors (optionally for one sensor), in registration order."""
    _load_builtin()
    return [c for c in _REGISTRY.values() if sensor is None or c.sensor == sensor]


def get_detector(name: str, **params: Any) -> Detector:
    """A detector instance by name; an unknown name lists the known ones."""
    _load_builtin()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise MethodError(
            f"unknown method {name!r}; known: {', '.join(_REGISTRY)}"
        ) from None
    return cls(**params)


def _load_builtin() -> None:
    from sitewatch.change import optical, sar  # noqa: F401  (registration side effect)


def observed_both(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pixels observed (finite in every band) on both dates."""
    return np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)


def with_nan(score: np.ndarray, observed: np.ndarray) -> np.ndarray:
    out = np.asarray(score, dtype=np.float32)
    out[~observed] = np.nan
    return out


def finite_sample(values: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    """The finite values of ``values`` (flattened), strided down to about ``limit``."""
    v = values[np.isfinite(values)]
    if v.size > limit:
        v = v[:: int(np.ceil(v.size / limit))]
    return v


ProgressFn = Callable[[int, int], None]

__all__ = ["ChangeMap", "Detector", "Fitted", "MethodError", "ProgressFn", "finite_sample",
           "get_detector", "methods", "observed_both", "pick_bands",
           "register_detector", "with_nan"]


def pick_bands(before: np.ndarray, after: np.ndarray, bands: Sequence[str],
               wanted: Sequence[str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``wanted`` bands of a pair whose bands are ``bands``, in ``wanted``'s order, as
    float32; a :class:`MethodError` naming ``what`` (the model) when one is missing."""
    bands = tuple(bands)
    missing = [b for b in wanted if b not in bands]
    if missing:
        raise MethodError(f"{what} needs band(s) {', '.join(missing)}; the pair has "
                          f"{', '.join(bands) or 'none'}")
    pick = [bands.index(b) for b in wanted]
    return (np.asarray(before, dtype=np.float32)[pick],
            np.asarray(after, dtype=np.float32)[pick])
