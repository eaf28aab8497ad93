"""Test doubles of our own making: a clock moved by hand, a platform that records what it was sent."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.platform import DeliveryError
from handlers.ui import Card
from storage.database import Database


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 30, 9, 15, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Sent:
    op: str
    address: str
    card: Card
    ref: str


@dataclass
class RecordingPlatform:
    """A fake platform that keeps a transcript; `fail_next` makes the next calls fail as told."""

    name: str = "console"
    transcript: list[Sent] = field(default_factory=list)
    fail_next: list[DeliveryError] = field(default_factory=list)
    counter: int = 0

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        return self._record("send", address, card)

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        return self._record("direct", user_id, card)

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        self._record("update", address, card, ref=message_ref)

    def _record(self, op: str, address: str, card: Card, ref: str | None = None) -> str:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.counter += 1
        ref = ref or f"{self.name}-{self.counter}"
        self.transcript.append(Sent(op, address, card, ref))
        return ref

    def ops(self) -> list[tuple[str, str]]:
        return [(s.op, s.address) for s in self.transcript]


def rows(db: Database, model: Any, **where: Any) -> list[Any]:
    """All rows of a table, optionally filtered by equality, ordered by id."""
    from sqlmodel import select

    with db.session() as session:
        query = select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return list(session.exec(query.order_by(model.id)).all())


def theme_named(db: Database, name: str) -> int:
    """The id of the theme called `name`."""
    from sqlmodel import select

    from storage.models import Theme

    with db.session() as session:
        theme_id = session.exec(select(Theme.id).where(Theme.name == name)).one()
        assert theme_id is not None
        return theme_id


def theme_of(db: Database, objection: Any) -> str:
    """The name of an objection's theme."""
    from storage.models import Theme

    with db.session() as session:
        theme = session.get(Theme, objection.theme_id)
        assert theme is not None
        return theme.name


@contextlib.contextmanager
def configured_logging(level: str, fmt: str = "text") -> Iterator[logging.Logger]:
    """Touchline's own logging set-up for one test, and everything it changed put back after:
    the root's handlers and level, and the chat libraries it holds at INFO."""
    from bot import logs

    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    held = {name: logging.getLogger(name).level for name in logs.CHAT_SDKS}
    try:
        logs.configure(level, fmt)
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, was in held.items():
            logging.getLogger(name).setLevel(was)
