"""Cards drawn afresh when they are sent: a decision's post shows its count as it is then."""

from __future__ import annotations

from sqlmodel import Session

from handlers import strategy
from handlers.ui import Card

DRAWN = {"decision": strategy.current_card}


def is_live(subject: str) -> bool:
    return subject.partition(":")[0] in DRAWN


def current_card(session: Session, subject: str) -> Card | None:
    """`subject`'s card now, or None to send the card the message was queued with."""
    kind, _, ident = subject.partition(":")
    draw = DRAWN.get(kind)
    return draw(session, ident) if draw is not None else None
