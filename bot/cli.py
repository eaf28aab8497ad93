"""`touchline serve | console | migrate | check`: the command line."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer

from bot import logs
from bot.bootstrap import build_context
from bot.config import ConfigError, Environment, Settings, load_environment, load_settings, summary
from handlers import conversations, digest, exports, privacy, pulse
from handlers.context import Context, Refusal
from handlers.grouping import regroup
from handlers.text import count
from storage.database import (
    DatabaseNotReady,
    ensure_migrated,
    head_revision,
    make_engine,
    migrate,
    safe_url,
)

if TYPE_CHECKING:  # imported where used: a command that serves nothing starts without the servers
    from bot.server import Touchline

WORKER_NICENESS = 10  # `touchline worker` runs this much nicer than it was started

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
def serve_command(
    config: ConfigOption = None,
    person: AsOption = None,
    live: LiveOption = None,
    no_console: Annotated[
        bool,
        typer.Option(
            "--no-console", help="Without credentials: serve the web page only, no terminal session."
        ),
    ] = False,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Leave delivering messages, and doing what people did in Slack, to `touchline worker`, "
            "a process of its own: this one only stores it and answers.",
        ),
    ] = False,
) -> None:
    """Run Touchline: its server for Slack and Teams when their credentials are set, else the
    console here, with the web page (try it, the dashboard) beside it, and the Teams endpoint for
    the Bot Framework Emulator with TEAMS_EMULATOR=1."""
    settings = settings_or_exit(config)
    env = settings.env
    if env.slack_configured or env.teams_configured or no_console:
        _serve(settings, deliver=not no_worker)
        return
    typer.echo(
        f"Touchline for {settings.org.organisation.name}: no chat platform is connected, "
        "so Touchline runs here in the terminal."
    )
    _console(settings, person, live, beside=True)


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
        exports.write_csv(sys.stdout, columns, ([row.get(c) for c in columns] for row in rows))


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
    if "text" not in exports.column_names(rows[0]):
        fail(f"{file}: the header has no 'text' column (it has: {', '.join(k for k in rows[0] if k)}).")
    with running(config) as ctx:
        result = exports.import_objections(ctx, rows, source=str(file))
    if result.problems:
        shown = result.problems[:50]
        more = f"\n  … and {len(result.problems) - 50} more" if len(result.problems) > 50 else ""
        fail(f"{file}: nothing was loaded; fix these and run it again:\n  " + "\n  ".join(shown) + more)
    typer.echo(f"{file}: {result.loaded} objections loaded, each with its theme.")
    if result.ignored:
        typer.echo(
            f"{file}: columns left out: {', '.join(result.ignored)} "
            f"(Touchline reads {', '.join(sorted(exports.IMPORT_COLUMNS))}; it finds the themes itself)."
        )
    if result.regrouped:
        typer.echo(f"{file}: themes {result.regrouped}.")
    if result.already:
        typer.echo(
            f"{file}: {result.already} rows skipped: the same objection (text, date and rep) "
            "was there already."
        )


@app.command("forget")
def forget_command(
    person: Annotated[str, typer.Argument(help="their key in app.yaml, slack:U…, teams:<id> or e-mail")],
    config: ConfigOption = None,
) -> None:
    """Erase a person's personal data on request: what they said stays, without their name."""
    with running(config) as ctx:
        try:
            forgotten = privacy.forget(ctx, person)
        except Refusal as refusal:
            fail(refusal.message)
    typer.echo("\n".join(forgotten.lines()))


@app.command("regroup")
def regroup_command(config: ConfigOption = None) -> None:
    """Work out the themes of the last half year's objections again, all together (as is done
    weekly and before each digest); what marketers placed stays where they put it."""
    with running(config) as ctx:
        done = regroup.regroup(ctx)
    typer.echo(f"Themes {done.summary()}.")


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


def _serve(settings: Settings, *, deliver: bool = True) -> None:
    env = settings.env
    logs.configure(env.log_level, env.log_format)
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    from bot.server import Touchline, steady_collector, stop_on_signals
    from scheduler.runner import SchedulerRunner

    touchline = Touchline.build(ctx, env)
    runner = SchedulerRunner(ctx)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)

        async def ready(address: str) -> None:
            name = settings.org.organisation.name
            if env.slack_configured:
                mode = " and Socket Mode" if env.slack_app_token is not None else ""
                typer.echo(f"Touchline for {name} serves Slack at {address}/slack/events{mode}.")
            if env.teams_configured:
                typer.echo(f"Touchline for {name} serves Teams at {address}/api/messages.")
            elif touchline.teams is not None:
                typer.echo(EMULATOR.format(address=address), err=True)
            typer.echo(web_line(touchline, address))

        await touchline.run(stop, on_ready=ready, deliver=deliver)

    steady_collector()
    runner.start()
    try:
        asyncio.run(main())
    except OSError as error:
        fail(f"Cannot listen on {touchline.host}:{env.port}: {error.strerror}. Set HOST and PORT.")
    finally:
        runner.stop()
        ctx.db.dispose()


@app.command("worker")
def worker_command(
    config: Annotated[Path | None, typer.Option(help="app.yaml (default: TOUCHLINE_CONFIG)")] = None,
) -> None:
    """Deliver messages and do what people did in Slack (stored by `touchline serve --no-worker`,
    or left by a stopped server) without serving, so that neither a broadcast nor a crowd's work
    slows the answers to Slack and Teams. Several may run on one PostgreSQL."""
    settings = settings_or_exit(config)
    env = settings.env
    logs.configure(env.log_level, env.log_format)
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    if not (env.slack_configured or env.teams_configured):
        # Without a chat platform the console delivers its own messages, in its own process.
        fail(
            "touchline worker delivers to Slack and Teams, and neither is configured: set SLACK_BOT_TOKEN "
            "and SLACK_SIGNING_SECRET, or MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (touchline check)."
        )
    from bot.server import Touchline, steady_collector, stop_on_signals
    from scheduler.runner import SchedulerRunner

    touchline = Touchline.build(ctx, env)
    runner = SchedulerRunner(ctx)
    # On a machine it shares with `serve`, the work (which waits, durable, in the inbox and the
    # outbox) yields the CPU to the answers Slack and Teams wait for: when the work falls behind,
    # the acknowledgements do not fall behind with it.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        typer.echo(
            f"Touchline's worker for {settings.org.organisation.name} delivers to "
            f"{', '.join(sorted(touchline.platforms))}."
        )
        await touchline.work(stop)

    steady_collector()
    runner.start()
    try:
        asyncio.run(main())
    finally:
        runner.stop()
        ctx.db.dispose()


@app.command("manifest")
def manifest_command(
    platform: Annotated[str, typer.Argument(help="slack or teams")],
    url: Annotated[
        str | None,
        typer.Option(help="Where the platform reaches Touchline, e.g. https://touchline.example.com"),
    ] = None,
    socket_mode: Annotated[
        bool,
        typer.Option("--socket-mode", help="Slack: Touchline connects to Slack instead (no public address)"),
    ] = False,
    app_id: Annotated[str | None, typer.Option("--app-id", help="Teams: the bot's Microsoft App ID")] = None,
    out: Annotated[Path, typer.Option(help="Teams: where to write the app package")] = Path(
        "touchline-teams.zip"
    ),
) -> None:
    """Slack: print the app manifest to paste. Teams: write the app package (a zip) to upload."""
    from bot.slack import manifest
    from bot.teams import manifest as teams_manifest

    try:
        if platform == "slack":
            typer.echo(manifest.slack_manifest(url, socket_mode=socket_mode), nl=False)
        elif platform == "teams":
            if not app_id or not url:
                fail("Teams needs both: touchline manifest teams --app-id <Microsoft App ID> --url https://…")
            out.write_bytes(teams_manifest.package(app_id, url))
            typer.echo(f"Wrote {out}: upload it in Teams (Apps → Manage your apps → Upload an app).")
        else:
            fail(f"No manifest for {platform!r}: slack or teams.")
    except ValueError as error:
        fail(str(error))


@app.command("audiences")
def audiences_command(config: ConfigOption = None) -> None:
    """The conversations Touchline has been added to, with the ids to put in app.yaml's audiences."""
    settings = settings_or_exit(config)
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    try:
        places = conversations.known(ctx)
        used = {t for a in settings.org.audiences.values() for t in a.targets}
        shown = [p for p in places if p.kind != conversations.PERSONAL]
        if not shown:
            typer.echo(
                "Touchline has not been added to any team or group chat yet. Add the app to a team in "
                "Teams; its channels then show here."
            )
            return
        typer.echo("Conversations Touchline can post to (use the target in app.yaml's audiences):")
        for place in shown:
            target = f"{place.platform}:{place.address}"
            where = " · ".join(part for part in (place.team, place.name) if part) or "(no name)"
            mark = "  (in app.yaml)" if target in used else ""
            typer.echo(f"  {place.kind:<8} {where:<40} {target}{mark}")
        typer.echo(f"And {count(len(places) - len(shown), '1:1 chat')} with people.")
    finally:
        ctx.db.dispose()


EMULATOR = (
    "⚠ Teams runs in Bot Framework Emulator mode (TEAMS_EMULATOR=1): {address}/api/messages takes "
    "unauthenticated requests, from this machine only (not through a proxy). Point the Emulator there "
    "to try Touchline as a Teams bot."
)
NO_TEAMS = (
    "Teams is not served: `make run TEAMS_EMULATOR=1` (or TEAMS_EMULATOR=1 touchline serve) adds the "
    "endpoint for the Bot Framework Emulator."
)


def _console(settings: Settings, person: str | None, live: bool | None, *, beside: bool = False) -> None:
    env = settings.env
    # The terminal is the chat here: only warnings go to it, unless LOG_LEVEL asks for more.
    logs.configure(env.log_level if "log_level" in env.model_fields_set else "WARNING", env.log_format)
    person = person or _first_leader(settings)
    live = sys.stdin.isatty() if live is None else live
    try:
        ctx = build_context(settings)
    except (DatabaseNotReady, ConfigError) as error:
        fail(str(error))
    from bot.console.repl import run_console
    from scheduler.runner import SchedulerRunner

    runner = SchedulerRunner(ctx) if live else None

    async def main() -> None:
        # Interactively, the web page (and the Emulator) can talk to the same Touchline while the
        # console runs.
        stop = asyncio.Event()
        server = asyncio.create_task(_beside_console(ctx, env, stop)) if beside and live else None
        try:
            await run_console(ctx, person, stdin=sys.stdin, out=sys.stdout, live=live)
        finally:
            stop.set()
            if server is not None:
                await server

    try:
        if runner is not None:
            runner.start()
        asyncio.run(main())
    except Refusal as refusal:
        fail(refusal.message)
    except KeyboardInterrupt:
        typer.echo("")
    finally:
        if runner is not None:
            runner.stop()
        ctx.db.dispose()


async def _beside_console(ctx: Context, env: Environment, stop: asyncio.Event) -> None:
    from bot.server import Touchline

    touchline = Touchline.build(ctx, env)
    # The console delivers its own channel posts; this one delivers what goes to Teams, if served.
    touchline.platforms = {k: v for k, v in touchline.platforms.items() if k == "teams"}

    async def ready(address: str) -> None:
        typer.echo(EMULATOR.format(address=address) if touchline.teams is not None else NO_TEAMS)
        typer.echo(web_line(touchline, address))

    try:
        await touchline.run(stop, on_ready=ready)
    except OSError as error:
        typer.echo(f"(The Teams endpoint did not start: port {env.port} {error.strerror}; set PORT.)")


def web_line(touchline: Touchline, address: str) -> str:
    if touchline.page is not None and touchline.page.local:
        return f"Open {address}/ in your browser: try Touchline as anyone in app.yaml, and see the dashboard."
    return f"The dashboard is at {address}/ (people sign in with /touchline dashboard in chat)."


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
