"""The console as a chat platform: channels and direct messages are printed to the terminal."""

from __future__ import annotations

from typing import TextIO

from bot.console.render import boxed, image_note
from handlers.organisation import Organisation
from handlers.ui import Card


class ConsolePlatform:
    """Prints what each console channel and person receives; a post's number is its reference."""

    name = "console"

    def __init__(self, out: TextIO | None, org: Organisation) -> None:
        # Without `out`, posts are only recorded (the web page shows them from the outbox).
        self.out = out
        self.org = org
        self.shown: dict[str, Card] = {}

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        ref = str(delivery_id)
        self._print(boxed(f"{address} · post {ref}", card))
        self._show(card)
        self.shown[ref] = card
        return ref

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        ref = str(delivery_id)
        person = self.org.people.get(user_id)
        who = f"{person.name} (@{user_id})" if person else f"@{user_id}"
        self._print(boxed(f"direct to {who} · post {ref}", card))
        self._show(card)
        self.shown[ref] = card
        return ref

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        before = self.shown.get(message_ref)
        if before is not None and (before.title, before.sections, before.buttons) == (
            card.title,
            card.sections,
            card.buttons,
        ):
            self._print(f"↻ {address} · post {message_ref} now reads: {card.footer}")
        else:
            self._print(boxed(f"{address} · post {message_ref} (updated)", card))
        self.shown[message_ref] = card

    def _show(self, card: Card) -> None:
        if card.image is not None and self.out is not None:
            self._print(image_note(card.image))

    def _print(self, text: str) -> None:
        if self.out is None:
            return
        self.out.write(text + "\n")
        self.out.flush()
