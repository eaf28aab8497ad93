"""Touchline as a server: one aiohttp server for the platforms' requests and `/healthz`, the
delivery worker, and the platforms' own upkeep, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, text
from sqlmodel import col, select

from bot import door
from bot.config import Environment
from bot.console.platform import ConsolePlatform
from bot.delivery import DeliveryWorker
from bot.metrics import Metrics
from bot.pacing import Pacer
from bot.platform import Platform
from bot.slack.app import TAKE_EVERY, SlackApp
from bot.slack.platform import SlackPlatform
from bot.teams.app import TeamsApp
from bot.teams.platform import TeamsPlatform
from bot.web.app import WebPage
from handlers.context import Context
from storage import lease, outbox
from storage.database import UNREACHABLE
from storage.models import Outbox

log = logging.getLogger(__name__)
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024  # Slack's and Teams' requests are small; anything bigger is refused with 413
REFRESH = timedelta(minutes=10)  # user groups and channel members


@dataclass
class Touchline:
    """Everything the server runs, built once from the environment (tests build it with fakes)."""

    ctx: Context
    env: Environment
    slack: SlackApp | None = None
    teams: TeamsApp | None = None
    platforms: dict[str, Platform] = field(default_factory=dict)
    metrics: Metrics | None = None
    page: WebPage | None = None

    @classmethod
    def build(cls, ctx: Context, env: Environment) -> Touchline:
        touchline = cls(ctx, env, metrics=Metrics(ctx))
        if env.slack_configured:
            assert env.slack_bot_token is not None and env.slack_signing_secret is not None
            client = AsyncWebClient(
                token=env.slack_bot_token.get_secret_value(),
                base_url=env.slack_api_url or AsyncWebClient.BASE_URL,
            )
            touchline.slack = SlackApp(ctx, client, env.slack_signing_secret.get_secret_value())
            touchline.platforms["slack"] = SlackPlatform(client)
        # Teams is served with its credentials, or in the Emulator's mode when asked for
        # (TEAMS_EMULATOR=1, which the environment refuses beside any credentials); else not at all.
        if env.teams_configured or env.teams_emulator:
            password = env.microsoft_app_password
            touchline.teams = TeamsApp(
                ctx,
                app_id=env.microsoft_app_id if env.teams_configured else None,
                password=password.get_secret_value() if password is not None else None,
                tenant_id=env.microsoft_app_tenant_id,
                app_type=env.teams_app_type,
                emulator=not env.teams_configured,
                service_urls=env.teams_service_urls,
                openid_metadata_url=env.microsoft_openid_metadata_url,
                login_url=env.microsoft_login_url,
            )
            touchline.platforms["teams"] = TeamsPlatform(touchline.teams)
        # No chat platform connected: Touchline listens on this machine only, so the web page is open
        # to whoever sits here, and `/try` plays in the local workspace.
        local = touchline.local
        touchline.page = WebPage(ctx, local=local)
        if local:
            # The local workspace (the console's channels) is what the web page's `/try` plays in.
            touchline.platforms["console"] = ConsolePlatform(None, ctx.org)
        return touchline

    def worker(self) -> DeliveryWorker:
        """The delivery worker, paced by the platforms' limits as app.yaml sets them."""
        delivery = self.ctx.org.delivery
        limits = {
            "slack": (delivery.slack.per_conversation, delivery.slack.per_app),
            "teams": (delivery.teams.per_conversation, delivery.teams.per_app),
        }
        return DeliveryWorker(
            self.ctx.db,
            self.platforms,
            clock=self.ctx.clock,
            pacer=Pacer(limits),
            concurrency=delivery.concurrency,
            metrics=self.metrics,
        )

    @property
    def local(self) -> bool:
        """No chat platform connected with its credentials (at most Teams in Emulator mode)."""
        return self.slack is None and (self.teams is None or self.teams.emulator)

    @property
    def host(self) -> str:
        """Where to listen: with no platform's credentials (the console, the Emulator's mode),
        this machine only, whatever HOST says."""
        if self.local:
            return "127.0.0.1"
        return self.env.host

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[door.keep])
        app.router.add_get("/healthz", self.healthz)
        if self.env.metrics_port is None:
            app.router.add_get("/metrics", self.metrics_page)
        if self.page is not None:
            self.page.routes(app)
        if self.slack is not None:
            app.router.add_post("/slack/events", self._timed("slack", self.slack.handle))
        if self.teams is not None:
            app.router.add_post("/api/messages", self._timed("teams", self.teams.handle))
            teams = self.teams

            async def close_teams(_: web.Application) -> None:
                await teams.close()

            app.on_cleanup.append(close_teams)
        # Innermost, under the web page's own: each route is handed a body already read, in time.
        app.middlewares.append(door.read_within(self.env.body_timeout))
        return app

    def _timed(self, platform: str, route: Route) -> Route:
        """The route, with the time to answer the platform in the acknowledgement histogram."""

        async def timed(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                return await route(request)
            finally:
                if self.metrics is not None:
                    self.metrics.acknowledgement.labels(platform).observe(time.perf_counter() - started)

        return timed

    async def metrics_page(self, request: web.Request) -> web.Response:
        """`GET /metrics`: Prometheus' text format (the database figures are read now)."""
        if self.metrics is None:
            return web.Response(status=404)
        token = self.env.metrics_token
        if token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, token.get_secret_value().encode()):
                return web.Response(status=401, text="Send METRICS_TOKEN as a bearer token.")
        body = await asyncio.to_thread(generate_latest, self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """Is the database reachable, who runs the scheduler, how old is the oldest message owed."""
        try:
            state = await asyncio.to_thread(self._health)
        except Exception as error:
            log.warning("health check: %s", type(error).__name__)
            return web.json_response({"ok": False, "database": "unreachable"}, status=503)
        return web.json_response({"ok": True, **state})

    def _health(self) -> dict[str, object]:
        now = self.ctx.now()
        with self.ctx.db.read() as session:  # reads only: on SQLite it waits for no writer
            session.execute(text("SELECT 1"))
            oldest = session.exec(
                select(func.min(Outbox.created_at)).where(
                    col(Outbox.status).in_([outbox.PENDING, outbox.SENDING]), col(Outbox.due_at) <= now
                )
            ).one()
            leader = lease.holder_of(session, name="scheduler", now=now)
        return {
            "database": "ok",
            "scheduler": leader or "nobody holds the lease",
            "outbox_oldest_seconds": round((now - oldest).total_seconds()) if oldest else 0,
            "platforms": sorted(self.platforms),
        }

    async def work(self, stop: asyncio.Event) -> None:
        """`touchline worker`: until `stop`, deliver the outbox and take up inbox items that a
        dead process left, without serving anything, so that a broadcast's sending does not share
        a process with the acknowledgements."""
        threads = ThreadPoolExecutor(max_workers=self.ctx.org.delivery.concurrency + 8)
        asyncio.get_running_loop().set_default_executor(threads)
        if self.slack is not None:
            self.slack.http()
        tasks = [asyncio.create_task(self.worker().run_forever(stop))]
        if self.slack is not None:
            # What `serve --no-worker` received is done here, looked for every TAKE_EVERY.
            tasks.append(asyncio.create_task(self.slack.keep_inbox(stop, every=TAKE_EVERY)))
        try:
            await stop.wait()
        finally:
            if self.slack is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slack.settled(), timeout=self.env.shutdown_grace)
                await self.slack.let_go()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.close()

    async def run(
        self,
        stop: asyncio.Event,
        *,
        on_ready: Callable[[str], Awaitable[None]] | None = None,
        deliver: bool = True,
    ) -> None:
        """Serve until `stop` is set: the web server, the delivery worker (unless `deliver` is
        False: `touchline worker` runs it), and each platform's upkeep."""
        # Database work and the Teams client's requests run in threads: enough of them for the
        # sends under way at once (asyncio's default is a handful on a small machine).
        threads = ThreadPoolExecutor(max_workers=self.ctx.org.delivery.concurrency + 8)
        asyncio.get_running_loop().set_default_executor(threads)
        runner, listening = await self._listen(self.web_app(), self.host, self.env.port)
        port = listening.sockets[0].getsockname()[1]  # PORT=0: the one the system chose
        address = f"http://{self.host}:{port}"
        apart = await self._serve_metrics_apart()
        if on_ready is not None:
            await on_ready(address)
        if self.slack is not None:
            self.slack.http()  # the Web API client and the replies share one session from the start
        tasks = [asyncio.create_task(self.worker().run_forever(stop))] if deliver else []
        socket_mode = None
        if self.slack is not None:
            tasks.append(asyncio.create_task(self._keep_fresh(stop)))
            # Without a worker beside it, this process does what it received (and what a dead
            # one left); with one, on PostgreSQL, it only stores it, and the worker does it. On
            # SQLite it still does it: the file has one writer, and the worker's writes would keep
            # the inbox's from being stored in time (answers took seconds at 100 commands a second).
            sqlite = self.ctx.db.engine.dialect.name == "sqlite"
            self.slack.hands_off = not deliver and not sqlite
            if not self.slack.hands_off:
                tasks.append(asyncio.create_task(self.slack.keep_inbox(stop)))
            if self.env.slack_app_token is not None:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                socket_mode = AsyncSocketModeHandler(
                    self.slack.bolt, self.env.slack_app_token.get_secret_value()
                )
                await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        try:
            await stop.wait()
        finally:
            # No new connections from here (a replica or the next start takes them); what was
            # received is finished if it can be within SHUTDOWN_GRACE, and what is left stays in the inbox.
            listening.close()
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
            if self.slack is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slack.settled(), timeout=self.env.shutdown_grace)
                await self.slack.let_go()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for site, its_runner in [(listening, runner), *([apart] if apart else [])]:
                site.close()
                await its_runner.cleanup()
            await self.close()

    async def _listen(
        self, app: web.Application, host: str, port: int
    ) -> tuple[web.AppRunner, asyncio.Server]:
        """`app` served at host:port behind a door that times slow clients and counts connections."""
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self.env.idle_timeout,
            lingering_time=self.env.body_timeout,  # reading what is left of a body refused unread
        )
        await runner.setup()
        assert runner.server is not None
        limits = door.Limits(self.env.header_timeout, self.env.body_timeout, self.env.max_connections)
        try:
            listening = await asyncio.get_running_loop().create_server(
                door.Door(runner.server, limits), host, port
            )
        except OSError:
            await runner.cleanup()
            raise
        return runner, listening

    async def _serve_metrics_apart(self) -> tuple[asyncio.Server, web.AppRunner] | None:
        """With METRICS_PORT, `/metrics` listens there (METRICS_HOST, this machine by default),
        behind the same door, and not on the public port."""
        if self.env.metrics_port is None:
            return None
        app = web.Application(middlewares=[door.keep, door.read_within(self.env.body_timeout)])
        app.router.add_get("/metrics", self.metrics_page)
        runner, listening = await self._listen(app, self.env.metrics_host, self.env.metrics_port)
        log.info(
            "metrics at http://%s:%s/metrics", self.env.metrics_host, listening.sockets[0].getsockname()[1]
        )
        return listening, runner

    async def close(self) -> None:
        """Let go of the platforms' connections."""
        if self.slack is not None:
            await self.slack.close()
        if self.teams is not None:
            await self.teams.close()

    async def _keep_fresh(self, stop: asyncio.Event) -> None:
        assert self.slack is not None
        try:
            auth = await self.slack.client.auth_test()
            self.slack.people.bot_user_id = auth.get("user_id")
        except Exception as error:
            log.warning("auth.test failed: %s", error)
        while not stop.is_set():
            try:
                await self.slack.people.refresh()
            except UNREACHABLE as error:
                log.warning(
                    "refreshing Slack's groups and channels waits for the database (%s)", type(error).__name__
                )
            except Exception:
                log.exception("refreshing Slack user groups and channel members failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=REFRESH.total_seconds())


# The cyclic garbage collector's first generation runs every this many allocations (Python's
# default is 700): a process answering and delivering allocates fast, and each run's promotions
# brought the full collections that stopped everything for 60-90 ms while DMs went out.
YOUNG_COLLECTION = 20_000


def steady_collector() -> None:
    """Fewer, shorter collector pauses for a long-running process: what start-up loaded (modules,
    app.yaml, the SDKs) is moved out of the collector's reach, and young objects are collected
    less often. Call it once everything is imported, before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, old)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(getattr(signal, name), stop.set)
