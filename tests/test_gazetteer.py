"""The gazetteer of launch and engine-test sites, and which site a report's claims are about.

Every text here is written for these tests (none is taken from a published report).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sitewatch.errors import CollateralError, SitewatchError
from sitewatch.warning import lexicon
from sitewatch.warning.collateral import Reading, extract, read_text
from sitewatch.warning.documents import parse_document

PUB = "2024-06-12"

#: The gazetteer ids the real-report benchmark expects (benchmarks/bench_reports.py).
BENCH_IDS = ("sohae", "sinpo", "imam-khomeini-spaceport", "magunpo", "jiuquan", "wenchang",
             "plesetsk", "shahroud", "sanumdong", "tonghae")


def _main_site(r: Reading) -> str | None:
    counts = Counter(c.site for c in r.claims if c.site)
    return counts.most_common(1)[0][0] if counts else (r.sites[0] if r.sites else None)


def _sites_of(r: Reading) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for c in r.claims:
        out.setdefault(c.sentence, set()).add(c.site)
    return out


# ------------------------------------------------------------------ the data


def test_builtin_entries_are_complete() -> None:
    sites = lexicon.gazetteer()
    ids = [s.id for s in sites]
    assert len(ids) == len(set(ids))
    assert set(BENCH_IDS) <= set(ids)
    types = lexicon.site_types()
    for s in sites:
        assert s.site_type in types, s.id
        assert len(s.country) == 2, s.id
        assert s.lat is not None and s.lon is not None and s.precision_km, s.id
        assert s.names, s.id


@pytest.mark.parametrize("site", [s for s in lexicon.gazetteer()], ids=lambda s: s.id)
def test_every_name_names_its_site(site: lexicon.GazetteerSite) -> None:
    for name in site.names:
        r = read_text(f"Commercial imagery of {name} shows trucks parked near a large building.",
                      published=PUB)
        assert r.sites == [site.id], name
        assert [c.site for c in r.claims] == [site.id], name


@pytest.mark.parametrize(("text", "site"), [
    ("Trucks were parked at the Sinpo South Shipyard this week.", "sinpo"),
    ("Workers were seen at the Magunpo Solid-fuel Rocket Engine Test Facility in May.",
     "magunpo"),
    ("Vehicles were parked at the Jiuquan Satellite Launch Center last week.", "jiuquan"),
    ("Vehicles were parked near the pad at the Wenchang Space Launch Centre.", "wenchang"),
    ("Construction continues near a silo at the Plesetsk Cosmodrome.", "plesetsk"),
    ("Trucks lined the road at the Imam Khomeini Space Centre near Semnan.",
     "imam-khomeini-spaceport"),
    ("New construction was seen at the Semnan launch site.", "imam-khomeini-spaceport"),
    ("Scorch marks appeared near Shahrud after the test.", "shahroud"),
    ("Railcars arrived at the Sanum-dong research complex.", "sanumdong"),
    ("The old pad at Musudan-ri is being refurbished.", "tonghae"),
    ("Cranes were spotted at the Vostochny Cosmodrome.", "vostochny"),
    ("Fuel trucks were seen at Sriharikota on Sunday.", "sriharikota"),
    ("Construction continues at the Naro Space Center.", "naro"),
    ("Trucks were parked at Vandenberg Space Force Base.", "vandenberg"),
    ("Trucks were spotted at the West Sea Satellite Launching Station.", "sohae"),
    ("Several vehicles gathered at the Dongchang-ri launch site on Monday.", "sohae"),
])
def test_new_sites_are_recognised(text: str, site: str) -> None:
    r = read_text(text, published=PUB)
    assert r.sites == [site]
    assert {c.site for c in r.claims} == {site}


def test_a_description_names_a_site_only_when_no_proper_name_does() -> None:
    alone = read_text("Vehicles were seen at the west coast launch site on Tuesday.",
                      published=PUB)
    assert alone.sites == ["sohae"]
    # "Hamhung" is near Magunpo, but a text that names Sohae is not about Magunpo.
    mixed = read_text("Trucks arrived at Sohae on Monday. Officials in Hamhung said vehicles "
                      "were moving.", published=PUB)
    assert mixed.sites == ["sohae"]
    assert {c.site for c in mixed.claims} == {"sohae"}


def test_site_types_say_which_events_a_site_can_have() -> None:
    assert lexicon.site_type("sohae") == "launch_site"
    assert lexicon.site_type("punggye-ri") == "nuclear_test_site"
    assert lexicon.site_type("magunpo") == "engine_test_site"
    assert lexicon.site_type("nowhere") is None
    assert lexicon.site_events("sohae") == {"launch", "engine_test"}
    assert lexicon.site_events("magunpo") == {"engine_test"}
    assert lexicon.site_events("sinpo") == {"launch"}
    assert lexicon.site_events("punggye-ri") == frozenset()
    # A site the gazetteer does not know rules nothing out.
    assert lexicon.site_events("nowhere") == {"launch", "engine_test"}
    assert lexicon.site_events(None) == {"launch", "engine_test"}


# ------------------------------------------------------------------ which site a claim is about


def _text(*paragraphs: str) -> str:
    """A report: its paragraphs, one line each."""
    return "\n\n".join(paragraphs)


IRAN_REPORT = _text(
    "Iran readies a Simorgh launch at its spaceport",
    "Commercial satellite imagery from June 8 shows a Simorgh rocket standing on the launch pad "
    "at the Imam Khomeini Spaceport, south-east of Semnan.",
    "The service arms of the umbilical tower appear to have been opened, and about a dozen "
    "trucks are parked beside the pad. The new gantry resembles the one at North Korea's Sohae "
    "station.",
    "Fuel trucks were seen next to the propellant bunkers on June 9. Unlike the launch "
    "campaigns at Tongchang-ri, the work here has been rapid.",
    "North Korea's missile units parked trucks near their launch pads for weeks in 2012, "
    "analysts said.")


def test_a_report_on_an_iranian_site_makes_no_sohae_claims() -> None:
    r = read_text(IRAN_REPORT, published=PUB)
    assert _main_site(r) == "imam-khomeini-spaceport"
    assert r.sites == ["imam-khomeini-spaceport"]  # Sohae is named only in passing
    assert len(r.claims) >= 3
    assert all(c.site != "sohae" for c in r.claims + r.background)
    by = _sites_of(r)
    arms = next(s for s in by if s.startswith("The service arms"))
    assert by[arms] == {"imam-khomeini-spaceport"}
    assert by["Fuel trucks were seen next to the propellant bunkers on June 9."] == {
        "imam-khomeini-spaceport"}


def test_another_countrys_programme_takes_no_claims() -> None:
    r = read_text(_text("Sohae: vehicles at the pad",
                        "Vehicles gathered near the launch pad at Sohae on Monday.",
                        "Several trucks are parked at the assembly building.",
                        "U.S. officials said fuel trucks were parked at the launch pad.",
                        "Iran's missile forces parked trucks near their launch pads last week."),
                  published=PUB)
    by = _sites_of(r)
    assert by["Several trucks are parked at the assembly building."] == {"sohae"}
    assert by["U.S. officials said fuel trucks were parked at the launch pad."] == {"sohae"}
    assert by["Iran's missile forces parked trucks near their launch pads last week."] == {None}


def test_claims_in_a_text_naming_several_sites_go_to_the_right_sites() -> None:
    r = read_text(_text(
        "North Korea stirs at Sohae",
        "Imagery from June 5 shows about twenty vehicles at the Sohae Satellite Launching "
        "Station.",
        "At Tonghae, on the east coast, a crane stands beside the old pad. Construction crews "
        "have cleared the access road there.",
        "Several fuel trucks were parked near the propellant bunkers on June 6.",
        "The pad at Sohae is larger than the one at Tonghae, and trucks were seen near it on "
        "June 7."), published=PUB)
    by = _sites_of(r)
    first = next(s for s in by if s.startswith("Imagery from June 5"))
    assert by[first] == {"sohae"}
    assert {c.site for c in r.claims if c.sentence.startswith("At Tonghae")} == {"tonghae"}
    assert by["Construction crews have cleared the access road there."] == {"tonghae"}
    # A paragraph that names no site is about the report's site, not the last one named.
    assert by["Several fuel trucks were parked near the propellant bunkers on June 6."] == {
        "sohae"}
    # "than the one at Tonghae": Tonghae only in passing.
    last = next(s for s in by if s.startswith("The pad at Sohae"))
    assert by[last] == {"sohae"}
    assert r.sites == ["sohae", "tonghae"] and _main_site(r) == "sohae"


def test_headings_and_questions_introduce_the_site_of_what_follows() -> None:
    roundup = _text("Launch site roundup for the week",
                    "SINPO SOUTH SHIPYARD",
                    "A crane and two trucks are parked at the test stand.",
                    "WENCHANG, China",
                    "Several vehicles are parked in the assembly area.",
                    "OTHER",
                    "Nothing to report this week.")
    by = _sites_of(read_text(roundup, published=PUB))
    assert by["A crane and two trucks are parked at the test stand."] == {"sinpo"}
    assert by["Several vehicles are parked in the assembly area."] == {"wenchang"}

    briefing = _text("Press briefing on launch activity",
                     "Q: What is happening at Sohae this week?",
                     "A: We have seen vehicles gathering near the launch pad.",
                     "Q: And what about the Plesetsk Cosmodrome in Russia?",
                     "A: Trucks have been moving around the silos there since Friday.")
    by = _sites_of(read_text(briefing, published=PUB))
    assert by["A: We have seen vehicles gathering near the launch pad."] == {"sohae"}
    assert by["A: Trucks have been moving around the silos there since Friday."] == {
        "plesetsk"}


def test_a_launch_activity_is_not_put_at_a_site_that_cannot_launch() -> None:
    r = read_text(_text("North Korea's Sohae site readies a launch",
                        "Vehicles have gathered at the Sohae launch pad.",
                        "There has been no significant change at Punggye-ri. North Korea has "
                        "not issued a launch notice yet."), published=PUB)
    notice = [c for c in r.claims if c.activity == "launch_notice"]
    assert notice and {c.site for c in notice} == {"sohae"}
    assert {c.site for c in r.claims if c.activity == "no_activity"} == {"punggye-ri"}


# ------------------------------------------------------------------ a user's gazetteer


def _extra(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "gazetteer.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_a_users_gazetteer_adds_sites_and_names(tmp_path: Path) -> None:
    extra = _extra(tmp_path, """
[[site]]
id = "sohae"
names = ["Pier Seven"]

[[site]]
id = "example-range"
name = "Example Point test range"
country = "KP"
site_type = "launch_area"
names = ["Example Point"]
lat = 39.0
lon = 127.0
precision_km = 50
""")
    doc = parse_document("Trucks were seen at Pier Seven on Monday. Vehicles also gathered on "
                         "Example Point on Tuesday.", "note.txt")
    r = extract(doc, published=None, gazetteer_file=extra)
    assert {c.site for c in r.claims} == {"sohae", "example-range"}
    assert lexicon.site_type("example-range", extra) == "launch_area"
    assert lexicon.site_events("example-range", extra) == {"launch"}
    sohae = lexicon.gazetteer_site("sohae", extra)
    assert sohae is not None and "Pier Seven" in sohae.names and "Tongchang-ri" in sohae.names


@pytest.mark.parametrize(("body", "words"), [
    ('[[site]]\nname = "No id"\nnames = ["Somewhere"]\n', ["site entry 1", "'id'"]),
    ('[[site]]\nid = "a"\nnames = ["A"]\n\n[[site]]\nid = "b"\nsite_type = "forest_camp"\n',
     ["site entry 2", "'b'", "forest_camp", "launch_site"]),
    ('[[site]]\nid = "c"\nlat = 123.0\nlon = 10.0\n', ["site entry 1", "'c'", "'lat'", "123"]),
    ('[[site]]\nid = "d"\nlat = 12.0\n', ["'d'", "both 'lat' and 'lon'"]),
    ('[[site]]\nid = "e"\nnames = "Just a string"\n', ["'e'", "'names'", "list"]),
    ('[[site]]\nid = "f"\nnmaes = ["Typo"]\n', ["'f'", "unknown key", "'nmaes'"]),
    ('[[site]]\nid = "g"\ncountry = "Iran"\n', ["'g'", "'country'", "two-letter"]),
    ('[[site]]\nid = "h"\n\n[[site]]\nid = "h"\n', ["site entry 2", "'h'", "earlier entry"]),
    ('[site_types]\nforest = { events = ["camping"] }\n', ["site type 'forest'", "events"]),
    ('[[site]\nid = "broken toml"\n', ["not a valid gazetteer TOML file"]),
])
def test_a_malformed_gazetteer_names_the_file_and_the_entry(tmp_path: Path, body: str,
                                                             words: list[str]) -> None:
    extra = _extra(tmp_path, body)
    with pytest.raises(CollateralError) as err:
        lexicon.gazetteer(extra)
    msg = str(err.value)
    assert str(extra) in msg
    for w in words:
        assert w in msg
    assert isinstance(err.value, SitewatchError) and isinstance(err.value, ValueError)
