"""What operators see: `/metrics` in Prometheus' format and `/healthz`, from a running Touchline."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from handlers.context import Context
from tests.slack_world import World, run
from tests.test_slack import LEAD, REP1, announce, sctx  # noqa: F401  (the fixture)


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


async def metrics(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = re.sub(r"/slack/events$", "/metrics", world.url)
    async with world.http.get(url) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        return samples(await response.text())


def test_metrics_count_acknowledgements_the_outbox_and_deliveries(sctx: Context) -> None:  # noqa: F811
    async def scenario(world: World) -> None:
        await world.command("objection", "too expensive", REP1)
        await world.settled()
        await announce(world)
        await world.settled()
        before = await metrics(world)
        assert before[("touchline_acknowledgement_seconds_count", (("platform", "slack"),))] >= 3
        assert before[("touchline_outbox_depth", (("platform", "slack"), ("state", "pending")))] == 2
        assert before[("touchline_outbox_oldest_seconds", (("platform", "slack"),))] >= 0
        await world.touchline.worker().drain()
        after = await metrics(world)
        assert after[("touchline_deliveries_total", (("outcome", "sent"), ("platform", "slack")))] == 2
        assert ("touchline_outbox_depth", (("platform", "slack"), ("state", "pending"))) not in after

    run(sctx, scenario)


def test_healthz_says_the_database_answers_and_how_old_the_oldest_message_is(sctx: Context) -> None:  # noqa: F811
    async def scenario(world: World) -> None:
        async with world.http.get(re.sub(r"/slack/events$", "/healthz", world.url)) as response:
            body = await response.json()
        assert response.status == 200 and body["database"] == "ok" and body["outbox_oldest_seconds"] == 0
        assert set(body["platforms"]) == {"slack"}  # Teams has no credentials here: not served

    run(sctx, scenario)


def test_log_format_json_writes_one_json_object_a_line() -> None:
    import io
    import json
    import logging

    from tests.fakes import configured_logging

    stream = io.StringIO()
    with configured_logging("INFO", "json") as root:
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("bot.delivery").warning(
            "delivery %s to %s failed: %s", 7, "slack", "not_in_channel"
        )
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"]) == ("warning", "bot.delivery")
    assert entry["message"] == "delivery 7 to slack failed: not_in_channel"
