"""IARPA SMART site models: export of a watched site with its dates, import, the round
trip, and hostile files refused in one line naming the file (issue 15, item 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.errors import SiteError
from sitewatch.sites.smart import PHASES, read_site_model, site_model
from sitewatch.store import Store
from sitewatch.watch.pipeline import run_site, usable_dates
from test_pipeline import CLOUDY_AT, EVENT_AT, PARAMS, catalogue, test_site


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smart")
    home = tmp / "home"
    with Store.open_path(home / "sitewatch.db") as store:
        catalogue(store, tmp / "imgs", range(10))
        run_site(store, "testsite", PARAMS)
        dates = sorted({d[:10] for v in usable_dates(store, "testsite", PARAMS.hash).values()
                        for d in v})
    r = CliRunner().invoke(cli, ["--home", str(home), "site", "export", "testsite",
                                 "--smart", str(tmp / "out"), "--region-id", "KP_C001"])
    assert r.exit_code == 0, r.output
    path = tmp / "out" / "KP_C001_0001.geojson"
    return home, path, json.loads(path.read_text(encoding="utf-8")), dates


def test_export_is_a_smart_site_model(exported):
    _home, _path, model, dates = exported
    site, *obs = model["features"]
    p = site["properties"]
    assert site["geometry"]["type"] == "Polygon"
    assert p["type"] == "site" and p["site_id"] == "KP_C001_0001" and p["region_id"] == "KP_C001"
    assert p["mgrs"] == "51SXD" and p["originator"] == "sitewatch"
    assert p["model_content"] == "proposed" and p["status"] == "system_proposed"
    assert (p["start_date"], p["end_date"]) == (dates[0], dates[-1])
    assert [o["properties"]["observation_date"] for o in obs] == dates
    assert f"2024-{1 + CLOUDY_AT // 2:02d}-{1 + 14 * (CLOUDY_AT % 2):02d}" not in dates
    for o in obs:
        q = o["properties"]
        assert o["geometry"]["type"] == "MultiPolygon" and len(o["geometry"]["coordinates"]) == 2
        assert q["type"] == "observation" and q["sensor_name"]
        assert q["misc_info"]["sitewatch"]["parts"] == ["pad", "quiet"]
        phases = q["current_phase"].split(", ")
        assert len(phases) == 2 and set(phases) <= set(PHASES)
        assert q["is_occluded"] in ("False, False", "True, True", "False, True", "True, False")
        assert q["is_site_boundary"] == "False, False"
        assert 0 <= q["score"] <= 1
    event = f"2024-{1 + EVENT_AT // 2:02d}-{1 + 14 * (EVENT_AT % 2):02d}"
    by_date = {o["properties"]["observation_date"]: o["properties"] for o in obs}
    assert by_date[event]["current_phase"] == "Active Construction, No Activity"
    assert by_date[event]["score"] > 0.15
    assert by_date[dates[0]]["current_phase"] == "Unknown, Unknown"  # first: not compared


def test_import_round_trip_keeps_parts_and_dates(exported, tmp_path):
    home, path, model, dates = exported
    r = CliRunner().invoke(cli, ["--home", str(home), "site", "import", "--smart", str(path)])
    assert r.exit_code == 1 and "already in the catalogue" in r.output  # testsite exists
    r = CliRunner().invoke(cli, ["--home", str(home), "site", "import", "--smart", str(path),
                                 "--as", "copy"])
    assert r.exit_code == 0, r.output
    with Store.open_path(home / "sitewatch.db") as store:
        copy = store.get_site("copy")
        assert copy is not None
        assert store.current_part_versions("copy")["pad"] == 1
    original = test_site()
    assert [(p.name, p.kind) for p in copy.parts] == [(p.name, p.kind) for p in original.parts]
    for a, b in zip(original.parts, copy.parts, strict=True):
        assert a.geometry is not None and b.geometry is not None
        assert a.geometry.symmetric_difference(b.geometry).area < 1e-12
    prov = copy.properties["smart"]
    assert [o["date"] for o in prov["observations"]] == dates
    assert prov["site_id"] == "KP_C001_0001" and len(prov["sha256"]) == 64
    # A site with no run of its own exports the dates it was imported with.
    again = site_model(copy, [], region_id="KP_C001")
    got = [f["properties"]["observation_date"] for f in again["features"][1:]]
    assert got == dates
    assert [f["properties"]["current_phase"] for f in again["features"][1:]] == \
        [f["properties"]["current_phase"] for f in model["features"][1:]]


def _model(**change):
    site = {"type": "Feature", "properties": {"type": "site", "site_id": "KP_C001_0001",
                                              "region_id": "KP_C001"},
            "geometry": {"type": "Polygon", "coordinates": [[[124.70, 39.65], [124.72, 39.65],
                                                             [124.72, 39.67], [124.70, 39.67],
                                                             [124.70, 39.65]]]}}
    poly = [[[124.705, 39.655], [124.706, 39.655], [124.706, 39.656], [124.705, 39.655]]]
    obs = {"type": "Feature", "properties": {"type": "observation",
                                             "observation_date": "2024-01-02",
                                             "current_phase": "No Activity"},
           "geometry": {"type": "MultiPolygon", "coordinates": [poly]}}
    for k, v in change.items():
        where, key = k.split("__")
        target = site if where == "site" else obs
        if key == "geometry":
            target["geometry"] = v
        else:
            target["properties"][key] = v
    return {"type": "FeatureCollection", "features": [site, obs]}


def test_a_foreign_model_gets_numbered_parts(tmp_path):
    f = tmp_path / "m.geojson"
    f.write_text(json.dumps(_model()), encoding="utf-8")
    s = read_site_model(f)
    assert s.id == "kp_c001_0001" and [p.name for p in s.parts] == ["part_01"]
    assert s.parts[0].kind == "other"
    assert s.properties["smart"]["observations"][0]["current_phase"] == "No Activity"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ("[" * 200 + "]" * 200, "nested more than"),
    ('{"type": "Feature"}', "not a SMART site model"),
    (json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"type": "region"}, "geometry": None}]}),
     "a region model is not a site model"),
    (json.dumps({"type": "FeatureCollection", "features": []}), "0 'site' features"),
    (json.dumps({"type": "FeatureCollection", "features": [1]}), "not a GeoJSON Feature"),
    (json.dumps(_model(obs__observation_date="02/01/2024")), "is not YYYY-MM-DD"),
    (json.dumps(_model(obs__observation_date="2024-13-45")), "is not a date"),
    (json.dumps(_model(obs__current_phase="No Activity, Unknown, Unknown")),
     "3 phases for 1 polygons"),
    (json.dumps(_model(site__site_id=None)), "site_id must be a non-empty string"),
    (json.dumps(_model(obs__geometry={"type": "Point", "coordinates": [1, 2]})),
     "must be a MultiPolygon"),
    (json.dumps(_model(obs__geometry={"type": "MultiPolygon", "coordinates": [
        [[[124.705, 39.655], [124.706, 39.655], [124.706, 39.656]]]]})), "at least 4"),
    (json.dumps(_model(site__geometry={"type": "Polygon", "coordinates": [
        [[39.65, 124.70], [39.65, 124.72], [39.67, 124.72], [39.65, 124.70]]]})),
     "out of range"),
    (json.dumps(_model(obs__geometry={"type": "MultiPolygon", "coordinates": [
        [[[1.0, 1.0], [1.1, 1.0], [1.1, 1.1], [1.0, 1.0]]]]})), "wholly outside"),
])
def test_hostile_models_are_refused_in_one_line_naming_the_file(tmp_path, text, message):
    f = tmp_path / "hostile.geojson"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(SiteError, match=message) as got:
        read_site_model(f)
    assert str(f) in str(got.value) and "\n" not in str(got.value)
    r = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "site", "import", "--smart",
                                 str(f)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1


def test_a_bad_site_id_asks_for_another(tmp_path):
    f = tmp_path / "m.geojson"
    f.write_text(json.dumps(_model()), encoding="utf-8")
    with pytest.raises(SiteError, match="give another id with --as"):
        read_site_model(f, "Bad Id")
