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
from sitewatch.warning.timeexpr import find_published

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
              "footer", "form", "button", "select", "textarea", "canvas"}
#: Control characters (C0 but tab, newline and carriage return; DEL; C1): terminal escapes in
#: a hostile report must never reach a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
               "section", "article", "blockquote", "tr", "td", "th", "table", "figcaption",
               "figure", "header", "main", "aside", "pre", "hr", "dd", "dt"}


@dataclass(frozen=True)
class Document:
    """A report's visible text.  ``published`` is the date the text states (or None)."""

    name: str
    title: str
    paragraphs: list[str]
    format: str  # text | markdown | html
    published: date | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


class _Visible(HTMLParser):
    """Collects visible text by blocks; remembers <title> and publication meta tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._cur: list[str] = []
        self._skip = 0
        self._in_title = False
        self.title = ""
        self.meta_date: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag == "meta":
            a = {k.lower(): (v or "") for k, v in attrs}
            key = (a.get("property") or a.get("name") or a.get("itemprop") or "").lower()
            if key in ("article:published_time", "date", "pubdate", "datepublished",
                       "dc.date", "publish-date", "og:published_time") and a.get("content"):
                self.meta_date = self.meta_date or a["content"]
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._flush()
        elif tag == "meta":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
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


def parse_document(text: str, name: str = "<text>", *, fmt: str | None = None,
                   deadline: float | None = None) -> Document:
    """A :class:`Document` from a report's text (``fmt``: text | markdown | html | None).
    Past ``deadline`` the HTML read so far is kept, with a warning."""
    text = _CONTROL.sub("", text)
    fmt = fmt or _guess_format(text, name)
    warnings: list[str] = []
    meta = None
    markup = fmt
    if fmt == "markdown" and len(text) > MAX_MARKDOWN:
        markup = "text"
        warnings.append(f"Markdown larger than {MAX_MARKDOWN // 1000} kB is read as plain "
                        "text (its markup is not parsed)")
    if markup in ("html", "markdown"):
        parser = _Visible()
        html = text if markup == "html" else _markdown_html(text)
        for at in range(0, len(html), _HTML_PIECE):
            if at and past(deadline):
                warnings.append(f"reading stopped at the time limit: only the first "
                                f"{at / len(html):.0%} of the HTML was read")
                break
            parser.feed(html[at:at + _HTML_PIECE])
        parser.close()
        paragraphs = list(parser.blocks)  # the parser has decoded entities, once
        title = re.sub(r"\s+", " ", parser.title).strip()
        meta = parser.meta_date
    else:
        paragraphs = _paragraphs_text(text)
        title = ""
    if not paragraphs:
        raise CollateralError(f"{name}: no readable text in the {fmt} file")
    if not title:
        # The first paragraph of some words: "Story highlights" or a byline is not a title.
        title = next((p for p in paragraphs[:5] if len(p.split()) >= 4), paragraphs[0])[:200]
    published = find_published("\n".join(paragraphs[:8]), meta)
    if published is None:
        warnings.append("no publication date found in the text; relative dates ('last "
                        "week') are left unresolved unless one is given")
    return Document(name, title, paragraphs, fmt, published, warnings)


def read_document(path: str | Path, *, max_bytes: int = MAX_BYTES,
                  fmt: str | None = None, deadline: float | None = None) -> Document:
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
    return parse_document(_decode(data, name), name, fmt=fmt, deadline=deadline)


__all__ = ["MAX_BYTES", "MAX_MARKDOWN", "READ_SECONDS", "Document", "deadline_in",
           "parse_document", "past", "read_document"]
