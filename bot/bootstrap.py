"""The composition root: settings in, a running Touchline out (production and tests build it the same way)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bot.config import Environment, Settings
from handlers import setup
from handlers.context import Context, utcnow
from storage.database import Database, ensure_migrated
from storage.sealed import Seal, key_file

log = logging.getLogger(__name__)


def public_url(env: Environment) -> str:
    """Where the dashboard's links point: PUBLIC_URL, or this machine when Touchline listens only here."""
    if env.public_url:
        return env.public_url.rstrip("/")
    if env.host in ("127.0.0.1", "localhost", "::1") or not (env.slack_configured or env.teams_configured):
        return f"http://127.0.0.1:{env.port}"
    return ""


def seal(env: Environment) -> Seal:
    """The key that seals pulse ballots and anonymous concerns: never one the database holds.

    TOUCHLINE_SECRET_KEY when set; else derived from a platform secret every replica shares
    (so rotating that secret strands the ballots of runs still open: hence the warning); else,
    for a local installation, a key file beside the SQLite database (or in the working folder).
    """
    if env.touchline_secret_key is not None:
        return Seal.from_secret(env.touchline_secret_key.get_secret_value())
    for name, secret in (
        ("SLACK_SIGNING_SECRET", env.slack_signing_secret),
        ("MICROSOFT_APP_PASSWORD", env.microsoft_app_password),
    ):
        if secret is not None:
            log.warning(
                "TOUCHLINE_SECRET_KEY is not set: pulse answers and anonymous concerns are sealed with "
                "a key derived from %s, and changing it strands those of open runs. Set "
                "TOUCHLINE_SECRET_KEY (32 characters or more, the same on every replica).",
                name,
            )
            return Seal.from_secret(f"touchline:{name}:{secret.get_secret_value()}")
    return Seal(key_file(key_path(env.database_url)))


def key_path(database_url: str) -> Path:
    """`touchline.key` beside `touchline.db`: not one of the database's files, nor in its backups."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        database = Path(database_url.removeprefix("sqlite:///"))
        return database.with_name(f"{database.stem}.key")
    return Path("touchline.key")


def build_context(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Context:
    """Connect to the migrated database and bring the directory in line with app.yaml."""
    if settings.org.objections.grouping == "semantic":
        from handlers.grouping import semantic

        if (problem := semantic.problem()) is not None:
            # Not a reason to stay down: objections are grouped by their words meanwhile.
            log.warning(
                "objections.grouping is semantic, but the model could not load (%s): grouping by words",
                problem,
            )
    db = Database.from_url(settings.env.database_url)
    try:
        ensure_migrated(db.engine)
        ctx = Context(
            db=db,
            org=settings.org,
            clock=clock,
            public_url=public_url(settings.env),
            seal=seal(settings.env),
        )
        setup.apply(ctx)
    except BaseException:
        db.dispose()
        raise
    return ctx
