"""The README's ``sohae`` examples work as written (those that need no internet), in one
home, in the README's order: show, place, history, export, add a source, note, assess,
brief."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sitewatch.cli.main import cli


def test_the_readme_sohae_commands_work_as_written(tmp_path):
    home = ["--home", str(tmp_path / "home")]
    out = tmp_path / "out"

    def ok(*args: str) -> str:
        r = CliRunner().invoke(cli, [*home, *args])
        assert r.exit_code == 0, f"sitewatch {' '.join(args)}:\n{r.output}"
        return r.output

    assert "unplaced" in ok("site", "show", "sohae")
    ok("site", "place", "sohae", "launch_pad", "--point", "124.705", "39.660", "--radius", "150")
    assert "launch_pad" in ok("site", "history", "sohae", "launch_pad")
    ok("site", "export", "sohae", "--smart", str(out))
    smart = [json.loads(p.read_text()) for p in out.glob("*.geojson")]
    assert smart and smart[0]["features"][0]["properties"]["type"] == "site"
    ok("source", "add", "sohae", "--preset", "s2-l2a", "--max-cloud", "40")
    assert "sentinel-2-l2a" in ok("source", "list", "sohae")
    ok("note", "sohae", "Shelter pulled back from the stand", "--part",
       "vertical_engine_test_stand", "--date", "2024-05-02")
    ok("assess", "sohae", "--at", "2024-05-03")
    ok("brief", "sohae", "--out", str(tmp_path / "brief"))
    assert (tmp_path / "brief" / "brief.html").exists()
