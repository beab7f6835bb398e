"""Times inside sitewatch are timezone-aware UTC ``datetime`` (dates are ``date``); strings
exist only at the edges (files, the database, JSON, the command line).  This module is the one
place that turns one into the other.

>>> parse_time("2024-01-10T02:14:00Z")
datetime.datetime(2024, 1, 10, 2, 14, tzinfo=datetime.timezone.utc)
>>> iso(parse_time("2024:01:10 02:14:00")), iso_day(parse_time("20240110"))
('2024-01-10T02:14:00Z', '2024-01-10')
>>> parse_date("2024-05-02"), parse_date(None)
(datetime.date(2024, 5, 2), None)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sitewatch.errors import SitewatchError


class TimeFormatError(SitewatchError, ValueError):
    """A date or time that is not ISO 8601."""


def as_utc(t: datetime) -> datetime:
    """``t`` in UTC; a naive time is taken as UTC (never as the machine's local time)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    """``t`` as ISO 8601 UTC with a ``Z`` (seconds precision): the form stored and shown."""
    return as_utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_day(t: datetime | date | str) -> str:
    """The UTC day of ``t`` as ``YYYY-MM-DD`` (a stored ISO string is parsed first)."""
    if isinstance(t, str):
        t = parse_time(t)
    if isinstance(t, datetime):
        t = as_utc(t).date()
    return t.isoformat()


def _parse(text: str) -> datetime | None:
    s = str(text).strip()
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
    return as_utc(t)


def parse_time(text: str | datetime, what: str = "time",
               error: type[SitewatchError] = TimeFormatError) -> datetime:
    """An ISO 8601 date or date-time (``2024-01-10``, ``2024-01-10T02:14:00Z``,
    ``20240110`` or ``2024:01:10 02:14:00``) as UTC; naive times are taken as UTC.  Raises
    ``error`` naming ``what`` and the text otherwise."""
    if isinstance(text, datetime):
        return as_utc(text)
    t = _parse(text)
    if t is None:
        raise error(f"cannot read {what} {text!r}: use ISO 8601, e.g. 2024-01-10")
    return t


def parse_date(value: str | date | None, what: str = "date",
               error: type[SitewatchError] = TimeFormatError) -> date | None:
    """A day given as ``YYYY-MM-DD`` (or a date, or an ISO date-time: its UTC day); None stays
    None.  Raises ``error`` naming ``what`` and the text otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).date()
    if isinstance(value, date):
        return value
    t = _parse(value)
    if t is None:
        raise error(f"{what} {value!r} is not YYYY-MM-DD")
    return t.date()


__all__ = ["TimeFormatError", "as_utc", "iso", "iso_day", "now", "parse_date", "parse_time"]
