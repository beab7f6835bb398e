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
from typing import Any, NamedTuple

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
                            r"launching station|pad|test stand)|there(?! (is|are|was|were|has|"
                            r"have|had|seems?|appears?|remains?|will|may|might|could|would|"
                            r"must|should)\b))\b", re.I)
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


class _Mention(NamedTuple):
    """A gazetteer name found in a sentence: where, which site, by a weak name (a description
    or a nearby place), and whether only in passing ("like the one at Tonghae")."""

    pos: int
    site: str
    weak: bool = False
    passing: bool = False


def _name_variants(name: str) -> set[str]:
    """Spellings of a name that match it too: hyphens as spaces or nothing, "Center" as
    "Centre", a typographic apostrophe."""
    out = {name, name.replace("-", " "), name.replace("-", "")}
    out |= {re.sub(r"(?i)\bcent(er|re)\b", lambda m: "Centre" if m[1] == "er" else "Center", v)
            for v in out}
    return out | {v.replace("'", "’") for v in out}


@lru_cache(maxsize=8)
def _site_matcher(extra: str | None) -> tuple[Any, dict[str, tuple[str, bool]],
                                               list[tuple[str, str, bool]]]:
    """A PhraseMatcher of gazetteer names: its keys map to (site id, weak name?); names not in
    Latin script come apart, for a substring search."""
    from spacy.matcher import PhraseMatcher

    nlp = _nlp()
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    ids: dict[str, tuple[str, bool]] = {}
    raw: list[tuple[str, str, bool]] = []  # non-Latin names: plain substring search
    for site in lexicon.gazetteer(extra):
        for weak, names in ((False, site.names), (True, site.descriptions)):
            patterns = []
            for name in names:
                if not name.isascii():
                    raw.append((name.lower(), site.id, weak))
                    continue
                patterns += [nlp.make_doc(v) for v in sorted(_name_variants(name))]
            key = f"{'weak' if weak else 'site'}:{site.id}"
            ids[key] = (site.id, weak)
            if patterns:
                matcher.add(key, patterns)
    return matcher, ids, raw


#: A name after these words is named in passing, in a comparison ("like the one at Tonghae",
#: "unlike Iran's Semnan site", "larger than at Sohae"): it takes no claims.
_PASSING_BEFORE = re.compile(r"\b(like|unlike|similar to|resembl\w*|comparable to|compared "
                             r"(with|to)|than|akin to|reminiscent of|modell?ed (on|after)|"
                             r"same as|the likes of|copy of|copied from)\b(\W+\w+){0,6}\W*$",
                             re.I)
#: ... or when the name only qualifies another thing ("a Sohae-style gantry", "a
#: Sinpo-class submarine").
_PASSING_AFTER = re.compile(r"^[\s-]*(like|style|type|class)\b", re.I)


def _in_passing(sentence: str, start: int, end: int) -> bool:
    """Whether the name at ``start:end`` of ``sentence`` is named only in passing."""
    a, _b = _segment_of(sentence, start)
    return bool(_PASSING_BEFORE.search(sentence[max(a, start - 80):start])
                or _PASSING_AFTER.match(sentence[end:end + 12]))


def _find_sites(text: str, matcher: Any, ids: dict[str, tuple[str, bool]],
                raw: list[tuple[str, str, bool]]) -> list[_Mention]:
    """The gazetteer names in a sentence, in order."""
    nlp = _nlp()
    sdoc = nlp.make_doc(text)
    spans = [(sdoc[s:e].start_char, sdoc[s:e].end_char, *ids[nlp.vocab.strings[k]])
             for k, s, e in matcher(sdoc)]
    low = text.lower()
    spans += [(i, i + len(name), sid, weak) for name, sid, weak in raw
              for i in [low.find(name)] if i >= 0]
    return sorted(_Mention(a, sid, weak, _in_passing(text, a, b)) for a, b, sid, weak in spans)


def _settle(per_sentence: list[list[_Mention]]) -> list[list[_Mention]]:
    """Weak names count only in a sentence that names no site properly, and only when the
    text names no site properly or names that same site properly somewhere."""
    proper = {m.site for found in per_sentence for m in found if not m.weak and not m.passing}
    out = []
    for found in per_sentence:
        if any(not m.weak for m in found):
            out.append([m for m in found if not m.weak])
        else:
            out.append([m for m in found if not proper or m.site in proper])
    return out


#: How many sentences naming a site make the lede, when the title names none.
LEDE_SENTENCES = 3


def _topic_site(title: list[_Mention], per_sentence: list[list[_Mention]],
                counts: Counter[str]) -> str | None:
    """The site the report is about: the title's (the most named of them, if several), else
    the one the lede names most (the first named, on a tie), else None."""
    named = list(dict.fromkeys(m.site for m in title if not m.passing))
    if named:
        return max(named, key=lambda s: (counts[s], -named.index(s)))
    lede = [found for found in per_sentence if any(not m.passing for m in found)]
    order = list(dict.fromkeys(m.site for found in lede[:LEDE_SENTENCES] for m in found
                               if not m.passing))
    if not order:
        return None
    in_lede = Counter(m.site for found in lede[:LEDE_SENTENCES]
                      for m in {x.site: x for x in found if not x.passing}.values())
    return max(order, key=lambda s: (in_lede[s], -order.index(s)))


def _country_pattern(codes: tuple[str, ...]) -> re.Pattern[str] | None:
    """Another country's programme, launch site or rockets named ("Iran's space programme",
    "Chinese rockets"), by the names of the countries ``codes``."""
    names = [n for code in codes for n in lexicon.countries().get(code, ())]
    if not names:
        return None
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alt})(['’]s)?\s+({_PROGRAMME})\b")


#: What names a country's programme after its name: "Iran's (space) programme", "Chinese
#: rockets", "Russia's missile forces"; not "U.S. officials said launch ...".
_PROGRAMME = (r"((space|missile|rocket|satellite|ballistic|civilian|military|main|new|own)\s+)"
              r"{0,2}(program(me)?s?|space ?ports?|cosmodromes?|launch (sites?|pads?|centers?|"
              r"centres?|facilit(y|ies))|launch(es)?|rockets?|missiles?|ICBMs?|SLBMs?)"
              r"|(missile|rocket) (forces|units|troops)")


@lru_cache(maxsize=32)
def _foreign(country: str) -> re.Pattern[str] | None:
    others = tuple(c for c in lexicon.countries() if c != country)
    return _country_pattern(others)


@lru_cache(maxsize=32)
def _own(country: str) -> re.Pattern[str] | None:
    names = lexicon.countries().get(country, ())
    if not names:
        return None
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alt})\b|\bthe North\b" if country == "KP"
                      else rf"(?<![\w.])({alt})\b")


def _about_other_country(sentence: str, site: str | None, extra: str | None) -> bool:
    """Whether a sentence that names no site speaks of another country's programme than
    ``site``'s ("Iran's space programme" in a report on Sohae), and not of ``site``'s own
    country, other than in a comparison ("unlike Iran's programme, ...")."""
    entry = lexicon.gazetteer_site(site, extra) if site else None
    if entry is None or not entry.country:
        return False
    foreign, own = _foreign(entry.country), _own(entry.country)
    if foreign is None or (own is not None and own.search(sentence)):
        return False
    return any(not _in_passing(sentence, m.start(), m.end()) for m in foreign.finditer(sentence))


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
                     sentences: list[tuple[int, str]], per_sentence: list[list[_Mention]],
                     matcher: Any, ids: dict[str, tuple[str, bool]],
                     raw: list[tuple[str, str, bool]]) -> bool:
    """Append the sentences of a paragraph and the sites each names; True when ``deadline``
    passed first (the sentences before it are kept)."""
    nlp = _nlp()
    for chunk in _chunks(_cut_long_tokens(paragraph)):
        if past(deadline):
            return True
        for sent in nlp(chunk).sents:
            for text in _pieces(sent.text.strip()):
                sentences.append((pi, text))
                per_sentence.append(_find_sites(text, matcher, ids, raw))
    return False


#: Only the start of a title is searched for site names (an HTML <title> can be anything).
MAX_TITLE = 1000
#: A heading: a short line that does not end a sentence ("TONGHAE, North Korea").
HEADING_WORDS = 10


def _lead_in(paragraph: str) -> str | None:
    """"heading" or "question" when a paragraph introduces the ones after it (their claims
    are about the site it names), else None."""
    text = paragraph.strip()
    if text.endswith("?"):
        return "question"
    if (text and len(text) <= 20 * HEADING_WORDS and len(text.split()) <= HEADING_WORDS
            and not text.endswith((".", "!", '"', "”"))):
        return "heading"
    return None


def _lead_sites(paragraphs: list[str], sentences: list[tuple[int, str]],
                per_sentence: list[list[_Mention]]) -> dict[int, str]:
    """The site each paragraph is introduced as being about, by the heading or question
    before it: a heading's site holds until the next heading, a question's until the next
    question that names another site."""
    last: dict[int, str] = {}
    for (pi, _text), found in zip(sentences, per_sentence, strict=True):
        for m in found:
            if not m.passing:
                last[pi] = m.site
    out: dict[int, str] = {}
    lead: str | None = None
    for pi, paragraph in enumerate(paragraphs):
        if lead is not None:
            out[pi] = lead
        kind = _lead_in(paragraph)
        if kind is not None:
            lead = last.get(pi) or (lead if kind == "question" else None)
    return out


def _host(activity: str, local: str | None, topic: str | None,
          gazetteer: str | None) -> str | None:
    """The site an activity in a sentence naming none is about: the paragraph's (``local``),
    unless its type rules the activity out (a launch notice in a paragraph on a nuclear test
    site) and the report's site does not; else the report's (``topic``)."""
    event = lexicon.ACTIVITY_EVENT.get(activity)
    if local is None:
        return topic
    if (event is not None and topic is not None
            and event not in lexicon.site_events(local, gazetteer)
            and event in lexicon.site_events(topic, gazetteer)):
        return topic
    return local


def _claim_site(text: str, start: int, named: list[_Mention], last: str | None,
                about: str | None, gazetteer: str | None) -> str | None:
    """The site of a claim at ``start`` of sentence ``text``: the site the sentence names (the
    nearest, in the same clause first); else, for "the site" or "there", the site last named
    (``last``); else the site the paragraph or the report is about (``about``).  A sentence
    about a place the gazetteer does not know, or about another country's programme, gets no
    site."""
    if named:
        a, b = _segment_of(text, start)
        near = [m for m in named if a <= m.pos < b] or named
        return min(near, key=lambda m: abs(m.pos - start)).site
    generic = _GENERIC_PLACE.search(text)
    if _OTHER_PLACE.search(text) and not generic:
        return None
    if generic and last:
        return last
    if about and _about_other_country(text, about, gazetteer):
        return None
    return about


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
    gazetteer = str(gazetteer_file) if gazetteer_file else None
    matcher, ids, raw = _site_matcher(gazetteer)
    # The author's own voice is one origin per text (by content: the same article saved as
    # .txt and .html is one source; two outlets' index.html are two).
    author = f"author:{hashlib.sha256(doc.text.encode('utf-8')).hexdigest()[:12]}"
    claims: list[Claim] = []
    background: list[Claim] = []
    mentions: Counter[str] = Counter()  # sentences naming each site (not in passing)
    current_site: str | None = None  # the site last named
    paragraph_site: str | None = None  # the site last named in the current paragraph
    sentences: list[tuple[int, str]] = []
    # Splitting and site-finding get half the time left, so that some claims are read too.
    halfway = None if deadline is None else (deadline + monotonic()) / 2
    # Sites first: the text's main site fills in sentences that name none.
    per_sentence: list[list[_Mention]] = []
    for pi, paragraph in enumerate(doc.paragraphs):
        if _split_paragraph(pi, paragraph, halfway, sentences, per_sentence, matcher, ids, raw):
            warnings.append(_stopped(f"at paragraph {pi + 1} of {len(doc.paragraphs)}"))
            break
    title = _cut_long_tokens(doc.title[:MAX_TITLE])
    settled = _settle([_find_sites(title, matcher, ids, raw), *per_sentence])
    title_found, per_sentence = settled[0], settled[1:]
    for found in per_sentence:
        mentions.update({m.site for m in found if not m.passing})
    topic = _topic_site(title_found, per_sentence, mentions)
    leads = _lead_sites(doc.paragraphs, sentences, per_sentence)
    last_pi = -1
    last_speaker: _Speaker | None = None
    for si, ((pi, text), found) in enumerate(zip(sentences, per_sentence, strict=True)):
        if past(deadline):
            warnings.append(_stopped(f"at sentence {si + 1} of {len(sentences)} "
                                     f"(paragraph {pi + 1} of {len(doc.paragraphs)})"))
            sentences = sentences[:si]
            break
        named = [m for m in found if not m.passing]
        if pi != last_pi:
            paragraph_site, last_pi = None, pi
        if named:
            current_site = paragraph_site = named[-1].site
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
            site = _claim_site(text, start, named, current_site,
                               _host(activity, paragraph_site or leads.get(pi), topic,
                                     gazetteer), gazetteer)
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

    stated, why = stated_judgement([t for _, t in sentences], claims, pub, title=doc.title)
    return Reading(doc.name, doc.title, doc.format, pub.isoformat() if pub else None,
                   [*([topic] if topic else []),
                    *(s for s, _ in mentions.most_common() if s != topic)],
                   claims, background, stated, why,
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
