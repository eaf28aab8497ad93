"""Objections: reps log what customers say in one command; marketers see themes with many voices."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, insert, update
from sqlmodel import Session, col, select

from handlers import directory, forms, matching, numbered, themes
from handlers.context import Actor, Context, FormErrors, Refusal
from handlers.text import clip, count, ordinal
from handlers.ui import Button, Card, Fact, Form, FormField, Option, Reply, Section
from storage import audit
from storage.models import Objection, Theme

FORM_ID = "objection.log"
EDIT, WITHDRAW, FROM_MESSAGE = "objection.edit", "objection.withdraw", "objection.from_message"
MAX_TEXT = 2000
SAME_WINDOW = timedelta(days=30)  # "you are the 7th rep to hear this in the last 30 days"
EDIT_WINDOW = timedelta(hours=24)
SEVERITIES = ("low", "medium", "high")
USAGE = (
    "/objection <what the customer said> — log it in one step, e.g. /objection too expensive vs Acme\n"
    "/objection — the full form (competitor, segment, product, deal stage and size, deal link, severity)\n"
    "/objection mine — what you logged; edit or withdraw it within 24 hours\n"
    "/objection edit <id> · /objection withdraw <id>\n"
    "/objection list [theme] — the themes and who hears them (marketers, leaders)"
)
LIST_GROUPS = 8
RECENT_OBJECTIONS = 200  # of its theme, a new objection is compared with (and their groups' first)
MINE_LIMIT = 15


def on_command(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    """`/objection <text>` logs; `/objection` opens the form; `list`, `mine`, `edit`, `withdraw`."""
    stripped = text.strip()
    verb, _, rest = stripped.partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if not stripped:
        return Reply(form=objection_form(ctx))
    if verb == "help" and not rest:
        return Reply(text=USAGE)
    if verb == "mine" and not rest:
        return mine(session, ctx, actor)
    if verb == "list" and not rest:
        return list_objections(session, ctx, actor, theme=None)
    if verb == "list" and (theme := themes.find(session, rest)) is not None:
        return list_objections(session, ctx, actor, theme=theme)
    if verb == "list" and actor.has("marketer", "marketing-lead", "leader"):
        # For those who list themes, "list <something>" is a theme they mistyped, not an objection.
        raise Refusal(f"There is no theme {rest[:40]!r}. /objection theme lists the themes.")
    if verb == "theme" and not rest:
        if not actor.has("marketer", "marketing-lead", "leader"):
            raise Refusal("Only marketers and leaders look at the themes. /objection mine shows yours.")
        return Reply(card=themes.overview(session))
    if verb == "theme":
        return themes.on_command(session, ctx, actor, rest)
    if verb in ("edit", "withdraw") and rest.lstrip("#").isdigit():
        return (edit if verb == "edit" else withdraw)(session, ctx, actor, rest.lstrip("#"))
    # Anything else is what the customer said.
    return log(session, ctx, actor, {"text": stripped})


# --- logging -----------------------------------------------------------------------------


def from_message(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    """ "Log as objection" on any message: the full form, with the message as the objection."""
    return Reply(form=objection_form(ctx, said=clip(" ".join(text.split()), MAX_TEXT)))


def objection_form(ctx: Context, *, editing: Objection | None = None, said: str | None = None) -> Form:
    taxonomy = ctx.org.objections
    old = editing

    def choices(values: list[str]) -> tuple[Option, ...]:
        return tuple(Option(v, v) for v in values)

    return Form(
        form_id=FORM_ID,
        title="Edit the objection" if old else "Log an objection",
        intro="What did the customer say, in their words? Everything but the objection is optional.",
        submit_label="Save" if old else "Log it",
        state={"objection": str(old.id)} if old else {},
        fields=(
            FormField(
                "text",
                "The objection",
                required=True,
                multiline=True,
                max_length=MAX_TEXT,
                hint="e.g. “Acme quoted us 30% less for the same seats”",
                initial=old.text if old else said,
            ),
            FormField(
                "competitor",
                "Competitor",
                max_length=100,
                hint=("known: " + ", ".join(taxonomy.competitors)) if taxonomy.competitors else "",
                suggestions=tuple(taxonomy.competitors),
                initial=old.competitor if old else None,
            ),
            FormField(
                "segment",
                "Segment",
                kind="select",
                options=choices(taxonomy.segments),
                initial=old.segment if old else None,
            ),
            FormField(
                "product",
                "Product",
                max_length=100,
                suggestions=tuple(taxonomy.products),
                hint=("e.g. " + ", ".join(taxonomy.products)) if taxonomy.products else "",
                initial=old.product if old else None,
            ),
            FormField(
                "deal_stage",
                "Deal stage",
                kind="select",
                options=choices(taxonomy.deal_stages),
                initial=old.deal_stage if old else None,
            ),
            FormField(
                "deal_size",
                "Deal size",
                kind="select",
                options=choices(taxonomy.deal_sizes),
                initial=old.deal_size if old else None,
            ),
            FormField(
                "deal_link",
                "Deal link",
                kind="url",
                max_length=500,
                hint="the deal in your CRM",
                initial=old.deal_link if old else None,
            ),
            FormField(
                "severity",
                "Severity",
                kind="select",
                options=choices(list(SEVERITIES)),
                initial=old.severity if old else "medium",
            ),
            FormField(
                "confidential",
                "Confidential: only marketing leads see it, never with your name",
                kind="checkbox",
                initial=old.confidential if old else False,
            ),
        ),
    )


def log(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Record an objection (one line or the full form), give it a theme and its group of like ones."""
    editing = _own(session, ctx, actor, str(values["objection"])) if values.get("objection") else None
    try:
        clean = forms.clean(objection_form(ctx, editing=editing), values)
    except FormErrors as invalid:
        if set(invalid.errors) == {"text"} and set(values) <= {"text"}:
            # The one-line command has no form to show the error in: say it with the usage.
            raise Refusal(f"{invalid.errors['text']}.\n{USAGE}") from None
        raise
    now = ctx.now()
    rethink = editing is None or (editing.text, editing.competitor) != (clean["text"], clean["competitor"])
    objection = editing or Objection(text="", theme_id=0, reporter_id=actor.person_id, created_at=now)
    before = editing.theme_id if editing else None
    for name in ("text", "competitor", "segment", "product", "deal_stage", "deal_size", "deal_link"):
        setattr(objection, name, clean[name])
    objection.severity = clean["severity"] or "medium"
    objection.confidential = bool(clean["confidential"])
    # A competitor the text names is the objection's competitor, not what it is about: "too
    # expensive vs Acme" is a price objection, competitor Acme.
    theme: themes.Assigned | None = None
    if not rethink:
        objection.competitor = (
            objection.competitor or competitor_in(objection.text, ctx.org.objections.competitors)[0]
        )
    else:
        theme = theme_for(session, ctx, objection, now)
        if objection.theme_id != theme.id:
            objection.placed = False  # its new words put it elsewhere: not where a marketer put it
        objection.theme_id = theme.id
    if editing:
        objection.updated_at = now
    # Its group is found before it is written, so that joining a group is one insert.
    match = group_for(session, objection, now)
    objection.group_id = match
    if editing:
        session.add(editing)
        session.flush()
    else:
        # A new one is written by a statement built once, not flushed from the session: the
        # object stays the session's stranger, what the receipt is drawn from.
        written = {column: getattr(objection, column) for column in _WRITTEN}
        objection.id = session.connection().execute(_WRITE, written).scalar_one()
    assert objection.id is not None
    if match is None:
        objection.group_id = objection.id  # the first of a group of its own
        session.connection().execute(_FOUNDS, {"objection": objection.id})
    if editing:
        # What it says, or whether it is confidential, changed: so may the names it gave, and
        # the themes' sizes and profiles (the theme it left still counted it).
        session.flush()
        for theme_id in sorted({objection.theme_id, before or objection.theme_id}):
            if (touched := numbered.find(session, Theme, str(theme_id), lock=True)) is not None:
                themes.rebuild(session, ctx, touched)
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="objection.edit" if editing else "objection.log",
        subject=f"objection:{objection.id}",
    )
    # A group of its own holds only this one, unless an edit left others in the group it founded.
    heard = 1 if match is None and not editing else reporters(session, objection, now)
    if editing:
        # It may have moved, and its themes been renamed (settle_name): what they are called now.
        current = session.get(Theme, objection.theme_id)
        theme = themes.Assigned(objection.theme_id, current.name, current.origin) if current else None
    text = _recorded(objection, theme, heard, edited=bool(editing))
    return Reply(text=text, card=_receipt(objection))


# What a new objection's insert writes: every column but its number and when it was edited.
_WRITTEN = tuple(c.name for c in Objection.__table__.columns if c.name not in ("id", "updated_at"))  # type: ignore[attr-defined]
_WRITE = insert(Objection).returning(col(Objection.id))
_FOUNDS = (
    update(Objection).where(col(Objection.id) == bindparam("objection")).values(group_id=col(Objection.id))
)


ANOTHER = "another vendor"  # what a competitor's name is said as when finding a theme
_VERSUS = re.compile(r"\b(?:vs\.?|versus|against)\s+([A-Z][\w&.-]{1,40}(?:\s+[A-Z][\w&.-]{1,40})?)")


def competitor_in(text: str, known: Sequence[str]) -> tuple[str | None, str]:
    """The competitor a text names (one app.yaml lists, by its name as a whole word in any case,
    or a capitalised name after "vs", "versus" or "against"), and the text with that name said
    as "another vendor", which is what its theme is found from: which competitor it is makes two
    objections no more alike, while that it is one is part of what was said ("they are happy
    with another vendor"); "too expensive vs Acme" is about price, "Acme has an app" about mobile."""
    for name in sorted(known, key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)
        if pattern.search(text):
            return name, pattern.sub(ANOTHER, text)
    if found := _VERSUS.search(text):
        name = found.group(1).rstrip(".")
        return name[:100], text[: found.start(1)] + ANOTHER + text[found.start(1) + len(name) :]
    return None, text


def compared(text: str, competitor: str | None, known: Sequence[str]) -> tuple[str | None, str, str]:
    """What an objection's theme is found from: the competitor its text names, the text with
    that name said as "another vendor", and the hint a named competitor adds to the cue words."""
    named, about = competitor_in(text, known)
    return named, about, "competitor" if competitor or named else ""


def theme_for(session: Session, ctx: Context, objection: Objection, now: datetime) -> themes.Assigned:
    """The theme for an objection being recorded, imported or edited; a competitor its text
    names fills its competitor field, if that is empty."""
    named, about, hint = compared(objection.text, objection.competitor, ctx.org.objections.competitors)
    objection.competitor = objection.competitor or named
    return themes.assign(session, ctx, about, hint=hint, confidential=objection.confidential, now=now)


def group_for(session: Session, objection: Objection, now: datetime) -> int | None:
    """The group of the most similar of its theme's representatives of the last 30 days, or
    None for a group of its own. Called with the theme row locked (`themes.assign`), so that two
    like objections arriving at once queue up and the second joins the group the first started."""
    match = matching.best_match(objection.text, representatives(session, objection, now))
    return match.group_id if match else None


def representatives(session: Session, objection: Objection, now: datetime) -> list[matching.Candidate]:
    """What a new objection is compared with: the theme's latest objections of the last 30 days
    and the first objection of each of their groups, at most 2 × RECENT_OBJECTIONS however full
    the month (comparing with all of them took 0.5 to 3.9 s at 100,000). A theme with fewer in the
    month than that is compared with all of them, as before."""
    # Core statements built once, run on the unit of work's connection: the ORM's building and
    # loading of these reads was most of the cost of recording an objection.
    session.flush()  # what the unit of work holds is read as well
    of_theme = {"theme": objection.theme_id, "since": now - SAME_WINDOW, "me": objection.id or 0}
    connection = session.connection()
    latest = [(id_, group_id, text) for id_, group_id, text in connection.execute(_LATEST, of_theme)]
    read = {id_ for id_, _, _ in latest}
    firsts = sorted({g for _, g, _ in latest if g is not None and g not in read} - {objection.id})
    fitting = []
    if firsts:
        founders = connection.execute(_FOUNDERS, {**of_theme, "ids": firsts})
        fitting = [(id_, group_id, text) for id_, group_id, text, fits in founders if fits]
    return _one_per_wording([*latest, *fitting])


def _one_per_wording(rows: list[tuple[int | None, int | None, str]]) -> list[matching.Candidate]:
    # One candidate per wording of a group, the earliest: they all score the same, and the
    # earliest is the one the tie-break (lowest id) would pick.
    kept: dict[tuple[int, str], matching.Candidate] = {}
    for id_, group_id, text in sorted(rows, key=lambda row: row[0] or 0):
        if id_ is not None:
            kept.setdefault((group_id or id_, text), matching.Candidate(id_, group_id or id_, text))
    return list(kept.values())


# The other objections of a theme since a moment (`me`: the one being recorded, 0 for a new one).
_OF_THEME = and_(
    col(Objection.theme_id) == bindparam("theme"),
    col(Objection.created_at) >= bindparam("since"),
    col(Objection.id) != bindparam("me"),
)
_SEEN = select(Objection.id, Objection.group_id, Objection.text)
# Newest first along the (theme_id, created_at) index, so that only these rows are read.
_LATEST = (
    _SEEN.where(_OF_THEME)
    .order_by(col(Objection.created_at).desc(), col(Objection.id).desc())
    .limit(RECENT_OBJECTIONS)
)
# The groups' first objections, found by their ids. Whether one fits the theme and the window is
# read, not searched on: given them to search, SQLite scans the theme's month by the
# (theme_id, created_at) index instead of the ids.
_FOUNDERS = _SEEN.add_columns(_OF_THEME.label("fits")).where(
    col(Objection.id).in_(bindparam("ids", expanding=True))
)


def _recorded(objection: Objection, theme: themes.Assigned | None, heard: int, *, edited: bool) -> str:
    what = "Updated" if edited else "Recorded"
    lines = [f"📝 {what}: “{clip(objection.text, 300)}” — theme: {theme.name if theme else '?'}."]
    if heard > 1:
        lines.append(f"You are the {ordinal(heard)} rep to hear this in the last 30 days.")
    else:
        lines.append("You are the first rep to log this in the last 30 days.")
    if objection.confidential:
        lines.append("It is confidential: only marketing leads will see it, and never with your name.")
    if theme is not None and theme.origin == themes.UNNAMED:
        lines.append(
            "Its theme has no name yet, so that nothing you wrote shows; a marketing lead will name it."
        )
    return "\n".join(lines)


def reporters(session: Session, objection: Objection, now: datetime) -> int:
    """How many reps heard the objection's group in the last 30 days, its own reporter among
    them: the N of "You are the Nth rep to hear this"."""
    session.flush()
    connection = session.connection()
    counted = _HEARD_PLANNED if connection.dialect.name == "postgresql" else _HEARD
    heard = {"group": objection.group_id, "since": now - SAME_WINDOW}
    return int(connection.execute(counted, heard).scalar_one())


# A range of the (group_id, created_at, reporter_id) index, read from the index alone: the group's
# older objections are not read.
_HEARD = select(func.count(func.distinct(Objection.reporter_id))).where(
    col(Objection.group_id) == bindparam("group"), col(Objection.created_at) >= bindparam("since")
)
# On PostgreSQL the window's start is written into the statement, not bound, so that it plans it
# knowing the window, prepared or not (psycopg prepares a statement run five times): bound, the
# generic plan it settled on walked the whole month by the created_at index until autovacuum came
# by (40 ms against 3 at 100,000). Elsewhere it is bound: written in, it is rendered again for
# every count.
_HEARD_PLANNED = select(func.count(func.distinct(Objection.reporter_id))).where(
    col(Objection.group_id) == bindparam("group"),
    col(Objection.created_at) >= bindparam("since", literal_execute=True),
)


def _receipt(objection: Objection) -> Card:
    facts = [
        Fact(label, value)
        for label, value in (
            ("Competitor", objection.competitor),
            ("Segment", objection.segment),
            ("Product", objection.product),
            ("Deal stage", objection.deal_stage),
            ("Deal size", objection.deal_size),
            ("Deal", objection.deal_link),
            ("Severity", objection.severity),
        )
        if value
    ]
    return Card(
        title=f"Objection #{objection.id}",
        sections=(Section(text=objection.text, facts=tuple(facts)),),
        buttons=(
            Button("Add details" if not objection.segment else "Edit", EDIT, str(objection.id)),
            Button("Withdraw", WITHDRAW, str(objection.id), "danger"),
        ),
        footer="You can edit or withdraw it for 24 hours.",
    )


# --- your own objections -------------------------------------------------------------------


def mine(session: Session, ctx: Context, actor: Actor) -> Reply:
    objections = session.exec(
        select(Objection)
        .where(Objection.reporter_id == actor.person_id)
        .order_by(col(Objection.created_at).desc(), col(Objection.id).desc())
        .limit(MINE_LIMIT)
    ).all()
    if not objections:
        return Reply(text="You have not logged an objection yet. " + USAGE.splitlines()[0])
    names = dict(
        zip(
            {o.theme_id for o in objections},
            themes.names(session, sorted({o.theme_id for o in objections})),
            strict=False,
        )
    )
    now = ctx.now()
    sections = []
    for o in objections:
        open_until = o.created_at + EDIT_WINDOW
        can = f"edit or withdraw until {_local(open_until, actor)}" if now < open_until else "final"
        flags = " · confidential" if o.confidential else ""
        name = names.get(o.theme_id, "?")
        sections.append(Section(heading=f"#{o.id} · {name}{flags} · {can}", text=clip(o.text, 300)))
    return Reply(
        card=Card(
            title="Objections you logged",
            sections=tuple(sections),
            footer="/objection edit <id> or /objection withdraw <id> within 24 hours",
        )
    )


def edit(session: Session, ctx: Context, actor: Actor, objection_id: str) -> Reply:
    return Reply(form=objection_form(ctx, editing=_own(session, ctx, actor, objection_id)))


def withdraw(session: Session, ctx: Context, actor: Actor, objection_id: str) -> Reply:
    objection = _own(session, ctx, actor, objection_id)
    groupmates = session.exec(
        select(Objection).where(Objection.group_id == objection.id, col(Objection.id) != objection.id)
    ).all()
    if groupmates:
        # The group was named after this one: the oldest of the rest carries it on.
        heir = min(o.id for o in groupmates if o.id is not None)
        for other in groupmates:
            other.group_id = heir
            session.add(other)
    session.delete(objection)
    session.flush()
    if (theme := numbered.find(session, Theme, str(objection.theme_id), lock=True)) is not None:
        themes.settle_name(session, theme)  # its name may have come from what was withdrawn
    audit.record(
        session,
        at=ctx.now(),
        actor_id=actor.person_id,
        action="objection.withdraw",
        subject=f"objection:{objection_id}",
    )
    return Reply(text=f"Objection #{objection_id} is withdrawn: “{clip(objection.text, 200)}”.")


def _own(session: Session, ctx: Context, actor: Actor, objection_id: str) -> Objection:
    """The actor's own objection, still inside its 24 hours, locked while it changes."""
    objection = numbered.find(session, Objection, objection_id, lock=True)
    if objection is None or objection.reporter_id != actor.person_id:
        which = numbered.number_in(objection_id)
        raise Refusal(f"You have no objection #{which}. /objection mine lists yours." if which else USAGE)
    if ctx.now() >= objection.created_at + EDIT_WINDOW:
        raise Refusal(
            f"Objection #{objection.id} was logged more than 24 hours ago and can no longer be changed."
        )
    return objection


# --- what marketing sees ---------------------------------------------------------------------


def list_objections(session: Session, ctx: Context, actor: Actor, *, theme: Theme | None) -> Reply:
    """The last 30 days by theme, largest first, each theme's groups with how many reps hear them."""
    if not actor.has("marketer", "marketing-lead", "leader"):
        marketers = ", ".join(directory.holders_of(ctx.org, "marketer")) or "nobody yet"
        raise Refusal(
            f"Only marketers and leaders can list the field's objections (marketers here: {marketers}). "
            "/objection mine shows yours."
        )
    now = ctx.now()
    query = select(Objection).where(col(Objection.created_at) >= now - SAME_WINDOW)
    if theme:
        query = query.where(Objection.theme_id == theme.id)
    objections = session.exec(query.order_by(col(Objection.id))).all()
    if not objections:
        where = f" about {theme.name}" if theme else ""
        return Reply(text=f"No objections{where} in the last 30 days.")
    sees_confidential = actor.has("marketing-lead")
    by_theme: dict[int, list[Objection]] = {}
    for o in objections:
        by_theme.setdefault(o.theme_id, []).append(o)
    sections = []
    listed = {t.id: t for t in session.exec(select(Theme).where(col(Theme.id).in_(list(by_theme))))}
    theme_names = {theme_id: t.name for theme_id, t in listed.items()}
    for theme_id, items in sorted(by_theme.items(), key=lambda kv: (-len(kv[1]), theme_names.get(kv[0], ""))):
        name = theme_names.get(theme_id, "?")
        reps = len({o.reporter_id for o in items})
        heading = f"{name} — {count(len(items), 'objection')} from {count(reps, 'rep')}"
        sections.append(
            Section(heading=heading, text=_groups(session, items, sees_confidential, bool(theme)))
        )
    footer = "Last 30 days. " + (
        "Confidential objections are shown without names."
        if sees_confidential
        else "Confidential objections are counted but only marketing leads read them."
    )
    unnamed = sorted(t.id for t in listed.values() if t.origin == themes.UNNAMED and t.id is not None)
    if unnamed:
        footer += " A “Confidential theme” holds only confidential objections, so it has no name yet" + (
            f": name it with /objection theme rename {unnamed[0]} to <name>."
            if sees_confidential
            else "; a marketing lead will name it."
        )
    return Reply(card=Card(title="What the field is hearing", sections=tuple(sections), footer=footer))


def _groups(session: Session, items: list[Objection], sees_confidential: bool, detail: bool) -> str:
    groups: dict[int, list[Objection]] = {}
    for o in items:
        groups.setdefault(o.group_id or o.id or 0, []).append(o)
    ranked = sorted(groups.values(), key=lambda g: (-len({o.reporter_id for o in g}), -len(g), g[0].id or 0))
    lines = []
    for group in ranked[: LIST_GROUPS if not detail else 3 * LIST_GROUPS]:
        shown = [o for o in group if sees_confidential or not o.confidential]
        voice = shown[0] if shown else None
        reps = len({o.reporter_id for o in group})
        quote = f"“{clip(voice.text, 160)}”" if voice else "(confidential)"
        extras = Counter(
            o.competitor for o in group if o.competitor and (sees_confidential or not o.confidential)
        )
        also = f" · vs {extras.most_common(1)[0][0]}" if extras else ""
        lines.append(f"• {quote} — {count(reps, 'rep')}{also}")
        if detail:
            for o in shown[:5]:
                who = "confidential" if o.confidential else directory.name_of(session, o.reporter_id)
                facts = ", ".join(v for v in (o.segment, o.deal_stage, o.deal_size, o.severity) if v)
                lines.append(f"    #{o.id} {who}: {clip(o.text, 120)}" + (f" ({facts})" if facts else ""))
    if not detail and len(ranked) > LIST_GROUPS:
        lines.append(f"… and {len(ranked) - LIST_GROUPS} more; /objection list <theme> for all of one theme")
    return "\n".join(lines)


# --- helpers --------------------------------------------------------------------------------


def _local(moment: datetime, actor: Actor) -> str:
    return moment.astimezone(ZoneInfo(actor.timezone)).strftime("%a %d %b %H:%M")
