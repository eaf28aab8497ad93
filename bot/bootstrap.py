"""The composition root: settings in, a running Touchline out (production and tests build it the same way)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.config import ConfigError, Environment, Settings
from handlers import setup
from handlers.context import Context, utcnow
from storage.database import Database, ensure_migrated


def public_url(env: Environment) -> str:
    """Where the dashboard's links point: PUBLIC_URL, or this machine when Touchline listens only here."""
    if env.public_url:
        return env.public_url.rstrip("/")
    if env.host in ("127.0.0.1", "localhost", "::1") or not (env.slack_configured or env.teams_configured):
        return f"http://127.0.0.1:{env.port}"
    return ""


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
        ctx = Context(db=db, org=settings.org, clock=clock, public_url=public_url(settings.env))
        setup.apply(ctx)
    except BaseException:
        db.dispose()
        raise
    return ctx
