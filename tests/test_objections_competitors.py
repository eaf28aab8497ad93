"""A competitor an objection names is a field of it, not a theme of its own."""

from __future__ import annotations

from handlers import directory, exports, inbound, objections
from handlers.context import Context
from storage.models import Objection
from tests.fakes import rows, theme_of


def test_a_competitor_named_in_the_one_line_command_is_its_competitor_and_not_its_theme(ctx: Context) -> None:
    rep = directory.console_actor(ctx, "rep1")
    for said in (
        "too expensive vs Acme",
        "Acme quoted them 30% cheaper",
        "They compared us against Zendesk on price",
    ):
        assert "Recorded" in inbound.command(ctx, rep, "objection", said).text
    first, second, third = rows(ctx.db, Objection)
    assert [o.competitor for o in (first, second, third)] == ["Acme", "Acme", "Zendesk"]
    assert {theme_of(ctx.db, o) for o in (first, second, third)} == {"price"}


def test_a_competitor_given_in_the_form_or_the_import_stays_as_given(ctx: Context) -> None:
    result = exports.import_objections(
        ctx,
        [{"text": "cheaper with acme", "competitor": "Globex"}, {"text": "We lost it to acme"}],
        source="f.csv",
    )
    assert result.loaded == 2
    given, found = rows(ctx.db, Objection)
    assert (given.competitor, found.competitor) == ("Globex", "Acme")
    assert objections.competitor_in("no competitor here", ["Acme"]) == (None, "no competitor here")
