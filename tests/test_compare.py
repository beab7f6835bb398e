"""Pictures on demand (issue 18 item 1): ``sitewatch compare`` draws any part, or the whole
site, between any two processed dates; ``detect --quicklook`` draws a detect result; a site
made by ``ingest`` (no parts) gets its brief figures of "(rest of site)"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from scipy import ndimage

from conftest import write_tif
from sitewatch.cli.main import cli
from sitewatch.imagery.ingest import ingest
from sitewatch.report import pairs
from sitewatch.report.brief import write_brief
from sitewatch.sites.site import Site
from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site
from sitewatch.watch.zonal import REST
from test_pipeline import PARAMS, TRANSFORM, scene, test_site, write_scenes

#: The no-parts site's planted change: a textured patch made brighter from this date on.
BARE_EVENT_AT = 6
BARE_PATCH = (slice(40, 64), slice(30, 54))


def _day(i: int) -> str:
    """The day of date index ``i`` (test_pipeline's scene naming)."""
    return f"2024-{1 + i // 2:02d}-{1 + 14 * (i % 2):02d}"


def _bare_scenes(folder: Path) -> None:
    for i in range(10):
        img = scene(i)
        if i >= BARE_EVENT_AT:
            img[:, BARE_PATCH[0], BARE_PATCH[1]] = (img[:, BARE_PATCH[0], BARE_PATCH[1]]
                                                    * 1.8).astype(img.dtype)
        write_tif(folder / f"bare_{i:02d}.tif", img, transform=TRANSFORM, nodata=0,
                  tags={"ACQUISITION_TIME": f"{_day(i)}T02:00:00Z"},
                  descriptions=["blue", "green", "red", "nir"])


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """A home with three sites: ``testsite`` (parts pad and quiet, the planted change at the
    pad on 2024-04-01), ``bare`` (made by ingest, no parts, a change on 2024-04-01) both
    processed with change maps kept, and ``unrun`` (catalogued, never processed)."""
    root = tmp_path_factory.mktemp("compare")
    home = root / "home"
    write_scenes(root / "imgs", range(10))
    _bare_scenes(root / "bare")
    with Store.open_home(home) as store:
        ingest(store, [root / "imgs"], "testsite", site=test_site())
        ingest(store, [root / "bare"], "bare")
        s = test_site()
        ingest(store, [root / "imgs"], "unrun", site=Site("unrun", "Unrun", s.boundary, s.parts))
        for sid in ("testsite", "bare"):
            run_site(store, sid, PARAMS, products=home / "products")
    return home


def _compare(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), "compare", *args])


@pytest.fixture
def drawn_rings(monkeypatch):
    """The change outlines each pair_figure call was given."""
    calls: list[list[np.ndarray]] = []
    real = pairs.pair_figure

    def spy(path, before, after, part_rings, change_rings, caption=None, **kw):
        calls.append(list(change_rings))
        return real(path, before, after, part_rings, change_rings, caption, **kw)

    monkeypatch.setattr(pairs, "pair_figure", spy)
    return calls


def _png_ok(path: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 500 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.05  # not blank


def test_compare_a_named_part_on_the_pair_the_run_compared(sites, drawn_rings):
    # by label, in other case; the pair is the stored one: scene_05 -> scene_06
    r = _compare(sites, "testsite", "--part", "PAD", "--dates", _day(5), _day(6), "--json")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["change"] == "stored" and rec["part"] == "pad"
    assert rec["before"]["id"] == "scene_05" and rec["after"]["id"] == "scene_06"
    assert rec["objects"] == 1 == len(drawn_rings[-1])  # the planted 6 x 6 block
    assert rec["object_pixels"] == [36] and rec["largest_m2"] == 3600
    path = Path(rec["path"])
    assert path.parent == sites / "figures" and path.name == \
        f"testsite_pad_{_day(5)}_{_day(6)}.png"
    _png_ok(path)
    r = _compare(sites, "testsite", "--part", "pad", "--dates", _day(5), _day(6))
    assert r.exit_code == 0, r.output
    assert f"pad: 1 change object (largest 3,600 m²), {_day(5)} -> {_day(6)}" in r.stdout
    assert "same stretch for both dates" in r.stdout


def test_a_pair_the_run_did_not_compare_gets_its_objects_detected(sites, drawn_rings,
                                                                   tmp_path):
    """scene_02 -> scene_07 (five dates apart): no stored map; the run's detector finds the
    block, and the caption says the objects were detected for this pair."""
    out = tmp_path / "pad.png"
    r = _compare(sites, "testsite", "--part", "pad", "--dates", _day(2), _day(7), "-o",
                 str(out), "--json")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["change"] == "computed" and rec["method"] == "ratio"
    assert rec["change_map"] is None
    assert rec["objects"] == len(drawn_rings[-1]) >= 1
    assert 36 in rec["object_pixels"]
    assert "detected for this pair" in rec["caption"]
    _png_ok(out)


def test_the_whole_site_of_a_site_without_parts(sites, drawn_rings, tmp_path):
    out = tmp_path / "whole.png"
    r = _compare(sites, "bare", "--dates", _day(5), _day(6), "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["part"] == REST and rec["label"] == "Whole site"
    assert rec["objects"] == len(drawn_rings[-1]) >= 1
    assert max(rec["object_pixels"]) >= 0.8 * 24 * 24  # the planted patch
    _png_ok(out)


def test_rest_of_a_site_with_parts_leaves_the_parts_objects_out(sites, drawn_rings, tmp_path):
    """The planted block lies inside the pad, two pixels from its edge: it touches the pad,
    not the rest of the site (the pipeline's rule), so the rest's picture draws none of it."""
    r = _compare(sites, "testsite", "--part", "rest of site", "--dates", _day(5), _day(6),
                 "-o", str(tmp_path / "rest.png"), "--json")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["label"] == "Rest of the site"
    assert 36 not in rec["object_pixels"]
    assert rec["objects"] == len(drawn_rings[-1])


@pytest.mark.parametrize(("args", "words"), [
    (["testsite", "--part", "hangar", "--dates", _day(5), _day(6)],
     ["'hangar'", "pad", "quiet"]),
    (["testsite", "--dates", "2024-02-10", _day(6)],
     ["2024-02-10", "nearest processed dates", "2024-02-01"]),
    (["testsite", "--dates", _day(3), _day(6)],  # the cloudy date: stored, not usable
     [_day(3), "not usable", "scene_03"]),
    (["testsite", "--dates", "2024-13-01", _day(6)], ["2024-13-01", "YYYY-MM-DD"]),
    (["testsite", "--dates", _day(6), _day(5)], ["must come before"]),
    (["unrun", "--dates", _day(5), _day(6)], ["sitewatch run unrun"]),
    (["nosuch", "--dates", _day(5), _day(6)], ["'nosuch'"]),
])
def test_bad_input_is_a_one_line_error_naming_it(sites, args, words):
    r = _compare(sites, *args)
    assert r.exit_code == 1, r.output
    line = " ".join(r.output.split())
    assert line.startswith("Error: ") and "Traceback" not in line
    for w in words:
        assert w in line, (w, line)


def test_the_brief_of_a_site_without_parts_draws_its_alerts(sites, tmp_path):
    """Issue 18: every figure of an ingest-made site failed with "has no part '(rest of
    site)'"; the whole site is the part."""
    with Store.open_home(sites) as store:
        alerts = store.alerts("bare")
        assert alerts and all(a.part == REST for a in alerts)
        b = write_brief(store, "bare", tmp_path / "brief")
    assert not [w for w in b.warnings if "has no part" in w or "not drawn" in w], b.warnings
    figs = [f for f in b.figures if f.name.startswith("fig")]
    assert len(figs) == len(alerts[:8])
    page = b.html.read_text(encoding="utf-8")
    assert "Figure 1. Whole site: " in page
    _png_ok(figs[0])


def test_detect_quicklook_draws_the_objects_of_the_change_map(sites, tmp_path, drawn_rings):
    bare = sites.parent / "bare"
    out = tmp_path / "det"
    r = CliRunner().invoke(cli, ["detect", str(bare / "bare_05.tif"), str(bare / "bare_06.tif"),
                                 "-o", str(out), "--quicklook", "--json"])
    assert r.exit_code == 0, r.output
    look = json.loads(r.stdout)["quicklook"]
    assert Path(look["path"]) == out / "quicklook.png"
    _png_ok(out / "quicklook.png")
    with rasterio.open(out / "change.tif") as ds:
        change = ds.read(1)
    _labels, n = ndimage.label(change == 1, structure=np.ones((3, 3), bool))
    assert look["objects"] == n == len(drawn_rings[-1]) >= 1
    assert look["downsample"] == 1 and "resolution" not in look["caption"]
    # A large raster is read decimated; the caption says so, and the count is what is drawn.
    small = pairs.detect_quicklook(bare / "bare_05.tif", bare / "bare_06.tif", out,
                                   tmp_path / "small.png", max_px=40)
    assert small.downsample == 3 and small.pixel_m == 30
    assert small.objects.count == len(drawn_rings[-1]) >= 1
    assert "drawn at 1/3 resolution" in small.caption
    _png_ok(tmp_path / "small.png")


def test_parts_are_found_by_name_or_label_in_any_case():
    from shapely.geometry import box

    from sitewatch.errors import SiteError
    from sitewatch.sites.site import Part

    g = box(0, 0, 0.01, 0.01)
    site = Site("s", "S", g, (Part("launch_pad", "launch_pad", g, {"label": "Launch pad (apron)"}),
                              Part("stand", "engine_test_stand")))  # not placed
    assert pairs.find_part(site, "launch pad") == "launch_pad"
    assert pairs.find_part(site, "LAUNCH PAD (APRON)") == "launch_pad"
    assert pairs.find_part(site, None) == pairs.find_part(site, "whole site") == REST
    assert pairs.part_label(site, REST) == "Rest of the site"
    with pytest.raises(SiteError, match="'stand'.*not placed"):
        pairs.find_part(site, "stand")
    assert pairs.part_label(Site("b", "B", g), REST) == "Whole site"
