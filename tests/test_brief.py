"""The analyst brief: HTML that a strict parser accepts, figures with dated captions, exports
that validate, hostile strings escaped everywhere."""

from __future__ import annotations

import itertools
import json
import re
from datetime import date

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.report.brief import write_brief
from sitewatch.sites.site import Part, Site
from sitewatch.store import Store
from sitewatch.warning.record import add_note, add_report
from sitewatch.watch.pipeline import run_site
from test_pipeline import PAD, PARAMS, QUIET, _lonlat_box, catalogue, test_site

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;{{7*7}}'


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A site run through the pipeline with change products kept, a report and a note."""
    tmp = tmp_path_factory.mktemp("brief")
    with Store.open_path(tmp / "db" / "sitewatch.db") as store:
        catalogue(store, tmp / "imgs", range(10))
        run_site(store, "testsite", PARAMS, products=tmp / "products")
        site = store.get_site("testsite")
        rep = tmp / "r.txt"
        rep.write_text("Published: 2 April 2024\n\nFreight trains arrived at Sohae's rail "
                       f"station, a U.S. official said. {HOSTILE}", encoding="utf-8")
        add_report(store, site, rep)
        add_note(store, site, f"Vehicles gathered at the pad {HOSTILE}", when="2024-04-01",
                 part="pad", author=HOSTILE)
        b = write_brief(store, "testsite", tmp / "out", end=date(2024, 5, 31))
        yield store, b, tmp


def test_brief_html_is_strict_and_complete(watched):
    import html5lib

    _store, b, _tmp = watched
    page = b.html.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(page)  # raises on any parse error
    for heading in ("Key findings", "Assessment", "What the imagery shows",
                    "Per-part observations", "What could not be observed", "Collateral sources",
                    "Provenance"):
        assert f"<h2>{heading}" in page
    assert "scene_06" in page or "scene_07" in page  # provenance names the scenes
    assert re.search(r"Figure 1\. .+: .+, 2024-\d\d-\d\d to 2024-\d\d-\d\d\.", page)
    # figures alongside, linked relatively: the page opens offline
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert not src.startswith(("http:", "https:", "//"))
        assert (b.html.parent / src).stat().st_size > 5000
    assert "cdn" not in page.lower()


def test_hostile_strings_come_out_escaped(watched):
    _store, b, _tmp = watched
    page = b.html.read_text(encoding="utf-8")
    assert "<script>" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;",
                                                                            "")
    assert "&lt;script&gt;alert(" in page
    assert "{{7*7}}" in page  # shown as written, never evaluated as a template


def test_hostile_part_names_are_escaped(tmp_path):
    site = test_site()
    evil = Site("testsite", HOSTILE, site.boundary,
                (Part("pad", "launch_pad", _lonlat_box(*PAD), {"label": HOSTILE}),
                 Part("quiet", "support_area", _lonlat_box(*QUIET))),
                {"site_type": "launch_site"})
    with Store.open_path(tmp_path / "db.sqlite") as store:
        store.put_site(evil, "test")
        b = write_brief(store, "testsite", tmp_path / "out")
    page = b.html.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_figures_have_dated_captions(watched):
    _store, b, _tmp = watched
    names = [p.name for p in b.figures]
    assert any(n.startswith("fig01_") for n in names) and "overview.png" in names
    assert any(n.startswith("timeline_") for n in names)
    page = b.html.read_text(encoding="utf-8")
    caps = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert caps and all(re.search(r"20\d\d-\d\d-\d\d", c) for c in caps)


def _grey_map(tmp_path, name: str) -> np.ndarray:
    """An overview of a plain grey 96 x 96 px, 10 m map (960 m wide), as RGB floats."""
    import matplotlib.image

    from sitewatch.report import figures

    grey = figures.Panel(np.full((3, 96, 96), 128, np.uint8), 10.0, "plain")
    out = figures.overview_figure(tmp_path / name, grey, [], [], "2024-01-01")
    return matplotlib.image.imread(out)[..., :3]


def _longest_run(mask: np.ndarray) -> int:
    best = 0
    for row in mask:
        edges = np.diff(np.r_[0, row.astype(np.int8), 0])
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        best = max(best, int((ends - starts).max(initial=0)))
    return best


def test_maps_draw_a_scale_bar_of_its_length_and_a_north_arrow(tmp_path, monkeypatch):
    from sitewatch.report import figures

    img = _grey_map(tmp_path, "with.png")
    grey = np.all(np.abs(img - 128 / 255) < 0.02, axis=-1)
    # The map: the rows and columns mostly grey (antialiased text elsewhere has grey pixels).
    rows = np.nonzero(grey.sum(axis=1) > 0.5 * grey.sum(axis=1).max())[0]
    cols = np.nonzero(grey.sum(axis=0) > 0.5 * grey.sum(axis=0).max())[0]
    m = 4  # inside the axes frame (its black edge is not the bar)
    top, bottom, left, right = rows.min() + m, rows.max() - m, cols.min() + m, cols.max() - m
    width = right - left + 1
    black = np.all(img < 0.15, axis=-1)
    inside = black[top:bottom + 1, left:right + 1]
    h = bottom - top + 1
    # The scale bar: a black bar in the lower left of the map, 200 m of the 960 m map wide
    # (the round length no longer than a third of the width).
    lower_left = inside[h // 2:, : width // 2]
    assert _longest_run(lower_left) == pytest.approx((width + 2 * m) * 200 / 960, rel=0.1)
    # The north arrow: black in the upper right of the map.
    assert inside[: h // 3, 2 * width // 3:].sum() > 50
    # Drawn by figures._decorate: without it the map is plain grey there.
    monkeypatch.setattr(figures, "_decorate", lambda *a, **k: None)
    bare = _grey_map(tmp_path, "without.png")
    bare_black = np.all(bare < 0.15, axis=-1)[top:bottom + 1, left:right + 1]
    assert bare_black[h // 2:, : width // 2].sum() == 0
    assert bare_black[: h // 3, 2 * width // 3:].sum() == 0


def test_scale_bar_label_names_its_length():
    import matplotlib.pyplot as plt

    from sitewatch.report import figures

    assert figures._nice_length(960 / 3) == 200 and figures._nice_length(4.9) == 2
    assert figures._nice_length(0) == 0
    for px, pixel_m, label in ((96, 10.0, "200 m"), (600, 30.0, "5 km")):
        fig, ax = plt.subplots()
        try:
            figures._decorate(ax, px, px, pixel_m)
            texts = [t.get_text() for t in ax.texts]
            assert label in texts and "N" in texts
            (bar,) = ax.lines
            x = bar.get_xdata()
            length_m = (x[1] - x[0]) * pixel_m
            assert length_m == float(label.split()[0]) * (1000 if "km" in label else 1)
        finally:
            plt.close(fig)


def test_exports_validate(watched):
    from rio_cogeo.cogeo import cog_validate

    _store, b, _tmp = watched
    names = {p.name for p in b.exports}
    assert {"alerts.geojson", "evidence.geojson"} <= names
    alerts = json.loads((b.html.parent / "exports" / "alerts.geojson").read_text())
    assert alerts["type"] == "FeatureCollection" and alerts["features"]
    for f in alerts["features"]:
        ring = f["geometry"]["coordinates"][0]
        assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)
        area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
        assert area2 > 0  # RFC 7946: exterior rings counter-clockwise
    cogs = [p for p in b.exports if p.suffix == ".tif"]
    assert cogs
    for p in cogs:
        valid, errors, _warnings = cog_validate(str(p))
        assert valid, (p, errors)
        with rasterio.open(p) as ds:
            assert ds.crs is not None and ds.overviews(1) is not None


def test_cli_brief_and_bad_dates(home, tmp_path):
    runner = CliRunner()
    sf = tmp_path / "site.geojson"
    sf.write_text(test_site().dumps(), encoding="utf-8")
    assert runner.invoke(cli, ["site", "add", str(sf)]).exit_code == 0
    r = runner.invoke(cli, ["brief", "testsite", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "b" / "brief.html").read_text(encoding="utf-8")
    assert "Test site" in page and "<h2>What could not be observed" in page
    r = runner.invoke(cli, ["brief", "testsite", "--from", "2024-05-01", "--to", "2024-01-01"])
    assert r.exit_code == 1 and "is after" in r.output
    r = runner.invoke(cli, ["brief", "testsite", "--to", "May"])
    assert r.exit_code == 1 and "not YYYY-MM-DD" in r.output


def test_stac_items_validate(watched):
    import pystac.validation
    from pystac import STACObjectType

    _store, b, _tmp = watched
    items = [p for p in b.exports if p.name.endswith(".stac.json")]
    assert items
    for p in items:
        d = json.loads(p.read_text())
        # The core Item schema ships with pystac and validates offline; the extension
        # schemas live online (CI has no network), so their fields are checked here.
        pystac.validation.validate_dict(d, stac_object_type=STACObjectType.ITEM,
                                        extensions=[])
        assert any("projection" in e for e in d["stac_extensions"])
        assert any("raster" in e for e in d["stac_extensions"])
        props = d["properties"]
        assert props["proj:code"].startswith("EPSG:") and len(props["proj:shape"]) == 2
        assert len(props["proj:transform"]) == 6
        for key, asset in d["assets"].items():
            assert (p.parent / asset["href"]).is_file()
            assert asset["type"].startswith("image/tiff; application=geotiff")
            (band,) = asset["raster:bands"] if "raster:bands" in asset else asset["bands"]
            assert band["data_type"] in ("uint8", "float32") and key in ("change", "score")


def test_pdf_renders_pages_and_figures(watched, tmp_path):
    import shutil
    import subprocess

    from sitewatch.report.brief import write_pdf

    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        pytest.skip("WeasyPrint or Pango is not installed (scripts/install-pdf-support.sh)")
    if not (shutil.which("pdftoppm") and shutil.which("pdfimages")):
        pytest.skip("poppler-utils (pdftoppm, pdfimages) is not installed")
    _store, b, _tmp = watched
    pdf = write_pdf(b.html, tmp_path / "brief.pdf")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    with rasterio.open(pages[0]) as ds:
        assert ds.read().std() > 5  # not a blank page
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], check=True,
                             capture_output=True, text=True).stdout.splitlines()[2:]
    assert len(listing) >= len(b.figures)  # every figure is in the PDF


def test_period_math_labels_and_missing_products(watched, tmp_path):
    """Alerts overlapping the period are in it; '$' in names is text, not a formula; a
    missing change map is said, in the caption and in the notes, not silently dropped."""
    import shutil

    store, _b, tmp = watched
    site = store.get_site("testsite")
    odd = Site("testsite", "Costs $5 and $\\frac{a$ 5", site.boundary,
               (Part("pad", "launch_pad", _lonlat_box(*PAD), {"label": "Pad $\\frac{a$ 5"}),
                Part("quiet", "support_area", _lonlat_box(*QUIET))),
               {"site_type": "launch_site"})
    store.put_site(odd, "test")
    moved = tmp / "products-moved"
    shutil.move(tmp / "products", moved)
    try:
        out = write_brief(store, "testsite", tmp_path / "b", end=date(2024, 5, 31))
    finally:
        shutil.move(moved, tmp / "products")
        store.put_site(test_site(), "test")
    page = out.html.read_text(encoding="utf-8")
    assert "Pad $\\frac{a$ 5" in page
    assert "is missing (moved or deleted)" in page and "Notes on this brief" in page
    assert "could not be read" in page
    # A period that ends before every alert has none; one covering them has them all.
    early = write_brief(store, "testsite", tmp_path / "c", start=date(2024, 1, 1),
                        end=date(2024, 1, 20))
    assert "No imagery alert in this period." in early.html.read_text(encoding="utf-8")


def test_change_products_read_by_window(watched):
    from sitewatch.watch.products import read_change

    _store, _b, tmp = watched
    (path,) = [p for p in (tmp / "products").rglob("scene_06_change.tif")]
    full, t_full, _ = read_change(path)
    rows, cols = (full == 1).nonzero()  # the planted change
    r0, c0 = max(int(rows.min()) - 3, 0), max(int(cols.min()) - 2, 0)
    win = (slice(r0, r0 + 20), slice(c0, c0 + 25))
    part, t_part, _ = read_change(path, win)
    assert (part == full[win]).all() and (part == 1).any()
    assert (t_part.c, t_part.f) == (t_full.c + c0 * t_full.a, t_full.f + r0 * t_full.e)


CONTROLS = "\x1b]0;pwned\x07\x1b[31m\x00\x0b\x0c\x7f\x9b\ufffe"


def test_control_characters_never_reach_the_page(tmp_path):
    """Issue 14 item 11: a control character in a note made brief.html fail the strict
    check above; escape sequences in names, notes and report file names are removed."""
    import html5lib

    site = test_site()
    evil = Site("testsite", f"Test {CONTROLS} site", site.boundary,
                (Part("pad", "launch_pad", _lonlat_box(*PAD), {"label": f"pad {CONTROLS}"}),
                 Part("quiet", "support_area", _lonlat_box(*QUIET))),
                {"site_type": "launch_site"})
    rep = tmp_path / "report \x1b]0;pwned\x07\x1b[31m.txt"
    rep.write_text(f"Published: 2 April 2024\n\nTrains {CONTROLS.replace(chr(0), '')} arrived "
                   "at the rail "
                   "station, a U.S. official said.", encoding="utf-8")
    with Store.open_path(tmp_path / "db.sqlite") as store:
        store.put_site(evil, "test")
        add_report(store, evil, rep)
        add_note(store, evil, f"Vehicles {CONTROLS} at the pad", when="2024-04-01",
                 part="pad", author=f"me{CONTROLS}")
        b = write_brief(store, "testsite", tmp_path / "out")
    page = b.html.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(page)
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe]", page)
    assert "Vehicles ]0;pwned[31m at the pad" in page  # the text stays, minus controls


def test_brief_keeps_the_users_files_and_removes_only_its_own(watched, tmp_path):
    """Issue 14: `brief --out DIR` deleted the user's files under DIR/figures and
    DIR/exports.  Only files listed in the manifest of an earlier brief are removed."""
    from sitewatch.report.brief import MANIFEST

    store, _b, _tmp = watched
    out = tmp_path / "b"
    mine = [out / "figures" / "my_map.png", out / "exports" / "my.geojson",
            out / "exports" / "field.tif", out / "figures" / "overview-old.png",
            out / "notes.txt"]
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"the user's own")
    first = write_brief(store, "testsite", out, end=date(2024, 5, 31))
    figs = [p for p in first.figures if p.name.startswith("fig")]
    assert figs and first.exports
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert "brief.html" in listed and all(p.relative_to(out).as_posix() in listed
                                          for p in [*first.figures, *first.exports])
    assert not any(p.relative_to(out).as_posix() in listed for p in mine)
    # a second brief, of a period without alerts: the first brief's figures are stale
    second = write_brief(store, "testsite", out, start=date(2024, 1, 1), end=date(2024, 1, 20))
    assert not any(p.exists() for p in figs)
    assert all(p.read_bytes() == b"the user's own" for p in mine)
    assert second.html.is_file()
    # a manifest cannot be used to delete anything outside the brief's own files
    (tmp_path / "precious.txt").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"files": ["../precious.txt", "notes.txt/..",
                                                      "/etc/hostname", "figures/../notes.txt"]}))
    write_brief(store, "testsite", out, start=date(2024, 1, 1), end=date(2024, 1, 20))
    assert (tmp_path / "precious.txt").read_text() == "keep"
    assert all(p.read_bytes() == b"the user's own" for p in mine)


def test_brief_folders_linked_elsewhere_are_refused(watched, tmp_path):
    from sitewatch.errors import OutputError

    store, _b, _tmp = watched
    out, elsewhere = tmp_path / "b", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "figures").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="outside"):
        write_brief(store, "testsite", out, end=date(2024, 5, 31))
    assert list(elsewhere.iterdir()) == []


# --- Issue 18 item 1: figures an analyst could publish -------------------------------------

def _pair_png(tmp_path, name: str, before_raw: np.ndarray, monkeypatch=None) -> np.ndarray:
    """A before/after pair of (3, 64, 64) floats in 0..1 (NaN: not observed), stretched 0-1,
    rendered by pair_figure with no caption; the PNG as RGB floats."""
    import matplotlib.image

    from sitewatch.report import figures
    from sitewatch.report.quicklook import stretch, unobserved

    lo, hi = np.zeros(3), np.ones(3)
    after_raw = np.full((3, 64, 64), 0.5)
    panels = [figures.Panel(stretch(r, lo, hi)[0], 10.0, t, unobserved(r))
              for r, t in ((before_raw, "before"), (after_raw, "after"))]
    out = figures.pair_figure(tmp_path / name, *panels, [], [])
    return matplotlib.image.imread(out)[..., :3]


def test_masked_pixels_are_hatched_not_black_and_in_the_legend(tmp_path, monkeypatch):
    from sitewatch.report import figures

    clear = np.full((3, 64, 64), 0.5)
    masked = clear.copy()
    masked[:, 8:40, 8:40] = np.nan  # a cloud over a 32 x 32 block of the before image
    legends: list[list[str]] = []
    save = figures._save

    def spy(fig, path):
        legends.append([t.get_text() for lg in fig.legends for t in lg.get_texts()])
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", spy)
    a = _pair_png(tmp_path, "clear.png", clear)
    b = _pair_png(tmp_path, "masked.png", masked)
    assert figures.NOT_OBSERVED not in legends[0] and figures.NOT_OBSERVED in legends[1]
    # Where the two differ inside the before map is the masked block.
    grey = np.all(np.abs(a - 128 / 255) < 0.02, axis=-1)
    left = grey[:, : a.shape[1] // 2]
    rows, cols = np.nonzero(left.sum(axis=1) > 0.5 * left.sum(axis=1).max())[0], \
        np.nonzero(left.sum(axis=0) > 0.5 * left.sum(axis=0).max())[0]
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    diff = np.any(np.abs(a[box] - b[box]) > 0.05, axis=-1)
    block = b[box][diff]
    side = (box[0].stop - box[0].start) * 32 / 64  # the block's size in PNG pixels
    assert diff.sum() > 0.6 * side * side
    black = np.all(block < 0.1, axis=-1)
    light = np.all(np.abs(block - int(figures.HATCH_FACE[1:3], 16) / 255) < 0.04, axis=-1)
    dark = np.all(block < 0.45, axis=-1) & ~black
    assert black.mean() < 0.02  # not a black block
    assert light.mean() > 0.3 and dark.mean() > 0.05  # light grey crossed by hatch lines


def test_one_stretch_for_both_dates():
    from sitewatch.report.quicklook import limits, stretch

    rng = np.random.default_rng(0)
    dark = rng.uniform(0.0, 0.2, (3, 50, 50))
    bright = rng.uniform(0.5, 1.0, (3, 50, 50))
    bright[:, :25] = np.nan  # unobserved pixels count for neither limit
    lo, hi = limits(dark, bright)
    assert np.isclose(lo[0], np.percentile(np.r_[dark[0].ravel(), bright[0, 25:].ravel()], 2))
    assert np.isclose(hi[0], np.percentile(np.r_[dark[0].ravel(), bright[0, 25:].ravel()], 98))
    sd, sb = stretch(dark, lo, hi)[0], stretch(bright, lo, hi)[0]
    # brighter ground stays brighter: on its own each would fill 0..255
    assert sd.mean() < 60 and sb[:, 25:].mean() > 150


@pytest.fixture(scope="module")
def drawn(watched, tmp_path_factory):
    """The watched site's brief again, with what each figure was drawn from recorded: the
    stretch of each image, the change outlines, the texts drawn in each figure."""
    from sitewatch.report import figures, pairs

    store, _b, _tmp = watched
    calls: dict[str, list] = {"stretch": [], "pairs": [], "texts": []}
    mp = pytest.MonkeyPatch()
    stretch, pair, save = pairs.stretch, pairs.pair_figure, figures._save

    def spy_stretch(rgb, lo=None, hi=None):
        out = stretch(rgb, lo, hi)
        calls["stretch"].append((out[1], out[2]))
        return out

    def spy_pair(path, before, after, part_rings, change_rings, caption=None, **kw):
        calls["pairs"].append((path.name, list(change_rings), caption))
        return pair(path, before, after, part_rings, change_rings, caption, **kw)

    def spy_save(fig, path):
        calls["texts"].append((path.name, [t.get_text() for t in fig.texts]))
        return save(fig, path)

    mp.setattr(pairs, "stretch", spy_stretch)  # the brief's pairs are drawn by report.pairs
    mp.setattr(pairs, "pair_figure", spy_pair)
    mp.setattr(figures, "_save", spy_save)
    try:
        b = write_brief(store, "testsite", tmp_path_factory.mktemp("drawn"),
                        end=date(2024, 5, 31))
    finally:
        mp.undo()
    return b, calls


def test_before_and_after_share_their_stretch(drawn):
    _b, calls = drawn
    pair_calls = calls["stretch"][: 2 * len(calls["pairs"])]
    assert calls["pairs"] and len(pair_calls) == 2 * len(calls["pairs"])
    for (lo_b, hi_b), (lo_a, hi_a) in zip(pair_calls[::2], pair_calls[1::2], strict=True):
        assert np.array_equal(lo_b, lo_a) and np.array_equal(hi_b, hi_a)
    page = _b.html.read_text(encoding="utf-8")
    assert "One linear stretch for both dates" in page and "stretched on its own" not in page


def test_each_caption_is_printed_once_in_the_page_and_not_in_the_picture(drawn):
    b, calls = drawn
    page = b.html.read_text(encoding="utf-8")
    caps = [c.split("<br>")[0] for c in re.findall(r"<figcaption>(.*?)</figcaption>", page,
                                                   re.S)]
    assert len(caps) == len(b.figures)
    for c in caps:
        assert page.count(c) == 1, c
    drawn_texts = [t for _name, texts in calls["texts"] for t in texts]
    assert len(calls["texts"]) == len(b.figures)
    assert not any(t.startswith(("Figure ", "Site overview", "Timeline")) or len(t) > 60
                   for t in drawn_texts), drawn_texts
    assert all(cap is None for _n, _r, cap in calls["pairs"])


def test_caption_counts_the_change_objects_drawn(drawn):
    import html

    b, calls = drawn
    page = html.unescape(b.html.read_text(encoding="utf-8"))
    for name, rings, _cap in calls["pairs"]:
        n = int(name[3:5])
        (cap,) = re.findall(rf"Figure {n}\. [^<]*", page)
        count = re.search(r"(\d+) change objects? at the part", cap)
        assert (int(count[1]) if count else 0) == len(rings), cap
    assert any(rings for _n, rings, _c in calls["pairs"])  # the planted change is drawn


def test_only_change_objects_touching_the_part_are_drawn(tmp_path):
    from affine import Affine

    from sitewatch.report.brief import _change_objects

    change = np.zeros((40, 40), np.uint8)
    change[10:14, 10:14] = 1  # inside the part
    change[20:22, 20:22] = 1  # diagonal to the part's corner: touching (8 neighbours)
    change[30:35, 2:6] = 1  # far away: not drawn, not counted
    change[0:2, 38:40] = 255  # not observed
    path = tmp_path / "change.tif"
    with rasterio.open(path, "w", driver="GTiff", height=40, width=40, count=1, dtype="uint8",
                       crs="EPSG:32652", transform=Affine(10, 0, 0, 0, -10, 400)) as ds:
        ds.write(change, 1)
    part = np.zeros((40, 40), bool)
    part[8:20, 8:20] = True
    got = _change_objects(str(path), (slice(0, 40), slice(0, 40)), part)
    assert got.count == len(got.rings) == 2
    assert sorted(got.pixels) == [4, 16]
    xs = np.concatenate([r[:, 0] for r in got.rings])
    assert xs.max() < 23  # the far object at columns 2-5, rows 30-34 is not among them
    assert min(r[:, 1].max() for r in got.rings) < 30


def test_every_figure_names_its_imagery_credit(drawn):
    from sitewatch.report.quicklook import credit

    b, _calls = drawn
    page = b.html.read_text(encoding="utf-8")
    credits = re.findall(r'<span class="credit">([^<]+)</span>', page)
    maps = [p for p in b.figures if not p.name.startswith("timeline_")]
    assert len(credits) == len(maps) and all(credits)
    assert credit("sentinel-2", 2024) == "Contains modified Copernicus Sentinel data 2024"
    assert credit("Sentinel-1A", 2023) == "Contains modified Copernicus Sentinel data 2023"
    assert "U.S. Geological Survey" in credit("landsat-8", 2024)
    assert credit("sim-3m", 2024) == "SIMULATED imagery (sitewatch demo)"
