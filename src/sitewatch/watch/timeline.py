"""A site's per-part timeline from stored results: one row per part and date, with the
change since the previous usable date, the change against the rolling composite, the
indices, whether the part was observed, and the alerts that date belongs to.  Reads the
store only; :func:`plot_timeline` draws it (matplotlib, an optional extra)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.errors import MissingExtraError, OutputError, SiteError
from sitewatch.robust import mad
from sitewatch.store import Store
from sitewatch.times import iso, parse_time
from sitewatch.watch.records import StoredAlert
from sitewatch.watch.zonal import MIN_OBSERVED, REST


@dataclass
class TimelineRow:
    time: datetime
    scene_id: str
    grid: str
    part: str
    status: str  # the scene's pipeline status: first | ok | unusable | rejected | failed
    reference: str  # previous | none
    previous_id: str | None
    observed_fraction: float
    changed_fraction: float
    composite_fraction: float
    measures: Mapping[str, float]
    alerts: list[str] = field(default_factory=list)

    @property
    def observed(self) -> bool:
        return self.observed_fraction >= MIN_OBSERVED and self.status in ("ok", "first")

    @property
    def status_word(self) -> str:
        if self.status in ("unusable", "rejected", "failed"):
            return self.status
        if self.observed_fraction < MIN_OBSERVED:
            return "n/o"
        return "first" if self.status == "first" else ""

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"time": iso(self.time), "scene": self.scene_id, "grid": self.grid,
                "part": self.part, "status": self.status, "observed": self.observed,
                "previous": self.previous_id,
                "observed_fraction": clean(self.observed_fraction),
                "changed_fraction": clean(self.changed_fraction),
                "changed_fraction_vs_composite": clean(self.composite_fraction),
                "measures": {k: clean(v) for k, v in self.measures.items()},
                "alerts": self.alerts}


@dataclass
class Timeline:
    site: str
    params_hash: str
    rows: list[TimelineRow]
    alerts: list[StoredAlert]

    @property
    def parts(self) -> list[str]:
        names = sorted({r.part for r in self.rows} - {REST})
        return names + ([REST] if any(r.part == REST for r in self.rows) else [])

    def matrix(self) -> dict[tuple[datetime, str], dict[str, TimelineRow]]:
        """(time, grid) -> part -> row, in time order."""
        out: dict[tuple[datetime, str], dict[str, TimelineRow]] = {}
        for r in self.rows:
            out.setdefault((r.time, r.grid), {})[r.part] = r
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "params_hash": self.params_hash,
                "observations": [r.to_dict() for r in self.rows],
                "alerts": [a.payload() for a in self.alerts]}


def build_timeline(store: Store, site_id: str, params_hash: str, *,
                   part: str | None = None) -> Timeline:
    """The stored timeline of a site (or one part) for one parameter set."""
    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue")
    if part is not None and part != REST:
        site.part(part)  # names the known parts when it is not one
    processed = store.processed(site_id, params_hash)
    obs = store.observations(site_id, params_hash, part=part)
    comp = {(r.scene_id, r.part): r.changed_fraction for r in obs
            if r.reference == "composite"}
    alerts = store.alerts(site_id, part=part, params_hash=params_hash)
    marks: dict[tuple[str, datetime, str], list[str]] = {}
    for a in alerts:
        for f in a.alert.findings:
            key = (a.part, parse_time(f["time"]), f.get("grid") or "")
            marks.setdefault(key, []).append(a.id)
    rows = []
    for r in obs:
        if r.reference == "composite":
            continue
        done = processed.get(r.scene_id)
        ids = sorted(set(marks.get((r.part, r.acquired, r.grid), [])))
        rows.append(TimelineRow(
            r.acquired, r.scene_id, r.grid, r.part, done.status if done else "?", r.reference,
            r.reference_id if r.reference == "previous" else None,
            r.observed_fraction, r.changed_fraction,
            comp.get((r.scene_id, r.part), math.nan), r.measures, ids))
    rows.sort(key=lambda x: (x.time, x.grid, x.part))
    return Timeline(site_id, params_hash, rows, alerts)


#: The measure a part's timeline shows when none of its alerts says otherwise.
DEFAULT_MEASURE = "changed_excess"


@dataclass
class SeriesPoint:
    time: datetime
    scene_id: str
    previous_id: str | None
    value: float  # NaN: the part was not observed that date

    @property
    def observed(self) -> bool:
        return math.isfinite(self.value)


@dataclass
class SeriesAlert:
    id: str
    time: datetime
    value: float  # the alert's value on ``measure`` at its date (NaN: none to show)
    tier: str
    status: str
    scene_id: str | None
    #: The measure ``value`` is on: the series' own, or (an alert raised on another measure
    #: on a date this measure did not see) the measure the alert was raised on.
    measure: str = ""


@dataclass
class PartSeries:
    """One part's measure on one grid over time, as the alerts judge it: the ``measure``
    most of the part's alerts on this grid were raised on (:data:`DEFAULT_MEASURE` when
    none), the normal ``band`` (median +- 3 robust spreads of the dates with no alert; None
    with fewer than 3 such dates) and the alerts at their dates and values."""

    part: str
    grid: str
    measure: str
    points: list[SeriesPoint]
    band: tuple[float, float] | None
    alerts: list[SeriesAlert]

    @property
    def measure_label(self) -> str:
        from sitewatch.watch.alerts import measure_words

        # the alert texts' words run on into a value
        return measure_words(self.measure, self.part).rstrip(", ")

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {"part": self.part, "grid": self.grid, "measure": self.measure,
                "measure_label": self.measure_label,
                "points": [{"time": iso(p.time), "scene": p.scene_id, "previous": p.previous_id,
                            "value": num(p.value), "observed": p.observed}
                           for p in self.points],
                "band": list(self.band) if self.band else None,
                "alerts": [{"id": a.id, "time": iso(a.time), "value": num(a.value),
                            "measure": a.measure or self.measure,
                            "tier": a.tier, "status": a.status, "scene": a.scene_id}
                           for a in self.alerts]}


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def own_point(a: StoredAlert, grid: str | None = None) -> tuple[str, float, str]:
    """Where an alert stands on a timeline: (measure, value, day) of its finding on its own
    date and grid: the measure it was raised on when that was measured then, else the
    largest finding of that date.  An event's record value may be a later date's (its
    strongest); the alert is drawn, and listed, at its own date.  Falls back to the record's
    measure and value."""
    rec = a.alert
    day, grid = rec.time[:10], grid or rec.grid
    here = [f for f in rec.findings if str(f.get("time", ""))[:10] == day
            and (f.get("grid") or grid) == grid
            and isinstance(f.get("value"), (int, float)) and math.isfinite(f["value"])]
    if here:
        f = next((f for f in here if f.get("measure") == rec.measure),
                 max(here, key=lambda f: float(f["value"])))
        return str(f.get("measure") or rec.measure), float(f["value"]), day
    return rec.measure, float(rec.value), day


def part_series(store: Store, site_id: str, params_hash: str, part: str, *,
                processed: Mapping[str, Any] | None = None) -> list[PartSeries]:
    """The series of ``part`` on each grid it was scored on (the pipeline's own series:
    :func:`sitewatch.watch.pipeline.series`), for the latest geometry version."""
    from sitewatch.watch.pipeline import series

    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue")
    if part != REST:
        site.part(part)
    alerts = store.alerts(site_id, part=part, params_hash=params_hash)
    if processed is None:  # a caller drawing many parts reads it once and passes it
        processed = store.processed(site_id, params_hash)
    out = []
    for (p, grid), obs in sorted(series(store, site_id, params_hash, part=part).items()):
        if p != part:
            continue
        mine = [a for a in alerts if (a.alert.grid or grid) == grid]
        counts: dict[str, int] = {}
        for a in mine:  # the measure most of the grid's alerts stand on at their own dates
            m = own_point(a, grid)[0]
            counts[m] = counts.get(m, 0) + 1
        measure = max(counts, key=lambda m: (counts[m], m == DEFAULT_MEASURE)) if counts \
            else DEFAULT_MEASURE
        pts = [SeriesPoint(parse_time(o.time), o.scene_id, o.previous_id,
                           _float(o.measures.get(measure))) for o in obs]
        # Dates the grid processed but could not use (cloud over the site, a failed read)
        # are in no series: they are shown as not observed, never left out.
        have = {p.scene_id for p in pts}
        pts += [SeriesPoint(r.acquired, sid, None, math.nan)
                for sid, r in processed.items() if r.grid == grid and sid not in have]
        pts.sort(key=lambda p: p.time)
        by_day = {p.time.date(): p for p in pts}
        alerted = {a.time.date() for a in mine}
        quiet = np.array([p.value for p in pts if p.observed and p.time.date() not in alerted])
        band = None
        if quiet.size >= 3:
            med = float(np.median(quiet))
            spread = max(float(mad(quiet)), 0.01)
            band = (med - 3 * spread, med + 3 * spread)
        marks = []
        for a in mine:
            on, value, _day = own_point(a, grid)
            at = by_day.get(a.time.date())
            if on == measure and at is not None and math.isfinite(at.value):
                value = at.value  # the plotted point itself (the same number)
            marks.append(SeriesAlert(a.id, a.time, value, a.tier, a.status,
                                     a.alert.after_scene, on))
        out.append(PartSeries(part, grid, measure, pts, band, marks))
    return out


def plot_timeline(tl: Timeline, path: str | Path) -> Path:
    """Changed share per part over time, unobserved dates marked, alerts as triangles."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("plotting needs matplotlib: pip install 'sitewatch[plot]'"
                             ) from None

    parts = tl.parts
    n = max(len(parts), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n + 0.8), sharex=True, squeeze=False)
    for ax, p in zip(axes[:, 0], parts, strict=False):
        rows = [r for r in tl.rows if r.part == p]
        for grid in sorted({r.grid for r in rows}):
            rs = [r for r in rows if r.grid == grid]
            t = [r.time for r in rs if r.observed
                 and r.reference == "previous"]
            v = [100 * r.changed_fraction for r in rs if r.observed
                 and r.reference == "previous"]
            ax.plot(t, v, marker="o", ms=3, lw=1, label=grid)
            miss = [r.time for r in rs if not r.observed]
            ax.plot(miss, [0] * len(miss), "x", color="0.5", ms=4,
                    label="not observed" if miss else None)
            al = [(r.time, 100 * r.changed_fraction) for r in rs
                  if r.alerts and math.isfinite(r.changed_fraction)]
            if al:
                ax.plot(*zip(*al, strict=True), "v", color="black", ms=7, label="alert")
        ax.set_ylabel("changed %", fontsize=8)
        ax.set_title(p, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{tl.site}: change since the previous usable date, per part", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out, dpi=110)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from None
    finally:
        plt.close(fig)
    return out


__all__ = ["DEFAULT_MEASURE", "PartSeries", "SeriesAlert", "SeriesPoint", "Timeline",
           "TimelineRow", "build_timeline", "own_point", "part_series", "plot_timeline"]
