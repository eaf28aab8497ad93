"""Touchline's web page: the dashboard, its CSV downloads, sign-in by one-time link, and `/try` locally."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from bot.web.dashboard_page import dashboard_html, table_csv
from bot.web.html import e, layout, link, message_page
from bot.web.try_page import TryPage
from handlers import dashboard, directory, signin
from handlers.context import Context, Refusal
from handlers.signin import NotSignedIn, Viewer
from storage.database import UNREACHABLE

log = logging.getLogger(__name__)
COOKIE = "touchline_session"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# No script runs on these pages; styles and pictures come only from the page itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # a sign-in link in the address bar must not leak to another site
}


class WebPage:
    """The pages people open in a browser. `local`: Touchline runs on this machine only, with no
    chat platform connected, so the page is open to whoever sits at it and `/try` is served."""

    def __init__(self, ctx: Context, *, local: bool) -> None:
        self.ctx = ctx
        self.local = local
        self.try_page = TryPage(ctx, links=self.links) if local else None

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self.guard)
        app.router.add_get("/", self.show_dashboard)
        app.router.add_get("/dashboard/{section}/{name}.csv", self.download)
        app.router.add_get("/sign-in/{token}", self.sign_in_page)
        app.router.add_post("/sign-in/{token}", self.sign_in)
        app.router.add_post("/sign-out", self.sign_out)
        if self.try_page is not None:
            self.try_page.routes(app)

    def links(self, person: str) -> tuple[tuple[str, str], ...]:
        if not self.local:
            return (("Dashboard", "/"),)
        return (("Dashboard", link("/", **{"as": person})), ("Try it", link("/try", **{"as": person})))

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """For the web page's own paths: refuse posts from other sites, set the security headers, and
        turn any failure into a page that says so (never a stack trace)."""
        if request.path.startswith(("/slack/", "/api/")):
            return await handler(request)
        if self.local and _hostname(request.host) not in LOOPBACK:
            # Open to whoever sits at this machine: a page reached under another name is a DNS
            # rebinding, another site's script reading it through its own domain.
            return _html(message_page("Wrong address", "Open this page at http://127.0.0.1 only."), 421)
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin is not None and not self._same_site(origin, request):
            return _html(message_page("Refused", "This form was sent from another site."), 403)
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            response = _html(
                message_page("Too large", "That was more than Touchline takes at once; please shorten it."),
                413,
            )
        except web.HTTPException as done:
            if done.status < 400:
                raise
            response = _html(message_page(done.reason, done.text or done.reason), done.status)
        except UNREACHABLE as error:
            log.warning("web page: the database cannot be reached (%s)", type(error).__name__)
            response = _html(
                message_page("Try again in a minute", "Touchline cannot reach its database right now."), 503
            )
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("web page failed (reference %s)", reference)
            response = _html(
                message_page(
                    "Something went wrong",
                    f"Nothing more was changed. Tell your admin the reference {reference}.",
                ),
                500,
            )
        response.headers.update(SECURITY_HEADERS)
        return response

    def _same_site(self, origin: str, request: web.Request) -> bool:
        """Whether a form was sent from this page: behind a proxy that is PUBLIC_URL (the proxy's
        scheme and host, not the ones Touchline sees); locally, this machine at this port."""
        if self.local:
            sent = URL(origin) if origin.startswith(("http://", "https://")) else None
            here = URL(f"{request.scheme}://{request.host}")
            return sent is not None and sent.host in LOOPBACK and sent.port == here.port
        if self.ctx.public_url:
            public = URL(self.ctx.public_url)
            return origin == str(public.origin())
        return origin == f"{request.scheme}://{request.host}"

    # --- who is looking --------------------------------------------------------------------------

    async def viewer(self, request: web.Request) -> Viewer:
        """Who is looking: locally, whoever `?as=` names; else the signed-in person; else, locally,
        someone who sees everything."""
        person = request.query.get("as", "")
        if self.local and person in self.ctx.org.people:
            return await asyncio.to_thread(self._local_viewer, person)
        token = request.cookies.get(COOKIE, "")
        if token:
            try:
                return await asyncio.to_thread(signin.viewer, self.ctx, token)
            except NotSignedIn:
                if not self.local:
                    raise
        if self.local:
            return Viewer(0, "this machine", frozenset({"leader", "marketer", "admin"}))
        raise NotSignedIn("Sign in first: type /touchline dashboard in Slack or Teams for a link.")

    def _local_viewer(self, person: str) -> Viewer:
        actor = directory.console_actor(self.ctx, person)
        return Viewer(actor.person_id, actor.name, actor.roles)

    # --- pages -----------------------------------------------------------------------------------

    async def show_dashboard(self, request: web.Request) -> web.Response:
        try:
            viewer, board = await self._board_for(request)
        except (NotSignedIn, Refusal) as refused:
            return self._refused(refused)
        as_person = request.query.get("as") if self.local else None
        body = dashboard_html(board, as_person=as_person)
        if COOKIE in request.cookies:
            body += "<form method='post' action='/sign-out'><button type='submit'>Sign out</button></form>"
        who = f"{viewer.name} ({', '.join(sorted(viewer.roles)) or 'no role'})"
        return _html(
            layout(
                "Dashboard",
                body,
                here=link("/", **{"as": as_person}),
                who=who,
                links=self.links(as_person or ""),
            )
        )

    async def download(self, request: web.Request) -> web.Response:
        try:
            _, board = await self._board_for(request, only=request.match_info["section"])
        except (NotSignedIn, Refusal) as refused:
            return self._refused(refused)
        name = request.match_info["name"]
        table = board.table(name)
        if table is None:
            return _html(message_page("Not here", f"There is no table called {name[:60]} for you."), 404)
        return web.Response(
            text=table_csv(table),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="touchline-{table.name}.csv"'},
        )

    async def _board_for(
        self, request: web.Request, *, only: str | None = None
    ) -> tuple[Viewer, dashboard.Dashboard]:
        """Who is looking, and the dashboard (or its section `only`) as they may see it."""
        viewer = await self.viewer(request)
        audience = request.query.get("audience") or None

        def build() -> dashboard.Dashboard:
            with self.ctx.db.session() as session:
                return dashboard.build(
                    session, self.ctx.org, viewer, now=self.ctx.now(), audience=audience, only=only
                )

        return viewer, await asyncio.to_thread(build)

    async def sign_in_page(self, request: web.Request) -> web.Response:
        # A button, not an automatic sign-in: link previews and mail scanners open links too.
        token = request.match_info["token"]
        button = (
            f"<form method='post' action='/sign-in/{e(token)}'>"
            "<button class='primary' type='submit'>Open the dashboard</button></form>"
        )
        return _html(
            message_page("Sign in to Touchline", "This link works once, for 10 minutes.", action=button)
        )

    async def sign_in(self, request: web.Request) -> web.Response:
        try:
            session_token = await asyncio.to_thread(signin.redeem, self.ctx, request.match_info["token"])
        except NotSignedIn as refused:
            return _html(message_page("This link does not open the dashboard", refused.message), 403)
        response = web.HTTPSeeOther(location="/")
        response.set_cookie(
            COOKIE,
            session_token,
            httponly=True,
            samesite="Lax",
            secure=self.ctx.public_url.startswith("https://"),
            max_age=int(signin.SESSION_VALID.total_seconds()),
            path="/",
        )
        raise response

    async def sign_out(self, request: web.Request) -> web.Response:
        token = request.cookies.get(COOKIE, "")
        if token:
            await asyncio.to_thread(signin.sign_out, self.ctx, token)
        response = _html(message_page("Signed out", "Type /touchline dashboard in chat to come back."))
        response.del_cookie(COOKIE, path="/")
        return response

    def _refused(self, refused: NotSignedIn | Refusal) -> web.Response:
        return _html(message_page("Sign in to see the dashboard", refused.message), 401)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _hostname(host: str | None) -> str:
    try:
        return (URL(f"http://{host or ''}").host or "").strip("[]")
    except ValueError:
        return ""
