import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import rng_image
from sitewatch import __version__
from sitewatch.cli.main import cli


@pytest.fixture
def run(home):
    runner = CliRunner()

    def _run(*args, ok=True):
        r = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if ok:
            assert r.exit_code == 0, r.output
        return r

    return _run


def test_version_and_help(run):
    assert __version__ in run("--version").output
    assert "ingest" in run("--help").output


def test_site_commands(run, tmp_path, home):
    out = run("site", "list", "--json").output
    ids = {s["id"] for s in json.loads(out)}
    assert {"sohae", "sohae-sim"} <= ids
    shown = run("site", "show", "sohae").output
    assert "unplaced" in shown and "launch_pad" in shown
    f = tmp_path / "mine.geojson"
    run("site", "init", "mine", "--lat", "39.66", "--lon", "124.705", "-o", f)
    assert run("site", "validate", f).output.startswith(f"{f}: valid site 'mine'")
    r = run("site", "init", "mine", "--lat", "39.66", "--lon", "124.705", "-o", f, ok=False)
    assert r.exit_code != 0 and "--overwrite" in r.output
    assert "added" in run("site", "add", f).output
    assert "mine" in run("site", "list").output
    assert not (tmp_path / "sitewatch.db").exists() and (home / "sitewatch.db").exists()


def test_bad_site_file_is_one_line_error(run, tmp_path):
    f = tmp_path / "bad.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"role": "site", "id": "x"}}]}))
    r = run("site", "validate", f, ok=False)
    assert r.exit_code == 1
    assert "the site boundary is required" in r.output and "Traceback" not in r.output


def test_ingest_and_scenes(run, tmp_path, make_tif):
    for i in range(2):
        make_tif(f"imgs/s{i}.tif", rng_image(i), tags={"ACQUISITION_TIME": f"2024-0{i+1}-05"},
                 descriptions=["blue", "green", "red", "nir"])
    r = run("ingest", "sohae-sim", tmp_path / "imgs")
    assert "2 added" in r.output
    assert "2 unchanged" in run("ingest", "sohae-sim", tmp_path / "imgs").output
    rows = json.loads(run("scenes", "sohae-sim", "--json").output)
    assert [s["id"] for s in rows] == ["s0", "s1"]
    assert rows[0]["acquired"] == "2024-01-05T00:00:00Z" and rows[0]["bands"][0]["name"] == "blue"
    table = run("scenes", "sohae-sim").output
    assert "s1" in table and "2 scene(s)" in table
    report = json.loads(run("ingest", "sohae-sim", tmp_path / "imgs", "--json").output)
    assert {s["status"] for s in report["scenes"]} == {"unchanged"}


def test_ingest_errors_are_clear(run, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("hello")
    r = run("ingest", "sohae", bad, ok=False)
    assert r.exit_code == 1 and "bad.tif: not a readable raster image" in r.output
    assert "Traceback" not in r.output
    png = tmp_path / "x.png"
    import rasterio

    with rasterio.open(png, "w", driver="PNG", width=10, height=10, count=1,
                       dtype="uint8") as ds:
        ds.write(np.zeros((1, 10, 10), np.uint8))
    r = run("ingest", "sohae", png, ok=False)
    assert "acquisition time unknown" in r.output and "--time" in r.output
    r = run("ingest", "sohae", png, "--time", "yesterday", ok=False)
    assert "cannot read time 'yesterday'" in r.output
    r = run("scenes", "nowhere", ok=False)
    assert "no site 'nowhere'" in r.output


def test_load_writes_scene_on_site_grid(run, tmp_path, make_tif):
    import rasterio

    make_tif("imgs/s0.tif", rng_image(0), tags={"ACQUISITION_TIME": "2024-01-05"},
             descriptions=["blue", "green", "red", "nir"], nodata=0)
    run("ingest", "sohae-sim", tmp_path / "imgs")
    out = tmp_path / "s0_grid.tif"
    r = run("load", "sohae-sim", "--scene", "s0", "--bands", "red,nir",
            "-o", out)
    assert str(out) in r.output
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("red", "nir", "quality")
        assert ds.crs.to_epsg() == 32651 and ds.res == (10.0, 10.0)
        q = ds.read(3)
        assert {0.0, 1.0} <= set(q.ravel().tolist())  # observed inside, no data outside
    r = run("load", "sohae-sim", "--scene", "s0", "-o", out, ok=False)
    assert "exists" in r.output
    r = run("load", "sohae-sim", "--scene", "nope", "-o", tmp_path / "n.tif", ok=False)
    assert "has no scene 'nope'" in r.output
    r = run("load", "sohae-sim", "--scene", "s0", "-o", tmp_path / "x.png", ok=False)
    assert "name it .tif" in r.output
    r = run("load", "sohae-sim", "--scene", "s0", "--resolution", "0", "-o",
            tmp_path / "z.tif", ok=False)
    assert "positive number" in r.output
    r = run("load", "sohae-sim", "--scene", "s0", "--resolution", "0.05", "-o",
            tmp_path / "big.tif", ok=False)
    assert "GiB" in r.output and "Traceback" not in r.output
    r = run("--home", "/proc/nope", "site", "add", tmp_path / "x.geojson", ok=False)
    assert r.exit_code != 0 and "Traceback" not in r.output


HOSTILE = "[/bold] [red]x[/red] <script>alert(1)</script> \x1b[31m"


def test_hostile_text_is_shown_literally(run, tmp_path, make_tif):
    """Names, labels, paths and metadata may hold rich markup or HTML: shown as text."""
    from sitewatch.sites.site import builtin_site, site_from_geojson

    doc = builtin_site("sohae-sim").to_geojson()
    doc["features"][0]["properties"]["name"] = HOSTILE
    doc["features"][0]["properties"]["note"] = "[/]"
    doc["features"][1]["properties"]["label"] = "[/nope] label"
    f = tmp_path / "[odd].geojson"
    f.write_text(json.dumps(doc))
    assert site_from_geojson(doc).name == HOSTILE
    run("site", "validate", f)
    run("site", "add", f)
    listed = run("site", "list").output
    assert "[red]x[/red]" in listed
    shown = run("site", "show", "sohae-sim").output
    assert "[/bold] [red]x[/red] <script>" in shown and "[/nope] label" in shown
    make_tif("[imgs]/a.tif", rng_image(0), tags={"ACQUISITION_TIME": "2024-01-05",
                                                "SENSOR": "[/x]"},
             descriptions=["blue", "green", "red", "nir"])
    run("ingest", "sohae-sim", tmp_path / "[imgs]")
    assert "[/x]" in run("scenes", "sohae-sim").output


@pytest.mark.parametrize("site_id", ["sohae", "sohae-sim"])
def test_every_listed_site_works_in_every_command_without_site_add(run, tmp_path, site_id):
    """A site that `site list` shows is registered on first use by any command."""
    listed = {s["id"] for s in json.loads(run("site", "list", "--json").output)}
    assert site_id in listed
    run("note", site_id, "The shelter was moved off the test stand", "--date", "2024-05-01",
        "--activity", "shelter_moved")
    report = tmp_path / "report.txt"
    report.write_text("Imagery shows preparations under way at the launch pad.\n")
    run("collateral", "add", site_id, str(report), "--published", "2024-05-02")
    got = json.loads(run("assess", site_id, "--at", "2024-05-03", "--json").output)
    assert got["site"] == site_id
    run("brief", site_id, "--out", str(tmp_path / "brief"))
    assert (tmp_path / "brief" / "brief.html").exists()
    r = run("run", site_id, ok=False)  # no imagery yet: says so, naming the site
    assert r.exit_code == 1 and "has no georeferenced scenes" in r.output
    (row,) = [s for s in json.loads(run("site", "list", "--json").output) if s["id"] == site_id]
    assert row["origin"] == "built-in"


def test_site_show_prints_coordinates_with_their_hemisphere(run, tmp_path):
    """A western longitude is "106.91418 W", not "-106.91418 E" (issue 18, item 4)."""
    f = tmp_path / "west.geojson"
    run("site", "init", "west", "--lat", "39.66", "--lon", "-106.91418", "-o", f)
    shown = run("site", "show", f).output
    assert "39.66000 N, 106.91418 W" in shown and "-106" not in shown
    g = tmp_path / "south.geojson"
    run("site", "init", "south", "--lat", "-5.25", "--lon", "12.5", "-o", g)
    assert "5.25000 S, 12.50000 E" in run("site", "show", g).output


def test_old_site_option_still_works_with_a_warning(run, tmp_path, make_tif):
    """`ingest PATH... --site S` (every argument a path), `scenes --site S`,
    `load --site S` and `collateral add FILE --site S` keep working, and each says on stderr
    how to write it now (docs/cli.md)."""
    for i in range(2):
        make_tif(f"imgs/s{i}.tif", rng_image(i), tags={"ACQUISITION_TIME": f"2024-0{i+1}-05"},
                 descriptions=["blue", "green", "red", "nir"])
    r = run("ingest", tmp_path / "imgs" / "s0.tif", tmp_path / "imgs" / "s1.tif",
            "--site", "sohae-sim")
    assert "2 added" in r.stdout
    assert "--site is deprecated: give the site first: cli ingest sohae-sim PATH..." in r.stderr
    r = run("scenes", "--site", "sohae-sim", "--json")
    assert [s["id"] for s in json.loads(r.stdout)] == ["s0", "s1"]
    assert "deprecated" in r.stderr
    out = tmp_path / "s0.tif"
    r = run("load", "--site", "sohae-sim", "--scene", "s0", "--out", out)
    assert out.exists() and "give the site first" in r.stderr
    # with --site every positional value is a path, so a missing one is named as a path
    r = run("ingest", tmp_path / "nope.tif", "--site", "sohae-sim", ok=False)
    assert r.exit_code == 2 and "nope.tif" in r.output and "does not exist" in r.output
    r = run("load", "sohae-sim", "--site", "sohae-sim", "--scene", "s0", "-o", out, ok=False)
    assert r.exit_code == 2 and "given twice" in r.output


def test_site_first_needs_the_site_and_the_paths(run, tmp_path):
    r = run("ingest", ok=False)
    assert r.exit_code == 2 and "Missing argument 'SITE'" in r.output
    r = run("ingest", "sohae-sim", ok=False)
    assert r.exit_code == 2 and "Missing argument 'PATH...'" in r.output
    r = run("collateral", "add", "sohae", ok=False)
    assert r.exit_code == 2 and "Missing argument 'FILE...'" in r.output
    assert "--site" not in run("ingest", "--help").output.split("Options:")[1]
