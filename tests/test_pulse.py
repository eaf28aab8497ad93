"""Pulse surveys: local-time invitations, one reminder, anonymous answers, results only for big groups."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import DateTime, inspect, text

from bot.config import parse_organisation_text
from bot.delivery import DeliveryWorker
from handlers import directory, inbound, pulse, setup
from handlers.context import Actor, Context
from handlers.ui import Card
from scheduler.jobs import GRACE, SLOT_ZONE, last_occurrence
from storage.database import Database
from storage.models import Outbox, PulseAnswer, PulseBallot, PulseInvitation, PulseRun, metadata
from tests.fakes import Clock, RecordingPlatform, rows

QUESTIONS = [
    {"id": "why", "text": "I understand why our strategy was chosen.", "type": "agree-5"},
    {"id": "nps", "text": "How likely are you to recommend marketing's material?", "type": "scale-10"},
    {"id": "channel", "text": "Where do you look first?", "type": "choice", "choices": ["Slack", "Drive"]},
    {"id": "else", "text": "Anything else?", "type": "text", "optional": True},
]


def organisation(**survey: Any) -> str:
    people = {
        f"s{i}": {"name": f"Seller {i}", "timezone": "America/New_York" if i >= 6 else None} for i in range(8)
    }
    people |= {f"m{i}": {"name": f"Marketer {i}"} for i in range(6)}
    people |= {"boss": {"name": "The Leader"}, "root": {"name": "The Admin"}}
    for entry in people.values():
        if entry.get("timezone") is None:
            entry.pop("timezone", None)
    config = {
        "organisation": {"name": "Pulse Co", "timezone": "Europe/Berlin"},
        "people": people,
        "roles": {
            "rep": [f"s{i}" for i in range(8)],
            "marketer": [f"m{i}" for i in range(6)],
            "leader": ["boss"],
            "admin": ["root"],
        },
        "audiences": {
            "sales": {"targets": ["console:#sales"], "members": [f"s{i}" for i in range(8)]},
            "marketing": {"targets": ["console:#marketing"], "members": [f"m{i}" for i in range(6)]},
        },
        "surveys": {
            "alignment": {
                "title": "Alignment pulse",
                "audiences": ["sales", "marketing"],
                "schedule": "0 10 * * TUE",
                "open_for": "3d",
                "remind_after": "2d",
                "min_group_size": 5,
                "min_group_size_comments": 10,
                "questions": QUESTIONS,
                **survey,
            }
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def pctx(db: Database, clock: Clock) -> Context:
    # Monday 30 November 2026, 21:00 UTC: Tuesday 10:00 has just arrived at UTC+14.
    clock.now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    ctx = Context(db=db, org=parse_organisation_text(organisation()), clock=clock)
    setup.apply(ctx)
    return ctx


@pytest.fixture
def who(pctx: Context) -> dict[str, Actor]:
    return {key: directory.console_actor(pctx, key) for key in pctx.org.people}


def open_tuesday(ctx: Context) -> PulseRun:
    slot = last_occurrence("0 10 * * TUE", SLOT_ZONE, ctx.now(), within=GRACE)
    assert slot is not None and slot.strftime("%a %H:%M") == "Tue 10:00"
    pulse.open_scheduled(ctx, "alignment", slot.replace(tzinfo=None))
    return rows(ctx.db, PulseRun)[-1]


def answer(ctx: Context, actor: Actor, run: PulseRun, **values: Any) -> str:
    form = inbound.action(ctx, actor, pulse.ANSWER, str(run.id)).form
    if form is None:
        return inbound.action(ctx, actor, pulse.ANSWER, str(run.id)).text
    base = {"why": "4", "nps": "8", "channel": "Slack", "else": ""}
    return inbound.submit(ctx, actor, form.form_id, {**base, **values, **form.state}).text


def close(ctx: Context, run: PulseRun) -> pulse.RunResult:
    """Close the run on time, as the scheduler does, and read its results."""
    ctx.clock.now = max(ctx.now(), run.closes_at)  # type: ignore[attr-defined]
    pulse.close_due(ctx)
    with ctx.db.session() as session:
        return pulse.results(session, ctx.org, session.get(PulseRun, run.id))  # type: ignore[arg-type]


def test_each_person_is_invited_at_the_scheduled_time_where_they_are(pctx: Context) -> None:
    run = open_tuesday(pctx)
    assert run.slot == "2026-12-01T10:00"
    due = {i.person_id: i.due_at for i in rows(pctx.db, PulseInvitation)}
    berlin = directory.console_actor(pctx, "s0").person_id
    new_york = directory.console_actor(pctx, "s7").person_id
    assert due[berlin] == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert due[new_york] == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 EST
    invitations = rows(pctx.db, Outbox, kind="direct")
    assert len(invitations) == 14 and {o.address: o.due_at for o in invitations}["s7"] == due[new_york]
    assert run.closes_at == due[new_york] + timedelta(days=3)


def test_an_invitation_is_delivered_only_when_its_local_time_comes(pctx: Context, clock: Clock) -> None:
    open_tuesday(pctx)
    platform = RecordingPlatform()

    def deliver() -> list[str]:
        asyncio.run(DeliveryWorker(pctx.db, {"console": platform}, clock=clock).drain())
        return sorted(s.address for s in platform.transcript)

    assert deliver() == []
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert "s0" in deliver() and "s7" not in deliver()
    clock.now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert len(deliver()) == 14


def test_a_survey_scheduled_at_night_or_a_weekend_waits_for_the_working_morning(
    db: Database, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    ctx = Context(db=db, org=parse_organisation_text(organisation(schedule="0 22 * * FRI")), clock=clock)
    setup.apply(ctx)
    slot = last_occurrence("0 22 * * FRI", SLOT_ZONE, datetime(2026, 12, 4, 8, 0, tzinfo=UTC), within=GRACE)
    assert slot is not None
    pulse.open_scheduled(ctx, "alignment", slot.replace(tzinfo=None))
    due = {i.person_id: i.due_at for i in rows(db, PulseInvitation)}
    berlin = directory.console_actor(ctx, "s0").person_id
    assert due[berlin] == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 CET

    night_owls = Context(
        db=db,
        org=parse_organisation_text(organisation(schedule="0 22 * * FRI", allow_night_and_weekends=True)),
        clock=clock,
    )
    assert pulse.working_time(datetime(2026, 12, 4, 21, 0, tzinfo=UTC), "Europe/Berlin") != datetime(
        2026, 12, 4, 21, 0, tzinfo=UTC
    )
    with db.session() as session:
        session.execute(text("DELETE FROM pulseinvitation"))
        session.execute(text("DELETE FROM outbox"))
        session.execute(text("DELETE FROM pulserun"))
    pulse.open_scheduled(night_owls, "alignment", slot.replace(tzinfo=None))
    assert {i.person_id: i.due_at for i in rows(db, PulseInvitation)}[berlin] == datetime(
        2026, 12, 4, 21, 0, tzinfo=UTC
    )


def test_opening_the_same_slot_again_sends_nothing_twice(pctx: Context) -> None:
    open_tuesday(pctx)
    open_tuesday(pctx)
    assert len(rows(pctx.db, PulseRun)) == 1
    assert len(rows(pctx.db, PulseInvitation)) == 14 and len(rows(pctx.db, Outbox)) == 14


def test_two_processes_opening_the_same_slot_at_once_open_it_once(pctx: Context) -> None:
    barrier = threading.Barrier(4)
    slot = datetime(2026, 12, 1, 10, 0)

    def open_it() -> None:
        barrier.wait()
        pulse.open_scheduled(pctx, "alignment", slot)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rows(pctx.db, PulseRun)) == 1
    assert len(rows(pctx.db, PulseInvitation)) == 14 and len(rows(pctx.db, Outbox)) == 14


def test_one_reminder_goes_only_to_those_who_have_not_answered(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    answer(pctx, who["s0"], run)
    clock.now = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)  # two days after Berlin's invitations
    queued = pulse.remind_due(pctx)
    reminded = {i.person_id for i in rows(pctx.db, PulseInvitation) if i.reminded}
    assert queued == len(reminded) == 11  # not s0 (answered), not s6, s7 in New York (not two days yet)
    assert who["s0"].person_id not in reminded and who["s7"].person_id not in reminded
    assert pulse.remind_due(pctx) == 0
    reminder = [
        o for o in rows(pctx.db, Outbox, kind="direct") if Card.from_dict(o.card).title.startswith("Reminder")
    ]
    assert len(reminder) == 11


def test_answers_are_stored_without_the_person_and_only_once(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    assert "without your name" in answer(pctx, who["s0"], run, why="5", **{"else": "More demos."})
    assert "already answered" in answer(pctx, who["s0"], run)
    assert "not invited" in answer(pctx, who["boss"], run)
    # Sealed until the run closes: nothing readable, one ballot, the same length as any other.
    assert rows(pctx.db, PulseAnswer) == []
    [ballot] = rows(pctx.db, PulseBallot)
    assert b"More demos" not in ballot.sealed
    invitation = rows(pctx.db, PulseInvitation, person_id=who["s0"].person_id)[0]
    assert invitation.answered
    answer(pctx, who["s1"], run)
    assert {len(b.sealed) for b in rows(pctx.db, PulseBallot)} == {len(ballot.sealed)}
    for key in ("s2", "s3", "s4"):
        answer(pctx, who[key], run, why="5")
    close(pctx, run)
    assert rows(pctx.db, PulseBallot) == []
    stored = rows(pctx.db, PulseAnswer)
    assert {a.question for a in stored} == {"why", "nps", "channel"}  # one comment: fewer than 10
    assert {a.side for a in stored if a.question == "why"} == {"sales"}
    assert sorted(a.number for a in stored if a.question == "why") == [4, 5, 5, 5, 5]


def test_a_run_closes_on_time_and_leaders_get_the_results(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    for key in ("s0", "s1", "s2", "s3", "s4", "m0"):
        answer(pctx, who[key], run)
    assert pulse.close_due(pctx) == 0
    clock.now = run.closes_at
    assert pulse.close_due(pctx) == 1 and pulse.close_due(pctx) == 0
    [to_leader] = rows(pctx.db, Outbox, address="boss")
    card = Card.from_dict(to_leader.card)
    assert "Response: 6 of 14" in str(card.to_dict()).replace("', '", ": ")
    assert "closed" in answer(pctx, who["s5"], run)


def test_results_hide_every_group_below_the_minimum(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    for key in ("s0", "s1", "s2", "s3"):
        answer(pctx, who[key], run, **{"else": f"comment from {key}"})
    hidden = close(pctx, run)
    assert not hidden.shown and hidden.index is None and hidden.answered == 4
    # Four answers could never be shown: none of them is kept.
    assert rows(pctx.db, PulseAnswer) == [] and rows(pctx.db, PulseBallot) == []

    clock.now = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    run = open_tuesday(pctx)
    for key in ("s0", "s1", "s2", "s3"):
        answer(pctx, who[key], run, **{"else": f"comment from {key}"})
    answer(pctx, who["s4"], run, why="2")
    for key in ("m0", "m1"):
        answer(pctx, who[key], run)
    shown = close(pctx, run)
    why = next(q for q in shown.questions if q.id == "why")
    assert shown.shown and why.distribution == {"1": 0, "2": 1, "3": 0, "4": 6, "5": 0}
    # Two marketers are too few; and beside the total, sales' mean would give theirs away.
    assert why.by_side == {"sales": None, "marketing": None}
    comments = next(q for q in shown.questions if q.id == "else")
    assert comments.comments is None  # four: fewer than 10, and not kept
    assert not [a for a in rows(pctx.db, PulseAnswer) if a.text]
    # Nor are the sides: two marketers' answers labelled so would be theirs for anyone reading the table.
    assert {a.side for a in rows(pctx.db, PulseAnswer)} == {""}
    rows_out = {(r["question"], r["group"]): r for r in _export(pctx) if r["run"] == run.id}
    for side in ("side:marketing", "side:sales"):
        assert rows_out[("why", side)]["mean"] == "" and "not shown" in rows_out[("why", side)]["note"]

    clock.now = datetime(2026, 12, 14, 21, 0, tzinfo=UTC)
    run = open_tuesday(pctx)
    for key in ("s0", "s1", "s2", "s3", "m0", "m1", "m2", "m3", "m4"):
        answer(pctx, who[key], run)
    answer(pctx, who["s4"], run, why="2")
    both = close(pctx, run)
    why = next(q for q in both.questions if q.id == "why")
    assert why.by_side == {"sales": pytest.approx(3.6), "marketing": pytest.approx(4.0)}


def test_the_minimum_cannot_be_lowered_once_a_run_has_answers(
    db: Database, pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    for key in ("s0", "s1", "s2"):
        answer(pctx, who[key], run)
    lowered = Context(
        db=db, org=parse_organisation_text(organisation(min_group_size=3)), clock=clock, seal=pctx.seal
    )
    result = close(lowered, run)
    assert result.min_group_size == 5 and not result.shown and rows(db, PulseAnswer) == []


def test_the_alignment_index_its_trend_and_the_gap_between_sales_and_marketing(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    first = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    for key in [f"s{i}" for i in range(5)] + [f"m{i}" for i in range(5)]:
        answer(pctx, who[key], first, why="3", nps="5")
    clock.now = first.closes_at
    pulse.close_due(pctx)

    clock.now = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    second = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)
    for key in [f"s{i}" for i in range(5)]:
        answer(pctx, who[key], second, why="5", nps="10")
    for key in [f"m{i}" for i in range(5)]:
        answer(pctx, who[key], second, why="3", nps="6")
    result = close(pctx, second)
    why = next(q for q in result.questions if q.id == "why")
    assert why.mean == pytest.approx(4.0) and why.change == pytest.approx(1.0)
    assert why.by_side == {"sales": pytest.approx(5.0), "marketing": pytest.approx(3.0)}
    # why: (4-1)/4 = 75; nps: 8/10 = 80; the index is their mean
    assert result.index == pytest.approx(77.5)
    assert [round(v or 0) for _, v in result.trend] == [50]  # first run: why 50, nps 50


def test_only_admins_run_and_close_and_leaders_see_results(pctx: Context, who: dict[str, Actor]) -> None:
    assert "Only admins" in inbound.command(pctx, who["s0"], "pulse", "run alignment").text
    reply = inbound.command(pctx, who["root"], "pulse", "run alignment")
    assert "14 people invited" in reply.text
    run = rows(pctx.db, PulseRun)[0]
    assert all(i.due_at == pctx.now() for i in rows(pctx.db, PulseInvitation))  # an admin asked: at once
    assert "Only admins and leaders" in inbound.command(pctx, who["s0"], "pulse", "results").text
    assert "when the run closes" in str(inbound.command(pctx, who["boss"], "pulse", "results").card)
    assert "Only admins" in inbound.command(pctx, who["boss"], "pulse", f"close {run.id}").text
    closed = inbound.command(pctx, who["root"], "pulse", f"close {run.id}")
    assert "is closed; 1 leader got the results" in closed.text
    assert "already closed" in inbound.command(pctx, who["root"], "pulse", f"close {run.id}").text
    assert "There is no survey" in inbound.command(pctx, who["root"], "pulse", "run nope").text


# --- anonymity by construction ---------------------------------------------------------------------


def test_nothing_in_the_schema_leads_from_an_answer_to_a_person(pctx: Context) -> None:
    answers = metadata.tables["pulseanswer"]
    assert {c.name for c in answers.columns} == {
        "id",
        "run_id",
        "question",
        "side",
        "audience",
        "number",
        "choice",
        "text",
    }
    assert not [c.name for c in answers.columns if isinstance(c.type, DateTime)]
    # Follow every foreign key from the answers: none reaches a person or an invitation.
    reached, frontier = set(), {"pulseanswer"}
    while frontier:
        table = frontier.pop()
        reached.add(table)
        for fk in metadata.tables[table].foreign_keys:
            if fk.column.table.name not in reached:
                frontier.add(fk.column.table.name)
    assert reached == {"pulseanswer", "pulserun"}
    assert not [fk for fk in metadata.tables["pulserun"].foreign_keys]
    # The live schema agrees with the models (no column added behind the models' back).
    live = {c["name"] for c in inspect(pctx.db.engine).get_columns("pulseanswer")}
    assert live == {c.name for c in answers.columns}


def test_answer_ids_and_storage_order_say_nothing_about_who_answered_first(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    for key in [f"s{i}" for i in range(6)] + [f"m{i}" for i in range(6)]:
        answer(pctx, who[key], run, why=str(1 + int(key[1:]) % 5))
        clock.advance(minutes=7)
    close(pctx, run)
    with pctx.db.engine.connect() as connection:
        stored = [
            tuple(r) for r in connection.execute(text("SELECT id FROM pulseanswer WHERE question = 'why'"))
        ]
        if pctx.db.engine.dialect.name == "sqlite":
            table_sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'pulseanswer'")
            ).scalar_one()
            assert "WITHOUT ROWID" in table_sql
    ids = [r[0] for r in stored]
    assert len(ids) == 12 and len(set(ids)) == 12 and all(len(i) == 32 for i in ids)
    # Every value of every answer column, sought in every other table: no answer value matches
    # anything that identifies a person or an invitation.
    identifying = {str(v) for p in rows(pctx.db, PulseInvitation) for v in (p.id, p.person_id, p.due_at)}
    for a in rows(pctx.db, PulseAnswer):
        assert str(a.id) not in identifying


def _export(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.session() as session:
        return pulse.export_rows(session, ctx.org)


def test_comments_show_from_ten_people_on_in_an_order_that_says_nothing(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    people = [f"s{i}" for i in range(6)] + [f"m{i}" for i in range(4)]
    for n, key in enumerate(people):
        answer(pctx, who[key], run, **{"else": f"{'zyxwvutsrq'[n]} comment"})
    result = close(pctx, run)
    comments = next(q for q in result.questions if q.id == "else").comments
    assert comments == sorted(comments or []) and comments is not None and len(comments) == 10


def test_each_audience_shows_only_with_enough_people_in_it(
    pctx: Context, who: dict[str, Actor], clock: Clock
) -> None:
    run = open_tuesday(pctx)
    clock.now = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    for key in [f"s{i}" for i in range(6)] + ["m0", "m1"]:
        answer(pctx, who[key], run, why="4" if key.startswith("s") else "2")
    result = close(pctx, run)
    why = next(q for q in result.questions if q.id == "why")
    # Marketing's two answers are too few, and sales' mean beside the total would give them away.
    assert why.by_audience == {}
    exported = {(r["question"], r["group"]): r for r in _export(pctx)}
    assert ("why", "audience:marketing") not in exported and exported[("why", "all")]["mean"] == "3.50"

    clock.now = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    run = open_tuesday(pctx)
    for key in [f"s{i}" for i in range(6)]:
        answer(pctx, who[key], run, why="4")
    for key in [f"m{i}" for i in range(5)]:
        answer(pctx, who[key], run, why="2")
    result = close(pctx, run)
    why = next(q for q in result.questions if q.id == "why")
    assert why.by_audience == {"sales": pytest.approx(4.0), "marketing": pytest.approx(2.0)}
