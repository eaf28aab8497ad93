"""Grouping by meaning: each objection's sentence embedding (all-MiniLM-L6-v2, handlers/grouping/minilm.py)
compared with the sum of its theme's. The model comes with the default install; where it cannot
load, grouping falls back to words, and `touchline check` says so."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from handlers.grouping import minilm

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


CACHED = 20_000  # embeddings kept in memory (1.5 KB each), the latest used


_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def vectors(texts: Sequence[str]) -> np.ndarray:
    """The embeddings of `texts` (one unit-length row each); those not in memory yet are
    encoded together, at half the time a text of encoding them one by one."""
    with _cache_lock:
        known = {text: _cache[text] for text in texts if text in _cache}
        for text in known:
            _cache.move_to_end(text)
    missing = list(dict.fromkeys(text for text in texts if text not in known))
    if missing:
        try:
            encoded = minilm.model().encode(missing)
        except minilm.ModelUnavailable as unavailable:
            raise SemanticUnavailable(str(unavailable)) from None
        with _cache_lock:
            for text, vector in zip(missing, encoded, strict=True):
                known[text] = _cache[text] = vector
            while len(_cache) > CACHED:
                _cache.popitem(last=False)
    if not texts:
        return np.zeros((0, minilm.WIDTH), dtype=np.float32)
    return np.vstack([known[text] for text in texts])


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
        summed = np.asarray(total, dtype=np.float32)
        # In NumPy: a recorded objection is compared with every recent theme's profile.
        return float(vectors([text])[0] @ summed) / (float(np.linalg.norm(summed)) or 1.0)

    def absorb(self, profile: Profile, texts: Sequence[str]) -> Profile:
        total = list(profile.get("sum", [])) or [0.0] * minilm.WIDTH
        summed = vectors(list(texts)).sum(axis=0)
        return {"sum": [round(a + float(b), 6) for a, b in zip(total, summed, strict=True)]}

    def prepare(self, texts: Sequence[str]) -> None:
        """Encode `texts` now (kept in memory), so that a rebuild inside a write transaction
        does not hold the database's write lock while the model runs."""
        vectors(list(texts))
