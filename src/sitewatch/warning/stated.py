"""What a report itself concludes about a launch and an engine test.

Reports end on a judgement ("a launch could come as soon as next week", "no signs of
preparations"); :func:`stated_judgement` reads it so sitewatch's own assessment can be set
beside it.

Launch: ``imminent`` (a launch expected within days or weeks, a notice declared),
``possible`` (preparations may be under way; a launch in the coming months),
``unlikely`` (no signs, site dormant), ``no_evidence`` (the text does not address a launch).
Engine test: ``recent_test``, ``preparations``, ``unlikely``, ``no_evidence``.

How: sentences that *judge* (they talk about a launch or a test and carry a cue of timing or
likelihood) vote; a cue inside a negation ("nothing points to a launch in the next few days")
votes ``unlikely``; a sentence that concludes ("taken together", "bottom line", "we assess")
votes twice.  When no sentence judges, the claims decide: a declared notice means
``imminent``, reported preparations ``possible``, a quiet site ``unlikely``.  A recent test is
read from claims only (a test conducted, a burn scar at a stand), never from background.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from sitewatch.warning import lexicon

if TYPE_CHECKING:
    from sitewatch.warning.collateral import Claim

_LAUNCH_WORD = r"\b(launch\w*|lift-?off|missile test|rocket test|test-fire|firing|fire a)\b"
_ENGINE_WORD = (r"\b((engine|ground|static[- ]fire|motor|thrust)[- ]?(tests?|firing|test-?fir\w*)|"
                r"test stand)\b")
_IMMINENT = (
    r"\bimminent\b", r"\bimpending\b", r"\bas (soon|early) as (next|this) (week|month)\b",
    r"\bwithin (days|a week|the (next|coming) (few )?(days|weeks))\b",
    r"\bin the (coming|next) (few )?(days|weeks)\b", r"\bon the verge of\b",
    r"\bpoised to\b", r"\b(ready|set) to (launch|lift|fire)\b", r"\blaunch window\b",
    r"\bcountdown\b", r"\bany day\b", r"\bnext few days\b", r"\bwindow opens\b",
    r"\b(is|are) (expected|scheduled|set) to (launch|take place|occur|lift)\b",
)
_POSSIBLE = (
    r"\bprepar\w*\b", r"\bplanning to (launch|restart|resume)\b",
    r"\b(could|may|might) (launch|fire|conduct|carry out|attempt|come|be (preparing|planning|"
    r"readying))\b", r"\bpossible\b", r"\bpossibly\b", r"\bcannot be ruled out\b",
    r"\b(restart|resume)\w* (its )?(missile|rocket|long-range|satellite)\b", r"\breadying\b",
    r"\bgroundwork\b", r"\bin the (coming|next) (few )?months\b", r"\bwithin months\b",
    r"\b(another|second|third|new) attempt\b", r"\blater this year\b", r"\bplausible\b",
)
_UNLIKELY = (
    r"\bno (signs?|indications?|evidence) (of|that)\b", r"\bnot (expected|imminent|likely)\b",
    r"\bunlikely\b", r"\bdormant\b", r"\b(idle|inactive|quiet)\b", r"\bno (preparations?|"
    r"activity)\b", r"\bnothing\b[^.;]{0,40}\b(suggests|indicates|points to)\b", r"\bstandby\b",
    r"\b(remains?|remained) (unchanged|quiet|idle|dormant)\b", r"\bno launch\b",
)
_CONCLUSION = re.compile(r"\b(taken together|bottom line|in sum|overall|we assess|we judge|"
                         r"in short|conclusion|assessment:|all told|on balance)\b", re.I)
#: Recent-test claims older than this (days before publication) are not "recent".
RECENT_DAYS = 60


@lru_cache(maxsize=16)
def _union(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


def _has(patterns: Sequence[str], text: str) -> list[re.Match[str]]:
    return list(_union(tuple(patterns)).finditer(text))


def _negated_at(sentence: str, pos: int) -> bool:
    before = sentence[max(0, pos - 50):pos]
    for rx in lexicon.cues()["scope_break"]:
        parts = rx.split(before)
        before = parts[-1] if parts else before
    return any(rx.search(before) for rx in lexicon.cues()["negation"])


def _judge(sentence: str, cues: Sequence[str], level: str) -> list[str]:
    out = []
    for m in _has(cues, sentence):
        out.append("unlikely" if level != "unlikely" and _negated_at(sentence, m.start())
                   else level)
    return out


def stated_judgement(sentences: Sequence[str], claims: Sequence[Claim],
                     published: date | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({"launch": level, "engine_test": level}, {event: [sentences that say so]})``."""
    launch: Counter[str] = Counter()
    engine: Counter[str] = Counter()
    why: dict[str, list[tuple[str, str]]] = {"launch": [], "engine_test": []}
    for s in sentences:
        weight = 2 if _CONCLUSION.search(s) else 1
        if re.search(_LAUNCH_WORD, s, re.I):
            votes = _judge(s, _IMMINENT, "imminent")
            if "imminent" not in votes:  # timing in a sentence says more than "preparing"
                votes += _judge(s, _POSSIBLE, "possible")
            votes += _judge(s, _UNLIKELY, "unlikely")
            for v in set(votes):
                launch[v] += weight
                why["launch"].append((v, s))
        if re.search(_ENGINE_WORD, s, re.I):
            votes = (_judge(s, _IMMINENT + _POSSIBLE, "preparations")
                     + _judge(s, _UNLIKELY, "unlikely"))
            for v in set(votes):
                engine[v] += weight
                why["engine_test"].append((v, s))
    # Claims: a notice is a judgement in itself; a recent test is read from claims only.
    recent = []
    fallback: Counter[str] = Counter()
    fallback_engine: Counter[str] = Counter()
    for c in claims:
        if c.site is None or c.background:
            continue
        if c.activity == "launch_notice" and not c.negated:
            launch["imminent"] += 2
            why["launch"].append(("imminent", c.sentence))
        elif c.activity in ("engine_test_conducted", "burn_scar") and not c.negated \
                and c.part in ("engine_test_stand", None) and _recent(c, published):
            recent.append(c.sentence)
        elif c.activity in ("launch_preparations", "transfer_structure_moved",
                            "service_arms_open", "fuel_activity", "railcars_arrived"):
            fallback["unlikely" if c.negated else "possible"] += 1
        elif c.activity in ("shelter_moved", "engine_test_preparations"):
            fallback_engine["unlikely" if c.negated else "preparations"] += 1
        elif c.activity == "no_activity" and not c.negated:
            (fallback_engine if c.part == "engine_test_stand" else fallback)["unlikely"] += 1
    launch_level = _pick(launch, ("possible", "imminent", "unlikely")) or \
        _pick(fallback, ("possible", "unlikely")) or "no_evidence"
    if recent:
        engine_level = "recent_test"
        why["engine_test"] = [("recent_test", s) for s in recent]
    else:
        engine_level = _pick(engine, ("preparations", "unlikely")) or \
            _pick(fallback_engine, ("preparations", "unlikely")) or "no_evidence"
    out_why = {ev: list(dict.fromkeys(s for lv, s in why[ev] if lv == level))[:5]
               for ev, level in (("launch", launch_level), ("engine_test", engine_level))}
    return {"launch": launch_level, "engine_test": engine_level}, out_why


def _pick(votes: Counter[str], order: tuple[str, ...]) -> str | None:
    """The level with most votes; ties go to the first in ``order`` (the moderate one)."""
    if not votes:
        return None
    top = max(votes.values())
    return next(level for level in order if votes.get(level) == top)


def _recent(c: Claim, published: date | None) -> bool:
    t = c.time or {}
    if published and t.get("end"):
        return (published - date.fromisoformat(t["end"])).days <= RECENT_DAYS
    days = t.get("days")
    return not days or -days[1] <= RECENT_DAYS


__all__ = ["stated_judgement"]
