"""How objections are grouped into themes by what they say: word overlap, or meaning (a
sentence-embedding model that comes with the install). Both sit behind one small interface.

A theme keeps a profile, a running summary of its objections; a new objection joins the
theme whose profile it resembles most, if it resembles it enough (`threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from handlers.matching import words

Profile = dict[str, Any]


class Grouper(Protocol):
    name: str
    threshold: float

    def similarity(self, text: str, profile: Profile) -> float:
        """How much `text` resembles the objections summed up in `profile` (0 to 1)."""
        ...

    def absorb(self, profile: Profile, texts: Sequence[str]) -> Profile:
        """`profile` with `texts` added to it (a new theme starts from an empty profile)."""
        ...

    def prepare(self, texts: Sequence[str]) -> None:
        """Do ahead, outside any write transaction, the work `absorb` will need for `texts`."""
        ...


class WordGrouper:
    """Compares the words (stemmed, stop words dropped) and word pieces of an objection with a
    theme's most frequent ones, by cosine similarity. No dependency beyond the standard library."""

    name = "words"
    threshold = 0.25
    kept_terms = 150

    def similarity(self, text: str, profile: Profile) -> float:
        terms: Mapping[str, float] = profile.get("terms", {})
        if not terms:
            return 0.0
        mine = _features(text)
        dot = sum(weight * terms.get(term, 0.0) for term, weight in mine.items())
        if not dot:
            return 0.0
        return dot / (_norm(tuple(mine.values())) * _norm(tuple(terms.values())))

    def absorb(self, profile: Profile, texts: Sequence[str]) -> Profile:
        total: dict[str, float] = dict(profile.get("terms", {}))
        for text in texts:
            for term, weight in _features(text).items():
                total[term] = total.get(term, 0.0) + weight
        # Only the most frequent terms are kept: the profile stays small however big the theme.
        kept = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[: self.kept_terms]
        return {"terms": {term: round(weight, 3) for term, weight in kept}}

    def prepare(self, texts: Sequence[str]) -> None:
        """Nothing to do ahead: counting words is quick."""


@lru_cache(maxsize=20_000)
def _features_cached(text: str) -> tuple[tuple[str, float], ...]:
    found: dict[str, float] = {}
    for word in words(text):
        found[word] = found.get(word, 0.0) + 1.0
        if len(word) >= 5:  # word pieces catch "integration" ~ "integrate", "pricey" ~ "prices"
            for i in range(len(word) - 3):
                piece = "#" + word[i : i + 4]
                found[piece] = found.get(piece, 0.0) + 0.5
    return tuple(found.items())


def _features(text: str) -> dict[str, float]:
    return dict(_features_cached(text))


def _norm(values: tuple[float, ...]) -> float:
    return math.sqrt(sum(v * v for v in values)) or 1.0


def grouper_named(name: str) -> Grouper:
    """The grouper `objections.grouping` in app.yaml asks for; words where the model cannot load
    (`touchline check` and the log at start say why)."""
    if name == "semantic":
        from handlers.grouping import semantic

        if semantic.available():
            return semantic.SentenceGrouper()
    return WordGrouper()


def described(name: str) -> str:
    """How objections are grouped here, for `touchline check`."""
    if name != "semantic":
        return "by shared words (objections.grouping: words)"
    from handlers.grouping import semantic

    problem = semantic.problem()
    if problem is None:
        return "by meaning (all-MiniLM-L6-v2, run locally)"
    return f"by shared words: the model could not load ({problem})"
