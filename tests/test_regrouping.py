"""Regrouping: the recent objections' themes worked out again together, with what marketers placed
kept where they put it and learnt from, ids and names surviving, names never from confidential text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bot.config import parse_organisation_text
from handlers import directory, inbound, setup
from handlers.context import Context
from handlers.grouping import regroup
from scheduler import jobs, runner
from storage.database import Database
from storage.models import AuditEntry, Objection, Theme
from tests.cli import run_cli
from tests.conftest import ORG_YAML, ROOT, Clock
from tests.fakes import rows

LOGIN = [
    "Staff have to sign in with their company accounts",
    "We need SAML with Okta before anyone can use it",
]
# Four ways of saying "we need single sign-on" without a word of the examples' or of each other's.
SIGN_IN = [
    "Employees must log in through the corporate directory",
    "Their IT wants one login for every tool",
    "Nobody will accept yet another password",
    "Accounts have to come from Azure AD",
]


def _ctx(db: Database, clock: Clock, themes: dict[str, Any], grouping: str = "semantic") -> Context:
    config = yaml.safe_load(ORG_YAML)
    config["objections"]["grouping"] = grouping
    config["objections"]["themes"] = themes
    ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(config)), clock=clock)
    setup.apply(ctx)
    return ctx


def _log(ctx: Context, key: str, text: str) -> Objection:
    reply = inbound.command(ctx, directory.console_actor(ctx, key), "objection", text)
    assert "Recorded" in reply.text, reply.text
    return rows(ctx.db, Objection)[-1]


def _log_confidential(ctx: Context, key: str, text: str) -> Objection:
    """Through the full form, the one way an objection is marked confidential."""
    actor = directory.console_actor(ctx, key)
    form = inbound.command(ctx, actor, "objection", "").form
    assert form is not None
    values = {"text": text, "severity": "medium", "confidential": True, **form.state}
    assert "Recorded" in inbound.submit(ctx, actor, form.form_id, values).text
    return rows(ctx.db, Objection)[-1]


def _marketer(ctx: Context, text: str) -> str:
    return inbound.command(ctx, directory.console_actor(ctx, "market"), "objection", f"theme {text}").text


def _theme_of(db: Database, objection: Objection) -> Theme:
    [now] = rows(db, Objection, id=objection.id)
    return rows(db, Theme, id=now.theme_id)[0]


def test_objections_logged_before_a_theme_had_examples_join_it_when_regrouped(
    db: Database, clock: Clock
) -> None:
    before = _ctx(db, clock, {"price": ["price", "expensive"]})
    logged = [_log(before, "rep1", text) for text in SIGN_IN]
    assert {_theme_of(db, o).key for o in logged} == {None}  # no theme knew what they are about
    after = _ctx(db, clock, {"price": ["price", "expensive"], "login": {"cues": [], "examples": LOGIN}})
    done = regroup.regroup(after)
    assert {_theme_of(db, o).key for o in logged} == {"login"}
    assert done.moved == len(SIGN_IN) and done.considered == len(SIGN_IN)
    [entry] = [e for e in rows(db, AuditEntry) if e.action == "themes.regroup"]
    assert entry.detail["moved"] == len(SIGN_IN)
    # Nothing left to do: a second regrouping moves nothing, and every theme keeps its id and name.
    kept = {(t.id, t.name) for t in rows(db, Theme)}
    assert regroup.regroup(after).moved == 0
    assert {(t.id, t.name) for t in rows(db, Theme)} == kept


def test_a_marketer_s_move_split_merge_and_rename_are_never_undone_by_a_regrouping(
    db: Database, clock: Clock
) -> None:
    ctx = _ctx(db, clock, {"login": {"cues": [], "examples": LOGIN}})
    logged = [_log(ctx, "rep1", text) for text in SIGN_IN]
    regroup.regroup(ctx)
    login = _theme_of(db, logged[0])
    assert {_theme_of(db, o).id for o in logged} == {login.id}
    # A move: the marketer thinks the password one is about security, not sign-in.
    assert "is now in" in _marketer(
        ctx, f"move {logged[2].id} to {_log(ctx, 'rep2', 'Is our data encrypted?').theme_id}"
    )
    moved_to = _theme_of(db, logged[2]).id
    # A split: the Azure one becomes a theme of its own.
    assert "to the new theme" in _marketer(ctx, f"split {login.id} {logged[3].id} as Directory sync")
    split_off = _theme_of(db, logged[3])
    # A found theme merged into another, and a rename.
    other = _log(ctx, "rep2", "The onboarding takes far too long")
    mobile = _log(ctx, "rep3", "Field reps want an app on their phones")
    assert _theme_of(db, other).id != _theme_of(db, mobile).id
    assert "is merged into" in _marketer(
        ctx, f"merge {_theme_of(db, other).id} into {_theme_of(db, mobile).id}"
    )
    assert "is now" in _marketer(ctx, f"rename {_theme_of(db, mobile).id} to Field work")
    placed = {o.id: _theme_of(db, o).id for o in (*logged, other, mobile)}
    names = {t.id: t.name for t in rows(db, Theme)}
    regroup.regroup(ctx)
    regroup.regroup(ctx)
    assert {o.id: _theme_of(db, o).id for o in (*logged, other, mobile)} == placed
    assert {t.id: t.name for t in rows(db, Theme)} == names
    assert (moved_to, split_off.name, _theme_of(db, mobile).name) == (
        placed[logged[2].id],
        "Directory sync",
        "Field work",
    )
    assert all(
        o.placed for o in rows(db, Objection) if o.id in (logged[2].id, logged[3].id, other.id, mobile.id)
    )


def test_a_moved_objection_teaches_its_theme_and_a_merge_joins_the_examples(
    db: Database, clock: Clock
) -> None:
    ctx = _ctx(db, clock, {"login": {"cues": [], "examples": LOGIN}})
    # A marketer merges the taxonomy's login theme into a theme of their own: its examples go with it.
    access = _log(ctx, "rep1", "The onboarding takes far too long")
    login = rows(db, Theme, key="login")[0]
    assert "is merged into" in _marketer(ctx, f"merge {login.id} into {access.theme_id}")
    joined = _log(ctx, "rep2", "Employees have to log in with their work accounts")
    assert joined.theme_id == access.theme_id  # like login's examples, which now teach its heir
    # A move teaches: the objection a marketer put in a theme pulls its like along at the regrouping.
    lonely = _log(ctx, "rep1", "Reps need it to work offline in the truck")
    like_it = _log(ctx, "rep3", "It has to work when reps have no internet on the road")
    home = _log(ctx, "rep2", "Our field team lives on tablets")
    assert "is now in" in _marketer(ctx, f"move {lonely.id} to {home.theme_id}")
    regroup.regroup(ctx)
    assert _theme_of(db, like_it).id == home.theme_id


def test_a_regrouped_theme_is_named_by_its_distinctive_words_and_never_by_confidential_text(
    db: Database, clock: Clock
) -> None:
    by_words = _ctx(db, clock, {}, grouping="words")  # the sign-in ones share no word: five themes
    _log_confidential(by_words, "rep1", "Nightjar will need Azure AD sign-in for every employee")
    public = [_log(by_words, "rep2", text) for text in SIGN_IN]
    _log(by_words, "rep2", "Offline mode is a must for the field reps")
    _log(by_words, "rep3", "They want it to work offline on site")
    hidden = [
        _log_confidential(by_words, "rep1", t)
        for t in ("Nightjar codename leaked in March", "Nightjar roadmap shown")
    ]
    assert len({o.theme_id for o in public}) >= 3
    done = regroup.regroup(_ctx(db, clock, {}))
    assert done.moved >= 2 and len({_theme_of(db, o).id for o in public}) == 1
    for theme in rows(db, Theme):
        said = {o.text.casefold() for o in rows(db, Objection, theme_id=theme.id) if not o.confidential}
        if not said:
            assert theme.name.startswith("Confidential theme") or theme.size == 0, theme.name
            continue
        for word in theme.name.casefold().split():  # every word of the name is a public objection's
            assert word.isdigit() or any(word in text for text in said), theme.name
        assert not {"nightjar", "march", "employee"} & set(theme.name.casefold().split())
    assert {_theme_of(db, o).name for o in hidden} == {_theme_of(db, hidden[0]).name}
    assert _theme_of(db, hidden[0]).name.startswith("Confidential theme")


def test_distinctive_words_are_those_a_theme_says_often_and_others_seldom() -> None:
    texts = ["SSO with Okta is a must", "They need Okta SSO", "SSO or nothing, and the price is high"]
    others = ["The price is too high", "Price again", "Their price ceiling is 10k", "Too pricey"]
    corpus = regroup._document_frequencies(texts + others)
    assert regroup.distinct_words(texts, corpus)[:2] == ["sso", "okta"]


def test_grouping_by_words_is_not_regrouped_and_says_why(db: Database, clock: Clock) -> None:
    ctx = _ctx(db, clock, {}, grouping="words")
    _log(ctx, "rep1", "Too expensive")
    done = regroup.regroup(ctx)
    assert (done.moved, done.summary()) == (
        0,
        "not regrouped: objections are grouped by words (objections.grouping in app.yaml)",
    )
    assert "themes-regroup" not in runner.wanted_jobs(ctx.org, runner.Timing())


def test_the_digest_reads_regrouped_themes_and_the_regrouping_is_weekly(db: Database, clock: Clock) -> None:
    before = _ctx(db, clock, {})
    logged = [_log(before, "rep1", text) for text in SIGN_IN]
    config = yaml.safe_load(ORG_YAML)
    config["objections"].update(grouping="semantic", themes={"login": {"cues": [], "examples": LOGIN}})
    config["digest"] = {"recipients": ["market"], "schedule": "0 8 * * MON", "period": "7d"}
    ctx = Context(db=db, org=parse_organisation_text(yaml.safe_dump(config)), clock=clock)
    setup.apply(ctx)
    assert "themes-regroup" in runner.wanted_jobs(ctx.org, runner.Timing())
    jobs.send_digest(ctx)
    assert {_theme_of(db, o).key for o in logged} == {"login"}


def test_importing_a_file_regroups_and_the_export_shows_the_themes(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    assert config["objections"]["grouping"] == "semantic"  # as shipped
    file = tmp_path / "objections.csv"
    # With a column of the spreadsheet's own (a label), which is left out, not refused.
    file.write_text(
        "text,label\n"
        + "\n".join(f'"{t}",sso' for t in SIGN_IN)
        + '\n"Too expensive for what it does",price\n',
        encoding="utf-8",
    )
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    assert run_cli("migrate", env=env).returncode == 0
    done = run_cli("import", "objections", str(file), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "themes regrouped 5 objections" in done.stdout
    assert "columns left out: label" in done.stdout
    exported = run_cli("export", "objections", "--format", "json", env=env)
    found = {o["text"]: o["theme_id"] for o in json.loads(exported.stdout)}
    assert (
        len({found[t] for t in SIGN_IN}) == 1 and found["Too expensive for what it does"] != found[SIGN_IN[0]]
    )
    again = run_cli("regroup", env=env)
    assert again.returncode == 0 and "0 moved" in again.stdout, again.stdout + again.stderr


def _sizes_are_counts(db: Database) -> None:
    objections = rows(db, Objection)
    for theme in rows(db, Theme):
        assert theme.size == sum(o.theme_id == theme.id for o in objections), theme.name


def test_a_number_only_a_confidential_objection_said_does_not_stay_in_a_theme_s_name(
    db: Database, clock: Clock
) -> None:
    ctx = _ctx(db, clock, {}, grouping="words")
    first = _log(ctx, "rep1", "Budget is 450 at most")
    _log(ctx, "rep2", "The budget is too tight")
    theme = _theme_of(db, first)
    assert theme.name == "budget 450"
    form = inbound.command(ctx, directory.console_actor(ctx, "rep1"), "objection", f"edit {first.id}").form
    assert form is not None
    values = {"text": first.text, "severity": "medium", "confidential": True, **form.state}
    inbound.submit(ctx, directory.console_actor(ctx, "rep1"), form.form_id, values)
    assert "450" not in _theme_of(db, first).name
    _sizes_are_counts(db)


def test_an_edit_that_moves_a_placed_objection_unplaces_it_and_sizes_stay_counts(
    db: Database, clock: Clock
) -> None:
    ctx = _ctx(db, clock, {"price": ["price", "expensive"]})
    moved = _log(ctx, "rep1", "The app crashes on older phones")
    other = _log(ctx, "rep2", "Their field staff work offline")
    assert "is now in" in _marketer(ctx, f"move {moved.id} to {other.theme_id}")
    form = inbound.command(ctx, directory.console_actor(ctx, "rep1"), "objection", f"edit {moved.id}").form
    assert form is not None
    values = {"text": "Far too expensive for them", "severity": "medium", "confidential": False, **form.state}
    inbound.submit(ctx, directory.console_actor(ctx, "rep1"), form.form_id, values)
    [now] = rows(db, Objection, id=moved.id)
    assert _theme_of(db, now).key == "price" and not now.placed
    _sizes_are_counts(db)
    regroup.regroup(ctx)
    _sizes_are_counts(db)


def test_a_theme_key_removed_from_app_yaml_no_longer_takes_objections_by_its_cue_words(
    db: Database, clock: Clock
) -> None:
    both = _ctx(db, clock, {"price": ["price", "expensive"], "budget": ["budget"]})
    assert _theme_of(db, _log(both, "rep1", "No budget left this year")).key == "budget"
    only_price = _ctx(db, clock, {"price": ["price", "expensive"]})
    assert rows(db, Theme, key="budget")[0].cues == []
    regroup.regroup(only_price)
    _log(only_price, "rep2", "budget")
    assert regroup.regroup(only_price).moved == 0  # recording and regrouping agree
