"""`touchline serve | console | migrate | check`: the command line."""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bot import logs
from bot.bootstrap import build_context
from bot.config import ConfigError, Settings, load_environment, load_settings, summary
from bot.console.repl import run_console
from handlers import pulse
from handlers.context import Refusal
from scheduler.runner import SchedulerRunner
from storage.database import (
    DatabaseNotReady,
    ensure_migrated,
    head_revision,
    make_engine,
    migrate,
    safe_url,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Touchline: strategy, marketing and sales, talking to each other in chat.",
)
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The organisation file (default: $TOUCHLINE_CONFIG or app.yaml)."),
]
LiveOption = Annotated[
    bool | None,
    typer.Option(
        "--live/--script",
        help="Run the scheduler and deliver in the background (default when typing at a terminal).",
    ),
]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Who you are in the console: a key from people: in app.yaml."),
]


def fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def settings_or_exit(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as error:
        fail(str(error))


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade Touchline's tables (DATABASE_URL, default: the SQLite file touchline.db)."""
    try:
        env = load_environment()
    except ConfigError as error:
        fail(str(error))
    where = safe_url(env.database_url)
    try:
        migrate(env.database_url)
        engine = make_engine(env.database_url)
        try:
            ensure_migrated(engine)
        finally:
            engine.dispose()
    except DatabaseNotReady as error:
        fail(str(error))
    except Exception as error:  # the driver's own words, without the URL's password
        fail(f"Migrating {where} failed: {type(error).__name__}: {str(error).splitlines()[0][:300]}")
    typer.echo(f"{where} is at schema {head_revision()} (the latest).")


@app.command("check")
def check_command(config: ConfigOption = None) -> None:
    """Validate app.yaml and the environment, and print what Touchline understood."""
    typer.echo(summary(settings_or_exit(config)))


@app.command("console")
def console_command(config: ConfigOption = None, person: AsOption = None, live: LiveOption = None) -> None:
    """Use Touchline in this terminal, as someone from app.yaml; reads a script from stdin too."""
    settings = settings_or_exit(config)
    _console(settings, person, live)


@app.command("serve")
def serve_command(config: ConfigOption = None, person: AsOption = None, live: LiveOption = None) -> None:
    """Run Touchline. With no Slack or Teams credentials set, it runs the console in this terminal."""
    settings = settings_or_exit(config)
    env = settings.env
    if env.slack_configured or env.teams_configured:
        typer.echo(
            "Slack/Teams credentials are set, but this version of Touchline serves the console only.",
            err=True,
        )
    typer.echo(
        f"Touchline for {settings.org.organisation.name}: no chat platform is connected, "
        "so Touchline runs here in the terminal."
    )
    _console(settings, person, live)


@app.command("export")
def export_command(
    what: Annotated[str, typer.Argument(help="What to export: pulse")], config: ConfigOption = None
) -> None:
    """Print data as CSV on standard output; `pulse`: every run's results, small groups left out."""
    if what != "pulse":
        fail(f"Nothing to export called {what!r}; try: touchline export pulse")
    settings = settings_or_exit(config)
    try:
        ctx = build_context(settings)
    except DatabaseNotReady as error:
        fail(str(error))
    try:
        with ctx.db.session() as session:
            rows = pulse.export_rows(session, ctx.org)
    finally:
        ctx.db.dispose()
    columns = [
        "run",
        "survey",
        "slot",
        "status",
        "question",
        "group",
        "response_rate",
        "mean",
        "distribution",
        "note",
    ]
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _console(settings: Settings, person: str | None, live: bool | None) -> None:
    env = settings.env
    # The terminal is the chat here: only warnings go to it, unless LOG_LEVEL asks for more.
    logs.configure(env.log_level if "log_level" in env.model_fields_set else "WARNING", env.log_format)
    person = person or _first_leader(settings)
    live = sys.stdin.isatty() if live is None else live
    try:
        ctx = build_context(settings)
    except DatabaseNotReady as error:
        fail(str(error))
    runner = SchedulerRunner(ctx) if live else None
    try:
        if runner is not None:
            runner.start()
        asyncio.run(run_console(ctx, person, stdin=sys.stdin, out=sys.stdout, live=live))
    except Refusal as refusal:
        fail(refusal.message)
    except KeyboardInterrupt:
        typer.echo("")
    finally:
        if runner is not None:
            runner.stop()
        ctx.db.dispose()


def _first_leader(settings: Settings) -> str:
    org = settings.org
    for ref in org.roles.get("leader", []):
        if ref in org.people:
            return ref
    if org.people:
        return next(iter(org.people))
    fail("app.yaml lists no people: add some under people: to use the console.")


def main() -> None:
    app()
