"""Assets through the neutral entry: publish, feedback, drafts with a deadline, closing the loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.delivery import DeliveryWorker
from handlers import assets, inbound
from handlers.context import Actor, Context, PostRef
from handlers.ui import Card, Form, Reply
from storage.models import Asset, AssetFeedback, AuditEntry, Objection, Outbox, Suggestion, Theme
from tests.fakes import Clock, RecordingPlatform, rows, theme_named

ASSET = {
    "title": "Price battlecard vs Acme",
    "link": "https://drive.example.com/battlecard",
    "kind": "battlecard",
    "key_message": "Lead with the three-year cost: Acme's add-ons cost more.",
    "themes": ["price"],
    "audiences": ["emea"],
}


def form_of(reply: Reply) -> Form:
    assert reply.form is not None, reply
    return reply.form


def values(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """ASSET with its themes given as the form gives them: by theme id."""
    merged = {**ASSET, **overrides}
    known = {t.name: str(t.id) for t in rows(ctx.db, Theme)}
    merged["themes"] = [known.get(name, name) for name in merged["themes"]]
    return merged


def publish(ctx: Context, marketer: Actor, **overrides: Any) -> Asset:
    form = form_of(inbound.command(ctx, marketer, "asset", ""))
    reply = inbound.submit(ctx, marketer, form.form_id, {**values(ctx, **overrides), **form.state})
    assert not reply.errors, reply.errors
    return rows(ctx.db, Asset)[-1]


def draft(ctx: Context, marketer: Actor, **overrides: Any) -> Asset:
    form = form_of(inbound.command(ctx, marketer, "asset", "draft"))
    reply = inbound.submit(
        ctx, marketer, form.form_id, {**values(ctx, input_until="2026-12-03", **overrides), **form.state}
    )
    assert not reply.errors, reply.errors
    return rows(ctx.db, Asset)[-1]


def direct_to(ctx: Context, address: str) -> list[Card]:
    return [Card.from_dict(r.card) for r in rows(ctx.db, Outbox, kind="direct", address=address)]


def test_only_marketers_publish_and_are_told_who_may(ctx: Context, people: dict[str, Actor]) -> None:
    assert "Only marketers can publish assets. Marketers here: Mia Marketer" in (
        inbound.command(ctx, people["rep1"], "asset", "").text
    )
    forged = inbound.submit(ctx, people["rep1"], assets.PUBLISH_FORM, ASSET)
    assert "Only marketers" in forged.text and rows(ctx.db, Asset) == []


def test_a_published_asset_goes_to_each_audience_with_the_three_buttons(
    ctx: Context, people: dict[str, Actor]
) -> None:
    asset = publish(ctx, people["market"], audiences=["emea", "na"])
    assert (asset.status, asset.kind, asset.themes, asset.owner_id) == (
        "published",
        "battlecard",
        [theme_named(ctx.db, "price")],
        people["market"].person_id,
    )
    posts = rows(ctx.db, Outbox, kind="post", subject=f"asset:{asset.id}")
    assert sorted(p.address for p in posts) == ["#emea", "#na", "C0000000001"]
    card = Card.from_dict(posts[0].card)
    assert [b.label for b in card.buttons] == ["Useful", "Used with a customer", "Doesn't fit the field"]
    assert ASSET["key_message"] in str(card.to_dict()) and ASSET["link"] in str(card.to_dict())
    assert [a.action for a in rows(ctx.db, AuditEntry)] == ["asset.publish"]


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"link": "drive/battlecard"}, "link", "must start with https://"),
        ({"kind": "poster"}, "kind", "choose one of"),
        ({"title": ""}, "title", "required"),
        ({"key_message": "m" * 1001}, "key_message", "the limit is 1,000"),
        ({"themes": ["astrology"]}, "themes", "not one of"),
        ({"audiences": []}, "audiences", "at least one"),
    ],
)
def test_a_bad_asset_is_refused_and_nothing_is_stored(
    ctx: Context, people: dict[str, Actor], change: dict[str, Any], field: str, says: str
) -> None:
    form = form_of(inbound.command(ctx, people["market"], "asset", ""))
    reply = inbound.submit(ctx, people["market"], form.form_id, values(ctx, **change))
    assert says in reply.errors[field]
    assert rows(ctx.db, Asset) == [] and rows(ctx.db, Outbox) == []


def test_the_field_says_useful_used_or_doesnt_fit_and_the_owner_gets_each_reason(
    ctx: Context, people: dict[str, Actor]
) -> None:
    asset = publish(ctx, people["market"])
    useful = inbound.action(ctx, people["rep1"], assets.USEFUL, str(asset.id))
    again = inbound.action(ctx, people["rep1"], assets.USEFUL, str(asset.id))
    assert "is useful" in useful.text and "already" in again.text
    inbound.action(ctx, people["rep1"], assets.USED, str(asset.id))
    form = form_of(inbound.action(ctx, people["rep2"], assets.DOESNT_FIT, str(asset.id)))
    empty = inbound.submit(ctx, people["rep2"], form.form_id, {"reason": " ", **form.state})
    assert "required" in empty.errors["reason"]
    inbound.submit(ctx, people["rep2"], form.form_id, {"reason": "We sell to public sector.", **form.state})

    kinds = sorted((f.kind, f.person_id) for f in rows(ctx.db, AssetFeedback))
    assert kinds == sorted(
        [
            ("useful", people["rep1"].person_id),
            ("used", people["rep1"].person_id),
            ("doesnt-fit", people["rep2"].person_id),
        ]
    )
    [to_owner] = direct_to(ctx, "market")
    assert "We sell to public sector." in str(to_owner.to_dict()) and "Ravi Rep" in str(to_owner.to_dict())

    shown = inbound.command(ctx, people["market"], "asset", f"show {asset.id}")
    assert shown.card is not None
    assert shown.card.footer.endswith("1 useful · 1 used with customers · 1 doesn't fit")
    assert "We sell to public sector." in str(shown.card.to_dict())
    as_rep = inbound.command(ctx, people["rep3"], "asset", f"show {asset.id}")
    assert as_rep.card is not None and "public sector" not in str(as_rep.card.to_dict())


def test_feedback_updates_the_counts_on_the_posted_cards(ctx: Context, people: dict[str, Actor]) -> None:
    asset = publish(ctx, people["market"])
    platform = RecordingPlatform()
    asyncio.run(DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock).drain())
    inbound.action(ctx, people["rep1"], assets.USEFUL, str(asset.id))
    asyncio.run(DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock).drain())
    assert platform.transcript[-1].op == "update"
    assert platform.transcript[-1].card.footer.startswith(f"Asset #{asset.id} · 1 useful")


def test_thumbs_up_and_down_reactions_give_feedback_and_taking_them_back_removes_it(
    ctx: Context, people: dict[str, Actor]
) -> None:
    publish(ctx, people["market"])
    platform = RecordingPlatform()
    asyncio.run(DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock).drain())
    post = PostRef("console", "#emea", platform.transcript[0].ref)
    inbound.reaction(ctx, people["rep1"], post, "👍", True)
    inbound.reaction(ctx, people["rep2"], post, "-1", True)
    assert sorted(f.kind for f in rows(ctx.db, AssetFeedback)) == ["doesnt-fit", "useful"]
    assert "no reason given" in str(direct_to(ctx, "market")[0].to_dict())
    inbound.reaction(ctx, people["rep1"], post, "+1", False)
    assert [f.kind for f in rows(ctx.db, AssetFeedback)] == ["doesnt-fit"]


def test_publishing_an_asset_tells_every_rep_who_heard_its_themes_in_90_days(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    inbound.command(ctx, people["rep3"], "objection", "too expensive, said the CFO")  # 100 days ago
    clock.advance(days=10)
    inbound.command(ctx, people["rep1"], "objection", "too expensive vs Acme")
    inbound.command(ctx, people["rep1"], "objection", "over budget this year")
    inbound.command(ctx, people["rep2"], "objection", "no SAP connector")  # another theme
    clock.advance(days=90)
    reply = inbound.command(ctx, people["market"], "asset", "")
    form = form_of(reply)
    done = inbound.submit(ctx, people["market"], form.form_id, {**values(ctx), **form.state})
    assert "1 rep who heard price objections will hear about it" in done.text
    [told] = direct_to(ctx, "rep1")
    assert told.title == f"Marketing answered what you heard: {ASSET['title']}"
    assert direct_to(ctx, "rep2") == [] and direct_to(ctx, "rep3") == []
    assert len(rows(ctx.db, Objection)) == 4


def test_a_draft_collects_suggestions_and_its_owner_gets_them_all_at_the_deadline(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    asset = draft(ctx, people["market"])
    assert asset.status == "draft" and asset.input_until is not None
    post = Card.from_dict(rows(ctx.db, Outbox, kind="post", subject=f"draft:{asset.id}")[0].card)
    assert [b.label for b in post.buttons] == ["Useful", "Doesn't fit the field", "Suggest a change"]
    assert "Input until" in str(post.to_dict())

    for who, text in (("rep1", "Add the ISO number."), ("rep2", "Shorter, please.")):
        form = form_of(inbound.action(ctx, people[who], assets.SUGGEST, str(asset.id)))
        assert "Thanks" in inbound.submit(ctx, people[who], form.form_id, {"text": text, **form.state}).text
    used = inbound.action(ctx, people["rep1"], assets.USED, str(asset.id))
    assert "not for customers yet" in used.text
    assert direct_to(ctx, "market") == []  # suggestions wait for the deadline

    assert assets.close_due_drafts(ctx) == 0
    clock.now = asset.input_until + timedelta(seconds=1)
    assert assets.close_due_drafts(ctx) == 1
    assert assets.close_due_drafts(ctx) == 0  # once only
    [summary] = direct_to(ctx, "market")
    assert "Add the ISO number." in str(summary.to_dict()) and "Shorter, please." in str(summary.to_dict())
    late = inbound.action(ctx, people["rep3"], assets.SUGGEST, str(asset.id))
    assert "closed" in late.text
    assert len(rows(ctx.db, Suggestion)) == 2


def test_a_draft_deadline_must_be_ahead(ctx: Context, people: dict[str, Actor]) -> None:
    form = form_of(inbound.command(ctx, people["market"], "asset", "draft"))
    past = inbound.submit(ctx, people["market"], form.form_id, values(ctx, input_until="2026-11-01"))
    far = inbound.submit(ctx, people["market"], form.form_id, values(ctx, input_until="2027-06-01"))
    assert "in the future" in past.errors["input_until"] and "at most 60 days" in far.errors["input_until"]
    assert rows(ctx.db, Asset) == []


def test_publishing_a_draft_launches_it_and_sends_the_input_so_far(
    ctx: Context, people: dict[str, Actor]
) -> None:
    asset = draft(ctx, people["market"])
    form = form_of(inbound.action(ctx, people["rep1"], assets.SUGGEST, str(asset.id)))
    inbound.submit(ctx, people["rep1"], form.form_id, {"text": "Mention the audit.", **form.state})
    launch = form_of(inbound.command(ctx, people["market"], "asset", f"publish {asset.id}"))
    assert next(f.initial for f in launch.fields if f.name == "title") == ASSET["title"]
    inbound.submit(
        ctx, people["market"], launch.form_id, {**values(ctx, title="Battlecard v2"), **launch.state}
    )

    [published] = rows(ctx.db, Asset)
    assert (published.status, published.title) == ("published", "Battlecard v2")
    assert "Mention the audit." in str(direct_to(ctx, "market")[0].to_dict())
    assert len(rows(ctx.db, Outbox, kind="post", subject=f"asset:{asset.id}")) == 2
    again = inbound.command(ctx, people["market"], "asset", f"publish {asset.id}")
    assert "already published" in again.text
