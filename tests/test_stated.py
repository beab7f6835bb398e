"""The stated judgement: what a report itself concludes about a coming launch or engine test.

Every text here was written for these tests; each shows one way analysts write that the
reader used to get wrong (issue 17).
"""

from __future__ import annotations

import pytest

from sitewatch.warning.collateral import read_text
from sitewatch.warning.stated import (
    BODY_WEIGHT,
    HEADLINE_WEIGHT,
    LEDE_WEIGHT,
    stated_judgement,
    weights,
)


def _stated(text: str, published: str | None = "2024-06-10") -> dict[str, str]:
    return read_text(text, name="t.txt", published=published).stated


def _say(*sentences: str, title: str | None = None) -> dict[str, str]:
    """The judgement of sentences alone (no claims), the first one the headline."""
    return stated_judgement(list(sentences), [], None, title=title)[0]


def test_pending_launch_announced_in_the_title_is_imminent():
    s = _stated(
        "Imagery Shows Evidence of a Pending Launch at Sohae\n\n"
        "Commercial imagery from 8 June shows the gantry's work platforms folded back and "
        "a row of tanker trucks parked beside the oxidizer bunkers. The activity is heavier "
        "than anything seen at the site since the winter. Officials in Seoul declined to "
        "comment on the timing.")
    assert s["launch"] == "imminent"


def test_vehicle_on_the_pad_and_within_days_are_imminent():
    assert _say("Workers have erected the first stage of the rocket on the launch pad at "
                "Sohae, imagery from Sunday shows.")["launch"] == "imminent"
    # A modal does not soften a stated near date: "could go as soon as next week".
    assert _say("North Korea could launch the rocket as soon as next week, a defence "
                "source said.")["launch"] == "imminent"


def test_a_launch_notice_decides_imminent():
    s = _say("Activity at the site has been light.",
             "Pyongyang notified the International Maritime Organization of a launch "
             "window opening on 12 June.",
             "Analysts were surprised by the timing.")
    assert s["launch"] == "imminent"
    # A notice that is not there is only a missing sign, not a judgement.
    assert _say("North Korea has not yet issued a navigational warning.")["launch"] == \
        "no_evidence"


def test_standby_report_is_unlikely_not_possible():
    s = _stated(
        "Sohae on Standby: No Observable Indications of Launch Preparations\n\n"
        "Imagery from 6 June shows the transfer structure parked at its rear position and "
        "no vehicles at the pad. Construction of the coastal pier has made launch "
        "preparations harder to see from orbit. The engine test stand is idle.")
    assert s["launch"] == "unlikely"


def test_a_noun_mention_of_preparations_is_not_a_judgement():
    # "launch preparations" named in passing: nothing is judged.
    assert _say("Fog over the coast made launch preparations hard to follow.",
                "The road to the pier was resurfaced.")["launch"] == "no_evidence"
    # "preparations are under way" is.
    assert _say("Launch preparations are under way at the coastal pad.")["launch"] == \
        "imminent"


def test_construction_only_report_makes_no_launch_judgement():
    s = _stated(
        "New Assembly Hall Nears Completion at Sohae Satellite Launching Station\n\n"
        "Imagery from 2 June shows the roof of the new horizontal assembly hall closed and "
        "a second crane working beside the launch pad. Workers have also graded a road "
        "toward the coastal pier. The expansion of the launching station has continued "
        "since 2022.")
    assert s["launch"] == "no_evidence"
    assert s["engine_test"] == "no_evidence"
    # A dismantling update: "no sign of further dismantling" is not "no sign of a launch".
    s = _stated(
        "No Sign of Further Dismantling at the Launching Station's Engine Test Stand\n\n"
        "Imagery from 1 June shows the steel frame of the vertical engine test stand still "
        "lying beside the foundation, where it was left in May. No new dismantling activity "
        "is visible at the launch pad either.")
    assert s == {"launch": "no_evidence", "engine_test": "no_evidence"}


def test_post_launch_report_makes_no_judgement_on_a_coming_launch():
    s = _stated(
        "North Korea Launched a Satellite Rocket from Sohae on Saturday\n\n"
        "The rocket lifted off from the coastal pad shortly after dawn, South Korean "
        "officials said. Imagery taken after the launch shows a scorched area around the "
        "pad and several trucks nearby. Since the launch, imagery has shown possible repair "
        "work around the gantry. The previous launch, in November, had put a satellite in "
        "orbit.")
    assert s["launch"] == "no_evidence"


def test_post_launch_report_that_expects_another_attempt_is_possible():
    s = _say("North Korea's rocket failed shortly after it launched on Tuesday.",
             "Officials said another attempt could come within months.")
    assert s["launch"] == "possible"


def test_post_test_report_is_a_recent_test():
    s = _stated(
        "Burned Ground Below Sohae's Vertical Engine Test Stand\n\n"
        "Imagery from 7 June shows a fresh burn scar spreading from the flame trench of the "
        "vertical engine test stand, with scorched vegetation down the slope. The scar was "
        "absent a week earlier, which indicates an engine test was conducted in the past "
        "few days.")
    assert s["engine_test"] == "recent_test"
    assert s["launch"] == "no_evidence"
    # A question headline and "the possible aftermath of engine tests": still a test that
    # happened, not preparations.
    s = _stated("Is the North Testing Big Engines Again?\n\n"
                "Imagery shows the possible aftermath of rocket engine tests at the stand: "
                "burned vegetation and a stained flame trench.")
    assert s["engine_test"] == "recent_test"


def test_engine_test_preparations_are_not_a_recent_test():
    s = _stated(
        "Shelter Moved at Sohae's Engine Test Stand\n\n"
        "The rail-mounted environmental shelter was rolled away from the vertical engine "
        "test stand on imagery from 5 June, and a mobile crane now stands beside it. "
        "Analysts said North Korea appears to be preparing a new engine test. No burn "
        "marks are visible yet.")
    assert s["engine_test"] == "preparations"
    s = _stated("A container set down at the vertical stand suggests the North may soon "
                "resume engine combustion tests, analysts said.")
    assert s["engine_test"] == "preparations"


def test_no_signs_of_recent_tests_in_the_title_outweigh_a_past_test_in_the_body():
    s = _stated("No Signs of New Engine Tests at Sohae's Vertical Stand\n\n"
                "Imagery from 8 June shows the stand covered and the apron empty. The last "
                "engine test at the vertical engine test stand was conducted on 2 May, "
                "officials said.")
    assert s["engine_test"] == "unlikely"


def test_report_about_another_countrys_site_gets_its_own_judgement():
    # An Iranian report that mentions a North Korean launch in passing: the past launch
    # elsewhere is background, the Iranian preparations are the judgement.
    s = _stated(
        "Photos Suggest an Iranian Satellite Launch Looms\n\n"
        "Weeks after North Korea launched a satellite from Sohae, imagery of the Imam "
        "Khomeini Spaceport shows new work at the main pad and more cars at the assembly "
        "building. Officials in Tehran have spoken of several launches this year.")
    assert s["launch"] == "imminent"
    # An Iranian pad explosion: what happened, no coming launch judged for anyone.
    s = _stated(
        "Rocket Explodes on Iranian Launch Pad, Imagery Shows\n\n"
        "A rocket exploded on its launch pad at the Imam Khomeini Spaceport on Thursday, "
        "leaving a charred launch stand. An official later said the explosion was due to a "
        "technical fault.")
    assert s["launch"] == "no_evidence"


@pytest.mark.parametrize(("sentence", "level"), [
    # Preparations seen, but no launch imminent: possible.
    ("The military said the North is making preparations for a launch, although there are "
     "no signs that a launch is imminent.", "possible"),
    # "not imminent" alone: unlikely.
    ("Another launch does not appear to be imminent.", "unlikely"),
    # A double negation is a possibility.
    ("Officials are not ruling out a missile test in the coming weeks.", "possible"),
    # A rumour the text rebuts counts against it.
    ("There were reports of a launch being readied, but the imagery instead shows only "
     "repairs to the pier.", "unlikely"),
    # A modal before "preparing" leaves only a possibility.
    ("The North may be preparing to launch a satellite.", "possible"),
    # The writer cannot tell: no judgement.
    ("It remains unclear whether the North intends to launch again.", "no_evidence"),
    # Imagining the first signs of a launch judges nothing.
    ("Should a launch be ordered, the first signs would be railcars at the station.",
     "no_evidence"),
])
def test_clause_rules(sentence, level):
    assert _say(sentence)["launch"] == level


def test_title_and_lede_outweigh_the_body():
    s = _say("Still No Sign of Launch Preparations at Sohae",
             "Imagery from 2 June shows the pad empty and the transfer structure parked.",
             "A launch could come later this year, some analysts say.",
             title="Still No Sign of Launch Preparations at Sohae")
    assert s["launch"] == "unlikely"


def test_weights_headline_lede_byline():
    sentences = ["Sohae Update: Quiet at the Pad", "Jane Roe and John Doe",
                 "Imagery from 2 June shows that the transfer structure has not moved since "
                 "the last report in May.", "Nothing else changed.",
                 "A crane worked near the pier, while trucks came and went all week long."]
    w = weights(sentences, title="Sohae Update: Quiet at the Pad")
    assert w[0] == HEADLINE_WEIGHT
    assert w[1] == BODY_WEIGHT  # a byline is not a headline
    assert w[2] == LEDE_WEIGHT and w[4] == LEDE_WEIGHT
    assert w[3] == BODY_WEIGHT
    # The headline gives the site's state: a launch is unlikely.
    assert _say(*sentences, title=sentences[0])["launch"] == "unlikely"


def test_engine_test_site_gets_no_launch_judgement_from_claims():
    # Magunpo is an engine-test site: a quiet stand there says nothing of a launch.
    s = _stated("Flooding at the Magunpo Solid-Motor Test Facility\n\n"
                "Imagery from early July shows water pooled at the end of the flame trench of "
                "the horizontal test stand at Magunpo. There was no activity at the stand "
                "itself, and no vehicles were present.")
    assert s["launch"] == "no_evidence"
    assert s["engine_test"] == "unlikely"
