"""`/try`: play anyone from app.yaml in the browser: commands, channels, buttons and forms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.web.cards import button_class, card_html, form_html, form_values
from bot.web.html import e, layout, link, url
from handlers import directory, inbound, timeline
from handlers.context import Actor, Context, PostRef, Refusal
from handlers.ui import Button, Card, Form, Reply

PLATFORM = "console"  # the local workspace: the console's channels, seen in the browser
REACTIONS = {"white_check_mark": "✅", "heart": "❤️", "+1": "👍", "-1": "👎", "heavy_check_mark": "✔️"}


@dataclass
class Seat:
    """What one person sees alone on the page: their last reply and the form they are filling."""

    reply_text: str = ""
    reply_card: Card | None = None
    form: Form | None = None
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class TryPage:
    """The local workspace in the browser, for anyone in `people:` of app.yaml."""

    def __init__(self, ctx: Context, *, links: Callable[[str], tuple[tuple[str, str], ...]]) -> None:
        self.ctx = ctx
        self.links = links
        self.seats: dict[str, Seat] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/try", self.show)
        app.router.add_post("/try/command", self.command)
        app.router.add_post("/try/press", self.press)
        app.router.add_post("/try/react", self.react)
        app.router.add_post("/try/submit", self.submit)
        app.router.add_post("/try/cancel", self.cancel)

    # --- reading ---------------------------------------------------------------------------------

    async def show(self, request: web.Request) -> web.Response:
        person = request.query.get("as", "")
        if person not in self.ctx.org.people:
            return _html(layout("Try Touchline", self._people(), here="/try", links=self.links("")))
        actor = await asyncio.to_thread(directory.console_actor, self.ctx, person)
        channel = request.query.get("channel", "")
        body = await asyncio.to_thread(self._seat_page, actor, person, channel)
        who = f"You are {actor.name} ({', '.join(sorted(actor.roles)) or 'no role'})"
        return _html(layout(f"{actor.name} · Try", body, here="/try", who=who, links=self.links(person)))

    def _people(self) -> str:
        rows = []
        for key, person in self.ctx.org.people.items():
            roles = ", ".join(sorted(r for r, refs in self.ctx.org.roles.items() if key in refs)) or "no role"
            rows.append(
                f"<li><a href='{url('/try', **{'as': key})}'>{e(person.name)}</a> "
                f"<span class=muted>{e(roles)}</span></li>"
            )
        return (
            f"<h1>Try Touchline as someone from {e(self.ctx.org.organisation.name)}</h1>"
            "<p>Pick a person. You type their commands, read their channels and direct messages, and press "
            "their buttons; switch person to see the same story from another seat. Everything here is real: "
            "it is stored in Touchline's database, as the console and the chat platforms store it.</p>"
            f"<ul class='panel people'>{''.join(rows)}</ul>"
        )

    def _seat_page(self, actor: Actor, person: str, channel: str) -> str:
        with self.ctx.db.session() as session:
            channels = timeline.channels(session, platform=PLATFORM)
            if channel not in {c.address for c in channels}:
                channel = ""
            shown = timeline.messages(
                session, platform=PLATFORM, address=channel or person, direct=not channel, now=self.ctx.now()
            )
        nav = [
            f"<a href='{url('/try', **{'as': person})}' class='{'' if channel else 'here'}'>"
            "Direct messages</a>"
        ]
        for c in channels:
            nav.append(
                f"<a href='{url('/try', **{'as': person, 'channel': c.address})}' "
                f"class='{'here' if c.address == channel else ''}'"
                f" title='{e(', '.join(c.audiences))}'>{e(c.address)}</a>"
            )
        switch = " ".join(
            f"<a href='{url('/try', **{'as': key, 'channel': channel or None})}'>{e(p.name.split()[0])}</a>"
            for key, p in self.ctx.org.people.items()
            if key != person
        )
        where = channel or f"Direct messages to {actor.name}"
        posts = "".join(self._message_html(person, channel, m) for m in shown) or (
            f"<p class='muted'>Nothing in {e(where)} yet.</p>"
        )
        return (
            "<div class='grid'>"
            f"<aside class='panel'><h3>Channels</h3><nav class='channels'>{''.join(nav)}</nav>"
            f"<h3>Be someone else</h3><div class='people'>{switch}</div></aside>"
            f"<section><h1>{e(where)}</h1><div class='timeline'>{posts}</div></section>"
            f"<aside>{self._composer(person, channel)}{self._private(person, channel)}</aside>"
            "</div>"
        )

    def _message_html(self, person: str, channel: str, message: timeline.Message) -> str:
        hidden = {"as": person, "channel": channel, "post": str(message.id)}

        def press(button: Button, number: int) -> str:
            return _post_button(
                "/try/press", {**hidden, "n": str(number)}, button.label, button_class(button)
            )

        reactions = ""
        if message.delivered:
            meanings: dict[str, str] = {}  # one emoji for each thing a reaction can mean
            for name, meaning in self.ctx.org.reactions.items():
                if name in REACTIONS:
                    meanings.setdefault(meaning, name)
            choices = list(meanings.values())
            reactions = (
                "<div class='reactions'>"
                + "".join(
                    _post_button(
                        "/try/react", {**hidden, "emoji": name}, REACTIONS[name], "", title=f"React :{name}:"
                    )
                    for name in choices
                )
                + "</div>"
            )
        state = "" if message.delivered else " · sending…"
        meta = (
            f"post {message.id} · {message.at:%Y-%m-%d %H:%M}{' · edited' if message.updated else ''}{state}"
        )
        return card_html(message.card, press=press, meta=e(meta), after=reactions)

    def _composer(self, person: str, channel: str) -> str:
        return (
            "<form class='compose' method='post' action='/try/command'>"
            f"<input type='hidden' name='as' value='{e(person)}'>"
            f"<input type='hidden' name='channel' value='{e(channel)}'>"
            "<input name='text' aria-label='Command' placeholder='/objection too expensive vs Acme' "
            "autocomplete='off'>"
            "<button class='primary' type='submit'>Send</button></form>"
            "<p class='muted'>Commands as in Slack: /help, /strategy, /objection …, /asset, /pulse, /digest, "
            "/touchline dashboard.</p>"
        )

    def _private(self, person: str, channel: str) -> str:
        seat = self.seats.get(person)
        if seat is None:
            return ""
        hidden = {"as": person, "channel": channel}
        parts = []
        if seat.reply_text or seat.reply_card:
            inner = f"<div class='text'>{e(seat.reply_text)}</div>" if seat.reply_text else ""
            if seat.reply_card is not None:

                def press(button: Button, number: int) -> str:
                    return _post_button(
                        "/try/press",
                        {**hidden, "post": "mine", "n": str(number)},
                        button.label,
                        button_class(button),
                    )

                inner += card_html(seat.reply_card, press=press)
            parts.append(f"<div class='only-you'><div class='label'>Only you can see this</div>{inner}</div>")
        if seat.form is not None:
            cancel = "<button type='submit' formaction='/try/cancel' formnovalidate>Cancel</button>"
            parts.append(
                form_html(
                    seat.form,
                    action="/try/submit",
                    hidden=hidden,
                    values=seat.values,
                    errors=seat.errors,
                    cancel=cancel,
                )
            )
        return "".join(parts)

    # --- acting ----------------------------------------------------------------------------------

    async def command(self, request: web.Request) -> web.StreamResponse:
        form, actor, person = await self._posted(request)
        text = form.get("text", [""])[0].strip()
        if text:
            name, _, rest = text.lstrip("/").partition(" ")
            self._answer(
                person, await asyncio.to_thread(inbound.command, self.ctx, actor, name, rest.strip())
            )
        return _back(person, form)

    async def press(self, request: web.Request) -> web.StreamResponse:
        form, actor, person = await self._posted(request)
        post, number = form.get("post", [""])[0], form.get("n", [""])[0]
        card = await asyncio.to_thread(self._card_for, person, post)
        if (
            card is None
            or not number.isdecimal()
            or not number.isascii()
            or not 1 <= int(number) <= len(card.buttons)
        ):
            self._tell(person, "That button is no longer there; the page shows the card as it reads now.")
            return _back(person, form)
        button = card.buttons[int(number) - 1]
        self._answer(
            person, await asyncio.to_thread(inbound.action, self.ctx, actor, button.action_id, button.value)
        )
        return _back(person, form)

    async def react(self, request: web.Request) -> web.StreamResponse:
        form, actor, person = await self._posted(request)
        post, emoji = form.get("post", [""])[0], form.get("emoji", [""])[0]
        message = await asyncio.to_thread(self._message, post)
        if message is None or emoji not in REACTIONS:
            self._tell(person, "There is no such post to react to.")
            return _back(person, form)
        ref = PostRef(PLATFORM, message.address, str(message.id))
        reply = await asyncio.to_thread(inbound.reaction, self.ctx, actor, ref, emoji, True)
        self._answer(person, reply if not reply.is_empty else Reply(text=f"You reacted {REACTIONS[emoji]}."))
        return _back(person, form)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        form, actor, person = await self._posted(request)
        seat = self.seats.setdefault(person, Seat())
        if seat.form is None:
            self._tell(person, "That form was closed; start again from the command.")
            return _back(person, form)
        values = form_values(seat.form, form)
        reply = await asyncio.to_thread(inbound.submit, self.ctx, actor, seat.form.form_id, values)
        if reply.errors:
            seat.values, seat.errors = values, reply.errors
            seat.reply_text, seat.reply_card = "Some fields need fixing; what you typed is kept.", None
            return _back(person, form)
        seat.form, seat.values, seat.errors = None, {}, {}
        self._answer(person, reply)
        return _back(person, form)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        form, _, person = await self._posted(request)
        self.seats[person] = Seat(reply_text="Form abandoned; nothing was sent.")
        return _back(person, form)

    async def _posted(self, request: web.Request) -> tuple[dict[str, list[str]], Actor, str]:
        data = await request.post()
        form: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, str):
                form.setdefault(key, []).append(value)
        person = form.get("as", [""])[0]
        try:
            actor = await asyncio.to_thread(directory.console_actor, self.ctx, person)
        except Refusal as refusal:
            raise web.HTTPBadRequest(text=refusal.message) from None
        return form, actor, person

    def _answer(self, person: str, reply: Reply) -> None:
        seat = self.seats.setdefault(person, Seat())
        seat.reply_text, seat.reply_card = reply.text, reply.card
        if reply.form is not None:
            seat.form, seat.values, seat.errors = reply.form, {}, {}

    def _tell(self, person: str, text: str) -> None:
        seat = self.seats.setdefault(person, Seat())
        seat.reply_text, seat.reply_card = text, None

    def _card_for(self, person: str, post: str) -> Card | None:
        if post == "mine":
            seat = self.seats.get(person)
            return seat.reply_card if seat else None
        message = self._message(post)
        return message.card if message else None

    def _message(self, post: str) -> timeline.Message | None:
        if not (post.isascii() and post.isdigit()):
            return None
        with self.ctx.db.session() as session:
            return timeline.message(session, platform=PLATFORM, message_id=int(post))


def _post_button(action: str, hidden: dict[str, str], label: str, css: str, *, title: str = "") -> str:
    fields = "".join(f"<input type='hidden' name='{e(k)}' value='{e(v)}'>" for k, v in hidden.items())
    hint = f" title='{e(title)}'" if title else ""
    return (
        f"<form method='post' action='{action}'>{fields}"
        f"<button type='submit' class='{css}'{hint}>{e(label)}</button></form>"
    )


def _back(person: str, form: dict[str, list[str]]) -> web.StreamResponse:
    channel = form.get("channel", [""])[0] or None
    raise web.HTTPSeeOther(location=link("/try", **{"as": person, "channel": channel}))


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")
