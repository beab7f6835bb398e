"""Who published a report (outlets) and who wrote it (authors), from the report itself.

An outlet is the *publisher* of the text, not a source it quotes ("38 North said" in a Yonhap
story is a claim source, see ``data/sources.toml``).  :func:`find_outlets` takes, most trusted
first:

1. HTML metadata: ``og:site_name``, JSON-LD ``publisher``;
2. the report's URL (given, or ``<link rel=canonical>`` / ``og:url``, or a "Source: URL" line):
   a known domain gives its outlet, an unknown one is cited by its host name;
3. the byline ("By Jane Roe, CNN"), a head line that is an outlet's name ("Reuters News"), a
   wire dateline ("SEOUL, Sept. 20 (Yonhap) --");
4. a mail address of a known outlet's domain ("imagery@csis.org");
5. the page's copyright line ("© 2020 The Korea Post"), never an image credit;
6. the text speaking of itself: "told CNN", "provided to The Associated Press", "The Diplomat
   has learned", "A 38 North exclusive", "Credit to NK News", an outlet's name heading a
   short line at the end of the page;
7. a news outlet the text relays ("CNN reported", "according to Yonhap"), listed last.

Names are canonical (``data/outlets.toml``).  A file name is never an outlet.

>>> find_outlets("SEOUL, Sept. 20 (Yonhap) -- Trucks were seen, 38 North said.")
['Yonhap']
>>> find_authors("Sohae update\\nBy Jane Roe and John Doe, Reuters\\nText.")
['Jane Roe', 'John Doe']
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Outlet:
    """A publisher: canonical ``name``, ``kind`` (wire, news, analysis, state), the
    ``pattern`` of its names and its web ``domains``."""

    name: str
    kind: str
    pattern: re.Pattern[str]
    domains: tuple[str, ...]


@lru_cache(maxsize=1)
def outlets() -> tuple[Outlet, ...]:
    """The outlet table (``data/outlets.toml``)."""
    ref = resources.files("sitewatch.warning").joinpath("data", "outlets.toml")
    out = []
    for o in tomllib.loads(ref.read_text(encoding="utf-8")).get("outlet", []):
        names = sorted({o["name"], *o.get("aliases", [])}, key=len, reverse=True)
        alts = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
        pattern = re.compile(rf"(?<![\w.-])(?:{alts})(?![\w-])", re.I)
        out.append(Outlet(o["name"], o.get("kind", "news"), pattern,
                          tuple(d.lower() for d in o.get("domains", []))))
    return tuple(out)


def named(text: str) -> Outlet | None:
    """The outlet a short phrase names (the first in the table that matches), or None."""
    for o in outlets():
        if o.pattern.search(text):
            return o
    return None


def _exact(text: str) -> Outlet | None:
    """The outlet a phrase *is* ("the Associated Press", "Reuters News"), or None."""
    t = re.sub(r"^[^\w(]*(the\s+)?|[^\w.)]*$", "", text, flags=re.I)
    short = re.sub(r"\s+(news|staff|wire|reporters?)$", "", t, flags=re.I)
    for o in outlets():
        if any(o.pattern.fullmatch(x) for x in (t, short, f"the {t}", f"the {short}")):
            return o
    return None


def by_host(host: str) -> Outlet | None:
    """The outlet whose domain a web host or mail domain is (``m-en.yna.co.kr``)."""
    h = host.lower().rstrip(".")
    for o in outlets():
        if any(h == d or h.endswith("." + d) for d in o.domains):
            return o
    return None


_URL = re.compile(r"\bhttps?://([a-z0-9.-]+\.[a-z]{2,})(?::\d+)?(/[^\s<>\"']*)?", re.I)
_URL_LINE = re.compile(r"^\W*(?:(?:source|url|link|originally published (?:at|on|by)|"
                       r"retrieved from|read (?:it )?at|from)\s*:?\s*)?(?P<u>https?://\S+)\W*$",
                       re.I | re.M)
_MAIL = re.compile(r"\b[\w.+-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)+)\b", re.I)
_WEBMAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "example.com",
            "protonmail.com", "aol.com")
_DATELINE = re.compile(r"^\W{0,3}(?:[A-Z][\w.'’ ,-]{1,60}?\s*)?"
                       r"\((?P<o>[A-Z][A-Za-z.&' -]{1,40})\)\s*[-—–:]", re.M)
_BYLINE = re.compile(r"^\W{0,3}by\s+(?P<who>[^\n]{2,160})$", re.I | re.M)
_COPYRIGHT = re.compile(r"(?:©|\(c\)|copyright|저작권자)\s*(?:©\s*)?(?:(?:19|20)\d\d\s*"
                        r"(?:[-–]\s*(?:19|20)\d\d\s*)?)?(?:by\s+)?(?P<who>[^\n.,|]{2,60})", re.I)
_IMAGE_CREDIT = re.compile(r"\b(image|imagery|photo|picture|satellite|maxar|digitalglobe|"
                           r"airbus|planet|cnes|geoeye|iceye|capella|blackshy|blacksky|"
                           r"pl[eé]iades|sentinel|copernicus|esa|nasa|getty|afp photo|"
                           r"shutterstock|reuters/)\b", re.I)
_SELF = [
    re.compile(r"\b(?:told|tells|telling|provided to|spoke to|speaking to|said to|"
               r"interviewed by|obtained by|reviewed by|shared with|seen by)\s+"
               r"(?P<o>(?:the\s+)?[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,4})"),
    re.compile(r"(?P<o>(?:The\s+)?[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,3})\s+"
               r"(?:has|have)\s+learned\b"),
    re.compile(r"\b[Aa]n?\s+(?P<o>[\w.&' -]{2,30}?)\s+exclusive\b"),
    re.compile(r"\b(?:credit to|courtesy of|source:|via)\s+(?P<o>[^\n,;]{2,40})", re.I),
]
_RELAY = [
    re.compile(r"(?P<o>(?:the\s+)?[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,4})"
               r"(?:\s+news\s+agency)?\s+(?:reported|reports|quoted|said|says|cited)\b"),
    re.compile(r"\b(?:analysis|report|reporting|story)\s+(?:[\w ]{0,40}\s)?by\s+"
               r"(?P<o>(?:the\s+)?[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,4})"),
    re.compile(r"\b(?:according to|citing|cited by|reported by)\s+(?:a\s+report\s+(?:by|from|"
               r"in)\s+)?(?P<o>(?:the\s+)?[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,4})"),
]


def urls_in(text: str) -> list[str]:
    """The report's own URL lines ("Source: https://...", a line that is a URL)."""
    return [m["u"].rstrip(".,;)") for m in _URL_LINE.finditer(text)]


def host_of(url: str) -> str | None:
    m = _URL.match(url.strip())
    return m[1].lower() if m else None


def _host_name(host: str) -> str:
    return re.sub(r"^(www\d*|m|amp|mobile|edition)\.", "", host.lower())


def _outlet_in(phrase: str) -> Outlet | None:
    """The outlet a captured phrase names: exactly, else (for a few words) anywhere."""
    o = _exact(phrase)
    if o is None and len(phrase) <= 60:
        o = named(phrase)
    return o


def find_outlets(text: str, *, meta: dict[str, str] | None = None,
                 url: str | None = None) -> list[str]:
    """The outlets that published ``text``, most likely first (see the module doc)."""
    meta = meta or {}
    head, tail = text[:2500], text[-1500:]
    found: list[str] = []

    def add(name: str | None) -> None:
        if name and name not in found:
            found.append(name)

    for key in ("site_name", "publisher"):
        v = (meta.get(key) or "").strip()
        if v:
            o = _outlet_in(v)
            add(o.name if o else v[:80])
    for u in [url, meta.get("url"), *urls_in(head), *urls_in(tail)]:
        host = host_of(u) if u else None
        if host:
            o = by_host(host)
            add(o.name if o else _host_name(host))
    for m in _BYLINE.finditer(head):
        parts = re.split(r"\s*(?:,|\||·|/|\bfor\b|\bof\b|\(|\))\s*", m["who"])
        for p in parts[1:]:
            o = _exact(p)
            if o:
                add(o.name)
    for line in head.splitlines()[:12]:
        if len(line.split()) <= 4:
            o = _exact(line)
            if o:
                add(o.name)
    for m in _DATELINE.finditer(head):
        add(o.name if (o := _exact(m["o"])) else None)
    for m in _MAIL.finditer(head + "\n" + tail):
        dom = m[1].lower()
        if dom not in _WEBMAIL:
            add(o.name if (o := by_host(dom)) else None)
    for line in text.splitlines():
        c = _COPYRIGHT.search(line)
        if c and len(line) < 200 and not _IMAGE_CREDIT.search(line):
            add(o.name if (o := _outlet_in(c["who"])) else None)
    own: dict[str, list[int]] = {}  # the text speaking of itself: most often named first
    for rx in _SELF:
        for m in rx.finditer(text):
            if (o := _exact(m["o"])) is not None:
                own.setdefault(o.name, []).append(m.start())
    for name in sorted(own, key=lambda n: (-len(own[n]), min(own[n]))):
        add(name)
    for line in tail.splitlines()[-6:]:
        if 0 < len(line.split()) <= 10:
            head_of = re.match(r"\W*(?P<o>[^:|–—-]{2,40})\s*[:|–—-]", line)
            add(o.name if head_of and (o := _exact(head_of["o"])) else None)
    for rx in _RELAY:
        for m in rx.finditer(text):
            o = _outlet_in(m["o"])
            if o and o.kind in ("wire", "news"):
                add(o.name)
    return found


_NAME = (r"[A-Z][\w'’-]*\.?(?:\s+(?:[A-Z]\.|de|van|von|bin|al-\w+))?\s+[A-Z][\w'’-]+"
         r"(?:\s+(?:Jr|Sr|III)\.?)?")
_NAMES = re.compile(rf"^(?P<n>{_NAME}(?:\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*){_NAME}){{0,4}})"
                    r"(?:\s*(?:,|\||·|/|\(|\bfor\b)|$)")
_REACHED = re.compile(rf"(?P<n>{_NAME})\s+can be reached at\b")
_ANALYSIS_BY = re.compile(rf"\b(?:analysis|imagery analysis|report) by\s+(?P<n>{_NAME})")
_NOT_NAME = re.compile(r"\b(?:News|Agency|Staff|Desk|Team|Reporters?|Editor|Times|Post|"
                       r"Press|Herald|Institute|Center|Centre|University|North|Korea|Key|"
                       r"Findings|Summary|Overview|Update|Updated|Related|Sources?|Analysis|"
                       r"Imagery|Satellite|Military|Story|Highlights|Menu|Content|Comments?)\b"
                       r"|\b[A-Z]{4,}\b")


def _split_names(s: str) -> list[str]:
    names = [n.strip(" .,") for n in re.split(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*)", s)]
    return [n for n in names if len(n.split()) >= 2 and not _NOT_NAME.search(n)]


def find_authors(text: str, *, meta: dict[str, str] | None = None) -> list[str]:
    """The authors a report names: its metadata, its byline ("By A and B"), a line of names
    beside its date, "analysis by A", "A can be reached at"."""
    meta = meta or {}
    head = text[:2500]
    found: list[str] = []
    for n in _split_names(meta.get("author") or ""):
        found.append(n)
    for m in _BYLINE.finditer(head):
        nm = _NAMES.match(m["who"].strip(" *_"))
        if nm:
            found += _split_names(nm["n"])
    lines = [ln.strip(" *_") for ln in head.splitlines() if ln.strip()]
    for i, line in enumerate(lines[:14]):
        nm = _NAMES.fullmatch(line) if len(line.split()) <= 12 else None
        if nm and any(re.search(r"\b(?:19|20)\d\d\b", x) for x in lines[max(0, i - 1):i + 2]):
            found += _split_names(nm["n"])
    for line in lines[:14]:  # "A 38 North exclusive, with analysis by Jane Roe."
        if len(line.split()) <= 15 and (by := _ANALYSIS_BY.search(line)):
            found += _split_names(by["n"])
    for m in _REACHED.finditer(text):
        found += _split_names(m["n"])
    return list(dict.fromkeys(n for n in found if n))


__all__ = ["Outlet", "by_host", "find_authors", "find_outlets", "named", "outlets", "urls_in"]
