"""How well objections are grouped into themes, against two labelled sets written for the purpose.

    .venv/bin/python -m benchmarks.grouping_quality [--grouping words|semantic|all] [--moves 0.1]
        [--examples FILE] [--tune]

benchmarks/data/objections_labeled.csv: 161 objections of 16 kinds, written with the first
taxonomy. benchmarks/data/objections_public.csv: 96 objections of 16 kinds taken from public
lists of common sales objections, written by another author who saw neither the first set nor
the shipped examples (objections_public.md says where each kind comes from).

Each objection is logged through `/objection`, in one fixed shuffled order, into a fresh
database with the shipped app.yaml; the themes Touchline gives them are compared with the
labels by the adjusted Rand index (1 = the same grouping, 0 = no better than chance), "as
recorded" (one at a time) and after a regrouping (as the weekly job and an import do). Then a
marketer moves a tenth of them, by `/objection theme move` and `split`, to where a reader would
put them, the themes are regrouped, and the other nine tenths are scored before and after.

The thresholds (WordGrouper 0.25, SentenceGrouper 0.35, the regrouping's JOINS and TOGETHER)
were chosen once, on the first five objections of each kind of the first set (the "tuning
part"; `--tune` prints the regrouping's sweep); "held out" is the rest of that set, and the
second set played no part in any choice. `--examples` adds example sentences from a YAML file
(theme -> sentences) to app.yaml's themes, to try other examples.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sqlmodel import col, select

from benchmarks import common
from bot.config import parse_organisation_text
from handlers import directory, inbound, setup
from handlers.context import Context
from handlers.grouping import regroup
from storage.models import Objection

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "benchmarks" / "data" / "objections_labeled.csv"
PUBLIC = ROOT / "benchmarks" / "data" / "objections_public.csv"  # see objections_public.md
ORDER_SEED = 20261128


def adjusted_rand_index(truth: list[str], predicted: list[Any]) -> float:
    """Hubert and Arabie's adjusted Rand index of two groupings of the same items."""

    def pairs(n: int) -> float:
        return n * (n - 1) / 2

    together = sum(pairs(n) for n in Counter(zip(truth, predicted, strict=True)).values())
    by_truth = sum(pairs(n) for n in Counter(truth).values())
    by_prediction = sum(pairs(n) for n in Counter(predicted).values())
    expected = by_truth * by_prediction / pairs(len(truth))
    best = (by_truth + by_prediction) / 2
    return (together - expected) / (best - expected) if best != expected else 1.0


def labelled(path: Path = LABELLED, *, held_out: bool = False, tuning: bool = False) -> list[dict[str, str]]:
    """The labelled rows in one fixed shuffled order: all, or the first five of each theme (the
    tuning part), or the others (held out)."""
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    if held_out or tuning:
        seen: Counter[str] = Counter()
        kept = []
        for row in rows:
            seen[row["theme"]] += 1
            if (seen[row["theme"]] > 5) == held_out:
                kept.append(row)
        rows = kept
    random.Random(ORDER_SEED).shuffle(rows)
    return rows


class Result(NamedTuple):
    recorded: tuple[float, int]  # ARI and themes, as recorded one at a time
    regrouped: tuple[float, int] | None  # after a regrouping (grouping by meaning only)
    moved: tuple[float, float, int] | None  # the rest's ARI before and after a marketer's moves, and how many


def evaluate(
    grouping: str,
    rows: list[dict[str, str]],
    *,
    taxonomy: bool = True,
    examples: Path | None = None,
    moves: float = 0.0,
) -> Result:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["grouping"] = grouping
    if not taxonomy:
        config["objections"]["themes"] = {}
    if examples is not None:
        taught = yaml.safe_load(examples.read_text(encoding="utf-8"))
        shipped = {
            key: entry if isinstance(entry, dict) else {"cues": entry}
            for key, entry in config["objections"]["themes"].items()
        }
        for key, said in taught.items():
            shipped.setdefault(key, {"cues": []})["examples"] = list(said)
        config["objections"]["themes"] = shipped
    truth = [r["theme"] for r in rows]
    with common.database(None, quiet=True) as db:
        ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(config)))
        setup.apply(ctx)
        rep = directory.console_actor(ctx, "jonas")
        for row in rows:
            reply = inbound.command(ctx, rep, "objection", row["text"])
            assert "Recorded" in reply.text, reply.text
        recorded = _scored(db, truth)
        if grouping != "semantic":
            return Result(recorded, None, None)
        regroup.regroup(ctx)
        regrouped = _scored(db, truth)
        if not moves:
            return Result(recorded, regrouped, None)
        # A marketer corrects a tenth, by the commands marketers use: each chosen objection goes
        # to the theme where its kind is the most common kind and which holds most of it; a kind
        # that is the most common nowhere gets a theme of its own, split off for its first one.
        with db.session() as session:
            ids = [o.id for o in session.exec(select(Objection).order_by(col(Objection.id)))]
        chosen = sorted(random.Random(ORDER_SEED + 1).sample(range(len(rows)), round(len(rows) * moves)))
        rest = [i for i in range(len(rows)) if i not in set(chosen)]
        before = _themes(db)
        held = Counter(zip(before, truth, strict=True))
        leading = {t: max((n, k) for (t_, k), n in held.items() if t_ == t)[1] for t in set(before)}
        home: dict[str, int] = {}
        for kind in set(truth):
            mine = [(n, t) for (t, k), n in held.items() if k == kind and leading[t] == kind]
            if mine:
                home[kind] = max(mine)[1]
        marketer = directory.console_actor(ctx, "tom")
        for i in chosen:
            kind = truth[i]
            if kind not in home:
                reply = inbound.command(
                    ctx, marketer, "objection", f"theme split {before[i]} {ids[i]} as {kind}"
                )
                assert "to the new theme" in reply.text, reply.text
                home[kind] = int(reply.text.rsplit("(#", 1)[1].rstrip(")."))
                continue
            reply = inbound.command(ctx, marketer, "objection", f"theme move {ids[i]} to {home[kind]}")
            assert "is now in" in reply.text, reply.text
        regroup.regroup(ctx)
        after = _themes(db)
        part = [truth[i] for i in rest]
        return Result(
            recorded,
            regrouped,
            (
                adjusted_rand_index(part, [before[i] for i in rest]),
                adjusted_rand_index(part, [after[i] for i in rest]),
                len(chosen),
            ),
        )


def _themes(db: Any) -> list[int]:
    with db.session() as session:
        return [o.theme_id for o in session.exec(select(Objection).order_by(col(Objection.id)))]


def _scored(db: Any, truth: list[str]) -> tuple[float, int]:
    found = _themes(db)
    return adjusted_rand_index(truth, found), len(set(found))


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--grouping", choices=["words", "semantic", "all"], default="all")
    arguments.add_argument(
        "--examples",
        type=Path,
        help="a YAML file of theme -> example sentences, added to app.yaml's themes",
    )
    arguments.add_argument(
        "--moves", type=float, default=0.1, help="the share of objections a marketer moves"
    )
    arguments.add_argument(
        "--tune", action="store_true", help="try regrouping thresholds on the tuning part of the labelled set"
    )
    args = arguments.parse_args()
    groupings = ["words", "semantic"] if args.grouping == "all" else [args.grouping]
    if "semantic" in groupings:
        from handlers.grouping import semantic

        if not semantic.available():
            print(f"semantic: the model could not load here ({semantic.problem()})")
            groupings.remove("semantic")
    if args.tune:
        tune(args.examples)
        return
    for path in (LABELLED, PUBLIC):
        labels = Counter(r["theme"] for r in csv.DictReader(path.open(encoding="utf-8")))
        print(f"\n{sum(labels.values())} labelled objections in {len(labels)} themes ({path.name})")
        parts = (("all", {}), ("tuning part", {"tuning": True}), ("held out", {"held_out": True}))
        for grouping in groupings:
            for part, which in parts if path == LABELLED else parts[:1]:
                rows = labelled(path, **which)
                result = evaluate(
                    grouping, rows, examples=args.examples, moves=args.moves if part == "all" else 0
                )
                line = f"{grouping:>8}, {part:<11}: as recorded {_shown(result.recorded, len(rows))}"
                if result.regrouped is not None:
                    line += f"; regrouped {_shown(result.regrouped, len(rows))}"
                print(line)
                if result.moved is not None:
                    before, after, moved = result.moved
                    print(
                        f"{'':>8}  after a marketer moved {moved}: the other {len(rows) - moved} "
                        f"{before:.3f} -> {after:.3f}"
                    )


def tune(examples: Path | None) -> None:
    rows = labelled(LABELLED, tuning=True)
    print(f"regrouping thresholds on the tuning part ({len(rows)} objections of {LABELLED.name})")
    print(" NEAR JOINS TOGETHER   ARI  themes")
    for near in (0.40, 0.45, 0.50, 1.01):  # 1.01: no example or placed objection ever near enough
        for joins in (0.25, 0.30, 0.35, 0.40, 0.45):
            for together in (0.20, 0.25, 0.30):
                regroup.NEAR, regroup.JOINS, regroup.TOGETHER = near, joins, together
                ari, found = evaluate("semantic", rows, examples=examples).regrouped or (0.0, 0)
                print(f"{near:5.2f} {joins:5.2f} {together:8.2f} {ari:6.3f} {found:6d}")


def _shown(scored: tuple[float, int], items: int) -> str:
    return f"ARI {scored[0]:.3f} ({scored[1]} themes of {items})"


if __name__ == "__main__":
    main()
