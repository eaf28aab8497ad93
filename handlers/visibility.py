"""Who sees what, on every surface: the one table SECURITY.md prints and the tests hold each surface to."""

from __future__ import annotations

from dataclasses import dataclass

# Whose view: the rep who wrote or asked the thing, another rep, a marketer, a marketing lead,
# the leader whose decision it is about, an admin (who is no leader), someone app.yaml does not
# know, and whoever runs Touchline's command line on the server.
ROLES = ("rep", "another rep", "marketer", "marketing lead", "leader", "admin", "unknown", "operator")
SURFACES = ("chat", "App Home", "dashboard", "digest", "touchline export", "touchline digest")
READERS_OF_THE_DIGEST = frozenset({"marketer", "marketing lead", "leader"})  # recipients are theirs to name
OPERATOR = frozenset({"operator"})
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Piece:
    """One kind of data, and on each surface who sees it."""

    key: str
    what: str
    chat: frozenset[str]
    home: frozenset[str]
    dashboard: frozenset[str]
    digest: bool  # the digest is the same for each of its readers
    export: bool  # `touchline export …` (operators)
    digest_cli: bool  # `touchline digest` (operators)

    def seen_by(self, surface: str) -> frozenset[str]:
        return {
            "chat": self.chat,
            "App Home": self.home,
            "dashboard": self.dashboard,
            "digest": READERS_OF_THE_DIGEST if self.digest else NOBODY,
            "touchline export": OPERATOR if self.export else NOBODY,
            "touchline digest": OPERATOR if self.digest_cli else NOBODY,
        }[surface]


def _roles(*names: str) -> frozenset[str]:
    assert set(names) <= set(ROLES), names
    return frozenset(names)


THE_FIELD_S_EARS = _roles("marketer", "marketing lead", "leader")
PIECES = (
    Piece(
        "question",
        "The words of a question on a decision",
        chat=_roles("leader"),
        home=NOBODY,
        dashboard=_roles("leader"),
        digest=False,
        export=False,
        digest_cli=False,
    ),
    Piece(
        "concern",
        "The words of an anonymous concern (until it is answered, in the decision's channels)",
        chat=_roles("leader"),
        home=NOBODY,
        dashboard=_roles("leader"),
        digest=False,
        export=False,
        digest_cli=False,
    ),
    Piece(
        "asker",
        "Who asked a question (a name beside its words)",
        chat=_roles("leader"),
        home=NOBODY,
        dashboard=NOBODY,
        digest=False,
        export=False,
        digest_cli=False,
    ),
    Piece(
        "confidential",
        "The words of a confidential objection (never with a name)",
        chat=_roles("rep", "marketing lead"),
        home=NOBODY,
        dashboard=_roles("rep"),
        digest=False,
        export=False,  # `--include-confidential` adds them, for whoever runs it
        digest_cli=False,
    ),
    Piece(
        "theme",
        "A theme's name",
        chat=_roles("rep") | THE_FIELD_S_EARS,
        home=NOBODY,
        dashboard=_roles("rep", "admin") | THE_FIELD_S_EARS,
        digest=True,
        export=True,
        digest_cli=True,
    ),
    Piece(
        "results",
        "Pulse results (for groups of at least the minimum)",
        chat=_roles("leader", "admin"),
        home=NOBODY,
        dashboard=_roles("marketer", "marketing lead", "leader", "admin"),
        digest=False,
        export=True,
        digest_cli=False,
    ),
    Piece(
        "comment",
        "Pulse comments (from at least the comments' minimum)",
        chat=_roles("leader", "admin"),
        home=NOBODY,
        dashboard=NOBODY,
        digest=False,
        export=False,
        digest_cli=False,
    ),
)


def markdown() -> str:
    """The table as SECURITY.md prints it."""
    head = "| what | " + " | ".join(SURFACES) + " |"
    lines = [head, "| --- |" + " --- |" * len(SURFACES)]
    for piece in PIECES:
        cells = []
        for surface in SURFACES:
            seen = piece.seen_by(surface)
            cells.append(", ".join(r for r in ROLES if r in seen) or "nobody")
        lines.append(f"| {piece.what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
