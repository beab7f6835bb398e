"""Times inside sitewatch are timezone-aware UTC ``datetime`` (dates are ``date``); strings
exist only at the edges (files, the database, JSON, the command line).  This module is the one
place that turns one into the other.

>>> parse_time("2024-01-10T02:14:00Z")
datetime.datetime(2024, 1, 10, 2, 14, tzinfo=datetime.timezone.utc)
>>> iso(parse_time("2024:01:10 02:14:00")), iso_day(parse_time("20240110"))
('2024-01-10T02:14:00Z', '2024-01-10')
>>> parse_date("2024-05-02"), parse_date(None)
(datetime.date(2024, 5, 2), None)

Years outside ``MIN_YEAR``..``MAX_YEAR`` (1000 to 2999) are refused with the same error as
unreadable text, so ``--to 9999-12-31`` is one line, not an overflow deep in date arithmetic.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sitewatch.errors import SitewatchError


class TimeFormatError(SitewatchError, ValueError):
    """A date or time that is not ISO 8601, or outside the years sitewatch handles."""


#: The years sitewatch accepts at its edges.  Wide enough for any image or report, narrow
#: enough that date arithmetic on them (windows, lead times, half-lives: years at most) can
#: never leave Python's range (years 1 to 9999) and fail with a traceback.
MIN_YEAR, MAX_YEAR = 1000, 2999


def as_utc(t: datetime) -> datetime:
    """``t`` in UTC; a naive time is taken as UTC (never as the machine's local time)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    """``t`` as ISO 8601 UTC with a ``Z`` (seconds precision): the form stored and shown."""
    t = as_utc(t)  # not strftime: glibc writes year 1 as "1", which nothing parses back
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z")


def iso_day(t: datetime | date | str) -> str:
    """The UTC day of ``t`` as ``YYYY-MM-DD`` (a stored ISO string is parsed first)."""
    if isinstance(t, str):
        t = parse_time(t)
    if isinstance(t, datetime):
        t = as_utc(t).date()
    return t.isoformat()


def _parse(text: str) -> datetime | None:
    s = str(text).strip()
    if len(s) > 64:  # no date is that long; do not hand megabytes to the parsers
        return None
    if re.match(r"^\d{4}:\d{2}:\d{2} \d{2}:\d{2}:\d{2}$", s):  # EXIF / TIFF DateTime
        s = s.replace(":", "-", 2)
    s = s.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        try:
            t = datetime.strptime(s, "%Y%m%d")
        except ValueError:
            return None
    try:
        return as_utc(t)
    except OverflowError:  # an offset that moves 9999-12-31 or 0001-01-01 out of range
        return None


def _in_range(t: datetime | date, text: object, what: str,
              error: type[SitewatchError]) -> None:
    if not MIN_YEAR <= t.year <= MAX_YEAR:
        raise error(f"{what} {_short(text)!r} is outside the years sitewatch handles "
                    f"({MIN_YEAR} to {MAX_YEAR})")


def parse_time(text: str | datetime, what: str = "time",
               error: type[SitewatchError] = TimeFormatError) -> datetime:
    """An ISO 8601 date or date-time (``2024-01-10``, ``2024-01-10T02:14:00Z``,
    ``20240110`` or ``2024:01:10 02:14:00``) as UTC; naive times are taken as UTC.  Raises
    ``error`` naming ``what`` and the text otherwise, and for years outside
    ``MIN_YEAR``..``MAX_YEAR``."""
    if isinstance(text, datetime):
        t = as_utc(text)
    else:
        parsed = _parse(text)
        if parsed is None:
            raise error(f"cannot read {what} {_short(text)!r}: use ISO 8601, e.g. 2024-01-10")
        t = parsed
    _in_range(t, text, what, error)
    return t


def parse_date(value: str | date | None, what: str = "date",
               error: type[SitewatchError] = TimeFormatError) -> date | None:
    """A day given as ``YYYY-MM-DD`` (or a date, or an ISO date-time: its UTC day); None stays
    None.  Raises ``error`` naming ``what`` and the text otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime):
        d = as_utc(value).date()
    elif isinstance(value, date):
        d = value
    else:
        t = _parse(value)
        if t is None:
            raise error(f"{what} {_short(value)!r} is not YYYY-MM-DD")
        d = t.date()
    _in_range(d, value, what, error)
    return d


def _short(text: object, limit: int = 64) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit] + "..."


__all__ = ["MAX_YEAR", "MIN_YEAR", "TimeFormatError", "as_utc", "iso", "iso_day", "now",
           "parse_date", "parse_time"]
