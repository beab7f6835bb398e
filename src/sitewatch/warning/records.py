"""The records of the warning side: what the store keeps of collateral (a :class:`Report` and
an analyst :class:`Note`; the :class:`~sitewatch.warning.evidence.Evidence` made of them lives
in :mod:`.evidence`) and what :func:`~sitewatch.warning.assess.assess` gives
(:class:`Assessment`: per event an :class:`EventAssessment` with its :class:`Reason` s, its
:class:`Window` and what could not be observed).

Every record is a frozen dataclass.  Inside, days are ``date`` and times UTC ``datetime``;
``to_dict()`` gives the JSON the commands print and the database keeps (ISO strings, lists
for tuples), and ``from_dict()`` reads it back: ``R.from_dict(r.to_dict()) == r``.

>>> w = Window(date(2023, 5, 31), date(2023, 6, 11), (2, 13), "navigation notice")
>>> w.to_dict()
{'start': '2023-05-31', 'end': '2023-06-11', 'days': [2, 13], 'basis': 'navigation notice'}
>>> Window.from_dict(w.to_dict()) == w
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sitewatch.times import iso, iso_day, parse_date, parse_time
from sitewatch.warning.collateral import Reading
from sitewatch.warning.evidence import Evidence

#: A record as JSON: what ``to_dict`` gives and ``from_dict`` takes (the edge of the types).
JsonDict = dict[str, Any]

#: The events assessed, in the order they are shown.
EVENTS = ("launch", "engine_test")


def _day(d: date | None) -> str | None:
    return iso_day(d) if d is not None else None


def _time(t: datetime | None) -> str | None:
    return iso(t) if t is not None else None


def _parse_time(v: str | datetime | None) -> datetime | None:
    return parse_time(v) if v else None


# -- collateral kept by the store ---------------------------------------------------------


@dataclass(frozen=True)
class ReportRef:
    """How an assessment names a report it drew on."""

    id: str
    title: str
    published: date | None
    name: str

    def to_dict(self) -> JsonDict:
        return {"id": self.id, "title": self.title, "published": _day(self.published),
                "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportRef:
        return cls(d["id"], d["title"], parse_date(d.get("published")), d["name"])


@dataclass(frozen=True)
class Report:
    """A collateral report added to a site: what was read from it (its text is kept by the
    store, out of listings: untrusted, and long).  ``id`` is
    :func:`sitewatch.store.report_id` of the site and ``checksum`` (SHA-256 of the text);
    ``added_at`` is set by the store (when it was first added)."""

    id: str
    site_id: str
    name: str
    title: str
    published: date | None
    checksum: str
    reading: Reading
    added_at: datetime | None = None

    @property
    def ref(self) -> ReportRef:
        return ReportRef(self.id, self.title, self.published, self.name)

    def to_dict(self) -> JsonDict:
        return {"id": self.id, "site_id": self.site_id, "name": self.name,
                "title": self.title, "published": _day(self.published),
                "checksum": self.checksum, "reading": self.reading.to_dict(),
                "added_at": _time(self.added_at)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        return cls(d["id"], d["site_id"], d["name"], d["title"],
                   parse_date(d.get("published")), d["checksum"],
                   Reading.from_dict(d["reading"]), _parse_time(d.get("added_at")))


@dataclass(frozen=True)
class Note:
    """An analyst note: what a person saw or knows about a site (and a part) on a day.
    ``id`` is :func:`sitewatch.store.note_id`; ``added_at`` is set by the store."""

    id: str
    site_id: str
    part: str | None
    date: date
    author: str | None
    text: str
    added_at: datetime | None = None

    def to_dict(self) -> JsonDict:
        return {"id": self.id, "site_id": self.site_id, "part": self.part,
                "date": iso_day(self.date), "author": self.author, "text": self.text,
                "added_at": _time(self.added_at)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Note:
        return cls(d["id"], d["site_id"], d.get("part"), parse_time(d["date"], "date").date(),
                   d.get("author"), d["text"],
                   _parse_time(d.get("added_at")))


# -- the assessment -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """One evidence item's part in an event's odds, in words and numbers."""

    text: str
    direction: str  # "for" or "against"
    indicator: str
    kind: str  # the evidence kind: imagery, report, notice, note
    source: str
    origin: str
    date: date | None
    part: str | None
    weight: float
    likelihood_ratio: float
    log_lr: float
    evidence: str  # the Evidence id
    link: Mapping[str, Any] = field(default_factory=dict)
    sentence: str | None = None  # the claim's sentence (None for imagery)
    #: ``text`` without the odds arithmetic: what, where, when, who (for pages read by people;
    #: the arithmetic goes to an appendix).  Empty in records stored before it was kept.
    plain: str = ""

    @property
    def factor(self) -> float:
        """What this item multiplies the odds by (likelihood ratio to the power of weight)."""
        return float(self.likelihood_ratio ** self.weight)

    def to_dict(self) -> JsonDict:
        return {"text": self.text, "direction": self.direction,
                "indicator": self.indicator,
                "kind": self.kind, "source": self.source, "origin": self.origin,
                "date": _day(self.date), "part": self.part, "weight": self.weight,
                "likelihood_ratio": self.likelihood_ratio, "log_lr": self.log_lr,
                "evidence": self.evidence, "link": dict(self.link),
                "sentence": self.sentence, "plain": self.plain}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reason:
        return cls(d["text"], d["direction"], d["indicator"], d["kind"], d["source"],
                   d["origin"], parse_date(d.get("date")), d.get("part"), d["weight"],
                   d["likelihood_ratio"], d["log_lr"], d["evidence"], dict(d["link"]),
                   d.get("sentence"), d.get("plain") or "")


@dataclass(frozen=True)
class Window:
    """When the event is expected: days (``start``/``end``, None when the report's date is
    unknown) and ``days`` after the assessment date, with what it rests on."""

    start: date | None
    end: date | None
    days: tuple[int, int]
    basis: str

    def to_dict(self) -> JsonDict:
        return {"start": _day(self.start), "end": _day(self.end), "days": list(self.days),
                "basis": self.basis}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Window:
        a, b = d["days"]
        return cls(parse_date(d.get("start")), parse_date(d.get("end")), (int(a), int(b)),
                   d["basis"])


@dataclass(frozen=True)
class Unobserved:
    """An indicator the imagery could not have shown, and why."""

    indicator: str
    name: str
    why: str

    def to_dict(self) -> JsonDict:
        return {"indicator": self.indicator, "name": self.name, "why": self.why}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Unobserved:
        return cls(d["indicator"], d["name"], d["why"])


def _reasons(items: Any) -> tuple[Reason, ...]:
    return tuple(Reason.from_dict(r) for r in items or ())


@dataclass(frozen=True)
class EventAssessment:
    """The assessment of one event (launch, engine test): the level, the likelihood and its
    range, the usual rate, the expected window, the reasons for and against, which indicators
    two independent origins support (``corroborated``), what could not be observed, what was
    kept aside as ``context`` (when nothing bears on the event itself) and a summary."""

    level: str
    likelihood: float
    likelihood_range: tuple[float, float]
    prior: float
    horizon_days: float
    recent_test_likelihood: float | None
    window: Window | None
    reasons: tuple[Reason, ...]
    against: tuple[Reason, ...]
    unobserved: tuple[Unobserved, ...]
    corroborated: Mapping[str, tuple[str, ...]]
    independent_sources: tuple[str, ...]
    context: tuple[Reason, ...] = ()
    summary: str = ""

    def to_dict(self) -> JsonDict:
        return {"level": self.level, "likelihood": self.likelihood,
                "likelihood_range": list(self.likelihood_range), "prior": self.prior,
                "horizon_days": self.horizon_days,
                "recent_test_likelihood": self.recent_test_likelihood,
                "window": self.window.to_dict() if self.window else None,
                "reasons": [r.to_dict() for r in self.reasons],
                "against": [r.to_dict() for r in self.against],
                "unobserved": [u.to_dict() for u in self.unobserved],
                "corroborated": {k: list(v) for k, v in self.corroborated.items()},
                "independent_sources": list(self.independent_sources),
                "context": [r.to_dict() for r in self.context],
                "summary": self.summary}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventAssessment:
        lo, hi = d["likelihood_range"]
        w = d.get("window")
        return cls(d["level"], d["likelihood"], (lo, hi), d["prior"], d["horizon_days"],
                   d.get("recent_test_likelihood"), Window.from_dict(w) if w else None,
                   _reasons(d.get("reasons")), _reasons(d.get("against")),
                   tuple(Unobserved.from_dict(u) for u in d.get("unobserved") or ()),
                   {k: tuple(v) for k, v in d["corroborated"].items()},
                   tuple(d.get("independent_sources") or ()), _reasons(d.get("context")),
                   d.get("summary", ""))


@dataclass(frozen=True)
class Assessment:
    """The launch and engine-test assessment as of ``at`` (None for an undated report read
    alone) from ``evidence_items`` items."""

    at: date | None
    evidence_items: int
    launch: EventAssessment
    engine_test: EventAssessment

    def event(self, name: str) -> EventAssessment:
        """The assessment of event ``name`` (``launch`` or ``engine_test``)."""
        if name not in EVENTS:
            raise KeyError(name)
        ea: EventAssessment = getattr(self, name)
        return ea

    def to_dict(self) -> JsonDict:
        return {"at": _day(self.at), "evidence_items": self.evidence_items,
                "launch": self.launch.to_dict(), "engine_test": self.engine_test.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Assessment:
        return cls(parse_date(d.get("at")), d["evidence_items"],
                   EventAssessment.from_dict(d["launch"]),
                   EventAssessment.from_dict(d["engine_test"]))


@dataclass(frozen=True)
class Sighting:
    """A part seen clear by one kind of sensor (``optical`` or ``sar``): on how many dates,
    the last of them, and the imagery indicators that sensor can show at that part."""

    part: str
    sensor: str
    last: date
    dates: int
    indicators: tuple[str, ...] = ()

    def to_dict(self) -> JsonDict:
        return {"part": self.part, "sensor": self.sensor, "last": _day(self.last),
                "dates": self.dates, "indicators": list(self.indicators)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sighting:
        last = parse_date(d["last"])
        assert last is not None
        return cls(d["part"], d["sensor"], last, int(d["dates"]),
                   tuple(d.get("indicators") or ()))


@dataclass(frozen=True)
class Imagery:
    """What the imagery of a site gave an assessment: its best resolution, its last image,
    the run (``params_hash``) whose alerts were used, and which part each kind of sensor
    saw clear, and when last (``seen``)."""

    best_resolution_m: float | None
    last_image: datetime | None
    params_hash: str | None
    seen: tuple[Sighting, ...] = ()

    def to_dict(self) -> JsonDict:
        # ``isoformat`` (not :func:`~sitewatch.times.iso`): the form ``assess --json`` has
        # always printed.
        return {"best_resolution_m": self.best_resolution_m,
                "last_image": self.last_image.isoformat() if self.last_image else None,
                "params_hash": self.params_hash,
                "seen": [s.to_dict() for s in self.seen]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Imagery:
        return cls(d.get("best_resolution_m"), _parse_time(d.get("last_image")),
                   d.get("params_hash"),
                   tuple(Sighting.from_dict(s) for s in d.get("seen") or ()))


@dataclass(frozen=True)
class SiteAssessment(Assessment):
    """The assessment of a catalogue site from everything on record: also which ``site``,
    its ``imagery``, every ``evidence`` item weighed and the ``reports`` on record;
    ``undated_reports``: those of them ignored for want of a publication date."""

    site: str
    imagery: Imagery
    evidence: tuple[Evidence, ...]
    reports: tuple[ReportRef, ...]
    undated_reports: tuple[ReportRef, ...] = ()

    def to_dict(self) -> JsonDict:
        return {**super().to_dict(), "site": self.site, "imagery": self.imagery.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "reports": [r.to_dict() for r in self.reports],
                "undated_reports": [r.to_dict() for r in self.undated_reports]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SiteAssessment:
        a = Assessment.from_dict(d)
        return cls(a.at, a.evidence_items, a.launch, a.engine_test, d["site"],
                   Imagery.from_dict(d["imagery"]),
                   tuple(Evidence.from_dict(e) for e in d.get("evidence") or ()),
                   tuple(ReportRef.from_dict(r) for r in d.get("reports") or ()),
                   tuple(ReportRef.from_dict(r) for r in d.get("undated_reports") or ()))


__all__ = ["EVENTS", "Assessment", "EventAssessment", "Imagery", "JsonDict", "Note", "Reason",
           "Report", "ReportRef", "Sighting", "SiteAssessment", "Unobserved", "Window"]
