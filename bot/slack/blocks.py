"""The neutral cards and forms drawn in Slack's Block Kit, within Slack's limits.

Blocks are built with slack_sdk's own models, whose validators run when they are turned
into JSON: a block Slack would reject fails here, loudly, instead of in Slack.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DatePickerElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticMultiSelectElement,
    StaticSelectElement,
    UrlInputElement,
)
from slack_sdk.models.views import View

from handlers.text import pieces
from handlers.ui import Card, Form, FormField, FormValue, Reply, Section

MAX_BLOCKS = 50  # in a message
SECTION_TEXT = 3000
CHUNK = 2900  # a little under the limit, for the "(continued)" marks
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONTEXT_TEXT = 2000
MODAL_TITLE = 24
PRIVATE_METADATA = 3000
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS = 100
INPUT_VALUE = 3000


def escape(text: str) -> str:
    """User text made inert for mrkdwn: `<!channel>`, `<@U…>` and links cannot ping or hide."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card_blocks(card: Card, *, limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """A card as Block Kit: header, sections (long ones split), buttons, footer."""
    head: list[Block] = [HeaderBlock(text=PlainTextObject(text=clip(card.title, HEADER_TEXT), emoji=True))]
    body: list[Block] = []
    for section in card.sections:
        body += _section_blocks(section)
    tail: list[Block] = []
    if card.buttons:
        tail.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text=clip(b.label, BUTTON_TEXT), emoji=True),
                        action_id=b.action_id,
                        value=b.value[:BUTTON_VALUE],
                        style=b.style if b.style in ("primary", "danger") else None,
                    )
                    for b in card.buttons[:25]
                ]
            )
        )
    if card.footer:
        tail.append(ContextBlock(elements=[MarkdownTextObject(text=escape(clip(card.footer, CONTEXT_TEXT)))]))
    room = limit - len(head) - len(tail)
    if len(body) > room:
        hidden = len(body) - (room - 1)
        more = ContextBlock(elements=[MarkdownTextObject(text=f"_… {hidden} more parts not shown here._")])
        body = [*body[: room - 1], more]
    return [block.to_dict() for block in head + body + tail]


def _section_blocks(section: Section) -> list[Block]:
    lines = []
    if section.heading:
        lines.append(f"*{escape(section.heading)}*")
    if section.text:
        lines.append(escape(section.text))
    lines += [f"*{escape(fact.label)}:* {escape(fact.value)}" for fact in section.facts]
    text = "\n".join(lines)
    if not text:
        return []
    chunks = pieces(text, CHUNK)
    blocks: list[Block] = []
    for n, chunk in enumerate(chunks):
        marked = chunk + ("\n_(continued)_" if n < len(chunks) - 1 else "")
        blocks.append(SectionBlock(text=MarkdownTextObject(text=marked)))
    return blocks


def fallback(card: Card) -> str:
    """The plain text of a card, for notifications and screen readers."""
    return escape(clip(" · ".join(part for part in (card.title, card.footer) if part), 3000))


def reply_message(reply: Reply) -> dict[str, Any]:
    """What an ephemeral message carries for a reply: its text, and its card as blocks."""
    # `text` is mrkdwn too (and the notification): escaped like the blocks.
    message: dict[str, Any] = {"text": escape(clip(reply.text, 3000)) if reply.text else ""}
    if reply.card is not None:
        blocks = card_blocks(reply.card)
        if reply.text:
            blocks.insert(
                0,
                SectionBlock(text=MarkdownTextObject(text=escape(clip(reply.text, SECTION_TEXT)))).to_dict(),
            )
        message["blocks"] = blocks[:MAX_BLOCKS]
        message["text"] = message["text"] or fallback(reply.card)
    return message


# --- forms as modals ----------------------------------------------------------------------------


def modal(form: Form, *, channel: str | None = None) -> dict[str, Any]:
    """A form as a modal. Its state and the channel it was opened from travel in
    `private_metadata`, so that the submission can answer where the person was."""
    metadata = json.dumps({"state": form.state, "channel": channel}, separators=(",", ":"))
    if len(metadata) > PRIVATE_METADATA:
        raise ValueError(
            f"form {form.form_id}: its state is too large for Slack ({len(metadata)} characters)"
        )
    blocks: list[Block] = []
    if form.intro:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=escape(clip(form.intro, SECTION_TEXT)))))
    blocks += [_input(field) for field in form.fields]
    view = View(
        type="modal",
        callback_id=form.form_id,
        title=PlainTextObject(text=clip(form.title, MODAL_TITLE), emoji=True),
        submit=PlainTextObject(text=clip(form.submit_label, MODAL_TITLE)),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=blocks,
    )
    return view.to_dict()


def _input(field: FormField) -> InputBlock:
    element: Any
    initial = field.initial
    if field.kind == "date":
        element = DatePickerElement(action_id="value", initial_date=str(initial) if initial else None)
    elif field.kind == "url":
        element = UrlInputElement(action_id="value", initial_value=str(initial) if initial else None)
    elif field.kind == "checkbox":
        option = Option(value="yes", text=PlainTextObject(text=clip(field.label, OPTION_TEXT)))
        element = CheckboxesElement(
            action_id="value", options=[option], initial_options=[option] if initial else None
        )
    elif field.kind == "select":
        options = [
            Option(value=o.value[:OPTION_VALUE], text=PlainTextObject(text=clip(o.label, OPTION_TEXT)))
            for o in field.options[:OPTIONS]
        ]
        chosen = initial if isinstance(initial, list) else [initial] if initial else []
        picked = [o for o in options if o.value in chosen]
        if field.multiple:
            element = StaticMultiSelectElement(
                action_id="value", options=options, initial_options=picked or None
            )
        else:
            element = StaticSelectElement(
                action_id="value", options=options, initial_option=picked[0] if picked else None
            )
    else:
        element = PlainTextInputElement(
            action_id="value",
            multiline=field.multiline,
            max_length=min(field.max_length or INPUT_VALUE, INPUT_VALUE),
            initial_value=clip(str(initial), INPUT_VALUE) if initial not in (None, "") else None,
        )
    hint = field.hint or (f"for example: {', '.join(field.suggestions)}" if field.suggestions else "")
    label = field.label if field.kind != "checkbox" else "Confirm"
    return InputBlock(
        block_id=field.name,
        label=PlainTextObject(text=clip(label, 2000)),
        element=element,
        hint=PlainTextObject(text=clip(hint, 2000)) if hint else None,
        optional=not field.required,
    )


def submitted(view: dict[str, Any]) -> tuple[dict[str, FormValue], str | None]:
    """The values of a submitted modal, with the form's state merged in, and the channel it was
    opened from. What is not in the shape Slack reports it in counts as not filled in."""
    values: dict[str, FormValue] = {}
    state = view.get("state")
    blocks = state.get("values") if isinstance(state, dict) else None
    for block_id, actions in blocks.items() if isinstance(blocks, dict) else ():
        item = actions.get("value") if isinstance(actions, dict) else None
        if not isinstance(item, dict):
            item = {}
        kind = item.get("type")
        if kind == "datepicker":
            values[block_id] = _text(item.get("selected_date"))
        elif kind == "static_select":
            option = item.get("selected_option")
            values[block_id] = _text(option.get("value")) if isinstance(option, dict) else ""
        elif kind == "multi_static_select":
            options = item.get("selected_options")
            chosen = options if isinstance(options, list) else []
            values[block_id] = [_text(o.get("value")) for o in chosen if isinstance(o, dict)]
        elif kind == "checkboxes":
            values[block_id] = bool(item.get("selected_options"))
        else:
            values[block_id] = _text(item.get("value"))
    private = view.get("private_metadata")
    try:
        metadata = json.loads(private) if isinstance(private, str) and private else {}
    except ValueError:
        metadata = {}
    state = metadata.get("state") if isinstance(metadata, dict) else None
    if isinstance(state, dict):
        values.update({str(k): str(v) for k, v in state.items()})
    channel = metadata.get("channel") if isinstance(metadata, dict) else None
    return values, channel if isinstance(channel, str) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def home_view(card: Card) -> dict[str, Any]:
    """A person's home, for the App Home tab (which holds up to 100 blocks)."""
    return View(type="home", blocks=card_blocks(card, limit=100)).to_dict()
