"""Graded alerts from departures and change points, in words a person can read.

A :class:`~.baseline.Departure` or a :class:`~.changepoints.ChangePoint` at a part becomes an
:class:`Alert` with a tier:

* ``info``: unusual (|z| >= 3), worth a look;
* ``watch``: clearly unusual (|z| >= 5), or any persistent new level;
* ``warning``: extreme (|z| >= 8), or a new level of 8 spreads or more.

A short history already shrinks a departure's z (Student's t, see :mod:`.baseline`): with
3 dates even a value hundreds of spreads off normal stays ``info``.  Change-point sizes have
no such correction, so a change point on a baseline of ``low`` confidence is lowered one
tier (never below info).  Every text says how much history the judgement rests on.

The alert's ``id`` is a hash of site, part, measure, kind and date, so the same event seen
again gets the same id and a store can refuse duplicates.  Text fields carry names as given
(part names are untrusted): escaping is for whoever renders them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

from sitewatch.watch.baseline import UNUSUAL_Z, Baseline, Departure
from sitewatch.watch.changepoints import ChangePoint

TIERS = ("info", "watch", "warning")
#: How measures are named in alert texts.
MEASURE_WORDS = {
    "changed_fraction": "changed share since the previous usable image",
    "changed_fraction_composite": "changed share against the recent composite",
    "changed_excess": "changed share since the previous usable image, beyond the rest of "
                      "the site,",
    "changed_excess_composite": "changed share against the recent composite, beyond the "
                                "rest of the site,",
    "changed_excess_omnibus": "radar change share found by the omnibus test over the "
                              "orbit's recent dates, beyond the rest of the site,",
    "score_excess": "change score (95th percentile at the part, in the pair's noise units) "
                    "beyond the rest of the site's,",
}


def measure_words(measure: str, part: str | None = None) -> str:
    """How alert texts name ``measure`` (:data:`MEASURE_WORDS`, ending in a comma when the
    value follows).  For the site outside every part (:data:`~sitewatch.watch.zonal.REST`)
    the "excess" measures are the plain changed share (there is no rest of the site to
    subtract), and are named so."""
    words = MEASURE_WORDS.get(measure, measure.replace("_", " "))
    from sitewatch.watch.zonal import REST

    if part == REST:
        words = words.replace(", beyond the rest of the site,", "")
    return words


#: |z| (or level-shift size, in spreads) from which each tier starts.
TIER_Z = {"info": UNUSUAL_Z, "watch": 5.0, "warning": 8.0}


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` is departure | level_shift | spike | unconfirmed; ``z`` the
    departure (or shift size) in spreads, signed; ``before_scene``/``after_scene`` the
    scene ids of the pair that showed it (None when not known)."""

    id: str
    site: str
    part: str
    time: str
    measure: str
    kind: str
    tier: str
    value: float
    expected: float
    z: float
    confidence: str
    history: int
    text: str
    before_scene: str | None = None
    after_scene: str | None = None
    #: Filled for events (:func:`sitewatch.watch.events.group_events`): the usable date
    #: before the event, the last date that shows it, the grid, the change objects at the
    #: part on the first date, and every finding (per measure) that makes up the event.
    start: str | None = None
    end: str | None = None
    grid: str | None = None
    changed_area_m2: float = 0.0
    objects: int = 0
    objects_area_m2: float = 0.0
    largest_object_m2: float = 0.0
    findings: tuple[dict[str, Any], ...] = ()
    #: The version of the part's geometry whose series raised it (None: stored before part
    #: versions were kept; see :mod:`sitewatch.store.parts`).
    part_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = list(self.findings)
        return d


def alert_id(site: str, part: str, measure: str, kind: str, time: str) -> str:
    """A stable id for one event (16 hex digits)."""
    key = "\x1f".join((site, part, measure, kind, time[:10]))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def tier_for(z: float, *, confidence: str = "high", persistent: bool = False) -> str | None:
    """The tier of a departure of ``z`` spreads (None: not alert-worthy).

    >>> tier_for(2.0), tier_for(3.5), tier_for(6.0), tier_for(9.0)
    (None, 'info', 'watch', 'warning')
    >>> tier_for(9.0, confidence="low"), tier_for(3.5, persistent=True)
    ('watch', 'watch')
    """
    if not math.isfinite(z) or abs(z) < TIER_Z["info"]:
        return None
    level = max(i for i, t in enumerate(TIERS) if abs(z) >= TIER_Z[t])
    if persistent:
        level = max(level, 1)
    if confidence in ("low", "none"):
        level = max(level - 1, 0)
    return TIERS[level]


def _num(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else "n/a"


def _history(b: Baseline) -> str:
    s = f"{b.confidence} confidence, {b.n} date{'s' if b.n != 1 else ''} of history"
    return s + (", seasonal" if b.seasonal else "")


def from_departure(site: str, part: str, measure: str, time: str, d: Departure,
                   baseline: Baseline, *, before_scene: str | None = None,
                   after_scene: str | None = None) -> Alert | None:
    """An alert for an unusual observation, or None."""
    tier = tier_for(d.z)  # z already allows for a short history
    if tier is None:
        return None
    way = "above" if d.z > 0 else "below"
    text = (f"{part}: {measure_words(measure, part)} {_num(d.value)} on {time[:10]}, "
            f"{abs(d.z):.1f} spreads {way} normal ({_num(d.expected)}); "
            f"{_history(baseline)}.")
    return Alert(alert_id(site, part, measure, "departure", time), site, part, time, measure,
                 "departure", tier, d.value, d.expected, d.z, baseline.confidence, baseline.n,
                 text, before_scene, after_scene)


_KIND_WORDS = {
    "level_shift": "a new level from",
    "spike": "a short-lived jump on",
    "unconfirmed": "a jump on the latest date,",
}


def from_changepoint(site: str, part: str, measure: str, cp: ChangePoint, baseline: Baseline,
                     *, before_scene: str | None = None,
                     after_scene: str | None = None) -> Alert | None:
    """An alert for a change point, or None when it is too small to grade."""
    tier = tier_for(cp.size, confidence=baseline.confidence,
                    persistent=cp.kind == "level_shift")
    if tier is None:
        return None
    words = _KIND_WORDS.get(cp.kind, cp.kind)
    tail = " (the next usable scene will say whether it lasts)" if cp.kind == "unconfirmed" \
        else ""
    text = (f"{part}: {measure_words(measure, part).rstrip(', ')} shows {words} "
            f"{cp.time[:10]}: {_num(cp.before)} -> "
            f"{_num(cp.after)} ({cp.size:+.1f} spreads){tail}; {_history(baseline)}.")
    return Alert(alert_id(site, part, measure, cp.kind, cp.time), site, part, cp.time,
                 measure, cp.kind, tier, cp.after, cp.before, cp.size, baseline.confidence,
                 baseline.n, text, before_scene, after_scene)

__all__ = [
    "MEASURE_WORDS",
    "TIERS",
    "TIER_Z",
    "Alert",
    "alert_id",
    "from_changepoint",
    "from_departure",
    "measure_words",
    "tier_for",
]
