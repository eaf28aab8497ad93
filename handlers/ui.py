"""The neutral vocabulary of what Touchline shows: cards, forms and replies, drawn by each platform."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

ButtonStyle = Literal["default", "primary", "danger"]
FieldKind = Literal["text", "url", "date", "select", "checkbox"]
FormValue = str | list[str] | bool


@dataclass(frozen=True)
class Fact:
    """A label and its value, shown side by side (`Why: ...`)."""

    label: str
    value: str


@dataclass(frozen=True)
class Section:
    """A block of a card: an optional heading, plain text, and facts."""

    text: str = ""
    heading: str = ""
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class Button:
    """A button: pressing it calls `action(actor, action_id, value)`."""

    label: str
    action_id: str
    value: str = ""
    style: ButtonStyle = "default"


@dataclass(frozen=True)
class Image:
    """A picture that goes with a card (a PNG chart), where the platform can show one."""

    png: bytes
    alt: str
    name: str = "chart.png"


@dataclass(frozen=True)
class Card:
    """A message with a title, sections, buttons and a small footer line.

    >>> Card(title="Decision", sections=(Section(text="We sell to mid-market first."),))
    """

    title: str
    sections: tuple[Section, ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str = ""
    image: Image | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the outbox."""
        return {
            "title": self.title,
            "sections": [
                {
                    "text": s.text,
                    "heading": s.heading,
                    "facts": [[f.label, f.value] for f in s.facts],
                }
                for s in self.sections
            ],
            "buttons": [
                {"label": b.label, "action_id": b.action_id, "value": b.value, "style": b.style}
                for b in self.buttons
            ],
            "footer": self.footer,
            **(
                {
                    "image": {
                        "png": base64.b64encode(self.image.png).decode(),
                        "alt": self.image.alt,
                        "name": self.image.name,
                    }
                }
                if self.image
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        return cls(
            title=data["title"],
            sections=tuple(
                Section(
                    text=s.get("text", ""),
                    heading=s.get("heading", ""),
                    facts=tuple(Fact(label, value) for label, value in s.get("facts", [])),
                )
                for s in data.get("sections", [])
            ),
            buttons=tuple(
                Button(b["label"], b["action_id"], b.get("value", ""), b.get("style", "default"))
                for b in data.get("buttons", [])
            ),
            footer=data.get("footer", ""),
            image=Image(base64.b64decode(data["image"]["png"]), data["image"]["alt"], data["image"]["name"])
            if data.get("image")
            else None,
        )


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    """One input of a form. `select` offers `options`; `multiple` allows several; a `text`
    field may offer `suggestions` while accepting anything."""

    name: str
    label: str
    kind: FieldKind = "text"
    required: bool = False
    multiline: bool = False
    max_length: int | None = None
    hint: str = ""
    options: tuple[Option, ...] = ()
    multiple: bool = False
    suggestions: tuple[str, ...] = ()
    initial: FormValue | None = None


@dataclass(frozen=True)
class Form:
    """A form to open for the actor; submitting it calls `submit(actor, form_id, values)`.

    `state` travels with the form and comes back merged into the submitted values
    (Slack keeps it in `private_metadata`, Teams in the card's submit data).
    """

    form_id: str
    title: str
    fields: tuple[FormField, ...]
    submit_label: str = "Submit"
    intro: str = ""
    state: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What the actor gets back, visible to them alone: text, a card, a form to open,
    or the errors of the form they submitted (field name -> what to fix)."""

    text: str = ""
    card: Card | None = None
    form: Form | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.text or self.card or self.form or self.errors)
