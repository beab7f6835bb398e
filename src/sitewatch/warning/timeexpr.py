"""Time expressions in report text, resolved to date windows relative to a publication date.

Reports say *when* in windows, not points: "in recent days", "as soon as next week",
"between May 31 and June 11", "mid-February".  :func:`find_times` finds such expressions in a
sentence and gives each a :class:`TimeWindow` (first and last day, both inclusive) and a
*sense*: ``past`` (something was seen), ``future`` (something is expected) or ``point``.

Without a publication date, relative expressions keep their words and no dates.  Dates
written without a year take the publication year (the previous year when that would put a
past date after publication).

Why not ``dateparser``: its search mode reads the modal "may" as the month of May, returns
points rather than windows, and does not know "as soon as next week"; the expressions
reports use are few and listed here.

Examples
--------
>>> from datetime import date
>>> for t in find_times("Imagery in recent days shows trucks; a launch could come as soon "
...                     "as next week.", date(2016, 1, 28)):
...     print(t.text, t.start, t.end, t.sense)
in recent days 2016-01-21 2016-01-28 past
as soon as next week 2016-02-01 2016-02-07 future
>>> [(str(t.start), str(t.end)) for t in find_times("between May 31 and June 11",
...                                                 date(2023, 5, 30))]
[('2023-05-31', '2023-06-11')]
>>> [(t.text, t.start) for t in find_times("last week", None)]
[('last week', None)]
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sitewatch.times import MAX_YEAR, MIN_YEAR

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MON = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
       r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_WEEKDAYS = [d.lower() for d in calendar.day_name]
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
# "May" alone is a modal verb far more often than a month: a bare month needs a day or year.
_DATE_MDY = rf"\b{_MON}\.? {_DAY}(?:,? {_YEAR})?\b"
_DATE_DMY = rf"\b{_DAY} {_MON}\.?(?:,? {_YEAR})?\b"
_DATE_ISO = r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b"
_DATE = rf"(?:{_DATE_ISO}|{_DATE_MDY}|{_DATE_DMY})"


@dataclass(frozen=True)
class TimeWindow:
    """A time expression and the days it covers (``None`` when it cannot be resolved)."""

    text: str
    start: date | None
    end: date | None
    sense: str  # past | future | point
    offset: int = 0  # character offset in the sentence
    #: (first, last) day relative to the publication date (negative: before it); known for
    #: relative expressions ("last summer") even when the publication date is not.
    days: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None, "sense": self.sense,
                "days": list(self.days) if self.days else None}


def parse_date(text: str, ref: date | None = None, *, past: bool = True) -> date | None:
    """One written date ("March 5, 2019", "5 Mar 2019", "2019-03-05", "Jan. 6") or None.

    >>> parse_date("Jan. 6", date(2016, 1, 28)), parse_date("14 Mar 2023")
    (datetime.date(2016, 1, 6), datetime.date(2023, 3, 14))
    """
    t = text.strip().lower().replace(",", " ").replace(".", " ")
    m = re.fullmatch(r"((?:19|20)\d\d)-([01]\d)-([0-3]\d)", t.strip())
    if m:
        return _safe_date(int(m[1]), int(m[2]), int(m[3]))
    words = t.split()
    day = month = year = None
    for w in words:
        w2 = re.sub(r"(st|nd|rd|th)$", "", w)
        if w in _MONTHS and month is None:
            month = _MONTHS[w]
        elif re.fullmatch(_YEAR, w2):
            year = int(w2)
        elif w2.isdigit() and 1 <= int(w2) <= 31 and day is None:
            day = int(w2)
    if month is None or day is None:
        return None
    if year is None:
        if ref is None:
            return None
        # The year that puts the date nearest the publication (a report written in December
        # about "January 5" means the coming one); ties go to the past unless ``past`` is off.
        cands = [d for y in (ref.year - 1, ref.year, ref.year + 1)
                 if (d := _safe_date(y, month, day)) is not None]
        if not cands:
            return None
        return min(cands, key=lambda d: (abs((d - ref).days), (d > ref) == past))
    return _safe_date(year, month, day)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _month_range(y: int, m: int) -> tuple[date, date]:
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


# "may" is left out: it is as often the month.
_FUTURE_CUES = re.compile(r"\b(will|would|expected|plans?|planning|could|might|as soon as|"
                          r"set to|poised|upcoming|coming|next|scheduled|intends?)\b", re.I)
#: Beyond this, "N units ago" is not about the report's events (and would overflow).
_MAX_AGO_DAYS = 36_500

# (pattern, resolver(match, ref) -> (start, end), sense).  First match at a position wins,
# longer patterns first.
_Resolver = "Callable[[re.Match[str], date], tuple[date | None, date | None]]"


def _rel(days_back: int, days_fwd: int = 0
         ) -> Callable[[re.Match[str], date], tuple[date, date]]:
    return lambda m, r: (r - timedelta(days=days_back), r + timedelta(days=days_fwd))


def _fwd(lo: int, hi: int) -> Callable[[re.Match[str], date], tuple[date, date]]:
    return lambda m, r: (r + timedelta(days=lo), r + timedelta(days=hi))


def _next_week(m: re.Match[str], r: date) -> tuple[date, date]:
    s = _monday(r) + timedelta(days=7)
    return s, s + timedelta(days=6)


def _last_week(m: re.Match[str], r: date) -> tuple[date, date]:
    s = _monday(r) - timedelta(days=7)
    return s, s + timedelta(days=6)


def _this_week(m: re.Match[str], r: date) -> tuple[date, date]:
    s = _monday(r)
    return s, min(r, s + timedelta(days=6))


def _last_month(m: re.Match[str], r: date) -> tuple[date, date]:
    y, mo = (r.year, r.month - 1) if r.month > 1 else (r.year - 1, 12)
    return _month_range(y, mo)


def _this_month(m: re.Match[str], r: date) -> tuple[date, date]:
    return date(r.year, r.month, 1), r


def _ago(m: re.Match[str], r: date) -> tuple[date, date]:
    n = _number(m["n"])
    unit = m["unit"].lower()
    days = min(n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit.rstrip("s")],
               _MAX_AGO_DAYS)
    d = r - timedelta(days=days)
    return d, d


def _weekday(m: re.Match[str], r: date) -> tuple[date, date]:
    wd = _WEEKDAYS.index(m["wd"].lower())
    if m["pre"] and m["pre"].lower().strip() == "next":
        d = r + timedelta(days=(wd - r.weekday()) % 7 or 7)
    else:
        d = r - timedelta(days=(r.weekday() - wd) % 7)
    return d, d


def _nearest_year(mo: int, r: date) -> int:
    """The year that puts month ``mo`` nearest to ``r`` ("mid-January" in a December report
    is the coming one)."""
    return min((r.year - 1, r.year, r.year + 1),
               key=lambda y: abs((date(y, mo, 15) - r).days))


def _part_of_month(m: re.Match[str], r: date) -> tuple[date, date]:
    mo = _MONTHS[m["mon"].lower().rstrip(".")]
    y = int(m["y"]) if m["y"] else _nearest_year(mo, r)
    last = calendar.monthrange(y, mo)[1]
    which = m["which"].lower()
    lo, hi = {"early": (1, 10), "mid": (11, 20), "middle of": (11, 20),
              "late": (21, last), "end of": (21, last)}[which.rstrip("- ")]
    return date(y, mo, lo), date(y, mo, hi)


def _month_year(m: re.Match[str], r: date) -> tuple[date, date]:
    mo = _MONTHS[m["mon"].lower().rstrip(".")]
    y = int(m["y"]) if m["y"] else _nearest_year(mo, r)
    return _month_range(y, mo)


def _season(m: re.Match[str], r: date) -> tuple[date, date]:
    s = m["season"].lower()
    months = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "fall": (9, 11),
              "winter": (12, 2)}[s]
    last = m["pre"].lower() == "last"
    if s == "winter":
        # The winter a date is in (or, for "last winter", the one before it) runs from
        # December to February.
        start = r.year if r.month == 12 else r.year - 1
        if last:
            start -= 1
        return date(start, 12, 1), _month_range(start + 1, 2)[1]
    y = r.year - 1 if last else r.year
    return date(y, months[0], 1), _month_range(y, months[1])[1]


def _year(m: re.Match[str], r: date) -> tuple[date, date]:
    y = int(m["y"])
    return date(y, 1, 1), date(y, 12, 31)


def _last_year(m: re.Match[str], r: date) -> tuple[date, date]:
    return date(r.year - 1, 1, 1), date(r.year - 1, 12, 31)


_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "a few": 3, "several": 4, "a couple of": 2}


def _number(s: str) -> int:
    s = s.lower()
    return int(s) if s.isdigit() else _NUMBERS.get(s, 3)


_NUM = r"(?P<n>\d+|a few|a couple of|several|one|two|three|four|five|six|seven|eight|nine|ten|a)"

_PATTERNS: list[tuple[str, object, str]] = [
    (r"\bin the (coming|next) (few )?days (or|and|to) weeks\b", _fwd(0, 28), "future"),
    (r"\b(in|over|within) the (coming|next) (few )?days\b", _fwd(0, 10), "future"),
    (r"\b(in|over|within) the (coming|next) (few )?weeks\b", _fwd(0, 42), "future"),
    (r"\b(in|over|within) the (coming|next) (few )?months\b", _fwd(0, 120), "future"),
    (r"\bwithin (days|a few days|the week)\b", _fwd(0, 7), "future"),
    (r"\bwithin weeks\b", _fwd(0, 42), "future"),
    (r"\b(as soon as|as early as|possibly|by|around|from|early|late)? ?next week\b",
     _next_week, "future"),
    (r"\b(in|over|during) (the )?(recent|past|last) (few |couple of )?days\b", _rel(7), "past"),
    (r"\brecent days\b", _rel(7), "past"),
    (r"\b(in|over|during) (the )?(recent|past|last) (few |couple of |several )?weeks\b",
     _rel(28), "past"),
    (r"\b(in|over|during) (the )?(recent|past|last) (few |couple of |several )?months\b",
     _rel(120), "past"),
    (rf"\b{_NUM} (?P<unit>days?|weeks?|months?|years?) ago\b", _ago, "past"),
    (r"\blast week\b", _last_week, "past"),
    (r"\b(earlier )?this week\b", _this_week, "past"),
    (r"\blast month\b", _last_month, "past"),
    (r"\b(earlier|later) this month\b", _this_month, "past"),
    (r"\bthis month\b", _this_month, "past"),
    (r"\blast year\b", _last_year, "past"),
    (r"\byesterday\b", _rel(1, -1), "past"),
    (r"\b(today|this morning|this afternoon|tonight)\b", _rel(0), "point"),
    (r"\brecently\b", _rel(30), "past"),
    (r"\b(?P<pre>last|this) (?P<season>spring|summer|autumn|fall|winter)\b", _season, "past"),
    (rf"\b(?P<pre>next |last |this |on )?(?P<wd>{'|'.join(_WEEKDAYS)})\b", _weekday, "point"),
    (rf"\b(?P<which>early|mid-?|middle of|late|end of) ?(?P<mon>{_MON})\.?(?:,? (?P<y>{_YEAR}))?\b",
     _part_of_month, "past"),
    (rf"\b(?:in|since|during|by|of|from|until) (?P<mon>{_MON})\.?(?: (?P<y>{_YEAR}))?\b(?! \d)",
     _month_year, "past"),
    (rf"\b(?P<mon>{_MON})\.? (?P<y>{_YEAR})\b", _month_year, "past"),
    (rf"\b(?:in|since|during|by) (?P<y>{_YEAR})\b", _year, "past"),
]
_COMPILED = [(re.compile(p, re.I), f, s) for p, f, s in _PATTERNS]
_RANGE = re.compile(
    rf"\b(?:between|from)\s+(?P<a>{_DATE})\s+(?:and|to|until|through)\s+(?P<b>{_DATE})"
    rf"|(?P<c>{_DATE})\s*(?:-|–|—|to|until|through)\s*(?P<d>{_DATE}|{_DAY}\b)"
    rf"|\b(?P<d1>{_DAY})\s*(?:-|–|—|to)\s*(?P<d2>{_DAY}) (?P<mon>{_MON})\.?"
    rf"(?:,? (?P<y>{_YEAR}))?\b",
    re.I)
_SINGLE = re.compile(_DATE, re.I)


def _resolve(fn: object, m: re.Match[str], ref: date, future: bool
             ) -> tuple[date | None, date | None]:
    """Run a resolver; a bare weekday in a sentence about the future is the coming one."""
    if fn is _weekday and future and (m["pre"] or "").strip().lower() != "last":
        wd = _WEEKDAYS.index(m["wd"].lower())
        d = ref + timedelta(days=(wd - ref.weekday()) % 7)
        return d, d
    return fn(m, ref)  # type: ignore[operator]


def find_times(sentence: str, published: date | None) -> list[TimeWindow]:
    """Every time expression in ``sentence``, resolved against ``published`` when given."""
    out: list[TimeWindow] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    future_sentence = bool(_FUTURE_CUES.search(sentence))
    for m in _RANGE.finditer(sentence):
        if m["d1"]:  # "5-10 June": the month (and year) of the second day serve both
            tail = f" {m['mon']}" + (f" {m['y']}" if m["y"] else "")
            a_txt, b_txt = m["d1"] + tail, m["d2"] + tail
        else:
            a_txt, b_txt = (m["a"], m["b"]) if m["a"] else (m["c"], m["d"])
        a = parse_date(a_txt, published, past=not future_sentence)
        b = parse_date(b_txt, published, past=not future_sentence)
        if b is None and a is not None and b_txt.strip().rstrip("stndrh").isdigit():
            b = _safe_date(a.year, a.month, int(re.sub(r"\D", "", b_txt)))
        if a is not None and b is not None and b < a:
            b = _safe_date(b.year + 1, b.month, b.day)
        sense = "future" if published and a and a > published else "point"
        out.append(TimeWindow(m[0], a, b, sense, m.start()))
        taken.append(m.span())
    for m in _SINGLE.finditer(sentence):
        if not free(*m.span()):
            continue
        d = parse_date(m[0], published, past=not future_sentence)
        if d is None and published is None:
            d = None
        sense = "future" if published and d and d > published else "point"
        out.append(TimeWindow(m[0], d, d, sense, m.start()))
        taken.append(m.span())
    for rx, fn, sense in _COMPILED:
        for m in rx.finditer(sentence):
            if not free(*m.span()):
                continue
            text = m[0].strip()
            try:
                if published is None:
                    # Resolve against a nominal date to learn how far back or ahead it lies.
                    nominal = date(2001, 6, 15)
                    a, b = _resolve(fn, m, nominal, future_sentence)
                    days = ((a - nominal).days, (b - nominal).days) if a and b else None
                    out.append(TimeWindow(text, None, None, sense, m.start(), days))
                    taken.append(m.span())
                    continue
                start, end = _resolve(fn, m, published, future_sentence)
            except (OverflowError, ValueError):
                continue  # a date outside the calendar: not a time expression after all
            s = sense
            if start is not None and start > published and s in ("point", "past"):
                s = "future"
            days = ((start - published).days, (end - published).days) \
                if start and end else None
            out.append(TimeWindow(text, start, end, s, m.start(), days))
            taken.append(m.span())
    out.sort(key=lambda t: t.offset)
    # "within days" of a report dated 2999-12-31 ends in year 3000: beyond the years sitewatch
    # handles, so the window's days are kept and its dates left unknown.
    return [t if _in_years(t.start) and _in_years(t.end) else replace(t, start=None, end=None)
            for t in out]


def _in_years(d: date | None) -> bool:
    return d is None or MIN_YEAR <= d.year <= MAX_YEAR


#: Publication-date lines near the top of a report: "Published: 14 March 2023", a line that is
#: a date (with a time, a zone or a "| OUTLET" after it, or a "By ... |" before it), or a
#: wire dateline "SEOUL, March 14, 2023 (Yonhap) --".
_TAIL = r"\s*(?:\d{1,2}[:.]\d\d\b[^\n]*|\||\(|[-–—:,]|$)"
_PUB_PATTERNS = [
    re.compile(rf"\b(?:published|posted|updated|date|dated)\s*:?\s*(?:on\s+)?(?P<d>{_DATE})",
               re.I),
    re.compile(rf"^\s*(?:[^\n|]{{0,60}}\|\s*)?(?:[A-Z][A-Za-z .'-]+,\s*)?"
               rf"(?P<d>{_DATE_MDY}|{_DATE_DMY}|{_DATE_ISO}){_TAIL}", re.I | re.M),
]
#: A wire dateline without a year ("SEOUL, March 14 (Yonhap) --").
_DATELINE = re.compile(rf"^\s*[A-Z][A-Za-z .'-]+,\s*(?P<d>{_MON}\.? {_DAY})\s*\(", re.M | re.I)


def find_published(text: str, meta: str | None = None) -> date | None:
    """The publication date a report states near its top (or in ``meta``), or None.

    >>> find_published("Sohae update\\nPublished: 14 March 2023\\n...")
    datetime.date(2023, 3, 14)
    >>> find_published("SEOUL, March 14, 2023 (Yonhap) -- Imagery shows...")
    datetime.date(2023, 3, 14)
    >>> find_published("Sohae brief\\nBy the Imagery Desk | April 11, 2024\\nText.")
    datetime.date(2024, 4, 11)
    >>> find_published("Title\\n2023-05-24 11:05 KST\\nSEOUL, May 24 (Yonhap) -- ...")
    datetime.date(2023, 5, 24)
    >>> find_published("SEOUL, March 14 (Yonhap) -- No signs, officials said in 2024.")
    datetime.date(2024, 3, 14)
    """
    if meta:
        iso = re.match(r"\s*((?:19|20)\d\d-[01]\d-[0-3]\d)", meta)  # also "...T08:00+09:00"
        d = parse_date(iso[1]) if iso else parse_date(meta)
        if d:
            return d
    head = text[:1500]
    for rx in _PUB_PATTERNS:
        for m in rx.finditer(head):
            d = parse_date(m["d"])  # None without a year
            if d is not None:
                return d
    dl = _DATELINE.search(head)
    if dl:
        # A dateline gives month and day; the year is the latest the text names.
        years = [int(y) for y in re.findall(r"\b((?:19|20)\d\d)\b", text[:20000])]
        if years:
            return parse_date(f"{dl['d']} {max(years)}")
    return None


__all__ = ["TimeWindow", "find_published", "find_times", "parse_date"]
