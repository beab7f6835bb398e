"""The demo end to end: simulate, ingest, one pipeline run, read back, brief.

The demo runs once per session (the ``demo_run`` fixture in conftest.py); the tests here read
its result and its home, and re-run it there once through the CLI (nothing is new then).
"""

import json
import re
import shutil
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.sim import demo as demo_mod
from sitewatch.sim.demo import SITE_ID, watch_scenario
from sitewatch.sim.simulate import simulate_scenario
from sitewatch.store import Store
from sitewatch.watch.pipeline import RunParams

PLANTED = {"E1", "E2", "E3", "E4", "E5"}


def test_demo_finds_the_planted_events(demo_run):
    res = demo_run.result
    assert res.ingest.count("added") == len(res.scenario.scenes) >= 30
    # Co-registration recovers the simulator's shifts.
    errors = sorted(c.error for c in res.shifts)
    assert len(errors) >= 20 and errors[len(errors) // 2] < 0.15 and errors[-1] < 0.5
    # The fully clouded scene is reported as not usable, not compared.
    assert any(why.startswith("0% of the site observed") for _, why in res.skipped)
    # Every planted event shows at its parts in the first pair that spans it (at one
    # resolution at least), and the flag rate where nothing happened stays low.
    checks = res.checks
    assert len(checks) == 2 * len(PLANTED)
    assert {c.event.id for c in checks if c.detected} == PLANTED
    assert sum(c.detected for c in checks) >= 0.8 * len(checks)
    quiet = [pc for p in res.pairs for name, pc in p.parts.items()
             if not name.startswith("(") and pc.observed and not p.truth_at(name)]
    false_flags = sum(pc.changed_fraction >= 0.05 for pc in quiet) / len(quiet)
    assert false_flags < 0.05
    sm = res.summary()
    assert sm["quiet_flagged"] == false_flags and sm["event_flagged"] > 0.7
    assert sm["event_checks_hit"] == sum(c.detected for c in checks)
    # The watch pipeline alerts every planted change at its parts within one usable scene,
    # with few false alarms.
    card = res.scorecard.summary()
    assert card["detection_rate"] >= 0.8 and card["false_alarms_per_part_year"] <= 1.0
    assert {h.change.event for h in res.scorecard.hits if h.alert} == PLANTED
    assert {a.part for a in res.alerts} >= {"construction_compound", "support_compound",
                                               "vertical_engine_test_stand", "launch_pad"}
    # The brief is the demo's page; there is no other.
    brief = res.brief.read_text(encoding="utf-8")
    assert res.brief.parent == demo_run.work / "brief"
    assert "SIMULATED SITE" in brief and "Figure 1." in brief and "Key findings" in brief
    assert not (demo_run.work / "report").exists()


def test_demo_shows_what_the_pipeline_stored(demo_run):
    """One pipeline: every scene is co-registered once, by the pipeline, and the demo's
    tables are the stored observations and registrations, not a second computation."""
    res = demo_run.result
    params = RunParams(method=demo_mod.DEMO_METHOD)
    with Store.open_home(demo_run.home) as store:
        regs = store.registrations(SITE_ID)
        obs = store.observations(SITE_ID, params.hash, reference="previous")
        processed = store.processed(SITE_ID, params.hash)
    assert {r.grid for r in regs} == {"optical-10m", "optical-3m"}
    assert len({r.scene_id for r in regs}) == len(regs)  # registered once each
    stored = {(r.scene_id, r.part): r for r in obs}
    assert len(stored) == sum(len(p.parts) for p in res.pairs) > 0
    for p in res.pairs:
        for name, pc in p.parts.items():
            row = stored[(p.after.id, name)]
            assert row.reference_id == p.before.id
            assert row.observed_fraction == pc.observed_fraction
            assert row.changed_fraction == pytest.approx(pc.changed_fraction, nan_ok=True)
    by_scene = {r.scene_id: r for r in regs}
    for c in res.shifts:
        assert (c.estimated.dy, c.estimated.dx) == (by_scene[c.scene].dy,
                                                    by_scene[c.scene].dx)
    unusable = {k for k, v in processed.items() if not v.usable}
    assert {sc.id for sc, _ in res.skipped} == unusable


def test_demo_story_moves_with_the_evidence(demo_run):
    story = demo_run.result.story
    assert "SIMULATED stand-ins" in demo_run.result.story_sources
    assert story[0].launch == "no_evidence" and len(story) >= 6
    assert any("report:" in r.what for r in story)
    scar = next(r for r in story if "vertical_engine_test_stand" in r.what)
    assert scar.engine_test == "recent_test"  # the burn-scar alert reads as a recent test
    last = story[-1]
    assert "navigation notice" in last.what and last.launch == "imminent" and last.window
    assert max(r.launch_likelihood for r in story[:-1]) < last.launch_likelihood


def test_demo_cli_rerun_adds_nothing_and_prints_table_and_brief(demo_run):
    res = demo_run.result
    with Store.open_home(demo_run.home) as store:
        alerts_before = [(a.id, a.status) for a in store.alerts(SITE_ID)]
        reports_before = len(store.reports(SITE_ID))
    r = CliRunner().invoke(
        cli, ["--home", str(demo_run.home), "demo", "--workdir", str(demo_run.work)],
        env={"SITEWATCH_SEEDS": str(demo_run.work / "no-seeds-here")}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    n = len(res.scenario.scenes)
    assert f"catalogued {n} scenes of site 'sohae-sim' ({n} unchanged)" in r.output
    assert "changed % of each part's observed pixels, sim-10m" in r.output
    assert "planted changes" in r.output and "E5" in r.output and "co-registered" in r.output
    assert re.search(r"alerts: \d+ of \d+ planted changes detected", r.output)
    assert "SIMULATED stand-ins" in r.output and "navigation notice" in r.output
    assert f"brief: {demo_run.work / 'brief' / 'brief.html'}" in r.output.replace("\n", "")
    assert "page:" not in r.output
    flat = " ".join(r.output.split())
    assert f"see it in the browser: sitewatch --home {demo_run.home} serve, then open " \
           "http://127.0.0.1:8000/sites/sohae-sim" in flat
    # The re-run processed nothing again and raised no alert twice; reports were not doubled.
    with Store.open_home(demo_run.home) as store:
        assert [(a.id, a.status) for a in store.alerts(SITE_ID)] == alerts_before
        assert len(store.reports(SITE_ID)) == reports_before
        run = store.last_run(SITE_ID, finished=True)
    assert run is not None and run.summary is not None and run.summary.processed == 0
    assert run.summary.reused == n
    assert run.summary.new_alerts == run.summary.updated_alerts == 0


def test_demo_cli_json(demo_run, monkeypatch):
    # The JSON is the result's to_dict: checked on the session's run, without a re-run.
    monkeypatch.setattr(demo_mod, "run_demo", lambda *a, **k: demo_run.result)
    r = CliRunner().invoke(cli, ["--home", str(demo_run.home), "demo", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert "page" not in data and data["brief"].endswith("brief.html")
    assert data["simulated"] is True and len(data["event_checks"]) == 10
    assert {s["status"] for s in data["catalogue"]["scenes"]} == {"added"}
    assert data["pairs"][0]["parts"]["launch_pad"]["observed_fraction"] > 0.5
    assert data["summary"]["event_checks"] == 10
    assert data["alert_score"]["summary"]["changes"] == len(data["alert_score"]["changes"])
    assert [a["id"] for a in data["alerts"]] == [a.id for a in demo_run.result.alerts]
    assert len(data["run"]["processed"]) == len(data["catalogue"]["scenes"])
    assert data["story"]["rows"] == [asdict(x) for x in demo_run.result.story]
    assert data["coregistration"] and all(c["error_px"] < 0.5 for c in data["coregistration"])


def test_demo_after_another_scenario_does_not_keep_dangling_scenes(tmp_path):
    small = {"n_dates_10m": 4, "n_dates_3m": 0}
    one = simulate_scenario(tmp_path / "one", seed=0, **small)
    with Store.open_home(tmp_path / "home") as store:
        watch_scenario(store, one)
        assert len(store.scenes(SITE_ID)) == 4
        shutil.rmtree(tmp_path / "one")  # the earlier scenario's files are gone
        two = simulate_scenario(tmp_path / "two", seed=1, **small)
        res = watch_scenario(store, two)
        scenes = store.scenes(SITE_ID)
        alerts = store.alerts(SITE_ID)
    assert len(scenes) == len(two.scenes) == 4
    assert all("two" in s.source for s in scenes)
    # The earlier scenario's results went with its scenes: everything was processed anew,
    # and no alert of the earlier scenario is left.
    assert res.run is not None and len(res.run.processed) == len(scenes)
    assert {a.id for a in alerts} == {a.id for a in res.run.alerts["new"]}
