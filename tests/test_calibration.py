"""Calibration of the assessment (warning/calibrate.py), the plain-words summary and the
site types without a launch.  Every text here is written for the test."""

from __future__ import annotations

import math
import random
import re
from datetime import date

import pytest

from sitewatch.errors import CollateralError
from sitewatch.warning.assess import assess, assess_reading
from sitewatch.warning.calibrate import (
    Features,
    Labelled,
    agrees,
    apply_fits,
    fit_all,
    fit_event,
    fit_log_lr,
    judged,
    key,
    leave_one_out,
    logit,
    sigmoid,
    write_fit,
)
from sitewatch.warning.collateral import read_text
from sitewatch.warning.evidence import from_claim
from sitewatch.warning.indicators import (
    load_indicators,
    parse_indicators,
    site_type_events,
)

BUSY = "Commercial imagery from {d} shows trucks and vehicles at the launch pad at Sohae."
QUIET = "The Sohae site was quiet on {d}: no activity was seen at the launch pad, imagery shows."


def _item(name: str, text: str, day: str, launch: str) -> Labelled:
    r = read_text(text.format(d=day), published=day)
    return Labelled(name, r, date.fromisoformat(day), {"launch": launch,
                                                       "engine_test": "no_evidence"})


def _corpus() -> list[Labelled]:
    days = [f"2024-0{m}-1{d}" for m in range(1, 6) for d in range(2)]
    busy = [_item(f"b{i}", BUSY, d, "imminent") for i, d in enumerate(days[:5])]
    quiet = [_item(f"q{i}", QUIET, d, "unlikely") for i, d in enumerate(days[5:])]
    return busy + quiet


def test_fit_recovers_the_direction_of_known_strengths():
    # Reports drawn from a known model: indicator a multiplies the odds by e^2, b by e^-1.5.
    rng = random.Random(7)
    truth = {"a": 2.0, "b": -1.5}
    xs, ys = [], []
    base = logit(0.2)
    for _ in range(300):
        x = {k: float(rng.random() < 0.5) for k in truth}
        p = sigmoid(base + sum(x[k] * truth[k] for k in truth))
        xs.append(x)
        ys.append(rng.random() < p)
    # A weak prior at "no effect": the data must find the direction and the order.
    theta = fit_log_lr(xs, ys, base, {"a": (0.0, 3.0), "b": (0.0, 3.0)})
    assert theta["a"] > 1.0 and theta["b"] < -0.7
    assert abs(theta["a"] - 2.0) < 0.8 and abs(theta["b"] + 1.5) < 0.8
    # A strong prior keeps the value near the judgement whatever the data say.
    held = fit_log_lr(xs, ys, base, {"a": (0.0, 0.01), "b": (0.0, 0.01)})
    assert abs(held["a"]) < 0.05 and abs(held["b"]) < 0.05


def test_fit_on_labelled_texts_moves_strengths_the_labels_way():
    cat = judged(load_indicators())
    items = _corpus()
    fits = {f.event: f for f in fit_all(items, cat)}
    launch = fits["launch"]
    busy, quiet = key("vehicles_at_pad", "launch", False), key("no_activity", "launch", False)
    # Every busy-pad report concludes "imminent", every quiet one "unlikely": vehicles count
    # for more than judged, the quiet site against more than judged.
    assert math.exp(launch.log_lr[busy]) > cat.indicator("vehicles_at_pad").lr["launch"][1]
    assert math.exp(launch.log_lr[quiet]) < cat.indicator("no_activity").lr["launch"][1]
    assert launch.n[busy] == 5 and launch.n[quiet] == 5
    # The refitted set puts the busy reports at imminent and the quiet ones at unlikely.
    fitted = apply_fits(cat, fits.values())
    for it in items:
        lv = assess_reading(it.reading, indicator_set=fitted, at=it.at).launch.level
        assert lv == it.labels["launch"], it.name
    # Indicators no report shows keep their judgement.
    assert fitted.indicator("service_arms_open").lr == cat.indicator("service_arms_open").lr


def test_leave_one_out_never_sees_the_held_out_report():
    cat = judged(load_indicators())
    items = _corpus()
    out, fits_by = leave_one_out(items, cat)
    flipped = list(items)
    j = 0  # a busy report now labelled "unlikely"
    flipped[j] = Labelled(items[j].name, items[j].reading, items[j].at,
                          {"launch": "unlikely", "engine_test": "no_evidence"})
    out2, fits_by2 = leave_one_out(flipped, cat)
    # Its own prediction comes from a fit without it: unchanged.
    assert out2["launch"].likelihoods[j] == out["launch"].likelihoods[j]
    assert out2["launch"].levels[j] == out["launch"].levels[j]
    assert fits_by2[items[j].name] == fits_by[items[j].name]
    # Every other report's fit saw the flipped label.
    for it in items[1:]:
        assert fits_by2[it.name] != fits_by[it.name], it.name
    assert out2["launch"].labels[j] == "unlikely"
    assert 0 <= out["launch"].brier() <= 1 and 0 <= out["launch"].agreement() <= 1
    rel = out["launch"].reliability()
    assert sum(n for _b, n, _p, _o in rel) == len(items)


def test_thresholds_move_only_when_it_wins_reports():
    cat = judged(load_indicators())
    # One report with no evidence but "imminent": no threshold moves for it alone.
    f = fit_event([(Features({}, {}, False, True), "imminent")], cat, "launch")
    assert f.thresholds == {"imminent": 0.5, "possible": 0.075}


def test_the_fit_is_written_with_an_honest_basis_and_reads_back():
    from importlib import resources

    text = resources.files("sitewatch.warning").joinpath("data", "launch_site.toml") \
        .read_text(encoding="utf-8")
    cat = judged(parse_indicators_set(text))
    fits = fit_all(_corpus(), cat)
    fitted = apply_fits(cat, fits)
    out = write_fit(text, fitted, fits, "a test set of 10 reports")
    _st, inds, events = parse_indicators(out, "written")
    by = {i.id: i for i in inds}
    v = by["vehicles_at_pad"]
    assert v.lr["launch"][1] == fitted.indicator("vehicles_at_pad").lr["launch"][1]
    assert v.lr_judged["launch"] == cat.indicator("vehicles_at_pad").lr["launch"]
    assert "[fitted on a test set of 10 reports" in v.basis and "shown by 5 of the 10" in v.basis
    assert "[judgement:" in by["service_arms_open"].basis
    assert not by["service_arms_open"].lr_judged
    assert events["launch"].levels_judged == {"imminent": 0.5, "possible": 0.075}
    assert "Fitted on a test set" in events["launch"].levels_basis
    # Writing it again from the judgement gives the same file (no drift).
    again = write_fit(out, fitted, fits, "a test set of 10 reports")
    assert again == out


def parse_indicators_set(text: str):
    from sitewatch.warning.indicators import IndicatorSet

    st, inds, events = parse_indicators(text, "t")
    return IndicatorSet(st or "launch_site", tuple(inds), events)


def test_bad_levels_are_refused_naming_the_field():
    bad = ('[events.launch]\nprior = 0.05\nlevels = { imminent = 0.2, possible = 0.4 }\n')
    with pytest.raises(CollateralError, match="possible .* above imminent"):
        parse_indicators(bad, "mine.toml")
    with pytest.raises(CollateralError, match="levels.soon"):
        parse_indicators('[events.launch]\nprior = 0.05\nlevels = { soon = 0.2 }\n', "m")


# -- plain words -----------------------------------------------------------------------------

ODDS = re.compile(r"x\d|on the odds|likelihood ratio|weight|\bodds\b")


def test_summary_is_an_analysts_sentence_without_arithmetic():
    r = read_text("Imagery from 14 March shows the rail-mounted transfer structure moved to the "
                  "launch pad at Sohae. Fuel trucks were also seen near the pad, a South Korean "
                  "official said.", published="2025-03-15")
    a = assess_reading(r).launch
    assert a.level in ("imminent", "possible")
    s = a.summary
    assert not ODDS.search(s), s
    assert s.startswith(("Launch preparations likely under way:", "A launch is possible"))
    # The strongest reason: what, when, who.
    assert "transfer structure moved" in s and "14 March 2025" in s
    assert "(the report)" in s or "imagery" in s
    # The arithmetic is still in the details.
    assert any("on the odds" in x.text for x in a.reasons)


def test_summary_of_a_quiet_site_names_the_denial_and_its_source():
    r = read_text("The Sohae site was quiet on 2 February: no activity was seen at the launch "
                  "pad, a U.S. official said.", published="2025-02-03")
    s = assess_reading(r).launch.summary
    assert s.startswith("A launch within 30 days is unlikely:"), s
    assert "no notable activity" in s and "2 February 2025" in s and "(U.S. government)" in s
    assert not ODDS.search(s)


def test_summary_gives_the_notice_window():
    r = read_text("Japan's coast guard said North Korea notified a launch window from June 3 to "
                  "June 9 for a rocket from Sohae.", published="2025-06-01")
    s = assess_reading(r).launch.summary
    assert "Expected 3\u20139 June 2025" in s and not ODDS.search(s), s


# -- site types without a launch -----------------------------------------------------------


def test_engine_test_site_gets_no_launch_assessment():
    r = read_text("Imagery shows vehicles at the Magunpo engine test stand.",
                  published="2024-09-20")
    a = assess_reading(r)
    assert a.launch.level == "not_applicable" and a.launch.likelihood == 0.0
    assert a.launch.summary == ("No launch assessment: launches are not made at an engine test "
                                "site.")
    assert a.engine_test.level != "not_applicable"
    assert agrees("not_applicable", "no_evidence")


def test_nuclear_test_site_gets_neither_assessment():
    r = read_text("Tunnel work continued at Punggye-ri, imagery shows.", published="2024-09-20")
    a = assess_reading(r)
    assert a.launch.level == a.engine_test.level == "not_applicable"
    assert "nuclear test site" in a.launch.summary


def test_site_type_indicator_sets():
    assert site_type_events("engine_test_site") == ("engine_test",)
    assert site_type_events("shipyard") == ()
    assert site_type_events("launch_site") == ("launch", "engine_test")
    assert site_type_events("a_type_nobody_knows") == ("launch", "engine_test")
    cat = load_indicators("engine_test_site")
    assert cat.assessed == ("engine_test",)
    r = read_text("Trucks were seen at the launch pad.", published="2024-01-02")
    ev = [e for c in r.claims for e in from_claim(c, cat, site="x", report="r",
                                                 published=r.published)]
    a = assess(ev, at=date(2024, 1, 2), indicator_set=cat)
    assert a.launch.level == "not_applicable" and a.launch.reasons == ()
    assert a.engine_test.level != "not_applicable"


def test_quiet_engine_test_site_makes_a_test_unlikely():
    r = read_text("The Magunpo test facility was quiet: no activity was seen there in imagery "
                  "from 3 May.", published="2024-05-04")
    a = assess_reading(r)
    assert a.launch.level == "not_applicable"
    assert a.engine_test.level == "unlikely", a.engine_test.summary
    assert "3 May 2024" in a.engine_test.summary


def test_building_alone_bears_on_no_launch():
    r = read_text("New construction continued at Sohae: a large assembly building is going up "
                  "near the pad, imagery from 4 April shows.", published="2024-04-06")
    a = assess_reading(r)
    assert a.launch.level == "no_evidence", a.launch.summary
    assert {c.indicator for c in a.launch.context} >= {"construction"}


def test_unlikely_but_above_the_usual_rate_leads_with_the_reasons_for():
    """9% against a usual 5%: the level is "unlikely", but the evidence is net *for*; the
    sentence must not give a weak item against as the reason (the brief's headline did)."""
    from datetime import date

    from sitewatch.warning.assess import summarise
    from sitewatch.warning.records import EventAssessment, Reason

    def reason(text, direction, lr, weight):
        import math

        return Reason(text, direction, "x", "report", "Kyodo", "media:kyodo",
                      date(2024, 11, 15), None, weight, lr, weight * math.log(lr), "e")

    pro = reason("navigation warning or no-fly zone declared on 2024-11-15: Kyodo. Counts x1.44"
                 " on the odds (likelihood ratio 8, weight 0.18).", "for", 8.0, 0.18)
    con = reason("razing or dismantling of structures on 2024-11-15: Kyodo. Counts x0.98 on "
                 "the odds (likelihood ratio 0.68, weight 0.05).", "against", 0.68, 0.05)
    a = EventAssessment("unlikely", 0.09, (0.06, 0.16), 0.05, 30, None, None, (pro,), (con,),
                        (), {}, ())
    s = summarise("launch", a)
    assert s.startswith("A launch within 30 days is unlikely, though more likely than usual: "
                        "navigation warning"), s
    assert "Against it: razing" in s and not ODDS.search(s)
