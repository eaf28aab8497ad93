"""What `/metrics` says, in Prometheus' text format: deliveries, the outbox, rate limits, how
fast platforms are answered, and the scheduler's runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from handlers.context import Context
from storage import outbox
from storage.models import Outbox, SchedulerRun


class Metrics:
    """One registry per Touchline: the counters the worker and the routes move, and what is
    read from the database when Prometheus asks."""

    def __init__(self, ctx: Context) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "touchline_deliveries",
            "Messages settled, by platform and outcome",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "touchline_rate_limited", "429 answers from a platform", ["platform"], registry=self.registry
        )
        self.acknowledgement = Histogram(
            "touchline_acknowledgement_seconds",
            "Time from a platform's request to Touchline's answer",
            ["platform"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0),
            registry=self.registry,
        )
        self.registry.register(_FromDatabase(ctx))


class _FromDatabase(Collector):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self.ctx.now()
        with self.ctx.db.session() as session:
            waiting = session.exec(
                select(Outbox.platform, Outbox.status, func.count(), func.min(Outbox.created_at))
                .where(col(Outbox.status).in_([outbox.PENDING, outbox.SENDING]))
                .group_by(col(Outbox.platform), col(Outbox.status))
            ).all()
            runs = session.exec(
                select(SchedulerRun.job_id, SchedulerRun.outcome, func.count()).group_by(
                    col(SchedulerRun.job_id), col(SchedulerRun.outcome)
                )
            ).all()
        depth = GaugeMetricFamily(
            "touchline_outbox_depth", "Messages owed, by platform and state", labels=["platform", "state"]
        )
        oldest = GaugeMetricFamily(
            "touchline_outbox_oldest_seconds", "Age of the oldest message owed", labels=["platform"]
        )
        ages: dict[str, datetime] = {}
        for platform, status, count, first in waiting:
            depth.add_metric([platform, status], count)
            if first is not None:
                ages[platform] = min(ages.get(platform, first), first)
        for platform, first in ages.items():
            first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
            oldest.add_metric([platform], max((now - first).total_seconds(), 0.0))
        scheduled = CounterMetricFamily(
            "touchline_scheduler_runs", "Scheduled jobs run, failed or missed", labels=["job", "outcome"]
        )
        for job, outcome, count in runs:
            scheduled.add_metric([job.split(":", 1)[0], outcome], count)
        yield depth
        yield oldest
        yield scheduled
