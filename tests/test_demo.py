"""The demo end to end (about 15 s): simulate, ingest, co-register, compare, page."""

import json
import re

from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.sim.demo import run_demo


def test_demo_shows_planted_events(home, tmp_path):
    res = run_demo(home, workdir=tmp_path / "work")
    assert res.ingest.count("added") == len(res.scenario.scenes) >= 30
    # Co-registration recovers the simulator's shifts.
    errors = sorted(c.error for c in res.shifts)
    assert errors[len(errors) // 2] < 0.15 and errors[-1] < 0.5
    # Every co-registration is recorded with its scene in the catalogue.
    from sitewatch.store import Store

    with Store.open_home(home) as store:
        regs = store.registrations("sohae-sim")
    assert len(regs) >= len(res.shifts) and {"10m", "3m"} <= {r["grid"] for r in regs}
    assert all(r["status"] in ("ok", "flagged", "rejected") for r in regs)
    # The fully clouded scene is reported as not usable, not compared.
    assert any("observed" in why for _, why in res.skipped)
    # Most planted events show at their part in the first pair that spans them, and the
    # flag rate where nothing happened stays low.
    hits = sum(c.detected for c in res.checks)
    assert hits >= 0.7 * len(res.checks)
    quiet = [pc for p in res.pairs for name, pc in p.parts.items()
             if not name.startswith("(") and pc.observed and not p.truth_at(name)]
    false_flags = sum(pc.changed_fraction >= 0.05 for pc in quiet) / len(quiet)
    assert false_flags < 0.15
    sm = res.summary()
    assert sm["quiet_flagged"] == false_flags and sm["event_flagged"] > 0.5
    assert sm["event_checks_hit"] == hits
    page = res.html.read_text()
    assert "SIMULATED DATA" in page and "E3" in page
    # The demo ends with the brief of the simulated site.
    brief = res.brief.read_text(encoding="utf-8")
    assert "SIMULATED SITE" in brief and "Figure 1." in brief and "Key findings" in brief
    assert len(re.findall(r'<img src="pair\d+_', page)) == 3 * len(res.pairs)
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (res.html.parent / src).stat().st_size > 100

    # The watch pipeline alerts the planted changes at their parts within one usable scene,
    # with few false alarms.
    card = res.scorecard.summary()
    assert card["detection_rate"] >= 0.8 and card["false_alarms_per_part_year"] <= 1.0
    assert {a["part"] for a in res.alerts} >= {"construction_compound", "support_compound",
                                               "vertical_engine_test_stand", "launch_pad"}

    # Running it again catalogues nothing new (the scenario is deterministic), processes
    # nothing again and raises no alert twice.
    again = run_demo(home, workdir=tmp_path / "work", html=False)
    assert again.ingest.count("unchanged") == len(again.scenario.scenes)
    assert again.run.processed == [] and again.run.alerts == {"new": [], "updated": []}
    assert [a["id"] for a in again.alerts] == [a["id"] for a in res.alerts]

    # The story: the assessment moves as alerts and reports arrive along the simulated year.
    story = res.story
    assert story[0].launch == "no_evidence" and len(story) >= 6
    assert any("report:" in r.what for r in story)
    scar = next(r for r in story if "vertical_engine_test_stand" in r.what)
    assert scar.engine_test == "recent_test"  # the burn-scar alert reads as a recent test
    last = story[-1]
    assert "navigation notice" in last.what and last.launch == "imminent" and last.window
    assert max(r.launch_likelihood for r in story[:-1]) < last.launch_likelihood
    assert again.story == story  # reports added again are not doubled


def test_demo_cli_prints_table_and_page(home, tmp_path, monkeypatch):
    # Without the seed articles the demo tells its story with its own stand-ins.
    monkeypatch.setenv("SITEWATCH_SEEDS", str(tmp_path / "no-seeds-here"))
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path / "w")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "planted changes" in r.output and "E5" in r.output and "page:" in r.output
    assert "SIMULATED stand-ins" in r.output and "navigation notice" in r.output
    assert "brief:" in r.output
    assert re.search(r"alerts: \d+ of \d+ planted changes detected", r.output)
    assert "co-registered" in r.output
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path / "w"),
                                "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["simulated"] is True and len(data["event_checks"]) == 10
    assert {s["status"] for s in data["catalogue"]["scenes"]} == {"unchanged"}
    assert data["pairs"][0]["parts"]["launch_pad"]["observed_fraction"] > 0.5
    assert data["summary"]["event_checks"] == 10
    assert data["alert_score"]["summary"]["changes"] == len(data["alert_score"]["changes"])
    assert data["alerts"] and data["run"]["reused"] == len(data["catalogue"]["scenes"])
    rows = data["story"]["rows"]
    assert rows[-1]["launch"] == "imminent" and "stand-ins" in data["story"]["reports"]


def test_demo_after_another_scenario_does_not_keep_dangling_scenes(home, tmp_path):
    run_demo(home, workdir=tmp_path / "one", html=False)
    import shutil

    shutil.rmtree(tmp_path / "one")  # the earlier scenario's files are gone
    res = run_demo(home, workdir=tmp_path / "two", html=False)
    from sitewatch.store import Store

    with Store.open_home(home) as store:
        scenes = store.scenes("sohae-sim")
    assert len(scenes) == len(res.scenario.scenes)
    assert all("two" in s.source for s in scenes)
    # The earlier scenario's results went with its scenes: everything was processed anew.
    assert len(res.run.processed) == len(scenes) and res.alerts
