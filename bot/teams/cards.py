"""The neutral cards and forms drawn as Adaptive Cards 1.5, well under Teams' message size."""

from __future__ import annotations

import base64
import json
from typing import Any

from handlers.text import pieces
from handlers.ui import Card, Form, FormField, FormValue, Section

VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_CARD = 20_000  # characters of JSON; Teams refuses messages over about 28 KB
MAX_TEXT = 2_000  # characters in one TextBlock before it is split
MAX_IMAGE = 12_000  # bytes of PNG that may travel inside a card as a data URI
TAG = "_touchline"  # the key in Action.Submit data that says what the press means
CHOOSE = "Choose…"  # a single choice's placeholder while nothing is chosen


def escape(text: str) -> str:
    """User text made inert in a TextBlock's markdown: no links, lists or emphasis from it."""
    for char in "\\*_[]`#>~":
        text = text.replace(char, "\\" + char)
    return text


def card(card: Card) -> dict[str, Any]:
    """A card as an Adaptive Card: title, sections (long ones split), buttons, footer."""
    # Titles carry people's words too (a decision's, an asset's): as inert as the rest.
    body: list[dict[str, Any]] = [_text(escape(card.title), weight="Bolder", size="Medium")]
    parts: list[dict[str, Any]] = []
    for section in card.sections:
        parts += _section(section)
    tail: list[dict[str, Any]] = []
    if card.image is not None and len(card.image.png) <= MAX_IMAGE:
        data = base64.b64encode(card.image.png).decode()
        tail.append({"type": "Image", "url": f"data:image/png;base64,{data}", "altText": card.image.alt})
    elif card.image is not None:
        tail.append(
            _text(
                f"({card.image.alt}: too large for a Teams card; `touchline digest --chart FILE` draws it.)",
                subtle=True,
            )
        )
    if card.footer:
        tail.append(_text(escape(card.footer), subtle=True, size="Small"))
    actions = [
        {
            "type": "Action.Submit",
            "title": button.label[:80],
            "data": {TAG: "action", "action_id": button.action_id, "value": button.value},
            **({"style": _STYLES[button.style]} if button.style in _STYLES else {}),
        }
        for button in card.buttons[:6]  # Teams shows at most six actions
    ]
    # Cut sections from the end, visibly, until the card fits.
    shown = len(parts)
    while shown > 0 and _size(body + parts[:shown] + tail, actions) > MAX_CARD:
        shown -= 1
    if shown < len(parts):
        parts = [*parts[:shown], _text(f"_… {len(parts) - shown} more parts not shown here._", subtle=True)]
    return _adaptive(body + parts + tail, actions)


_STYLES = {"primary": "positive", "danger": "destructive"}


def _section(section: Section) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if section.heading:
        items.append(_text(escape(section.heading), weight="Bolder", separator=True))
    if section.text:
        parts = pieces(escape(section.text), MAX_TEXT)
        for n, part in enumerate(parts):
            items.append(_text(part + ("\n\n_(continued)_" if n < len(parts) - 1 else "")))
    if section.facts:
        items.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": escape(f.label)[:200], "value": escape(f.value)[:MAX_TEXT]}
                    for f in section.facts
                ],
            }
        )
    return items


def _text(text: str, **style: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
    if style.pop("subtle", False):
        block["isSubtle"] = True
    block.update(style)
    return block


def _adaptive(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": VERSION,
        "body": body,
    }
    if actions:
        content["actions"] = actions
    return content


def _size(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> int:
    return len(json.dumps(_adaptive(body, actions), ensure_ascii=False))


# --- forms ------------------------------------------------------------------------------------------


def form(form: Form) -> dict[str, Any]:
    """A form as a card with inputs. Submitting it sends the inputs with the form's id, state,
    field kinds and labels; after errors the card keeps what was typed (Teams' own doing)."""
    body: list[dict[str, Any]] = [_text(escape(form.title), weight="Bolder", size="Medium")]
    if form.intro:
        body.append(_text(escape(form.intro)))
    for field in form.fields:
        body.append(_input(field, field.initial))
    actions = [
        {
            "type": "Action.Submit",
            "title": form.submit_label[:80],
            "style": "positive",
            "data": {
                TAG: "submit",
                "_form": form.form_id,
                "_state": form.state,
                "_kinds": _kinds(form),
                "_labels": {f.name: f.label[:60] for f in form.fields},
            },
        },
        {
            "type": "Action.Submit",
            "title": "Cancel",
            "associatedInputs": "none",
            "data": {TAG: "cancel", "_form": form.form_id},
        },
    ]
    return _adaptive(body, actions)


def _input(field: FormField, value: FormValue | None) -> dict[str, Any]:
    base: dict[str, Any] = {"id": field.name, "label": field.label, "isRequired": field.required}
    if field.required:
        base["errorMessage"] = (
            ("Choose at least one." if field.multiple else "Choose one.")
            if field.kind == "select"
            else f"{field.label} is needed."
        )
    if field.kind == "date":
        element = {"type": "Input.Date", **base}
        if value:
            element["value"] = str(value)
    elif field.kind == "checkbox":
        element = {
            "type": "Input.Toggle",
            **base,
            "title": field.label,
            "valueOn": "true",
            "valueOff": "false",
        }
        element["value"] = "true" if value else "false"
    elif field.kind == "select":
        element = {
            "type": "Input.ChoiceSet",
            **base,
            "isMultiSelect": field.multiple,
            "style": "compact",
            "choices": [{"title": o.label[:200], "value": o.value} for o in field.options[:100]],
        }
        chosen = value if isinstance(value, list) else [value] if value else []
        if chosen:
            element["value"] = ",".join(str(v) for v in chosen)
        elif not field.multiple:
            # No value, so nothing is chosen for the person: a compact single choice shows its
            # placeholder instead (an untouched one is not sent, or sent empty, and refused).
            element["placeholder"] = CHOOSE
    else:
        element = {"type": "Input.Text", **base, "isMultiline": field.multiline}
        if field.kind == "url":
            element["style"] = "Url"
        if field.max_length:
            element["maxLength"] = field.max_length
        if value not in (None, ""):
            element["value"] = str(value)
    hint = field.hint or (f"for example: {', '.join(field.suggestions)}" if field.suggestions else "")
    if hint and element["type"] in ("Input.Text",):
        element["placeholder"] = hint[:200]
    return element


def _kinds(form: Form) -> dict[str, str]:
    """How to read back the fields that do not arrive as plain text."""
    kinds = {f.name: "multiple" for f in form.fields if f.kind == "select" and f.multiple}
    kinds.update({f.name: "checkbox" for f in form.fields if f.kind == "checkbox"})
    return kinds


def submitted(data: dict[str, Any]) -> tuple[str, dict[str, FormValue]]:
    """The form id and values of a submitted form card (`data` is the activity's `value`):
    multi-selects arrive as "a,b" and toggles as "true"/"false"; the form's state is merged in."""
    given = data.get("_kinds")
    kinds: dict[str, Any] = given if isinstance(given, dict) else {}
    values: dict[str, FormValue] = {}
    for name, raw in data.items():
        if name.startswith("_"):
            continue
        kind = kinds.get(name)
        if kind == "multiple":
            values[name] = [v for v in str(raw or "").split(",") if v]
        elif kind == "checkbox":
            values[name] = str(raw).lower() == "true"
        else:
            values[name] = str(raw) if raw is not None else ""
    state = data.get("_state")
    if isinstance(state, dict):
        values.update({str(k): str(v) for k, v in state.items()})
    return str(data.get("_form") or ""), values


def attachment(content: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CONTENT_TYPE, "content": content}
