"""Grouping by meaning in the default install: the sentence-embedding model run in NumPy agrees
with sentence-transformers, and objections that say the same in other words share a theme."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.config import parse_organisation_text
from handlers import directory, inbound, setup
from handlers.context import Context
from handlers.grouping import minilm
from storage.database import Database
from storage.models import Objection, Theme
from tests.cli import run_cli
from tests.conftest import ROOT
from tests.fakes import rows

REFERENCE = ROOT / "benchmarks" / "data" / "minilm_reference.json"


def test_the_model_gives_what_sentence_transformers_gives_for_the_same_sentences() -> None:
    """The reference was made by sentence-transformers (benchmarks/minilm_reference.py): short,
    long past the 256 tokens it keeps, accented, in other languages."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    mine = minilm.model().encode(reference["sentences"])
    theirs = np.array(reference["vectors"], dtype=np.float32)
    assert mine.shape == theirs.shape == (len(reference["sentences"]), 384)
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert float((mine * theirs).sum(axis=1).min()) > 0.99999
    # One at a time or together, in any order: the same vectors.
    alone = np.stack([minilm.model().encode([s])[0] for s in reversed(reference["sentences"])])[::-1]
    assert np.abs(alone - mine).max() < 1e-5


def test_what_means_the_same_is_nearer_than_what_does_not() -> None:
    price, dearer, sso = minilm.model().encode(
        ["It is too expensive", "The cost is far above what we can pay", "We need single sign-on first"]
    )
    assert float(price @ dearer) > float(price @ sso) + 0.2


def _themes(db: Database, grouping: str, said: list[str]) -> list[int | None]:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["grouping"] = grouping
    config["objections"]["themes"] = {}  # no cue words: the text alone decides
    ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(config)))
    setup.apply(ctx)
    rep = directory.console_actor(ctx, "jonas")
    for text in said:
        assert "Recorded" in inbound.command(ctx, rep, "objection", text).text
    return [o.theme_id for o in sorted(rows(db, Objection), key=lambda o: o.id or 0)][-len(said) :]


def test_objections_in_other_words_share_a_theme_by_meaning_not_by_words(db: Database) -> None:
    said = ["It costs too much", "The price is too high for us"]  # not one meaningful word shared
    by_words = _themes(db, "words", said)
    assert by_words[0] != by_words[1]
    by_meaning = _themes(db, "semantic", said)
    assert by_meaning[0] == by_meaning[1]


def test_touchline_check_says_how_objections_are_grouped(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["grouping"] = "semantic"
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}", "TOUCHLINE_CONFIG": str(tmp_path / "app.yaml")}
    done = run_cli("check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "objection grouping: by meaning (all-MiniLM-L6-v2, run locally)" in done.stdout


def test_a_theme_s_example_sentences_in_app_yaml_teach_it_what_it_is_about(db: Database) -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["grouping"] = "semantic"
    config["objections"]["themes"] = {
        "price": ["price", "expensive"],
        "login": {
            "cues": ["sso"],
            "examples": ["Staff must sign in with their company accounts", "We need SAML with Okta"],
        },
    }
    org = parse_organisation_text(yaml.safe_dump(config))
    assert org.objections.themes["login"] == ["sso"] and len(org.objections.examples["login"]) == 2
    ctx = Context(db=db, org=org)
    setup.apply(ctx)
    rep = directory.console_actor(ctx, "jonas")
    inbound.command(ctx, rep, "objection", "Employees have to log in with their work accounts")  # no cue word
    [objection] = rows(db, Objection)
    themes = {t.id: t.key for t in rows(db, Theme)}
    assert themes[objection.theme_id] == "login"


def test_a_theme_with_something_else_than_cues_and_examples_is_refused_by_name() -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["objections"]["themes"] = {"login": {"cues": ["sso"], "sentences": ["x"]}}
    with pytest.raises(Exception) as refused:
        parse_organisation_text(yaml.safe_dump(config))
    assert "theme login: sentences is not cues or examples" in str(refused.value)
