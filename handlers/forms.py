"""Checking submitted form values against the form that asked for them."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, NoReturn
from urllib.parse import urlsplit

from handlers.context import FormErrors
from handlers.ui import Form, FormField

Clean = dict[str, Any]
CHOOSE_ONE = "Choose one: nothing is chosen for you."
YES = frozenset({"true", "yes", "y", "1", "on"})
NO = frozenset({"", "false", "no", "n", "0", "off"})


def clean(
    form: Form, values: Mapping[str, Any], *, check: Callable[[Clean], dict[str, str]] | None = None
) -> Clean:
    """The submitted values, trimmed and typed (`date` fields become dates), or `FormErrors`.

    Missing required fields, oversized text, unknown options, malformed dates and what
    `check` finds across fields (given the fields that were fine) are reported at once,
    so the person fixes everything in one go.
    """
    result: Clean = {}
    errors: dict[str, str] = {}
    for field in form.fields:
        try:
            result[field.name] = _clean_field(field, values.get(field.name))
        except ValueError as exc:
            errors[field.name] = str(exc)
    if check is not None:
        errors = {**check(result), **errors}
    if errors:
        raise FormErrors(errors)
    return result


def _clean_field(field: FormField, raw: Any) -> Any:
    if field.kind == "checkbox":
        return _truthy(raw)
    if field.kind == "select" and field.multiple:
        return _choices(field, raw)
    if raw is None:
        raw = ""
    if isinstance(raw, list):
        if len(raw) > 1:
            raise ValueError("give a single value")
        raw = raw[0] if raw else ""
    if not isinstance(raw, str):
        raise ValueError("expected text")
    if field.max_length is not None and len(raw) > 4 * field.max_length + 100:
        _too_long(field, len(raw))  # far over the limit: refuse before any further work
    text = _normalise_text(raw)
    if not text:
        if field.required and field.kind == "select":
            # Every surface shows a required choice empty: an answer nobody picked is not stored.
            raise ValueError(CHOOSE_ONE)
        if field.required:
            raise ValueError(f"{field.label} is required")
        return None
    if field.max_length is not None and len(text) > field.max_length:
        _too_long(field, len(text))
    if field.kind == "url":
        return _url(text)
    if field.kind == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a date; write it as YYYY-MM-DD") from None
    if field.kind == "select":
        allowed = {o.value for o in field.options}
        if text not in allowed:
            raise ValueError(f"choose one of: {', '.join(sorted(allowed))}")
    return text


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise ValueError(f"{text[:60]!r} is not a web link; it must start with https:// or http://")
    return text


def _too_long(field: FormField, length: int) -> NoReturn:
    raise ValueError(
        f"{field.label} is {length:,} characters; the limit is {field.max_length:,}. Please shorten it."
    )


def _choices(field: FormField, raw: Any) -> list[str]:
    if raw is None or raw == "":
        items: list[Any] = []
    elif isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list):
        items = raw
    else:
        raise ValueError("expected a list of choices")
    if len(items) > max(len(field.options), 1):
        raise ValueError(f"choose at most {len(field.options)}")
    allowed = {o.value for o in field.options}
    chosen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("expected a list of choices")
        item = item.strip()
        if not item:
            continue
        if item not in allowed:
            raise ValueError(f"{item[:40]!r} is not one of: {', '.join(sorted(allowed))}")
        if item not in chosen:
            chosen.append(item)
    if field.required and not chosen:
        raise ValueError(f"choose at least one {field.label.lower().rstrip('s')}")
    return chosen


def _truthy(raw: Any) -> bool:
    """A ticked or unticked box. Not sent means unticked; a word that is neither yes nor no is
    refused rather than read as no ("maybe" at *Send anonymously* must not send a name)."""
    if raw is None:
        return False
    if isinstance(raw, list):
        return bool(raw)
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower() if isinstance(raw, str | int) else None
    if word in YES:
        return True
    if word in NO:
        return False
    raise ValueError("Answer yes or no.")


def visible_name(raw: str | None) -> str | None:
    """A name a platform gave, as people can read it: without control and format characters
    (PostgreSQL refuses NUL; the rest can disguise a name), at most 200 characters (the
    column's length; Teams allows 256)."""
    return _normalise_text(raw or "").replace("\n", " ")[:200] or None


def _normalise_text(raw: str) -> str:
    # Unify line endings and drop control and format characters (zero-width spaces,
    # direction overrides) other than line breaks, tabs and the joiner inside emoji: they
    # are invisible in chat, can disguise text, and would let "nothing" pass as something. (A
    # lone surrogate never gets here: inbound refuses it with a message.)
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in raw if ch in "\n\t\u200d" or unicodedata.category(ch) not in ("Cc", "Cf"))
    return "\n".join(line.rstrip() for line in kept.split("\n")).strip()
