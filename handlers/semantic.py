"""Grouping by meaning: each objection's sentence embedding (all-MiniLM-L6-v2, handlers/minilm.py)
compared with the sum of its theme's. The model comes with the default install; where it cannot
load, grouping falls back to words, and `touchline check` says so."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from handlers import minilm

Profile = dict[str, Any]


class SemanticUnavailable(Exception):
    """The model cannot be loaded here (its package missing, or its files unreadable)."""


def available() -> bool:
    return problem() is None


def problem() -> str | None:
    """Why the model cannot be loaded, or None when it can."""
    try:
        minilm.model()
    except minilm.ModelUnavailable as unavailable:
        return str(unavailable)
    return None


@lru_cache(maxsize=20_000)
def _embedding(text: str) -> tuple[float, ...]:
    try:
        vector = minilm.model().encode([text])[0]
    except minilm.ModelUnavailable as unavailable:
        raise SemanticUnavailable(str(unavailable)) from None
    return tuple(float(v) for v in vector)


class SentenceGrouper:
    """Compares an objection's sentence embedding with the sum of its theme's embeddings."""

    name = "semantic"
    # Chosen once, on the first five objections of each theme of benchmarks' labelled set, with
    # the examples of benchmarks/data/theme_examples.yaml (0.25 … 0.40 tried; 0.35 was best there).
    threshold = 0.35

    def similarity(self, text: str, profile: Profile) -> float:
        total: list[float] = profile.get("sum", [])
        if not total:
            return 0.0
        mine = _embedding(text)
        dot = sum(a * b for a, b in zip(mine, total, strict=True))
        return dot / (math.sqrt(sum(v * v for v in total)) or 1.0)

    def absorb(self, profile: Profile, texts: Sequence[str]) -> Profile:
        total = list(profile.get("sum", [])) or [0.0] * len(_embedding(texts[0] if texts else ""))
        if len(texts) > 1:
            # A theme rebuilt from its objections (a merge, a split, an edit): encoded together,
            # at half the time an objection of encoding them one by one.
            try:
                summed = minilm.model().encode(list(texts)).sum(axis=0)
            except minilm.ModelUnavailable as unavailable:
                raise SemanticUnavailable(str(unavailable)) from None
            total = [a + float(b) for a, b in zip(total, summed, strict=True)]
        else:
            for text in texts:
                total = [a + b for a, b in zip(total, _embedding(text), strict=True)]
        return {"sum": [round(v, 6) for v in total]}
