"""Who is who: people, their identities on each platform, their roles, and the audiences they belong to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import String, bindparam, delete, func, literal, union, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from handlers.context import Actor, Context, Refusal
from handlers.forms import visible_name
from handlers.organisation import Organisation
from storage.database import insert_of, serialize
from storage.models import (
    Acknowledgement,
    Audience,
    AudienceMember,
    AudienceTarget,
    AuditEntry,
    Conversation,
    Decision,
    DecisionAudience,
    GroupMember,
    Identity,
    Outbox,
    Person,
    Question,
)

# Where a direct message goes when we do not know which platform a person uses most.
DIRECT_PREFERENCE = ("slack", "teams", "console")


def sync(ctx: Context) -> None:
    """Bring people, identities, audiences, targets and configured members in line with `app.yaml`.

    Runs at every start, so it reads each table once instead of once per person.
    """
    org = ctx.org
    with ctx.db.session() as session:
        serialize(session, "directory.sync")  # replicas starting together sync one after another
        known = {p.key: p for p in session.exec(select(Person).where(col(Person.key).in_(list(org.people))))}
        people: dict[str, Person] = {}
        for key, entry in org.people.items():
            person = known.get(key) or Person(key=key, name=entry.name)
            person.name, person.email, person.timezone = entry.name, entry.email, entry.timezone
            person.from_config = True
            session.add(person)
            people[key] = person
        session.flush()

        identities = {(i.platform, i.external_id): i for i in session.exec(select(Identity))}
        missing: list[tuple[Person, str, str]] = []
        for key, entry in org.people.items():
            person = people[key]
            for platform, external_id in (("console", key), ("slack", entry.slack), ("teams", entry.teams)):
                if external_id is None:
                    continue
                identity = identities.get((platform, external_id))
                if identity is None:
                    missing.append((person, platform, external_id))
                elif identity.person_id != person.id:
                    _claim_identity(session, person, platform, external_id)
        try:
            with session.begin_nested():
                for person, platform, external_id in missing:
                    assert person.id is not None
                    session.add(Identity(person_id=person.id, platform=platform, external_id=external_id))
        except IntegrityError:
            # A replica already serving met one of them on a platform just now: claim them one by one.
            for person, platform, external_id in missing:
                _claim_identity(session, person, platform, external_id)

        for key, spec in org.audiences.items():
            audience = session.exec(select(Audience).where(Audience.key == key)).first() or Audience(key=key)
            audience.label = spec.label or key
            session.add(audience)
            session.flush()
            assert audience.id is not None
            _sync_targets(session, audience.id, {tuple(t.split(":", 1)) for t in spec.targets})
            _sync_members(
                session, audience.id, {p.id for p in _resolve(session, people, spec.members) if p.id}
            )


def _sync_targets(session: Session, audience_id: int, wanted: set[tuple[str, ...]]) -> None:
    for target in session.exec(select(AudienceTarget).where(AudienceTarget.audience_id == audience_id)):
        if (target.platform, target.address) in wanted:
            wanted.discard((target.platform, target.address))
        else:
            session.delete(target)
    for platform, address in sorted(wanted):
        session.add(AudienceTarget(audience_id=audience_id, platform=platform, address=address))


def _sync_members(session: Session, audience_id: int, wanted: set[int]) -> None:
    existing = {
        m.person_id: m
        for m in session.exec(select(AudienceMember).where(AudienceMember.audience_id == audience_id))
    }
    for person_id, member in existing.items():
        if member.source == "config" and person_id not in wanted:
            session.delete(member)
    session.flush()
    _add_members(session, audience_id, sorted(wanted - set(existing)), source="config")


def _add_members(session: Session, audience_id: int, person_ids: Sequence[int], *, source: str) -> None:
    """Make these people members of the audience; one a listing of its channels (on another
    replica, at the same moment) made a member already stays as it is."""
    if person_ids:
        rows = [{"audience_id": audience_id, "person_id": p, "source": source} for p in person_ids]
        session.execute(
            insert_of(session, AudienceMember)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["audience_id", "person_id"])
        )


def _claim_identity(session: Session, person: Person, platform: str, external_id: str) -> None:
    identity = _identity(session, platform, external_id) or _add_identity(
        session, person, platform, external_id
    )
    if identity.person_id != person.id:
        # Someone first seen on a platform turned out to be this configured person.
        _merge(session, source_id=identity.person_id, into=person)
    session.flush()


def _identity(session: Session, platform: str, external_id: str) -> Identity | None:
    return session.exec(
        select(Identity).where(Identity.platform == platform, Identity.external_id == external_id)
    ).first()


def _add_identity(session: Session, person: Person, platform: str, external_id: str) -> Identity:
    """The platform id, given to this person; or, when another unit of work gave it to someone at
    the same moment, the identity that one stored."""
    assert person.id is not None
    identity = Identity(person_id=person.id, platform=platform, external_id=external_id)
    try:
        with session.begin_nested():  # the unique constraint refuses the second, not the whole unit
            session.add(identity)
        return identity
    except IntegrityError:
        # On PostgreSQL the refusal came once the other committed, so its row can be read now.
        stored = _identity(session, platform, external_id)
        if stored is None:
            raise
        return stored


def _first_seen(
    session: Session, platform: str, external_id: str, *, name: str | None, email: str | None = None
) -> Person:
    """A person met for the first time, stored with their identity; when another unit of work met
    them at the same moment (a new person's first two activities arrive together) and stored them
    first, the person it stored."""
    key = f"{platform}:{external_id}"
    try:
        with session.begin_nested():
            person = Person(key=key, name=name or external_id, email=email)
            session.add(person)
            session.flush()
            assert person.id is not None
            session.add(Identity(person_id=person.id, platform=platform, external_id=external_id))
        return person
    except IntegrityError:
        # Nothing of this attempt is kept: the person or their identity is the other one's.
        found = _person_for_identity(session, platform, external_id)
        if found is not None:
            return found
        known = session.exec(select(Person).where(Person.key == key)).first()
        if known is None:
            raise
        owner = session.get(Person, _add_identity(session, known, platform, external_id).person_id)
        assert owner is not None
        return owner


# Every column that points at a person, so that merging two records of one person misses none.
PERSON_REFERENCES: tuple[tuple[type[SQLModel], str], ...] = (
    (Identity, "person_id"),
    (GroupMember, "person_id"),
    (Conversation, "person_id"),
    (Outbox, "sender_id"),
    (Acknowledgement, "person_id"),
    (AudienceMember, "person_id"),
    (Decision, "author_id"),
    (Question, "asker_id"),
    (Question, "answered_by_id"),
    (AuditEntry, "actor_id"),
)


def _merge(session: Session, *, source_id: int, into: Person) -> None:
    """Fold the person first seen on a platform into the configured one, then forget the former."""
    assert into.id is not None
    session.flush()
    # Where both already have a row that may exist once per person, keep the configured one's.
    acknowledged = select(Acknowledgement.decision_id).where(Acknowledgement.person_id == into.id)
    session.execute(
        delete(Acknowledgement).where(
            col(Acknowledgement.person_id) == source_id, col(Acknowledgement.decision_id).in_(acknowledged)
        )
    )
    grouped = select(GroupMember.group_ref).where(GroupMember.person_id == into.id)
    session.execute(
        delete(GroupMember).where(
            col(GroupMember.person_id) == source_id, col(GroupMember.group_ref).in_(grouped)
        )
    )
    belongs = select(AudienceMember.audience_id).where(AudienceMember.person_id == into.id)
    session.execute(
        delete(AudienceMember).where(
            col(AudienceMember.person_id) == source_id, col(AudienceMember.audience_id).in_(belongs)
        )
    )
    for model, column in PERSON_REFERENCES:
        session.execute(
            update(model)
            .where(getattr(model, column) == source_id)
            .values({column: into.id})
            .execution_options(synchronize_session=False)
        )
    session.execute(delete(Person).where(col(Person.id) == source_id))
    session.expire_all()


def _resolve(session: Session, people: dict[str, Person], refs: Iterable[str]) -> list[Person]:
    found: list[Person] = []
    for ref in refs:
        kind, sep, rest = ref.partition(":")
        person: Person | None
        if not sep:
            person = people.get(ref)
        elif kind == "email":
            person = session.exec(select(Person).where(Person.email == rest)).first()
        elif kind.endswith("-group"):
            # A user group: whoever the platform said was in it when it was last read.
            found += session.exec(
                select(Person)
                .join(GroupMember, col(GroupMember.person_id) == col(Person.id))
                .where(GroupMember.group_ref == ref)
            ).all()
            continue
        else:
            person = meet(session, kind, rest)
        if person is not None:
            found.append(person)
    return found


def person_ids(session: Session, refs: Iterable[str]) -> list[int]:
    """The people that app.yaml references name (key, email:…, slack:…, teams:…), in order,
    once each; a reference to someone Touchline has not met yet names nobody."""
    found: list[int] = []
    for ref in refs:
        kind, sep, rest = ref.partition(":")
        person: Person | None
        if not sep:
            person = session.exec(select(Person).where(Person.key == ref)).first()
        elif kind == "email":
            person = session.exec(select(Person).where(Person.email == rest)).first()
        else:
            person = _person_for_identity(session, kind, rest)
        if person is not None and person.id is not None and person.id not in found:
            found.append(person.id)
    return found


def _person_for_identity(session: Session, platform: str, external_id: str) -> Person | None:
    # One statement, not the identity and then its person: every command starts here.
    return session.exec(
        select(Person)
        .join(Identity, col(Identity.person_id) == col(Person.id))
        .where(Identity.platform == platform, Identity.external_id == external_id)
    ).first()


def roles_of(
    org: Organisation, person: Person, identities: Iterable[Identity], groups: Iterable[str] = ()
) -> frozenset[str]:
    """The roles `app.yaml` gives this person, by key, e-mail, platform id or user group."""
    names = {*groups, *(f"{i.platform}:{i.external_id}" for i in identities)}
    return _roles(org, person.key, person.email, names)


def _roles(org: Organisation, key: str, email: str | None, names: Iterable[str]) -> frozenset[str]:
    """The roles of the person with this key and e-mail, and these platform ids and user groups."""
    known = {key, *names}
    if email:
        known.add(f"email:{email.lower()}")
    return org.roles_for(known)


def groups_of(session: Session, person_ids: Sequence[int]) -> dict[int, list[str]]:
    """The user groups (`slack-group:S…`) each of these people was last seen in."""
    found: dict[int, list[str]] = {}
    for member in session.exec(select(GroupMember).where(col(GroupMember.person_id).in_(person_ids))):
        found.setdefault(member.person_id, []).append(member.group_ref)
    return found


def meet(session: Session, platform: str, external_id: str, *, name: str | None = None) -> Person:
    """The person behind a platform id, created (with no role) the first time they are named."""
    person = _person_for_identity(session, platform, external_id)
    return person if person is not None else _first_seen(session, platform, external_id, name=name)


def set_group_members(ctx: Context, group_ref: str, platform: str, external_ids: Sequence[str]) -> int:
    """Record who is in a user group now (as the platform lists them); returns how many."""

    def unit(session: Session) -> int:
        # In one order everywhere, so that two listings meeting the same new people wait, not deadlock.
        wanted = sorted({p for e in sorted(set(external_ids)) if (p := meet(session, platform, e).id)})
        session.execute(delete(GroupMember).where(col(GroupMember.group_ref) == group_ref))
        if wanted:
            session.execute(
                insert_of(session, GroupMember)
                .values([{"group_ref": group_ref, "person_id": p} for p in wanted])
                .on_conflict_do_nothing(index_elements=["group_ref", "person_id"])
            )
        return len(wanted)

    return ctx.db.run(unit)


def set_channel_members(ctx: Context, platform: str, channels: Mapping[str, Sequence[str] | None]) -> int:
    """Record who is in the channels audiences post to, as members of those audiences (the Y of
    "acknowledged by X of Y"): an audience's members from the platform are everyone in any of its
    channels. A channel whose members could not be read (None) leaves its audiences as they were.
    Returns how many people the channels hold."""
    return ctx.db.run(lambda session: _set_channel_members(session, platform, channels))


def _set_channel_members(
    session: Session, platform: str, channels: Mapping[str, Sequence[str] | None]
) -> int:
    targets = session.exec(select(AudienceTarget).where(AudienceTarget.platform == platform)).all()
    # In one order everywhere, so that two listings meeting the same new people wait, not deadlock.
    listed = sorted({e for ids in channels.values() for e in ids or ()})
    met = {e: meet(session, platform, e).id for e in listed}
    people = {address: {met[e] for e in ids} for address, ids in channels.items() if ids is not None}
    by_audience: dict[int, list[str]] = {}
    for target in targets:
        by_audience.setdefault(target.audience_id, []).append(target.address)
    for audience_id, addresses in by_audience.items():
        if any(people.get(a) is None for a in addresses if a in channels):
            continue  # one of its channels is unreadable now: keep what was known
        wanted = {p for a in addresses for p in people.get(a, set()) if p is not None}
        existing = {
            m.person_id: m
            for m in session.exec(select(AudienceMember).where(AudienceMember.audience_id == audience_id))
        }
        gone = [m.id for p, m in existing.items() if m.source == platform and p not in wanted]
        if gone:  # by id, as another listing at the same moment may have deleted them already
            session.execute(delete(AudienceMember).where(col(AudienceMember.id).in_(gone)))
        _add_members(session, audience_id, sorted(wanted - set(existing)), source=platform)
    return len(set().union(*people.values())) if people else 0


def identify(
    ctx: Context,
    platform: str,
    user_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
) -> Actor:
    """The `Actor` for a platform user, creating the person the first time they are seen.

    >>> identify(ctx, "slack", "U0123456789", name="Jonas").roles
    frozenset({'rep'})
    """

    name = visible_name(name)
    known = _known_actor(ctx, platform, user_id, name=name, email=email, timezone=timezone)
    if known is not None:
        return known

    def unit(session: Session) -> Actor:
        person = _person_for_identity(session, platform, user_id)
        if person is None and email:
            known = session.exec(select(Person).where(Person.email == email)).first()
            if known is not None:
                # Whoever stored the id first (the person met at the same moment) keeps it.
                person = session.get(Person, _add_identity(session, known, platform, user_id).person_id)
        if person is None:
            person = _first_seen(session, platform, user_id, name=name, email=email)
        if not person.from_config:
            person.name = name or person.name
            person.email = email or person.email
            person.timezone = timezone or person.timezone
        person.home_platform = platform
        session.add(person)
        session.flush()
        return _actor(ctx, session, person, platform, user_id, timezone)

    # Someone new, or changed: on SQLite, again if the write lock stayed taken.
    return ctx.db.run(unit)


def _known_actor(
    ctx: Context, platform: str, user_id: str, *, name: str | None, email: str | None, timezone: str | None
) -> Actor | None:
    """The `Actor` for a person `identify` would leave as stored, read without a write lock (every
    command, button and reaction starts with identify; on SQLite, taking the write lock each time
    queued them all behind any writer); None when identify has something to write."""
    with ctx.db.read() as session:
        # Columns, not rows the session keeps, in statements built once: every request starts here.
        connection = session.connection()
        found = connection.execute(_WHO, {"platform": platform, "user": user_id}).first()
        if found is None:
            return None
        person = Who._make(found)
        if not _unchanged(person, platform, name=name, email=email, timezone=timezone):
            return None
        return _actor(ctx, session, person, platform, user_id, timezone)


class Who(NamedTuple):
    """What `identify` reads of a person it knows."""

    id: int
    key: str
    name: str
    email: str | None
    timezone: str | None
    home_platform: str | None
    from_config: bool


_WHO = (
    sa.select(
        col(Person.id),
        col(Person.key),
        col(Person.name),
        col(Person.email),
        col(Person.timezone),
        col(Person.home_platform),
        col(Person.from_config),
    )
    .join(Identity, col(Identity.person_id) == col(Person.id))
    .where(col(Identity.platform) == bindparam("platform"), col(Identity.external_id) == bindparam("user"))
)
# A person's identities (platform, id) and user groups ("", group), in one read.
_NAMES = union_all(
    select(Identity.platform, Identity.external_id).where(col(Identity.person_id) == bindparam("person")),
    select(literal("", String), GroupMember.group_ref).where(
        col(GroupMember.person_id) == bindparam("person")
    ),
)


def _unchanged(
    person: Person | Who, platform: str, *, name: str | None, email: str | None, timezone: str | None
) -> bool:
    """Whether identify's unit of work would store this person as they are."""
    if person.home_platform != platform:
        return False
    if person.from_config:
        return True  # app.yaml names configured people; what the platform says is not kept
    given = {"name": name, "email": email, "timezone": timezone}
    # As in the unit: a value the platform left out (or empty) keeps the stored one.
    return all(not value or value == getattr(person, field) for field, value in given.items())


def _actor(
    ctx: Context, session: Session, person: Person | Who, platform: str, user_id: str, timezone: str | None
) -> Actor:
    assert person.id is not None
    names = {f"{p}:{e}" if p else e for p, e in session.connection().execute(_NAMES, {"person": person.id})}
    return Actor(
        platform=platform,
        user_id=user_id,
        name=person.name,
        person_id=person.id,
        roles=_roles(ctx.org, person.key, person.email, names),
        timezone=person.timezone or timezone or ctx.org.organisation.timezone,
    )


def console_actor(ctx: Context, person_key: str) -> Actor:
    """The actor for someone from `people:` in `app.yaml`, as the console signs them in."""
    if person_key not in ctx.org.people:
        known = ", ".join(sorted(ctx.org.people)) or "nobody yet"
        raise Refusal(f"{person_key!r} is not in people: of app.yaml (known: {known}).")
    return identify(ctx, "console", person_key)


def holders_of(org: Organisation, role: str) -> list[str]:
    """Names of the people `app.yaml` gives a role, for telling someone whom to ask."""
    refs = org.roles.get(role, [])  # type: ignore[call-overload]
    return [org.people[r].name if r in org.people else r.split(":", 1)[1] for r in refs]


def direct_addresses(session: Session, person_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Where a direct message to each person goes, their usual platform first, in two queries;
    people with no identity on any platform are left out."""
    homes = dict(
        session.exec(select(Person.id, Person.home_platform).where(col(Person.id).in_(person_ids))).all()
    )
    identities: dict[int, dict[str, str]] = {}
    for identity in session.exec(select(Identity).where(col(Identity.person_id).in_(person_ids))):
        identities.setdefault(identity.person_id, {})[identity.platform] = identity.external_id
    found: dict[int, tuple[str, str]] = {}
    for person_id, known in identities.items():
        home = homes.get(person_id)
        for platform in ([home] if home else []) + list(DIRECT_PREFERENCE):
            if platform in known:
                found[person_id] = (platform, known[platform])
                break
    return found


def channels_of(session: Session, audience_ids: Sequence[int]) -> list[tuple[str, str]]:
    """The (platform, address) channels of these audiences, once each even if two share one."""
    rows = session.exec(
        select(AudienceTarget.platform, AudienceTarget.address)
        .where(col(AudienceTarget.audience_id).in_(audience_ids))
        .order_by(col(AudienceTarget.id))
    ).all()
    return list(dict.fromkeys((platform, address) for platform, address in rows))


def _member_ids(decision_id: Any) -> Any:
    audience_ids = select(DecisionAudience.audience_id).where(DecisionAudience.decision_id == decision_id)
    return union(
        select(AudienceMember.person_id).where(col(AudienceMember.audience_id).in_(audience_ids)),
        select(Acknowledgement.person_id).where(Acknowledgement.decision_id == decision_id),
    )


def member_count(session: Session, decision_id: int) -> int:
    """How many people `members_of` would return, counted by the database."""
    session.flush()  # the statement runs on the connection, without the session's autoflush
    return int(session.connection().execute(MEMBER_COUNT, {"decision": decision_id}).scalar_one())


# Built once, bound to the decision: every press's reply and every card of a decision counts them.
MEMBER_COUNT = select(func.count()).select_from(_member_ids(bindparam("decision")).subquery())


def members_of(session: Session, decision_id: int) -> set[int]:
    """The people a decision was announced to, as known: configured members and those who acknowledged."""
    return {row[0] for row in session.execute(_member_ids(decision_id))}


def timezone_of(session: Session, org: Organisation, person_id: int) -> str:
    person = session.get(Person, person_id)
    return (person.timezone if person else None) or org.organisation.timezone


def name_of(session: Session, person_id: int | None) -> str:
    person = session.get(Person, person_id) if person_id is not None else None
    return person.name if person else "someone"
