"""Assets: marketers launch them to the field, ask for input on drafts, and learn what helps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import directory, forms, messages, numbered, themes
from handlers.context import Actor, Context, FormErrors, Refusal
from handlers.text import clip, count
from handlers.ui import Button, Card, Fact, Form, FormField, Option, Reply, Section
from storage import audit, outbox
from storage.models import (
    Asset,
    AssetAudience,
    AssetFeedback,
    Audience,
    Decision,
    Objection,
    Suggestion,
)

PUBLISH_FORM, DRAFT_FORM, DOESNT_FIT_FORM, SUGGEST_FORM = (
    "asset.publish",
    "asset.draft",
    "asset.doesnt_fit",
    "asset.suggest",
)
USEFUL, USED, DOESNT_FIT, SUGGEST = "asset.useful", "asset.used", "asset.doesnt_fit", "asset.suggest"
KINDS = {
    "deck": "Deck",
    "battlecard": "Battlecard",
    "case-study": "Case study",
    "one-pager": "One-pager",
    "email-template": "Email template",
    "video": "Video",
    "other": "Other",
}
# How each kind of feedback reads in a sentence about the asset: "“Battlecard” {words}".
FEEDBACK_WORDS = {
    "useful": "is useful",
    "used": "was used with a customer",
    "doesnt-fit": "doesn't fit the field",
}
LOOP_WINDOW = timedelta(days=90)  # reps who heard a theme this recently hear about its answer
INPUT_CLOSES_AT = time(17, 0)  # a draft's input closes at 17:00, the owner's time, on the chosen day
MAX_INPUT_DAYS = 60
USAGE = (
    "/asset — publish an asset to the field (marketers)\n"
    "/asset draft — ask the field for input on a draft before launch, with a deadline (marketers)\n"
    "/asset publish <id> — launch a draft\n"
    "/asset show <id> — an asset with its feedback\n"
    "/asset list — the latest assets"
)
LIST_LIMIT = 20


def on_command(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "":
        _require_marketer(ctx, actor, "publish assets")
        return Reply(form=asset_form(session, ctx, draft=False))
    if verb == "draft" and not rest:
        _require_marketer(ctx, actor, "ask the field about drafts")
        return Reply(form=asset_form(session, ctx, draft=True))
    if verb == "publish":
        _require_marketer(ctx, actor, "publish assets")
        asset = _find(session, rest)
        if asset.status != "draft":
            raise Refusal(f"Asset #{asset.id} is already published.")
        return Reply(form=asset_form(session, ctx, draft=False, based_on=asset))
    if verb == "show":
        return show(session, ctx, actor, _find(session, rest))
    if verb == "list" and not rest:
        return list_assets(session, ctx)
    if verb == "help":
        return Reply(text=USAGE)
    return Reply(text=f"I don't know /asset {verb[:40]}. Try:\n{USAGE}")


# --- publishing and drafts ---------------------------------------------------------------------


def asset_form(session: Session, ctx: Context, *, draft: bool, based_on: Asset | None = None) -> Form:
    decisions = session.exec(
        select(Decision).where(Decision.status == "active").order_by(col(Decision.id).desc()).limit(50)
    ).all()
    old = based_on
    fields = [
        FormField("title", "Title", required=True, max_length=150, initial=old.title if old else None),
        FormField(
            "link",
            "Link",
            kind="url",
            required=True,
            max_length=500,
            hint="where the field finds it",
            initial=old.link if old else None,
        ),
        FormField(
            "kind",
            "Kind",
            kind="select",
            required=True,
            options=tuple(Option(k, label) for k, label in KINDS.items()),
            initial=old.kind if old else None,
        ),
        FormField(
            "key_message",
            "Key message",
            required=True,
            multiline=True,
            max_length=1000,
            hint="the one thing a rep should say with it",
            initial=old.key_message if old else None,
        ),
        FormField(
            "decision",
            "Supports the decision",
            kind="select",
            options=tuple(Option(str(d.id), clip(f"#{d.id} {d.title}", 75)) for d in decisions),
            initial=str(old.decision_id) if old and old.decision_id else None,
        ),
        FormField(
            "themes",
            "Answers the objection themes",
            kind="select",
            multiple=True,
            options=tuple(Option(str(t.id), t.name) for t in themes.active(session)),
            initial=[str(t) for t in old.themes] if old else None,
        ),
        FormField(
            "audiences",
            "Audiences",
            kind="select",
            multiple=True,
            required=True,
            options=tuple(Option(k, a.label or k) for k, a in ctx.org.audiences.items()),
            initial=_audience_keys(session, old) if old else None,
        ),
    ]
    # A choice with nothing to choose from is only confusing.
    fields = [f for f in fields if f.kind != "select" or f.options]
    if draft:
        default = (ctx.now() + timedelta(days=3)).date().isoformat()
        fields.append(
            FormField(
                "input_until",
                "Input until",
                kind="date",
                required=True,
                initial=default,
                hint="the field's input closes at 17:00 your time that day",
            )
        )
    return Form(
        form_id=DRAFT_FORM if draft else PUBLISH_FORM,
        title="Draft for input" if draft else "Publish an asset",
        intro=(
            "The field sees the draft with a deadline and can suggest changes; you get every "
            "suggestion in one message when input closes."
            if draft
            else "Each audience gets a card to say whether it helps."
        ),
        submit_label="Ask the field" if draft else "Publish",
        fields=tuple(fields),
        state={"draft": str(old.id)} if old else {},
    )


def publish(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Launch an asset (new, or a draft) to its audiences, and tell reps who heard what it answers."""
    _require_marketer(ctx, actor, "publish assets")
    draft = _find(session, str(values["draft"]), lock=True) if values.get("draft") else None
    if draft is not None and draft.status != "draft":
        raise Refusal(f"Asset #{draft.id} is already published.")
    clean = forms.clean(asset_form(session, ctx, draft=False, based_on=draft), values)
    now = ctx.now()
    asset = draft or Asset(
        title="", link="", kind="", key_message="", owner_id=actor.person_id, created_at=now
    )
    _apply(session, asset, clean)
    asset.status, asset.published_at = "published", now
    if draft is not None:
        if draft.input_closed_at is None:
            _close_input(session, ctx, draft, now)  # launching early: the owner gets the input so far
        session.add(asset)
        session.flush()
        outbox.refresh_posts(
            session, subject=_draft_subject(asset), card=_launched_draft_card(asset).to_dict(), now=now
        )
    session.add(asset)
    session.flush()
    targets = _set_audiences(session, asset, clean["audiences"])
    messages.post(
        session,
        targets,
        asset_card(session, ctx, asset),
        subject=_subject(asset),
        now=now,
        sender_id=actor.person_id,
    )
    told = _close_the_loop(session, ctx, asset, now)
    audit.record(session, at=now, actor_id=actor.person_id, action="asset.publish", subject=_subject(asset))
    text = f"📎 Asset #{asset.id} “{asset.title}” is going out to {count(len(targets), 'channel')}."
    if told:
        heard = ", ".join(themes.names(session, asset.themes))
        text += f" {count(told, 'rep')} who heard {heard} objections will hear about it."
    return Reply(text=text)


def draft(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Show the field a draft with a deadline; their suggestions reach the owner when it passes."""
    _require_marketer(ctx, actor, "ask the field about drafts")
    now = ctx.now()

    def check(clean: dict[str, Any]) -> dict[str, str]:
        if clean.get("input_until") is None:
            return {}
        closes = _input_closes(clean["input_until"], actor.timezone)
        if closes <= now:
            return {"input_until": "The deadline must be in the future."}
        if closes > now + timedelta(days=MAX_INPUT_DAYS):
            return {"input_until": f"Give the field at most {MAX_INPUT_DAYS} days."}
        return {}

    clean = forms.clean(asset_form(session, ctx, draft=True), values, check=check)
    closes = _input_closes(clean["input_until"], actor.timezone)
    asset = Asset(
        title="",
        link="",
        kind="",
        key_message="",
        owner_id=actor.person_id,
        created_at=now,
        status="draft",
        input_until=closes,
    )
    _apply(session, asset, clean)
    session.add(asset)
    session.flush()
    targets = _set_audiences(session, asset, clean["audiences"])
    messages.post(
        session,
        targets,
        asset_card(session, ctx, asset),
        subject=_draft_subject(asset),
        now=now,
        sender_id=actor.person_id,
    )
    audit.record(session, at=now, actor_id=actor.person_id, action="asset.draft", subject=_subject(asset))
    return Reply(
        text=f"📝 Draft #{asset.id} “{asset.title}” is out for input in {count(len(targets), 'channel')} "
        f"until {_local(closes, actor.timezone)}. You will get every suggestion then; "
        f"launch it with /asset publish {asset.id}."
    )


def _input_closes(day: date, timezone: str) -> datetime:
    return datetime.combine(day, INPUT_CLOSES_AT, tzinfo=ZoneInfo(timezone))


def _apply(session: Session, asset: Asset, clean: dict[str, Any]) -> None:
    decision_id = int(clean["decision"]) if clean.get("decision") else None
    if decision_id is not None:
        decision = session.get(Decision, decision_id)
        if decision is None or decision.status != "active":
            raise FormErrors({"decision": "That decision is no longer active; choose another or none."})
    asset.title, asset.link, asset.kind = clean["title"], clean["link"], clean["kind"]
    asset.key_message, asset.decision_id = clean["key_message"], decision_id
    asset.themes = [int(t) for t in clean.get("themes") or []]


def _set_audiences(session: Session, asset: Asset, keys: list[str]) -> list[tuple[str, str]]:
    assert asset.id is not None
    for link in session.exec(select(AssetAudience).where(AssetAudience.asset_id == asset.id)):
        session.delete(link)
    session.flush()
    audiences = session.exec(select(Audience).where(col(Audience.key).in_(keys))).all()
    for audience in audiences:
        assert audience.id is not None
        session.add(AssetAudience(asset_id=asset.id, audience_id=audience.id))
    return directory.channels_of(session, [a.id for a in audiences if a.id is not None])


def _close_the_loop(session: Session, ctx: Context, asset: Asset, now: datetime) -> int:
    """Every rep who logged an objection this asset answers, in the last 90 days, is told."""
    if not asset.themes:
        return 0
    reporters = session.exec(
        select(Objection.reporter_id)
        .where(
            col(Objection.theme_id).in_(asset.themes),
            col(Objection.created_at) >= now - LOOP_WINDOW,
            col(Objection.reporter_id).is_not(None),
            col(Objection.reporter_id) != asset.owner_id,
        )
        .distinct()
    ).all()
    people = sorted(p for p in reporters if p is not None)
    card = asset_card(session, ctx, asset)
    answered = Card(
        title=f"Marketing answered what you heard: {asset.title}",
        sections=(
            Section(
                text=f"You logged a {' / '.join(themes.names(session, asset.themes))} objection lately. "
                "This is for it."
            ),
            *card.sections,
        ),
        buttons=card.buttons,
        footer=card.footer,
    )
    return messages.send_to_each(session, people, answered, subject=_subject(asset), now=now)


# --- the field's feedback ----------------------------------------------------------------------


def mark_useful(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
    return _feedback(session, ctx, actor, asset_id, "useful")


def mark_used(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
    return _feedback(session, ctx, actor, asset_id, "used")


def mark_doesnt_fit(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
    """A 👎 reaction: doesn't fit, with no reason given."""
    return _feedback(session, ctx, actor, asset_id, "doesnt-fit")


def open_doesnt_fit(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
    """*Doesn't fit the field* asks why, in a short form."""
    return Reply(form=_doesnt_fit_form(session, _open_for_feedback(ctx, _find(session, asset_id))))


def _doesnt_fit_form(session: Session, asset: Asset) -> Form:
    return Form(
        form_id=DOESNT_FIT_FORM,
        title="Doesn't fit the field",
        intro=f"Why doesn't “{clip(asset.title, 80)}” fit what you see with customers? "
        f"{directory.name_of(session, asset.owner_id)} reads every answer.",
        submit_label="Send",
        fields=(FormField("reason", "Why", required=True, multiline=True, max_length=500),),
        state={"asset": str(asset.id)},
    )


def doesnt_fit(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    asset = _find(session, str(values.get("asset", "")))
    reason = forms.clean(_doesnt_fit_form(session, asset), values)["reason"]
    return _feedback(session, ctx, actor, str(asset.id), "doesnt-fit", reason=reason)


def _feedback(
    session: Session, ctx: Context, actor: Actor, asset_id: str, kind: str, *, reason: str | None = None
) -> Reply:
    asset = _open_for_feedback(ctx, _find(session, asset_id, lock=True))
    if kind == "used" and asset.status == "draft":
        raise Refusal("A draft is not for customers yet; tell the owner with “Suggest a change”.")
    assert asset.id is not None
    now = ctx.now()
    existing = session.exec(
        select(AssetFeedback).where(
            AssetFeedback.asset_id == asset.id,
            AssetFeedback.person_id == actor.person_id,
            AssetFeedback.kind == kind,
        )
    ).first()
    if existing is not None and (kind != "doesnt-fit" or reason is None or reason == existing.reason):
        return Reply(text=f"You already said “{asset.title}” {FEEDBACK_WORDS[kind]}. Thanks!")
    feedback = existing or AssetFeedback(asset_id=asset.id, person_id=actor.person_id, kind=kind, at=now)
    feedback.reason, feedback.at = reason, now
    session.add(feedback)
    session.flush()
    if kind == "doesnt-fit":
        why = reason or "(no reason given: it was a 👎 reaction)"
        _tell_owner(
            session,
            ctx,
            asset,
            Card(
                title=f"Doesn't fit the field: {asset.title}",
                sections=(Section(text=why, facts=(Fact("From", actor.name),)),),
                footer=f"Asset #{asset.id} · /asset show {asset.id}",
            ),
        )
    _refresh(session, ctx, asset)
    owner = " Its owner has your reason." if kind == "doesnt-fit" else ""
    return Reply(text=f"Thanks, {actor.name}: noted that “{asset.title}” {FEEDBACK_WORDS[kind]}.{owner}")


def take_back(kind: str) -> Callable[[Session, Context, Actor, str], Reply]:
    """The handler for removing a reaction that gave feedback of `kind`."""

    def undo(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
        asset = _find(session, asset_id, lock=True)
        existing = session.exec(
            select(AssetFeedback).where(
                AssetFeedback.asset_id == asset.id,
                AssetFeedback.person_id == actor.person_id,
                AssetFeedback.kind == kind,
            )
        ).first()
        if existing is None:
            return Reply()
        session.delete(existing)
        session.flush()
        _refresh(session, ctx, asset)
        return Reply(text=f"Taken back: that “{asset.title}” {FEEDBACK_WORDS[kind]}.")

    return undo


def open_suggestion(session: Session, ctx: Context, actor: Actor, asset_id: str) -> Reply:
    """*Suggest a change*, on a draft's card."""
    return Reply(form=_suggestion_form(ctx, _find(session, asset_id)))


def _suggestion_form(ctx: Context, asset: Asset) -> Form:
    _open_for_feedback(ctx, asset)
    if asset.status != "draft":
        raise Refusal(f"“{asset.title}” is already published; “Doesn't fit the field” tells its owner why.")
    return Form(
        form_id=SUGGEST_FORM,
        title="Suggest a change",
        intro=f"To the draft “{clip(asset.title, 80)}”. Its owner gets every suggestion when input closes.",
        submit_label="Send",
        fields=(FormField("text", "Your suggestion", required=True, multiline=True, max_length=1000),),
        state={"asset": str(asset.id)},
    )


def suggest(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    asset = _find(session, str(values.get("asset", "")), lock=True)
    text = forms.clean(_suggestion_form(ctx, asset), values)["text"]
    assert asset.id is not None
    session.add(Suggestion(asset_id=asset.id, person_id=actor.person_id, text=text, at=ctx.now()))
    session.flush()
    _refresh(session, ctx, asset)
    closes = _local(asset.input_until, actor.timezone) if asset.input_until else "input closes"
    return Reply(
        text=f"Thanks: {directory.name_of(session, asset.owner_id)} gets your suggestion on {closes}."
    )


def _open_for_feedback(ctx: Context, asset: Asset) -> Asset:
    if asset.status == "draft" and asset.input_closed_at is not None:
        raise Refusal(f"Input on the draft “{asset.title}” closed; it goes out once it is published.")
    return asset


# --- the draft deadline ------------------------------------------------------------------------


def close_due_drafts(ctx: Context) -> int:
    """Send each draft's owner every suggestion once its deadline has passed; returns how many
    drafts were closed. Running it again sends nothing new (the scheduler calls it)."""
    now = ctx.now()
    closed = 0
    with ctx.db.session() as session:
        due = session.exec(
            select(Asset)
            .where(
                Asset.status == "draft",
                col(Asset.input_closed_at).is_(None),
                col(Asset.input_until) <= now,
            )
            .with_for_update(skip_locked=True)
        ).all()
        for asset in due:
            _close_input(session, ctx, asset, now)
            closed += 1
    return closed


def _close_input(session: Session, ctx: Context, asset: Asset, now: datetime) -> None:
    assert asset.id is not None
    suggestions = session.exec(
        select(Suggestion).where(Suggestion.asset_id == asset.id).order_by(col(Suggestion.id))
    ).all()
    reasons = _feedback_rows(session, asset.id, "doesnt-fit")
    useful = len(_feedback_rows(session, asset.id, "useful"))
    sections = [
        Section(heading=f"Suggestion from {directory.name_of(session, s.person_id)}", text=s.text)
        for s in suggestions
    ]
    sections += [
        Section(
            heading=f"Doesn't fit — {directory.name_of(session, r.person_id)}", text=r.reason or "(no reason)"
        )
        for r in reasons
    ]
    if not sections:
        sections = [Section(text="Nobody suggested a change.")]
    _tell_owner(
        session,
        ctx,
        asset,
        Card(
            title=f"Input on your draft “{asset.title}”",
            sections=tuple(sections),
            footer=f"Draft #{asset.id} · {count(len(suggestions), 'suggestion')} · {useful} found it useful"
            f" · launch it with /asset publish {asset.id}",
        ),
    )
    asset.input_closed_at = now
    session.add(asset)
    session.flush()
    _refresh(session, ctx, asset)


# --- looking at assets -------------------------------------------------------------------------


def show(session: Session, ctx: Context, actor: Actor, asset: Asset) -> Reply:
    """An asset with its counts; its owner, marketers and leaders also read the reasons and suggestions."""
    assert asset.id is not None
    card = asset_card(session, ctx, asset)
    sections = list(card.sections)
    if actor.person_id == asset.owner_id or actor.has("marketer", "marketing-lead", "leader"):
        for row in _feedback_rows(session, asset.id, "doesnt-fit"):
            who = directory.name_of(session, row.person_id)
            sections.append(Section(heading=f"Doesn't fit — {who}", text=row.reason or "(a 👎, no reason)"))
        for suggestion in session.exec(select(Suggestion).where(Suggestion.asset_id == asset.id)):
            who = directory.name_of(session, suggestion.person_id)
            sections.append(Section(heading=f"Suggestion — {who}", text=suggestion.text))
    return Reply(card=Card(card.title, tuple(sections), card.buttons, card.footer))


def list_assets(session: Session, ctx: Context) -> Reply:
    assets = session.exec(select(Asset).order_by(col(Asset.id).desc()).limit(LIST_LIMIT)).all()
    if not assets:
        return Reply(text="No assets yet. Marketers publish one with /asset.")
    sections = []
    for asset in assets:
        assert asset.id is not None
        counts = _counts(session, asset.id)
        state = "draft" if asset.status == "draft" else "published"
        sections.append(
            Section(
                heading=f"#{asset.id} {asset.title} ({KINDS.get(asset.kind, asset.kind)}, {state})",
                text=f"{clip(asset.key_message, 200)}\n{_tally(counts)}",
            )
        )
    return Reply(card=Card(title="Assets", sections=tuple(sections), footer="/asset show <id> for feedback"))


def asset_card(session: Session, ctx: Context, asset: Asset) -> Card:
    """The card the field sees, with the live counts of what they said about it."""
    assert asset.id is not None
    facts = [Fact("Kind", KINDS.get(asset.kind, asset.kind)), Fact("Link", asset.link)]
    if asset.decision_id:
        decision = session.get(Decision, asset.decision_id)
        if decision:
            facts.append(Fact("Supports", f"decision #{decision.id} “{decision.title}”"))
    if asset.themes:
        facts.append(Fact("Answers", ", ".join(themes.names(session, asset.themes))))
    facts.append(Fact("From", directory.name_of(session, asset.owner_id)))
    counts = _counts(session, asset.id)
    if asset.status == "draft":
        assert asset.input_until is not None
        tz = directory.timezone_of(session, ctx.org, asset.owner_id)
        facts.append(Fact("Input until", _local(asset.input_until, tz)))
        closed = asset.input_closed_at is not None
        return Card(
            title=f"📝 Draft {'(input closed)' if closed else 'for your input'}: {asset.title}",
            sections=(Section(text=asset.key_message), Section(facts=tuple(facts))),
            buttons=()
            if closed
            else (
                Button("Useful", USEFUL, str(asset.id), "primary"),
                Button("Doesn't fit the field", DOESNT_FIT, str(asset.id)),
                Button("Suggest a change", SUGGEST, str(asset.id)),
            ),
            footer=f"Draft #{asset.id} · {count(counts['suggestions'], 'suggestion')} so far",
        )
    return Card(
        title=f"📎 {asset.title}",
        sections=(Section(text=asset.key_message), Section(facts=tuple(facts))),
        buttons=(
            Button("Useful", USEFUL, str(asset.id), "primary"),
            Button("Used with a customer", USED, str(asset.id)),
            Button("Doesn't fit the field", DOESNT_FIT, str(asset.id)),
        ),
        footer=f"Asset #{asset.id} · {_tally(counts)}",
    )


def _launched_draft_card(asset: Asset) -> Card:
    return Card(
        title=f"Launched: {asset.title}",
        sections=(Section(text="This draft is now published; look for its launch post."),),
        footer=f"Asset #{asset.id}",
    )


def _counts(session: Session, asset_id: int) -> dict[str, int]:
    rows = session.exec(
        select(AssetFeedback.kind, func.count())
        .where(AssetFeedback.asset_id == asset_id)
        .group_by(col(AssetFeedback.kind))
    ).all()
    counts = {"useful": 0, "used": 0, "doesnt-fit": 0, **dict(rows)}
    counts["suggestions"] = session.exec(
        select(func.count()).select_from(Suggestion).where(Suggestion.asset_id == asset_id)
    ).one()
    return counts


def _tally(counts: dict[str, int]) -> str:
    return (
        f"{counts['useful']} useful · {counts['used']} used with customers · "
        f"{counts['doesnt-fit']} doesn't fit"
    )


def _feedback_rows(session: Session, asset_id: int, kind: str) -> list[AssetFeedback]:
    return list(
        session.exec(
            select(AssetFeedback)
            .where(AssetFeedback.asset_id == asset_id, AssetFeedback.kind == kind)
            .order_by(col(AssetFeedback.at))
        ).all()
    )


def _refresh(session: Session, ctx: Context, asset: Asset) -> None:
    subject = _draft_subject(asset) if asset.status == "draft" else _subject(asset)
    outbox.refresh_posts(
        session, subject=subject, card=asset_card(session, ctx, asset).to_dict(), now=ctx.now()
    )


def _tell_owner(session: Session, ctx: Context, asset: Asset, card: Card) -> None:
    if not messages.direct(session, asset.owner_id, card, subject=f"owner:{asset.id}", now=ctx.now()):
        raise Refusal(
            "Nothing was sent: the asset's owner cannot be reached on any platform Touchline knows."
        )


def _find(session: Session, text: str, *, lock: bool = False) -> Asset:
    if numbered.number_in(text) is None:
        raise Refusal(f"Which asset? Give its number, e.g. /asset show 3.\n{USAGE}")
    asset = numbered.find(session, Asset, text, lock=lock)
    if asset is None:
        raise Refusal(f"There is no asset #{numbered.number_in(text)}. /asset list shows the latest.")
    return asset


def _require_marketer(ctx: Context, actor: Actor, what: str) -> None:
    if not actor.has("marketer", "marketing-lead"):
        marketers = ", ".join(directory.holders_of(ctx.org, "marketer")) or "nobody yet"
        raise Refusal(
            f"Only marketers can {what}. Marketers here: {marketers}. "
            "An admin can add you under roles: marketer in app.yaml."
        )


def _audience_keys(session: Session, asset: Asset) -> list[str]:
    return list(
        session.exec(
            select(Audience.key)
            .join(AssetAudience, col(AssetAudience.audience_id) == col(Audience.id))
            .where(AssetAudience.asset_id == asset.id)
        ).all()
    )


def _subject(asset: Asset) -> str:
    return f"asset:{asset.id}"


def _draft_subject(asset: Asset) -> str:
    return f"draft:{asset.id}"


def _local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M (%Z)")
