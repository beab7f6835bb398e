"""Placing and editing parts (`sitewatch site place|edit|history`): every geometry form, the
refusals, and edits that change all or nothing (issue 15, item 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from shapely.geometry import shape

from sitewatch.cli.main import cli
from sitewatch.errors import SiteError
from sitewatch.sites.place import (
    bbox_geometry,
    geojson_geometry,
    metres_area,
    placement,
    point_geometry,
    wkt_geometry,
)
from sitewatch.sites.site import builtin_site
from sitewatch.store import Store

POLY = {"type": "Polygon", "coordinates": [[[124.700, 39.660], [124.702, 39.660],
                                            [124.702, 39.662], [124.700, 39.662],
                                            [124.700, 39.660]]]}


def sw(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_a_point_and_radius_is_a_circle_on_the_ground():
    g = point_geometry(124.705, 39.660, 150)
    # pi * 150^2 = 70,686 m2 within the 64-gon's shortfall (0.3%)
    assert metres_area(g) == pytest.approx(70_686, rel=0.005)
    c = g.centroid
    assert (c.x, c.y) == pytest.approx((124.705, 39.660), abs=1e-6)
    # a circle in degrees would be 1.3 times wider north-south than east-west at 39.66 N
    w, s, e, n = g.bounds
    assert (n - s) / (e - w) == pytest.approx(0.770, abs=0.01)


def test_each_geometry_form_gives_the_same_polygon():
    from_text = geojson_geometry(json.dumps(POLY))
    feature = geojson_geometry(json.dumps({"type": "Feature", "properties": {}, "geometry": POLY}))
    fc = geojson_geometry(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": POLY}]}))
    wkt = wkt_geometry("POLYGON ((124.700 39.660, 124.702 39.660, 124.702 39.662, "
                       "124.700 39.662, 124.700 39.660))")
    bbox = bbox_geometry(124.700, 39.660, 124.702, 39.662)
    for g in (feature, fc, wkt, bbox):
        assert g.equals(from_text)


def test_geojson_from_a_file(tmp_path):
    f = tmp_path / "pad.geojson"
    f.write_text(json.dumps(POLY), encoding="utf-8")
    assert geojson_geometry(str(f)).equals(shape(POLY))
    with pytest.raises(SiteError, match="no such file"):
        geojson_geometry(str(tmp_path / "missing.geojson"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bbox": (124.70, 39.67, 124.71, 39.66)}, r"south \(39.67\) must be less than north"),
    ({"bbox": (124.71, 39.66, 124.70, 39.67)}, "west .* must be less than east"),
    ({"point": (39.66, 124.705), "radius_m": 100}, "are they swapped"),
    ({"point": (124.705, 38.76), "radius_m": 100}, r"point 124.705 38.76 .* 96.\d km outside "
                                                   "site 'sohae'"),
    ({"point": (124.705, 39.66)}, "give --radius"),
    ({"point": (124.705, 39.66), "radius_m": 0}, "radius must be more than 0"),
    ({"point": (124.705, 39.66), "radius_m": 100, "bbox": (1, 2, 3, 4)}, "exactly one"),
    ({}, "exactly one"),
    ({"wkt": "POINT (124.705 39.66)"}, "expected one of Polygon, MultiPolygon"),
    ({"wkt": "POLYGON ((124.7 39.66, 124.71"}, "not valid WKT"),
    ({"wkt": "POLYGON ((124.70 39.66, 124.71 39.67, 124.71 39.66, 124.70 39.67, "
             "124.70 39.66))"}, "invalid: Self-intersection"),
    ({"geojson": '{"type": "Polygon", "coordinates": [[[124.70, 39.66], [124.71, 39.66], '
                 '[124.71, 39.67]]]}'}, "at least 4"),
    ({"geojson": '{"type": "FeatureCollection", "features": []}'}, "give exactly one"),
    ({"geojson": "{not json"}, "not valid JSON"),
    ({"geojson": "[" * 100 + "]" * 100}, "nested more than"),
])
def test_bad_geometry_is_refused_naming_the_input(kwargs, message):
    with pytest.raises(SiteError, match=message):
        placement(builtin_site("sohae"), **kwargs)


def test_a_part_mostly_outside_the_site_is_warned_about():
    pl = placement(builtin_site("sohae"), bbox=(124.735, 39.65, 124.76, 39.67))
    assert pl.warnings and "lies inside site 'sohae'" in pl.warnings[0]


def test_place_on_a_built_in_site_without_site_add(home):
    r = sw("site", "place", "sohae", "launch_pad", "--point", "124.705", "39.660",
           "--radius", "150", "--note", "gazetteer centre", "--by", "analyst")
    assert r.exit_code == 0, r.output
    assert "placed: version 1" in r.output
    with Store.open_home(home) as store:
        site = store.get_site("sohae")
        assert site is not None and site.part("launch_pad").placed
        (v,) = store.part_versions("sohae", "launch_pad")
        assert (v.version, v.author, v.note) == (1, "analyst", "gazetteer centre")
    r = sw("site", "place", "sohae", "launch_pad", "--bbox", "124.704", "39.659", "124.706",
           "39.661")
    assert r.exit_code == 0 and "version 2" in r.output
    show = sw("site", "show", "sohae")
    assert "launch_pad" in show.output and " 2 " in show.output
    hist = sw("site", "history", "sohae", "launch_pad", "--json")
    got = json.loads(hist.output)
    assert [h["version"] for h in got] == [1, 2]
    assert got[1]["note"] == "placed from bbox 124.704 39.659 124.706 39.661"
    # placing the same geometry again is not a new version
    sw("site", "place", "sohae", "launch_pad", "--bbox", "124.704", "39.659", "124.706",
       "39.661")
    with Store.open_home(home) as store:
        assert len(store.part_versions("sohae", "launch_pad")) == 2


def test_place_refusals_change_nothing(home):
    r = sw("site", "place", "sohae", "no_such_part", "--bbox", "1", "2", "3", "4")
    assert r.exit_code == 1 and "has no part 'no_such_part'" in r.output
    r = sw("site", "place", "sohae", "launch_pad", "--point", "124.705", "38.76",
           "--radius", "100")
    assert r.exit_code == 1 and "km outside site 'sohae'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = sw("site", "place", "nowhere", "launch_pad", "--bbox", "1", "2", "3", "4")
    assert r.exit_code == 1 and "no site 'nowhere'" in r.output
    with Store.open_home(home) as store:
        site = store.get_site("sohae")
        assert site is None or not site.placed_parts()
        assert store.part_versions("sohae") == []


def test_edit_rename_kind_add_remove(home):
    sw("site", "place", "sohae", "launch_pad", "--point", "124.705", "39.660", "--radius", "150")
    r = sw("site", "edit", "sohae", "--kind", "launch_pad", "gantry_tower")
    assert r.exit_code == 0, r.output
    r = sw("site", "edit", "sohae", "--rename", "launch_pad", "main_pad")
    assert r.exit_code == 0, r.output
    r = sw("site", "edit", "sohae", "--add", "helipad_1", "--kind", "helipad", "--point",
           "124.71", "39.66", "--radius", "30")
    assert r.exit_code == 0, r.output
    r = sw("site", "edit", "sohae", "--add", "shed", "--kind", "storage_area")
    assert r.exit_code == 0 and "unplaced" in r.output
    with Store.open_home(home) as store:
        site = store.get_site("sohae")
        assert site is not None
        assert site.part("main_pad").kind == "gantry_tower"
        assert site.part("helipad_1").placed and not site.part("shed").placed
        # the renamed part's history follows it
        assert [v.version for v in store.part_versions("sohae", "main_pad")] == [1]
        assert store.part_versions("sohae", "launch_pad") == []
    # removing asks first; without an answer nothing changes
    r = sw("site", "edit", "sohae", "--remove", "helipad_1", input="n\n")
    assert r.exit_code == 1
    r = sw("site", "edit", "sohae", "--remove", "helipad_1", "--yes")
    assert r.exit_code == 0, r.output
    with Store.open_home(home) as store:
        site = store.get_site("sohae")
        assert site is not None and "helipad_1" not in {p.name for p in site.parts}
        hist = store.part_versions("sohae", "helipad_1")
        assert [(v.version, v.placed) for v in hist] == [(1, True), (2, False)]


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "launch_pad", "raddar"], "did you mean 'radar'"),
    (["--rename", "launch_pad", "gantry_tower"], "already has a part 'gantry_tower'"),
    (["--rename", "launch_pad", "Bad Name"], "lower-case letters"),
    (["--rename", "nope", "x"], "has no part 'nope'"),
    (["--add", "x", "--kind", "nope"], "not known"),
    (["--add", "launch_pad", "--kind", "radar"], "already has a part"),
    (["--add", "x"], "needs --kind"),
    (["--add", "x", "--kind", "radar", "--point", "124.705", "38.76", "--radius", "5"],
     "km outside"),
    (["--remove", "nope", "--yes"], "has no part 'nope'"),
    (["--rename", "a", "b", "--remove", "c"], "exactly one"),
    (["--kind", "launch_pad"], "takes PART KIND"),
    (["--bbox", "1", "2", "3", "4", "--kind", "launch_pad", "radar"], "go with --add"),
])
def test_edit_errors_are_clear_and_change_nothing(home, args, message):
    sw("site", "place", "sohae", "launch_pad", "--point", "124.705", "39.660", "--radius", "150")
    with Store.open_home(home) as store:
        before = store.get_site("sohae")
        assert before is not None
        n = len(store.part_versions("sohae"))
    r = sw("site", "edit", "sohae", *args)
    assert r.exit_code != 0 and message in r.output, r.output
    with Store.open_home(home) as store:
        assert store.get_site("sohae") == before
        assert len(store.part_versions("sohae")) == n
