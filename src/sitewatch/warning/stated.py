"""What a report itself concludes about a launch and an engine test.

Reports end on a judgement ("a launch could come as soon as next week", "no signs of
preparations"); :func:`stated_judgement` reads it from cue phrases and from the report's
claims, so sitewatch's own assessment can be set beside it.

Launch: ``imminent`` (a launch expected within days or weeks, a notice declared),
``possible`` (preparations may be under way), ``unlikely`` (no signs, site dormant),
``no_evidence`` (the text does not address a launch).  Engine test: ``recent_test``,
``preparations``, ``unlikely``, ``no_evidence``.  A cue inside a negation ("no sign of an
imminent launch") counts for ``unlikely``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from . import lexicon

if TYPE_CHECKING:
    from .collateral import Claim

_LAUNCH_WORD = r"(launch|lift-?off|missile test|rocket test|satellite|icbm|test-fire)"
_IMMINENT = [
    r"\bimminent\b", r"\bimpending\b", r"\bas (soon|early) as (next|this) (week|month)\b",
    r"\bwithin (days|the (next|coming) (few )?(days|weeks))\b",
    r"\bin the (coming|next) (few )?(days|weeks)\b", r"\bon the verge of\b",
    r"\bpoised to\b", r"\b(ready|set) to (launch|lift)\b", r"\blaunch window\b",
    r"\b(final|last)[- ]stage preparations\b", r"\bcountdown\b", r"\bany day\b",
    r"\b(is|are) (expected|scheduled|set) to (launch|take place|occur|lift)\b",
]
_POSSIBLE = [
    r"\bprepar\w*\b", r"\bplanning to (launch|restart|resume)\b", r"\bcould (launch|be "
    r"(preparing|planning|readying))\b", r"\bmay (launch|be (preparing|planning|readying))\b",
    r"\bpossible (launch|test)\b", r"\b(restart|resume)\w* (its )?(missile|rocket|long-range)\b",
    r"\breadying\b", r"\bpreparations?\b", r"\bgroundwork\b",
]
_UNLIKELY = [
    r"\bno (signs?|indications?|evidence) (of|that)\b", r"\bnot (expected|imminent|likely)\b",
    r"\bunlikely\b", r"\bdormant\b", r"\b(idle|inactive|quiet)\b", r"\bno (preparations?|"
    r"activity)\b", r"\bnothing\b[^.;]{0,40}\b(suggests|indicates|points to)\b", r"\bstandby\b",
    r"\b(remains?|remained) (unchanged|quiet|idle|dormant)\b",
]
_ENGINE_WORD = r"(engine|ground|static[- ]fire|motor|thrust)[- ]?(tests?|firing|test-?fir)"


@lru_cache(maxsize=16)
def _union(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


def _has(patterns: Sequence[str], text: str) -> list[str]:
    return [m[0] for m in _union(tuple(patterns)).finditer(text)]


def _negated_cue(sentence: str, cue: str) -> bool:
    i = sentence.lower().find(cue.lower())
    before = sentence[max(0, i - 50):i]
    return any(rx.search(before) for rx in lexicon.cues()["negation"])


def stated_judgement(sentences: Sequence[str], claims: Sequence[Claim],
                     published: date | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({"launch": level, "engine_test": level}, {event: [sentences that say so]})``."""
    votes: dict[str, list[str]] = {k: [] for k in
                                   ("imminent", "possible", "unlikely", "recent_test",
                                    "preparations", "test_unlikely")}
    launch_talk = engine_talk = False
    for s in sentences:
        if re.search(r"\bsomething imminent\b", s, re.I):
            votes["imminent"].append(s)
        is_launch = bool(re.search(_LAUNCH_WORD, s, re.I))
        is_engine = bool(re.search(_ENGINE_WORD, s, re.I)) or "test stand" in s.lower()
        launch_talk |= is_launch
        engine_talk |= is_engine
        if is_launch:
            for cue in _has(_IMMINENT, s):
                votes["unlikely" if _negated_cue(s, cue) else "imminent"].append(s)
            if not _has(_IMMINENT, s):
                for cue in _has(_POSSIBLE, s):
                    votes["unlikely" if _negated_cue(s, cue) else "possible"].append(s)
            if _has(_UNLIKELY, s):
                votes["unlikely"].append(s)
        if is_engine:
            if _has(_UNLIKELY, s):
                votes["test_unlikely"].append(s)
            elif _has(_POSSIBLE + _IMMINENT, s):
                votes["preparations"].append(s)
    for c in claims:
        if c.activity == "launch_notice" and not c.negated:
            votes["imminent"].append(c.sentence)
        elif c.activity in ("launch_preparations", "transfer_structure_moved",
                            "service_arms_open", "fuel_activity") and not c.negated:
            (votes["imminent"] if c.time and c.time.get("sense") == "future"
             else votes["possible"]).append(c.sentence)
        elif c.activity == "launch_preparations" and c.negated:
            votes["unlikely"].append(c.sentence)
        elif c.activity in ("engine_test_conducted", "burn_scar") and not c.negated:
            votes["recent_test"].append(c.sentence)
        elif c.activity in ("shelter_moved", "engine_test_preparations") and not c.negated:
            votes["preparations"].append(c.sentence)
        elif c.activity == "no_activity" and not c.negated:
            key = "test_unlikely" if c.part == "engine_test_stand" else "unlikely"
            votes[key].append(c.sentence)
    positive = len(votes["imminent"]) + len(votes["possible"])
    if votes["imminent"] and len(votes["imminent"]) >= len(votes["unlikely"]):
        launch = "imminent"
    elif votes["possible"] and positive >= len(votes["unlikely"]):
        launch = "possible"
    elif votes["unlikely"]:
        launch = "unlikely"
    elif votes["possible"] or votes["imminent"]:
        launch = "possible"
    else:
        launch = "no_evidence"
    if votes["recent_test"]:
        engine = "recent_test"
    elif votes["preparations"] and len(votes["preparations"]) >= len(votes["test_unlikely"]):
        engine = "preparations"
    elif votes["test_unlikely"]:
        engine = "unlikely"
    else:
        engine = "no_evidence"
    why = {"launch": list(dict.fromkeys(votes.get(launch, [])))[:5],
           "engine_test": list(dict.fromkeys(
               votes.get({"unlikely": "test_unlikely"}.get(engine, engine), [])))[:5]}
    del launch_talk, engine_talk, published
    return {"launch": launch, "engine_test": engine}, why


__all__ = ["stated_judgement"]
