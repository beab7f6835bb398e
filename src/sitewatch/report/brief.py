"""The analyst brief: key findings, the assessment and its reasons, annotated before/after
figures, per-part observations, coverage gaps, collateral sources and provenance, as one HTML
page with its figures beside it, plus GeoJSON and COG exports.

Everything is rendered from stored results: alerts, observations, processed-scene records,
the change products kept by ``sitewatch run`` (:mod:`sitewatch.watch.products`), reports, notes and
the assessment made of them.  Scenes are read again only to draw the before/after pictures.
Text from users and reports (part names, collateral text, notes) is escaped by Jinja2's
autoescape; nothing in it is interpreted; control characters (but tab and newlines) and
non-characters, which no HTML parser accepts, are removed from the page.

The output folder may hold the user's own files: a brief removes only files an earlier brief
wrote there, as listed in its manifest (:data:`MANIFEST`), and writes only inside the folder
(file names are safe names, and every path is checked after resolving links).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import shapely
from jinja2 import Environment, PackageLoader, select_autoescape

from sitewatch import __version__
from sitewatch.errors import BriefError, MissingExtraError, OutputError, SiteError, SitewatchError
from sitewatch.fileio import atomic_write, ensure_under, is_safe_name, path_under, safe_name
from sitewatch.imagery.grid import SiteGrid, load_scene
from sitewatch.imagery.scenes import Scene
from sitewatch.imagery.sensors import composite_words, rgb_bands
from sitewatch.report.figures import Panel, overview_figure, timeline_figure
from sitewatch.report.findings import (
    as_date,
    key_findings,
    odds_rows,
    params_words,
    part_label,
    period_words,
    reason_words,
    season_caveat,
)
from sitewatch.report.pairs import CROP_MIN_PX, ChangeObjects, draw_pair
from sitewatch.report.pairs import change_objects as _change_objects  # noqa: F401 (tests)
from sitewatch.report.pairs import rings as _rings
from sitewatch.report.quicklook import credit, stretch, true_colour, unobserved
from sitewatch.sites.site import Part, Site
from sitewatch.store import Store
from sitewatch.times import iso, iso_day
from sitewatch.warning.records import SiteAssessment
from sitewatch.watch.alerts import Alert
from sitewatch.watch.products import applied_shift, processed_grid
from sitewatch.watch.records import ProcessedScene, StoredAlert
from sitewatch.watch.zonal import REST

log = logging.getLogger(__name__)
#: Before/after figures: every alerted part gets one (its strongest alert), then the next
#: strongest alerts up to :data:`MAX_FIGURES`; never more than :data:`MAX_PART_FIGURES`.
MAX_FIGURES = 8
MAX_PART_FIGURES = 20


#: The list of files a brief wrote in its folder (JSON, relative paths): the next brief in
#: that folder removes those of them it does not write again, and nothing else.
MANIFEST = ".sitewatch-brief.json"

#: What an HTML page may not contain: C0 controls but tab, newline and carriage return,
#: DEL and C1 controls, UTF-16 surrogates and Unicode non-characters.
_NOT_HTML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
                       + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF)
                                 for plane in range(0, 0x110000, 0x10000)) + "]")


def html_text(text: str) -> str:
    """``text`` without the characters an HTML page may not hold (see :data:`_NOT_HTML`)."""
    return _NOT_HTML.sub("", text)


def _read_manifest(out: Path) -> list[str]:
    try:
        doc = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    files = doc.get("files") if isinstance(doc, dict) else None
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _owned(out: Path, rel: str) -> Path | None:
    """The file ``rel`` (from a manifest) if it is a plain file sitewatch could have written
    in ``out``: safe names only, inside ``out`` once links are resolved, not a link."""
    parts = rel.split("/")
    if not all(is_safe_name(x) for x in parts) or len(parts) > 2:
        return None
    p = out.joinpath(*parts)
    try:
        ensure_under(p, out)
    except OutputError:
        return None
    return p if p.is_file() and not p.is_symlink() else None


def _write_manifest(out: Path, written: list[Path]) -> None:
    rel = sorted({p.relative_to(out).as_posix() for p in written})
    atomic_write(out / MANIFEST, json.dumps({"written_by": f"sitewatch {__version__}",
                                             "files": rel}, indent=1) + "\n")


@dataclass
class Brief:
    """What :func:`write_brief` wrote."""

    html: Path
    pdf: Path | None = None
    figures: list[Path] = field(default_factory=list)
    exports: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("sitewatch.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["pct"] = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) \
        else f"{100 * v:.0f}%"
    env.filters["day"] = _day
    env.filters["iso"] = lambda t: iso(t) if t else "-"
    return env


def _day(t: datetime | str | None) -> str:
    return iso_day(t) if t else ""


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _words(s: str) -> str:
    return s.replace("_", " ")


def _part_geoms(site: Site, grid: SiteGrid) -> dict[str, Any]:
    out = {}
    for p in site.placed_parts():
        fp = p.footprint(grid.crs)
        if fp is not None and not fp.is_empty:
            out[p.name] = fp
    return out


PDF_HELP = ("PDF needs WeasyPrint and the Pango library: pip install 'sitewatch[pdf]', and on "
            "Debian/Ubuntu: sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
            "(or run scripts/install-pdf-support.sh). The HTML brief needs neither.")


def write_pdf(html: Path, pdf: Path) -> Path:
    """Render the HTML brief to PDF with WeasyPrint (an optional extra)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint without Pango
        raise MissingExtraError(f"{PDF_HELP} ({type(exc).__name__}: {exc})") from None
    try:
        weasyprint.HTML(filename=str(html), base_url=str(html.parent)).write_pdf(str(pdf))
    except Exception as exc:  # WeasyPrint raises many kinds; the HTML brief is kept
        raise OutputError(f"cannot write {pdf}: {exc}") from None
    return pdf


def write_brief(store: Store, site_id: str, out_dir: str | Path, *,
                start: date | None = None, end: date | None = None, pdf: bool = False,
                progress: Callable[[str, int, int], None] | None = None) -> Brief:
    """Write ``out_dir/brief.html`` with its figures and exports (and ``brief.pdf`` when
    ``pdf``); returns what was written.  Files an earlier brief wrote in ``out_dir`` (its
    manifest, :data:`MANIFEST`, lists them) and this one does not are removed; no other file
    there is touched."""
    tick = progress or (lambda *_: None)
    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue")
    if start and end and start > end:
        raise BriefError(f"--from {start} is after --to {end}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fig_dir = path_under(out, "figures")
        exp_dir = path_under(out, "exports")
        fig_dir.mkdir(exist_ok=True)
        exp_dir.mkdir(exist_ok=True)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write the brief to {out}: {exc}") from None
    # Files of an earlier brief in the same folder would be mistaken for this one's: those
    # its manifest lists go; the user's own files stay.
    # (brief.html and brief.pdf are replaced atomically, so a failed brief keeps the last.)
    previous = [p for p in (_owned(out, f) for f in _read_manifest(out)) if p is not None]
    for old in previous:
        if old.parent != out:
            old.unlink(missing_ok=True)
    written: list[Path] = []
    try:
        brief = _write_brief(store, site, out, fig_dir, exp_dir, start, end, pdf, tick, written)
        for old in previous:
            if old.parent == out and old not in written:  # e.g. a PDF of an earlier brief
                old.unlink(missing_ok=True)
        return brief
    finally:
        _write_manifest(out, [*written, *(p for p in previous if p.is_file())])


def _write_brief(store: Store, site: Site, out: Path, fig_dir: Path, exp_dir: Path,
                 start: date | None, end: date | None, pdf: bool,
                 tick: Callable[[str, int, int], None], written: list[Path]) -> Brief:
    from sitewatch.report.findings import default_date, group_alerts, rank_alerts
    from sitewatch.warning.record import assess_site, indicators_for

    site_id = site.id
    run = store.last_run(site_id, finished=True)
    ph = run.params_hash if run else None
    brief = Brief(out / "brief.html")
    scenes = {s.id: s for s in store.scenes(site_id)}
    last_image = max((s.acquired for s in scenes.values()), default=None)
    at = end or default_date(site, last_image, date.today())
    lo_s, hi_s = (start.isoformat() if start else ""), (end.isoformat() if end else "9999")
    # An alert belongs to the period when its dates (start to end) overlap it.
    in_period = [a for a in (store.alerts(site_id, params_hash=ph) if ph else [])
                 if _day(a.start) <= hi_s and _day(a.end) >= lo_s]
    alerts = [a for a in in_period if a.status != "dismissed"]
    dismissed = [a for a in in_period if a.status == "dismissed"]
    groups = group_alerts(alerts, site)
    ranked = rank_alerts(alerts, site)
    processed = {sid: r for sid, r in (store.processed(site_id, ph) if ph else {}).items()
                 if lo_s <= _day(r.acquired) <= hi_s}
    by_grid: dict[str, list[Scene]] = {}
    for sid, row in processed.items():
        if sid in scenes:
            by_grid.setdefault(row.grid, []).append(scenes[sid])
    cat = indicators_for(site)

    figures: list[dict[str, Any]] = []
    figured = _figured(ranked)
    for n, a in enumerate(figured, start=1):
        tick("figures", n - 1, len(figured))
        try:
            figures.append(_alert_figure(n, a, site, processed, scenes, by_grid, fig_dir))
        except SitewatchError as exc:
            brief.warnings.append(f"Figure {n} ({part_label(site, a.part)}, "
                                  f"{_day(a.time)}) not drawn: {exc}")
        else:
            written.append(out / figures[-1]["path"])
            if figures[-1].get("missing"):
                brief.warnings.append(figures[-1]["missing"])
    overview = _overview(site, figured, processed, scenes, by_grid, fig_dir,
                         brief.warnings)
    if overview:
        written.append(out / overview["path"])
    seen = _seen(store, site_id, ph, (lo_s, hi_s))
    timelines = _timelines(site, ranked, store, ph, (lo_s, hi_s), fig_dir, seen, processed)
    written += [out / t["path"] for t in timelines]
    assessment = assess_site(store, site, at=at)
    reports = store.reports(site_id)
    notes = store.notes(site_id)
    gaps = [{"scene": sid, "date": _day(r.acquired), "status": r.status,
             "why": r.reason or r.status}
            for sid, r in sorted(processed.items(), key=lambda kv: kv[1].acquired)
            if not r.usable and lo_s <= _day(r.acquired) <= hi_s]
    used = sorted((s for s in scenes.values()
                   if lo_s <= s.acquired.date().isoformat() <= hi_s), key=lambda s: s.acquired)
    brief.exports += _exports(site, alerts, assessment, processed, figured,
                              exp_dir, brief.warnings)
    written += brief.exports
    figure_of = {f["alert"].id: f["n"] for f in figures}
    day_of = {sid: sc.acquired.date().isoformat() for sid, sc in scenes.items()}
    sensor_of = {sid: f"{sc.sensor}, {sc.resolution:g} m" if sc.resolution else sc.sensor
                 for sid, sc in scenes.items()}
    findings = key_findings(site, assessment, groups, figure_of, sensor_of, processed, at,
                            dismissed=len(dismissed), ran=run is not None, cat=cat,
                            day_of=day_of)
    first = min((as_date(r.acquired) for r in processed.values()), default=None)
    html = _env().get_template("brief.html").render(
        site=site, at=at.isoformat(), start=start, end=end, findings=findings,
        period=period_words(start, end, first), label=lambda n: part_label(site, n),
        assessment=assessment, figures=figures, overview=overview, timelines=timelines,
        alerts=ranked, gaps=gaps, reports=reports, notes=notes, scenes=used,
        processed=processed, run=run, version=__version__, words=_words,
        exports=[p.relative_to(out).as_posix() for p in brief.exports],
        parts=_part_table(site, ranked, store, seen, figure_of),
        notes_on=brief.warnings, coverage=_coverage_table(site, assessment, seen, day_of),
        appendix=_alert_rows(site, [*ranked, *dismissed], figure_of, day_of),
        odds=odds_rows(assessment), reason_words=reason_words,
        params=params_words(run.params if run else None), sources=_source_words)
    atomic_write(brief.html, html_text(html))
    written.append(brief.html)
    if pdf:
        written.append(out / "brief.pdf")  # listed first: a failed PDF leaves no stray file
        brief.pdf = write_pdf(brief.html, out / "brief.pdf")
    brief.figures = [out / f["path"] for f in figures] + \
        ([out / overview["path"]] if overview else []) + [out / t["path"] for t in timelines]
    done = len(figured)
    tick("figures", done, done)
    return brief


def _figured(ranked: list[StoredAlert]) -> list[StoredAlert]:
    """The alerts that get a figure, in the brief's order: the strongest of every alerted
    part (up to :data:`MAX_PART_FIGURES` parts), then the next strongest up to
    :data:`MAX_FIGURES`."""
    first: dict[str, StoredAlert] = {}
    for a in ranked:
        first.setdefault(a.part, a)
    pick = {a.id for a in list(first.values())[:MAX_PART_FIGURES]}
    for a in ranked:
        if len(pick) >= max(MAX_FIGURES, min(len(first), MAX_PART_FIGURES)):
            break
        pick.add(a.id)
    return [a for a in ranked if a.id in pick]


def _coverage_table(site: Site, assessment: SiteAssessment, seen: Seen,
                    day_of: dict[str, str]) -> list[dict[str, str]]:
    """Per part, when optical imagery last saw it clear and when SAR last saw it (with the
    number of dates seen clear: the brief's one count, :func:`_seen`), and the indicators
    those sensors can show there (from the assessment)."""
    inds: dict[str, list[str]] = {}
    for s in assessment.imagery.seen:
        inds.setdefault(s.part, [])
        inds[s.part] += [i for i in s.indicators if i not in inds[s.part]]
    rows: dict[str, dict[str, Any]] = {}
    for (part, grid), by_scene in sorted(seen.items()):
        sensor = "sar" if grid.startswith("sar") else "optical"
        r = rows.setdefault(part, {"part": part_label(site, part), "optical": [], "sar": []})
        r[sensor] += [day_of.get(sid, "") for sid, ok in by_scene.items() if ok]

    def when(days: list[str]) -> str:
        days = [d for d in days if d]
        return f"{max(days)} ({len(days)} dates)" if days else "never"

    return [{"part": r["part"], "optical": when(r["optical"]), "sar": when(r["sar"]),
             "indicators": ", ".join(w.replace("_", " ") for w in inds.get(p, [])) or "-"}
            for p, r in rows.items()]


def _alert_rows(site: Site, alerts: list[StoredAlert], figure_of: dict[str, int],
                day_of: dict[str, str]) -> list[dict[str, Any]]:
    """The appendix's alert table: every alert of the period (dismissed ones too, with the
    analyst's reason), with its figure, measure, value on its own date (where its timeline
    draws it; an event's strongest finding of another date beside it) against the normal
    value, and id."""
    from sitewatch.watch.alerts import measure_words
    from sitewatch.watch.events import KIND_WORDS
    from sitewatch.watch.timeline import own_point

    def num(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{0.0 if abs(v) < 0.0005 else v:.3f}"

    rows = []
    for a in alerts:
        rec = a.alert
        status = a.status + (f": {a.reason}" if a.reason else "")
        measure, value, _day_of_value = own_point(a)
        peak = next((f for f in rec.findings if f.get("value") == rec.value
                     and str(f.get("time", ""))[:10] != rec.time[:10]), None)
        rows.append({"figure": figure_of.get(a.id),
                     "date": day_of.get(rec.after_scene or "") or _day(rec.time),
                     "before": day_of.get(rec.before_scene or "") or _day(rec.start),
                     "part": part_label(site, a.part), "tier": a.tier,
                     "kind": KIND_WORDS.get(rec.kind, rec.kind),
                     "confidence": f"{rec.confidence} ({rec.history} earlier dates)",
                     "value": num(value) + (
                         f" (the event's strongest finding: {num(rec.value)} on "
                         f"{str(peak['time'])[:10]}"
                         + (f", {_grid_words(str(peak['grid']))} grid"
                            if peak.get("grid") and peak.get("grid") != rec.grid else "")
                         + ")" if peak else ""),
                     "expected": num(rec.expected),
                     "z": f"{rec.z:.1f}" if math.isfinite(rec.z) else "-",
                     "measure": measure_words(measure, a.part).rstrip(", "), "status": status,
                     "id": a.id})
    return rows


def _source_words(report: Any) -> str:
    """Who published a report, for the sources list: its outlets and authors, else where it
    came from (a URL), else "source not named" (never a local file path)."""
    reading = report.reading
    who = [*getattr(reading, "outlets", [])[:2], *getattr(reading, "authors", [])[:2]]
    if who:
        return ", ".join(dict.fromkeys(who))
    name = str(report.name)
    if name.startswith(("http://", "https://")):
        return name
    return "source not named in the text"


def _alert_figure(n: int, a: StoredAlert, site: Site, processed: dict[str, ProcessedScene],
                  scenes: dict[str, Scene], by_grid: dict[str, list[Scene]], fig_dir: Path
                  ) -> dict[str, Any]:
    rec = a.alert
    before_id, after_id = rec.before_scene, rec.after_scene
    if before_id is None or after_id is None or before_id not in scenes \
            or after_id not in scenes:
        raise BriefError("its before or after scene is no longer catalogued")
    done_after = processed.get(after_id)
    grid_key = done_after.grid if done_after else ""
    sb, sa = scenes[before_id], scenes[after_id]
    path = path_under(fig_dir, f"fig{n:02d}_{safe_name(a.id)}.png")
    # Drawn by report.pairs: one stretch for both dates, only the change objects of the
    # stored change map that touch the part; the caption is printed in the page.
    drawn_fig = draw_pair(path, site, sb, sa, processed, by_grid.get(grid_key, [sa]),
                          rec.part, objects="stored")
    drawn = drawn_fig.objects
    change_path = drawn_fig.change_map
    missing = None
    if drawn_fig.change == "none" and change_path:
        missing = f"figure {n}: change objects not drawn: {drawn_fig.change_note}"
    lo, hi = drawn_fig.limits
    res_m = drawn_fig.pixel_m
    finding = _finding(rec, drawn, res_m * res_m, _where(site, rec.part))
    label = part_label(site, rec.part)
    caption = (f"Figure {n}. {label}: {finding}, {_day(sb.acquired.isoformat())} to "
               f"{_day(sa.acquired.isoformat())}. {sa.sensor}, {res_m:g} m pixels; "
               f"{_caveat(a)} One linear stretch for both dates (2nd to 98th percentile of "
               "their clear pixels).")
    season = season_caveat(sb.acquired.date(), sa.acquired.date())
    if season:
        caption += " " + season
    if "composite" in rec.measure and drawn_fig.hatched_before:
        caption += (" The alert compares the after image with the composite of the last "
                    "usable dates, not with this before image alone, which is partly not "
                    "observed.")
    shown = composite_words(rgb_bands(sa.band_names))
    if shown:
        caption += f" Shown in {shown}."
    if drawn_fig.hatched_before or drawn_fig.hatched_after:
        caption += " Hatched: not observed (cloud, shadow or no data)."
    if not change_path:
        caption += (" Change objects not drawn: this pair was processed before sitewatch kept "
                    "change maps.")
    elif missing:
        caption += " Change objects not drawn: the stored change map could not be read."
    return {"n": n, "path": path.relative_to(fig_dir.parent).as_posix(), "caption": caption,
            "alert": a, "part": site.part(rec.part) if rec.part != REST
            else Part(REST, "other", None, {"label": label}),
            "before": sb, "after": sa, "finding": finding,
            "objects": drawn.count, "rings": len(drawn.rings), "limits": (lo, hi),
            "credit": _credits(sb, sa), "missing": missing}


def _caveat(a: StoredAlert) -> str:
    """The alert's tier and what should make a reader careful: a low-confidence normal
    range, an analyst's verdict."""
    from sitewatch.report.findings import LOW_CONFIDENCE
    from sitewatch.watch.events import season_graded

    rec = a.alert
    s = f"{a.tier} alert"
    if a.status == "confirmed":
        s += ", confirmed by the analyst" + (f" ({a.reason})" if a.reason else "")
    s += "."
    if rec.confidence in LOW_CONFIDENCE and season_graded(rec.text):
        s += (" Low confidence: the comparison it rests on spans seasons, and the same "
              "season of earlier years does not show this change (or there is none yet): "
              "it may be the season, not the ground.")
    elif rec.confidence in LOW_CONFIDENCE:
        s += (f" Low confidence: the part's normal range rests on {rec.history} earlier "
              f"date{'s' if rec.history != 1 else ''}; this may be a false alarm.")
    return s


def _credits(*scenes: Scene) -> str:
    """The imagery credit lines of ``scenes`` (one per sensor and year, in order)."""
    return "; ".join(dict.fromkeys(credit(s.sensor, s.acquired.year) for s in scenes))


def _finding(rec: Alert, drawn: ChangeObjects, pixel_m2: float, where: str = "at the part"
             ) -> str:
    """The alert's kind in words and the change objects the figure draws (their number and
    the largest's area, counted from the drawing, not from the alert record)."""
    from sitewatch.watch.events import KIND_WORDS

    words = KIND_WORDS.get(rec.kind, "unusual change")
    objs = drawn.count
    if objs:
        words += f", {objs} change object{'s' if objs != 1 else ''} {where} " \
                 f"(largest {max(drawn.pixels) * pixel_m2:,.0f} m²)"
    return words


def _where(site: Site, part: str) -> str:
    """Where a figure's change objects are, in words: at a part, in the whole site, or
    outside the named parts."""
    from sitewatch.watch.zonal import REST

    if part != REST:
        return "at the part"
    return "outside the named parts" if site.placed_parts() else "in the site"


def _overview(site: Site, alerts: list[StoredAlert], processed: dict[str, ProcessedScene],
              scenes: dict[str, Scene], by_grid: dict[str, list[Scene]], fig_dir: Path,
              warnings: list[str]) -> dict[str, Any] | None:
    ok = [(sid, r) for sid, r in processed.items() if r.usable
          and sid in scenes]  # processed is already limited to the period
    if not ok:
        return None
    finest = min(by_grid, key=lambda k: min((s.resolution or 1e9) for s in by_grid[k]))
    cands = [(sid, r) for sid, r in ok if r.grid == finest] or ok
    sid, row = max(cands, key=lambda kv: (kv[1].site_observed
                                          if math.isfinite(kv[1].site_observed) else 0.0,
                                          kv[1].acquired))
    sc = scenes[sid]
    try:
        grid = processed_grid(row, site, by_grid.get(row.grid, [sc]))
        pick = rgb_bands(sc.band_names)
        img = load_scene(sc, grid, pick, shift=applied_shift(row))
    except SitewatchError as exc:
        warnings.append(f"overview not drawn: {exc}")
        return None
    raw = true_colour(img)
    geoms = _part_geoms(site, grid)
    win = _overview_window(geoms, grid)
    raw = raw[:, win[0], win[1]]
    rgb, _, _ = stretch(raw)
    from affine import Affine

    t = grid.transform @ Affine.translation(win[1].start, win[0].start)  # the crop's origin
    parts = [(_short_label(site, name), _rings(g, t)) for name, g in geoms.items()]
    outline = None
    if not parts:  # no part placed: the site's boundary is the one outline, unnamed
        from sitewatch.imagery.geo import to_crs

        boundary = to_crs(site.boundary, "EPSG:4326", grid.crs)
        if not boundary.is_empty:
            parts, outline = [("", _rings(boundary, t))], "site boundary (dashed)"
    markers = []
    inv = ~t
    for n, a in enumerate(alerts, start=1):
        g = geoms.get(a.part)
        if g is not None:
            c = g.representative_point()
            col, rw = inv @ (c.x, c.y)
            markers.append((n, col - 0.5, rw - 0.5))
    caption = (f"Site overview: {site.name}, {sc.sensor} image of {_day(sc.acquired.isoformat())}"
               f", {grid.resolution:g} m pixels; "
               + ("parts outlined and named" if outline is None else "no part is placed: the "
                  "whole site, outlined, is watched as one")
               + ("; numbered markers are the figures of this brief." if markers else "."))
    shown = composite_words(pick)
    if shown:
        caption += f" Shown in {shown}."
    if unobserved(raw).any():
        caption += " Hatched: not observed (cloud, shadow or no data)."
    path = overview_figure(path_under(fig_dir, "overview.png"),
                           Panel(rgb, grid.resolution, html_text(site.name), unobserved(raw)),
                           parts, markers, outline_label=outline)
    return {"path": path.relative_to(fig_dir.parent).as_posix(), "caption": caption,
            "credit": _credits(sc)}


def _overview_window(geoms: dict[str, Any], grid: SiteGrid) -> tuple[slice, slice]:
    """The overview's crop: the placed parts with a margin of a third of their extent (and at
    least :data:`CROP_MIN_PX`), so that parts and labels are large enough to read; the whole
    grid when the site has no parts."""
    rows, cols = grid.shape
    if not geoms:
        return slice(0, rows), slice(0, cols)
    x0, y0, x1, y1 = shapely.union_all(list(geoms.values())).bounds
    inv = ~grid.transform
    (c0, r0), (c1, r1) = inv @ (x0, y1), inv @ (x1, y0)
    side = max(c1 - c0, r1 - r0)
    pad = max(CROP_MIN_PX, side / 3)
    # A square crop around the parts' centre (the figure is square), inside the grid.
    half = side / 2 + pad
    cc, rc = (c0 + c1) / 2, (r0 + r1) / 2
    return (slice(max(0, int(rc - half)), min(rows, math.ceil(rc + half))),
            slice(max(0, int(cc - half)), min(cols, math.ceil(cc + half))))


def _short_label(site: Site, name: str) -> str:
    """A part's label short enough for a map: up to its first comma or bracket, else its
    name in words when that is still long."""
    label = part_label(site, name)
    short = re.split(r",| \(", label, maxsplit=1)[0].strip()
    if len(short) > 28:
        short = name.replace("_", " ")
        short = short[0].upper() + short[1:]
    return short


#: (part, grid) -> {scene id: seen clear}: the brief's one definition of "observed".
Seen = dict[tuple[str, str], dict[str, bool]]


def _seen(store: Store, site_id: str, ph: str | None, period: tuple[str, str]) -> Seen:
    """Which dates of the period saw each part clear, per grid: the observation against the
    previous usable image (at least half the part's pixels seen on both images,
    :data:`~sitewatch.watch.zonal.MIN_OBSERVED`).  The per-part table and every timeline
    caption count from this, so a date is counted the same way everywhere in the brief."""
    out: Seen = {}
    if ph is None:
        return out
    lo_s, hi_s = period
    # One pass, not one per part: sites may have tens of thousands of parts.
    for o in store.observations(site_id, ph, reference="previous"):
        if lo_s <= _day(o.acquired) <= hi_s:
            out.setdefault((o.part, o.grid), {})[o.scene_id] = bool(o.observed)
    return out


def _timelines(site: Site, alerts: list[StoredAlert], store: Store, ph: str | None,
               period: tuple[str, str], fig_dir: Path, seen: Seen,
               processed: dict[str, ProcessedScene]) -> list[dict[str, Any]]:
    """One timeline per alerted part, drawn from the series its alerts were raised on
    (:func:`~sitewatch.watch.timeline.part_series`: the alerts' own measure and grid, the
    normal band of the dates with no alert), so every alert sits at the value it names."""
    from sitewatch.watch.timeline import part_series
    from sitewatch.watch.zonal import REST

    out: list[dict[str, Any]] = []
    if ph is None:
        return out
    names = {p.name for p in site.parts}
    mine = {a.id for a in alerts}
    for part in dict.fromkeys(a.part for a in alerts):
        if part != REST and part not in names:
            continue
        candidates = part_series(store, site.id, ph, part, processed=processed)
        if not candidates:
            continue
        # One timeline per grid that carries this brief's alerts of the part: an alert is
        # drawn on the grid it was raised on, never on another grid's values.
        for s in [c for c in candidates if any(m.id in mine for m in c.alerts)]:
            made = _timeline(site, part, s, alerts, mine, period, fig_dir, seen, len(out) + 1)
            if made:
                out.append(made)
    return out


def _grid_words(key: str) -> str:
    """A grid key in words: "optical-3m" -> "3 m optical", "sar-10m-rel047-asc" -> "10 m
    radar (relative orbit 47, ascending)"."""
    kind, _, rest = key.partition("-")
    res, _, orbit = rest.partition("-")
    words = f"{res.replace('m', ' m')} {'radar' if kind == 'sar' else kind}".strip()
    m = re.match(r"rel0*(\d+)-(asc|desc)", orbit)
    if m:
        words += f", orbit {m.group(1)} " \
                 f"{'ascending' if m.group(2) == 'asc' else 'descending'}"
    return words


def _timeline(site: Site, part: str, s: Any, alerts: list[StoredAlert], mine: set[str],
              period: tuple[str, str], fig_dir: Path, seen: Seen, n: int
              ) -> dict[str, Any] | None:
    """One part's timeline on one grid (``s``: its :class:`~sitewatch.watch.timeline.
    PartSeries`), with this brief's alerts of that grid at their own points."""
    from sitewatch.watch.alerts import measure_words

    lo_s, hi_s = period
    pts = [p for p in s.points if lo_s <= _day(p.time) <= hi_s]
    if not pts:
        return None
    times = [p.time for p in pts]
    vals = [p.value for p in pts]
    clear = seen.get((part, s.grid), {})
    unobs = [p.time for p in pts if not clear.get(p.scene_id, p.observed)]
    n_clear = sum(clear.get(p.scene_id, p.observed) for p in pts)
    ends = {a.id: _event_end(a) for a in alerts if a.part == part}
    marks = [(m.time, m.value if math.isfinite(m.value) else None,
              m.measure not in ("", s.measure), ends.get(m.id)) for m in s.alerts
             if m.id in mine and lo_s <= _day(m.time) <= hi_s]
    other = sorted({m.measure for m in s.alerts if m.id in mine
                    and m.measure not in ("", s.measure)})
    label = part_label(site, part)
    caption = (f"{label}: {s.measure_label}, on the {_grid_words(s.grid)} grid, "
               f"{_day(pts[0].time)} to {_day(pts[-1].time)} ({n_clear} of {len(pts)} dates "
               "seen clear); the shaded band is the normal range of the dates with no alert, "
               "triangles are the alerts at the values they were raised on.")
    if other:
        caption += (" Diamonds: alerts raised on another measure ("
                    + "; ".join(measure_words(m, part).rstrip(", ") for m in other)
                    + "), at their own values.")
    if any(e is not None for e in ends.values()):
        caption += " A shaded span runs from an alert to the last date of its event."
    safe = safe_name(f"{part}_{s.grid}", "part", 48)
    path = timeline_figure(path_under(fig_dir, f"timeline_{n:02d}_{safe}.png"),
                           times, vals, unobs, marks, s.band,
                           html_text(f"Timeline: {label} ({_grid_words(s.grid)})"), None,
                           "radar change share" if "omnibus" in s.measure
                           else "changed share")
    return {"part": part, "path": path.relative_to(fig_dir.parent).as_posix(),
            "caption": caption}


def _event_end(a: StoredAlert) -> datetime | None:
    """The last date of an alert's event (None: one date, or not recorded)."""
    from sitewatch.times import parse_time

    end = a.alert.end
    return parse_time(end) if end and end[:10] > _day(a.time) else None


def _part_table(site: Site, alerts: list[StoredAlert], store: Store, seen: Seen,
                figure_of: dict[str, int]) -> list[dict[str, Any]]:
    from sitewatch.watch.zonal import REST

    dates: dict[str, int] = {}
    observed: dict[str, int] = {}
    for (part, _grid), by_scene in seen.items():
        dates[part] = dates.get(part, 0) + len(by_scene)
        observed[part] = observed.get(part, 0) + sum(by_scene.values())
    by_part: dict[str, list[str]] = {}
    for a in sorted(alerts, key=lambda a: a.time):
        n = figure_of.get(a.id)
        by_part.setdefault(a.part, []).append(
            f"{_day(a.time)} {a.tier}" + (f" (Figure {n})" if n else ""))
    # The observations are those of each part's current geometry version (the one every
    # number and alert of this brief rests on); the table names it.
    versions = store.current_part_versions(site.id)
    rows = [{"label": p.label, "kind": _words(p.kind), "placed": p.placed,
             "version": versions.get(p.name) if p.placed else None,
             "dates": dates.get(p.name, 0), "observed": observed.get(p.name, 0),
             "alerts": by_part.get(p.name, [])} for p in site.parts]
    if dates.get(REST) or by_part.get(REST):  # the whole site, or what lies outside the parts
        rest = "outside the named parts" if site.placed_parts() else "whole site"
        rows.append({"label": part_label(site, REST), "kind": rest, "placed": True,
                     "version": None,
                     "dates": dates.get(REST, 0), "observed": observed.get(REST, 0),
                     "alerts": by_part.get(REST, [])})
    return rows


def _feature(geom: Any, props: dict[str, Any]) -> dict[str, Any]:
    g = None
    if geom is not None:
        g = shapely.geometry.mapping(shapely.orient_polygons(geom))  # RFC 7946 winding
    return {"type": "Feature", "geometry": g, "properties": props}


def _exports(site: Site, alerts: list[StoredAlert], assessment: SiteAssessment,
             processed: dict[str, ProcessedScene], figured: list[StoredAlert], exp_dir: Path,
             warnings: list[str]) -> list[Path]:
    parts = {p.name: p.geometry for p in site.parts}
    feats = [_feature(parts.get(a.part),
                      {"id": a.id, "site": site.id, "part": a.part, "time": a.alert.time,
                       "tier": a.tier, "kind": a.kind, "status": a.status,
                       "text": a.text}) for a in alerts]
    written = []
    p = path_under(exp_dir, "alerts.geojson")
    atomic_write(p, json.dumps({"type": "FeatureCollection", "features": feats}, indent=1))
    written.append(p)
    ev_feats = []
    for ev in assessment.evidence:
        geom = parts.get(ev.part or "") or site.boundary
        e = ev.to_dict()
        ev_feats.append(_feature(geom, {k: e[k] for k in (
            "id", "kind", "indicator", "event", "part", "time", "source", "origin",
            "certainty", "negated", "text")}))
    p = path_under(exp_dir, "evidence.geojson")
    atomic_write(p, json.dumps({"type": "FeatureCollection", "features": ev_feats}, indent=1,
                                default=str))
    written.append(p)
    from sitewatch.report.stac import change_item, write_item

    per_scene: dict[str, list[str]] = {}  # one export per pair, naming all its alerts
    for a in figured:
        sid = a.alert.after_scene
        if sid:
            per_scene.setdefault(sid, []).append(a.id)
    for sid, alert_ids in per_scene.items():
        row = processed.get(sid)
        if row is None or row.previous is None:
            continue  # processed outside the period, or never compared: no products
        copied: dict[str, str | Path] = {}
        for kind, src in row.previous.products.items() if row.previous.products else ():
            if not Path(src).is_file():
                warnings.append(f"export of {sid} {kind}: the stored file {src} is missing")
                continue
            dst = path_under(exp_dir, f"{safe_name(sid)}_{safe_name(kind)}.tif")
            shutil.copyfile(src, dst)
            written.append(dst)
            copied[kind] = dst
        if copied:
            try:
                item = change_item(
                    f"{site.id}-{sid}-change", copied, iso(row.acquired),
                    {"sitewatch:site": site.id,
                     "sitewatch:before": row.previous_id,
                     "sitewatch:after": sid, "sitewatch:alerts": alert_ids,
                     "sitewatch:method": row.method,
                     "sitewatch:threshold": _finite(row.previous.threshold)})
            except Exception as exc:  # a damaged product: the rest of the brief stands
                warnings.append(f"STAC item for {sid} not written: {exc}")
                continue
            written.append(write_item(item, path_under(exp_dir,
                                                       f"{safe_name(sid)}_change.stac.json")))
    return written


__all__ = ["MANIFEST", "MAX_FIGURES", "MAX_PART_FIGURES", "Brief", "html_text", "write_brief"]
