"""Themes: found in what reps write, stable as objections join; marketers rename, merge, split, move them."""

from __future__ import annotations

from handlers import inbound, themes
from handlers.context import Actor, Context
from handlers.grouping import WordGrouper
from storage.models import Asset, AuditEntry, Objection, Theme
from tests.fakes import rows, theme_named, theme_of


def log(ctx: Context, actor: Actor, text: str) -> Objection:
    reply = inbound.command(ctx, actor, "objection", text)
    assert "Recorded" in reply.text, reply.text
    return rows(ctx.db, Objection)[-1]


def say(ctx: Context, actor: Actor, text: str) -> str:
    return inbound.command(ctx, actor, "objection", f"theme {text}").text


def test_a_theme_keeps_its_id_and_name_as_objections_join_it(ctx: Context, people: dict[str, Actor]) -> None:
    first = log(ctx, people["rep1"], "They need a mobile app for the field")
    theme = rows(ctx.db, Theme, id=first.theme_id)[0]
    assert (theme.name, theme.origin, theme.key) == ("need mobile app", "found", None)
    for text in ("No mobile app, field staff hate laptops", "Field team asks for a mobile app"):
        assert log(ctx, people["rep2"], text).theme_id == theme.id
    again = rows(ctx.db, Theme, id=theme.id)[0]
    assert (again.name, again.size) == ("need mobile app", 3)


def test_the_word_grouper_finds_shared_words_and_word_pieces() -> None:
    grouper = WordGrouper()
    profile = grouper.absorb({}, ["No connector for SAP", "The SAP integration is missing"])
    assert grouper.similarity("They need SAP integrations", profile) > grouper.threshold
    assert grouper.similarity("Our champion left the company", profile) == 0.0


def test_only_marketers_change_themes(ctx: Context, people: dict[str, Actor]) -> None:
    assert "Only marketers" in say(ctx, people["rep1"], "rename price to cost")
    assert theme_named(ctx.db, "price")


def test_renaming_keeps_the_id_and_refuses_a_name_in_use(ctx: Context, people: dict[str, Actor]) -> None:
    price = theme_named(ctx.db, "price")
    assert "is now “pricing”" in say(ctx, people["market"], "rename price to pricing")
    assert theme_named(ctx.db, "pricing") == price
    assert "already" in say(ctx, people["market"], "rename pricing to security")
    assert "is now “cost of it”" in say(ctx, people["market"], f"rename {price} cost of it")
    # the taxonomy still knows it by its key: the next start does not bring "price" back
    from handlers import setup

    setup.apply(ctx)
    assert [t.name for t in rows(ctx.db, Theme, key="price")] == ["cost of it"]


def test_merging_moves_objections_and_assets_and_the_old_name_leads_to_the_new_theme(
    ctx: Context, people: dict[str, Actor]
) -> None:
    found = log(ctx, people["rep1"], "They want a plan for small teams")
    log(ctx, people["rep2"], "too expensive vs Acme")
    source = rows(ctx.db, Theme, id=found.theme_id)[0]
    assert source.name != "price"
    asset_form = inbound.command(ctx, people["market"], "asset", "").form
    assert asset_form is not None
    inbound.submit(
        ctx,
        people["market"],
        asset_form.form_id,
        {
            "title": "Small team plan",
            "link": "https://x.example/p",
            "kind": "one-pager",
            "key_message": "K",
            "themes": [str(source.id)],
            "audiences": ["emea"],
            **asset_form.state,
        },
    )
    reply = say(ctx, people["market"], f"merge {source.name} into price")
    assert "merged into “price”" in reply and "1 objection moved" in reply
    price = theme_named(ctx.db, "price")
    assert {o.theme_id for o in rows(ctx.db, Objection)} == {price}
    assert rows(ctx.db, Asset)[0].themes == [price]
    with ctx.db.session() as session:
        heir = themes.find(session, source.name)
        assert heir is not None and heir.id == price
    active = [t.name for t in rows(ctx.db, Theme) if t.merged_into_id is None]
    assert "price" in active and source.name not in active
    assert [a.action for a in rows(ctx.db, AuditEntry) if a.action.startswith("theme.")] == ["theme.merge"]


def test_splitting_and_moving_put_objections_where_marketing_says(
    ctx: Context, people: dict[str, Actor]
) -> None:
    a = log(ctx, people["rep1"], "too expensive vs Acme")
    b = log(ctx, people["rep2"], "price increase of 20% next year")
    c = log(ctx, people["rep3"], "the discount they asked for is too big")
    assert theme_of(ctx.db, a) == theme_of(ctx.db, b) == theme_of(ctx.db, c) == "price"
    assert "Not in “price”: #99" in say(ctx, people["market"], f"split price {b.id} 99 as price increases")
    reply = say(ctx, people["market"], f"split price {b.id} as price increases")
    assert "1 objection moved from “price” to the new theme “price increases”" in reply
    assert theme_of(ctx.db, rows(ctx.db, Objection, id=b.id)[0]) == "price increases"
    assert theme_of(ctx.db, rows(ctx.db, Objection, id=a.id)[0]) == "price"
    assert "is now in “price increases”" in say(ctx, people["market"], f"move {c.id} to price increases")
    sizes = {t.name: t.size for t in rows(ctx.db, Theme)}
    assert (sizes["price"], sizes["price increases"]) == (1, 2)
    assert "There is no theme" in say(ctx, people["market"], f"move {c.id} to nowhere")


def test_the_theme_list_shows_sizes_for_marketers_only(ctx: Context, people: dict[str, Actor]) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    reply = inbound.command(ctx, people["market"], "objection", "theme")
    assert reply.card is not None and "price — 1 objection (from app.yaml)" in reply.card.sections[0].text
    assert "Only marketers and leaders" in inbound.command(ctx, people["rep1"], "objection", "theme").text
    assert "There is no theme 'nope'" in inbound.command(ctx, people["market"], "objection", "list nope").text
