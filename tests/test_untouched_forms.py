"""No surface records an untouched default: required choices start empty on `/try`, Teams and
Slack, a choice left empty is refused field by field with nothing stored, and the console asks
again when a yes or no is unclear."""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from bot.config import parse_organisation_text
from handlers import setup
from handlers.context import Context
from handlers.forms import CHOOSE_ONE
from storage.database import Database
from storage.models import Asset, Outbox, Person, PulseInvitation, Question
from tests.fakes import Clock, rows
from tests.slack_world import World, run
from tests.teams_fake import User
from tests.teams_world import TeamsWorld, teams_world
from tests.test_console import console, database  # noqa: F401  (the fixture)
from tests.test_pulse import open_tuesday, pctx  # noqa: F401  (the fixture)
from tests.test_refusals import snapshot
from tests.test_slack import MARKET, sctx  # noqa: F401  (the fixture)
from tests.test_web import _open
from tests.web_world import serving

# Tables that change on their own while a server runs (delivery, the inbox, the scheduler):
# "nothing stored" is about the rest.
MACHINERY = {"outbox", "inboundevent", "conversation", "schedulerlease", "schedulerrun", "apscheduler_jobs"}
ASSET = {
    "title": "Price battlecard",
    "link": "https://drive.example.com/b",
    "key_message": "Three-year cost.",
}


def stored(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    return {name: table for name, table in snapshot(ctx).items() if name not in MACHINERY}


# --- /try: what a browser shows, and sends for a form nobody touched ---------------------------------


class ShownForm(HTMLParser):
    """The form on a /try page that posts to /try/submit, read as a browser reads it: each field's
    shown value, and what a press of its button sends (a single select sends its selected
    option, or its first when none is marked; an unticked box sends nothing)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.inside = False
        self.sent: list[tuple[str, str]] = []
        self.selects: dict[str, list[tuple[str, str, bool]]] = {}  # name -> (value, label, selected)
        self.errors: list[str] = []
        self._select: str | None = None
        self._option: dict[str, Any] | None = None
        self._textarea: str | None = None
        self._error = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form" and found.get("action") == "/try/submit":
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and found.get("type") != "checkbox":
            self.sent.append((found["name"], found.get("value", "")))
        elif tag == "input" and "checked" in found:
            self.sent.append((found["name"], found.get("value", "on")))
        elif tag == "select":
            self._select = found["name"]
            self.selects[found["name"]] = []
        elif tag == "option" and self._select is not None:
            self._option = {"value": found.get("value", ""), "selected": "selected" in found, "label": ""}
        elif tag == "textarea":
            self._textarea = found["name"]
            self.sent.append((found["name"], ""))
        elif tag == "div" and found.get("class") == "error":
            self._error = True

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option["label"] += data
        elif self._textarea is not None:
            name, text = self.sent[-1]
            self.sent[-1] = (name, text + data)
        elif self._error:
            self.errors.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._option is not None and self._select is not None:
            option = self._option
            self.selects[self._select].append((option["value"], option["label"], option["selected"]))
            self._option = None
        elif tag == "select" and self._select is not None:
            options = self.selects[self._select]
            chosen = [value for value, _, selected in options if selected] or [v for v, _, _ in options[:1]]
            self.sent += [(self._select, value) for value in chosen]
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "div":
            self._error = False
        elif tag == "form":
            self.inside = False

    def shown(self, name: str) -> str:
        return next(value for key, value in self.sent if key == name)

    def filled(self, **values: str | list[str]) -> bytes:
        """What the browser sends once `values` are typed or chosen over what is shown."""
        pairs = [(k, v) for k, v in self.sent if k not in values]
        for name, value in values.items():
            pairs += [(name, v) for v in (value if isinstance(value, list) else [value])]
        return urllib.parse.urlencode(pairs).encode()


def post(url: str, data: bytes) -> str:
    status, page = _open(urllib.request.Request(url, data=data, method="POST"))
    assert status == 200, page
    return page


def starts_empty(form: ShownForm, name: str) -> bool:
    """The select shows its empty option, marked selected, before any of its real options."""
    first_value, first_label, selected = form.selects[name][0]
    others_selected = [value for value, _, chosen in form.selects[name][1:] if chosen]
    return first_value == "" and first_label == "Choose…" and selected and not others_selected


def test_an_untouched_pulse_form_on_try_shows_every_required_choice_empty_and_stores_nothing(
    pctx: Context,  # noqa: F811
    clock: Clock,
) -> None:
    ctx = pctx
    open_tuesday(ctx)
    clock.now = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)  # after 10:00 in Berlin: s0 is invited
    [invitation] = rows(ctx.db, Outbox, kind="direct", address="s0")
    s0 = rows(ctx.db, Person, key="s0")[0]
    with serving(ctx) as served:
        page = post(
            f"{served.url}/try/press",
            urllib.parse.urlencode({"as": "s0", "channel": "", "post": invitation.id, "n": 1}).encode(),
        )
        form = ShownForm(page)
        assert {"why", "nps", "channel"} <= set(form.selects)
        assert all(starts_empty(form, name) for name in ("why", "nps", "channel")), form.selects

        before = stored(ctx)
        again = ShownForm(post(f"{served.url}/try/submit", form.filled()))  # pressed as shown
        assert stored(ctx) == before
        assert not rows(ctx.db, PulseInvitation, person_id=s0.id)[0].answered
        assert again.errors.count(CHOOSE_ONE) == 3, again.errors
        assert all(starts_empty(again, name) for name in ("why", "nps", "channel"))

        # A choice made before the error is kept; the rest is still to make.
        kept = ShownForm(post(f"{served.url}/try/submit", again.filled(why="4")))
        assert [v for v, _, chosen in kept.selects["why"] if chosen] == ["4"]
        assert starts_empty(kept, "nps") and kept.errors.count(CHOOSE_ONE) == 2
        assert stored(ctx) == before

        post(f"{served.url}/try/submit", kept.filled(nps="8", channel="Drive"))
        assert rows(ctx.db, PulseInvitation, person_id=s0.id)[0].answered


def test_an_asset_published_on_try_has_no_kind_until_the_marketer_picks_one(
    pctx: Context,  # noqa: F811
) -> None:
    ctx = pctx
    with serving(ctx) as served:
        page = post(
            f"{served.url}/try/command",
            urllib.parse.urlencode({"as": "m0", "channel": "", "text": "/asset"}).encode(),
        )
        form = ShownForm(page)
        assert starts_empty(form, "kind"), form.selects["kind"]

        before = stored(ctx)
        typed = form.filled(**ASSET, audiences="sales")
        again = ShownForm(post(f"{served.url}/try/submit", typed))
        assert stored(ctx) == before and rows(ctx.db, Asset) == []
        assert again.errors == [CHOOSE_ONE]
        assert again.shown("title") == "Price battlecard" and starts_empty(again, "kind")
        assert [v for v, _, chosen in again.selects["audiences"] if chosen] == ["sales"]

        post(f"{served.url}/try/submit", again.filled(kind="battlecard"))
        [asset] = rows(ctx.db, Asset)
        assert (asset.title, asset.kind) == ("Price battlecard", "battlecard")


# --- Teams: a compact ChoiceSet with a placeholder and no value ------------------------------------

LEAD = User("0d1e4c6a-1111-4b9e-9e9f-73e0c02bf4ea", "Lena Leader")
MIA = User("0d1e4c6a-4444-4b9e-9e9f-73e0c02bf4ea", "Mia Marketer")
TEAM = "19:salesemea0000000000000000000000@thread.tacv2"
TEAMS_ORG = f"""\
organisation: {{name: Teams Co, timezone: Europe/Berlin}}
people:
  lead: {{name: Lena Leader, teams: {LEAD.aad}}}
  mia: {{name: Mia Marketer, teams: {MIA.aad}}}
roles: {{leader: [lead], marketer: [mia]}}
audiences:
  emea: {{label: Sales EMEA, targets: ["teams:{TEAM}"], members: [lead]}}
"""


def test_a_teams_asset_card_offers_kind_with_a_placeholder_and_refuses_it_left_empty(
    db: Database, clock: Clock
) -> None:
    ctx = Context(db=db, org=parse_organisation_text(TEAMS_ORG), clock=clock)
    setup.apply(ctx)

    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD])
        await world.say(MIA, "asset")
        form = world.latest(MIA.personal, with_inputs=True)
        [card] = form.cards()
        inputs = {i["id"]: i for i in card["body"] if i["type"].startswith("Input.")}
        kind = inputs["kind"]
        assert kind["type"] == "Input.ChoiceSet" and kind["style"] == "compact" and not kind["isMultiSelect"]
        assert "value" not in kind and kind["placeholder"] == "Choose…"
        assert kind["isRequired"] and kind["errorMessage"] == "Choose one."
        assert "placeholder" not in inputs["audiences"]  # a multi-select shows no placeholder

        before = stored(ctx)
        await world.submit(MIA, form, {**ASSET, "audiences": "emea"})  # Teams sends no key for it
        await world.submit(MIA, form, {**ASSET, "audiences": "emea", "kind": ""})  # or an empty one
        assert stored(ctx) == before and rows(ctx.db, Asset) == []
        told = [s.activity.get("text") or "" for s in world.fake.to(MIA.personal, "POST")]
        assert [t for t in told if "Please fix these" in t] == [
            f"Please fix these and submit the form again:\n- Kind: {CHOOSE_ONE}"
        ] * 2

        await world.submit(MIA, form, {**ASSET, "audiences": "emea", "kind": "battlecard"})
        assert [a.kind for a in rows(ctx.db, Asset)] == ["battlecard"]

    async def main() -> None:
        async with teams_world(ctx) as world:
            await scenario(world)

    asyncio.run(main())


# --- Slack: a static_select with no initial option ---------------------------------------------------


def test_a_slack_asset_modal_has_no_kind_chosen_and_keeps_open_with_the_reason(
    sctx: Context,  # noqa: F811
) -> None:
    async def scenario(world: World) -> None:
        status, _ = await world.command("asset", "", MARKET)
        assert status == 200
        view = await world.opened(1)
        blocks = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
        kind = blocks["kind"]
        assert kind["element"]["type"] == "static_select" and "initial_option" not in kind["element"]
        assert not kind.get("optional", False)

        before = stored(world.ctx)
        answer = await world.submit(view, MARKET, {**ASSET, "audiences": ["emea"]})
        assert answer == {"response_action": "errors", "errors": {"kind": CHOOSE_ONE}}
        assert stored(world.ctx) == before and rows(world.ctx.db, Asset) == []

        assert await world.submit(view, MARKET, {**ASSET, "audiences": ["emea"], "kind": "deck"}) == {}
        assert [a.kind for a in rows(world.ctx.db, Asset)] == ["deck"]

    run(sctx, scenario)


# --- the console: an unclear yes or no is asked again -------------------------------------------------

DECISION_SCRIPT = [
    "/strategy",
    "Mid-market first in EMEA",
    "From January we lead with the mid-market tier in EMEA.",
    "Mid-market deals close twice as often, in half the time.",
    "offer up to 15% off on 3-year mid-market deals",
    "",
    "",
    "",
    "sales-emea",
]


def test_the_console_asks_again_on_an_unclear_yes_or_no_before_sending_a_concern(
    database: dict[str, str],  # noqa: F811
) -> None:
    script = [
        *DECISION_SCRIPT,
        "as lea",
        "press #sales-emea 3",
        "Public-sector buyers compare tender prices.",
        "maybe",  # at Send anonymously: neither yes nor no
        "ja",
        "y",
        "as jonas",
        "press #sales-emea 3",
        "Renewals will push back on this.",
        "n",
    ]
    output = console("\n".join(script) + "\n", database)
    assert output.count("Please answer y or n (Enter keeps: n).") == 2, output
    assert "Enter keeps: n" in output.split("Send anonymously", 1)[1]  # the untouched box is a no

    db = Database.from_url(database["DATABASE_URL"])
    try:
        people = {p.key: p.id for p in rows(db, Person)}
        concerns = rows(db, Question, kind="concern")
    finally:
        db.dispose()
    # Lea's concern went without her name (now, or sealed for the day's round); Jonas's with his.
    assert "anonymously" in output.split("Public-sector buyers", 1)[1].split("as jonas", 1)[0]
    assert [q.text for q in concerns if q.asker_id == people["lea"]] == []
    assert [q.text for q in concerns if q.asker_id == people["jonas"]] == ["Renewals will push back on this."]


def test_an_untouched_pulse_in_the_console_is_asked_again_choice_by_choice(
    database: dict[str, str],  # noqa: F811
) -> None:
    # Enter at each of the five statements and at the optional comment, then Enter again.
    script = ["/pulse run alignment", "as jonas", "press @jonas 1", *[""] * 6, "", "/cancel"]
    output = console("\n".join(script) + "\n", database)
    assert output.count(f": {CHOOSE_ONE}") == 5, output
    assert "[1/5] I understand why our current strategy was chosen. (required)" in output
    assert "Form abandoned; nothing was sent." in output
