"""Evidence: everything that bears on an indicator, in one shape.

An :class:`Evidence` item has a kind (``imagery`` for a sitewatch alert, ``report`` for a
claim read from collateral text, ``notice`` for a navigation warning or no-fly zone,
``note`` for an analyst's note), the indicator it bears on, the event that indicator
precedes, where (site, part) and when (the date it was seen or said, and for notices and
forecasts the date window it names), who (a display name and an *origin*: items of one
origin are not independent), how sure (``certainty`` 0-1), whether it is a denial
(``negated``) and a ``link`` to what produced it (alert id, report id and paragraph, note id).

Builders:

* :func:`from_claim`: a collateral claim maps to the indicators of its activity (and part);
* :func:`from_alert`: an imagery alert maps to the indicators whose part kinds include the
  alerted part's kind and whose imagery characters match the alert's (``change`` always;
  ``persistent`` for a level shift or an event seen on more than one date; ``transient`` for
  a spike; ``new_objects`` when change objects were found; ``vegetation_loss`` when the part's
  NDVI or NBR fell by 0.1 or more).  Imagery coarser than the indicator needs is kept at half
  weight and says so.

Examples
--------
>>> from sitewatch.warning.collateral import read_text
>>> from sitewatch.warning.indicators import load_indicators
>>> r = read_text("Freight trains were seen at Sohae's rail station, a U.S. official said.",
...               published="2016-01-28")
>>> [(e.indicator, e.event, e.origin, e.time) for e in
...  from_claim(r.claims[0], load_indicators(), site="sohae", report="r1",
...             published=r.published)]
[('railcars_arrived', 'launch', 'government:US', datetime.date(2016, 1, 28))]
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sitewatch.times import iso_day, parse_date
from sitewatch.warning.collateral import CERTAINTY_WEIGHT, Claim, Reading
from sitewatch.warning.indicators import IndicatorSet
from sitewatch.watch.alerts import Alert
from sitewatch.watch.records import Observation

KINDS = ("imagery", "report", "notice", "note")
#: Weight of an imagery alert by tier (a confirmed alert weighs 1, a dismissed one is
#: not evidence).
TIER_WEIGHT = {"info": 0.4, "watch": 0.7, "warning": 1.0}
#: NDVI / NBR fall at a part that reads as vegetation loss (a burn scar after a test).
VEGETATION_DROP = 0.1


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence for (or, when ``negated``, against) an indicator.

    ``time`` is the day it was seen or said; ``window`` the days it names (a notice's window),
    either end open.  ``link`` says what produced it; ``detail`` is what its builder knew
    (see the module doc and docs/collateral.md), kept as the JSON it is stored as: the
    properties below read the parts the assessment uses.
    """

    id: str
    site: str
    kind: str
    indicator: str
    event: str
    phase: str
    part: str | None
    time: date | None  # when it was seen, or said
    window: tuple[date | None, date | None] | None  # the date window it names, if any
    source: str
    origin: str
    certainty: float
    negated: bool
    text: str
    link: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    part_kind: str | None = None  # the kind of ``part`` (reports name kinds, alerts names)

    @property
    def published(self) -> date | None:
        """The day it became known: a report's publication, a note's date (None for
        imagery: an alert is known from its own date)."""
        return parse_date(self.detail.get("published"))

    @property
    def known_from(self) -> date | None:
        """The first day an assessment may count it."""
        return self.published or self.time

    @property
    def age_days(self) -> int:
        """How old an undated report says it is (0 when it says nothing)."""
        return int(self.detail.get("age_days") or 0)

    @property
    def window_days(self) -> tuple[int, int] | None:
        """The window an undated report names, in days after it."""
        w = self.detail.get("window_days")
        return (int(w[0]), int(w[1])) if w else None

    @property
    def hedge(self) -> str | None:
        """The certainty as the text gave it (``firm``, ``probable``, ``possible``)."""
        h = self.detail.get("certainty")
        return str(h) if h else None

    @property
    def coarse(self) -> str | None:
        """For imagery coarser than the indicator needs, what that means."""
        c = self.detail.get("coarse")
        return str(c) if c else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (docs/collateral.md): days as ``YYYY-MM-DD``, the window a list."""
        return {"id": self.id, "site": self.site, "kind": self.kind,
                "indicator": self.indicator, "event": self.event, "phase": self.phase,
                "part": self.part, "time": _day(self.time),
                "window": [_day(w) for w in self.window] if self.window else None,
                "source": self.source, "origin": self.origin, "certainty": self.certainty,
                "negated": self.negated, "text": self.text, "link": copy.deepcopy(self.link),
                "detail": copy.deepcopy(self.detail), "part_kind": self.part_kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        w = d.get("window")
        return cls(d["id"], d["site"], d["kind"], d["indicator"], d["event"], d["phase"],
                   d.get("part"), parse_date(d.get("time")),
                   (parse_date(w[0]), parse_date(w[1])) if w else None, d["source"],
                   d["origin"], float(d["certainty"]), bool(d["negated"]), d["text"],
                   dict(d["link"]), dict(d["detail"]), d.get("part_kind"))


def _day(d: date | None) -> str | None:
    return iso_day(d) if d is not None else None


def _id(*parts: Any) -> str:
    key = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def from_claim(claim: Claim, indicator_set: IndicatorSet, *, site: str, report: str,
               published: str | date | None = None, source_label: str | None = None,
               kind: str | None = None) -> list[Evidence]:
    """Evidence items for one collateral claim (none when no indicator takes its activity).

    The item's date is the end of the claim's time window when that lies in the past (the
    imagery date), else the publication date; a window in the future (a notice, "as soon as
    next week") is kept as the item's ``window``.
    """
    t = claim.time or {}
    start, end = parse_date(t.get("start")), parse_date(t.get("end"))
    pub = parse_date(published)
    window = None
    when = pub
    if start and pub and (t.get("sense") == "future" or start > pub):
        window = (start, end)
    elif end:
        when = end if not pub or end <= pub else pub
    if claim.activity == "launch_notice" and start and window is None:
        window = (start, end)
    rel = t.get("days") if not pub else None  # undated report: days relative to it
    out = []
    for ind in indicator_set.for_activity(claim.activity, claim.part):
        ev_kind = kind or ("notice" if claim.activity == "launch_notice" else "report")
        source = claim.source or source_label or "the report's author"
        if claim.via and claim.source:
            source = f"{claim.source} (via {claim.via})"
        out.append(Evidence(
            id=_id(site, report, claim.paragraph, claim.sentence, ind.id, claim.negated),
            site=site, kind=ev_kind, indicator=ind.id, event=ind.event, phase=ind.phase,
            part=claim.part, time=when, window=window, source=source, origin=claim.origin,
            certainty=CERTAINTY_WEIGHT[claim.certainty], negated=claim.negated,
            text=claim.sentence,
            link={"report": report, "paragraph": claim.paragraph}, part_kind=claim.part,
            detail={"activity": claim.activity, "certainty": claim.certainty,
                    "hedges": list(claim.hedges), "attribution": claim.attribution,
                    "time": claim.time,
                    "published": _day(pub),  # the day it became known
                    "age_days": -rel[1] if rel and rel[1] <= 0 else None,
                    "window_days": rel if rel and rel[0] > 0 else None}))
    return out


def from_stated(reading: Reading, indicator_set: IndicatorSet, *, site: str, report: str,
                published: str | date | None = None, source_label: str | None = None
                ) -> list[Evidence]:
    """Evidence items for what a report itself concludes (:mod:`.stated`: a launch imminent,
    engine-test preparations...), one per event it judges, carried by the sentences that
    decided it.  An analyst's published judgement is evidence as a claim is, with its own
    indicator and strength (``judged_*`` in the indicator files)."""
    from sitewatch.warning.lexicon import STATED_ACTIVITY

    out: list[Evidence] = []
    for event, level in sorted(reading.stated.items()):
        activity = STATED_ACTIVITY.get((event, level))
        if activity is None:
            continue
        said = (reading.stated_evidence.get(event) or [reading.title or ""])[0]
        claim = Claim(site, None, activity, False, "firm", None, "author", None, None, (),
                      None, said[:1000] or f"the report judges: {event} {level}", -1)
        out += from_claim(claim, indicator_set, site=site, report=report,
                          published=published, source_label=source_label)
    return out


def alert_characters(alert: Alert, obs: Observation | None = None) -> list[str]:
    """What kind of change an alert shows (see the module doc); ``obs``: the part's
    observation on the alert's after scene.

    >>> from sitewatch.watch.alerts import Alert
    >>> a = Alert("a1", "s", "pad", "2024-01-10T00:00:00Z", "changed_excess", "level_shift",
    ...           "watch", 0.2, 0.0, 6.0, "high", 9, "pad: a new level", objects=2)
    >>> alert_characters(a)
    ['change', 'persistent', 'new_objects']
    """
    chars = ["change"]
    kind = alert.kind
    if kind == "level_shift" or (alert.end and alert.end[:10] > alert.time[:10]):
        chars.append("persistent")
    if kind == "spike":
        chars.append("transient")
    if alert.objects > 0:
        chars.append("new_objects")
    if obs is not None:
        drops = [obs.measure("ndvi_change"), obs.measure("nbr_change")]
        if any(math.isfinite(v) and v <= -VEGETATION_DROP for v in drops):
            chars.append("vegetation_loss")
    return chars


def from_alert(alert: Alert, status: str, part_kind: str, indicator_set: IndicatorSet, *,
               resolution_m: float | None = None, sensor: str | None = None,
               obs: Observation | None = None) -> list[Evidence]:
    """Evidence items for a stored imagery alert with its lifecycle ``status``."""
    if status == "dismissed":
        return []
    chars = alert_characters(alert, obs)
    weight = 1.0 if status == "confirmed" else TIER_WEIGHT.get(alert.tier, 0.4)
    out = []
    for ind in indicator_set.for_imagery(part_kind, chars):
        w = weight
        coarse = (resolution_m is not None and ind.resolution_m > 0
                  and resolution_m > ind.resolution_m)
        if coarse:
            w *= 0.5
        note = (f"seen as a change at {resolution_m:g} m; identifying it needs "
                f"{ind.resolution_m:g} m or finer" if coarse else None)
        out.append(Evidence(
            id=_id(alert.site, alert.id, ind.id), site=alert.site, kind="imagery",
            indicator=ind.id, event=ind.event, phase=ind.phase, part=alert.part,
            time=parse_date(alert.time or None), window=None,
            source=f"sitewatch imagery ({sensor or 'imagery'})", origin="imagery:sitewatch",
            certainty=w, negated=False, text=alert.text,
            link={"alert": alert.id}, part_kind=part_kind,
            detail={"tier": alert.tier, "status": status, "characters": chars,
                    "resolution_m": resolution_m, "coarse": note,
                    "before_scene": alert.before_scene,
                    "after_scene": alert.after_scene}))
    return out


def from_note(note_id: str, site: str, text: str, day: date | str, indicator_set: IndicatorSet, *,
              part: str | None = None, part_kind: str | None = None,
              activity: str | None = None, author: str | None = None) -> list[Evidence]:
    """Evidence items for an analyst note about ``day``: ``activity`` as given, else as read
    from the text (the note's hedges set its certainty)."""
    from sitewatch.warning.collateral import read_text

    when = iso_day(parse_date(day) or date.today())
    reading = read_text(text, name="note", published=when)
    claims = [c for c in reading.claims + reading.background]
    if activity:
        base = claims[0] if claims else None
        claims = [Claim(site, part_kind, activity, base.negated if base else False,
                        base.certainty if base else "firm", None, "", None, None,
                        base.hedges if base else (), None, text, 0)]
    who = f"analyst note{f' ({author})' if author else ''}"
    out = []
    for c in claims:
        c2 = Claim(site, part_kind or c.part, c.activity, c.negated, c.certainty, who,
                   f"note:{author or 'analyst'}", None, None, c.hedges,
                   {"text": when, "start": when, "end": when, "sense": "point"}, c.sentence,
                   0)
        for e in from_claim(c2, indicator_set, site=site, report=note_id, published=when,
                            kind="note"):
            out.append(replace(e, part=part or e.part, link={"note": note_id}))
    return out


__all__ = ["KINDS", "TIER_WEIGHT", "Evidence", "alert_characters", "from_alert", "from_claim",
           "from_note", "from_stated"]
