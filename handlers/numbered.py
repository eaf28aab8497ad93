"""Finding a decision, asset, run... by the number someone typed or a button carried."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, select

Row = TypeVar("Row", bound=SQLModel)


def number_in(text: str) -> int | None:
    """`"#12"` or `" 12 "` -> 12; anything else (words, a 40-digit number) -> None."""
    token = text.strip().lstrip("#")
    # isascii: "²" is a digit to Python, but not a number anyone typed on purpose.
    return int(token) if token.isascii() and token.isdigit() and len(token) <= 12 else None


def find(session: Session, model: type[Row], text: str, *, lock: bool = False) -> Row | None:
    """The row numbered in `text`, if there is one. `lock` holds it until the transaction ends,
    so that changes to one thing queue up instead of each working from what the others had not
    yet written (on PostgreSQL; SQLite runs one writer at a time anyway)."""
    number = number_in(text)
    if number is None:
        return None
    query: Any = select(model).where(model.id == number)  # type: ignore[attr-defined]
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()  # type: ignore[no-any-return]
