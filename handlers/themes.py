"""Themes: what objections are about. Each objection gets one as it is recorded; marketers
rename, merge, split and move them, and a theme keeps its id and name as objections join it.

A theme's name never comes from confidential text: Touchline names a theme it found after the
words of its first non-confidential objection, and a theme whose objections are all confidential
is called "Confidential theme <number>" until someone names it (a marketing lead, who can read
them) or a non-confidential objection joins it. `origin` says where the name came from, and so
whether Touchline may still change it; a name a person gave stays."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, func, select

from handlers import grouping, matching, numbered
from handlers.context import Actor, Context, Refusal
from handlers.matching import STOP_WORDS
from handlers.organisation import Organisation
from handlers.text import clip, count
from handlers.ui import Card, Reply, Section
from storage import audit
from storage.models import Asset, Objection, Theme

NAME_WORDS = 3
NAME_ATTEMPTS = 20  # "price", "price 2" ... "price 20"
# Where a theme's name came from. Touchline keeps the automatic ones honest as objections come
# and go; the others a person (or app.yaml) chose, and they stay.
TAXONOMY, FOUND, UNNAMED, NAMED, SPLIT = "taxonomy", "found", "unnamed", "named", "split"
AUTOMATIC = (FOUND, UNNAMED)
NEUTRAL = "Confidential theme {number}"
UNNAMED_NOTE = (
    "no name yet: its objections are all confidential. A marketing lead reads them and names it: "
    "/objection theme rename {number} to <name>"
)
SAID_LIMIT = 5000
RECENT = timedelta(days=182)
RECENT_THEMES = 500
USAGE = (
    "/objection theme rename <theme> to <new name>\n"
    "/objection theme merge <theme> into <theme>\n"
    "/objection theme split <theme> <objection ids> as <new name>\n"
    "/objection theme move <objection id> to <theme>"
)


def sync_taxonomy(session: Session, org: Organisation, now: datetime) -> None:
    """Give every theme of app.yaml's taxonomy its row, with its current cue words."""
    for key, cues in org.objections.themes.items():
        theme = session.exec(select(Theme).where(Theme.key == key)).first()
        if theme is None:
            theme = Theme(key=key, name=_free_name(session, key), origin=TAXONOMY, created_at=now)
        theme.cues = list(cues)
        session.add(theme)
    for gone in session.exec(select(Theme).where(col(Theme.key).is_not(None))):
        if gone.key not in org.objections.themes and gone.cues:
            gone.cues = []  # its theme stays, with its objections; its words no longer route to it
            session.add(gone)
    session.flush()


def active(session: Session) -> list[Theme]:
    """Themes objections can be in now: all but those merged into another."""
    return list(
        session.exec(select(Theme).where(col(Theme.merged_into_id).is_(None)).order_by(col(Theme.id)))
    )


class Candidate(NamedTuple):
    """A theme a new objection may join: its number, app.yaml's key and cue words."""

    id: int
    key: str | None
    cues: list[str]


def candidates(session: Session, now: datetime) -> list[Candidate]:
    """The themes a new objection may join: the taxonomy's, and those heard in the last half
    year (at most the 500 most recently heard), so that the comparison stays quick however
    many themes years of objections have left behind."""
    connection = session.connection()
    listed = sorted(Candidate(*row) for row in connection.execute(_LISTED))
    latest = connection.execute(_LATEST, {"since": now - RECENT, "limit": RECENT_THEMES + len(listed)})
    recent = [Candidate(*row) for row in latest if row.key is None][:RECENT_THEMES]
    return [*listed, *sorted(recent)]


# Both read along an index, not the table: ordered by id, SQLite scanned every theme for the
# taxonomy's few, and told `key IS NULL`, it read every found theme by the key's index for the
# latest 500 (13 and 67 ms at 100,000 themes). The taxonomy's themes come out of the latest
# afterwards. Only what choosing needs is read: a theme's profile only when the cue words chose
# none (`_profiles`; parsing each theme's profile for every objection was a tenth of the work of
# recording one), and as columns, not rows the session keeps (built once: the ORM's building and
# loading of these was a fifth of it).
_CHOOSING = select(Theme.id, Theme.key, Theme.cues).where(col(Theme.merged_into_id).is_(None))
_LISTED = _CHOOSING.where(col(Theme.key).is_not(None)).order_by(col(Theme.key))
_HEIRS = _CHOOSING.where(col(Theme.id).in_(bindparam("ids", expanding=True)))
_LATEST = (
    _CHOOSING.where(col(Theme.last_heard_at) >= bindparam("since"))
    .order_by(col(Theme.last_heard_at).desc())
    .limit(bindparam("limit"))
)


def assign(
    session: Session, ctx: Context, text: str, *, hint: str = "", confidential: bool = False, now: datetime
) -> Assigned:
    """The theme for what a customer said: the taxonomy's cue words first, then the theme whose
    objections it resembles most (enough), else a new theme named after its words, or neutrally
    when the text is confidential. The theme's profile takes the text in, so that the next like
    objection finds it (the profile is never shown); a non-confidential text names a theme that
    has only a neutral name."""
    themes = candidates(session, now)
    grouper = grouping.grouper_named(ctx.org.objections.grouping)
    # Cue words in app.yaml's order, so that a tie goes to the theme listed first there.
    order = list(ctx.org.objections.themes)
    listed = sorted(
        (t for t in themes if t.cues), key=lambda t: order.index(t.key) if t.key in order else len(order)
    )
    cued = matching.theme_of(f"{text} {hint}", {str(t.id): t.cues for t in listed})
    chosen = next((t.id for t in themes if str(t.id) == cued), None)
    if chosen is None:
        taught = _taught(grouper.name, _examples(ctx))
        teaching = taught_by(session, taught)
        # An heir of a merged taxonomy theme may be quiet for long: its examples still teach it.
        quiet = sorted(set(teaching) - {t.id for t in themes})
        if quiet:
            themes += [Candidate(*row) for row in session.connection().execute(_HEIRS, {"ids": quiet})]
        profiles = _profiles(session, themes)
        scored = []
        for t in themes:
            # Like the theme's objections so far, or like the sentences app.yaml gives as the
            # examples of its own key, or of a key merged into it.
            score = grouper.similarity(text, profiles[t.id]) if profiles.get(t.id) else 0.0
            for example in teaching.get(t.id, ()):
                score = max(score, grouper.similarity(text, example))
            if score > 0:
                scored.append((score, t.id))
        best = max(scored, key=lambda pair: pair[0], default=None)
        if best is not None and best[0] >= grouper.threshold:
            chosen = best[1]
    if chosen is None:
        chosen = new_theme(session, None if confidential else text, now).id
    assert chosen is not None
    connection = session.connection()
    # Locked until the unit of work ends, so that like objections arriving at once queue up here.
    locked = connection.execute(_LOCKED, {"theme": chosen}).one()
    assigned = Assigned(chosen, locked.name, locked.origin)
    if locked.origin == UNNAMED and not confidential:
        theme = session.get(Theme, chosen, populate_existing=True)
        assert theme is not None
        _name_after(session, theme, text)
        session.flush()
        assigned = Assigned(chosen, theme.name, theme.origin)
    heard = {"theme": chosen, "profile": grouper.absorb(locked.profile, [text]), "heard": now}
    connection.execute(_TAKES_IN, heard)
    # What the session may hold of the theme is now behind: read afresh if asked for again.
    if (held := session.identity_map.get(identity_key(Theme, chosen))) is not None:
        session.expire(held)
    return assigned


def _examples(ctx: Context) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((key, tuple(sentences)) for key, sentences in sorted(ctx.org.objections.examples.items()))


@lru_cache(maxsize=4)
def _taught(
    grouper_name: str, examples: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[str, dict[str, Any]]:
    """Each taxonomy theme's examples as a profile of the grouper's, made once per process and
    app.yaml (a second of the model's time for a hundred sentences)."""
    grouper = grouping.grouper_named(grouper_name)
    return {key: grouper.absorb({}, list(sentences)) for key, sentences in examples if sentences}


T = TypeVar("T")


def taught_by(session: Session, by_key: dict[str, T]) -> dict[int, list[T]]:
    """What app.yaml teaches (per taxonomy key) for each theme now: its own key's, and those of
    taxonomy themes a marketer merged into it (a merge joins the two themes' examples)."""
    if not by_key:
        return {}
    rows = session.connection().execute(_KEYED, {"keys": list(by_key)}).all()
    heirs = (
        {row.id: row.merged_into_id for row in session.connection().execute(_MERGED)}
        if any(row.merged_into_id is not None for row in rows)
        else {}
    )
    found: dict[int, list[T]] = {}
    for row in rows:
        theme_id, seen = row.id, set()
        while heirs.get(theme_id) is not None and theme_id not in seen:
            seen.add(theme_id)
            theme_id = heirs[theme_id]
        found.setdefault(theme_id, []).append(by_key[row.key])
    return found


_KEYED = sa.select(col(Theme.id), col(Theme.key), col(Theme.merged_into_id)).where(
    col(Theme.key).in_(bindparam("keys", expanding=True))
)
_MERGED = sa.select(col(Theme.id), col(Theme.merged_into_id)).where(col(Theme.merged_into_id).is_not(None))


def examples_of(ctx: Context) -> dict[str, list[str]]:
    """app.yaml's example sentences, per taxonomy key."""
    return {key: list(sentences) for key, sentences in ctx.org.objections.examples.items() if sentences}


class Assigned(NamedTuple):
    """The theme an objection was given."""

    id: int
    name: str
    origin: str


_LOCKED = (
    sa.select(col(Theme.name), col(Theme.origin), col(Theme.profile))
    .where(col(Theme.id) == bindparam("theme"))
    .with_for_update()
)
_TAKES_IN = (
    update(Theme)
    .where(col(Theme.id) == bindparam("theme"))
    .values(
        profile=bindparam("profile", type_=sa.JSON),
        size=col(Theme.size) + 1,
        last_heard_at=sa.case(
            (col(Theme.last_heard_at) > bindparam("heard"), col(Theme.last_heard_at)),
            else_=bindparam("heard"),
        ),
    )
)


def _profiles(session: Session, themes: list[Candidate]) -> dict[int | None, dict[str, Any]]:
    """The grouping profiles of `themes`, in one read."""
    ids = [t.id for t in themes]
    return {
        id_: dict(profile)
        for id_, profile in session.exec(select(Theme.id, Theme.profile).where(col(Theme.id).in_(ids)))
    }


def new_theme(session: Session, text: str | None, now: datetime) -> Theme:
    """A theme named after `text`, or, with no text to show (a confidential one), neutrally."""
    theme = Theme(
        name=f"new {uuid.uuid4().hex}", origin=FOUND if text is not None else UNNAMED, created_at=now
    )
    with session.begin_nested():
        session.add(theme)
        session.flush()  # its number, which a neutral name carries
    if text is None:
        take_name(session, theme, neutral_name(theme), UNNAMED)
    else:
        take_name(session, theme, name_for(text), FOUND)
    return theme


def neutral_name(theme: Theme) -> str:
    """The name of a theme nothing may be said about yet: "Confidential theme 12"."""
    return NEUTRAL.format(number=theme.id)


def unnamed_note(theme: Theme) -> str:
    """Why a theme has no name yet and how to give it one; empty for a named theme."""
    return UNNAMED_NOTE.format(number=theme.id) if theme.origin == UNNAMED else ""


def settle_name(session: Session, theme: Theme) -> None:
    """Keep an automatic name honest after a theme's objections changed (edited, withdrawn,
    moved, split off, merged in, deleted by retention): it is the words of one of its
    non-confidential objections, or neutral when they are all confidential. A theme with no
    objection left keeps its name, and a name a person gave always stays."""
    if theme.origin not in AUTOMATIC or theme.id is None:
        return
    said = list(
        session.exec(
            select(Objection.text)
            .where(Objection.theme_id == theme.id, col(Objection.confidential).is_(False))
            .order_by(col(Objection.id))
            .limit(SAID_LIMIT)
        )
    )
    if said:
        if theme.origin == FOUND and honest(theme.name, said):
            return
        _name_after(session, theme, said[0])
        return
    if theme.origin == UNNAMED:
        return
    if session.exec(select(Objection.id).where(Objection.theme_id == theme.id).limit(1)).first() is None:
        return
    take_name(session, theme, neutral_name(theme), UNNAMED)


def settle_names(session: Session) -> None:
    """Undo what older versions did: each theme Touchline named after the words of a confidential
    objection (and of no non-confidential one) gets an honest name. It runs at every start and
    looks only at themes holding a confidential objection, a handful; a name a marketer gave
    there is no confidential objection's words, so it stays."""
    suspects = session.exec(
        select(Theme.id)
        .join(Objection, col(Objection.theme_id) == col(Theme.id))
        .where(Theme.origin == FOUND, col(Objection.confidential).is_(True))
        .distinct()
    ).all()
    for theme_id in suspects:
        theme = session.get(Theme, theme_id)
        if theme is not None:
            settle_name(session, theme)  # keeps a name its non-confidential objections bear out
    session.flush()


def _name_after(session: Session, theme: Theme, text: str) -> None:
    take_name(session, theme, name_for(text), FOUND)


def honest(name: str, texts: Sequence[str]) -> bool:
    """Whether an automatic name says only what `texts` say: each of its words is one of theirs
    ("price cut", "price cut 2" after "a price cut now"; "sso okta" after two objections)."""
    said = {w for text in texts for w in meaningful(text)}
    named = re.findall(r"[^\W_]+", name.casefold())
    # "price cut 2": the number take_name adds, not one an objection said (else "budget 450"
    # would pass on "the budget is too tight" after "budget is 450" went confidential).
    suffix = len(named) > 1 and named[-1].isdigit() and 2 <= int(named[-1]) <= NAME_ATTEMPTS
    if suffix and not set(named) <= said:
        named = named[:-1]
    return (bool(named) and set(named) <= said) or any(name_for(text) == name for text in texts)


def meaningful(text: str) -> list[str]:
    """The words of `text` a name may take: casefolded, no stop words, no single letters."""
    return [w for w in re.findall(r"[^\W_]+", text.casefold()) if w not in STOP_WORDS and len(w) > 1]


def take_name(session: Session, theme: Theme, base: str, origin: str) -> None:
    """Give `theme` the name `base`, or `base 2`, `base 3`... when another theme has it."""
    for attempt in range(NAME_ATTEMPTS):
        name = base if attempt == 0 else f"{base} {attempt + 1}"
        taken = session.exec(select(Theme.id).where(Theme.name == name, col(Theme.id) != theme.id)).first()
        if taken is not None:
            continue
        try:
            with session.begin_nested():  # a failed attempt expires both: set them again each time
                theme.name, theme.origin = name, origin
                session.add(theme)
                session.flush()
            return
        except IntegrityError:
            continue  # someone took the name a moment ago
    raise Refusal("Could not name a theme; please try again.")


def name_for(text: str) -> str:
    """A first name for a theme found in what reps write: its first few meaningful words."""
    return clip(" ".join(meaningful(text)[:NAME_WORDS]) or "unnamed", 60)


def _free_name(session: Session, wanted: str) -> str:
    name, n = wanted, 1
    while session.exec(select(Theme.id).where(Theme.name == name)).first() is not None:
        n += 1
        name = f"{wanted} {n}"
    return name


def find(session: Session, text: str) -> Theme | None:
    """A theme by its number or its name (any case)."""
    text = text.strip()
    theme = numbered.find(session, Theme, text) if numbered.number_in(text) is not None else None
    if theme is None:
        theme = session.exec(select(Theme).where(func.lower(Theme.name) == text.casefold())).first()
    while theme is not None and theme.merged_into_id is not None:  # a merged theme lives on in its heir
        theme = session.get(Theme, theme.merged_into_id)
    return theme


def names(session: Session, ids: Sequence[int]) -> list[str]:
    found = dict(session.exec(select(Theme.id, Theme.name).where(col(Theme.id).in_(ids))).all())
    return [found[i] for i in ids if i in found]


# --- what marketers do with themes ---------------------------------------------------------------


def on_command(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    """`/objection theme rename|merge|split|move ...` (marketers)."""
    if not actor.has("marketer", "marketing-lead"):
        raise Refusal("Only marketers rename, merge, split or move themes.")
    verb, _, rest = text.strip().partition(" ")
    verb = verb.lower()
    now = ctx.now()
    if verb == "rename" and " to " in rest:
        theme_text, new_name = rest.rsplit(" to ", 1)
        return rename(session, ctx, actor, _theme(session, theme_text), new_name, now)
    if verb == "rename":
        theme, new_name = _theme_then(session, rest)
        return rename(session, ctx, actor, theme, new_name, now)
    if verb == "merge" and " into " in rest:
        source_text, target_text = rest.rsplit(" into ", 1)
        return merge(session, ctx, actor, _theme(session, source_text), _theme(session, target_text), now)
    if verb == "split" and " as " in rest:
        head, new_name = rest.rsplit(" as ", 1)
        theme_text, _, ids = head.strip().partition(" ")
        return split(session, ctx, actor, _theme(session, theme_text), _ids(ids), new_name.strip(), now)
    if verb == "move" and " to " in rest:
        objection_text, theme_text = rest.split(" to ", 1)
        return move(session, ctx, actor, objection_text, _theme(session, theme_text), now)
    return Reply(text=USAGE)


def rename(session: Session, ctx: Context, actor: Actor, theme: Theme, new_name: str, now: datetime) -> Reply:
    new_name = " ".join(new_name.split())
    if not new_name or len(new_name) > 60:
        raise Refusal("Give the theme a name of 1 to 60 characters.")
    clash = find(session, new_name)
    if clash is not None and clash.id != theme.id:
        raise Refusal(f"There is a theme called “{clash.name}” already (#{clash.id}); merge them instead.")
    old = theme.name
    theme.name = new_name
    if theme.origin in AUTOMATIC:
        theme.origin = NAMED  # a person's name: Touchline no longer changes it
    session.add(theme)
    _place(session, theme.id)  # what the marketer named is what a regrouping leaves in it
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="theme.rename",
        subject=f"theme:{theme.id}",
        old=old,
        new=new_name,
    )
    return Reply(text=f"Theme #{theme.id} “{old}” is now “{new_name}”.")


def merge(session: Session, ctx: Context, actor: Actor, source: Theme, target: Theme, now: datetime) -> Reply:
    if source.id == target.id:
        raise Refusal("Those are the same theme.")
    moved = session.execute(
        update(Objection)
        .where(col(Objection.theme_id) == source.id)
        .values(theme_id=target.id, placed=True)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    _place(session, target.id)  # the two are one theme now: a regrouping does not part them again
    _retarget_assets(session, source.id, target.id)
    grouper = grouping.grouper_named(ctx.org.objections.grouping)
    target.profile = _merged_profile(grouper, target, source)
    target.size += source.size
    target.cues = sorted({*target.cues, *source.cues})
    heard = [t for t in (target.last_heard_at, source.last_heard_at) if t is not None]
    target.last_heard_at = max(heard) if heard else None
    source.merged_into_id, source.size, source.profile = target.id, 0, {}
    session.add_all([source, target])
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="theme.merge",
        subject=f"theme:{target.id}",
        merged=source.id,
    )
    session.flush()
    session.expire_all()  # the objections moved by a bulk UPDATE: nothing stale may be shown
    settle_name(session, target)
    return Reply(
        text=f"“{source.name}” is merged into “{target.name}” (#{target.id}): "
        f"{count(moved, 'objection')} moved; “{source.name}” now leads to it."
    )


def split(
    session: Session, ctx: Context, actor: Actor, theme: Theme, ids: list[int], new_name: str, now: datetime
) -> Reply:
    if not ids:
        raise Refusal(f"Which objections go to the new theme? {USAGE.splitlines()[2]}")
    chosen = list(session.exec(select(Objection).where(col(Objection.id).in_(ids))))
    strays = sorted(set(ids) - {o.id for o in chosen if o.theme_id == theme.id})
    if strays:
        raise Refusal(f"Not in “{theme.name}”: {', '.join(f'#{i}' for i in strays)}.")
    new_name = " ".join(new_name.split())
    if not new_name or len(new_name) > 60:
        raise Refusal("Give the new theme a name of 1 to 60 characters.")
    if find(session, new_name) is not None:
        raise Refusal(f"There is a theme called “{new_name}” already; pick another name.")
    new = Theme(
        name=new_name,
        origin=SPLIT,
        created_at=now,
        last_heard_at=now,
    )
    session.add(new)
    session.flush()
    for o in chosen:
        o.theme_id = new.id  # type: ignore[assignment]
        session.add(o)
    session.flush()
    # Both sides of the cut are as the marketer left them: a regrouping moves none back.
    _place(session, theme.id)
    _place(session, new.id)
    rebuild(session, ctx, theme)
    rebuild(session, ctx, new)
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="theme.split",
        subject=f"theme:{theme.id}",
        new=new.id,
        objections=ids,
    )
    return Reply(
        text=f"{count(len(chosen), 'objection')} moved from “{theme.name}” "
        f"to the new theme “{new.name}” (#{new.id})."
    )


def move(
    session: Session, ctx: Context, actor: Actor, objection_text: str, target: Theme, now: datetime
) -> Reply:
    objection = numbered.find(session, Objection, objection_text, lock=True)
    if objection is None:
        raise Refusal(f"There is no objection {objection_text.strip()[:13]}.")
    source = session.get(Theme, objection.theme_id)
    objection.theme_id = target.id  # type: ignore[assignment]
    objection.placed = True  # a regrouping leaves it here, and it teaches the theme
    session.add(objection)
    session.flush()
    if source is not None:
        rebuild(session, ctx, source)
    rebuild(session, ctx, target)
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="theme.move",
        subject=f"objection:{objection.id}",
        to=target.id,
    )
    return Reply(text=f"Objection #{objection.id} is now in “{target.name}”.")


def _place(session: Session, theme_id: int | None) -> None:
    """Mark a theme's objections as placed by a marketer."""
    session.flush()
    session.execute(
        update(Objection)
        .where(col(Objection.theme_id) == theme_id, col(Objection.placed).is_(False))
        .values(placed=True)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def overview(session: Session) -> Card:
    """Every theme with its number, size and origin, for marketers sorting them."""
    sizes = dict(
        session.exec(select(Objection.theme_id, func.count()).group_by(col(Objection.theme_id))).all()
    )
    lines = [
        f"#{t.id} {t.name} — {count(sizes.get(t.id or 0, 0), 'objection')}"
        + (" (from app.yaml)" if t.key else "")
        + (f" ({unnamed_note(t)})" if unnamed_note(t) else "")
        for t in sorted(active(session), key=lambda t: (-sizes.get(t.id or 0, 0), t.name))
    ]
    return Card(
        title="Themes",
        sections=(Section(text="\n".join(lines) or "No themes yet."),),
        footer=USAGE.replace("\n", " · "),
    )


def prepare_rebuild(ctx: Context, theme_ids: Sequence[int], *, since: datetime | None = None) -> None:
    """Before a write transaction that rebuilds these themes: encode the objections it will read,
    so that the model's time is not spent holding the write lock (SQLite has one for all)."""
    if not theme_ids:
        return
    grouper = grouping.grouper_named(ctx.org.objections.grouping)
    with ctx.db.read() as session:
        texts: list[str] = []
        for theme_id in theme_ids:
            said = select(Objection.text).where(Objection.theme_id == theme_id)
            if since is not None:
                said = said.where(col(Objection.created_at) >= since)
            texts.extend(session.exec(said.limit(SAID_LIMIT)))
    grouper.prepare(texts)


def rebuild(session: Session, ctx: Context, theme: Theme) -> None:
    """Recompute a theme's profile and size from the objections it has now, and keep its name honest."""
    # Locked first: an objection being recorded into it commits before it is counted, so that
    # its +1 is not overwritten by a count that did not see it.
    session.connection().execute(_LOCKED, {"theme": theme.id})
    texts = list(session.exec(select(Objection.text).where(Objection.theme_id == theme.id).limit(SAID_LIMIT)))
    grouper = grouping.grouper_named(ctx.org.objections.grouping)
    theme.profile = grouper.absorb({}, texts) if texts else {}
    theme.size = (
        len(texts)
        if len(texts) < SAID_LIMIT
        else session.exec(select(func.count()).where(Objection.theme_id == theme.id)).one()
    )
    session.add(theme)
    settle_name(session, theme)


def _merged_profile(grouper: grouping.Grouper, target: Theme, source: Theme) -> dict[str, object]:
    if "terms" in target.profile or "terms" in source.profile:
        total: dict[str, float] = dict(target.profile.get("terms", {}))
        for term, weight in source.profile.get("terms", {}).items():
            total[term] = total.get(term, 0.0) + weight
        return {
            "terms": dict(sorted(total.items(), key=lambda kv: -kv[1])[: grouping.WordGrouper.kept_terms])
        }
    a, b = target.profile.get("sum", []), source.profile.get("sum", [])
    if a and b:
        return {"sum": [x + y for x, y in zip(a, b, strict=True)]}
    return dict(target.profile if a else source.profile)


def _retarget_assets(session: Session, source_id: int | None, target_id: int | None) -> None:
    for asset in session.exec(select(Asset)):
        if source_id in asset.themes:
            asset.themes = list(dict.fromkeys(target_id if t == source_id else t for t in asset.themes))  # type: ignore[misc]
            session.add(asset)


def _theme(session: Session, text: str) -> Theme:
    theme = find(session, text)
    if theme is None:
        raise Refusal(f"There is no theme {text.strip()[:40]!r}. /objection theme lists them.\n{USAGE}")
    return theme


def _theme_then(session: Session, text: str) -> tuple[Theme, str]:
    """`12 new name` or `old name, new name`... try the longest theme name that matches first."""
    words_ = text.split()
    for cut in range(len(words_) - 1, 0, -1):
        theme = find(session, " ".join(words_[:cut]))
        if theme is not None:
            return theme, " ".join(words_[cut:])
    raise Refusal(f"Which theme, and what new name? {USAGE.splitlines()[0]}")


def _ids(text: str) -> list[int]:
    ids = [numbered.number_in(part) for part in re.split(r"[\s,]+", text.strip()) if part]
    if any(i is None for i in ids):
        raise Refusal(f"Give objection numbers, e.g. 12 15 19. {USAGE.splitlines()[2]}")
    return [i for i in ids if i is not None]
