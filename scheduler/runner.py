"""Runs the scheduler in exactly one of the Touchline processes sharing a database.

Each process beats every few seconds: it takes or renews the lease row, and runs the
APScheduler scheduler (jobs kept in the database) only while it holds it. When the holder
dies its lease runs out and the next beat of another process takes over. Job bodies are
idempotent, so the moment two processes both think they lead cannot send anything twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from handlers.context import Context
from handlers.organisation import Organisation
from scheduler import jobs
from storage import lease
from storage.database import UNREACHABLE
from storage.models import SchedulerRun

log = logging.getLogger(__name__)
LEASE = "scheduler"


@dataclass(frozen=True)
class Timing:
    """How often things happen; tests shorten them."""

    lease_ttl: timedelta = timedelta(seconds=20)  # a dead leader is replaced within ttl + heartbeat
    heartbeat: timedelta = timedelta(seconds=5)
    tick: timedelta = timedelta(seconds=60)  # reminders, closings, deadlines are checked this often
    grace: timedelta = jobs.GRACE  # a run missed by longer than this is skipped, not replayed


REGROUP_SCHEDULE = "0 3 * * SUN"  # the themes are regrouped weekly, at night, in the organisation's zone


def real_clock() -> datetime:
    return datetime.now(UTC)


def wanted_jobs(org: Organisation, timing: Timing) -> dict[str, dict[str, Any]]:
    """Every job app.yaml calls for, by a stable id, as `add_job` arguments."""
    grace = int(timing.grace.total_seconds())
    tick = IntervalTrigger(seconds=max(1, int(timing.tick.total_seconds())), timezone=UTC)
    wanted: dict[str, dict[str, Any]] = {
        f"pulse:{key}": {
            "func": "scheduler.jobs:open_pulse",
            "trigger": CronTrigger.from_crontab(survey.schedule, timezone=jobs.SLOT_ZONE),
            "args": [key],
            "misfire_grace_time": grace,
        }
        for key, survey in org.surveys.items()
    }
    if org.digest is not None:
        wanted["digest"] = {
            "func": "scheduler.jobs:send_digest",
            "trigger": CronTrigger.from_crontab(org.digest.schedule, timezone=org.organisation.timezone),
            "misfire_grace_time": grace,
        }
    if org.objections.grouping == "semantic":
        wanted["themes-regroup"] = {
            "func": "scheduler.jobs:regroup_themes",
            "trigger": CronTrigger.from_crontab(REGROUP_SCHEDULE, timezone=org.organisation.timezone),
            "misfire_grace_time": grace,
        }
    for job_id, func in (
        ("pulse-reminders", "remind_pulses"),
        ("pulse-closing", "close_pulses"),
        ("acknowledgement-reminders", "remind_acknowledgements"),
        ("draft-deadlines", "close_drafts"),
        ("anonymous-concerns", "deliver_concerns"),
        ("forget-received", "forget_received"),
    ):
        wanted[job_id] = {"func": f"scheduler.jobs:{func}", "trigger": tick, "misfire_grace_time": grace}
    if org.objections.keep_for_months is not None:
        wanted["objection-retention"] = {
            "func": "scheduler.jobs:keep_objections",
            "trigger": tick,
            "misfire_grace_time": grace,
        }
    return wanted


class SchedulerRunner:
    def __init__(
        self,
        ctx: Context,
        *,
        timing: Timing | None = None,
        holder: str | None = None,
        clock: Callable[[], datetime] = real_clock,
    ) -> None:
        self.ctx = ctx
        self.timing = timing or Timing()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="touchline-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._stop_scheduler()
        with self.ctx.db.session() as session:
            lease.release(session, name=LEASE, holder=self.holder, now=self.clock())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except UNREACHABLE as error:
                log.warning("the scheduler waits for the database (%s)", type(error).__name__)
            except Exception:
                log.exception("scheduler heartbeat failed; trying again")
            self._stop.wait(self.timing.heartbeat.total_seconds())

    def beat(self) -> bool:
        """Take or renew the lease, and run the scheduler exactly while holding it."""
        with self.ctx.db.session() as session:
            holding = lease.acquire(
                session, name=LEASE, holder=self.holder, now=self.clock(), ttl=self.timing.lease_ttl
            )
        if holding and not self.leading:
            log.info("scheduler: %s leads", self.holder)
            self._start_scheduler()
        elif not holding and self.leading:
            log.warning("scheduler: %s lost the lease; stopping", self.holder)
            self._stop_scheduler()
        return holding

    def _start_scheduler(self) -> None:
        jobs.use(self.ctx)
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.ctx.db.engine)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.add_listener(self._record, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        scheduler.start(paused=True)
        sync_jobs(scheduler, self.ctx.org, self.timing)
        scheduler.resume()
        self.scheduler = scheduler

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
            jobs.use(None)

    def _record(self, event: JobExecutionEvent) -> None:
        outcome = {EVENT_JOB_EXECUTED: "ran", EVENT_JOB_ERROR: "failed"}.get(event.code, "missed")
        if outcome == "failed":
            log.error("scheduled job %s failed", event.job_id, exc_info=event.exception)
        try:
            with self.ctx.db.session() as session:
                session.add(
                    SchedulerRun(
                        job_id=event.job_id,
                        scheduled_for=event.scheduled_run_time,
                        holder=self.holder,
                        outcome=outcome,
                        at=self.clock(),
                    )
                )
        except UNREACHABLE as error:
            log.warning("could not record the run of %s: %s", event.job_id, type(error).__name__)
        except Exception:
            log.exception("could not record the run of %s", event.job_id)


def sync_jobs(scheduler: BackgroundScheduler, org: Organisation, timing: Timing) -> None:
    """Make the stored jobs exactly those app.yaml calls for: new ones added, changed ones
    replaced, ones no longer configured removed."""
    wanted = wanted_jobs(org, timing)
    stored = {job.id: job for job in scheduler.get_jobs()}
    for job_id, job in stored.items():
        if job_id not in wanted:
            log.info("scheduler: removing %s, no longer in app.yaml", job_id)
            job.remove()
    for job_id, spec in wanted.items():
        job = stored.get(job_id)
        # An unchanged job is left alone: replacing it would recompute its next run from now
        # and forget a run that was missed while no process was up, instead of catching up.
        if job is not None and _same(job, spec):
            continue
        scheduler.add_job(id=job_id, name=job_id, replace_existing=True, **spec)


def _same(job: Any, spec: dict[str, Any]) -> bool:
    trigger = spec["trigger"]
    if job.func_ref != spec["func"] or list(job.args) != list(spec.get("args", [])):
        return False
    if isinstance(trigger, IntervalTrigger) and isinstance(job.trigger, IntervalTrigger):
        return bool(job.trigger.interval == trigger.interval)
    return repr(job.trigger) == repr(trigger)
