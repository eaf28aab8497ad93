"""Bringing the database in line with app.yaml at start: the directory and the objection taxonomy."""

from __future__ import annotations

from handlers import directory, themes
from handlers.context import Context
from storage.database import serialize


def apply(ctx: Context) -> None:
    """People, identities, audiences and the taxonomy's themes as app.yaml has them now; and no
    theme still named after a confidential objection (as older versions named them)."""
    directory.sync(ctx)
    with ctx.db.session() as session:
        serialize(session, "themes.sync")
        themes.sync_taxonomy(session, ctx.org, ctx.now())
        themes.settle_names(session)
