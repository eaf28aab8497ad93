"""Who is acting and what every handler works with: the database, the organisation, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from handlers.organisation import Organisation
from storage.database import Database
from storage.sealed import Seal


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """The person behind a command, a button, a form or a reaction, as the platform named them."""

    platform: str
    user_id: str
    name: str
    person_id: int
    roles: frozenset[str] = frozenset()
    timezone: str = "UTC"

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class PostRef:
    """One of Touchline's own messages on a platform (for reactions to it)."""

    platform: str
    address: str
    message_ref: str


@dataclass
class Context:
    """The dependencies of every handler; `bot.bootstrap` builds the real one, tests their own."""

    db: Database
    org: Organisation
    clock: Callable[[], datetime] = field(default=utcnow)
    public_url: str = ""  # where browsers reach Touchline's web page; "" when nobody said
    # Seals what must wait unreadable in the database (pulse ballots, anonymous concerns); its
    # key comes from the environment or a file beside the database, never from the database.
    seal: Seal = field(default_factory=Seal.ephemeral)

    def now(self) -> datetime:
        return self.clock()


class Refusal(Exception):
    """The request cannot be done as asked; the message tells the actor why and what to do.

    Raised anywhere inside a handler, it rolls the whole unit of work back.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FormErrors(Exception):
    """A submitted form has fields to fix (field name -> what is wrong); nothing is stored."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
