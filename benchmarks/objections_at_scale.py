"""What logging an objection costs as the month fills up, and what marketing's list costs.

    .venv/bin/python -m benchmarks.objections_at_scale [--objections 5000] [--reps 400]
                                                      [--database-url postgresql://...]

Each new objection is themed and compared with every objection of its theme from the last
30 days, so its cost grows with that number; this prints how. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from benchmarks import common
from handlers import directory, inbound, setup
from handlers.context import Context
from handlers.organisation import parse_organisation
from storage.database import Database
from storage.models import Theme

SAYINGS = {
    "price": [
        "too expensive vs {c}",
        "over budget this year",
        "{c} quoted {n}% less",
        "the price went up again",
    ],
    "competitor": ["{c} already runs their reporting", "switching from {c} is too much work", "{c} has it"],
    "security": ["no SOC2 report yet", "data residency in the EU is a must", "their security review failed"],
    "integration": ["no connector for SAP", "the Salesforce sync is one-way", "API rate limits too low"],
    "timing": ["budget freeze until next quarter", "not now, maybe next year", "they wait for the reorg"],
}
COMPETITORS = ["Acme", "Globex", "Initech"]


def organisation(reps: int) -> dict[str, Any]:
    people = {f"rep{i}": {"name": f"Rep {i}"} for i in range(reps)}
    return {
        "organisation": {"name": "Benchmark Co"},
        "people": {"mia": {"name": "Mia Marketer"}, **people},
        "roles": {"marketer": ["mia"], "rep": list(people)},
        "audiences": {"field": {"targets": ["console:#field"]}},
        "objections": {
            "competitors": COMPETITORS,
            "themes": {
                "price": ["price", "expensive", "budget", "less", "cheaper"],
                "competitor": ["competitor", "switching", "already"],
                "security": ["security", "soc2", "residency"],
                "integration": ["connector", "sync", "api", "integration"],
                "timing": ["freeze", "next quarter", "next year", "wait"],
            },
        },
    }


def saying(rng: random.Random) -> str:
    template = rng.choice(rng.choice(list(SAYINGS.values())))
    return template.format(c=rng.choice(COMPETITORS), n=rng.randint(10, 40)) + rng.choice(["", "!", " (CFO)"])


def main() -> None:
    arguments = common.parser(__doc__)
    arguments.add_argument("--objections", type=int, default=5000)
    arguments.add_argument("--reps", type=int, default=400)
    args = arguments.parse_args()
    with common.database(args.database_url) as db:
        run(db, args)


def run(db: Database, args: argparse.Namespace) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    now = [start]
    ctx = Context(db=db, org=parse_organisation(organisation(args.reps)), clock=lambda: now[0])
    setup.apply(ctx)
    reps = [directory.console_actor(ctx, f"rep{i}") for i in range(args.reps)]
    marketer = directory.console_actor(ctx, "mia")
    rng = random.Random(7)
    step = timedelta(days=30) / args.objections  # the whole month's objections, evenly spread
    print(f"{args.objections} objections from {args.reps} reps over 30 days, 5 themes")

    checkpoints = {args.objections // 10, args.objections // 2, args.objections}
    window: list[float] = []
    for n in range(1, args.objections + 1):
        began = time.perf_counter()
        reply = inbound.command(ctx, rng.choice(reps), "objection", saying(rng))
        window.append((time.perf_counter() - began) * 1000)
        assert "Recorded" in reply.text, reply.text
        now[0] += step
        if n in checkpoints:
            print(f"  /objection <text> around objection {n}: {common.percentiles(window[-200:])}")
    lists = []
    for _ in range(20):
        began = time.perf_counter()
        inbound.command(ctx, marketer, "objection", "list")
        lists.append((time.perf_counter() - began) * 1000)
    print(f"/objection list over the month (marketer): {common.percentiles(lists)}")
    began = time.perf_counter()
    inbound.command(ctx, marketer, "objection", "list price")
    print(f"/objection list price: {(time.perf_counter() - began) * 1000:.0f} ms")
    with db.session() as session:
        print(f"themes after the month: {session.exec(select(func.count()).select_from(Theme)).one()}")

    # Text that shares nothing starts a theme of its own: with many such themes heard lately,
    # every new objection is compared with each of them (at most 500).
    vocabulary = [f"{a}{b}" for a in ("zor", "qua", "vex", "lum", "dri", "pol") for b in range(80)]
    for _ in range(600):
        inbound.command(ctx, rng.choice(reps), "objection", " ".join(rng.sample(vocabulary, 4)))
    with db.session() as session:
        found = session.exec(select(func.count()).select_from(Theme)).one()
    timings = []
    for _ in range(200):
        began = time.perf_counter()
        inbound.command(ctx, rng.choice(reps), "objection", saying(rng))
        timings.append((time.perf_counter() - began) * 1000)
    print(f"/objection <text> with {found} themes heard lately: {common.percentiles(timings)}")


if __name__ == "__main__":
    main()
