"""The console's scripts (the README's walk-throughs) played on Slack: each line becomes what
Slack would send for it (a slash command, a button press, a modal filled and submitted, a
reaction), so that one story can be told in both places and what it leaves compared."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from handlers.inbound import EMOJI_NAMES
from tests import slack_fake
from tests.slack_world import World
from tests.stories import read_answer


@dataclass
class SlackPlayer:
    world: World
    users: dict[str, str]  # person key -> Slack user id
    channels: dict[str, str]  # console channel (#sales-emea) -> Slack channel id
    user: str

    async def play(self, script: str) -> None:
        lines = iter(script.splitlines())
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            await self.step(line, lines)
            await self.world.deliver()

    async def step(self, line: str, lines: Iterator[str]) -> None:
        opened = len(self.world.fake.called("views.open"))
        if line.startswith("/"):
            name, _, text = line[1:].partition(" ")
            await self.world.command(name, text.strip(), self.user)
        else:
            verb, *args = line.split()
            if verb == "as":
                self.user = self.users[args[0]]
                return
            if verb == "press" and len(args) == 2:
                await self.press(*args)
            elif verb in ("react", "unreact"):
                await self.react(args[0], args[1], added=verb == "react")
            else:
                raise AssertionError(f"the Slack player does not know {line!r}")
        await self.world.settled()
        views = self.world.fake.called("views.open")
        if len(views) > opened:
            await self.fill(_view(views[-1]["view"]), lines)

    async def press(self, where: str, number: str) -> None:
        channel, message = self.message(where)
        [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
        button = actions["elements"][int(number) - 1]
        body = slack_fake.button(
            button["action_id"],
            button["value"],
            self.user,
            fake=self.world.fake,
            channel=channel,
            ts=message["ts"],
        )
        await self.world.send(body)

    async def react(self, where: str, emoji: str, *, added: bool) -> None:
        channel, message = self.message(where)
        fields = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": self.user,
            "reaction": EMOJI_NAMES.get(emoji, emoji),
            "item": {"type": "message", "channel": channel, "ts": message["ts"]},
            "item_user": slack_fake.BOT_USER,
        }
        kind = "reaction_added" if added else "reaction_removed"
        await self.world.event(kind, fields, f"Ev{time.monotonic_ns()}")  # each reaction is a new event

    def message(self, where: str) -> tuple[str, dict[str, Any]]:
        """The latest message in a channel (`#sales-emea`) or to a person (`@maria`), as it now reads."""
        target = self.channels[where] if where.startswith("#") else self.users[where.lstrip("@")]
        posts = [c for c in self.world.fake.answered("chat.postMessage") if c.body["channel"] == target]
        assert posts, f"nothing was posted to {where}"
        channel, ts = posts[-1].answer["channel"], posts[-1].answer["ts"]
        updates = [u for u in self.world.fake.answered("chat.update") if u.body["ts"] == ts]
        latest = (updates or posts)[-1].body
        return channel, {"blocks": _json(latest["blocks"]), "ts": ts}

    async def fill(self, view: dict[str, Any], lines: Iterator[str]) -> None:
        """Answer a modal the way the console asks for a form: a line per field, Enter for the
        value shown, then again just the fields Slack reports as wrong."""
        inputs = [b for b in view["blocks"] if b["type"] == "input"]
        values: dict[str, Any] = {}
        while True:
            for block in inputs:
                answer = read_answer(lines)
                if answer is None:
                    return  # the person closes the modal: Slack tells Touchline nothing
                values[block["block_id"]] = _value(block["element"], answer)
            answer = await self.world.submit(view, self.user, values)
            if answer.get("response_action") == "errors":
                inputs = [b for b in inputs if b["block_id"] in answer["errors"]]
                continue
            if answer.get("response_action") == "update":
                view, inputs, values = answer["view"], [], {}
                inputs = [b for b in view["blocks"] if b["type"] == "input"]
                continue
            await self.world.settled()
            return


def _value(element: dict[str, Any], text: str) -> Any:
    """What the person leaves in an element after typing `text` at the console's prompt."""
    kind = element["type"]
    if text == "/clear":
        return [] if kind == "multi_static_select" else ""
    if kind in ("static_select", "multi_static_select"):
        options = element["options"]
        if not text:
            initial = element.get("initial_options") or (
                [element["initial_option"]] if element.get("initial_option") else []
            )
            picked = [o["value"] for o in initial]
        else:
            picked = [_option(options, item.strip()) for item in text.split(",") if item.strip()]
        return picked if kind == "multi_static_select" else (picked[0] if picked else None)
    if kind == "checkboxes":
        return text.lower() in ("y", "yes", "true", "1") if text else bool(element.get("initial_options"))
    if kind == "datepicker":
        return text or element.get("initial_date")
    return text or element.get("initial_value") or ""


def _option(options: list[dict[str, Any]], item: str) -> str:
    if item.isdigit() and 1 <= int(item) <= len(options):
        return str(options[int(item) - 1]["value"])
    by_label = {o["text"]["text"].casefold(): o["value"] for o in options}
    return str(by_label.get(item.casefold(), item))


def _view(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
