"""Per-part statistics of a change map (zonal statistics over the site's parts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .change.base import ChangeMap

#: The name under which the site area outside every named part is reported.
REST = "(rest of site)"


@dataclass(frozen=True)
class PartChange:
    """Change at one part between two dates.  Fractions are of the part's pixels."""

    part: str
    pixels: int
    observed_fraction: float
    changed_fraction: float  # of the observed pixels; NaN when nothing is observed
    changed_area_m2: float
    mean_score: float
    p95_score: float

    @property
    def observed(self) -> bool:
        return self.observed_fraction >= 0.5

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def part_changes(
    result: ChangeMap,
    masks: Mapping[str, np.ndarray],
    pixel_area_m2: float,
    *,
    site_mask: np.ndarray | None = None,
) -> dict[str, PartChange]:
    """Change statistics for each part mask, and for the site outside all parts (``REST``)."""
    zones = dict(masks)
    if site_mask is not None:
        outside = site_mask.copy()
        for m in masks.values():
            outside &= ~m
        zones[REST] = outside
    out: dict[str, PartChange] = {}
    for name, m in zones.items():
        n = int(m.sum())
        obs = m & result.observed
        n_obs = int(obs.sum())
        if n == 0 or n_obs == 0:
            out[name] = PartChange(name, n, 0.0, float("nan"), 0.0, float("nan"), float("nan"))
            continue
        ch = int((result.changed & obs).sum())
        s = result.score[obs]
        out[name] = PartChange(
            name, n, n_obs / n, ch / n_obs, ch * pixel_area_m2,
            float(np.mean(s)), float(np.percentile(s, 95)),
        )
    return out
