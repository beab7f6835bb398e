"""The collateral reader: claims from the seed articles, phrasing, and hostile or bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sitewatch.errors import CollateralError
from sitewatch.warning.assess import assess_reading
from sitewatch.warning.collateral import read_file, read_text
from sitewatch.warning.timeexpr import find_times

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
need_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not present")
RANK = {"no_evidence": 0, "unlikely": 1, "possible": 2, "imminent": 3}


def _seed(prefix: str):
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return read_file(path)


def _has(reading, **want):
    return [c for c in reading.claims if all(getattr(c, k) == v for k, v in want.items())]


@need_seeds
def test_seed_000_cnn_claims():
    r = _seed("000")
    assert r.sites == ["sohae"]
    # "Overhead satellite imagery in recent days has shown the movement of personnel,
    # rocket-related equipment and fuel into the facility ..., according to a U.S. official."
    for act in ("personnel_movement", "equipment_movement", "fuel_activity"):
        (c,) = [c for c in _has(r, activity=act, source="U.S. government")]
        assert c.site == "sohae" and not c.negated and c.certainty == "firm"
        assert c.time["text"] == "in recent days"
    # Kyodo quoting an unnamed Japanese government source, hedged with "may".
    (c,) = _has(r, activity="launch_preparations", origin="government:JP")
    assert c.via == "Kyodo" and c.certainty == "possible" and "may" in c.hedges
    # "North Korea in the past had launched ... without declaring a navigation zone" is
    # background, not a current claim.
    assert not _has(r, activity="launch_notice")
    assert any(b.activity == "launch_notice" for b in r.background)


@need_seeds
def test_seed_001_hill_claims():
    r = _seed("001")
    assert r.sites == ["sohae"]
    (c,) = _has(r, activity="railcars_arrived")
    assert c.origin == "government:KR" and c.via == "Yomiuri Shimbun" and c.certainty == "firm"
    soon = [c for c in _has(r, activity="launch_preparations", origin="government:JP")]
    assert soon and soon[0].time["text"] == "as soon as next week" and soon[0].via == "Kyodo"
    assert soon[0].time["sense"] == "future" and soon[0].time["days"][0] > 0
    us = _has(r, activity="launch_preparations", origin="government:US")
    assert us and all(c.certainty != "firm" for c in us)
    # U.S. officials quoted by Reuters and in the headline are one origin.
    assert {c.origin for c in us} == {"government:US"}


@need_seeds
def test_seed_004_rebuilding_claims():
    r = _seed("004")
    assert r.sites == ["sohae"]
    rebuilt = {c.part for c in _has(r, activity="rebuilding", certainty="firm")}
    assert {"transfer_structure", "engine_test_stand"} <= rebuilt
    assert _has(r, activity="construction")
    appear = [c for c in _has(r, activity="rebuilding") if "appear" in c.hedges]
    assert appear and appear[0].certainty == "probable"
    # The 2017 engine test is background in a 2019 report.
    assert not _has(r, activity="engine_test_conducted")
    assert any(b.activity == "engine_test_conducted" for b in r.background)


@need_seeds
@pytest.mark.parametrize("prefix", ["000", "001", "004"])
def test_seeds_assess_launch_at_least_possible(prefix):
    r = _seed(prefix)
    a = assess_reading(r)
    assert RANK[a.launch.level] >= RANK["possible"], a.launch.summary
    assert a.launch.reasons, "the assessment must say why"
    lo, hi = a.launch.likelihood_range
    assert lo <= a.launch.likelihood <= hi
    assert RANK[r.stated["launch"]] >= RANK["possible"]


def test_negation_hedge_attribution_and_dates():
    r = read_text(
        "Sohae update\nPublished: 14 March 2023\n\n"
        "Imagery from March 12, 2023 shows no vehicles at the launch pad at Sohae. "
        "The environmental shelter at the Yunsong engine test stand has not moved, 38 North "
        "said. South Korea's Joint Chiefs of Staff said the North may be preparing an engine "
        "test in the coming weeks.", name="t.txt")
    assert r.published == "2023-03-14"
    (v,) = _has(r, activity="vehicles_present")
    assert v.negated and v.part == "launch_pad" and v.time["start"] == "2023-03-12"
    (s,) = _has(r, activity="shelter_moved")
    assert s.negated and s.source == "38 North" and s.part == "engine_test_stand"
    (p,) = _has(r, activity="engine_test_preparations")
    assert p.origin == "government:KR" and p.certainty == "possible"
    assert p.time["sense"] == "future" and p.time["start"] == "2023-03-14"


def test_several_sites_and_unknown_places():
    r = read_text("Trucks were seen at Musudan-ri, while the transfer structure at "
                  "Tongchang-ri was moved to the gantry on Monday, 38 North reported.",
                  published="2023-05-30")
    assert set(r.sites) == {"tonghae", "sohae"}
    assert _has(r, activity="vehicles_present", site="tonghae")
    assert _has(r, activity="transfer_structure_moved", site="sohae")
    none = read_text("Trucks were seen near the port of Nampo on Monday.", published="2023-05-30")
    assert none.sites == [] and all(c.site is None for c in none.claims)
    assert assess_reading(none).launch.level in ("no_evidence", "unlikely")


def test_notice_window_makes_launch_imminent():
    r = read_text("North Korea notified the Japan Coast Guard of a launch window between "
                  "May 31 and June 11 for a satellite launch from Sohae.", published="2023-05-29")
    a = assess_reading(r)
    assert a.launch.level == "imminent"
    assert a.launch.window.start == date(2023, 5, 31)
    assert a.launch.window.end == date(2023, 6, 11)
    assert r.stated["launch"] == "imminent"


def test_standby_and_post_test_reports():
    quiet = read_text("Sohae remained quiet this week: no activity was observed at the launch "
                      "pad and there are no signs of launch preparations.",
                      published="2023-03-14")
    assert quiet.stated["launch"] == "unlikely"
    assert assess_reading(quiet).launch.level == "unlikely"
    burnt = read_text("Sentinel-2 imagery from 16 December 2022 shows a large burn scar below "
                      "the flame bucket of the vertical engine test stand at Sohae.",
                      published="2022-12-19")
    assert burnt.stated["engine_test"] == "recent_test"
    assert assess_reading(burnt).engine_test.level == "recent_test"


def test_time_expressions_resolve_against_publication():
    from datetime import date

    (t,) = find_times("analysts said work started in mid-February", date(2019, 3, 7))
    assert (str(t.start), str(t.end)) == ("2019-02-11", "2019-02-20")
    # "may" is a modal verb, not the month.
    assert find_times("North Korea may be preparing", date(2019, 3, 7)) == []
    (t,) = find_times("yesterday", None)
    assert t.start is None and t.days == (-1, -1)


# ------------------------------------------------------------------ bad input


def test_empty_binary_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    with pytest.raises(CollateralError, match=r"empty\.txt: the file is empty"):
        read_file(empty)
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    with pytest.raises(CollateralError, match=r"image\.txt: looks like a binary file"):
        read_file(binary)
    with pytest.raises(CollateralError, match=r"nope\.txt: no such file"):
        read_file(tmp_path / "nope.txt")


def test_huge_file_is_refused_with_its_size(tmp_path):
    big = tmp_path / "big.txt"
    line = b"Trains arrived at Sohae. " * 40 + b"\n"
    with big.open("wb") as f:
        for _ in range(50_000_000 // len(line) + 1):
            f.write(line)
    with pytest.raises(CollateralError, match=r"big\.txt: 5\d\.\d MB is larger"):
        read_file(big)


def test_html_scripts_are_ignored_and_text_kept_verbatim(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(
        "<html><head><title>Sohae &amp; trains</title>"
        "<script>document.write('fuel trucks at Sohae')</script></head><body>"
        "<p>Freight trains <b>arrived</b> at Sohae on Monday, officials said.</p>"
        "<p>&lt;img src=x onerror=alert(1)&gt; {{7*7}} ${jndi:x}</p>"
        "<style>.x{}</style></body></html>", encoding="utf-8")
    r = read_file(page, published="2023-05-30")
    assert r.title == "Sohae & trains"
    assert [c.activity for c in r.claims] == ["railcars_arrived"]
    payload = json.dumps(r.to_dict())
    assert "document.write" not in payload  # script text is not visible text
    # hostile text stays inert, as plain strings
    assert "onerror" not in payload and "49" not in payload


def test_non_english_text_and_no_site(tmp_path):
    ko = tmp_path / "ko.txt"
    ko.write_text("북한 동창리 서해위성발사장에서 발사 준비 정황이 포착됐다고 군 당국이 밝혔다.",
                  encoding="utf-8")
    r = read_file(ko, published="2023-05-30")
    assert r.sites == ["sohae"] and r.claims == []
    assert any("does not look English" in w for w in r.warnings)
    plain = read_text("The weather in Paris was mild and the markets were calm.",
                      published="2023-05-30")
    assert plain.sites == [] and plain.claims == []
    assert assess_reading(plain).launch.level == "no_evidence"


def test_markdown_report(tmp_path):
    md = tmp_path / "r.md"
    md.write_text("# Sohae: transfer structure moved\n\n*Published: 30 May 2023*\n\n"
                  "The [rail-mounted transfer structure](http://x) was **moved** to the "
                  "gantry tower, according to CSIS.\n", encoding="utf-8")
    r = read_file(md)
    assert r.format == "markdown" and r.published == "2023-05-30"
    (c,) = _has(r, activity="transfer_structure_moved", origin="analyst:csis")
    assert c.site == "sohae" and c.part == "transfer_structure"
    assert "http://x" not in c.sentence  # link targets are not text


def test_awkward_encodings_and_markup(tmp_path):
    u16 = tmp_path / "u16.txt"
    u16.write_bytes("Freight trains arrived at Sohae on Monday.".encode("utf-16"))
    assert [c.activity for c in read_file(u16, published="2023-05-30").claims] == \
        ["railcars_arrived"]
    nohead = tmp_path / "nohead.html"
    nohead.write_text("<html><head><title>T</title><body><p>Freight trains arrived at "
                      "Sohae.</p></body></html>", encoding="utf-8")
    assert read_file(nohead, published="2023-05-30").claims
    embed = tmp_path / "embed.html"
    embed.write_text("<html><body><embed src=x><p>Freight trains arrived at Sohae.</p>"
                     "<p>&amp;lt;b&amp;gt; stays text</p></body></html>", encoding="utf-8")
    from sitewatch.warning.documents import read_document

    assert read_file(embed, published="2023-05-30").claims
    assert "&lt;b&gt; stays text" in read_document(embed).paragraphs  # decoded once only
    ansi = tmp_path / "ansi.txt"
    ansi.write_text("Trains arrived at Sohae \x1b]0;PWNED\x07\x1b[31m today. " + "Text. " * 20,
                    encoding="utf-8")
    assert "\x1b" not in json.dumps(read_file(ansi, published="2023-05-30").to_dict())


def test_dates_far_away_and_year_choice():
    from datetime import date

    (t,) = find_times("3000 years ago", None)
    assert t.start is None  # no crash, no date
    (t,) = find_times("99999999999 days ago", date(2023, 1, 1))
    assert t.start is not None
    # A date without a year is the one nearest the publication, whatever the verbs say.
    (t,) = find_times("a launch window of June 5 to June 10", date(2023, 5, 29))
    assert str(t.start) == "2023-06-05"
    (t,) = find_times("Trucks arrived from the north on June 2", date(2023, 6, 20))
    assert str(t.start) == "2023-06-02"
    (t,) = find_times("work could start in mid-January", date(2023, 12, 10))
    assert str(t.start) == "2024-01-11"
    (t,) = find_times("a window of 5-10 June", date(2023, 5, 29))
    assert (str(t.start), str(t.end)) == ("2023-06-05", "2023-06-10")


def test_not_a_negation_and_may_the_month():
    r = read_text("There is no doubt that freight trains arrived at Sohae in May, 38 North "
                  "said.", published="2023-06-20")
    (c,) = r.claims
    assert not c.negated and c.certainty == "firm"


# -- the stored records: each one through a real store (SQLite, PostgreSQL) and back ------


@pytest.fixture
def db(store_url):
    from sitewatch.sites.site import builtin_site
    from sitewatch.store import Store

    with Store.open_url(store_url) as s:
        s.put_site(builtin_site("sohae-sim"), "built-in")
        yield s


def _evidence(**over):
    from sitewatch.warning.evidence import Evidence

    base = {"id": "e1", "site": "sohae-sim", "kind": "notice", "indicator": "launch_notice",
            "event": "launch", "phase": "before", "part": None, "time": date(2023, 5, 29),
            "window": (date(2023, 5, 31), None), "source": "Japan Coast Guard",
            "origin": "government:JP", "certainty": 0.7, "negated": False,
            "text": "A launch window from May 31.", "link": {"report": "r1", "paragraph": 2},
            "detail": {"published": "2023-05-29", "hedges": ["may"], "age_days": None},
            "part_kind": None}
    return Evidence(**(base | over))


def test_report_and_its_evidence_round_trip_through_the_store(db, tmp_path):
    import hashlib

    from sitewatch.store import report_id
    from sitewatch.warning.records import Report

    text = ("Published: 29 May 2023\n\nFreight trains arrived at Sohae's rail station in "
            "recent days, a U.S. official said. Japan's coast guard was notified of a launch "
            "window from May 31 to June 11.")
    reading = read_text(text, name="wire.txt")
    checksum = hashlib.sha256(text.encode()).hexdigest()
    rid = report_id("sohae-sim", checksum)
    report = Report(rid, "sohae-sim", reading.name, reading.title, date(2023, 5, 29),
                    checksum, reading)
    ev = [_evidence(link={"report": rid, "paragraph": 1}),
          _evidence(id="e2", kind="report", indicator="railcars_arrived", window=None,
                    time=date(2023, 5, 28), negated=True, part="rail_terminal",
                    part_kind="rail_terminal", link={"report": rid, "paragraph": 0})]
    assert db.put_report(report, text, ev) is True
    (back,) = db.reports("sohae-sim")
    assert back.added_at is not None and back.added_at.tzinfo is not None
    assert back == replace(report, added_at=back.added_at)  # the reading came back whole
    assert back.published == date(2023, 5, 29) and back.reading.claims == reading.claims
    assert type(back).from_dict(json.loads(json.dumps(back.to_dict()))) == back
    assert db.report_text(rid) == text
    # Stored evidence comes back as Evidence, by date, days as dates, equal to what went in.
    assert db.evidence("sohae-sim") == [ev[1], ev[0]]
    # The same text again: not new, its evidence replaced (not doubled), first day kept.
    old = datetime(2000, 1, 1, tzinfo=UTC)
    assert db.put_report(replace(report, added_at=old), text, ev[:1]) is False
    assert db.evidence("sohae-sim") == ev[:1]
    assert db.reports("sohae-sim")[0].added_at == back.added_at
    # The listing as JSON keeps the keys `collateral list --json` has always printed.
    assert list(back.to_dict()) == ["id", "site_id", "name", "title", "published", "checksum",
                                    "reading", "added_at"]
    assert back.to_dict()["published"] == "2023-05-29"
    assert db.delete_report(rid) and db.reports("sohae-sim") == [] \
        and db.evidence("sohae-sim") == []


def test_note_round_trips_through_the_store(db):
    from sitewatch.store.collateral import note_id
    from sitewatch.warning.records import Note

    day = date(2024, 6, 3)
    nid = note_id("sohae-sim", day, "launch_pad", "Vehicles at the pad.")
    note = Note(nid, "sohae-sim", "launch_pad", day, "jd", "Vehicles at the pad.")
    ev = [_evidence(id="n1", kind="note", window=None, time=day, link={"note": nid})]
    db.put_note(note, ev)
    (back,) = db.notes("sohae-sim")
    assert back == replace(note, added_at=back.added_at) and back.date == day
    assert type(back).from_dict(json.loads(json.dumps(back.to_dict()))) == back
    assert list(back.to_dict()) == ["id", "site_id", "part", "date", "author", "text",
                                    "added_at"]
    assert back.to_dict()["date"] == "2024-06-03"
    assert db.evidence("sohae-sim") == ev
    db.put_note(note, [])  # the same note again replaces it, and its evidence
    assert len(db.notes("sohae-sim")) == 1 and db.evidence("sohae-sim") == []


def test_evidence_json_form():
    from sitewatch.warning.evidence import Evidence

    e = _evidence()
    d = e.to_dict()
    assert list(d) == ["id", "site", "kind", "indicator", "event", "phase", "part", "time",
                       "window", "source", "origin", "certainty", "negated", "text", "link",
                       "detail", "part_kind"]  # docs/collateral.md, "Evidence"
    assert d["time"] == "2023-05-29" and d["window"] == ["2023-05-31", None]
    assert Evidence.from_dict(json.loads(json.dumps(d))) == e
    assert e.known_from == date(2023, 5, 29) and e.published == date(2023, 5, 29)
    d["detail"]["hedges"].append("changed")  # the dict is a copy: the record stays as it was
    assert e.detail["hedges"] == ["may"]


# ---------------------------------------------------------------- reading time (issue 14 #13)


def test_runs_without_spaces_are_cut_before_tokenising():
    # spaCy strips a token's suffixes one character at a time over the rest of the token:
    # 20,000 commas in a row took 50-139 s to read.  Runs are cut, paragraphs read in chunks.
    from sitewatch.warning.collateral import MAX_CHUNK, MAX_TOKEN, _chunks, _cut_long_tokens

    cut = _cut_long_tokens("Sohae " + "," * 1000 + " moved " + "—" * 250)
    assert max(len(w) for w in cut.split()) <= MAX_TOKEN
    assert cut.startswith("Sohae ") and " moved " in cut
    assert _cut_long_tokens("an ordinary sentence, kept.") == "an ordinary sentence, kept."
    text = "word " * 30_000
    chunks = _chunks(text)
    assert "".join(chunks) == text and all(len(c) <= MAX_CHUNK for c in chunks)
    r = read_text("," * 30_000 + "\n\nTrains were seen at Sohae's rail station on March 5.",
                  published="2024-03-10")
    assert r.sites == ["sohae"]


DEADLINE = 1e18  # far away: the fake clock below decides when it has passed


def _budget(monkeypatch, split: int, claims: int) -> None:
    """A clock that needs no timing: half the budget (splitting) passes after ``split``
    checks, the whole budget (claims) after ``claims`` checks."""
    import sitewatch.warning.collateral as col

    calls = {"split": 0, "claims": 0}

    def past(deadline):
        phase = "claims" if deadline == DEADLINE else "split"
        calls[phase] += 1
        return calls[phase] > (split if phase == "split" else claims)

    monkeypatch.setattr(col, "past", past)


def _report(n: int) -> str:
    return "Weekly report on the Sohae launch site\n\n" + "\n\n".join(
        f"On March {i % 28 + 1}, satellite imagery showed the transfer structure moved at "
        f"Sohae (image {i}), officials said." for i in range(n))


def _extract_with_deadline(text: str):
    from sitewatch.warning.collateral import extract
    from sitewatch.warning.documents import parse_document

    return extract(parse_document(text, "r.txt"), published=date(2024, 3, 30),
                   deadline=DEADLINE)


def test_reading_stops_at_the_time_limit_with_a_warning_and_the_claims_so_far(monkeypatch):
    text = _report(40)
    full = _extract_with_deadline(text)
    assert len(full.claims) == 40 and not any("time limit" in w for w in full.warnings)
    # Half the budget gone after 10 paragraphs: the 9 claims of paragraphs 2-10 are read.
    _budget(monkeypatch, split=10, claims=1000)
    part = _extract_with_deadline(text)
    assert len(part.claims) == 9
    assert any("reading stopped at the time limit at paragraph 11 of 41" in w
               for w in part.warnings)
    # The whole budget gone in the claims: the sentences before it are read.
    _budget(monkeypatch, split=1000, claims=26)
    part = _extract_with_deadline(text)
    assert len(part.claims) == 25
    assert any("at sentence 27 of 41" in w for w in part.warnings)


def test_no_time_at_all_gives_an_empty_reading_not_an_error(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("Satellite imagery showed the transfer structure moved at Sohae.\n")
    r = read_file(f, published="2024-03-10", max_seconds=0)
    assert r.claims == [] and any("time limit" in w for w in r.warnings)


def test_huge_markdown_is_read_as_text_and_html_in_pieces(monkeypatch):
    import sitewatch.warning.documents as docs

    monkeypatch.setattr(docs, "MAX_MARKDOWN", 100)
    d = docs.parse_document("# Sohae\n\n" + "**Trains** were seen at the station. " * 10,
                            "r.md")
    assert any("read as plain text" in w for w in d.warnings)
    assert "**Trains** were seen" in d.text
    monkeypatch.setattr(docs, "_HTML_PIECE", 64)
    html = "<html><body>" + "<p>Trains were seen at Sohae.</p>" * 20 + "</body></html>"
    assert len(docs.parse_document(html, "r.html").paragraphs) == 20
    monkeypatch.setattr(docs, "past", lambda deadline: deadline is not None)
    d = docs.parse_document(html, "r.html", deadline=0.0)
    assert 0 < len(d.paragraphs) < 20
    assert any("only the first" in w and "of the HTML was read" in w for w in d.warnings)
