"""The console's scripts played on Teams: each line becomes what Teams would send for it (a
message to the bot in the person's 1:1 chat, a card button pressed, a form card filled and
submitted, a reaction), so that one story can be told in both places and what it leaves compared."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.stories import read_answer
from tests.teams_fake import Sent, User
from tests.teams_world import TeamsWorld

# Teams' reactions are like, heart, laugh, surprised, sad and angry; app.yaml maps heart to
# "Got it", so a Teams user acknowledges with ❤️ where the console story says ✅.
REACTIONS = {"✅": "heart", "👍": "like", "❤️": "heart"}


@dataclass
class TeamsPlayer:
    world: TeamsWorld
    users: dict[str, User]  # person key -> Teams user
    channels: dict[str, str]  # console channel (#sales-emea) -> Teams channel id
    user: User

    async def play(self, script: str) -> None:
        lines = iter(script.splitlines())
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            await self.step(line, lines)
            await self.world.deliver()

    async def step(self, line: str, lines: Iterator[str]) -> None:
        before = len(self.world.fake.sent)
        if line.startswith("/"):
            await self.world.say(self.user, line[1:])  # Teams users write `objection …`
        else:
            verb, *args = line.split()
            if verb == "as":
                self.user = self.users[args[0]]
                return
            if verb == "press" and len(args) == 2:
                await self.world.press(self.user, self.message(args[0]), int(args[1]))
            elif verb in ("react", "unreact"):
                kind = REACTIONS[args[1]]
                await self.world.react(self.user, self.message(args[0]), kind, added=verb == "react")
            else:
                raise AssertionError(f"the Teams player does not know {line!r}")
        form = self._new_form(before)
        if form is not None:
            await self.fill(form, lines)

    def message(self, where: str) -> Sent:
        """The latest card the bot posted unasked in a channel (`#sales-emea`) or sent to a
        person (`@maria`): what the console calls a post and a direct message."""
        conversation = (
            self.channels[where] if where.startswith("#") else self.users[where.lstrip("@")].personal
        )
        unasked = [s for s in self.world.fake.to(conversation, "POST") if not s.reply_to and s.cards()]
        assert unasked, f"nothing was posted to {where}"
        return unasked[-1]

    def _new_form(self, before: int) -> Sent | None:
        for sent in self.world.fake.sent[before:]:
            if sent.method == "POST" and sent.conversation == self.user.personal and _inputs(sent):
                return sent
        return None

    async def fill(self, form: Sent, lines: Iterator[str]) -> None:
        """Answer a form card the way the console asks for a form: a line per field, Enter for
        the value shown; after errors, again just the fields named."""
        inputs = _inputs(form)
        values: dict[str, Any] = {}
        while True:
            for element in inputs:
                answer = read_answer(lines)
                if answer is None:
                    return
                values[element["id"]] = _value(element, answer)
            before = len(self.world.fake.sent)
            await self.world.submit(self.user, form, values)
            said = " ".join(str(s.activity.get("text") or "") for s in self.world.fake.sent[before:])
            if "Please fix these" in said:
                inputs = [e for e in _inputs(form) if f"- {e['label'][:60]}:" in said]
                continue
            follow_up = self._new_form(before)
            if follow_up is not None:
                form, inputs, values = follow_up, _inputs(follow_up), {}
                continue
            return


def _inputs(sent: Sent) -> list[dict[str, Any]]:
    cards = sent.cards()
    return [b for b in cards[0]["body"] if b["type"].startswith("Input.")] if cards else []


def _value(element: dict[str, Any], text: str) -> str:
    """What Teams sends for an input after the person typed `text` at the console's prompt."""
    kind = element["type"]
    if text == "/clear":
        return ""
    if kind == "Input.ChoiceSet":
        if not text:
            return str(element.get("value") or "")
        choices = element["choices"]
        picked = [_choice(choices, item.strip()) for item in text.split(",") if item.strip()]
        return ",".join(picked)
    if kind == "Input.Toggle":
        if not text:
            return str(element.get("value") or "false")
        return "true" if text.lower() in ("y", "yes", "true", "1") else "false"
    return text or str(element.get("value") or "")


def _choice(choices: list[dict[str, Any]], item: str) -> str:
    if item.isdigit() and 1 <= int(item) <= len(choices):
        return str(choices[int(item) - 1]["value"])
    by_title = {c["title"].casefold(): c["value"] for c in choices}
    return str(by_title.get(item.casefold(), item))
