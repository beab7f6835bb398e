"""Claims in collateral reports: which site, which part, what activity, who says, how sure, when.

The reader is rule-based on spaCy's English tokenizer and sentence splitter (no model to
download) and the word lists in ``data/lexicon.toml``, ``data/gazetteer.toml`` and
``data/sources.toml``:

* **site**: gazetteer names in the sentence (spaCy ``PhraseMatcher`` on lower-case tokens,
  so "Tongchang-ri", "Tongchang ri" and "TONGCHANG-RI" all match); else the site the text
  last named ("the facility"); a sentence about a place the gazetteer does not know ("a
  missile research center in Pyongyang") gets no site;
* **activity**: a term of the activity, with a context word where the lexicon asks for one
  ("fuel" only counts near "into", "trucks", "delivered"...); one claim per activity per
  sentence;
* **part**: the part words nearest the term, else the part the activity implies;
* **negated**: a negation cue ("no", "not", "n't", "without", "no sign of") before the term
  in its clause, or just after it ("the shelter has not moved");
* **certainty**: ``firm``, ``probable`` (likely, appears, suggests, reportedly...) or
  ``possible`` (may, could, might...), from cues in the term's clause;
* **source**: "according to X", "citing X", "X said/told/reported/spotted...": the phrase is
  matched against the source table, which gives a canonical name and an *origin*, the body
  that observed or judged (two outlets quoting the same government share an origin).  A
  pronoun ("he said") keeps the paragraph's last source.  No attribution: the author;
* **time**: time expressions of the sentence (:mod:`.timeexpr`), resolved against the
  publication date.  A claim dated only by a past year ("in 2017") or by "in the past" is
  background, kept apart from the current claims.

Text is untrusted: it is matched, never evaluated, and the claims carry it as plain strings
(escaping is for whoever renders them).

Examples
--------
>>> r = read_text("Imagery in recent days shows freight trains arriving at Tongchang-ri, "
...               "a U.S. official said.", published="2016-01-28")
>>> [(c.site, c.activity, c.source, c.certainty, c.time["start"]) for c in r.claims]
[('sohae', 'railcars_arrived', 'U.S. government', 'firm', '2016-01-21')]
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from time import monotonic
from typing import Any

from sitewatch.errors import CollateralError
from sitewatch.times import parse_date
from sitewatch.warning import lexicon
from sitewatch.warning.documents import (
    READ_SECONDS,
    Document,
    deadline_in,
    parse_document,
    past,
    read_document,
)
from sitewatch.warning.timeexpr import TimeWindow, find_times

#: Weight of each certainty: how much of an indicator's strength a claim carries.
CERTAINTY_WEIGHT = {"firm": 1.0, "probable": 0.7, "possible": 0.45}
#: Launch and engine-test levels (see :mod:`.assess`).
LAUNCH_LEVELS = ("imminent", "possible", "unlikely", "no_evidence")
ENGINE_LEVELS = ("recent_test", "preparations", "unlikely", "no_evidence")
#: Words that point back to the site the text is about.
_GENERIC_PLACE = re.compile(r"\b(the (site|facility|station|complex|base|launch site|"
                            r"launching station|pad|test stand)|there)\b", re.I)
#: A facility the gazetteer does not know: its claims get no site.
_OTHER_PLACE = re.compile(r"\b(missile|research|nuclear|military|weapons?|uranium|"
                          r"enrichment)( \w+)? (research )?(cent(er|re)|complex|plant|"
                          r"factory|base|institute|reactor)\b(?! (to|at) )", re.I)
_BACKGROUND = re.compile(r"\b(in the past|previously|last time|a similar scenario|"
                         r"historically|years ago|decades? ago)\b", re.I)
_PRONOUN_SPEAKER = re.compile(r"^\W*(he|she|they|the (official|source|spokes\w+|officials|"
                              r"sources|minister|ministry|agency|analysts?|report))\b", re.I)
_RULE_OUT = re.compile(r"\b(can ?not|can['’]t|could not|couldn['’]t) (be )?rule[ds]? out\b",
                       re.I)
_PARENTHETICAL = re.compile(r",\s*((however|though|meanwhile|in turn|too|also|instead|"
                            r"for (their|his|her|its) part)|(quoted|speaking|writing|cited|"
                            r"interviewed)\b[^,]{0,60}),", re.I)
#: How far (characters) a context word may be from an activity's term.
CONTEXT_REACH = 80
_ENGLISH = frozenset(("the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "was",
                      "with", "as", "by", "at", "it", "from", "be", "has", "have", "are", "were",
                      "this", "an", "said", "which", "its", "or", "but", "not"))


@dataclass(frozen=True)
class Claim:
    """One claim of a report.  ``time`` is a :class:`~.timeexpr.TimeWindow` as a dict."""

    site: str | None
    part: str | None
    activity: str
    negated: bool
    certainty: str
    source: str | None  # canonical name; None = the author's own voice
    origin: str  # independence group: claims of one origin are not independent
    via: str | None  # the outlet that carried the source's words
    attribution: str | None  # the attribution as written
    hedges: tuple[str, ...]
    time: dict[str, Any] | None
    sentence: str
    paragraph: int
    background: bool = False

    @property
    def weight(self) -> float:
        return CERTAINTY_WEIGHT[self.certainty]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hedges"] = list(self.hedges)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        return cls(d["site"], d["part"], d["activity"], bool(d["negated"]), d["certainty"],
                   d.get("source"), d["origin"], d.get("via"), d.get("attribution"),
                   tuple(d.get("hedges") or ()), d.get("time"), d["sentence"],
                   int(d["paragraph"]), bool(d.get("background", False)))


@dataclass(frozen=True)
class Reading:
    """What was read from one report."""

    name: str
    title: str
    format: str
    published: str | None
    sites: list[str]
    claims: list[Claim]
    background: list[Claim]
    stated: dict[str, str]
    stated_evidence: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)
    words: int = 0
    outlets: list[str] = field(default_factory=list)  # who published it, most likely first
    authors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "format": self.format,
                "published": self.published, "words": self.words, "sites": self.sites,
                "claims": [c.to_dict() for c in self.claims],
                "background": [c.to_dict() for c in self.background],
                "stated": dict(self.stated), "stated_evidence": self.stated_evidence,
                "warnings": list(self.warnings), "outlets": list(self.outlets),
                "authors": list(self.authors)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reading:
        return cls(d["name"], d["title"], d["format"], d.get("published"), list(d["sites"]),
                   [Claim.from_dict(c) for c in d["claims"]],
                   [Claim.from_dict(c) for c in d.get("background") or ()],
                   dict(d["stated"]), {k: list(v) for k, v in d["stated_evidence"].items()},
                   list(d.get("warnings") or ()), int(d.get("words") or 0),
                   list(d.get("outlets") or ()), list(d.get("authors") or ()))


@lru_cache(maxsize=1)
def _nlp() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 25_000_000
    return nlp


@lru_cache(maxsize=8)
def _site_matcher(extra: str | None) -> tuple[Any, dict[str, str], list[tuple[str, str]]]:
    from spacy.matcher import PhraseMatcher

    nlp = _nlp()
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    ids: dict[str, str] = {}
    raw: list[tuple[str, str]] = []  # non-Latin names: plain substring search
    for site in lexicon.gazetteer(extra):
        patterns = []
        for name in site.names:
            if not name.isascii():
                raw.append((name.lower(), site.id))
                continue
            for variant in {name, name.replace("-", " "), name.replace("-", "")}:
                patterns.append(nlp.make_doc(variant))
        key = f"site:{site.id}"
        ids[key] = site.id
        matcher.add(key, patterns)
    return matcher, ids, raw


def _segments(sentence: str) -> list[tuple[int, int]]:
    """Clause spans of a sentence, split at contrast words and semicolons."""
    cuts = [0]
    for rx in lexicon.cues()["scope_break"]:
        cuts += [m.start() for m in rx.finditer(sentence)]
    cuts = [*sorted(set(cuts)), len(sentence)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _segment_of(sentence: str, pos: int) -> tuple[int, int]:
    for a, b in _segments(sentence):
        if a <= pos < b:
            return a, b
    return 0, len(sentence)


_NOT_NEGATION = re.compile(r"\b(no|without|little|beyond) (\w+ )?doubt\b|\bnot only\b|"
                           r"\bno sooner\b|\bnone other\b|\bnothing new\b(?= (about|in) )",
                           re.I)


def _negated(sentence: str, start: int, end: int) -> bool:
    a, b = _segment_of(sentence, start)
    # A long term can hold its own negation ("the transfer structure has not moved").
    before = sentence[max(a, start - 70):start] + " " + sentence[start:end][1:]
    after = sentence[end:min(b, end + 50)]
    after = re.split(r"[,;:]", after)[0]
    before, after = _NOT_NEGATION.sub(" ", before), _NOT_NEGATION.sub(" ", after)
    if _RULE_OUT.search(sentence[a:b]):
        return False
    return any(rx.search(before) or rx.search(after) for rx in lexicon.cues()["negation"])


#: "May" as a month: capitalised inside a sentence, or next to a number ("31 May", "May 31").
_MONTH_MAY = re.compile(r"(?<=\S )May\b|\bMay(?=\.?\s+\d)|(?<=\d)\s?May\b")


def _certainty(sentence: str, start: int) -> tuple[str, tuple[str, ...]]:
    a, b = _segment_of(sentence, start)
    # "May 31" is a date, not a hedge (same length, so offsets hold).
    clause = _MONTH_MAY.sub("MAY", sentence[a:min(b, start + 50)]).replace("MAY", "Mxy")
    found_possible = [m[0] for rx in lexicon.cues()["possible"] for m in rx.finditer(clause)]
    if _RULE_OUT.search(clause):
        found_possible.append(_RULE_OUT.search(clause)[0])  # type: ignore[index]
    found_probable = [m[0] for rx in lexicon.cues()["probable"] for m in rx.finditer(clause)]
    hedges = tuple(dict.fromkeys(w.lower() for w in found_possible + found_probable))
    if found_possible:
        return "possible", hedges
    if found_probable:
        return "probable", hedges
    return "firm", hedges


def _attributions(sentence: str) -> list[tuple[str, int]]:
    """Candidate source phrases in a sentence, with their offsets."""
    out: list[tuple[str, int]] = []
    sentence = _PARENTHETICAL.sub(" ", sentence)
    for m in re.finditer(r"\b(according to|citing|cited|quoting|quoted|reported by)\s+"
                         r"(?P<src>[^,;:“”\"()]{3,90})", sentence, re.I):
        out.append((m["src"].strip().rstrip("."), m.start("src")))
    (say,) = lexicon.cues()["say"]
    for m in say.finditer(sentence):
        head = sentence[:m.start()]
        cut = max((head.rfind(ch) for ch in ",;:“”\"()"), default=-1)
        for w in (" that ", " and ", " but "):
            i = head.lower().rfind(w)
            if i > cut:
                cut = i + len(w) - 1
        phrase = head[cut + 1:].strip()
        if phrase and len(phrase.split()) <= 14:
            out.append((phrase, cut + 1))
        tail = sentence[m.end():]
        mm = re.match(r"\s+(?P<src>[A-Z][^,.;:“”\"()]{2,80})", tail)
        if mm and m[0].lower() in ("said", "says", "say", "told", "reported", "wrote", "added"):
            out.append((mm["src"], m.end() + mm.start("src")))
    for m in re.finditer(r"\b(?P<src>[A-Z][\w.’'-]*(?: [\w.’'-]+){0,5}) (have|has|had)? ?"
                         r"(spotted|detected|observed|seen|saw|noticed|identified)\b", sentence):
        out.append((m["src"], m.start()))
    return out


@dataclass
class _Speaker:
    name: str | None = None
    origin: str = "author"
    via: str | None = None
    raw: str | None = None


def _speaker(sentence: str, last: _Speaker | None, author: str) -> _Speaker | None:
    """Who a sentence is attributed to (None: the author)."""
    speaker: _Speaker | None = None
    outlet: lexicon.SourceRule | None = None
    for phrase, _pos in _attributions(sentence):
        rule = lexicon.match_source(phrase)
        if rule is None:
            if last is not None and (_PRONOUN_SPEAKER.match(phrase) or any(
                    w in (last.raw or "") for w in re.findall(r"\b[A-Z][a-z]{2,}\b", phrase))):
                speaker = speaker or _Speaker(last.name, last.origin, last.via, last.raw)
            continue
        if rule.outlet:
            outlet = outlet or rule
            continue
        if (rule.origin in ("officials", "analysts") and last is not None
                and re.match(r"\W*the\b", phrase, re.I) and last.origin != "author"):
            # "the official added", "the same source said": the one named before.
            speaker = speaker or _Speaker(last.name, last.origin, last.via, last.raw)
            continue
        if speaker is None or speaker.origin in ("officials", "analysts"):
            speaker = _Speaker(rule.name, rule.origin, None, phrase.strip())
    if outlet is None:  # an outlet named anywhere in the sentence carries it
        hit = next((m for rule in lexicon.sources() if rule.outlet
                    for m in [rule.pattern.search(sentence)] if m), None)
        outlet = lexicon.match_source(hit[0]) if hit else None
    if speaker is None and outlet is not None:
        says = re.search(rf"\b{re.escape(outlet.name)}\b\W+(news agency )?(said|reported|says|"
                         r"reports)", sentence, re.I)
        if not (says or re.search(r"\b(according to|citing)\b", sentence, re.I)):
            return None  # the outlet is only mentioned: the author speaks
        speaker = _Speaker(outlet.name, outlet.origin, None, outlet.name)
    elif speaker is not None and outlet is not None:
        speaker.via = outlet.name
        if speaker.origin == "officials" and outlet.country:
            # "a government source" in Kyodo's words is a Japanese one.
            speaker.origin = f"government:{outlet.country}"
            speaker.name = lexicon.COUNTRY_GOVERNMENT.get(outlet.country, speaker.name)
    if speaker is not None and speaker.origin in ("officials", "analysts"):
        speaker.origin = f"{speaker.origin}@{author}"
    return speaker


def _parts_in(sentence: str) -> list[tuple[int, str]]:
    found = []
    for kind, rx in lexicon.part_words().items():
        for m in rx.finditer(sentence):
            found.append((m.start(), kind))
    return sorted(found)


def _part_for(sentence: str, pos: int, activity: str) -> str | None:
    parts = _parts_in(sentence)
    if parts:
        a, b = _segment_of(sentence, pos)
        near = [p for p in parts if a <= p[0] < b] or parts
        return min(near, key=lambda p: abs(p[0] - pos))[1]
    return lexicon.ACTIVITY_PARTS.get(activity)


def _activities(sentence: str) -> list[tuple[str, int, int, bool]]:
    """(activity, start, end, denied by its own phrasing) for each activity named."""
    out: list[tuple[str, int, int, bool]] = []
    for name, rule in lexicon.activities().items():
        denial = next((m for rx in rule.denied for m in [rx.search(sentence)] if m), None)
        if denial is not None:
            out.append((name, denial.start(), denial.end(), True))
            continue
        if not rule.any_term.search(sentence):
            continue
        context = [m.start() for rx in rule.context for m in rx.finditer(sentence)]
        if rule.context and not context:
            continue
        excluded = [m.span() for rx in rule.exclude for m in rx.finditer(sentence)]
        for rx in rule.terms:
            hits = [m for m in rx.finditer(sentence)
                    if not any(a <= m.start() < b for a, b in excluded)
                    and (not rule.context
                         or any(abs(c - m.start()) <= CONTEXT_REACH for c in context))]
            if hits:
                out.append((name, hits[0].start(), hits[0].end(), False))
                break
    return out


#: Longer "sentences" (lists, tables, run-on text) are read in pieces cut at commas or
#: semicolons: the rules look within a clause, and their cost grows with the square of length.
MAX_SENTENCE = 1500


#: Runs of non-space characters longer than this are cut with spaces before tokenising: spaCy
#: strips suffixes from a token one character at a time, each time searching the whole rest
#: (quadratic: 20,000 commas took 50-139 s).  No word, number or URL worth reading is longer.
MAX_TOKEN = 100
_LONG_TOKEN = re.compile(rf"\S{{{MAX_TOKEN + 1},}}")


def _cut_long_tokens(text: str) -> str:
    return _LONG_TOKEN.sub(lambda m: " ".join(m[0][i:i + MAX_TOKEN]
                                              for i in range(0, len(m[0]), MAX_TOKEN)), text)


#: Paragraphs are tokenised in chunks of at most this many characters (cut at a space), so
#: the deadline is checked within a huge paragraph too (some punctuation costs spaCy ~70 us a
#: character).
MAX_CHUNK = 20_000


def _chunks(text: str) -> list[str]:
    out = []
    while len(text) > MAX_CHUNK:
        cut = text.rfind(" ", MAX_CHUNK // 2, MAX_CHUNK)
        cut = MAX_CHUNK if cut < 0 else cut + 1
        out.append(text[:cut])
        text = text[cut:]
    return [*out, text] if text else out


def _pieces(text: str) -> list[str]:
    if len(text) <= MAX_SENTENCE:
        return [text] if text else []
    out, cur = [], ""
    for part in re.split(r"(?<=[,;])\s+", text):
        while len(part) > MAX_SENTENCE:  # no comma in reach: cut hard
            out.append(part[:MAX_SENTENCE])
            part = part[MAX_SENTENCE:]
        if cur and len(cur) + len(part) + 1 > MAX_SENTENCE:
            out.append(cur)
            cur = ""
        cur = f"{cur} {part}".strip()
    if cur:
        out.append(cur)
    return out


def _is_english(text: str) -> float:
    words = re.findall(r"[^\W\d_]+", text[:200_000].lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w in _ENGLISH) / len(words)


def _year_only(times: list[TimeWindow]) -> bool:
    return bool(times) and all(re.fullmatch(r"(in|since|during|by) (19|20)\d\d", t.text, re.I)
                               for t in times)


def _split_paragraph(pi: int, paragraph: str, deadline: float | None,
                     sentences: list[tuple[int, str]], per_sentence: list[list[tuple[int, str]]],
                     matcher: Any, ids: dict[str, str], raw: list[tuple[str, str]]) -> bool:
    """Append the sentences of a paragraph and the sites each names; True when ``deadline``
    passed first (the sentences before it are kept)."""
    nlp = _nlp()
    for chunk in _chunks(_cut_long_tokens(paragraph)):
        if past(deadline):
            return True
        for sent in nlp(chunk).sents:
            for text in _pieces(sent.text.strip()):
                sdoc = nlp.make_doc(text)
                found = [(sdoc[s:e].start_char, ids[nlp.vocab.strings[k]])
                         for k, s, e in matcher(sdoc)]
                low = text.lower()
                found += [(low.find(name), sid) for name, sid in raw if name in low]
                sentences.append((pi, text))
                per_sentence.append(sorted(found))
    return False


def _stopped(where: str) -> str:
    return (f"reading stopped at the time limit {where}: claims come only from the text "
            "before it (give more time with --max-seconds)")


def extract(doc: Document, *, published: date | None = None,
            gazetteer_file: str | Path | None = None, deadline: float | None = None
            ) -> Reading:
    """The claims of a :class:`~.documents.Document`, with its stated judgement.  Past
    ``deadline`` (see :func:`~.documents.deadline_in`) reading stops with a warning and the
    claims found so far."""
    pub = published or doc.published
    warnings = list(doc.warnings if published is None else
                    [w for w in doc.warnings if "publication date" not in w])
    share = _is_english(doc.text)
    if share < 0.08:
        warnings.append(f"the text does not look English ({share:.0%} common English words): "
                        "sites are found by name, but claims are read in English only")
    _nlp()
    matcher, ids, raw = _site_matcher(str(gazetteer_file) if gazetteer_file else None)
    # The author's own voice is one origin per text (by content: the same article saved as
    # .txt and .html is one source; two outlets' index.html are two).
    author = f"author:{hashlib.sha256(doc.text.encode('utf-8')).hexdigest()[:12]}"
    claims: list[Claim] = []
    background: list[Claim] = []
    mentions: Counter[str] = Counter()
    current_site: str | None = None
    sentences: list[tuple[int, str]] = []
    # Splitting and site-finding get half the time left, so that some claims are read too.
    halfway = None if deadline is None else (deadline + monotonic()) / 2
    # Sites first: the text's main site fills in sentences that name none.
    per_sentence: list[list[tuple[int, str]]] = []
    for pi, paragraph in enumerate(doc.paragraphs):
        if _split_paragraph(pi, paragraph, halfway, sentences, per_sentence, matcher, ids, raw):
            warnings.append(_stopped(f"at paragraph {pi + 1} of {len(doc.paragraphs)}"))
            break
    for found in per_sentence:
        mentions.update(sid for _, sid in found)
    main_site = mentions.most_common(1)[0][0] if mentions else None
    last_speaker: _Speaker | None = None
    for si, ((pi, text), found) in enumerate(zip(sentences, per_sentence, strict=True)):
        if past(deadline):
            warnings.append(_stopped(f"at sentence {si + 1} of {len(sentences)} "
                                     f"(paragraph {pi + 1} of {len(doc.paragraphs)})"))
            sentences = sentences[:si]
            break
        if found:
            current_site = found[-1][1]
        speaker = _speaker(text, last_speaker, author)
        if speaker is not None:
            last_speaker = speaker
        acts = _activities(text)
        if not acts or (text.strip() == doc.title.strip() and len(doc.paragraphs) > 2):
            continue  # the headline repeats the body: its claims would count twice
        heading = (len(doc.paragraphs) > 1 and len(text.split()) < 4
                   and not text.rstrip().endswith((".", "!", "?")))
        if heading or any(rx.search(text) for rx in lexicon.cues()["hypothetical"]):
            continue  # a heading ("Propellant bunkers"), or a sentence that only imagines
        times = find_times(text, pub)
        negs = {a: d or _negated(text, s, e) for a, s, e, d in acts if a != "no_activity"}
        # "no movement of personnel" is a denial of personnel movement, not a quiet site.
        denied = [s for a, s, _e, _d in acts if negs.get(a)]
        acts = [x for x in acts if x[0] != "no_activity"
                or not any(0 <= d - x[2] <= 15 for d in denied)]
        for activity, start, _end, _denial in acts:
            if found:
                a, b = _segment_of(text, start)
                near = [f for f in found if a <= f[0] < b] or found
                site = min(near, key=lambda f: abs(f[0] - start))[1]
            elif _OTHER_PLACE.search(text) and not _GENERIC_PLACE.search(text):
                site = None
            else:
                site = current_site or main_site
            certainty, hedges = _certainty(text, start)
            time = min(times, key=lambda t: abs(t.offset - start)) if times else None
            is_background = bool(_BACKGROUND.search(text)) or (
                time is not None and (
                    (_year_only([time]) and (pub is None or time.end is None
                                             or time.end.year < pub.year))
                    or (pub is not None and time.end is not None
                        and (pub - time.end).days > 365)))
            claim = Claim(
                site=site, part=_part_for(text, start, activity), activity=activity,
                negated=negs.get(activity, False), certainty=certainty,
                source=speaker.name if speaker else None,
                origin=speaker.origin if speaker else author,
                via=speaker.via if speaker else None,
                attribution=speaker.raw if speaker else None, hedges=hedges,
                time=time.to_dict() if time else None, sentence=text, paragraph=pi,
                background=is_background)
            (background if is_background else claims).append(claim)
    from sitewatch.warning.stated import stated_judgement

    stated, why = stated_judgement([t for _, t in sentences], claims, pub)
    return Reading(doc.name, doc.title, doc.format, pub.isoformat() if pub else None,
                   [s for s, _ in mentions.most_common()], claims, background, stated, why,
                   warnings, len(doc.text.split()), list(doc.outlets), list(doc.authors))


def read_file(path: str | Path, *, published: str | date | None = None,
              max_bytes: int | None = None, gazetteer_file: str | Path | None = None,
              max_seconds: float | None = READ_SECONDS) -> Reading:
    """Read a report file and extract its claims (:class:`CollateralError` names the file).
    After ``max_seconds`` (None: no limit) reading stops with a warning and what was read."""
    from sitewatch.warning.documents import MAX_BYTES

    pub = parse_date(published, "publication date", CollateralError)
    deadline = deadline_in(max_seconds)
    doc = read_document(path, max_bytes=max_bytes or MAX_BYTES, deadline=deadline)
    return extract(doc, published=pub, gazetteer_file=gazetteer_file, deadline=deadline)


def read_text(text: str, *, name: str = "<text>", published: str | date | None = None,
              fmt: str | None = None) -> Reading:
    """Extract the claims of a report given as a string."""
    if not text.strip():
        raise CollateralError(f"{name}: the text is empty")
    pub = parse_date(published, "publication date", CollateralError)
    return extract(parse_document(text, name, fmt=fmt), published=pub)


__all__ = [
    "CERTAINTY_WEIGHT",
    "ENGINE_LEVELS",
    "LAUNCH_LEVELS",
    "Claim",
    "Reading",
    "extract",
    "read_file",
    "read_text",
]
