"""One Touchline scheduler process, for the test that runs two on one PostgreSQL database.

python -m tests.scheduler_process <database url> <holder name>
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import timedelta

from bot.config import parse_organisation_text
from handlers.context import Context
from scheduler.runner import SchedulerRunner, Timing
from storage.database import Database
from tests.conftest import ORG_YAML

FAST = Timing(
    lease_ttl=timedelta(seconds=3),
    heartbeat=timedelta(seconds=0.5),
    tick=timedelta(seconds=1),
    grace=timedelta(seconds=30),
)


def main() -> None:
    url, holder = sys.argv[1], sys.argv[2]
    ctx = Context(db=Database.from_url(url), org=parse_organisation_text(ORG_YAML))
    runner = SchedulerRunner(ctx, holder=holder, timing=FAST)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    runner.start()
    done.wait()
    runner.stop()


if __name__ == "__main__":
    main()
