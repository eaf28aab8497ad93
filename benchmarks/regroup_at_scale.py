"""What the weekly regrouping costs with half a year of objections: the most it looks at (5,000).

    .venv/bin/python -m benchmarks.regroup_at_scale [--objections 5000] [--postgres]

Loads that many objections, spread over the last 26 weeks, through `touchline import`'s own
function (each given its theme as it is recorded, then one regrouping), from the texts of both
labelled sets with a customer and a number added, so that few are word for word the same. Then
prints the time of a regrouping with no embedding in memory (a new process, as after a restart)
and with them (as the weekly job finds them in a server that has been running), the memory it
allocates at most (tracemalloc), and what it moved. The floor beside it: encoding the same texts
in batches, which any regrouping by meaning pays when nothing is in memory.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
import tracemalloc
from datetime import timedelta

from benchmarks import common
from benchmarks.grouping_quality import LABELLED, PUBLIC, ROOT
from bot.config import load_organisation
from handlers import exports, setup
from handlers.context import Context
from handlers.grouping import minilm, regroup, semantic

CUSTOMERS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
]


def texts(n: int) -> list[str]:
    said = [r["text"] for path in (LABELLED, PUBLIC) for r in csv.DictReader(path.open(encoding="utf-8"))]
    pick = random.Random(7)
    return [
        f"{pick.choice(said)} ({pick.choice(CUSTOMERS)}, deal {pick.randint(100, 9999)})" for _ in range(n)
    ]


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--objections", type=int, default=5000)
    arguments.add_argument("--postgres", action="store_true", help="on the local PostgreSQL (database test)")
    args = arguments.parse_args()
    with common.empty_database_url(args.postgres, "regroup") as url, common.database(url) as db:
        ctx = Context(db=db, org=load_organisation(ROOT / "app.yaml"))
        setup.apply(ctx)
        now = ctx.now()
        said = texts(args.objections)
        rows = [
            {"text": text, "date": (now - timedelta(days=i * 182 // len(said))).date().isoformat()}
            for i, text in enumerate(said)
        ]
        started = time.perf_counter()
        imported = exports.import_objections(ctx, rows, source="benchmark")
        took = time.perf_counter() - started
        print(f"import of {imported.loaded} objections with its regrouping: {took:.1f} s")
        print(f"  {imported.regrouped}")
        for cold in (True, False):
            if cold:
                semantic._cache.clear()
            tracemalloc.start()
            started = time.perf_counter()
            done = regroup.regroup(ctx)
            took = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            which = "nothing in memory" if cold else "embeddings in memory"
            print(f"regrouping, {which}: {took:.1f} s, at most {peak:.0f} MB allocated; {done.summary()}")
        started = time.perf_counter()
        minilm.model().encode(said)
        print(f"floor: encoding the {len(said)} texts in batches: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
