"""Screenshots of the web page for the README: eight weeks of the demo company, played through Touchline's
own handlers into a throwaway SQLite file, then opened in Debian's headless Chromium.

    .venv/bin/python scripts/screenshots.py        # writes docs/screenshots/*.png
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bot.bootstrap import build_context  # noqa: E402
from bot.config import Environment, Settings, load_organisation  # noqa: E402
from handlers import directory, inbound, pulse  # noqa: E402
from handlers.context import Actor, Context  # noqa: E402
from handlers.ui import Reply  # noqa: E402
from storage.database import migrate  # noqa: E402
from tests.web_world import CHROMIUM, CHROMIUM_ARGS, serving  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # a Friday afternoon


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def fill(ctx: Context, actor: Actor, reply: Reply, values: dict[str, Any]) -> Reply:
    assert reply.form is not None, reply
    done = inbound.submit(ctx, actor, reply.form.form_id, {**values, **reply.form.state})
    assert not done.errors, done.errors
    return done


def play(ctx: Context, clock: Clock) -> None:
    who = {key: directory.console_actor(ctx, key) for key in ctx.org.people}
    start = NOW - timedelta(weeks=8)

    def at(days: float, hours: float = 10) -> None:
        clock.now = (start + timedelta(days=days)).replace(hour=0) + timedelta(hours=hours)

    def objection(person: str, text: str) -> None:
        assert "Recorded" in inbound.command(ctx, who[person], "objection", text).text

    def press(person: str, action_id: str, value: str) -> Reply:
        return inbound.action(ctx, who[person], action_id, value)

    # Eight weeks of what the field hears: price keeps rising, security turns up late.
    heard = [
        ["too expensive for a pilot", "Acme is cheaper per seat"],
        ["budget frozen until Q2", "price is above what they pay Acme"],
        ["too expensive for the mid-market", "switching from Globex is too much work"],
        ["the discount is too small", "Acme offers a free pilot", "needs a Salesforce connector"],
        ["price per seat too high", "budget cut", "the SAP integration is missing"],
        ["too expensive", "cheaper with Acme", "budget needs a CFO sign-off", "Initech is the incumbent"],
        ["cost too high for SMB", "price increase at renewal", "GDPR data residency unclear"],
        ["too expensive again", "pricing unclear", "SOC2 report missing", "security review failed", "budget"],
    ]
    reps = ["jonas", "lea", "priya", "sam"]
    for week, said in enumerate(heard):
        for i, text in enumerate(said):
            at(week * 7 + 1 + i % 4, 9 + i)
            objection(reps[i % len(reps)], text)

    decision = {
        "decision": "From January we lead with the mid-market tier in EMEA and North America.",
        "why": "Mid-market deals close twice as often, in half the time.",
        "reps_may": "offer up to 15% off on 3-year mid-market deals",
        "reps_may_not": "discount the platform fee; promise roadmap dates",
    }
    at(8)
    fill(
        ctx,
        who["maria"],
        inbound.command(ctx, who["maria"], "strategy", ""),
        {
            **decision,
            "title": "Mid-market first",
            "effective_on": "2026-10-05",
            "audiences": ["sales-emea", "sales-na"],
        },
    )
    for person, day in (("jonas", 8), ("lea", 9), ("priya", 11)):
        at(day, 11)
        press(person, "strategy.ack", "1")
    at(20)
    fill(
        ctx,
        who["tom"],
        inbound.command(ctx, who["tom"], "asset", ""),
        {
            "title": "Acme battlecard",
            "link": "https://drive.example/acme-battlecard",
            "kind": "battlecard",
            "key_message": "Where we win against Acme, in three questions to ask.",
            "themes": [str(theme_id(ctx, "competitor"))],
            "audiences": ["sales-emea", "sales-na"],
        },
    )
    for person, kind in (
        ("jonas", "asset.useful"),
        ("jonas", "asset.used"),
        ("lea", "asset.useful"),
        ("sam", "asset.used"),
    ):
        at(22, 14)
        press(person, kind, "1")
    at(23)
    fill(ctx, who["priya"], press("priya", "asset.doesnt_fit", "1"), {"reason": "Too long to use on a call."})

    at(36)
    fill(
        ctx,
        who["maria"],
        inbound.command(ctx, who["maria"], "strategy", ""),
        {
            "title": "Renewals: value first",
            "decision": "Renewals lead with the value delivered, not with a discount.",
            "why": "Discounts at renewal taught customers to wait for them.",
            "reps_may": "offer a 2-year price lock",
            "reps_may_not": "discount more than 10% at renewal",
            "effective_on": "2026-11-02",
            "audiences": ["sales-emea", "sales-na", "marketing"],
        },
    )
    for person, day in (("tom", 36), ("jonas", 37), ("chloe", 38), ("sam", 41)):
        at(day, 12)
        press(person, "strategy.ack", "2")
    at(42)
    fill(
        ctx,
        who["lea"],
        press("lea", "strategy.ask", "2"),
        {"text": "Does the 10% apply to multi-year renewals?"},
    )

    # Three pulse runs, three weeks apart; six people answer each time.
    answers = {"jonas": 4, "lea": 3, "priya": 4, "sam": 2, "tom": 5, "chloe": 4}
    for n, day in enumerate((14, 35, 52)):
        clock.now = (start + timedelta(days=day)).replace(hour=9)
        inbound.command(ctx, who["maria"], "pulse", "run alignment")
        clock.now += timedelta(days=1)
        run_id = str(max(pulse_run_ids(ctx)))
        for person, base in answers.items():
            score = str(min(5, base + n // 2))
            fill(
                ctx,
                who[person],
                press(person, pulse.ANSWER, run_id),
                {
                    "why": score,
                    "guardrails": score,
                    "materials": str(max(1, base - 1)),
                    "heard": "3",
                    "one-team": score,
                },
            )
        inbound.command(ctx, who["maria"], "pulse", f"close {run_id}")
    clock.now = NOW


def theme_id(ctx: Context, key: str) -> int:
    from sqlmodel import select

    from storage.models import Theme

    with ctx.db.session() as session:
        found = session.exec(select(Theme.id).where(Theme.key == key)).one()
        assert found is not None
        return found


def pulse_run_ids(ctx: Context) -> list[int]:
    from sqlmodel import select

    from storage.models import PulseRun

    with ctx.db.session() as session:
        return [i for i in session.exec(select(PulseRun.id)).all() if i is not None]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/touchline.db"
        migrate(url)
        clock = Clock(NOW)
        settings = Settings(
            Environment(database_url=url, port=0), load_organisation(ROOT / "app.yaml"), ROOT / "app.yaml"
        )
        ctx = build_context(settings, clock=clock)
        play(ctx, clock)
        with serving(ctx) as served, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{served.url}/?as=maria")
            page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
            page.goto(f"{served.url}/try?as=lea&channel=%23sales-emea")
            page.screenshot(path=str(OUT / "try.png"))
            browser.close()
        ctx.db.dispose()
    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.png')))} in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
