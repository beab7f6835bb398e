"""What a watch run is asked (:class:`RunParams`, whose hash keys every stored result) and
what it did (:class:`RunReport`), shared by :mod:`sitewatch.watch.grids` and
:mod:`sitewatch.watch.pipeline`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sitewatch.errors import SitewatchError
from sitewatch.watch.records import StoredAlert
from sitewatch.watch.sinks import Delivery

#: Bumped whenever the pipeline's algorithm changes what it stores: results of another
#: version are recomputed.
PIPELINE_VERSION = 3
#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]


class PipelineError(SitewatchError, ValueError):
    """The pipeline cannot run for this site (unknown site, no scenes, bad parameters)."""


@dataclass(frozen=True)
class RunParams:
    """What a run's results depend on.  ``method`` None: :data:`WATCH_METHOD` for the sensor
    (HACD, when asked for, runs on the visible bands, or on every loaded band when the
    visible bands are missing)."""

    method: str | None = None
    method_params: dict[str, Any] = field(default_factory=dict)
    min_usable: float = 0.5
    composite: int = 5
    #: Whether change points in a part's brightness and NDVI (relative to the rest of the
    #: site) raise alerts on their own.  Off by default: with less than a year of history
    #: the seasons move parts with more or less vegetation than their surroundings apart,
    #: and on the simulated site that made most parts "shift level" every spring and
    #: autumn.  Either way they say whether a departure was a new level or a spike.
    levels: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.min_usable <= 1.0:
            raise PipelineError(f"min_usable must be in (0, 1], got {self.min_usable!r}")
        if not isinstance(self.composite, int) or self.composite < 2:
            raise PipelineError(f"composite must be an integer >= 2, got {self.composite!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pipeline_version": PIPELINE_VERSION}

    @property
    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunParams:
        d = {k: v for k, v in d.items() if k != "pipeline_version"}
        return cls(**d)


@dataclass
class RunReport:
    """What one run did."""

    site: str
    params: RunParams
    processed: list[tuple[str, str, str]] = field(default_factory=list)  # (scene, status, why)
    reused: int = 0
    alerts: dict[str, list[StoredAlert]] = field(default_factory=dict)  # new/updated
    seconds: float = 0.0
    grids: dict[str, str] = field(default_factory=dict)  # grid -> reference scene
    #: Per sink: alert events delivered by this run (earlier runs' pending ones included)
    #: and still pending (see :mod:`sitewatch.watch.sinks`).
    deliveries: list[Delivery] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for _, s, _ in self.processed if s == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site, "params": self.params.to_dict(), "params_hash": self.params.hash,
            "reused": self.reused, "seconds": round(self.seconds, 3), "grids": self.grids,
            "processed": [{"scene": s, "status": st, "detail": why}
                          for s, st, why in self.processed],
            "alerts": {k: [a.to_dict() for a in v] for k, v in self.alerts.items()},
            "deliveries": [d.to_dict() for d in self.deliveries],
        }


__all__ = ["PIPELINE_VERSION", "PipelineError", "Progress", "RunParams", "RunReport"]
