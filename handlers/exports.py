"""Objections, assets and acknowledgements out as rows for other tools, and historical
objections in from a spreadsheet."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import objections
from handlers.context import Context
from handlers.grouping import regroup
from storage import audit
from storage.models import Acknowledgement, Asset, AssetFeedback, Decision, Objection, Person, Theme

log = logging.getLogger(__name__)

OBJECTION_COLUMNS = [
    "id",
    "date",
    "text",
    "theme_id",
    "theme",
    "group_id",
    "competitor",
    "segment",
    "product",
    "deal_stage",
    "deal_size",
    "severity",
    "confidential",
]
ASSET_COLUMNS = [
    "id",
    "title",
    "link",
    "kind",
    "status",
    "published",
    "themes",
    "useful",
    "used",
    "doesnt_fit",
]
ACKNOWLEDGEMENT_COLUMNS = ["decision_id", "decision", "person", "acknowledged_at"]
IMPORT_COLUMNS = {
    "text",
    "date",
    "rep",
    "segment",
    "competitor",
    "product",
    "deal_stage",
    "deal_size",
    "severity",
    "confidential",
}
CONFIDENTIAL_PLACEHOLDER = "(confidential)"  # what an export shows of a confidential objection's text
YES, NO = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}
BATCH = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Every CSV Touchline writes: a header, then each row with cells a spreadsheet would run as
    a formula (text from people such as `=HYPERLINK(…)`) made inert with a leading quote."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([spreadsheet_cell(value) for value in row])


def spreadsheet_cell(value: Any) -> Any:
    """A cell as a spreadsheet may read it: lists joined with ";", nothing for None, and text that
    starts like a formula (after any spaces; fullwidth signs too) prefixed with "'"."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if isinstance(value, str) and value.lstrip(" ")[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def objection_rows(session: Session, *, include_confidential: bool = False) -> Iterator[dict[str, Any]]:
    """Every objection with its date and its theme (id and name); the text of a confidential one
    only with `include_confidential`, and never anyone's name."""
    names = dict(session.exec(select(Theme.id, Theme.name)).all())
    last = 0
    while True:  # in batches, so that a large history is never all in memory at once
        batch = session.exec(
            select(Objection).where(col(Objection.id) > last).order_by(col(Objection.id)).limit(BATCH)
        ).all()
        if not batch:
            return
        for o in batch:
            yield {
                "id": o.id,
                "date": o.created_at.date().isoformat(),
                "text": o.text if include_confidential or not o.confidential else CONFIDENTIAL_PLACEHOLDER,
                "theme_id": o.theme_id,
                "theme": names.get(o.theme_id, ""),
                "group_id": o.group_id,
                "competitor": o.competitor,
                "segment": o.segment,
                "product": o.product,
                "deal_stage": o.deal_stage,
                "deal_size": o.deal_size,
                "severity": o.severity,
                "confidential": o.confidential,
            }
        last = batch[-1].id or last


def asset_rows(session: Session) -> Iterator[dict[str, Any]]:
    names = dict(session.exec(select(Theme.id, Theme.name)).all())
    counts: dict[tuple[int, str], int] = {
        (asset_id, kind): int(n)
        for asset_id, kind, n in session.exec(
            select(AssetFeedback.asset_id, AssetFeedback.kind, func.count()).group_by(
                col(AssetFeedback.asset_id), col(AssetFeedback.kind)
            )
        )
    }
    for a in session.exec(select(Asset).order_by(col(Asset.id))):
        assert a.id is not None
        yield {
            "id": a.id,
            "title": a.title,
            "link": a.link,
            "kind": a.kind,
            "status": a.status,
            "published": a.published_at.date().isoformat() if a.published_at else None,
            "themes": [names.get(t, str(t)) for t in a.themes],
            "useful": counts.get((a.id, "useful"), 0),
            "used": counts.get((a.id, "used"), 0),
            "doesnt_fit": counts.get((a.id, "doesnt-fit"), 0),
        }


def acknowledgement_rows(session: Session) -> Iterator[dict[str, Any]]:
    rows = session.exec(
        select(Acknowledgement, Decision.title, Person.name)
        .join(Decision, col(Decision.id) == col(Acknowledgement.decision_id))
        .join(Person, col(Person.id) == col(Acknowledgement.person_id))
        .order_by(col(Acknowledgement.decision_id), col(Acknowledgement.at))
    )
    for ack, title, person in rows:
        yield {
            "decision_id": ack.decision_id,
            "decision": title,
            "person": person,
            "acknowledged_at": ack.at.isoformat(),
        }


# --- importing historical objections -----------------------------------------------------------------


@dataclass
class Imported:
    loaded: int
    problems: list[str]
    already: int = 0  # rows skipped: the same objection was there already (imported before)
    regrouped: str = ""  # what the regrouping after the import did
    ignored: tuple[str, ...] = ()  # columns Touchline does not read, left out


def import_objections(
    ctx: Context, rows: Sequence[Mapping[str, str]], *, source: str, first_line: int = 2
) -> Imported:
    """Load historical objections (text, and optionally date, rep, segment, competitor, ...).

    Every row is checked first; one bad row and none is loaded, each problem named with its
    line. Each loaded objection gets its theme and group as if it had been logged that day.
    """
    people = _people(ctx)
    taxonomy = ctx.org.objections
    problems: list[str] = []
    ignored: set[str] = set()
    ready: list[tuple[Mapping[str, str], datetime, int | None]] = []
    zone = ZoneInfo(ctx.org.organisation.timezone)
    today = ctx.now().astimezone(zone).date()
    rows = [column_names(row) for row in rows]
    for line, row in enumerate(rows, first_line):
        where = f"{source}:{line}"
        # A spreadsheet from another tool has columns of its own (an id, the account, a label):
        # they are left out, and said so, rather than refusing the file.
        ignored.update(set(row) - IMPORT_COLUMNS - {""})
        secret = (row.get("confidential") or "").strip().casefold()
        if secret not in YES | NO:
            problems.append(f"{where}: confidential {secret[:20]!r} is not yes or no")
        elif secret in YES and (row.get("text") or "").strip() == CONFIDENTIAL_PLACEHOLDER:
            problems.append(
                f"{where}: the text was left out of the export; "
                "export with --include-confidential to move confidential objections"
            )
        text = (row.get("text") or "").strip()
        if not text:
            problems.append(f"{where}: text is empty")
        elif len(text) > objections.MAX_TEXT:
            problems.append(
                f"{where}: text is {len(text):,} characters; the limit is {objections.MAX_TEXT:,}"
            )
        when = datetime.combine(today, time(12), tzinfo=zone)
        if row.get("date"):
            try:
                day = date.fromisoformat(row["date"].strip())
                if day > today:
                    problems.append(f"{where}: date {day} is in the future")
                when = datetime.combine(day, time(12), tzinfo=zone)
            except ValueError:
                problems.append(f"{where}: date {row['date'][:30]!r} is not YYYY-MM-DD")
        rep = (row.get("rep") or "").strip()
        reporter = people.get(rep.casefold()) if rep else None
        if rep and reporter is None:
            problems.append(f"{where}: rep {rep[:40]!r} is not a person key or e-mail Touchline knows")
        for column, allowed in (
            ("segment", taxonomy.segments),
            ("deal_stage", taxonomy.deal_stages),
            ("deal_size", taxonomy.deal_sizes),
            ("severity", list(objections.SEVERITIES)),
        ):
            value = (row.get(column) or "").strip()
            if value and value not in allowed:
                problems.append(f"{where}: {column} {value[:40]!r} is not one of: {', '.join(allowed)}")
        for column in ("competitor", "product"):
            if len((row.get(column) or "").strip()) > 100:
                problems.append(f"{where}: {column} is longer than 100 characters")
        ready.append((row, when.astimezone(UTC), reporter))
    if problems:
        return Imported(0, problems, ignored=tuple(sorted(ignored)))
    with ctx.db.session() as session:
        # The same file imported again adds nothing: a row is already there when an objection
        # with the same text, day and rep is (a row without a date: on any day), as many times
        # as it is there: a file may hold the same words twice, from two customers.
        there = _already_there(session, [row["text"].strip() for row, _, _ in ready])
        skipped = 0
        for row, when, reporter in ready:
            key = (row["text"].strip(), when if row.get("date") else None, reporter)
            if there.get(key, 0) > 0:
                there[key] -= 1
                skipped += 1
                continue

            def cell(column: str, row: Mapping[str, str] = row) -> str | None:
                return (row.get(column) or "").strip() or None

            objection = Objection(
                text=row["text"].strip(),
                theme_id=0,
                reporter_id=reporter,
                created_at=when,
                segment=cell("segment"),
                competitor=cell("competitor"),
                product=cell("product"),
                deal_stage=cell("deal_stage"),
                deal_size=cell("deal_size"),
                severity=cell("severity") or "medium",
                confidential=(cell("confidential") or "").casefold() in YES,
            )
            objection.theme_id = objections.theme_for(session, ctx, objection, when).id
            objection.group_id = objections.group_for(session, objection, when)
            session.add(objection)
            session.flush()
            objection.group_id = objection.group_id or objection.id
        audit.record(
            session,
            at=ctx.now(),
            actor_id=None,
            action="objection.import",
            source=source,
            rows=len(ready) - skipped,
            already=skipped,
        )
    loaded = len(ready) - skipped
    # Many objections at once: their themes are worked out again together, as the weekly
    # regrouping would, rather than left as each one found them alone.
    try:
        regrouped = regroup.regroup(ctx).summary() if loaded else ""
    except Exception:  # the objections are in; their themes are as recorded until the next regrouping
        log.exception("themes: the regrouping after an import failed")
        regrouped = "not regrouped: it failed (the log says why); the weekly regrouping will try again"
    return Imported(loaded, [], already=skipped, regrouped=regrouped, ignored=tuple(sorted(ignored)))


def column_names(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row with its columns named as Touchline names them: "Deal stage" is deal_stage."""
    return {"_".join((key or "").casefold().split()): value for key, value in row.items()}


def _already_there(
    session: Session, texts: Sequence[str]
) -> dict[tuple[str, datetime | None, int | None], int]:
    """How many objections of these texts there are already, by (text, time, rep) and by (text,
    any time, rep)."""
    found: dict[tuple[str, datetime | None, int | None], int] = {}
    distinct = sorted(set(texts))
    for start in range(0, len(distinct), 500):  # within every database's limit of bound values
        chunk = distinct[start : start + 500]
        query = select(Objection.text, Objection.created_at, Objection.reporter_id)
        for text, created, reporter in session.exec(query.where(col(Objection.text).in_(chunk))):
            when = (created if created.tzinfo is not None else created.replace(tzinfo=UTC)).astimezone(UTC)
            for key in ((text, when, reporter), (text, None, reporter)):
                found[key] = found.get(key, 0) + 1
    return found


def _people(ctx: Context) -> dict[str, int]:
    with ctx.db.session() as session:
        found: dict[str, int] = {}
        for person in session.exec(select(Person)):
            assert person.id is not None
            found[person.key.casefold()] = person.id
            if person.email:
                found[person.email.casefold()] = person.id
        return found
