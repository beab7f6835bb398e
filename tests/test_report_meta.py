"""Issue 17, dates and sources: a report's publication date (with an order of trust, never an
event's date, never today), undated reports (kept, never counted, refused by the CLI without
--published), outlets and authors, and page furniture stripped before reading.

Every text here is written for these tests (none is copied from a report corpus)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli
from sitewatch.errors import CollateralError
from sitewatch.sites.site import builtin_site
from sitewatch.store import Store
from sitewatch.warning.collateral import read_text
from sitewatch.warning.documents import is_boilerplate, parse_document
from sitewatch.warning.outlets import find_authors, find_outlets
from sitewatch.warning.pubdate import find_publication, url_date
from sitewatch.warning.record import add_report, assess_site, source_label

SITE = "sohae-sim"
BODY = ("Commercial imagery shows fuel trucks parked beside the launch pad at Sohae and the "
        "rail-mounted transfer structure moved against the gantry tower, the group said.")


@pytest.fixture
def store(tmp_path):
    with Store.open_path(tmp_path / "db" / "sitewatch.db") as s:
        s.put_site(builtin_site(SITE), "built-in")
        yield s


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _pub(text: str, **kw) -> tuple[date | None, str | None]:
    f = find_publication(text, **kw)
    return (f.day, f.how) if f else (None, None)


# -- each date form ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "want", "how"), [
    ("date 2021-06-14 Rocket site busy again\nTrucks were seen at the pad.",
     date(2021, 6, 14), "date line of the stored page"),
    ("Launch pad update\nPublished: 3 April 2022\n\nTrucks were seen.", date(2022, 4, 3),
     "published line"),
    ("Launch pad update\nPosted at Aug 09 2019 10:15 AM | Updated as of Aug 10 2019 08:00 AM\n"
     "Trucks were seen.", date(2019, 8, 9), "published line"),
    ("BUSAN, Oct. 7, 2020 (Yonhap) -- Trucks were seen at the pad, officials said.",
     date(2020, 10, 7), "dateline"),
    ("Quiet week at the pad\nBy Mira Castell and Tomas Reyes\nFebruary 2nd, 2021\n\nNothing "
     "moved.", date(2021, 2, 2), "byline date"),
    ("Quiet week at the pad\nThursday, 11 March 2021 14:05 GMT\n\nNothing moved.",
     date(2021, 3, 11), "date line"),
    ("Pad report\nThis report was updated on July 30, 2021, to add an image.\nText.",
     date(2021, 7, 30), "'this report was updated' sentence"),
    ("등록 2020.05.06 (09:10)\nThe pad was busy.", date(2020, 5, 6), "published line"),
])
def test_each_date_form_is_found(text, want, how):
    assert _pub(text) == (want, how)


def test_html_metadata_is_trusted_first():
    html = ("<html><head><meta property='article:published_time' "
            "content='2018-09-12T08:00:00+09:00'><title>Pad</title></head><body>"
            "<p>Posted on January 1, 2017</p><p>Trucks at the pad.</p></body></html>")
    doc = parse_document(html, "a.html")
    assert doc.published == date(2018, 9, 12) and doc.published_from == "metadata"
    ld = ('<html><head><script type="application/ld+json">{"@type": "NewsArticle", '
          '"datePublished": "2017-04-02T10:00:00Z", "publisher": {"name": "Reuters"}, '
          '"author": [{"name": "Ann Sato"}]}</script></head><body><p>Trucks at the pad.</p>'
          "</body></html>")
    doc = parse_document(ld, "b.html")
    assert doc.published == date(2017, 4, 2) and doc.published_from == "JSON-LD datePublished"
    assert doc.outlets == ["Reuters"] and doc.authors == ["Ann Sato"]
    tm = ('<html><body><p>By Ann Sato <time datetime="2016-11-20">Nov 20</time></p>'
          "<p>Trucks at the pad.</p></body></html>")
    assert parse_document(tm, "c.html").published == date(2016, 11, 20)


def test_url_dates_and_their_precision():
    assert url_date("https://news.example.com/2016/01/28/pad-busy/").day == date(2016, 1, 28)
    assert url_date("https://www.example.org/view.php?ud=20191207").day == date(2019, 12, 7)
    month = url_date("https://example.net/2014/10/upgrade-complete")
    assert month and month.month_only and month.day == date(2014, 10, 31)
    assert url_date("https://example.net/story/upgrade-complete") is None
    # The URL is only used when the text gives no date of its own.
    doc = parse_document("Upgrade at the pad\n\nTrucks were seen.", "x.txt",
                         url="https://thediplomat.com/2014/10/upgrade/")
    assert doc.published == date(2014, 10, 31) and doc.outlets == ["The Diplomat"]
    assert any("month's last day" in w for w in doc.warnings)
    # A yearless dateline takes the URL's year.
    doc = parse_document("June 4 (UPI) -- Trucks were seen.", "y.txt",
                         url="https://example.com/2018/06/trucks")
    assert doc.published == date(2018, 6, 4)


def test_repost_and_render_dates_lose_to_the_original():
    text = ("Sunday March 5th 2023\nWatch Desk covers launch sites.\n\nPad quiet again\n\n"
            "14 November 2019\n\nThe pad was quiet, the group said.")
    assert _pub(text) == (date(2019, 11, 14), "date line")
    text = ("9 June 2020\n\nPad quiet again (repost)\n\nLena Ivers and Paul Okoro\n"
            "June 6, 2020\n\nThe pad was quiet.")
    assert _pub(text) == (date(2020, 6, 6), "byline date")


# -- never an event's date, never today or later ----------------------------------------------


@pytest.mark.parametrize("text", [
    "Pad activity rises\nAn image from May 16, 2018 of the engine stand shows a scorched area.",
    "Imagery collected on 3 March 2021 shows trucks at the pad.\nMore text follows here.",
    "Pad activity\nThe rocket on the pad at Wenchang, Friday, July 17, 2020. (Photo: Wire)",
    "North Korea launched a rocket on December 12, 2012, from the Sohae station.",
    "SEOUL, March 3 (Yonhap) -- Trucks were seen, officials said, recalling the 2012 launch.",
])
def test_event_dates_are_never_the_publication_date(text):
    assert find_publication(text) is None


def test_a_date_after_today_is_not_a_publication_date():
    later = date.today() + timedelta(days=40)
    assert find_publication(f"Pad update\nPublished: {later.isoformat()}\nText.") is None


def test_yearless_dateline_needs_its_weekday_to_agree():
    # 14 March 2024 was a Thursday.
    assert _pub("SEOUL, March 14 (Yonhap) -- No signs were seen, officials said Thursday, "
                "despite plans for 2024.")[0] == date(2024, 3, 14)
    assert _pub("SEOUL, March 14 (Yonhap) -- No signs were seen, officials said Monday, "
                "despite plans for 2024.")[0] is None


# -- undated reports ---------------------------------------------------------------------


SEED_LIKE = ("U.S. says North Korea readies a launch\n"
             "{mosads}Officials said imagery in recent days shows fuel trucks at the launch pad "
             "at Sohae and freight trains arriving at the rail station, and a launch could come "
             "as soon as next week, a U.S. official said.\n"
             "The rail-mounted transfer structure has been moved against the gantry tower.\n")


def test_undated_report_is_kept_undated_and_ignored(store, tmp_path):
    site = store.get_site(SITE)
    p = _write(tmp_path, "readies.txt", SEED_LIKE)
    added = add_report(store, site, p)
    assert added.undated and added.reading.published is None and added.evidence
    a = assess_site(store, site)  # today
    assert a.launch.level != "imminent" and a.evidence_items == 0
    assert [r.id for r in a.undated_reports] == [added.report_id]
    assert a.to_dict()["undated_reports"][0]["published"] is None
    # Dated again with --published: it counts from then, and is no longer listed.
    again = add_report(store, site, p, published="2016-01-28")
    assert again.report_id == added.report_id and not again.new
    a = assess_site(store, site, at=date(2016, 1, 29))
    assert a.launch.level == "imminent" and a.undated_reports == ()
    assert assess_site(store, site).launch.level != "imminent"  # ten years on


def test_an_undated_report_naming_an_event_date_still_does_not_count(store, tmp_path):
    site = store.get_site(SITE)
    p = _write(tmp_path, "u.txt", "Pad report\nImagery from 20 January 2016 showed fuel trucks "
               "at the launch pad at Sohae, a U.S. official said.")
    added = add_report(store, site, p)
    assert added.undated and added.evidence
    assert assess_site(store, site, at=date(2016, 1, 21)).evidence_items == 0


def test_library_can_require_a_date(store, tmp_path):
    p = _write(tmp_path, "nodate.txt", SEED_LIKE)
    with pytest.raises(CollateralError, match=r"nodate\.txt.*--published YYYY-MM-DD"):
        add_report(store, store.get_site(SITE), p, require_date=True)
    assert store.reports(SITE) == []


def test_cli_refuses_an_undated_report_and_assess_lists_ignored_ones(tmp_path, home):
    p = _write(tmp_path, "readies.txt", SEED_LIKE)
    dated = _write(tmp_path, "dated.txt", "Pad update\nPublished: 2 May 2023\n\n" + BODY)
    run = CliRunner()
    r = run.invoke(cli, ["collateral", "add", "sohae", str(p), str(dated)],
                   env={"COLUMNS": "300"})
    assert r.exit_code == 1
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "readies.txt" in errors[0] \
        and "--published YYYY-MM-DD" in errors[0]
    assert "dated.txt as report" in r.output and "published line" in r.output
    r = run.invoke(cli, ["assess", "sohae"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "ignored" not in r.output
    # With --published it is stored; an old report does not make today imminent.
    r = run.invoke(cli, ["collateral", "add", "sohae", "--published", "2016-01-28",
                         str(p)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["assess", "sohae", "--json"])
    assert json.loads(r.output)["launch"]["level"] != "imminent"


def test_cli_assess_names_the_undated_reports_it_ignored(tmp_path, home):
    with Store.open_home(home) as s:
        site = s.use_site("sohae")
        add_report(s, site, _write(tmp_path, "u.txt", SEED_LIKE))
    r = CliRunner().invoke(cli, ["assess", "sohae"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "ignored 1 undated report" in r.output and "U.S. says North Korea" in r.output
    r = CliRunner().invoke(cli, ["assess", "sohae", "--json"])
    assert len(json.loads(r.output)["undated_reports"]) == 1


# -- outlets and authors -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kw", "want"), [
    ("Pad busy\nBy Kim Dana, CNN\n\n" + BODY, {}, ["CNN"]),
    ("WASHINGTON (Reuters) - " + BODY, {}, ["Reuters"]),
    ("TOKYO, June 2 (Kyodo) -- " + BODY, {}, ["Kyodo News"]),
    (BODY + "\nFor questions write to desk@en.yna.co.kr.", {}, ["Yonhap"]),
    (BODY + "\n© 2021 The Korea Herald. All rights reserved.", {}, ["Korea Herald"]),
    (BODY + "\nImage © 2021 Maxar Technologies.", {}, []),
    (BODY, {"url": "https://www.38north.org/2021/03/sohae031521/"}, ["38 North"]),
    (BODY, {"url": "https://blog.example-mirror.net/2021/03/post.html"},
     ["blog.example-mirror.net"]),
    (BODY, {"meta": {"site_name": "Beyond Parallel"}}, ["CSIS Beyond Parallel"]),
    ("Officials spoke to The Diplomat on condition of anonymity. " + BODY, {},
     ["The Diplomat"]),
    ("A 38 North exclusive, with analysis by Rhea Tam.\n\n" + BODY, {}, ["38 North"]),
    ("Trucks were seen at the pad, 38 North said. " + BODY, {}, []),  # a source, not an outlet
    ("Trucks were seen at the pad, CNN reported. " + BODY, {}, ["CNN"]),  # relayed
    ("DUBAI (AP) — " + BODY + " An official told Reuters it was routine.", {},
     ["Associated Press", "Reuters"]),
])
def test_outlets_from_byline_dateline_mail_copyright_url_meta(text, kw, want):
    assert find_outlets(text, **kw) == want


def test_authors_from_byline_and_names_line():
    assert find_authors("Pad busy\nBy Kim Dana and Lee Ora, CNN\nText.") == ["Kim Dana",
                                                                               "Lee Ora"]
    assert find_authors("Pad quiet\n\nJonah Vell and Ida Marsh\nMay 3, 2021\n\nText.") == [
        "Jonah Vell", "Ida Marsh"]
    assert find_authors("Key Findings\nMay 3, 2021\nText.") == []
    assert find_authors("", meta={"author": "Ann Sato"}) == ["Ann Sato"]


def test_a_file_name_is_never_a_source(store, tmp_path):
    site = store.get_site(SITE)
    p = _write(tmp_path, "007_c0ffee1234.txt",
               "Weekly launch site update\nPublished: 2 May 2023\n\n"
               "Fuel trucks were parked beside the launch pad at Sohae.")
    added = add_report(store, site, p)
    assert added.evidence
    assert all("007_c0ffee1234" not in e.source and ".txt" not in e.source
               for e in added.evidence)
    assert {e.source for e in added.evidence} == {"“Weekly launch site update”"}
    p2 = _write(tmp_path, "x.txt", "Second weekly site update\nBy Kim Dana, CNN\n"
                "Published: 2 May 2023\n\nFuel trucks were parked beside the launch pad at Sohae.")
    assert {e.source for e in add_report(store, site, p2).evidence} == {"CNN"}
    reading = read_text("Fuel trucks at Sohae.", name="a/b/report.txt")
    assert source_label(reading) != "report.txt"


def test_reading_keeps_outlets_and_old_readings_still_load():
    r = read_text("WASHINGTON (Reuters) - " + BODY, name="r.txt")
    assert r.outlets == ["Reuters"]
    d = r.to_dict()
    assert d["outlets"] == ["Reuters"]
    old = {k: v for k, v in d.items() if k not in ("outlets", "authors")}
    back = type(r).from_dict(old)
    assert back.outlets == [] and back.authors == [] and back.title == r.title


# -- page furniture ------------------------------------------------------------------------


def test_boilerplate_and_template_tags_never_become_claims():
    text = ("Skip to main content\n\nPad busy at Sohae\n\nShare on Facebook | Twitter | Email\n"
            "Published: 2 May 2023\n\n"
            "{mosads}Fuel trucks were parked beside the launch pad at Sohae, a U.S. official "
            "said.{/mosads}\n\n"
            "READ MORE: Fuel trucks seen at Sohae launch pad as rocket is moved\n\n"
            "Related: Trains arrive at Sohae rail station\n\n"
            "We use cookies to improve your experience. Accept cookies\n\n"
            "Subscribe to our newsletter for rail station and launch pad updates\n\n"
            "© 2023 Example Media. All rights reserved. Trucks at the launch pad.\n\n"
            "{{ ad_slot }} Photo : Some Agency\n")
    r = read_text(text, name="junk.txt")
    sentences = {c.sentence for c in r.claims}
    assert sentences == {"Fuel trucks were parked beside the launch pad at Sohae, a U.S. "
                         "official said."}
    assert all("{" not in c.sentence for c in r.claims)
    doc = parse_document(text, "junk.txt")
    assert not any(w in doc.text for w in ("READ MORE", "Related:", "cookies", "Subscribe",
                                          "©", "{{", "mosads", "Skip to"))
    assert doc.published == date(2023, 5, 2)


def test_boilerplate_rules_spare_real_sentences():
    for line in ("Related to the launch, trucks arrived at the pad.",
                 "Share prices fell after the launch.",
                 "Printed circuit boards were delivered to the assembly building."):
        assert not is_boilerplate(line)
    for line in ("READ MORE", "Related articles", "Tweet", "All rights reserved.",
                 "Sign up for our daily briefing", "Back To Top", "Photo : YONHAP"):
        assert is_boilerplate(line)
    # A long line is never furniture, however it starts: the pattern is not tried on it
    # (its leading \W* and .* backtracked quadratically over 30,000 commas: 114 s).
    assert is_boilerplate("© " + "," * 400)
    assert not is_boilerplate("© " + "," * 30_000)
    # The display of hostile text is unchanged: "${x}" and "{0.__class__}" are kept.
    doc = parse_document("Trucks at the pad ${x} {0.__class__} {X}.", "h.txt")
    assert "${x} {0.__class__} {X}" in doc.text


# -- hostile text --------------------------------------------------------------------------


def test_hostile_text_is_safe_and_bounded():
    long_line = "Published: " + "9" * 200_000 + "\n" + ("x" * 300_000)
    doc = parse_document(long_line + "\nTrucks at the pad.", "big.txt")
    assert doc.published is None
    ctrl = "Pad\x1b[31m busy\x07\nPublished: 2 May\x00 2023\n\n" + BODY
    doc = parse_document(ctrl, "ctrl.txt")
    assert "\x1b" not in doc.text and "\x07" not in doc.text
    many = ("By " + "A " * 50_000 + "\n") + "(" * 100_000 + "\n" + BODY
    assert find_outlets(many) == []
    assert find_authors(many) == []
    html = ('<html><head><script type="application/ld+json">' + "[" * 5000 + "]" * 5000
            + "</script><script type='application/ld+json'>{not json</script></head>"
            "<body><p>" + BODY + "</p></body></html>")
    doc = parse_document(html, "deep.html")
    assert doc.published is None and doc.paragraphs == [BODY]


def test_html_furniture_containers_are_not_read():
    html = ("<html><head><title>Trucks at the pad</title></head><body>"
            "<div class='cookie-banner'><p>We keep your settings. OK</p></div>"
            "<div class='share-bar'><a>Share on Facebook</a> <a>Share on X</a></div>"
            "<article><p>Published: 2 April 2024</p>"
            "<p>Fuel trucks were parked beside the launch pad at Sohae, an official said.</p>"
            "<div class='related-stories'><div><p>Rocket moved to the Sohae launch pad as "
            "trains arrive</p></div></div>"
            "<p>No launch notice has been issued yet.</p></article>"
            "<section id='comments'><p>A reader: the rocket is on the pad at Sohae.</p></section>"
            "</body></html>")
    r = read_text(html, name="page.html")
    assert {c.sentence for c in r.claims} <= {
        "Fuel trucks were parked beside the launch pad at Sohae, an official said.",
        "No launch notice has been issued yet."}
    doc = parse_document(html, "page.html")
    assert doc.paragraphs == ["Published: 2 April 2024", "Fuel trucks were parked beside the "
                              "launch pad at Sohae, an official said.",
                              "No launch notice has been issued yet."]
    # A furniture container left open does not swallow the page.
    broken = "<html><body><div class='share'><p>Trucks were seen at the pad.</p></body></html>"
    assert parse_document(broken, "b.html").paragraphs == ["Trucks were seen at the pad."]
