"""Alerts against ground truth: hits, misses, false alarms and lag.

Ground truth is a list of dated changes on the ground (:class:`TruthChange`): the day an
event appears, each later stage (a cleared plot gets a roof), and the day after it ends (a
structure moves back).  A change is *detected* when an alert at one of its parts has a
finding on one of the first two usable dates of that finding's grid at or after the change
(lag 0: the first usable scene after the change; lag 1: the next).  An alert is a *false
alarm* when none of its findings is explained: explained means within that window of a
change at the same part, or while an event with a known end is on the ground there
(vehicles that come and go keep changing).  False alarms are counted per part-year: the
number of parts watched times the years of the series.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

#: A change counts as detected within this many usable scenes after the first one.
MAX_LAG = 1


@dataclass(frozen=True)
class TruthChange:
    """A dated change on the ground at some parts.  ``until``: the last day of an event
    with a known end that keeps changing while it lasts (None: a one-off change)."""

    event: str
    time: str  # ISO date of the first day the change is on the ground
    parts: tuple[str, ...]
    kind: str = ""
    until: str | None = None


def changes_from_events(events: Iterable[Any]) -> list[TruthChange]:
    """Dated changes from :class:`sitewatch.sim.simulate.SimEvent`-like events (``id``,
    ``kind``, ``parts``, ``start``, ``end``, ``stages``)."""
    out = []
    for e in events:
        until = e.end.isoformat() if e.end else None
        dates = {e.start} | {d for d, _ in getattr(e, "stages", ())}
        for d in sorted(dates):
            out.append(TruthChange(e.id, d.isoformat(), tuple(e.parts), e.kind, until))
        if e.end:
            out.append(TruthChange(e.id, (e.end + timedelta(days=1)).isoformat(),
                                   tuple(e.parts), e.kind + " (ends)", None))
    return out


@dataclass
class Hit:
    change: TruthChange
    alert: str | None  # alert id, None when missed
    lag: int | None  # usable scenes after the first one at or after the change


@dataclass
class Scorecard:
    hits: list[Hit] = field(default_factory=list)
    false_alarms: list[Mapping[str, Any]] = field(default_factory=list)
    alerts: int = 0
    part_years: float = 0.0

    @property
    def detected(self) -> int:
        return sum(1 for h in self.hits if h.alert is not None)

    def summary(self) -> dict[str, Any]:
        n = len(self.hits)
        lags = [h.lag for h in self.hits if h.lag is not None]
        return {
            "changes": n, "detected": self.detected,
            "detection_rate": self.detected / n if n else None,
            "mean_lag_scenes": sum(lags) / len(lags) if lags else None,
            "alerts": self.alerts, "false_alarms": len(self.false_alarms),
            "part_years": round(self.part_years, 3),
            "false_alarms_per_part_year": (len(self.false_alarms) / self.part_years
                                           if self.part_years else None),
        }


def _day(t: str) -> str:
    return t[:10]


def _window(usable: Sequence[str], t: str) -> list[str]:
    """The first MAX_LAG + 1 usable dates at or after ``t`` (ISO dates, sorted)."""
    i = bisect.bisect_left(usable, t)
    return list(usable[i:i + MAX_LAG + 1])


def score(alerts: Sequence[Mapping[str, Any]], changes: Sequence[TruthChange],
          usable: Mapping[str, Sequence[str]], *, part_years: float = 0.0) -> Scorecard:
    """Score stored alerts (dicts with ``id``, ``part`` and ``record.findings``) against
    ``changes``.  ``usable``: per grid, the sorted ISO dates of its usable scenes."""
    use = {g: sorted(_day(t) for t in ts) for g, ts in usable.items()}
    card = Scorecard(alerts=len(alerts), part_years=part_years)
    found: list[tuple[str, str, str, str]] = []  # (alert id, part, grid, day)
    for a in alerts:
        rec = a.get("record", a)
        for f in rec.get("findings") or [rec]:
            found.append((a["id"], a["part"], f.get("grid") or rec.get("grid") or "",
                          _day(f["time"])))
    for c in changes:
        best: tuple[int, str] | None = None
        for aid, part, grid, day in found:
            if part not in c.parts:
                continue
            win = _window(use.get(grid, []), c.time)
            if day in win:
                lag = win.index(day)
                if best is None or lag < best[0]:
                    best = (lag, aid)
        card.hits.append(Hit(c, best[1] if best else None, best[0] if best else None))
    for a in alerts:
        rec = a.get("record", a)
        mine = [f for f in found if f[0] == a["id"]]
        if not any(_explained(part, grid, day, changes, use) for _, part, grid, day in mine):
            card.false_alarms.append(a)
    return card


def _explained(part: str, grid: str, day: str, changes: Sequence[TruthChange],
               use: Mapping[str, Sequence[str]]) -> bool:
    for c in changes:
        if part not in c.parts:
            continue
        if day in _window(use.get(grid, []), c.time):
            return True
        if c.until and c.time <= day:
            after = _window(use.get(grid, []), (date.fromisoformat(c.until)
                                                 + timedelta(days=1)).isoformat())
            if day <= (after[-1] if after else c.until):
                return True
    return False


__all__ = ["MAX_LAG", "Hit", "Scorecard", "TruthChange", "changes_from_events", "score"]
