"""The scheduled jobs: top-level functions with primitive arguments, the way APScheduler stores them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from handlers import assets, digest, privacy, pulse, strategy
from handlers.context import Context
from handlers.grouping import regroup

log = logging.getLogger(__name__)

# UTC+14: the first place where any local time of day arrives. A survey's cron fires here, so
# its run opens before anyone's local time comes; each person is then invited at that same
# wall-clock time where they are (their invitation waits in the outbox until then).
SLOT_ZONE = ZoneInfo("Etc/GMT-14")
GRACE = timedelta(hours=6)

# APScheduler keeps jobs in the database as "module:function" plus pickled arguments, so a
# job cannot carry the Context; the runner that leads hands it over here while it runs. Each
# job also takes one directly, so that a test can run the same job in two "processes" at once.
_running: dict[str, Context] = {}


def use(ctx: Context | None) -> None:
    if ctx is None:
        _running.pop("ctx", None)
    else:
        _running["ctx"] = ctx


def _ctx(given: Context | None = None) -> Context:
    if given is not None:
        return given
    try:
        return _running["ctx"]
    except KeyError:
        raise RuntimeError("a scheduled job ran outside a running SchedulerRunner") from None


def open_pulse(survey_key: str, ctx: Context | None = None) -> None:
    """A survey's scheduled time arrived in the first time zone: open its run."""
    ctx = _ctx(ctx)
    survey = ctx.org.surveys.get(survey_key)
    if survey is None:
        return
    slot = last_occurrence(survey.schedule, SLOT_ZONE, ctx.now(), within=GRACE)
    if slot is None:
        log.info("pulse %s: no scheduled time within the last %s, nothing to open", survey_key, GRACE)
        return
    invited = pulse.open_scheduled(ctx, survey_key, slot.replace(tzinfo=None))
    log.info("pulse %s for %s: %d invited", survey_key, slot.strftime("%Y-%m-%d %H:%M"), invited)


def remind_pulses(ctx: Context | None = None) -> None:
    pulse.remind_due(_ctx(ctx))


def close_pulses(ctx: Context | None = None) -> None:
    pulse.close_due(_ctx(ctx))


def remind_acknowledgements(ctx: Context | None = None) -> None:
    strategy.remind_unacknowledged(_ctx(ctx))


def deliver_concerns(ctx: Context | None = None) -> None:
    """Anonymous concerns whose daily round has come go to their decisions' authors."""
    strategy.deliver_concerns(_ctx(ctx))


def close_drafts(ctx: Context | None = None) -> None:
    assets.close_due_drafts(_ctx(ctx))


def keep_objections(ctx: Context | None = None) -> None:
    """Objections older than `objections.keep_for_months` go (nothing, when it is not set)."""
    gone = privacy.apply_retention(_ctx(ctx))
    if gone:
        log.info("retention: %d objections older than the months app.yaml keeps were deleted", gone)


def forget_received(ctx: Context | None = None) -> None:
    """Done inbox items and heard events go after a day (kept against platforms' retries)."""
    privacy.forget_received(_ctx(ctx))


def send_digest(ctx: Context | None = None) -> None:
    """The digest reads regrouped themes: the week's objections are grouped together first."""
    ctx = _ctx(ctx)
    regroup_themes(ctx)
    digest.send_weekly(ctx)


def regroup_themes(ctx: Context | None = None) -> None:
    """The last half year's objections grouped again, together (weekly, and before each digest)."""
    try:
        regroup.regroup(_ctx(ctx))
    except Exception:  # a regrouping that fails leaves the themes as they were; the digest still goes
        log.exception("themes: the regrouping failed; the themes stay as they were")


def last_occurrence(expression: str, zone: ZoneInfo, now: datetime, *, within: timedelta) -> datetime | None:
    """The latest time at or before `now`, and no older than `within`, that `expression` names in `zone`."""
    trigger = CronTrigger.from_crontab(expression, timezone=zone)
    found: datetime | None = None
    moment = trigger.get_next_fire_time(None, (now - within).astimezone(zone))
    while moment is not None and moment <= now:
        found = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return found.astimezone(zone) if found else None
