"""Cards, forms and replies drawn as plain text for the terminal."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from handlers.ui import Card, FormField, Image, Option, Reply

WIDTH = 78


def card_lines(card: Card) -> list[str]:
    """A card as text, its buttons numbered so that `press <post> <n>` can name them."""
    lines = [card.title]
    for section in card.sections:
        if section.heading:
            lines.append(section.heading if section.heading[-1] in ".?!:" else f"{section.heading}:")
        indent = "  " if section.heading else ""
        for paragraph in section.text.splitlines():
            lines += textwrap.wrap(paragraph, WIDTH, initial_indent=indent, subsequent_indent=indent) or [""]
        for fact in section.facts:
            first, *rest = fact.value.splitlines() or [""]
            lines.append(f"{indent}{fact.label}: {first}")
            lines += [f"{indent}  {more}" for more in rest]
    if card.buttons:
        lines.append("  ".join(f"[{i}] {b.label}" for i, b in enumerate(card.buttons, 1)))
    if card.footer:
        lines.append(card.footer)
    return lines


def boxed(header: str, card: Card) -> str:
    rule = "─" * max(4, WIDTH - len(header) - 4)
    body = "\n".join(f"│ {line}" for line in card_lines(card))
    return f"┌─ {header} {rule}\n{body}\n└{'─' * (WIDTH - 1)}"


def image_note(image: Image) -> str:
    """A terminal shows no pictures: the picture goes to a file, and the file's name is shown."""
    folder = Path(tempfile.gettempdir()) / "touchline"
    folder.mkdir(exist_ok=True)
    path = folder / image.name
    path.write_bytes(image.png)
    return f"📈 {image.alt}: {path}"


def reply_text(reply: Reply) -> str:
    """What the actor alone sees, marked as such (Slack would show it as an ephemeral message)."""
    parts = []
    if reply.text:
        parts.append("\n".join(f"(only you) {line}" for line in reply.text.splitlines()))
    if reply.card:
        parts.append(boxed("only you", reply.card))
        if reply.card.image is not None:
            parts.append(image_note(reply.card.image))
    return "\n".join(parts)


def _option_text(option: Option) -> str:
    if option.label == option.value or option.value.lower() == option.label.lower():
        return option.value
    return option.label if option.value.isdigit() else f"{option.value} ({option.label})"


def field_prompt(field: FormField, number: int, total: int) -> str:
    need = " (required)" if field.required else ""
    lines = [f"  [{number}/{total}] {field.label}{need}"]
    if field.hint:
        lines.append(f"      {field.hint}")
    if field.options:
        choices = ", ".join(f"{i}) {_option_text(o)}" for i, o in enumerate(field.options, 1))
        how = "one or more, comma-separated" if field.multiple else "one"
        lines.append(f"      choose {how}: {choices}")
    if field.suggestions:
        lines.append(f"      for example: {', '.join(field.suggestions)}")
    if field.kind == "date":
        lines.append("      YYYY-MM-DD")
    if field.kind == "url":
        lines.append("      https://...")
    if field.kind == "checkbox":
        lines.append("      y/n")
    if field.multiline:
        lines.append("      end a line with \\ to continue on the next")
    if field.kind == "checkbox":  # an untouched box is unticked
        lines.append(f"      Enter keeps: {'y' if field.initial is True else 'n'}")
    elif field.initial not in (None, "", []):
        shown = ", ".join(field.initial) if isinstance(field.initial, list) else str(field.initial)
        first = shown.splitlines()[0] if shown else ""
        more = " …" if "\n" in shown or len(first) > 60 else ""
        lines.append(f"      Enter keeps: {first[:60]}{more}")
    return "\n".join(lines)
