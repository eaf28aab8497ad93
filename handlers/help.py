"""What Touchline can do for the person asking, by their roles."""

from __future__ import annotations

from handlers.context import Actor, Context
from handlers.ui import Card, Reply, Section


def overview(ctx: Context, actor: Actor, *, unknown: str = "") -> Reply:
    """The commands this person may use; `unknown` names a command that was not understood."""
    lines = [
        "/strategy list — the active strategy decisions, with their why and guardrails",
        "/strategy show <id> — one decision, who acknowledged it, its questions",
    ]
    if actor.has("leader"):
        lines += [
            "/strategy — announce a decision to the field",
            "/strategy supersede <id> — replace a decision with a new version",
        ]
    lines.append("/help — this list")
    roles = ", ".join(sorted(actor.roles)) or "no role in app.yaml yet"
    intro = f"I don't know {unknown[:60]}. " if unknown else ""
    return Reply(
        text=f"{intro}Here is what you can do.",
        card=Card(
            title=f"Touchline for {ctx.org.organisation.name}",
            sections=(
                Section(text="\n".join(lines)),
                Section(
                    text="On a decision's card: “Got it” acknowledges it, “I have a question” and "
                    "“Concern from the field” reach its author. Reacting ✅ to the card "
                    "acknowledges it too."
                ),
            ),
            footer=f"You are {actor.name} ({roles}).",
        ),
    )
