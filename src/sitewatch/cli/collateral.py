"""``sitewatch collateral``, ``note``, ``assess`` and ``indicators``: from reports and alerts to
a judgement."""

from __future__ import annotations

import logging
import math
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sitewatch.cli.common import (
    Ctx,
    deprecated_site_option,
    echo_json,
    echo_text,
    err,
    esc,
    out,
    pass_ctx,
    progress_bar,
    site_first,
)
from sitewatch.cli.tables import Col, print_table, wide_option
from sitewatch.errors import SiteError, SitewatchError
from sitewatch.times import iso_day

if TYPE_CHECKING:
    from sitewatch.sites.site import Site
    from sitewatch.store import Store
    from sitewatch.warning.collateral import Reading
    from sitewatch.warning.records import Assessment

log = logging.getLogger(__name__)

_MAX_MB = click.option("--max-mb", type=click.FloatRange(0.001, 10_000), default=10.0,
                       show_default=True, help="Refuse reports larger than this (MB).")
_MAX_SECONDS = click.option(
    "--max-seconds", type=click.FloatRange(0.1, 86_400), default=60.0, show_default=True,
    help="Stop reading a report after this long (a warning says where; the claims read so "
         "far are kept).")
_PUBLISHED = click.option("--published", help="Publication date YYYY-MM-DD (default: the "
                          "date the report gives: its metadata, a date line, a dateline, a "
                          "byline or its URL; relative dates need one).")


def _max_bytes(max_mb: float) -> int:
    if not math.isfinite(max_mb):
        raise click.BadParameter(f"{max_mb} is not a number of megabytes", param_hint="--max-mb")
    return int(max_mb * 1e6)


def _gazetteer(ctx: Ctx) -> Path | None:
    """The user's own gazetteer additions, ``HOME/gazetteer.toml``, when there is one."""
    p = Path(ctx.home) / "gazetteer.toml"
    return p if p.is_file() else None


def _site(store: Store, site_id: str) -> Site:
    site = store.use_site(site_id)
    if site is None:
        raise SiteError(f"no site {site_id!r} in the catalogue (see `sitewatch site list`)")
    return site


def _indicator_files(ctx: Ctx, given: tuple[str, ...]) -> list[str]:
    from sitewatch.warning.indicators import user_files

    return [str(p) for p in user_files(ctx.home)] + list(given)


#: The claims of a report: the sentence is the free text.
CLAIM_COLUMNS = (Col("activity"), Col("certainty", 1), Col("site", 3), Col("part", 4),
                 Col("when", 2, text=True, min_width=10), Col("source", 5, text=True),
                 Col("sentence", 6, text=True, one_line=False, min_width=24))


def _print_claims(reading: Reading, wide: bool = False) -> None:
    rows = []
    for c in reading.claims:
        when = (c.time or {}).get("text") or ""
        if c.time and c.time.get("start"):
            when += f" ({c.time['start']}" + (f"..{c.time['end']}" if c.time["end"] !=
                                               c.time["start"] else "") + ")"
        act = ("NOT " if c.negated else "") + c.activity
        src = (c.source or "author") + (f" via {c.via}" if c.via else "")
        rows.append((act, c.certainty, c.site or "-", c.part or "-", when, src,
                     c.sentence if wide else c.sentence[:160]))
    print_table(CLAIM_COLUMNS, rows, wide=wide,
                title=f"claims in {esc(reading.name)} ({len(reading.claims)})")


def _print_assessment(a: Assessment, stated: dict[str, str] | None = None) -> None:
    from sitewatch.warning.records import EVENTS

    for event in EVENTS:
        x = a.event(event)
        head = f"{event.replace('_', ' ')}: [bold]{x.level}[/bold]"
        if stated:
            head += f" (the text itself says: {esc(stated[event])})"
        out.print(head)
        out.print("  " + esc(x.summary))
        for r in x.reasons[:8]:
            out.print("   + " + esc(r.text))
        for r in x.against[:5]:
            out.print("   - " + esc(r.text))


@click.group()
def collateral() -> None:
    """Read news articles and analyst reports (text, Markdown, HTML) into claims."""


@collateral.command("read")
@click.argument("file", type=click.Path(dir_okay=False))
@_PUBLISHED
@_MAX_MB
@_MAX_SECONDS
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see "
              "docs/collateral.md).")
@wide_option
@pass_ctx
def read_cmd(ctx: Ctx, file: str, published: str | None, max_mb: float, max_seconds: float,
             as_json: bool, wide: bool) -> None:
    """Extract the claims of FILE and assess them alone (nothing is stored)."""
    from sitewatch.warning.assess import assess_reading
    from sitewatch.warning.collateral import read_file

    reading = read_file(file, published=published, max_bytes=_max_bytes(max_mb),
                        gazetteer_file=_gazetteer(ctx), max_seconds=max_seconds)
    assessment = assess_reading(reading)
    by_site = {s: assess_reading(reading, site=s) for s in reading.sites} \
        if len(reading.sites) > 1 else {}
    if as_json:
        echo_json({**reading.to_dict(), "assessment": assessment.to_dict(),
                   "assessment_by_site": {s: a.to_dict() for s, a in by_site.items()}})
        return
    for w in reading.warnings:
        err.print(f"warning: {esc(w)}")
    out.print(esc(f"{reading.title}  [{reading.format}, published "
                  f"{reading.published or 'unknown (undated)'}, {reading.words} words]"))
    if reading.outlets or reading.authors:
        out.print(esc("by " + ", ".join(reading.authors or ["?"])
                      + (f" ({', '.join(reading.outlets)})" if reading.outlets else "")))
    out.print("sites: " + (esc(", ".join(reading.sites)) or "none known"))
    if reading.claims:
        _print_claims(reading, wide)
    else:
        out.print("no claims found")
    if reading.background:
        out.print(f"({len(reading.background)} background claims about the past left out)")
    _print_assessment(assessment, reading.stated)
    for s, a in by_site.items():
        out.print(f"{esc(s)}: launch {a.launch.level} ({a.launch.likelihood:.0%}), "
                  f"engine test {a.engine_test.level}")


@collateral.command("add")
@click.argument("site_id", metavar="SITE", required=False)
@click.argument("files", nargs=-1, metavar="FILE...", type=click.Path(dir_okay=False))
@deprecated_site_option
@_PUBLISHED
@click.option("--url", help="Where the report came from (its outlet, and its date when the "
              "URL has one, are taken from it).")
@_MAX_MB
@_MAX_SECONDS
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def add_cmd(ctx: Ctx, site_id: str | None, files: tuple[str, ...], site_opt: str | None,
            published: str | None, url: str | None, max_mb: float, max_seconds: float,
            as_json: bool) -> None:
    """Store reports as evidence about SITE: `sitewatch collateral add SITE FILE...`.

    Each file is read and stored on its own: a bad file is reported and the others are
    still added.  A report that gives no publication date is refused unless --published
    gives one: evidence of unknown age is not news of today.  (The old `--site SITE` still
    works, with a warning; with it, every argument is a file.)"""
    from sitewatch.warning.record import add_report

    site_id, files = site_first(site_id, site_opt, files, "files", "FILE...")

    results: list[dict[str, object]] = []
    failed = 0
    with ctx.store() as store, progress_bar(not as_json and len(files) > 1) as tick:
        site = _site(store, site_id)
        for n, f in enumerate(files):
            tick("read reports", n, len(files))
            try:
                added = add_report(store, site, f, published=published,
                                   max_bytes=_max_bytes(max_mb),
                                   gazetteer_file=_gazetteer(ctx), max_seconds=max_seconds,
                                   url=url, require_date=True)
            except Exception as e:  # one bad file must not stop the others
                if not isinstance(e, SitewatchError):
                    log.debug("reading %s failed", f, exc_info=True)
                    e = SitewatchError(f"{f}: cannot be read ({type(e).__name__}: {e})")
                elif f not in str(e):
                    e = SitewatchError(f"{f}: {e}")
                failed += 1
                err.print(f"error: {esc(e)}")
                results.append({"file": f, "error": str(e)})
                continue
            results.append({"file": f, "report": added.report_id, "new": added.new,
                            "published": added.reading.published,
                            "published_from": added.published_from,
                            "outlets": added.reading.outlets,
                            "authors": added.reading.authors,
                            "claims": len(added.reading.claims),
                            "evidence": len(added.evidence), "skipped": added.skipped,
                            "stated": added.reading.stated,
                            "warnings": added.reading.warnings})
            if not as_json:
                by = f", {esc(added.reading.outlets[0])}" if added.reading.outlets else ""
                out.print(f"{'added' if added.new else 'updated'} {esc(f)} as report "
                          f"{added.report_id} (published {added.reading.published}: "
                          f"{esc(added.published_from or '?')}{by}): "
                          f"{len(added.reading.claims)} claims, "
                          f"{len(added.evidence)} evidence items"
                          + (f", {len(added.skipped)} claims about other sites left out"
                             if added.skipped else ""))
                for w in added.reading.warnings:
                    err.print(f"  warning: {esc(w)}")
        tick("read reports", len(files), len(files))
    if as_json:
        echo_json(results)
    if failed:
        raise SystemExit(1)


@collateral.command("list")
@click.argument("site_id")
@click.option("--json", "as_json", is_flag=True)
@wide_option
@pass_ctx
def list_cmd(ctx: Ctx, site_id: str, as_json: bool, wide: bool) -> None:
    """The reports and notes stored for a site."""
    with ctx.store() as store:
        _site(store, site_id)
        reports = store.reports(site_id)
        notes = store.notes(site_id)
    if as_json:
        echo_json({"reports": [{k: v for k, v in r.to_dict().items() if k != "reading"}
                               | {"claims": len(r.reading.claims), "stated": r.reading.stated}
                               for r in reports],
                   "notes": [n.to_dict() for n in notes]})
        return
    print_table(REPORT_COLUMNS, [
        (r.id, iso_day(r.published) if r.published else "?", str(len(r.reading.claims)),
         r.reading.stated["launch"], r.reading.stated["engine_test"],
         r.title if wide else r.title[:80]) for r in reports],
        title=f"reports on {esc(site_id)} ({len(reports)})", wide=wide)
    for n in notes:
        out.print(f"note {n.id} {iso_day(n.date)} {esc(n.part or '')}: {esc(n.text[:120])}")


#: `collateral list`: the title is the free text.
REPORT_COLUMNS = (Col("id"), Col("published"), Col("claims", 3, justify="right"),
                  Col("stated launch", 1), Col("stated engine test", 2),
                  Col("title", 4, text=True, min_width=16))


@click.command()
@click.argument("site_id")
@click.argument("text")
@click.option("--date", "when", default=None, help="The day it is about, YYYY-MM-DD "
              "[default: today].")
@click.option("--part", help="The part it is about (a part name of the site).")
@click.option("--activity", help="What it shows (e.g. shelter_moved); read from the text when "
              "not given.")
@click.option("--author", help="Who says so.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def note(ctx: Ctx, site_id: str, text: str, when: str | None, part: str | None,
         activity: str | None, author: str | None, as_json: bool) -> None:
    """Add an analyst note to a site: it becomes evidence like a report."""
    from sitewatch.warning.record import add_note

    when = when or date.today().isoformat()
    with ctx.store() as store:
        site = _site(store, site_id)
        nid, ev = add_note(store, site, text, when=when, part=part, activity=activity,
                           author=author)
    if as_json:
        echo_json({"note": nid, "evidence": [e.to_dict() for e in ev]})
        return
    if ev:
        inds = ", ".join(dict.fromkeys(e.indicator for e in ev))
        out.print(f"note {nid} stored: evidence for {esc(inds)}")
    else:
        out.print(f"note {nid} stored; it names no activity sitewatch knows, so it is kept "
                  "as context only (give --activity to make it evidence)")


@click.command()
@click.argument("site_id")
@click.option("--at", "at", help="Assess as of this date, YYYY-MM-DD [default: today].")
@click.option("--indicators", "indicator_files", multiple=True,
              type=click.Path(dir_okay=False, exists=True),
              help="An extra indicator file (TOML); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see "
              "docs/collateral.md).")
@pass_ctx
def assess(ctx: Ctx, site_id: str, at: str | None, indicator_files: tuple[str, ...],
           as_json: bool) -> None:
    """How likely, and how soon, a launch or an engine test is at a site, and why."""
    from sitewatch.errors import CollateralError
    from sitewatch.times import parse_date
    from sitewatch.warning.record import assess_site
    from sitewatch.warning.records import EVENTS

    when = parse_date(at, "--at", CollateralError)
    with ctx.store() as store:
        site = _site(store, site_id)
        a = assess_site(store, site, at=when,
                        indicator_files=_indicator_files(ctx, indicator_files))
    if as_json:
        echo_json(a.to_dict())
        return
    img = a.imagery
    last = iso_day(img.last_image) if img.last_image else "-"
    out.print(f"{esc(site_id)} as of {a.at}: {a.evidence_items} evidence items, "
              f"{len(a.reports)} reports; imagery: best "
              f"{img.best_resolution_m or '-'} m, last {last}")
    _print_assessment(a)
    if a.undated_reports:
        out.print(f"ignored {len(a.undated_reports)} undated report"
                  f"{'s' if len(a.undated_reports) != 1 else ''} (no publication date; add "
                  "again with --published YYYY-MM-DD to count one):")
        for r in a.undated_reports:
            out.print(f"   ! {r.id} {esc(r.title[:80])}")
    for event in EVENTS:
        for u in a.event(event).unobserved:
            out.print(f"   ? {event}: {esc(u.name)}: {esc(u.why)}")
    for s in img.seen:  # coverage: which sensor saw which part, when last
        out.print(f"   seen: {esc(s.part)} by {'SAR' if s.sensor == 'sar' else 'optical'}, "
                  f"last {iso_day(s.last)} ({s.dates} date{'s' if s.dates != 1 else ''}); "
                  f"indicators: {esc(', '.join(s.indicators)) or '-'}")


@click.command()
@click.option("--site-type", default="launch_site", show_default=True)
@click.option("--indicators", "indicator_files", multiple=True,
              type=click.Path(dir_okay=False, exists=True), help="Extra indicator file.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--markdown", is_flag=True, help="The indicators as a Markdown page with the "
              "basis of every strength (docs/indicators.md is this).")
@wide_option
@pass_ctx
def indicators(ctx: Ctx, site_type: str, indicator_files: tuple[str, ...],
               as_json: bool, markdown: bool, wide: bool) -> None:
    """The indicators: what precedes a launch or a test, and how strongly."""
    from sitewatch.warning.indicators import indicators_markdown, load_indicators

    cat = load_indicators(site_type, _indicator_files(ctx, indicator_files))
    if markdown:
        echo_text(indicators_markdown(cat), nl=False)
        return
    if as_json:
        echo_json({"site_type": cat.site_type,
                   "events": {k: vars(v) for k, v in cat.events.items()},
                   "indicators": [i.to_dict() for i in cat.indicators]})
        return
    rows = []
    for i in cat.indicators:
        lr = " / ".join(f"{i.lr[e][1]:g}" if e in i.lr else "-"
                        for e in ("launch", "engine_test"))
        rows.append((i.id, i.event, i.phase, lr, f"{i.half_life_days:g}",
                     "text" if i.resolution_m == 0 else f"<= {i.resolution_m:g} m",
                     ", ".join(i.part_kinds) or "any"))
    print_table(INDICATOR_COLUMNS, rows, title=f"indicators for {esc(site_type)}", wide=wide)


#: `indicators`: the part kinds are the free text.
INDICATOR_COLUMNS = (Col("id"), Col("event", 2), Col("phase", 3),
                     Col("LR (launch / engine test)", 1, justify="right"),
                     Col("half-life d", 4, justify="right"), Col("needs", 5),
                     Col("parts", 6, text=True, one_line=False, min_width=16))


__all__ = ["assess", "collateral", "indicators", "note"]


@click.command()
@click.argument("site_id")
@click.option("--from", "start", help="First day of the period, YYYY-MM-DD.")
@click.option("--to", "end", help="Last day of the period (and the assessment date), "
              "YYYY-MM-DD [default: today].")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for brief.html, figures/ and exports/ [default: HOME/briefs/SITE].")
@click.option("--pdf", is_flag=True, help="Also write brief.pdf (needs the pdf extra and "
              "Pango; see README).")
@pass_ctx
def brief(ctx: Ctx, site_id: str, start: str | None, end: str | None, out_dir: str | None,
          pdf: bool) -> None:
    """Write the analyst brief of a site: findings, assessment, annotated figures, sources,
    provenance, and GeoJSON/COG exports, from stored results."""
    from sitewatch.errors import CollateralError
    from sitewatch.report.brief import write_brief
    from sitewatch.times import parse_date

    target = Path(out_dir) if out_dir else Path(ctx.home) / "briefs" / site_id
    with ctx.store() as store, progress_bar() as tick:
        b = write_brief(store, site_id, target, start=parse_date(start, "--from", CollateralError),
                        end=parse_date(end, "--to", CollateralError), pdf=pdf, progress=tick)
    for w in b.warnings:
        err.print(f"warning: {esc(w)}")
    out.print(f"brief: {esc(b.html)} ({len(b.figures)} figures, {len(b.exports)} exports)")
    if b.pdf:
        out.print(f"pdf: {esc(b.pdf)}")
