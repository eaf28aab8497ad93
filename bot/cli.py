"""`touchline serve | console | migrate | check`: the command line."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer

from bot import logs
from bot.bootstrap import build_context
from bot.config import ConfigError, Settings, load_environment, load_settings, summary
from bot.console.repl import run_console
from bot.server import Touchline, stop_on_signals
from bot.slack import manifest
from handlers import digest, exports, pulse
from handlers.context import Context, Refusal
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
    """Run Touchline: its server for Slack when Slack's credentials are set, else the console here."""
    settings = settings_or_exit(config)
    env = settings.env
    if env.slack_configured:
        _serve(settings)
        return
    if env.teams_configured:
        typer.echo(
            "Teams credentials are set, but this version of Touchline serves Slack and the console only.",
            err=True,
        )
    typer.echo(
        f"Touchline for {settings.org.organisation.name}: no chat platform is connected, "
        "so Touchline runs here in the terminal."
    )
    _console(settings, person, live)


EXPORTS = ("objections", "assets", "acknowledgements", "pulse")
PULSE_COLUMNS = [
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


@contextmanager
def running(config: Path | None) -> Iterator[Context]:
    """A context on the migrated database for one command, or a clear exit if there is none."""
    settings = settings_or_exit(config)
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    try:
        yield ctx
    finally:
        ctx.db.dispose()


@app.command("export")
def export_command(
    what: Annotated[str, typer.Argument(help="objections, assets, acknowledgements or pulse")],
    output: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    include_confidential: Annotated[
        bool, typer.Option(help="Export the text of confidential objections too (for marketing leads).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print data on standard output. Objections carry their date and theme, never a name;
    pulse results leave out every group below the minimum size."""
    if what not in EXPORTS:
        fail(f"Nothing to export called {what!r}; try one of: {', '.join(EXPORTS)}")
    if output not in ("csv", "json"):
        fail(f"--format {output!r}: use csv or json")
    with running(config) as ctx, ctx.db.session() as session:
        if what == "objections":
            rows: Iterable[dict[str, Any]] = exports.objection_rows(
                session, include_confidential=include_confidential
            )
            columns = exports.OBJECTION_COLUMNS
        elif what == "assets":
            rows, columns = exports.asset_rows(session), exports.ASSET_COLUMNS
        elif what == "acknowledgements":
            rows, columns = exports.acknowledgement_rows(session), exports.ACKNOWLEDGEMENT_COLUMNS
        else:
            rows, columns = pulse.export_rows(session, ctx.org), PULSE_COLUMNS
        if output == "json":
            json.dump(list(rows), sys.stdout, ensure_ascii=False, indent=1, default=str)
            sys.stdout.write("\n")
            return
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})


@app.command("import")
def import_command(
    what: Annotated[str, typer.Argument(help="objections")],
    file: Annotated[
        Path, typer.Argument(help="a CSV file with a header row: text, and optionally date, rep, ...")
    ],
    config: ConfigOption = None,
) -> None:
    """Load historical objections from a CSV file: all of it, or, if any row is wrong, none of it."""
    if what != "objections":
        fail(f"Touchline imports objections only; got {what!r}.")
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        fail(f"{file}: no such file.")
    except (UnicodeDecodeError, csv.Error) as error:
        fail(f"{file}: not a readable CSV file ({error}).")
    if not rows:
        fail(f"{file}: no rows below the header.")
    if "text" not in rows[0]:
        fail(f"{file}: the header has no 'text' column (it has: {', '.join(k for k in rows[0] if k)}).")
    with running(config) as ctx:
        result = exports.import_objections(ctx, rows, source=str(file))
    if result.problems:
        shown = result.problems[:50]
        more = f"\n  … and {len(result.problems) - 50} more" if len(result.problems) > 50 else ""
        fail(f"{file}: nothing was loaded; fix these and run it again:\n  " + "\n  ".join(shown) + more)
    typer.echo(f"{file}: {result.loaded} objections loaded, each with its theme.")


@app.command("digest")
def digest_command(
    since: Annotated[
        str | None, typer.Option(help="Start of the period, YYYY-MM-DD (default: digest.period before now).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text, markdown or json")] = "text",
    chart: Annotated[Path | None, typer.Option(help="Also write the chart, a PNG, to this file.")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the objection digest for the period up to now."""
    if output not in ("text", "markdown", "json"):
        fail(f"--format {output!r}: use text, markdown or json")
    with running(config) as ctx, ctx.db.session() as session:
        zone = ZoneInfo(ctx.org.organisation.timezone)
        start = None
        if since:
            try:
                start = datetime.combine(date.fromisoformat(since), time(0), tzinfo=zone)
            except ValueError:
                fail(f"--since {since!r}: write the date as YYYY-MM-DD")
        now = ctx.now()
        if start is not None and start >= now:
            fail(f"--since {since}: that is not in the past")
        result = digest.build(session, ctx.org, end=now, start=start)
        timezone = ctx.org.organisation.timezone
        if output == "json":
            json.dump(digest.as_json(result), sys.stdout, ensure_ascii=False, indent=1)
            sys.stdout.write("\n")
        else:
            typer.echo(digest.text(result, timezone, markdown=output == "markdown"), nl=False)
        if chart is not None:
            if not result.themes:
                fail("No chart: the period has no objections.")
            chart.write_bytes(digest.chart(result, timezone).png)


def _serve(settings: Settings) -> None:
    env = settings.env
    logs.configure(env.log_level, env.log_format)
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    touchline = Touchline.build(ctx, env)
    runner = SchedulerRunner(ctx)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)

        async def ready(address: str) -> None:
            mode = " and Socket Mode" if env.slack_app_token is not None else ""
            name = settings.org.organisation.name
            typer.echo(f"Touchline for {name} serves Slack at {address}/slack/events{mode}.")

        await touchline.run(stop, on_ready=ready)

    runner.start()
    try:
        asyncio.run(main())
    except OSError as error:
        fail(f"Cannot listen on {env.host}:{env.port}: {error.strerror}. Set HOST and PORT.")
    finally:
        runner.stop()
        ctx.db.dispose()


@app.command("manifest")
def manifest_command(
    platform: Annotated[str, typer.Argument(help="slack")],
    url: Annotated[
        str | None,
        typer.Option(help="Where Slack reaches Touchline, e.g. https://touchline.example.com"),
    ] = None,
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="Touchline connects to Slack instead (no public address)")
    ] = False,
) -> None:
    """Print the app manifest to paste when creating the app on the platform."""
    if platform != "slack":
        fail(f"No manifest for {platform!r}; try: touchline manifest slack --url https://…")
    try:
        typer.echo(manifest.slack_manifest(url, socket_mode=socket_mode), nl=False)
    except ValueError as error:
        fail(str(error))


def _console(settings: Settings, person: str | None, live: bool | None) -> None:
    env = settings.env
    # The terminal is the chat here: only warnings go to it, unless LOG_LEVEL asks for more.
    logs.configure(env.log_level if "log_level" in env.model_fields_set else "WARNING", env.log_format)
    person = person or _first_leader(settings)
    live = sys.stdin.isatty() if live is None else live
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
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
