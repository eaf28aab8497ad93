"""The one way in: every platform turns its events into `command`, `action`, `submit` or `reaction`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from sqlmodel import Session

from handlers import assets, digest, help, objections, pulse, signin, strategy
from handlers.context import Actor, Context, FormErrors, PostRef, Refusal
from handlers.ui import Reply
from storage import inbound_events, inbox, outbox
from storage.database import UNREACHABLE

log = logging.getLogger(__name__)

# (session, ctx, actor, text or button value) -> Reply
OnText = Callable[[Session, Context, Actor, str], Reply]

COMMANDS: dict[str, OnText] = {
    "strategy": strategy.on_command,
    "objection": objections.on_command,
    "asset": assets.on_command,
    "pulse": pulse.on_command,
    "digest": digest.on_command,
}
ACTIONS: dict[str, OnText] = {
    strategy.ACK: strategy.acknowledge,
    strategy.ASK: strategy.open_question,
    strategy.CONCERN: strategy.open_concern,
    strategy.ANSWER: strategy.open_answer,
    objections.EDIT: objections.edit,
    objections.WITHDRAW: objections.withdraw,
    objections.FROM_MESSAGE: objections.from_message,
    assets.USEFUL: assets.mark_useful,
    assets.USED: assets.mark_used,
    assets.DOESNT_FIT: assets.open_doesnt_fit,
    assets.SUGGEST: assets.open_suggestion,
    pulse.ANSWER: pulse.open_answers,
}
# The buttons that change what is stored, which a platform keeps in the inbox until done; the
# others only open a form, which must happen within the platform's short-lived trigger.
CHANGES = frozenset({strategy.ACK, objections.WITHDRAW, assets.USEFUL, assets.USED})
FORMS: dict[str, Callable[[Session, Context, Actor, Mapping[str, Any]], Reply]] = {
    strategy.ANNOUNCE_FORM: strategy.announce,
    strategy.QUESTION_FORM: strategy.ask,
    strategy.ANSWER_FORM: strategy.answer,
    objections.FORM_ID: objections.log,
    assets.PUBLISH_FORM: assets.publish,
    assets.DRAFT_FORM: assets.draft,
    assets.DOESNT_FIT_FORM: assets.doesnt_fit,
    assets.SUGGEST_FORM: assets.suggest,
    pulse.FORM_ID: pulse.answer,
}
# What a reaction means: (kind of post, meaning from app.yaml, added or removed) -> handler.
REACTIONS: dict[tuple[str, str, bool], OnText] = {
    ("decision", "got-it", True): strategy.acknowledge,
    ("decision", "got-it", False): strategy.withdraw_acknowledgement,
    **{
        (post, meaning, True): handler
        for post in ("asset", "draft")
        for meaning, handler in (
            ("useful", assets.mark_useful),
            ("used-with-customer", assets.mark_used),
            ("doesnt-fit", assets.mark_doesnt_fit),
        )
    },
    **{
        (post, meaning, False): assets.take_back(kind)
        for post in ("asset", "draft")
        for meaning, kind in (
            ("useful", "useful"),
            ("used-with-customer", "used"),
            ("doesnt-fit", "doesnt-fit"),
        )
    },
}
# Platforms name emoji differently; reactions in app.yaml use Slack's short names.
EMOJI_NAMES = {
    "✅": "white_check_mark",
    "✔️": "heavy_check_mark",
    "✔": "heavy_check_mark",
    "👍": "+1",
    "👎": "-1",
    "❓": "question",
    "like": "+1",
}
MAX_COMMAND_TEXT = 4000
TRY_AGAIN = (
    "Touchline cannot reach its database right now and nothing was saved. Please try again in a minute."
)
# A platform's retry of something done already (Teams redelivers an activity it got no answer to).
ALREADY = "Touchline received that twice and did it once, the first time; nothing more was done."
BROKEN = (
    "Part of that text is a broken character (half of an emoji, a lone surrogate), which "
    "Touchline cannot store or send. Please type it again; nothing was saved."
)


def _broken(value: object) -> bool:
    """Whether `value` holds a lone surrogate anywhere: a platform's JSON may carry one
    ("\\ud800"), and no database stores it, nor any chat shows it."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, Mapping):
        return any(_broken(k) or _broken(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_broken(v) for v in value)
    return False


def command(
    ctx: Context,
    actor: Actor,
    name: str,
    text: str,
    *,
    receipt: int | None = None,
    event_id: str | None = None,
) -> Reply:
    """`/objection too expensive vs Acme` arrives as `command(actor, "objection", "too expensive ...")`.

    `receipt`, for this and the other three calls: the inbox item it came in as (storage/inbox.py),
    marked done in the unit of work that does it, so that it is done once however often it is tried;
    it is done when the call returns (what needed no unit of work is settled), and not when it
    raises (the database could not be reached: it is tried again).
    `event_id`, for this, `action` and `submit`: the platform's id of what arrived (on Teams,
    `activity:<id>`), recorded in the unit of work that does it; delivered again, it does
    nothing and says so (`ALREADY`). What was refused or failed is not recorded: tried again,
    it is tried again."""
    name = name.strip().lstrip("/").lower()
    if _broken(text):
        return _answered(ctx, receipt, Reply(text=BROKEN))
    if len(text) > MAX_COMMAND_TEXT:
        return _answered(
            ctx,
            receipt,
            Reply(
                text=f"That is {len(text):,} characters; commands take at most "
                f"{MAX_COMMAND_TEXT:,}. Please shorten it."
            ),
        )
    event = _event(actor, event_id)
    if name == "touchline" and text.strip().lower() == "dashboard":
        return _run(ctx, lambda s: signin.dashboard_link(s, ctx, actor), receipt, event)
    handler = COMMANDS.get(name)
    if handler is None:
        return _run(
            ctx,
            lambda s: help.overview(
                ctx, actor, unknown="" if name in ("help", "touchline", "") else f"/{name}"
            ),
            receipt,
            event,
        )
    return _run(ctx, lambda s: handler(s, ctx, actor, text), receipt, event)


def action(
    ctx: Context,
    actor: Actor,
    action_id: str,
    value: str,
    *,
    receipt: int | None = None,
    event_id: str | None = None,
) -> Reply:
    """A button on one of Touchline's cards was pressed."""
    handler = ACTIONS.get(action_id)
    if _broken(value):
        return _answered(ctx, receipt, Reply(text=BROKEN))
    if handler is None:
        gone = "That button no longer does anything. /help lists what you can do."
        return _answered(ctx, receipt, Reply(text=gone))
    return _run(ctx, lambda s: handler(s, ctx, actor, value), receipt, _event(actor, event_id))


def submit(
    ctx: Context, actor: Actor, form_id: str, values: Mapping[str, Any], *, event_id: str | None = None
) -> Reply:
    """A form Touchline opened was submitted (the form's `state` is merged into `values`). Field
    errors store nothing, the event id neither: the corrected form comes as a new event."""
    handler = FORMS.get(form_id)
    if handler is None:
        return Reply(text="That form has expired. Please start again from the command.")
    if _broken(values):
        return Reply(text=BROKEN)
    return _run(ctx, lambda s: handler(s, ctx, actor, values), event=_event(actor, event_id))


def reaction(
    ctx: Context,
    actor: Actor,
    post: PostRef,
    emoji: str,
    added: bool,
    *,
    event_id: str | None = None,
    receipt: int | None = None,
) -> Reply:
    """An emoji reaction on a Touchline post, mapped through `reactions:` in app.yaml.

    Reactions that mean nothing here, or on posts that are not Touchline's, are ignored:
    people react to messages for many reasons. `event_id` is the platform's id of the event:
    recorded in the same unit of work, so that a retry of it changes nothing, while a first
    delivery that failed half-way can still be retried.
    """
    meaning = ctx.org.reactions.get(normalise_emoji(emoji))
    if meaning is None:
        return _answered(ctx, receipt, Reply())

    def handle(session: Session) -> Reply:
        if event_id and not inbound_events.first_time(
            session, platform=post.platform, event_id=event_id, now=ctx.now()
        ):
            return Reply()
        row = outbox.find_post(
            session, platform=post.platform, address=post.address, message_ref=post.message_ref
        )
        if row is None:
            return Reply()
        kind, _, subject_id = row.subject.partition(":")
        handler = REACTIONS.get((kind, meaning, added))
        return handler(session, ctx, actor, subject_id) if handler else Reply()

    return _run(ctx, handle, receipt)


def normalise_emoji(emoji: str) -> str:
    name = emoji.strip().strip(":").split("::", 1)[0]  # drop Slack's ::skin-tone-N
    return EMOJI_NAMES.get(name, name)


def _event(actor: Actor, event_id: str | None) -> tuple[str, str] | None:
    return (actor.platform, event_id) if event_id else None


def _run(
    ctx: Context,
    body: Callable[[Session], Reply],
    receipt: int | None = None,
    event: tuple[str, str] | None = None,
) -> Reply:
    """One unit of work: all of it is stored, or, on a refusal or a failure, none of it. With a
    `receipt`, the inbox item is marked done in it; with an `event` (platform, event id), the
    event is recorded in it: tried again, either does nothing."""

    def unit(session: Session) -> Reply:
        if receipt is not None and not inbox.finish(session, receipt):
            raise _DoneAlready
        if event is not None and not inbound_events.first_time(
            session, platform=event[0], event_id=event[1], now=ctx.now()
        ):
            return Reply(text=ALREADY)
        return body(session)

    try:
        return ctx.db.run(unit)  # on SQLite, again if the write lock stayed taken
    except _DoneAlready:
        return Reply()
    except Refusal as refusal:
        settle(ctx, receipt)
        return Reply(text=refusal.message)
    except FormErrors as invalid:
        settle(ctx, receipt)
        return Reply(errors=invalid.errors)
    except UNREACHABLE as error:
        # The database cannot be reached (or stayed locked): what came through the inbox stays
        # there and is done when it can be; anything else is the person's to try again.
        log.warning("the database could not be reached: %s", type(error).__name__)
        if receipt is not None:
            raise
        return Reply(text=TRY_AGAIN)
    except Exception:
        settle(ctx, receipt)
        reference = secrets.token_hex(4)
        log.exception("handler failed (reference %s)", reference)
        return Reply(
            text="Something went wrong on Touchline's side and nothing was saved. Please try "
            f"again; if it keeps happening, tell your admin the reference {reference}."
        )


class _DoneAlready(Exception):
    """The inbox item was done by another attempt."""


def _answered(ctx: Context, receipt: int | None, reply: Reply) -> Reply:
    """`reply`, for what needed no unit of work, its inbox item marked done."""
    settle(ctx, receipt)
    return reply


def settle(ctx: Context, receipt: int | None) -> None:
    """Mark an inbox item done that needed no unit of work of its own (a refusal, a reply from
    memory); nothing if it is done already."""
    if receipt is None:
        return
    with ctx.db.read() as session:
        # Most items were marked done by their own unit of work: a read says so without
        # taking SQLite's write lock (one more write transaction for each command, otherwise).
        if inbox.done(session, receipt):
            return
    ctx.db.run(lambda session: inbox.finish(session, receipt))
