import json

import pytest
import shapely

from sitewatch.errors import SiteError
from sitewatch.sites.site import (
    builtin_site,
    builtin_site_ids,
    load_site,
    loads_site,
    new_site,
    site_from_geojson,
)


def fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def boundary(props=None, coords=None):
    coords = coords or [[[124.70, 39.65], [124.71, 39.65], [124.71, 39.67], [124.70, 39.67],
                         [124.70, 39.65]]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coords},
            "properties": {"role": "site", "id": "t1", "name": "Test", **(props or {})}}


def part(name="pad", kind="launch_pad", coords=None, **props):
    coords = coords or [[[124.702, 39.655], [124.704, 39.655], [124.704, 39.657],
                         [124.702, 39.657], [124.702, 39.655]]]
    geom = None if coords == "none" else {"type": "Polygon", "coordinates": coords}
    return {"type": "Feature", "geometry": geom,
            "properties": {"name": name, "kind": kind, **props}}


def test_builtin_catalogue():
    assert {"sohae", "sohae-sim"} <= set(builtin_site_ids())
    sohae = builtin_site("sohae")
    assert sohae.name == "Sohae Satellite Launching Station"
    lon, lat = sohae.center
    assert abs(lon - 124.705) < 0.001 and abs(lat - 39.660) < 0.001
    # Positions of Sohae's parts are not public knowledge: never guessed.
    assert sohae.parts and sohae.placed_parts() == []
    assert "Tongchang-ri" in sohae.properties["aliases"]
    sim = builtin_site("sohae-sim")
    assert sim.simulated and len(sim.placed_parts()) == len(sim.parts) >= 8
    assert all(p.geometry.within(sim.boundary) for p in sim.parts)
    with pytest.raises(SiteError, match="no built-in site 'nope'"):
        builtin_site("nope")


def test_roundtrip_and_unplaced(tmp_path):
    site = site_from_geojson(fc(boundary(), part(), part("fuel", "fuel_storage", "none", x=1)))
    assert [p.name for p in site.unplaced_parts()] == ["fuel"]
    assert site.part("fuel").properties == {"x": 1}
    f = tmp_path / "s.geojson"
    f.write_text(site.dumps())
    again = load_site(f)
    assert again == site or again.to_geojson() == site.to_geojson()
    assert json.loads(f.read_text())["type"] == "FeatureCollection"


def test_line_and_point_parts_are_buffered():
    line = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [
        [124.701, 39.66], [124.709, 39.66]]}, "properties": {"name": "rail", "kind": "rail_line",
                                                           "width_m": 20}}
    site = site_from_geojson(fc(boundary(), line))
    fp = site.part("rail").footprint("EPSG:32651")
    length = site.part("rail").footprint("EPSG:32651").length / 2  # ~ line length
    assert fp.area == pytest.approx(length * 20, rel=0.05)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "must be a GeoJSON FeatureCollection"),
        (fc(part()), "no feature with properties.role = 'site'"),
        (fc(boundary(), boundary()), "a second feature with role 'site'"),
        (fc(boundary(), part(kind="lanch_pad")),
         r"feature 1 \('pad'\): field 'properties.kind' is 'lanch_pad'.*did you mean 'launch_pad'"),
        (fc(boundary(), part(), part()), r"feature 2 \('pad'\): duplicate part name 'pad'"),
        (fc(boundary(coords=[[[124.70, 39.65], [124.71, 39.67], [124.71, 39.65],
                              [124.70, 39.67], [124.70, 39.65]]])),
         "field 'geometry' is invalid: Self-intersection"),
        (fc(boundary(coords=[[[39.65, 124.70], [39.65, 124.71], [39.67, 124.71],
                              [39.67, 124.70], [39.65, 124.70]]])),
         r"out of range \(RFC 7946 order is \[longitude, latitude\]: are they swapped\?\)"),
        (fc(boundary(), part(coords=[[[39.655, 124.702], [39.655, 124.704], [39.657, 124.704],
                                      [39.657, 124.702], [39.655, 124.702]]])), "swapped"),
        (fc(boundary(), part(coords=[[[24.702, 39.655], [24.704, 39.655], [24.704, 39.657],
                                      [24.702, 39.657], [24.702, 39.655]]])),
         "lies wholly outside the site boundary"),
        (fc(boundary({"id": "Bad Id!"})), "field 'properties.id' is 'Bad Id!'"),
        (fc(boundary(), part(name=None)), "field 'properties.name' is None"),
        (fc({"type": "Feature", "geometry": None, "properties": {"role": "site", "id": "x"}}),
         "the site boundary is required"),
        (fc(boundary(), {"type": "Feature", "geometry": {"type": "Polygon"},
                         "properties": {"name": "p", "kind": "other"}}),
         "'geometry.coordinates' is missing"),
    ],
)
def test_validation_errors_name_feature_and_field(doc, message):
    with pytest.raises(SiteError, match=message):
        site_from_geojson(doc, "my.geojson")


def test_bad_json_reports_line(tmp_path):
    f = tmp_path / "broken.geojson"
    f.write_text('{"type": "FeatureCollection",\n "features": [,]}')
    with pytest.raises(SiteError, match=r"broken.geojson: not valid JSON \(line 2"):
        load_site(f)
    with pytest.raises(SiteError, match="no such site file"):
        load_site(tmp_path / "missing.geojson")


def test_new_site_template():
    s = new_site("mysite", 124.705, 39.66, half_size_m=1000)
    assert s.placed_parts() == [] and "launch_pad" in [p.name for p in s.parts]
    from sitewatch.imagery.geo import to_crs

    area = to_crs(s.boundary, "EPSG:4326", "EPSG:32651").area
    assert area == pytest.approx(4e6, rel=0.01)
    assert loads_site(s.dumps()).id == "mysite"
    with pytest.raises(SiteError):
        new_site("x", 200.0, 39.0)
    assert isinstance(s.boundary, shapely.Polygon)


@pytest.mark.parametrize(
    ("coords", "message"),
    [
        ([[[True, 39.65], [124.71, 39.65], [124.71, 39.67], [124.70, 39.65]]], "bad position"),
        ([[[10**400, 39.65], [124.71, 39.65], [124.71, 39.67], [124.70, 39.65]]],
         "too large|out of range"),
        ([[[-179.99, 10.0], [179.99, 10.0], [179.99, 10.1], [-179.99, 10.0]]],
         "antimeridian"),
    ],
)
def test_hostile_coordinates(coords, message):
    with pytest.raises(SiteError, match=message):
        site_from_geojson(fc(boundary(coords=coords)))


def test_deep_nesting_and_part_sizes():
    deep = [[[[[[[[[124.7, 39.66]]]]]]]]]
    with pytest.raises(SiteError, match="nested too deeply|malformed"):
        site_from_geojson(fc(boundary(coords=deep)))
    for bad in ("big", None, -5, float("inf")):
        with pytest.raises(SiteError, match=r"'properties.radius_m'.*positive number"):
            site_from_geojson(fc(boundary(), part(radius_m=bad)))
    with pytest.raises(SiteError, match="antimeridian"):
        new_site("x", 179.99, 10.0)
    with pytest.raises(SiteError, match="between 0 and 200 km"):
        new_site("x", 124.7, 39.6, half_size_m=1e12)


# ------------------------------------------------------------- issue 14: hostile site files


@pytest.mark.parametrize("bad", ["t1\n", "t1 ", " t1", "\nt1", "t\x1b1", "t1\x00", "",
                                 "t1\t", "t\u202e1"])
def test_ids_and_part_names_with_whitespace_or_controls_are_refused(bad):
    with pytest.raises(SiteError, match=r"my.geojson: feature 0.*'properties.id'.*no spaces"):
        site_from_geojson(fc(boundary({"id": bad})), "my.geojson")
    with pytest.raises(SiteError, match=r"my.geojson: feature 1.*'properties.name'"):
        site_from_geojson(fc(boundary(), part(bad)), "my.geojson")


RING = [[124.702, 39.655], [124.704, 39.655], [124.704, 39.657], [124.702, 39.657]]


@pytest.mark.parametrize(
    ("coords", "message"),
    [
        ([RING], "exterior ring is not closed"),  # unclosed: shapely would close it
        ([RING[:2] + RING[:1]], "exterior ring has 3 position"),  # too few points
        ([[*RING, RING[0]], RING[1:]], "hole 1 has 3 position"),
        ([[[124.702, 39.655], [124.704, 39.657], [124.704, 39.655], [124.702, 39.657],
           [124.702, 39.655]]], "invalid: Self-intersection"),  # a bow tie
    ],
)
def test_bad_rings_are_refused_naming_file_and_part(coords, message):
    with pytest.raises(SiteError, match=rf"my.geojson: feature 1 \('pad'\): .*{message}"):
        site_from_geojson(fc(boundary(), part("pad", coords=coords)), "my.geojson")
    multi = {"type": "Feature", "properties": {"name": "pad", "kind": "launch_pad"},
             "geometry": {"type": "MultiPolygon", "coordinates": [coords]}}
    with pytest.raises(SiteError, match=rf"my.geojson: feature 1 \('pad'\): .*{message}"):
        site_from_geojson(fc(boundary(), multi), "my.geojson")


def test_deep_or_huge_json_is_one_line(tmp_path):
    deep = tmp_path / "deep.geojson"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SiteError, match=r"deep.geojson: not a site file: .*nested"):
        load_site(deep)
    big = tmp_path / "big.geojson"
    doc = fc(boundary(), part())
    big.write_text(json.dumps(doc).replace('"kind": "launch_pad"',
                                           '"kind": "launch_pad", "n": ' + "9" * 5000))
    with pytest.raises(SiteError, match=r"big.geojson: not a site file: .*digits"):
        load_site(big)
    # under the parser's own limit, but deeper than any site file: refused before anything
    # recurses through it
    nested: dict = {}
    cur = nested
    for _ in range(500):
        cur["x"] = {}
        cur = cur["x"]
    doc = fc(boundary({"extra": nested}), part())
    mid = tmp_path / "mid.geojson"
    mid.write_text(json.dumps(doc))
    with pytest.raises(SiteError, match=r"mid.geojson: .*nested more than 64 levels"):
        load_site(mid)


def test_cli_site_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from sitewatch.cli.main import cli

    files = {"deep.geojson": "[" * 100_000 + "]" * 100_000,
             "digits.geojson": '{"type": "FeatureCollection", "features": [' + "1" * 5000 + "]}",
             "newline.geojson": json.dumps(fc(boundary({"id": "t1\n"}))),
             "open.geojson": json.dumps(fc(boundary(), part("pad", coords=[RING])))}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        r = CliRunner().invoke(cli, ["site", "validate", str(tmp_path / name)])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (name, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and name in lines[0], lines


def test_show_many_parts_prints_each_once(tmp_path):
    """`site show` of a site with many parts (the quadratic case of issue 14 was 60,000):
    every part is listed once; plain columns instead of a rich table past a size."""
    from click.testing import CliRunner

    from sitewatch.cli.main import cli

    n = 1500
    feats = [boundary()]
    for i in range(n):
        feats.append(part(f"p{i}", "other"))
    f = tmp_path / "many.geojson"
    f.write_text(json.dumps(fc(*feats)))
    r = CliRunner().invoke(cli, ["site", "show", str(f)])
    assert r.exit_code == 0, r.output
    names = [ln.split()[0] for ln in r.output.splitlines() if ln.startswith("p")][1:]
    assert r.output.count("\npart ") == 1  # one header
    assert names == [f"p{i}" for i in range(n)]


def test_json_depth_counts_brackets_outside_strings():
    from sitewatch.sites.site import _json_depth

    text = json.dumps({"a": '[[["[', "b": [[1]], "c": "x\\y\"]"})
    assert _json_depth(text) == 3 and _json_depth("[]") == 1 and _json_depth("1") == 0


def test_part_lookup_is_by_name_and_errors_stay_short():
    feats = [boundary()] + [part(f"p{i}", "other") for i in range(300)]
    site = site_from_geojson(fc(*feats))
    assert site.part("p299").name == "p299" and site.part("p0") is site.parts[0]
    with pytest.raises(SiteError, match=r"no part 'nope' \(parts: p0, .*p49 and 250 more\)"):
        site.part("nope")


def test_site_set_changes_type_and_name_and_the_assessment_follows(tmp_path):
    """A site made by ``ingest`` is a facility (change only); ``site set --type`` makes it a
    launch site, whose assessment is then made; bad input is refused and changes nothing."""
    from click.testing import CliRunner

    from sitewatch.cli.main import cli
    from sitewatch.sites.site import bare_site
    from sitewatch.store import Store
    from sitewatch.warning.record import assess_site

    home = tmp_path / "home"
    with Store.open_home(home) as store:
        store.put_site(bare_site("plant", new_site("x", 124.7, 39.66).boundary, "test"), "file")
        assert assess_site(store, store.use_site("plant")).launch.level == "not_applicable"
    run = CliRunner().invoke
    r = run(cli, ["--home", str(home), "site", "set", "plant", "--type", "launch_site",
                  "--name", "A  plant\n by the sea"])
    assert r.exit_code == 0, r.output
    with Store.open_home(home) as store:
        s = store.get_site("plant")
        assert s.site_type == "launch_site" and s.name == "A plant by the sea"
        assert assess_site(store, s).launch.level != "not_applicable"
    for args, code, words in ((["plant"], 2, "nothing to set"),
                              (["plant", "--type", "moonbase"], 2, "moonbase"),
                              (["nowhere", "--type", "facility"], 1, "nowhere"),
                              (["plant", "--name", "\x1b[31mred"], 1, "printable")):
        r = run(cli, ["--home", str(home), "site", "set", *args])
        assert r.exit_code == code and words in r.output, (args, r.output)
    with Store.open_home(home) as store:
        s = store.get_site("plant")
        assert s.site_type == "launch_site" and s.name == "A plant by the sea"
