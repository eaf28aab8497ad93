"""The composition root: settings in, a running Touchline out (production and tests build it the same way)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.config import ConfigError, Settings
from handlers import setup
from handlers.context import Context, utcnow
from storage.database import Database, ensure_migrated


def build_context(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Context:
    """Connect to the migrated database and bring the directory in line with app.yaml."""
    if settings.org.objections.grouping == "semantic":
        from handlers import semantic

        if not semantic.available():
            raise ConfigError(
                f"{settings.config_path}: objections.grouping is semantic, but the semantic extra is not "
                "installed here: pip install '.[semantic]' (or set grouping: words)."
            )
    db = Database.from_url(settings.env.database_url)
    try:
        ensure_migrated(db.engine)
        ctx = Context(db=db, org=settings.org, clock=clock)
        setup.apply(ctx)
    except BaseException:
        db.dispose()
        raise
    return ctx
