"""Every refusal says why to whoever asked, and leaves every table exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from handlers import assets, inbound, objections, strategy
from handlers.context import Actor, Context
from handlers.ui import Reply
from storage.models import Asset, Decision, Objection, Question, metadata
from tests.fakes import Clock, rows

DECISION = {
    "title": "T",
    "decision": "D",
    "why": "W",
    "reps_may": "M",
    "effective_on": "2026-12-01",
    "audiences": ["emea"],
}
ASSET = {
    "title": "Battlecard",
    "link": "https://example.com/b",
    "kind": "battlecard",
    "key_message": "K",
    "themes": [],
    "audiences": ["emea"],
}
Scene = dict[str, Any]


@pytest.fixture
def scene(ctx: Context, people: dict[str, Actor], clock: Clock) -> Scene:
    """A superseded and an active decision, an answered question, an objection older than a day,
    a published asset and a draft whose input has closed."""
    lead, market = people["lead"], people["market"]
    inbound.submit(ctx, lead, strategy.ANNOUNCE_FORM, DECISION)
    old = rows(ctx.db, Decision)[0]
    inbound.submit(ctx, lead, strategy.ANNOUNCE_FORM, {**DECISION, "supersedes": str(old.id)})
    active = rows(ctx.db, Decision)[-1]
    inbound.submit(
        ctx, people["rep1"], strategy.QUESTION_FORM, {"text": "Q?", "decision": active.id, "kind": "question"}
    )
    question = rows(ctx.db, Question)[0]
    inbound.submit(ctx, lead, strategy.ANSWER_FORM, {"answer": "A.", "question": question.id})
    inbound.command(ctx, people["rep1"], "objection", "too expensive vs Acme")
    inbound.submit(ctx, market, assets.PUBLISH_FORM, ASSET)
    inbound.submit(ctx, market, assets.DRAFT_FORM, {**ASSET, "input_until": "2026-12-01"})
    clock.advance(days=2)
    assert assets.close_due_drafts(ctx) == 1
    published, draft = rows(ctx.db, Asset)
    return {
        "old": old.id,
        "active": active.id,
        "question": question.id,
        "objection": rows(ctx.db, Objection)[0].id,
        "asset": published.id,
        "draft": draft.id,
    }


Case = Callable[[Context, dict[str, Actor], Scene], Reply]
CASES: dict[str, tuple[Case, str]] = {
    "a rep announces by forging the form": (
        lambda c, p, s: inbound.submit(c, p["rep1"], strategy.ANNOUNCE_FORM, DECISION),
        "Only leaders",
    ),
    "a leader leaves out the why": (
        lambda c, p, s: inbound.submit(c, p["lead"], strategy.ANNOUNCE_FORM, {**DECISION, "why": " "}),
        "why",
    ),
    "a leader supersedes a superseded decision": (
        lambda c, p, s: inbound.submit(
            c, p["lead"], strategy.ANNOUNCE_FORM, {**DECISION, "supersedes": str(s["old"])}
        ),
        "was superseded",
    ),
    "a rep acknowledges a superseded decision": (
        lambda c, p, s: inbound.action(c, p["rep2"], strategy.ACK, str(s["old"])),
        "was superseded",
    ),
    "someone acknowledges a decision that does not exist": (
        lambda c, p, s: inbound.action(c, p["rep2"], strategy.ACK, "999"),
        "There is no decision #999",
    ),
    "a rep answers a question": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], strategy.ANSWER_FORM, {"answer": "x", "question": s["question"]}
        ),
        "Only the decision's author",
    ),
    "a leader answers twice": (
        lambda c, p, s: inbound.submit(
            c, p["lead"], strategy.ANSWER_FORM, {"answer": "x", "question": s["question"]}
        ),
        "answered already",
    ),
    "a rep asks about a forged decision id": (
        lambda c, p, s: inbound.submit(
            c,
            p["rep2"],
            strategy.QUESTION_FORM,
            {"text": "Q", "decision": "1; DROP TABLE decision", "kind": "x"},
        ),
        "Which decision?",
    ),
    "a concern whose Send anonymously is neither yes nor no": (
        lambda c, p, s: inbound.submit(
            c,
            p["rep2"],
            strategy.QUESTION_FORM,
            {"text": "Too rigid.", "decision": s["active"], "kind": "concern", "anonymous": "maybe"},
        ),
        "anonymous: Answer yes or no.",
    ),
    "an asset whose kind nobody chose": (
        lambda c, p, s: inbound.submit(c, p["market"], assets.PUBLISH_FORM, {**ASSET, "kind": ""}),
        "kind: Choose one: nothing is chosen for you.",
    ),
    "an objection of invisible characters": (
        lambda c, p, s: inbound.command(c, p["rep2"], "objection", "\u200b\u2060\u200b"),
        "required",
    ),
    "an objection of 2,001 characters": (
        lambda c, p, s: inbound.command(c, p["rep2"], "objection", "y" * 2001),
        "the limit is 2,000",
    ),
    "an objection with a deal link that is not a web link": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], objections.FORM_ID, {"text": "x", "deal_link": "file:///etc"}
        ),
        "deal_link",
    ),
    "a rep edits someone else's objection": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], objections.FORM_ID, {"text": "mine now", "objection": str(s["objection"])}
        ),
        "You have no objection",
    ),
    "a rep withdraws their objection after 24 hours": (
        lambda c, p, s: inbound.command(c, p["rep1"], "objection", f"withdraw {s['objection']}"),
        "more than 24 hours ago",
    ),
    "a rep lists the field's objections": (
        lambda c, p, s: inbound.command(c, p["rep1"], "objection", "list"),
        "Only marketers and leaders",
    ),
    "a rep publishes an asset by forging the form": (
        lambda c, p, s: inbound.submit(c, p["rep1"], assets.PUBLISH_FORM, ASSET),
        "Only marketers",
    ),
    "an asset without a link": (
        lambda c, p, s: inbound.submit(c, p["market"], assets.PUBLISH_FORM, {**ASSET, "link": ""}),
        "link",
    ),
    "an asset supporting a superseded decision": (
        lambda c, p, s: inbound.submit(
            c, p["market"], assets.PUBLISH_FORM, {**ASSET, "decision": str(s["old"])}
        ),
        "decision",
    ),
    "a draft whose deadline has passed": (
        lambda c, p, s: inbound.submit(
            c, p["market"], assets.DRAFT_FORM, {**ASSET, "input_until": "2026-11-01"}
        ),
        "input_until",
    ),
    "a suggestion on a published asset": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], assets.SUGGEST_FORM, {"text": "x", "asset": str(s["asset"])}
        ),
        "already published",
    ),
    "a suggestion after the draft's input closed": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], assets.SUGGEST_FORM, {"text": "x", "asset": str(s["draft"])}
        ),
        "closed",
    ),
    "a doesn't-fit without a reason": (
        lambda c, p, s: inbound.submit(
            c, p["rep2"], assets.DOESNT_FIT_FORM, {"reason": "", "asset": str(s["asset"])}
        ),
        "reason",
    ),
    "publishing an asset twice": (
        lambda c, p, s: inbound.submit(
            c, p["market"], assets.PUBLISH_FORM, {**ASSET, "draft": str(s["asset"])}
        ),
        "already published",
    ),
}


def snapshot(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    with ctx.db.engine.connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(table.select()).all()), key=repr)
            for table in metadata.sorted_tables
        }


@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_changes_nothing(
    ctx: Context, people: dict[str, Actor], scene: Scene, clock: Clock, case: str
) -> None:
    act, says = CASES[case]
    before = snapshot(ctx)
    clock.advance(minutes=1)
    reply = act(ctx, people, scene)
    said = reply.text + " ".join(f"{k}: {v}" for k, v in reply.errors.items())
    assert says in said, said
    assert "Something went wrong" not in said
    assert snapshot(ctx) == before
