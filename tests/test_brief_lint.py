"""The brief read as an analyst would publish it: a "lint" over two rendered briefs, the
demo's (a launch site with parts) and a site made by ``ingest`` with no parts (the whole site
is the part).

Checked on each:
- every figure file exists and is referenced once, and every file in ``figures/`` is used;
- every caption's count of change objects equals the objects the figure drew (taken from
  the drawing call's own arguments, not from the page);
- no internal ids, hashes, part ids, odds arithmetic or Python reprs in the visible text
  before the appendices (ids and odds belong there);
- every alert in the timelines is drawn at a value the alert names (its own measure and
  date), never at another date's value or hollow;
- the page is strict HTML and the figures are non-blank in a real Chromium.
"""

from __future__ import annotations

import html
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sitewatch.store import Store

#: What must not appear in the brief's body (before the appendices): internal ids and
#: hashes, Python reprs, odds arithmetic, the pipeline's own name for the site outside the
#: parts, and placeholder words.
FORBIDDEN = {
    "a hash or alert id": re.compile(r"\b[0-9a-f]{16}\b"),
    "a Python dict or list repr": re.compile(r"\{'|': |\[\]|\bNone\b|\bnan\b|datetime\."),
    "odds arithmetic": re.compile(r"on the odds|likelihood ratio|Counts x\d"),
    "the pipeline's name for the rest": re.compile(re.escape("(rest of site)")),
    "an object repr": re.compile(r"<sitewatch\.|object at 0x"),
    "a placeholder period": re.compile(r"period start|start to"),
}


@dataclass
class Drawn:
    """What the figure functions were called with, by output file name."""

    pairs: dict[str, int] = field(default_factory=dict)  # file -> change objects drawn
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Rendered:
    out: Path
    page: str
    drawn: Drawn
    site: Any
    alerts: list[Any]


def _spy(monkeypatch: pytest.MonkeyPatch) -> Drawn:
    """Record every pair and timeline figure drawn, wherever the brief calls them from."""
    import sitewatch.report.brief as brief_mod
    import sitewatch.report.figures as figures_mod

    drawn = Drawn()
    real_pair, real_tl = figures_mod.pair_figure, figures_mod.timeline_figure

    def pair(path, before, after, part_rings, change_rings, *args, **kw):
        drawn.pairs[Path(path).name] = len(change_rings)
        return real_pair(path, before, after, part_rings, change_rings, *args, **kw)

    def timeline(path, times, values, unobserved, alerts, *args, **kw):
        drawn.timelines[Path(path).name] = {"times": list(times), "values": list(values),
                                            "alerts": list(alerts)}
        return real_tl(path, times, values, unobserved, alerts, *args, **kw)

    for mod_name in ("sitewatch.report.brief", "sitewatch.report.pairs"):
        mod = brief_mod if mod_name.endswith("brief") else _maybe(mod_name)
        if mod is None:
            continue
        if hasattr(mod, "pair_figure"):
            monkeypatch.setattr(mod, "pair_figure", pair)
        if hasattr(mod, "timeline_figure"):
            monkeypatch.setattr(mod, "timeline_figure", timeline)
    return drawn


def _maybe(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _render(store: Store, site_id: str, out: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Rendered:
    from sitewatch.report.brief import write_brief

    drawn = _spy(monkeypatch)
    b = write_brief(store, site_id, out)
    run = store.last_run(site_id, finished=True)
    alerts = store.alerts(site_id, params_hash=run.params_hash) if run else []
    return Rendered(out, b.html.read_text(encoding="utf-8"), drawn, store.use_site(site_id),
                    alerts)


@pytest.fixture(scope="module")
def demo_brief(demo_run, tmp_path_factory) -> Iterator[Rendered]:
    home = tmp_path_factory.mktemp("lint") / "home"
    shutil.copytree(demo_run.home, home)
    with pytest.MonkeyPatch.context() as mp, Store.open_home(home) as store:
        yield _render(store, demo_run.result.site.id, home.parent / "brief", mp)


@pytest.fixture(scope="module")
def bare_brief(tmp_path_factory) -> Iterator[Rendered]:
    """A site made by ``ingest`` alone: no parts, type ``facility``; a cleared plot (a tenth
    of the site) from date 6 and one cloudy date."""
    from conftest import rng_image, write_tif
    from sitewatch.imagery.ingest import ingest
    from sitewatch.watch.pipeline import run_site
    from test_pipeline import PARAMS, SIZE, TRANSFORM

    tmp = tmp_path_factory.mktemp("bare")
    for i in range(10):
        rng = np.random.default_rng(200 + i)
        img = rng_image(7, size=SIZE).astype(np.float32) + rng.normal(0, 8, (4, SIZE, SIZE))
        if i >= 6:
            img[:, 30:60, 40:70] *= 0.4  # a dark new surface (asphalt)
        if i == 3:
            img[:, :70, :] = 0  # mostly cloud / no data
        write_tif(tmp / "imgs" / f"bare_{i:02d}.tif",
                  np.clip(img, 0, 65535).astype(np.uint16), transform=TRANSFORM, nodata=0,
                  tags={"ACQUISITION_TIME": f"2024-{1 + i // 2:02d}-{1 + 14 * (i % 2):02d}"
                                            "T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir"])
    with pytest.MonkeyPatch.context() as mp, \
            Store.open_path(tmp / "db" / "sitewatch.db") as store:
        ingest(store, [tmp / "imgs"], "bare")
        run_site(store, "bare", PARAMS)
        yield _render(store, "bare", tmp / "brief", mp)


BRIEFS = ["demo_brief", "bare_brief"]


def _body(page: str) -> str:
    """The visible text before the appendices (ids and odds are allowed there)."""
    page = re.sub(r"<style.*?</style>|<title>.*?</title>", "", page, flags=re.S)
    head = page.split("<h2>Appendix", 1)[0]
    head = re.sub(r"<code>.*?</code>", "", head)  # command lines and the site id
    return html.unescape(re.sub(r"<[^>]+>", " ", head))


@pytest.fixture(params=BRIEFS)
def brief(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)


def test_the_briefs_have_alerts_to_show(demo_brief, bare_brief):
    """Both fixtures exercise figures and timelines (a lint over nothing proves nothing)."""
    for b in (demo_brief, bare_brief):
        assert b.alerts, b.out
        assert b.drawn.pairs and b.drawn.timelines, b.out


def test_every_figure_exists_and_is_referenced_once(brief: Rendered):
    srcs = re.findall(r'<img src="([^"]+)"', brief.page)
    assert len(srcs) == len(set(srcs)), "a figure referenced twice"
    for s in srcs:
        assert (brief.out / s).is_file(), s
    on_disk = {p.relative_to(brief.out).as_posix() for p in (brief.out / "figures").iterdir()}
    assert on_disk == set(srcs), "figures written but not in the page, or the reverse"
    # Each figure's caption is printed once (in the page, not also in the picture).
    captions = re.findall(r"<figcaption>(.*?)<br>|<figcaption>(.*?)</figcaption>", brief.page)
    texts = [a or b for a, b in captions]
    assert len(texts) == len(set(texts))


def test_caption_counts_equal_the_objects_drawn(brief: Rendered):
    figs = re.findall(r'<figure id="figure-(\d+)"><img src="figures/([^"]+)".*?<figcaption>'
                      r"(.*?)</figcaption>", brief.page, flags=re.S)
    assert figs, "no before/after figure in the page"
    for n, name, caption in figs:
        drawn = brief.drawn.pairs[name]
        m = re.search(r"(\d+) change objects? (?:at the part|in the site|outside the named "
                      r"parts)", caption)
        said = int(m.group(1)) if m else 0
        assert said == drawn, f"Figure {n}: caption says {said}, the figure drew {drawn}"


def test_no_internal_ids_or_reprs_before_the_appendix(brief: Rendered):
    body = _body(brief.page)
    for what, pattern in FORBIDDEN.items():
        m = pattern.search(body)
        assert m is None, f"{what} in the brief: ...{body[max(0, m.start() - 80):m.end() + 40]}..."
    for p in brief.site.parts:
        if "_" in p.name:  # a part id (words are the label)
            assert not re.search(rf"\b{re.escape(p.name)}\b", body), p.name


def test_every_timeline_alert_is_at_a_value_the_alert_names(brief: Rendered):
    named = {(str(f["time"])[:10], round(float(f["value"]), 9))
             for a in brief.alerts for f in a.alert.findings}
    named |= {(str(a.alert.time)[:10], round(float(a.alert.value), 9)) for a in brief.alerts}
    marked = 0
    for name, tl in brief.drawn.timelines.items():
        for t, v, *_other in tl["alerts"]:
            assert v is not None and np.isfinite(v), f"{name}: an alert drawn with no value"
            assert (t.date().isoformat(), round(float(v), 9)) in named, (name, t, v)
            marked += 1
    assert marked


def test_key_findings_speak_of_what_the_figures_show(brief: Rendered):
    """The strongest finding names Figure 1's dates, and a brief with alerts never says
    there is none."""
    findings = re.search(r"<h2>Key findings</h2>(.*?)</ol>", brief.page, flags=re.S)
    assert findings
    text = html.unescape(re.sub(r"<[^>]+>", " ", findings.group(1)))
    assert "Strongest:" in text
    assert "(Figure 1" in text or "(Figures 1" in text
    assert "No imagery alert" not in brief.page
    fig1 = re.search(r"Figure 1\. .*?(\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", brief.page)
    assert fig1 and fig1.group(1) in text and fig1.group(2) in text


def test_bare_site_brief_treats_the_whole_site_as_the_part(bare_brief: Rendered):
    page = bare_brief.page
    assert "Whole site" in page
    assert "not assessed" in page  # a facility: change only, no launch odds
    assert re.search(r"<td>Whole site</td><td>whole site</td>", page)


def test_the_page_is_strict_html(brief: Rendered):
    import html5lib

    html5lib.HTMLParser(strict=True).parse(brief.page)


def test_figures_are_not_blank_in_chromium(brief: Rendered):
    from PIL import Image

    from web_server import CHROMIUM_ARGS, chromium_path

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    if not Path(chromium_path()).is_file():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = b.new_page(viewport={"width": 1100, "height": 1400})
            page.goto((brief.out / "brief.html").as_uri())
            imgs = page.locator("figure img")
            assert imgs.count() == len(re.findall(r"<figure", brief.page))
            for i in range(imgs.count()):
                img = imgs.nth(i)
                img.scroll_into_view_if_needed()
                loaded = img.evaluate("e => e.complete && e.naturalWidth > 0")
                assert loaded, img.get_attribute("src")
                shot = Image.open(io.BytesIO(img.screenshot())).convert("L")
                assert np.asarray(shot, float).std() > 10, img.get_attribute("src")
            full = page.screenshot(full_page=True)
            (brief.out / "screenshot.png").write_bytes(full)  # for a person to look at
        finally:
            b.close()
