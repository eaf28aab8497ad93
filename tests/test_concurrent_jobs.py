"""Every scheduled job run twice at once, as two leading processes would run it: each reminder,
message, run and digest exactly once, on SQLite and on PostgreSQL, also with clocks seconds apart."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select

from handlers import assets, directory, inbound, pulse, setup, strategy
from handlers.context import Actor, Context
from handlers.organisation import Organisation, parse_organisation
from handlers.ui import Card, Reply
from scheduler import jobs
from storage.database import Database
from storage.models import (
    Asset,
    AuditEntry,
    Decision,
    DigestIssue,
    Objection,
    Outbox,
    PulseAnswer,
    PulseBallot,
    PulseInvitation,
    PulseRun,
    Question,
    SealedConcern,
    Theme,
)
from tests.fakes import Clock, rows

REPS = 400  # enough that one run is still writing its reminders when the other starts
LEADERS = 100  # a pulse's results go to each
DIGEST_READERS = 150
START = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)  # a Monday
SLOT = datetime(2026, 11, 30, 20, 0, 30, tzinfo=UTC)  # Tuesday 10:00:30 in UTC+14, the first zone
RUN_TIMEOUT = 120.0
SKEW = timedelta(seconds=3)
TICK = timedelta(seconds=60)


def organisation() -> Organisation:
    reps = {f"rep{i}": {"name": f"Rep {i}"} for i in range(REPS)}
    leads = {f"lead{i}": {"name": f"Lead {i}"} for i in range(LEADERS - 1)}
    return parse_organisation(
        {
            "organisation": {"name": "Crowd Co", "timezone": "Europe/Berlin"},
            "people": {"boss": {"name": "Bea Boss"}, "market": {"name": "Max Marketer"}, **leads, **reps},
            "roles": {"leader": ["boss", *leads], "marketer": ["market"], "rep": list(reps)},
            "audiences": {"field": {"targets": ["console:#field"], "members": list(reps)}},
            "strategy": {"remind_after": "2d"},
            "objections": {"keep_for_months": 6, "themes": {"price": ["price", "expensive", "budget"]}},
            "surveys": {
                "alignment": {
                    "title": "Alignment",
                    "audiences": ["field"],
                    "schedule": "0 10 * * TUE",
                    "open_for": "3d",
                    "remind_after": "1d",
                    "allow_night_and_weekends": True,
                    "questions": [{"id": "clear", "text": "The strategy is clear to me.", "type": "agree-5"}],
                }
            },
            "digest": {"recipients": list(reps)[:DIGEST_READERS], "schedule": "0 8 * * MON"},
        }
    )


@pytest.fixture(scope="module")
def crowd() -> Organisation:
    return organisation()


@pytest.fixture
def world(database_url: str, crowd: Organisation) -> Iterator[Context]:
    ctx = Context(db=Database.from_url(database_url), org=crowd, clock=Clock(START))
    setup.apply(ctx)
    yield ctx
    ctx.db.dispose()


# --- running a job twice at once -------------------------------------------------------------------


@dataclass
class Run:
    sent: list[float] = field(default_factory=list)  # when each of its statements went to the database
    committed: list[float] = field(default_factory=list)  # when each of its transactions asked to commit
    error: BaseException | None = None


def at_once(world: Context, job: Callable[[Context], None], clocks: list[datetime]) -> list[Run]:
    """`job` in as many threads as `clocks`, each a "process" of its own (its own engine and
    connections, its own clock) over the same database, released together by a barrier.

    On PostgreSQL the runs' transactions interleave; on SQLite the second one's BEGIN IMMEDIATE
    waits for the first to commit, and it must then see the first one's claim, not a snapshot
    taken before it."""
    url = world.db.engine.url.render_as_string(hide_password=False)
    databases = [Database.from_url(url) for _ in clocks]
    barrier = threading.Barrier(len(clocks), timeout=30)
    runs = [Run() for _ in clocks]
    for database, run in zip(databases, runs, strict=True):
        # Every statement, SQLite's BEGIN IMMEDIATE among them (timed before it waits its turn).
        event.listen(
            database.engine, "before_cursor_execute", lambda *_a, r=run: r.sent.append(time.perf_counter())
        )
        event.listen(database.engine, "commit", lambda _c, r=run: r.committed.append(time.perf_counter()))

    def one(i: int) -> None:
        ctx = Context(db=databases[i], org=world.org, clock=Clock(clocks[i]), seal=world.seal)
        try:
            databases[i].engine.connect().close()  # connect first, so that both start the job together
            barrier.wait()
            job(ctx)
        except BaseException as error:
            runs[i].error = error

    threads = [
        threading.Thread(target=one, args=(i,), name=f"job-{i}", daemon=True) for i in range(len(clocks))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + RUN_TIMEOUT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a run did not finish within {RUN_TIMEOUT:.0f} s"
    for database in databases:
        database.dispose()
    for run in runs:
        if run.error is not None:
            raise run.error
    # Truly at once: each run had sent its first statement before the other committed.
    assert all(r.sent and r.committed for r in runs)
    assert max(r.sent[0] for r in runs) < min(r.committed[-1] for r in runs), "the runs did not overlap"
    return runs


def once_each(sent: list[Outbox]) -> set[tuple[str, str]]:
    """Where the messages went, checking that none went to the same place twice."""
    places = [(r.platform, r.address) for r in sent]
    repeated = len(places) - len(set(places))
    assert repeated == 0, f"{repeated} of {len(places)} messages went to someone twice"
    return set(places)


def clock_of(ctx: Context) -> Clock:
    assert isinstance(ctx.clock, Clock)
    return ctx.clock


def actor(ctx: Context, key: str) -> Actor:
    return directory.console_actor(ctx, key)


def form_values(reply: Reply, **values: Any) -> tuple[str, dict[str, Any]]:
    assert reply.form is not None, reply
    return reply.form.form_id, {**values, **reply.form.state}


def announce(ctx: Context) -> Decision:
    boss = actor(ctx, "boss")
    form_id, values = form_values(
        inbound.command(ctx, boss, "strategy", ""),
        title="Mid-market first",
        decision="From January we lead with the mid-market tier.",
        why="Win rates in mid-market are twice enterprise.",
        reps_may="offer up to 15% on 3-year deals",
        reps_may_not="discount the platform fee",
        effective_on="2026-12-01",
        review_on="",
        audiences=["field"],
    )
    assert not inbound.submit(ctx, boss, form_id, values).errors
    decision: Decision = rows(ctx.db, Decision)[-1]
    return decision


def open_run(ctx: Context) -> PulseRun:
    clock_of(ctx).now = SLOT
    jobs.open_pulse("alignment", ctx)
    run: PulseRun
    [run] = rows(ctx.db, PulseRun)
    return run


def log_objections(ctx: Context, count: int, *, at: datetime) -> None:
    clock = clock_of(ctx)
    before, clock.now = clock.now, at
    for i in range(count):
        reply = inbound.command(ctx, actor(ctx, f"rep{i}"), "objection", f"too expensive for a pilot of {i}")
        assert "Recorded" in reply.text, reply
    clock.now = before


# --- the jobs: each sets the scene, and says what must then be true exactly once ------------------


Check = Callable[[], None]


def acknowledgement_reminders(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    decision = announce(ctx)
    acknowledged = 20
    for i in range(acknowledged):
        inbound.action(ctx, actor(ctx, f"rep{i}"), strategy.ACK, str(decision.id))
    clock_of(ctx).advance(days=3)

    def check() -> None:
        sent = rows(ctx.db, Outbox, kind="direct", subject=f"decision:{decision.id}")
        assert len(once_each(sent)) == REPS - acknowledged
        assert rows(ctx.db, Decision, id=decision.id)[0].reminded_at is not None

    return jobs.remind_acknowledgements, check


def pulse_opening(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    clock_of(ctx).now = SLOT

    def check() -> None:
        [run] = rows(ctx.db, PulseRun)
        invited = [i.person_id for i in rows(ctx.db, PulseInvitation, run_id=run.id)]
        assert len(invited) == len(set(invited)) == REPS
        assert len(once_each(rows(ctx.db, Outbox, kind="direct", subject=f"pulse:{run.id}"))) == REPS

    return lambda c: jobs.open_pulse("alignment", c), check


def pulse_reminders(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    run = open_run(ctx)
    clock_of(ctx).now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a day after 10:00 in Berlin

    def check() -> None:
        sent = rows(ctx.db, Outbox, kind="direct", subject=f"pulse:{run.id}")
        reminders = [r for r in sent if Card.from_dict(r.card).title.startswith("Reminder")]
        assert len(once_each(reminders)) == REPS and len(sent) == 2 * REPS
        assert all(i.reminded for i in rows(ctx.db, PulseInvitation, run_id=run.id))

    return jobs.remind_pulses, check


def pulse_closing(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    run = open_run(ctx)
    answered = 60
    for i in range(answered):
        rep = actor(ctx, f"rep{i}")
        form_id, values = form_values(
            inbound.action(ctx, rep, pulse.ANSWER, str(run.id)), clear=str(1 + i % 5)
        )
        assert "Thank you" in inbound.submit(ctx, rep, form_id, values).text
    clock_of(ctx).now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # past its three days

    def check() -> None:
        assert rows(ctx.db, PulseRun, id=run.id)[0].status == pulse.CLOSED
        assert len(rows(ctx.db, PulseAnswer, run_id=run.id)) == answered  # mixed once
        assert rows(ctx.db, PulseBallot) == []
        sent = rows(ctx.db, Outbox, kind="direct", subject=f"pulse:{run.id}")
        results = [r for r in sent if Card.from_dict(r.card).title.endswith("(closed)")]
        assert len(once_each(results)) == LEADERS

    return jobs.close_pulses, check


def draft_deadlines(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    drafts = 40
    market = actor(ctx, "market")
    with ctx.db.session() as session:
        price = session.exec(select(Theme).where(Theme.key == "price")).one()
    for i in range(drafts):
        form_id, values = form_values(
            inbound.command(ctx, market, "asset", "draft"),
            title=f"Battlecard {i}",
            link=f"https://drive.example.com/battlecard-{i}",
            kind="battlecard",
            key_message="Lead with the three-year cost.",
            themes=[str(price.id)],
            audiences=["field"],
            input_until="2026-12-03",
        )
        assert not inbound.submit(ctx, market, form_id, values).errors
    for asset in rows(ctx.db, Asset)[:10]:
        for who in ("rep1", "rep2"):
            rep = actor(ctx, who)
            form_id, values = form_values(
                inbound.action(ctx, rep, assets.SUGGEST, str(asset.id)), text=f"Shorter, says {who}."
            )
            inbound.submit(ctx, rep, form_id, values)
    clock_of(ctx).now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

    def check() -> None:
        closed = rows(ctx.db, Asset)
        assert len(closed) == drafts and all(a.input_closed_at is not None for a in closed)
        for asset in closed:
            told = [
                r
                for r in rows(ctx.db, Outbox, kind="direct", subject=f"owner:{asset.id}")
                if Card.from_dict(r.card).title.startswith("Input on your draft")
            ]
            assert len(once_each(told)) == 1, asset.title

    return jobs.close_drafts, check


def anonymous_concerns(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    decision = announce(ctx)
    concerns = 150
    for i in range(concerns):
        rep = actor(ctx, f"rep{i}")
        form_id, values = form_values(
            inbound.action(ctx, rep, strategy.CONCERN, str(decision.id)),
            text=f"Customer {i} says the tier lacks SSO.",
            anonymous=True,
        )
        assert "anonymously" in inbound.submit(ctx, rep, form_id, values).text
    clock_of(ctx).now = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # past 08:00 in Berlin

    def check() -> None:
        asked = rows(ctx.db, Question, kind="concern")
        assert sorted(q.text for q in asked) == sorted(
            f"Customer {i} says the tier lacks SSO." for i in range(concerns)
        )
        sent = [r for r in rows(ctx.db, Outbox, kind="direct") if r.subject.startswith("question:")]
        assert sorted(r.subject for r in sent) == sorted(f"question:{q.id}" for q in asked)
        assert rows(ctx.db, SealedConcern) == []

    return jobs.deliver_concerns, check


def objection_retention(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    log_objections(ctx, 30, at=datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    log_objections(ctx, 5, at=datetime(2026, 11, 1, 9, 0, tzinfo=UTC))  # kept
    # Many more of both, in many themes, written straight into the tables: deleting them and
    # rebuilding every theme from what is left then takes a while.
    old, recent, spread = 1000, 1000, 50
    with ctx.db.session() as session:
        found = [Theme(name=f"budget {t}", created_at=START) for t in range(spread)]
        session.add_all(found)
        session.flush()
        theme_ids = [t.id for t in found if t.id is not None]
        for i in range(old + recent):
            session.add(
                Objection(
                    text=f"the budget for {i} is {'gone' if i < old else 'frozen'} this year",
                    theme_id=theme_ids[i % spread],
                    created_at=datetime(2026, 4, 2, tzinfo=UTC)
                    if i < old
                    else datetime(2026, 11, 2, tzinfo=UTC),
                )
            )

    def check() -> None:
        kept = rows(ctx.db, Objection)
        assert len(kept) == 5 + recent and not any("gone" in o.text for o in kept)
        left = Counter(o.theme_id for o in kept)
        assert {t.id: t.size for t in rows(ctx.db, Theme)} == {t.id: left[t.id] for t in rows(ctx.db, Theme)}

    return jobs.keep_objections, check


def weekly_digest(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    monday = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    log_objections(ctx, 12, at=monday - timedelta(days=2))
    clock_of(ctx).now = monday

    def check() -> None:
        assert len(rows(ctx.db, DigestIssue)) == 1
        sent = rows(ctx.db, Outbox, kind="direct", subject="digest:2026-12-07")
        assert len(once_each(sent)) == DIGEST_READERS

    return jobs.send_digest, check


def regrouping(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    # Twenty ways of asking for single sign-on, each alone in a theme of its own, written straight
    # into the tables: one regrouping gathers them into one of those themes.
    said = [
        "Employees must log in through the corporate directory",
        "Their IT wants one login for every tool",
        "Staff have to sign in with their company accounts",
        "Accounts have to come from Azure AD",
    ]
    with ctx.db.session() as session:
        alone = [Theme(name=f"alone {i}", created_at=START) for i in range(20)]
        session.add_all(alone)
        session.flush()
        for i, theme in enumerate(alone):
            assert theme.id is not None
            text = f"{said[i % len(said)]} (deal {i})"
            session.add(Objection(text=text, theme_id=theme.id, created_at=START - timedelta(days=1)))

    def check() -> None:
        objections = rows(ctx.db, Objection)
        assert len({o.theme_id for o in objections}) == 1
        assert len(rows(ctx.db, Theme)) == 20 + 1  # no theme made twice (the one more: price)
        [regrouped] = [e for e in rows(ctx.db, AuditEntry) if e.action == "themes.regroup"]
        assert regrouped.detail["moved"] == 19
        [gathered] = rows(ctx.db, Theme, id=objections[0].theme_id)
        assert gathered.size == 20

    return jobs.regroup_themes, check


def forgetting_received(ctx: Context) -> tuple[Callable[[Context], None], Check]:
    from storage.models import InboundEvent, InboxItem

    # Enough of them, written straight into the tables, that deleting them takes a while.
    many = 60_000
    with ctx.db.session() as session:
        session.connection().execute(
            InboxItem.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "platform": "slack",
                    "key": f"r{n}",
                    "kind": "command",
                    "received_at": START,
                    "done": bool(n % 3),
                    "attempts": 1,
                }
                for n in range(many)
            ],
        )
        session.connection().execute(
            InboundEvent.__table__.insert(),  # type: ignore[attr-defined]
            [{"platform": "slack", "event_id": f"Ev{n}", "received_at": START} for n in range(many)],
        )
    clock_of(ctx).now = START + timedelta(days=2)

    def check() -> None:
        assert len(rows(ctx.db, InboxItem)) == many // 3 and rows(ctx.db, InboundEvent) == []

    return jobs.forget_received, check


JOBS = {
    "remind_acknowledgements": acknowledgement_reminders,
    "open_pulse": pulse_opening,
    "remind_pulses": pulse_reminders,
    "close_pulses": pulse_closing,
    "close_drafts": draft_deadlines,
    "deliver_concerns": anonymous_concerns,
    "keep_objections": objection_retention,
    "send_digest": weekly_digest,
    "forget_received": forgetting_received,
    "regroup_themes": regrouping,
}


def test_every_scheduled_job_has_a_concurrency_test() -> None:
    from scheduler.runner import Timing, wanted_jobs

    scheduled = {spec["func"].split(":")[1] for spec in wanted_jobs(organisation(), Timing()).values()}
    assert scheduled == set(JOBS)


@pytest.mark.parametrize("name", list(JOBS))
def test_a_job_run_twice_at_once_does_its_work_once(world: Context, name: str) -> None:
    job, check = JOBS[name](world)
    now = world.now()
    at_once(world, job, [now, now])
    check()


@pytest.mark.parametrize("name", list(JOBS))
def test_two_processes_whose_clocks_are_seconds_apart_do_a_job_once(world: Context, name: str) -> None:
    job, check = JOBS[name](world)
    now = world.now()
    at_once(world, job, [now + SKEW, now - SKEW])
    check()
    # The next tick, on the clock that is behind and on the one ahead: nothing is due again.
    for clock in (now - SKEW + TICK, now + SKEW + TICK):
        job(Context(db=world.db, org=world.org, clock=Clock(clock), seal=world.seal))
    check()
