"""From a part's stored observations to alert events.

Each part is watched through a few measures of its observations against the previous usable
date (:mod:`sitewatch.watch.pipeline` stores them):

* ``changed_excess``: the share of the part that changed since the previous usable date
  minus the share of the rest of the site that did, and ``changed_excess_composite``, the
  same against the rolling composite; on SAR series also ``changed_excess_omnibus``, the
  share the sequential omnibus test flags at the date (:mod:`.sarseries`), likewise beyond
  the rest of the site.  Each date is scored against a baseline learned
  from the dates *before* it only (so a run gives the same answer incrementally or from
  scratch), and only rises count: a part changing less than usual is not news.
* ``brightness_rel`` and ``ndvi_rel``: the part's mean brightness and NDVI on each date
  *minus the same for the rest of the site*, so that season, haze and sensor gain, which
  move the whole site together, cancel; change points (:mod:`.changepoints`) tell a
  persistent new level (construction, razing) from a spike (transient activity).

Dates that are part of an alert are left out of the history that later dates are scored
against (an event is not normal), unless the alert was dismissed: a dismissed alert was
normal after all, so its dates join the history and similar values stop alerting.

Findings at one part whose dates touch (a finding's previous usable date is no later than
the last date of the event so far) are one event, and one alert: the strongest finding sets
the tier, a level shift among them makes the event persistent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sitewatch.watch.alerts import TIERS, Alert, alert_id, from_changepoint, from_departure
from sitewatch.watch.baseline import days, fit_baseline
from sitewatch.watch.changepoints import find_changepoints

#: The noise floor of ``score_excess`` (the part's 95th percentile score beyond the rest
#: of the site's, in the pair's noise units; no pixel threshold).
SCORE_FLOOR = 0.5
#: Measures scored as departures from normal (rises only), with their noise floor: the
#: changed share against the previous usable date, and against the rolling clear-sky
#: composite (which still sees a change whose part was under cloud on the first date after
#: it, and confirms that a change persists).
#: Both are taken in excess of the same share over the rest of the site (see
#: :func:`sitewatch.watch.pipeline.series`): a scene that differs everywhere (phenology, haze, a
#: misregistration) is not an event at each part; on the Colorado series those dates made
#: most false alarms.
DEPARTURE_FLOORS: dict[str, float] = {"changed_excess": 0.01,
                                      "changed_excess_composite": 0.01,
                                      "changed_excess_omnibus": 0.01,
                                      "score_excess": SCORE_FLOOR}
#: A departure of these measures found on a comparison that spans seasons (the measure's
#: flag in the observation, see :func:`sitewatch.watch.pipeline.series`) is season until
#: the same comparison against the same season of earlier years (``changed_excess_season``)
#: shows at least :data:`SEASON_CONFIRM` of its value (and :data:`SEASON_CONFIRMS`'s least):
#: otherwise (it does not, or there is no same-season reference yet) it is graded down to
#: ``info`` at ``low`` confidence and said to be possibly season.
SEASON_FLAGS: dict[str, str] = {"changed_excess": "season_span",
                                "changed_excess_composite": "season_span_composite",
                                "score_excess": "season_span"}
#: The same-season measure that confirms each (and its least value).
SEASON_CONFIRMS: dict[str, tuple[str, float]] = {
    "changed_excess": ("changed_excess_season", 0.08),
    "changed_excess_composite": ("changed_excess_season", 0.08),
    "score_excess": ("score_excess_season", 1.0)}
SEASON_CONFIRM = 0.5
#: The words that open the text a season-graded finding adds (:func:`season_graded`).
SEASON_MARK = "Season?"
#: Level measures searched for change points, with their noise floor.
LEVEL_FLOORS: dict[str, float] = {"brightness_rel": 0.005, "ndvi_rel": 0.01}
#: Dates of history needed before a date is scored at all (with one, the alert says its
#: confidence is low and its tier is at most ``watch``).
MIN_HISTORY = 1
#: Words for an event by its kind.
KIND_WORDS = {
    "level_shift": "persistent change (a new level)",
    "spike": "short-lived activity",
    "unconfirmed": "change on the latest date, not yet confirmed",
    "departure": "unusual change",
}


@dataclass(frozen=True)
class Obs:
    """One observation of a part on a date, against the previous usable date."""

    time: str
    scene_id: str
    previous_id: str | None
    previous_time: str | None
    grid: str
    measures: Mapping[str, float] = field(default_factory=dict)


def _value(o: Obs, m: str) -> float:
    v = o.measures.get(m, math.nan)
    return float(v) if v is not None else math.nan


#: Changes whenever scoring changes what it finds: a stored :class:`SeriesState` of another
#: version is not resumed from (its series is scored again from its first date).
SCORING_VERSION = "4"


@dataclass(frozen=True)
class SeriesState:
    """Where scoring one part's series stopped, so that a later run scores only the dates
    after it (:func:`score_series`).  ``n``: dates scored; ``digest``: a hash of everything
    their scoring read (each date's observation, the dismissed times, the scoring
    version), so that a changed history (a scene processed again, an alert dismissed) is
    noticed and the series scored from its start; ``flagged``: which of the ``n`` dates
    were found unusual (they are not normal history for later dates); ``findings``: the
    departures found at those dates."""

    n: int
    digest: str
    flagged: tuple[bool, ...]
    findings: tuple[Alert, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "digest": self.digest,
                "flagged": [i for i, f in enumerate(self.flagged) if f],
                "findings": [a.to_dict() for a in self.findings]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeriesState:
        n = int(d["n"])
        hit = {int(i) for i in d.get("flagged", ())}
        findings = tuple(Alert(**{**f, "findings": tuple(f.get("findings") or ())})
                         for f in d.get("findings", ()))
        return cls(n, str(d["digest"]), tuple(i in hit for i in range(n)), findings)


def _digests(site: str, part: str, series: Sequence[Obs], dismissed: Iterable[str],
             at: Iterable[int]) -> dict[int, str]:
    """The digest of the series' first ``k`` dates (and the dismissed times), for each ``k``
    of ``at``: a hash chained date by date, so that one pass gives every prefix's."""
    want = set(at)
    h = hashlib.sha256(repr((SCORING_VERSION, site, part, sorted(set(dismissed)),
                             DEPARTURE_FLOORS, MIN_HISTORY, SEASON_CONFIRM,
                             SEASON_CONFIRMS)).encode())
    out = {0: h.hexdigest()} if 0 in want else {}
    for k, o in enumerate(series, start=1):
        h.update(repr((o.time, o.scene_id, o.previous_id, o.previous_time, o.grid,
                       sorted(o.measures.items()))).encode())
        if k in want:
            out[k] = h.hexdigest()
    return out


def _departures(site: str, part: str, series: Sequence[Obs], flagged: np.ndarray,
                is_dismissed: np.ndarray, start: int) -> list[Alert]:
    """Departure findings at dates ``start``.. of the series; marks those dates in
    ``flagged`` (which holds the earlier dates' flags already).  Each date is scored
    against the dates before it only, so starting later with the earlier flags gives what
    scoring from the first date gives."""
    times = [o.time for o in series]
    t = days(times) if series else np.zeros(0)
    values = {m: np.array([_value(o, m) for o in series]) for m in DEPARTURE_FLOORS}
    out: list[Alert] = []
    for i in range(start, len(series)):  # date by date: what is flagged is not normal later
        for measure, floor in DEPARTURE_FLOORS.items():
            v = values[measure]
            if not math.isfinite(v[i]):
                continue
            normal = ~flagged[:i] | is_dismissed[:i]
            hist = np.isfinite(v[:i]) & normal
            if hist.sum() < MIN_HISTORY:
                continue
            b = fit_baseline(t[:i], v[:i], floor=floor, normal=normal)
            d = b.departure(t[i], v[i])
            if not d.z > 0:
                continue
            a = from_departure(site, part, measure, times[i], d, b,
                               before_scene=series[i].previous_id,
                               after_scene=series[i].scene_id)
            if a is not None:
                if b.confidence in ("none", "low") and a.tier == "warning":
                    a = replace(a, tier="watch")  # a short history cannot say "extreme"
                a = _season_checked(a, series[i], measure)
            if a is not None:
                flagged[i] = True
                out.append(_placed(a, series[i]))
    return out


def _season_checked(a: Alert, o: Obs, measure: str) -> Alert:
    """A finding on a comparison that spans seasons, judged by the same comparison against
    the same season of earlier years (:data:`SEASON_FLAGS`): kept (and said to be
    confirmed) when that shows the change too; else graded down to ``info`` at ``low``
    confidence and said to be possibly season (so season alone never alerts above that)."""
    flag = SEASON_FLAGS.get(measure)
    if flag is None or not _value(o, flag) > 0:
        return a
    name, least = SEASON_CONFIRMS[measure]
    same = _value(o, name)
    if math.isfinite(same) and same >= max(SEASON_CONFIRM * a.value, least):
        return replace(a, text=a.text + f" The pair spans seasons; against the same season "
                                        f"of earlier years the part changed too "
                                        f"({same:.2f} beyond the rest of the site).")
    why = ("against the same season of earlier years it did not change as much "
           f"({same:.2f} beyond the rest of the site)" if math.isfinite(same) else
           "there is no same-season reference from earlier years yet")
    # Not dropped: the same-season comparison can be blind too (snow lines, another
    # year's threshold), and a real change after a winter gap is then only seen here.
    # The departure's own text names its baseline's confidence; the alert's is now low.
    text = a.text.replace(f"; {a.confidence} confidence, ", "; ", 1)
    return replace(a, tier="info", confidence="low",
                   text=text + f" {SEASON_MARK} The pair spans seasons and {why}: possibly the "
                               "season, not the ground (low confidence).")


def season_graded(text: str) -> bool:
    """Whether an alert's (or finding's) ``text`` says it was graded down as possibly the
    season (:func:`_season_checked`): its low confidence is the season's, not a short
    history's."""
    return SEASON_MARK in text


def score_series(site: str, part: str, series: Sequence[Obs], *,
                 dismissed: Iterable[str] = (), levels: bool = True,
                 state: SeriesState | None = None) -> tuple[list[Alert], SeriesState]:
    """:func:`series_findings`, resuming from ``state`` (what scoring the same series up to
    an earlier date left) when the series still starts with the dates it scored, unchanged:
    only the dates after them are scored then.  Returns the findings (the same as scoring
    from scratch gives) and the state to keep for the next time.  Level change points
    (``levels``) look at the whole series and are always searched again."""
    series = list(series)
    dismissed = set(dismissed)
    n = len(series)
    resume = state is not None and 0 < state.n <= n
    digests = _digests(site, part, series, dismissed, (n, state.n) if resume and state else (n,))
    flagged = np.zeros(n, bool)
    out: list[Alert] = []
    start = 0
    if resume and state is not None and digests[state.n] == state.digest:
        start = state.n
        flagged[:start] = state.flagged
        out = list(state.findings)
    is_dismissed = np.array([o.time in dismissed for o in series], bool)
    out += _departures(site, part, series, flagged, is_dismissed, start)
    new_state = SeriesState(n, digests[n], tuple(bool(f) for f in flagged), tuple(out))
    if levels and series:
        times = [o.time for o in series]
        normal = ~flagged | is_dismissed
        for measure, floor in LEVEL_FLOORS.items():
            v = np.array([_value(o, measure) for o in series])
            if np.isfinite(v).sum() < 4:
                continue
            b = fit_baseline(times, v, floor=floor, normal=normal)
            for cp in find_changepoints(times, v, baseline=b, floor=floor):
                o = series[cp.index]
                a = from_changepoint(site, part, measure, cp, b, before_scene=o.previous_id,
                                     after_scene=o.scene_id)
                if a is not None:
                    out.append(_placed(a, o))
    out.sort(key=lambda a: (a.time, a.measure))
    return out, new_state


def series_findings(site: str, part: str, series: Sequence[Obs], *,
                    dismissed: Iterable[str] = (), levels: bool = True) -> list[Alert]:
    """Findings (one :class:`Alert` per measure and date) for one part on one grid.

    ``series``: the part's observations in time order; ``dismissed``: times (ISO) that
    belong to dismissed alerts and so count as normal.
    """
    return score_series(site, part, series, dismissed=dismissed, levels=levels)[0]


def _placed(a: Alert, o: Obs) -> Alert:
    m = o.measures
    return replace(a, start=o.previous_time or o.time, end=a.time, grid=o.grid,
                   changed_area_m2=_num(m.get("changed_area_m2")),
                   objects=int(_num(m.get("objects"))),
                   objects_area_m2=_num(m.get("objects_area_m2")),
                   largest_object_m2=_num(m.get("largest_object_m2")))


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def _rank(a: Alert) -> tuple[int, float]:
    return TIERS.index(a.tier), abs(a.z) if math.isfinite(a.z) else 0.0


def group_events(site: str, findings: Iterable[Alert], salt: str = "") -> list[Alert]:
    """One alert per event: findings at a part whose dates touch are merged.  ``salt`` (e.g.
    the run's parameter hash) enters the ids, so runs with other parameters keep their own
    alerts."""
    by_part: dict[str, list[Alert]] = {}
    for f in findings:
        by_part.setdefault(f.part, []).append(f)
    events: list[Alert] = []
    for part, fs in by_part.items():
        fs.sort(key=lambda a: (a.time, a.start or a.time))
        group: list[Alert] = []
        for f in fs:
            if group and (f.start or f.time) <= max(g.end or g.time for g in group):
                group.append(f)
                continue
            if group:
                events.append(_event(site, part, group, salt))
            group = [f]
        if group:
            events.append(_event(site, part, group, salt))
    events.sort(key=lambda a: (a.time, a.part))
    return events


def _event(site: str, part: str, group: list[Alert], salt: str = "") -> Alert:
    top = max(group, key=_rank)
    kinds = {g.kind for g in group}
    kind = next((k for k in ("level_shift", "spike", "departure", "unconfirmed")
                 if k in kinds), top.kind)
    tier = max((g.tier for g in group), key=TIERS.index)
    if kind == "level_shift":
        tier = max(tier, "watch", key=TIERS.index)
    first = min(group, key=lambda g: g.time)
    end = max(g.end or g.time for g in group)
    start = min(g.start or g.time for g in group)
    # Change objects: from the first date's pair that shows change, where the objects are.
    src = max((g for g in group if g.time == first.time), key=lambda g: g.objects)
    when = first.time[:10] if end[:10] == first.time[:10] else \
        f"{first.time[:10]} to {end[:10]}"
    objs = (f"; {src.objects} change object{'s' if src.objects != 1 else ''} at the part, "
            f"largest {src.largest_object_m2:,.0f} m2" if src.objects else "")
    text = (f"{part}: {KIND_WORDS.get(kind, kind)}, {when} (previous usable image "
            f"{start[:10]}){objs}. " + " ".join(g.text.split(": ", 1)[-1] for g in group[:4]))
    if len(group) > 4:
        text += f" (+{len(group) - 4} more findings)"
    return Alert(
        alert_id(site, part, "event", f"event{salt}", first.time), site, part, first.time,
        top.measure, kind, tier, top.value, top.expected, top.z, top.confidence, top.history,
        text, src.before_scene, src.after_scene, start=start, end=end, grid=src.grid,
        changed_area_m2=src.changed_area_m2, objects=src.objects,
        objects_area_m2=src.objects_area_m2, largest_object_m2=src.largest_object_m2,
        findings=tuple({k: v for k, v in g.to_dict().items()
                        if k in ("time", "measure", "kind", "tier", "value", "expected", "z",
                                 "grid", "text", "before_scene", "after_scene")}
                       for g in group),
    )


__all__ = [
    "DEPARTURE_FLOORS",
    "LEVEL_FLOORS",
    "MIN_HISTORY",
    "SCORE_FLOOR",
    "SCORING_VERSION",
    "SEASON_CONFIRM",
    "SEASON_CONFIRMS",
    "SEASON_FLAGS",
    "SEASON_MARK",
    "Obs",
    "SeriesState",
    "group_events",
    "score_series",
    "season_graded",
    "series_findings",
]
