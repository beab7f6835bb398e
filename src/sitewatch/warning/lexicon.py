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
    """A place of the gazetteer: its proper ``names`` name it; its ``descriptions`` ("the west
    coast launch site", a nearby city) are weak names (see ``data/gazetteer.toml``)."""

    id: str
    name: str
    country: str
    site_type: str
    names: tuple[str, ...]
    descriptions: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    precision_km: float | None = None
    note: str = ""


@dataclass(frozen=True)
class SiteType:
    """A kind of site and the events a warning about it can be about."""

    name: str
    events: frozenset[str]
    about: str = ""


#: Events a site type may list (see :mod:`.assess`).
SITE_EVENTS = ("launch", "engine_test")
#: Activities that can only be about one event: a launch notice is never news of a nuclear
#: test site, an engine test never of a shipyard.
ACTIVITY_EVENT = {"launch_notice": "launch", "launch_preparations": "launch",
                  "launch_conducted": "launch", "transfer_structure_moved": "launch",
                  "service_arms_open": "launch", "engine_test_conducted": "engine_test",
                  "engine_test_preparations": "engine_test", "shelter_moved": "engine_test",
                  "burn_scar": "engine_test"}

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


BUILTIN_GAZETTEER = "sitewatch/warning/data/gazetteer.toml"
_SITE_KEYS = frozenset(("id", "name", "country", "site_type", "names", "descriptions", "lat",
                        "lon", "precision_km", "note"))
_SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class _Gazetteer:
    sites: tuple[GazetteerSite, ...]
    types: dict[str, SiteType]
    countries: dict[str, tuple[str, ...]]


def gazetteer(extra: str | Path | None = None) -> tuple[GazetteerSite, ...]:
    """Known sites with their names (built-in, then ``extra``'s ``[[site]]`` tables).

    A malformed file raises :class:`~sitewatch.errors.CollateralError` naming the file, the
    entry and the field."""
    return _load(str(extra) if extra else None).sites


def gazetteer_site(site_id: str, extra: str | Path | None = None) -> GazetteerSite | None:
    """The gazetteer entry ``site_id``, or None when the gazetteer does not know it."""
    return next((s for s in gazetteer(extra) if s.id == site_id), None)


def site_type(site_id: str, extra: str | Path | None = None) -> str | None:
    """The type of gazetteer site ``site_id`` ("launch_site", "nuclear_test_site"...), or
    None when the gazetteer does not know it.

    >>> site_type("sohae"), site_type("punggye-ri"), site_type("nowhere")
    ('launch_site', 'nuclear_test_site', None)
    """
    site = gazetteer_site(site_id, extra)
    return site.site_type if site else None


def site_events(site_id: str | None, extra: str | Path | None = None) -> frozenset[str]:
    """The events ("launch", "engine_test") a warning about ``site_id`` can be about, from its
    site type.  A site the gazetteer does not know (or None) rules nothing out.

    >>> sorted(site_events("sohae")), sorted(site_events("magunpo")), site_events("punggye-ri")
    (['engine_test', 'launch'], ['engine_test'], frozenset())
    """
    kind = site_type(site_id, extra) if site_id else None
    if kind is None:
        return frozenset(SITE_EVENTS)
    return site_types(extra)[kind].events


def site_types(extra: str | Path | None = None) -> dict[str, SiteType]:
    """The site types the gazetteer knows, by name."""
    return dict(_load(str(extra) if extra else None).types)


def countries(extra: str | Path | None = None) -> dict[str, tuple[str, ...]]:
    """Names of each country and its people, by ISO code ("IR": "Iran", "Iranian"...)."""
    return dict(_load(str(extra) if extra else None).countries)


@lru_cache(maxsize=8)
def _load(extra: str | None) -> _Gazetteer:
    data = _data("gazetteer.toml")
    files = [(BUILTIN_GAZETTEER, data)]
    if extra and Path(extra).is_file():
        try:
            files.append((extra, tomllib.loads(Path(extra).read_text(encoding="utf-8"))))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CollateralError(f"{extra}: not a valid gazetteer TOML file: {exc}") from exc
    types: dict[str, SiteType] = {}
    countries: dict[str, tuple[str, ...]] = {}
    sites: dict[str, GazetteerSite] = {}
    for where, d in files:
        types.update(_site_types(where, d.get("site_types", {})))
        countries.update(_countries(where, d.get("countries", {})))
    for where, d in files:
        entries = d.get("site", [])
        if not isinstance(entries, list):
            raise CollateralError(f"{where}: 'site' must be [[site]] tables")
        seen: set[str] = set()
        for i, e in enumerate(entries):
            site = _site(where, i + 1, e, types, sites.get(str(e.get("id")))
                         if isinstance(e, dict) and where != BUILTIN_GAZETTEER else None)
            if site.id in seen:
                raise CollateralError(f"{where}: site entry {i + 1} ({site.id!r}): the id is "
                                      "used by an earlier entry of the same file")
            seen.add(site.id)
            sites[site.id] = site
    return _Gazetteer(tuple(sites.values()), types, countries)


def _site_types(where: str, table: Any) -> dict[str, SiteType]:
    if not isinstance(table, dict):
        raise CollateralError(f"{where}: 'site_types' must be a table of types")
    out = {}
    for name, spec in table.items():
        events = spec.get("events") if isinstance(spec, dict) else None
        if not isinstance(events, list) or any(ev not in SITE_EVENTS for ev in events):
            raise CollateralError(f"{where}: site type {name!r}: 'events' must be a list of "
                                  f"{', '.join(SITE_EVENTS)} (got {events!r})")
        out[str(name)] = SiteType(str(name), frozenset(events), str(spec.get("about", "")))
    return out


def _countries(where: str, table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict) or not all(
            isinstance(v, list) and v and all(isinstance(n, str) and n.strip() for n in v)
            for v in table.values()):
        raise CollateralError(f"{where}: 'countries' must map country codes to lists of names")
    return {str(k): tuple(v) for k, v in table.items()}


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) and n.strip() for n in value):
        raise CollateralError(f"{where}: {key!r} must be a list of non-empty strings "
                              f"(got {value!r})")
    return tuple(n.strip() for n in value)


def _number(where: str, key: str, value: Any, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise CollateralError(f"{where}: {key!r} must be a number from {lo:g} to {hi:g} "
                              f"(got {value!r})")
    return float(value)


def _site(file: str, n: int, e: Any, types: dict[str, SiteType],
          known: GazetteerSite | None) -> GazetteerSite:
    """One validated ``[[site]]`` entry; ``known``: the built-in entry a user's adds to."""
    if not isinstance(e, dict):
        raise CollateralError(f"{file}: site entry {n}: not a table")
    sid = e.get("id")
    where = f"{file}: site entry {n}" + (f" ({sid!r})" if isinstance(sid, str) else "")
    if not isinstance(sid, str) or not _SITE_ID.fullmatch(sid):
        raise CollateralError(f"{where}: needs an 'id' of letters, digits, '-', '_' or '.' "
                              f"(got {sid!r})")
    unknown = sorted(set(e) - _SITE_KEYS)
    if unknown:
        raise CollateralError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(sorted(_SITE_KEYS))})")
    kind = e.get("site_type", known.site_type if known else "facility")
    if kind not in types:
        raise CollateralError(f"{where}: site_type {kind!r} is unknown (known: "
                              f"{', '.join(sorted(types))})")
    country = e.get("country", known.country if known else "")
    if not isinstance(country, str) or (country and not re.fullmatch(r"[A-Z]{2}", country)):
        raise CollateralError(f"{where}: 'country' must be a two-letter ISO code such as "
                              f"'KP' (got {country!r})")
    for key in ("name", "note"):
        if key in e and not (isinstance(e[key], str) and e[key].strip()):
            raise CollateralError(f"{where}: {key!r} must be a non-empty string")
    names = _strings(where, "names", e.get("names", []))
    descriptions = _strings(where, "descriptions", e.get("descriptions", []))
    lat = _number(where, "lat", e.get("lat"), -90, 90)
    lon = _number(where, "lon", e.get("lon"), -180, 180)
    prec = _number(where, "precision_km", e.get("precision_km"), 0.001, 1000)
    if (lat is None) != (lon is None):
        raise CollateralError(f"{where}: give both 'lat' and 'lon', or neither")
    if known is not None:
        names, descriptions = known.names + names, known.descriptions + descriptions
        if lat is None:
            lat, lon, prec = known.lat, known.lon, prec or known.precision_km
    elif sid not in names:
        names = (*names, sid)
    return GazetteerSite(sid, str(e.get("name", known.name if known else sid)), country, kind,
                         tuple(dict.fromkeys(names)), tuple(dict.fromkeys(descriptions)),
                         lat, lon, prec, str(e.get("note", known.note if known else "")))


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

__all__ = ["ACTIVITIES", "ACTIVITY_EVENT", "ACTIVITY_PARTS", "BUILTIN_GAZETTEER",
           "COUNTRY_GOVERNMENT", "PART_WORDS", "SITE_EVENTS", "GazetteerSite", "SiteType",
           "activities", "countries", "cues", "gazetteer", "gazetteer_site", "match_source",
           "part_words", "site_events", "site_type", "site_types", "sources"]
