"""How well objections are grouped into themes, against a labelled set written for the purpose.

    .venv/bin/python -m benchmarks.grouping_quality [--grouping words|semantic|all] [--examples FILE]

Each of the 161 objections in benchmarks/data/objections_labeled.csv (16 themes) is logged
through `/objection`, in one fixed shuffled order, into a fresh database with the shipped
app.yaml; the themes Touchline gives them are then compared with the labels by the adjusted
Rand index (1 = the same grouping, 0 = no better than chance). The shipped settings are used
as they are: nothing is tuned per run. "with the taxonomy" uses app.yaml's cue words as
shipped; "found only" drops them, to show what grouping by text alone achieves.

The two thresholds (WordGrouper 0.25, SentenceGrouper 0.35) were chosen once, on the first
five objections of each theme (SentenceGrouper's with `--examples
benchmarks/data/theme_examples.yaml`); "held out" reports the other objections alone, which
played no part in that choice. `--examples` adds example sentences to app.yaml's themes, as
`objections.themes` may carry them ({cues, examples}).
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select

from benchmarks import common
from bot.config import parse_organisation_text
from handlers import directory, inbound, setup
from handlers.context import Context
from storage.models import Objection

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "benchmarks" / "data" / "objections_labeled.csv"
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


def labelled(*, held_out: bool = False) -> list[dict[str, str]]:
    rows = list(csv.DictReader(LABELLED.open(encoding="utf-8")))
    if held_out:
        seen: Counter[str] = Counter()
        kept = []
        for row in rows:
            seen[row["theme"]] += 1
            if seen[row["theme"]] > 5:
                kept.append(row)
        rows = kept
    random.Random(ORDER_SEED).shuffle(rows)
    return rows


def evaluate(
    grouping: str, *, taxonomy: bool, held_out: bool = False, examples: Path | None = None
) -> tuple[float, int]:
    rows = labelled(held_out=held_out)
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["grouping"] = grouping
    if not taxonomy:
        config["objections"]["themes"] = {}
    if examples is not None:
        taught = yaml.safe_load(examples.read_text(encoding="utf-8"))
        cues = config["objections"]["themes"]
        config["objections"]["themes"] = {
            **{key: {"cues": list(words), "examples": []} for key, words in cues.items()},
            **{
                key: {"cues": list(cues.get(key, [])), "examples": list(said)} for key, said in taught.items()
            },
        }
    with common.database(None, quiet=True) as db:
        ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(config)))
        setup.apply(ctx)
        rep = directory.console_actor(ctx, "jonas")
        for row in rows:
            reply = inbound.command(ctx, rep, "objection", row["text"])
            assert "Recorded" in reply.text, reply.text
        with db.session() as session:
            themes = [o.theme_id for o in session.exec(select(Objection).order_by(col(Objection.id)))]
    return adjusted_rand_index([r["theme"] for r in rows], themes), len(set(themes))


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--grouping", choices=["words", "semantic", "all"], default="all")
    arguments.add_argument(
        "--examples",
        type=Path,
        help="a YAML file of theme -> example sentences, added to app.yaml's themes "
        "(benchmarks/data/theme_examples.yaml)",
    )
    args = arguments.parse_args()
    labels = Counter(r["theme"] for r in csv.DictReader(LABELLED.open(encoding="utf-8")))
    print(f"{sum(labels.values())} labelled objections in {len(labels)} themes ({LABELLED.name})")
    groupings = ["words", "semantic"] if args.grouping == "all" else [args.grouping]
    for grouping in groupings:
        if grouping == "semantic":
            from handlers import semantic

            if not semantic.available():
                print(f"semantic: the model could not load here ({semantic.problem()})")
                continue
        for taxonomy, held_out in ((True, False), (True, True), (False, False)):
            taught = args.examples if taxonomy else None
            ari, found = evaluate(grouping, taxonomy=taxonomy, held_out=held_out, examples=taught)
            which = ("with the taxonomy" if taxonomy else "found only") + (", held out" if held_out else "")
            which += " + examples" if taught else ""
            items = len(labelled(held_out=held_out))
            print(f"{grouping:>8}, {which:<28}: adjusted Rand index {ari:.3f} ({found} themes of {items})")


if __name__ == "__main__":
    main()
