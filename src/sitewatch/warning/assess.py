"""How likely, and how soon, a launch or an engine test is: weighed evidence, explained.

The model is a transparent odds update, one an analyst can check by hand:

1. Start from the event's prior (``[events.X]`` in the indicator file: the share of 30-day
   periods that end in one at such a site).
2. Each evidence item multiplies the odds by its indicator's likelihood ratio raised to its
   *weight*: certainty (firm 1, probable 0.7, possible 0.45; imagery by alert tier) times
   staleness (0.5 per half-life since the item's date).  A denial ("no trains were seen")
   uses the indicator's ``lr_absent`` instead.  Items weighing under 0.05 are dropped.
3. Independence: one item (a sentence, an alert) counts once per event, through the
   indicator it supports most; one origin counts once per indicator (two outlets quoting
   the same official are one source).  A second independent origin for an indicator adds
   half its weight, and says the indicator is *corroborated*.
4. The likelihood is the resulting probability; its range comes from redoing the sum with
   every ratio at the low and at the high end of its range in the indicator file.

Levels come from the thresholds of ``[events.X] levels`` in the indicator file (calibrated on
real reports, see docs/bench_calibration.md; without them: ``imminent`` from 0.5,
``possible`` from 1.5 x the prior).  Launch: ``imminent``, ``possible``, ``unlikely`` below
(the evidence is neutral, weak or argues against), ``no_evidence`` when nothing bears on a
launch: building, razing or rebuilding alone changes what the site can do, not what comes
next, and is kept as context.  Engine test: ``recent_test`` when after-the-test evidence
(burn scar, a reported test) alone reaches its threshold, else ``preparations``,
``unlikely``, ``no_evidence``.  An event the site's type does not have (a launch at an
engine-test site, either at a nuclear test site) is ``not_applicable``.

The summary is an analyst's sentence: the level in words, the strongest one or two reasons
with their dates and sources, the expected window, the likelihood; the odds arithmetic of
each reason stays in the reasons (``Reason.text``, the CLI's and the brief's detail lists).

The expected window: a navigation notice's window when there is one; else the overlap of
the windows the strongest items give (their date plus the indicator's lead time, or the
dates a source names, such as "as soon as next week").

Examples
--------
>>> from sitewatch.warning.collateral import read_text
>>> a = assess_reading(read_text(
...     "Maritime authorities said North Korea notified the IMO of a launch window "
...     "between May 31 and June 11 for a launch from Sohae.", published="2023-05-29"))
>>> a.launch.level, a.launch.window.start, a.launch.window.end
('imminent', datetime.date(2023, 5, 31), datetime.date(2023, 6, 11))
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sitewatch.errors import CollateralError
from sitewatch.times import parse_date
from sitewatch.warning.collateral import Reading
from sitewatch.warning.evidence import Evidence, from_claim, from_stated
from sitewatch.warning.indicators import (
    EventPrior,
    Indicator,
    IndicatorSet,
    gazetteer_site_events,
    load_indicators,
)
from sitewatch.warning.lexicon import site_type
from sitewatch.warning.records import (
    EVENTS,
    Assessment,
    EventAssessment,
    Reason,
    Sighting,
    Unobserved,
    Window,
)

MIN_WEIGHT = 0.05
CORROBORATION_SHARE = 0.5


@dataclass(frozen=True)
class Coverage:
    """What imagery could see: best resolution, the last image, per indicator why it could
    not be seen, and which part each kind of sensor saw clear, and when last."""

    best_resolution_m: float | None
    last_image: datetime | None
    unobserved: dict[str, str]
    seen: tuple[Sighting, ...] = ()


@dataclass(frozen=True)
class _Candidate:
    """An evidence item weighed for one event through one indicator."""

    ev: Evidence
    ind: Indicator
    weight: float
    age: int
    c: float  # its log likelihood ratio at full weight


def _odds(p: float) -> float:
    return p / (1 - p)


def _prob(log_odds: float) -> float:
    return 1 / (1 + math.exp(-max(-50.0, min(50.0, log_odds))))


def _contribution(ind: Indicator, ev: Evidence, event: str, which: int) -> float:
    if ev.negated:
        return math.log(ind.lr_absent.get(event, 1.0))
    return math.log(ind.lr[event][which])


def _weigh(items: Sequence[Evidence], cat: IndicatorSet, event: str, phase: str, at: date
           ) -> tuple[list[Reason], dict[int, float], dict[str, tuple[str, ...]]]:
    """Weighted contributions of the items to ``event`` in ``phase``.

    Returns (reasons, log-likelihood sums for low/central/high ratios, corroboration)."""
    cands: list[_Candidate] = []
    for ev in items:
        try:
            ind = cat.indicator(ev.indicator)
        except CollateralError:
            continue  # an indicator a user's indicator files no longer have
        if event not in ind.lr or (ind.phase != phase and ind.event != "standby"
                                   and ind.event != "capability_change"):
            continue
        if phase == "after" and ind.phase != "after":
            continue
        age = (at - ev.time).days if ev.time else ev.age_days
        if age < -1 and ev.window is None:
            continue  # said after the assessment date: not known yet
        if ev.window and ev.window[1] and ev.window[1] < at and not ev.negated:
            continue  # the window it named has passed: it no longer points ahead
        w = ev.certainty * ind.decay(age)
        if w < MIN_WEIGHT:
            continue
        c = _contribution(ind, ev, event, 1)
        if c == 0:
            continue
        cands.append(_Candidate(ev, ind, w, age, c))
    # One item counts once per event: through its strongest indicator.
    best_item: dict[str, _Candidate] = {}
    for cd in cands:
        key = f"{cd.ev.link}|{cd.ev.text}"
        if key not in best_item or abs(cd.c * cd.weight) > abs(
                best_item[key].c * best_item[key].weight):
            best_item[key] = cd
    # One origin counts once per indicator and direction.
    per: dict[tuple[str, str, bool], _Candidate] = {}
    for cd in best_item.values():
        k = (cd.ind.id, cd.ev.origin, cd.ev.negated)
        if k not in per or cd.weight > per[k].weight:
            per[k] = cd
    groups: dict[tuple[str, bool], list[_Candidate]] = defaultdict(list)
    for (ind_id, _o, neg), cd in per.items():
        groups[(ind_id, neg)].append(cd)
    sums = {0: 0.0, 1: 0.0, 2: 0.0}
    reasons = []
    corroboration: dict[str, tuple[str, ...]] = {}
    for (ind_id, neg), cs in groups.items():
        cs.sort(key=lambda cd: -cd.weight)
        origins = tuple(cd.ev.origin for cd in cs)
        if len(cs) > 1 and not neg:
            corroboration[ind_id] = origins
        for rank, cd in enumerate(cs):
            share = 1.0 if rank == 0 else CORROBORATION_SHARE
            eff = cd.weight * share
            for which in (0, 1, 2):
                sums[which] += eff * _contribution(cd.ind, cd.ev, event, which)
            reasons.append(_reason(cd, eff, event, rank > 0))
    reasons.sort(key=lambda r: -abs(r.log_lr))
    return reasons, sums, corroboration


def _reason(cd: _Candidate, eff: float, event: str, corroborating: bool) -> Reason:
    ev, ind = cd.ev, cd.ind
    lr = ind.lr_absent.get(event, 1.0) if ev.negated else ind.lr[event][1]
    direction = "for" if cd.c > 0 else "against"
    what = f"no {ind.name}" if ev.negated else ind.name
    where = f" at {ev.part.replace('_', ' ')}" if ev.part else ""
    when = f" on {ev.time}" if ev.time else ""
    stale = (f", {cd.age} day{'s' if cd.age != 1 else ''} old" if cd.age > 0 else "")
    extra = f"; {ev.coarse}" if ev.coarse else ""
    hedge = ev.hedge
    sure = f" ({hedge})" if hedge and hedge != "firm" else ""
    plain = (f"{what}{where}{when}: {ev.source}{sure}{stale}"
             f"{'; also reported independently' if corroborating else ''}{extra}.")
    text = (f"{plain} Counts x{lr ** eff:.2f} on the odds (likelihood ratio {lr:g}, "
            f"weight {eff:.2f}).")
    return Reason(text=text, plain=plain, direction=direction, indicator=ind.id, kind=ev.kind,
                  source=ev.source, origin=ev.origin, date=ev.time, part=ev.part,
                  weight=round(eff, 3), likelihood_ratio=lr,
                  log_lr=round(eff * math.log(lr), 4), evidence=ev.id, link=ev.link,
                  sentence=ev.text if ev.kind != "imagery" else None)


def _window(items: list[Reason], evidence: Sequence[Evidence], cat: IndicatorSet,
            at: date, event: str) -> Window | None:
    notices = [e for e in evidence if e.kind == "notice" and e.window and e.window[0]
               and not e.negated and e.event == event
               and (e.window[1] or e.window[0]) >= at]
    if notices:
        n = max(notices, key=lambda e: e.time or date.min)
        assert n.window is not None and n.window[0] is not None  # as filtered above
        s, e = n.window[0], n.window[1] or n.window[0]
        return Window(s, e, ((s - at).days, (e - at).days),
                      f"navigation notice reported by {n.source}")
    spans: list[tuple[date, date, Reason]] = []
    by_id = {e.id: e for e in evidence}
    for r in items:
        if r.direction != "for" or r.weight < 0.3:
            continue
        ev = by_id.get(r.evidence)
        if ev is None:
            continue
        if ev.window and ev.window[0]:
            spans.append((ev.window[0], ev.window[1] or ev.window[0], r))
            continue
        if ev.window_days:
            a, b = ev.window_days
            spans.append((at + timedelta(days=a), at + timedelta(days=b), r))
            continue
        ind = cat.indicator(ev.indicator)
        t = ev.time or at - timedelta(days=ev.age_days)
        if ind.lead_days[1] > 0:
            spans.append((t + timedelta(days=ind.lead_days[0]),
                          t + timedelta(days=ind.lead_days[1]), r))
    if not spans:
        return None
    spans.sort(key=lambda s: -abs(s[2].log_lr))
    lo, hi = spans[0][0], spans[0][1]
    used = [spans[0][2]]
    for s, e, r in spans[1:]:
        if s <= hi and e >= lo:
            lo, hi = max(lo, s), min(hi, e)
            used.append(r)
    lo = max(lo, at)
    if hi < lo:
        return None
    srcs = ", ".join(dict.fromkeys(r.indicator.replace("_", " ") for r in used))
    return Window(lo, hi, ((lo - at).days, (hi - at).days), f"lead times of {srcs}")


#: Part kinds where evidence bears on each event even through a general indicator (a quiet
#: test stand, construction at the pad).
EVENT_PARTS = {"launch": {"launch_pad", "gantry_tower", "transfer_structure", "fuel_storage",
                          "assembly_building", "rail_terminal", "rail_line"},
               "engine_test": {"engine_test_stand"}}


def _bears_on(event: str, reason: Reason, cat: IndicatorSet, by_id: dict[str, Evidence]) -> bool:
    """Whether a reason speaks to ``event`` itself: an indicator of that event, or a quiet
    site (standby) at one of its parts, anywhere for a launch, or anywhere at a site whose
    type has only this event (a quiet engine-test site).  Fuel seen at a launch site moves the
    odds of an engine test a little, but a text that says nothing about engine tests has no
    evidence on them; building or razing alone changes what a site can do, not what comes
    next."""
    ind = cat.indicator(reason.indicator)
    if ind.event == event:
        return True
    if ind.event != "standby":
        return False
    ev = by_id.get(reason.evidence)
    kind = ev.part_kind if ev else None
    return (event == "launch" or kind in EVENT_PARTS[event]
            or (kind is None and cat.assessed == (event,)))


def _level(event: str, p_before: float, p_after: float | None, any_evidence: bool,
           prior: EventPrior) -> str:
    """The level from the probabilities and the thresholds of ``[events.X] levels``."""
    if event == "launch":
        if not any_evidence:
            return "no_evidence"
        if p_before >= prior.threshold("imminent"):
            return "imminent"
        return "possible" if p_before >= prior.threshold("possible") else "unlikely"
    if p_after is not None and p_after >= prior.threshold("recent_test"):
        return "recent_test"
    if not any_evidence:
        return "no_evidence"
    return "preparations" if p_before >= prior.threshold("preparations") else "unlikely"


def _not_applicable(event: str, cat: IndicatorSet) -> EventAssessment:
    """The assessment of an event the site's type does not have (no launch at a shipyard)."""
    prior = cat.events[event]
    ea = EventAssessment(level="not_applicable", likelihood=0.0, likelihood_range=(0.0, 0.0),
                         prior=0.0, horizon_days=prior.horizon_days,
                         recent_test_likelihood=None, window=None, reasons=(), against=(),
                         unobserved=(), corroborated={}, independent_sources=())
    return replace(ea, summary=_not_applicable_words(event, cat.site_type))


def _assess_event(event: str, evidence: Sequence[Evidence], at: date, cat: IndicatorSet,
                  coverage: Coverage | None) -> EventAssessment:
    if event not in cat.assessed:
        return _not_applicable(event, cat)
    prior = cat.events[event]
    reasons, sums, corr = _weigh(evidence, cat, event, "before", at)
    lo0 = math.log(_odds(prior.prior))
    p = round(_prob(lo0 + sums[1]), 3)  # the level follows the figure shown
    lo, hi = sorted((_prob(lo0 + sums[0]), _prob(lo0 + sums[2])))
    after = None
    after_reasons: list[Reason] = []
    after_range = [lo, hi]
    if event == "engine_test":
        after_reasons, asums, acorr = _weigh(evidence, cat, event, "after", at)
        after = round(_prob(lo0 + asums[1]), 3) if after_reasons else None
        after_range = sorted((_prob(lo0 + asums[0]), _prob(lo0 + asums[2])))
        corr.update(acorr)
    by_id = {e.id: e for e in evidence}
    bearing = any(_bears_on(event, r, cat, by_id) for r in reasons + after_reasons)
    level = _level(event, p, after, bearing, prior)
    if level == "recent_test":
        lo, hi = after_range  # the likelihood shown is that of a test having taken place
    window = _window(reasons, evidence, cat, at, event) \
        if level in ("imminent", "possible", "preparations") else None
    context: list[Reason] = []
    if level == "no_evidence":
        # Nothing speaks to this event itself: report the usual rate, and keep what moved
        # the odds a little (fuel seen at a launch site, for an engine test) as context.
        context = reasons + after_reasons
        reasons, after_reasons, corr = [], [], {}
        p = prior.prior
        lo = hi = p
        after = None
    unobserved = []
    if coverage is not None:
        for ind in cat.indicators:
            if event in ind.lr and ind.id in coverage.unobserved:
                unobserved.append(Unobserved(ind.id, ind.name, coverage.unobserved[ind.id]))
    independent = sorted({r.origin for r in reasons + after_reasons if r.direction == "for"})
    ea = EventAssessment(
        level=level,
        likelihood=round(p if level != "recent_test" else (after or p), 3),
        likelihood_range=(round(lo, 3), round(hi, 3)),
        prior=prior.prior, horizon_days=prior.horizon_days,
        recent_test_likelihood=round(after, 3) if after is not None else None,
        window=window,
        reasons=tuple(r for r in after_reasons + reasons if r.direction == "for"),
        against=tuple(r for r in reasons + after_reasons if r.direction == "against"),
        unobserved=tuple(unobserved), corroborated=corr,
        independent_sources=tuple(independent), context=tuple(context))
    return replace(ea, summary=summarise(event, ea))


def assess(evidence: Sequence[Evidence], *, at: date, indicator_set: IndicatorSet | None = None,
           coverage: Coverage | None = None) -> Assessment:
    """The launch and engine-test assessment from ``evidence`` as of ``at``."""
    cat = indicator_set or load_indicators()
    launch, engine_test = (_assess_event(e, evidence, at, cat, coverage) for e in EVENTS)
    return Assessment(at, len(evidence), launch, engine_test)


#: The level in words, as the head of the summary sentence.
_LEVEL_WORDS = {
    ("launch", "imminent"): "Launch preparations likely under way",
    ("launch", "possible"): "A launch is possible within {h} days",
    ("launch", "unlikely"): "A launch within {h} days is unlikely",
    ("launch", "no_evidence"): "Nothing on record bears on a launch",
    ("engine_test", "recent_test"): "An engine test has likely taken place",
    ("engine_test", "preparations"): "Engine-test preparations likely",
    ("engine_test", "unlikely"): "An engine test within {h} days is unlikely",
    ("engine_test", "no_evidence"): "Nothing on record bears on an engine test",
}
_EVENT_NOUN = {"launch": ("launch", "launches"), "engine_test": ("engine test", "engine tests")}


def _day_words(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _span_words(a: date, b: date) -> str:
    """'31 May-11 June 2023' (an en dash), '30 May 2023' for one day."""
    if a == b:
        return _day_words(a)
    first = (str(a.day) if (a.year, a.month) == (b.year, b.month)
             else f"{a.day} {a:%B}" if a.year == b.year else _day_words(a))
    return f"{first}\u2013{_day_words(b)}"


def _source_words(r: Reason) -> str:
    if r.kind == "imagery":
        return "imagery"
    src = r.source
    if src.startswith("the report's author"):
        src = "the report"
    if r.link.get("note") is not None or r.kind == "note":
        src = src.replace("analyst note", "an analyst's note")
    return src


def reason_words(r: Reason) -> str:
    """One reason in plain words: what was seen, where, when and who says so ("rail-mounted
    transfer structure moved to the tower on 30 May 2023 (imagery)"), without its arithmetic
    (that stays in ``Reason.text`` and its numbers)."""
    head = r.text.split(": ", 1)[0]  # "<what>< at part>< on YYYY-MM-DD>" (see _reason)
    if r.date is not None:
        head = head.removesuffix(f" on {r.date}")
    if r.part:
        where = r.part.replace("_", " ")
        what = head.removesuffix(f" at {where}")
        # "vehicles ... at the test stand at engine test stand": the name already says where.
        named = re.search(rf"\b{re.escape(where.split()[-1])}\b", what)
        head = what if named else f"{what} at the {where}"
    if r.date is not None:
        head += f" on {_day_words(r.date)}"
    hedged = next((h for h in ("probable", "possible") if f"({h})" in r.text), None)
    return f"{head} ({_source_words(r)}{', ' + hedged if hedged else ''})"


def _window_words(w: Window) -> str:
    if w.start is not None and w.end is not None:
        span = _span_words(w.start, w.end)
    elif w.days[0] == w.days[1]:
        span = f"{w.days[0]} days after the report"
    else:
        span = f"{w.days[0]} to {w.days[1]} days after the report"
    return f"Expected {span} ({w.basis})."


def _not_applicable_words(event: str, kind: str) -> str:
    one, many = _EVENT_NOUN[event]
    if kind == "facility":  # a catalogue site whose type was never said
        return (f"No {one} assessment: the site's type is not stated (change is watched "
                f"only); “sitewatch site set SITE --type launch_site” makes sitewatch assess "
                f"{many}.")
    words = kind.replace("_", " ")
    article = "an" if words[:1] in "aeiou" else "a"
    return f"No {one} assessment: {many} are not made at {article} {words}."


def summarise(event: str, a: EventAssessment) -> str:
    """The assessment as an analyst would write it: the level in words, the strongest one or
    two reasons with their dates and sources, the expected window, then the likelihood.  The
    odds arithmetic stays in the reasons (the details table), never here.

    >>> from sitewatch.warning.records import EventAssessment
    >>> summarise("launch", EventAssessment("no_evidence", 0.05, (0.05, 0.05), 0.05, 30, None,
    ...           None, (), (), (), {}, ()))
    'Nothing on record bears on a launch (the usual rate is 5% in 30 days).'
    """
    if a.level == "not_applicable":
        return a.summary or _not_applicable_words(event, "site of this type")
    head = _LEVEL_WORDS.get((event, a.level), a.level.replace("_", " ")).format(
        h=f"{a.horizon_days:g}")
    if a.level == "no_evidence":
        return f"{head} (the usual rate is {a.prior:.0%} in {a.horizon_days:g} days)."
    # "Unlikely" above the usual rate is still a net case *for*: its reasons lead (the
    # strongest first), never a weaker item against it.
    net_for = a.level == "unlikely" and a.likelihood > a.prior and bool(a.reasons)
    main = a.against if a.level == "unlikely" and a.against and not net_for else a.reasons
    said = [reason_words(r) for r in main[:2]]
    if net_for:
        head += ", though more likely than usual"
    s = head + (": " + " and ".join(said) if said else "") + "."
    if a.level == "unlikely" and not a.against and a.reasons and not net_for:
        s += " What was reported does not make it more likely than usual."
    elif (a.level != "unlikely" or net_for) and a.against:
        s += f" Against it: {reason_words(a.against[0])}."
    if a.window:
        s += " " + _window_words(a.window)
    lo, hi = a.likelihood_range
    s += (f" Likelihood {a.likelihood:.0%} (range {lo:.0%}\u2013{hi:.0%}; usual rate "
          f"{a.prior:.0%}).")
    return s


def evidence_from_reading(reading: Reading, indicator_set: IndicatorSet, site: str | None = None,
                          report: str = "text") -> list[Evidence]:
    """Evidence items from a :class:`~.collateral.Reading`: claims about ``site``, or about any
    known site when ``site`` is None (claims placed at no known site are left out: they may
    be about anywhere)."""
    out: list[Evidence] = []
    for c in reading.claims:
        if c.site is None or (site is not None and c.site != site):
            continue
        out += from_claim(c, indicator_set, site=c.site, report=report,
                          published=reading.published)
    # The report's own conclusion, about the site it is about.
    about = site if site is not None else (reading.sites[0] if reading.sites else None)
    if about is not None and (not reading.sites or about == reading.sites[0]):
        out += from_stated(reading, indicator_set, site=about, report=report,
                           published=reading.published)
    return out


def text_only_coverage(indicator_set: IndicatorSet) -> Coverage:
    """Coverage of an assessment from text alone: no indicator was looked for in imagery."""
    return Coverage(None, None, {i.id: "no imagery considered: this assessment reads the "
                                 "text only" for i in indicator_set.indicators
                                 if i.imagery and i.phase == "before"})


def assess_reading(reading: Reading, *, indicator_set: IndicatorSet | None = None,
                   at: date | None = None, site: str | None = None) -> Assessment:
    """The assessment a report supports on its own: about ``site``, or pooled over every
    known site it names (a text that names none has no evidence about any)."""
    cat = _for_sites(indicator_set or load_indicators(), reading, site)
    ev = evidence_from_reading(reading, cat, site)
    when = at or parse_date(reading.published)
    undated = when is None
    if when is None:
        dates = [e.time for e in ev if e.time]
        when = max(dates) if dates else date.today()
    out = assess(ev, at=when, indicator_set=cat, coverage=text_only_coverage(cat))
    if not undated:
        return out
    # Without a publication date the text's "now" is unknown: windows are given in days
    # after the report only.
    launch, engine_test = (_undated(e, out.event(e)) for e in EVENTS)
    return replace(out, at=None, launch=launch, engine_test=engine_test)


def _for_sites(cat: IndicatorSet, reading: Reading, site: str | None) -> IndicatorSet:
    """``cat`` assessing only the events the report's site(s) can have: a report about an
    engine-test site gets no launch assessment, one about a nuclear test site neither."""
    sites = [site] if site else sorted({c.site for c in reading.claims if c.site}
                                       or set(reading.sites))
    if not sites:
        return cat
    can = {e for s in sites for e in gazetteer_site_events(s)}
    kinds = {site_type(s) for s in sites}
    kind = kinds.pop() if len(kinds) == 1 else None
    return replace(cat, assessed=tuple(e for e in cat.assessed if e in can),
                   site_type=kind or cat.site_type)


def _undated(event: str, a: EventAssessment) -> EventAssessment:
    if a.window is None:
        return a
    a = replace(a, window=replace(a.window, start=None, end=None))
    return replace(a, summary=summarise(event, a))


def combine(a: Iterable[Evidence], b: Iterable[Evidence]) -> list[Evidence]:
    seen: dict[str, Evidence] = {}
    for e in [*a, *b]:
        seen.setdefault(e.id, e)
    return list(seen.values())


__all__ = ["Coverage", "assess", "assess_reading",
           "combine", "evidence_from_reading", "summarise", "text_only_coverage"]
