"""Telling what an objection is about (its theme) and which earlier objections say the same thing.

Plain text similarity with no heavy dependency: words lower-cased, stop words dropped,
endings trimmed, compared as sets and as character trigrams. Callers use only
`theme_of` and `best_match`, so a better matcher can replace this one behind them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

OTHER = "other"
SAME_THRESHOLD = 0.45
WORDS_WEIGHT = 0.6  # of a similarity: the words in common; the rest is their trigrams
# Sharing no word, a text scores at most the trigrams' part: with these weights, never enough.
WORDLESS_NEVER_MATCH = 1 - WORDS_WEIGHT < SAME_THRESHOLD

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can cannot could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours
    vs versus said says say told tell customer customers client clients prospect prospects buyer buyers
    really quite still even much many lot lots get got us
    """.split()  # noqa: SIM905 - a paragraph of words reads better than a list of 150 strings
)
SUFFIXES = (
    "ations",
    "ation",
    "ings",
    "ing",
    "ness",
    "ments",
    "ment",
    "ives",
    "ive",
    "ies",
    "ied",
    "ers",
    "er",
    "ed",
    "es",
    "ly",
    "s",
    "e",
)
WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A new objection is compared with a few hundred representatives of its theme at most (see
# objections.representatives): keep the words of those of about ten busy themes, no more. An
# entry with its trigrams is about 5 kB; the 20,000 once kept for whole months took 100 MB.
CACHED_TEXTS = 4096


@dataclass(frozen=True)
class Candidate:
    """An earlier objection that a new one may join."""

    id: int
    group_id: int
    text: str


@lru_cache(maxsize=CACHED_TEXTS)
def _words(text: str) -> tuple[str, ...]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return tuple(_stem(w) for w in WORD.findall(folded) if w not in STOP_WORDS)


def words(text: str) -> list[str]:
    """The words that carry meaning, with their endings trimmed: "cheaper quotes" -> ["cheap", "quot"]."""
    return list(_words(text))


def _stem(word: str) -> str:
    if len(word) <= 4 or word.isdigit():
        return word
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def theme_of(text: str, themes: Mapping[str, Sequence[str]]) -> str:
    """The theme whose cue words the text uses most (the first listed wins a tie), or `other`."""
    said = words(text)
    joined = f" {' '.join(said)} "
    best, best_score = OTHER, 0
    for theme, cues in themes.items():
        score = 0
        for cue in cues:
            cue_words = words(cue)
            if cue_words and f" {' '.join(cue_words)} " in joined:
                score += 1
        if score > best_score:
            best, best_score = theme, score
    return best


def similarity(a: str, b: str) -> float:
    """0 (nothing in common) to 1 (the same words)."""
    (wa, ta), (wb, tb) = _shape(a), _shape(b)
    if not wa or not wb:
        return 0.0
    jaccard = len(wa & wb) / len(wa | wb)
    dice = 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0
    return WORDS_WEIGHT * jaccard + (1 - WORDS_WEIGHT) * dice


@lru_cache(maxsize=CACHED_TEXTS)
def _shape(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The word set and the character trigrams of the words, sorted, of a text."""
    distinct = frozenset(_words(text))
    padded = f"  {' '.join(sorted(distinct))} "
    return distinct, frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def best_match(text: str, candidates: Sequence[Candidate]) -> Candidate | None:
    """The earlier objection most like `text`, if any is alike enough to count as the same:
    the highest score, then the earliest."""
    wa, ta = _shape(text)
    best: tuple[float, int] | None = None
    found: Candidate | None = None
    for candidate in candidates:
        wb, tb = _shape(candidate.text)
        # Most of a theme's objections share no word with a new one: not scored (a cheap test).
        if WORDLESS_NEVER_MATCH and wa.isdisjoint(wb):
            continue
        # The most the trigrams could add: a candidate that cannot reach the threshold, or beat
        # the best so far, is not scored (a new objection meets hundreds of them). Written as
        # `similarity` computes, so that the bound is never below the score, to the last bit.
        jaccard = len(wa & wb) / len(wa | wb)
        trigrams = 2 * min(len(ta), len(tb)) / (len(ta) + len(tb)) if ta and tb else 0.0
        reach = WORDS_WEIGHT * jaccard + (1 - WORDS_WEIGHT) * trigrams
        if reach < SAME_THRESHOLD or (best is not None and reach < best[0]):
            continue
        score = similarity(text, candidate.text)
        if score >= SAME_THRESHOLD and (best is None or (score, -candidate.id) > best):
            best, found = (score, -candidate.id), candidate
    return found
