"""The brief's words: which alerts come first, the key findings as plain sentences with dates
and sources, and the appendix rows where ids and odds arithmetic go.

Everything here is worked out from records (stored alerts, the assessment, processed-scene
rows); nothing is read from disk and nothing is drawn, so the words can be tested apart from
the figures.  The page (:mod:`sitewatch.report.brief`) prints them.

Ranking.  An analyst reads a brief from the top: Figure 1 must be the finding that matters
most.  Alerts are grouped into *pair findings* (the alerts raised on the same before/after
dates on one grid: one event often shows at several parts at once, e.g. a transfer structure
that leaves its parked position and appears at the pad), and the groups are ranked by
tier, then by the analyst's own word (confirmed first), then confidence, then how many of the
group's parts bear on a launch or an engine test, then the largest change object, then the
departure in spreads.  Within a group the same order holds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sitewatch.errors import CollateralError, SiteError
from sitewatch.sites.site import Site
from sitewatch.times import iso_day
from sitewatch.warning.indicators import IndicatorSet
from sitewatch.warning.records import EventAssessment, Reason, SiteAssessment
from sitewatch.watch.events import season_graded
from sitewatch.watch.records import ProcessedScene, StoredAlert

#: Tiers from the most to the least urgent.
TIER_ORDER = {"warning": 0, "watch": 1, "info": 2}
#: Part kinds that bear on a launch or an engine test (an alert there reads first).
EVENT_PART_KINDS = frozenset({"launch_pad", "gantry_tower", "transfer_structure",
                              "fuel_storage", "assembly_building", "rail_terminal",
                              "rail_line", "engine_test_stand"})
#: How the assessment's events are named in sentences.
EVENT_WORDS = {"launch": "Launch", "engine_test": "Engine test"}
LOW_CONFIDENCE = ("low", "none")


def part_label(site: Site, name: str) -> str:
    """How a page names part ``name``: its label; the part the pipeline scores outside every
    named part (:data:`~sitewatch.watch.zonal.REST`) is "the whole site" on a site with no
    placed part and "the rest of the site" otherwise."""
    from sitewatch.watch.zonal import REST

    if name == REST:  # with no part placed, the pipeline's rest is the whole site
        return "Rest of the site" if site.placed_parts() else "Whole site"
    try:
        return site.part(name).label
    except SiteError:
        return name.replace("_", " ")


def _kind(site: Site, name: str) -> str:
    try:
        return site.part(name).kind
    except SiteError:
        return ""


def _area(a: StoredAlert) -> float:
    rec = a.alert
    return float(rec.largest_object_m2 or rec.objects_area_m2 or rec.changed_area_m2 or 0.0)


def _key(a: StoredAlert, site: Site) -> tuple[Any, ...]:
    z = a.alert.z
    return (TIER_ORDER.get(a.tier, 3), a.status != "confirmed",
            a.alert.confidence in LOW_CONFIDENCE, _kind(site, a.part) not in EVENT_PART_KINDS,
            -_area(a), -(abs(z) if math.isfinite(z) else 0.0), a.time, a.id)


@dataclass(frozen=True)
class PairFinding:
    """The alerts raised on one before/after pair of one grid, strongest first."""

    alerts: tuple[StoredAlert, ...]

    def before(self, day_of: Mapping[str, str]) -> str:
        """The before image's day (``day_of``: scene id -> day), else the alert's start."""
        rec = self.alerts[0].alert
        return day_of.get(rec.before_scene or "") or iso_day(rec.start or "") or ""

    def after(self, day_of: Mapping[str, str]) -> str:
        rec = self.alerts[0].alert
        return day_of.get(rec.after_scene or "") or iso_day(rec.time)


def _pair_of(a: StoredAlert) -> tuple[str, str, str]:
    rec = a.alert
    return (rec.grid or "", rec.before_scene or iso_day(rec.start or ""),
            rec.after_scene or iso_day(rec.time))


def group_alerts(alerts: Iterable[StoredAlert], site: Site) -> list[PairFinding]:
    """``alerts`` grouped by pair (grid, before, after), groups and alerts ranked as the
    module says."""
    groups: dict[tuple[str, str, str], list[StoredAlert]] = {}
    for a in alerts:
        groups.setdefault(_pair_of(a), []).append(a)
    found = [PairFinding(tuple(sorted(g, key=lambda a: _key(a, site)))) for g in groups.values()]

    def group_key(f: PairFinding) -> tuple[Any, ...]:
        top = _key(f.alerts[0], site)
        bearing = sum(_kind(site, a.part) in EVENT_PART_KINDS for a in f.alerts)
        return (top[0], top[1], top[2], -bearing, *top[3:])

    return sorted(found, key=group_key)


def rank_alerts(alerts: Iterable[StoredAlert], site: Site) -> list[StoredAlert]:
    """``alerts`` in the brief's order: the strongest pair finding's alerts first."""
    return [a for f in group_alerts(alerts, site) for a in f.alerts]


def _names(labels: Sequence[str]) -> str:
    labels = list(dict.fromkeys(labels))
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _figs(ns: Sequence[int]) -> str:
    ns = sorted(ns)
    if not ns:
        return ""
    if len(ns) == 1:
        return f" (Figure {ns[0]})"
    if ns == list(range(ns[0], ns[-1] + 1)):
        return f" (Figures {ns[0]}–{ns[-1]})"
    return " (Figures " + ", ".join(map(str, ns)) + ")"


def indicators_of(assessment: SiteAssessment, cat: IndicatorSet | None = None
                  ) -> dict[str, list[str]]:
    """Alert id -> the names of the indicators its imagery evidence was read as (those of a
    launch or an engine test first; ``cat`` names them)."""
    return {k: [n for _e, n in v] for k, v in read_events(assessment, cat).items()}


def read_events(assessment: SiteAssessment, cat: IndicatorSet | None = None
                ) -> dict[str, list[tuple[str, str]]]:
    """Alert id -> (event, indicator name) its imagery evidence was read as, those of a
    launch or an engine test first."""
    out: dict[str, list[tuple[bool, str, str]]] = {}
    for ev in assessment.evidence:
        aid = ev.link.get("alert") if isinstance(ev.link, Mapping) else None
        if not aid:
            continue
        name = ev.indicator.replace("_", " ")
        if cat is not None:
            with contextlib.suppress(CollateralError):  # else the id in words
                name = cat.indicator(ev.indicator).name
        out.setdefault(str(aid), []).append((ev.event not in EVENT_WORDS, ev.event, name))
    return {k: [(e, n) for _c, e, n in sorted(set(v))] for k, v in out.items()}


def pair_sentence(f: PairFinding, site: Site, figure_of: Mapping[str, int],
                  sensor_of: Mapping[str, str], read_as: Mapping[str, list[str]],
                  day_of: Mapping[str, str]) -> str:
    """One pair finding in a sentence: dates, sensor, parts, objects, what it was read as,
    and its figures."""
    from sitewatch.watch.events import KIND_WORDS

    top = f.alerts[0]
    labels = [part_label(site, a.part) for a in f.alerts]
    objs = sum(a.alert.objects for a in f.alerts)
    largest = max((a.alert.largest_object_m2 for a in f.alerts), default=0.0)
    kind = KIND_WORDS.get(top.kind, "unusual change")
    where = (f"at {len(labels)} parts at once: {_names(labels)}" if len(labels) > 1
             else f"at the {labels[0][0].lower() + labels[0][1:]}" if labels[0] else "")
    sensor = sensor_of.get(top.alert.after_scene or "", "")
    before, after = f.before(day_of), f.after(day_of)
    when = f"between {before} and {after}" if before else f"on {after}"
    s = f"{kind[0].upper() + kind[1:]} {where}, {when}"
    if sensor:
        s += f" ({sensor})"
    if objs and len(f.alerts) == 1:
        s += (f": {objs} change object{'s' if objs != 1 else ''}, the largest "
              f"{largest:,.0f} m²")
    elif objs:  # one object often touches several parts: no total that counts it twice
        s += f": change objects of up to {largest:,.0f} m²"
    inds = [n for a in f.alerts for n in read_as.get(a.id, [])]
    if inds:
        s += f"; read as {_names(inds[:2])}"
    s += _figs([figure_of[a.id] for a in f.alerts if a.id in figure_of]) + "."
    if before and after:
        caveat = season_caveat(date.fromisoformat(before), date.fromisoformat(after))
        if caveat:
            s += " " + caveat
    low_alerts = [a for a in f.alerts if a.alert.confidence in LOW_CONFIDENCE]
    season = [part_label(site, a.part) for a in low_alerts if season_graded(a.alert.text)]
    if season:
        names = _names(season)
        s += (f" Possibly the season at the {names[0].lower() + names[1:]}: the same season "
              "of earlier years does not show this change.")
    low = [part_label(site, a.part) for a in low_alerts if not season_graded(a.alert.text)]
    if low:
        names = _names(low)
        s += (f" Low confidence at the {names[0].lower() + names[1:]}: "
              f"{'its' if len(set(low)) == 1 else 'their'} normal range rests on few earlier "
              "dates.")
    return s


def _event_sentence(event: str, x: EventAssessment) -> str:
    """The assessment's own summary (an analyst's sentence that names the event), else the
    level in words."""
    head = EVENT_WORDS.get(event, event)
    summary = x.summary.strip()
    if x.level == "not_applicable":
        return f"{head}: not assessed. {summary}"
    if summary and head.lower() in summary.lower():
        return summary
    return f"{head}: {summary}" if summary else f"{head}: {x.level.replace('_', ' ')}."


def _too_old(site: Site, assessment: SiteAssessment, groups: Sequence[PairFinding],
             figure_of: Mapping[str, int], at: date, cat: IndicatorSet | None) -> list[str]:
    """For an event with no evidence, the latest imagery of the period that was read as one
    of its indicators: too old to count now, but the reader sees it in the figures and must
    not think the page contradicts itself."""
    read = read_events(assessment, cat)
    out = []
    for event, head in EVENT_WORDS.items():
        if getattr(assessment, event).level != "no_evidence":
            continue
        seen = [(a, name) for g in groups for a in g.alerts
                for ev, name in read.get(a.id, []) if ev == event]
        if not seen:
            continue
        a, name = max(seen, key=lambda t: t[0].time)
        day = as_date(a.time)
        fig = f" (Figure {figure_of[a.id]})" if a.id in figure_of else ""
        label = part_label(site, a.part)
        out.append(f"{head}: the imagery read as {name} at the {label[0].lower() + label[1:]} "
                   f"on {day.isoformat()}{fig} is {age_words((at - day).days)} old, too old "
                   "to count now.")
    return out


def expired_notices(assessment: SiteAssessment, at: date) -> list[str]:
    """Navigation notices whose window ended before ``at``, in sentences."""
    out = []
    for ev in assessment.evidence:
        if ev.kind != "notice" or not ev.window or ev.negated:
            continue
        start, end = ev.window
        end = end or start
        if end is None or end >= at:
            continue
        issued = f"issued {ev.time.isoformat()} " if ev.time else ""
        days = (at - end).days
        out.append(f"A navigation notice {issued}({ev.source}) announced a "
                   f"{EVENT_WORDS.get(ev.event, ev.event).lower()} window "
                   f"{start.isoformat() if start else '?'} to {end.isoformat()}; the window "
                   f"ended {days} day{'s' if days != 1 else ''} before this brief (the notice "
                   "now counts only as an old report that a launch was planned).")
    return sorted(set(out))


def imagery_sentence(processed: Mapping[str, ProcessedScene], at: date) -> str | None:
    """When the site was last seen clear, and how old that is at ``at``; the unusable
    scenes since then."""
    done = sorted(processed.values(), key=lambda r: r.acquired)
    if not done:
        return None
    usable = [r for r in done if r.usable]
    if not usable:
        return (f"No usable image in this period: all {len(done)} processed scenes were "
                "mostly cloud, shadow or no data.")
    last = usable[-1]
    day = as_date(last.acquired)
    age = (at - day).days
    s = f"Last image usable for the whole site: {day.isoformat()}"
    if age > 0:
        s += f", {age_words(age)} before this brief"
    after = [r for r in done if as_date(r.acquired) > day]
    if after:
        s += (f"; {len(after)} later image{'s' if len(after) != 1 else ''} "
              f"({', '.join(as_date(r.acquired).isoformat() for r in after[:3])}) "
              f"{'were' if len(after) != 1 else 'was'} mostly cloud, shadow or no data")
    s += "."
    if age > 60:
        s += (" Findings and the assessment rest on old imagery; “sitewatch brief --to "
              f"{day.isoformat()}” writes the brief as of that image.")
    return s


def age_words(days: int) -> str:
    """An age in the unit a reader takes in: days, weeks, months, then years."""
    if days < 14:
        return f"{days} day{'s' if days != 1 else ''}"
    if days < 60:
        return f"{days // 7} weeks"
    if days < 730:
        return f"{round(days / 30.44)} months"
    return f"{days / 365.25:.1f} years"


def season_caveat(before: date, after: date) -> str | None:
    """A caveat when a pair spans seasons (more than 60 days and at least three months of
    the year apart): snow, leaves and crops change with the season, not with activity."""
    gap = abs(before.month - after.month)
    gap = min(gap, 12 - gap)
    if abs((after - before).days) <= 60 or gap < 3:
        return None
    return (f"The dates are {age_words(abs((after - before).days))} apart "
            f"({before:%B} and {after:%B}): snow, vegetation or crops may explain the change.")


def as_date(t: datetime | date | str) -> date:
    """A datetime, date or ISO text as its day."""
    if isinstance(t, datetime):
        return t.date()
    if isinstance(t, date):
        return t
    return date.fromisoformat(str(t)[:10])


def key_findings(site: Site, assessment: SiteAssessment, groups: Sequence[PairFinding],
                 figure_of: Mapping[str, int], sensor_of: Mapping[str, str],
                 processed: Mapping[str, ProcessedScene], at: date, *,
                 dismissed: int = 0, ran: bool = True, cat: IndicatorSet | None = None,
                 day_of: Mapping[str, str] | None = None) -> list[str]:
    """The brief's key findings, in the order an analyst reads them: the assessment of each
    event, notices that have expired, the strongest imagery findings, then coverage."""
    levels = {e: getattr(assessment, e).level for e in EVENT_WORDS}
    if all(v == "not_applicable" for v in levels.values()):
        kind = site.site_type.replace("_", " ")
        out = [f"Launch and engine test: not assessed; sitewatch watches this {kind} for "
               f"change only (“sitewatch site set {site.id} --type launch_site” makes it "
               "assess them)." if site.site_type == "facility" else
               f"Launch and engine test: not assessed; neither is made at a {kind}."]
    else:
        out = [_event_sentence(e, getattr(assessment, e)) for e in EVENT_WORDS]
        out += _too_old(site, assessment, groups, figure_of, at, cat)
    out += expired_notices(assessment, at)
    # What the imagery was read as, when the site's type has events to assess (a facility's
    # change is only change: the launch catalogue's words would mislead).
    assessed = [e for e in EVENT_WORDS if getattr(assessment, e).level != "not_applicable"]
    read_as = indicators_of(assessment, cat) if assessed else {}
    days = day_of or {}
    alerts = sum(len(g.alerts) for g in groups)
    if groups:
        tiers = {t: sum(a.tier == t for g in groups for a in g.alerts) for t in TIER_ORDER}
        counted = ", ".join(f"{n} {t}{'s' if n != 1 and t == 'warning' else ''}"
                            for t, n in tiers.items() if n)
        out.append(f"Imagery: {alerts} alert{'s' if alerts != 1 else ''} in this period "
                   f"({counted}). Strongest: "
                   + pair_sentence(groups[0], site, figure_of, sensor_of, read_as, days))
        if len(groups) > 1:
            out.append("Next: " + pair_sentence(groups[1], site, figure_of, sensor_of,
                                                read_as, days))
    elif ran:
        out.append("Imagery: no alert in this period; no part departed from its normal "
                   "range.")
    else:
        out.append("Imagery: no results yet; the site has not been run.")
    if dismissed:
        out.append(f"{dismissed} alert{'s' if dismissed != 1 else ''} dismissed by the "
                   f"analyst {'are' if dismissed != 1 else 'is'} not shown (listed in the "
                   "appendix).")
    seen = imagery_sentence(processed, at)
    if seen:
        out.append(seen)
    return out


def odds_rows(assessment: SiteAssessment) -> list[dict[str, Any]]:
    """The appendix's odds table: every reason of each event with its likelihood ratio,
    weight and what it multiplied the odds by."""
    rows = []
    for event, head in EVENT_WORDS.items():
        x: EventAssessment = getattr(assessment, event)
        for r in (*x.reasons, *x.against):
            rows.append({"event": head, "direction": r.direction, "reason": reason_words(r),
                         "lr": r.likelihood_ratio, "weight": r.weight,
                         "factor": r.factor})
    return rows


def reason_words(r: Reason) -> str:
    """A reason in words without the odds arithmetic (which goes to the appendix)."""
    if r.plain:
        return r.plain
    return r.text.split(" Counts x", 1)[0]  # a reason stored before ``plain`` was kept


def params_words(params: Mapping[str, Any] | None) -> str:
    """A run's parameters as "method ratio, composite 5, ..." (never a Python dict)."""
    if not params:
        return "-"
    parts = []
    for k, v in params.items():
        if isinstance(v, Mapping):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "none"
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        elif v is None:
            v = "default"
        parts.append(f"{k.replace('_', ' ')} {v}")
    return "; ".join(parts)


def period_words(start: date | None, end: date | None, first: date | None) -> str:
    """The brief's period in words ("2024-01-10 to 2024-12-20", "up to 2024-12-20")."""
    lo = start or first
    if lo and end:
        return f"{lo.isoformat()} to {end.isoformat()}"
    if lo:
        return f"from {lo.isoformat()}"
    return f"up to {end.isoformat()}" if end else "all dates"


def default_date(site: Site, last_image: datetime | date | None, today: date) -> date:
    """The date a brief is written as of when none is given: today, but the last image's day
    for a simulated site (its imagery is of a made-up year; "today" would make every finding
    stale)."""
    if site.simulated and last_image is not None:
        return min(as_date(last_image), today)
    return today


__all__ = [
    "EVENT_PART_KINDS",
    "LOW_CONFIDENCE",
    "TIER_ORDER",
    "PairFinding",
    "age_words",
    "as_date",
    "default_date",
    "expired_notices",
    "group_alerts",
    "imagery_sentence",
    "indicators_of",
    "key_findings",
    "odds_rows",
    "pair_sentence",
    "params_words",
    "part_label",
    "period_words",
    "rank_alerts",
    "read_events",
    "reason_words",
    "season_caveat",
]
