"""The scheduler: jobs from app.yaml, missed runs coalesced, and exactly one process leading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import parse_organisation_text
from handlers import setup
from handlers.context import Context
from handlers.organisation import Organisation
from scheduler.jobs import SLOT_ZONE, last_occurrence
from scheduler.runner import SchedulerRunner, Timing, sync_jobs
from storage import lease
from storage.database import Database
from storage.models import SchedulerRun
from tests.conftest import ORG_YAML, ROOT
from tests.fakes import Clock, rows

SURVEY = {
    "surveys": {
        "alignment": {
            "title": "Pulse",
            "audiences": ["emea"],
            "schedule": "0 10 * * TUE",
            "questions": [{"id": "q", "text": "Q?", "type": "agree-5"}],
        }
    },
    "digest": {"recipients": ["market"], "schedule": "0 8 * * MON"},
}


def org_with(**changes: object) -> Organisation:
    config = yaml.safe_load(ORG_YAML) | SURVEY
    for key, value in changes.items():
        config[key] = value
    return parse_organisation_text(yaml.safe_dump(config))


@pytest.fixture
def store(db: Database) -> Iterator[BackgroundScheduler]:
    """A paused scheduler on the test database's job table, to look at what is stored."""
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=db.engine)}, timezone=UTC)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=False)


def test_the_last_occurrence_of_a_cron_expression() -> None:
    now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # Tuesday 11:00 at UTC+14
    slot = last_occurrence("0 10 * * TUE", SLOT_ZONE, now, within=timedelta(hours=6))
    assert slot is not None and slot.replace(tzinfo=None) == datetime(2026, 12, 1, 10, 0)
    assert last_occurrence("0 10 * * TUE", SLOT_ZONE, now, within=timedelta(minutes=30)) is None


def test_the_stored_jobs_follow_app_yaml_with_no_duplicates_and_no_orphans(
    store: BackgroundScheduler,
) -> None:
    timing = Timing()
    sync_jobs(store, org_with(), timing)
    assert sorted(j.id for j in store.get_jobs()) == [
        "acknowledgement-reminders",
        "anonymous-concerns",
        "digest",
        "draft-deadlines",
        "forget-received",
        "pulse-closing",
        "pulse-reminders",
        "pulse:alignment",
        "themes-regroup",
    ]
    before = {j.id: j.next_run_time for j in store.get_jobs()}
    sync_jobs(store, org_with(), timing)  # a restart with nothing changed
    assert {j.id: j.next_run_time for j in store.get_jobs()} == before

    changed = dict(SURVEY["surveys"]["alignment"], schedule="30 9 * * WED")  # type: ignore[call-overload]
    sync_jobs(store, org_with(surveys={"alignment": changed}, digest=None), timing)
    jobs = {j.id: j for j in store.get_jobs()}
    assert "digest" not in jobs and len(jobs) == 8
    assert "day_of_week='wed', hour='9', minute='30'" in str(jobs["pulse:alignment"].trigger)


@pytest.fixture
def quick(ctx: Context) -> Iterator[list[SchedulerRunner]]:
    started: list[SchedulerRunner] = []
    yield started
    for runner in started:
        runner._stop_scheduler()


def wait_for(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_runs_missed_while_down_are_coalesced_into_one_or_skipped_past_the_grace(
    ctx: Context, store: BackgroundScheduler, quick: list[SchedulerRunner]
) -> None:
    timing = Timing(tick=timedelta(seconds=60), grace=timedelta(minutes=5))
    weekly = Context(db=ctx.db, org=org_with(), clock=ctx.clock)
    sync_jobs(store, weekly.org, timing)
    now = datetime.now(UTC)
    # As if no process had been up: three ticks missed, and a weekly survey missed two days ago.
    store.modify_job("acknowledgement-reminders", next_run_time=now - timedelta(minutes=3, seconds=30))
    store.modify_job("pulse:alignment", next_run_time=now - timedelta(days=2))
    for job_id in ("draft-deadlines", "pulse-reminders", "pulse-closing", "digest"):
        store.modify_job(job_id, next_run_time=now + timedelta(hours=1))

    runner = SchedulerRunner(weekly, timing=timing)
    quick.append(runner)
    assert runner.beat()
    wait_for(lambda: len(rows(ctx.db, SchedulerRun)) >= 2)
    time.sleep(0.5)
    runs = [(r.job_id, r.outcome) for r in rows(ctx.db, SchedulerRun)]
    # the ticks: caught up once, not three times; the survey: too late to open, skipped
    assert sorted(runs) == [("acknowledgement-reminders", "ran"), ("pulse:alignment", "missed")]


def test_lease_goes_to_one_holder_is_renewed_and_taken_over_once_it_expires(
    db: Database, clock: Clock
) -> None:
    ttl = timedelta(seconds=20)
    with db.session() as session:
        assert lease.acquire(session, name="s", holder="a", now=clock.now, ttl=ttl)
    with db.session() as session:
        assert not lease.acquire(session, name="s", holder="b", now=clock.now, ttl=ttl)
    clock.advance(seconds=15)
    with db.session() as session:
        assert lease.acquire(session, name="s", holder="a", now=clock.now, ttl=ttl)  # renewed
    clock.advance(seconds=15)
    with db.session() as session:
        assert not lease.acquire(session, name="s", holder="b", now=clock.now, ttl=ttl)
        assert lease.holder_of(session, name="s", now=clock.now) == "a"
    clock.advance(seconds=6)  # a stopped renewing 21 s ago
    with db.session() as session:
        assert lease.acquire(session, name="s", holder="b", now=clock.now, ttl=ttl)
    with db.session() as session:
        lease.release(session, name="s", holder="b", now=clock.now)
        assert lease.holder_of(session, name="s", now=clock.now) is None


def test_of_two_runners_one_leads_and_the_other_takes_over_when_it_dies(
    ctx: Context, quick: list[SchedulerRunner]
) -> None:
    clock = Clock(now=datetime.now(UTC))
    timing = Timing(lease_ttl=timedelta(seconds=20))
    first = SchedulerRunner(ctx, holder="first", timing=timing, clock=clock)
    second = SchedulerRunner(ctx, holder="second", timing=timing, clock=clock)
    quick.extend([first, second])
    assert first.beat() and first.leading
    assert not second.beat() and not second.leading
    clock.advance(seconds=21)  # first has stopped beating
    assert second.beat() and second.leading
    assert not first.beat() and not first.leading  # it wakes up and steps down


def _runs(url: str) -> list[SchedulerRun]:
    database = Database.from_url(url)
    try:
        return rows(database, SchedulerRun)
    finally:
        database.dispose()


@pytest.mark.postgres
def test_two_scheduler_processes_on_postgresql_run_each_job_once_and_take_over_when_one_dies(
    postgres_url: str, org: Organisation
) -> None:
    database = Database.from_url(postgres_url)
    setup.apply(Context(db=database, org=org))
    database.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def spawn(holder: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.scheduler_process", postgres_url, holder], env=env, cwd=ROOT
        )

    first = spawn("first")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: any(r.holder == "first" for r in _runs(postgres_url)), 20)
        second = spawn("second")
        time.sleep(4)
        assert {r.holder for r in _runs(postgres_url)} == {"first"}  # the second only waits

        killed_at = datetime.now(UTC)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        wait_for(lambda: any(r.holder == "second" for r in _runs(postgres_url)), 20)
        took_over = min(r.at for r in _runs(postgres_url) if r.holder == "second")
        # lease 3 s + one heartbeat 0.5 s + one tick 1 s, and a little for starting up
        assert took_over - killed_at < timedelta(seconds=7)
        time.sleep(2)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    runs = [r for r in _runs(postgres_url) if r.outcome == "ran"]
    ran = [(r.job_id, r.scheduled_for) for r in runs]
    repeated = {pair for pair in ran if ran.count(pair) > 1}
    # Only the run in flight when the leader was killed may have been started twice; job
    # bodies are idempotent, so even that sends nothing twice.
    assert len(repeated) <= 4
    assert all(r.holder == "first" for r in runs if r.at < killed_at)
    assert all(r.holder == "second" for r in runs if r.at > took_over)
