"""Cards, forms and replies drawn as HTML: the web page's renderer of the neutral vocabulary."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from bot.web.html import e
from handlers.ui import Button, Card, Form, FormField

Press = Callable[[Button, int], str]  # a button (and its number) -> the HTML that presses it


def card_html(card: Card, *, press: Press | None = None, meta: str = "", after: str = "") -> str:
    parts = [f"<article class='card'>{f'<div class=meta>{meta}</div>' if meta else ''}"]
    parts.append(f"<div class='title'>{e(card.title)}</div>")
    for section in card.sections:
        if section.heading:
            parts.append(f"<div class='heading'>{e(section.heading)}</div>")
        if section.text:
            parts.append(f"<div class='text'>{e(section.text)}</div>")
        if section.facts:
            facts = "".join(f"<dt>{e(f.label)}</dt><dd>{e(f.value)}</dd>" for f in section.facts)
            parts.append(f"<dl>{facts}</dl>")
    if card.image is not None:
        data = base64.b64encode(card.image.png).decode()
        parts.append(f"<img alt='{e(card.image.alt)}' src='data:image/png;base64,{data}'>")
    if card.buttons and press is not None:
        parts.append(
            "<div class='buttons'>" + "".join(press(b, i) for i, b in enumerate(card.buttons, 1)) + "</div>"
        )
    if card.footer:
        parts.append(f"<div class='footer'>{e(card.footer)}</div>")
    parts.append(after + "</article>")
    return "".join(parts)


def button_class(button: Button) -> str:
    return {"primary": "primary", "danger": "danger"}.get(button.style, "")


def form_html(
    form: Form,
    *,
    action: str,
    hidden: Mapping[str, str],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    cancel: str = "",
) -> str:
    """A Touchline form as an HTML form; what was typed stays in the fields when some need fixing."""
    values = values or {}
    errors = errors or {}
    parts = [f"<form class='touchline-form panel' method='post' action='{e(action)}'>"]
    parts.append(f"<h3>{e(form.title)}</h3>")
    if form.intro:
        parts.append(f"<p class='muted'>{e(form.intro)}</p>")
    for name, value in hidden.items():
        parts.append(f"<input type='hidden' name='{e(name)}' value='{e(value)}'>")
    for field in form.fields:
        parts.append(_field_html(field, values.get(field.name, field.initial), errors.get(field.name)))
    parts.append(
        "<div class='buttons'>"
        f"<button class='primary' type='submit'>{e(form.submit_label)}</button>{cancel}</div>"
    )
    parts.append("</form>")
    return "".join(parts)


def _field_html(field: FormField, value: Any, error: str | None) -> str:
    ident = f"field-{field.name}"
    need = " <span class='hint'>(required)</span>" if field.required else ""
    hint = f" <span class='hint'>{e(field.hint)}</span>" if field.hint else ""
    label = f"<label for='{e(ident)}'>{e(field.label)}{need}{hint}</label>"
    limit = f" maxlength='{field.max_length}'" if field.max_length else ""
    required = " required" if field.required and field.kind != "checkbox" else ""
    if field.kind == "select":
        chosen = set(value if isinstance(value, list) else [value] if value else [])
        # A single choice starts on an empty option, required or not: a browser would otherwise
        # show (and send) the first option, and an untouched form would record an answer
        # nobody gave. `required` keeps the browser from sending the empty one.
        blank = "Choose…" if field.required else "—"
        options = (
            ""
            if field.multiple
            else f"<option value=''{'' if chosen & _values(field) else ' selected'}>{blank}</option>"
        )
        options += "".join(
            f"<option value='{e(o.value)}'{' selected' if o.value in chosen else ''}>{e(o.label)}</option>"
            for o in field.options
        )
        many = " multiple" if field.multiple else ""
        control = f"<select id='{e(ident)}' name='{e(field.name)}'{many}{required}>{options}</select>"
    elif field.kind == "checkbox":
        checked = " checked" if value is True else ""
        control = f"<input type='checkbox' id='{e(ident)}' name='{e(field.name)}' value='yes'{checked}>"
    elif field.multiline:
        control = (
            f"<textarea id='{e(ident)}' name='{e(field.name)}' rows='3'{limit}{required}>"
            f"{e(value or '')}</textarea>"
        )
    else:
        kind = {"url": "url", "date": "date"}.get(field.kind, "text")
        suggestions = ""
        listed = ""
        if field.suggestions:
            listed = f" list='{e(ident)}-list'"
            suggestions = (
                f"<datalist id='{e(ident)}-list'>"
                + "".join(f"<option value='{e(s)}'>" for s in field.suggestions)
                + "</datalist>"
            )
        shown = value if isinstance(value, str) else ""
        control = (
            f"<input type='{kind}' id='{e(ident)}' name='{e(field.name)}' value='{e(shown)}'"
            f"{listed}{limit}{required}>" + suggestions
        )
    problem = f"<div class='error'>{e(error)}</div>" if error else ""
    return f"<div class='field'>{label}{control}{problem}</div>"


def _values(field: FormField) -> set[str]:
    return {o.value for o in field.options}


def form_values(form: Form, posted: Mapping[str, list[str]]) -> dict[str, Any]:
    """What the browser sent, read the way each field means it (a multiple select is a list, a
    checkbox is a yes or no), plus the form's state."""
    values: dict[str, Any] = {}
    for field in form.fields:
        given = posted.get(field.name, [])
        if field.kind == "checkbox":
            values[field.name] = bool(given)
        elif field.kind == "select" and field.multiple:
            values[field.name] = [v for v in given if v]
        else:
            values[field.name] = given[0] if given else ""
    return {**values, **form.state}
