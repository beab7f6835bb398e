"""The data the collateral reader works from, loaded once: gazetteer, sources, word lists.

Each is a TOML file in ``sitewatch/warning/data`` (documented there).  A user's
``gazetteer.toml`` in the sitewatch home adds sites and names.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sitewatch.errors import CollateralError

#: Part kinds named in text, with the words that name them (first match nearest the claim).
PART_WORDS: dict[str, str] = {
    "transfer_structure": r"\b(transfer (structure|building|shelter)|rail-mounted (transfer |"
                          r"assembly |processing )?(structure|building)|(mobile|movable) "
                          r"(assembly |transfer )?(structure|building)|assembly structure)\b",
    "gantry_tower": r"\b(gantry( tower)?|umbilical tower|launch tower|service tower|"
                    r"(service|umbilical) arms?)\b",
    "launch_pad": r"\b(launch ?pads?|launchpads?|launch platform|launch complex|the pad|"
                  r"pad area|launch area)\b",
    "fuel_storage": r"\b((fuel|propellant|oxidi[sz]er) (storage|bunkers?|tanks?|depots?|"
                    r"buildings?)|bunkers?)\b",
    "engine_test_stand": r"\b((vertical |horizontal )?(rocket )?engine[- ]test(ing)? "
                         r"(stand|site|facility|area|pad)|test stand|flame (bucket|trench|"
                         r"deflector)|engine support structure|environmental shelter)\b",
    "assembly_building": r"\b((horizontal |main )?(assembly|processing|integration) "
                         r"(building|hall|facility|workshop))\b",
    "rail_terminal": r"\b((rail|railway|train) (station|terminal|yard)|covered (rail|railway)? ?"
                     r"station|unloading (area|station|platform))\b",
    "rail_line": r"\b((rail|railway|railroad) (line|spur|tracks?)|rail spur|tracks|"
                 r"underground rail(way|road)?( line)?)\b",
    "command_center": r"\b((command|control)( and control)? (center|centre|building))\b",
    "observation_building": r"\b((vip|observation|viewing) (building|stand|facility|area|"
                            r"platform|pavilion))\b",
    "support_area": r"\b(support (area|compound|buildings?|facilit(y|ies))|construction "
                    r"(compound|area|yard|staging area)|staging area|housing (area|complex))\b",
}

#: Parts an activity implies when the sentence names none.
ACTIVITY_PARTS = {"transfer_structure_moved": "transfer_structure",
                  "shelter_moved": "engine_test_stand",
                  "service_arms_open": "gantry_tower",
                  "engine_test_preparations": "engine_test_stand",
                  "engine_test_conducted": "engine_test_stand",
                  "burn_scar": "engine_test_stand"}


@dataclass(frozen=True)
class GazetteerSite:
    id: str
    name: str
    country: str
    site_type: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class SourceRule:
    pattern: re.Pattern[str]
    name: str
    origin: str
    outlet: bool
    country: str | None = None  # an outlet's home country: its unnamed officials are its own


#: Names of governments by country code (for unnamed officials quoted by a national outlet).
COUNTRY_GOVERNMENT = {"US": "U.S. government", "JP": "Japanese government",
                      "KR": "South Korean government"}


@dataclass(frozen=True)
class ActivityRule:
    terms: tuple[re.Pattern[str], ...]
    context: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    any_term: re.Pattern[str]  # all terms in one pattern: a quick "could it be here?"
    denied: tuple[re.Pattern[str], ...] = ()  # phrasings that deny it ("remains closed")


def _data(name: str) -> dict[str, Any]:
    ref = resources.files("sitewatch.warning").joinpath("data", name)
    return tomllib.loads(ref.read_text(encoding="utf-8"))


def _compile(patterns: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p, re.I))
        except re.error as e:
            raise CollateralError(f"{where}: bad pattern {p!r}: {e}") from e
    return tuple(out)


def gazetteer(extra: str | Path | None = None) -> tuple[GazetteerSite, ...]:
    """Known sites with their names (built-in, then ``extra``'s ``[[site]]`` tables)."""
    return _gazetteer(str(extra) if extra else None)


@lru_cache(maxsize=8)
def _gazetteer(extra: str | None) -> tuple[GazetteerSite, ...]:
    entries = list(_data("gazetteer.toml")["site"])
    if extra and Path(extra).is_file():
        try:
            entries += tomllib.loads(Path(extra).read_text(encoding="utf-8")).get("site", [])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CollateralError(f"{extra}: not a valid gazetteer TOML file: {exc}") from exc
    out = []
    for i, e in enumerate(entries):
        try:
            out.append(GazetteerSite(str(e["id"]), str(e.get("name", e["id"])),
                                     str(e.get("country", "")),
                                     str(e.get("site_type", "facility")),
                                     (*tuple(str(n) for n in e.get("names", [])), str(e["id"]))))
        except (KeyError, TypeError) as err:
            raise CollateralError(f"gazetteer entry {i + 1}: needs an 'id' and 'names' "
                                  f"({err})") from err
    return tuple(out)


@lru_cache(maxsize=1)
def sources() -> tuple[SourceRule, ...]:
    out = []
    for i, e in enumerate(_data("sources.toml")["source"]):
        (pat,) = _compile([e["pattern"]], f"sources.toml entry {i + 1}")
        out.append(SourceRule(pat, e["name"], e["origin"], bool(e.get("outlet", False)),
                              e.get("country")))
    return tuple(out)


@lru_cache(maxsize=1)
def activities() -> dict[str, ActivityRule]:
    data = _data("lexicon.toml")["activity"]
    return {k: ActivityRule(_compile(v["terms"], f"lexicon {k}"),
                            _compile(v.get("context", []), f"lexicon {k}"),
                            _compile(v.get("exclude", []), f"lexicon {k}"),
                            re.compile("|".join(f"(?:{t})" for t in v["terms"]), re.I),
                            _compile(v.get("denied", []), f"lexicon {k}"))
            for k, v in data.items()}


@lru_cache(maxsize=1)
def cues() -> dict[str, tuple[re.Pattern[str], ...]]:
    data = _data("lexicon.toml")["cues"]
    out = {k: _compile(v, f"lexicon cues.{k}") for k, v in data.items() if k != "say"}
    say = "|".join(sorted(data["say"], key=len, reverse=True))
    out["say"] = (re.compile(rf"\b({say})\b", re.I),)
    return out


@lru_cache(maxsize=1)
def part_words() -> dict[str, re.Pattern[str]]:
    return {k: re.compile(v, re.I) for k, v in PART_WORDS.items()}


def match_source(phrase: str) -> SourceRule | None:
    """The first source rule matching ``phrase`` (with ``$0`` names filled), or None.

    >>> match_source("Japan's Kyodo news agency").name
    'Kyodo'
    >>> r = match_source("the news agency Reuters"); (r.name, r.origin, r.outlet)
    ('Reuters', 'media:reuters', True)
    """
    for rule in sources():
        m = rule.pattern.search(phrase)
        if m:
            if "$0" in rule.name or "$0" in rule.origin:
                word = m[0].strip()
                name = word if not word.islower() else word.title()
                return SourceRule(rule.pattern, rule.name.replace("$0", name),
                                  rule.origin.replace("$0", re.sub(r"\W+", "", word.lower())),
                                  rule.outlet, rule.country)
            return rule
    return None


ACTIVITIES = ("vehicles_present", "railcars_arrived", "transfer_structure_moved",
              "service_arms_open", "shelter_moved", "fuel_activity", "personnel_movement",
              "equipment_movement", "construction", "razing", "rebuilding", "burn_scar",
              "no_activity", "launch_notice", "launch_preparations", "launch_conducted",
              "engine_test_conducted", "engine_test_preparations")

__all__ = ["ACTIVITIES", "ACTIVITY_PARTS", "COUNTRY_GOVERNMENT", "PART_WORDS", "GazetteerSite",
           "activities", "cues", "gazetteer", "match_source", "part_words", "sources"]
