"""Reading collateral reports: plain text, Markdown or HTML, as untrusted input.

:func:`read_document` turns a file (or :func:`parse_document` a string) into a
:class:`Document`: a title, paragraphs of visible text, the publication date it states, and
warnings.  Nothing in the text is executed or interpolated: HTML is parsed with the standard
library's tokenizer and only visible text is kept (``script``, ``style``, ``template``,
``noscript``, ``iframe``, ``svg`` and comments are dropped); Markdown is parsed with
markdown-it (HTML blocks inside it are ignored).

Errors (:class:`~sitewatch.errors.CollateralError`, a ``ValueError``) name the file: empty,
binary, undecodable, or larger than ``max_bytes`` (default 10 MB).

Reading time is bounded too: every step is linear in the text, and a ``deadline`` (a
``time.monotonic()`` value, see :func:`deadline_in`; ``READ_SECONDS`` by default in
:func:`~sitewatch.warning.collateral.read_file`) stops it cleanly with a warning and what was
read so far.  HTML is parsed in pieces so the deadline is checked between them; Markdown over
``MAX_MARKDOWN`` characters is read as plain text (markdown-it spends ~15 s per MB on hostile
nesting).

Examples
--------
>>> doc = parse_document("<html><head><title>Sohae</title><script>alert(1)</script></head>"
...                      "<body><p>Trains <b>arrived</b>.</p></body></html>", "x.html")
>>> doc.title, doc.paragraphs, doc.format
('Sohae', ['Trains arrived.'], 'html')
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

from sitewatch.errors import CollateralError
from sitewatch.warning.outlets import find_authors, find_outlets, urls_in
from sitewatch.warning.pubdate import find_publication

#: Reports larger than this are refused (a 50 MB "report" is a log or a dump, not a report).
MAX_BYTES = 10_000_000
#: Seconds a report may take to read (parse and extract) before reading stops with a warning.
READ_SECONDS = 60.0
#: Markdown larger than this is read as plain text (markdown-it: up to ~15 s a MB).
MAX_MARKDOWN = 250_000
#: HTML is fed to the parser in pieces of this many characters (the deadline is checked
#: between them).
_HTML_PIECE = 1 << 18
#: Elements whose content is not the report's visible text (void elements such as <embed>
#: have no content and are not listed: they would never close).
_SKIP_TAGS = {"script", "style", "template", "noscript", "iframe", "svg", "object", "nav",
              "aside",
              "footer", "form", "button", "select", "textarea", "canvas"}
#: Control characters (C0 but tab, newline and carriage return; DEL; C1): terminal escapes in
#: a hostile report must never reach a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Containers whose ``class`` or ``id`` names page furniture (related-story lists, share bars,
#: comments, cookie banners, newsletter boxes, ads): their text is not the report's.
_FURNITURE_TAGS = {"div", "aside", "section", "ul", "ol", "span", "header"}
_FURNITURE_CLASS = re.compile(
    r"(?:^|[\s_-])(related|share|sharing|social|comments?|newsletter|cookies?|consent|"
    r"advert|advertisement|ads?|promo|sidebar|breadcrumbs?|subscribe|subscription|"
    r"recommended|popular|trending|most-read|mostread|paywall|signup|outbrain|taboola)"
    r"(?:$|[\s_-])", re.I)
_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
               "section", "article", "blockquote", "tr", "td", "th", "table", "figcaption",
               "figure", "header", "main", "aside", "pre", "hr", "dd", "dt"}


#: Page furniture: a whole line (of at most ``_BOILER_WORDS`` words) that is one of these is
#: not the report's text (share links, "READ MORE", cookie and subscription prompts,
#: copyright lines, comment widgets, tag lists, photo credits).
_BOILER_WORDS = 30
#: ... and of at most this many characters: a longer line is never furniture, and the pattern's
#: leading ``\W*`` and ``.*`` would backtrack quadratically over a long run without spaces
#: (30,000 commas took 114 s).
_BOILER_CHARS = 500
_BOILERPLATE = re.compile(r"""^\W*(?:
    skip\ to\ (?:main\ )?content|back\ to\ top|menu(?:\ content)?|search|home|
    advertisement|advertisment|sponsored(?:\ content)?|story\ continues\ below.*|
    share(?:\ (?:this|the))?(?:\ (?:article|story|page|post))?(?:\ (?:on|via|to))?
        (?:[\s,|/]*(?:facebook|twitter|x|linkedin|whatsapp|e-?mail|reddit|telegram|
        pinterest|flipboard|copy\ link|print))*|
    tweet|e-?mail|print|comments?|\d+\ comments?|
    (?:read\ more|also\ read|more\ to\ read|related|related\ (?:articles?|stories|
        coverage|content|news|posts?)|recommended(?:\ for\ you)?|more\ on\ this(?:\ story)?|
        see\ also|further\ reading|most\ read|trending(?:\ now)?|you\ may\ also\ like)
        (?:\s*[:|>»-].*|\s+(?-i:[A-Z]).*)?|
    .*\b(?:we\ use\ cookies|uses\ cookies|cookie\ (?:policy|settings|notice|preferences)|
        accept\ (?:all\ )?cookies)\b.*|
    (?:©|\(c\)|copyright|저작권자).*|.*\ball\ rights\ reserved\b.*|
    (?:subscribe|sign\ up|sign\ in|log\ ?in|register\ now|already\ a\ subscriber)\b.*|
    .*\b(?:newsletter|subscribers?\ only|for\ subscribers|subscription)\b.*|
    please\ read\ our\ comment\ policy.*|no\ comments:?|post\ a\ comment|
    comments\ are\ closed|leave\ a\ (?:comment|reply)|read\ \d+\ remaining\ paragraphs.*|
    ie\ ?11\ is\ not\ supported.*|powered\ by\ automated\ translation|click\ to\ enlarge|
    stay\ informed\ about\ our\ latest.*|i['’]?m\ interested\ in.*|
    (?:photo|image|credit|source|photo\ credit)\s*:\s*\S+(?:\s+\S+){0,5}|
    follow\ us\b.*|(?:tags?|keywords?|키워드)(?:\s*[:#].*)?|
    .*\bfor\ media\ (?:licensing\ )?options\b.*
)\W*$""", re.I | re.X)
#: Template and shortcode tags a page left in its text ("{mosads}", "{{ ad }}", "[caption]").
_TEMPLATE = re.compile(r"\{\{[^{}\n]{0,200}\}\}|\{%[^{}\n]{0,200}%\}"
                       r"|(?<!\$)\{/?[a-z][a-z0-9_:-]{2,40}(?:\s[^{}\n]{0,80})?\}"
                       r"|\[/?(?:caption|embed|gallery|video|audio|ads?|mosads|tweet|youtube|"
                       r"related)\b[^\]\n]{0,200}\]|\[email(?:&#160;|\s)protected\]", re.I)
#: The stored page's own date line at the very start ("date 2019-03-08 "): metadata, not text.
_LEAD_DATE = re.compile(r"\A\s*date\s*:?\s*(?:19|20)\d\d-[01]\d-[0-3]\d\b\s*", re.I)


#: A head line that is a date or byline line, not the title.
_NOT_TITLE = re.compile(r"\W*(?:published|posted|updated|by|date)\b", re.I)


#: A line made only of these words is a share bar ("Share on Facebook Share on X Email").
_SHARE_WORDS = frozenset((
    "share", "sharing", "on", "via", "to", "this", "the", "article", "story", "page", "post",
    "facebook", "twitter", "x", "linkedin", "whatsapp", "email", "e-mail", "reddit",
    "telegram", "pinterest", "flipboard", "copy", "link", "print", "tweet", "save",
    "comments", "comment"))


def is_boilerplate(line: str) -> bool:
    """True for a line of page furniture (see ``_BOILERPLATE``), never for a long one."""
    s = line.strip()
    if not s or len(s) > _BOILER_CHARS or len(s.split()) > _BOILER_WORDS:
        return False
    words = re.findall(r"[\w-]+", s.lower())
    if words and set(words) <= _SHARE_WORDS and "share" in words:
        return True
    return bool(_BOILERPLATE.match(s))


def strip_templates(text: str) -> str:
    """``text`` without template tags ("{mosads}", "{{ ad }}", "[caption ...]")."""
    return _TEMPLATE.sub("", text)


@dataclass(frozen=True)
class Document:
    """A report's visible text.  ``published`` is the date the report gives (or None: the
    report is undated) and ``published_from`` where that came from; ``outlets`` who
    published it (canonical names, most likely first) and ``authors`` who wrote it;
    ``url`` where it came from, when known."""

    name: str
    title: str
    paragraphs: list[str]
    format: str  # text | markdown | html
    published: date | None = None
    warnings: list[str] = field(default_factory=list)
    published_from: str | None = None
    outlets: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    url: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


#: Meta tags (``property``, ``name`` or ``itemprop``) -> the key of ``_Visible.meta``.
_META_KEYS = {
    "article:published_time": "published_time", "og:published_time": "published_time",
    "datepublished": "published_time", "date": "published_time", "pubdate": "published_time",
    "dc.date": "published_time", "dc.date.issued": "published_time",
    "publish-date": "published_time", "sailthru.date": "published_time",
    "parsely-pub-date": "published_time", "og:site_name": "site_name",
    "application-name": "site_name", "author": "author", "article:author": "author",
    "dc.creator": "author", "og:url": "url"}
#: JSON-LD kept for reading (a page's structured data is small; more is not metadata).
_MAX_JSON_LD = 200_000


class _Visible(HTMLParser):
    """Collects visible text by blocks; remembers <title> and the page's metadata (publication
    date, site name, author, URL: meta tags, JSON-LD, ``<link rel=canonical>``, the first
    ``<time datetime>``)."""

    def __init__(self, furniture: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.furniture = furniture  # skip containers classed as page furniture
        self.furniture_skipped = 0  # characters skipped in them
        self.blocks: list[str] = []
        self._cur: list[str] = []
        self._skip = 0
        self._furniture: list[str] = []  # the open furniture container: its tag, nesting
        self._in_title = False
        self._json_ld: list[str] | None = None
        self._json_ld_size = 0
        self.title = ""
        self.meta: dict[str, str] = {}

    def _meta_tag(self, a: dict[str, str]) -> None:
        key = (a.get("property") or a.get("name") or a.get("itemprop") or "").lower()
        target = _META_KEYS.get(key)
        if target and a.get("content"):
            self.meta.setdefault(target, a["content"][:500])

    def _json_ld_done(self) -> None:
        import json

        raw = "".join(self._json_ld or ())
        self._json_ld = None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return
        items = data if isinstance(data, list) else [data]
        items += [g for d in list(items) if isinstance(d, dict)
                  for g in (d.get("@graph") or []) if isinstance(g, dict)]
        for d in items:
            if not isinstance(d, dict):
                continue
            if isinstance(d.get("datePublished"), str):
                self.meta.setdefault("json_ld", d["datePublished"][:100])
            pub = d.get("publisher")
            if isinstance(pub, dict) and isinstance(pub.get("name"), str):
                self.meta.setdefault("publisher", pub["name"][:200])
            auth = d.get("author")
            names = [str(x["name"]) for x in (auth if isinstance(auth, list) else [auth])
                     if isinstance(x, dict) and isinstance(x.get("name"), str)]
            if names:
                self.meta.setdefault("author", ", ".join(names)[:500])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            self._meta_tag(a)
        elif tag == "link" and "canonical" in a.get("rel", "").lower() and a.get("href"):
            self.meta.setdefault("url", a["href"][:2000])
        elif tag == "time" and a.get("datetime"):
            self.meta.setdefault("time", a["datetime"][:100])
        elif tag == "script" and a.get("type", "").lower() == "application/ld+json":
            self._json_ld = []
        if self._furniture:
            if tag == self._furniture[0]:
                self._furniture.append(tag)
        elif self.furniture and tag in _FURNITURE_TAGS and _FURNITURE_CLASS.search(
                f"{a.get('class', '')} {a.get('id', '')}"[:500]):
            self._furniture.append(tag)
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._flush()
        elif tag in ("meta", "link"):
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag == "script" and self._json_ld is not None:
            self._json_ld_done()
        if self._furniture and tag == self._furniture[0]:
            self._furniture.pop()
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._json_ld is not None:
            if self._json_ld_size + len(data) <= _MAX_JSON_LD:
                self._json_ld.append(data)
                self._json_ld_size += len(data)
            return
        if self._in_title:
            self.title += data
        elif self._furniture:
            self.furniture_skipped += len(data)
        elif not self._skip:
            self._cur.append(data)

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._cur)).strip()
        if text:
            self.blocks.append(text)
        self._cur = []

    def close(self) -> None:
        super().close()
        self._flush()


def _decode(data: bytes, name: str) -> str:
    if not data.strip():
        raise CollateralError(f"{name}: the file is empty")
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
    if b"\x00" in data[:65536] and not utf16:
        raise CollateralError(f"{name}: looks like a binary file (NUL bytes), not a text "
                              "report; give plain text, Markdown or HTML")
    for enc in ("utf-16", "utf-8-sig") if utf16 else ("utf-8-sig",):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("cp1252", errors="replace")
    sample = text[:65536]
    bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t\f") or ch == "\ufffd")
    if sample and bad / len(sample) > 0.05:
        raise CollateralError(f"{name}: looks like a binary file ({bad} control characters "
                              f"in the first {len(sample)}), not a text report")
    return text


def _guess_format(text: str, name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".html", ".htm", ".xhtml"):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    head = text[:2000].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")) or re.search(r"<(p|div|body)\b", head):
        return "html"
    return "text"


def _paragraphs_text(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n|\r\n\s*\r\n", text):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        # A line without final punctuation followed by more lines is a heading or a list
        # item: keep it as its own paragraph so it does not run into the next sentence.
        cur: list[str] = []
        for ln in lines:
            cur.append(ln)
            if not re.search(r"[.!?:;,\"”’)]$", ln) and len(ln.split()) < 20:
                out.append(" ".join(cur))
                cur = []
        if cur:
            out.append(" ".join(cur))
    return [re.sub(r"\s+", " ", p).strip() for p in out if p.strip()]


def _markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False})
    return md.render(text)


def deadline_in(seconds: float | None) -> float | None:
    """The ``time.monotonic()`` value ``seconds`` from now (None: no deadline)."""
    return None if seconds is None else time.monotonic() + max(0.0, seconds)


def past(deadline: float | None) -> bool:
    """True once ``deadline`` (from :func:`deadline_in`) has passed."""
    return deadline is not None and time.monotonic() > deadline


def _undated_warning() -> str:
    return ("no publication date found (metadata, a date line, a dateline, a byline or the "
            "URL): the report is undated, its relative dates ('last week') stay unresolved "
            "and its evidence does not count until a date is given (--published YYYY-MM-DD)")


def _content(lines: list[str]) -> list[str]:
    """``lines`` with page furniture blanked (a blank line still separates paragraphs) and the
    stored page's leading date dropped."""
    out = ["" if is_boilerplate(ln) else ln for ln in lines]
    first = next((i for i, ln in enumerate(out) if ln.strip()), None)
    if first is not None:
        out[first] = _LEAD_DATE.sub("", out[first])
    return out


def _parse_html(html: str, deadline: float | None, warnings: list[str], *,
                furniture: bool = True) -> _Visible:
    parser = _Visible(furniture)
    for at in range(0, len(html), _HTML_PIECE):
        if at and past(deadline):
            warnings.append(f"reading stopped at the time limit: only the first "
                            f"{at / len(html):.0%} of the HTML was read")
            break
        parser.feed(html[at:at + _HTML_PIECE])
    parser.close()
    return parser


def parse_document(text: str, name: str = "<text>", *, fmt: str | None = None,
                   deadline: float | None = None, url: str | None = None) -> Document:
    """A :class:`Document` from a report's text (``fmt``: text | markdown | html | None);
    ``url``: where it came from, when known (a date or an outlet in it counts).
    Past ``deadline`` the HTML read so far is kept, with a warning."""
    text = _CONTROL.sub("", text)
    fmt = fmt or _guess_format(text, name)
    warnings: list[str] = []
    meta: dict[str, str] = {}
    markup = fmt
    if fmt == "markdown" and len(text) > MAX_MARKDOWN:
        markup = "text"
        warnings.append(f"Markdown larger than {MAX_MARKDOWN // 1000} kB is read as plain "
                        "text (its markup is not parsed)")
    if markup in ("html", "markdown"):
        html = text if markup == "html" else _markdown_html(text)
        parser = _parse_html(html, deadline, warnings)
        if not any(b.strip() for b in parser.blocks) and parser.furniture_skipped:
            # A furniture container left open swallowed the page: read it all instead.
            parser = _parse_html(html, deadline, warnings, furniture=False)
        # The parser has decoded entities, once; tags left by a template are dropped after.
        raw = [strip_templates(b).strip() for b in parser.blocks]
        raw = [re.sub(r"\s+", " ", b) for b in raw if b]
        paragraphs = [p for p in _content(raw) if p.strip()]
        title = re.sub(r"\s+", " ", strip_templates(parser.title)).strip()
        meta = parser.meta if markup == "html" else {}
        visible = "\n".join(raw)
    else:
        visible = strip_templates(text)
        paragraphs = _paragraphs_text("\n".join(_content(visible.splitlines())))
        title = ""
    if not paragraphs:
        raise CollateralError(f"{name}: no readable text in the {fmt} file")
    if not title:
        # The first paragraph of some words: "Story highlights" or a byline is not a title.
        title = next((p for p in paragraphs[:6] if len(p.split()) >= 4
                      and not _NOT_TITLE.match(p)), paragraphs[0])[:200]
    link = url or meta.get("url") or next(iter(urls_in(visible[:2500]) + urls_in(
        visible[-1500:])), None)
    found = find_publication(visible, meta, link)
    if found is None:
        warnings.append(_undated_warning())
    elif found.month_only:
        warnings.append(f"the publication date comes from the {found.how}: read as "
                        f"{found.day.isoformat()}, the month's last day (give --published "
                        "YYYY-MM-DD for the day)")
    outlets = find_outlets(visible, meta=meta, url=link)
    authors = find_authors(visible, meta=meta)
    return Document(name, title, paragraphs, fmt, found.day if found else None, warnings,
                    found.how if found else None, outlets, authors, link)


def read_document(path: str | Path, *, max_bytes: int = MAX_BYTES,
                  fmt: str | None = None, deadline: float | None = None,
                  url: str | None = None) -> Document:
    """Read a report file; :class:`CollateralError` names the file when it cannot be read."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise CollateralError(f"{name}: no such file")
    if not p.is_file():
        raise CollateralError(f"{name}: not a file")
    size = p.stat().st_size
    if size > max_bytes:
        raise CollateralError(
            f"{name}: {size / 1e6:.1f} MB is larger than a report can be "
            f"({max_bytes / 1e6:.0f} MB); split it, or raise the limit (--max-mb)")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CollateralError(f"{name}: cannot read: {e.strerror or e}") from e
    return parse_document(_decode(data, name), name, fmt=fmt, deadline=deadline, url=url)


__all__ = ["MAX_BYTES", "MAX_MARKDOWN", "READ_SECONDS", "Document", "deadline_in",
           "is_boilerplate", "parse_document", "past", "read_document", "strip_templates"]
