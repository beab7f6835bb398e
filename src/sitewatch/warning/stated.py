"""What a report itself concludes about a coming launch and an engine test.

Reports carry a judgement ("a launch could come as soon as next week", "no signs of launch
preparations"); :func:`stated_judgement` reads it so sitewatch's own assessment can be set
beside it.

Launch: ``imminent`` (a launch expected within days or weeks: a notice or announced window,
the vehicle on the pad, preparations under way, "within days"), ``possible`` (a launch may
come, could come by some date, cannot be ruled out; a site readied for future launches;
preparations seen but "not imminent"), ``unlikely`` (no signs or indications of preparations,
standby, routine or low-level activity, "not going to occur over the next few weeks"),
``no_evidence`` (the text makes no judgement about a *coming* launch: construction or
dismantling only, an engine-test story, a report on a launch that already happened).
Engine test: ``recent_test`` (a test that has happened: burned vegetation, scorch marks, a
test "conducted"), ``preparations`` (a test being prepared), ``unlikely`` (no signs of tests
or of preparations), ``no_evidence``.

How analysts write, and so how this reads:

* **The title and the lede carry the judgement, and so do the summary or key findings.**
  Each sentence that judges votes; a headline votes three times, the lede (the first two full
  sentences) and summary / key-finding / concluding sentences twice, body sentences once.
* **A judgement is a predicate, not a noun.**  "preparations are under way", "is preparing to
  launch", "could launch by the end of the year" judge; "launch preparations" named in
  passing ("it is harder to spot launch preparations") does not.
* **A report written after the event judges what happened.**  Mentions of a launch that
  already took place ("launched", "the failed launch", "since the launch", "post-launch")
  and of the site's name ("Sohae Satellite Launching Station", "launch pad") are not talk of
  a coming launch, so a post-launch or construction-only report makes no launch judgement
  unless another sentence looks ahead.  A test that happened is ``recent_test``; "no signs of
  recent tests" in the headline outweighs a past test mentioned in the body.
* **Clauses.**  A sentence is read clause by clause ("preparations are under way, although
  there are no signs of an imminent launch" is ``possible``; "not imminent" alone is
  ``unlikely``); a clause that only says the writer cannot tell ("it remains unclear whether")
  judges nothing; rumours the text reports and rebuts ("there were reports that ..., but the
  imagery instead shows ...") count against them.

When no sentence judges, the claims decide: a declared notice means ``imminent``, reported
preparations ``possible``, a quiet site ``unlikely``; a recent test at a stand votes
``recent_test`` beside the sentences.  Claims only judge the events their site's type allows
(``lexicon.site_events``): a quiet engine-test site says nothing about a launch.  The
judgement is per report, not per site: a report about an Iranian spaceport that mentions a
North Korean launch in passing is judged on what it says of the coming Iranian launch.

The rules were written while reading the 45 real reports in ``../shared/data/reports`` (so
their figures there are in-sample) and checked on ``tests/data/collateral_holdout``, never
tuned on; see ``benchmarks/bench_reports.py``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from sitewatch.warning import lexicon
from sitewatch.warning.timeexpr import find_times

if TYPE_CHECKING:
    from sitewatch.warning.collateral import Claim

#: Weights by where a sentence stands: analysts put the judgement in the title and lede.
HEADLINE_WEIGHT = 3.0
LEDE_WEIGHT = 2.0
CONCLUSION_WEIGHT = 2.0
BODY_WEIGHT = 1.0
#: Which level wins a tie of weighted votes.
LAUNCH_TIES = ("imminent", "possible", "unlikely")
ENGINE_TIES = ("recent_test", "unlikely", "preparations")
#: Recent-test claims older than this (days before publication) are not "recent".
RECENT_DAYS = 60
#: A sentence whose every date lies this long before publication is background.
BACKGROUND_DAYS = 365

_I = re.I

# --- what a sentence is about ------------------------------------------------------------

#: Launch words that name a place or a thing, not an event ("Sohae Satellite Launching
#: Station", "launch pad", "launch vehicle").
_SITE_NOUN = re.compile(
    r"\blaunch(ing)?[- ]?(station|site|ground|pads?|facilit(y|ies)|cent(er|re)|complex|tower|"
    r"gantry|vehicles?|area|positions?|control|stands?|platforms?|systems?|bunker|ways|"
    r"operations?|capabilit(y|ies)|technology|programs?|programmes?)\b|"
    r"\blaunchpads?\b|\bsubmarine-launched\b|\blaunchers?\b", _I)
#: A launch that already happened: it is reported, not judged.
_PAST_LAUNCH = re.compile(
    r"\b(?<!be )(?<!been )launched\b|"
    r"\b(since|after|following) (the |its |this |that |a |an )?"
    r"(\w+[- ]){0,4}(launch(es)?|test[- ]?launch(es)?|tests?)\b(?! (of|from|window|date))|"
    r"\b(previous|prior|last|latest|failed|successful|recent|earlier|first|past|abortive|"
    r"unsuccessful|botched)\b ((\w+|\w+-\w+)[- ]){0,3}launch(es)?\b|"
    r"\bpost-launch\b|\b(last|this past) (\w+ )?(year|month|week)'s (\w+[- ]){0,3}launch\b|"
    r"\b(\w+)'s (\w+[- ]){0,3}(failed )?launch\b(?= (was|failed|ended|took|broke|exploded))",
    _I)
_LAUNCH_EVENT = re.compile(
    r"\b(launch(es|ing)?|lift-?off|blast-?off|test-fir(e|ing)|(missile|rocket|slbm|icbm|"
    r"pop-up|flight|ejection) tests?|test launch(es)?|(satellite|rocket|missile) "
    r"(attempt|shot)|fire (a|an|another) (\w+ ){0,2}(missile|rocket)|(another|next|new|"
    r"second|third|fourth|fresh) (\w+ ){0,2}attempt)\b", _I)
_ENGINE_EVENT = re.compile(
    r"\b((engine|motor|combustion)s?[- ]((\w+|\w+-\w+)[- ]){0,1}(tests?|testing|test-?fir\w*|"
    r"firings?|burns?)|(tests?|testing|tested|test-fir\w*|test-fired|firings?) (of )?"
    r"((a|an|the|its|large|new|\w+-fuel(ed)?|solid|liquid|rocket|high-thrust|powerful|"
    r"more|capable|larger) ){0,4}(rocket )?(engines?|motors?)|static[- ]fire|ground tests?|"
    r"(engine|motor) (test )?stand|vets)\b", _I)

# --- what a clause judges -----------------------------------------------------------------

#: A launch notice or an announced window: decides ``imminent`` by itself.
_DAYNUM = r"\d{1,2}(st|nd|rd|th)?"
_NOTICE = (
    r"\bnotams?\b", r"\bnotices? to (airmen|mariners|air missions)\b",
    r"\bnavigation(al)? warnings?\b", r"\bdanger (zones?|areas?) (for|from|between)\b",
    r"\b(notif\w+|inform\w+|warned|told)\b[^.;]{0,25}\b(imo|international maritime|"
    r"coast ?guard|maritime (authorit|organi)\w+|aviation authorit\w+|u\.?n\.? agencies|"
    r"icao|japan)\b",
    r"\blaunch (window|date)\b", r"\btarget date\b", r"\bslated (for|to)\b",
    r"\b(is|are|was|were) scheduled (to|for)\b", r"\b(is|are) due to (launch|lift|take place|occur|"
    r"be launched)\b", r"\bis to (occur|take place|lift off)\b",
    r"\b(will|would|plans? to|intends? to|is to|set to) (launch|lift off|blast off|put|send|"
    r"place|fire)\b[^.;]{0,80}\b(between \w+\.? " + _DAYNUM + r"|between " + _DAYNUM
    + r" and|from \w+\.? " + _DAYNUM + r" to|\w+ " + _DAYNUM + r"\s*[-–]\s*(\w+ )?"
    + _DAYNUM + r"\b|in the next \d+ days|within the next \d+ days)",
)
#: A launch expected within days or weeks (a modal before it makes it only possible).
_TIMING = (
    r"\bimminent(ly)?\b", r"\b(impending|pending)\b", r"\blooms?\b", r"\bon the verge of\b",
    r"\bpoised to\b", r"\bany day\b", r"\bin the offing\b", r"\bcountdown\b", r"\bheats? up\b",
    r"\bas (soon|early) as\b", r"\bwithin (days|hours|a (few )?(days?|weeks?)|\w+ (days|weeks))\b",
    r"\b(in|over|during) the (coming|next) (\w+ )?(days|weeks|week)\b",
    r"\bnext (few )?(days|week)\b", r"\b(early |later |late )?(this|next) month\b",
    r"\bthis week\b", r"\b(closer|step closer|moves closer) to\b",
    r"\b(final|last-minute) (stages? of )?preparations?\b",
    r"\b(started|starting|begun|begins?|beginning) (its |the )?process of launching\b",
)
#: Preparations for a launch said to be under way (a hedge makes them only possible).
_PREPARING = (
    r"\b(is|are|was|were|be|been|now|actively|still)\s+(actively )?(preparing|readying|"
    r"getting ready|gearing up)\s+(to launch|for (a|an|the|its|another|this) (\w+[- ]){0,3}"
    r"launch|(a|an|the|its) (\w+[- ]){0,3}(rocket|missile|satellite)? ?launch|to (fire|"
    r"test-fire)|an attempt)\b",
    r"^\W*(\w+[.:]? ){1,5}(is |are )?(preparing|readying) (to launch|(a |an |the |its )?"
    r"(\w+[- ]){0,3}(rocket |missile |satellite )?launch)\b",
    r"\bpreparing (an attempt|to launch)\b",
    r"\bpreparations?\b[^.;]{0,60}\b(are|is|were|was|remain|appear to be)\s+(now )?"
    r"(under ?way|continuing|ongoing|in progress|advancing|accelerating|intensifying)\b",
    r"\bpreparations? (continu\w+|under ?way|heat\w* up|intensif\w+)\b",
    r"\bactively preparing\b",
)
_MODAL = re.compile(r"\b(could|may|might|can)\b", re.I)
#: The vehicle at the pad or being fuelled (read on the unmasked clause).
_VEHICLE = r"(rocket|(first |second |third )?stages?|booster|launch vehicle|missile|slv)"
_PAD = r"(the|a|its) (launch ?pad|pad|gantry( tower)?)"
_ON_PAD = (
    r"\b(install\w*|erect\w*|wheel\w*|roll\w*|bring|brought|mov\w*|transferr\w*|stack\w*|"
    r"mount\w*|plac\w*)\b[^.;]{0,50}\b" + _VEHICLE + r"\b[^.;]{0,40}\b(on|onto|to|at) "
    + _PAD + r"\b",
    r"\b(install\w*|erect\w*)\b[^.;]{0,20}\b(on|onto) " + _PAD + r"\b",
    r"\b" + _VEHICLE + r"\b[^.;]{0,30}\b(wheeled|rolled|moved|installed|erected|placed|"
    r"positioned|stacked|standing|sits?|is)( out)? (on|onto|to|at) " + _PAD + r"\b",
    r"\brolled out\b", r"\bin position for (fuel\w*|launch)\b",
    r"\b(fuel-filling|propellant (loading|filling)|fuel(l)?ing) (process|is|are|of the)\b",
    r"\b(activity|level of activity)\b[^.;]{0,60}\b(prior to|before|ahead of) (a|the|previous) "
    r"(\w+ ){0,2}launch(es)?\b",
)
#: "No construction activity": quiet building work, not a quiet launch site.
_NO_WORK = re.compile(r"\b(no|any|little) (\w+ ){0,2}(construction|building|excavation) "
                      r"(activity|work)\b", re.I)
#: Taking a site apart is not putting a rocket on it.
_DISMANTLE = re.compile(r"\b(dismantl\w*|raz(ed|ing)|demolish\w*|taken apart|take apart|"
                        r"tearing down|torn down|removed)\b", re.I)
#: A launch that may come: modal verbs, possibility, future dates, future launches.
_POSSIBLE = (
    r"\b(could|may|might|can)\s+(\w+\s+)?(launch|fire|conduct|carry out|attempt|come|occur|"
    r"take place|embark|test|be (preparing|planning|readying|ready))\b",
    r"\b(is|be|remains?) (a|an) (distinct |real |strong )?possibility\b",
    r"\bpossibility of\b", r"\b(cannot|can't|could not|couldn't) be (ruled|excluded)\b",
    r"\bnot (ruling|rule) out\b", r"\bmay (well )?be preparing\b", r"\bplausible\b",
    r"\bby the end of (this|the|next) (year|month)\b", r"\bby (the )?end of \d{4}\b",
    r"\b(later|early|late) (this|next) year\b", r"\bin (the (first|second) half of )?(19|20)\d\d\b",
    r"\bthis (spring|summer|autumn|fall|winter)\b", r"\bin the (coming|next) (few )?months\b",
    r"\bwithin months\b", r"\bfuture (launch|test|attempt)\w*\b",
    r"\b(next|another|new|second|third) (\w+ ){0,2}(launch|attempt|test)(es|s)?\b",
    r"\bready to (move forward|launch|conduct|resume)\b",
    r"\b(restart|resum|reviv)\w* (its )?(\w+ ){0,2}(launch|test)\w*\b",
    r"\bprobable\b", r"\blikely\b", r"\bexpect\w*\b", r"\banticipated\b", r"\bplanning\b",
    r"\bin preparation for\b", r"\b(longer|long)-term preparations?\b",
    r"\bpreparations? for (an? )?(upcoming|future|new|another)\b",
    r"\bpreparing (its|the|an?) (existing |new |old )?(launch )?(pad|site|facility) for\b",
    r"\b(is|are) (making|carrying out) preparations\b", r"\bremains to be seen\b",
    r"\bprepar(ing|es|ed) (for|to)\b", r"\breadying\b", r"\bpossibility that\b",
    r"\bin the future\b", r"\bfor (future )?launches\b", r"\b(plans?|intends?) to launch\b",
)
#: No coming launch: the text says there are no signs, or only routine activity.
_UNLIKELY = (
    r"\bno (\w+ ){0,2}(signs?|indications?|indicators?|evidence)\b(?! of (additional |further "
    r"|new )?(dismantl|damage|construction|change))",
    r"\bno (new )?(signs?|indications?) point\b",
    r"\bnot (going to|expected to|likely to|about to) (occur|happen|launch|take place|come)\b",
    r"\bunlikely\b", r"\bdormant\b", r"\bstandby\b", r"\bon hold\b",
    r"\b(low|lower)[- ]level (of )?activit(y|ies)\b", r"\broutine (activity|maintenance)\b",
    r"\bpost-launch (maintenance|clean-?up|repairs?)\b",
    r"\bno (\w+ ){0,2}preparations?\b", r"\bno (\w+ ){0,2}(activity|activities)\b(?! (related|"
    r"at|around))",
    r"\bno (\w+ ){0,2}(launch|test|rocket|missile)\w* (or|and|nor) (\w+[- ]){1,4}(activity|"
    r"activities|preparations?|tests?|testing|movement)\b",
    r"\bnothing\b[^.;]{0,50}\b(suggests?|indicates?|points? to|shows?)\b",
    r"\bcannot (support|conduct|host|be used)\b", r"\bout of (commission|service)\b",
    r"\bno (new |further |imminent )?launch\b(?! (pad|site|station|vehicle))",
)
#: A byline of names only ("Jane Doe and John Roe").
_BYLINE = re.compile(r"^\W*([A-Z][\w.'’-]*,? ){1,3}(and|&) ([A-Z][\w.'’-]* ?){1,3}\W*$")
#: The state of a site in a headline ("Quiet at the Pad", "Routine Activity").
_SITE_STATE = re.compile(r"\b(quiet|idle|dormant|standby|on hold|(low|lower)[- ]level (of )?"
                         r"activit(y|ies)|routine activit(y|ies)|no activity|inactive)\b", _I)
#: The writer says they cannot tell: such a clause judges nothing.
_UNKNOWN = re.compile(
    r"\b(unclear|uncertain|unknown|(is|are|was|were|it's|remains?) not (yet )?(clear|certain|"
    r"known)|not (possible|able) to (determine|tell|say)|(did|does|do) not (say|specify|give|"
    r"disclose|know) (when|whether|how|if)|no way to (be sure|tell|know)|(hasn't|has not|"
    r"have not|haven't) (yet )?(concluded|determined|decided)|(insufficient|too low) "
    r"(resolution )?to (reach|make|determine)|difficult to (determine|tell|spot|say)|too "
    r"(early|soon) to (tell|say))\b", _I)
#: A rumour the text reports ("there were reports that ...", "speculation that ...").
_RUMOUR = re.compile(r"\b(there (were|have been|are) reports|speculation|rumou?rs?|"
                     r"(media|press) reports)\b", _I)
_REBUT = re.compile(r"\b(but|however|instead|rather|contrary)\b", _I)
#: Extra negators for clauses ("rather than preparations", "instead of a launch").
_NEGATE_MORE = (re.compile(r"\brather than\b", _I), re.compile(r"\binstead of\b", _I))
#: A past event reported in past perfect or as a promise made: background, not judgement.
_BACKGROUND = re.compile(r"\bhad (been )?(anticipated|expected|planned|promised|pledged)\b|"
                         r"\b(promised|pledged|vowed)\b[^.;]{0,60}\bwould\b", _I)

# Engine tests.
_TEST_HAPPENED = (
    r"\b(has|have|had) (been )?(test(ed|ing)|conducted|carried out|held|performed)\b",
    r"\b(conducted|carried out|performed|held|staged)\b[^.;]{0,60}\b(test|firing|burn)",
    r"\btested\b", r"\btest-fired\b",
    r"\b(appears?|appeared|seems?) to have (taken place|occurred|been (conducted|carried out))\b",
    r"\b(took|has taken|had taken|have taken) place\b", r"\boccurred\b",
    r"\b(burn(ed|t)[- ](off )?vegetation|vegetation (was |has been )?(burn|scorch)\w*|"
    r"scorch\w*|ground scarring|burn scars?|exhaust (marks?|plume|stain\w*)|charred|"
    r"stained)\b", r"\baftermath of\b", r"\bconfirm\w* (a |the )?(successful )?(\w+[- ]){0,4}"
    r"test\b", r"\b(the|this|that) (latest|recent|reported|successful) (\w+[- ]){0,4}"
    r"(test|firing)\b", r"\brecently conducted\b", r"\bsuccessful test\b",
)
_TEST_PREPARED = (
    r"\bprepar\w*\b", r"\b(restart|resum)\w*\b", r"\bmov\w* (towards?|toward)\b",
    r"\bupcoming\b", r"\bfuture test\b", r"\bnext test\b",
    r"\b(another|new) (engine )?test\b(?! stand)",
    r"\bready to (test|resume)\b",
    r"\b(could|may|might) (be )?(preparing|conduct\w*|carry out|hold)\b",
    r"\b(could|may|might) be (a|an) (\w+ ){0,2}test\b",
)
_TEST_UNLIKELY = (
    r"\bno (\w+ ){0,2}(signs?|indications?|indicators?|evidence)\b(?! of (additional |further "
    r"|new )?(dismantl|damage|construction|change))",
    r"\b(have|has) not been any\b", r"\bunlikely\b", r"\bstandby\b", r"\bdormant\b",
    r"\bno (\w+[- ]){0,2}(activity|activities|preparations?|movement)\b(?! at the launch)",
    r"\bno (\w+ ){0,2}(launch|test|rocket|missile)\w* (or|and|nor) (\w+[- ]){1,4}(activity|"
    r"activities|preparations?|tests?|testing|movement)\b",
    r"\bnothing\b[^.;]{0,50}\b(suggests?|indicates?|points? to|shows?)\b",
    r"\bcannot (support|conduct|host|be used)\b", r"\bout of (commission|service)\b",
    r"\b(idle|quiet|inactive)\b", r"\bno (new |further |recent )?(\w+[- ])?(engine|motor) "
    r"(tests?|firings?)\b", r"\b(remains?|remained) (unchanged|quiet|idle|dormant)\b",
    r"\bnot (expected|imminent|likely)\b",
)
_CONCLUSION = re.compile(r"\b(taken together|bottom line|in sum|overall|we assess|we judge|"
                         r"in short|in conclusion|to conclude|all told|on balance|"
                         r"(this|the) (report|analysis) concludes)\b", _I)
_SECTION = re.compile(r"^\W*(summary|key (findings|judgments|judgements|points|takeaways)|"
                      r"conclusions?|bottom line|assessment|overview)\W*$", _I)
#: A byline or date line is not a headline.
_DATELINE = re.compile(r"^\W*(by|date|posted|published|updated|week ending)\b|\b(published|"
                       r"posted|updated)\b[: ]|\b\d{1,2}:\d\d\b", _I)
_DATE_PREFIX = re.compile(r"^\s*date \d{4}-\d\d-\d\d\s*")
_END = re.compile(r"[.!?\"”’']\s*$")


@lru_cache(maxsize=32)
def _union(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), _I)


def _first(patterns: Sequence[str], text: str) -> re.Match[str] | None:
    return _union(tuple(patterns)).search(text)


def _negated_at(clause: str, pos: int) -> bool:
    """A negation in the 50 characters before ``pos`` and within the clause."""
    before = clause[max(0, pos - 50):pos]
    return any(rx.search(before) for rx in (*lexicon.cues()["negation"], *_NEGATE_MORE))


def _clauses(sentence: str) -> list[str]:
    """The sentence cut at the words that open a new scope ("but", "although", ";")."""
    parts = [sentence]
    for rx in lexicon.cues()["scope_break"]:
        parts = [p for part in parts for p in rx.split(part) if p and p.strip()]
    return parts or [sentence]


# --- where a sentence stands --------------------------------------------------------------

def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", _DATE_PREFIX.sub("", s)).strip().lower()


def _headline_like(s: str) -> bool:
    s = _DATE_PREFIX.sub("", s).strip()
    words = len(s.split())
    return 4 <= words <= 30 and not _END.search(s) and not s.startswith("•") \
        and not _DATELINE.search(s) and not _BYLINE.match(s)


def weights(sentences: Sequence[str], title: str | None = None) -> list[float]:
    """How much each sentence's judgement counts: headline 3, lede and summary 2, body 1.

    The headline is the sentence that repeats ``title`` or one of the first two
    headline-like lines (no closing full stop) among the first eight; the lede is the first
    two full sentences of twelve words or more; a summary is a bullet point, a sentence in a
    "Summary" / "Key findings" section or one that says it concludes ("taken together").
    A question headline ("Is X testing engines?") asserts nothing and counts as body.
    """
    t = _norm(title or "")
    out = [BODY_WEIGHT] * len(sentences)
    heads = 0
    lede = 0
    section_left = 0
    for i, s in enumerate(sentences):
        n = _norm(s)
        question = s.rstrip().endswith("?")
        if i < 8 and n and not question and (
                (t and (n == t or (len(t) > 30 and n.startswith(t[:60]))))
                or (heads < 2 and _headline_like(s))):
            out[i] = HEADLINE_WEIGHT
            heads += 1
            continue
        if _SECTION.match(s.strip()):
            section_left = 6
            continue
        if section_left > 0 or s.lstrip().startswith("•") or s.rstrip().endswith("•") \
                or _CONCLUSION.search(s):
            out[i] = CONCLUSION_WEIGHT
        if i < 14 and lede < 2 and len(s.split()) >= 12 and _END.search(s):
            out[i] = max(out[i], LEDE_WEIGHT)
            lede += 1
        section_left -= 1
    return out


# --- what a sentence judges ---------------------------------------------------------------

def _is_background(sentence: str, published: date | None) -> bool:
    """Past perfect, a promise made, or every date long before publication."""
    if _BACKGROUND.search(sentence):
        return True
    if published is None:
        return False
    times = find_times(sentence, published)
    ends = [t.end for t in times if t.end is not None]
    return bool(ends) and all((published - e).days > BACKGROUND_DAYS for e in ends)


def _cue(patterns: Sequence[str], text: str) -> re.Match[str] | None:
    return _first(patterns, text) if text else None


def _launch_clause(clause: str, headline: bool = False) -> str | None:
    """``notice`` / ``imminent`` / ``not_imminent`` / ``possible`` / ``unlikely`` / None."""
    masked = _ENGINE_EVENT.sub(" ", _PAST_LAUNCH.sub(" ", _SITE_NOUN.sub(" ", clause)))
    on_pad = None if _DISMANTLE.search(clause) else _cue(_ON_PAD, clause)
    notice = _cue(_NOTICE, clause)
    if not (_LAUNCH_EVENT.search(masked) or on_pad or notice):
        # A headline that gives the site's state ("Quiet at the Pad") judges a launch.
        return "unlikely" if headline and _SITE_STATE.search(clause) else None
    if _UNKNOWN.search(clause):
        return None
    if re.search(r"\b(not|n't) (ruling|rule|be ruled) out\b|\bcannot be ruled out\b", clause,
                 _I):
        return "possible"
    if notice:
        # "has not issued a NOTAM" only says one sign is missing: no judgement.
        return None if _negated_at(clause, notice.start()) else "notice"
    if _cue(_UNLIKELY, masked):
        return "unlikely"
    if on_pad:
        return "not_imminent" if _negated_at(clause, on_pad.start()) else "imminent"
    m = _cue(_TIMING, masked)
    if m:  # "could launch as soon as next week" is still a launch within days
        return "not_imminent" if _negated_at(masked, m.start()) else "imminent"
    m = _cue(_PREPARING, masked)
    if m:  # "may be preparing to launch" is only possible
        if _negated_at(masked, m.start()):
            return "not_imminent"
        return "possible" if _MODAL.search(masked[:m.end()]) else "imminent"
    m = _cue(_POSSIBLE, masked)
    if m:
        return "unlikely" if _negated_at(masked, m.start()) else "possible"
    return None


def _launch_sentence(sentence: str, headline: bool = False) -> str | None:
    """The launch level one sentence states, its clauses combined."""
    if _RUMOUR.search(sentence):
        return "unlikely" if _REBUT.search(sentence) else None
    if any(rx.search(sentence) for rx in lexicon.cues()["hypothetical"]):
        return None  # "should the North decide to launch, the first signs would be ..."
    votes = {v for c in _clauses(sentence) if (v := _launch_clause(c, headline))}
    if not votes:
        return None
    if "notice" in votes:
        return "notice"
    if "not_imminent" in votes:
        # "preparations are under way, though no launch is imminent" is possible.
        return "possible" if votes & {"possible", "imminent"} else "unlikely"
    if "unlikely" in votes and "possible" in votes:
        # "no preparations at the pad now, but a launch could come within months".
        return "possible"
    for level in ("imminent", "unlikely", "possible"):
        if level in votes:
            return level
    return None


def _engine_clause(clause: str) -> str | None:
    """``recent_test`` / ``preparations`` / ``unlikely`` / ``no_recent`` / None."""
    if not _ENGINE_EVENT.search(clause):
        return None
    if _UNKNOWN.search(clause) and not _first(_TEST_UNLIKELY, clause):
        return None
    m = _first(_TEST_UNLIKELY, clause)
    if m:
        happened = _first(_TEST_HAPPENED, clause[m.end():])
        prepared = _first(_TEST_PREPARED, clause[m.end():])
        if prepared and not happened:
            return "unlikely"  # "no signs of preparations for a test"
        return "no_recent" if happened else "unlikely"
    m = _first(_TEST_PREPARED, clause)
    if m:
        return "unlikely" if _negated_at(clause, m.start()) else "preparations"
    m = _first(_TEST_HAPPENED, clause)
    if m:
        return "no_recent" if _negated_at(clause, m.start()) else "recent_test"
    return None


def _engine_sentence(sentence: str) -> str | None:
    votes = {v for c in _clauses(sentence) if (v := _engine_clause(c))}
    if not votes:
        return None
    if "no_recent" in votes:
        # "no test has taken place since ...; the activity is likely preparations" is
        # preparations; "no recent tests" alone is unlikely.
        return "preparations" if "preparations" in votes else "unlikely"
    for level in ("recent_test", "unlikely", "preparations"):
        if level in votes:
            return level
    return None


def stated_judgement(sentences: Sequence[str], claims: Sequence[Claim],
                     published: date | None, *, title: str | None = None
                     ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({"launch": level, "engine_test": level}, {event: [sentences that say so]})``.

    ``sentences`` are the report's sentences in order (the headline first when the text has
    one); ``title`` the document's title, so the headline is recognised when repeated;
    ``published`` tells background (long before publication) from news.
    """
    weight = weights(sentences, title)
    launch: defaultdict[str, float] = defaultdict(float)
    engine: defaultdict[str, float] = defaultdict(float)
    why: dict[str, list[tuple[str, str]]] = {"launch": [], "engine_test": []}
    for s, w in zip(sentences, weight, strict=True):
        if _is_background(s, published):
            continue
        lv = _launch_sentence(s, headline=w >= HEADLINE_WEIGHT)
        if lv:
            launch[lv] += w
            why["launch"].append(("imminent" if lv == "notice" else lv, s))
        ev = _engine_sentence(s)
        if ev:
            engine[ev] += w
            why["engine_test"].append((ev, s))
    fallback, fallback_engine = _claim_votes(claims, published, launch, engine, why)
    # A launch notice or announced window decides: the launch is coming.
    if launch.pop("notice", 0):
        launch = defaultdict(float, imminent=1.0)
    launch_level = _pick(launch, LAUNCH_TIES) or \
        _pick(fallback, ("possible", "unlikely")) or "no_evidence"
    engine_level = _pick(engine, ENGINE_TIES) or \
        _pick(fallback_engine, ("preparations", "unlikely")) or "no_evidence"
    out_why = {ev: list(dict.fromkeys(s for lv, s in why[ev] if lv == level))[:5]
               for ev, level in (("launch", launch_level), ("engine_test", engine_level))}
    return {"launch": launch_level, "engine_test": engine_level}, out_why


def _claim_votes(claims: Sequence[Claim], published: date | None,
                 launch: defaultdict[str, float], engine: defaultdict[str, float],
                 why: dict[str, list[tuple[str, str]]]
                 ) -> tuple[Counter[str], Counter[str]]:
    """Claims that judge by themselves (a notice, a recent test) vote beside the sentences;
    the others are a fallback for texts where no sentence judges."""
    fallback: Counter[str] = Counter()
    fallback_engine: Counter[str] = Counter()
    voted = {ev: {s for _, s in pairs} for ev, pairs in why.items()}
    for c in claims:
        if c.site is None or c.background:
            continue
        # A site whose type has no launch (an engine-test site) gets no launch judgement
        # from claims, and one without an engine-test role none on engine tests.
        events = lexicon.site_events(c.site)
        if c.activity == "launch_notice" and not c.negated and "launch" in events:
            if c.sentence not in voted["launch"]:
                launch["imminent"] += 1
                why["launch"].append(("imminent", c.sentence))
        elif c.activity in ("engine_test_conducted", "burn_scar") and not c.negated \
                and c.part in ("engine_test_stand", None) and _recent(c, published) \
                and "engine_test" in events:
            if c.sentence not in voted["engine_test"]:
                engine["recent_test"] += 1
                why["engine_test"].append(("recent_test", c.sentence))
        elif c.activity in ("launch_preparations", "transfer_structure_moved",
                            "service_arms_open", "fuel_activity", "railcars_arrived"):
            if "launch" in events and not _engine_only(c.sentence):
                fallback["unlikely" if c.negated else "possible"] += 1
        elif c.activity in ("shelter_moved", "engine_test_preparations"):
            if "engine_test" in events:
                fallback_engine["unlikely" if c.negated else "preparations"] += 1
        elif c.activity == "no_activity" and not c.negated \
                and not _DISMANTLE.search(c.sentence) and not _NO_WORK.search(c.sentence):
            # "no further dismantling", "no construction activity" say nothing of launches.
            engine_stand = c.part == "engine_test_stand" or _engine_only(c.sentence) \
                or "launch" not in events
            if engine_stand and "engine_test" in events:
                fallback_engine["unlikely"] += 1
            elif not engine_stand and "launch" in events:
                fallback["unlikely"] += 1
    return fallback, fallback_engine


def _engine_only(sentence: str) -> bool:
    """The sentence is about an engine test and names no coming launch."""
    masked = _PAST_LAUNCH.sub(" ", _SITE_NOUN.sub(" ", _ENGINE_EVENT.sub(" ", sentence)))
    return bool(_ENGINE_EVENT.search(sentence)) and not _LAUNCH_EVENT.search(masked)


def _pick(votes: Mapping[str, float], order: tuple[str, ...]) -> str | None:
    """The level with most votes; ties go to the first in ``order``."""
    votes = {k: v for k, v in votes.items() if v > 0}
    if not votes:
        return None
    top = max(votes.values())
    return next((level for level in order if votes.get(level) == top), None)


def _recent(c: Claim, published: date | None) -> bool:
    t = c.time or {}
    if published and t.get("end"):
        return (published - date.fromisoformat(t["end"])).days <= RECENT_DAYS
    days = t.get("days")
    return not days or -days[1] <= RECENT_DAYS


__all__ = ["stated_judgement", "weights"]
