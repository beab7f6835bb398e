"""Evidence on record and the assessment: reports, notes and imagery alerts of a site, the
independence of sources, the catalogue, and the commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.errors import CollateralError, SiteError
from sitewatch.sites.site import builtin_site
from sitewatch.store import Store
from sitewatch.warning.assess import assess
from sitewatch.warning.collateral import read_text
from sitewatch.warning.evidence import Evidence, from_claim
from sitewatch.warning.indicators import load_indicators, parse_indicators
from sitewatch.warning.record import add_note, add_report, assess_site
from sitewatch.watch.alerts import Alert
from sitewatch.watch.records import Observation, RunSummary

SITE = "sohae-sim"


@pytest.fixture
def store(tmp_path):
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as s:
        s.put_site(builtin_site(SITE), "built-in")
        yield s


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _alert(store, part, time, tier="warning", kind="departure", ph="p1", objects=3):
    aid = f"{part[:6]}{time[:10]}".replace("-", "")[:16]
    store.put_alert(Alert(aid, SITE, part, time, "changed_excess", kind, tier, 0.3, 0.0, 9.0,
                          "high", 10, f"{part}: unusual change on {time[:10]}", start=time,
                          end=time, objects=objects), ph)
    return aid


def _run(store, ph="p1"):
    run = store.start_run(SITE, ph, {"method": "ratio"}, "test")
    store.finish_run(run.id, RunSummary())


def test_report_evidence_is_stored_and_assessed_by_date(store, tmp_path):
    site = store.get_site(SITE)
    p = _write(tmp_path, "r.txt", "Freight trains arrived at the rail station at Sohae in "
               "recent days, a U.S. official said. Fuel trucks were seen at the pad.")
    added = add_report(store, site, p, published="2024-06-01")
    assert added.new and {e.indicator for e in added.evidence} >= {"railcars_arrived",
                                                                     "fuel_activity"}
    again = add_report(store, site, p, published="2024-06-01")
    assert not again.new and len(store.evidence(SITE)) == len(added.evidence)  # no doubles
    before = assess_site(store, site, at=date(2024, 5, 1))
    assert before.launch.level == "no_evidence"  # not published yet
    after = assess_site(store, site, at=date(2024, 6, 2))
    assert after.launch.level in ("possible", "imminent")
    assert after.reports[0].id == added.report_id
    months = assess_site(store, site, at=date(2024, 9, 1))  # the evidence has gone stale
    assert months.launch.likelihood < after.launch.likelihood


def test_claims_about_another_site_are_left_out(store, tmp_path):
    site = store.get_site(SITE)
    p = _write(tmp_path, "m.txt", "Trucks gathered at the launch pad at Musudan-ri on "
               "Monday, officials said.")
    added = add_report(store, site, p, published="2024-06-01")
    assert added.evidence == [] and added.skipped


def test_imagery_alerts_become_evidence_and_dismissal_removes_it(store):
    site = store.get_site(SITE)
    _run(store)
    aid = _alert(store, "transfer_structure", "2024-07-31T02:00:00Z")
    a = assess_site(store, site, at=date(2024, 8, 1))
    kinds = {r.indicator: r for r in a.launch.reasons}
    assert "transfer_structure_moved" in kinds and kinds["transfer_structure_moved"].kind \
        == "imagery"
    assert a.launch.likelihood > 0.05
    store.set_alert_status(aid, "dismissed", "rail maintenance")
    b = assess_site(store, site, at=date(2024, 8, 1))
    assert not [r for r in b.launch.reasons if r.kind == "imagery"]


def test_burn_scar_alert_reads_as_a_recent_test(store):
    store.get_site(SITE)
    _run(store)
    # An observation with an NDVI drop at the stand makes the alert "vegetation_loss".
    from sitewatch.warning.evidence import alert_characters

    alert = Alert("a1", SITE, "vertical_engine_test_stand", "2024-04-24T00:00:00Z",
                  "changed_excess", "departure", "watch", 0.3, 0.0, 6.0, "high", 10, "scar")
    obs = Observation(SITE, "s1", "p1", alert.part, "previous", "optical-10m",
                      datetime(2024, 4, 24, tzinfo=UTC), "s0", 1.0, 0.3,
                      {"ndvi_change": -0.3})
    assert "vegetation_loss" in alert_characters(alert, obs)
    assert "vegetation_loss" not in alert_characters(alert)
    ev = [Evidence("x1", SITE, "imagery", "burn_scar", "engine_test", "after",
                   "vertical_engine_test_stand", date(2024, 4, 24), None, "imagery",
                   "imagery:sitewatch", 1.0, False, "scar")]
    a = assess(ev, at=date(2024, 4, 25))
    assert a.engine_test.level == "recent_test"


def test_same_official_through_two_outlets_is_one_source():
    cat = load_indicators()
    a = read_text("Kyodo, citing a Japanese government source, said trains arrived at Sohae.",
                  name="a", published="2024-06-01")
    b = read_text("Japanese officials told NHK that freight trains arrived at Sohae.",
                  name="b", published="2024-06-01")
    c = read_text("38 North said imagery shows freight trains arriving at Sohae's station.",
                  name="c", published="2024-06-01")
    ev_ab = [e for r in (a, b) for cl in r.claims
             for e in from_claim(cl, cat, site="sohae", report=r.name, published=r.published)]
    one = assess(ev_ab, at=date(2024, 6, 1), indicator_set=cat)
    assert one.launch.independent_sources == ("government:JP",)
    assert not one.launch.corroborated
    ev_c = [e for cl in c.claims
            for e in from_claim(cl, cat, site="sohae", report="c", published=c.published)]
    two = assess(ev_ab + ev_c, at=date(2024, 6, 1), indicator_set=cat)
    assert set(two.launch.corroborated["railcars_arrived"]) == {"government:JP",
                                                                      "analyst:38north"}
    assert two.launch.likelihood > one.launch.likelihood


def test_denials_argue_against():
    cat = load_indicators()
    r = read_text("No trains have arrived at Sohae and the pad remained quiet, 38 North said.",
                  published="2024-06-01")
    ev = [e for cl in r.claims for e in from_claim(cl, cat, site="sohae", report="r",
                                                     published=r.published)]
    a = assess(ev, at=date(2024, 6, 1), indicator_set=cat)
    assert a.launch.level == "unlikely" and a.launch.against
    assert a.launch.likelihood < 0.05


def test_notes_become_evidence(store):
    site = store.get_site(SITE)
    nid, ev = add_note(store, site, "The environmental shelter was pulled back from the stand.",
                       when="2024-06-03", part="vertical_engine_test_stand", author="jd")
    assert [e.indicator for e in ev] == ["shelter_moved"] and ev[0].kind == "note"
    assert ev[0].part == "vertical_engine_test_stand" and ev[0].link == {"note": nid}
    a = assess_site(store, site, at=date(2024, 6, 4))
    assert a.engine_test.level == "preparations"
    _, none = add_note(store, site, "Nice weather today.", when="2024-06-03")
    assert none == [] and len(store.notes(SITE)) == 2
    with pytest.raises(SiteError, match="no part 'nope'"):
        add_note(store, site, "x moved", when="2024-06-03", part="nope")
    with pytest.raises(CollateralError, match="not YYYY-MM-DD"):
        add_note(store, site, "x", when="June 3")


def test_unobserved_indicators_say_why(store):
    site = store.get_site(SITE)
    a = assess_site(store, site, at=date(2024, 6, 4))
    why = {u.indicator: u.why for u in a.launch.unobserved}
    assert why["transfer_structure_moved"] == "no imagery of the site"
    assert "service_arms_open" in why


def test_catalogue_validation_names_the_file_and_field(tmp_path):
    bad = 'site_type = "launch_site"\n[[indicator]]\nid = "x_y"\nevent = "launch"\n' \
          'lr = { launch = [5, 2, 1] }\nhalf_life_days = 5\nbasis = "b"\n'
    with pytest.raises(CollateralError, match=r"mine\.toml indicator 1 \('x_y'\): lr\.launch"):
        parse_indicators(bad, "mine.toml")
    with pytest.raises(CollateralError, match="not valid TOML"):
        parse_indicators("[[indicator", "mine.toml")
    own = _write(tmp_path, "own.toml", 'site_type = "launch_site"\n[[indicator]]\n'
                 'id = "railcars_arrived"\nevent = "launch"\nactivities = ["railcars_arrived"]\n'
                 'lr = { launch = [1, 1.1, 1.2] }\nhalf_life_days = 3\nbasis = "we disagree"\n')
    cat = load_indicators("launch_site", [own])
    ind = cat.indicator("railcars_arrived")
    assert ind.lr["launch"][1] == 1.1 and ind.origin == str(own)
    for i in load_indicators().indicators:  # every built-in strength says where it comes from
        assert len(i.basis) > 40


def test_cli_collateral_read_json_keys(tmp_path, home):
    p = _write(tmp_path, "r.txt", "Published: 30 May 2023\n\nThe transfer structure at Sohae "
               "was moved to the gantry, 38 North said; a launch may come in the coming days.")
    r = CliRunner().invoke(cli, ["collateral", "read", str(p), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {"sites", "claims", "stated", "assessment"} <= set(d)
    assert d["sites"] == ["sohae"]
    c = d["claims"][0]
    assert {"site", "part", "activity", "source", "certainty", "negated", "time",
            "sentence"} <= set(c)
    assert set(d["stated"]) == {"launch", "engine_test"}
    assert {"level", "likelihood", "reasons"} <= set(d["assessment"]["launch"])
    assert d["assessment_by_site"] == {}  # one site: the pooled assessment is its own
    two = _write(tmp_path, "two.txt", "Published: 30 May 2023\n\nThe transfer structure at "
                 "Sohae was moved to the gantry, 38 North said. Musudan-ri remains dormant.")
    d = json.loads(CliRunner().invoke(cli, ["collateral", "read", str(two), "--json"]).output)
    by = d["assessment_by_site"]
    assert set(by) == {"sohae", "tonghae"}
    assert by["sohae"]["launch"]["level"] in ("possible", "imminent")
    assert by["tonghae"]["launch"]["level"] == "unlikely"


def test_cli_add_note_assess_and_bad_files(tmp_path, home):
    runner = CliRunner()
    sf = _write(tmp_path, "site.geojson", builtin_site(SITE).dumps())
    assert runner.invoke(cli, ["site", "add", str(sf)]).exit_code == 0
    good = _write(tmp_path, "good.txt", "Trains arrived at Sohae's rail station on Monday, a "
                  "U.S. official said. [bold red]not markup[/]")
    empty = _write(tmp_path, "empty.txt", "")
    r = runner.invoke(cli, ["collateral", "add", SITE, str(good), str(empty),
                            "--published", "2024-06-05"])
    assert r.exit_code == 1
    said = " ".join(r.output.split())
    assert "empty.txt: the file is empty" in said and "added" in said
    r = runner.invoke(cli, ["collateral", "list", SITE, "--json"])
    assert len(json.loads(r.output)["reports"]) == 1
    r = runner.invoke(cli, ["note", SITE, "Vehicles gathered at the pad.", "--part",
                            "launch_pad", "--date", "2024-06-05"])
    assert r.exit_code == 0 and "vehicles_at_pad" in r.output
    r = runner.invoke(cli, ["assess", SITE, "--at", "2024-06-06", "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    assert a["launch"]["level"] in ("possible", "imminent") and a["evidence_items"] >= 2
    r = runner.invoke(cli, ["assess", SITE, "--at", "2024-06-06"])
    assert "[bold red]not markup[/]" in r.output or "launch" in r.output
    r = runner.invoke(cli, ["assess", SITE, "--at", "June"])
    assert r.exit_code != 0 and "not YYYY-MM-DD" in r.output
    r = runner.invoke(cli, ["indicators", "--json"])
    assert any(i["id"] == "launch_notice" for i in json.loads(r.output)["indicators"])


def test_indicator_doc_is_current():
    from pathlib import Path

    from sitewatch.warning.indicators import indicators_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "indicators.md"
    assert doc.read_text(encoding="utf-8") == indicators_markdown(load_indicators()), \
        "docs/indicators.md is stale: sitewatch indicators --markdown > docs/indicators.md"


def test_hostile_text_is_shown_literally_never_interpreted(tmp_path, home):
    evil = ("Trucks were seen at the launch pad at Sohae on Monday [bold red]BOOM[/] "
            "{0.__class__} %s ${x} <script>alert(1)</script>, a U.S. official said.")
    p = _write(tmp_path, "evil.txt", "Published: 30 May 2023\n\n" + evil)
    r = CliRunner().invoke(cli, ["collateral", "read", str(p)], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "[bold red]BOOM[/]" in r.output and "{0.__class__} %s ${x}" in r.output
    d = json.loads(CliRunner().invoke(cli, ["collateral", "read", str(p), "--json"]).output)
    assert d["claims"][0]["sentence"].startswith("Trucks were seen")
    assert "[bold red]BOOM[/]" in d["claims"][0]["sentence"]  # kept verbatim, as data


def test_dates_of_knowledge_and_expired_notices(store, tmp_path):
    site = store.get_site(SITE)
    late = _write(tmp_path, "late.txt", "Freight trains arrived at Sohae's rail station on "
                  "June 2, a U.S. official said.")
    add_report(store, site, late, published="2023-06-20")
    # Published on 20 June: not known on 3 June, although it is about 2 June.
    assert assess_site(store, site, at=date(2023, 6, 3)).launch.level == "no_evidence"
    notice = _write(tmp_path, "n.txt", "North Korea notified the Japan Coast Guard of a "
                    "launch window between June 25 and June 28 for a launch from Sohae.")
    add_report(store, site, notice, published="2023-06-21")
    during = assess_site(store, site, at=date(2023, 6, 22))
    assert during.launch.level == "imminent"
    assert during.launch.window.start == date(2023, 6, 25)
    assert during.engine_test.window is None  # a launch notice says nothing of tests
    after = assess_site(store, site, at=date(2023, 7, 10))
    assert after.launch.level != "imminent"  # the window has passed
    assert after.launch.window is None \
        or not after.launch.window.basis.startswith("navigation")


def test_undated_report_is_kept_undated_and_never_counted(store, tmp_path):
    # Issue 17: an undated report is not news of the day it is added (tests/test_report_meta.py
    # covers the rest).
    site = store.get_site(SITE)
    p = _write(tmp_path, "u.txt", "Freight trains arrived at Sohae's rail station last week, "
               "a U.S. official said.")
    added = add_report(store, site, p)
    assert added.reading.published is None and added.undated
    assert any("undated" in w for w in added.reading.warnings)
    a = assess_site(store, site)
    assert a.launch.level == "no_evidence"
    assert [r.id for r in a.undated_reports] == [added.report_id]


def test_bad_indicator_files_are_clear_errors(tmp_path):
    for body in ('[[indicator]]\nid = "x_y"\nevent = "launch"\nlr = [1, 2, 3]\n'
                 'half_life_days = 3\nbasis = "b"\n',
                 '[[indicator]]\nid = "x_y"\nevent = "launch"\nlr = { launch = [1, 2, 3] }\n'
                 'half_life_days = 3\nlead_days = 5\nbasis = "b"\n',
                 '[events]\nlaunch = 5\n', 'indicator = 5\n'):
        f = _write(tmp_path, "bad.toml", body)
        with pytest.raises(CollateralError, match=r"bad\.toml"):
            load_indicators("launch_site", [f])


#: The keys `assess --json` and `collateral read --json` print (docs/collateral.md).
EVENT_KEYS = ["level", "likelihood", "likelihood_range", "prior", "horizon_days",
              "recent_test_likelihood", "window", "reasons", "against", "unobserved",
              "corroborated", "independent_sources", "context", "summary"]
REASON_KEYS = ["text", "direction", "indicator", "kind", "source", "origin", "date", "part",
               "weight", "likelihood_ratio", "log_lr", "evidence", "link", "sentence", "plain"]


def test_site_assessment_json_keys_and_round_trip(store, tmp_path):
    from sitewatch.warning.records import SiteAssessment

    site = store.get_site(SITE)
    p = _write(tmp_path, "r.txt", "Freight trains arrived at the rail station at Sohae in "
               "recent days, a U.S. official said. No fuel trucks were seen at the pad, "
               "38 North said.")
    added = add_report(store, site, p, published="2024-06-01")
    add_note(store, site, "The environmental shelter was pulled back from the stand.",
             when="2024-06-03", part="vertical_engine_test_stand")
    _run(store)
    _alert(store, "transfer_structure", "2024-06-02T02:00:00Z")
    a = assess_site(store, site, at=date(2024, 6, 4))
    d = json.loads(json.dumps(a.to_dict()))  # as printed: plain JSON
    assert list(d) == ["at", "evidence_items", "launch", "engine_test", "site", "imagery",
                       "evidence", "reports", "undated_reports"]
    assert d["at"] == "2024-06-04" and d["site"] == SITE
    assert list(d["launch"]) == EVENT_KEYS and list(d["engine_test"]) == EVENT_KEYS
    la = d["launch"]
    assert la["reasons"] and la["against"]  # the trains for, the denial against
    for r in la["reasons"] + la["against"]:
        assert list(r) == REASON_KEYS
    assert {r["kind"] for r in la["reasons"]} >= {"report", "imagery"}
    assert list(la["window"]) == ["start", "end", "days", "basis"]
    assert isinstance(la["window"]["start"], str) and len(la["window"]["days"]) == 2
    assert list(la["unobserved"][0]) == ["indicator", "name", "why"]
    assert isinstance(la["likelihood_range"], list)
    assert list(d["imagery"]) == ["best_resolution_m", "last_image", "params_hash", "seen"]
    assert d["imagery"]["params_hash"] == "p1"
    assert d["reports"] == [{"id": added.report_id, "title": added.reading.title,
                             "published": "2024-06-01", "name": added.reading.name}]
    assert {e["kind"] for e in d["evidence"]} == {"report", "note", "imagery"}
    assert len(d["evidence"]) == d["evidence_items"]
    # Back from JSON: the same record (days are dates again, tuples tuples).
    back = SiteAssessment.from_dict(d)
    assert back == a
    assert back.launch.window is not None and back.launch.window.start >= date(2024, 6, 4)
    assert back.launch.reasons[0].date is None or isinstance(back.launch.reasons[0].date, date)


def test_undated_reading_assessment_json():
    from sitewatch.warning.assess import assess_reading
    from sitewatch.warning.records import Assessment

    r = read_text("Maritime authorities said North Korea notified the IMO of a launch window "
                  "starting in 3 days for a launch from Sohae.")
    a = assess_reading(r)
    d = json.loads(json.dumps(a.to_dict()))
    assert list(d) == ["at", "evidence_items", "launch", "engine_test"]
    assert d["at"] is None
    w = d["launch"]["window"]
    assert w is not None and w["start"] is None and w["end"] is None and w["days"][0] >= 0
    assert "days after the report" in d["launch"]["summary"]
    assert Assessment.from_dict(d) == a


def test_a_reports_own_conclusion_is_evidence_for_its_site_only(tmp_path):
    """What the report concludes (stated.py) counts as a judged_* evidence item, for the site
    the report is about; a report about another site gives this one nothing."""
    from sitewatch.sites.site import builtin_site
    from sitewatch.store import Store
    from sitewatch.warning.assess import assess_reading
    from sitewatch.warning.collateral import read_text
    from sitewatch.warning.record import add_report

    text = ("Launch appears imminent at North Korea's Sohae station\n\n"
            "Published: 12 March 2031\n\n"
            "Commercial imagery shows the launch pad cleared and fuel trucks nearby. Taken "
            "together, a launch within days is likely.")
    r = read_text(text, name="mine.txt")
    assert r.stated["launch"] == "imminent"
    a = assess_reading(r)
    assert "judged_launch_imminent" in {x.indicator for x in a.launch.reasons}
    other = ("Iran prepares a satellite launch at the Imam Khomeini Spaceport\n\n"
             "Published: 3 April 2031\n\nA rocket stands on the pad at the Iranian spaceport "
             "and a launch is imminent, officials said. North Korea's Sohae was quiet.")
    (tmp_path / "iran.txt").write_text(other, encoding="utf-8")
    with Store.open_path(tmp_path / "db.sqlite") as store:
        site = builtin_site("sohae")
        store.put_site(site, "builtin")
        added = add_report(store, site, tmp_path / "iran.txt")
        assert not any(e.indicator.startswith("judged_launch") for e in added.evidence)


def test_a_site_whose_type_was_never_said_gets_no_launch_assessment(tmp_path):
    """`sitewatch ingest` makes a bare site of type "facility" (a forest, a city works):
    its change is watched, but it gets no launch or engine-test assessment."""
    from shapely.geometry import box

    from sitewatch.sites.site import bare_site
    from sitewatch.store import Store
    from sitewatch.warning.record import assess_site

    site = bare_site("woods", box(10.0, 50.0, 10.05, 50.05), "from ingested scenes")
    assert site.site_type == "facility"
    with Store.open_path(tmp_path / "db.sqlite") as store:
        store.put_site(site, "file")
        a = assess_site(store, site)
    assert a.launch.level == a.engine_test.level == "not_applicable"
    assert "type is not stated" in a.launch.summary and "launch_site" in a.launch.summary
