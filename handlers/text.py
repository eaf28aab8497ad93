"""Small wording helpers shared by the features: clipping, counting, ordinals."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, visibly (with an ellipsis) when it was longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def count(n: int, noun: str, plural: str = "") -> str:
    """`count(1, "rep")` -> "1 rep"; `count(7, "rep")` -> "7 reps"; `count(2, "person", "people")`."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pieces(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, cut at line ends where there are any."""
    found: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        found.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*found, text]
