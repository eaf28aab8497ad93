"""Hostile input, generated: whatever people type into commands and forms gets a clear answer, never a
failure, and either the whole change or none of it; what they typed cannot ping or break a card."""

from __future__ import annotations

import html
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.slack import blocks
from bot.teams import cards as teams_cards
from bot.web.cards import card_html
from handlers import assets, directory, inbound, objections, setup, strategy
from handlers.context import Actor, Context
from handlers.ui import Card, Fact, Reply, Section
from storage import database
from storage.database import Database
from storage.models import Objection, metadata
from tests.generated import examples
from tests.test_refusals import ASSET, DECISION

FAILED = "Something went wrong on Touchline's side"
# Text people really send, and text meant to do harm: mentions, markup, controls, other scripts.
HOSTILE = st.sampled_from(
    [
        "",
        "   ",
        "\t\n",
        "<!channel> <!here> <!everyone>",
        "@everyone @channel <at>Lena</at>",
        "<@U0000000001> <#C0000000001> <https://evil.example|click me>",
        "[click](https://evil.example) **bold** _it_ `code` # heading\n- list\n> quote",
        "<script>alert(1)</script><img src=x onerror=alert(1)>",
        "\u202eevil\u202c \u200f\u200e right-to-left",
        "\x00\x01\x07\x1b[31m control \x7f",
        "'; DROP TABLE objection; --",
        '=HYPERLINK("https://evil.example")',
        "x" * 100_000,
        "🙂" * 5_000,
        "ñ" * 2_001,
        "²",  # a digit to Python's isdigit(), not a number int() reads
        "#١٢",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), max_size=50))
LOOSE = examples(60, fixtures=True)


def counts(ctx: Context) -> dict[str, int]:
    """Rows in every table (the directory's, which a request may legitimately touch, aside)."""
    with ctx.db.session() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in metadata.sorted_tables
            if table.name not in ("person", "identity", "apscheduler_jobs")
        }


@pytest.fixture
def field(ctx: Context, people: dict[str, Actor]) -> Iterator[dict[str, Actor]]:
    inbound.submit(ctx, people["lead"], strategy.ANNOUNCE_FORM, DECISION)
    inbound.submit(ctx, people["market"], assets.PUBLISH_FORM, ASSET)
    yield people


@LOOSE
@given(text=TEXT)
def test_a_one_line_objection_is_stored_whole_or_not_at_all(
    ctx: Context, field: dict[str, Actor], text: str
) -> None:
    before = counts(ctx)
    reply = inbound.command(ctx, field["rep1"], "objection", text)
    after = counts(ctx)
    assert not reply.is_empty and FAILED not in reply.text  # an empty one opens the form
    if after["objection"] == before["objection"]:
        assert after == before  # refused: nothing at all was written
    else:
        assert after["objection"] == before["objection"] + 1 and "Recorded" in reply.text
        with ctx.db.session() as session:
            newest = session.exec(select(Objection).order_by(Objection.id.desc())).scalars().first()  # type: ignore[union-attr]
        assert newest is not None and newest.text.strip() and len(newest.text) <= objections.MAX_TEXT


@LOOSE
@given(
    name=st.sampled_from([*inbound.COMMANDS, "touchline", "help", "nonsense"]),
    text=TEXT,
    who=st.sampled_from(["lead", "market", "rep1", "rep3"]),
)
def test_any_command_with_any_text_gets_an_answer_never_a_failure(
    ctx: Context, field: dict[str, Actor], name: str, text: str, who: str
) -> None:
    reply = inbound.command(ctx, field[who], name, text)
    assert not reply.is_empty
    assert FAILED not in reply.text


def form_values(form_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """Values for a form: each field hostile text, a list of it, a boolean, or missing."""
    names = {
        strategy.ANNOUNCE_FORM: [*DECISION, "audiences", "review_on", "supersedes"],
        strategy.QUESTION_FORM: ["text", "decision", "kind", "anonymous"],
        strategy.ANSWER_FORM: ["answer", "question"],
        objections.FORM_ID: [
            "text",
            "competitor",
            "segment",
            "deal_link",
            "severity",
            "confidential",
            "editing",
        ],
        assets.PUBLISH_FORM: [*ASSET, "decision", "draft"],
        assets.DOESNT_FIT_FORM: ["reason", "asset"],
        assets.SUGGEST_FORM: ["text", "asset"],
    }[form_id]
    value = st.one_of(
        TEXT,
        st.lists(TEXT, max_size=3),
        st.booleans(),
        st.sampled_from(["1", "emea", "2026-12-01", "²", "#³"]),
    )
    return st.dictionaries(st.sampled_from(names), value, max_size=len(names))


FORMS = [
    strategy.ANNOUNCE_FORM,
    strategy.QUESTION_FORM,
    strategy.ANSWER_FORM,
    objections.FORM_ID,
    assets.PUBLISH_FORM,
    assets.DOESNT_FIT_FORM,
    assets.SUGGEST_FORM,
]


@pytest.mark.parametrize("form_id", FORMS)
def test_any_form_values_are_stored_whole_or_refused_with_a_reason(
    ctx: Context, field: dict[str, Actor], form_id: str
) -> None:
    who = {strategy.ANNOUNCE_FORM: "lead", strategy.ANSWER_FORM: "lead", assets.PUBLISH_FORM: "market"}
    actor = field[who.get(form_id, "rep1")]

    @LOOSE
    @given(values=form_values(form_id))
    def submit(values: dict[str, Any]) -> None:
        before = counts(ctx)
        reply = inbound.submit(ctx, actor, form_id, values)
        assert FAILED not in reply.text and not reply.is_empty
        if reply.errors or reply.form is not None:
            assert counts(ctx) == before  # fields to fix: nothing was stored
            assert all(isinstance(m, str) and m for m in reply.errors.values())

    submit()


@examples(200)
@given(text=TEXT)
def test_what_people_typed_cannot_ping_or_break_a_card_on_any_platform(text: str) -> None:
    said = f"{text}<x-injected>"
    card = Card(
        title=said,
        sections=(Section(text=said, heading=said, facts=(Fact(said, said),)),),
        footer=said,
    )
    reply = blocks.reply_message(Reply(text=said))
    assert "<" not in reply["text"] and ">" not in reply["text"]  # the notification is mrkdwn too
    for block in blocks.card_blocks(card) + reply.get("blocks", []):
        for element in _texts(block):
            if element.get("type") == "mrkdwn":
                assert "<" not in element["text"] and ">" not in element["text"]  # no <!channel>, no links
    # Adaptive Cards draw no HTML; markdown is what must be inert (bar Touchline's own "… more" line).
    for block in teams_cards.card(card)["body"]:
        for text_block in _texts(block):
            value = text_block.get("text", "")
            if value.startswith("_… ") and value.endswith(" more parts not shown here._"):
                continue
            value = value.replace("_(continued)_", "")  # Touchline's own mark on a split section
            inert = all(value.count(char) == value.count("\\" + char) for char in "[]*_`")
            assert inert, value[:80]
    page = card_html(card)
    assert "<x-injected>" not in page and html.escape(said, quote=True) in page


def _texts(block: Any) -> Iterator[dict[str, Any]]:
    """Every text object inside a block, however deeply nested."""
    if isinstance(block, dict):
        if isinstance(block.get("text"), str):
            yield block
        for value in block.values():
            yield from _texts(value)
    elif isinstance(block, list):
        for item in block:
            yield from _texts(item)


def test_concurrent_writers_on_sqlite_never_see_the_database_locked(sqlite_url: str, org: Any) -> None:
    """Forty people logging, acknowledging and asking at once, each in a thread of their own, as the
    server runs handlers: every one gets their answer, and every change is stored."""
    ctx = Context(db=Database.from_url(sqlite_url), org=org)
    setup.apply(ctx)
    lead = directory.console_actor(ctx, "lead")
    inbound.submit(ctx, lead, strategy.ANNOUNCE_FORM, DECISION)
    reps = [directory.identify(ctx, "slack", f"U0LOAD{n:05d}", name=f"Rep {n}") for n in range(40)]

    def busy(actor: Actor) -> list[str]:
        said = [
            inbound.command(ctx, actor, "objection", f"too expensive, says customer {actor.user_id}").text
        ]
        said.append(inbound.action(ctx, actor, strategy.ACK, "1").text)
        said.append(inbound.command(ctx, actor, "objection", "mine").text)
        return said

    with ThreadPoolExecutor(max_workers=40) as pool:
        replies = [text for said in pool.map(busy, reps) for text in said]
    assert not [t for t in replies if FAILED in t or "locked" in t.lower()]
    with ctx.db.session() as session:
        assert session.execute(select(func.count()).select_from(Objection)).scalar_one() == 40
        assert strategy.acknowledgement_count(session, 1)[0] == 40
    ctx.db.dispose()


@contextmanager
def write_lock_held(sqlite_url: str, *, seconds: float) -> Iterator[None]:
    """Another connection (another process, as far as SQLite knows) holds the write lock for
    `seconds` from now, then lets go."""
    holder = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, holder.execute, args=("COMMIT",))
    release.start()
    try:
        yield
    finally:
        release.join()
        holder.close()


def test_a_writer_kept_waiting_past_the_busy_timeout_tries_again_instead_of_failing(
    sqlite_url: str, org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short busy timeout stands in for a flood of writers holding the lock for seconds.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    ctx = Context(db=Database.from_url(sqlite_url), org=org)
    setup.apply(ctx)
    rep = directory.console_actor(ctx, "rep1")
    with write_lock_held(sqlite_url, seconds=0.6):
        reply = inbound.command(ctx, rep, "objection", "too expensive while the lock is held")
    assert "Recorded" in reply.text and FAILED not in reply.text
    with ctx.db.session() as session:
        assert session.execute(select(func.count()).select_from(Objection)).scalar_one() == 1
    ctx.db.dispose()


def test_finding_who_sent_a_command_tries_again_too_while_the_write_lock_is_held(
    sqlite_url: str, org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every Slack and Teams command starts with directory.identify, in a unit of work of its own;
    # under 200 concurrent senders it once waited out the busy timeout and the command was lost.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    ctx = Context(db=Database.from_url(sqlite_url), org=org)
    setup.apply(ctx)
    first = directory.identify(ctx, "slack", "U0LOCKED01", name="Rep")
    with write_lock_held(sqlite_url, seconds=0.6):
        again = directory.identify(ctx, "slack", "U0LOCKED01", name="Rep")
    assert again.person_id == first.person_id
    ctx.db.dispose()
