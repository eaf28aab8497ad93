"""The web page in a real headless Chromium: `/try`, and the dashboard's rates, charts and anonymity."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from handlers import directory, inbound
from handlers.context import Context
from tests.fakes import Clock
from tests.test_pulse import answer, close, open_tuesday, pctx  # noqa: F401  (the fixture)
from tests.web_world import CHROMIUM, CHROMIUM_ARGS, serving


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Debian's chromium (make test installs it); Playwright never downloads a browser of its own here.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    yield context.new_page()
    context.close()


def test_a_rep_acknowledges_in_try_and_the_leader_sees_the_count_and_the_rate_move(
    ctx: Context, page: Page
) -> None:
    with serving(ctx) as served:
        page.goto(f"{served.url}/")
        expect(page.locator("h1")).to_have_text("Alignment at a glance")

        # The leader announces a decision through the form, as in Slack's modal.
        page.goto(f"{served.url}/try?as=lead")
        page.fill("input[name=text]", "/strategy")
        page.click("form.compose button")
        page.fill("#field-title", "Mid-market first in EMEA")
        page.fill("#field-decision", "From January we lead with the mid-market tier in EMEA.")
        page.fill("#field-why", "Mid-market deals close twice as often.")
        page.fill("#field-reps_may", "offer up to 15% off on 3-year deals")
        page.select_option("#field-audiences", ["emea"])
        page.click("form.touchline-form button.primary")
        expect(page.locator(".only-you")).to_contain_text("is going out to 2 channels (Sales EMEA)")

        page.click("nav.channels >> text=#emea")
        card = page.locator("article.card").last
        expect(card).to_contain_text("Mid-market first in EMEA")
        expect(card.locator(".footer")).to_contain_text("acknowledged by 0 of 2")
        page.goto(f"{served.url}/?as=lead")
        assert _rate(page, "all") == "0%"

        # A rep takes the seat and presses Got it on the channel's card.
        page.goto(f"{served.url}/try?as=lead&channel=%23emea")
        page.click(".people >> text=Rita")
        expect(page.locator("header .who")).to_contain_text("Rita Rep (rep)")
        page.locator("article.card").last.locator("button", has_text="Got it").click()
        expect(page.locator(".only-you")).to_contain_text("you acknowledged")

        # Back in the leader's seat: the card's count moved, and so did the dashboard's rate.
        page.click(".people >> text=Lena")
        expect(page.locator("article.card").last.locator(".footer")).to_contain_text("acknowledged by 1 of 2")
        page.click("header >> text=Dashboard")
        assert _rate(page, "all") == "50%"
        assert _rate(page, "Sales EMEA") == "50%"
        expect(page.locator("svg.chart").first).to_be_visible()


def test_the_theme_trend_chart_draws_a_line_per_theme(ctx: Context, clock: Clock, page: Page) -> None:
    reps = [directory.console_actor(ctx, key) for key in ("rep1", "rep2", "rep3")]
    start = clock.now
    for week, said in enumerate(
        [["too expensive for us"], ["too expensive", "Acme is cheaper"], ["budget is frozen", "SOC2 missing"]]
    ):
        clock.now = start - timedelta(days=7 * (2 - week) + 1)
        for i, text in enumerate(said):
            assert "Recorded" in inbound.command(ctx, reps[i], "objection", text).text
    clock.now = start
    with serving(ctx) as served:
        page.goto(f"{served.url}/")
        chart = page.locator("svg.chart[aria-label='Objections per theme, week by week']")
        expect(chart).to_be_visible()
        lines = chart.locator("polyline.series")
        assert lines.count() >= 1
        box = lines.first.bounding_box()
        assert box is not None and box["width"] > 100  # drawn across the weeks, not a dot
        legend = chart.locator("text").all_text_contents()
        assert "price" in legend
        table = page.locator("table[data-table='themes']")
        expect(table).to_contain_text("price")


def test_the_pulse_filter_never_shows_a_group_below_the_minimum(
    pctx: Context,  # noqa: F811
    clock: Clock,
    page: Page,
) -> None:
    run = open_tuesday(pctx)
    clock.advance(hours=14)  # everyone's invitation is out
    for key in ["s0", "s1", "s2", "s3", "s4", "m0", "m1"]:  # five sellers, two marketers
        assert "Thank" in answer(pctx, directory.console_actor(pctx, key), run, why="5")
    close(pctx, run)

    with serving(pctx) as served:
        page.goto(f"{served.url}/")
        everyone = page.locator("table[data-table='alignment'] tr").last
        expect(everyone).not_to_contain_text("fewer than")
        expect(
            page.locator("svg.chart[aria-label='I understand why our strategy was chosen.']")
        ).to_be_visible()

        page.select_option("#audience", "marketing")
        page.click("#pulse button")
        expect(page.locator("#pulse .fact")).to_contain_text("marketing")
        row = page.locator("table[data-table='alignment'] tr").last
        expect(row).to_contain_text("fewer than 5")
        assert page.locator("#pulse svg.chart rect.bar").count() == 0
        link = page.locator("a.csv[href*='pulse-questions']").get_attribute("href") or ""
        assert "audience=marketing" in link
        download = page.request.get(served.url + link)
        table = list(csv.DictReader(io.StringIO(download.text())))
        assert table and all(r["mean"] == "" and r["distribution"] == "" for r in table)
        assert {r["answers"] for r in table} == {"fewer than 5"}

        # Five sellers are enough on their own, but beside everyone's figures they would give the
        # two marketers' answers away: the run kept no audience on its answers, so hidden too.
        page.select_option("#audience", "sales")
        page.click("#pulse button")
        row = page.locator("table[data-table='alignment'] tr").last
        expect(row).to_contain_text("fewer than 5")
        assert page.locator("#pulse svg.chart rect.bar").count() == 0

        clock.now = clock.now.replace(day=7, hour=21)  # the next Tuesday's run
        second = open_tuesday(pctx)
        clock.advance(hours=14)
        for key in ["s0", "s1", "s2", "s3", "s4", "m0", "m1"]:
            assert "Thank" in answer(pctx, directory.console_actor(pctx, key), second, why="5")
        for key in ["m2", "m3", "m4"]:
            assert "Thank" in answer(pctx, directory.console_actor(pctx, key), second, why="2")
        close(pctx, second)
        page.reload()
        expect(page.locator("table[data-table='alignment'] tr").last).not_to_contain_text("fewer than")
        assert page.locator("#pulse svg.chart rect.bar").count() > 0
        page.goto(f"{served.url}/")
        sides = page.locator("table[data-table='pulse-questions'] tr").nth(1).locator("td")
        # Sales: five 5s; marketing: two 5s and three 2s.
        assert (sides.nth(5).inner_text(), sides.nth(6).inner_text()) == ("5", "3.2")


def _rate(page: Page, audience: str) -> str:
    row = page.locator(
        "table[data-table='decisions'] tr", has=page.locator(f"td:text-is('{audience}')")
    ).first
    return row.locator("td").last.inner_text()
