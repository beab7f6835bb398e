"""A site's evidence on record: reports and notes added to the store, imagery alerts, and the
assessment made of them at a date.

This is the only module of :mod:`sitewatch.warning` that knows the store.  Reports and notes
are stored with the evidence read from them (one transaction each: a failure leaves the
store as it was); imagery evidence is derived from the alerts of the site's last run every
time, so it follows their status (a dismissed alert stops counting).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sitewatch.errors import CollateralError, SiteError
from sitewatch.sites.site import Site
from sitewatch.store import Store, report_id
from sitewatch.store.collateral import note_id
from sitewatch.times import parse_date
from sitewatch.warning.assess import Coverage, assess
from sitewatch.warning.collateral import Reading, extract
from sitewatch.warning.documents import MAX_BYTES, READ_SECONDS, deadline_in, read_document
from sitewatch.warning.evidence import Evidence, from_alert, from_claim, from_note, from_stated
from sitewatch.warning.indicators import IndicatorSet, load_indicators
from sitewatch.warning.records import (
    Imagery,
    Note,
    Report,
    ReportRef,
    Sighting,
    SiteAssessment,
)
from sitewatch.watch.records import Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Added:
    """What adding a report did."""

    report_id: str
    new: bool
    reading: Reading
    evidence: list[Evidence]
    skipped: list[str]  # why claims were left out (another site)
    published_from: str | None = None  # where the date came from: "given", "dateline", ...

    @property
    def undated(self) -> bool:
        """True when no publication date was found or given: the report is kept, but its
        evidence does not count (see :func:`site_evidence`)."""
        return self.reading.published is None


def site_names(site: Site) -> set[str]:
    """The gazetteer ids a site answers to: its id, its ``gazetteer`` property and aliases."""
    names = {site.id}
    g = site.properties.get("gazetteer")
    if g:
        names.add(str(g))
    names.update(str(a) for a in site.properties.get("aliases", []) or [])
    return names


def indicators_for(site: Site, extra: Iterable[str | Path] = ()) -> IndicatorSet:
    """The indicators of a catalogue site's type.  A site whose type was never said
    (``facility``: what `sitewatch ingest` makes for a new site) has its change watched but
    no launch or engine-test assessment: a forest or a city works is not a launch site."""
    cat = load_indicators(site.site_type, extra)
    if site.site_type == "facility":
        cat = dataclasses.replace(cat, assessed=())
    return cat


def source_label(reading: Reading) -> str:
    """How evidence cites a report whose author speaks: its outlet, else its title, else
    "unattributed report" (never a local file name)."""
    if reading.outlets:
        return reading.outlets[0]
    title = " ".join(reading.title.split())
    if title and title != reading.name:
        return f"“{title[:100]}{'…' if len(title) > 100 else ''}”"
    return "unattributed report"


def add_report(store: Store, site: Site, path: str | Path, *,
               published: str | date | None = None, max_bytes: int = MAX_BYTES,
               indicator_set: IndicatorSet | None = None,
               gazetteer_file: str | Path | None = None,
               max_seconds: float | None = READ_SECONDS, url: str | None = None,
               require_date: bool = False) -> Added:
    """Read a report file and store it with the evidence it gives about ``site``.

    Claims about another gazetteer site are left out (and listed in ``skipped``); claims
    naming no site are taken when the report names ``site`` or no site at all.  Reading stops
    after ``max_seconds`` with a warning (the claims read so far are stored).

    The publication date is ``published`` when given, else the one the report gives (see
    :mod:`.pubdate`; ``url``, where it came from, may give it).  A report with neither is
    stored *undated*: its evidence never counts (it is not news of today), and
    :func:`assess_site` lists it as ignored until it is added again with a date;
    ``require_date`` refuses it instead (:class:`CollateralError` naming the file).
    """
    given = parse_date(published, "publication date", CollateralError)
    deadline = deadline_in(max_seconds)
    doc = read_document(path, max_bytes=max_bytes, deadline=deadline, url=url)
    pub = given or doc.published
    if pub is None and require_date:
        raise CollateralError(f"{path}: no publication date found in it (metadata, a date "
                              "line, a dateline, a byline or its URL); pass --published "
                              "YYYY-MM-DD")
    reading = extract(doc, published=pub, gazetteer_file=gazetteer_file, deadline=deadline)
    cat = indicator_set or indicators_for(site)
    mine = site_names(site)
    about_me = bool(mine & set(reading.sites)) or not reading.sites
    evidence: list[Evidence] = []
    skipped: list[str] = []
    checksum = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
    rid = report_id(site.id, checksum)
    for c in reading.claims:
        if c.site is not None and c.site not in mine:
            skipped.append(f"{c.activity} at {c.site}: another site")
            continue
        if c.site is None and not about_me:
            skipped.append(f"{c.activity}: no site named, and the report is about "
                           f"{', '.join(reading.sites)}")
            continue
        evidence += from_claim(c, cat, site=site.id, report=rid, published=reading.published,
                               source_label=source_label(reading))
    # What the report itself concludes, when it is about this site (its first site).
    if not reading.sites or reading.sites[0] in mine:
        evidence += from_stated(reading, cat, site=site.id, report=rid,
                                published=reading.published,
                                source_label=source_label(reading))
    report = Report(rid, site.id, reading.name, reading.title, parse_date(reading.published),
                    checksum, reading)
    new = store.put_report(report, doc.text, evidence)
    how = "given" if given else doc.published_from
    return Added(rid, new, reading, evidence, skipped, how)


def add_note(store: Store, site: Site, text: str, *, when: str | date,
             part: str | None = None, activity: str | None = None, author: str | None = None,
             indicator_set: IndicatorSet | None = None) -> tuple[str, list[Evidence]]:
    """Store an analyst note about ``site`` (and ``part``) on ``when`` (YYYY-MM-DD)."""
    if not text.strip():
        raise CollateralError("the note is empty")
    if len(text) > 20_000:
        raise CollateralError(f"the note is {len(text)} characters long; notes stop at 20000 "
                              "(add long texts with `sitewatch collateral add`)")
    day = parse_date(when, "--date", CollateralError)
    if day is None:
        raise CollateralError("the note has no date")
    kind = site.part(part).kind if part else None  # unknown part -> SiteError naming parts
    if activity is not None:
        from sitewatch.warning.lexicon import ACTIVITIES

        if activity not in ACTIVITIES:
            raise CollateralError(f"activity {activity!r} is unknown (known: "
                                  f"{', '.join(ACTIVITIES)})")
    cat = indicator_set or indicators_for(site)
    nid = note_id(site.id, day, part, text)
    made = from_note(nid, site.id, text, day, cat, part=part, part_kind=kind,
                     activity=activity, author=author)
    store.put_note(Note(nid, site.id, part, day, author, text), made)
    return nid, made


def imagery_evidence(store: Store, site: Site, indicator_set: IndicatorSet, at: date
                     ) -> tuple[list[Evidence], str | None]:
    """Evidence from the alerts of the site's last finished run up to ``at``."""
    run = store.last_run(site.id, finished=True)
    if run is None:
        return [], None
    ph = run.params_hash
    scenes = {s.id: s for s in store.scenes(site.id)}
    obs = {(o.part, o.scene_id): o
           for o in store.observations(site.id, ph, reference="previous")}
    out: list[Evidence] = []
    for a in store.alerts(site.id, params_hash=ph):
        if a.time.date() > at:
            continue
        try:
            kind = site.part(a.part).kind
        except SiteError:
            kind = "other"  # the rest of the site, or a part renamed since the run
        after = a.alert.after_scene or ""
        scene = scenes.get(after)
        out += from_alert(a.alert, a.status, kind, indicator_set,
                          resolution_m=scene.resolution if scene else None,
                          sensor=scene.sensor if scene else None,
                          obs=obs.get((a.part, after)))
    return out, ph


def _sensor_of_grid(grid: str) -> str:
    """``optical`` or ``sar`` from a watch grid key (``sar-10m-rel047-asc``)."""
    return "sar" if grid.split("-", 1)[0] == "sar" else "optical"


def sightings(site: Site, indicator_set: IndicatorSet, obs: Iterable[Observation],
              at: date) -> tuple[Sighting, ...]:
    """Which part each kind of sensor saw clear (on at least half its pixels) by ``at``:
    dates and the last one, and the imagery indicators that sensor can show there (SAR
    only those marked ``sar``)."""
    kinds = {p.name: p.kind for p in site.placed_parts()}
    days: dict[tuple[str, str], set[date]] = {}
    for o in obs:
        d = o.acquired.date()
        if o.part in kinds and o.observed and d <= at:
            days.setdefault((o.part, _sensor_of_grid(o.grid)), set()).add(d)
    out = []
    for (part, sensor), ds in sorted(days.items()):
        inds = tuple(i.id for i in indicator_set.indicators
                     if i.imagery and i.resolution_m != 0
                     and (not i.part_kinds or kinds[part] in i.part_kinds)
                     and (sensor == "optical" or i.sar))
        out.append(Sighting(part, sensor, max(ds), len(ds), inds))
    return tuple(out)


def coverage(store: Store, site: Site, indicator_set: IndicatorSet, at: date,
             params_hash: str | None) -> Coverage:
    """Which indicators the site's imagery could not have shown by ``at``, and why; and
    which part each kind of sensor (optical, SAR) saw clear, and when last.  A part seen
    only by SAR counts as seen for the indicators SAR change can show (``sar`` in the
    indicator file), not for the others."""
    t_at = datetime(at.year, at.month, at.day, 23, 59, 59)
    scenes = [s for s in store.scenes(site.id) if s.acquired.replace(tzinfo=None) <= t_at]
    best = min((s.resolution for s in scenes if s.resolution), default=None)
    last = max((s.acquired for s in scenes), default=None)
    placed: dict[str, list[str]] = {}
    for p in site.placed_parts():
        placed.setdefault(p.kind, []).append(p.name)
    every = store.observations(site.id, params_hash) if params_hash else []
    obs = [o for o in every if o.reference != "composite"]  # one row a part and date
    why: dict[str, str] = {}
    for ind in indicator_set.indicators:
        if ind.phase != "before" and ind.id != "burn_scar":
            continue
        if ind.resolution_m == 0:
            continue  # read from text (notices, official statements), not imagery
        if not scenes:
            why[ind.id] = "no imagery of the site"
            continue
        horizon = at - timedelta(days=max(ind.half_life_days, 14))
        recent = [s for s in scenes if s.acquired.date() >= horizon]
        if not recent:
            why[ind.id] = (f"no imagery since {last.date().isoformat() if last else '?'} "
                           f"(needs one within {max(ind.half_life_days, 14):g} days)")
            continue
        if not ind.imagery:
            why[ind.id] = (f"needs {ind.resolution_m:g} m imagery; the best here is "
                           f"{best:g} m" if best and best > ind.resolution_m else
                           "sitewatch has no detector for it: look for it by eye")
            continue
        kinds = [k for k in ind.part_kinds if k in placed] if ind.part_kinds else None
        if ind.part_kinds and not kinds:
            why[ind.id] = ("the site has no placed part of kind "
                           + " or ".join(ind.part_kinds))
            continue
        if kinds:
            names = {n for k in kinds for n in placed[k]}
            seen = [o for o in obs if o.part in names
                    and horizon <= o.acquired.date() <= at and o.observed]
            usable = [o for o in seen if ind.sar or _sensor_of_grid(o.grid) == "optical"]
            if not usable:
                labels = sorted(site.part(n).label for n in names)
                where = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 \
                    else labels[0]
                days = (at - horizon).days
                clear = [o.acquired.date() for o in obs if o.part in names and o.observed
                         and o.acquired.date() <= at]
                last_clear = (f"last seen clear {max(clear).isoformat()}" if clear
                              else "never seen clear")
                why[ind.id] = (
                    f"{where}: seen only by SAR in the {days} days before {at.isoformat()} "
                    f"(last {max(o.acquired.date() for o in seen).isoformat()}), and SAR "
                    "change does not show this; no clear optical image" if seen else
                    f"{where}: not seen clear (cloud, no data) in the {days} days before "
                    f"{at.isoformat()} ({last_clear})")
                continue
        if best and ind.resolution_m and best > ind.resolution_m:
            why[ind.id] = (f"only as a change at {best:g} m: telling what it is needs "
                           f"{ind.resolution_m:g} m")
    return Coverage(best, last, why, sightings(site, indicator_set, obs, at))


def undated_reports(store: Store, site: Site) -> tuple[ReportRef, ...]:
    """The reports on record for ``site`` with no publication date: their evidence is not
    counted (a report of unknown age is not news of today)."""
    return tuple(r.ref for r in store.reports(site.id) if r.published is None)


def site_evidence(store: Store, site: Site, at: date, indicator_set: IndicatorSet
                  ) -> tuple[list[Evidence], str | None]:
    """Everything on record for ``site`` known by ``at``: stored evidence and imagery.  The
    evidence of an undated report never counts, even where a claim names a day."""
    undated = {r.id for r in undated_reports(store, site)}
    # Known by then: a report counts from its publication, a note from its date.
    stored = [e for e in store.evidence(site.id) if (e.known_from or date.max) <= at
              and e.link.get("report") not in undated]
    # A change of indicator files can drop or rename indicators: keep what it still knows.
    known = {i.id for i in indicator_set.indicators}
    stored = [e for e in stored if e.indicator in known]
    imagery, ph = imagery_evidence(store, site, indicator_set, at)
    return stored + imagery, ph


def assess_site(store: Store, site: Site, *, at: date | None = None,
                indicator_files: Iterable[str | Path] = ()) -> SiteAssessment:
    """The assessment of ``site`` as of ``at`` (default: today) from everything on record."""
    at = at or date.today()
    cat = indicators_for(site, indicator_files)
    evidence, ph = site_evidence(store, site, at, cat)
    cov = coverage(store, site, cat, at, ph)
    a = assess(evidence, at=at, indicator_set=cat, coverage=cov)
    reports = store.reports(site.id)
    return SiteAssessment(a.at, a.evidence_items, a.launch, a.engine_test, site=site.id,
                          imagery=Imagery(cov.best_resolution_m, cov.last_image, ph,
                                          cov.seen),
                          evidence=tuple(evidence),
                          reports=tuple(r.ref for r in reports),
                          undated_reports=tuple(r.ref for r in reports
                                                if r.published is None))


__all__ = [
    "Added",
    "add_note",
    "add_report",
    "assess_site",
    "coverage",
    "imagery_evidence",
    "indicators_for",
    "sightings",
    "site_evidence",
    "site_names",
    "source_label",
    "undated_reports",
]
