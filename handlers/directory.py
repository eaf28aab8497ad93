"""Who is who: people, their identities on each platform, their roles, and the audiences they belong to."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete
from sqlmodel import Session, col, select

from handlers.context import Actor, Context, Refusal
from handlers.organisation import Organisation
from storage.models import (
    Acknowledgement,
    Audience,
    AudienceMember,
    AudienceTarget,
    DecisionAudience,
    Identity,
    Person,
)

# Where a direct message goes when we do not know which platform a person uses most.
DIRECT_PREFERENCE = ("slack", "teams", "console")


def sync(ctx: Context) -> None:
    """Bring people, identities, audiences, targets and configured members in line with `app.yaml`."""
    org = ctx.org
    with ctx.db.session() as session:
        people: dict[str, Person] = {}
        for key, entry in org.people.items():
            person = session.exec(select(Person).where(Person.key == key)).first() or Person(
                key=key, name=entry.name
            )
            person.name, person.email, person.timezone = entry.name, entry.email, entry.timezone
            person.from_config = True
            session.add(person)
            session.flush()
            people[key] = person
            _claim_identity(session, person, "console", key)
            if entry.slack:
                _claim_identity(session, person, "slack", entry.slack)
            if entry.teams:
                _claim_identity(session, person, "teams", entry.teams)

        for key, spec in org.audiences.items():
            audience = session.exec(select(Audience).where(Audience.key == key)).first() or Audience(key=key)
            audience.label = spec.label or key
            session.add(audience)
            session.flush()
            assert audience.id is not None
            wanted = {tuple(t.split(":", 1)) for t in spec.targets}
            existing = session.exec(
                select(AudienceTarget).where(AudienceTarget.audience_id == audience.id)
            ).all()
            for target in existing:
                if (target.platform, target.address) not in wanted:
                    session.delete(target)
                else:
                    wanted.discard((target.platform, target.address))
            for platform, address in sorted(wanted):
                session.add(AudienceTarget(audience_id=audience.id, platform=platform, address=address))
            session.execute(
                delete(AudienceMember).where(
                    col(AudienceMember.audience_id) == audience.id,
                    col(AudienceMember.source) == "config",
                )
            )
            for person in _resolve(session, people, spec.members):
                assert person.id is not None
                member = session.exec(
                    select(AudienceMember).where(
                        AudienceMember.audience_id == audience.id,
                        AudienceMember.person_id == person.id,
                    )
                ).first()
                if member is None:
                    session.add(AudienceMember(audience_id=audience.id, person_id=person.id, source="config"))
                    session.flush()


def _claim_identity(session: Session, person: Person, platform: str, external_id: str) -> None:
    identity = session.exec(
        select(Identity).where(Identity.platform == platform, Identity.external_id == external_id)
    ).first()
    assert person.id is not None
    if identity is None:
        session.add(Identity(person_id=person.id, platform=platform, external_id=external_id))
    elif identity.person_id != person.id:
        # Someone first seen on a platform turned out to be this configured person.
        _merge(session, source_id=identity.person_id, into=person)
        identity.person_id = person.id
        session.add(identity)
    session.flush()


def _merge(session: Session, *, source_id: int, into: Person) -> None:
    assert into.id is not None
    for ack in session.exec(select(Acknowledgement).where(Acknowledgement.person_id == source_id)):
        duplicate = session.exec(
            select(Acknowledgement).where(
                Acknowledgement.person_id == into.id, Acknowledgement.decision_id == ack.decision_id
            )
        ).first()
        if duplicate:
            session.delete(ack)
        else:
            ack.person_id = into.id
            session.add(ack)
    for identity in session.exec(select(Identity).where(Identity.person_id == source_id)):
        identity.person_id = into.id
        session.add(identity)
    session.flush()


def _resolve(session: Session, people: dict[str, Person], refs: Iterable[str]) -> list[Person]:
    found: list[Person] = []
    for ref in refs:
        kind, sep, rest = ref.partition(":")
        person: Person | None
        if not sep:
            person = people.get(ref)
        elif kind == "email":
            person = session.exec(select(Person).where(Person.email == rest)).first()
        else:
            person = _person_for_identity(session, kind, rest)
            if person is None:
                person = Person(key=ref, name=rest)
                session.add(person)
                session.flush()
                _claim_identity(session, person, kind, rest)
        if person is not None:
            found.append(person)
    return found


def _person_for_identity(session: Session, platform: str, external_id: str) -> Person | None:
    identity = session.exec(
        select(Identity).where(Identity.platform == platform, Identity.external_id == external_id)
    ).first()
    return session.get(Person, identity.person_id) if identity else None


def roles_of(org: Organisation, person: Person, identities: Iterable[Identity]) -> frozenset[str]:
    """The roles `app.yaml` gives this person, by key, e-mail or platform id."""
    names = {person.key}
    if person.email:
        names.add(f"email:{person.email.lower()}")
    names.update(f"{i.platform}:{i.external_id}" for i in identities)
    return frozenset(
        role
        for role, refs in org.roles.items()
        if any((r.lower() if r.startswith("email:") else r) in names for r in refs)
    )


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
    with ctx.db.session() as session:
        person = _person_for_identity(session, platform, user_id)
        if person is None and email:
            person = session.exec(select(Person).where(Person.email == email)).first()
        if person is None:
            person = Person(key=f"{platform}:{user_id}", name=name or user_id, email=email)
            session.add(person)
            session.flush()
        if _person_for_identity(session, platform, user_id) is None:
            _claim_identity(session, person, platform, user_id)
        if not person.from_config:
            person.name = name or person.name
            person.email = email or person.email
            person.timezone = timezone or person.timezone
        person.home_platform = platform
        session.add(person)
        session.flush()
        assert person.id is not None
        identities = session.exec(select(Identity).where(Identity.person_id == person.id)).all()
        return Actor(
            platform=platform,
            user_id=user_id,
            name=person.name,
            person_id=person.id,
            roles=roles_of(ctx.org, person, identities),
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


def direct_address(session: Session, person_id: int) -> tuple[str, str] | None:
    """Where a direct message to this person goes: their usual platform first."""
    person = session.get(Person, person_id)
    if person is None:
        return None
    identities = {
        i.platform: i.external_id
        for i in session.exec(select(Identity).where(Identity.person_id == person_id))
    }
    order = ([person.home_platform] if person.home_platform else []) + list(DIRECT_PREFERENCE)
    for platform in order:
        if platform in identities:
            return platform, identities[platform]
    return None


def members_of(session: Session, decision_id: int) -> set[int]:
    """The people a decision was announced to, as known: configured members and those who acknowledged."""
    audience_ids = select(DecisionAudience.audience_id).where(DecisionAudience.decision_id == decision_id)
    members = set(
        session.exec(
            select(AudienceMember.person_id).where(col(AudienceMember.audience_id).in_(audience_ids))
        ).all()
    )
    acknowledged = session.exec(
        select(Acknowledgement.person_id).where(Acknowledgement.decision_id == decision_id)
    ).all()
    return members | set(acknowledged)


def name_of(session: Session, person_id: int | None) -> str:
    person = session.get(Person, person_id) if person_id is not None else None
    return person.name if person else "someone"
