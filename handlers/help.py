"""What Touchline can do for the person asking, by their roles."""

from __future__ import annotations

from handlers.context import Actor, Context
from handlers.ui import Card, Reply, Section


def overview(ctx: Context, actor: Actor, *, unknown: str = "") -> Reply:
    """The commands this person may use; `unknown` names a command that was not understood."""
    strategy = [
        "/strategy list — the active strategy decisions, with their why and guardrails",
        "/strategy show <id> — one decision, who acknowledged it, its questions",
    ]
    if actor.has("leader"):
        strategy += [
            "/strategy — announce a decision to the field",
            "/strategy supersede <id> — replace a decision with a new version",
        ]
    field = [
        "/objection <what the customer said> — log an objection in one step",
        "/objection — the full form: competitor, segment, deal stage and size, deal link, severity",
        "/objection mine — what you logged (edit or withdraw within 24 hours)",
    ]
    if actor.has("marketer", "marketing-lead", "leader"):
        field += [
            "/objection list [theme] — what the field is hearing, by theme",
            "/digest — this week's digest: themes, trends, gaps, asset feedback",
            "/objection theme — the themes; marketers rename, merge, split and move them",
        ]
    assets = ["/asset list · /asset show <id> — assets and what the field says about them"]
    if actor.has("marketer", "marketing-lead"):
        assets += [
            "/asset — publish an asset to the field",
            "/asset draft — ask the field for input on a draft, with a deadline",
            "/asset publish <id> — launch a draft",
        ]
    if actor.has("admin"):
        assets += [
            "/pulse — pulse surveys: /pulse run <survey> sends one now, /pulse close <run> closes it",
            "/pulse results [run] — results, for groups of enough people only",
        ]
    elif actor.has("leader"):
        assets.append("/pulse results [run] — pulse results, for groups of enough people only")
    assets.append("/touchline dashboard — a link to the dashboard: acknowledgements, assets, themes, pulse")
    roles = ", ".join(sorted(actor.roles)) or "no role in app.yaml yet"
    intro = f"I don't know {unknown[:60]}. " if unknown else ""
    return Reply(
        text=f"{intro}Here is what you can do.",
        card=Card(
            title=f"Touchline for {ctx.org.organisation.name}",
            sections=(
                Section(heading="Strategy", text="\n".join(strategy)),
                Section(heading="What the field hears", text="\n".join(field)),
                Section(heading="Assets and pulses", text="\n".join(assets)),
                Section(
                    text="On a card, the buttons do the talking: “Got it” acknowledges a decision, "
                    "“Useful” or “Doesn't fit the field” tells marketing about an asset. "
                    "Reacting ✅ (or 👍 / 👎 on an asset) does the same. /help shows this list."
                ),
            ),
            footer=f"You are {actor.name} ({roles}).",
        ),
    )
