"""When a report was published, from the report itself, with a stated order of trust.

:func:`find_publication` looks, in this order, at:

1. **metadata**: HTML ``<meta property="article:published_time">`` (and its kin), JSON-LD
   ``datePublished``, then the first ``<time datetime>``;
2. a leading **``date YYYY-MM-DD``** line (how stored web pages record their date);
3. a **published line**: "Published: 14 March 2023", "Posted at Dec 03 2012 01:51 PM",
   "입력 2019.03.08", "This article was first published on ...";
4. a wire **dateline** with its year: "SEOUL, March 14, 2023 (Yonhap) --";
5. a **byline date**: a date line next to "By ..." or a line of names;
6. a **date line** in the head of the text (a line that is a date, with at most a weekday, a
   time, a zone, or a masthead before a separator): the earliest of them, since a page shows
   its original date, then reposts, updates and the day it was rendered;
7. an **updated line** ("Updated December 16, 2022");
8. the **URL**, when one is given (or the text names its own: "Source: https://..."):
   ``/2016/01/28/``, ``/2016/01/`` (month only), ``20191207``;
9. a **dateline without its year** ("May 19 (UPI) —") when the URL gives the year, or when
   the latest year the text names puts the lead's weekday ("said Thursday") on the
   dateline's day or the day before.

Never a date inside a sentence about an event ("imagery from May 16, 2013", a photo caption's
"Friday, July 17, 2020", a launch "on Dec. 7"): those are not publication dates, and a report
with no date found is undated.  A date after today is never a publication date.

>>> find_publication("Sohae update\\nPublished: 14 March 2023\\nImagery from 2 March 2023.")
Found(day=datetime.date(2023, 3, 14), how='published line', month_only=False)
>>> find_publication("Title\\nAn image from May 16, 2013 shows the stand.") is None
True
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from sitewatch.times import MAX_YEAR, MIN_YEAR

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MON = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
        r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
_WEEKDAY = (r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?")
#: A full date (with its year) in the forms reports print.
_FULL = re.compile(
    rf"(?P<iso>\b{_YEAR}-[01]\d-[0-3]\d\b)"
    rf"|(?P<dot>\b{_YEAR}[./][01]?\d[./][0-3]?\d\b)"
    rf"|(?P<mdy>\b{_MON}\.?\s+{_DAY},?\s+{_YEAR}\b)"
    rf"|(?P<dmy>\b{_DAY}\s+{_MON}\.?,?\s+{_YEAR}\b)", re.I)
#: Month and day, no year (a wire dateline).
_MONTH_DAY = rf"{_MON}\.?\s+{_DAY}"
_TIME = (r"\b\d{1,2}(?:[:.]\d\d){1,2}\s*(?:[ap]\.?m\.?)?|\b\d{1,2}\s*[ap]\.?m\.?"
         r"|\b\d{4}\s*(?:gmt|utc)")
_ZONE = r"\b(?:gmt|utc|kst|jst|est|edt|cst|cdt|pst|pdt|et|pt|hkt|bst|cet|cest|ist)\b"
_PUBLISHED = re.compile(r"\b(?:published|posted|first published|originally published|"
                        r"released|date|dated|입력|등록|게재)\b", re.I)
_UPDATED = re.compile(r"\b(?:updated|last updated|modified|수정)\b", re.I)
#: Words that make a line about an event (an image, a launch), never a publication line.
_EVENT = re.compile(r"\b(image|imagery|images|photo|photos|picture|taken|captured|collected|"
                    r"acquired|satellite|shows?|seen|launch(ed|es)?|test(ed|s)?|fired|"
                    r"conducted|between|since|until|from)\b", re.I)
_BYLINE = re.compile(r"^\W*by\s+[A-Z]", re.M)
_NAMES_LINE = re.compile(r"^[A-Z][\w.'’-]+(?: [A-Z][\w.'’-]+){1,3}"
                         r"(?:(?:,| and| &) [A-Z][\w.'’-]+(?: [A-Z][\w.'’-]+){1,3}){0,3}$")
_LEAD = re.compile(rf"\A\s*date\s*:?\s*(?P<d>{_YEAR}-[01]\d-[0-3]\d)\b", re.I)
_SENTENCE = re.compile(
    r"\bthis (?:article|report|story|post|page|piece|analysis) was (?:originally |first |"
    r"last )?(?P<verb>published|posted|updated|revised)(?: on| at)? (?P<rest>[^\n]{0,60})", re.I)
_DATELINE = re.compile(
    rf"^\W{{0,3}}(?:[A-Z][A-Za-z.'’ -]{{1,40}}?,\s*(?:[A-Z][A-Za-z.' -]{{1,30}},\s*)?)?"
    rf"(?P<d>{_MONTH_DAY}(?:,?\s+(?P<y>{_YEAR}))?)\s*(?:\([^)\n]{{2,40}}\))?\s*[-—–]", re.I | re.M)
_URL_DATE = [
    (re.compile(rf"/(?P<y>{_YEAR})/(?P<m>0?[1-9]|1[0-2])/(?P<d>0?[1-9]|[12]\d|3[01])(?:/|$)"),
     False),
    (re.compile(rf"/(?P<y>{_YEAR})/(?P<mon>{_MON})/(?P<d>0?[1-9]|[12]\d|3[01])(?:/|$)", re.I),
     False),
    (re.compile(rf"(?<![\d])(?P<y>{_YEAR})-?(?P<m>0[1-9]|1[0-2])-?(?P<d>0[1-9]|[12]\d|3[01])"
                r"(?![\d])"), False),
    (re.compile(rf"/(?P<y>{_YEAR})/(?P<m>0?[1-9]|1[0-2])(?:/|$)"), True),
]
#: How far into the text the head (title, byline, date lines) reaches.
HEAD_CHARS = 1500
HEAD_LINES = 14


@dataclass(frozen=True)
class Found:
    """A publication date and where it came from (``how``); ``month_only`` when the source
    gave only a month (the day is then the month's last, or today if sooner)."""

    day: date
    how: str
    month_only: bool = False


def _ok(d: date | None, today: date) -> date | None:
    if d is None or not MIN_YEAR <= d.year <= MAX_YEAR or d > today + timedelta(days=1):
        return None
    return d


def _make(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def parse_full(text: str) -> date | None:
    """The day a full date (with its year) writes, or None."""
    m = _FULL.search(text)
    return _parse_match(m) if m else None


def _parse_match(m: re.Match[str]) -> date | None:
    s = m[0]
    if m["iso"] or m["dot"]:
        y, mo, d = (int(x) for x in re.split(r"[-./]", s)[:3])
        return _make(y, mo, d)
    words = re.findall(r"[a-z]+|\d+", s.lower())
    mon = next((_MONTHS[w[:4] if w[:4] == "sept" else w[:3]] for w in words
                if w.isalpha() and (w[:3] in _MONTHS)), None)
    nums = [int(w) for w in re.findall(r"\d+", s)]
    year = next((n for n in nums if n > 999), None)
    day = next((n for n in nums if n <= 31), None)
    if mon is None or year is None or day is None:
        return None
    return _make(year, mon, day)


def _rest(segment: str, m: re.Match[str]) -> str:
    """What a line segment says besides its date, its weekday, time and zone."""
    rest = segment[:m.start()] + " " + segment[m.end():]
    for rx in (_TIME, _ZONE, rf"\b{_WEEKDAY}"):
        rest = re.sub(rx, " ", rest, flags=re.I)
    return re.sub(r"[\W_]+", " ", rest).strip()


def _head_lines(text: str) -> list[str]:
    out = []
    for line in text[:HEAD_CHARS].splitlines():
        line = line.strip()
        if not line:
            continue
        if len(line.split()) >= 40:  # the body has begun
            break
        out.append(line)
        if len(out) >= HEAD_LINES:
            break
    return out


def _line_candidates(lines: list[str], today: date) -> list[tuple[int, int, date, str]]:
    """(rank, line number, day, how) for each date printed on a head line that is a date
    line, a published / updated line or a byline date (rank: lower is trusted more)."""
    out = []
    for i, line in enumerate(lines):
        if len(line) > 160:
            continue
        for seg in re.split(r"\s[|·•]\s|\s[|·•]|[|·•]\s", line):
            m = _FULL.search(seg)
            if m is None:
                continue
            d = _ok(_parse_match(m), today)
            if d is None:
                continue
            before = seg[:m.start()]
            rest = _rest(seg, m)
            near = lines[max(0, i - 1):i + 2]
            if _UPDATED.search(before) and not _PUBLISHED.search(before):
                out.append((7, i, d, "updated line"))
            elif _PUBLISHED.search(before):
                out.append((3, i, d, "published line"))
            elif _EVENT.search(rest):
                continue  # "An image from May 16, 2013 of ...": an event, not publication
            elif _BYLINE.search(line) or any(
                    _BYLINE.search(x) or _NAMES_LINE.match(x) for x in near if x != line):
                out.append((5, i, d, "byline date"))
            elif not rest or _UPDATED.match(rest) or len(rest.split()) <= 6:
                out.append((6, i, d, "date line"))
    return out


def _dateline(text: str, url_year: int | None, today: date) -> tuple[int, date, str] | None:
    m = _DATELINE.search(text[:HEAD_CHARS])
    if m is None:
        return None
    if m["y"]:
        d = _ok(parse_full(m["d"]), today)
        return (4, d, "dateline") if d else None
    if url_year is not None:
        d = _ok(parse_full(f"{m['d']} {url_year}"), today)
        return (8, d, "dateline with the URL's year") if d else None
    return _dateline_weekday(text, m, today)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _dateline_weekday(text: str, m: re.Match[str], today: date
                      ) -> tuple[int, date, str] | None:
    """A yearless dateline's year: the latest year the text names, taken only when the lead's
    "said Thursday" falls on the dateline's day (or the day before, across time zones)."""
    years = [int(y) for y in re.findall(rf"\b({_YEAR})\b", text[:20000])]
    lead = text[m.end():m.end() + 600]
    said = {w.lower() for w in re.findall(r"\b(" + "|".join(_WEEKDAYS) + r")\b", lead, re.I)}
    if not years or not said:
        return None
    d = _ok(parse_full(f"{m['d']} {max(years)}"), today)
    if d is None:
        return None
    days = {_WEEKDAYS[d.weekday()], _WEEKDAYS[(d - timedelta(days=1)).weekday()]}
    return (10, d, "dateline, its year the text's latest, weekday checked") if said & days \
        else None


def url_date(url: str | None, today: date | None = None) -> Found | None:
    """The date a URL's path writes (``/2016/01/28/``, ``20191207``; ``/2016/01/``: month
    only), or None.

    >>> url_date("https://example.org/2016/01/sohae/").month_only
    True
    """
    if not url:
        return None
    today = today or date.today()
    path = re.sub(r"^[a-z]+://[^/]+", "", url.strip(), flags=re.I)
    for rx, month_only in _URL_DATE:
        m = rx.search(path)
        if m is None:
            continue
        y = int(m["y"])
        mo = _MONTHS[m["mon"].lower()[:3]] if "mon" in m.groupdict() and m["mon"] \
            else int(m["m"])
        if month_only:
            last = _make(y, mo, calendar.monthrange(y, mo)[1])
            d = min(last, today) if last else None
        else:
            d = _make(y, mo, int(m["d"]))
        if _ok(d, today) and d is not None:
            return Found(d, "URL (month only)" if month_only else "URL", month_only)
    return None


def _meta(meta: dict[str, str], today: date) -> Found | None:
    for key, how in (("published_time", "metadata"), ("json_ld", "JSON-LD datePublished"),
                     ("time", "<time datetime>")):
        v = meta.get(key)
        if not v:
            continue
        iso = re.match(rf"\s*({_YEAR})-([01]\d)-([0-3]\d)", v)
        d = _make(int(iso[1]), int(iso[2]), int(iso[3])) if iso else parse_full(v)
        if _ok(d, today) and d is not None:
            return Found(d, how)
    return None


def find_publication(text: str, meta: dict[str, str] | None = None, url: str | None = None,
                     today: date | None = None) -> Found | None:
    """The publication date of a report (see the module doc for the order of trust), or
    None when the report does not give one.

    ``text`` is the report's visible text (with its line breaks); ``meta`` what its HTML
    metadata said (keys ``published_time``, ``json_ld``, ``time``); ``url`` where it came
    from, when known.
    """
    today = today or date.today()
    found = _meta(meta or {}, today)
    if found:
        return found
    lead = _LEAD.match(text)
    if lead:
        d = _ok(parse_full(lead["d"]), today)
        if d:
            return Found(d, "date line of the stored page")
    cands: list[tuple[int, int, date, str]] = []
    for s in _SENTENCE.finditer(text[:4000]):
        d = _ok(parse_full(s["rest"]), today)
        if d:
            rank = 7 if s["verb"].lower() in ("updated", "revised") else 3
            cands.append((rank, -1, d, f"'this report was {s['verb'].lower()}' sentence"))
    cands += _line_candidates(_head_lines(text), today)
    from_url = url_date(url, today)
    dl = _dateline(text, from_url.day.year if from_url else None, today)
    if dl:
        cands.append((dl[0], 0, dl[1], dl[2]))
    if from_url:
        cands.append((9, 0, from_url.day, from_url.how))
    if not cands:
        return None
    best = min(c[0] for c in cands)
    tied = [c for c in cands if c[0] == best]
    # Several date lines: the earliest (the page's own date precedes reposts and renders).
    rank, _, day, how = min(tied, key=lambda c: (c[2], c[1])) if best == 6 else \
        min(tied, key=lambda c: c[1])
    return Found(day, how, how == "URL (month only)")


__all__ = ["Found", "find_publication", "parse_full", "url_date"]
