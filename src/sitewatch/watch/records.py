"""The typed records ``sitewatch run`` keeps, as the store takes and returns them.

* :class:`SceneRegistration`: a scene's co-registration on a grid (one shape, stored once:
  the store's ``registrations`` table);
* :class:`ProcessedScene`: what became of one scene with one parameter set (status and
  reason, the chain it rests on, what it was compared with, the products it wrote; its
  registration is read from the registrations);
* :class:`Observation`: one part's measures on one scene against one reference;
* :class:`StoredAlert`: a :class:`~sitewatch.watch.alerts.Alert` with its lifecycle;
* :class:`RunRecord`: one ``sitewatch run`` and what it did.

Inside, times are timezone-aware UTC :class:`~datetime.datetime` and unmeasured values are
NaN; ``to_dict`` gives the JSON form (ISO strings, NaN as null) and ``from_dict`` reads it
back, so ``Record.from_dict(json.loads(json.dumps(r.to_dict())))`` equals ``r`` (NaN
fields aside, as NaN != NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sitewatch.imagery.coregister import Registration, Shift
from sitewatch.times import iso, parse_time
from sitewatch.watch.alerts import Alert

#: Scene statuses after processing.  ``first``/``ok`` are usable dates; the others are not.
STATUSES = ("first", "ok", "unusable", "rejected", "failed")
USABLE = ("first", "ok")
#: What an observation of a part is measured against.
REFERENCES = ("previous", "composite", "none")
#: An alert's lifecycle: new -> seen -> dismissed (with a reason) | confirmed.
ALERT_STATUSES = ("new", "seen", "dismissed", "confirmed")

JSON = dict[str, Any]  # the JSON form of a record (the edges only)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN), tuples as
    lists.

    >>> json_safe({"a": float("nan"), "b": (1.5, float("inf"))})
    {'a': None, 'b': [1.5, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def num(v: Any) -> float:
    """A stored number: null (unmeasured) is NaN."""
    return math.nan if v is None else float(v)


def _time(v: str | datetime | None) -> datetime | None:
    return None if v is None else parse_time(v)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else iso(t)


# --------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class LocalWindow:
    """The shift measured in one window of a registration check (centre in pixels; NaN
    where the window had too little observed or textured ground)."""

    row: float
    col: float
    dy: float
    dx: float

    def to_dict(self) -> JSON:
        return json_safe({"row": self.row, "col": self.col, "dy": self.dy, "dx": self.dx})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LocalWindow:
        return cls(num(d["row"]), num(d["col"]), num(d.get("dy")), num(d.get("dx")))


@dataclass(frozen=True)
class SceneRegistration:
    """A scene's co-registration to its grid's reference scene.

    ``dy``/``dx``: the measured displacement of the scene's content, in grid pixels
    (see :class:`~sitewatch.imagery.coregister.Shift`); ``applied``: whether it was undone
    when the scene was loaded (a shift too small, or a weak match the local windows cannot
    confirm, is recorded but not applied); ``status`` ``ok``, ``flagged`` or ``rejected``
    (the scene is not compared).
    """

    site_id: str
    scene_id: str
    grid: str
    reference_id: str
    dy: float
    dx: float
    reliability: float
    residual_px: float  # NaN when fewer than 3 windows could check it
    status: str
    reason: str
    applied: bool
    local: tuple[LocalWindow, ...] = ()
    created_at: datetime | None = None

    @property
    def shift(self) -> Shift:
        """The measured shift."""
        return Shift(self.dy, self.dx)

    @property
    def applied_shift(self) -> Shift | None:
        """The shift a scene is loaded with (None: used as its provider geolocated it)."""
        return self.shift if self.applied else None

    @classmethod
    def of(cls, site_id: str, scene_id: str, grid: str, reference_id: str,
           reg: Registration, *, applied: bool, status: str | None = None,
           reason: str | None = None) -> SceneRegistration:
        """The record of a :class:`~sitewatch.imagery.coregister.Registration` (``status``
        and ``reason`` override the registration's)."""
        local = tuple(LocalWindow(w.row, w.col, w.shift.dy if w.shift else math.nan,
                                  w.shift.dx if w.shift else math.nan) for w in reg.local)
        return cls(site_id, scene_id, grid, reference_id, reg.shift.dy, reg.shift.dx,
                   reg.reliability, reg.residual_px, status or reg.status,
                   reg.reason if reason is None else reason, applied, local)

    def to_dict(self) -> JSON:
        return json_safe({
            "site_id": self.site_id, "scene_id": self.scene_id, "grid": self.grid,
            "reference_id": self.reference_id, "dy": self.dy, "dx": self.dx,
            "reliability": self.reliability, "residual_px": self.residual_px,
            "status": self.status, "reason": self.reason, "applied": self.applied,
            "local": [w.to_dict() for w in self.local],
            "created_at": _iso(self.created_at)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SceneRegistration:
        return cls(str(d["site_id"]), str(d["scene_id"]), str(d["grid"]),
                   str(d["reference_id"]), num(d["dy"]), num(d["dx"]),
                   num(d.get("reliability")), num(d.get("residual_px")), str(d["status"]),
                   str(d.get("reason") or ""), bool(d.get("applied", False)),
                   tuple(LocalWindow.from_dict(w) for w in d.get("local") or ()),
                   _time(d.get("created_at")))


# --------------------------------------------------------------------------- processed scene


@dataclass(frozen=True)
class Chain:
    """What a scene's result rests on: the file, the grid's reference scene, the previous
    usable date, the composite's members and, when its comparisons span seasons, the
    same-season reference's members (earlier years).  A result whose chain differs is
    recomputed."""

    checksum: str
    reference: str
    previous: str | None = None
    composite: tuple[str, ...] = ()
    grid: str = ""  # the site grid's fingerprint; "" in results stored before it was kept
    #: The parts and their geometry versions scored (:func:`sitewatch.store.parts.
    #: layout_key`); "" in results stored before part versions were kept.
    parts: str = ""
    #: The same-season reference's members (usable dates of earlier years near the scene's
    #: day of year); () when the scene's comparisons do not span seasons or there is none.
    season: tuple[str, ...] = ()

    def to_dict(self) -> JSON:
        d: JSON = {"checksum": self.checksum, "reference": self.reference,
                   "previous": self.previous, "composite": list(self.composite),
                   "grid": self.grid, "parts": self.parts}
        if self.season:  # absent when empty: what results stored before it was kept say
            d["season"] = list(self.season)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Chain:
        return cls(str(d["checksum"]), str(d["reference"]), d.get("previous"),
                   tuple(d.get("composite") or ()), str(d.get("grid") or ""),
                   str(d.get("parts") or ""), tuple(d.get("season") or ()))

    def same_as(self, other: Chain) -> bool:
        """Whether a stored chain (``self``) still holds for ``other``; one stored before
        grids were fingerprinted is taken to be on the current grid, and one stored before
        part versions were kept to have scored the current ones (the upgrade marked its
        observations with them)."""
        mine = self if self.grid else replace(self, grid=other.grid)
        mine = mine if mine.parts else replace(mine, parts=other.parts)
        return mine == other


@dataclass(frozen=True)
class ChangeProducts:
    """The change products a comparison wrote (:mod:`sitewatch.watch.products`): paths of
    the change map and of the score (Cloud Optimized GeoTIFFs)."""

    change: str
    score: str

    def items(self) -> Iterator[tuple[str, str]]:
        """(kind, path) of each product."""
        yield "change", self.change
        yield "score", self.score

    def to_dict(self) -> JSON:
        return {"change": self.change, "score": self.score}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChangeProducts:
        return cls(str(d["change"]), str(d["score"]))


@dataclass(frozen=True)
class Comparison:
    """One comparison of a usable scene: against the previous usable date (``reference``
    ``previous``, ``reference_id`` that scene) or the rolling composite (``composite``,
    ``members`` its scenes), with the detector's threshold and the site's changed share."""

    reference: str
    reference_id: str
    method: str
    threshold: float
    rule: str
    changed_fraction_site: float  # NaN when the site was not observed on both
    members: tuple[str, ...] = ()
    products: ChangeProducts | None = None

    def to_dict(self) -> JSON:
        return json_safe({
            "reference": self.reference, "reference_id": self.reference_id,
            "method": self.method, "threshold": self.threshold, "rule": self.rule,
            "changed_fraction_site": self.changed_fraction_site,
            "members": list(self.members),
            "products": self.products.to_dict() if self.products else None})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], reference: str, reference_id: str | None = None
                  ) -> Comparison:
        """Reads this shape, and the one stored before records were typed (no
        ``reference``/``reference_id``: given by the caller)."""
        members = tuple(d.get("members") or ())
        ref_id = d.get("reference_id") or reference_id or ",".join(members)
        prod = d.get("products")
        return cls(str(d.get("reference") or reference), str(ref_id), str(d.get("method", "")),
                   num(d.get("threshold")), str(d.get("rule", "")),
                   num(d.get("changed_fraction_site")), members,
                   ChangeProducts.from_dict(prod) if prod else None)


@dataclass(frozen=True)
class ProcessedScene:
    """What became of one scene processed with one parameter set.

    ``status``: :data:`STATUSES`; ``reason``: why, in words; ``site_observed``: the share of
    the site observed (NaN when the scene could not be read); ``previous`` / ``composite``:
    what a usable scene was compared with (None for the first usable date, or when it was
    not); ``registration``: the scene's co-registration to the grid's reference (None for
    the reference itself, or when it never got that far; the store fills it from its
    registrations).
    """

    site_id: str
    scene_id: str
    params_hash: str
    grid: str
    acquired: datetime
    status: str
    reason: str
    chain: Chain
    params: Mapping[str, Any] = field(default_factory=dict)
    previous_id: str | None = None  # the previous usable date it was compared with
    site_observed: float = math.nan
    bands: tuple[str, ...] = ()
    method: str = ""
    method_params: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    previous: Comparison | None = None
    composite: Comparison | None = None
    registration: SceneRegistration | None = None
    created_at: datetime | None = None
    #: SAR grids: the sequential omnibus test's series (``members``, scene ids, the new date
    #: last), ``enl``, ``alpha`` and look-averaging ``window``; or ``error`` when it could
    #: not run.  Kept in the ``detail`` JSON.
    omnibus: Mapping[str, Any] | None = None

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @property
    def products(self) -> ChangeProducts | None:
        """The change products of the comparison with the previous usable date."""
        return self.previous.products if self.previous else None

    def detail(self) -> JSON:
        """What the store keeps in the row's ``detail`` JSON (the rest are columns; the
        registration is stored with the registrations)."""
        return json_safe({
            "reason": self.reason, "site_observed": self.site_observed,
            "bands": list(self.bands), "method": self.method,
            "method_params": dict(self.method_params), "version": self.version,
            "previous": self.previous.to_dict() if self.previous else None,
            "composite": self.composite.to_dict() if self.composite else None,
            **({"omnibus": dict(self.omnibus)} if self.omnibus is not None else {})})

    def to_dict(self) -> JSON:
        return {"site_id": self.site_id, "scene_id": self.scene_id,
                "params_hash": self.params_hash, "grid": self.grid,
                "acquired": iso(self.acquired), "status": self.status,
                "previous_id": self.previous_id, "chain": self.chain.to_dict(),
                "params": dict(self.params), "detail": self.detail(),
                "registration": self.registration.to_dict() if self.registration else None,
                "created_at": _iso(self.created_at)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProcessedScene:
        """Reads :meth:`to_dict`'s shape, and the ``detail`` stored before records were
        typed (``error`` for a scene that could not be read; no ``reference`` in the
        comparisons)."""
        det = d.get("detail") or {}
        reason = det.get("reason") or (f"cannot be loaded: {det['error']}"
                                       if det.get("error") else "")
        prev, comp = det.get("previous"), det.get("composite")
        reg = d.get("registration")
        return cls(
            str(d["site_id"]), str(d["scene_id"]), str(d["params_hash"]), str(d["grid"]),
            parse_time(d["acquired"]), str(d["status"]), str(reason),
            Chain.from_dict(d["chain"]), dict(d.get("params") or {}), d.get("previous_id"),
            num(det.get("site_observed")), tuple(det.get("bands") or ()),
            str(det.get("method") or ""), dict(det.get("method_params") or {}),
            str(det.get("version") or ""),
            Comparison.from_dict(prev, "previous", d.get("previous_id")) if prev else None,
            Comparison.from_dict(comp, "composite") if comp else None,
            SceneRegistration.from_dict(reg) if reg else None, _time(d.get("created_at")),
            dict(det["omnibus"]) if det.get("omnibus") else None)


# --------------------------------------------------------------------------- observation


@dataclass(frozen=True)
class Observation:
    """One part's measures on one scene against one reference (``previous`` usable date,
    ``composite``, or ``none`` when the date was not compared: first, unusable...).

    ``measures``: :class:`~sitewatch.watch.zonal.PartChange`'s numbers (NaN unmeasured);
    ``changed_fraction`` is NaN when the part was not observed.
    """

    site_id: str
    scene_id: str
    params_hash: str
    part: str
    reference: str
    grid: str
    acquired: datetime
    reference_id: str | None
    observed_fraction: float
    changed_fraction: float = math.nan
    measures: Mapping[str, float] = field(default_factory=dict)
    #: The part's geometry version measured (:mod:`sitewatch.store.parts`).
    part_version: int = 0

    @property
    def observed(self) -> bool:
        from sitewatch.watch.zonal import MIN_OBSERVED

        return self.observed_fraction >= MIN_OBSERVED

    def measure(self, name: str) -> float:
        """A measure, NaN when it was not measured."""
        return num(self.measures.get(name))

    def to_dict(self) -> JSON:
        return json_safe({
            "site_id": self.site_id, "scene_id": self.scene_id,
            "params_hash": self.params_hash, "part": self.part, "reference": self.reference,
            "grid": self.grid, "acquired": iso(self.acquired),
            "reference_id": self.reference_id, "observed_fraction": self.observed_fraction,
            "changed_fraction": self.changed_fraction, "measures": dict(self.measures),
            "part_version": self.part_version})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        return cls(str(d["site_id"]), str(d["scene_id"]), str(d["params_hash"]),
                   str(d["part"]), str(d["reference"]), str(d["grid"]),
                   parse_time(d["acquired"]), d.get("reference_id"),
                   num(d["observed_fraction"]), num(d.get("changed_fraction")),
                   measures_of(d.get("measures") or {}), int(d.get("part_version") or 0))


def measures_of(d: Mapping[str, Any]) -> dict[str, float]:
    """The numeric measures of a mapping (null as NaN, counts stay integers; names and
    flags left out).

    >>> measures_of({"part": "pad", "pixels": 144, "changed_fraction": None})
    {'pixels': 144, 'changed_fraction': nan}
    """
    return {k: v if isinstance(v, int) else num(v) for k, v in d.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


# --------------------------------------------------------------------------- alert


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored: the :class:`~sitewatch.watch.alerts.Alert` with its lifecycle
    (:data:`ALERT_STATUSES`; ``reason`` why it was dismissed or confirmed), the parameter
    set that raised it, and when it was stored and last changed."""

    alert: Alert
    status: str
    params_hash: str
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.alert.id

    @property
    def site(self) -> str:
        return self.alert.site

    @property
    def part(self) -> str:
        return self.alert.part

    @property
    def tier(self) -> str:
        return self.alert.tier

    @property
    def kind(self) -> str:
        return self.alert.kind

    @property
    def text(self) -> str:
        return self.alert.text

    @property
    def time(self) -> datetime:
        """The date of the event's first finding."""
        return parse_time(self.alert.time)

    @property
    def start(self) -> datetime:
        """The usable date before the event (its first date when not known)."""
        return parse_time(self.alert.start or self.alert.time)

    @property
    def end(self) -> datetime:
        """The last date that shows the event."""
        return parse_time(self.alert.end or self.alert.time)

    def finding_times(self) -> list[str]:
        """The (ISO) times of the event's findings."""
        return [str(f["time"]) for f in self.alert.findings]

    def payload(self) -> JSON:
        """The alert as published (``alerts --json``, the sinks: docs/watch.md): the
        alert's fields with its ``status`` (and ``status_reason`` when there is one)."""
        rec = json_safe(self.alert.to_dict())
        rec["status"] = self.status
        if self.reason:
            rec["status_reason"] = self.reason
        return rec

    def to_dict(self) -> JSON:
        """The stored row: lifecycle columns and the alert as ``record``."""
        a = self.alert
        return {"id": a.id, "site_id": a.site, "part": a.part, "time": a.time,
                "start": a.start or a.time, "end": a.end or a.time, "tier": a.tier,
                "kind": a.kind, "status": self.status, "reason": self.reason,
                "params_hash": self.params_hash, "record": json_safe(a.to_dict()),
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredAlert:
        rec = {**d["record"], "id": d["id"]}
        return cls(alert_from_dict(rec), str(d["status"]), str(d["params_hash"]),
                   d.get("reason"), _time(d.get("created_at")), _time(d.get("updated_at")))


_ALERT_FLOATS = ("value", "expected", "z", "changed_area_m2", "objects_area_m2",
                 "largest_object_m2")


def alert_from_dict(d: Mapping[str, Any]) -> Alert:
    """An :class:`~sitewatch.watch.alerts.Alert` from its JSON form (null numbers as NaN)."""
    known = Alert.__dataclass_fields__
    kw = {k: v for k, v in d.items() if k in known}
    for k in _ALERT_FLOATS:
        if k in kw:
            kw[k] = num(kw[k])
    kw["findings"] = tuple(dict(f) for f in d.get("findings") or ())
    return Alert(**kw)


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunSummary:
    """What a finished run did."""

    processed: int = 0
    reused: int = 0
    new_alerts: int = 0
    updated_alerts: int = 0
    seconds: float = 0.0

    def to_dict(self) -> JSON:
        return {"processed": self.processed, "reused": self.reused,
                "new_alerts": self.new_alerts, "updated_alerts": self.updated_alerts,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        return cls(int(d.get("processed", 0)), int(d.get("reused", 0)),
                   int(d.get("new_alerts", 0)), int(d.get("updated_alerts", 0)),
                   float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class RunRecord:
    """One ``sitewatch run`` of a site: its parameters (``params``, as
    :meth:`~sitewatch.watch.pipeline.RunParams.to_dict` gives them), the sitewatch version,
    and, once finished, its summary."""

    id: int
    site_id: str
    params_hash: str
    params: Mapping[str, Any]
    version: str
    started_at: datetime
    finished_at: datetime | None = None
    summary: RunSummary | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def to_dict(self) -> JSON:
        return {"id": self.id, "site_id": self.site_id, "params_hash": self.params_hash,
                "params": dict(self.params), "version": self.version,
                "started_at": iso(self.started_at), "finished_at": _iso(self.finished_at),
                "summary": self.summary.to_dict() if self.summary else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        s = d.get("summary")
        return cls(int(d["id"]), str(d["site_id"]), str(d["params_hash"]),
                   dict(d.get("params") or {}), str(d["version"]), parse_time(d["started_at"]),
                   _time(d.get("finished_at")), RunSummary.from_dict(s) if s else None)


__all__ = ["ALERT_STATUSES", "REFERENCES", "STATUSES", "USABLE", "Chain", "ChangeProducts",
           "Comparison", "LocalWindow", "Observation", "ProcessedScene", "RunRecord",
           "RunSummary", "SceneRegistration", "StoredAlert", "alert_from_dict", "json_safe",
           "measures_of", "num"]
