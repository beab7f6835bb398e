"""The indicators: what precedes a launch or an engine test, and how strongly.

Indicator sets are TOML files, one per site type, shipped in ``sitewatch/warning/data``
(``launch_site.toml`` documents every field) and added by users: a file given with
``--indicators`` or any ``*.toml`` in ``SITEWATCH_HOME/indicators/``.  A user indicator with
the id of a built-in one replaces it; ``[events.X]`` tables replace the prior of event X.

Examples
--------
>>> cat = load_indicators("launch_site")
>>> ind = cat.indicator("launch_notice")
>>> ind.event, ind.half_life_days, ind.lr_judged["launch"]  # judged; ind.lr: as fitted
('launch', 20.0, (20.0, 50.0, 200.0))
>>> [i.id for i in cat.for_activity("vehicles_present", "engine_test_stand")]
['vehicles_at_test_stand']
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from sitewatch.errors import CollateralError
from sitewatch.sites.site import PART_KINDS
from sitewatch.warning.lexicon import ACTIVITIES, site_type, site_types

EVENTS = ("launch", "engine_test", "capability_change", "standby")
#: Events the assessment judges (the others only move those two).
ASSESSED = ("launch", "engine_test")
PHASES = ("before", "after")
#: The levels each assessed event has, from the most to the least pressing, and the
#: probability from which each is given when nothing else is said (``[events.X] levels``):
#: launch ``imminent`` from 0.5, ``possible`` from 1.5 x the prior; engine test
#: ``recent_test`` from 0.5 (on after-the-test evidence), ``preparations`` from 1.5 x the prior.
LEVELS = {"launch": ("imminent", "possible"), "engine_test": ("recent_test", "preparations")}
DEFAULT_LEVELS = {"imminent": 0.5, "recent_test": 0.5}
ABOVE_USUAL = 1.5
#: The events each site type of :mod:`sitewatch.sites` can have; the gazetteer's
#: ``[site_types]`` (when it has them) say the same for its types.  A type not known here or
#: there rules nothing out.
TYPE_EVENTS: dict[str, tuple[str, ...]] = {
    "launch_site": ("launch", "engine_test"), "engine_test_site": ("engine_test",),
    "missile_base": ("launch",), "facility": ("launch", "engine_test")}
IMAGERY_CHARACTERS = ("change", "persistent", "transient", "vegetation_loss", "new_objects")
_ID = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


@dataclass(frozen=True)
class Indicator:
    """One indicator (see ``data/launch_site.toml`` for the meaning of each field)."""

    id: str
    name: str
    event: str
    phase: str
    part_kinds: tuple[str, ...]
    activities: tuple[str, ...]
    imagery: tuple[str, ...]
    resolution_m: float
    sar: bool
    lr: dict[str, tuple[float, float, float]]
    lr_absent: dict[str, float]
    half_life_days: float
    lead_days: tuple[float, float]
    basis: str
    origin: str = "built-in"
    #: Where a strength was fitted (warning/calibrate.py), the judged values it replaced:
    #: the prior of the next fit, and the record of what changed.
    lr_judged: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    lr_absent_judged: dict[str, float] = field(default_factory=dict)

    def decay(self, age_days: float) -> float:
        """Weight left after ``age_days`` (1 for today, 0.5 after one half-life; evidence
        from the future, such as a notice window, is not decayed).

        >>> load_indicators("launch_site").indicator("launch_notice").decay(20)
        0.5
        """
        return 1.0 if age_days <= 0 else 0.5 ** (age_days / self.half_life_days)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "event": self.event, "phase": self.phase,
                "part_kinds": list(self.part_kinds), "activities": list(self.activities),
                "imagery": list(self.imagery), "resolution_m": self.resolution_m,
                "sar": self.sar, "lr": {k: list(v) for k, v in self.lr.items()},
                "lr_absent": dict(self.lr_absent), "half_life_days": self.half_life_days,
                "lead_days": list(self.lead_days), "basis": self.basis, "origin": self.origin,
                "lr_judged": {k: list(v) for k, v in self.lr_judged.items()},
                "lr_absent_judged": dict(self.lr_absent_judged)}


@dataclass(frozen=True)
class EventPrior:
    """The usual rate of an event in ``horizon_days`` and the probabilities its levels start at
    (``levels``: e.g. ``{"imminent": 0.5, "possible": 0.075}``), with where each comes from."""

    event: str
    prior: float
    horizon_days: float
    basis: str
    levels: dict[str, float] = field(default_factory=dict)
    levels_basis: str = ""
    levels_judged: dict[str, float] = field(default_factory=dict)

    def threshold(self, level: str) -> float:
        """The probability from which ``level`` is given (see :data:`LEVELS`)."""
        if level in self.levels:
            return self.levels[level]
        return DEFAULT_LEVELS.get(level, ABOVE_USUAL * self.prior)


@dataclass(frozen=True)
class IndicatorSet:
    """The indicators of one site type, and the prior of each assessed event."""

    site_type: str
    indicators: tuple[Indicator, ...]
    events: dict[str, EventPrior] = field(default_factory=dict)
    #: The events assessed at this type of site (a shipyard has no launch to assess).
    assessed: tuple[str, ...] = ASSESSED

    def indicator(self, ind_id: str) -> Indicator:
        for i in self.indicators:
            if i.id == ind_id:
                return i
        raise CollateralError(f"no indicator {ind_id!r} in the {self.site_type} indicators")

    def for_activity(self, activity: str, part_kind: str | None = None) -> list[Indicator]:
        """Indicators a claimed activity is evidence of (at ``part_kind`` when known: an
        indicator tied to parts takes a claim at another part kind only when the claim names
        no part)."""
        takers = [i for i in self.indicators if activity in i.activities]
        out = [i for i in takers
               if not (part_kind and i.part_kinds and part_kind not in i.part_kinds)]
        if not out and takers:
            # The part words near the claim name a part where this indicator does not show
            # (a misread part, or an unusual place): the activity still counts.
            out, part_kind = takers, None
        if len(out) > 1 and part_kind is None:
            # No part named: keep the indicators not tied to a specific part kind, else the
            # first listed (the file lists the most common reading first).
            free = [i for i in out if not i.part_kinds]
            out = free or out[:1]
        return out

    def for_imagery(self, part_kind: str, characters: Iterable[str]) -> list[Indicator]:
        """Indicators an imagery alert of these characters at a ``part_kind`` can show."""
        chars = set(characters)
        return [i for i in self.indicators
                if i.imagery and chars & set(i.imagery)
                and (not i.part_kinds or part_kind in i.part_kinds)]


def _float(v: Any, where: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise CollateralError(f"{where}: {v!r} is not a number") from e
    if not math.isfinite(f):
        raise CollateralError(f"{where}: {v!r} is not a finite number")
    return f


def _indicator(raw: Any, where: str, origin: str) -> Indicator:
    if not isinstance(raw, dict):
        raise CollateralError(f"{where}: an [[indicator]] must be a table, got {raw!r:.60}")
    try:
        return _indicator_fields(raw, where, origin)
    except (TypeError, ValueError, AttributeError) as e:
        if isinstance(e, CollateralError):
            raise
        raise CollateralError(f"{where}: a field has the wrong type ({e}); see "
                              "docs/indicators.md for the format") from e


def _indicator_fields(raw: dict[str, Any], where: str, origin: str) -> Indicator:
    def need(key: str) -> Any:
        if key not in raw:
            raise CollateralError(f"{where}: missing field {key!r}")
        return raw[key]

    ind_id = str(need("id"))
    where = f"{where} ({ind_id!r})"
    if not _ID.match(ind_id):
        raise CollateralError(f"{where}: id must be lower case letters, digits and _")
    event = str(need("event"))
    if event not in EVENTS:
        raise CollateralError(f"{where}: event {event!r} is not one of {', '.join(EVENTS)}")
    phase = str(raw.get("phase", "before"))
    if phase not in PHASES:
        raise CollateralError(f"{where}: phase {phase!r} is not one of {', '.join(PHASES)}")
    kinds = tuple(str(k) for k in raw.get("part_kinds", []))
    for k in kinds:
        if k not in PART_KINDS:
            raise CollateralError(f"{where}: part kind {k!r} is unknown (known: "
                                  f"{', '.join(PART_KINDS)})")
    acts = tuple(str(a) for a in raw.get("activities", []))
    for a in acts:
        if a not in ACTIVITIES:
            raise CollateralError(f"{where}: activity {a!r} is unknown (known: "
                                  f"{', '.join(ACTIVITIES)})")
    imagery = tuple(str(c) for c in raw.get("imagery", []))
    for c in imagery:
        if c not in IMAGERY_CHARACTERS:
            raise CollateralError(f"{where}: imagery character {c!r} is unknown (known: "
                                  f"{', '.join(IMAGERY_CHARACTERS)})")
    lr = _ratios(need("lr"), where, "lr")
    judged = _ratios(raw.get("lr_judged", {}), where, "lr_judged")
    absent = _absent(raw.get("lr_absent", {}), where, "lr_absent")
    absent_judged = _absent(raw.get("lr_absent_judged", {}), where, "lr_absent_judged")
    half = _float(need("half_life_days"), f"{where} half_life_days")
    if half <= 0:
        raise CollateralError(f"{where}: half_life_days must be > 0")
    lead = [_float(x, f"{where} lead_days") for x in raw.get("lead_days", [0, 0])]
    if len(lead) != 2 or lead[0] > lead[1]:
        raise CollateralError(f"{where}: lead_days must be [min, max]")
    basis = str(raw.get("basis", "")).strip()
    if not basis:
        raise CollateralError(f"{where}: say where the strength comes from in 'basis'")
    return Indicator(ind_id, str(raw.get("name", ind_id)), event, phase, kinds, acts, imagery,
                     _float(raw.get("resolution_m", 0), f"{where} resolution_m"),
                     bool(raw.get("sar", False)), lr, absent, half, (lead[0], lead[1]), basis,
                     origin, judged, absent_judged)


def _ratios(raw: Any, where: str, name: str) -> dict[str, tuple[float, float, float]]:
    """An ``lr`` table: per event ``[low, central, high]`` (or one number for all three)."""
    lr: dict[str, tuple[float, float, float]] = {}
    for ev, v in dict(raw).items():
        if ev not in ASSESSED:
            raise CollateralError(f"{where}: {name} for {ev!r}: give {name} for "
                                  f"{' or '.join(ASSESSED)}")
        vals = [_float(x, f"{where} {name}.{ev}")
                for x in (v if isinstance(v, list) else [v] * 3)]
        if len(vals) != 3 or not 0 < vals[0] <= vals[1] <= vals[2]:
            raise CollateralError(f"{where}: {name}.{ev} must be [low, central, high] with "
                                  f"0 < low <= central <= high, got {v!r}")
        lr[ev] = (vals[0], vals[1], vals[2])
    return lr


def _absent(raw: Any, where: str, name: str) -> dict[str, float]:
    absent = {ev: _float(v, f"{where} {name}.{ev}") for ev, v in dict(raw).items()}
    for ev, v in absent.items():
        if ev not in ASSESSED or not 0 < v <= 1:
            raise CollateralError(f"{where}: {name}.{ev} must be in (0, 1], for "
                                  f"{' or '.join(ASSESSED)}")
    return absent


def parse_indicators(text: str, where: str) -> tuple[str | None, list[Indicator],
                                                    dict[str, EventPrior]]:
    """Parse one indicator file's text: (site_type, indicators, event priors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CollateralError(f"{where}: not valid TOML: {e}") from e
    items = raw.get("indicator", [])
    if not isinstance(items, list):
        raise CollateralError(f"{where}: 'indicator' must be a list of [[indicator]] tables")
    inds = [_indicator(r, f"{where} indicator {n + 1}", where) for n, r in enumerate(items)]
    seen: set[str] = set()
    for i in inds:
        if i.id in seen:
            raise CollateralError(f"{where}: indicator id {i.id!r} is given twice")
        seen.add(i.id)
    events = {}
    raw_events = raw.get("events", {})
    if not isinstance(raw_events, dict) or not all(isinstance(r, dict)
                                                   for r in raw_events.values()):
        raise CollateralError(f"{where}: 'events' must hold tables such as [events.launch] "
                              "with prior, horizon_days and basis")
    for ev, r in raw_events.items():
        if ev not in ASSESSED:
            raise CollateralError(f"{where}: [events.{ev}]: only {', '.join(ASSESSED)} are "
                                  "assessed")
        p = _float(r.get("prior"), f"{where} events.{ev}.prior")
        if not 0 < p < 1:
            raise CollateralError(f"{where}: events.{ev}.prior must be in (0, 1)")
        events[ev] = EventPrior(ev, p, _float(r.get("horizon_days", 30), where),
                                str(r.get("basis", "")), _levels(r, ev, "levels", where),
                                str(r.get("levels_basis", "")),
                                _levels(r, ev, "levels_judged", where))
    st = raw.get("site_type")
    return (str(st) if st else None), inds, events


def _levels(r: dict[str, Any], event: str, name: str, where: str) -> dict[str, float]:
    """The ``levels`` (or ``levels_judged``) of ``[events.X]``: each a probability in (0, 1);
    a launch is ``possible`` below where it is ``imminent``."""
    raw = r.get(name, {})
    if not isinstance(raw, dict):
        raise CollateralError(f"{where}: events.{event}.{name} must be a table such as "
                              f"{{ {LEVELS[event][0]} = 0.5 }}")
    out = {}
    for k, v in raw.items():
        if k not in LEVELS[event]:
            raise CollateralError(f"{where}: events.{event}.{name}.{k}: the levels are "
                                  f"{', '.join(LEVELS[event])}")
        out[k] = _float(v, f"{where} events.{event}.{name}.{k}")
        if not 0 < out[k] < 1:
            raise CollateralError(f"{where}: events.{event}.{name}.{k} must be in (0, 1)")
    top, second = LEVELS[event]
    if top in out and second in out and out[second] > out[top] and event == "launch":
        raise CollateralError(f"{where}: events.launch.{name}: possible ({out[second]:g}) is "
                              f"above imminent ({out[top]:g})")
    return out


def site_type_events(site_type: str) -> tuple[str, ...]:
    """The assessed events a ``site_type`` can have: from the gazetteer's site types when it
    knows the type, else :data:`TYPE_EVENTS`; a type neither knows rules nothing out.

    >>> site_type_events("engine_test_site"), site_type_events("somewhere_new")
    (('engine_test',), ('launch', 'engine_test'))
    """
    known = site_types()
    if site_type in known:
        have = set(known[site_type].events)
        return tuple(e for e in ASSESSED if e in have)
    return TYPE_EVENTS.get(site_type, ASSESSED)


def gazetteer_site_events(site_id: str) -> tuple[str, ...]:
    """The assessed events a gazetteer site can have, from its site type (all of them for a
    site the gazetteer does not know).

    >>> gazetteer_site_events("magunpo"), gazetteer_site_events("punggye-ri")
    (('engine_test',), ())
    """
    kind = site_type(site_id)
    return site_type_events(kind) if kind else ASSESSED


def builtin_types() -> list[str]:
    base = resources.files("sitewatch.warning").joinpath("data")
    return sorted(p.name[:-5] for p in base.iterdir()
                  if p.name.endswith(".toml") and p.name.endswith("_site.toml"))


def load_indicators(site_type: str = "launch_site", extra: Iterable[str | Path] = ()
                   ) -> IndicatorSet:
    """The indicator set for ``site_type`` (launch sites' for types without their own), with the
    indicators of each ``extra`` file added or replacing built-in ones of the same id."""
    name = site_type if site_type in builtin_types() else "launch_site"
    ref = resources.files("sitewatch.warning").joinpath("data", f"{name}.toml")
    _st, inds, events = parse_indicators(ref.read_text(encoding="utf-8"), f"built-in {name}")
    by_id = {i.id: i for i in inds}
    for path in extra:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CollateralError(f"{p}: cannot read indicator file: {e}") from e
        st, more, ev = parse_indicators(text, str(p))
        if st and st != site_type:
            continue
        for i in more:
            by_id[i.id] = replace(i, origin=str(p))
        events.update(ev)
    for name in ASSESSED:
        events.setdefault(name, EventPrior(name, 0.05, 30, "default"))
    return IndicatorSet(site_type, tuple(by_id.values()), events, site_type_events(site_type))


_DOC_HEAD = """# Indicators and their strengths

An indicator is an observable that, in the public record, comes before (or after) an event.
The indicators for launch sites are in `src/sitewatch/warning/data/launch_site.toml`; this page is
written from it by `sitewatch indicators --markdown` (a test checks it is current).
`sitewatch indicators [--json]` prints the indicators in use, your own files included.

## How strengths are expressed

* **lr**: a likelihood ratio per event, `low/central/high`: how much more often the indicator
  is seen in the 30 days before the event than in 30 days without one. The central value
  gives the likelihood, the low and high ends its range. Below 1 argues against.
  **lr absent**: the ratio when a source says the indicator is *not* there.
* **half-life**: the evidence's weight halves every half-life after the day it was seen.
* **lead**: days between the indicator and the event; it gives the expected window.
* **needs**: the coarsest imagery that shows it as what it is (`text`: read from reports and
  notices only). Coarser imagery can still flag a change there, at half weight.
* **imagery**: the characters of an imagery alert that can show it (docs/collateral.md).

**Where the numbers come from.** There are too few launches and tests at any one site to fit
likelihood ratios on events: Sohae saw 7 satellite launches from 2012 to 2024 and about as
many reported engine tests. The strengths were therefore first *judged* from that public
record (imagery analyses by 38 North and CSIS Beyond Parallel, and government statements
around the 2012, 2016 and 2023 launches, the 2016-2022 engine tests, the 2018 dismantling and
the 2019 rebuilding), ordered by how specific each observable is to the event: a declared
navigation window is almost decisive; the transfer structure at the tower or a fresh burn
scar below a stand is strong; trains, vehicles, fuel and officials' warnings are moderate,
because they also come with construction, maintenance and rehearsals; construction is weak
for the next 30 days. Then the central value of each indicator that real analyst reports
show, and the level thresholds, were **calibrated** against the conclusions of 45 real
published reports, with the judgement as a strong prior (its range is the prior's width), and
measured leave-one-out (`python benchmarks/bench_calibration.py`, docs/bench_calibration.md).
Each strength's basis ends by saying which it is: `[fitted on ...]` with the judged and the
fitted value and how many reports showed the indicator, or `[judgement: ...]`; the file keeps
the judged values (`lr_judged`, `levels_judged`). The ranges are wide on purpose, and the
assessment reports the likelihood range they give. Disagree? Put your own values in a TOML
file (same fields) in `SITEWATCH_HOME/indicators/` or pass `--indicators FILE`: an indicator
with a built-in id replaces it.
"""

_DOC_TAIL = """
## Adding indicators for another site type

A file has `site_type = "..."`, optional `[events.launch]` / `[events.engine_test]` tables
(`prior`, `horizon_days`, `basis`) and `[[indicator]]` tables with the fields above (`id`,
`name`, `event`, `phase`, `part_kinds`, `activities`, `imagery`, `resolution_m`, `sar`, `lr`,
`lr_absent`, `half_life_days`, `lead_days`, `basis`). Every field is checked on loading; an
error names the file, the indicator and the field. `basis` is required: a strength without a
reason is not accepted.
"""


def indicators_markdown(cat: IndicatorSet) -> str:
    """The indicators as a Markdown page (docs/indicators.md is this for launch sites)."""

    def lr(v: tuple[float, float, float] | None) -> str:
        return "-" if v is None else "/".join(f"{x:g}" for x in v)

    lines = [_DOC_HEAD, "## Priors and levels", "",
             "| event | prior (30 days) | levels from | basis |", "|---|---|---|---|"]
    for ev, p in cat.events.items():
        levels = ", ".join(f"{lv} {p.threshold(lv):.3g}" for lv in LEVELS[ev])
        basis = p.basis + (f" Levels: {p.levels_basis}" if p.levels_basis else "")
        lines.append(f"| {ev} | {p.prior:g} | {levels} | {basis} |")
    lines += ["", f"## Indicators ({cat.site_type})", "",
              "| id | event (phase) | parts | lr launch | lr engine test | lr absent | "
              "half-life d | lead d | needs | imagery |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for i in cat.indicators:
        needs = "text" if i.resolution_m == 0 else f"{i.resolution_m:g} m"
        absent = ", ".join(f"{k} {v:g}" for k, v in i.lr_absent.items()) or "-"
        lines.append(f"| `{i.id}` | {i.event} ({i.phase}) | {', '.join(i.part_kinds) or 'any'}"
                     f" | {lr(i.lr.get('launch'))} | {lr(i.lr.get('engine_test'))} | {absent}"
                     f" | {i.half_life_days:g} | {i.lead_days[0]:g}-{i.lead_days[1]:g} | "
                     f"{needs}{' or SAR' if i.sar else ''} | {', '.join(i.imagery) or '-'} |")
    lines += ["", "## Why each strength", ""]
    lines += [f"* **`{i.id}`** ({i.name}): {i.basis}" for i in cat.indicators]
    return "\n".join(lines) + "\n" + _DOC_TAIL


def user_files(home: str | Path | None) -> list[Path]:
    """``*.toml`` indicator files in ``HOME/indicators/``."""
    if home is None:
        return []
    d = Path(home) / "indicators"
    return sorted(d.glob("*.toml")) if d.is_dir() else []


__all__ = [
    "ASSESSED",
    "EVENTS",
    "IMAGERY_CHARACTERS",
    "LEVELS",
    "TYPE_EVENTS",
    "EventPrior",
    "Indicator",
    "IndicatorSet",
    "builtin_types",
    "gazetteer_site_events",
    "indicators_markdown",
    "load_indicators",
    "parse_indicators",
    "site_type_events",
    "user_files",
]
