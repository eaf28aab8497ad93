"""The console session: type commands as someone from app.yaml, fill forms, press buttons, react."""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Callable
from typing import Any, TextIO

from sqlmodel import col, select

from bot.console.platform import ConsolePlatform
from bot.console.render import boxed, field_prompt, reply_text
from bot.delivery import DeliveryWorker
from handlers import directory, forms, inbound
from handlers.context import Actor, Context, PostRef, Refusal
from handlers.ui import Card, Form, FormField, Reply
from storage import outbox
from storage.models import Outbox

ReadLine = Callable[[str], "str | None"]
log = logging.getLogger(__name__)

CONSOLE_HELP = """\
Console commands (anything starting with / goes to Touchline, as in Slack):
  /strategy, /strategy list, /help ...  a Touchline command
  press <post> <n>                      press button n of a post; <post> is its number,
                                        #channel (its latest post) or @person (their latest
                                        direct message)
  press <n>                             press button n of the last card only you saw
  react <post> <emoji>                  react to a post (✅ acknowledges a decision)
  unreact <post> <emoji>                take the reaction back
  show <post> | show #channel           a post as it reads now, or a channel's latest posts
  as <person>                           continue as someone else from app.yaml
  people                                who is in app.yaml, with their roles
  quit                                  leave (Ctrl-D too)
In a form, Enter keeps the value shown, /clear empties it, a line ending in \\ continues,
/cancel abandons the form."""


class Console:
    def __init__(
        self,
        ctx: Context,
        worker: DeliveryWorker,
        *,
        out: TextIO,
        read_line: ReadLine,
        person: str,
    ) -> None:
        self.ctx = ctx
        self.worker = worker
        self.out = out
        self.read_line = read_line
        self.actor = directory.console_actor(ctx, person)
        self.last_private: Card | None = None  # buttons of a card only you saw: `press <n>`

    async def run(self) -> None:
        self.say(
            f"You are {self.actor.name} ({', '.join(sorted(self.actor.roles)) or 'no role'}). "
            "Type help for the console's commands, /help for Touchline's."
        )
        await self.worker.drain()
        while True:
            line = await self.ask(f"{self.actor.user_id}> ")
            if line is None:
                break
            line = line.strip()
            if not line or line.startswith("# ") or line == "#":
                continue
            if line in ("quit", "exit"):
                break
            try:
                await self.handle(line)
            except Refusal as refusal:
                self.say(refusal.message)
            except Exception:
                log.exception("console command failed: %s", line[:80])
                self.say(
                    "Something went wrong in the console; nothing more was changed. The log has details."
                )
            await self.worker.drain()
        await self.worker.drain()

    async def handle(self, line: str) -> None:
        if line.startswith("/"):
            name, _, text = line[1:].partition(" ")
            await self.show_reply(await self.call(inbound.command, self.actor, name, text.strip()))
            return
        try:
            verb, *args = shlex.split(line)
        except ValueError:
            verb, args = line.split()[0], line.split()[1:]
        verb = verb.lower()
        if verb == "help":
            self.say(CONSOLE_HELP)
        elif verb == "as" and len(args) == 1:
            self.actor = await asyncio.to_thread(directory.console_actor, self.ctx, args[0])
            self.last_private = None
            self.say(f"You are now {self.actor.name} ({', '.join(sorted(self.actor.roles)) or 'no role'}).")
        elif verb == "people":
            self.say(self.people())
        elif verb == "press" and len(args) == 2:
            await self.press(args[0], args[1])
        elif verb == "press" and len(args) == 1:
            await self.press_private(args[0])
        elif verb in ("react", "unreact") and len(args) == 2:
            row = self.post(args[0])
            post = PostRef("console", row.address, str(row.message_ref))
            reply = await self.call(inbound.reaction, self.actor, post, args[1], verb == "react")
            await self.show_reply(reply if not reply.is_empty else Reply(text="(no effect)"))
        elif verb == "show" and len(args) == 1:
            self.show(args[0])
        else:
            self.say(f"I don't understand {line[:60]!r}. Type help for the console's commands.")

    async def press(self, post_number: str, button_number: str) -> None:
        row = self.post(post_number)
        await self.press_on(Card.from_dict(row.card), button_number, f"Post {post_number}")

    async def press_private(self, button_number: str) -> None:
        if self.last_private is None:
            raise Refusal("Press which post's button? Write press <post> <n>.")
        await self.press_on(self.last_private, button_number, "The last card only you saw")

    async def press_on(self, card: Card, button_number: str, what: str) -> None:
        buttons = card.buttons
        if not buttons:
            raise Refusal(f"{what} has no buttons.")
        if not (button_number.isascii() and button_number.isdigit()) or not 1 <= int(button_number) <= len(
            buttons
        ):
            raise Refusal(f"{what} has buttons 1 to {len(buttons)}.")
        button = buttons[int(button_number) - 1]
        await self.show_reply(await self.call(inbound.action, self.actor, button.action_id, button.value))

    async def show_reply(self, reply: Reply) -> None:
        if reply.card is not None and reply.card.buttons:
            self.last_private = reply.card
        text = reply_text(reply)
        if text:
            self.say(text)
        if reply.form is not None:
            await self.fill(reply.form)

    async def fill(self, form: Form) -> None:
        """Prompt field by field, submit, and prompt again for just the fields to fix."""
        self.say(f"── {form.title} ──" + (f"\n{form.intro}" if form.intro else ""))
        values: dict[str, Any] = {}
        fields = list(form.fields)
        while True:
            for number, field in enumerate(fields, 1):
                self.say(field_prompt(field, number, len(fields)))
                answer = await self.read_value(field)
                if answer is None:
                    self.say("Form abandoned; nothing was sent.")
                    return
                values[field.name] = answer
            reply = await self.call(inbound.submit, self.actor, form.form_id, {**values, **form.state})
            if not reply.errors:
                await self.show_reply(reply)
                return
            fields = [f for f in form.fields if f.name in reply.errors]
            for field in fields:
                self.say(f"  ✗ {field.label}: {reply.errors[field.name]}")

    async def read_value(self, field: FormField) -> Any:
        while True:
            text = await self.read_text()
            if text is None:
                return None
            if field.kind != "checkbox":
                break
            ticked = _yes_or_no(text, kept=field.initial is True)
            if ticked is not None:
                return ticked
            # Never taken as no: "yse" at *Send anonymously* would send the rep's name.
            self.say(f"      Please answer y or n (Enter keeps: {'y' if field.initial is True else 'n'}).")
        if text == "/clear":
            return ""
        if not text and field.initial not in (None, "", []):
            return field.initial
        if field.kind == "select":
            picked = [self._option(field, item.strip()) for item in text.split(",") if item.strip()]
            return picked if field.multiple else (picked[0] if picked else "")
        return text

    async def read_text(self) -> str | None:
        """One answer, over several lines when they end in a backslash; None when abandoned."""
        parts: list[str] = []
        while True:
            line = await self.ask("    > ")
            if line is None or line.strip() == "/cancel":
                return None
            if line.endswith("\\"):
                parts.append(line[:-1])
                continue
            parts.append(line)
            return "\n".join(parts).strip()

    @staticmethod
    def _option(field: FormField, item: str) -> str:
        """An option by its number in the list, its value or its label."""
        if item.isascii() and item.isdigit() and 1 <= int(item) <= len(field.options):
            return field.options[int(item) - 1].value
        by_label = {o.label.casefold(): o.value for o in field.options}
        return by_label.get(item.casefold(), item)

    def post(self, which: str) -> Outbox:
        """A post by its number, or the latest one in `#channel` or sent directly to `@person`."""
        query = select(Outbox).where(Outbox.platform == "console", col(Outbox.message_ref).is_not(None))
        if which.startswith("#") and not which[1:].isdigit():
            query = query.where(Outbox.kind == outbox.POST, Outbox.address == which)
        elif which.startswith("@"):
            query = query.where(Outbox.kind == outbox.DIRECT, Outbox.address == which[1:])
        else:
            query = query.where(
                Outbox.message_ref == which.lstrip("#"), col(Outbox.kind).in_([outbox.POST, outbox.DIRECT])
            )
        with self.ctx.db.session() as session:
            row = session.exec(query.order_by(col(Outbox.id).desc())).first()
        if row is None:
            raise Refusal(f"There is no post {which[:30]} in the console.")
        return row

    def show(self, what: str) -> None:
        if not what.startswith("#") or what[1:].isdigit():
            row = self.post(what)
            self.say(boxed(f"{row.address} · post {row.message_ref}", Card.from_dict(row.card)))
            return
        with self.ctx.db.session() as session:
            rows = session.exec(
                select(Outbox)
                .where(
                    Outbox.platform == "console",
                    Outbox.address == what,
                    Outbox.kind == outbox.POST,
                    col(Outbox.message_ref).is_not(None),
                )
                .order_by(col(Outbox.id).desc())
                .limit(5)
            ).all()
        if not rows:
            self.say(f"Nothing was posted to {what[:60]} yet.")
        for row in reversed(rows):
            self.say(boxed(f"{row.address} · post {row.message_ref}", Card.from_dict(row.card)))

    def people(self) -> str:
        lines = []
        for key, person in self.ctx.org.people.items():
            roles = sorted(r for r, refs in self.ctx.org.roles.items() if key in refs)
            lines.append(f"  {key:<10} {person.name:<24} {', '.join(roles)}")
        return "\n".join(lines)

    async def call(self, entry: Callable[..., Reply], actor: Actor, *args: Any) -> Reply:
        # Handlers are synchronous and touch the database: keep them off the event loop.
        return await asyncio.to_thread(entry, self.ctx, actor, *args)

    async def ask(self, prompt: str) -> str | None:
        return await asyncio.to_thread(self.read_line, prompt)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _yes_or_no(text: str, *, kept: bool) -> bool | None:
    """A box ticked (True) or not (False), or None when the answer is unclear. Enter keeps what
    is shown, and an untouched box is unticked."""
    if text == "":
        return kept
    if text == "/clear" or text.lower() in forms.NO:
        return False
    if text.lower() in forms.YES:
        return True
    return None


def terminal_reader(stdin: TextIO, out: TextIO) -> ReadLine:
    """Read from a terminal with `input()`, or from a script, echoing it so the transcript reads well."""
    interactive = stdin.isatty()

    def read(prompt: str) -> str | None:
        if interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = stdin.readline()
        if not line:
            return None
        line = line.rstrip("\n")
        out.write(f"{prompt}{line}\n")
        return line

    return read


async def run_console(ctx: Context, person: str, *, stdin: TextIO, out: TextIO, live: bool = False) -> None:
    """The console session. `live` also delivers in the background what arrives on its own
    (a scheduled pulse, a reminder), as a chat would; a script leaves it off, so that what it
    prints depends on its commands alone."""
    platform = ConsolePlatform(out, ctx.org)
    worker = DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock)
    console = Console(ctx, worker, out=out, read_line=terminal_reader(stdin, out), person=person)
    stop = asyncio.Event()
    background = asyncio.create_task(worker.run_forever(stop)) if live else None
    try:
        await console.run()
    finally:
        stop.set()
        if background is not None:
            await background
