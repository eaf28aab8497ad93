"""`touchline worker` (issue 17): delivery in a process of its own, beside `touchline serve --no-worker`,
so that a broadcast does not share a process with the answers to Slack."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from sqlmodel import col, func, select

from bot.config import parse_organisation_text
from handlers import setup
from handlers.context import Context
from storage import outbox
from storage.database import Database
from storage.models import Outbox
from tests import slack_fake
from tests.test_hostile_payloads import started
from tests.test_inbox import ORG, announced, touchline

WORKING = re.compile(r"Touchline's worker for .* delivers to slack\.")


def owed(db: Database) -> int:
    with db.session() as session:
        return int(
            session.exec(
                select(func.count()).where(col(Outbox.status).in_([outbox.PENDING, outbox.SENDING]))
            ).one()
        )


def test_serve_without_its_worker_answers_and_the_worker_delivers(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(ORG)
    db = Database.from_url(database_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG))
    setup.apply(ctx)
    with (
        started(slack_fake.fake_slack()) as (fake, _),
        touchline(tmp_path, database_url, fake, "serve", command=("serve", "--no-worker")),
    ):
        announced(ctx)
        time.sleep(2.0)  # the server's own delivery would have posted it by now
        assert owed(db) == 1 and fake.called("chat.postMessage") == []
        with touchline(tmp_path, database_url, fake, "worker", command=("worker",), ready=WORKING) as worker:
            # Beside serve on one machine, the worker yields the CPU to the answers.
            assert os.getpriority(os.PRIO_PROCESS, worker.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 10
            deadline = time.monotonic() + 20
            while owed(db):
                assert time.monotonic() < deadline, "the worker did not deliver"
                time.sleep(0.1)
    [post] = fake.called("chat.postMessage")
    assert post["channel"] == "C0SALES0001" and "Mid-market first" in post["text"]
    logs = (tmp_path / "serve.err").read_text() + (tmp_path / "worker.err").read_text()
    assert "Traceback" not in logs, logs[-3000:]
    db.dispose()


def test_the_worker_without_a_chat_platform_says_what_to_set(tmp_path: Path) -> None:
    from tests.cli import run_cli
    from tests.conftest import ROOT

    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        "TOUCHLINE_CONFIG": str(ROOT / "app.yaml"),
    }
    assert run_cli("migrate", env=env).returncode == 0
    done = run_cli("worker", env=env)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "SLACK_BOT_TOKEN" in said and "MICROSOFT_APP_ID" in said, said
    assert "Traceback" not in said


def test_serve_without_its_worker_only_stores_what_people_did_and_the_worker_does_it(
    database_url: str, tmp_path: Path
) -> None:
    """`serve --no-worker` answers Slack at once and, on PostgreSQL, leaves the work (recording an
    objection, its reply) to `touchline worker`, on another core: a crowd's work does not slow
    the answers. On SQLite it does the work itself: the file has one writer, and a worker's
    writes would hold up the inbox's own."""
    import asyncio

    from aiohttp import ClientSession

    from storage.models import InboxItem, Objection

    (tmp_path / "app.yaml").write_text(ORG)
    db = Database.from_url(database_url)
    said = [f"too pricey for a pilot, number {n}" for n in range(12)]

    def stored() -> int:
        with db.session() as session:
            return int(session.exec(select(func.count()).select_from(Objection)).one())

    with (
        started(slack_fake.fake_slack()) as (fake, _),
        touchline(tmp_path, database_url, fake, "serve", command=("serve", "--no-worker")) as server,
    ):

        async def send() -> list[int]:
            url = f"http://127.0.0.1:{server.port}/slack/events"  # type: ignore[attr-defined]
            async with ClientSession() as http:
                bodies = [
                    slack_fake.slash_command("objection", s, f"U0REP{n:05d}", fake=fake)
                    for n, s in enumerate(said)
                ]
                return [
                    status
                    for status, _ in await asyncio.gather(
                        *(slack_fake.post(http, url, b, "application/x-www-form-urlencoded") for b in bodies)
                    )
                ]

        assert asyncio.run(send()) == [200] * len(said)
        if database_url.startswith("sqlite"):
            deadline = time.monotonic() + 20
            while stored() < len(said) or len(fake.called("response_url")) < len(said):
                assert time.monotonic() < deadline, "serve did not do what it received"
                time.sleep(0.1)
            assert stored() == len(said)
            db.dispose()
            return
        time.sleep(1.5)  # the server itself would have recorded them by now
        with db.session() as session:
            waiting = session.exec(select(InboxItem).where(col(InboxItem.done).is_(False))).all()
        assert stored() == 0 and len(waiting) == len(said) and fake.called("response_url") == []
        assert all(item.claimed_by is None for item in waiting)  # for whichever worker takes it
        with touchline(tmp_path, database_url, fake, "worker", command=("worker",), ready=WORKING) as worker:
            # Beside serve on one machine, the worker yields the CPU to the answers.
            assert os.getpriority(os.PRIO_PROCESS, worker.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 10
            deadline = time.monotonic() + 20
            while stored() < len(said) or len(fake.called("response_url")) < len(said):
                assert time.monotonic() < deadline, "the worker did not do what was received"
                time.sleep(0.1)
    assert stored() == len(said)  # once each
    replies = " ".join(str(r.get("text", "")) for r in fake.called("response_url"))
    assert all(s in replies for s in said)
    logs = (tmp_path / "serve.err").read_text() + (tmp_path / "worker.err").read_text()
    assert "Traceback" not in logs, logs[-3000:]
    db.dispose()
