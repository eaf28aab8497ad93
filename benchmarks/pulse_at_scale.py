"""What a pulse costs at scale: opening a run for thousands, answering, closing (mixing), the results.

    .venv/bin/python -m benchmarks.pulse_at_scale [--people 5000] [--answers 3000] [--database-url ...]

Prints its figures; asserts nothing. With no --database-url it uses a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from benchmarks import common
from handlers import directory, inbound, pulse, setup
from handlers.context import Context
from handlers.organisation import parse_organisation
from storage.database import Database
from storage.models import PulseBallot, PulseRun

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Singapore", "Australia/Sydney"]
QUESTIONS = [{"id": f"q{i}", "text": f"Statement {i}", "type": "agree-5"} for i in range(5)] + [
    {"id": "else", "text": "Anything else?", "type": "text", "optional": True}
]


def organisation(people: int) -> dict[str, Any]:
    everyone = {f"p{i}": {"name": f"Person {i}", "timezone": ZONES[i % len(ZONES)]} for i in range(people)}
    sales = [k for i, k in enumerate(everyone) if i % 3]
    marketing = [k for i, k in enumerate(everyone) if not i % 3]
    return {
        "organisation": {"name": "Benchmark Co"},
        "people": {**everyone, "root": {"name": "Admin"}},
        "roles": {"rep": sales, "marketer": marketing, "admin": ["root"], "leader": ["root"]},
        "audiences": {
            "sales": {"targets": ["console:#sales"], "members": sales},
            "marketing": {"targets": ["console:#marketing"], "members": marketing},
        },
        "surveys": {
            "alignment": {
                "title": "Alignment pulse",
                "audiences": ["sales", "marketing"],
                "schedule": "0 10 * * TUE",
                "questions": QUESTIONS,
            }
        },
    }


def main() -> None:
    arguments = common.parser(__doc__)
    arguments.add_argument("--people", type=int, default=5000)
    arguments.add_argument("--answers", type=int, default=3000)
    args = arguments.parse_args()
    with common.database(args.database_url) as db:
        run(db, args)


def run(db: Database, args: argparse.Namespace) -> None:
    now = [datetime(2026, 11, 30, 21, 0, tzinfo=UTC)]
    ctx = Context(db=db, org=parse_organisation(organisation(args.people)), clock=lambda: now[0])
    setup.apply(ctx)
    print(f"{args.people} people in {len(ZONES)} time zones, {len(QUESTIONS)} questions")

    began = time.perf_counter()
    invited = pulse.open_scheduled(ctx, "alignment", datetime(2026, 12, 1, 10, 0))
    print(f"open a run: {invited} invitations queued at local times in {time.perf_counter() - began:.2f} s")
    with db.session() as session:
        run = session.exec(select(PulseRun)).one()

    rng = random.Random(3)
    actors = [directory.console_actor(ctx, f"p{i}") for i in rng.sample(range(args.people), args.answers)]
    now[0] = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    samples = []
    for actor in actors:
        values = {q["id"]: str(rng.randint(1, 5)) for q in QUESTIONS if q["type"] == "agree-5"}
        values["else"] = rng.choice(["", "", "More demos.", "Pricing is unclear."])
        started = time.perf_counter()
        reply = inbound.submit(ctx, actor, pulse.FORM_ID, {**values, "run": str(run.id)})
        samples.append((time.perf_counter() - started) * 1000)
        assert "Thank you" in reply.text, reply.text
    print(f"answer ({len(samples)} people): {common.percentiles(samples)}")
    with db.session() as session:
        ballot = session.exec(select(PulseBallot)).first()
        assert ballot is not None
        print(f"a sealed ballot: {len(ballot.sealed):,} bytes, the same for everyone in the run")
    admin = directory.console_actor(ctx, "root")
    began = time.perf_counter()
    closed = inbound.command(ctx, admin, "pulse", f"close {run.id}")
    assert "is closed" in closed.text, closed.text
    print(
        f"close the run (open {len(samples)} ballots, mix and write the answers, queue the leaders' "
        f"results): {time.perf_counter() - began:.2f} s"
    )
    began = time.perf_counter()
    with db.session() as session:
        result = pulse.results(session, ctx.org, session.get(PulseRun, run.id))  # type: ignore[arg-type]
    print(
        f"results ({result.answered} respondents, index {result.index:.0f}): "
        f"{(time.perf_counter() - began) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
